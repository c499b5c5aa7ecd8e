//! The rows of seat's tables as both SQL adapters read them, and their conversion to the
//! domain. The adapters differ only in column types (PostgreSQL has `uuid`, `timestamptz` and
//! small integers; SQLite text, unix seconds and 64-bit integers), so each reads its row into
//! these plain records and the parsing and validation of what comes back lives here, once.

use chrono::{DateTime, Utc};

use crate::domain::{
    CustomerId, Money, PaymentToken, Reservation, ReservationId, ReservationState,
    ReservationStatus, Seat, SeatId, SeatKind, TimeWindow,
};

/// A `seats` row.
#[derive(Debug)]
pub struct SeatRecord {
    pub seat_id: String,
    pub zone: String,
    pub kind: String,
    pub hourly_price: i64,
    pub enabled: bool,
}

impl SeatRecord {
    pub fn into_seat(self) -> Result<Seat, sqlx::Error> {
        Ok(Seat {
            id: SeatId::parse(&self.seat_id).map_err(decode)?,
            zone: self.zone,
            kind: SeatKind::parse(&self.kind)
                .ok_or_else(|| decode(format!("seat kind {}", self.kind)))?,
            hourly_price: Money::krw(self.hourly_price).map_err(decode)?,
            enabled: self.enabled,
        })
    }
}

/// A `reservations` row.
#[derive(Debug)]
pub struct ReservationRecord {
    pub reservation_id: String,
    pub seat_id: String,
    pub customer_id: String,
    pub starts_at: DateTime<Utc>,
    pub hours: i64,
    pub price: i64,
    pub status: String,
    pub status_reason: Option<String>,
    pub hold_expires_at: DateTime<Utc>,
    pub payment_token: String,
    pub payment_attempts: i64,
    pub next_payment_at: Option<DateTime<Utc>>,
    pub payment_id: Option<String>,
    pub registration_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl ReservationRecord {
    pub fn into_reservation(self) -> Result<Reservation, sqlx::Error> {
        Ok(Reservation::restore(ReservationState {
            id: ReservationId::parse(&self.reservation_id).map_err(decode)?,
            seat_id: SeatId::parse(&self.seat_id).map_err(decode)?,
            customer_id: CustomerId::parse(&self.customer_id).map_err(decode)?,
            window: TimeWindow::restore(self.starts_at, u8::try_from(self.hours).map_err(decode)?),
            price: Money::krw(self.price).map_err(decode)?,
            status: ReservationStatus::parse(&self.status)
                .ok_or_else(|| decode(format!("status {}", self.status)))?,
            status_reason: self.status_reason,
            hold_expires_at: self.hold_expires_at,
            payment_token: PaymentToken::parse(&self.payment_token).map_err(decode)?,
            payment_attempts: u32::try_from(self.payment_attempts).map_err(decode)?,
            next_payment_at: self.next_payment_at,
            payment_id: self.payment_id,
            registration_id: self.registration_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }))
    }
}

/// A stored value the domain refuses: the row is corrupt, not the request.
fn decode(e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(e.to_string().into())
}
