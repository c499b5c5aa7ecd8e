//! Verifying the caller's JWT.
//!
//! Every service checks the bearer token itself, against the identity service's public keys
//! (a JWKS, by URL or from a file), even behind the gateway: a header a client could forge
//! is never trusted. Keys are cached by `kid`; a token with an unknown `kid` triggers one
//! refetch (at most every few seconds), so a rotated-in key works without a restart. The
//! cache is also refetched once it is older than `AUTH_JWKS_MAX_AGE_SECS`, so a key the
//! operator removed (a leaked one) stops verifying within that time instead of living as
//! long as the process. With identity running several replicas, `AUTH_JWKS_URL` lists each
//! one's JWKS URL (comma-separated) and a fetch tries them in turn, so a replica being
//! restarted does not leave a cold cache (a new process, an unknown `kid`) without keys.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::{
    Problem,
    balancer::Replicas,
    config::{ConfigError, Env},
};

/// Where the public keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// One URL per identity replica: they publish the same keys (one keys directory).
    JwksUrl(Replicas),
    JwksFile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub keys: KeySource,
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// How long fetched keys are used before the set is fetched again.
    pub max_age: Duration,
}

impl AuthConfig {
    /// `AUTH_JWKS_URL` (one or more, comma-separated) or `AUTH_JWKS_FILE` (one is required),
    /// `AUTH_ISSUER` (default
    /// `studycafe-identity`), `AUTH_AUDIENCE` (default `studycafe`), `AUTH_JWKS_MAX_AGE_SECS`
    /// (default 60, 1 to 86400).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let keys = match (
            env.optional::<String>("AUTH_JWKS_URL")?,
            env.optional::<PathBuf>("AUTH_JWKS_FILE")?,
        ) {
            (Some(urls), None) => KeySource::JwksUrl(Replicas::parse("AUTH_JWKS_URL", &urls)?),
            (None, Some(path)) => KeySource::JwksFile(path),
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "AUTH_JWKS_URL",
                    "set either AUTH_JWKS_URL or AUTH_JWKS_FILE, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "AUTH_JWKS_URL",
                    "is required (or AUTH_JWKS_FILE): the public keys tokens are checked against",
                ));
            }
        };
        Ok(Self {
            keys,
            issuer: env.or("AUTH_ISSUER", "studycafe-identity".to_owned())?,
            audience: env.or("AUTH_AUDIENCE", "studycafe".to_owned())?,
            max_age: Duration::from_secs(env.within(
                "AUTH_JWKS_MAX_AGE_SECS",
                60u64,
                1..=86_400,
            )?),
        })
    }
}

/// The roles of the published API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Customer,
    Admin,
    /// A machine client (`client_credentials`).
    Service,
}

impl Role {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "customer" => Some(Self::Customer),
            "admin" => Some(Self::Admin),
            "service" => Some(Self::Service),
            _ => None,
        }
    }
}

/// The claims studycafe tokens carry.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub roles: Vec<Role>,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// 403 unless the caller has `role`.
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.has(role) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this needs the {} role",
                format!("{role:?}").to_lowercase()
            )))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("signing key {0:?} is unknown")]
    UnknownKey(String),
    #[error("the signing keys cannot be loaded: {0}")]
    KeysUnavailable(String),
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let problem = match &self {
            AuthError::KeysUnavailable(_) => {
                tracing::error!(error = %self, "cannot verify tokens");
                Problem::unavailable("tokens cannot be verified right now")
            }
            _ => Problem::unauthorized(self.to_string()),
        };
        let mut response = problem.into_response();
        if !matches!(self, AuthError::KeysUnavailable(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"studycafe\""),
            );
        }
        response
    }
}

/// Checks tokens against the configured keys.
#[derive(Debug)]
pub struct JwtVerifier {
    config: AuthConfig,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_refresh: Mutex<Option<Instant>>,
    /// When the cached set was loaded; a plain lock, so checking it never waits on a fetch.
    loaded_at: std::sync::Mutex<Option<Instant>>,
    stale_refresh: Mutex<()>,
    http: reqwest::Client,
}

const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

