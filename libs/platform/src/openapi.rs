//! OpenAPI 3.1 documents generated from the handlers themselves.
//!
//! A service registers each public route through [`DocumentedRouter::route`], which takes the
//! handler's `#[utoipa::path]` description and derives the route's path and methods from it:
//! a public route cannot exist without its description, and the two cannot disagree. The
//! router serves its own document at [`DOCUMENT_PATH`] (on the service's port); the gateway
//! merges the services' documents into the public one.
//!
//! The problem+json answers every operation can give (a malformed request, a missing or bad
//! token, rate limits, an unavailable dependency) are added here in one place, so each handler
//! only declares the answers of its own use case.

use axum::{
    Router,
    handler::Handler,
    response::IntoResponse,
    routing::{MethodFilter, MethodRouter, get},
};
use serde::Serialize;
use utoipa::{
    ToSchema,
    openapi::{
        Components, ContentBuilder, HttpMethod, OpenApi, OpenApiBuilder, RefOr, ResponseBuilder,
        path::{Operation, PathItem},
        security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
    },
};

/// Where each service serves its own document (not proxied by the gateway).
pub const DOCUMENT_PATH: &str = "/openapi.json";

/// The security scheme's name in every document.
pub const BEARER: &str = "bearer";

/// The problem+json body (RFC 9457), as clients see it. Its own type because [`crate::Problem`]
/// carries response-only state (`Retry-After`) that is not part of the body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    as = Problem,
    example = json!({
        "type": "/problems/seat-taken",
        "title": "Seat already reserved",
        "status": 409,
        "detail": "seat A-01 is already reserved for an overlapping window",
        "seatId": "A-01"
    })
)]
pub struct ProblemBody {
    /// A stable relative URI naming the kind of problem (`/problems/<slug>`); switch on it.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// This occurrence, for people.
    pub detail: String,
    /// Extension members (RFC 9457 §3.2), e.g. `field` for the offending input.
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// Who may call an operation, for its security requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No token needed; a token that is sent must still be valid.
    Anonymous,
    /// A bearer token (of anyone).
    Bearer,
    /// A bearer token with the `admin` role.
    Admin,
    /// A bearer token with the `service` role (service-to-service routes, never routed by the
    /// gateway).
    Service,
}

impl Security {
    fn needs_token(self) -> bool {
        self != Security::Anonymous
    }

    /// The role the operation's description names, if any.
    fn role(self) -> Option<&'static str> {
        match self {
            Security::Admin => Some("admin"),
            Security::Service => Some("service"),
            Security::Anonymous | Security::Bearer => None,
        }
    }
}

/// An axum router and the OpenAPI document of its routes, built together.
pub struct DocumentedRouter<S> {
    router: Router<S>,
    doc: OpenApi,
}

