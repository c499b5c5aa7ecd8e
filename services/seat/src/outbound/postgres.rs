//! The PostgreSQL adapter of [`ReservationStore`] (production mode, any number of replicas).
//!
//! Unlike SQLite, several seat processes write this database at once, so nothing here relies
//! on in-process serialisation:
//! - the no-overlap rule is the `reservations_no_overlap` exclusion constraint; a violation
//!   (SQLSTATE 23P01) is [`InsertOutcome::SeatTaken`], whichever replica inserted first;
//! - inserts for one seat queue on a transaction-scoped advisory lock on the seat. Not for
//!   correctness (the constraint is the guarantee) but because two transactions inserting
//!   conflicting rows at the same instant can each wait for the other's in-progress row, a
//!   deadlock PostgreSQL resolves by failing one with 40P01, which would be a 503 instead of a
//!   409. Queued, each sees the winner committed and gets the constraint's plain refusal;
//! - an idempotency key is inserted before its reservation, so a concurrent retry of the same
//!   request blocks on the key's row and then replays the first answer (key first, seat lock
//!   second, always in that order: no lock cycle between them);
//! - changes are optimistic (`version`), so of two replicas acting on one reservation the
//!   loser gets [`SaveOutcome::Stale`];
//! - timer sweeps claim their rows for a short while (`swept_until`, picked with
//!   `FOR UPDATE SKIP LOCKED`) so two replicas' timers work on different reservations instead
//!   of racing for the same ones; every save clears the claim.
//!
//! Every change and the event it causes (outbox), and the consumed event it answers (inbox),
//! commit in one transaction; the outbox row is written after the aggregate's row, which keeps
//! per-reservation event order (see `studycafe_messaging::postgres`).
//!
//! Schema: `migrations/postgres/NNNN_*.sql`, applied by [`PgStore::open`] at start-up under
//! sqlx's migration advisory lock (replicas starting together: one applies, the others wait
//! and find them applied). Every statement has a timeout, so a stuck lock becomes an error
//! (503), not a hung request.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{
    PgConnection, PgPool, Postgres, Row as _,
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
};
use studycafe_messaging::{
    OutboxSignal, postgres as outbox,
    write::{READY_WITHIN, Writer},
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

/// No statement may hold a connection (and its locks) longer than this.
const STATEMENT_TIMEOUT: &str = "5s";
/// How long a timer sweep keeps its rows from the other replicas' sweeps if it never saves
/// them (it crashed, or decided there was nothing to do).
const SWEEP_CLAIM: &str = "30 seconds";
/// Serializes catalogue syncs of replicas starting together (one announces the changes).
const CATALOGUE_LOCK: i64 = 7_312_101;
/// The class of the per-seat insert locks (`pg_advisory_xact_lock(class, hashtext(seat))`;
/// the two-key form, a lock space apart from the single-key locks above).
const SEAT_INSERT_LOCK_CLASS: i32 = 7_312_102;

const RESERVATION_COLUMNS: &str = "reservation_id, seat_id, customer_id, starts_at, ends_at, \
    hours, price, status, status_reason, hold_expires_at, payment_token, payment_attempts, \
    next_payment_at, payment_id, registration_id, created_at, updated_at, version";

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

/// Whole seconds, as the SQLite adapter keeps them: both backends answer alike.
fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp(), 0).single().unwrap_or(t)
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date. Safe when several
    /// replicas start at once: the outbox install and sqlx's migrator take advisory locks.
    pub async fn open(url: &str, pool_size: u32, signal: OutboxSignal) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("seat-service")
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        outbox::install(&pool).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            writer: Writer::new("seat", pool.clone()),
            pool,
            signal,
        })
    }

    /// The outbox as the relay sees it.
    pub fn outbox(&self) -> outbox::PgOutbox {
        outbox::PgOutbox::new(self.pool.clone())
    }

    /// Readiness: a write transaction begins within [`READY_WITHIN`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.writer.probe(READY_WITHIN).await.map_err(store_error)
    }

    /// Makes the stored catalogue match `seats`, announcing new and changed seats
    /// (`SeatDefined`) and disabling, never deleting, seats no longer listed. Replicas starting
    /// together take turns (advisory lock), so a change is announced once.
    pub async fn sync_catalogue(&self, seats: &[Seat]) -> anyhow::Result<usize> {
        let now = Utc::now();
        let mut tx = self.writer.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CATALOGUE_LOCK)
            .execute(&mut *tx)
            .await?;
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (seat_id) DO UPDATE SET zone = excluded.zone, kind = excluded.kind,
                   hourly_price = excluded.hourly_price, enabled = excluded.enabled,
                   position = excluded.position, announced_at = excluded.announced_at",
            )
            .bind(seat.id.as_str())
            .bind(&seat.zone)
            .bind(seat.kind.as_str())
            .bind(seat.hourly_price.won())
            .bind(seat.enabled)
            .bind(i32::try_from(position)?)
            .bind(now)
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

