//! Identifiers, each parsed once at the edge so the domain never sees a malformed one.
//!
//! The customer and the payment token are a contract between seat and payment, so they come
//! from the published language; the ids here are this service's own.

use std::fmt;

pub use shared_events::{CustomerId, IdError, PaymentToken};
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
}
