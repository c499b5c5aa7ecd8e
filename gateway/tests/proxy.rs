//! Routing and forwarding: every public prefix reaches its service with method, path,
//! query, headers and body intact; the answer comes back as the service gave it; what is not
//! routed never reaches a service; the static web root serves the rest.

mod support;

use reqwest::Method;
use serde_json::Value;
use studycafe_gateway::domain::Upstream;
use support::{assert_problem, spawn_gateway, write_web_file};

#[tokio::test]
async fn each_prefix_reaches_its_service_with_method_path_query_and_body() {
    let gw = spawn_gateway().await;
    let customer = gw.keys.customer("alice");
    let admin = gw.keys.admin("root");
    let cases: [(Method, &str, Option<&str>, Upstream); 15] = [
        (Method::POST, "/auth/token", None, Upstream::Identity),
        (
            Method::GET,
            "/.well-known/jwks.json",
            None,
            Upstream::Identity,
        ),
        (Method::POST, "/api/users", None, Upstream::Identity),
        (
            Method::GET,
            "/api/seats?zone=A&kind=desk",
            None,
            Upstream::Seat,
        ),
        (
            Method::POST,
            "/api/reservations",
            Some(&customer),
            Upstream::Seat,
        ),
        (
            Method::GET,
            "/api/reservations/0198c0de",
            Some(&customer),
            Upstream::Seat,
        ),
        (
            Method::DELETE,
            "/api/reservations/0198c0de",
            Some(&customer),
            Upstream::Seat,
        ),
        (
            Method::GET,
            "/api/board?at=2030-01-01T10:00:00Z",
            None,
            Upstream::SeatView,
        ),
        (
            Method::GET,
            "/api/my/reservations",
            Some(&customer),
            Upstream::SeatView,
        ),
        (
            Method::GET,
            "/api/admin/bookings?status=pending",
            Some(&admin),
            Upstream::Registration,
        ),
        (
            Method::POST,
            "/api/admin/bookings/r-1/confirm",
            Some(&admin),
            Upstream::Registration,
        ),
        (
            Method::GET,
            "/api/payments?reservationId=r-1",
            Some(&customer),
            Upstream::Payment,
        ),
        (Method::PUT, "/api/seats/A-01", None, Upstream::Seat),
        (
            Method::GET,
            "/api/notifications?limit=5&lang=en",
            Some(&customer),
            Upstream::Notification,
        ),
        (
            Method::PUT,
            "/api/notifications/read-marker",
            Some(&customer),
            Upstream::Notification,
        ),
    ];
    for (i, (method, path, token, upstream)) in cases.into_iter().enumerate() {
        let body = format!("{{\"case\":{i}}}");
        let mut request = gw
            .http
            .request(method.clone(), gw.url(path))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
        assert_eq!(response.headers()["x-upstream"], upstream.name(), "{path}");
        let echo: Value = response.json().await.unwrap();
        assert_eq!(echo["pathAndQuery"], path);

        let seen = gw.stub(upstream).last();
        assert_eq!(seen.method, method.as_str(), "{path}");
        assert_eq!(seen.path_and_query, path);
        assert_eq!(String::from_utf8(seen.body).unwrap(), body);
        assert_eq!(seen.headers["content-type"], "application/json");
        if let Some(token) = token {
            // Forwarded unchanged: the service verifies it again.
            assert_eq!(
                seen.headers["authorization"],
                format!("Bearer {token}").as_str()
            );
        }
    }
    // Each request went to exactly one service.
    assert_eq!(gw.stubs.total(), 15);
}

#[tokio::test]
async fn request_id_and_trace_context_travel_upstream_and_the_id_comes_back() {
    let gw = spawn_gateway().await;

    let response = gw
        .http
        .get(gw.url("/api/seats"))
        .header("x-request-id", "req-from-client-42")
        // A client's trace context is not trusted: the gateway starts the trace.
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-from-client-42");
    let seen = gw.stub(Upstream::Seat).last();
    assert_eq!(seen.headers["x-request-id"], "req-from-client-42");
    let traceparent = seen.headers["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1].len(), 32);
    assert_eq!(parts[2].len(), 16);
    assert_ne!(parts[1], "0af7651916cd43dd8448eb211c80319c");
    assert_ne!(parts[1], "0".repeat(32));

    // Without a client id the gateway makes one, sends it on and returns it.
    let response = gw.get("/api/seats", None).await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty());
    let seen = gw.stub(Upstream::Seat).last();
    assert_eq!(seen.headers["x-request-id"], id.as_str());
    assert!(seen.headers.contains_key("traceparent"));
    // Two requests, two traces.
    assert_ne!(seen.headers["traceparent"], traceparent.as_str());
}

