//! Value objects of a booking: its price, its window and the reasons people give.

use std::fmt;

use chrono::{DateTime, Utc};

/// Money in Korean won. KRW has no minor unit, so an amount is a whole number of won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money {
    won: i64,
}

impl Money {
    pub fn krw(won: i64) -> Result<Self, ValueError> {
        if won < 0 {
            return Err(ValueError::NegativePrice(won));
        }
        Ok(Self { won })
    }

    pub fn won(&self) -> i64 {
        self.won
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "₩{}", self.won)
    }
}

/// The reserved window `[starts_at, ends_at)`, as the seat service decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

impl Window {
    pub fn new(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Result<Self, ValueError> {
        if ends_at <= starts_at {
            return Err(ValueError::EmptyWindow { starts_at, ends_at });
        }
        Ok(Self { starts_at, ends_at })
    }

    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    pub fn ends_at(&self) -> DateTime<Utc> {
        self.ends_at
    }
}

/// Why an admin rejected a booking: 1 to 200 characters once trimmed. The customer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionReason(String);

impl RejectionReason {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let reason = raw.trim();
        let chars = reason.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(ValueError::Reason { chars });
        }
        Ok(Self(reason.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("a price cannot be negative (got {0})")]
    NegativePrice(i64),
    #[error("the window ends ({ends_at}) before it starts ({starts_at})")]
    EmptyWindow {
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    #[error(
        "a reason must be 1 to {max} characters once trimmed (got {chars})",
        max = RejectionReason::MAX_CHARS
    )]
    Reason { chars: usize },
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn values_are_checked() {
        assert!(Money::krw(-1).is_err());
        assert_eq!(Money::krw(3000).unwrap().won(), 3000);
        let now = Utc::now();
        assert!(Window::new(now, now).is_err());
        assert!(Window::new(now, now + Duration::hours(1)).is_ok());
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            RejectionReason::parse("  full today ").unwrap().as_str(),
            "full today"
        );
        assert!(RejectionReason::parse("   ").is_err());
        assert!(
            RejectionReason::parse(&"가".repeat(200)).is_ok(),
            "chars, not bytes"
        );
        assert!(RejectionReason::parse(&"x".repeat(201)).is_err());
    }
}
