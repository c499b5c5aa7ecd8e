//! The SQLite adapter of [`BookingStore`] (embedded mode).
//!
//! Several replicas may share one database file (the acceptance suite runs two processes in
//! one consumer group on the same file). The file is opened as every service opens its SQLite
//! database ([`SqliteDatabase`]: WAL, busy timeout, one writer, migrations under the write
//! lock), every write transaction takes the write lock up front (`BEGIN IMMEDIATE`), and the
//! consumed event's inbox claim is the first write of the transaction that applies it, so an
//! event that both replicas see (after a rebalance) is applied by exactly one.
//!
//! The outbox and inbox tables live in the same file (see `studycafe_messaging::sqlite`), so
//! a booking's change, its event and the claim of the event that caused it commit together.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{Row as _, Sqlite, Transaction, migrate::Migrator, sqlite::SqliteRow};
use studycafe_messaging::{
    OutboxSignal,
    sqlite::{self as outbox, SqliteDatabase, Tables},
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

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    database: SqliteDatabase,
    signal: OutboxSignal,
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and brings its schema up to date;
    /// safe when several replicas open one file at once.
    pub async fn open(url: &str, signal: OutboxSignal) -> anyhow::Result<Self> {
        let database = SqliteDatabase::open(url, &MIGRATOR, Tables::WithMessaging).await?;
        Ok(Self { database, signal })
    }

    /// The outbox, for the relay.
    pub fn outbox(&self) -> outbox::SqliteOutbox {
        self.database.outbox()
    }

    /// A write transaction holding the write lock from its first statement.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.database.write().await.map_err(store_error)
    }
}

fn booking_from_row(row: &SqliteRow) -> Result<Booking, StoreError> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(store_error);
    let int = |column: &str| row.try_get::<i64, _>(column).map_err(store_error);
    let status = text("status")?;
    let decided_by: Option<String> = row.try_get("decided_by").map_err(store_error)?;
    let registration_id: Option<String> = row.try_get("registration_id").map_err(store_error)?;
    let entry_pass_code: Option<String> = row.try_get("entry_pass_code").map_err(store_error)?;
    let registered_at: Option<i64> = row.try_get("registered_at").map_err(store_error)?;
    let registration = match (registration_id, entry_pass_code, registered_at) {
        (Some(id), Some(code), Some(at)) => Some(Registration::restore(
            RegistrationId::parse(&id).map_err(store_error)?,
            EntryPassCode::parse(&code).map_err(store_error)?,
            from_ms(at),
        )),
        _ => None,
    };
    Ok(Booking::restore(BookingState {
        reservation_id: ReservationId::parse(&text("reservation_id")?).map_err(store_error)?,
        seat_id: SeatId::parse(&text("seat_id")?).map_err(store_error)?,
        customer_id: CustomerId::parse(&text("customer_id")?).map_err(store_error)?,
        window: Window::new(from_ms(int("starts_at")?), from_ms(int("ends_at")?))
            .map_err(store_error)?,
        price: Money::krw(int("price")?).map_err(store_error)?,
        hold_expires_at: from_ms(int("hold_expires_at")?),
        status: BookingStatus::parse(&status)
            .ok_or_else(|| store_error(format!("unknown booking status {status:?}")))?,
        decided_by: decided_by.as_deref().and_then(Decider::restore),
        reason: row.try_get("reason").map_err(store_error)?,
        registration,
        created_at: from_ms(int("created_at")?),
        updated_at: from_ms(int("updated_at")?),
        version: int("version")?,
    }))
}

fn policy_from_row(row: &SqliteRow) -> Result<AutoConfirmPolicy, StoreError> {
    let cafe: String = row.try_get("cafe_id").map_err(store_error)?;
    let updated_by: Option<String> = row.try_get("updated_by").map_err(store_error)?;
    let updated_at: Option<i64> = row.try_get("updated_at").map_err(store_error)?;
    Ok(AutoConfirmPolicy {
        cafe_id: CafeId::parse(&cafe).map_err(store_error)?,
        auto_confirm: row.try_get("auto_confirm").map_err(store_error)?,
        updated_by: updated_by
            .map(|by| AdminId::parse(&by))
            .transpose()
            .map_err(store_error)?,
        updated_at: updated_at.map(from_ms),
    })
}

