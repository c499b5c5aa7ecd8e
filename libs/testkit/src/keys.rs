//! A signing key for tests, with its JWKS written to a file the services can read.

use std::path::{Path, PathBuf};

use studycafe_platform::signing::{AccessClaims, SigningKey, jwks};

pub const ISSUER: &str = "studycafe-identity";
pub const AUDIENCE: &str = "studycafe";

#[derive(Debug)]
pub struct TestKeys {
    key: SigningKey,
    _dir: tempfile::TempDir,
    jwks_file: PathBuf,
}

impl TestKeys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = SigningKey::generate(format!("test-{}", uuid::Uuid::new_v4()));
        let jwks_file = dir.path().join("jwks.json");
        std::fs::write(&jwks_file, jwks([&key]).to_string()).expect("write jwks");
        Self {
            key,
            _dir: dir,
            jwks_file,
        }
    }

    pub fn jwks_file(&self) -> &Path {
        &self.jwks_file
    }

    /// A valid token for `user` with `roles`.
    pub fn token(&self, user: &str, roles: &[&str]) -> String {
        self.key
            .sign(&AccessClaims::new(
                ISSUER,
                AUDIENCE,
                user,
                roles,
                chrono::Duration::minutes(30),
            ))
            .expect("sign")
    }

    pub fn customer(&self, user: &str) -> String {
        self.token(user, &["customer"])
    }

    pub fn admin(&self, user: &str) -> String {
        self.token(user, &["admin"])
    }

    /// A well-formed token signed by a key the services do not know, under a known kid.
    pub fn forged(&self, user: &str) -> String {
        SigningKey::generate(self.key.kid())
            .sign(&AccessClaims::new(
                ISSUER,
                AUDIENCE,
                user,
                &["customer", "admin"],
                chrono::Duration::minutes(30),
            ))
            .expect("sign")
    }
}

impl Default for TestKeys {
    fn default() -> Self {
        Self::new()
    }
}
