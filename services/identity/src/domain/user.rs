//! Accounts: the `User` and the value objects it is made of, each parsed once at the edge so
//! the domain never holds an invalid one.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Which piece of a sign-up (or bootstrap account) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Username,
    Password,
    DisplayName,
}

/// A value that breaks its rule. `message` says the rule; it never repeats a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

impl FieldError {
    fn new(field: Field, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// A user's id: a UUID v7, and the `sub` of their tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(Uuid);

impl UserId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Uuid::parse_str(raw.trim()).ok().map(Self)
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A login name: 3 to 32 of `a-z 0-9 . _ -`. Stored lowercase, so `Alice` and `alice` are the
/// same account (two people must never be told apart by case alone).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim().to_ascii_lowercase();
        let count = name.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&count) {
            return Err(FieldError::new(
                Field::Username,
                format!(
                    "username must be {} to {} characters long",
                    Self::MIN,
                    Self::MAX
                ),
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        {
            return Err(FieldError::new(
                Field::Username,
                "username may contain only letters a-z, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password in the clear, on its way to being hashed or checked. Its `Debug` never shows
/// it, so it cannot leak through a log line or a panic message.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    /// A password a new account may have: 8 to 128 characters (counted as characters, so a
    /// Korean passphrase is not penalised for its UTF-8 length).
    pub fn parse(raw: impl Into<String>) -> Result<Self, FieldError> {
        let raw = raw.into();
        let count = raw.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&count) {
            return Err(FieldError::new(
                Field::Password,
                format!(
                    "password must be {} to {} characters long",
                    Self::MIN,
                    Self::MAX
                ),
            ));
        }
        Ok(Self(raw))
    }

    /// A long random password nobody knows: hashed once at start-up so that a login for an
    /// unknown user costs as much as one for a known user.
    pub fn unguessable() -> Self {
        Self(format!(
            "{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        ))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// The name shown to people: 1 to 64 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(FieldError::new(
                Field::DisplayName,
                "displayName must not be empty",
            ));
        }
        if name.chars().count() > Self::MAX {
            return Err(FieldError::new(
                Field::DisplayName,
                format!("displayName must be at most {} characters long", Self::MAX),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                Field::DisplayName,
                "displayName must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a person may do. Machine clients have the `service` role, which is not a user role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A password hash in PHC string form (`$argon2id$v=19$...`). Not secret in the way a password
/// is, but no business of a log line either.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub display_name: DisplayName,
    pub password_hash: PasswordHash,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
}

impl User {
    pub fn register(
        username: Username,
        display_name: DisplayName,
        password_hash: PasswordHash,
        roles: &[Role],
        now: DateTime<Utc>,
    ) -> Self {
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        Self {
            id: UserId::new(),
            username,
            display_name,
            password_hash,
            roles,
            created_at: now,
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn role_names(&self) -> Vec<&'static str> {
        self.roles.iter().map(|r| r.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(
            Username::parse(" Alice.K_9-x ").unwrap().as_str(),
            "alice.k_9-x"
        );
        for bad in [
            "ab",
            "",
            &"a".repeat(33),
            "al ice",
            "ali@ce",
            "älice",
            "alice!",
        ] {
            let err = Username::parse(bad).unwrap_err();
            assert_eq!(err.field, Field::Username, "{bad}");
        }
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn passwords_count_characters_and_never_print() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse("비밀번호비밀번호").is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
        let password = Password::parse("hunter2hunter2").unwrap();
        assert_eq!(format!("{password:?}"), "Password(..)");
        let err = Password::parse("short").unwrap_err();
        assert!(!err.to_string().contains("short"));
    }

    #[test]
    fn display_names_are_trimmed() {
        assert_eq!(DisplayName::parse("  Alice  ").unwrap().as_str(), "Alice");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"가".repeat(64)).is_ok());
        assert!(DisplayName::parse(&"가".repeat(65)).is_err());
        assert!(DisplayName::parse("Al\u{0}ice").is_err());
    }
}
