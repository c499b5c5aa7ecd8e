//! The seat service's APIs, in-process on port 0, with its own database and a real broker.
//!
//! The acceptance scenarios are written once against [`SeatApi`] and run through both inbound
//! adapters (`through_both_adapters!`, each on SQLite and on PostgreSQL); what only
//! one protocol has (malformed JSON, the catalogue, `/metrics`; gRPC health and reflection)
//! is tested on its own below.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use shared_events::topics;
use studycafe_testkit::kafka;
use support::{
    Db, assert_problem, in_hours, reservation_body,
    seat_api::{Kind, SeatApi, assert_rejected, input},
    spawn_app,
};

const WAIT: Duration = Duration::from_secs(60);

async fn a_reservation_is_accepted_stored_and_published<A: SeatApi>(db: Db) {
    let mut app = spawn_app(db).await;
    let api = A::connect(&app).await;
    let alice = app.keys.customer("alice");
    let reserved = api
        .reserve(&alice, &input("A-01", &in_hours(2), 2), None)
        .await
        .unwrap();
    let id = reserved.id.clone();
    assert_eq!(reserved.status, "REQUESTED");
    assert!(!reserved.replayed);

    let view = api.get(&alice, &id).await.unwrap();
    assert_eq!(view.id, id);
    assert_eq!(view.seat_id, "A-01");
    assert_eq!(view.customer_id, "alice");
    assert_eq!(view.hours, 2);
    assert_eq!((view.price, view.currency.as_str()), (4000, "KRW"));
    assert_eq!(view.status, "REQUESTED");

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

async fn bad_input_gets_a_problem_and_changes_nothing<A: SeatApi>(db: Db) {
    let mut app = spawn_app(db).await;
    let api = A::connect(&app).await;
    let alice = app.keys.customer("alice");
    let start = in_hours(3);
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let far = (chrono::Utc::now() + chrono::Duration::days(60)).to_rfc3339();
    let mut no_payment_token = input("A-01", &start, 1);
    no_payment_token.payment_token = String::new();

    // (who, request, kind of refusal, reason)
    let cases = [
        (
            alice.clone(),
            input("Z-99", &start, 2),
            Kind::NotFound,
            "seat-not-found",
        ),
        (
            alice.clone(),
            input("not a seat", &start, 2),
            Kind::BadInput,
            "invalid-field",
        ),
        (
            alice.clone(),
            input("A-16", &start, 2),
            Kind::Conflict,
            "seat-disabled",
        ),
        (
            alice.clone(),
            input("A-01", &past, 2),
            Kind::BadInput,
            "starts-in-past",
        ),
        (
            alice.clone(),
            input("A-01", &start, 0),
            Kind::BadInput,
            "hours-out-of-range",
        ),
        (
            alice.clone(),
            input("A-01", &start, 13),
            Kind::BadInput,
            "hours-out-of-range",
        ),
        (
            alice.clone(),
            input("A-01", &far, 1),
            Kind::BadInput,
            "starts-too-far-ahead",
        ),
        (
            alice.clone(),
            input("A-01", "tomorrow at nine", 1),
            Kind::BadInput,
            "invalid-field",
        ),
        (
            alice.clone(),
            no_payment_token,
            Kind::BadInput,
            "invalid-field",
        ),
        (
            "garbage".to_owned(),
            input("A-01", &start, 1),
            Kind::Unauthenticated,
            "unauthorized",
        ),
        (
            app.keys.forged("mallory"),
            input("A-01", &start, 1),
            Kind::Unauthenticated,
            "unauthorized",
        ),
        (
            app.keys.admin("root"),
            input("A-01", &start, 1),
            Kind::Forbidden,
            "forbidden",
        ),
    ];
    for (token, request, kind, reason) in &cases {
        let answer = api.reserve(token, request, None).await;
        assert_rejected(answer, *kind, reason);
    }
    let anonymous = assert_rejected(
        api.reserve("", &input("A-01", &start, 1), None).await,
        Kind::Unauthenticated,
        "unauthorized",
    );
    assert!(anonymous.detail.contains("missing"), "{anonymous:?}");
    assert_rejected(
        api.get(&alice, "not-an-id").await,
        Kind::NotFound,
        "not-found",
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_rejected(api.get(&alice, &unknown).await, Kind::NotFound, "not-found");

    // Nothing was written: the same seat and window is still free, and only one reservation
    // event was ever published.
    api.reserve(&alice, &input("A-01", &start, 1), None)
        .await
        .unwrap();
    let records = kafka::read_topic(&app.broker.brokers(), topics::SEAT, 41, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reserved = records
        .iter()
        .filter(|r| r.json()["type"] == "SeatReserved");
    assert_eq!(reserved.count(), 1);
    app.stop().await;
}

/// REST only: bodies that are not the expected JSON at all (gRPC's typed messages cannot be).
async fn malformed_bodies_get_a_problem(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");
    let url = format!("{}/api/reservations", app.base);
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
    // And none of them reserved anything.
    let ok = app
        .reserve(&alice, &reservation_body("A-01", &in_hours(3), 1))
        .await;
    assert_eq!(ok.status(), 202);
    app.stop().await;
}

async fn fifty_concurrent_requests_for_one_seat_and_window_yield_one_reservation<A: SeatApi>(
    db: Db,
) {
    let mut app = spawn_app(db).await;
    let api = A::connect(&app).await;
    let start = in_hours(5);
    let request = input("FB-01", &start, 3);
    let tokens: Vec<String> = (0..50)
        .map(|i| app.keys.customer(&format!("customer-{i}")))
        .collect();
    let results = futures::future::join_all(
        tokens
            .iter()
            .map(|token| api.reserve(token, &request, None)),
    )
    .await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 1, "{}: {results:?}", A::NAME);
    let conflicts: Vec<_> = results.into_iter().filter(Result::is_err).collect();
    assert_eq!(conflicts.len(), 49);
    for conflict in conflicts {
        assert_rejected(conflict, Kind::Conflict, "seat-taken");
    }

    // An overlapping window is also refused; a back-to-back one is fine.
    let alice = app.keys.customer("alice");
    assert_rejected(
        api.reserve(&alice, &input("FB-01", &in_hours(6), 1), None)
            .await,
        Kind::Conflict,
        "seat-taken",
    );
    api.reserve(&alice, &input("FB-01", &in_hours(8), 1), None)
        .await
        .unwrap();
    app.stop().await;
}

async fn idempotency_key_replays_the_first_answer<A: SeatApi>(db: Db) {
    let mut app = spawn_app(db).await;
    let api = A::connect(&app).await;
    let alice = app.keys.customer("alice");
    let request = input("B-02", &in_hours(4), 2);
    let first = api.reserve(&alice, &request, Some("k-1")).await.unwrap();
    assert!(!first.replayed);
    let again = api.reserve(&alice, &request, Some("k-1")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(first.id, again.id);
    assert_eq!(again.status, "REQUESTED");

    let mut other = request.clone();
    other.hours = 3;
    assert_rejected(
        api.reserve(&alice, &other, Some("k-1")).await,
        Kind::BadInput,
        "idempotency-key-reused",
    );
    // A key of nothing but blanks is refused, not ignored.
    assert_rejected(
        api.reserve(&alice, &other, Some("   ")).await,
        Kind::BadInput,
        "invalid-field",
    );
    // Another customer's identical key is theirs alone.
    let bob = app.keys.customer("bob");
    assert_rejected(
        api.reserve(&bob, &request, Some("k-1")).await,
        Kind::Conflict,
        "seat-taken",
    );
    app.stop().await;
}

async fn only_the_owner_or_an_admin_sees_and_cancels<A: SeatApi>(db: Db) {
    let mut app = spawn_app(db).await;
    let api = A::connect(&app).await;
    let alice = app.keys.customer("alice");
    let bob = app.keys.customer("bob");
    let admin = app.keys.admin("admin");
    let id = api
        .reserve(&alice, &input("A-03", &in_hours(2), 1), None)
        .await
        .unwrap()
        .id;

    assert_rejected(api.get(&bob, &id).await, Kind::Forbidden, "forbidden");
    assert_eq!(api.get(&admin, &id).await.unwrap().customer_id, "alice");
    assert_rejected(api.cancel(&bob, &id).await, Kind::Forbidden, "forbidden");
    assert_rejected(
        api.cancel("", &id).await,
        Kind::Unauthenticated,
        "unauthorized",
    );
    assert_eq!(app.status_of(&id).await, "REQUESTED", "bob changed nothing");

    let cancelled = api.cancel(&alice, &id).await.unwrap();
    assert_eq!(cancelled.status, "CANCELLED");
    assert_rejected(
        api.cancel(&alice, &id).await,
        Kind::Conflict,
        "illegal-state-change",
    );
    assert_rejected(
        api.cancel(&alice, "not-an-id").await,
        Kind::NotFound,
        "not-found",
    );

    // The seat is free again for that window.
    api.reserve(&bob, &input("A-03", &in_hours(2), 1), None)
        .await
        .unwrap();
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

through_both_adapters!(
    a_reservation_is_accepted_stored_and_published,
    bad_input_gets_a_problem_and_changes_nothing,
    fifty_concurrent_requests_for_one_seat_and_window_yield_one_reservation,
    idempotency_key_replays_the_first_answer,
    only_the_owner_or_an_admin_sees_and_cancels,
);

on_both_backends!(
    the_seat_catalogue_is_public,
    malformed_bodies_get_a_problem,
    operational_endpoints,
);

/// gRPC only: `grpc.health.v1`, reflection, and the caller's own reservations.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_health_reflection_and_my_reservations() {
    use seat_service::inbound::grpc::pb::{self, seat_reservations_client::SeatReservationsClient};
    use tokio_stream::StreamExt as _;
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let mut app = spawn_app(Db::Sqlite).await;
    let channel = tonic::transport::Endpoint::from_shared(app.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "studycafe.seat.v1.SeatReservations"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for name in [
        "studycafe.seat.v1.SeatReservations",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }

    let api = support::seat_api::Grpc::connect(&app).await;
    let alice = app.keys.customer("alice");
    let bob = app.keys.customer("bob");
    let first = api
        .reserve(&alice, &input("A-05", &in_hours(2), 1), None)
        .await
        .unwrap();
    let second = api
        .reserve(&alice, &input("A-06", &in_hours(2), 1), None)
        .await
        .unwrap();
    api.reserve(&bob, &input("A-07", &in_hours(2), 1), None)
        .await
        .unwrap();
    let mut client = SeatReservationsClient::new(channel);
    let list = |token: &str, page_size: u32| {
        let mut request = tonic::Request::new(pb::ListMyReservationsRequest { page_size });
        if !token.is_empty() {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    };
    let mine = client
        .list_my_reservations(list(&alice, 0))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    let ids: Vec<_> = mine.iter().map(|r| r.reservation_id.as_str()).collect();
    assert_eq!(ids, [second.id.as_str(), first.id.as_str()], "newest first");
    assert!(mine.iter().all(|r| r.customer_id == "alice"));
    let one = client
        .list_my_reservations(list(&alice, 1))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    assert_eq!(one.len(), 1);
    let anonymous = client.list_my_reservations(list("", 0)).await.unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    app.stop().await;
}