#[tokio::test]
async fn forwarded_headers_are_added_and_hop_by_hop_headers_stripped_both_ways() {
    let gw = spawn_gateway().await;
    let response = gw
        .http
        .get(gw.url("/api/board"))
        .header("connection", "keep-alive, x-private")
        .header("x-private", "for the gateway only")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("te", "trailers")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The stub's hop-by-hop answer headers stay behind; its own headers come through.
    assert!(!response.headers().contains_key("proxy-authenticate"));
    assert!(!response.headers().contains_key("keep-alive"));
    assert_eq!(response.headers()["x-upstream"], "seat-view");

    let seen = gw.stub(Upstream::SeatView).last();
    for gone in ["x-private", "keep-alive", "proxy-authorization", "te"] {
        assert!(!seen.headers.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(seen.headers["x-custom"], "kept");
    // The client's own claim is dropped (no trusted proxies here; see tests/client.rs).
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    let host = gw.base.trim_start_matches("http://");
    assert_eq!(seen.headers["x-forwarded-host"], host);
    // The upstream connection's own Host, not the client's.
    assert_eq!(
        seen.headers["host"],
        gw.stub(Upstream::SeatView).addr.to_string().as_str()
    );
}

#[tokio::test]
async fn upstream_answers_pass_through_with_their_status() {
    let gw = spawn_gateway().await;
    let response = gw.get("/api/seats/missing", None).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-upstream"], "seat");
}

#[tokio::test]
async fn internal_and_unknown_paths_never_reach_a_service() {
    let gw = spawn_gateway().await;
    let admin = gw.keys.admin("root");
    for path in ["/internal/x", "/internal/payments/r-1", "/internal"] {
        let body =
            assert_problem(gw.get(path, Some(&admin)).await, 404, "/problems/not-found").await;
        assert!(body["detail"].as_str().unwrap().contains(path), "{body}");
    }
    assert_problem(
        gw.get("/api/nothing-here", None).await,
        404,
        "/problems/not-found",
    )
    .await;
    assert_problem(
        gw.get("/api/seatsx", None).await,
        404,
        "/problems/not-found",
    )
    .await;
    // Dot segments could climb out of a routed prefix on a service that resolves them.
    // (Sent raw: an HTTP client library resolves them before sending.)
    for path in [
        "/api/seats/../../internal/x",
        "/api/seats/%2e%2e/%2E%2E/internal/x",
    ] {
        let head = raw_get(&gw.base, path).await;
        assert!(head.starts_with("http/1.1 400"), "{path}: {head}");
        assert!(head.contains("application/problem+json"), "{head}");
    }
    assert_eq!(gw.stubs.total(), 0);
}

#[tokio::test]
async fn bodies_up_to_one_mebibyte_pass_and_bigger_ones_are_refused_unsent() {
    let gw = spawn_gateway().await;
    let token = gw.keys.customer("alice");

    let exactly = "x".repeat(1024 * 1024);
    let response = gw
        .http
        .post(gw.url("/api/reservations"))
        .bearer_auth(&token)
        .body(exactly.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(gw.stub(Upstream::Seat).last().body.len(), exactly.len());

    let too_big = "x".repeat(1024 * 1024 + 1);
    let response = gw
        .http
        .post(gw.url("/api/reservations"))
        .bearer_auth(&token)
        .body(too_big.clone())
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "/problems/payload-too-large").await;

    // Chunked, with no Content-Length to refuse it by: the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..17).map(|_| Ok(vec![b'y'; 64 * 1024])).collect();
    let response = gw
        .http
        .post(gw.url("/api/reservations"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "/problems/payload-too-large").await;
    assert_eq!(
        gw.stub(Upstream::Seat).count(),
        1,
        "only the first was sent"
    );
}

#[tokio::test]
async fn the_static_web_root_serves_everything_else() {
    let gw = spawn_gateway().await;
    write_web_file(&gw.web_root, "index.html", "<h1>studycafe</h1>");
    write_web_file(&gw.web_root, "js/app.js", "console.log('hi');");

    let response = gw.get("/", None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(response.text().await.unwrap(), "<h1>studycafe</h1>");
    let response = gw.get("/js/app.js", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "console.log('hi');");

    assert_problem(gw.get("/nope.css", None).await, 404, "/problems/not-found").await;
    let response = gw.http.post(gw.url("/index.html")).send().await.unwrap();
    assert_problem(response, 405, "/problems/method-not-allowed").await;
    assert_eq!(gw.stubs.total(), 0);
}

#[tokio::test]
async fn a_missing_web_root_is_404_not_an_error() {
    let gw =
        support::spawn_gateway_with(&[("GATEWAY_WEB_ROOT", "/nonexistent/studycafe/web")]).await;
    assert_problem(gw.get("/", None).await, 404, "/problems/not-found").await;
    assert_problem(
        gw.get("/index.html", None).await,
        404,
        "/problems/not-found",
    )
    .await;
    // The API is unaffected.
    assert_eq!(gw.get("/api/seats", None).await.status(), 200);
}

#[tokio::test]
async fn ops_endpoints_are_the_gateways_own() {
    let mut gw = spawn_gateway().await;
    gw.get("/api/seats", None).await;
    assert_eq!(gw.get("/health/live", None).await.status(), 200);
    let ready = gw.get("/health/ready", None).await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    let metrics = gw.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_upstream_requests_total")
                && l.contains("upstream=\"seat\"")
                && l.contains("outcome=\"ok\"")),
        "{metrics}"
    );
    // Proxied requests are labelled by their route prefix, never by the raw path.
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total") && l.contains("route=\"/api/seats\"")),
        "{metrics}"
    );
    assert_eq!(gw.stubs.total(), 1);
    gw.stop().await;
}

/// A GET with `path` exactly as given; returns the answer's head, lowercased.
async fn raw_get(base: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_body_gets_408_and_nothing_is_sent() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gw = support::spawn_gateway_with(&[("GATEWAY_UPSTREAM_TIMEOUT_MS", "300")]).await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/users HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{{\"user"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The rest never comes; the gateway answers anyway.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        socket.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the gateway waited for the body forever");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(answer.contains("/problems/request-timeout"), "{answer}");
    assert_eq!(gw.stubs.total(), 0);
}
