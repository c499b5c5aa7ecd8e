//! `spawn_gateway`: a gateway on port 0 in front of five stub services (small axum apps on
//! port 0 that record every request they get), checking tokens against a test key.
//!
//! The stubs stand in for the services in this unit-level test of the proxy: they answer
//! with an echo of what arrived (`x-upstream` names the stub), and a few paths behave like
//! the troubles a proxy must survive: `/…/slow` answers after 30 s, `/api/board/stream` is
//! an endless server-sent event stream (one event per 100 ms).

#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use studycafe_gateway::{App, GatewayConfig, domain::Upstream};
use studycafe_platform::{
    config::Env,
    signing::{AccessClaims, SigningKey, jwks},
};
use studycafe_testkit::{TestKeys, keys};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request as a stub received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A stand-in service.
#[derive(Debug, Clone)]
pub struct Stub {
    pub name: &'static str,
    pub addr: SocketAddr,
    calls: Arc<Mutex<Vec<Recorded>>>,
}

impl Stub {
    pub async fn start(name: &'static str) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stub = StubState {
            name,
            calls: calls.clone(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(stub_handler).with_state(stub);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { name, addr, calls }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<Recorded> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn last(&self) -> Recorded {
        self.calls().pop().expect("the stub was called")
    }
}

#[derive(Clone)]
struct StubState {
    name: &'static str,
    calls: Arc<Mutex<Vec<Recorded>>>,
}

async fn stub_handler(State(stub): State<StubState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap().to_vec();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    stub.calls.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path_and_query: path_and_query.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let path = parts.uri.path();
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if path == "/api/board/stream" {
        let ticks = futures::stream::unfold(0u64, |n| async move {
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let event = format!("id: {n}\ndata: tick {n}\n\n");
            Some((Ok::<_, std::io::Error>(event), n + 1))
        });
        return (
            [
                ("content-type", "text/event-stream"),
                ("cache-control", "no-cache"),
            ],
            Body::from_stream(ticks),
        )
            .into_response();
    }
    let status = if path.ends_with("/missing") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    (
        status,
        [
            ("x-upstream", stub.name),
            // Hop-by-hop headers a proxy must not pass back.
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic realm=\"stub\""),
        ],
        axum::Json(json!({
            "upstream": stub.name,
            "method": parts.method.as_str(),
            "pathAndQuery": path_and_query,
            "body": String::from_utf8_lossy(&body),
        })),
    )
        .into_response()
}

/// The five stand-in services.
#[derive(Debug)]
pub struct Stubs {
    by_upstream: HashMap<Upstream, Stub>,
}

impl Stubs {
    pub async fn start() -> Self {
        let mut by_upstream = HashMap::new();
        for upstream in Upstream::ALL {
            by_upstream.insert(upstream, Stub::start(upstream.name()).await);
        }
        Self { by_upstream }
    }

    pub fn get(&self, upstream: Upstream) -> &Stub {
        &self.by_upstream[&upstream]
    }

    /// Calls received by every stub together.
    pub fn total(&self) -> usize {
        self.by_upstream.values().map(Stub::count).sum()
    }
}

/// A second signing key, known to the gateway alongside the `TestKeys` one: for tokens
/// `TestKeys` does not make (expired ones).
#[derive(Debug)]
pub struct ExtraKey {
    key: SigningKey,
}

impl ExtraKey {
    /// A token for `user` that expired `ago` ago (well past any clock leeway).
    pub fn expired(&self, user: &str, ago: chrono::Duration) -> String {
        let mut claims = AccessClaims::new(
            keys::ISSUER,
            keys::AUDIENCE,
            user,
            &["customer"],
            chrono::Duration::minutes(1),
        );
        claims.iat = (chrono::Utc::now() - ago - chrono::Duration::minutes(5)).timestamp();
        claims.exp = (chrono::Utc::now() - ago).timestamp();
        self.key.sign(&claims).unwrap()
    }

    /// A valid token under this key.
    pub fn token(&self, user: &str, roles: &[&str]) -> String {
        self.key
            .sign(&AccessClaims::new(
                keys::ISSUER,
                keys::AUDIENCE,
                user,
                roles,
                chrono::Duration::minutes(30),
            ))
            .unwrap()
    }
}

pub struct TestGateway {
    pub base: String,
    pub http: reqwest::Client,
    pub keys: TestKeys,
    pub extra_key: ExtraKey,
    pub stubs: Stubs,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub web_root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn spawn_gateway() -> TestGateway {
    spawn_gateway_with(&[]).await
}

/// A gateway with `extra` variables on top of the test defaults (an upstream URL given
/// there replaces its stub's).
pub async fn spawn_gateway_with(extra: &[(&str, &str)]) -> TestGateway {
    // Tracing is on (silently) so that requests have spans and a trace context to pass on.
    if std::env::var_os("TEST_LOG").is_some() {
        studycafe_platform::observability::init_tracing("gateway-test");
    } else {
        studycafe_platform::observability::init_tracing_silent("gateway-test");
    }
    let stubs = Stubs::start().await;
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().unwrap();

    // The gateway knows both the TestKeys key and an extra one.
    let extra_key = ExtraKey {
        key: SigningKey::generate(format!("extra-{}", uuid_ish())),
    };
    let mut set: Value =
        serde_json::from_str(&std::fs::read_to_string(keys.jwks_file()).unwrap()).unwrap();
    let extra_jwks = jwks([&extra_key.key]);
    set["keys"]
        .as_array_mut()
        .unwrap()
        .extend(extra_jwks["keys"].as_array().unwrap().iter().cloned());
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, set.to_string()).unwrap();

    let web_root = dir.path().join("web");
    std::fs::create_dir_all(&web_root).unwrap();

    let jwks_file = jwks_file.display().to_string();
    let web = web_root.display().to_string();
    let urls: Vec<(String, String)> = Upstream::ALL
        .iter()
        .map(|u| {
            let var = format!(
                "GATEWAY_{}_URL",
                u.name().replace('-', "_").to_ascii_uppercase()
            );
            (var, stubs.get(*u).url())
        })
        .collect();
    let mut vars: Vec<(&str, &str)> = vec![
        ("GATEWAY_HTTP_ADDR", "127.0.0.1:0"),
        ("AUTH_JWKS_FILE", &jwks_file),
        ("GATEWAY_WEB_ROOT", &web),
        ("GATEWAY_SHUTDOWN_GRACE_MS", "2000"),
    ];
    vars.extend(urls.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // Later pairs win in `Env::from_pairs`.
    vars.extend_from_slice(extra);
    let config = GatewayConfig::from_env(&Env::from_pairs(vars)).expect("config");
    let shutdown = CancellationToken::new();
    let app = App::build(config, shutdown.clone()).await.expect("build");
    let base = format!("http://{}", app.local_addr());
    let task = tokio::spawn(app.run());
    TestGateway {
        base,
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        keys,
        extra_key,
        stubs,
        shutdown,
        task: Some(task),
        web_root,
        _dir: dir,
    }
}

fn uuid_ish() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stub(&self, upstream: Upstream) -> &Stub {
        self.stubs.get(upstream)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the gateway answers")
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// Asserts a problem+json response with `status` and `type`; returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, problem_type: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], problem_type, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

/// Writes a file under the web root.
pub fn write_web_file(root: &Path, name: &str, content: &str) {
    let path = root.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}
