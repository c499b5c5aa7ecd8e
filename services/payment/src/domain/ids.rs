//! Identifiers, each parsed once at the edge so the domain never sees a malformed one.

use std::fmt;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                Uuid::parse_str(raw.trim())
                    .map(Self)
                    .map_err(|_| IdError::new($what, raw, "a UUID"))
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// The seat service's reservation id: the saga's correlation id and payment's
    /// idempotency key (one payment per reservation).
    ReservationId,
    "reservation id"
);
uuid_id!(
    /// A payment's id: a UUID v7 made here.
    PaymentId,
    "payment id"
);
uuid_id!(
    /// A refund's id: a UUID v7 made here.
    RefundId,
    "refund id"
);

impl PaymentId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for PaymentId {
    fn default() -> Self {
        Self::new()
    }
}

impl RefundId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for RefundId {
    fn default() -> Self {
        Self::new()
    }
}

/// The customer, as the identity service names them (the token's `sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 128 {
            return Err(IdError::new("customer id", raw, "1 to 128 characters"));
        }
        Ok(Self(raw.to_owned()))
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

/// An opaque reference to the customer's means of payment. Only the card provider reads it;
/// it is never logged in full, never shown by the API and never published in events.
#[derive(Clone, PartialEq, Eq)]
pub struct PaymentToken(String);

impl PaymentToken {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let raw = raw.trim();
        let valid = !raw.is_empty()
            && raw.len() <= 200
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::new(
                "payment token",
                "(hidden)",
                "1 to 200 letters, digits, '_', '-' or '.'",
            ))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PaymentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaymentToken(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: expected {expected}")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl IdError {
    fn new(what: &'static str, value: &str, expected: &'static str) -> Self {
        Self {
            what,
            value: value.chars().take(64).collect(),
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_round_trip() {
        let id = PaymentId::new();
        assert_eq!(PaymentId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert!(ReservationId::parse("nope").is_err());
        assert!(RefundId::parse("").is_err());
    }

    #[test]
    fn customer_ids() {
        assert_eq!(CustomerId::parse(" alice ").unwrap().as_str(), "alice");
        assert!(CustomerId::parse("   ").is_err());
        assert!(CustomerId::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn payment_tokens_are_not_printed() {
        let token = PaymentToken::parse("tok_approve").unwrap();
        assert_eq!(format!("{token:?}"), "PaymentToken(..)");
        assert!(PaymentToken::parse("tok approve").is_err());
        assert!(PaymentToken::parse("").is_err());
        let err = PaymentToken::parse("secret token").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
