//! The identifiers that are a contract between services: seat takes them from a request and
//! hands them to payment, and events name the customer. One definition, so the two sides
//! cannot disagree on what a valid one is.
//!
//! Each is parsed once, at the edge, so no domain sees a malformed one. A service's own ids
//! (a seat, a payment) stay in its domain, built with the same [`IdError`].

use std::fmt;

/// An identifier that does not parse. Its text is cut short so a hostile one cannot flood the
/// logs or a problem response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: expected {expected}")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl IdError {
    pub fn new(what: &'static str, value: &str, expected: &'static str) -> Self {
        Self {
            what,
            value: value.chars().take(64).collect(),
            expected,
        }
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

/// An opaque reference to the customer's means of payment: seat takes it from the customer and
/// hands it to the payment service, whose card provider alone reads it. Never logged in full,
/// never shown by an API and never published in events.
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

#[cfg(test)]
mod tests {
    use super::*;

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
