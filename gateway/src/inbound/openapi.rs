//! The gateway's own API: the public OpenAPI document and its reference page.
//!
//! Each service generates the document of its own routes from its handlers
//! ([`studycafe_platform::openapi::DocumentedRouter`]; notification's from its FastAPI app)
//! and serves it at `/openapi.json` on its own port. `GET /api/openapi.json` fetches them all
//! and merges them ([`merge`]): only the paths this gateway's route table sends to the service
//! that documents them are kept (never `/internal/*`), and each operation gets the answers the
//! gateway itself may give (a bad token, a rate limit, an unavailable service) and the bearer
//! requirement of its route. Fetched on every request rather than cached, so the document is
//! the running services' own, during a rolling upgrade too.
//!
//! `GET /api/docs` is the interactive reference: one self-contained HTML page (its script and
//! style inline, compiled into the gateway) that reads the document and can send requests.
//! It loads nothing from anywhere else, so it works offline; its CSP forbids it to.

use std::{collections::BTreeMap, sync::LazyLock};

use axum::{
    Extension, Router,
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use studycafe_platform::{
    Problem,
    http::REQUEST_ID,
    openapi::{DOCUMENT_PATH, DocumentedRouter, Security},
};
use tower::ServiceExt as _;

use super::http::Gateway;
use crate::{
    domain::{Access, Destination, RouteTable, Upstream},
    outbound::upstream::{Forward, UpstreamClient},
};

/// The reference page (HTML, its script and style inline).
const REFERENCE_PAGE: &str = include_str!("reference.html");

/// The largest service document read.
const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// What the own handlers need from the gateway (handed over as a request extension, so the
/// router can be built once).
#[derive(Debug, Clone)]
struct Context {
    upstreams: UpstreamClient,
    routes: RouteTable,
}

/// The gateway's own routes and their document, built once.
static OWN_API: LazyLock<(Router, Value)> = LazyLock::new(|| {
    let (router, doc) = own_api();
    let doc = serde_json::to_value(&doc).expect("an OpenAPI document serialises");
    (router, doc)
});

fn own_api() -> (Router, utoipa::openapi::OpenApi) {
    DocumentedRouter::<()>::new(
        "studycafe",
        "The public API of studycafe, as served by its gateway. Each service generates the \
         description of its own routes from its code; the gateway merges them. Errors are \
         `application/problem+json` (RFC 9457), except the token endpoint's (RFC 6749 §5.2).",
    )
    .route(__path_document, document, Security::Anonymous)
    .route(__path_reference, reference, Security::Anonymous)
    .finish()
}

/// Serves one of the gateway's own paths (the edge checks have passed).
pub async fn serve(gateway: &Gateway, mut request: Request) -> Response {
    request.extensions_mut().insert(Context {
        upstreams: gateway.upstreams.clone(),
        routes: gateway.routes,
    });
    let path = request.uri().path().to_owned();
    let Ok(response) = OWN_API.0.clone().oneshot(request).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        return (
            [(header::ALLOW, "GET, HEAD")],
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!("{path} is read-only: only GET and HEAD"),
            ),
        )
            .into_response();
    }
    response
}

/// The OpenAPI 3.1 document of the whole public API.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "reference",
    responses(
        (status = 200, description = "The document (OpenAPI 3.1). A service that cannot be \
            reached is left out and named in `x-studycafe-unavailable`.",
            content_type = "application/json", body = Object),
    ),
)]
async fn document(Extension(context): Extension<Context>, headers: HeaderMap) -> Response {
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("openapi")
        .to_owned();
    let fetches = Upstream::ALL.map(|upstream| {
        let upstreams = context.upstreams.clone();
        let request_id = request_id.clone();
        async move { (upstream, fetch(&upstreams, upstream, request_id).await) }
    });
    let services = futures::future::join_all(fetches).await;
    let merged = merge(&OWN_API.1, &services, &context.routes);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        merged.to_string(),
    )
        .into_response()
}

