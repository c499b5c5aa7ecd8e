//! The store's contract, on every backend. Two stores on one database, as two replicas have
//! them, applying the same events at the same moment (what a consumer-group rebalance can
//! cause): every event takes effect once. An entry pass code opens one booking only. A save
//! keeps every field a booking's transitions can change; a stale one writes nothing.

#[macro_use]
mod support;

use std::{collections::BTreeSet, sync::Arc};

use chrono::{DateTime, Duration, TimeZone, Utc};
use registration_service::{
    application::{Applied, BookingService, Opened, Reaction},
    domain::{
        AdminId, Booking, BookingEvent, BookingStatus, CafeId, CustomerId, Decider, Money,
        NewBooking, Registration, RegistrationId, RejectionReason, ReservationEnded, ReservationId,
        SeatId, TransitionError, Window,
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
        assert!(stored.registration().is_some());
        assert_eq!(stored.version(), 1, "inserted confirmed, registered once");
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
    let outcome = store
        .save(&mut first, 0, &event, "pay-1", None)
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Saved);

    let payment = Uuid::now_v7();
    let same_code = Registration::restore(
        RegistrationId::new(),
        registration.entry_pass_code().clone(),
        registration.registered_at(),
    );
    let event = second.register(same_code, now).unwrap();
    store
        .save(&mut second, 0, &event, "pay-2", Some(consumed(payment)))
        .await
        .expect_err("an entry pass code opens one booking only");

    let stored = store.get(second.reservation_id()).await.unwrap().unwrap();
    assert_eq!(stored.status(), BookingStatus::Confirmed);
    assert_eq!(stored.version(), 0);
    assert!(stored.registration().is_none());
    assert!(
        store.mark_consumed(consumed(payment)).await.unwrap(),
        "the claim rolled back with the change, so a retry can apply the event"
    );
    let stored = store.get(first.reservation_id()).await.unwrap().unwrap();
    assert_eq!(stored.status(), BookingStatus::Registered);
    assert_eq!(
        stored.registration().map(|r| r.entry_pass_code()),
        Some(registration.entry_pass_code())
    );
}

/// An instant the stores keep exactly (SQLite keeps milliseconds), `seconds` after a fixed one.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_796_000_000_123).unwrap() + Duration::seconds(seconds)
}

fn admin() -> AdminId {
    AdminId::parse("root").unwrap()
}

/// `loaded` is `saved`, field by field (so a failure names the field), then as a whole.
fn assert_stored_as_saved(loaded: &Booking, saved: &Booking, step: &str) {
    let (l, s) = (loaded.state(), saved.state());
    assert_eq!(l.reservation_id, s.reservation_id, "{step}: reservation_id");
    assert_eq!(l.seat_id, s.seat_id, "{step}: seat_id");
    assert_eq!(l.customer_id, s.customer_id, "{step}: customer_id");
    assert_eq!(l.window, s.window, "{step}: window");
    assert_eq!(l.price, s.price, "{step}: price");
    assert_eq!(
        l.hold_expires_at, s.hold_expires_at,
        "{step}: hold_expires_at"
    );
    assert_eq!(l.status, s.status, "{step}: status");
    assert_eq!(l.decided_by, s.decided_by, "{step}: decided_by");
    assert_eq!(l.reason, s.reason, "{step}: reason");
    assert_eq!(
        l.registration.as_ref().map(Registration::id),
        s.registration.as_ref().map(Registration::id),
        "{step}: registration id"
    );
    assert_eq!(
        l.registration.as_ref().map(Registration::entry_pass_code),
        s.registration.as_ref().map(Registration::entry_pass_code),
        "{step}: entry pass code"
    );
    assert_eq!(
        l.registration.as_ref().map(Registration::registered_at),
        s.registration.as_ref().map(Registration::registered_at),
        "{step}: registered_at"
    );
    assert_eq!(l.created_at, s.created_at, "{step}: created_at");
    assert_eq!(l.updated_at, s.updated_at, "{step}: updated_at");
    assert_eq!(l.version, s.version, "{step}: version");
    assert_eq!(loaded, saved, "{step}: the whole booking");
}

/// The mutable fields whose value differs between `before` and `after`.
fn changed_fields(before: &Booking, after: &Booking) -> Vec<&'static str> {
    let (b, a) = (before.state(), after.state());
    [
        ("status", b.status != a.status),
        ("decided_by", b.decided_by != a.decided_by),
        ("reason", b.reason != a.reason),
        ("registration", b.registration != a.registration),
        ("updated_at", b.updated_at != a.updated_at),
        ("version", b.version != a.version),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}

/// Stores a new PENDING booking (every instant one the stores keep exactly) and checks it
/// reads back as it was.
async fn insert_pending<S: BookingStore>(store: &S, n: usize, now: DateTime<Utc>) -> Booking {
    let new = NewBooking {
        window: Window::new(now + Duration::hours(1), now + Duration::hours(3)).unwrap(),
        hold_expires_at: now + Duration::minutes(10),
        ..new_booking(n)
    };
    let booking = Booking::open(new, now);
    let outcome = store
        .insert(&booking, None, consumed(Uuid::now_v7()))
        .await
        .unwrap();
    assert_eq!(outcome, InsertOutcome::Inserted);
    let loaded = store.get(booking.reservation_id()).await.unwrap().unwrap();
    assert_stored_as_saved(&loaded, &booking, "inserted");
    booking
}

