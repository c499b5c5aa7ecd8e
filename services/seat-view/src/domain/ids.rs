//! Identifiers, parsed once where events and requests come in, so the views never hold a
//! malformed one.
//!
//! The read side is deliberately more lenient than the publishers: the seat service owns the
//! rules for what a seat id looks like, and a view that refused an id its owner accepted would
//! dead-letter real news. These constructors only keep out what no publisher would ever send
//! (blank, absurdly long, control characters).

use std::fmt;

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {raw:?} is invalid: expected {expected}")]
pub struct IdError {
    what: &'static str,
    raw: String,
    expected: &'static str,
}

impl IdError {
    fn new(what: &'static str, raw: &str, expected: &'static str) -> Self {
        // Cap what ends up in logs and dead-letter headers.
        let raw: String = raw.chars().take(80).collect();
        Self {
            what,
            raw,
            expected,
        }
    }
}

fn printable(raw: &str, max: usize) -> bool {
    !raw.is_empty() && raw.len() <= max && !raw.chars().any(char::is_control)
}

/// A reservation's id (a UUID), also the saga's correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(Uuid);

impl ReservationId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| IdError::new("reservation id", raw, "a UUID"))
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hyphenated lower case, as every publisher writes it.
        self.0.fmt(f)
    }
}

/// A seat's id as the seat service names it (`A-01`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatId(String);

impl SeatId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let raw = raw.trim();
        if printable(raw, 32) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::new("seat id", raw, "1 to 32 printable characters"))
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

/// The customer, as the identity service names them: the events' `customerId`, the token's
/// subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let raw = raw.trim();
        if printable(raw, 128) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::new(
                "customer id",
                raw,
                "1 to 128 printable characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference another context hands out (payment id, registration id, refund id, entry pass
/// code): opaque to this service, only kept and shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalRef(String);

impl ExternalRef {
    pub fn parse(what: &'static str, raw: &str) -> Result<Self, IdError> {
        let raw = raw.trim();
        if printable(raw, 200) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::new(what, raw, "1 to 200 printable characters"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_at_the_edge() {
        let id = ReservationId::parse(" 0190a6d2-7c3e-7b1a-9f00-000000000001 ").unwrap();
        assert_eq!(id.to_string(), "0190a6d2-7c3e-7b1a-9f00-000000000001");
        assert!(ReservationId::parse("nope").is_err());
        assert_eq!(SeatId::parse(" A-01 ").unwrap().as_str(), "A-01");
        assert!(SeatId::parse("").is_err());
        assert!(SeatId::parse("A\n01").is_err());
        assert!(SeatId::parse(&"A".repeat(33)).is_err());
        assert!(CustomerId::parse("alice").is_ok());
        assert!(CustomerId::parse("  ").is_err());
        assert!(ExternalRef::parse("entry pass code", "123456").is_ok());
        let err = ExternalRef::parse("payment id", "").unwrap_err();
        assert!(err.to_string().starts_with("payment id"));
    }
}
