//! Money in Korean won. KRW has no minor unit, so an amount is a whole number of won.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money {
    won: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("an amount cannot be negative")]
    Negative,
    #[error("the amount is too large")]
    Overflow,
}

impl Money {
    pub fn krw(won: i64) -> Result<Self, MoneyError> {
        if won < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Self { won })
    }

    pub fn won(&self) -> i64 {
        self.won
    }

    /// The price of `hours` at this hourly rate.
    pub fn times(&self, hours: u8) -> Result<Self, MoneyError> {
        self.won
            .checked_mul(i64::from(hours))
            .map(|won| Self { won })
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "₩{}", self.won)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices() {
        assert_eq!(Money::krw(3000).unwrap().times(3).unwrap().won(), 9000);
        assert_eq!(Money::krw(-1), Err(MoneyError::Negative));
        assert_eq!(
            Money::krw(i64::MAX).unwrap().times(2),
            Err(MoneyError::Overflow)
        );
    }
}
