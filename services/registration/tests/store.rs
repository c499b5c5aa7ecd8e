//! Two stores on one SQLite file, as two replicas have them, applying the same events at the
//! same moment (what a consumer-group rebalance can cause): every event takes effect once.

use std::sync::Arc;

use chrono::{Duration, Utc};
use registration_service::{
    domain::{
        CafeId, CustomerId, Money, NewBooking, ReservationId, SeatId, Window,
        ports::{Consumed, SystemClock},
        service::{Applied, BookingService, Opened, Reaction},
    },
    outbound::sqlite::SqliteStore,
};
use studycafe_messaging::OutboxSignal;
use uuid::Uuid;

const EVENTS: usize = 40;

async fn replica(url: &str) -> BookingService<SqliteStore> {
    let store = SqliteStore::open(url, OutboxSignal::new()).await.unwrap();
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

async fn outbox_types(url: &str) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM messaging_outbox ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    payloads
        .iter()
        .map(|p| {
            let event: serde_json::Value = serde_json::from_slice(p).unwrap();
            event["type"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_events_on_two_replicas_take_effect_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registration.db").display());
    // Opened together: both run the migrations' check at the same time.
    let (one, two) = tokio::join!(replica(&url), replica(&url));
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

    let types = outbox_types(&url).await;
    assert_eq!(
        types.iter().filter(|t| *t == "BookingConfirmed").count(),
        EVENTS
    );
    assert_eq!(
        types.iter().filter(|t| *t == "SeatRegistered").count(),
        EVENTS
    );
    assert_eq!(types.len(), 2 * EVENTS);
    for (booking, _) in &bookings {
        let stored = two.booking(booking.reservation_id).await.unwrap();
        assert!(stored.registration.is_some());
        assert_eq!(stored.version, 1, "inserted confirmed, registered once");
    }
}
