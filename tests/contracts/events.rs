//! Events: seat-view and registration (here) and the notification service (its pytest) state
//! the events they consume; the producers are verified against those pacts with the events
//! they really published in a run of the whole suite.

use std::{collections::HashMap, sync::Arc};

use axum::{Json, Router, routing::post};
use chrono::{TimeZone as _, Utc};
use pact_consumer::{
    patterns::{JsonPattern, Like},
    prelude::*,
};
use pact_models::provider_states::ProviderState;
use pact_verifier::callback_executors::{NullRequestFilterExecutor, ProviderStateExecutor};
use serde_json::{Value, json};
use shared_events::{
    CancelledBy, Currency, Envelope, Event, EventMeta, IntegrationEvent, Money, RawEnvelope,
    ReservationRef, topics,
};
use studycafe_e2e::stack::{Stack, StackOptions, Window};
use studycafe_messaging::ReceivedEvent;
use tokio::sync::Mutex;

use crate::support::{PACTS, message_pacts_of, pact_file, pacts_of, verify};

// --- consumers -----------------------------------------------------------------------------

const RESERVATION: &str = "0198c0de-0000-7000-8000-000000000001";

fn reference() -> ReservationRef {
    let starts = Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).unwrap();
    ReservationRef {
        reservation_id: RESERVATION.into(),
        seat_id: "A-01".into(),
        customer_id: "0198c0de-0000-7000-8000-00000000c001".into(),
        starts_at: starts,
        ends_at: starts + chrono::Duration::hours(2),
    }
}

fn krw(amount: i64) -> Money {
    Money {
        amount,
        currency: Currency::Krw,
    }
}

fn envelope<T: Event>(data: T) -> Value {
    let meta = EventMeta::new(
        "producer",
        RESERVATION,
        "0198c0de-0000-7000-8000-0000000000ca",
        Utc.with_ymd_and_hms(2030, 1, 1, 8, 0, 0).unwrap(),
    );
    let mut value: Value = serde_json::from_slice(&Envelope::wrap(meta, data).to_json()).unwrap();
    // A fixed id, so the pact files stay the same from run to run.
    value["id"] = json!("0198c0de-0000-7000-8000-0000000000e1");
    value
}

/// An example of every event of the published language, as the shared types write it.
fn examples() -> Vec<(&'static str, &'static str, Value)> {
    use shared_events as pl;
    let id = || "0198c0de-0000-7000-8000-0000000000ee".to_owned();
    let r = reference;
    let e = |ty: &'static str, topic: &'static str, v: Value| (ty, topic, v);
    vec![
        e(
            "SeatDefined",
            topics::SEAT,
            envelope(pl::SeatDefined {
                seat_id: "A-01".into(),
                zone: "A".into(),
                kind: "open-desk".into(),
                hourly_price: krw(3000),
                enabled: true,
            }),
        ),
        e(
            "SeatReserved",
            topics::SEAT,
            envelope(pl::SeatReserved {
                reservation: r(),
                hours: 2,
                price: krw(6000),
                hold_expires_at: Utc.with_ymd_and_hms(2030, 1, 1, 8, 10, 0).unwrap(),
            }),
        ),
        e(
            "ReservationConfirmed",
            topics::SEAT,
            envelope(pl::ReservationConfirmed { reservation: r() }),
        ),
        e(
            "ReservationRejected",
            topics::SEAT,
            envelope(pl::ReservationRejected {
                reservation: r(),
                reason: "full".into(),
            }),
        ),
        e(
            "ReservationPaid",
            topics::SEAT,
            envelope(pl::ReservationPaid {
                reservation: r(),
                payment_id: id(),
                amount: krw(6000),
            }),
        ),
        e(
            "ReservationPaymentFailed",
            topics::SEAT,
            envelope(pl::ReservationPaymentFailed {
                reservation: r(),
                reason: "declined".into(),
            }),
        ),
        e(
            "ReservationRegistered",
            topics::SEAT,
            envelope(pl::ReservationRegistered {
                reservation: r(),
                registration_id: id(),
            }),
        ),
        e(
            "ReservationCancelled",
            topics::SEAT,
            envelope(pl::ReservationCancelled {
                reservation: r(),
                cancelled_by: CancelledBy::Customer,
                was_paid: true,
            }),
        ),
        e(
            "ReservationExpired",
            topics::SEAT,
            envelope(pl::ReservationExpired {
                reservation: r(),
                expired_in: "REQUESTED".into(),
            }),
        ),
        e(
            "BookingConfirmed",
            topics::REGISTRATION,
            envelope(pl::BookingConfirmed {
                reservation_id: RESERVATION.into(),
                confirmed_by: "auto-confirm".into(),
            }),
        ),
        e(
            "BookingRejected",
            topics::REGISTRATION,
            envelope(pl::BookingRejected {
                reservation_id: RESERVATION.into(),
                rejected_by: id(),
                reason: "full".into(),
            }),
        ),
        e(
            "SeatRegistered",
            topics::REGISTRATION,
            envelope(pl::SeatRegistered {
                reservation_id: RESERVATION.into(),
                registration_id: id(),
                seat_id: "A-01".into(),
                entry_pass_code: "4821-7730".into(),
                starts_at: r().starts_at,
                ends_at: r().ends_at,
            }),
        ),
        e(
            "RegistrationCancelled",
            topics::REGISTRATION,
            envelope(pl::RegistrationCancelled {
                reservation_id: RESERVATION.into(),
                registration_id: Some(id()),
                reason: "cancelled".into(),
            }),
        ),
        e(
            "PaymentCompleted",
            topics::PAYMENT,
            envelope(pl::PaymentCompleted {
                reservation_id: RESERVATION.into(),
                payment_id: id(),
                amount: krw(6000),
            }),
        ),
        e(
            "PaymentDeclined",
            topics::PAYMENT,
            envelope(pl::PaymentDeclined {
                reservation_id: RESERVATION.into(),
                payment_id: id(),
                reason: "declined".into(),
            }),
        ),
        e(
            "PaymentRefunded",
            topics::PAYMENT,
            envelope(pl::PaymentRefunded {
                reservation_id: RESERVATION.into(),
                payment_id: id(),
                refund_id: id(),
                amount: krw(6000),
            }),
        ),
    ]
}

