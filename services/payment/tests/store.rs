//! The store adapters' own contract, below the HTTP API: the charge claim is a lease that
//! one instance holds at a time, renews, loses when it lapses and gives up when it records an
//! outcome; a settled payment is never claimed or settled again. The refund claim is the same
//! lease on a refund row, taken only while the refund is due, and never once it completed.
//! A save keeps every field a payment's or a refund's transitions can change; a stale one
//! writes nothing. Also: a SQLite database made by the first schema version opens and works
//! after the later migrations.

#[macro_use]
mod support;

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use payment_service::{
    application::MAX_REFUND_BACKOFF,
    domain::{
        ChargeRequest, ClosureReason, CustomerId, Money, Payment, PaymentToken, Refund,
        ReservationClosure, ReservationId,
        ports::{
            Claim, ClaimOutcome, CloseOutcome, Consumed, InsertOutcome, PaymentStore, SaveOutcome,
        },
    },
    outbound::{mysql::MySqlStore, sqlite::SqliteStore},
};
use studycafe_messaging::OutboxSignal;
use support::Backend;
use uuid::Uuid;

fn pending_payment(now: DateTime<Utc>) -> Payment {
    Payment::start(
        ChargeRequest {
            reservation_id: ReservationId::parse(&Uuid::now_v7().to_string()).unwrap(),
            customer_id: CustomerId::parse("alice").unwrap(),
            amount: Money::parse(4000, "KRW").unwrap(),
            token: PaymentToken::parse("tok_approve").unwrap(),
        },
        now,
    )
}

fn claim(holder: Uuid, now: DateTime<Utc>) -> Claim {
    Claim {
        holder,
        now,
        until: now + Duration::seconds(15),
    }
}

async fn sqlite_store(dir: &tempfile::TempDir) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("payment.db").display());
    SqliteStore::open(&url, OutboxSignal::new()).await.unwrap()
}

async fn mysql_store() -> MySqlStore {
    let url = studycafe_testkit::engines::mysql_database().await;
    MySqlStore::open(&url, 4, OutboxSignal::new())
        .await
        .unwrap()
}

async fn charge_claims_are_leases_held_by_one_instance(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    match backend {
        Backend::Sqlite => leases(sqlite_store(&dir).await).await,
        Backend::MySql => leases(mysql_store().await).await,
    }
}

async fn refund_claims_are_leases_held_by_one_instance(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    match backend {
        Backend::Sqlite => refund_leases(sqlite_store(&dir).await).await,
        Backend::MySql => refund_leases(mysql_store().await).await,
    }
}

/// A completed payment whose reservation closed at `now`: its owed refund, as stored.
async fn owed_refund(store: &impl PaymentStore, now: DateTime<Utc>) -> Refund {
    let mut payment = pending_payment(now);
    assert_eq!(
        store.insert(&payment).await.unwrap(),
        InsertOutcome::Inserted
    );
    let event = payment.complete("ch_1", now).unwrap();
    assert!(matches!(
        store
            .settle(&mut payment, 0, &event, "test", None)
            .await
            .unwrap(),
        SaveOutcome::Saved(None)
    ));
    let closure = ReservationClosure {
        reservation_id: payment.reservation_id(),
        reason: ClosureReason::Cancelled,
        closed_at: now,
    };
    let consumed = Consumed {
        consumer: "payment",
        event_id: Uuid::now_v7(),
    };
    match store
        .close_reservation(&closure, consumed, now)
        .await
        .unwrap()
    {
        CloseOutcome::Recorded {
            refund: Some(refund),
        } => refund,
        other => panic!("no refund owed: {other:?}"),
    }
}

