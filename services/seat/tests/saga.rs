//! The seat service reacting to the other contexts' events, taken off the real broker.

mod support;

use std::time::Duration;

use serde_json::Value;
use shared_events::{
    BookingConfirmed, BookingRejected, Currency, Envelope, EventMeta, Money, PaymentCompleted,
    SeatRegistered, topics,
};
use studycafe_testkit::kafka;
use support::{Db, in_hours, reservation_body, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(60);

async fn publish<T: shared_events::Event>(
    brokers: &str,
    reservation_id: &str,
    data: T,
) -> Envelope<T> {
    let envelope = Envelope::wrap(
        EventMeta::new("test", reservation_id, "test", chrono::Utc::now()),
        data,
    );
    kafka::produce(brokers, T::TOPIC, reservation_id, &envelope.to_json()).await;
    envelope
}

/// The types of the events about reservation `id` among `records`, in order.
fn types_of(records: &[kafka::Record], id: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| r.json())
        .filter(|e| e["correlationId"] == id)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn confirmed_paid_registered_each_exactly_once(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");
    let starts = in_hours(2);
    let id = app
        .reserve_id(&alice, &reservation_body("G-01", &starts, 2))
        .await;
    let brokers = app.broker.brokers();

    let confirmed = publish(
        &brokers,
        &id,
        BookingConfirmed {
            reservation_id: id.clone(),
            confirmed_by: "admin".into(),
        },
    )
    .await;
    app.wait_for_status(&id, "CONFIRMED").await;
    let view: Value = app.get(&alice, &id).await.json().await.unwrap();
    assert_eq!(view["paymentPending"], true);
    // The same event delivered again (a producer retry) is applied once.
    kafka::produce(&brokers, topics::REGISTRATION, &id, &confirmed.to_json()).await;

    publish(
        &brokers,
        &id,
        PaymentCompleted {
            reservation_id: id.clone(),
            payment_id: "pay-1".into(),
            amount: Money {
                amount: 24000,
                currency: Currency::Krw,
            },
        },
    )
    .await;
    app.wait_for_status(&id, "PAID").await;
    publish(
        &brokers,
        &id,
        SeatRegistered {
            reservation_id: id.clone(),
            registration_id: "reg-1".into(),
            seat_id: "G-01".into(),
            entry_pass_code: "123456".into(),
            starts_at: chrono::Utc::now(),
            ends_at: chrono::Utc::now(),
        },
    )
    .await;
    app.wait_for_status(&id, "REGISTERED").await;
    let view: Value = app.get(&alice, &id).await.json().await.unwrap();
    assert_eq!(view["paymentId"], "pay-1");
    assert_eq!(view["registrationId"], "reg-1");
    assert_eq!(view["paymentPending"], false);

    let records = kafka::read_topic(&brokers, topics::SEAT, 44, WAIT).await;
    assert_eq!(
        types_of(&records, &id),
        [
            "SeatReserved",
            "ReservationConfirmed",
            "ReservationPaid",
            "ReservationRegistered"
        ]
    );
    // Causation: the reservation's reaction names the event that caused it.
    let confirmed_event = records
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "ReservationConfirmed")
        .unwrap();
    assert_eq!(confirmed_event["causationId"], confirmed.id.to_string());
    app.stop().await;
}

