//! The SQLite adapter of [`ViewStore`] (embedded mode; `outbound::redis` is the production one).
//!
//! The file is opened as every service opens its SQLite database ([`SqliteDatabase`]: WAL,
//! one writer connection, a read pool for the HTTP API, migrations under the write lock);
//! write transactions take the write lock up front. Each consumed event is one transaction: the
//! inbox claim of its id ([`studycafe_messaging::sqlite::claim`]), then the read-modify-write
//! of the rows it touches through the domain's `evolve` rules. Batching several events per
//! transaction later only needs a batch variant of `apply`; nothing here assumes one event.
//!
//! `synchronous = FULL`: the consumer commits its Kafka offset right after our commit, so a
//! view change lost to a power cut would never be redelivered.

use chrono::{DateTime, Utc};
use sqlx::{Row as _, SqliteConnection, migrate::Migrator, sqlite::SqliteRow};
use studycafe_messaging::sqlite::{self as inbox, SqliteDatabase, Tables};

use crate::domain::{
    BoardFacts, BookingDecision, CONSUMER_GROUP, ConsumedChange, CustomerId, ExternalRef,
    Generation, Money, Occupancy, PageLimit, PaymentStatus, RegistrationStatus, Reservation,
    ReservationDetails, ReservationId, ReservationRef, ReservationStatus, SeatDefinition, SeatId,
    SeatKind, TimelineEntry, ViewChange, Window,
    ports::{Applied, StoreError, ViewStore},
};

#[derive(Debug, Clone)]
pub struct SqliteViews {
    database: SqliteDatabase,
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn decode(message: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(message.to_string().into())
}

fn instant(row: &SqliteRow, column: &str) -> sqlx::Result<DateTime<Utc>> {
    let value: i64 = row.try_get(column)?;
    DateTime::from_timestamp_micros(value).ok_or_else(|| decode(format!("{column} {value}")))
}

fn optional_instant(row: &SqliteRow, column: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| DateTime::from_timestamp_micros(v).ok_or_else(|| decode(format!("{column} {v}"))))
        .transpose()
}

fn external(row: &SqliteRow, column: &'static str) -> sqlx::Result<Option<ExternalRef>> {
    let value: Option<String> = row.try_get(column)?;
    value
        .map(|v| ExternalRef::parse(column, &v).map_err(decode))
        .transpose()
}

fn money(row: &SqliteRow, column: &str) -> sqlx::Result<Option<Money>> {
    let value: Option<i64> = row.try_get(column)?;
    value.map(|v| Money::krw(v).map_err(decode)).transpose()
}

fn wire<T>(
    row: &SqliteRow,
    column: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> sqlx::Result<Option<T>> {
    let value: Option<String> = row.try_get(column)?;
    value
        .map(|v| parse(&v).ok_or_else(|| decode(format!("{column} {v:?}"))))
        .transpose()
}

impl SqliteViews {
    /// Opens (creating if missing, with its directory) the database at `url` and brings its
    /// schema up to date. The messaging tables come along for the inbox (the outbox stays
    /// empty: the read side publishes nothing).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let database = SqliteDatabase::open(url, &MIGRATOR, Tables::WithMessaging).await?;
        Ok(Self { database })
    }
}

const RESERVATION_COLUMNS: &str = "r.reservation_id, r.seat_id, r.customer_id, r.starts_at,
    r.ends_at, r.hours, r.price, r.hold_expires_at, r.status, r.reason, r.payment_id,
    r.registration_id, r.created_at, r.updated_at";

const DETAIL_COLUMNS: &str = "d.reservation_id AS d_reservation_id, d.booking,
    d.registration_status, d.registration_id AS d_registration_id, d.entry_pass_code,
    d.payment_status, d.payment_id AS d_payment_id, d.refund_id, d.refund_amount,
    d.updated_at AS d_updated_at";

fn reservation_from_row(row: &SqliteRow) -> sqlx::Result<Reservation> {
    let id: String = row.try_get("reservation_id")?;
    let seat: String = row.try_get("seat_id")?;
    let customer: String = row.try_get("customer_id")?;
    let status: String = row.try_get("status")?;
    let hours: i64 = row.try_get("hours")?;
    Ok(Reservation {
        reference: ReservationRef {
            id: ReservationId::parse(&id).map_err(decode)?,
            seat_id: SeatId::parse(&seat).map_err(decode)?,
            customer_id: CustomerId::parse(&customer).map_err(decode)?,
            window: Window::new(instant(row, "starts_at")?, instant(row, "ends_at")?)
                .map_err(decode)?,
        },
        hours: u8::try_from(hours).map_err(decode)?,
        price: money(row, "price")?,
        hold_expires_at: optional_instant(row, "hold_expires_at")?,
        status: ReservationStatus::parse(&status)
            .ok_or_else(|| decode(format!("status {status:?}")))?,
        reason: row.try_get("reason")?,
        payment_id: external(row, "payment_id")?,
        registration_id: external(row, "registration_id")?,
        created_at: instant(row, "created_at")?,
        updated_at: instant(row, "updated_at")?,
    })
}

