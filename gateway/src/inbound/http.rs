//! The public HTTP edge: every request of the suite comes in here.
//!
//! For each request, in this order: a CORS preflight is answered (see [`CorsPolicy`]); the
//! client's address is settled (the peer's, or what a trusted proxy says, see
//! [`TrustedProxies`]); the bearer token, if there is one, is verified (a bad
//! one is refused, whatever the route); the client (token subject, else address) is charged
//! one token of its rate limit; the path is resolved against the route table; the route's
//! access rule is checked; then the request is forwarded to its service, or served from the
//! web root. Nothing reaches a service until all of that has passed. Every refusal is a
//! `problem+json` built in one place, [`ApiError`].
//!
//! The gateway's own `/health/*` and `/metrics` are not rate limited and never forwarded.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt as _;
use studycafe_platform::{
    Problem,
    auth::{AuthError, Caller, JwtVerifier, Role},
    http::{REQUEST_ID, ReadinessCheck, RouteLabel, ops_routes, with_layers},
};
use tower_http::request_id::RequestId;
use tracing::Instrument as _;

use crate::{
    domain::{
        Access, ClientAddress, ClientKey, CorsPolicy, Decision, Destination, RateLimiter, Route,
        RouteTable, TrustedProxies,
    },
    outbound::{
        upstream::{Forward, UpstreamClient, UpstreamError, X_FORWARDED_FOR, forward_headers},
        web_root::WebRoot,
    },
};

/// The largest request body forwarded.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The path of the live board, a server-sent event stream.
const EVENT_STREAM_PATH: &str = "/api/board/stream";

/// Everything a request needs.
#[derive(Debug)]
pub struct Gateway {
    pub routes: RouteTable,
    pub verifier: Arc<JwtVerifier>,
    pub limiter: Arc<RateLimiter>,
    pub upstreams: UpstreamClient,
    pub web: WebRoot,
    /// The deadline for reading a client's request body.
    pub body_timeout: Duration,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Which other origins' pages may call.
    pub cors: CorsPolicy,
}

/// The gateway's whole HTTP surface, with its edge layers.
pub fn router(gateway: Arc<Gateway>) -> Router {
    // Ready means serving: the services behind have their own readiness, and a gateway
    // taken out of rotation because one of them is down would fail every other route too.
    let ready: ReadinessCheck = Arc::new(|| Box::pin(async { Ok(()) }));
    let app = Router::new()
        .fallback(handle)
        .with_state(gateway)
        .merge(ops_routes(ready));
    // No platform body limit: the gateway enforces its own (1 MiB) while buffering.
    with_layers(app, None)
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    // The route table's prefix labels the request metrics (bounded, unlike raw paths).
    let label = RouteLabel(gateway.routes.resolve(request.uri().path()).label());
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = match (&origin, preflight_of(&request)) {
        (Some(origin), Some(preflight)) => gateway.preflight(origin, &preflight),
        _ => gateway
            .handle(request)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    };
    if let Some(origin) = origin {
        gateway.cors_headers(&origin, response.headers_mut());
    }
    response.extensions_mut().insert(label);
    response
}

/// What a CORS preflight asks for: the method and the request headers of the real request.
#[derive(Debug)]
struct Preflight {
    method: String,
    headers: String,
}

/// An `OPTIONS` request with `Access-Control-Request-Method` is a browser's preflight.
fn preflight_of(request: &Request) -> Option<Preflight> {
    if request.method() != Method::OPTIONS {
        return None;
    }
    let text = |name| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    request
        .headers()
        .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        .then(|| Preflight {
            method: text(header::ACCESS_CONTROL_REQUEST_METHOD),
            headers: text(header::ACCESS_CONTROL_REQUEST_HEADERS),
        })
}

/// What the request's `Authorization` header amounts to.
#[derive(Debug)]
enum Credentials {
    /// No bearer token (possibly another scheme, such as a client's Basic credentials at
    /// the token endpoint: identity's business).
    Absent,
    Valid(Caller),
    Invalid(AuthError),
}

impl Gateway {
    /// Answers a preflight: 204 with the allowed methods and headers when the origin, method
    /// and headers are all allowed, else 403 (and no `Access-Control-Allow-*`, so the browser
    /// refuses the real request).
    fn preflight(&self, origin: &str, preflight: &Preflight) -> Response {
        let allowed = self.cors.allows(origin)
            && CorsPolicy::allows_method(&preflight.method)
            && CorsPolicy::allows_headers(&preflight.headers);
        if !allowed {
            tracing::debug!(
                origin,
                method = preflight.method,
                headers = preflight.headers,
                "refused a CORS preflight"
            );
            return Problem::new(
                StatusCode::FORBIDDEN,
                "cors-refused",
                "Cross-origin request refused",
                format!(
                    "cross-origin requests from {origin:?} with {} and headers [{}] are not allowed",
                    preflight.method, preflight.headers
                ),
            )
            .into_response();
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CorsPolicy::METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CorsPolicy::REQUEST_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(CorsPolicy::MAX_AGE_SECS),
        );
        response
    }