/// Writes the outbox row of `event` inside `tx`.
async fn enqueue_event(
    tx: &mut Transaction<'static, Sqlite>,
    booking: &Booking,
    event: &BookingEvent,
    causation: &str,
) -> Result<(), StoreError> {
    let message = published_language::booking_message(booking, event, causation, Utc::now())
        .map_err(store_error)?;
    outbox::enqueue(tx, &message).await.map_err(store_error)
}

impl BookingStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await.map_err(store_error)
    }

    async fn get(&self, id: ReservationId) -> Result<Option<Booking>, StoreError> {
        let row = sqlx::query("SELECT * FROM bookings WHERE reservation_id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.database.reader)
            .await
            .map_err(store_error)?;
        row.as_ref().map(booking_from_row).transpose()
    }

    async fn list(
        &self,
        status: Option<BookingStatus>,
        limit: u32,
    ) -> Result<Vec<Booking>, StoreError> {
        let rows =
            match status {
                Some(status) => {
                    sqlx::query(
                        "SELECT * FROM bookings WHERE status = ?
                     ORDER BY created_at DESC, reservation_id DESC LIMIT ?",
                    )
                    .bind(status.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&self.database.reader)
                    .await
                }
                None => sqlx::query(
                    "SELECT * FROM bookings ORDER BY created_at DESC, reservation_id DESC LIMIT ?",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.database.reader)
                .await,
            }
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
             ON CONFLICT (reservation_id) DO NOTHING",
        )
        .bind(state.reservation_id.to_string())
        .bind(state.seat_id.as_str())
        .bind(state.customer_id.as_str())
        .bind(ms(state.window.starts_at()))
        .bind(ms(state.window.ends_at()))
        .bind(state.price.won())
        .bind(ms(state.hold_expires_at))
        .bind(state.status.as_str())
        .bind(state.decided_by.as_ref().map(Decider::as_str))
        .bind(&state.reason)
        .bind(registration.map(|r| r.id().to_string()))
        .bind(registration.map(|r| r.entry_pass_code().to_string()))
        .bind(registration.map(|r| ms(r.registered_at())))
        .bind(ms(state.created_at))
        .bind(ms(state.updated_at))
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
            "UPDATE bookings SET status = ?, decided_by = ?, reason = ?, registration_id = ?,
               entry_pass_code = ?, registered_at = ?, updated_at = ?, version = ?
             WHERE reservation_id = ? AND version = ?",
        )
        .bind(state.status.as_str())
        .bind(state.decided_by.as_ref().map(Decider::as_str))
        .bind(&state.reason)
        .bind(registration.map(|r| r.id().to_string()))
        .bind(registration.map(|r| r.entry_pass_code().to_string()))
        .bind(registration.map(|r| ms(r.registered_at())))
        .bind(ms(state.updated_at))
        .bind(version)
        .bind(state.reservation_id.to_string())
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
        let row = sqlx::query("SELECT * FROM auto_confirm_policies WHERE cafe_id = ?")
            .bind(cafe.as_str())
            .fetch_optional(&self.database.reader)
            .await
            .map_err(store_error)?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn seed_policy(
        &self,
        initial: &AutoConfirmPolicy,
    ) -> Result<AutoConfirmPolicy, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO auto_confirm_policies (cafe_id, auto_confirm, updated_by, updated_at)
             VALUES (?, ?, NULL, NULL)
             ON CONFLICT (cafe_id) DO UPDATE SET auto_confirm = excluded.auto_confirm
             WHERE auto_confirm_policies.updated_by IS NULL",
        )
        .bind(initial.cafe_id.as_str())
        .bind(initial.auto_confirm)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let row = sqlx::query("SELECT * FROM auto_confirm_policies WHERE cafe_id = ?")
            .bind(initial.cafe_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let policy = policy_from_row(&row)?;
        tx.commit().await.map_err(store_error)?;
        Ok(policy)
    }

    async fn save_policy(&self, policy: &AutoConfirmPolicy) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO auto_confirm_policies (cafe_id, auto_confirm, updated_by, updated_at)
             VALUES (?, ?, ?, ?)
             ON CONFLICT (cafe_id) DO UPDATE SET auto_confirm = excluded.auto_confirm,
               updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(policy.cafe_id.as_str())
        .bind(policy.auto_confirm)
        .bind(policy.updated_by.as_ref().map(AdminId::as_str))
        .bind(policy.updated_at.map(ms))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }
}
