//! The hexagonal rule the code can check: no service's `domain/` names a framework crate.
//! And the OpenAPI rule: no HTTP route of a service or the gateway exists without its
//! description (see [`no_route_is_registered_without_its_description`]).
//!
//! Adapters (REST, gRPC, Kafka, SQL, HTTP clients, Redis) live in `inbound/` and `outbound/`;
//! the model and its ports must compile without knowing any of them, so a new adapter (seat's
//! gRPC API) cannot reach into the domain. The check reads the source: any path or `use` of a
//! listed crate in `services/*/src/domain/**.rs`, tests included, fails it.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// Crates the domain must never name.
const FRAMEWORKS: [&str; 11] = [
    "axum", "tonic", "prost", "sqlx", "rdkafka", "reqwest", "redis", "tokio", "metrics", "hyper",
    "tower",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `files` in path order, each as (path relative to `root`, text).
fn texts(root: &Path, mut files: Vec<PathBuf>) -> Vec<(String, String)> {
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (relative, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// Every domain source file, as (path relative to the repo, text).
fn domain_sources(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for service in std::fs::read_dir(root.join("services"))
        .expect("services/")
        .flatten()
    {
        rust_files(&service.path().join("src/domain"), &mut files);
        let single = service.path().join("src/domain.rs");
        if single.is_file() {
            files.push(single);
        }
    }
    texts(root, files)
}

/// The text without `//` comments (doc comments may mention a crate; code may not).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The listed crates `code` names: as the first segment of a path (`tokio::spawn`,
/// `#[tokio::test]`, `use tokio::sync`), or in `use crate_name;` / `extern crate`.
fn frameworks_named(code: &str) -> BTreeSet<&'static str> {
    let mut named = BTreeSet::new();
    for krate in FRAMEWORKS {
        for (at, _) in code.match_indices(krate) {
            let before = &code[..at];
            let after = &code[at + krate.len()..];
            if before.ends_with(is_ident) || after.starts_with(is_ident) {
                continue;
            }
            // `crate::x::tokio::..` or `self.metrics::` are not the crate.
            if before.ends_with("::") || before.ends_with('.') {
                continue;
            }
            let trimmed = before.trim_end();
            let path = after.trim_start().starts_with("::");
            let used = trimmed.ends_with("use")
                || trimmed.ends_with("extern crate")
                || trimmed.ends_with("use {")
                || trimmed.ends_with("use ::");
            if path || used {
                named.insert(krate);
            }
        }
    }
    named
}

fn violations(sources: &[(String, String)]) -> BTreeSet<(String, &'static str)> {
    sources
        .iter()
        .flat_map(|(path, text)| {
            frameworks_named(&code_of(text))
                .into_iter()
                .map(move |krate| (path.clone(), krate))
        })
        .collect()
}

#[test]
fn no_domain_names_a_framework_crate() {
    let root = repo_root();
    let sources = domain_sources(&root);
    assert!(
        sources.len() >= 5,
        "every service has a domain/: found {sources:?}"
    );
    let found = violations(&sources);
    assert!(
        found.is_empty(),
        "domain code names a framework crate (move it to an adapter or the application layer): {found:?}"
    );
}

#[test]
fn the_scanner_sees_every_way_of_naming_a_crate() {
    let code = code_of(
        "use tonic::Status;\n\
         fn f() { sqlx::query(\"x\"); }\n\
         #[tokio::test]\n\
         use axum;\n\
         // reqwest::get is only mentioned\n\
         let x = crate::outbound::redis::Pool;\n\
         let prostitute = 1; let metrics_total = 2;",
    );
    assert_eq!(
        frameworks_named(&code),
        BTreeSet::from(["axum", "sqlx", "tokio", "tonic"])
    );
}

// ---------------------------------------------------------------------------------------------
// every route documented
// ---------------------------------------------------------------------------------------------

/// Every Rust source of the services and the gateway, as (path relative to the repo, text).
fn http_sources(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for service in std::fs::read_dir(root.join("services"))
        .expect("services/")
        .flatten()
    {
        rust_files(&service.path().join("src"), &mut files);
    }
    rust_files(&root.join("gateway/src"), &mut files);
    texts(root, files)
}

/// The ways `code` could add an HTTP route that bypasses `DocumentedRouter::route` (whose
/// first argument is always a handler's `__path_<fn>` description): axum's `.route("/x", …)`,
/// `.route_service`, `.nest`, `.nest_service` and the `routing::` method routers. The
/// gateway's `.fallback` is its proxy, not a route, and the platform's operational routes
/// (`/health/*`, `/metrics`) are never routed by the gateway.
fn undocumented_routes(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for call in [".route_service(", ".nest_service(", ".nest(", "routing::"] {
        if code.contains(call) {
            found.push(call.trim_end_matches('(').to_owned());
        }
    }
    for (at, _) in code.match_indices(".route(") {
        let argument = code[at + ".route(".len()..].trim_start();
        let described = argument
            .split(|c: char| !(is_ident(c) || c == ':'))
            .next()
            .is_some_and(|path| {
                path.rsplit("::")
                    .next()
                    .is_some_and(|f| f.starts_with("__path_"))
            });
        if !described {
            let line = code[..at].lines().count();
            found.push(format!(
                ".route( at line {line}: {}",
                argument.lines().next().unwrap_or("")
            ));
        }
    }
    found
}

/// Every public route is registered through `DocumentedRouter::route`
/// (`libs/platform/src/openapi.rs`), which takes the handler's `#[utoipa::path]` description
/// and derives the route's path and methods from it: a route cannot exist without its
/// description, and the two cannot disagree. This fails on any other way of adding one.
/// (The gateway's side, that the merged document covers each route it proxies, is
/// `suite/openapi.rs`.)
#[test]
fn no_route_is_registered_without_its_description() {
    let sources = http_sources(&repo_root());
    assert!(
        sources.len() >= 20,
        "the services' and gateway's sources: {}",
        sources.len()
    );
    let documented = sources
        .iter()
        .filter(|(_, text)| text.contains("DocumentedRouter") && text.contains(".finish()"))
        .count();
    assert!(
        documented >= 6,
        "five services and the gateway build a DocumentedRouter: {documented}"
    );
    let bad: Vec<(String, Vec<String>)> = sources
        .iter()
        .map(|(path, text)| (path.clone(), undocumented_routes(&code_of(text))))
        .filter(|(_, found)| !found.is_empty())
        .collect();
    assert!(
        bad.is_empty(),
        "routes added without their #[utoipa::path] description (use DocumentedRouter::route): {bad:?}"
    );
}

#[test]
fn the_route_scanner_sees_an_undocumented_route() {
    let documented = code_of(
        "DocumentedRouter::new(\"x\", \"y\")\n\
         .route(__path_list, list::<S>, Security::Anonymous)\n\
         .route(\n    oauth::__path_token,\n    token, Security::Anonymous)",
    );
    assert_eq!(undocumented_routes(&documented), Vec::<String>::new());
    let plain = code_of(
        "use axum::routing::get;\n\
         Router::new().route(\"/api/x\", get(x)).nest(\"/y\", other)",
    );
    let found = undocumented_routes(&plain);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.iter().any(|f| f.contains("\"/api/x\"")), "{found:?}");
}
