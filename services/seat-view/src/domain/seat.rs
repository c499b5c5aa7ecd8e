//! The seats of the board, as the seat service last defined them.

use std::fmt;

use crate::domain::{Money, SeatId};

/// What kind of place a seat is (`open-desk`, `focus-booth`, `group-room`). The seat service
/// owns the vocabulary; a kind it adds later is shown as it comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatKind(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seat kind {0:?} is invalid: expected 1 to 32 lower-case letters, digits or dashes")]
pub struct InvalidSeatKind(String);

impl SeatKind {
    pub fn parse(raw: &str) -> Result<Self, InvalidSeatKind> {
        let raw = raw.trim();
        let valid = (1..=32).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidSeatKind(raw.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SeatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A seat as it now stands. A later definition of the same seat replaces this one whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatDefinition {
    pub id: SeatId,
    pub zone: String,
    pub kind: SeatKind,
    pub hourly_price: Money,
    pub enabled: bool,
}