async fn refund_leases(store: impl PaymentStore) {
    let t0 = Utc::now();
    let at = |secs: i64| t0 + Duration::seconds(secs);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut refund = owed_refund(&store, t0).await;
    let id = refund.id();
    let due = |secs| {
        let store = &store;
        async move {
            store
                .due_refunds(at(secs), 10)
                .await
                .unwrap()
                .iter()
                .any(|r| r.id() == id)
        }
    };
    let outcome = |holder, secs, refund: &Refund| {
        let (store, refund) = (&store, refund.clone());
        async move {
            store
                .claim_refund(&refund, &claim(holder, at(secs)))
                .await
                .unwrap()
        }
    };
    assert!(due(0).await);
    assert_eq!(outcome(a, 0, &refund).await, ClaimOutcome::Claimed);
    assert!(!due(1).await, "a live claim is not handed out as due");
    assert_eq!(
        outcome(b, 1, &refund).await,
        ClaimOutcome::Busy,
        "held by a"
    );
    assert_eq!(
        outcome(a, 5, &refund).await,
        ClaimOutcome::Claimed,
        "a renews"
    );
    assert_eq!(
        outcome(b, 16, &refund).await,
        ClaimOutcome::Busy,
        "renewed until 20"
    );
    // a's replica crashed mid-call: its lapsed claim is due again and b takes over.
    assert!(due(21).await, "a lapsed claim is due again");
    assert_eq!(
        outcome(b, 21, &refund).await,
        ClaimOutcome::Claimed,
        "lapsed: b takes over"
    );
    assert_eq!(
        outcome(a, 22, &refund).await,
        ClaimOutcome::Busy,
        "a lost it"
    );

    // b's call goes unanswered: recording the attempt releases the claim (b's lease would
    // run to 36), and the refund is due again after its backoff, for any instance.
    let stale = refund.clone();
    refund.postpone(at(23), MAX_REFUND_BACKOFF);
    assert_eq!(
        store.postpone_refund(&refund).await.unwrap(),
        SaveOutcome::Saved(())
    );
    let retry = (refund.next_attempt_at() - t0).num_seconds();
    assert!(retry < 36, "backoff {retry} s");
    assert_eq!(
        outcome(a, 23, &refund).await,
        ClaimOutcome::Busy,
        "not due before its backoff"
    );
    assert_eq!(
        outcome(a, retry, &stale).await,
        ClaimOutcome::Busy,
        "a copy read before the attempt was recorded is refused"
    );
    assert!(due(retry).await);
    assert_eq!(
        outcome(a, retry, &refund).await,
        ClaimOutcome::Claimed,
        "released: due and claimable before b's lease would have lapsed"
    );

    // Completed: never claimed again, never completed twice, no longer due.
    refund.complete("rf_1", at(retry + 1)).unwrap();
    assert_eq!(
        store.complete_refund(&refund).await.unwrap(),
        SaveOutcome::Saved(())
    );
    assert_eq!(outcome(a, retry + 1, &refund).await, ClaimOutcome::Busy);
    assert_eq!(outcome(b, 1000, &refund).await, ClaimOutcome::Busy);
    assert_eq!(outcome(b, 1000, &stale).await, ClaimOutcome::Busy);
    assert!(!due(1000).await);
    assert_eq!(
        store.complete_refund(&refund).await.unwrap(),
        SaveOutcome::Stale
    );
    let stored = store.refunds_of(refund.payment_id()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status().as_str(), "COMPLETED");
    assert_eq!(stored[0].provider_ref(), Some("rf_1"));
}

async fn leases(store: impl PaymentStore) {
    let t0 = Utc::now();
    let at = |secs: i64| t0 + Duration::seconds(secs);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut payment = pending_payment(t0);
    assert_eq!(
        store.insert(&payment).await.unwrap(),
        InsertOutcome::Inserted
    );

    let id = payment.id();
    let outcome = |holder, secs| {
        let store = &store;
        async move {
            store
                .claim_charge(id, &claim(holder, at(secs)))
                .await
                .unwrap()
        }
    };
    assert_eq!(outcome(a, 0).await, ClaimOutcome::Claimed);
    assert_eq!(outcome(b, 1).await, ClaimOutcome::Busy, "held by a");
    assert_eq!(outcome(a, 5).await, ClaimOutcome::Claimed, "a renews");
    assert_eq!(outcome(b, 16).await, ClaimOutcome::Busy, "renewed until 20");
    assert_eq!(
        outcome(b, 21).await,
        ClaimOutcome::Claimed,
        "lapsed: b takes over"
    );
    assert_eq!(outcome(a, 22).await, ClaimOutcome::Busy, "a lost it");

    // An unanswered attempt gives the claim up: any instance may retry at once.
    let version = payment.version();
    payment.provider_unavailable(at(23)).unwrap();
    assert_eq!(
        store.save_attempt(&mut payment, version).await.unwrap(),
        SaveOutcome::Saved(())
    );
    assert_eq!(
        payment.version(),
        version + 1,
        "the store gives the saved copy the version it stored"
    );
    assert_eq!(outcome(a, 23).await, ClaimOutcome::Claimed, "released");

    // Settled: never claimed again, never settled twice.
    let version = payment.version();
    let event = payment.complete("ch_1", at(24)).unwrap();
    assert!(matches!(
        store
            .settle(&mut payment, version, &event, "test", None)
            .await
            .unwrap(),
        SaveOutcome::Saved(None)
    ));
    assert_eq!(outcome(a, 25).await, ClaimOutcome::Busy);
    assert_eq!(outcome(b, 1000).await, ClaimOutcome::Busy);
    assert_eq!(
        store
            .settle(&mut payment, version, &event, "test", None)
            .await
            .unwrap(),
        SaveOutcome::Stale
    );
    let stored = store
        .by_reservation(payment.reservation_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status().as_str(), "COMPLETED");
    assert_eq!(stored.version(), version + 1);
}

