//! Money in Korean won, the one currency of studycafe. KRW has no minor unit.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money {
    won: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an amount cannot be negative")]
pub struct NegativeAmount;

impl Money {
    pub fn krw(won: i64) -> Result<Self, NegativeAmount> {
        if won < 0 {
            return Err(NegativeAmount);
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