/// Registration registers only after the payment completed, but `SeatRegistered` and
/// `PaymentCompleted` travel on different topics: the registration can arrive first (the
/// synchronous payment answer lost, the payment topic behind). It is kept, and the payment
/// then moves the reservation through PAID to REGISTERED. (Dropped, it left the reservation
/// PAID for good: found by the chaos run.)
async fn a_registration_that_overtakes_its_payment_is_applied_once_the_payment_arrives(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");
    let starts = in_hours(2);
    let id = app
        .reserve_id(&alice, &reservation_body("G-02", &starts, 1))
        .await;
    let brokers = app.broker.brokers();
    publish(
        &brokers,
        &id,
        BookingConfirmed {
            reservation_id: id.clone(),
            confirmed_by: "admin".into(),
        },
    )
    .await;
    app.wait_for_status(&id, "CONFIRMED").await;
    let confirmed: Value = app.get(&alice, &id).await.json().await.unwrap();
    // Times are kept to the second: the registration's update must show as a later one.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    publish(
        &brokers,
        &id,
        SeatRegistered {
            reservation_id: id.clone(),
            registration_id: "reg-early".into(),
            seat_id: "G-02".into(),
            entry_pass_code: "654321".into(),
            starts_at: chrono::Utc::now(),
            ends_at: chrono::Utc::now(),
        },
    )
    .await;
    let kept = studycafe_testkit::eventually(WAIT, "the registration kept", || async {
        let view: Value = app.get(&alice, &id).await.json().await.ok()?;
        (view["updatedAt"] != confirmed["updatedAt"]).then_some(view)
    })
    .await;
    assert_eq!(kept["status"], "CONFIRMED", "{kept}");
    assert_eq!(
        kept["registrationId"],
        Value::Null,
        "not registered yet: {kept}"
    );

    publish(
        &brokers,
        &id,
        PaymentCompleted {
            reservation_id: id.clone(),
            payment_id: "pay-late".into(),
            amount: Money {
                amount: 12000,
                currency: Currency::Krw,
            },
        },
    )
    .await;
    app.wait_for_status(&id, "REGISTERED").await;
    let view: Value = app.get(&alice, &id).await.json().await.unwrap();
    assert_eq!(view["paymentId"], "pay-late");
    assert_eq!(view["registrationId"], "reg-early");

    let records = kafka::read_topic(&brokers, topics::SEAT, 44, WAIT).await;
    assert_eq!(
        types_of(&records, &id),
        [
            "SeatReserved",
            "ReservationConfirmed",
            "ReservationPaid",
            "ReservationRegistered"
        ]
    );
    app.stop().await;
}

async fn a_rejected_booking_releases_the_seat_and_late_news_is_ignored(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");
    let starts = in_hours(3);
    let id = app
        .reserve_id(&alice, &reservation_body("B-05", &starts, 1))
        .await;
    let brokers = app.broker.brokers();
    publish(
        &brokers,
        &id,
        BookingRejected {
            reservation_id: id.clone(),
            rejected_by: "admin".into(),
            reason: "closed for cleaning".into(),
        },
    )
    .await;
    app.wait_for_status(&id, "REJECTED").await;
    let view: Value = app.get(&alice, &id).await.json().await.unwrap();
    assert_eq!(view["statusReason"], "closed for cleaning");
    // A confirmation arriving after the rejection changes nothing.
    publish(
        &brokers,
        &id,
        BookingConfirmed {
            reservation_id: id.clone(),
            confirmed_by: "admin".into(),
        },
    )
    .await;
    // News about a reservation that does not exist is recorded and skipped, not fatal.
    let ghost = uuid::Uuid::now_v7().to_string();
    publish(
        &brokers,
        &ghost,
        BookingConfirmed {
            reservation_id: ghost.clone(),
            confirmed_by: "admin".into(),
        },
    )
    .await;
    // The seat is free for the window again.
    let bob = app.keys.customer("bob");
    assert_eq!(
        app.reserve(&bob, &reservation_body("B-05", &starts, 1))
            .await
            .status(),
        202
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.status_of(&id).await, "REJECTED");
    app.stop().await;
}

async fn an_unpaid_hold_expires_and_frees_the_seat(db: Db) {
    let mut app = spawn_app_with(db, &[("SEAT_HOLD_SECS", "5")]).await;
    let alice = app.keys.customer("alice");
    let starts = in_hours(2);
    let id = app
        .reserve_id(&alice, &reservation_body("A-05", &starts, 1))
        .await;
    app.wait_for_status(&id, "EXPIRED").await;
    let records = kafka::read_topic(&app.broker.brokers(), topics::SEAT, 42, WAIT).await;
    let expired = records
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "ReservationExpired")
        .expect("ReservationExpired published");
    assert_eq!(expired["data"]["expiredIn"], "REQUESTED");
    let bob = app.keys.customer("bob");
    assert_eq!(
        app.reserve(&bob, &reservation_body("A-05", &starts, 1))
            .await
            .status(),
        202
    );
    app.stop().await;
}

on_both_backends!(
    confirmed_paid_registered_each_exactly_once,
    a_registration_that_overtakes_its_payment_is_applied_once_the_payment_arrives,
    a_rejected_booking_releases_the_seat_and_late_news_is_ignored,
    an_unpaid_hold_expires_and_frees_the_seat,
);
