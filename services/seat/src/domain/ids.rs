//! Identifiers, each parsed once at the edge so the domain never sees a malformed one.
//!
//! The customer and the payment token are a contract between seat and payment, so they come
//! from the published language; the ids here are this service's own.

use std::fmt;

pub use shared_events::{CustomerId, IdError, PaymentToken};
use uuid::Uuid;

/// A reservation's id: a UUID v7 (time-ordered), also the saga's correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(Uuid);

impl ReservationId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| IdError::new("reservation id", raw, "a UUID"))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for ReservationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A seat's id as printed on the desk: zone letters, a dash, a number (`A-01`, `FB-3`, `G-12`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatId(String);

impl SeatId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let raw = raw.trim();
        let valid = raw.split_once('-').is_some_and(|(zone, number)| {
            (1..=3).contains(&zone.len())
                && zone.chars().all(|c| c.is_ascii_uppercase())
                && (1..=3).contains(&number.len())
                && number.chars().all(|c| c.is_ascii_digit())
        });
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::new(
                "seat id",
                raw,
                "like A-01 (zone letters, dash, number)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_ids() {
        for ok in ["A-01", "FB-3", "G-12", "ABC-123"] {
            assert!(SeatId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a-01",
            "A01",
            "A-",
            "-01",
            "ABCD-1",
            "A-1234",
            "A-0x",
            "A-01; DROP",
        ] {
            assert!(SeatId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reservation_ids_round_trip() {
        let id = ReservationId::new();
        assert_eq!(ReservationId::parse(&id.to_string()).unwrap(), id);
        assert!(ReservationId::parse("nope").is_err());
    }
}
