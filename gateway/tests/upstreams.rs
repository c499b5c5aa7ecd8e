//! When services misbehave: down (503), slow (504), broken (502), and a live event stream
//! that must flow through as it comes and outlive the response deadline.

mod support;

use std::time::{Duration, Instant};

use studycafe_gateway::domain::Upstream;
use studycafe_testkit::free_port;
use support::{assert_problem, spawn_gateway_with};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn a_service_that_is_down_is_503_naming_it() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let gw = spawn_gateway_with(&[("GATEWAY_PAYMENT_URL", &nowhere)]).await;
    let token = gw.keys.customer("alice");

    let response = gw
        .get("/api/payments?reservationId=r-1", Some(&token))
        .await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(response.headers().contains_key("x-request-id"));
    let body = assert_problem(response, 503, "/problems/upstream-unavailable").await;
    assert!(
        body["detail"].as_str().unwrap().contains("payment"),
        "{body}"
    );
    assert_eq!(body["upstream"], "payment");

    // The others are unaffected, and the gateway stays ready.
    assert_eq!(gw.get("/api/seats", None).await.status(), 200);
    assert_eq!(gw.get("/health/ready", None).await.status(), 200);
    let metrics = gw.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_upstream_requests_total")
                && l.contains("upstream=\"payment\"")
                && l.contains("outcome=\"unavailable\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_service_is_504_at_the_deadline() {
    // The stub answers /slow after 30 s; the gateway waits 300 ms.
    let gw = spawn_gateway_with(&[("GATEWAY_UPSTREAM_TIMEOUT_MS", "300")]).await;
    let started = Instant::now();
    let response = gw.get("/api/seats/slow", None).await;
    let waited = started.elapsed();
    let body = assert_problem(response, 504, "/problems/upstream-timeout").await;
    assert!(body["detail"].as_str().unwrap().contains("seat"), "{body}");
    assert_eq!(gw.stub(Upstream::Seat).count(), 1, "it was sent");
    // Bounded by the gateway's deadline, not by the service.
    assert!(waited < Duration::from_secs(15), "waited {waited:?}");
    // The slow service does not hold up the next request.
    assert_eq!(gw.get("/api/seats", None).await.status(), 200);
}

#[tokio::test]
async fn a_service_answering_garbage_is_502() {
    // Accepts, reads the request, answers something that is not HTTP, hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(b"SPEAKING NONSENSE\r\n\r\n").await;
                let _ = socket.shutdown().await;
            });
        }
    });
    let broken = format!("http://{addr}");
    let gw = spawn_gateway_with(&[("GATEWAY_SEAT_VIEW_URL", &broken)]).await;
    let body = assert_problem(
        gw.get("/api/board", None).await,
        502,
        "/problems/bad-gateway",
    )
    .await;
    assert_eq!(body["upstream"], "seat-view");
}

#[tokio::test]
async fn the_board_stream_flows_through_as_it_comes_and_outlives_the_deadline() {
    // Events every 100 ms; the response deadline is 300 ms, which the stream must outlive.
    let mut gw = spawn_gateway_with(&[("GATEWAY_UPSTREAM_TIMEOUT_MS", "300")]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut response = client
        .get(gw.url("/api/board/stream"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("x-request-id"));

    // The stream never ends by itself, so getting to tick 15 (1.5 s in) shows both that
    // events arrive while it is still open and that no deadline cut it.
    let mut received = String::new();
    let mut chunks = 0;
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while !received.contains("data: tick 15\n") {
            let chunk = response
                .chunk()
                .await
                .expect("the stream stays healthy")
                .expect("the stream stays open");
            chunks += 1;
            received.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await;
    assert!(read.is_ok(), "stream stalled; got so far: {received}");
    assert!(chunks > 1, "the events came in one piece: {received}");
    for n in 0..=15 {
        assert!(
            received.contains(&format!("id: {n}\ndata: tick {n}\n\n")),
            "{received}"
        );
    }

    // At shutdown the stream ends (instead of holding the gateway for its grace period).
    gw.shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived the gateway's shutdown");
    gw.stop().await;
}
