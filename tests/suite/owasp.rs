//! The OWASP API Security Top 10 (2023), attacked through the gateway of the whole suite the
//! way an attacker who read the API would: each test is named after the risk it covers
//! (API1 broken object-level authorisation, API2 broken authentication, API3 broken
//! object-property-level authorisation: mass assignment and excessive data exposure, API4
//! unrestricted resource consumption, API5 broken function-level authorisation).
//!
//! The routes with an id, from the gateway's route table (`gateway/src/domain/routes.rs`) and
//! the services' routers: `GET|DELETE /api/reservations/{id}` (seat), `GET /api/payments?
//! reservationId=` (payment), `GET /api/admin/bookings/{id}` and `POST …/{id}/confirm|reject`
//! (registration, admin only), and the caller-scoped lists `GET /api/my/reservations`
//! (seat-view) and `GET /api/notifications` (notification), whose "id" is the token's subject.
//! The service-only route is payment's `POST /internal/payments`.
//!
//! Runs on the embedded stack and, with `STUDYCAFE_E2E_STACK=production`, on the production one.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use studycafe_e2e::{
    WAIT,
    stack::{Stack, StackOptions, User, Window},
};
use studycafe_platform::signing::{AccessClaims, SigningKey};
use studycafe_testkit::within;

/// A raw request through the gateway: status, content type and body as text.
async fn call(
    stack: &Stack,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String, String) {
    let mut request = stack.http.request(method, stack.api(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        content_type,
        response.text().await.unwrap_or_default(),
    )
}

/// Asserts a refusal with `status` as problem+json that tells nothing of `secrets`.
fn assert_refused(
    what: &str,
    (status, content_type, body): &(StatusCode, String, String),
    want: u16,
    secrets: &[&str],
) {
    assert_eq!(status.as_u16(), want, "{what}: {body}");
    assert_eq!(content_type, "application/problem+json", "{what}: {body}");
    for secret in secrets {
        assert!(!body.contains(secret), "{what} leaked {secret:?}: {body}");
    }
}

/// A reservation of `user`'s, taken through the whole saga to REGISTERED (so there is a
/// booking, a payment and a registration to go after).
async fn registered_reservation(
    stack: &Stack,
    user: &User,
    seat: &str,
    hours_ahead: i64,
) -> String {
    let window = Window::ahead(hours_ahead, 2);
    let id = stack.reserve_ok(user, seat, &window, "tok_approve").await;
    wait_for_booking(stack, &id).await;
    let (status, body) = stack.confirm(&id).await;
    assert_eq!(status, 200, "confirm: {body}");
    stack.wait_for_status(&id, "REGISTERED").await;
    id
}

/// Until registration has turned the reservation into a pending booking.
async fn wait_for_booking(stack: &Stack, id: &str) {
    let path = format!("/api/admin/bookings/{id}");
    let found = within(WAIT, || async {
        let (status, _) = stack.get(&stack.admin, &path).await;
        (status == 200).then_some(())
    })
    .await;
    assert!(found.is_some(), "no booking for {id}:\n{}", stack.logs());
}

#[tokio::test]
async fn api1_broken_object_level_authorisation_another_customers_reservation_booking_and_payment()
{
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.customer("alice").await;
    let mallory = stack.customer("mallory").await;
    let id = registered_reservation(&stack, &alice, "A-01", 30).await;
    let secrets = [alice.id.as_str(), alice.username.as_str()];

    // Every route with an id, with Mallory's valid token and Alice's reservation id.
    let reservation = format!("/api/reservations/{id}");
    for (method, path) in [
        (Method::GET, reservation.clone()),
        (Method::DELETE, reservation.clone()),
        (Method::GET, format!("/api/payments?reservationId={id}")),
    ] {
        let answer = call(&stack, method.clone(), &path, Some(&mallory.token), None).await;
        assert_refused(&format!("{method} {path}"), &answer, 403, &secrets);
    }
    for (method, path) in [
        (Method::GET, format!("/api/admin/bookings/{id}")),
        (Method::POST, format!("/api/admin/bookings/{id}/confirm")),
        (Method::POST, format!("/api/admin/bookings/{id}/reject")),
    ] {
        let body = (method == Method::POST).then(|| json!({"reason": "mine now"}));
        let answer = call(&stack, method.clone(), &path, Some(&mallory.token), body).await;
        assert_refused(&format!("{method} {path}"), &answer, 403, &secrets);
    }
    // Nothing changed: the reservation is still Alice's, registered, and paid once.
    assert_eq!(stack.status(&id).await, "REGISTERED");
    let (status, payments) = stack
        .get(&alice, &format!("/api/payments?reservationId={id}"))
        .await;
    assert_eq!(status, 200, "{payments}");
    assert_eq!(payments["payments"].as_array().map(Vec::len), Some(1));
    assert_eq!(payments["payments"][0]["status"], "COMPLETED", "{payments}");
    assert!(
        payments["payments"][0]["refunds"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{payments}"
    );

    // Caller-scoped lists take the caller from the token, whatever the query claims.
    for path in [
        "/api/my/reservations".to_owned(),
        format!("/api/my/reservations?customerId={}", alice.id),
    ] {
        let (status, body) = stack.get(&mallory, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["reservations"], json!([]), "{path}: {body}");
    }
    // While Alice sees hers (so the empty list above is not an empty view).
    let (_, mine) = stack.get(&alice, "/api/my/reservations").await;
    assert_eq!(
        mine["reservations"][0]["reservationId"],
        id.as_str(),
        "{mine}"
    );

    // Guessing ids is no better than knowing one: unknown ids are 404 for everyone alike,
    // malformed ones never reach a store.
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = stack
        .get(&mallory, &format!("/api/reservations/{unknown}"))
        .await;
    assert_eq!(status, 404, "{body}");
    for path in [
        "/api/reservations/%27%20OR%201=1--",
        "/api/payments?reservationId=*",
    ] {
        let (status, _, body) = call(&stack, Method::GET, path, Some(&mallory.token), None).await;
        assert!(status.is_client_error(), "{path}: {status} {body}");
    }
}

#[tokio::test]
async fn api1_broken_object_level_authorisation_another_customers_notifications() {
    let stack = Stack::start(StackOptions {
        notification: true,
        ..StackOptions::default()
    })
    .await;
    stack.auto_confirm(true).await;
    let alice = stack.customer("alice").await;
    let mallory = stack.customer("mallory").await;
    let id = stack
        .reserve_ok(&alice, "A-02", &Window::ahead(31, 1), "tok_approve")
        .await;
    stack.wait_for_status(&id, "REGISTERED").await;
    // Alice hears about it (so Mallory's silence below is not a service that heard nothing).
    let heard = within(WAIT, || async {
        let (status, body) = stack.get(&alice, "/api/notifications").await;
        (status == 200 && body.to_string().contains(&id)).then_some(body)
    })
    .await;
    assert!(heard.is_some(), "Alice was never told:\n{}", stack.logs());

    for path in [
        "/api/notifications".to_owned(),
        format!("/api/notifications?customerId={}", alice.id),
        format!("/api/notifications?customer={}&limit=200", alice.id),
    ] {
        let (status, body) = stack.get(&mallory, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["notifications"], json!([]), "{path}: {body}");
        assert_eq!(body["customerId"], mallory.id.as_str(), "{path}: {body}");
        assert!(!body.to_string().contains(&id), "{path}: {body}");
    }
    // Nor can Mallory move Alice's read marker: the marker is the caller's.
    let answer = call(
        &stack,
        Method::PUT,
        "/api/notifications/read-marker",
        Some(&mallory.token),
        Some(json!({"seq": 1, "customerId": alice.id})),
    )
    .await;
    assert!(
        answer.0.is_success() || answer.0.is_client_error(),
        "{answer:?}"
    );
    let (_, body) = stack.get(&alice, "/api/notifications").await;
    assert_eq!(body["readUpTo"], 0, "{body}");
}

#[tokio::test]
async fn api5_broken_function_level_authorisation_customers_on_admin_and_service_routes() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.customer("alice").await;
    let id = stack
        .reserve_ok(&alice, "A-03", &Window::ahead(32, 1), "tok_approve")
        .await;
    wait_for_booking(&stack, &id).await;

    // Every admin route, with a customer's token: 403, at the gateway and again at the
    // service itself (a request that slipped past the gateway gets no further).
    let admin_routes = [
        (Method::GET, "/api/admin/bookings".to_owned(), None),
        (
            Method::GET,
            "/api/admin/bookings?status=pending".to_owned(),
            None,
        ),
        (Method::GET, format!("/api/admin/bookings/{id}"), None),
        (
            Method::POST,
            format!("/api/admin/bookings/{id}/confirm"),
            None,
        ),
        (
            Method::POST,
            format!("/api/admin/bookings/{id}/reject"),
            Some(json!({"reason": "no"})),
        ),
        (Method::GET, "/api/admin/policy".to_owned(), None),
        (
            Method::PUT,
            "/api/admin/policy".to_owned(),
            Some(json!({"autoConfirm": true})),
        ),
    ];
    for (method, path, body) in &admin_routes {
        let answer = call(
            &stack,
            method.clone(),
            path,
            Some(&alice.token),
            body.clone(),
        )
        .await;
        assert_refused(&format!("{method} {path}"), &answer, 403, &[]);
        let mut direct = stack
            .http
            .request(method.clone(), format!("{}{path}", stack.registration_url))
            .bearer_auth(&alice.token);
        if let Some(body) = body {
            direct = direct.json(body);
        }
        let direct = direct.send().await.unwrap();
        assert_eq!(direct.status(), 403, "{method} {path} at registration");
        // And without any token: 401 at both.
        let answer = call(&stack, method.clone(), path, None, body.clone()).await;
        assert_refused(&format!("{method} {path} anonymous"), &answer, 401, &[]);
    }
    // Nothing happened: still pending, auto-confirm still off.
    let (_, booking) = stack
        .get(&stack.admin, &format!("/api/admin/bookings/{id}"))
        .await;
    assert_eq!(booking["status"], "PENDING", "{booking}");
    let (_, policy) = stack.get(&stack.admin, "/api/admin/policy").await;
    assert_eq!(policy["autoConfirm"], false, "{policy}");
    assert_eq!(stack.status(&id).await, "REQUESTED");

    // The service-only route does not exist from outside, whoever asks, however spelt.
    let service = stack.service_token().await;
    let charge = json!({
        "reservationId": id,
        "customerId": alice.id,
        "amount": {"amount": 1, "currency": "KRW"},
        "paymentToken": "tok_approve",
    });
    for token in [Some(alice.token.as_str()), Some(service.as_str()), None] {
        for path in [
            "/internal/payments",
            "/internal/payments/",
            "/api/payments/../../internal/payments",
            "/api/payments/%2e%2e/%2e%2e/internal/payments",
            "//internal/payments",
        ] {
            let (status, _, body) =
                call(&stack, Method::POST, path, token, Some(charge.clone())).await;
            assert!(
                matches!(status.as_u16(), 400 | 404 | 405),
                "POST {path}: {status} {body}"
            );
        }
    }
    // At payment itself, only the service role may charge.
    let direct = stack
        .http
        .post(format!("{}/internal/payments", stack.payment_url))
        .bearer_auth(&alice.token)
        .json(&charge)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 403, "a customer charging at payment");
    let (status, payments) = stack
        .get(&stack.admin, &format!("/api/payments?reservationId={id}"))
        .await;
    assert!(
        status == 404 || payments["payments"] == json!([]),
        "nothing was charged: {payments}"
    );

    // A machine client is not a person: it cannot book, and is no admin.
    let answer = call(
        &stack,
        Method::POST,
        "/api/reservations",
        Some(&service),
        Some(json!({
            "seatId": "A-04", "startsAt": Window::ahead(33, 1).starts_at.to_rfc3339(),
            "hours": 1, "paymentToken": "tok_approve",
        })),
    )
    .await;
    assert_refused("a service token reserving", &answer, 403, &[]);
    let answer = call(
        &stack,
        Method::GET,
        "/api/admin/bookings",
        Some(&service),
        None,
    )
    .await;
    assert_refused("a service token on admin routes", &answer, 403, &[]);
}