/// Replicas of a deployment start at the same moment on a new MySQL database: the migrations
/// run once (under sqlx's lock), and both come up. (SQLite is the one-process embedded store.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_starting_together_on_a_new_mysql_database_both_come_up() {
    let url = studycafe_testkit::engines::mysql_database().await;
    let (first, second) = tokio::join!(
        MySqlStore::open(&url, 4, OutboxSignal::new()),
        MySqlStore::open(&url, 4, OutboxSignal::new()),
    );
    let (first, second) = (
        first.expect("first replica"),
        second.expect("second replica"),
    );
    let payment = pending_payment(Utc::now());
    assert_eq!(
        first.insert(&payment).await.unwrap(),
        InsertOutcome::Inserted
    );
    match second.insert(&payment).await.unwrap() {
        InsertOutcome::Exists(existing) => assert_eq!(existing.id(), payment.id()),
        other => panic!("a second payment for one reservation: {other:?}"),
    }
}

/// Deployments created their SQLite database with the first migration only: the later ones
/// must apply to it, and its rows must stay readable and claimable.
#[tokio::test]
async fn a_database_from_the_first_schema_version_is_brought_up_to_date() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("migrations");
    std::fs::create_dir(&first).unwrap();
    std::fs::write(
        first.join("0001_payments.sql"),
        include_str!("../migrations/sqlite/0001_payments.sql"),
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("payment.db").display());

    let old = pending_payment(Utc::now());
    {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let mut conn = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(first.as_path())
            .await
            .unwrap()
            .run_direct(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO payments (payment_id, reservation_id, customer_id, amount, currency,
               payment_token, status, attempts, created_at, updated_at, version)
             VALUES (?, ?, 'alice', 4000, 'KRW', 'tok_approve', 'PENDING', 0, 0, 0, 0)",
        )
        .bind(old.id().to_string())
        .bind(old.reservation_id().to_string())
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
    let found = store
        .by_reservation(old.reservation_id())
        .await
        .unwrap()
        .expect("the old row");
    assert_eq!(found.id(), old.id());
    assert_eq!(
        store
            .claim_charge(old.id(), &claim(Uuid::new_v4(), Utc::now()))
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
}

/// An instant the stores keep exactly (milliseconds), `seconds` after a fixed one.
fn exact(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_796_000_000_123).unwrap() + Duration::seconds(seconds)
}

fn consumed() -> Consumed {
    Consumed {
        consumer: "payment",
        event_id: Uuid::now_v7(),
    }
}

