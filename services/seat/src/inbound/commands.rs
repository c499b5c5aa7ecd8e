//! What every inbound adapter (REST, gRPC) does the same way before calling a use case:
//! parsing a reservation request into [`ReserveSeat`], fingerprinting it for idempotency, and
//! turning a verified caller into an [`Actor`]. One place, so the adapters cannot drift apart.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use studycafe_platform::auth::Caller;

use crate::application::{Actor, ReserveSeat};
use crate::domain::{CustomerId, PaymentToken, ReservationId, SeatId, ports::IdempotencyClaim};

/// A reservation request as it arrived, before parsing.
#[derive(Debug, Clone, Copy)]
pub struct RawReservation<'a> {
    pub seat_id: &'a str,
    pub starts_at: &'a str,
    pub hours: i64,
    pub payment_token: &'a str,
}

/// The input field a violation is about; each adapter names it in its own dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    SeatId,
    StartsAt,
    Hours,
    PaymentToken,
    IdempotencyKey,
}

impl Field {
    /// The name in the REST API's JSON body (and header).
    pub fn json_name(self) -> &'static str {
        match self {
            Field::SeatId => "seatId",
            Field::StartsAt => "startsAt",
            Field::Hours => "hours",
            Field::PaymentToken => "paymentToken",
            Field::IdempotencyKey => "Idempotency-Key",
        }
    }

    /// The name in the protobuf message (and metadata key).
    pub fn proto_name(self) -> &'static str {
        match self {
            Field::SeatId => "seat_id",
            Field::StartsAt => "starts_at",
            Field::Hours => "hours",
            Field::PaymentToken => "payment_token",
            Field::IdempotencyKey => "idempotency-key",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldViolation {
    pub field: Field,
    pub message: String,
}

impl FieldViolation {
    fn new(field: Field, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// How an idempotency key arrived.
#[derive(Debug, Clone, Copy)]
pub enum KeyInput<'a> {
    Absent,
    /// Present, but not visible ASCII.
    Unreadable,
    Given(&'a str),
}

/// Parses a reservation request. Nothing is written unless this succeeds.
pub fn reserve_command(
    customer: CustomerId,
    raw: RawReservation<'_>,
    key: KeyInput<'_>,
    causation: String,
) -> Result<ReserveSeat, FieldViolation> {
    let seat_id = SeatId::parse(raw.seat_id)
        .map_err(|e| FieldViolation::new(Field::SeatId, e.to_string()))?;
    let starts_at = DateTime::parse_from_rfc3339(raw.starts_at.trim())
        .map_err(|e| {
            FieldViolation::new(
                Field::StartsAt,
                format!("startsAt must be an RFC 3339 timestamp with offset: {e}"),
            )
        })?
        .with_timezone(&Utc);
    let payment_token = PaymentToken::parse(raw.payment_token)
        .map_err(|e| FieldViolation::new(Field::PaymentToken, e.to_string()))?;
    let idempotency = match key {
        KeyInput::Absent => None,
        KeyInput::Unreadable => return Err(bad_key()),
        KeyInput::Given(key) => {
            let key = key.trim();
            if key.is_empty() || key.len() > 200 {
                return Err(bad_key());
            }
            // The request's meaning, not its spelling: a replay with the same key must mean
            // the same reservation, whichever adapter either request came through.
            let fingerprint = format!(
                "{}|{}|{}|{}",
                seat_id,
                starts_at.timestamp(),
                raw.hours,
                payment_token.expose()
            );
            Some(IdempotencyClaim {
                key: key.to_owned(),
                request_hash: hex::encode(Sha256::digest(fingerprint.as_bytes())),
            })
        }
    };
    Ok(ReserveSeat {
        customer,
        seat_id,
        starts_at,
        hours: raw.hours,
        payment_token,
        idempotency,
        causation,
    })
}

fn bad_key() -> FieldViolation {
    FieldViolation::new(
        Field::IdempotencyKey,
        "Idempotency-Key must be 1 to 200 visible ASCII characters",
    )
}

/// The caller as the use cases know them; `Err` carries why the token's subject is unusable.
pub fn actor_of(caller: &Caller) -> Result<Actor, String> {
    Ok(Actor {
        user: CustomerId::parse(&caller.user_id).map_err(|e| e.to_string())?,
        admin: caller.is_admin(),
    })
}

/// A reservation id from a path or message; one that cannot exist is simply not found.
pub fn reservation_id(raw: &str) -> Result<ReservationId, String> {
    ReservationId::parse(raw).map_err(|_| format!("reservation {raw:?} does not exist"))
}
