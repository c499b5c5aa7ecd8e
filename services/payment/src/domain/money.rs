//! Money as payment handles it: a positive amount in a currency it takes.
//!
//! Amounts are whole units of the currency's smallest unit; KRW (the only currency studycafe
//! sells in) has no minor unit, so an amount is a number of won.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Currency {
    Krw,
}

impl Currency {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "KRW" => Some(Self::Krw),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Krw => "KRW",
        }
    }
}

/// A chargeable amount: never zero or negative (nothing to charge is not a payment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: i64,
    currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("an amount must be positive, not {0}")]
    NotPositive(i64),
    #[error("currency {0:?} is not accepted (only KRW)")]
    UnknownCurrency(String),
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount <= 0 {
            return Err(MoneyError::NotPositive(amount));
        }
        Ok(Self { amount, currency })
    }

    /// Parses an amount with its ISO 4217 code as the wire carries them.
    pub fn parse(amount: i64, currency: &str) -> Result<Self, MoneyError> {
        let currency = Currency::parse(currency)
            .ok_or_else(|| MoneyError::UnknownCurrency(currency.chars().take(16).collect()))?;
        Self::new(amount, currency)
    }

    pub fn krw(won: i64) -> Result<Self, MoneyError> {
        Self::new(won, Currency::Krw)
    }

    pub fn amount(&self) -> i64 {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_known_currency() {
        assert_eq!(Money::parse(4000, "KRW").unwrap().amount(), 4000);
        assert_eq!(Money::parse(0, "KRW"), Err(MoneyError::NotPositive(0)));
        assert_eq!(Money::krw(-5), Err(MoneyError::NotPositive(-5)));
        assert!(matches!(
            Money::parse(10, "USD"),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert_eq!(Money::krw(2500).unwrap().to_string(), "2500 KRW");
    }
}
