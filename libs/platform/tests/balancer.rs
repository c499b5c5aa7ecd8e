//! The balancer's retry rule and rotation against real local listeners: a closed port, a live
//! server that counts what it receives, one that reads a request and hangs up, one that answers
//! 500, one that never answers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, routing::any};
use http::Method;
use studycafe_platform::balancer::{Balancer, CheckSettings, Replicas};
use tokio::{
    io::AsyncReadExt as _,
    net::{TcpListener, TcpStream},
};

/// A server that answers every request with `status` and counts them; `/health/ready` answers
/// 200 while `ready` holds, 503 otherwise (and is not counted).
#[derive(Debug, Clone)]
struct Server {
    url: String,
    count: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
}

impl Server {
    async fn start(status: StatusCode) -> Self {
        let count = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(true));
        let app = Router::new()
            .route(
                "/health/ready",
                any(|State((_, ready, _)): State<Shared>| async move {
                    if ready.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }),
            )
            .fallback(|State((count, _, status)): State<Shared>| async move {
                count.fetch_add(1, Ordering::SeqCst);
                status
            })
            .with_state((count.clone(), ready.clone(), status));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, count, ready }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

type Shared = (Arc<AtomicUsize>, Arc<AtomicBool>, StatusCode);

/// A port nothing listens on.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Accepts, reads the request, counts it, then either hangs up (`hold` false) or keeps the
/// connection open without answering.
async fn unanswering(hold: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let count = counted.clone();
            tokio::spawn(async move { read_then(socket, count, hold).await });
        }
    });
    (url, count)
}

