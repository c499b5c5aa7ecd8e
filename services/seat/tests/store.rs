//! The store's contract, below the use cases, on every adapter: each test is one generic body
//! run on a fresh SQLite store and on a fresh PostgreSQL store (`TEST_POSTGRES_URL`).
//!
//! - `save` persists every field a transition can change, and `get` gives back exactly what
//!   was saved (the version the store's, one up);
//! - a save at a stale version is refused and changes nothing: no row, no event, no inbox
//!   record;
//! - `insert` refuses a reservation overlapping a live one of the same seat, and only that;
//! - a consumed event is recorded once, however often it is marked.

mod support;

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use seat_service::{
    domain::{
        CancelledBy, CustomerId, PaymentToken, Reservation, ReservationEvent, ReservationPolicy,
        ReservationState, SeatId, TimeWindow, TransitionError,
        ports::{Consumed, InsertOutcome, SaveOutcome},
    },
    outbound::{StoreAdapter, catalogue, postgres::PgStore, sqlite::SqliteStore},
};
use studycafe_messaging::{OutboxSignal, OutboxStore as _};
use support::{Db, fresh_database};
use uuid::Uuid;

/// Runs `body(store)` on a fresh store of `db`'s kind holding the default catalogue: one
/// generic body for every adapter.
macro_rules! on_a_fresh_store {
    ($db:expr, $body:ident) => {{
        let db = $db;
        let (url, _dir) = fresh_database(db).await;
        match db {
            Db::Sqlite => {
                $body(catalogued(SqliteStore::open(&url, OutboxSignal::new()).await.unwrap()).await)
                    .await
            }
            Db::Postgres => {
                $body(catalogued(PgStore::open(&url, 4, OutboxSignal::new()).await.unwrap()).await)
                    .await
            }
        }
    }};
}

async fn catalogued<S: StoreAdapter>(store: S) -> S {
    store
        .sync_catalogue(&catalogue::parse(catalogue::DEFAULT).unwrap())
        .await
        .unwrap();
    store
}

/// The tests' clock: whole seconds, as both stores keep time.
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn consumed(consumer: &'static str) -> Consumed {
    Consumed {
        consumer,
        event_id: Uuid::now_v7(),
    }
}

/// A new reservation of `seat` for `hours` hours from `starts_at`, requested at `at(0)`; not
/// stored.
async fn new_reservation<S: StoreAdapter>(
    store: &S,
    seat: &str,
    starts_at: DateTime<Utc>,
    hours: i64,
) -> (Reservation, ReservationEvent) {
    let policy = ReservationPolicy::default();
    let seat = store
        .seat(&SeatId::parse(seat).unwrap())
        .await
        .unwrap()
        .expect("a catalogued seat");
    let window = TimeWindow::for_new_reservation(starts_at, hours, &policy, at(0)).unwrap();
    Reservation::request(
        &seat,
        CustomerId::parse("alice").unwrap(),
        window,
        PaymentToken::parse("tok_approve").unwrap(),
        &policy,
        at(0),
    )
    .unwrap()
}

/// A new reservation, inserted; `get` gives back every field as inserted.
async fn inserted<S: StoreAdapter>(
    store: &S,
    seat: &str,
    starts_at: DateTime<Utc>,
    hours: i64,
) -> Reservation {
    let (reservation, event) = new_reservation(store, seat, starts_at, hours).await;
    assert_eq!(
        store
            .insert(&reservation, &event, "test", None)
            .await
            .unwrap(),
        InsertOutcome::Inserted
    );
    let loaded = store
        .get(reservation.id())
        .await
        .unwrap()
        .expect("inserted");
    assert_eq!(
        differences(&loaded.state(), &reservation.state()),
        Vec::<&str>::new(),
        "fields loaded otherwise than inserted"
    );
    loaded
}

/// The fields in which `a` and `b` differ, by name. Names every field of the state: one the
/// aggregate gains does not compile here until it is compared.
fn differences(a: &ReservationState, b: &ReservationState) -> Vec<&'static str> {
    let ReservationState {
        id,
        seat_id,
        customer_id,
        window,
        price,
        status,
        status_reason,
        hold_expires_at,
        payment_token,
        payment_attempts,
        next_payment_at,
        payment_id,
        registration_id,
        created_at,
        updated_at,
        version,
    } = a;
    let mut differ = Vec::new();
    macro_rules! compare {
        ($($field:ident),+) => {
            $(if *$field != b.$field {
                differ.push(stringify!($field));
            })+
        };
    }
    compare!(
        id,
        seat_id,
        customer_id,
        window,
        price,
        status,
        status_reason,
        hold_expires_at,
        payment_token,
        payment_attempts,
        next_payment_at,
        payment_id,
        registration_id,
        created_at,
        updated_at,
        version
    );
    differ
}

