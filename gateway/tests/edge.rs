//! The checks at the edge: tokens and roles, and per-client rate limits. Whatever the
//! gateway refuses never reaches a service (the stubs count their calls).

mod support;

use reqwest::Method;
use studycafe_gateway::domain::Upstream;
use support::{assert_problem, spawn_gateway, spawn_gateway_with};

const PROTECTED: [(Method, &str); 7] = [
    (Method::POST, "/api/reservations"),
    (Method::GET, "/api/reservations/r-1"),
    (Method::DELETE, "/api/reservations/r-1"),
    (Method::GET, "/api/my/reservations"),
    (Method::GET, "/api/admin/bookings"),
    (Method::POST, "/api/admin/bookings/r-1/confirm"),
    (Method::GET, "/api/payments?reservationId=r-1"),
];

#[tokio::test]
async fn protected_routes_without_a_token_are_401_and_not_forwarded() {
    let gw = spawn_gateway().await;
    for (method, path) in PROTECTED {
        let response = gw
            .http
            .request(method.clone(), gw.url(path))
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{method} {path}"
        );
        assert_problem(response, 401, "/problems/unauthorized").await;
    }
    // Another scheme is no bearer token either.
    let response = gw
        .http
        .get(gw.url("/api/my/reservations"))
        .basic_auth("alice", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "/problems/unauthorized").await;
    assert_eq!(gw.stubs.total(), 0);
}

#[tokio::test]
async fn bad_forged_and_expired_tokens_are_401_on_every_route() {
    let gw = spawn_gateway().await;
    let bad_tokens = [
        "not-a-jwt".to_owned(),
        gw.keys.forged("mallory"),
        // Signed with a key the gateway has never seen.
        studycafe_testkit::TestKeys::new().admin("mallory"),
        gw.extra_key.expired("alice", chrono::Duration::minutes(10)),
    ];
    for token in &bad_tokens {
        // Also on anonymous routes: a token that is shown must be good.
        for path in ["/api/seats", "/api/reservations/r-1", "/api/admin/bookings"] {
            let response = gw.get(path, Some(token)).await;
            assert_problem(response, 401, "/problems/unauthorized").await;
        }
    }
    assert_eq!(gw.stubs.total(), 0);
    // The same key, in date, is fine.
    let good = gw.extra_key.token("alice", &["customer"]);
    assert_eq!(
        gw.get("/api/my/reservations", Some(&good)).await.status(),
        200
    );
    assert_eq!(gw.stubs.total(), 1);
}

#[tokio::test]
async fn admin_routes_need_the_admin_role() {
    let gw = spawn_gateway().await;
    let customer = gw.keys.customer("alice");
    let service = gw.keys.token("seat-service", &["service"]);
    for token in [&customer, &service] {
        let response = gw
            .get("/api/admin/bookings?status=pending", Some(token))
            .await;
        assert_problem(response, 403, "/problems/forbidden").await;
    }
    assert_eq!(gw.stub(Upstream::Registration).count(), 0);

    let admin = gw.keys.admin("root");
    let response = gw
        .get("/api/admin/bookings?status=pending", Some(&admin))
        .await;
    assert_eq!(response.status(), 200);
    let seen = gw.stub(Upstream::Registration).last();
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {admin}").as_str()
    );
    // A customer is a caller: customer routes pass.
    assert_eq!(
        gw.get("/api/reservations/r-1", Some(&customer))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn anonymous_routes_pass_without_a_token_and_other_schemes_reach_identity() {
    let gw = spawn_gateway().await;
    for (path, upstream) in [
        ("/api/seats", Upstream::Seat),
        ("/api/board", Upstream::SeatView),
        ("/.well-known/jwks.json", Upstream::Identity),
    ] {
        assert_eq!(gw.get(path, None).await.status(), 200, "{path}");
        assert_eq!(gw.stub(upstream).count(), 1, "{path}");
    }
    let response = gw
        .http
        .post(gw.url("/api/users"))
        .json(&serde_json::json!({"username": "bob", "password": "pw", "displayName": "Bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // OAuth2 client credentials in a Basic header are identity's to check.
    let response = gw
        .http
        .post(gw.url("/auth/token"))
        .basic_auth("seat-service", Some("s3cret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = gw.stub(Upstream::Identity).last();
    assert!(
        seen.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(
        String::from_utf8(seen.body).unwrap(),
        "grant_type=client_credentials"
    );
}

#[tokio::test]
async fn a_client_over_its_burst_gets_429_and_others_are_unaffected() {
    // 5 at once, then one every 10 s: the test is over long before a token comes back.
    let gw = spawn_gateway_with(&[
        ("GATEWAY_RATE_LIMIT_BURST", "5"),
        ("GATEWAY_RATE_LIMIT_PER_SEC", "0.1"),
    ])
    .await;
    let alice = gw.keys.customer("alice");
    let bob = gw.keys.customer("bob");

    for i in 0..5 {
        assert_eq!(
            gw.get("/api/seats", Some(&alice)).await.status(),
            200,
            "request {i}"
        );
    }
    let response = gw.get("/api/seats", Some(&alice)).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "Retry-After {retry_after}");
    assert_problem(response, 429, "/problems/rate-limited").await;
    assert_eq!(
        gw.stub(Upstream::Seat).count(),
        5,
        "the 6th was not forwarded"
    );

    // Bob (another subject, same address) has his own bucket, and so do anonymous
    // callers from this address.
    assert_eq!(gw.get("/api/seats", Some(&bob)).await.status(), 200);
    for _ in 0..5 {
        assert_eq!(gw.get("/api/board", None).await.status(), 200);
    }
    assert_problem(
        gw.get("/api/board", None).await,
        429,
        "/problems/rate-limited",
    )
    .await;

    // Alice is limited by subject, whatever the route.
    assert_problem(
        gw.get("/api/my/reservations", Some(&alice)).await,
        429,
        "/problems/rate-limited",
    )
    .await;

    // The gateway's own endpoints are never limited.
    for _ in 0..10 {
        assert_eq!(gw.get("/health/ready", None).await.status(), 200);
    }
}

#[tokio::test]
async fn bad_tokens_count_against_the_address() {
    let gw = spawn_gateway_with(&[
        ("GATEWAY_RATE_LIMIT_BURST", "3"),
        ("GATEWAY_RATE_LIMIT_PER_SEC", "0.1"),
    ])
    .await;
    for _ in 0..3 {
        assert_problem(
            gw.get("/api/seats", Some("garbage")).await,
            401,
            "/problems/unauthorized",
        )
        .await;
    }
    // The address's bucket is empty now: guessing on is refused before any verification.
    assert_problem(
        gw.get("/api/seats", Some("garbage")).await,
        429,
        "/problems/rate-limited",
    )
    .await;
    assert_problem(
        gw.get("/api/seats", None).await,
        429,
        "/problems/rate-limited",
    )
    .await;
    // A real token is its own client.
    let alice = gw.keys.customer("alice");
    assert_eq!(gw.get("/api/seats", Some(&alice)).await.status(), 200);
}
