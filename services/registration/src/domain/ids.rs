//! Identifiers, each parsed once at the edge (HTTP or an event) so the domain never holds a
//! malformed one.

use std::fmt;

use rand::Rng as _;
pub use shared_events::IdError;
use uuid::Uuid;

/// A reservation's id (made by the seat service): the key of a booking and the saga's
/// correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(Uuid);

impl ReservationId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| IdError::new("reservation id", raw, "a UUID"))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Defines a newtype over a trimmed, bounded, printable string.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                let raw = raw.trim();
                let valid = !raw.is_empty()
                    && raw.chars().count() <= $max
                    && !raw.chars().any(char::is_control);
                if valid {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(IdError::new(
                        $what,
                        raw,
                        concat!("1 to ", $max, " printable characters"),
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A seat's id as the seat service names it (`A-01`). Registration does not own the
    /// catalogue, so it only checks that the id is a sane label.
    SeatId,
    "seat id",
    32
);

text_id!(
    /// The customer, as the identity service names them (the token's `sub`).
    CustomerId,
    "customer id",
    128
);

text_id!(
    /// The admin who decided or changed something (the token's `sub`).
    AdminId,
    "admin id",
    128
);

text_id!(
    /// The cafe a policy belongs to. One deployment serves one cafe today; the key is there so
    /// a chain of cafes can share the schema.
    CafeId,
    "cafe id",
    64
);

/// A registration's id: a UUID v7, made when a paid booking is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegistrationId(Uuid);

impl RegistrationId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| IdError::new("registration id", raw, "a UUID"))
    }
}

impl Default for RegistrationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RegistrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The code a customer shows (or types) at the cafe's door: 8 random characters from an
/// alphabet without look-alikes (no `0/O`, `1/I/L`), so it can be read aloud or off a phone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryPassCode(String);

impl EntryPassCode {
    pub const ALPHABET: &'static [u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    pub const LENGTH: usize = 8;

    /// A fresh random code (thread-local CSPRNG: codes must not be guessable).
    pub fn random() -> Self {
        let mut rng = rand::thread_rng();
        let code = (0..Self::LENGTH)
            .map(|_| char::from(Self::ALPHABET[rng.gen_range(0..Self::ALPHABET.len())]))
            .collect();
        Self(code)
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let raw = raw.trim();
        let valid = raw.len() == Self::LENGTH && raw.bytes().all(|b| Self::ALPHABET.contains(&b));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::new(
                "entry pass code",
                raw,
                "8 characters of ABCDEFGHJKMNPQRSTUVWXYZ23456789",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryPassCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn text_ids_are_trimmed_and_bounded() {
        assert_eq!(SeatId::parse(" A-01 ").unwrap().as_str(), "A-01");
        assert!(SeatId::parse("").is_err());
        assert!(SeatId::parse("   ").is_err());
        assert!(SeatId::parse(&"x".repeat(33)).is_err());
        assert!(CustomerId::parse("al\nice").is_err());
        assert!(CafeId::parse("main").is_ok());
    }

    #[test]
    fn reservation_ids_are_uuids() {
        let raw = Uuid::now_v7().to_string();
        assert_eq!(ReservationId::parse(&raw).unwrap().to_string(), raw);
        assert!(ReservationId::parse("nope").is_err());
    }

    #[test]
    fn entry_pass_codes_use_the_unambiguous_alphabet() {
        let codes: HashSet<String> = (0..500)
            .map(|_| EntryPassCode::random().to_string())
            .collect();
        assert!(codes.len() > 495, "codes are random");
        for code in &codes {
            assert_eq!(code.len(), 8);
            assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code}");
            assert_eq!(EntryPassCode::parse(code).unwrap().as_str(), code);
        }
        assert!(EntryPassCode::parse("ABCDEFG0").is_err());
        assert!(EntryPassCode::parse("ABCDEFG").is_err());
    }
}
