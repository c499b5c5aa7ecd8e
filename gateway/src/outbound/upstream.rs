//! The client side of the proxy: one pooled HTTP client for every service behind the gateway.
//!
//! A request goes out with the caller's method, path, query, headers (less hop-by-hop ones)
//! and body, plus the request id, the current span's W3C trace context and the
//! `x-forwarded-*` headers. The answer comes back streamed, as it arrives: status, headers
//! (less hop-by-hop ones) and body.
//!
//! Failures are told apart because clients should react differently: nothing listening or
//! no route to the service is 503 (`upstream-unavailable`, retry soon), no answer within
//! the deadline is 504 (`upstream-timeout`), anything else (a broken connection, a garbled
//! answer) is 502 (`bad-gateway`). Every call has a deadline, so nothing hangs: the whole
//! response for ordinary requests, the response head for event streams (which then run as
//! long as the client listens, until the gateway shuts down).
//!
//! Each service may run several replicas: a [`Balancer`] per service picks one in turn among
//! those in rotation (readiness checked every period, ejected at once after a connection
//! failure) and applies the retry rule: a request that could not connect is retried once on
//! another replica, whatever its method; one that may have arrived (a lost connection, a
//! timeout, any answer) is retried only if it is a GET or HEAD, after a lost connection, once.
//! A POST is never sent twice.
//!
//! A client that leaves drops its call here, closing the upstream connection half-way. That is
//! safe because the services run their write routes detached from the connection
//! (`studycafe_platform::detach`): the request finishes there, whole, or never started.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::body::{Body, Bytes};
use futures::{StreamExt as _, TryStreamExt as _};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method,
    header::{CONNECTION, CONTENT_LENGTH, HOST},
};
use opentelemetry::propagation::Injector;
use studycafe_platform::balancer::{AttemptError, Balancer, CheckSettings, Failure};
use tokio_util::sync::CancellationToken;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{config::UpstreamUrls, domain::Upstream};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never passed on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    // Not hop-by-hop in the RFC, but never meant for the origin (see `forward_headers`).
    "expect",
];

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Removes hop-by-hop headers: the fixed list, every `proxy-*` header, and whatever the
/// `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in named.into_iter().chain(proxy) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers a client's request goes upstream with.
///
/// - hop-by-hop headers go; so do `Host` and `Content-Length` (the client sets both for the
///   upstream connection and the buffered body) and `Expect` (the body is already read);
/// - the client's `traceparent`/`tracestate` go: the gateway is where traces start, and
///   [`UpstreamClient::forward`] puts in the gateway's own span;
/// - `x-forwarded-for` is `forwarded_for`: the entries the gateway believed (from trusted
///   proxies, see `domain::TrustedProxies`) followed by the peer, never what an untrusted
///   client wrote; `x-forwarded-proto` and `x-forwarded-host` say how the gateway itself was
///   reached (plain HTTP, the client's `Host`).
pub fn forward_headers(incoming: &HeaderMap, forwarded_for: &[IpAddr]) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    for name in [
        HOST,
        CONTENT_LENGTH,
        TRACEPARENT,
        TRACESTATE,
        X_FORWARDED_FOR,
    ] {
        headers.remove(name);
    }
    let chain: Vec<String> = forwarded_for.iter().map(IpAddr::to_string).collect();
    if let Ok(value) = HeaderValue::from_str(&chain.join(", "))
        && !chain.is_empty()
    {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match incoming.get(HOST) {
        Some(host) => headers.insert(X_FORWARDED_HOST, host.clone()),
        None => headers.remove(X_FORWARDED_HOST),
    };
    headers
}

/// One request to forward.
#[derive(Debug)]
pub struct Forward {
    pub upstream: Upstream,
    pub method: Method,
    /// Path and query, exactly as the client sent them.
    pub path_and_query: String,
    /// Already prepared by [`forward_headers`].
    pub headers: HeaderMap,
    /// Cheap to clone: shared, not copied.
    pub body: Bytes,
    /// A server-sent event stream: the deadline covers the response head only, and the body
    /// ends when the gateway shuts down.
    pub streaming: bool,
    /// For logs.
    pub request_id: String,
}

