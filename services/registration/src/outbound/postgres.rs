//! The PostgreSQL adapter of [`BookingStore`] (production: several replicas share one
//! database and one consumer group).
//!
//! How the replicas stay out of each other's way:
//! - the consumed event's inbox claim is the first write of the transaction that applies it.
//!   Its primary key makes a second claim of the same id wait for the first transaction, then
//!   insert nothing (`AlreadyApplied`) if that one committed — or win if it rolled back. So an
//!   event both replicas see after a rebalance takes effect exactly once;
//! - a new booking is `INSERT ... ON CONFLICT DO NOTHING` on the reservation id, a change is an
//!   `UPDATE ... WHERE version = expected` (optimistic: `Stale` makes the service reload and
//!   decide again); the UPDATE locks the row, and the outbox row is written after it, so one
//!   booking's events get their outbox `seq` in commit order (see
//!   `studycafe_messaging::postgres`);
//! - unique constraints on the registration id and the entry pass code, as in SQLite;
//! - migrations run at start-up under sqlx's advisory lock, after the messaging tables'
//!   `install` (its own advisory lock): replicas starting together apply them once.
//!
//! Each replica runs an outbox relay over [`PgOutbox`]; its lease lets one publish at a time.
//! Statements time out (`statement_timeout`), so a stuck lock fails a request or a consumed
//! event (retried) instead of hanging it.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    PgPool, Postgres, Row as _, Transaction,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
};
use studycafe_messaging::{
    OutboxSignal, postgres as outbox,
    write::{READY_WITHIN, Writer},
};

use crate::{
    domain::{
        AdminId, AutoConfirmPolicy, Booking, BookingEvent, BookingState, BookingStatus, CafeId,
        CustomerId, Decider, EntryPassCode, Money, Registration, RegistrationId, ReservationId,
        SeatId, Window,
        ports::{BookingStore, Consumed, InsertOutcome, SaveOutcome, StoreError},
    },
    outbound::published_language,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A stuck lock fails the statement instead of holding a request or a partition forever.
const STATEMENT_TIMEOUT: &str = "10s";

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Every write transaction begins here (cancel-safe).
    writer: Writer<Postgres>,
    signal: OutboxSignal,
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn open(
        url: &str,
        max_connections: u32,
        signal: OutboxSignal,
    ) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("registration-service")
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        outbox::install(&pool).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            writer: Writer::new("registration", pool.clone()),
            pool,
            signal,
        })
    }

    /// The outbox, for the relay.
    pub fn outbox(&self) -> outbox::PgOutbox {
        outbox::PgOutbox::new(self.pool.clone())
    }

    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.writer.begin().await.map_err(store_error)
    }
}

const BOOKING_COLUMNS: &str = "reservation_id::text AS reservation_id, seat_id, customer_id, \
     starts_at, ends_at, price, hold_expires_at, status, decided_by, reason, registration_id, \
     entry_pass_code, registered_at, created_at, updated_at, version";

fn booking_from_row(row: &PgRow) -> Result<Booking, StoreError> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(store_error);
    let int = |column: &str| row.try_get::<i64, _>(column).map_err(store_error);
    let time = |column: &str| row.try_get::<DateTime<Utc>, _>(column).map_err(store_error);
    let status = text("status")?;
    let decided_by: Option<String> = row.try_get("decided_by").map_err(store_error)?;
    let registration_id: Option<String> = row.try_get("registration_id").map_err(store_error)?;
    let entry_pass_code: Option<String> = row.try_get("entry_pass_code").map_err(store_error)?;
    let registered_at: Option<DateTime<Utc>> = row.try_get("registered_at").map_err(store_error)?;
    let registration = match (registration_id, entry_pass_code, registered_at) {
        (Some(id), Some(code), Some(at)) => Some(Registration::restore(
            RegistrationId::parse(&id).map_err(store_error)?,
            EntryPassCode::parse(&code).map_err(store_error)?,
            at,
        )),
        _ => None,
    };
    Ok(Booking::restore(BookingState {
        reservation_id: ReservationId::parse(&text("reservation_id")?).map_err(store_error)?,
        seat_id: SeatId::parse(&text("seat_id")?).map_err(store_error)?,
        customer_id: CustomerId::parse(&text("customer_id")?).map_err(store_error)?,
        window: Window::new(time("starts_at")?, time("ends_at")?).map_err(store_error)?,
        price: Money::krw(int("price")?).map_err(store_error)?,
        hold_expires_at: time("hold_expires_at")?,
        status: BookingStatus::parse(&status)
            .ok_or_else(|| store_error(format!("unknown booking status {status:?}")))?,
        decided_by: decided_by.as_deref().and_then(Decider::restore),
        reason: row.try_get("reason").map_err(store_error)?,
        registration,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        version: int("version")?,
    }))
}

