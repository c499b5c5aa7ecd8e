//! The argon2id adapter of [`PasswordHasher`].
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU and ~19 MiB of memory per call,
//! the OWASP baseline), so it runs on the blocking pool: on the async workers it would stall
//! every other request of the process.

use argon2::{
    Argon2,
    password_hash::{self, PasswordHasher as _, PasswordVerifier as _, SaltString},
};

use crate::domain::{
    Password, PasswordHash,
    ports::{HashError, PasswordHasher},
};

#[derive(Debug, Clone, Copy, Default)]
pub struct Argon2Hasher;

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
) -> Result<T, HashError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HashError(format!("hashing worker failed: {e}")))?
}

impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: Password) -> Result<PasswordHash, HashError> {
        blocking(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            // `Argon2::default()` is argon2id, v19, m = 19456 KiB, t = 2, p = 1.
            Argon2::default()
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|hash| PasswordHash::new(hash.to_string()))
                .map_err(|e| HashError(e.to_string()))
        })
        .await
    }

    async fn verify(&self, password: Password, hash: PasswordHash) -> Result<bool, HashError> {
        blocking(move || {
            let parsed = password_hash::PasswordHash::new(hash.as_str())
                .map_err(|e| HashError(format!("a stored hash is unreadable: {e}")))?;
            // The parameters come from the stored hash, so old hashes keep verifying if the
            // defaults ever change.
            match Argon2::default().verify_password(password.expose().as_bytes(), &parsed) {
                Ok(()) => Ok(true),
                Err(password_hash::Error::Password) => Ok(false),
                Err(e) => Err(HashError(e.to_string())),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let hasher = Argon2Hasher;
        let password = Password::parse("correct horse").unwrap();
        let one = hasher.hash(password.clone()).await.unwrap();
        let two = hasher.hash(password.clone()).await.unwrap();
        assert_ne!(one, two, "each hash has its own salt");
        assert!(one.as_str().starts_with("$argon2id$"));
        assert!(hasher.verify(password, one.clone()).await.unwrap());
        let wrong = Password::parse("incorrect horse").unwrap();
        assert!(!hasher.verify(wrong.clone(), one).await.unwrap());
        assert!(
            hasher
                .verify(wrong, PasswordHash::new("garbage"))
                .await
                .is_err()
        );
    }
}
