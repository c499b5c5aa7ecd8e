//! Several replicas of one service behind the gateway (`GATEWAY_SEAT_URL` with two URLs):
//! round-robin while both run, the survivor answering everything when one is stopped, the
//! stopped one back in rotation once its readiness check passes again, and the retry rule seen
//! from a client: a request that could not be sent is sent elsewhere, a POST that reached a
//! replica which then failed is not sent again. And the listener shared with `SO_REUSEPORT`, so
//! a second gateway can take over the port.

mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::to_bytes,
    extract::{Request, State},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
};
use studycafe_gateway::{App, GatewayConfig, domain::Upstream};
use studycafe_platform::config::Env;
use support::{assert_problem, spawn_gateway_with};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// A stand-in seat replica: answers every request 200 naming itself (`x-replica`) and counts
/// them; `/health/ready` answers 200 and is not counted. Stops like a service does on SIGTERM
/// (graceful shutdown: the port closes, idle connections close), and starts again on the
/// same port.
struct Replica {
    name: &'static str,
    addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Replica {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut replica = Self {
            name,
            addr: listener.local_addr().unwrap(),
            received: Arc::default(),
            running: None,
        };
        replica.serve(listener);
        replica
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .route("/health/ready", get(|| async { StatusCode::OK }))
            .fallback(record)
            .with_state((self.name, self.received.clone()));
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(signal.cancelled_owned())
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns once the port is closed and every connection has ended.
    async fn stop(&mut self) {
        let (stop, task) = self.running.take().expect("running");
        stop.cancel();
        task.await.unwrap();
    }

    async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// "METHOD path" of every request received, in order.
    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

async fn record(
    State((name, received)): State<(&'static str, Arc<Mutex<Vec<String>>>)>,
    request: Request,
) -> impl IntoResponse {
    let line = format!("{} {}", request.method(), request.uri().path());
    // The whole body is read before it counts: the request has fully arrived.
    to_bytes(request.into_body(), usize::MAX).await.unwrap();
    received.lock().unwrap().push(line);
    ([("x-replica", name)], "{}")
}

/// A replica that crashes on work: `/health/ready` answers 200 (it looks healthy to the
/// gateway's checks), any other request is read whole, counted, and the connection closed
/// without an answer, as when a process dies half-way through a request.
async fn crashing_replica() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(crash_on_work(socket, counter.clone()));
        }
    });
    (url, received)
}

async fn crash_on_work(mut socket: TcpStream, received: Arc<AtomicUsize>) {
    loop {
        let Some(head) = read_request(&mut socket).await else {
            return;
        };
        if head.starts_with("GET /health/ready ") {
            let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            if socket.write_all(ok.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        received.fetch_add(1, Ordering::SeqCst);
        return; // dropping the socket closes the connection, no answer sent
    }
}

/// Reads one request (head and a `content-length` body); its head, or `None` at the end.
async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buffer[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < end + length {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buffer[..n]),
        }
    }
    Some(head)
}

const RESERVE: &str = r#"{"seatId":"A-01"}"#;