/// The interactive API reference (self-contained: it loads nothing from anywhere else).
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "reference",
    responses(
        (status = 200, description = "An HTML page that reads `/api/openapi.json`",
            content_type = "text/html", body = String),
    ),
)]
async fn reference() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        REFERENCE_PAGE,
    )
        .into_response();
    // Inline script and style only, requests to this origin only: nothing from a CDN can load.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One service's own document, or why it could not be had.
async fn fetch(
    upstreams: &UpstreamClient,
    upstream: Upstream,
    request_id: String,
) -> Result<Value, String> {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, value);
    }
    let response = upstreams
        .forward(Forward {
            upstream,
            method: Method::GET,
            path_and_query: DOCUMENT_PATH.to_owned(),
            headers,
            body: Bytes::new(),
            streaming: false,
            request_id,
        })
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(format!("{DOCUMENT_PATH} answered {status}"));
    }
    let body = axum::body::to_bytes(Body::new(response.into_body()), MAX_DOCUMENT_BYTES)
        .await
        .map_err(|e| format!("reading {DOCUMENT_PATH}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{DOCUMENT_PATH} is not JSON: {e}"))
}

/// The public document: the gateway's own (`own`) plus, from each service's document, the
/// paths the route table sends to that service, each operation completed with what the
/// gateway adds. Component schemas that two services name alike but define differently are
/// renamed `<service>.<name>` in the later one (its `$ref`s follow).
pub fn merge(
    own: &Value,
    services: &[(Upstream, Result<Value, String>)],
    table: &RouteTable,
) -> Value {
    let mut merged = own.clone();
    let mut unavailable = Vec::new();
    for (upstream, doc) in services {
        let mut doc = match doc {
            Ok(doc) => doc.clone(),
            Err(cause) => {
                unavailable.push(json!({"service": upstream.name(), "cause": cause}));
                continue;
            }
        };
        let renames = schema_renames(&merged, &doc, *upstream);
        if !renames.is_empty() {
            rewrite_refs(&mut doc, &renames);
        }
        for kind in ["schemas", "securitySchemes"] {
            let Some(theirs) = doc
                .pointer(&format!("/components/{kind}"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            let ours = object_at(&mut merged, &["components", kind]);
            for (name, value) in theirs {
                let name = renames.get(name).cloned().unwrap_or_else(|| name.clone());
                ours.entry(name).or_insert_with(|| value.clone());
            }
        }
        if let Some(tags) = doc.get("tags").and_then(Value::as_array) {
            let ours = merged
                .as_object_mut()
                .expect("a document is an object")
                .entry("tags")
                .or_insert_with(|| json!([]));
            if let Some(ours) = ours.as_array_mut() {
                for tag in tags {
                    if !ours.iter().any(|t| t.get("name") == tag.get("name")) {
                        ours.push(tag.clone());
                    }
                }
            }
        }
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            continue;
        };
        for (path, item) in paths {
            let Destination::Proxy(route) = table.resolve(path) else {
                continue;
            };
            if route.upstream != *upstream {
                continue;
            }
            let mut item = item.clone();
            for method in METHODS {
                if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                    complete(operation, route.auth, *upstream);
                }
            }
            let target = object_at(&mut merged, &["paths", path]);
            if let Some(item) = item.as_object() {
                for (key, value) in item {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if !unavailable.is_empty() {
        merged["x-studycafe-unavailable"] = Value::Array(unavailable);
    }
    merged
}

/// The answers the gateway itself may give on a proxied operation, whatever the service says.
fn gateway_answers(auth: Access, has_body: bool) -> Vec<(&'static str, &'static str)> {
    let mut answers = vec![
        (
            "400",
            "Malformed request (the gateway refuses paths with `.` or `..` segments).",
        ),
        (
            "401",
            "The bearer token is missing, malformed, expired or not trusted.",
        ),
        (
            "429",
            "Too many requests from this caller or address; `Retry-After` says when to try again.",
        ),
        ("502", "The service gave a broken answer."),
        ("503", "The service is unavailable; try again shortly."),
        ("504", "The service did not answer in time."),
    ];
    if auth == Access::Admin {
        answers.push(("403", "The token lacks the admin role."));
    }
    if has_body {
        answers.push(("408", "The request body did not arrive in time."));
        answers.push(("413", "The body is larger than 1 MiB."));
    }
    answers
}

fn complete(operation: &mut Map<String, Value>, auth: Access, upstream: Upstream) {
    // Unique across services (two may both have a `list`).
    if let Some(Value::String(id)) = operation.get_mut("operationId") {
        *id = format!("{}.{id}", upstream.name());
    }
    let tags = operation.entry("tags").or_insert_with(|| json!([]));
    if tags.as_array().is_some_and(Vec::is_empty) {
        *tags = json!([upstream.name()]);
    }
    if auth != Access::Anonymous && !operation.contains_key("security") {
        operation.insert(
            "security".to_owned(),
            json!([{ (studycafe_platform::openapi::BEARER): [] }]),
        );
    }
    let has_body = operation.contains_key("requestBody");
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    let problem = json!({"schema": {"$ref": "#/components/schemas/Problem"}});
    for (status, description) in gateway_answers(auth, has_body) {
        let response = responses
            .entry(status.to_owned())
            .or_insert_with(|| json!({"description": description}));
        // The service may document its own body for this status (the token endpoint's
        // RFC 6749 errors); the gateway's refusal is problem+json all the same.
        object_at(response, &["content"])
            .entry(studycafe_platform::problem::CONTENT_TYPE)
            .or_insert_with(|| problem.clone());
    }
}

/// The service's schemas that would clash with a different one of the same name.
fn schema_renames(merged: &Value, doc: &Value, upstream: Upstream) -> BTreeMap<String, String> {
    let ours = merged
        .pointer("/components/schemas")
        .and_then(Value::as_object);
    let theirs = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object);
    let (Some(ours), Some(theirs)) = (ours, theirs) else {
        return BTreeMap::new();
    };
    theirs
        .iter()
        .filter(|(name, schema)| ours.get(*name).is_some_and(|existing| existing != *schema))
        .map(|(name, _)| (name.clone(), format!("{}.{name}", upstream.name())))
        .collect()
}

fn rewrite_refs(value: &mut Value, renames: &BTreeMap<String, String>) {
    const PREFIX: &str = "#/components/schemas/";
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "$ref"
                    && let Value::String(target) = inner
                    && let Some(name) = target.strip_prefix(PREFIX)
                    && let Some(new) = renames.get(name)
                {
                    *target = format!("{PREFIX}{new}");
                } else {
                    rewrite_refs(inner, renames);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, renames)),
        _ => {}
    }
}

/// The object at `keys` under `value`, created (and any non-object replaced) on the way.
fn object_at<'a>(value: &'a mut Value, keys: &[&str]) -> &'a mut Map<String, Value> {
    let mut current = value;
    for key in keys {
        if !current.is_object() {
            *current = json!({});
        }
        current = current
            .as_object_mut()
            .expect("just made an object")
            .entry(*key)
            .or_insert_with(|| json!({}));
    }
    if !current.is_object() {
        *current = json!({});
    }
    current.as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::routes::OWN;

    fn service_doc(paths: Value, schemas: Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "x", "version": "1"},
            "paths": paths,
            "components": {"schemas": schemas},
        })
    }

    fn op(id: &str) -> Value {
        json!({"operationId": id, "responses": {"200": {"description": "ok"}}})
    }

    #[test]
    fn the_gateways_own_paths_are_each_documented() {
        let documented: Vec<&str> = OWN_API.1["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut own = OWN.to_vec();
        own.sort_unstable();
        let mut documented_sorted = documented.clone();
        documented_sorted.sort_unstable();
        assert_eq!(documented_sorted, own);
    }

    #[test]
    fn only_paths_routed_to_their_own_service_are_published() {
        let seat = service_doc(
            json!({
                "/api/seats": {"get": op("list_seats")},
                "/api/reservations/{id}": {"get": op("get"), "delete": op("cancel")},
                // Not routed by the gateway at all, and routed to another service.
                "/internal/seats": {"post": op("internal")},
                "/api/board": {"get": op("stolen")},
            }),
            json!({}),
        );
        let merged = merge(
            &OWN_API.1,
            &[(Upstream::Seat, Ok(seat))],
            &RouteTable::default(),
        );
        let paths = merged["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/seats"));
        assert!(paths.contains_key("/api/reservations/{id}"));
        assert!(paths.contains_key("/api/openapi.json"));
        assert!(!paths.contains_key("/internal/seats"));
        assert!(!paths.contains_key("/api/board"));
        assert_eq!(
            merged["paths"]["/api/reservations/{id}"]["delete"]["operationId"],
            "seat.cancel"
        );
    }

    #[test]
    fn each_operation_gets_the_gateways_answers_and_its_routes_security() {
        let doc = service_doc(
            json!({
                "/api/seats": {"get": op("list_seats")},
                "/api/reservations": {"post": {
                    "operationId": "reserve",
                    "requestBody": {"content": {"application/json": {}}},
                    "responses": {"202": {"description": "accepted"}},
                }},
            }),
            json!({}),
        );
        let merged = merge(
            &OWN_API.1,
            &[(Upstream::Seat, Ok(doc))],
            &RouteTable::default(),
        );
        let seats = &merged["paths"]["/api/seats"]["get"];
        assert!(seats.get("security").is_none(), "anonymous route");
        for status in ["401", "429", "502", "503", "504"] {
            assert_eq!(
                seats["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{status}"
            );
        }
        assert!(seats["responses"].get("413").is_none(), "no body, no 413");
        let reserve = &merged["paths"]["/api/reservations"]["post"];
        assert_eq!(reserve["security"], json!([{"bearer": []}]));
        assert!(reserve["responses"].get("413").is_some());
        assert!(merged["components"]["schemas"].get("Problem").is_some());
    }

    #[test]
    fn clashing_schemas_are_renamed_with_their_references() {
        let money = json!({"type": "object", "properties": {"amount": {"type": "integer"}}});
        let other_money = json!({"type": "string"});
        let reference = json!({"$ref": "#/components/schemas/Money"});
        let seat = service_doc(
            json!({"/api/seats": {"get": {"responses": {"200": {"description": "ok",
                "content": {"application/json": {"schema": reference}}}}}}}),
            json!({"Money": money}),
        );
        let payment = service_doc(
            json!({"/api/payments": {"get": {"responses": {"200": {"description": "ok",
                "content": {"application/json": {"schema": reference}}}}}}}),
            json!({"Money": other_money}),
        );
        let same = service_doc(json!({}), json!({"Money": money}));
        let merged = merge(
            &OWN_API.1,
            &[
                (Upstream::Seat, Ok(seat)),
                (Upstream::Payment, Ok(payment)),
                (Upstream::Registration, Ok(same)),
            ],
            &RouteTable::default(),
        );
        let schemas = &merged["components"]["schemas"];
        assert_eq!(schemas["Money"], money);
        assert_eq!(schemas["payment.Money"], other_money);
        assert!(
            schemas.get("registration.Money").is_none(),
            "equal ones are shared"
        );
        let schema_of = |path: &str| {
            merged["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["$ref"]
                .clone()
        };
        assert_eq!(schema_of("/api/seats"), "#/components/schemas/Money");
        assert_eq!(
            schema_of("/api/payments"),
            "#/components/schemas/payment.Money"
        );
    }

    #[test]
    fn an_unreachable_service_is_named_not_hidden() {
        let merged = merge(
            &OWN_API.1,
            &[(Upstream::Payment, Err("connection refused".into()))],
            &RouteTable::default(),
        );
        assert_eq!(
            merged["x-studycafe-unavailable"],
            json!([{"service": "payment", "cause": "connection refused"}])
        );
    }

    #[test]
    fn the_reference_page_loads_nothing_from_elsewhere() {
        // No absolute URL in any src/href, no import, no CDN: the page works offline.
        for needle in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "import(",
            "//cdn",
            "@import",
        ] {
            assert!(!REFERENCE_PAGE.contains(needle), "{needle}");
        }
        assert!(REFERENCE_PAGE.contains("/api/openapi.json"));
    }
}