/// The details of a row selected with [`DETAIL_COLUMNS`] (absent when the join found none).
fn details_from_row(row: &SqliteRow) -> sqlx::Result<Option<ReservationDetails>> {
    let Some(id) = row.try_get::<Option<String>, _>("d_reservation_id")? else {
        return Ok(None);
    };
    Ok(Some(ReservationDetails {
        reservation_id: ReservationId::parse(&id).map_err(decode)?,
        booking: wire(row, "booking", BookingDecision::parse)?,
        registration_status: wire(row, "registration_status", RegistrationStatus::parse)?,
        registration_id: external(row, "d_registration_id")?,
        entry_pass_code: external(row, "entry_pass_code")?,
        payment_status: wire(row, "payment_status", PaymentStatus::parse)?,
        payment_id: external(row, "d_payment_id")?,
        refund_id: external(row, "refund_id")?,
        refund_amount: money(row, "refund_amount")?,
        updated_at: instant(row, "d_updated_at")?,
    }))
}

fn seat_from_row(row: &SqliteRow) -> sqlx::Result<SeatDefinition> {
    let id: String = row.try_get("seat_id")?;
    let kind: String = row.try_get("kind")?;
    Ok(SeatDefinition {
        id: SeatId::parse(&id).map_err(decode)?,
        zone: row.try_get("zone")?,
        kind: SeatKind::parse(&kind).map_err(decode)?,
        hourly_price: Money::krw(row.try_get("hourly_price")?).map_err(decode)?,
        enabled: row.try_get("enabled")?,
    })
}

async fn put_seat(conn: &mut SqliteConnection, seat: &SeatDefinition) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO board_seats (seat_id, zone, kind, hourly_price, enabled)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (seat_id) DO UPDATE SET zone = excluded.zone, kind = excluded.kind,
           hourly_price = excluded.hourly_price, enabled = excluded.enabled",
    )
    .bind(seat.id.as_str())
    .bind(&seat.zone)
    .bind(seat.kind.as_str())
    .bind(seat.hourly_price.won())
    .bind(seat.enabled)
    .execute(conn)
    .await?;
    Ok(())
}

async fn get_reservation(
    conn: &mut SqliteConnection,
    id: ReservationId,
) -> sqlx::Result<Option<Reservation>> {
    let row = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM view_reservations r WHERE r.reservation_id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(reservation_from_row).transpose()
}

async fn put_reservation(conn: &mut SqliteConnection, r: &Reservation) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO view_reservations (reservation_id, seat_id, customer_id,
           starts_at, ends_at, hours, price, hold_expires_at, status, reason, payment_id,
           registration_id, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.reference.id.to_string())
    .bind(r.reference.seat_id.as_str())
    .bind(r.reference.customer_id.as_str())
    .bind(micros(r.reference.window.starts_at()))
    .bind(micros(r.reference.window.ends_at()))
    .bind(i64::from(r.hours))
    .bind(r.price.map(|p| p.won()))
    .bind(r.hold_expires_at.map(micros))
    .bind(r.status.as_str())
    .bind(&r.reason)
    .bind(r.payment_id.as_ref().map(ExternalRef::as_str))
    .bind(r.registration_id.as_ref().map(ExternalRef::as_str))
    .bind(micros(r.created_at))
    .bind(micros(r.updated_at))
    .execute(conn)
    .await?;
    Ok(())
}

