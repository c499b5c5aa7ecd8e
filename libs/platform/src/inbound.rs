//! What every driving adapter (REST, gRPC, the next one) reads the same way from a request's
//! headers or metadata: which command it is (its causation id) and who sends it (the bearer
//! token). The adapter hands over the header's text; these say what it means, so two adapters
//! cannot read one request differently.

use axum::http::HeaderMap;

use crate::{auth::AuthError, http::REQUEST_ID};

/// The request id header (`x-request-id`), as a gRPC metadata key or any other adapter's name.
pub const REQUEST_ID_KEY: &str = "x-request-id";

/// The command's causation id: the request id the caller (or the gateway) sent, so the events
/// it causes can be traced back to the request; a fresh UUID v7 when it sent none.
pub fn causation(request_id: Option<&str>) -> String {
    request_id
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// [`causation`] of an HTTP request.
pub fn causation_of(headers: &HeaderMap) -> String {
    causation(headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()))
}

/// The token of an `Authorization: Bearer <token>` value (either capitalisation of the scheme).
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    authorization
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_request_id_is_the_causation() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            uuid::Uuid::parse_str(&causation_of(&headers))
                .unwrap()
                .get_version_num(),
            7
        );
        headers.insert(REQUEST_ID, HeaderValue::from_static("req-1"));
        assert_eq!(causation_of(&headers), "req-1");
        assert_eq!(REQUEST_ID.as_str(), REQUEST_ID_KEY);
    }

    #[test]
    fn only_a_bearer_token_is_a_token() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer  abc ")).unwrap(), "abc");
        for missing in [None, Some("Basic abc"), Some("Bearer "), Some("Bearer   ")] {
            assert!(
                matches!(bearer_token(missing), Err(AuthError::Missing)),
                "{missing:?}"
            );
        }
    }
}