fn policy_from_row(row: &PgRow) -> Result<AutoConfirmPolicy, StoreError> {
    let cafe: String = row.try_get("cafe_id").map_err(store_error)?;
    let updated_by: Option<String> = row.try_get("updated_by").map_err(store_error)?;
    Ok(AutoConfirmPolicy {
        cafe_id: CafeId::parse(&cafe).map_err(store_error)?,
        auto_confirm: row.try_get("auto_confirm").map_err(store_error)?,
        updated_by: updated_by
            .map(|by| AdminId::parse(&by))
            .transpose()
            .map_err(store_error)?,
        updated_at: row.try_get("updated_at").map_err(store_error)?,
    })
}

/// Writes the outbox row of `event` inside `tx` (after the booking's row: see the module docs).
async fn enqueue_event(
    tx: &mut Transaction<'static, Postgres>,
    booking: &Booking,
    event: &BookingEvent,
    causation: &str,
) -> Result<(), StoreError> {
    let message = published_language::booking_message(booking, event, causation, Utc::now())
        .map_err(store_error)?;
    outbox::enqueue(tx, &message).await.map_err(store_error)
}

impl BookingStore for PgStore {
    /// Readiness: a write transaction begins within [`READY_WITHIN`].
    async fn ping(&self) -> Result<(), StoreError> {
        self.writer.probe(READY_WITHIN).await.map_err(store_error)
    }