/// A fresh database on `backend` (its URL, to look into its outbox).
async fn fresh_database(backend: Backend, dir: &tempfile::TempDir) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("payment.db").display()),
        Backend::MySql => studycafe_testkit::engines::mysql_database().await,
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
        Backend::MySql => {
            let pool = sqlx::MySqlPool::connect(url).await.unwrap();
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

/// `loaded` is `saved`, field by field (so a failure names the field), then as a whole.
fn assert_payment_stored_as_saved(loaded: &Payment, saved: &Payment, step: &str) {
    let (l, s) = (loaded.state(), saved.state());
    assert_eq!(l.id, s.id, "{step}: id");
    assert_eq!(l.reservation_id, s.reservation_id, "{step}: reservation_id");
    assert_eq!(l.customer_id, s.customer_id, "{step}: customer_id");
    assert_eq!(l.amount, s.amount, "{step}: amount");
    assert_eq!(l.token, s.token, "{step}: token");
    assert_eq!(l.status, s.status, "{step}: status");
    assert_eq!(l.provider_ref, s.provider_ref, "{step}: provider_ref");
    assert_eq!(l.decline_reason, s.decline_reason, "{step}: decline_reason");
    assert_eq!(l.attempts, s.attempts, "{step}: attempts");
    assert_eq!(l.created_at, s.created_at, "{step}: created_at");
    assert_eq!(l.updated_at, s.updated_at, "{step}: updated_at");
    assert_eq!(l.version, s.version, "{step}: version");
    assert_eq!(loaded, saved, "{step}: the whole payment");
}

/// `loaded` is `saved`, field by field, then as a whole.
fn assert_refund_stored_as_saved(loaded: &Refund, saved: &Refund, step: &str) {
    let (l, s) = (loaded.state(), saved.state());
    assert_eq!(l.id, s.id, "{step}: id");
    assert_eq!(l.payment_id, s.payment_id, "{step}: payment_id");
    assert_eq!(l.reservation_id, s.reservation_id, "{step}: reservation_id");
    assert_eq!(l.charge_ref, s.charge_ref, "{step}: charge_ref");
    assert_eq!(l.amount, s.amount, "{step}: amount");
    assert_eq!(l.status, s.status, "{step}: status");
    assert_eq!(l.provider_ref, s.provider_ref, "{step}: provider_ref");
    assert_eq!(l.attempts, s.attempts, "{step}: attempts");
    assert_eq!(
        l.next_attempt_at, s.next_attempt_at,
        "{step}: next_attempt_at"
    );
    assert_eq!(l.cause, s.cause, "{step}: cause");
    assert_eq!(l.created_at, s.created_at, "{step}: created_at");
    assert_eq!(l.updated_at, s.updated_at, "{step}: updated_at");
    assert_eq!(loaded, saved, "{step}: the whole refund");
}

/// The payment fields a transition may change whose value differs between the two.
fn payment_changes(before: &Payment, after: &Payment) -> Vec<&'static str> {
    let (b, a) = (before.state(), after.state());
    [
        ("status", b.status != a.status),
        ("provider_ref", b.provider_ref != a.provider_ref),
        ("decline_reason", b.decline_reason != a.decline_reason),
        ("attempts", b.attempts != a.attempts),
        ("updated_at", b.updated_at != a.updated_at),
        ("version", b.version != a.version),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}

/// The refund fields a transition may change whose value differs between the two.
fn refund_changes(before: &Refund, after: &Refund) -> Vec<&'static str> {
    let (b, a) = (before.state(), after.state());
    [
        ("status", b.status != a.status),
        ("provider_ref", b.provider_ref != a.provider_ref),
        ("attempts", b.attempts != a.attempts),
        ("next_attempt_at", b.next_attempt_at != a.next_attempt_at),
        ("updated_at", b.updated_at != a.updated_at),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}

async fn reload_payment(store: &impl PaymentStore, payment: &Payment) -> Payment {
    store
        .by_reservation(payment.reservation_id())
        .await
        .unwrap()
        .expect("the payment")
}

async fn reload_refund(store: &impl PaymentStore, refund: &Refund) -> Refund {
    let mut refunds = store.refunds_of(refund.payment_id()).await.unwrap();
    assert_eq!(refunds.len(), 1, "one refund per payment");
    refunds.remove(0)
}

/// Records a new PENDING payment started at `now` and checks it reads back as it was.
async fn insert_exact(store: &impl PaymentStore, now: DateTime<Utc>) -> Payment {
    let payment = pending_payment(now);
    assert_eq!(
        store.insert(&payment).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_payment_stored_as_saved(&reload_payment(store, &payment).await, &payment, "inserted");
    payment
}

/// Stores an unanswered attempt at `now` and checks the store kept every field.
async fn attempt(
    store: &impl PaymentStore,
    payment: &mut Payment,
    now: DateTime<Utc>,
    changed: &mut BTreeSet<&'static str>,
) {
    let before = payment.clone();
    let version = payment.version();
    payment.provider_unavailable(now).unwrap();
    assert_eq!(
        store.save_attempt(payment, version).await.unwrap(),
        SaveOutcome::Saved(())
    );
    assert_eq!(
        payment.version(),
        version + 1,
        "attempt: the saved copy's version"
    );
    assert_payment_stored_as_saved(&reload_payment(store, payment).await, payment, "attempt");
    changed.extend(payment_changes(&before, payment));
}

/// Settles `payment` with the provider's `answer` at `now` (owing `refund_if_closed` too) and
/// checks the store kept every field; returns the refund it stored.
async fn settle(
    store: &impl PaymentStore,
    payment: &mut Payment,
    answer: Result<&str, &str>,
    now: DateTime<Utc>,
    changed: &mut BTreeSet<&'static str>,
) -> Option<Refund> {
    let before = payment.clone();
    let version = payment.version();
    let event = match answer {
        Ok(provider_ref) => payment.complete(provider_ref, now),
        Err(reason) => payment.decline(reason, now),
    }
    .unwrap();
    let owed = Refund::owed(payment, "closed-before", now);
    let SaveOutcome::Saved(refund) = store
        .settle(payment, version, &event, "test", owed.as_ref())
        .await
        .unwrap()
    else {
        panic!("settle {answer:?}: stale");
    };
    assert_eq!(
        payment.version(),
        version + 1,
        "settle: the saved copy's version"
    );
    assert_payment_stored_as_saved(&reload_payment(store, payment).await, payment, "settled");
    changed.extend(payment_changes(&before, payment));
    refund
}

async fn save_persists_every_field_a_payment_and_refund_can_change(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
            every_field_round_trips(store).await;
        }
        Backend::MySql => {
            let store = MySqlStore::open(&url, 4, OutboxSignal::new())
                .await
                .unwrap();
            every_field_round_trips(store).await;
        }
    }
    assert_eq!(
        outbox_types(backend, &url).await,
        [
            "PaymentCompleted",
            "PaymentDeclined",
            "PaymentRefunded",
            "PaymentCompleted",
            "PaymentRefunded",
        ],
        "each save wrote its event"
    );
}