fn seat_from_row(row: &PgRow) -> Result<Seat, sqlx::Error> {
    SeatRecord {
        seat_id: row.try_get("seat_id")?,
        zone: row.try_get("zone")?,
        kind: row.try_get("kind")?,
        hourly_price: row.try_get("hourly_price")?,
        enabled: row.try_get("enabled")?,
    }
    .into_seat()
}

fn reservation_from_row(row: &PgRow) -> Result<Reservation, sqlx::Error> {
    ReservationRecord {
        reservation_id: row.try_get::<uuid::Uuid, _>("reservation_id")?.to_string(),
        seat_id: row.try_get("seat_id")?,
        customer_id: row.try_get("customer_id")?,
        starts_at: row.try_get("starts_at")?,
        hours: row.try_get::<i16, _>("hours")?.into(),
        price: row.try_get("price")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        hold_expires_at: row.try_get("hold_expires_at")?,
        payment_token: row.try_get("payment_token")?,
        payment_attempts: row.try_get::<i32, _>("payment_attempts")?.into(),
        next_payment_at: row.try_get("next_payment_at")?,
        payment_id: row.try_get("payment_id")?,
        registration_id: row.try_get("registration_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    }
    .into_reservation()
}

async fn enqueue_event(
    conn: &mut PgConnection,
    reservation: &Reservation,
    event: &ReservationEvent,
    causation: &str,
) -> sqlx::Result<()> {
    let message =
        published_language::reservation_message(reservation, event, causation, Utc::now());
    outbox::enqueue(conn, &message).await
}

/// SQLSTATE 23P01: the exclusion constraint refused an overlapping live reservation.
fn is_overlap_refusal(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23P01"))
}

impl ReservationStore for PgStore {
    async fn seats(&self) -> Result<Vec<Seat>, StoreError> {
        let rows = sqlx::query(
            "SELECT seat_id, zone, kind, hourly_price, enabled FROM seats ORDER BY position",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(seat_from_row)
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }

    async fn seat(&self, id: &SeatId) -> Result<Option<Seat>, StoreError> {
        let row = sqlx::query(
            "SELECT seat_id, zone, kind, hourly_price, enabled FROM seats WHERE seat_id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
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
        let mut tx = self.writer.begin().await.map_err(store_error)?;
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
        if let Some(claim) = idempotency {
            // Claim the key first: a concurrent request with the same key waits here until
            // this transaction ends, then finds the key taken (or free again, on a rollback).
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (customer_id, idempotency_key, request_hash,
                   reservation_id, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (customer_id, idempotency_key) DO NOTHING",
            )
            .bind(customer_id.as_str())
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(id.as_uuid())
            .bind(secs(created_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            if claimed.rows_affected() == 0 {
                let row = sqlx::query(
                    "SELECT request_hash, reservation_id FROM idempotency_keys
                     WHERE customer_id = $1 AND idempotency_key = $2",
                )
                .bind(customer_id.as_str())
                .bind(&claim.key)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
                let hash: String = row.try_get("request_hash").map_err(store_error)?;
                let id: uuid::Uuid = row.try_get("reservation_id").map_err(store_error)?;
                return Ok(if hash == claim.request_hash {
                    InsertOutcome::Replayed(
                        ReservationId::parse(&id.to_string()).map_err(store_error)?,
                    )
                } else {
                    InsertOutcome::KeyReused
                });
            }
        }
        // Queue behind other inserts for this seat (see the module docs: avoids deadlocks
        // between simultaneous conflicting inserts; the constraint still decides).
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(SEAT_INSERT_LOCK_CLASS)
            .bind(seat_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO reservations ({RESERVATION_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, 0)"
        ))
        .bind(id.as_uuid())
        .bind(seat_id.as_str())
        .bind(customer_id.as_str())
        .bind(secs(window.starts_at()))
        .bind(secs(window.ends_at()))
        .bind(i16::from(window.hours()))
        .bind(price.won())
        .bind(status.as_str())
        .bind(status_reason)
        .bind(secs(hold_expires_at))
        .bind(payment_token.expose())
        .bind(i32::try_from(payment_attempts).unwrap_or(i32::MAX))
        .bind(next_payment_at.map(secs))
        .bind(payment_id)
        .bind(registration_id)
        .bind(secs(created_at))
        .bind(secs(updated_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // The transaction is aborted; dropping it rolls back the idempotency key too.
            Err(e) if is_overlap_refusal(&e) => return Ok(InsertOutcome::SeatTaken),
            Err(e) => return Err(store_error(e)),
        }
        enqueue_event(&mut tx, reservation, event, causation)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.signal.notify();
        Ok(InsertOutcome::Inserted)
    }

    async fn get(&self, id: ReservationId) -> Result<Option<Reservation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE reservation_id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
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
        let mut tx = self.writer.begin().await.map_err(store_error)?;
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
        // Under READ COMMITTED a concurrent writer's commit makes this re-check `version`
        // against the newer row: the loser updates nothing and is told Stale.
        let updated = sqlx::query(
            "UPDATE reservations SET status = $1, status_reason = $2, payment_attempts = $3,
               next_payment_at = $4, payment_id = $5, registration_id = $6, updated_at = $7,
               version = version + 1, swept_until = NULL
             WHERE reservation_id = $8 AND version = $9",
        )
        .bind(status.as_str())
        .bind(status_reason)
        .bind(i32::try_from(payment_attempts).unwrap_or(i32::MAX))
        .bind(next_payment_at.map(secs))
        .bind(payment_id)
        .bind(registration_id)
        .bind(secs(updated_at))
        .bind(id.as_uuid())
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
        let mut tx = self.writer.begin().await.map_err(store_error)?;
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
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        // Replicas sweeping together skip each other's rows: each seat is announced once.
        let seats = sqlx::query(
            "SELECT seat_id, zone, kind, hourly_price, enabled FROM seats
             WHERE announced_at IS NULL OR announced_at < $1 ORDER BY position LIMIT $2
             FOR UPDATE SKIP LOCKED",
        )
        .bind(announced_before)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?
        .iter()
        .map(seat_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(store_error)?;
        for seat in &seats {
            sqlx::query("UPDATE seats SET announced_at = $1 WHERE seat_id = $2")
                .bind(now)
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
        let (filter, order) = match due {
            Due::HoldExpiry => (
                "status IN ('REQUESTED', 'CONFIRMED') AND hold_expires_at <= $1",
                "hold_expires_at",
            ),
            Due::Completion => ("status = 'REGISTERED' AND ends_at <= $1", "ends_at"),
            Due::Payment => (
                "status = 'CONFIRMED' AND next_payment_at <= $1",
                "next_payment_at",
            ),
        };
        // Claim the rows (the claim uses the database's clock, `now` is the domain's): rows
        // another replica's sweep holds, or is claiming right now, are skipped.
        let sql = format!(
            "WITH picked AS (
               SELECT reservation_id AS picked_id FROM reservations
               WHERE {filter} AND (swept_until IS NULL OR swept_until < now())
               ORDER BY {order} LIMIT $2
               FOR UPDATE SKIP LOCKED)
             UPDATE reservations SET swept_until = now() + interval '{SWEEP_CLAIM}'
             FROM picked WHERE reservation_id = picked_id
             RETURNING {RESERVATION_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut found = rows
            .iter()
            .map(reservation_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        // RETURNING keeps no order: oldest due first, as the SQLite adapter answers.
        found.sort_by_key(|r| match due {
            Due::HoldExpiry => r.hold_expires_at(),
            Due::Completion => r.window().ends_at(),
            Due::Payment => r.payment().next_attempt_at().unwrap_or(r.hold_expires_at()),
        });
        Ok(found)
    }
}

impl crate::queries::ReservationQueries for PgStore {
    async fn of_customer(
        &self,
        customer: &crate::domain::CustomerId,
        limit: u32,
    ) -> Result<Vec<Reservation>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE customer_id = $1 \
             ORDER BY created_at DESC, reservation_id DESC LIMIT $2"
        ))
        .bind(customer.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(reservation_from_row)
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }
}