    /// On any answer to a request with an `Origin`: allows the read when the origin is ours.
    /// `Vary: Origin` either way, so a cache never serves one origin's answer to another.
    fn cors_headers(&self, origin: &str, headers: &mut HeaderMap) {
        if self.cors.is_empty() {
            return;
        }
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        if !self.cors.allows(origin) {
            return;
        }
        // The client's own value, checked against the list: never a `*`.
        if let Ok(value) = HeaderValue::from_str(origin.trim()) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(CorsPolicy::EXPOSED_HEADERS),
            );
        }
    }

    /// The client's address: the peer's, or a trusted proxy's word for it.
    fn client_address(&self, request: &Request) -> ClientAddress {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(addr)| addr.ip());
        let forwarded_for = request
            .headers()
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let mut address = self.trusted_proxies.client_address(peer, forwarded_for);
        address.trusted_chain.push(peer);
        address
    }

    async fn handle(&self, request: Request) -> Result<Response, ApiError> {
        let address = self.client_address(&request);
        let client = address.client;
        let credentials = self.authenticate(request.headers()).await;

        // Charged before a bad token is refused: refusals cost work too, and a client
        // guessing tokens is limited by its address.
        let key = match &credentials {
            Credentials::Valid(caller) => ClientKey::Subject(caller.user_id.clone()),
            _ => ClientKey::peer(client),
        };
        if let Decision::Limited { retry_after_secs } = self.limiter.check(&key, Instant::now()) {
            tracing::debug!(%client, key = ?key, retry_after_secs, "rate limited");
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        let caller = match credentials {
            Credentials::Absent => None,
            Credentials::Valid(caller) => Some(caller),
            Credentials::Invalid(e) => {
                tracing::info!(%client, error = %e, "refused a bad token");
                return Err(ApiError::Auth(e));
            }
        };

        let path = request.uri().path().to_owned();
        match self.routes.resolve(&path) {
            Destination::Proxy(route) => {
                authorize(route.auth, caller.as_ref())?;
                self.proxy(route, &address, request).await
            }
            Destination::Own(_) => Ok(super::openapi::serve(self, request).await),
            Destination::Internal | Destination::UnknownApi => Err(ApiError::NotRouted(path)),
            Destination::Ambiguous => Err(ApiError::Ambiguous(path)),
            Destination::Static => Ok(self.web.serve(request).await),
        }
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Credentials {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Credentials::Absent;
        };
        if values.next().is_some() {
            return Credentials::Invalid(AuthError::Invalid(
                "more than one Authorization header".into(),
            ));
        }
        let Ok(value) = value.to_str() else {
            return Credentials::Invalid(AuthError::Invalid(
                "the Authorization header is not text".into(),
            ));
        };
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Credentials::Absent;
        }
        let token = token.trim();
        if token.is_empty() {
            return Credentials::Invalid(AuthError::Invalid("empty bearer token".into()));
        }
        match self.verifier.verify(token).await {
            Ok(caller) => Credentials::Valid(caller),
            Err(e) => Credentials::Invalid(e),
        }
    }

    async fn proxy(
        &self,
        route: Route,
        address: &ClientAddress,
        request: Request,
    ) -> Result<Response, ApiError> {
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError::TooLarge);
        }
        // Buffered (at most 1 MiB): the limit is enforced before anything is sent, and the
        // upstream gets an exact Content-Length.
        let body = tokio::time::timeout(self.body_timeout, read_body(body, declared))
            .await
            .map_err(|_| ApiError::BodyTimeout)??;

        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.header_value().clone())
            .or_else(|| parts.headers.get(REQUEST_ID).cloned())
            .unwrap_or_else(|| HeaderValue::from_static("unknown"));
        let mut headers = forward_headers(&parts.headers, &address.trusted_chain);
        // Explicitly, in case the client's `Connection` header named it.
        headers.insert(REQUEST_ID, request_id.clone());
        let streaming = is_event_stream(&parts.uri, &parts.headers);
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());

        let span = tracing::info_span!(
            "upstream",
            upstream = route.upstream.name(),
            client = %address.client,
            otel.kind = "client",
        );
        let forward = Forward {
            upstream: route.upstream,
            method: parts.method,
            path_and_query,
            headers,
            body,
            streaming,
            request_id: request_id.to_str().unwrap_or_default().to_owned(),
        };
        Ok(self.upstreams.forward(forward).instrument(span).await?)
    }
}