/// Drives payments through every transition (an unanswered attempt, approval, decline) and
/// refunds through theirs (owed on closure or on settling a closed reservation's payment,
/// postponed, completed), saving after each: what the store reads back is what was saved,
/// and between them the steps change every field a payment or a refund can change.
async fn every_field_round_trips(store: impl PaymentStore) {
    let mut changed = BTreeSet::new();

    let mut paid = insert_exact(&store, exact(0)).await;
    attempt(&store, &mut paid, exact(1), &mut changed).await;
    let refund = settle(&store, &mut paid, Ok("ch_1"), exact(2), &mut changed).await;
    assert_eq!(refund, None, "its reservation is not closed");
    assert_eq!((paid.version(), paid.attempts()), (2, 2));

    let mut declined = insert_exact(&store, exact(3)).await;
    settle(
        &store,
        &mut declined,
        Err("card declined"),
        exact(4),
        &mut changed,
    )
    .await;

    assert_eq!(
        changed,
        BTreeSet::from([
            "attempts",
            "decline_reason",
            "provider_ref",
            "status",
            "updated_at",
            "version"
        ]),
        "the steps change every field a payment can change"
    );

    // The paid reservation closes: its refund is owed, postponed, then completed.
    let mut changed = BTreeSet::new();
    let closure = ReservationClosure {
        reservation_id: paid.reservation_id(),
        reason: ClosureReason::Cancelled,
        closed_at: exact(5),
    };
    let CloseOutcome::Recorded {
        refund: Some(mut refund),
    } = store
        .close_reservation(&closure, consumed(), exact(5))
        .await
        .unwrap()
    else {
        panic!("no refund owed");
    };
    assert_refund_stored_as_saved(&reload_refund(&store, &refund).await, &refund, "owed");
    for (n, step) in [(6, "postponed"), (7, "postponed again")] {
        let before = refund.clone();
        refund.postpone(exact(n), MAX_REFUND_BACKOFF);
        assert_eq!(
            store.postpone_refund(&refund).await.unwrap(),
            SaveOutcome::Saved(())
        );
        assert_refund_stored_as_saved(&reload_refund(&store, &refund).await, &refund, step);
        changed.extend(refund_changes(&before, &refund));
    }
    let before = refund.clone();
    refund.complete("rf_1", exact(20)).unwrap();
    assert_eq!(
        store.complete_refund(&refund).await.unwrap(),
        SaveOutcome::Saved(())
    );
    assert_refund_stored_as_saved(&reload_refund(&store, &refund).await, &refund, "completed");
    changed.extend(refund_changes(&before, &refund));
    assert_eq!(
        changed,
        BTreeSet::from([
            "attempts",
            "next_attempt_at",
            "provider_ref",
            "status",
            "updated_at"
        ]),
        "the steps change every field a refund can change"
    );

    // A reservation closed before its payment completes: settling stores the owed refund.
    let mut late = insert_exact(&store, exact(30)).await;
    let closure = ReservationClosure {
        reservation_id: late.reservation_id(),
        reason: ClosureReason::Expired,
        closed_at: exact(31),
    };
    assert_eq!(
        store
            .close_reservation(&closure, consumed(), exact(31))
            .await
            .unwrap(),
        CloseOutcome::Recorded { refund: None }
    );
    let refund = settle(
        &store,
        &mut late,
        Ok("ch_2"),
        exact(32),
        &mut BTreeSet::new(),
    )
    .await
    .expect("the refund owed on settling");
    assert_refund_stored_as_saved(
        &reload_refund(&store, &refund).await,
        &refund,
        "owed on settling",
    );
    let mut refund = refund;
    refund.complete("rf_2", exact(33)).unwrap();
    assert_eq!(
        store.complete_refund(&refund).await.unwrap(),
        SaveOutcome::Saved(())
    );
    assert_refund_stored_as_saved(&reload_refund(&store, &refund).await, &refund, "completed");
}