/// The pattern a Rust consumer states: every field of the example present with its type (serde
/// needs them all), `type` and `version` exactly.
fn loosely(value: &Value, top: bool) -> JsonPattern {
    match value {
        Value::Object(map) => JsonPattern::Object(
            map.iter()
                .map(|(k, v)| {
                    let exact = top && (k == "type" || k == "version");
                    let pattern = if exact {
                        JsonPattern::Json(v.clone())
                    } else {
                        loosely(v, false)
                    };
                    (k.clone(), pattern)
                })
                .collect(),
        ),
        Value::Array(items) => {
            JsonPattern::Array(items.iter().map(|v| loosely(v, false)).collect())
        }
        // A fixed vocabulary (currency, who cancelled): the exact word.
        Value::String(s) if s == "KRW" || s == "customer" => JsonPattern::Json(value.clone()),
        leaf => Like::new(JsonPattern::Json(leaf.clone())).into(),
    }
}

/// `example` without the `data` fields its schema does not require (an `Option` the Rust
/// types accept absent or null): a consumer needs nothing of them.
fn without_optional_fields(event_type: &str, example: &Value) -> Value {
    let file = studycafe_e2e::stack::repository()
        .join("shared-events/schemas")
        .join(shared_events::schema_file_name(event_type, 1));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let required: Vec<&str> = schema["$defs"][event_type]["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut example = example.clone();
    if let Some(data) = example["data"].as_object_mut() {
        data.retain(|field, _| required.contains(&field.as_str()));
    }
    example
}

/// Writes `consumer`'s pacts with each producer for the events `consumes` accepts, and runs
/// every message of them through `check` (the consumer's own handling).
async fn consumer_pacts(
    consumer: &str,
    consumes: &[&str],
    check: impl AsyncFn(&RawEnvelope) -> Result<(), String>,
) {
    let _writing = PACTS.write().await;
    for (producer, topic) in [
        ("seat", topics::SEAT),
        ("registration", topics::REGISTRATION),
        ("payment", topics::PAYMENT),
    ] {
        let chosen: Vec<_> = examples()
            .into_iter()
            .filter(|(ty, t, _)| *t == topic && consumes.contains(ty))
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let _ = std::fs::remove_file(pact_file(consumer, producer));
        let mut builder = PactBuilder::new_v4(consumer, producer);
        builder.with_output_dir(crate::support::pacts_dir());
        for (ty, _, example) in &chosen {
            let example = without_optional_fields(ty, example);
            builder.message_interaction(format!("a {ty} event"), |mut i| {
                i.given(format!("a reservation's saga produced {ty}"));
                i.json_body(loosely(&example, true));
                i
            });
        }
        for message in builder.messages() {
            let bytes = message.contents.contents.value().unwrap_or_default();
            let raw = RawEnvelope::from_json(&bytes).unwrap();
            check(&raw)
                .await
                .unwrap_or_else(|e| panic!("{consumer} cannot handle {}: {e}", raw.event_type));
        }
        assert!(
            pact_file(consumer, producer).is_file(),
            "{consumer}-{producer} written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_seat_view_states_the_events_it_projects() {
    // Every event seat-view's `translate` handles, but ReservationCompleted: a test run cannot
    // wait for a window to end, so no producer run shows it (the shared type still ties it).
    let consumes = [
        "SeatDefined",
        "SeatReserved",
        "ReservationConfirmed",
        "ReservationRejected",
        "ReservationPaid",
        "ReservationPaymentFailed",
        "ReservationRegistered",
        "ReservationCancelled",
        "ReservationExpired",
        "BookingConfirmed",
        "BookingRejected",
        "SeatRegistered",
        "RegistrationCancelled",
        "PaymentCompleted",
        "PaymentDeclined",
        "PaymentRefunded",
    ];
    consumer_pacts("seat-view", &consumes, async |raw| {
        let event = IntegrationEvent::decode(raw).map_err(|e| e.to_string())?;
        seat_view_service::inbound::events::translate(&event, raw.occurred_at)
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_registration_states_the_events_it_reacts_to() {
    use registration_service::{
        application::BookingService,
        domain::{CafeId, ports::SystemClock},
        inbound::events::BookingReactions,
        outbound::sqlite::SqliteStore,
    };
    use studycafe_messaging::EventHandler as _;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registration.db").display());
    let store = SqliteStore::open(&url, studycafe_messaging::OutboxSignal::new())
        .await
        .unwrap();
    let reactions = BookingReactions {
        service: BookingService::new(store, CafeId::parse("main").unwrap(), Arc::new(SystemClock)),
    };
    let consumes = [
        "SeatReserved",
        "PaymentCompleted",
        "ReservationCancelled",
        "ReservationExpired",
        "ReservationPaymentFailed",
    ];
    consumer_pacts("registration", &consumes, async |raw| {
        let event = IntegrationEvent::decode(raw).map_err(|e| e.to_string())?;
        let received = ReceivedEvent {
            envelope: raw.clone(),
            event,
            topic: "contract".into(),
            partition: 0,
            offset: 0,
        };
        reactions.handle(&received).await.map_err(|e| e.to_string())
    })
    .await;
}

// --- producers -----------------------------------------------------------------------------

/// What the producers published in one run of the whole suite: one real event per type.
async fn produced_events() -> HashMap<String, Value> {
    // The hold must outlast the paid path (confirm, pay, register) yet let the expired case end
    // soon; the clock only starts once every consumer holds its partitions, because a group's
    // first rebalance took 7 s on a loaded CI machine and the paid booking expired meanwhile.
    let stack = Stack::start(StackOptions {
        hold_secs: 15,
        ..StackOptions::default()
    })
    .await;
    for consumer in [&stack.payment, &stack.seat, &stack.seat_view]
        .into_iter()
        .chain(&stack.registrations)
    {
        stack
            .wait_for_partitions(std::slice::from_ref(consumer))
            .await;
    }
    let alice = stack.customer("alice").await;
    // Confirmed, paid, registered, then cancelled and refunded.
    // The cafe decides once registration has the booking (it learns of it from SeatReserved).
    let decide = async |id: &str, action: &str, body: Option<Value>| {
        stack
            .eventually(&format!("{action} {id}"), || async {
                let (status, _) = stack
                    .send(
                        reqwest::Method::POST,
                        Some(&stack.admin),
                        &format!("/api/admin/bookings/{id}/{action}"),
                        body.clone(),
                    )
                    .await;
                (status == 200).then_some(())
            })
            .await
    };
    let paid = stack
        .reserve_ok(&alice, "A-01", &Window::ahead(2, 1), "tok_approve")
        .await;
    decide(&paid, "confirm", None).await;
    stack.wait_for_status(&paid, "REGISTERED").await;
    let (status, body) = stack
        .send(
            reqwest::Method::DELETE,
            Some(&alice),
            &format!("/api/reservations/{paid}"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // Declined.
    let declined = stack
        .reserve_ok(&alice, "A-02", &Window::ahead(3, 1), "tok_decline")
        .await;
    decide(&declined, "confirm", None).await;
    stack.wait_for_status(&declined, "PAYMENT_FAILED").await;
    // Rejected.
    let rejected = stack
        .reserve_ok(&alice, "A-03", &Window::ahead(4, 1), "tok_approve")
        .await;
    decide(
        &rejected,
        "reject",
        Some(json!({"reason": "closed for cleaning"})),
    )
    .await;
    // Expired: nobody confirms it within the hold.
    let expired = stack
        .reserve_ok(&alice, "A-04", &Window::ahead(5, 1), "tok_approve")
        .await;
    stack.wait_for_status(&expired, "EXPIRED").await;

    let wanted = examples()
        .into_iter()
        .map(|(ty, _, _)| ty)
        .collect::<Vec<_>>();
    let mut found = HashMap::new();
    for topic in topics::ALL {
        let records = stack
            .events_when(topic, "every event type of the topic", |records| {
                let types: Vec<String> = records
                    .iter()
                    .map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned())
                    .collect();
                examples()
                    .iter()
                    .filter(|(_, t, _)| *t == topic)
                    .all(|(ty, _, _)| types.iter().any(|t| t == ty))
            })
            .await;
        for record in records {
            let event = record.json();
            let ty = event["type"].as_str().unwrap_or_default().to_owned();
            if wanted.contains(&ty.as_str()) {
                found.entry(ty).or_insert(event);
            }
        }
    }
    found
}

/// The events, served the way Pact's verifier asks a message provider for them: by the
/// interaction's description (`a <Type> event`).
async fn message_provider(events: HashMap<String, Value>) -> u16 {
    let events = Arc::new(events);
    let app = Router::new().route(
        "/",
        post(move |Json(request): Json<Value>| {
            let events = events.clone();
            async move {
                let description = request["description"].as_str().unwrap_or_default();
                let ty = description
                    .strip_prefix("a ")
                    .and_then(|d| d.strip_suffix(" event"))
                    .unwrap_or_default();
                match events.get(ty) {
                    Some(event) => Ok(Json(event.clone())),
                    None => Err((
                        axum::http::StatusCode::NOT_FOUND,
                        format!("no {ty} produced"),
                    )),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[derive(Debug)]
struct NoStates;

#[async_trait::async_trait]
impl ProviderStateExecutor for NoStates {
    async fn call(
        self: Arc<Self>,
        _interaction_id: Option<String>,
        _state: &ProviderState,
        _setup: bool,
        _client: Option<&reqwest_pact::Client>,
    ) -> anyhow::Result<HashMap<String, Value>> {
        // The state ("a reservation's saga produced X") is the run that produced the events.
        Ok(HashMap::new())
    }

    fn teardown(&self) -> bool {
        false
    }
}

/// One run of the suite serves both provider tests.
static PRODUCED: Mutex<Option<HashMap<String, Value>>> = Mutex::const_new(None);

async fn produced() -> HashMap<String, Value> {
    let mut produced = PRODUCED.lock().await;
    if produced.is_none() {
        *produced = Some(produced_events().await);
    }
    produced.clone().unwrap_or_default()
}

async fn verify_producers(events: HashMap<String, Value>) -> Vec<Result<(), String>> {
    let mut results = Vec::new();
    for producer in ["seat", "registration", "payment"] {
        let port = message_provider(events.clone()).await;
        results.push(
            verify::<NullRequestFilterExecutor, _>(
                producer,
                port,
                message_pacts_of(producer),
                None,
                Arc::new(NoStates),
            )
            .await
            .map_err(|e| format!("{producer}: {e}")),
        );
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_events_seat_registration_and_payment_publish_what_their_consumers_need() {
    let events = produced().await;
    for (producer, consumers) in [
        (
            "seat",
            ["notification", "registration", "seat-view"].as_slice(),
        ),
        ("registration", ["notification", "seat-view"].as_slice()),
        (
            "payment",
            ["notification", "registration", "seat-view"].as_slice(),
        ),
    ] {
        let files = pacts_of(producer);
        for consumer in consumers {
            assert!(
                files.contains(&pact_file(consumer, producer)),
                "{consumer} states no pact with {producer}: {files:?}"
            );
        }
    }
    for result in verify_producers(events).await {
        assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

/// A producer that renamed a field (a copy of its real events, changed): its consumers' pacts
/// must fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_events_breaking_a_field_fails_the_verification() {
    let mut events = produced().await;
    let registered = events
        .get_mut("SeatRegistered")
        .expect("SeatRegistered produced");
    let code = registered["data"]
        .as_object_mut()
        .unwrap()
        .remove("entryPassCode")
        .expect("entryPassCode");
    registered["data"]["passCode"] = code;
    let results = verify_producers(events).await;
    assert!(results[0].is_ok(), "seat is unchanged: {:?}", results[0]);
    let report = results[1]
        .clone()
        .expect_err("registration renamed entryPassCode");
    assert!(report.contains("entryPassCode"), "{report}");
    assert!(results[2].is_ok(), "payment is unchanged: {:?}", results[2]);
}
