//! The OAuth2 token endpoint (RFC 6749 §3.2: `password` and `client_credentials` grants)
//! and the JWKS.
//!
//! This endpoint alone answers errors in the RFC 6749 §5.2 shape
//! (`{"error": "...", "error_description": "..."}`, `application/json`) rather than
//! problem+json, because that is what OAuth2 client libraries parse. Passwords and client
//! secrets are never logged.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    application::{ClientGrantError, PasswordGrantError},
    domain::{
        ClientSecret, IssuedToken,
        ports::{KeyRing, PasswordHasher, UserStore},
    },
    inbound::http::ApiState,
};

const FORM: &str = "application/x-www-form-urlencoded";
const BASIC_CHALLENGE: &str = "Basic realm=\"studycafe\"";

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// Answer with `WWW-Authenticate: Basic`, as §5.2 requires when the client tried (or
    /// should have tried) HTTP Basic.
    challenge: bool,
    /// `Retry-After` seconds, when the answer is "not now".
    retry_after: Option<i64>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            challenge: false,
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>, challenge: bool) -> Self {
        Self {
            challenge,
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }

    fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "cannot issue tokens");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "tokens cannot be issued right now; try again shortly",
        )
    }

    fn server_error(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "token request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "something went wrong on our side; it has been logged",
        )
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// Token responses, good or bad, must not be cached by anyone (RFC 6749 §5.1).
fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            error_description: &self.description,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        no_store(&mut response);
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<PasswordGrantError> for OAuthError {
    fn from(e: PasswordGrantError) -> Self {
        match &e {
            PasswordGrantError::InvalidGrant => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_grant", e.to_string())
            }
            // RFC 6749 has no code for this; 429 with Retry-After is what HTTP clients know,
            // and the body keeps the RFC's shape.
            PasswordGrantError::Throttled { retry_after } => Self {
                retry_after: Some(retry_after.num_seconds().max(1)),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "invalid_grant",
                    e.to_string(),
                )
            },
            PasswordGrantError::Store(s) => Self::unavailable(s),
            PasswordGrantError::Keys(k) => Self::server_error(k),
            PasswordGrantError::Hash(h) => Self::server_error(h),
        }
    }
}

impl From<ClientGrantError> for OAuthError {
    fn from(e: ClientGrantError) -> Self {
        match &e {
            // Only reached through `client_grant`, which knows nothing of how the client
            // authenticated: the handler sets the challenge.
            ClientGrantError::InvalidClient => Self::invalid_client(e.to_string(), false),
            ClientGrantError::Keys(k) => Self::server_error(k),
        }
    }
}

/// An RFC 6749 §5.2 error, as documented ([`ErrorBody`] is the borrowed form written).
#[derive(ToSchema)]
#[schema(as = OAuthError)]
#[allow(dead_code)]
struct ErrorDoc {
    #[schema(example = "invalid_grant")]
    error: String,
    error_description: String,
}

/// An access token (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
#[schema(as = Token)]
struct TokenBody {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

fn token_response(token: IssuedToken) -> Response {
    let mut response = axum::Json(TokenBody {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
    })
    .into_response();
    no_store(&mut response);
    response
}

/// The form parameters. §3.2: a parameter without a value counts as omitted, and none may
/// appear twice.
fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM));
    if !is_form {
        return Err(OAuthError::invalid_request(format!(
            "send the token request as {FORM}"
        )));
    }
    let mut params = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if value.is_empty() {
            continue;
        }
        let name = name.into_owned();
        if params.contains_key(&name) {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {name} appears more than once"
            )));
        }
        params.insert(name, value.into_owned());
    }
    Ok(params)
}

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(format!("the parameter {name} is missing")))
}

/// The credentials a client presented, and how.
#[derive(Debug)]
struct ClientAuth {
    id: String,
    secret: Option<ClientSecret>,
    basic: bool,
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential half (§2.3.1).
fn form_decode(raw: &str) -> String {
    // The parser splits pairs on '&' and '=': escaped, the whole half is one value.
    let escaped = raw.replace('&', "%26").replace('=', "%3D");
    url::form_urlencoded::parse(format!("x={escaped}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, ClientSecret)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OAuthError::invalid_client("malformed Basic credentials", true);
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "authenticate the client with HTTP Basic",
            true,
        ));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((
        form_decode(id),
        ClientSecret::new(form_decode(secret)),
    )))
}

/// How the client authenticated, if it did: HTTP Basic (preferred) or `client_id` and
/// `client_secret` in the form, never both (§2.3).
fn client_auth(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Option<ClientAuth>, OAuthError> {
    let form_id = params.get("client_id");
    let form_secret = params.get("client_secret");
    if let Some((id, secret)) = basic_credentials(headers)? {
        // A `client_id` repeating the Basic one is harmless; anything more is a second method.
        if form_secret.is_some() || form_id.is_some_and(|f| *f != id) {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: HTTP Basic or the form, not both",
            ));
        }
        return Ok(Some(ClientAuth {
            id,
            secret: Some(secret),
            basic: true,
        }));
    }
    match (form_id, form_secret) {
        (Some(id), secret) => Ok(Some(ClientAuth {
            id: id.clone(),
            secret: secret.map(|s| ClientSecret::new(s.as_str())),
            basic: false,
        })),
        (None, Some(_)) => Err(OAuthError::invalid_request(
            "client_secret was sent without client_id",
        )),
        (None, None) => Ok(None),
    }
}

