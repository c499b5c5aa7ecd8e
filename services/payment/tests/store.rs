//! The store adapters' own contract, below the HTTP API: the charge claim is a lease that
//! one instance holds at a time, renews, loses when it lapses and gives up when it records an
//! outcome; a settled payment is never claimed or settled again. The refund claim is the same
//! lease on a refund row, taken only while the refund is due, and never once it completed.
//! Also: a SQLite database made by the first schema version opens and works after the later
//! migrations.

#[macro_use]
mod support;

use chrono::{DateTime, Duration, Utc};
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
            .settle(&payment, 0, &event, "test", None)
            .await
            .unwrap(),
        SaveOutcome::Saved(None)
    ));
    let closure = ReservationClosure {
        reservation_id: payment.reservation_id,
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
    let id = refund.id;
    let due = |secs| {
        let store = &store;
        async move {
            store
                .due_refunds(at(secs), 10)
                .await
                .unwrap()
                .iter()
                .any(|r| r.id == id)
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
    let retry = (refund.next_attempt_at - t0).num_seconds();
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
    let stored = store.refunds_of(refund.payment_id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status.as_str(), "COMPLETED");
    assert_eq!(stored[0].provider_ref.as_deref(), Some("rf_1"));
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

    let id = payment.id;
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
    let version = payment.version;
    payment.provider_unavailable(at(23)).unwrap();
    assert_eq!(
        store.save_attempt(&payment, version).await.unwrap(),
        SaveOutcome::Saved(())
    );
    payment.version += 1;
    assert_eq!(outcome(a, 23).await, ClaimOutcome::Claimed, "released");

    // Settled: never claimed again, never settled twice.
    let version = payment.version;
    let event = payment.complete("ch_1", at(24)).unwrap();
    assert!(matches!(
        store
            .settle(&payment, version, &event, "test", None)
            .await
            .unwrap(),
        SaveOutcome::Saved(None)
    ));
    assert_eq!(outcome(a, 25).await, ClaimOutcome::Busy);
    assert_eq!(outcome(b, 1000).await, ClaimOutcome::Busy);
    assert_eq!(
        store
            .settle(&payment, version, &event, "test", None)
            .await
            .unwrap(),
        SaveOutcome::Stale
    );
    let stored = store
        .by_reservation(payment.reservation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status.as_str(), "COMPLETED");
    assert_eq!(stored.version, version + 1);
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
        InsertOutcome::Exists(existing) => assert_eq!(existing.id, payment.id),
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
        .bind(old.id.to_string())
        .bind(old.reservation_id.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
    let found = store
        .by_reservation(old.reservation_id)
        .await
        .unwrap()
        .expect("the old row");
    assert_eq!(found.id, old.id);
    assert_eq!(
        store
            .claim_charge(old.id, &claim(Uuid::new_v4(), Utc::now()))
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
}

on_every_backend!(
    charge_claims_are_leases_held_by_one_instance,
    refund_claims_are_leases_held_by_one_instance,
);
