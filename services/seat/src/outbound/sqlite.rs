//! The SQLite adapter of [`ReservationStore`] (embedded mode).
//!
//! The file is opened as every service opens its SQLite database ([`SqliteDatabase`]: WAL,
//! `synchronous = FULL`, one writer connection, a read pool, migrations under the write lock).
//! Write transactions take the write lock up front (`BEGIN IMMEDIATE`), which makes "check the
//! seat is free, then insert" atomic without `SQLITE_BUSY` upgrade failures, in this process
//! and in another on the same file; the `reservations_no_overlap` trigger refuses an overlap
//! whatever the code does.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{Row as _, Sqlite, SqliteConnection, Transaction, migrate::Migrator, sqlite::SqliteRow};
use studycafe_messaging::{
    OutboxSignal,
    sqlite::{self as outbox, SqliteDatabase, Tables},
};

use crate::{
    domain::{
        Reservation, ReservationEvent, ReservationId, ReservationState, Seat, SeatId,
        ports::{
            Consumed, Due, IdempotencyClaim, InsertOutcome, ReservationStore, SaveOutcome,
            StoreError,
        },
    },
    outbound::{
        published_language,
        records::{ReservationRecord, SeatRecord},
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

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn from_ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating if missing, with its directory) the database at `url` and brings its
    /// schema up to date; safe when several replicas open one file at once.
    pub async fn open(url: &str, signal: OutboxSignal) -> anyhow::Result<Self> {
        let database = SqliteDatabase::open(url, &MIGRATOR, Tables::WithMessaging).await?;
        Ok(Self { database, signal })
    }

    /// A write transaction holding the write lock from its first statement.
    async fn write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.database.write().await
    }

    /// The pool the outbox relay reads from.
    pub fn outbox(&self) -> outbox::SqliteOutbox {
        self.database.outbox()
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await.map_err(store_error)
    }

    /// Makes the stored catalogue match `seats`: new and changed seats are written and
    /// announced (`SeatDefined`); seats no longer listed are disabled, never deleted, since
    /// reservations refer to them.
    pub async fn sync_catalogue(&self, seats: &[Seat]) -> anyhow::Result<usize> {
        let now = Utc::now();
        let mut tx = self.write().await?;
        let existing = sqlx::query("SELECT seat_id, zone, kind, hourly_price, enabled FROM seats")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(seat_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut desired: Vec<Seat> = seats.to_vec();
        for old in &existing {
            if !seats.iter().any(|s| s.id == old.id) && old.enabled {
                desired.push(Seat {
                    enabled: false,
                    ..old.clone()
                });
            }
        }
        let mut changed = 0;
        for (position, seat) in desired.iter().enumerate() {
            if existing.iter().any(|old| old == seat) {
                continue;
            }
            sqlx::query(
                "INSERT INTO seats (seat_id, zone, kind, hourly_price, enabled, position, announced_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (seat_id) DO UPDATE SET zone = excluded.zone, kind = excluded.kind,
                   hourly_price = excluded.hourly_price, enabled = excluded.enabled,
                   position = excluded.position, announced_at = excluded.announced_at",
            )
            .bind(seat.id.as_str())
            .bind(&seat.zone)
            .bind(seat.kind.as_str())
            .bind(seat.hourly_price.won())
            .bind(seat.enabled)
            .bind(position as i64)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
            outbox::enqueue(
                &mut tx,
                &published_language::seat_message(seat, "catalogue", now),
            )
            .await?;
            changed += 1;
        }
        tx.commit().await?;
        if changed > 0 {
            self.signal.notify();
        }
        Ok(changed)
    }
}

fn seat_from_row(row: &SqliteRow) -> Result<Seat, sqlx::Error> {
    SeatRecord {
        seat_id: row.try_get("seat_id")?,
        zone: row.try_get("zone")?,
        kind: row.try_get("kind")?,
        hourly_price: row.try_get("hourly_price")?,
        enabled: row.try_get("enabled")?,
    }
    .into_seat()
}

fn reservation_from_row(row: &SqliteRow) -> Result<Reservation, sqlx::Error> {
    let next_payment_at: Option<i64> = row.try_get("next_payment_at")?;
    ReservationRecord {
        reservation_id: row.try_get("reservation_id")?,
        seat_id: row.try_get("seat_id")?,
        customer_id: row.try_get("customer_id")?,
        starts_at: from_ts(row.try_get("starts_at")?),
        hours: row.try_get("hours")?,
        price: row.try_get("price")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        hold_expires_at: from_ts(row.try_get("hold_expires_at")?),
        payment_token: row.try_get("payment_token")?,
        payment_attempts: row.try_get("payment_attempts")?,
        next_payment_at: next_payment_at.map(from_ts),
        payment_id: row.try_get("payment_id")?,
        registration_id: row.try_get("registration_id")?,
        created_at: from_ts(row.try_get("created_at")?),
        updated_at: from_ts(row.try_get("updated_at")?),
        version: row.try_get("version")?,
    }
    .into_reservation()
}

