//! The public OpenAPI document, read through the gateway of the whole suite (notification
//! included), against the gateway's own route table (`gateway/src/domain/routes.rs`):
//!
//! - every route the gateway proxies has its operations in the document, and every documented
//!   path is one the gateway routes to the service that documents it (no `/internal/*`);
//! - every documented operation answers, on the running suite, a status it documents, and
//!   every error answer is `application/problem+json` (the token endpoint's are RFC 6749's
//!   JSON, as documented);
//! - the reference page is served and loads nothing from elsewhere.
//!
//! That no service route exists without its description is `suite/architecture.rs`
//! (`no_route_is_registered_without_its_description`): routes are only ever registered
//! through their `#[utoipa::path]`.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use studycafe_e2e::stack::{Stack, StackOptions};
use studycafe_gateway::domain::{
    Destination, RouteTable,
    routes::{OWN, ROUTES},
};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn document(stack: &Stack) -> Value {
    let response = stack
        .http
        .get(stack.api("/api/openapi.json"))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.expect("the document is JSON")
}

/// Each (path, method, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                all.push((path.clone(), method.to_owned(), operation.clone()));
            }
        }
    }
    all
}

#[tokio::test]
async fn the_public_document_describes_every_route_the_gateway_proxies_and_only_those() {
    let stack = Stack::start(StackOptions {
        notification: true,
        ..StackOptions::default()
    })
    .await;
    let doc = document(&stack).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(
        doc.get("x-studycafe-unavailable").is_none(),
        "every service's document was read: {}",
        doc["x-studycafe-unavailable"]
    );

    let table = RouteTable::default();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for route in ROUTES {
        let documented: Vec<_> = paths
            .iter()
            .filter(|p| table.resolve(p) == Destination::Proxy(*route))
            .collect();
        assert!(
            !documented.is_empty(),
            "the gateway proxies {} to {} but the document has no path under it: {paths:?}",
            route.prefix,
            route.upstream
        );
    }
    for own in OWN {
        assert!(paths.iter().any(|p| p == own), "{own}");
    }
    for path in &paths {
        assert!(
            matches!(
                table.resolve(path),
                Destination::Proxy(_) | Destination::Own(_)
            ),
            "{path} is documented but the gateway does not route it"
        );
    }

    let mut ids = BTreeSet::new();
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            ids.insert(id.clone()),
            "{method} {path}: operationId {id:?} repeated"
        );
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path} documents no success"
        );
        for (status, response) in responses {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let types: Vec<&String> = response["content"]
                .as_object()
                .map(|c| c.keys().collect())
                .unwrap_or_default();
            // The token endpoint's own errors are RFC 6749 §5.2 JSON, as OAuth2 clients expect.
            let ok = types.iter().any(|t| *t == "application/problem+json")
                || (path == "/auth/token" && types.iter().any(|t| *t == "application/json"));
            assert!(ok, "{method} {path} {status}: {types:?}");
        }
    }
}

#[tokio::test]
async fn every_documented_operation_answers_a_status_it_documents() {
    let stack = Stack::start(StackOptions {
        notification: true,
        ..StackOptions::default()
    })
    .await;
    let doc = document(&stack).await;
    let customer = stack.customer("openapi").await;
    for (path, method, operation) in operations(&doc) {
        // Harmless input: an id that names nothing, an empty body (refused before any write).
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "0"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let admin_only = path.starts_with("/api/admin");
        let token = if admin_only {
            &stack.admin.token
        } else {
            &customer.token
        };
        let mut request = stack
            .http
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                stack.api(&concrete),
            )
            .bearer_auth(token);
        if let Some(body) = operation.get("requestBody") {
            let form = body["content"]
                .get("application/x-www-form-urlencoded")
                .is_some();
            request = if form {
                request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("")
            } else {
                request.json(&json!({}))
            };
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let documented = operation["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{method} {concrete}: {status} is not documented ({})",
                    operation["responses"]
                )
            });
        if status.is_client_error() || status.is_server_error() {
            let declared: Vec<&String> = documented["content"]
                .as_object()
                .map(|c| c.keys().collect())
                .unwrap_or_default();
            assert!(
                declared
                    .iter()
                    .any(|t| content_type.starts_with(t.as_str())),
                "{method} {concrete}: {status} as {content_type}, documented {declared:?}"
            );
        }
        // An event stream never ends: its head is the answer.
        drop(response);
    }
}

#[tokio::test]
async fn the_reference_page_is_served_and_self_contained() {
    let stack = Stack::start(StackOptions::default()).await;
    let response = stack
        .http
        .get(stack.api("/api/docs"))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("/api/openapi.json"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "nothing remote"
    );
    let refused = stack
        .http
        .post(stack.api("/api/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
}