async fn a_stale_save_is_refused_and_changes_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
            stale_saves_change_nothing(store).await;
        }
        Backend::MySql => {
            let store = MySqlStore::open(&url, 4, OutboxSignal::new())
                .await
                .unwrap();
            stale_saves_change_nothing(store).await;
        }
    }
    assert_eq!(
        outbox_types(backend, &url).await,
        Vec::<String>::new(),
        "the refused settlement's event is not in the outbox"
    );
}

/// Two copies of one payment read at version 0: the first save wins; the second (stale),
/// whether an attempt or a settlement, is refused and writes nothing.
async fn stale_saves_change_nothing(store: impl PaymentStore) {
    let mut ours = insert_exact(&store, exact(0)).await;
    let mut theirs = ours.clone();
    attempt(&store, &mut theirs, exact(1), &mut BTreeSet::new()).await;

    ours.provider_unavailable(exact(2)).unwrap();
    let unsaved = ours.clone();
    assert_eq!(
        store.save_attempt(&mut ours, 0).await.unwrap(),
        SaveOutcome::Stale
    );
    assert_eq!(
        ours, unsaved,
        "a refused attempt leaves the caller's copy as it was"
    );
    assert_payment_stored_as_saved(
        &reload_payment(&store, &ours).await,
        &theirs,
        "after a stale attempt",
    );

    // Still at version 0, and PENDING: its answer comes in.
    let event = ours.complete("ch_late", exact(3)).unwrap();
    let unsaved = ours.clone();
    assert_eq!(
        store
            .settle(&mut ours, 0, &event, "late", None)
            .await
            .unwrap(),
        SaveOutcome::Stale
    );
    assert_eq!(
        ours, unsaved,
        "a refused settlement leaves the caller's copy as it was"
    );
    assert_payment_stored_as_saved(
        &reload_payment(&store, &ours).await,
        &theirs,
        "after a stale settlement",
    );
}

on_every_backend!(
    charge_claims_are_leases_held_by_one_instance,
    refund_claims_are_leases_held_by_one_instance,
    save_persists_every_field_a_payment_and_refund_can_change,
    a_stale_save_is_refused_and_changes_nothing,
);
