//! The seat service's HTTP API, in-process on port 0, with its own database and a real broker.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use shared_events::topics;
use studycafe_testkit::kafka;
use support::{Db, assert_problem, in_hours, reservation_body, spawn_app};

const WAIT: Duration = Duration::from_secs(60);

async fn a_reservation_is_accepted_stored_and_published(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");
    let response = app
        .reserve(&alice, &reservation_body("A-01", &in_hours(2), 2))
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["reservationId"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "REQUESTED");
    assert_eq!(location, format!("/api/reservations/{id}"));

    let view: Value = app.get(&alice, &id).await.json().await.unwrap();
    assert_eq!(view["seatId"], "A-01");
    assert_eq!(view["customerId"], "alice");
    assert_eq!(view["hours"], 2);
    assert_eq!(view["price"], json!({"amount": 4000, "currency": "KRW"}));
    assert_eq!(view["status"], "REQUESTED");

    // SeatReserved on the seat topic, keyed and correlated by the reservation id.
    let records = kafka::read_topic(&app.broker.brokers(), topics::SEAT, 41, WAIT).await;
    let reserved: Vec<_> = records
        .iter()
        .filter(|r| r.json()["type"] == "SeatReserved")
        .collect();
    assert_eq!(reserved.len(), 1);
    let event = reserved[0].json();
    assert_eq!(reserved[0].key.as_deref(), Some(id.as_str()));
    assert_eq!(event["correlationId"], id.as_str());
    assert_eq!(event["source"], "seat");
    assert_eq!(event["version"], 1);
    assert_eq!(event["data"]["reservationId"], id.as_str());
    assert_eq!(event["data"]["price"]["amount"], 4000);
    assert!(
        event["data"].get("paymentToken").is_none(),
        "no payment token on the wire"
    );
    assert!(
        reserved[0].headers.contains_key("traceparent"),
        "trace context travels"
    );
    // The catalogue is announced too: 40 SeatDefined events.
    assert_eq!(
        records
            .iter()
            .filter(|r| r.json()["type"] == "SeatDefined")
            .count(),
        40
    );
    app.stop().await;
}