async fn read_then(mut socket: TcpStream, count: Arc<AtomicUsize>, hold: bool) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    count.fetch_add(1, Ordering::SeqCst);
    if hold {
        // Reads until the client gives up.
        while let Ok(n) = socket.read(&mut buffer).await {
            if n == 0 {
                return;
            }
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn balancer(urls: &[&str]) -> Balancer {
    Balancer::new(
        "test",
        &Replicas::parse("TEST_URL", &urls.join(",")).unwrap(),
        CheckSettings {
            period: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
        },
        client(),
    )
}

/// Sends `method /work` through `balancer`; the first pick is the first replica.
async fn send(balancer: &Balancer, method: Method) -> Result<StatusCode, reqwest::Error> {
    let http = client();
    balancer
        .call(&method, |base| {
            http.request(method.clone(), format!("{base}/work"))
                .body("{}")
                .timeout(Duration::from_secs(2))
                .send()
        })
        .await
        .map(|response| response.status())
}

#[tokio::test]
async fn a_request_that_could_not_connect_is_retried_once_elsewhere_even_a_post() {
    let live = Server::start(StatusCode::OK).await;
    let closed = closed_port().await;
    let balancer = balancer(&[&closed, &live.url]);

    assert_eq!(send(&balancer, Method::POST).await.unwrap(), StatusCode::OK);
    assert_eq!(live.count(), 1, "delivered once, to the live replica");
    // The refused replica is out until a check passes.
    assert_eq!(balancer.in_rotation(), [live.url.as_str()]);
    assert_eq!(send(&balancer, Method::POST).await.unwrap(), StatusCode::OK);
    assert_eq!(live.count(), 2);
}

#[tokio::test]
async fn with_one_replica_a_refused_connection_is_an_error() {
    let closed = closed_port().await;
    let balancer = balancer(&[&closed]);
    let err = send(&balancer, Method::GET).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}

#[tokio::test]
async fn a_post_whose_connection_broke_after_sending_is_not_sent_again() {
    let (dropper, received) = unanswering(false).await;
    let live = Server::start(StatusCode::OK).await;
    let balancer = balancer(&[&dropper, &live.url]);

    let err = send(&balancer, Method::POST).await.unwrap_err();
    assert!(!err.is_connect(), "it did connect: {err}");
    assert_eq!(received.load(Ordering::SeqCst), 1, "the dropper got it");
    assert_eq!(live.count(), 0, "a POST is never sent twice");
    // Passive ejection all the same: the connection broke before any answer.
    assert_eq!(balancer.in_rotation(), [live.url.as_str()]);
}

#[tokio::test]
async fn a_get_whose_connection_broke_is_retried_once_elsewhere() {
    let (dropper, received) = unanswering(false).await;
    let live = Server::start(StatusCode::OK).await;
    let balancer = balancer(&[&dropper, &live.url]);
    assert_eq!(send(&balancer, Method::GET).await.unwrap(), StatusCode::OK);
    assert_eq!(received.load(Ordering::SeqCst), 1);
    assert_eq!(live.count(), 1);

    // At most once: two droppers, the second failure is the answer.
    let (second, received_too) = unanswering(false).await;
    let balancer = self::balancer(&[&dropper, &second]);
    assert!(send(&balancer, Method::GET).await.is_err());
    assert_eq!(received.load(Ordering::SeqCst), 2);
    assert_eq!(received_too.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_even_a_5xx_is_never_sent_again() {
    let failing = Server::start(StatusCode::INTERNAL_SERVER_ERROR).await;
    let live = Server::start(StatusCode::OK).await;
    let balancer = balancer(&[&failing.url, &live.url]);
    for method in [Method::GET, Method::POST] {
        assert_eq!(
            send(&balancer, method.clone()).await.unwrap(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method}"
        );
        // Round-robin moves on; the next call goes to the live one.
        assert_eq!(send(&balancer, method).await.unwrap(), StatusCode::OK);
    }
    assert_eq!(failing.count(), 2);
    assert_eq!(live.count(), 2);
    assert_eq!(balancer.in_rotation().len(), 2, "an answer ejects nothing");
}

#[tokio::test]
async fn a_timeout_is_not_sent_again_even_a_get() {
    let (silent, received) = unanswering(true).await;
    let live = Server::start(StatusCode::OK).await;
    let balancer = balancer(&[&silent, &live.url]);
    let http = client();
    let err = balancer
        .call(&Method::GET, |base| {
            http.get(format!("{base}/work"))
                .timeout(Duration::from_millis(200))
                .send()
        })
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(received.load(Ordering::SeqCst), 1);
    assert_eq!(live.count(), 0);
    assert_eq!(balancer.in_rotation().len(), 2, "slow is not dead");
}

#[tokio::test]
async fn the_readiness_check_takes_replicas_out_and_back() {
    let a = Server::start(StatusCode::OK).await;
    let b = Server::start(StatusCode::OK).await;
    let closed = closed_port().await;
    let balancer = balancer(&[&a.url, &b.url, &closed]);
    assert_eq!(balancer.in_rotation().len(), 3, "all in at the start");

    balancer.check_once().await;
    assert_eq!(balancer.in_rotation(), [a.url.as_str(), b.url.as_str()]);

    a.ready.store(false, Ordering::SeqCst);
    balancer.check_once().await;
    assert_eq!(balancer.in_rotation(), [b.url.as_str()]);
    for _ in 0..4 {
        assert_eq!(send(&balancer, Method::POST).await.unwrap(), StatusCode::OK);
    }
    assert_eq!((a.count(), b.count()), (0, 4), "only the ready one serves");

    a.ready.store(true, Ordering::SeqCst);
    balancer.check_once().await;
    assert_eq!(balancer.in_rotation(), [a.url.as_str(), b.url.as_str()]);
    for _ in 0..4 {
        send(&balancer, Method::GET).await.unwrap();
    }
    assert_eq!(
        (a.count(), b.count()),
        (2, 6),
        "round-robin over both again"
    );
}

#[tokio::test]
async fn the_checker_runs_on_its_period_until_shutdown() {
    let a = Server::start(StatusCode::OK).await;
    let b = Server::start(StatusCode::OK).await;
    let balancer = balancer(&[&a.url, &b.url]);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let checker = tokio::spawn({
        let balancer = balancer.clone();
        let shutdown = shutdown.clone();
        async move { balancer.check_until(shutdown).await }
    });
    b.ready.store(false, Ordering::SeqCst);
    while balancer.in_rotation().len() == 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(balancer.in_rotation(), [a.url.as_str()]);
    b.ready.store(true, Ordering::SeqCst);
    while balancer.in_rotation().len() == 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    checker.await.unwrap();
}
