//! The store's contract, on every backend. Two stores on one database, as two replicas have
//! them, applying the same events at the same moment (what a consumer-group rebalance can
//! cause): every event takes effect once. An entry pass code opens one booking only.

#[macro_use]
mod support;

use std::sync::Arc;

use chrono::{Duration, Utc};
use registration_service::{
    application::{Applied, BookingService, Opened, Reaction},
    domain::{
        Booking, BookingStatus, CafeId, CustomerId, Decider, Money, NewBooking, Registration,
        RegistrationId, ReservationId, SeatId, Window,
        ports::{BookingStore, Consumed, InsertOutcome, SaveOutcome, SystemClock},
    },
    outbound::{postgres::PgStore, sqlite::SqliteStore},
};
use studycafe_messaging::OutboxSignal;
use support::Backend;
use uuid::Uuid;

const EVENTS: usize = 40;

fn service<S: BookingStore>(store: S) -> BookingService<S> {
    BookingService::new(store, CafeId::parse("main").unwrap(), Arc::new(SystemClock))
}

fn new_booking(n: usize) -> NewBooking {
    let starts = Utc::now() + Duration::hours(1);
    NewBooking {
        reservation_id: ReservationId::parse(&Uuid::now_v7().to_string()).unwrap(),
        seat_id: SeatId::parse(&format!("S-{n}")).unwrap(),
        customer_id: CustomerId::parse("alice").unwrap(),
        window: Window::new(starts, starts + Duration::hours(2)).unwrap(),
        price: Money::krw(5000).unwrap(),
        hold_expires_at: Utc::now() + Duration::minutes(10),
    }
}

fn consumed(event_id: Uuid) -> Consumed {
    Consumed {
        consumer: "registration",
        event_id,
    }
}

/// The `type` of every event in the outbox, in outbox order.
async fn outbox_types(backend: Backend, url: &str) -> Vec<String> {
    const QUERY: &str = "SELECT payload FROM messaging_outbox ORDER BY seq";
    let payloads: Vec<Vec<u8>> = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query_scalar(QUERY).fetch_all(&pool).await.unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query_scalar(QUERY).fetch_all(&pool).await.unwrap()
        }
    };
    payloads
        .iter()
        .map(|p| {
            let event: serde_json::Value = serde_json::from_slice(p).unwrap();
            event["type"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn the_same_events_on_two_replicas_take_effect_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    // Opened together: both run the migrations' check at the same time.
    match backend {
        Backend::Sqlite => {
            let (one, two) = tokio::join!(
                SqliteStore::open(&url, OutboxSignal::new()),
                SqliteStore::open(&url, OutboxSignal::new()),
            );
            each_event_once(service(one.unwrap()), service(two.unwrap())).await;
        }
        Backend::Postgres => {
            let (one, two) = tokio::join!(
                PgStore::open(&url, 10, OutboxSignal::new()),
                PgStore::open(&url, 10, OutboxSignal::new()),
            );
            each_event_once(service(one.unwrap()), service(two.unwrap())).await;
        }
    }

    let types = outbox_types(backend, &url).await;
    assert_eq!(
        types.iter().filter(|t| *t == "BookingConfirmed").count(),
        EVENTS
    );
    assert_eq!(
        types.iter().filter(|t| *t == "SeatRegistered").count(),
        EVENTS
    );
    assert_eq!(types.len(), 2 * EVENTS);
}

/// Both replicas open the same bookings, then register them, concurrently: each event is
/// applied by exactly one of them.
async fn each_event_once<S: BookingStore>(one: BookingService<S>, two: BookingService<S>) {
    one.seed_policy(true).await.unwrap();

    let bookings: Vec<(NewBooking, Uuid)> = (0..EVENTS)
        .map(|n| (new_booking(n), Uuid::now_v7()))
        .collect();
    let mut opened = Vec::new();
    for (booking, event_id) in &bookings {
        for service in [&one, &two] {
            let service = service.clone();
            let booking = booking.clone();
            let event_id = *event_id;
            opened.push(tokio::spawn(async move {
                service.open(booking, consumed(event_id)).await.unwrap()
            }));
        }
    }
    let mut auto_confirmed = 0;
    for task in opened {
        match task.await.unwrap() {
            Opened::AutoConfirmed => auto_confirmed += 1,
            Opened::AlreadyApplied => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(auto_confirmed, EVENTS);

    let mut reactions = Vec::new();
    for (booking, _) in &bookings {
        let payment_event = Uuid::now_v7();
        for service in [&one, &two] {
            let service = service.clone();
            let id = booking.reservation_id;
            reactions.push(tokio::spawn(async move {
                service
                    .react(id, &Reaction::PaymentCompleted, consumed(payment_event))
                    .await
                    .unwrap()
            }));
        }
    }
    let mut registered = 0;
    for task in reactions {
        match task.await.unwrap() {
            Applied::Changed(_) => registered += 1,
            Applied::AlreadyApplied => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(registered, EVENTS);

    for (booking, _) in &bookings {
        let stored = two.booking(booking.reservation_id).await.unwrap();
        assert!(stored.registration.is_some());
        assert_eq!(stored.version, 1, "inserted confirmed, registered once");
    }
}

async fn an_entry_pass_code_opens_one_booking_only(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
            entry_pass_codes_are_unique(store).await;
        }
        Backend::Postgres => {
            let store = PgStore::open(&url, 10, OutboxSignal::new()).await.unwrap();
            entry_pass_codes_are_unique(store).await;
        }
    }
    assert_eq!(
        outbox_types(backend, &url).await,
        ["BookingConfirmed", "BookingConfirmed", "SeatRegistered"],
        "the refused registration's event is not in the outbox"
    );
}

/// Two confirmed bookings; registering the second with the first one's entry pass code is
/// refused, and leaves nothing behind.
async fn entry_pass_codes_are_unique<S: BookingStore>(store: S) {
    let now = Utc::now();
    let mut first = Booking::open(new_booking(1), now);
    let mut second = Booking::open(new_booking(2), now);
    for booking in [&mut first, &mut second] {
        let event = booking.confirm(Decider::AutoConfirm, now).unwrap();
        let outcome = store
            .insert(booking, Some(&event), consumed(Uuid::now_v7()))
            .await
            .unwrap();
        assert_eq!(outcome, InsertOutcome::Inserted);
    }

    let registration = Registration::issue(now);
    let event = first.register(registration.clone(), now).unwrap();
    let outcome = store.save(&first, 0, &event, "pay-1", None).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Saved);

    let payment = Uuid::now_v7();
    let same_code = Registration {
        id: RegistrationId::new(),
        ..registration.clone()
    };
    let event = second.register(same_code, now).unwrap();
    store
        .save(&second, 0, &event, "pay-2", Some(consumed(payment)))
        .await
        .expect_err("an entry pass code opens one booking only");

    let stored = store.get(second.reservation_id).await.unwrap().unwrap();
    assert_eq!(stored.status, BookingStatus::Confirmed);
    assert_eq!(stored.version, 0);
    assert!(stored.registration.is_none());
    assert!(
        store.mark_consumed(consumed(payment)).await.unwrap(),
        "the claim rolled back with the change, so a retry can apply the event"
    );
    let stored = store.get(first.reservation_id).await.unwrap().unwrap();
    assert_eq!(stored.status, BookingStatus::Registered);
    assert_eq!(
        stored.registration.map(|r| r.entry_pass_code),
        Some(registration.entry_pass_code)
    );
}

on_every_backend!(
    the_same_events_on_two_replicas_take_effect_once,
    an_entry_pass_code_opens_one_booking_only,
);
