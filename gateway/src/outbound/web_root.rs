//! The static web page, served from a directory (`GATEWAY_WEB_ROOT`).
//!
//! `index.html` answers for a directory (so `/` is the page). A path that is not there, or
//! a directory that does not exist at all, is a 404 problem like any other unknown path;
//! methods other than GET and HEAD are 405 problems.

use std::path::Path;

use axum::{
    body::Body,
    extract::Request,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use studycafe_platform::Problem;
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

#[derive(Debug, Clone)]
pub struct WebRoot {
    files: ServeDir,
}

impl WebRoot {
    pub fn new(dir: &Path) -> Self {
        if !dir.is_dir() {
            tracing::warn!(dir = %dir.display(), "the web root is not a directory; static paths will be 404");
        }
        Self {
            files: ServeDir::new(dir).append_index_html_on_directories(true),
        }
    }

    pub async fn serve(&self, request: Request) -> Response {
        let path = request.uri().path().to_owned();
        let Ok(response) = self.files.clone().oneshot(request).await;
        match response.status() {
            StatusCode::NOT_FOUND => {
                Problem::not_found(format!("there is nothing at {path}")).into_response()
            }
            StatusCode::METHOD_NOT_ALLOWED => (
                [(header::ALLOW, "GET, HEAD")],
                Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    "Method not allowed",
                    format!("{path} is a static file: only GET and HEAD"),
                ),
            )
                .into_response(),
            _ => response.map(Body::new),
        }
    }
}