/// Applies `transition` to `booking`, saves it, and checks that the store kept every field;
/// adds the fields it changed to `changed`.
async fn transition_and_save<S: BookingStore>(
    store: &S,
    booking: &mut Booking,
    step: &str,
    changed: &mut BTreeSet<&'static str>,
    transition: impl FnOnce(&mut Booking) -> Result<BookingEvent, TransitionError>,
) {
    let before = booking.clone();
    let version = booking.version();
    let event = transition(booking).unwrap();
    let outcome = store
        .save(
            booking,
            version,
            &event,
            step,
            Some(consumed(Uuid::now_v7())),
        )
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Saved, "{step}");
    assert_eq!(
        booking.version(),
        version + 1,
        "{step}: the saved copy is at the version the store holds"
    );
    let loaded = store.get(booking.reservation_id()).await.unwrap().unwrap();
    assert_stored_as_saved(&loaded, booking, step);
    changed.extend(changed_fields(&before, booking));
}

async fn save_persists_every_field_the_booking_can_change(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
            every_field_round_trips(store).await;
        }
        Backend::Postgres => {
            let store = PgStore::open(&url, 10, OutboxSignal::new()).await.unwrap();
            every_field_round_trips(store).await;
        }
    }
    assert_eq!(
        outbox_types(backend, &url).await,
        [
            "BookingConfirmed",
            "SeatRegistered",
            "RegistrationCancelled",
            "BookingRejected",
            "BookingConfirmed",
            "RegistrationCancelled",
        ],
        "each save wrote its event"
    );
}

/// Drives bookings through every transition (each decider, with and without a registration),
/// saving after each: what the store reads back is what was saved, and between them the steps
/// change every field a booking can change.
async fn every_field_round_trips<S: BookingStore>(store: S) {
    let mut changed = BTreeSet::new();

    let mut paid = insert_pending(&store, 1, at(0)).await;
    transition_and_save(
        &store,
        &mut paid,
        "confirmed by an admin",
        &mut changed,
        |b| b.confirm(Decider::Admin(admin()), at(1)),
    )
    .await;
    transition_and_save(&store, &mut paid, "registered", &mut changed, |b| {
        b.register(Registration::issue(at(2)), at(3))
    })
    .await;
    transition_and_save(
        &store,
        &mut paid,
        "registered, cancelled",
        &mut changed,
        |b| b.cancel(&ReservationEnded::CancelledByCustomer, at(4)),
    )
    .await;
    assert_eq!(paid.version(), 3);
    assert!(
        paid.registration().is_some(),
        "a cancelled booking keeps its registration"
    );

    let mut rejected = insert_pending(&store, 2, at(5)).await;
    transition_and_save(&store, &mut rejected, "rejected", &mut changed, |b| {
        b.reject(
            admin(),
            RejectionReason::parse("closed for cleaning").unwrap(),
            at(6),
        )
    })
    .await;

    let mut unpaid = insert_pending(&store, 3, at(7)).await;
    transition_and_save(&store, &mut unpaid, "auto-confirmed", &mut changed, |b| {
        b.confirm(Decider::AutoConfirm, at(8))
    })
    .await;
    transition_and_save(
        &store,
        &mut unpaid,
        "confirmed, cancelled",
        &mut changed,
        |b| {
            b.cancel(
                &ReservationEnded::PaymentFailed {
                    reason: "card declined".into(),
                },
                at(9),
            )
        },
    )
    .await;

    assert_eq!(
        changed,
        BTreeSet::from([
            "decided_by",
            "reason",
            "registration",
            "status",
            "updated_at",
            "version"
        ]),
        "the steps change every field a booking can change"
    );
}

async fn a_stale_save_is_refused_and_changes_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
            stale_save_changes_nothing(store).await;
        }
        Backend::Postgres => {
            let store = PgStore::open(&url, 10, OutboxSignal::new()).await.unwrap();
            stale_save_changes_nothing(store).await;
        }
    }
    assert_eq!(
        outbox_types(backend, &url).await,
        ["BookingConfirmed"],
        "the refused save's event is not in the outbox"
    );
}

/// Two copies of one booking read at version 0: the first save wins, the second (stale) is
/// refused and writes nothing — not the booking, not its event, not the consumed event's claim.
async fn stale_save_changes_nothing<S: BookingStore>(store: S) {
    let mut ours = insert_pending(&store, 1, at(0)).await;
    let mut theirs = ours.clone();
    let event = theirs.confirm(Decider::Admin(admin()), at(1)).unwrap();
    let outcome = store
        .save(&mut theirs, 0, &event, "theirs", None)
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Saved);

    let event = ours
        .reject(admin(), RejectionReason::parse("full").unwrap(), at(2))
        .unwrap();
    let unsaved = ours.clone();
    let late = Uuid::now_v7();
    let outcome = store
        .save(&mut ours, 0, &event, "ours", Some(consumed(late)))
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Stale);
    assert_eq!(
        ours, unsaved,
        "a refused save leaves the caller's copy as it was"
    );
    let loaded = store.get(ours.reservation_id()).await.unwrap().unwrap();
    assert_stored_as_saved(&loaded, &theirs, "after a stale save");
    assert!(
        store.mark_consumed(consumed(late)).await.unwrap(),
        "the claim rolled back with the refused save"
    );
}

on_every_backend!(
    the_same_events_on_two_replicas_take_effect_once,
    an_entry_pass_code_opens_one_booking_only,
    save_persists_every_field_the_booking_can_change,
    a_stale_save_is_refused_and_changes_nothing,
);