#[tokio::test]
async fn api3_mass_assignment_extra_fields_are_refused_and_change_nothing() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.customer("alice").await;
    let bob = stack.customer("bob").await;
    let window = Window::ahead(34, 2);
    let good = json!({
        "seatId": "A-05",
        "startsAt": window.starts_at.to_rfc3339(),
        "hours": 2,
        "paymentToken": "tok_approve",
    });
    for (field, value) in [
        ("status", json!("PAID")),
        ("price", json!({"amount": 1, "currency": "KRW"})),
        ("customerId", json!(bob.id)),
        ("reservationId", json!(uuid::Uuid::now_v7().to_string())),
        ("holdExpiresAt", json!("2099-01-01T00:00:00Z")),
        ("registrationId", json!("free-pass")),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let answer = call(
            &stack,
            Method::POST,
            "/api/reservations",
            Some(&alice.token),
            Some(body),
        )
        .await;
        assert!(
            matches!(answer.0.as_u16(), 400 | 422),
            "{field}: {answer:?}"
        );
        assert_eq!(answer.1, "application/problem+json", "{field}");
    }
    // Nothing was booked by any of them: the seat is still free for the honest request,
    // which is Alice's, at the catalogue's price.
    let (status, body) = stack
        .send(Method::POST, Some(&alice), "/api/reservations", Some(good))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["reservationId"].as_str().unwrap().to_owned();
    let (_, reservation) = stack.get(&alice, &format!("/api/reservations/{id}")).await;
    assert_eq!(reservation["customerId"], alice.id.as_str());
    assert_eq!(reservation["status"], "REQUESTED");
    let (_, seats) = stack.get(&alice, "/api/seats").await;
    let hourly = seats
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "A-05")
        .and_then(|s| s["hourlyPrice"]["amount"].as_i64())
        .expect("A-05 and its hourly price in the catalogue");
    assert_eq!(reservation["price"]["amount"], hourly * 2, "{reservation}");
    let (_, bobs) = stack.get(&bob, "/api/my/reservations").await;
    assert_eq!(bobs["reservations"], json!([]), "{bobs}");

    // Sign-up cannot make an admin (or choose an id).
    for (field, value) in [
        ("roles", json!(["admin"])),
        ("role", json!("admin")),
        ("admin", json!(true)),
        ("id", json!(uuid::Uuid::now_v7().to_string())),
    ] {
        let username = format!("eve-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let password = format!("{username}-password");
        let mut body = json!({"username": username, "password": password, "displayName": "Eve"});
        body[field] = value;
        let answer = call(&stack, Method::POST, "/api/users", None, Some(body)).await;
        assert!(
            matches!(answer.0.as_u16(), 400 | 422),
            "sign-up with {field}: {answer:?}"
        );
        let signed_in = stack
            .password_grant(username.as_str(), password.as_str())
            .await;
        assert_ne!(
            signed_in.status(),
            200,
            "sign-up with {field} made an account"
        );
    }
    // And an honest sign-up is a customer, nothing more.
    let carol = stack.customer("carol").await;
    let payload: Value =
        serde_json::from_slice(&B64.decode(carol.token.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    assert_eq!(payload["roles"], json!(["customer"]), "{payload}");

    // The admin's policy takes only what it knows.
    let answer = call(
        &stack,
        Method::PUT,
        "/api/admin/policy",
        Some(&stack.admin.token),
        Some(json!({"autoConfirm": false, "cafeId": "another-cafe", "updatedBy": alice.id})),
    )
    .await;
    assert!(matches!(answer.0.as_u16(), 400 | 422), "{answer:?}");
}

#[tokio::test]
async fn api3_excessive_data_exposure_no_secrets_and_no_other_customers_data_in_any_answer() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.customer("alice").await;
    let bob = stack.customer("bob").await;
    let window = Window::ahead(35, 2);
    let id = registered_reservation(&stack, &alice, "A-06", 35).await;
    let _bobs = stack.reserve_ok(&bob, "A-07", &window, "tok_approve").await;

    // Sign-up and sign-in answers carry no password, hash or key material.
    let username = format!("dave-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = format!("{username}-secret-words");
    let (status, _, signed_up) = call(
        &stack,
        Method::POST,
        "/api/users",
        None,
        Some(json!({"username": username, "password": password, "displayName": "Dave"})),
    )
    .await;
    assert_eq!(status, 201, "{signed_up}");
    let token = stack
        .password_grant(username.as_str(), password.as_str())
        .await
        .text()
        .await
        .unwrap();
    for (what, text) in [("sign-up", &signed_up), ("token", &token)] {
        for secret in [
            password.as_str(),
            "$argon2",
            "password",
            "hash",
            "PRIVATE KEY",
        ] {
            assert!(
                !text
                    .to_ascii_lowercase()
                    .contains(&secret.to_ascii_lowercase()),
                "{what} answer shows {secret:?}: {text}"
            );
        }
    }
    // The JWKS publishes public keys only (an OKP key's private part is `d`).
    let (_, jwks) = stack
        .send(Method::GET, None, "/.well-known/jwks.json", None)
        .await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty());
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                key.get(private).is_none(),
                "the JWKS shows {private}: {key}"
            );
        }
    }

    // Every list a customer or anyone can read: nothing of another customer's, and no card
    // token anywhere.
    let alice_secrets = [alice.id.as_str(), alice.username.as_str(), id.as_str()];
    let mut lists = vec![];
    for path in ["/api/my/reservations", "/api/my/reservations?limit=100"] {
        lists.push((format!("bob: {path}"), stack.get(&bob, path).await));
    }
    for path in [
        "/api/seats".to_owned(),
        format!("/api/board?at={}", window.during().to_rfc3339()),
        "/api/board".to_owned(),
    ] {
        let (status, _, text) = call(&stack, Method::GET, &path, None, None).await;
        lists.push((
            format!("anonymous: {path}"),
            (status, serde_json::from_str(&text).unwrap_or(Value::Null)),
        ));
    }
    for (what, (status, body)) in &lists {
        assert_eq!(*status, 200, "{what}: {body}");
        let text = body.to_string();
        for secret in alice_secrets {
            assert!(
                !text.contains(secret),
                "{what} shows Alice's {secret}: {text}"
            );
        }
        assert!(!text.contains("tok_"), "{what} shows a card token: {text}");
    }
    // Alice's own answers show her data, but never her card token either.
    for path in [
        format!("/api/reservations/{id}"),
        format!("/api/payments?reservationId={id}"),
        "/api/my/reservations".to_owned(),
    ] {
        let (status, body) = stack.get(&alice, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.to_string().contains("tok_"), "{path}: {body}");
    }
    // The admin's booking list is the cafe's: it shows no card tokens or passwords.
    let (_, bookings) = stack.get(&stack.admin, "/api/admin/bookings").await;
    let text = bookings.to_string();
    assert!(text.contains(&id), "{text}");
    assert!(
        !text.contains("tok_") && !text.contains("$argon2"),
        "{text}"
    );
}

