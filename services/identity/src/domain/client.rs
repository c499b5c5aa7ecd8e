//! Machine clients (other services) that get tokens with `client_credentials`.
//!
//! Secrets are kept only as SHA-256 digests and compared in constant time: how long a
//! comparison takes must not tell an attacker how many leading bytes they guessed right.

use std::fmt;

use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -` (it becomes a token's `sub` and appears in logs).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let valid = (1..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "client id {:?} must be 1 to 64 letters, digits, '.', '_' or '-'",
                raw.chars().take(64).collect::<String>()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's secret in the clear (configuration, or a request). `Debug` never shows it.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// A registered machine client.
#[derive(Clone)]
pub struct Client {
    pub id: ClientId,
    secret_digest: [u8; 32],
}

impl Client {
    pub fn new(id: ClientId, secret: &ClientSecret) -> Self {
        Self {
            id,
            secret_digest: secret.digest(),
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The clients allowed to ask for tokens.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    clients: Vec<Client>,
}

impl ClientRegistry {
    /// Fails on a client id registered twice (which secret would count?).
    pub fn new(clients: Vec<Client>) -> Result<Self, String> {
        for (i, client) in clients.iter().enumerate() {
            if clients[..i].iter().any(|c| c.id == client.id) {
                return Err(format!("client id {} is listed twice", client.id));
            }
        }
        Ok(Self { clients })
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client, if `id` is registered and `secret` is its secret. An unknown id still pays
    /// for one digest comparison, so both failures take about as long.
    pub fn authenticate(&self, id: &str, secret: &ClientSecret) -> Option<&Client> {
        let presented = secret.digest();
        let client = self.clients.iter().find(|c| c.id.as_str() == id);
        let expected = client.map_or([0u8; 32], |c| c.secret_digest);
        let matches = constant_time_eq(&presented, &expected);
        client.filter(|_| matches)
    }
}

/// Compares without an early exit: every byte is looked at whatever the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        difference |= x ^ y;
    }
    // Keeps the optimiser from turning the loop back into a short-circuiting comparison.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ClientRegistry {
        ClientRegistry::new(vec![Client::new(
            ClientId::parse("seat-service").unwrap(),
            &ClientSecret::new("s3cret"),
        )])
        .unwrap()
    }

    #[test]
    fn authenticates_only_the_right_secret() {
        let clients = registry();
        assert!(
            clients
                .authenticate("seat-service", &ClientSecret::new("s3cret"))
                .is_some()
        );
        assert!(
            clients
                .authenticate("seat-service", &ClientSecret::new("s3cres"))
                .is_none()
        );
        assert!(
            clients
                .authenticate("payment", &ClientSecret::new("s3cret"))
                .is_none()
        );
        assert!(
            clients
                .authenticate("seat-service", &ClientSecret::new(""))
                .is_none()
        );
    }

    #[test]
    fn ids_are_checked_and_unique() {
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("").is_err());
        let id = ClientId::parse("x").unwrap();
        let twice = vec![
            Client::new(id.clone(), &ClientSecret::new("1")),
            Client::new(id, &ClientSecret::new("2")),
        ];
        assert!(ClientRegistry::new(twice).is_err());
        assert_eq!(
            format!("{:?}", ClientSecret::new("hidden")),
            "ClientSecret(..)"
        );
        assert!(!format!("{:?}", registry()).contains("s3cret"));
    }
}
