//! The rows of the payment tables as both SQL adapters read them, and their conversion to the
//! domain. The SQLite and MySQL schemas use the same column names and plain types (text ids,
//! integer amounts, unix-millisecond timestamps), so one decoding serves both — and the claim
//! statements below, which are plain SQL, serve both too.

use chrono::{DateTime, TimeZone, Utc};

use crate::domain::{
    CustomerId, Money, Payment, PaymentId, PaymentState, PaymentStatus, PaymentToken, Refund,
    RefundId, RefundState, RefundStatus, ReservationId,
    ports::{Claim, ClaimOutcome},
};

/// The lease condition of every claim (see [`Claim`]): free, expired or already ours.
/// Binds: now, holder.
macro_rules! claim_free_or_ours {
    () => {
        "(claimed_until IS NULL OR claimed_until <= ? OR claim_holder = ?)"
    };
}

/// Takes a PENDING payment's charge claim. Binds: holder, until, payment id, now, holder.
pub const CLAIM_CHARGE: &str = concat!(
    "UPDATE payments SET claim_holder = ?, claimed_until = ?
     WHERE payment_id = ? AND status = 'PENDING' AND ",
    claim_free_or_ours!()
);

/// Takes a refund's claim while it is still as read (PENDING, due, same attempt count).
/// Binds: holder, until, refund id, attempts, now (due), now, holder.
pub const CLAIM_REFUND: &str = concat!(
    "UPDATE refunds SET claim_holder = ?, claimed_until = ?
     WHERE refund_id = ? AND status = 'PENDING' AND attempts = ? AND next_attempt_at <= ? AND ",
    claim_free_or_ours!()
);

/// The binds of [`CLAIM_CHARGE`] (`id` a payment id) or [`CLAIM_REFUND`] (`id` a refund id,
/// `attempts` its attempt count as read) in order, for either adapter's query.
pub fn bind_claim<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
    id: String,
    attempts: Option<i64>,
    claim: &Claim,
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let query = query
        .bind(claim.holder.to_string())
        .bind(ms(claim.until))
        .bind(id);
    let query = match attempts {
        Some(attempts) => query.bind(attempts).bind(ms(claim.now)),
        None => query,
    };
    query.bind(ms(claim.now)).bind(claim.holder.to_string())
}

/// A claim statement's outcome from the rows it matched.
pub fn claim_outcome(rows_affected: u64) -> ClaimOutcome {
    if rows_affected == 1 {
        ClaimOutcome::Claimed
    } else {
        ClaimOutcome::Busy
    }
}

/// A timestamp as stored: unix milliseconds.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or_default()
}

/// The version a stored change writes over `expected` (its optimistic check): the one place
/// a payment's version goes up. Both stores write it in the same statement that checks
/// `expected`, and give it to the caller's copy with [`at_version`] once it is committed.
pub fn stored_version(expected: i64) -> i64 {
    expected + 1
}

/// `payment` as stored at `version` (the rest of it is what was just written).
pub fn at_version(payment: &mut Payment, version: i64) {
    *payment = Payment::restore(PaymentState {
        version,
        ..payment.state().clone()
    });
}

fn decode(e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(e.to_string().into())
}

/// [`crate::domain::ports::PaymentStore::stranded_payments`] for both SQL stores (the same
/// columns and millisecond timestamps). Binds: untouched since, now, limit.
pub const STRANDED_PAYMENTS: &str = "SELECT p.* FROM payments p
     JOIN reservation_closures c ON c.reservation_id = p.reservation_id
     WHERE p.status = 'PENDING' AND p.updated_at <= ?
       AND (p.claimed_until IS NULL OR p.claimed_until <= ?)
     ORDER BY p.updated_at LIMIT ?";

/// A `payments` row (other columns, such as the charge claim, are not read).
#[derive(Debug, sqlx::FromRow)]
pub struct PaymentRow {
    payment_id: String,
    reservation_id: String,
    customer_id: String,
    amount: i64,
    currency: String,
    payment_token: String,
    status: String,
    provider_ref: Option<String>,
    decline_reason: Option<String>,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
    version: i64,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = sqlx::Error;

    fn try_from(row: PaymentRow) -> Result<Self, sqlx::Error> {
        Ok(Payment::restore(PaymentState {
            id: PaymentId::parse(&row.payment_id).map_err(decode)?,
            reservation_id: ReservationId::parse(&row.reservation_id).map_err(decode)?,
            customer_id: CustomerId::parse(&row.customer_id).map_err(decode)?,
            amount: Money::parse(row.amount, &row.currency).map_err(decode)?,
            token: PaymentToken::parse(&row.payment_token).map_err(decode)?,
            status: PaymentStatus::parse(&row.status)
                .ok_or_else(|| decode(format!("payment status {}", row.status)))?,
            provider_ref: row.provider_ref,
            decline_reason: row.decline_reason,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            created_at: from_ms(row.created_at),
            updated_at: from_ms(row.updated_at),
            version: row.version,
        }))
    }
}

/// A `refunds` row.
#[derive(Debug, sqlx::FromRow)]
pub struct RefundRow {
    refund_id: String,
    payment_id: String,
    reservation_id: String,
    charge_ref: String,
    amount: i64,
    currency: String,
    status: String,
    provider_ref: Option<String>,
    attempts: i64,
    next_attempt_at: i64,
    cause: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<RefundRow> for Refund {
    type Error = sqlx::Error;

    fn try_from(row: RefundRow) -> Result<Self, sqlx::Error> {
        Ok(Refund::restore(RefundState {
            id: RefundId::parse(&row.refund_id).map_err(decode)?,
            payment_id: PaymentId::parse(&row.payment_id).map_err(decode)?,
            reservation_id: ReservationId::parse(&row.reservation_id).map_err(decode)?,
            charge_ref: row.charge_ref,
            amount: Money::parse(row.amount, &row.currency).map_err(decode)?,
            status: RefundStatus::parse(&row.status)
                .ok_or_else(|| decode(format!("refund status {}", row.status)))?,
            provider_ref: row.provider_ref,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            next_attempt_at: from_ms(row.next_attempt_at),
            cause: row.cause,
            created_at: from_ms(row.created_at),
            updated_at: from_ms(row.updated_at),
        }))
    }
}

/// Converts fetched rows, failing on the first that does not decode.
pub fn convert<R, T: TryFrom<R, Error = sqlx::Error>>(rows: Vec<R>) -> sqlx::Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}