impl<S> std::fmt::Debug for DocumentedRouter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentedRouter")
            .field("paths", &self.doc.paths.paths.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> DocumentedRouter<S> {
    /// A document titled `title` (the service's name).
    pub fn new(title: &str, description: &str) -> Self {
        let mut doc = OpenApiBuilder::new().build();
        doc.info.title = title.to_owned();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        doc.info.description = Some(description.to_owned());
        doc.info.license = None;
        doc.info.contact = None;
        Self {
            router: Router::new(),
            doc,
        }
    }

    /// Serves `handler` at the path and methods its description `_doc` (the `__path_<fn>`
    /// value `#[utoipa::path]` generates) names, and adds that description to the document.
    /// Several handlers may share a path with different methods.
    pub fn route<P, H, T>(mut self, _doc: P, handler: H, security: Security) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences,
        H: Handler<T, S>,
        T: 'static,
    {
        let path = P::path();
        let methods = P::methods();
        let filter = methods
            .iter()
            .map(method_filter)
            .reduce(MethodFilter::or)
            .expect("a #[utoipa::path] names at least one method");
        self.router = self
            .router
            .route(&path, MethodRouter::new().on(filter, handler));

        let mut operation = P::operation();
        complete(&mut operation, security);
        let item = self.doc.paths.paths.entry(path).or_default();
        for method in &methods {
            set_operation(item, method, operation.clone());
        }

        let mut schemas = Vec::new();
        P::schemas(&mut schemas);
        let components = self.doc.components.get_or_insert_with(Components::new);
        components.schemas.insert(
            "Problem".to_owned(),
            <ProblemBody as utoipa::PartialSchema>::schema(),
        );
        components.schemas.extend(schemas);
        components.security_schemes.insert(
            BEARER.to_owned(),
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /auth/token` (an Ed25519-signed JWT).",
                    ))
                    .build(),
            ),
        );
        self
    }

    /// The router (which also serves the document at [`DOCUMENT_PATH`]) and the document.
    pub fn finish(self) -> (Router<S>, OpenApi) {
        let json = axum::body::Bytes::from(
            self.doc
                .to_json()
                .expect("an OpenAPI document always serialises"),
        );
        let router = self.router.route(
            DOCUMENT_PATH,
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        json,
                    )
                        .into_response()
                }
            }),
        );
        (router, self.doc)
    }
}

fn method_filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

fn set_operation(item: &mut PathItem, method: &HttpMethod, operation: Operation) {
    let slot = match method {
        HttpMethod::Get => &mut item.get,
        HttpMethod::Post => &mut item.post,
        HttpMethod::Put => &mut item.put,
        HttpMethod::Delete => &mut item.delete,
        HttpMethod::Options => &mut item.options,
        HttpMethod::Head => &mut item.head,
        HttpMethod::Patch => &mut item.patch,
        HttpMethod::Trace => &mut item.trace,
    };
    *slot = Some(operation);
}

/// The problem+json answers shared by every operation, the security requirement, and the
/// problem content type on every error answer the handler declared.
fn complete(operation: &mut Operation, security: Security) {
    let has_body = operation.request_body.is_some();
    let mut common: Vec<(&str, &str)> = vec![
        (
            "400",
            "Malformed request: a parameter or the body is not what the operation takes.",
        ),
        (
            "429",
            "Too many requests from this caller or address; `Retry-After` says when to try again.",
        ),
        (
            "503",
            "A dependency is unavailable or the service is overloaded; try again shortly.",
        ),
    ];
    // The gateway checks any token that is sent, even on anonymous operations.
    common.push((
        "401",
        "The bearer token is missing, malformed, expired or not trusted.",
    ));
    if security.needs_token() {
        common.push(("403", "The token does not allow this operation."));
    }
    if has_body {
        common.push(("413", "The body is larger than the limit."));
        common.push(("415", "The body is not `application/json`."));
    }
    for (status, description) in common {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem_response(description));
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        if !(status.starts_with('4') || status.starts_with('5')) {
            continue;
        }
        if let RefOr::T(response) = response
            && response.content.is_empty()
        {
            response
                .content
                .insert(crate::problem::CONTENT_TYPE.to_owned(), problem_content());
        }
    }
    if security.needs_token() {
        operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    }
    if let Some(role) = security.role() {
        let note = format!("Requires the `{role}` role.");
        operation.description = Some(match operation.description.take() {
            Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
            _ => note,
        });
    }
}

fn problem_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
        .build()
}

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(crate::problem::CONTENT_TYPE, problem_content())
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{Request, StatusCode},
    };
    use tower::ServiceExt as _;

    use super::*;

    #[derive(Debug, Serialize, ToSchema)]
    struct Thing {
        name: String,
    }

    /// A thing.
    #[utoipa::path(
        get,
        path = "/api/things/{id}",
        params(("id" = String, Path, description = "The thing's id")),
        responses(
            (status = 200, description = "The thing", body = Thing),
            (status = 404, description = "No such thing"),
        ),
    )]
    async fn get_thing() -> &'static str {
        "thing"
    }

    /// Makes a thing.
    #[utoipa::path(
        post,
        path = "/api/things/{id}",
        request_body = Thing,
        responses((status = 201, description = "Made")),
    )]
    async fn make_thing() -> StatusCode {
        StatusCode::CREATED
    }

    fn documented() -> (Router, OpenApi) {
        DocumentedRouter::<()>::new("things", "Things.")
            .route(__path_get_thing, get_thing, Security::Anonymous)
            .route(__path_make_thing, make_thing, Security::Admin)
            .finish()
    }

    async fn call(router: &Router, method: &str, uri: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_route_is_served_where_its_description_says_and_nowhere_else() {
        let (router, _) = documented();
        assert_eq!(
            call(&router, "GET", "/api/things/7").await,
            (StatusCode::OK, "thing".into())
        );
        assert_eq!(
            call(&router, "POST", "/api/things/7").await.0,
            StatusCode::CREATED
        );
        assert_eq!(
            call(&router, "DELETE", "/api/things/7").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(&router, "GET", "/api/things").await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn the_document_is_served_and_describes_each_route_with_the_shared_answers() {
        let (router, doc) = documented();
        let (status, served) = call(&router, "GET", DOCUMENT_PATH).await;
        assert_eq!(status, StatusCode::OK);
        let served: serde_json::Value = serde_json::from_str(&served).unwrap();
        assert_eq!(served, serde_json::to_value(&doc).unwrap());

        let item = &served["paths"]["/api/things/{id}"];
        let get = &item["get"];
        let post = &item["post"];
        assert_eq!(get["operationId"], "get_thing");
        assert!(get.get("security").is_none(), "anonymous");
        assert_eq!(post["security"], serde_json::json!([{"bearer": []}]));
        assert!(
            post["description"]
                .as_str()
                .unwrap()
                .contains("`admin` role")
        );
        let problem = |op: &serde_json::Value, status: &str| {
            op["responses"][status]["content"][crate::problem::CONTENT_TYPE]["schema"]["$ref"]
                .clone()
        };
        // The handler's own error answer gets the problem body; the shared ones are added.
        assert_eq!(problem(get, "404"), "#/components/schemas/Problem");
        for status in ["400", "401", "429", "503"] {
            assert_eq!(
                problem(get, status),
                "#/components/schemas/Problem",
                "{status}"
            );
        }
        assert!(get["responses"].get("413").is_none(), "no body, no 413");
        for status in ["403", "413", "415"] {
            assert_eq!(
                problem(post, status),
                "#/components/schemas/Problem",
                "{status}"
            );
        }
        let schemas = &served["components"]["schemas"];
        assert!(schemas.get("Thing").is_some() && schemas.get("Problem").is_some());
        assert_eq!(
            served["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
