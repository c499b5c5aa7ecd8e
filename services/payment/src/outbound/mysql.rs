//! The MySQL/MariaDB adapter of [`PaymentStore`] (production).
//!
//! Same contract as the SQLite adapter, without its single writer: several connections of
//! several replicas write at once, so every rule that SQLite got from serialised writes is
//! carried by InnoDB here.
//!
//! - Sessions run at READ COMMITTED with a short lock wait (`innodb_lock_wait_timeout`) and a
//!   statement time limit, so a stuck lock fails a request instead of piling them up.
//! - "Owe a refund if the reservation is closed" (in `settle`) and "owe a refund if the
//!   payment completed" (in `close_reservation`) both lock the payment row first — `settle`
//!   by updating it, `close_reservation` with `SELECT ... FOR UPDATE` — and read the other
//!   side with a locking read afterwards. Whichever commits second sees the first, so a
//!   closure racing a completion cannot miss its refund; the one lock order keeps the pair
//!   from deadlocking. A deadlock or lock-wait timeout still reruns the transaction (a few
//!   times) before it is reported.
//! - The charge and refund claims (a lease in the payment or refund row, see [`Claim`]) keep
//!   two replicas from asking the card provider about one payment or refund at once.
//! - Every state change writes its outbox row after updating (and so locking) its aggregate
//!   row, in the same transaction (`studycafe_messaging::mysql`): per-key order holds.
//! - The schema (`migrations/mysql`, run at start-up under a `GET_LOCK` of our own, so replicas
//!   starting together apply it once: see [`migrate`]) backs the rules up on its own: unique reservation per
//!   payment and payment per refund, CHECK constraints on values, and triggers that refuse a
//!   change to a settled payment, a refund of a payment that is not COMPLETED and a change
//!   to a completed refund.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{
    Connection as _, Executor as _, MySql, MySqlConnection, MySqlPool,
    mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions},
};
use studycafe_messaging::{
    OutboxSignal, mysql as outbox,
    write::{READY_WITHIN, Writer},
};

use crate::{
    domain::{
        Payment, PaymentEvent, PaymentId, Refund, ReservationClosure, ReservationId,
        ports::{
            Claim, ClaimOutcome, CloseOutcome, Consumed, InsertOutcome, PaymentStore, SaveOutcome,
            StoreError,
        },
    },
    outbound::{
        StoreAdapter, published_language,
        records::{
            CLAIM_CHARGE, CLAIM_REFUND, PaymentRow, RefundRow, STRANDED_PAYMENTS, at_version,
            bind_claim, claim_outcome, convert, ms, stored_version,
        },
    },
};

/// Connections per replica: enough for the HTTP handlers, the consumer, the settlement worker
/// and the relay at once, small enough for a dozen replicas on one server's default
/// `max_connections` (151).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long a statement waits for a row lock before failing (seconds).
const LOCK_WAIT_SECS: u32 = 5;

/// The longest a statement may run (seconds); nothing here should take close to it.
const STATEMENT_SECS: u32 = 10;

/// Transaction reruns after a deadlock or lock-wait timeout.
const TRANSIENT_RETRIES: usize = 3;

#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    /// Every write transaction begins here (cancel-safe).
    writer: Writer<MySql>,
    signal: OutboxSignal,
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

/// MySQL's "deadlock found" (1213) and "lock wait timeout" (1205): rerunning the transaction
/// is the documented answer.
fn is_transient(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|db| matches!(db.number(), 1205 | 1213))
}

fn is_duplicate(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// Runs `attempt` (one whole transaction) again after a transient lock failure.
async fn rerun_transient<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if is_transient(&e) && tries < TRANSIENT_RETRIES => {
                tries += 1;
                tracing::warn!(error = %e, tries, "{what}: lock conflict, running the transaction again");
                tokio::time::sleep(Duration::from_millis(10 * tries as u64)).await;
            }
            other => return other.map_err(store_error),
        }
    }
}