#[tokio::test]
async fn with_one_of_two_seat_replicas_stopped_the_other_answers_every_request() {
    let mut one = Replica::start("seat-1").await;
    let two = Replica::start("seat-2").await;
    let seat = format!("{},{}", one.url(), two.url());
    let gw = spawn_gateway_with(&[
        ("GATEWAY_SEAT_URL", &seat),
        ("GATEWAY_CHECK_PERIOD_MS", "100"),
    ])
    .await;
    let token = gw.keys.customer("alice");
    let reserve = || {
        gw.http
            .post(gw.url("/api/reservations"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(RESERVE)
            .send()
    };

    // Both running: turn and turn about.
    for _ in 0..5 {
        assert_eq!(gw.get("/api/seats", None).await.status(), 200);
        assert_eq!(reserve().await.unwrap().status(), 200);
    }
    assert_eq!(one.received().len(), 5, "{:?}", one.received());
    assert_eq!(two.received().len(), 5, "{:?}", two.received());

    // One stopped: every request, reads and writes, is answered, by the other, once.
    one.stop().await;
    let mut answered_by = Vec::new();
    for _ in 0..10 {
        let reserved = reserve().await.unwrap();
        assert_eq!(reserved.status(), 200, "a POST while seat-1 is down");
        answered_by.push(reserved.headers()["x-replica"].to_str().unwrap().to_owned());
        let read = gw.get("/api/seats", None).await;
        assert_eq!(read.status(), 200, "a GET while seat-1 is down");
        answered_by.push(read.headers()["x-replica"].to_str().unwrap().to_owned());
    }
    assert!(answered_by.iter().all(|r| r == "seat-2"), "{answered_by:?}");
    assert_eq!(one.received().len(), 5);
    let posts = |r: &Replica| {
        r.received()
            .iter()
            .filter(|l| l.starts_with("POST"))
            .count()
    };
    assert_eq!(posts(&two), 5 + 10, "each POST arrived exactly once");

    // Started again on its port: the readiness check puts it back in rotation.
    one.restart().await;
    let mut served_again = false;
    for _ in 0..600 {
        let read = gw.get("/api/seats", None).await;
        assert_eq!(read.status(), 200);
        if read.headers()["x-replica"] == "seat-1" {
            served_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served_again, "seat-1 never came back into rotation");
}

#[tokio::test]
async fn a_post_that_reached_a_replica_which_then_failed_is_not_sent_again() {
    let (crashing, crashed_on) = crashing_replica().await;
    let live = Replica::start("seat-2").await;
    // The crashing replica first: the first request goes to it.
    let seat = format!("{crashing},{}", live.url());
    let gw = spawn_gateway_with(&[("GATEWAY_SEAT_URL", &seat)]).await;
    let token = gw.keys.customer("alice");

    let response = gw
        .http
        .post(gw.url("/api/reservations"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(RESERVE)
        .send()
        .await
        .unwrap();
    // It may have been taken: the client is told the gateway lost the answer, and the other
    // replica never sees the request.
    let body = assert_problem(response, 502, "/problems/bad-gateway").await;
    assert_eq!(body["upstream"], "seat");
    assert_eq!(crashed_on.load(Ordering::SeqCst), 1);
    assert_eq!(live.received(), Vec::<String>::new(), "the POST was resent");

    // Reads go on being answered, by the live one (the crashed replica is out of rotation
    // until its next passing check; a GET that meets it again is retried on the live one).
    for _ in 0..3 {
        let read = gw.get("/api/seats", None).await;
        assert_eq!(read.status(), 200);
        assert_eq!(read.headers()["x-replica"], "seat-2");
    }
    assert_eq!(live.received(), ["GET /api/seats"; 3]);
}

#[tokio::test]
async fn a_get_that_lost_its_connection_is_sent_once_more_to_the_other_replica() {
    let (crashing, crashed_on) = crashing_replica().await;
    let live = Replica::start("seat-2").await;
    let seat = format!("{crashing},{}", live.url());
    let gw = spawn_gateway_with(&[("GATEWAY_SEAT_URL", &seat)]).await;

    let read = gw.get("/api/seats/A-01", None).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["x-replica"], "seat-2");
    assert_eq!(crashed_on.load(Ordering::SeqCst), 1);
    assert_eq!(live.received(), ["GET /api/seats/A-01"]);
}

#[tokio::test]
async fn a_second_gateway_binds_the_same_port_and_serves_once_the_first_stops() {
    let mut first = spawn_gateway_with(&[]).await;
    let addr = first.base.trim_start_matches("http://").to_owned();
    // The second one, on the same port (GATEWAY_REUSE_PORT is on by default in both).
    let second = spawn_gateway_with(&[("GATEWAY_HTTP_ADDR", &addr)]).await;
    assert_eq!(second.base, first.base);

    first.stop().await;
    for _ in 0..10 {
        assert_eq!(second.get("/api/seats", None).await.status(), 200);
    }
    assert_eq!(second.stub(Upstream::Seat).count(), 10);
    assert_eq!(first.stub(Upstream::Seat).count(), 0);
}

#[tokio::test]
async fn without_reuse_port_a_second_gateway_cannot_bind_a_taken_port() {
    let first = spawn_gateway_with(&[]).await;
    let addr = first.base.trim_start_matches("http://").to_owned();
    let config = GatewayConfig::from_env(&Env::from_pairs([
        ("GATEWAY_HTTP_ADDR", addr.as_str()),
        ("GATEWAY_REUSE_PORT", "false"),
        ("AUTH_JWKS_URL", "http://127.0.0.1:1/jwks.json"),
    ]))
    .unwrap();
    let err = App::build(config, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("GATEWAY_HTTP_ADDR"), "{err:#}");
    assert_eq!(first.get("/api/seats", None).await.status(), 200);
}