/// Applies `transition` to `reservation` (as loaded), saves it with its events, and asserts
/// that `get` gives back every field as saved, at the next version, and that the events went
/// to the outbox. Adds the fields the step changed to `changed`; returns the reservation as
/// loaded.
async fn step<S: StoreAdapter>(
    store: &S,
    mut reservation: Reservation,
    changed: &mut BTreeSet<&'static str>,
    transition: impl FnOnce(&mut Reservation) -> Result<Vec<ReservationEvent>, TransitionError>,
) -> Reservation {
    let before = reservation.state();
    let version = reservation.version();
    let events = transition(&mut reservation).unwrap();
    let backlog = store.outbox().backlog().await.unwrap();
    assert_eq!(
        store
            .save(&reservation, version, &events, "test", None)
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    let loaded = store.get(reservation.id()).await.unwrap().expect("saved");
    let saved = ReservationState {
        version: version + 1,
        ..reservation.state()
    };
    assert_eq!(
        differences(&loaded.state(), &saved),
        Vec::<&str>::new(),
        "fields loaded otherwise than saved (status {:?})",
        saved.status
    );
    assert_eq!(loaded.state(), saved);
    assert_eq!(
        store.outbox().backlog().await.unwrap() - backlog,
        events.len() as i64,
        "the save's events, in the outbox"
    );
    changed.extend(differences(&before, &saved));
    loaded
}

async fn save_persists_every_field_the_aggregate_can_change(db: Db) {
    on_a_fresh_store!(db, every_field_survives_a_save)
}

async fn every_field_survives_a_save<S: StoreAdapter>(store: S) {
    let mut changed = BTreeSet::new();

    // Confirmed, payment postponed, registered before the payment was seen, paid (and so
    // registered), completed.
    let r = inserted(&store, "A-01", at(60), 2).await;
    let window_ends = r.window().ends_at();
    let r = step(&store, r, &mut changed, |r| {
        r.confirm(at(1)).map(|e| vec![e])
    })
    .await;
    let r = step(&store, r, &mut changed, |r| {
        r.postpone_payment(Duration::seconds(4), at(2))
            .map(|()| vec![])
    })
    .await;
    assert_eq!(r.payment().attempts(), 1);
    let r = step(&store, r, &mut changed, |r| r.register("reg-1", at(3))).await;
    assert_eq!(r.registration_id(), Some("reg-1"));
    let r = step(&store, r, &mut changed, |r| r.mark_paid("pay-1", at(4))).await;
    assert_eq!(r.payment().payment_id(), Some("pay-1"));
    assert_eq!(r.payment().next_attempt_at(), None);
    step(&store, r, &mut changed, |r| {
        r.complete(window_ends + Duration::minutes(1))
            .map(|e| vec![e])
    })
    .await;

    // Confirmed, then declined: the status reason.
    let r = inserted(&store, "A-02", at(60), 2).await;
    let r = step(&store, r, &mut changed, |r| {
        r.confirm(at(1)).map(|e| vec![e])
    })
    .await;
    let r = step(&store, r, &mut changed, |r| {
        r.mark_payment_failed("card declined", at(5))
            .map(|e| vec![e])
    })
    .await;
    assert_eq!(r.status_reason(), Some("card declined"));

    // Every field a transition can change was changed and saved, and nothing else changed.
    assert_eq!(
        changed,
        BTreeSet::from([
            "status",
            "status_reason",
            "payment_attempts",
            "next_payment_at",
            "payment_id",
            "registration_id",
            "updated_at",
            "version",
        ])
    );
}

async fn a_stale_version_is_refused_and_changes_nothing(db: Db) {
    on_a_fresh_store!(db, stale_saves_are_refused)
}

async fn stale_saves_are_refused<S: StoreAdapter>(store: S) {
    let read = inserted(&store, "A-03", at(60), 2).await;
    let id = read.id();

    // Two copies read at version 0: the first one's save wins.
    let mut first = read.clone();
    let event = first.confirm(at(1)).unwrap();
    assert_eq!(
        store
            .save(&first, 0, &[event], "test", Some(consumed("seat")))
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    let stored = store.get(id).await.unwrap().unwrap();
    let backlog = store.outbox().backlog().await.unwrap();

    let mut second = read.clone();
    let events = [second.reject("no seats today", at(2)).unwrap()];
    let late = consumed("seat");
    assert_eq!(
        store
            .save(&second, 0, &events, "test", Some(late))
            .await
            .unwrap(),
        SaveOutcome::Stale
    );
    // A version ahead of the stored one is no better.
    assert_eq!(
        store
            .save(&second, 5, &events, "test", Some(late))
            .await
            .unwrap(),
        SaveOutcome::Stale
    );
    assert_eq!(
        store.get(id).await.unwrap().unwrap(),
        stored,
        "row unchanged"
    );
    assert_eq!(
        store.outbox().backlog().await.unwrap(),
        backlog,
        "no event from a refused save"
    );

    // Nor was the refused save's consumed event recorded: decided again on the stored
    // reservation, it applies.
    let mut again = stored;
    let event = again.cancel(CancelledBy::Customer, at(3)).unwrap();
    assert_eq!(
        store
            .save(&again, again.version(), &[event], "test", Some(late))
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
}

async fn insert_refuses_an_overlapping_live_reservation_of_the_seat(db: Db) {
    on_a_fresh_store!(db, overlaps_are_refused)
}

async fn overlaps_are_refused<S: StoreAdapter>(store: S) {
    // A-04 from 10:00 to 12:00.
    let live = inserted(&store, "A-04", at(120), 2).await;
    let backlog = store.outbox().backlog().await.unwrap();
    for (starts_in, hours, what) in [
        (120, 2, "the same window"),
        (180, 1, "inside it"),
        (60, 4, "around it"),
        (60, 2, "over its start"),
        (180, 2, "over its end"),
    ] {
        let (refused, event) = new_reservation(&store, "A-04", at(starts_in), hours).await;
        assert_eq!(
            store.insert(&refused, &event, "test", None).await.unwrap(),
            InsertOutcome::SeatTaken,
            "{what}"
        );
        assert_eq!(store.get(refused.id()).await.unwrap(), None, "{what}");
    }
    assert_eq!(
        store.outbox().backlog().await.unwrap(),
        backlog,
        "no event from a refused insert"
    );

    // Windows are half-open: the hours either side are free; another seat is free.
    inserted(&store, "A-04", at(60), 1).await;
    inserted(&store, "A-04", at(240), 1).await;
    inserted(&store, "A-05", at(120), 2).await;

    // A reservation no longer live holds nothing.
    let mut cancelled = live;
    let event = cancelled.cancel(CancelledBy::Customer, at(1)).unwrap();
    assert_eq!(
        store
            .save(&cancelled, 0, &[event], "test", None)
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    inserted(&store, "A-04", at(120), 2).await;
}

async fn a_consumed_event_is_recorded_once(db: Db) {
    on_a_fresh_store!(db, consumed_once)
}

async fn consumed_once<S: StoreAdapter>(store: S) {
    let read = inserted(&store, "A-06", at(60), 2).await;
    let id = read.id();
    let news = consumed("seat");
    store.mark_consumed(news).await.unwrap();
    store.mark_consumed(news).await.unwrap();
    let backlog = store.outbox().backlog().await.unwrap();

    // Recorded: a change that consumes the same event is not applied.
    let mut confirmed = read.clone();
    let events = [confirmed.confirm(at(1)).unwrap()];
    assert_eq!(
        store
            .save(&confirmed, 0, &events, "test", Some(news))
            .await
            .unwrap(),
        SaveOutcome::AlreadyApplied
    );
    assert_eq!(store.get(id).await.unwrap().unwrap(), read, "row unchanged");
    assert_eq!(store.outbox().backlog().await.unwrap(), backlog);

    // The record is the consumer's: another consumer's event of the same id is its own.
    let other = Consumed {
        consumer: "seat-other",
        event_id: news.event_id,
    };
    assert_eq!(
        store
            .save(&confirmed, 0, &events, "test", Some(other))
            .await
            .unwrap(),
        SaveOutcome::Saved
    );

    // An event consumed by a save is recorded as well: marked again, still once.
    let recorded = store.get(id).await.unwrap().unwrap();
    store.mark_consumed(other).await.unwrap();
    let mut cancelled = recorded.clone();
    let event = cancelled.cancel(CancelledBy::Customer, at(2)).unwrap();
    assert_eq!(
        store
            .save(
                &cancelled,
                recorded.version(),
                &[event],
                "test",
                Some(other)
            )
            .await
            .unwrap(),
        SaveOutcome::AlreadyApplied
    );
    assert_eq!(store.get(id).await.unwrap().unwrap(), recorded);
}

on_both_backends!(
    save_persists_every_field_the_aggregate_can_change,
    a_stale_version_is_refused_and_changes_nothing,
    insert_refuses_an_overlapping_live_reservation_of_the_seat,
    a_consumed_event_is_recorded_once,
);