impl JwtVerifier {
    pub fn new(config: AuthConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            keys: RwLock::new(HashMap::new()),
            last_refresh: Mutex::new(None),
            loaded_at: std::sync::Mutex::new(None),
            stale_refresh: Mutex::new(()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        })
    }

    /// Verifies signature, expiry, issuer and audience; returns the caller.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
        // Bound first: a read guard living through the match would deadlock `refresh`.
        if self.keys_stale() {
            self.refresh_stale().await;
        }
        let cached = self.keys.read().await.get(&kid).cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.keys
                    .read()
                    .await
                    .get(&kid)
                    .cloned()
                    .ok_or(AuthError::UnknownKey(kid))?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() {
            return Err(AuthError::Invalid("empty subject".into()));
        }
        Ok(Caller {
            user_id: claims.sub,
            roles: claims.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        })
    }

    /// The caller an `Authorization` header's (or metadata entry's) text names: what every
    /// inbound adapter asks before a use case runs.
    pub async fn caller(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        self.verify(crate::inbound::bearer_token(authorization)?)
            .await
    }

    /// Whether the cached key set is older than the configured maximum age (never loaded
    /// counts as fresh: the unknown-`kid` path loads it).
    fn keys_stale(&self) -> bool {
        self.loaded_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() >= self.config.max_age)
    }

    /// Refetches an aged key set once, however many requests noticed its age at once. If
    /// identity cannot be reached the cached set stays in use for another maximum age: its
    /// keys were good a moment ago, and the alternative is refusing everyone (or every
    /// request waiting on a fetch) while identity is down.
    async fn refresh_stale(&self) {
        let _one_at_a_time = self.stale_refresh.lock().await;
        if !self.keys_stale() {
            return;
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "cannot refetch the signing keys; using the cached ones");
            *self
                .loaded_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        }
    }

    /// Reloads the key set, unless that happened moments ago (a flood of tokens with bogus
    /// `kid`s must not become a flood of JWKS fetches).
    async fn refresh(&self) -> Result<(), AuthError> {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFRESH_AT_MOST_EVERY) {
            return Ok(());
        }
        let set = self.fetch().await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(e) => tracing::warn!(%kid, error = %e, "skipping an unusable JWK"),
            }
        }
        tracing::info!(keys = keys.len(), "signing keys loaded");
        *self.keys.write().await = keys;
        *last = Some(Instant::now());
        *self
            .loaded_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        Ok(())
    }

    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| AuthError::KeysUnavailable(e.to_string());
        match &self.config.keys {
            KeySource::JwksFile(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| unavailable(&format!("{}: {e}", path.display())))?;
                serde_json::from_str(&text).map_err(|e| unavailable(&e))
            }
            KeySource::JwksUrl(urls) => {
                // In order, until one answers: a fetch is rare (a minute apart at most, or an
                // unknown `kid`), so there is no load to spread, only a replica to get past.
                let mut failures = Vec::new();
                for url in urls.urls() {
                    match self.fetch_from(url).await {
                        Ok(set) => return Ok(set),
                        Err(e) => failures.push(format!("{url}: {e}")),
                    }
                }
                Err(unavailable(&failures.join("; ")))
            }
        }
    }
}

impl JwtVerifier {
    async fn fetch_from(&self, url: &str) -> Result<JwkSet, reqwest::Error> {
        self.http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<JwtVerifier>::from_ref(state);
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        verifier.caller(authorization).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &[(&str, &str)]) -> Result<AuthConfig, ConfigError> {
        let mut pairs = vec![("AUTH_JWKS_URL", "http://127.0.0.1:1/jwks.json")];
        pairs.extend_from_slice(extra);
        AuthConfig::from_env(&Env::from_pairs(pairs))
    }

    #[test]
    fn the_jwks_url_may_name_every_identity_replica() {
        let config = load(&[(
            "AUTH_JWKS_URL",
            "http://127.0.0.1:8085/.well-known/jwks.json, http://127.0.0.1:18085/.well-known/jwks.json",
        )])
        .unwrap();
        let KeySource::JwksUrl(urls) = config.keys else {
            panic!("{:?}", config.keys)
        };
        assert_eq!(urls.len(), 2);
        for bad in [
            "127.0.0.1:8085/jwks.json",
            "http://127.0.0.1:8085/jwks.json,",
        ] {
            let err = load(&[("AUTH_JWKS_URL", bad)]).unwrap_err();
            assert_eq!(err.variable, "AUTH_JWKS_URL", "{bad}");
        }
    }

    #[test]
    fn the_key_cache_has_a_bounded_age() {
        assert_eq!(load(&[]).unwrap().max_age, Duration::from_secs(60));
        let config = load(&[("AUTH_JWKS_MAX_AGE_SECS", "5")]).unwrap();
        assert_eq!(config.max_age, Duration::from_secs(5));
        for bad in ["0", "86401", "soon"] {
            let err = load(&[("AUTH_JWKS_MAX_AGE_SECS", bad)]).unwrap_err();
            assert_eq!(err.variable, "AUTH_JWKS_MAX_AGE_SECS", "{bad}");
        }
    }
}