#[tokio::test]
async fn api4_unrestricted_resource_consumption_page_body_and_rate_limits() {
    let stack = Stack::start(StackOptions {
        gateway_env: vec![
            // Forty at once, then one every 10 s: over before a token comes back.
            ("GATEWAY_RATE_LIMIT_BURST", "40".to_owned()),
            ("GATEWAY_RATE_LIMIT_PER_SEC", "0.1".to_owned()),
        ],
        ..StackOptions::default()
    })
    .await;
    let alice = stack.customer("alice").await;
    let bob = stack.customer("bob").await;

    // Page limits: a huge page is refused or cut to the maximum, never served whole.
    for (token, path) in [
        (&alice.token, "/api/my/reservations?limit=1000000000"),
        (&alice.token, "/api/my/reservations?limit=0"),
        (&alice.token, "/api/my/reservations?limit=-1"),
        (&stack.admin.token, "/api/admin/bookings?limit=0"),
        (&stack.admin.token, "/api/admin/bookings?limit=x"),
    ] {
        let answer = call(&stack, Method::GET, path, Some(token), None).await;
        assert!(matches!(answer.0.as_u16(), 400 | 422), "{path}: {answer:?}");
        assert_eq!(answer.1, "application/problem+json", "{path}");
    }
    // A huge page the admin asks for is cut to the maximum (500), not refused.
    let (status, body) = stack
        .get(&stack.admin, "/api/admin/bookings?limit=1000000000")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["bookings"].as_array().is_some_and(|b| b.len() <= 500));

    // Body limits: over 1 MiB is 413 problem+json before anything reaches a service.
    let huge = format!(
        "{{\"seatId\":\"A-08\",\"padding\":\"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    for path in ["/api/reservations", "/api/users", "/auth/token"] {
        // A connection each: the gateway answers without reading the body and then closes
        // the connection, which a pooled one would trip over.
        let once = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let response = once
            .post(stack.api(path))
            .bearer_auth(&alice.token)
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "/problems/payload-too-large", "{body}");
    }

    // Rate limit per user: Alice runs dry, whatever address or route she uses …
    let mut allowed = 0;
    let mut limited = None;
    for i in 0..100 {
        let response = stack
            .http
            .get(stack.api("/api/seats"))
            .bearer_auth(&alice.token)
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
        allowed += 1;
    }
    let limited = limited.expect("Alice was never limited");
    assert!(allowed <= 40, "{allowed} requests went through");
    assert!(limited.headers().contains_key("retry-after"));
    let answer = call(
        &stack,
        Method::GET,
        "/api/my/reservations",
        Some(&alice.token),
        None,
    )
    .await;
    assert_refused("Alice on another route", &answer, 429, &[]);
    // … while Bob, from the same address, is served.
    let (status, body) = stack.get(&bob, "/api/seats").await;
    assert_eq!(status, 200, "{body}");

    // Rate limit per address: anonymous callers from one address share a bucket, and a made-up
    // X-Forwarded-For (no trusted proxy is configured) does not make a new client.
    let mut anonymous = 0;
    let mut refused = false;
    for i in 0..100 {
        let response = stack
            .http
            .get(stack.api("/api/board"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            refused = true;
            break;
        }
        anonymous += 1;
    }
    assert!(refused, "anonymous callers were never limited");
    assert!(
        anonymous <= 40,
        "{anonymous} anonymous requests went through"
    );
    // Sign-in guessing from that address is limited too.
    let response = stack.password_grant(alice.username.as_str(), "guess").await;
    assert_eq!(response.status(), 429);
}

