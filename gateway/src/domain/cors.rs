//! Which other web origins may call the API from a browser (CORS).
//!
//! The web app is served by the gateway itself, so it is same-origin and needs no CORS at
//! all: the default is no allowed origin, and browsers then refuse every cross-origin read.
//! A deployment that serves the app from elsewhere (a CDN, `npm run dev` on another port)
//! names those origins exactly. There are no wildcards: a `*` would let any page a customer
//! visits drive the API with a token it found, and no credentials mode is offered because the
//! API takes bearer tokens, never cookies.

use std::fmt;

/// `scheme://host[:port]`, as a browser sends it in `Origin` (lower case, no path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an origin such as https://cafe.example or http://localhost:5173 (scheme, host and optional port; no path, no wildcard)"
)]
pub struct OriginError(String);

impl Origin {
    pub fn parse(raw: &str) -> Result<Self, OriginError> {
        let raw = raw.trim();
        let error = || OriginError(raw.to_owned());
        let lower = raw.to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").ok_or_else(error)?;
        if !matches!(scheme, "http" | "https") {
            return Err(error());
        }
        let (host, port) = match rest.rsplit_once(':') {
            // `[::1]:5173` or `host:5173`; a bare `[::1]` has its colons inside brackets.
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (rest, None),
        };
        let host_ok = !host.is_empty()
            && (host.starts_with('[') && host.ends_with(']') && host.len() > 2
                || host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if !host_ok || !port_ok {
            return Err(error());
        }
        Ok(Self(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The origins allowed to call the API cross-origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<Origin>,
}

impl CorsPolicy {
    /// Methods a cross-origin caller may use: the API's.
    pub const METHODS: &'static str = "GET, POST, PUT, DELETE";
    /// Request headers a cross-origin caller may send.
    pub const REQUEST_HEADERS: &'static str = "accept, accept-language, authorization, content-type, idempotency-key, x-request-id, last-event-id";
    /// Response headers a cross-origin caller may read beyond the safelisted ones.
    pub const EXPOSED_HEADERS: &'static str =
        "location, retry-after, x-request-id, idempotent-replayed, www-authenticate";
    /// How long a browser may cache a preflight answer, in seconds.
    pub const MAX_AGE_SECS: u32 = 600;

    /// A comma-separated list of origins; blank means none (same-origin only).
    pub fn parse(raw: &str) -> Result<Self, OriginError> {
        let origins = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Origin::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { origins })
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// Whether a request's `Origin` is one of ours (compared as browsers send it: exactly,
    /// ignoring case).
    pub fn allows(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|o| o.as_str().eq_ignore_ascii_case(origin.trim()))
    }

    /// Whether a preflight may go ahead with this method.
    pub fn allows_method(method: &str) -> bool {
        Self::METHODS
            .split(", ")
            .any(|m| m.eq_ignore_ascii_case(method.trim()))
    }

    /// Whether a preflight may go ahead with these request headers
    /// (`Access-Control-Request-Headers`, comma-separated).
    pub fn allows_headers(requested: &str) -> bool {
        requested
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| {
                Self::REQUEST_HEADERS
                    .split(", ")
                    .any(|allowed| allowed.eq_ignore_ascii_case(h))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse() {
        for ok in [
            "https://cafe.example",
            "http://localhost:5173",
            "http://127.0.0.1:8080",
            "http://[::1]:5173",
            "HTTPS://Cafe.Example",
        ] {
            assert!(Origin::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "*",
            "cafe.example",
            "https://cafe.example/",
            "https://cafe.example/app",
            "ftp://cafe.example",
            "https://*.cafe.example",
            "https://cafe.example:0",
            "https://cafe.example:99999",
            "https://",
            "null",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let policy = CorsPolicy::parse("https://cafe.example, http://localhost:5173").unwrap();
        assert!(policy.allows("https://cafe.example"));
        assert!(policy.allows("HTTPS://CAFE.EXAMPLE"));
        assert!(policy.allows("http://localhost:5173"));
        assert!(!policy.allows("https://cafe.example.evil"));
        assert!(!policy.allows("http://localhost:5174"));
        assert!(!policy.allows("null"));
        assert!(CorsPolicy::parse("").unwrap().is_empty());
        assert!(!CorsPolicy::default().allows("https://cafe.example"));
        assert!(CorsPolicy::parse("https://cafe.example, *").is_err());
    }

    #[test]
    fn preflight_methods_and_headers() {
        assert!(CorsPolicy::allows_method("DELETE"));
        assert!(!CorsPolicy::allows_method("PATCH"));
        assert!(CorsPolicy::allows_headers("Authorization, Content-Type"));
        assert!(CorsPolicy::allows_headers(""));
        assert!(!CorsPolicy::allows_headers("authorization, x-admin"));
    }
}
