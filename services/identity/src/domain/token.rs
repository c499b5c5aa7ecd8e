//! What an access token says, and for how long.

use serde::Serialize;
use studycafe_platform::signing::AccessClaims;

/// Issuer, audience and lifetime of the tokens this service hands out.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    pub audience: String,
    pub ttl: chrono::Duration,
}

impl TokenPolicy {
    pub fn claims(
        &self,
        subject: &str,
        roles: &[&str],
        preferred_username: Option<&str>,
    ) -> TokenClaims {
        TokenClaims {
            access: AccessClaims::new(&self.issuer, &self.audience, subject, roles, self.ttl),
            preferred_username: preferred_username.map(str::to_owned),
        }
    }
}

/// The platform's access claims plus the OpenID-style `preferred_username`, so a client can
/// greet the user without another call. Verifiers that do not know it ignore it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenClaims {
    #[serde(flatten)]
    pub access: AccessClaims,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// A signed access token and its lifetime in seconds.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}