async fn the_seat_catalogue_is_public(db: Db) {
    let mut app = spawn_app(db).await;
    let seats: Vec<Value> = app
        .http
        .get(format!("{}/api/seats", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seats.len(), 40);
    assert_eq!(seats[0]["id"], "A-01");
    assert_eq!(seats[0]["kind"], "open-desk");
    assert_eq!(
        seats[0]["hourlyPrice"],
        json!({"amount": 2000, "currency": "KRW"})
    );
    assert!(seats.iter().any(|s| s["enabled"] == false));
    app.stop().await;
}

async fn bad_input_gets_a_problem_and_changes_nothing(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");
    let start = in_hours(3);
    let url = format!("{}/api/reservations", app.base);
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let far = (chrono::Utc::now() + chrono::Duration::days(60)).to_rfc3339();
    let mut no_payment_token = reservation_body("A-01", &start, 1);
    no_payment_token["paymentToken"] = json!("");

    // (who, body, status, problem type)
    let cases = [
        (
            alice.clone(),
            reservation_body("Z-99", &start, 2),
            404,
            "seat-not-found",
        ),
        (
            alice.clone(),
            reservation_body("not a seat", &start, 2),
            400,
            "invalid-field",
        ),
        (
            alice.clone(),
            reservation_body("A-16", &start, 2),
            409,
            "seat-disabled",
        ),
        (
            alice.clone(),
            reservation_body("A-01", &past, 2),
            422,
            "starts-in-past",
        ),
        (
            alice.clone(),
            reservation_body("A-01", &start, 0),
            422,
            "hours-out-of-range",
        ),
        (
            alice.clone(),
            reservation_body("A-01", &start, 13),
            422,
            "hours-out-of-range",
        ),
        (
            alice.clone(),
            reservation_body("A-01", &far, 1),
            422,
            "starts-too-far-ahead",
        ),
        (
            alice.clone(),
            reservation_body("A-01", "tomorrow at nine", 1),
            400,
            "invalid-field",
        ),
        (alice.clone(), no_payment_token, 400, "invalid-field"),
        (
            "garbage".to_owned(),
            reservation_body("A-01", &start, 1),
            401,
            "unauthorized",
        ),
        (
            app.keys.forged("mallory"),
            reservation_body("A-01", &start, 1),
            401,
            "unauthorized",
        ),
        (
            app.keys.admin("root"),
            reservation_body("A-01", &start, 1),
            403,
            "forbidden",
        ),
    ];
    for (token, body, status, problem) in &cases {
        let response = app.reserve(token, body).await;
        assert_problem(response, *status, &format!("/problems/{problem}")).await;
    }

    // Bodies that are not the expected JSON at all.
    let raw_bodies = [
        (
            Some("application/json"),
            "{\"seatId\": ",
            400,
            "malformed-request",
        ),
        (
            Some("application/json"),
            r#"{"seatId": "A-01", "hours": "two"}"#,
            400,
            "malformed-request",
        ),
        (None, "seat=A-01", 415, "unsupported-media-type"),
    ];
    for (content_type, body, status, problem) in raw_bodies {
        let mut request = app.http.post(&url).bearer_auth(&alice).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_problem(response, status, &format!("/problems/{problem}")).await;
    }

    let anonymous = app
        .http
        .post(&url)
        .json(&reservation_body("A-01", &start, 1))
        .send()
        .await
        .unwrap();
    let body = assert_problem(anonymous, 401, "/problems/unauthorized").await;
    assert!(body["detail"].as_str().unwrap().contains("missing"));
    assert_problem(
        app.get(&alice, "not-an-id").await,
        404,
        "/problems/not-found",
    )
    .await;
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_problem(app.get(&alice, &unknown).await, 404, "/problems/not-found").await;

    // Nothing was written: the same seat and window is still free, and only one reservation
    // event was ever published.
    let ok = app
        .reserve(&alice, &reservation_body("A-01", &start, 1))
        .await;
    assert_eq!(ok.status(), 202);
    let records = kafka::read_topic(&app.broker.brokers(), topics::SEAT, 41, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reserved = records
        .iter()
        .filter(|r| r.json()["type"] == "SeatReserved");
    assert_eq!(reserved.count(), 1);
    app.stop().await;
}

async fn fifty_concurrent_requests_for_one_seat_and_window_yield_one_reservation(db: Db) {
    let mut app = spawn_app(db).await;
    let start = in_hours(5);
    let body = reservation_body("FB-01", &start, 3);
    let requests = (0..50).map(|i| {
        let token = app.keys.customer(&format!("customer-{i}"));
        let http = app.http.clone();
        let url = format!("{}/api/reservations", app.base);
        let body = body.clone();
        async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap();
            (status, json)
        }
    });
    let results = futures::future::join_all(requests).await;
    let accepted = results.iter().filter(|(s, _)| *s == 202).count();
    let conflicts: Vec<_> = results.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(accepted, 1, "{results:?}");
    assert_eq!(conflicts.len(), 49);
    assert!(
        conflicts
            .iter()
            .all(|(_, b)| b["type"] == "/problems/seat-taken")
    );

    // An overlapping window is also refused; a back-to-back one is fine.
    let alice = app.keys.customer("alice");
    let overlapping = reservation_body("FB-01", &in_hours(6), 1);
    assert_problem(
        app.reserve(&alice, &overlapping).await,
        409,
        "/problems/seat-taken",
    )
    .await;
    let after = reservation_body("FB-01", &in_hours(8), 1);
    assert_eq!(app.reserve(&alice, &after).await.status(), 202);
    app.stop().await;
}

async fn idempotency_key_replays_the_first_answer(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");
    let body = reservation_body("B-02", &in_hours(4), 2);
    let send = |key: &'static str, body: Value| {
        let http = app.http.clone();
        let url = format!("{}/api/reservations", app.base);
        let token = alice.clone();
        async move {
            http.post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send("k-1", body.clone()).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send("k-1", body.clone()).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["reservationId"], again["reservationId"]);

    let mut other = body.clone();
    other["hours"] = json!(3);
    assert_problem(
        send("k-1", other).await,
        422,
        "/problems/idempotency-key-reused",
    )
    .await;
    // Another customer's identical key is theirs alone.
    let bob = app.keys.customer("bob");
    let bobs = app
        .http
        .post(format!("{}/api/reservations", app.base))
        .bearer_auth(bob)
        .header("Idempotency-Key", "k-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(bobs, 409, "/problems/seat-taken").await;
    app.stop().await;
}

async fn only_the_owner_or_an_admin_sees_and_cancels(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");
    let bob = app.keys.customer("bob");
    let admin = app.keys.admin("admin");
    let id = app
        .reserve_id(&alice, &reservation_body("A-03", &in_hours(2), 1))
        .await;
    let url = format!("{}/api/reservations/{id}", app.base);

    assert_problem(app.get(&bob, &id).await, 403, "/problems/forbidden").await;
    assert_eq!(app.get(&admin, &id).await.status(), 200);
    let bob_cancel = app
        .http
        .delete(&url)
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_problem(bob_cancel, 403, "/problems/forbidden").await;
    assert_eq!(app.status_of(&id).await, "REQUESTED", "bob changed nothing");

    let cancel = app
        .http
        .delete(&url)
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    let cancelled: Value = cancel.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    let twice = app
        .http
        .delete(&url)
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_problem(twice, 409, "/problems/illegal-state-change").await;

    // The seat is free again for that window.
    assert_eq!(
        app.reserve(&bob, &reservation_body("A-03", &in_hours(2), 1))
            .await
            .status(),
        202
    );
    let records = kafka::read_topic(&app.broker.brokers(), topics::SEAT, 43, WAIT).await;
    let cancelled: Vec<_> = records
        .iter()
        .map(|r| r.json())
        .filter(|e| e["type"] == "ReservationCancelled")
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["data"]["cancelledBy"], "customer");
    assert_eq!(cancelled[0]["data"]["wasPaid"], false);
    app.stop().await;
}

async fn operational_endpoints(db: Db) {
    let mut app = spawn_app(db).await;
    for path in ["/health/live", "/health/ready"] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers().contains_key("x-request-id"));
    }
    let _ = app
        .http
        .get(format!("{}/api/seats", app.base))
        .send()
        .await
        .unwrap();
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    // A request id from the caller is kept.
    let response = app
        .http
        .get(format!("{}/health/live", app.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    app.stop().await;
}

on_both_backends!(
    a_reservation_is_accepted_stored_and_published,
    the_seat_catalogue_is_public,
    bad_input_gets_a_problem_and_changes_nothing,
    fifty_concurrent_requests_for_one_seat_and_window_yield_one_reservation,
    idempotency_key_replays_the_first_answer,
    only_the_owner_or_an_admin_sees_and_cancels,
    operational_endpoints,
);
