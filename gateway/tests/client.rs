//! Who the client is (`X-Forwarded-For` only from trusted proxies) and who may call from
//! another web origin (CORS), through a real gateway in front of stub services.

mod support;

use studycafe_gateway::domain::Upstream;
use support::{assert_problem, spawn_gateway_with};

/// Two requests at once per address, then one every 10 s: the test is over long before a
/// token comes back.
const TIGHT: [(&str, &str); 2] = [
    ("GATEWAY_RATE_LIMIT_BURST", "2"),
    ("GATEWAY_RATE_LIMIT_PER_SEC", "0.1"),
];

async fn board_as(gw: &support::TestGateway, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = gw.http.get(gw.url("/api/board"));
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_neither_escapes_the_limit_nor_reaches_a_service() {
    let gw = spawn_gateway_with(&TIGHT).await;
    // A new made-up address on each request: still one client, the peer.
    for i in 0..2 {
        let response = board_as(&gw, Some(&format!("203.0.113.{i}"))).await;
        assert_eq!(response.status(), 200, "request {i}");
    }
    assert_problem(
        board_as(&gw, Some("203.0.113.99")).await,
        429,
        "/problems/rate-limited",
    )
    .await;
    // The service hears the peer only, never the client's claim.
    let seen = gw.stub(Upstream::SeatView).last();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let mut vars = TIGHT.to_vec();
    vars.push(("GATEWAY_TRUSTED_PROXIES", "127.0.0.0/8, 10.0.0.0/8"));
    let gw = spawn_gateway_with(&vars).await;

    for _ in 0..2 {
        assert_eq!(board_as(&gw, Some("203.0.113.1")).await.status(), 200);
    }
    assert_problem(
        board_as(&gw, Some("203.0.113.1")).await,
        429,
        "/problems/rate-limited",
    )
    .await;
    // What the client itself prepended is ignored: the proxy's entry (the rightmost one not a
    // trusted proxy) is who it is, so this is still the exhausted 203.0.113.1.
    assert_problem(
        board_as(&gw, Some("198.51.100.77, 203.0.113.1, 10.0.0.5")).await,
        429,
        "/problems/rate-limited",
    )
    .await;
    // Another client behind the same proxy has a bucket of its own.
    assert_eq!(board_as(&gw, Some("203.0.113.2")).await.status(), 200);
    let seen = gw.stub(Upstream::SeatView).last();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.2, 127.0.0.1");
    // And the proxy's own requests (no header) are the proxy's.
    assert_eq!(board_as(&gw, None).await.status(), 200);
    assert_eq!(
        gw.stub(Upstream::SeatView).last().headers["x-forwarded-for"],
        "127.0.0.1"
    );
}

#[tokio::test]
async fn a_proxy_that_is_not_trusted_is_just_a_client() {
    let mut vars = TIGHT.to_vec();
    vars.push(("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8"));
    let gw = spawn_gateway_with(&vars).await;
    for i in 0..2 {
        assert_eq!(
            board_as(&gw, Some(&format!("203.0.113.{i}")))
                .await
                .status(),
            200
        );
    }
    assert_problem(
        board_as(&gw, Some("203.0.113.9")).await,
        429,
        "/problems/rate-limited",
    )
    .await;
}

const WEB_APP: &str = "https://cafe.example";

#[tokio::test]
async fn by_default_no_other_origin_may_read_or_preflight() {
    let gw = spawn_gateway_with(&[]).await;
    let response = gw
        .http
        .get(gw.url("/api/seats"))
        .header("origin", WEB_APP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let preflight = gw
        .http
        .request(reqwest::Method::OPTIONS, gw.url("/api/reservations"))
        .header("origin", WEB_APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(
        !preflight
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert_problem(preflight, 403, "/problems/cors-refused").await;
    assert_eq!(
        gw.stub(Upstream::Seat).count(),
        1,
        "the preflight was not forwarded"
    );
}

#[tokio::test]
async fn the_web_apps_origin_may_call_and_read_and_no_other() {
    let gw = spawn_gateway_with(&[(
        "GATEWAY_CORS_ORIGINS",
        "https://cafe.example, http://localhost:5173",
    )])
    .await;

    let preflight = gw
        .http
        .request(reqwest::Method::OPTIONS, gw.url("/api/reservations"))
        .header("origin", WEB_APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], WEB_APP);
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("idempotency-key")
    );
    assert_eq!(headers["vary"], "origin");
    assert!(!headers.contains_key("access-control-allow-credentials"));
    assert_eq!(gw.stubs.total(), 0, "preflights are the gateway's");

    // The real request: readable, with the headers the app needs exposed; refusals too.
    let alice = gw.keys.customer("alice");
    let response = gw
        .http
        .get(gw.url("/api/reservations/r-1"))
        .bearer_auth(&alice)
        .header("origin", WEB_APP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], WEB_APP);
    assert!(
        response.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("location")
    );
    let refused = gw
        .http
        .get(gw.url("/api/my/reservations"))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_problem(refused, 401, "/problems/unauthorized").await;

    // Any other origin: no preflight, no read, and never a wildcard.
    for origin in ["https://evil.example", "https://cafe.example.evil", "null"] {
        let preflight = gw
            .http
            .request(reqwest::Method::OPTIONS, gw.url("/api/reservations"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(
            !preflight
                .headers()
                .contains_key("access-control-allow-origin"),
            "{origin}"
        );
        assert_problem(preflight, 403, "/problems/cors-refused").await;
        let response = gw
            .http
            .get(gw.url("/api/seats"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin"),
            "{origin}"
        );
        assert_eq!(response.headers()["vary"], "origin");
    }
    // Methods and headers outside the API's are refused even for the web app.
    for (method, headers) in [("PATCH", "content-type"), ("POST", "x-admin-override")] {
        let preflight = gw
            .http
            .request(reqwest::Method::OPTIONS, gw.url("/api/reservations"))
            .header("origin", WEB_APP)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
            .await
            .unwrap();
        assert_problem(preflight, 403, "/problems/cors-refused").await;
    }
}