async fn enqueue_event(
    conn: &mut SqliteConnection,
    reservation: &Reservation,
    event: &ReservationEvent,
    causation: &str,
) -> sqlx::Result<()> {
    let message =
        published_language::reservation_message(reservation, event, causation, Utc::now());
    outbox::enqueue(conn, &message).await
}

fn is_overlap_refusal(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().contains("seat_taken"))
}

impl ReservationStore for SqliteStore {
    async fn seats(&self) -> Result<Vec<Seat>, StoreError> {
        let rows = sqlx::query(
            "SELECT seat_id, zone, kind, hourly_price, enabled FROM seats ORDER BY position",
        )
        .fetch_all(&self.database.reader)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(seat_from_row)
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }

    async fn seat(&self, id: &SeatId) -> Result<Option<Seat>, StoreError> {
        let row = sqlx::query(
            "SELECT seat_id, zone, kind, hourly_price, enabled FROM seats WHERE seat_id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&self.database.reader)
        .await
        .map_err(store_error)?;
        row.as_ref()
            .map(seat_from_row)
            .transpose()
            .map_err(store_error)
    }

    async fn insert(
        &self,
        reservation: &Reservation,
        event: &ReservationEvent,
        causation: &str,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<InsertOutcome, StoreError> {
        let mut tx = self.write().await.map_err(store_error)?;
        if let Some(claim) = idempotency {
            let earlier = sqlx::query(
                "SELECT request_hash, reservation_id FROM idempotency_keys
                 WHERE customer_id = ? AND idempotency_key = ?",
            )
            .bind(reservation.customer_id().as_str())
            .bind(&claim.key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
            if let Some(row) = earlier {
                let hash: String = row.try_get("request_hash").map_err(store_error)?;
                let id: String = row.try_get("reservation_id").map_err(store_error)?;
                return Ok(if hash == claim.request_hash {
                    InsertOutcome::Replayed(ReservationId::parse(&id).map_err(store_error)?)
                } else {
                    InsertOutcome::KeyReused
                });
            }
        }
        // Every field, by name: a field the aggregate gains does not compile until it is stored.
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
            version: _, // a new reservation is stored at version 0
        } = reservation.state();
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM reservations WHERE seat_id = ? AND live = 1
             AND starts_at < ? AND ? < ends_at LIMIT 1",
        )
        .bind(seat_id.as_str())
        .bind(ts(window.ends_at()))
        .bind(ts(window.starts_at()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        if taken.is_some() {
            return Ok(InsertOutcome::SeatTaken);
        }
        let inserted = sqlx::query(
            "INSERT INTO reservations (reservation_id, seat_id, customer_id, starts_at, ends_at,
               hours, price, status, live, status_reason, hold_expires_at, payment_token,
               payment_attempts, next_payment_at, payment_id, registration_id, created_at,
               updated_at, version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(id.to_string())
        .bind(seat_id.as_str())
        .bind(customer_id.as_str())
        .bind(ts(window.starts_at()))
        .bind(ts(window.ends_at()))
        .bind(i64::from(window.hours()))
        .bind(price.won())
        .bind(status.as_str())
        .bind(status.is_live())
        .bind(status_reason)
        .bind(ts(hold_expires_at))
        .bind(payment_token.expose())
        .bind(i64::from(payment_attempts))
        .bind(next_payment_at.map(ts))
        .bind(payment_id)
        .bind(registration_id)
        .bind(ts(created_at))
        .bind(ts(updated_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_overlap_refusal(&e) => return Ok(InsertOutcome::SeatTaken),
            Err(e) => return Err(store_error(e)),
        }
        if let Some(claim) = idempotency {
            sqlx::query(
                "INSERT INTO idempotency_keys (customer_id, idempotency_key, request_hash,
                   reservation_id, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(customer_id.as_str())
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(id.to_string())
            .bind(ts(created_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        enqueue_event(&mut tx, reservation, event, causation)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.signal.notify();
        Ok(InsertOutcome::Inserted)
    }

    async fn get(&self, id: ReservationId) -> Result<Option<Reservation>, StoreError> {
        let row = sqlx::query("SELECT * FROM reservations WHERE reservation_id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.database.reader)
            .await
            .map_err(store_error)?;
        row.as_ref()
            .map(reservation_from_row)
            .transpose()
            .map_err(store_error)
    }

    async fn save(
        &self,
        reservation: &Reservation,
        expected_version: i64,
        events: &[ReservationEvent],
        causation: &str,
        consumed: Option<Consumed>,
    ) -> Result<SaveOutcome, StoreError> {
        let mut tx = self.write().await.map_err(store_error)?;
        if let Some(consumed) = consumed
            && !outbox::claim(&mut tx, consumed.consumer, consumed.event_id)
                .await
                .map_err(store_error)?
        {
            return Ok(SaveOutcome::AlreadyApplied);
        }
        // Every field, by name: what a transition can change is written; the rest was fixed
        // when the reservation was made. A field the aggregate gains does not compile until
        // it is placed in one group or the other.
        let ReservationState {
            id,
            seat_id: _,
            customer_id: _,
            window: _,
            price: _,
            status,
            status_reason,
            hold_expires_at: _,
            payment_token: _,
            payment_attempts,
            next_payment_at,
            payment_id,
            registration_id,
            created_at: _,
            updated_at,
            version: _, // the store's: bumped here, checked against `expected_version`
        } = reservation.state();
        let updated = sqlx::query(
            "UPDATE reservations SET status = ?, live = ?, status_reason = ?,
               payment_attempts = ?, next_payment_at = ?, payment_id = ?, registration_id = ?,
               updated_at = ?, version = version + 1
             WHERE reservation_id = ? AND version = ?",
        )
        .bind(status.as_str())
        .bind(status.is_live())
        .bind(status_reason)
        .bind(i64::from(payment_attempts))
        .bind(next_payment_at.map(ts))
        .bind(payment_id)
        .bind(registration_id)
        .bind(ts(updated_at))
        .bind(id.to_string())
        .bind(expected_version)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if updated.rows_affected() == 0 {
            return Ok(SaveOutcome::Stale);
        }
        for event in events {
            enqueue_event(&mut tx, reservation, event, causation)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        if !events.is_empty() {
            self.signal.notify();
        }
        Ok(SaveOutcome::Saved)
    }

    async fn mark_consumed(&self, consumed: Consumed) -> Result<(), StoreError> {
        let mut tx = self.write().await.map_err(store_error)?;
        outbox::claim(&mut tx, consumed.consumer, consumed.event_id)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn reannounce_seats(
        &self,
        announced_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<usize, StoreError> {
        let mut tx = self.write().await.map_err(store_error)?;
        let seats = sqlx::query(
            "SELECT seat_id, zone, kind, hourly_price, enabled FROM seats
             WHERE announced_at IS NULL OR announced_at < ? ORDER BY position LIMIT ?",
        )
        .bind(ts(announced_before))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?
        .iter()
        .map(seat_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(store_error)?;
        for seat in &seats {
            sqlx::query("UPDATE seats SET announced_at = ? WHERE seat_id = ?")
                .bind(ts(now))
                .bind(seat.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            outbox::enqueue(
                &mut tx,
                &published_language::seat_message(seat, "catalogue-reannouncement", now),
            )
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        if !seats.is_empty() {
            self.signal.notify();
        }
        Ok(seats.len())
    }

    async fn due(
        &self,
        due: Due,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Reservation>, StoreError> {
        let sql = match due {
            Due::HoldExpiry => {
                "SELECT * FROM reservations WHERE status IN ('REQUESTED', 'CONFIRMED')
                 AND hold_expires_at <= ? ORDER BY hold_expires_at LIMIT ?"
            }
            Due::Completion => {
                "SELECT * FROM reservations WHERE status = 'REGISTERED'
                 AND ends_at <= ? ORDER BY ends_at LIMIT ?"
            }
            Due::Payment => {
                "SELECT * FROM reservations WHERE status = 'CONFIRMED'
                 AND next_payment_at <= ? ORDER BY next_payment_at LIMIT ?"
            }
        };
        let rows = sqlx::query(sql)
            .bind(ts(now))
            .bind(i64::from(limit))
            .fetch_all(&self.database.reader)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(reservation_from_row)
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }
}

impl crate::queries::ReservationQueries for SqliteStore {
    async fn of_customer(
        &self,
        customer: &crate::domain::CustomerId,
        limit: u32,
    ) -> Result<Vec<Reservation>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM reservations WHERE customer_id = ? \
             ORDER BY created_at DESC, reservation_id DESC LIMIT ?",
        )
        .bind(customer.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.database.reader)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(reservation_from_row)
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }
}