async fn get_details(
    conn: &mut SqliteConnection,
    id: ReservationId,
) -> sqlx::Result<Option<ReservationDetails>> {
    let row = sqlx::query(&format!(
        "SELECT {DETAIL_COLUMNS} FROM view_reservation_details d WHERE d.reservation_id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(details_from_row).transpose()?.flatten())
}

async fn put_details(conn: &mut SqliteConnection, d: &ReservationDetails) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO view_reservation_details (reservation_id, booking,
           registration_status, registration_id, entry_pass_code, payment_status, payment_id,
           refund_id, refund_amount, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(d.reservation_id.to_string())
    .bind(d.booking.map(|b| b.as_str()))
    .bind(d.registration_status.map(|s| s.as_str()))
    .bind(d.registration_id.as_ref().map(ExternalRef::as_str))
    .bind(d.entry_pass_code.as_ref().map(ExternalRef::as_str))
    .bind(d.payment_status.map(|s| s.as_str()))
    .bind(d.payment_id.as_ref().map(ExternalRef::as_str))
    .bind(d.refund_id.as_ref().map(ExternalRef::as_str))
    .bind(d.refund_amount.map(|m| m.won()))
    .bind(micros(d.updated_at))
    .execute(conn)
    .await?;
    Ok(())
}

impl SqliteViews {
    async fn apply_in(&self, consumed: &ConsumedChange) -> sqlx::Result<Applied> {
        let mut tx = self.database.write().await?;
        if !inbox::claim(&mut tx, CONSUMER_GROUP, consumed.event_id).await? {
            // Dropping the transaction rolls the (empty) claim attempt back.
            return Ok(Applied::AlreadyApplied);
        }
        match &consumed.change {
            ViewChange::Seat(seat) => put_seat(&mut tx, seat).await?,
            ViewChange::Reservation(change) => {
                let existing = get_reservation(&mut tx, change.reference.id).await?;
                put_reservation(&mut tx, &Reservation::evolve(existing, change)).await?;
            }
            ViewChange::Detail(update) => {
                let existing = get_details(&mut tx, update.reservation_id).await?;
                put_details(&mut tx, &ReservationDetails::evolve(existing, update)).await?;
            }
        }
        tx.commit().await?;
        Ok(Applied::Applied)
    }

    async fn start_over_in(&self) -> sqlx::Result<Generation> {
        let mut tx = self.database.write().await?;
        for table in [
            "board_seats",
            "view_reservations",
            "view_reservation_details",
        ] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM messaging_inbox WHERE consumer = ?")
            .bind(CONSUMER_GROUP)
            .execute(&mut *tx)
            .await?;
        let next: i64 = sqlx::query_scalar(
            "UPDATE view_meta SET value = value + 1 WHERE key = 'generation' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Generation::new(u32::try_from(next).map_err(decode)?))
    }
}

impl ViewStore for SqliteViews {
    async fn apply(&self, consumed: &ConsumedChange) -> Result<Applied, StoreError> {
        self.apply_in(consumed).await.map_err(store_error)
    }

    async fn board_at(&self, at: DateTime<Utc>) -> Result<BoardFacts, StoreError> {
        let seats = sqlx::query(
            "SELECT seat_id, zone, kind, hourly_price, enabled FROM board_seats ORDER BY seat_id",
        )
        .fetch_all(&self.database.reader)
        .await
        .map_err(store_error)?;
        // The same status list as the partial index, so the index serves this query.
        let covering = sqlx::query(
            "SELECT seat_id, status, ends_at FROM view_reservations
             WHERE status IN ('REQUESTED', 'CONFIRMED', 'PAID', 'REGISTERED', 'COMPLETED')
               AND starts_at <= ? AND ? < ends_at",
        )
        .bind(micros(at))
        .bind(micros(at))
        .fetch_all(&self.database.reader)
        .await
        .map_err(store_error)?;
        let occupancy = |row: &SqliteRow| -> sqlx::Result<Occupancy> {
            let seat: String = row.try_get("seat_id")?;
            let status: String = row.try_get("status")?;
            Ok(Occupancy {
                seat_id: SeatId::parse(&seat).map_err(decode)?,
                status: ReservationStatus::parse(&status)
                    .ok_or_else(|| decode(format!("status {status:?}")))?,
                ends_at: instant(row, "ends_at")?,
            })
        };
        Ok(BoardFacts {
            seats: seats
                .iter()
                .map(seat_from_row)
                .collect::<Result<_, _>>()
                .map_err(store_error)?,
            covering: covering
                .iter()
                .map(occupancy)
                .collect::<Result<_, _>>()
                .map_err(store_error)?,
        })
    }

    async fn reservations_of(
        &self,
        customer: &CustomerId,
        limit: PageLimit,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS}, {DETAIL_COLUMNS}
             FROM view_reservations r
             LEFT JOIN view_reservation_details d ON d.reservation_id = r.reservation_id
             WHERE r.customer_id = ?
             ORDER BY r.created_at DESC, r.reservation_id DESC
             LIMIT ?"
        ))
        .bind(customer.as_str())
        .bind(i64::from(limit.get()))
        .fetch_all(&self.database.reader)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(TimelineEntry {
                    reservation: reservation_from_row(row)?,
                    details: details_from_row(row)?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(store_error)
    }

    async fn generation(&self) -> Result<Generation, StoreError> {
        let value: i64 = sqlx::query_scalar("SELECT value FROM view_meta WHERE key = 'generation'")
            .fetch_one(&self.database.writer)
            .await
            .map_err(store_error)?;
        u32::try_from(value)
            .map(Generation::new)
            .map_err(store_error)
    }

    async fn start_over(&self) -> Result<Generation, StoreError> {
        self.start_over_in().await.map_err(store_error)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await.map_err(store_error)
    }
}
