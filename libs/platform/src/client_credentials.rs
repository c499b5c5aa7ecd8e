//! A machine client's access token, from the identity service's OAuth2 token endpoint
//! (`grant_type=client_credentials`, RFC 6749 §4.4).
//!
//! One token is shared by every call of the process and renewed shortly before it expires, so
//! the token endpoint sees one request per token lifetime rather than one per call. A caller
//! told `401` by the other side calls [`ServiceToken::invalidate`] (the key may have rotated or
//! the token been revoked) and the next call fetches a fresh one.

use std::time::Duration;

use serde::Deserialize;
use tokio::{sync::Mutex, time::Instant};

/// Renew this long before the token expires, so a token never expires in flight.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint refused the client ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("token endpoint answered something unreadable: {0}")]
    Malformed(String),
}

#[derive(Debug)]
struct Cached {
    token: String,
    renew_at: Instant,
}

#[derive(Debug)]
pub struct ServiceToken {
    credentials: ClientCredentials,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl ServiceToken {
    pub fn new(credentials: ClientCredentials, http: reqwest::Client) -> Self {
        Self {
            credentials,
            http,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token, fetched if there is none or it is about to expire. Concurrent
    /// callers wait for one fetch rather than each making their own.
    pub async fn bearer(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<Cached, TokenError> {
        let response = self
            .http
            .post(&self.credentials.token_url)
            .basic_auth(
                &self.credentials.client_id,
                Some(&self.credentials.client_secret),
            )
            .form(&[("grant_type", "client_credentials")])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| TokenError::Unreachable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(TokenError::Refused {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        let lifetime = Duration::from_secs(body.expires_in);
        tracing::debug!(client_id = %self.credentials.client_id, expires_in_s = body.expires_in, "service token fetched");
        Ok(Cached {
            token: body.access_token,
            // A very short-lived token is renewed at half its life rather than never cached.
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE).max(lifetime / 2),
        })
    }
}
