//! The HTTP edge every service shares: standard middleware, operational endpoints, and a
//! server that stops gracefully.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    catch_panic::CatchPanicLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{Problem, detach::Detached, liveness::Heartbeats};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A readiness check: `Ok` when the service can do its work, `Err(reason)` when not.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// `/health/live`, `/health/ready` and `/metrics` for a process without loops of its own
/// (identity, the gateway): liveness then says only that it serves HTTP.
pub fn ops_routes(ready: ReadinessCheck) -> Router {
    ops_routes_with(ready, Heartbeats::default())
}

/// `/health/live`, `/health/ready` and `/metrics`.
///
/// Liveness fails (503, naming the loops) only when one of `heartbeats` is stalled: busy
/// without progress past its limit, which a restart cures. A loop waiting on an idle topic or
/// backing off during an outage stays live. Readiness runs `ready` (its own store reachable)
/// so a load balancer sends traffic only to instances that can answer.
pub fn ops_routes_with(ready: ReadinessCheck, heartbeats: Heartbeats) -> Router {
    // Installs the recorder now, before the first request is counted.
    let metrics = crate::observability::metrics();
    Router::new()
        .route("/health/live", get(liveness).with_state(heartbeats))
        .route("/health/ready", get(readiness).with_state(ready))
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    metrics.render(),
                )
            }),
        )
}

async fn liveness(State(heartbeats): State<Heartbeats>) -> Response {
    let stalled = heartbeats.stalled();
    if stalled.is_empty() {
        return axum::Json(serde_json::json!({"status": "up"})).into_response();
    }
    let names: Vec<&str> = stalled.iter().map(|s| s.name.as_str()).collect();
    let detail = stalled
        .iter()
        .map(|s| {
            format!(
                "{} busy without progress for {} s (limit {} s)",
                s.name,
                s.busy_for.as_secs(),
                s.limit.as_secs()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    tracing::warn!(stalled = ?names, "liveness failing: {detail}");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "stalled",
        "A loop of this service is stalled",
        detail,
    )
    .with("stalled", names)
    .into_response()
}

async fn readiness(State(check): State<ReadinessCheck>) -> Response {
    let answer = if crate::shutdown::draining() {
        Err("shutting down".to_owned())
    } else {
        check().await
    };
    match answer {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not ready", "reason": reason})),
        )
            .into_response(),
    }
}

/// The largest request body a service accepts by default: its API takes small JSON documents.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Wraps a service's router in the standard layers: request ids (kept from the caller or
/// made up, echoed back), a span per request, request metrics, a body limit, and panics
/// turned into a 500 problem instead of a dropped connection.
pub fn with_standard_layers(router: Router) -> Router {
    with_layers(router, Some(DEFAULT_BODY_LIMIT))
}

/// [`with_standard_layers`] with another body limit, or none (`None`: the router enforces its
/// own, as the gateway does while it streams bodies through).
pub fn with_layers(router: Router, body_limit: Option<usize>) -> Router {
    let router = router.layer(middleware::from_fn(record_metrics));
    let router = match body_limit {
        Some(limit) => router.layer(RequestBodyLimitLayer::new(limit)),
        None => router,
    };
    router
        .layer(middleware::from_fn(bare_errors_as_problems))
        .layer(middleware::map_response(close_while_draining))
        .layer(CatchPanicLayer::custom(|_| {
            Problem::internal(&"a request handler panicked").into_response()
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .extensions()
                    .get::<RequestId>()
                    .and_then(|id| id.header_value().to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// While the process drains before it stops, each answer closes its connection
/// (`Connection: close`, which hyper honours), so a client does not keep a pooled connection
/// to this process. When the drain ends, the idle connections are closed, and a client that
/// sent on one of them at that moment would get no answer. For a POST it must not simply
/// send again. A client behind a balancer that reads readiness is safe anyway; one that
/// reaches this port directly, like the gateway's clients when a successor shares its port,
/// is not.
async fn close_while_draining(mut response: Response) -> Response {
    if crate::shutdown::draining() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Every error answer is `problem+json`, including the ones no handler of ours wrote: axum's
/// empty 404 (no route) and 405 (no such method; its `Allow` is kept), and tower-http's plain
/// text 413 (body over the limit). An answer that has a body type of its own other than plain
/// text (a problem, the token endpoint's RFC 6749 JSON) is left alone.
async fn bare_errors_as_problems(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !bare {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let problem = match status {
        StatusCode::NOT_FOUND => Problem::not_found(format!("there is nothing at {path}")),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            status,
            "method-not-allowed",
            "Method not allowed",
            format!("{path} does not take {method}"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            status,
            "payload-too-large",
            "Request body too large",
            "the request body is over this service's limit",
        ),
        _ => Problem::new(
            status,
            "http-error",
            "HTTP error",
            status.canonical_reason().unwrap_or("error"),
        ),
    };
    let mut response = problem.into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// The `route` label of a request served by a fallback handler (a proxy, static files), which
/// has no matched route: the handler puts it in its response's extensions. It must come from a
/// small fixed set (a route prefix), never from the raw path, or the metric grows unbounded.
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let route = matched.unwrap_or_else(|| {
        response
            .extensions()
            .get::<RouteLabel>()
            .map_or("unmatched", |label| label.0)
            .to_owned()
    });
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Serves `router` on `listener` until `shutdown`, then lets in-flight requests finish (for at
/// most `grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let stop = shutdown.clone();
    let server =
        axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await });
    within_grace(server, shutdown, grace).await
}

/// [`serve`] for a router with detached write routes: on shutdown it also waits, within the
/// same grace, for the requests `detached` still runs for clients that already left.
pub async fn serve_with_detached(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
    detached: Detached,
) -> std::io::Result<()> {
    let (served, _) = tokio::join!(
        serve(listener, router, shutdown.clone(), grace),
        detached.drain_on(shutdown, grace),
    );
    served
}

/// [`serve`], with each connection's peer address available to handlers as
/// `ConnectInfo<SocketAddr>` (rate limiting by client, `x-forwarded-for`).
pub async fn serve_with_peer_addr(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let stop = shutdown.clone();
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.cancelled().await });
    within_grace(server, shutdown, grace).await
}

/// Runs a gracefully shutting-down server, but gives up on requests still running `grace`
/// after shutdown began: a shutdown always ends.
async fn within_grace(
    server: impl std::future::IntoFuture<Output = std::io::Result<()>>,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = server => result,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("requests still running after the grace period; closing");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt as _;

    use super::*;

    async fn call(router: &Router, method: &str, uri: &str, body: Vec<u8>) -> Response {
        router
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .header(header::CONTENT_LENGTH, body.len())
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    async fn problem_of(response: Response) -> (StatusCode, serde_json::Value) {
        let status = response.status();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            crate::problem::CONTENT_TYPE,
            "{status}"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn answers_no_handler_wrote_are_problems_too() {
        let router = with_layers(
            Router::new().route(
                "/things",
                get(|| async { "things" }).post(|body: String| async move { body }),
            ),
            Some(16),
        );
        let response = call(&router, "PATCH", "/things", Vec::new()).await;
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD,POST");
        let (status, problem) = problem_of(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(problem["type"], "/problems/method-not-allowed");

        let (status, problem) =
            problem_of(call(&router, "GET", "/nothing", Vec::new()).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["status"], 404);

        let (status, problem) =
            problem_of(call(&router, "POST", "/things", vec![b'x'; 64]).await).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(problem["type"], "/problems/payload-too-large");

        // What a handler answered is left alone.
        let response = call(&router, "GET", "/things", Vec::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}