impl MySqlStore {
    /// Connects to the database at `url` (which must exist) and brings its schema up to date.
    pub async fn open(
        url: &str,
        max_connections: u32,
        signal: OutboxSignal,
    ) -> anyhow::Result<Self> {
        let options: MySqlConnectOptions = url.parse()?;
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    configure_session(conn).await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        outbox::install(&pool).await?;
        migrate(&options).await?;
        Ok(Self {
            writer: Writer::new("payment", pool.clone()),
            pool,
            signal,
        })
    }
}

/// How long a starting replica waits for another one's migrations.
const MIGRATION_LOCK_SECS: u32 = 120;

/// Brings the schema up to date, one replica at a time.
///
/// Why our own lock: sqlx's MySQL migration lock is `GET_LOCK(name, -1)` with the answer
/// ignored, and MariaDB does not take -1 as "wait forever" — it answers NULL at once — so two
/// replicas starting together would both apply a migration. `GET_LOCK` with a real timeout,
/// checked, on a connection of its own (without the pool's statement time limit: a migration
/// or the wait may take longer).
async fn migrate(options: &MySqlConnectOptions) -> anyhow::Result<()> {
    let mut conn = MySqlConnection::connect_with(options).await?;
    // Named after the database (hashed: lock names are at most 64 characters).
    let lock = "CONCAT('studycafe-payment-migrations:', SHA1(DATABASE()))";
    let locked: Option<i64> = sqlx::query_scalar(&format!("SELECT GET_LOCK({lock}, ?)"))
        .bind(MIGRATION_LOCK_SECS)
        .fetch_one(&mut conn)
        .await?;
    if locked != Some(1) {
        anyhow::bail!(
            "another instance has held the migration lock for {MIGRATION_LOCK_SECS} s (GET_LOCK answered {locked:?})"
        );
    }
    let migrated = sqlx::migrate!("./migrations/mysql").run(&mut conn).await;
    // Closing the session would release the lock too; releasing says so.
    sqlx::query(&format!("SELECT RELEASE_LOCK({lock})"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    migrated?;
    Ok(())
}

/// Per-connection settings: READ COMMITTED (locking reads decide, plain reads see the latest
/// commit), a short lock wait and a statement time limit (named differently by MariaDB and
/// MySQL).
async fn configure_session(conn: &mut MySqlConnection) -> sqlx::Result<()> {
    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await?;
    conn.execute(format!("SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECS}").as_str())
        .await?;
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut *conn)
        .await?;
    let limit = if version.contains("MariaDB") {
        format!("SET SESSION max_statement_time = {STATEMENT_SECS}")
    } else {
        // MySQL limits SELECTs only (milliseconds).
        format!("SET SESSION max_execution_time = {}", STATEMENT_SECS * 1000)
    };
    conn.execute(limit.as_str()).await?;
    Ok(())
}

async fn payment_by_reservation(
    conn: &mut MySqlConnection,
    id: ReservationId,
    lock: bool,
) -> sqlx::Result<Option<Payment>> {
    let sql = if lock {
        "SELECT * FROM payments WHERE reservation_id = ? FOR UPDATE"
    } else {
        "SELECT * FROM payments WHERE reservation_id = ?"
    };
    sqlx::query_as::<_, PaymentRow>(sql)
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .map(Payment::try_from)
        .transpose()
}

/// Stores `refund` unless its payment has one already; true when it was stored.
async fn insert_refund(conn: &mut MySqlConnection, refund: &Refund) -> sqlx::Result<bool> {
    // A plain INSERT and the unique key's error, not INSERT IGNORE: IGNORE would also turn a
    // CHECK or trigger refusal into a warning.
    let inserted = sqlx::query(
        "INSERT INTO refunds (refund_id, payment_id, reservation_id, charge_ref, amount, currency,
           status, provider_ref, attempts, next_attempt_at, cause, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(refund.state().id.to_string())
    .bind(refund.state().payment_id.to_string())
    .bind(refund.state().reservation_id.to_string())
    .bind(&refund.state().charge_ref)
    .bind(refund.state().amount.amount())
    .bind(refund.state().amount.currency().as_str())
    .bind(refund.state().status.as_str())
    .bind(&refund.state().provider_ref)
    .bind(i64::from(refund.state().attempts))
    .bind(ms(refund.state().next_attempt_at))
    .bind(&refund.state().cause)
    .bind(ms(refund.state().created_at))
    .bind(ms(refund.state().updated_at))
    .execute(conn)
    .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

impl MySqlStore {
    async fn settle_once(
        &self,
        payment: &Payment,
        expected_version: i64,
        event: &PaymentEvent,
        causation: &str,
        refund_if_closed: Option<&Refund>,
    ) -> sqlx::Result<SaveOutcome<Option<Refund>>> {
        let mut tx = self.writer.begin().await?;
        // Locks the payment row first (see the module docs on lock order).
        let updated = sqlx::query(
            "UPDATE payments SET status = ?, provider_ref = ?, decline_reason = ?, attempts = ?,
               updated_at = ?, version = ?, claim_holder = NULL, claimed_until = NULL
             WHERE payment_id = ? AND version = ? AND status = 'PENDING'",
        )
        .bind(payment.state().status.as_str())
        .bind(&payment.state().provider_ref)
        .bind(&payment.state().decline_reason)
        .bind(i64::from(payment.state().attempts))
        .bind(ms(payment.state().updated_at))
        .bind(stored_version(expected_version))
        .bind(payment.state().id.to_string())
        .bind(expected_version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(SaveOutcome::Stale);
        }
        let message = published_language::payment_message(
            payment,
            event,
            causation,
            payment.state().updated_at,
        );
        outbox::enqueue(&mut tx, &message).await?;
        let mut refund = None;
        if let Some(candidate) = refund_if_closed {
            // A locking read: waits for a closure being recorded right now, and sees it.
            let closed: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM reservation_closures WHERE reservation_id = ? FOR UPDATE",
            )
            .bind(payment.state().reservation_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if closed.is_some() && insert_refund(&mut tx, candidate).await? {
                refund = Some(candidate.clone());
            }
        }
        tx.commit().await?;
        Ok(SaveOutcome::Saved(refund))
    }

    async fn close_once(
        &self,
        closure: &ReservationClosure,
        consumed: Consumed,
        now: DateTime<Utc>,
    ) -> sqlx::Result<CloseOutcome> {
        let mut tx = self.writer.begin().await?;
        if !outbox::claim(&mut tx, consumed.consumer, consumed.event_id).await? {
            return Ok(CloseOutcome::AlreadyApplied);
        }
        // The payment row first, locked: a completion committing meanwhile is waited for and
        // seen; one committing later sees this closure (see the module docs).
        let payment = payment_by_reservation(&mut tx, closure.reservation_id, true).await?;
        // The first closure is the one that counts (a reservation closes once; a second
        // report changes nothing but is still checked for an owed refund below).
        let recorded = sqlx::query(
            "INSERT INTO reservation_closures (reservation_id, reason, event_id, closed_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(closure.reservation_id.to_string())
        .bind(closure.reason.as_str())
        .bind(consumed.event_id.to_string())
        .bind(ms(closure.closed_at))
        .execute(&mut *tx)
        .await;
        match recorded {
            Ok(_) => {}
            Err(e) if is_duplicate(&e) => {}
            Err(e) => return Err(e),
        }
        let mut refund = None;
        if let Some(candidate) = payment
            .as_ref()
            .and_then(|p| Refund::owed(p, &consumed.event_id.to_string(), now))
            && insert_refund(&mut tx, &candidate).await?
        {
            refund = Some(candidate);
        }
        tx.commit().await?;
        Ok(CloseOutcome::Recorded { refund })
    }

    async fn complete_refund_once(&self, refund: &Refund) -> sqlx::Result<SaveOutcome> {
        let mut tx = self.writer.begin().await?;
        // The status check is what makes a refund's event exactly-once: of two workers that
        // both got the provider's (idempotent) answer, only the first one moves the row (the
        // second waits on its row lock, then matches nothing).
        let updated = sqlx::query(
            "UPDATE refunds SET status = ?, provider_ref = ?, updated_at = ?,
               claim_holder = NULL, claimed_until = NULL
             WHERE refund_id = ? AND status = 'PENDING'",
        )
        .bind(refund.state().status.as_str())
        .bind(&refund.state().provider_ref)
        .bind(ms(refund.state().updated_at))
        .bind(refund.state().id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(SaveOutcome::Stale);
        }
        outbox::enqueue(
            &mut tx,
            &published_language::refund_message(refund, refund.state().updated_at),
        )
        .await?;
        tx.commit().await?;
        Ok(SaveOutcome::Saved(()))
    }
}

fn saved_if(rows_affected: u64) -> SaveOutcome {
    // The pool's connections report matched rows (CLIENT_FOUND_ROWS), not changed rows.
    if rows_affected == 0 {
        SaveOutcome::Stale
    } else {
        SaveOutcome::Saved(())
    }
}

impl StoreAdapter for MySqlStore {
    type Outbox = outbox::MySqlOutbox;

    fn outbox(&self) -> Self::Outbox {
        outbox::MySqlOutbox::new(self.pool.clone())
    }

    /// Readiness: a write transaction begins within [`READY_WITHIN`].
    async fn ping(&self) -> Result<(), StoreError> {
        self.writer.probe(READY_WITHIN).await.map_err(store_error)
    }
}

impl PaymentStore for MySqlStore {
    async fn insert(&self, payment: &Payment) -> Result<InsertOutcome, StoreError> {
        // Of two replicas inserting one reservation's payment, the second waits on the unique
        // key until the first commits, then gets the duplicate error and reads the winner.
        let inserted = sqlx::query(
            "INSERT INTO payments (payment_id, reservation_id, customer_id, amount, currency,
               payment_token, status, provider_ref, decline_reason, attempts, created_at,
               updated_at, version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(payment.state().id.to_string())
        .bind(payment.state().reservation_id.to_string())
        .bind(payment.state().customer_id.as_str())
        .bind(payment.state().amount.amount())
        .bind(payment.state().amount.currency().as_str())
        .bind(payment.state().token.expose())
        .bind(payment.state().status.as_str())
        .bind(&payment.state().provider_ref)
        .bind(&payment.state().decline_reason)
        .bind(i64::from(payment.state().attempts))
        .bind(ms(payment.state().created_at))
        .bind(ms(payment.state().updated_at))
        .bind(payment.state().version)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(InsertOutcome::Inserted),
            Err(e) if is_duplicate(&e) => {
                let mut conn = self.pool.acquire().await.map_err(store_error)?;
                let existing =
                    payment_by_reservation(&mut conn, payment.state().reservation_id, false)
                        .await
                        .map_err(store_error)?
                        .ok_or_else(|| store_error("a conflicting payment vanished"))?;
                Ok(InsertOutcome::Exists(existing))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn by_reservation(&self, id: ReservationId) -> Result<Option<Payment>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        payment_by_reservation(&mut conn, id, false)
            .await
            .map_err(store_error)
    }

    async fn refunds_of(&self, payment: PaymentId) -> Result<Vec<Refund>, StoreError> {
        let rows = sqlx::query_as::<_, RefundRow>(
            "SELECT * FROM refunds WHERE payment_id = ? ORDER BY created_at",
        )
        .bind(payment.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        convert(rows).map_err(store_error)
    }

    async fn settle(
        &self,
        payment: &mut Payment,
        expected_version: i64,
        event: &PaymentEvent,
        causation: &str,
        refund_if_closed: Option<&Refund>,
    ) -> Result<SaveOutcome<Option<Refund>>, StoreError> {
        let settled = &*payment;
        let outcome = rerun_transient("settle", || {
            self.settle_once(
                settled,
                expected_version,
                event,
                causation,
                refund_if_closed,
            )
        })
        .await?;
        if matches!(outcome, SaveOutcome::Saved(_)) {
            self.signal.notify();
            at_version(payment, stored_version(expected_version));
        }
        Ok(outcome)
    }

    async fn claim_charge(
        &self,
        payment: PaymentId,
        claim: &Claim,
    ) -> Result<ClaimOutcome, StoreError> {
        // One guarded UPDATE: the row lock decides between two replicas claiming at once;
        // the second re-evaluates the condition on the committed row and matches nothing.
        let updated = bind_claim(sqlx::query(CLAIM_CHARGE), payment.to_string(), None, claim)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(claim_outcome(updated.rows_affected()))
    }

    async fn save_attempt(
        &self,
        payment: &mut Payment,
        expected_version: i64,
    ) -> Result<SaveOutcome, StoreError> {
        let version = stored_version(expected_version);
        let updated = sqlx::query(
            "UPDATE payments SET attempts = ?, updated_at = ?, version = ?,
               claim_holder = NULL, claimed_until = NULL
             WHERE payment_id = ? AND version = ? AND status = 'PENDING'",
        )
        .bind(i64::from(payment.state().attempts))
        .bind(ms(payment.state().updated_at))
        .bind(version)
        .bind(payment.state().id.to_string())
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        let outcome = saved_if(updated.rows_affected());
        if outcome == SaveOutcome::Saved(()) {
            at_version(payment, version);
        }
        Ok(outcome)
    }

    async fn close_reservation(
        &self,
        closure: &ReservationClosure,
        consumed: Consumed,
        now: DateTime<Utc>,
    ) -> Result<CloseOutcome, StoreError> {
        rerun_transient("close reservation", || {
            self.close_once(closure, consumed, now)
        })
        .await
    }

    async fn stranded_payments(
        &self,
        now: DateTime<Utc>,
        untouched_since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        let rows = sqlx::query_as::<_, PaymentRow>(STRANDED_PAYMENTS)
            .bind(ms(untouched_since))
            .bind(ms(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        convert(rows).map_err(store_error)
    }

    async fn due_refunds(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Refund>, StoreError> {
        let rows = sqlx::query_as::<_, RefundRow>(
            "SELECT * FROM refunds WHERE status = 'PENDING' AND next_attempt_at <= ?
               AND (claimed_until IS NULL OR claimed_until <= ?)
             ORDER BY next_attempt_at LIMIT ?",
        )
        .bind(ms(now))
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        convert(rows).map_err(store_error)
    }

    async fn claim_refund(
        &self,
        refund: &Refund,
        claim: &Claim,
    ) -> Result<ClaimOutcome, StoreError> {
        let attempts = Some(i64::from(refund.state().attempts));
        let updated = bind_claim(
            sqlx::query(CLAIM_REFUND),
            refund.state().id.to_string(),
            attempts,
            claim,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(claim_outcome(updated.rows_affected()))
    }

    async fn complete_refund(&self, refund: &Refund) -> Result<SaveOutcome, StoreError> {
        let outcome =
            rerun_transient("complete refund", || self.complete_refund_once(refund)).await?;
        if matches!(outcome, SaveOutcome::Saved(())) {
            self.signal.notify();
        }
        Ok(outcome)
    }

    async fn postpone_refund(&self, refund: &Refund) -> Result<SaveOutcome, StoreError> {
        let updated = sqlx::query(
            "UPDATE refunds SET attempts = ?, next_attempt_at = ?, updated_at = ?,
               claim_holder = NULL, claimed_until = NULL
             WHERE refund_id = ? AND status = 'PENDING'",
        )
        .bind(i64::from(refund.state().attempts))
        .bind(ms(refund.state().next_attempt_at))
        .bind(ms(refund.state().updated_at))
        .bind(refund.state().id.to_string())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(saved_if(updated.rows_affected()))
    }
}