/// The token request's form, as documented (the handler reads the form itself, so that a
/// repeated parameter and an empty one follow RFC 6749 §3.2).
#[derive(ToSchema)]
#[schema(as = TokenRequest)]
#[allow(dead_code)]
struct TokenForm {
    /// `password` or `client_credentials`.
    #[schema(example = "password")]
    grant_type: String,
    /// For the `password` grant.
    #[schema(example = "alice")]
    username: Option<String>,
    /// For the `password` grant.
    #[schema(format = Password, example = "alice-studies")]
    password: Option<String>,
    /// For `client_credentials` (or HTTP Basic).
    client_id: Option<String>,
    /// For `client_credentials` (or HTTP Basic).
    #[schema(format = Password)]
    client_secret: Option<String>,
}

/// `POST /auth/token`: the OAuth2 token endpoint (`password` and `client_credentials` grants).
/// Its errors are RFC 6749 §5.2 JSON, not problem+json, as OAuth2 clients expect.
#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "accounts",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An access token", body = TokenBody),
        (status = 400, description = "A malformed request, a wrong password or an unsupported grant", body = ErrorDoc, content_type = "application/json"),
        (status = 401, description = "Client authentication failed", body = ErrorDoc, content_type = "application/json"),
        (status = 429, description = "Too many failed sign-ins for this account", body = ErrorDoc, content_type = "application/json"),
        (status = 503, description = "Tokens cannot be issued right now", body = ErrorDoc, content_type = "application/json"),
    ),
)]
pub async fn token<S: UserStore, H: PasswordHasher, K: KeyRing>(
    State(service): State<ApiState<S, H, K>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = form_params(&headers, &body)?;
    let grant_type = required(&params, "grant_type")?;
    match grant_type {
        "password" => {
            let username = required(&params, "username")?;
            let password = required(&params, "password")?;
            // A public client (the web page) may name itself with a bare client_id; a client
            // that sends a secret must get it right.
            if let Some(ClientAuth {
                id,
                secret: Some(secret),
                basic,
            }) = client_auth(&headers, &params)?
                && service.authenticate_client(&id, &secret).is_none()
            {
                tracing::warn!(client_id = %id, "password grant with a wrong client secret");
                return Err(OAuthError::invalid_client(
                    "unknown client or wrong secret",
                    basic,
                ));
            }
            let (_, token) = service.password_grant(username, password).await?;
            Ok(token_response(token))
        }
        "client_credentials" => {
            let Some(client) = client_auth(&headers, &params)? else {
                return Err(OAuthError::invalid_client(
                    "client authentication is required (HTTP Basic)",
                    true,
                ));
            };
            let Some(secret) = client.secret else {
                return Err(OAuthError::invalid_client(
                    "the parameter client_secret is missing",
                    false,
                ));
            };
            match service.client_grant(&client.id, &secret).await {
                Ok((_, token)) => Ok(token_response(token)),
                Err(ClientGrantError::InvalidClient) => {
                    tracing::warn!(client_id = %client.id, "client_credentials refused: unknown client or wrong secret");
                    Err(OAuthError::invalid_client(
                        "unknown client or wrong secret",
                        client.basic,
                    ))
                }
                Err(e) => Err(e.into()),
            }
        }
        other => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "grant_type {:?} is not supported (use password or client_credentials)",
                other.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// A JSON Web Key Set (RFC 7517).
#[derive(ToSchema)]
#[schema(as = Jwks)]
#[allow(dead_code)]
struct JwksDoc {
    /// Ed25519 public keys (`kty: OKP`, `crv: Ed25519`), each with its `kid`.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<()>,
}

/// `GET /.well-known/jwks.json`: every public signing key. Caches may keep it a minute: a
/// verifier that meets an unknown `kid` refetches anyway.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "accounts",
    responses((status = 200, description = "The public signing keys", body = JwksDoc)),
)]
pub async fn jwks<S: UserStore, H: PasswordHasher, K: KeyRing>(
    State(service): State<ApiState<S, H, K>>,
) -> Response {
    let mut response = axum::Json(service.keys().jwks().await).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_halves_are_form_decoded() {
        assert_eq!(form_decode("seat%3Aservice"), "seat:service");
        assert_eq!(form_decode("a+b%2Bc"), "a b+c");
        assert_eq!(form_decode("x&y=z"), "x&y=z");
        assert_eq!(form_decode(""), "");
    }
}