/// A token with `header` and `payload` and `signature` as given (base64url'd here).
fn compact(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string())
    )
}

fn decode_part(token: &str, index: usize) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(index).unwrap()).unwrap()).unwrap()
}

/// Identity's signing keys (PKCS#8 PEM files named `<kid>.pem`).
fn identity_keys(stack: &Stack) -> Vec<(String, std::path::PathBuf)> {
    let mut keys: Vec<_> = std::fs::read_dir(stack.dir().join("identity-keys"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn api2_broken_authentication_forged_tampered_expired_and_retired_key_tokens() {
    let stack = Stack::start(StackOptions {
        // The gateway re-reads the JWKS often, so a removed key is forgotten within the test.
        gateway_env: vec![("AUTH_JWKS_MAX_AGE_SECS", "1".to_owned())],
        ..StackOptions::default()
    })
    .await;
    let alice = stack.customer("alice").await;
    let id = stack
        .reserve_ok(&alice, "A-09", &Window::ahead(36, 1), "tok_approve")
        .await;
    let header = decode_part(&alice.token, 0);
    let payload = decode_part(&alice.token, 1);
    let signature = alice.token.split('.').nth(2).unwrap().to_owned();
    let mut as_admin = payload.clone();
    as_admin["roles"] = json!(["admin"]);
    let mut as_someone_else = payload.clone();
    as_someone_else["sub"] = json!(stack.admin.id);
    let mut later = payload.clone();
    later["exp"] = json!(payload["exp"].as_i64().unwrap() + 86_400);

    let mut forged = vec![
        // Alice's signature over a payload she changed.
        ("tampered roles", compact(&header, &as_admin, &signature)),
        (
            "tampered subject",
            compact(&header, &as_someone_else, &signature),
        ),
        ("tampered expiry", compact(&header, &later, &signature)),
        // No signature at all.
        (
            "alg none",
            compact(
                &json!({"alg": "none", "typ": "JWT", "kid": header["kid"]}),
                &as_admin,
                "",
            ),
        ),
        (
            "alg none, no kid",
            compact(&json!({"alg": "none", "typ": "JWT"}), &as_admin, ""),
        ),
        // HMAC keyed with something public (the algorithm-confusion attack).
        (
            "alg HS256",
            compact(
                &json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}),
                &as_admin,
                &signature,
            ),
        ),
        ("truncated", alice.token[..alice.token.len() - 5].to_owned()),
        ("garbage", "a.b.c".to_owned()),
    ];
    // Signed by a key identity never had, claiming identity's kid, and claiming its own.
    let stranger = SigningKey::generate(header["kid"].as_str().unwrap());
    let claims = AccessClaims::new(
        "studycafe-identity",
        "studycafe",
        &alice.id,
        &["admin"],
        chrono::Duration::minutes(10),
    );
    forged.push(("wrong key, real kid", stranger.sign(&claims).unwrap()));
    let other = SigningKey::generate("key-29991231T235959Z");
    forged.push(("wrong key, own kid", other.sign(&claims).unwrap()));

    // Identity's real key, but expired (a token replayed after its lifetime), or for another
    // audience or issuer.
    let keys = identity_keys(&stack);
    let (kid, pem) = keys.last().expect("identity has a key");
    let real =
        SigningKey::from_pkcs8_pem(kid.clone(), &std::fs::read_to_string(pem).unwrap()).unwrap();
    let sign = |issuer: &str, audience: &str, ttl: chrono::Duration| {
        real.sign(&AccessClaims::new(
            issuer,
            audience,
            &alice.id,
            &["customer"],
            ttl,
        ))
        .unwrap()
    };
    forged.push((
        "expired",
        sign(
            "studycafe-identity",
            "studycafe",
            chrono::Duration::minutes(-5),
        ),
    ));
    forged.push((
        "other audience",
        sign(
            "studycafe-identity",
            "another-app",
            chrono::Duration::minutes(5),
        ),
    ));
    forged.push((
        "other issuer",
        sign("evil-identity", "studycafe", chrono::Duration::minutes(5)),
    ));
    // The real key works (so the refusals above are about the tokens, not the key).
    let fresh = sign(
        "studycafe-identity",
        "studycafe",
        chrono::Duration::minutes(5),
    );
    let answer = call(
        &stack,
        Method::GET,
        &format!("/api/reservations/{id}"),
        Some(&fresh),
        None,
    )
    .await;
    assert_eq!(answer.0, 200, "{answer:?}");

    for (what, token) in &forged {
        for (method, path) in [
            (Method::GET, format!("/api/reservations/{id}")),
            (Method::DELETE, format!("/api/reservations/{id}")),
            (Method::GET, "/api/admin/bookings".to_owned()),
            (Method::GET, "/api/seats".to_owned()),
        ] {
            let answer = call(&stack, method.clone(), &path, Some(token), None).await;
            assert_refused(&format!("{what}: {method} {path}"), &answer, 401, &[]);
        }
    }
    assert_eq!(
        stack.status(&id).await,
        "REQUESTED",
        "nothing was cancelled"
    );

    // Rotation: a new key signs from now on, the old one still verifies …
    let output = std::process::Command::new(studycafe_testkit::executable("identity-service"))
        .arg("add-key")
        .env("IDENTITY_KEYS_DIR", stack.dir().join("identity-keys"))
        .output()
        .unwrap();
    assert!(output.status.success(), "add-key: {output:?}");
    let fresh_alice = stack
        .sign_in(&alice.username, &format!("{}-password", alice.username))
        .await;
    assert_ne!(decode_part(&fresh_alice.token, 0)["kid"], header["kid"]);
    let path = format!("/api/reservations/{id}");
    assert_eq!(
        stack.get(&alice, &path).await.0,
        200,
        "old key, still published"
    );
    // The gateway learns the new kid at its next JWKS fetch (at most one every 5 s, and the
    // forged tokens above just caused one).
    let learned = within(WAIT, || async {
        (stack.get(&fresh_alice, &path).await.0 == 200).then_some(())
    })
    .await;
    assert!(learned.is_some(), "the new key is never accepted");

    // … until the operator removes it (a leaked key): then its tokens are refused, although
    // the gateway had it cached and they have not expired.
    std::fs::remove_file(pem).unwrap();
    let refused = within(WAIT, || async {
        let (status, _) = stack.get(&alice, &path).await;
        (status == 401).then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "a token of a removed key is still accepted:\n{}",
        stack.logs()
    );
    assert_eq!(stack.get(&fresh_alice, &path).await.0, 200, "new key");
}