/// Why a service gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{upstream} cannot be reached: {cause}")]
    Unavailable { upstream: Upstream, cause: String },
    #[error("{upstream} did not answer within {}ms", timeout.as_millis())]
    Timeout {
        upstream: Upstream,
        timeout: Duration,
    },
    #[error("{upstream} answered with a broken response: {cause}")]
    Protocol { upstream: Upstream, cause: String },
}

impl UpstreamError {
    pub fn upstream(&self) -> Upstream {
        match self {
            UpstreamError::Unavailable { upstream, .. }
            | UpstreamError::Timeout { upstream, .. }
            | UpstreamError::Protocol { upstream, .. } => *upstream,
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable { .. } => "unavailable",
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Protocol { .. } => "bad_gateway",
        }
    }
}

/// The services' pooled HTTP client.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    /// One per service, in the order of [`Upstream::ALL`].
    balancers: Arc<[Balancer]>,
    timeout: Duration,
    /// Cancelled at shutdown: ends the event streams, which would otherwise hold the
    /// graceful shutdown for its whole grace period.
    shutdown: CancellationToken,
}

impl UpstreamClient {
    pub fn new(
        urls: &UpstreamUrls,
        check: CheckSettings,
        connect_timeout: Duration,
        timeout: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            // A proxy passes redirects to its client; following them would hide them.
            .redirect(reqwest::redirect::Policy::none())
            // The services are addressed directly; an HTTP_PROXY meant for the outside
            // world must not capture them.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        let balancers = Upstream::ALL
            .iter()
            .map(|&upstream| Balancer::new(upstream.name(), urls.of(upstream), check, http.clone()))
            .collect();
        Ok(Self {
            http,
            balancers,
            timeout,
            shutdown,
        })
    }

    fn balancer(&self, upstream: Upstream) -> &Balancer {
        let index = Upstream::ALL
            .iter()
            .position(|&u| u == upstream)
            .expect("every upstream is in Upstream::ALL");
        &self.balancers[index]
    }

    /// Checks the replicas of every service with more than one, until `shutdown`.
    pub async fn check_replicas(&self, shutdown: CancellationToken) {
        let checkers = self
            .balancers
            .iter()
            .map(|balancer| balancer.check_until(shutdown.clone()));
        futures::future::join_all(checkers).await;
    }