/// The route's access rule against the (already verified) caller.
fn authorize(access: Access, caller: Option<&Caller>) -> Result<(), ApiError> {
    match (access, caller) {
        (Access::Anonymous, _) => Ok(()),
        (Access::Caller | Access::Admin, None) => Err(ApiError::Auth(AuthError::Missing)),
        (Access::Caller, Some(_)) => Ok(()),
        (Access::Admin, Some(caller)) => caller
            .require(Role::Admin)
            .map_err(|p| ApiError::Problem(Box::new(p))),
    }
}

/// Server-sent events: the live board, or anything a client asks for as an event stream.
fn is_event_stream(uri: &http::Uri, headers: &HeaderMap) -> bool {
    uri.path() == EVENT_STREAM_PATH
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/event-stream"))
}

async fn read_body(body: Body, declared: Option<u64>) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    // `declared` is at most MAX_BODY_BYTES here (checked before): a safe capacity.
    let mut buffer = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::UnreadableBody(e.to_string()))?;
        if buffer.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::TooLarge);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

/// Every way the gateway itself can refuse a request, mapped to `problem+json` in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Problem(Box<Problem>),
    #[error("rate limited for {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("nothing is routed at {0}")]
    NotRouted(String),
    #[error("the path {0} has dot segments")]
    Ambiguous(String),
    #[error("the request body is over the limit")]
    TooLarge,
    #[error("the request body cannot be read: {0}")]
    UnreadableBody(String),
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            // 401 with `WWW-Authenticate`, or 503 when the keys cannot be loaded.
            ApiError::Auth(e) => return e.into_response(),
            ApiError::Problem(problem) => *problem,
            ApiError::RateLimited { retry_after_secs } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("too many requests from this client; try again in {retry_after_secs}s"),
            )
            .retry_after(retry_after_secs),
            ApiError::NotRouted(path) => Problem::not_found(format!("there is no API at {path}")),
            ApiError::Ambiguous(path) => Problem::bad_request(format!(
                "{path}: paths with \".\" or \"..\" segments are not accepted"
            )),
            ApiError::TooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            ),
            ApiError::UnreadableBody(cause) => {
                Problem::bad_request(format!("the request body cannot be read: {cause}"))
            }
            ApiError::BodyTimeout => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                "the request body did not arrive in time",
            ),
            ApiError::Upstream(e) => {
                let name = e.upstream().name();
                match e {
                    UpstreamError::Unavailable { .. } => Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "upstream-unavailable",
                        "Service unavailable",
                        format!("the {name} service is unavailable; try again shortly"),
                    )
                    .retry_after(1),
                    UpstreamError::Timeout { timeout, .. } => Problem::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream-timeout",
                        "Gateway timeout",
                        format!(
                            "the {name} service did not answer within {} ms",
                            timeout.as_millis()
                        ),
                    ),
                    UpstreamError::Protocol { .. } => Problem::new(
                        StatusCode::BAD_GATEWAY,
                        "bad-gateway",
                        "Bad gateway",
                        format!("the {name} service gave a broken answer"),
                    ),
                }
                .with("upstream", name)
            }
        };
        problem.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: Vec<Role>) -> Caller {
        Caller {
            user_id: "alice".into(),
            roles,
        }
    }

    #[test]
    fn access_rules() {
        assert!(authorize(Access::Anonymous, None).is_ok());
        assert!(matches!(
            authorize(Access::Caller, None),
            Err(ApiError::Auth(AuthError::Missing))
        ));
        assert!(authorize(Access::Caller, Some(&caller(vec![Role::Customer]))).is_ok());
        let denied = authorize(Access::Admin, Some(&caller(vec![Role::Customer])));
        assert!(matches!(denied, Err(ApiError::Problem(p)) if p.status == 403));
        assert!(authorize(Access::Admin, Some(&caller(vec![Role::Admin]))).is_ok());
    }

    #[test]
    fn event_streams_by_path_or_accept() {
        let plain = HeaderMap::new();
        let mut sse = HeaderMap::new();
        sse.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        assert!(is_event_stream(
            &"/api/board/stream".parse().unwrap(),
            &plain
        ));
        assert!(is_event_stream(&"/api/my/feed".parse().unwrap(), &sse));
        assert!(!is_event_stream(&"/api/board".parse().unwrap(), &plain));
    }
}
