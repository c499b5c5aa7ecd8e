//! The SQLite adapter of [`PaymentStore`] (embedded mode).
//!
//! The file is opened as every service opens its SQLite database ([`SqliteDatabase`]: WAL,
//! `synchronous = FULL`, one writer connection, a read pool, migrations under the write lock).
//! Every write transaction takes the write lock up front (`BEGIN IMMEDIATE`): that makes "is
//! the reservation closed? then owe a refund" atomic against the consumer recording that
//! closure, in this process and in another replica on the same file.
//!
//! The outbox and inbox tables live in the same database (see `studycafe_messaging::sqlite`):
//! every state change commits with the event it causes and the id of the event that caused it.
//! The schema backs the rules up on its own: one payment per reservation, one refund per
//! payment, refunds only of completed payments, settled payments never change status.

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqliteConnection, Transaction, migrate::Migrator};
use studycafe_messaging::{
    OutboxSignal,
    sqlite::{self as outbox, SqliteDatabase, Tables},
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

#[derive(Debug, Clone)]
pub struct SqliteStore {
    database: SqliteDatabase,
    signal: OutboxSignal,
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

impl SqliteStore {
    /// Opens (creating if missing, with its directory) the database at `url` and brings its
    /// schema up to date; safe when several replicas open one file at once.
    pub async fn open(url: &str, signal: OutboxSignal) -> anyhow::Result<Self> {
        let database = SqliteDatabase::open(url, &MIGRATOR, Tables::WithMessaging).await?;
        Ok(Self { database, signal })
    }

    /// A write transaction holding the write lock from its first statement.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.database.write().await.map_err(store_error)
    }
}

async fn payment_by_reservation(
    conn: &mut SqliteConnection,
    id: ReservationId,
) -> sqlx::Result<Option<Payment>> {
    sqlx::query_as::<_, PaymentRow>("SELECT * FROM payments WHERE reservation_id = ?")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .map(Payment::try_from)
        .transpose()
}

/// Stores `refund` unless its payment has one already; true when it was stored.
async fn insert_refund(conn: &mut SqliteConnection, refund: &Refund) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO refunds (refund_id, payment_id, reservation_id, charge_ref, amount, currency,
           status, provider_ref, attempts, next_attempt_at, cause, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (payment_id) DO NOTHING",
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
    .await?;
    Ok(inserted.rows_affected() == 1)
}

impl StoreAdapter for SqliteStore {
    type Outbox = outbox::SqliteOutbox;

    fn outbox(&self) -> Self::Outbox {
        self.database.outbox()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await.map_err(store_error)
    }
}

impl PaymentStore for SqliteStore {
    async fn insert(&self, payment: &Payment) -> Result<InsertOutcome, StoreError> {
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO payments (payment_id, reservation_id, customer_id, amount, currency,
               payment_token, status, provider_ref, decline_reason, attempts, created_at,
               updated_at, version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (reservation_id) DO NOTHING",
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
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let outcome = if inserted.rows_affected() == 1 {
            InsertOutcome::Inserted
        } else {
            let existing = payment_by_reservation(&mut tx, payment.state().reservation_id)
                .await
                .map_err(store_error)?
                .ok_or_else(|| store_error("a conflicting payment vanished"))?;
            InsertOutcome::Exists(existing)
        };
        tx.commit().await.map_err(store_error)?;
        Ok(outcome)
    }

    async fn by_reservation(&self, id: ReservationId) -> Result<Option<Payment>, StoreError> {
        let mut conn = self.database.reader.acquire().await.map_err(store_error)?;
        payment_by_reservation(&mut conn, id)
            .await
            .map_err(store_error)
    }

    async fn refunds_of(&self, payment: PaymentId) -> Result<Vec<Refund>, StoreError> {
        let rows = sqlx::query_as::<_, RefundRow>(
            "SELECT * FROM refunds WHERE payment_id = ? ORDER BY created_at",
        )
        .bind(payment.to_string())
        .fetch_all(&self.database.reader)
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
        let version = stored_version(expected_version);
        let mut tx = self.write().await?;
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
        .bind(version)
        .bind(payment.state().id.to_string())
        .bind(expected_version)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if updated.rows_affected() == 0 {
            return Ok(SaveOutcome::Stale);
        }
        let message = published_language::payment_message(
            payment,
            event,
            causation,
            payment.state().updated_at,
        );
        outbox::enqueue(&mut tx, &message)
            .await
            .map_err(store_error)?;
        let mut refund = None;
        if let Some(candidate) = refund_if_closed {
            let closed: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM reservation_closures WHERE reservation_id = ?")
                    .bind(payment.state().reservation_id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_error)?;
            if closed.is_some()
                && insert_refund(&mut tx, candidate)
                    .await
                    .map_err(store_error)?
            {
                refund = Some(candidate.clone());
            }
        }
        tx.commit().await.map_err(store_error)?;
        self.signal.notify();
        at_version(payment, version);
        Ok(SaveOutcome::Saved(refund))
    }

    async fn claim_charge(
        &self,
        payment: PaymentId,
        claim: &Claim,
    ) -> Result<ClaimOutcome, StoreError> {
        let updated = bind_claim(sqlx::query(CLAIM_CHARGE), payment.to_string(), None, claim)
            .execute(&self.database.writer)
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
        .execute(&self.database.writer)
        .await
        .map_err(store_error)?;
        Ok(if updated.rows_affected() == 0 {
            SaveOutcome::Stale
        } else {
            at_version(payment, version);
            SaveOutcome::Saved(())
        })
    }

    async fn close_reservation(
        &self,
        closure: &ReservationClosure,
        consumed: Consumed,
        now: DateTime<Utc>,
    ) -> Result<CloseOutcome, StoreError> {
        let mut tx = self.write().await?;
        if !outbox::claim(&mut tx, consumed.consumer, consumed.event_id)
            .await
            .map_err(store_error)?
        {
            return Ok(CloseOutcome::AlreadyApplied);
        }
        // The first closure is the one that counts (a reservation closes once; a second
        // report changes nothing but is still checked for an owed refund below).
        sqlx::query(
            "INSERT INTO reservation_closures (reservation_id, reason, event_id, closed_at)
             VALUES (?, ?, ?, ?) ON CONFLICT (reservation_id) DO NOTHING",
        )
        .bind(closure.reservation_id.to_string())
        .bind(closure.reason.as_str())
        .bind(consumed.event_id.to_string())
        .bind(ms(closure.closed_at))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let mut refund = None;
        let payment = payment_by_reservation(&mut tx, closure.reservation_id)
            .await
            .map_err(store_error)?;
        if let Some(candidate) = payment
            .as_ref()
            .and_then(|p| Refund::owed(p, &consumed.event_id.to_string(), now))
            && insert_refund(&mut tx, &candidate)
                .await
                .map_err(store_error)?
        {
            refund = Some(candidate);
        }
        tx.commit().await.map_err(store_error)?;
        Ok(CloseOutcome::Recorded { refund })
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
            .fetch_all(&self.database.reader)
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
        .bind(i64::from(limit))
        .fetch_all(&self.database.reader)
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
        .execute(&self.database.writer)
        .await
        .map_err(store_error)?;
        Ok(claim_outcome(updated.rows_affected()))
    }

    async fn complete_refund(&self, refund: &Refund) -> Result<SaveOutcome, StoreError> {
        let mut tx = self.write().await?;
        // The status check is what makes a refund's event exactly-once: of two workers that
        // both got the provider's (idempotent) answer, only the first one moves the row.
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
        .await
        .map_err(store_error)?;
        if updated.rows_affected() == 0 {
            return Ok(SaveOutcome::Stale);
        }
        outbox::enqueue(
            &mut tx,
            &published_language::refund_message(refund, refund.state().updated_at),
        )
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.signal.notify();
        Ok(SaveOutcome::Saved(()))
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
        .execute(&self.database.writer)
        .await
        .map_err(store_error)?;
        Ok(if updated.rows_affected() == 0 {
            SaveOutcome::Stale
        } else {
            SaveOutcome::Saved(())
        })
    }
}