    /// Sends `request` to its service and returns the answer, its body still streaming.
    pub async fn forward(
        &self,
        request: Forward,
    ) -> Result<axum::response::Response, UpstreamError> {
        let upstream = request.upstream;
        let started = Instant::now();
        let result = self.send(request.upstream, &request).await;
        let outcome = match &result {
            Ok(response) if response.status().is_server_error() => "server_error",
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        metrics::counter!("gateway_upstream_requests_total", "upstream" => upstream.name(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("gateway_upstream_response_seconds", "upstream" => upstream.name())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(response) => Ok(self.relay(upstream, &request, response)),
            Err(e) => {
                tracing::warn!(
                    upstream = upstream.name(),
                    request_id = %request.request_id,
                    method = %request.method,
                    path = %request.path_and_query,
                    error = %e,
                    "upstream request failed"
                );
                Err(e)
            }
        }
    }

    async fn send(
        &self,
        upstream: Upstream,
        request: &Forward,
    ) -> Result<reqwest::Response, UpstreamError> {
        let timeout = self.timeout;
        let attempt = |base: &str| {
            let url = format!("{base}{}", request.path_and_query);
            let mut headers = request.headers.clone();
            inject_trace_context(&mut headers);
            let mut builder = self
                .http
                .request(request.method.clone(), url)
                .headers(headers);
            if !request.body.is_empty() {
                builder = builder.body(request.body.clone());
            }
            let streaming = request.streaming;
            async move {
                if streaming {
                    match tokio::time::timeout(timeout, builder.send()).await {
                        Ok(result) => result.map_err(Attempt::Failed),
                        Err(_) => Err(Attempt::HeadTimeout),
                    }
                } else {
                    // reqwest's own timeout runs until the body is complete: the
                    // whole-response deadline.
                    builder
                        .timeout(timeout)
                        .send()
                        .await
                        .map_err(Attempt::Failed)
                }
            }
        };
        self.balancer(upstream)
            .call(&request.method, attempt)
            .await
            .map_err(|e| match e {
                Attempt::Failed(e) => classify(upstream, timeout, e),
                Attempt::HeadTimeout => UpstreamError::Timeout { upstream, timeout },
            })
    }

    /// The service's answer as the gateway's, body streamed through.
    fn relay(
        &self,
        upstream: Upstream,
        request: &Forward,
        response: reqwest::Response,
    ) -> axum::response::Response {
        let status = response.status();
        let mut headers = response.headers().clone();
        strip_hop_by_hop(&mut headers);
        let request_id = request.request_id.clone();
        // Headers are out by the time the body fails: all that is left is to log it and cut
        // the response short, so the client sees it is incomplete.
        let body = response.bytes_stream().inspect_err(move |e| {
            tracing::warn!(
                upstream = upstream.name(),
                request_id = %request_id,
                error = %e,
                timeout = e.is_timeout(),
                "upstream response body failed"
            );
        });
        let body = if request.streaming {
            Body::from_stream(body.take_until(self.shutdown.clone().cancelled_owned()))
        } else {
            Body::from_stream(body)
        };
        let mut out = axum::response::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }
}

/// How one attempt on one replica failed.
#[derive(Debug)]
enum Attempt {
    Failed(reqwest::Error),
    /// An event stream's response head did not come within the deadline.
    HeadTimeout,
}

impl AttemptError for Attempt {
    fn failure(&self) -> Failure {
        match self {
            Attempt::Failed(e) => e.failure(),
            Attempt::HeadTimeout => Failure::Other,
        }
    }
}

fn classify(upstream: Upstream, timeout: Duration, e: reqwest::Error) -> UpstreamError {
    // A connect timeout is both "connect" and "timeout": the service is unreachable (503,
    // try again), not slow (504).
    if e.is_connect() {
        UpstreamError::Unavailable {
            upstream,
            cause: error_chain(&e),
        }
    } else if e.is_timeout() {
        UpstreamError::Timeout { upstream, timeout }
    } else {
        UpstreamError::Protocol {
            upstream,
            cause: error_chain(&e),
        }
    }
}

/// reqwest's own message is only "error sending request"; the cause is in the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Puts the current span's W3C trace context into `headers`.
fn inject_trace_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9v"),
            ("proxy-authenticate", "Basic"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
            ("authorization", "Bearer abc"),
            ("accept", "application/json"),
        ]);
        strip_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["authorization", "accept"]);
    }

    #[test]
    fn forwarded_headers_describe_the_client_and_drop_its_trace() {
        let incoming = headers(&[
            ("host", "cafe.example:8080"),
            ("content-length", "12"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-request-id", "req-1"),
            ("authorization", "Bearer abc"),
        ]);
        let out = forward_headers(
            &incoming,
            &[
                IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ],
        );
        // The chain given, not the client's claim.
        assert_eq!(out["x-forwarded-for"], "198.51.100.1, 127.0.0.1");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "cafe.example:8080");
        assert_eq!(out["x-request-id"], "req-1");
        assert_eq!(out["authorization"], "Bearer abc");
        for gone in ["host", "content-length", "traceparent"] {
            assert!(!out.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn without_a_peer_or_host_nothing_is_made_up() {
        let out = forward_headers(
            &headers(&[("x-forwarded-host", "evil"), ("x-forwarded-for", "1.2.3.4")]),
            &[],
        );
        assert!(!out.contains_key("x-forwarded-for"));
        assert!(!out.contains_key("x-forwarded-host"));
    }
}
