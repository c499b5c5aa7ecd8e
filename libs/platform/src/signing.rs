//! Ed25519 signing keys for access tokens, and their public JWKS form.
//!
//! Used by whoever issues tokens (the identity service; in embedded mode before identity
//! exists, the `studycafe token` command; tests). Verification lives in [`crate::auth`].

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{
    DecodePrivateKey as _, EncodePrivateKey as _, spki::der::pem::LineEnding,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// A private signing key with its key id.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("not an Ed25519 PKCS#8 private key: {0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

impl SigningKey {
    /// A fresh random key; `kid` names it in token headers and the JWKS.
    pub fn generate(kid: impl Into<String>) -> Self {
        Self {
            kid: kid.into(),
            key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn from_pkcs8_pem(kid: impl Into<String>, pem: &str) -> Result<Self, SigningError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| SigningError::Key(e.to_string()))?;
        Ok(Self {
            kid: kid.into(),
            key,
        })
    }

    pub fn to_pkcs8_pem(&self) -> Result<String, SigningError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| SigningError::Key(e.to_string()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (RFC 8037 OKP).
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// Signs `claims` as a compact JWS with this key's `kid`.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, SigningError> {
        let der = self
            .key
            .to_pkcs8_der()
            .map_err(|e| SigningError::Key(e.to_string()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes()))
            .map_err(|e| SigningError::Sign(e.to_string()))
    }
}

/// A JWKS document publishing the public halves of `keys`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> serde_json::Value {
    serde_json::json!({ "keys": keys.into_iter().map(SigningKey::public_jwk).collect::<Vec<_>>() })
}

/// The claims of a studycafe access token.
#[derive(Debug, Clone, Serialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

impl AccessClaims {
    pub fn new(
        issuer: &str,
        audience: &str,
        subject: &str,
        roles: &[&str],
        ttl: chrono::Duration,
    ) -> Self {
        let now = chrono::Utc::now();
        Self {
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            sub: subject.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, AuthError, JwtVerifier, KeySource, Role};

    fn verifier_for(keys: &[&SigningKey]) -> (std::sync::Arc<JwtVerifier>, tempfile_path::Path) {
        let path = tempfile_path::Path::new();
        std::fs::write(&path.0, jwks(keys.iter().copied()).to_string()).unwrap();
        let verifier = JwtVerifier::new(AuthConfig {
            keys: KeySource::JwksFile(path.0.clone()),
            issuer: "iss".into(),
            audience: "aud".into(),
            max_age: std::time::Duration::from_secs(60),
        });
        (verifier, path)
    }

    mod tempfile_path {
        pub struct Path(pub std::path::PathBuf);
        impl Path {
            pub fn new() -> Self {
                Self(std::env::temp_dir().join(format!("jwks-{}.json", uuid::Uuid::new_v4())))
            }
        }
        impl Drop for Path {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn sign_and_verify_round_trip_and_forgeries_fail() {
        let key = SigningKey::generate("k1");
        let pem = key.to_pkcs8_pem().unwrap();
        let reloaded = SigningKey::from_pkcs8_pem("k1", &pem).unwrap();
        let (verifier, _file) = verifier_for(&[&key]);

        let claims = AccessClaims::new(
            "iss",
            "aud",
            "alice",
            &["customer"],
            chrono::Duration::minutes(5),
        );
        let caller = verifier
            .verify(&reloaded.sign(&claims).unwrap())
            .await
            .unwrap();
        assert_eq!(caller.user_id, "alice");
        assert_eq!(caller.roles, vec![Role::Customer]);

        // Same kid, another key: a forgery.
        let forged = SigningKey::generate("k1").sign(&claims).unwrap();
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(AuthError::Invalid(_))
        ));
        // Unknown kid.
        let stranger = SigningKey::generate("k9").sign(&claims).unwrap();
        assert!(matches!(
            verifier.verify(&stranger).await,
            Err(AuthError::UnknownKey(_))
        ));
        // Expired, wrong audience.
        let mut old = claims.clone();
        old.exp = chrono::Utc::now().timestamp() - 3600;
        assert!(verifier.verify(&key.sign(&old).unwrap()).await.is_err());
        let mut other = claims.clone();
        other.aud = "elsewhere".into();
        assert!(verifier.verify(&key.sign(&other).unwrap()).await.is_err());
        assert!(verifier.verify("not.a.token").await.is_err());
    }
}