    async fn get(&self, id: ReservationId) -> Result<Option<Booking>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {BOOKING_COLUMNS} FROM bookings WHERE reservation_id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.as_ref().map(booking_from_row).transpose()
    }

    async fn list(
        &self,
        status: Option<BookingStatus>,
        limit: u32,
    ) -> Result<Vec<Booking>, StoreError> {
        // `$1 IS NULL` keeps one statement for both cases; the planner still uses the status
        // index when a status is given.
        let rows = sqlx::query(&format!(
            "SELECT {BOOKING_COLUMNS} FROM bookings WHERE ($1::text IS NULL OR status = $1)
             ORDER BY created_at DESC, reservation_id DESC LIMIT $2"
        ))
        .bind(status.map(|s| s.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(booking_from_row).collect()
    }

    async fn insert(
        &self,
        booking: &Booking,
        event: Option<&BookingEvent>,
        consumed: Consumed,
    ) -> Result<InsertOutcome, StoreError> {
        let mut tx = self.write().await?;
        if !outbox::claim(&mut tx, consumed.consumer, consumed.event_id)
            .await
            .map_err(store_error)?
        {
            return Ok(InsertOutcome::AlreadyApplied);
        }
        let state = booking.state();
        let registration = state.registration.as_ref();
        let inserted = sqlx::query(
            "INSERT INTO bookings (reservation_id, seat_id, customer_id, starts_at, ends_at, price,
               hold_expires_at, status, decided_by, reason, registration_id, entry_pass_code,
               registered_at, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0)
             ON CONFLICT (reservation_id) DO NOTHING",
        )
        .bind(state.reservation_id.as_uuid())
        .bind(state.seat_id.as_str())
        .bind(state.customer_id.as_str())
        .bind(state.window.starts_at())
        .bind(state.window.ends_at())
        .bind(state.price.won())
        .bind(state.hold_expires_at)
        .bind(state.status.as_str())
        .bind(state.decided_by.as_ref().map(Decider::as_str))
        .bind(&state.reason)
        .bind(registration.map(|r| r.id().to_string()))
        .bind(registration.map(|r| r.entry_pass_code().to_string()))
        .bind(registration.map(|r| r.registered_at()))
        .bind(state.created_at)
        .bind(state.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() == 0 {
            // Keep the claim: the event is consumed, and it changed nothing.
            tx.commit().await.map_err(store_error)?;
            return Ok(InsertOutcome::Exists);
        }
        if let Some(event) = event {
            enqueue_event(&mut tx, booking, event, &consumed.event_id.to_string()).await?;
        }
        tx.commit().await.map_err(store_error)?;
        if event.is_some() {
            self.signal.notify();
        }
        Ok(InsertOutcome::Inserted)
    }

    async fn save(
        &self,
        booking: &mut Booking,
        expected_version: i64,
        event: &BookingEvent,
        causation: &str,
        consumed: Option<Consumed>,
    ) -> Result<SaveOutcome, StoreError> {
        let mut tx = self.write().await?;
        if let Some(consumed) = consumed
            && !outbox::claim(&mut tx, consumed.consumer, consumed.event_id)
                .await
                .map_err(store_error)?
        {
            return Ok(SaveOutcome::AlreadyApplied);
        }
        // The one place a booking's version goes up: written here, and given to the caller's
        // copy once committed.
        let version = expected_version + 1;
        let state = booking.state();
        let registration = state.registration.as_ref();
        let updated = sqlx::query(
            "UPDATE bookings SET status = $1, decided_by = $2, reason = $3, registration_id = $4,
               entry_pass_code = $5, registered_at = $6, updated_at = $7, version = $9
             WHERE reservation_id = $8 AND version = $10",
        )
        .bind(state.status.as_str())
        .bind(state.decided_by.as_ref().map(Decider::as_str))
        .bind(&state.reason)
        .bind(registration.map(|r| r.id().to_string()))
        .bind(registration.map(|r| r.entry_pass_code().to_string()))
        .bind(registration.map(|r| r.registered_at()))
        .bind(state.updated_at)
        .bind(state.reservation_id.as_uuid())
        .bind(version)
        .bind(expected_version)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if updated.rows_affected() == 0 {
            // Rolled back (dropped), claim included: the caller reloads and decides again.
            return Ok(SaveOutcome::Stale);
        }
        enqueue_event(&mut tx, booking, event, causation).await?;
        tx.commit().await.map_err(store_error)?;
        self.signal.notify();
        *booking = Booking::restore(BookingState {
            version,
            ..booking.state().clone()
        });
        Ok(SaveOutcome::Saved)
    }

    async fn mark_consumed(&self, consumed: Consumed) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let claimed = outbox::claim(&mut tx, consumed.consumer, consumed.event_id)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(claimed)
    }

    async fn policy(&self, cafe: &CafeId) -> Result<Option<AutoConfirmPolicy>, StoreError> {
        let row = sqlx::query("SELECT * FROM auto_confirm_policies WHERE cafe_id = $1")
            .bind(cafe.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn seed_policy(
        &self,
        initial: &AutoConfirmPolicy,
    ) -> Result<AutoConfirmPolicy, StoreError> {
        // One statement: replicas seeding at once meet in ON CONFLICT, and the row it returns
        // is the policy in force (an admin's, if one set it).
        let row = sqlx::query(
            "INSERT INTO auto_confirm_policies AS p (cafe_id, auto_confirm, updated_by, updated_at)
             VALUES ($1, $2, NULL, NULL)
             ON CONFLICT (cafe_id) DO UPDATE SET auto_confirm = excluded.auto_confirm
             WHERE p.updated_by IS NULL
             RETURNING *",
        )
        .bind(initial.cafe_id.as_str())
        .bind(initial.auto_confirm)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        match row {
            Some(row) => policy_from_row(&row),
            // The WHERE kept an admin's policy, so nothing was returned: read it.
            None => self
                .policy(&initial.cafe_id)
                .await?
                .ok_or_else(|| store_error("the auto-confirm policy vanished while seeding")),
        }
    }

    async fn save_policy(&self, policy: &AutoConfirmPolicy) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auto_confirm_policies (cafe_id, auto_confirm, updated_by, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (cafe_id) DO UPDATE SET auto_confirm = excluded.auto_confirm,
               updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(policy.cafe_id.as_str())
        .bind(policy.auto_confirm)
        .bind(policy.updated_by.as_ref().map(AdminId::as_str))
        .bind(policy.updated_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}
