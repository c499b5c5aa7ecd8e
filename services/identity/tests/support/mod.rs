//! `spawn_app`: an identity service on port 0 with its own fresh database and key directory,
//! and helpers to talk to it over loopback HTTP.
//!
//! Store-related tests run on every backend: write the body as `async fn name(backend:
//! Backend)` and list it in [`on_every_backend!`], which makes a `sqlite::name` and a
//! `postgres::name` test of it. The PostgreSQL ones need `TEST_POSTGRES_URL` (`eval
//! "$(scripts/engines/up postgres)"`); each gets a fresh database of its own.

#![allow(dead_code, unused_macros)]

/// One `#[tokio::test]` per backend for each listed `async fn(Backend)`.
macro_rules! on_every_backend {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::support::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::support::Backend::Postgres).await;
                }
            )+
        }
    };
}

use std::{path::PathBuf, sync::Arc};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use identity_service::{App, IdentityConfig};
use serde_json::{Value, json};
use studycafe_platform::{
    auth::{AuthConfig, JwtVerifier, KeySource},
    balancer::Replicas,
    config::Env,
};
use tokio_util::sync::CancellationToken;

pub const CLIENTS: &str = "seat-service:seat-s3cret-value,payment-service:pay:s3cret value";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub keys_dir: PathBuf,
    db_url: String,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: Arc<tempfile::TempDir>,
}

fn init_logs() {
    // Logs only on request (`TEST_LOG=1`): libtest does not capture output from the app's
    // own threads.
    if std::env::var_os("TEST_LOG").is_some() {
        studycafe_platform::observability::init_tracing("identity-test");
    } else {
        studycafe_platform::observability::init_tracing_silent("identity-test");
    }
}

/// Where the user store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database on the `TEST_POSTGRES_URL` server.
    Postgres,
}

impl Backend {
    async fn fresh_database(self, dir: &std::path::Path) -> String {
        match self {
            Self::Sqlite => format!("sqlite://{}", dir.join("identity.db").display()),
            Self::Postgres => studycafe_testkit::engines::postgres_database().await,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Sqlite, &[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_app_on(Backend::Sqlite, extra).await
}

pub async fn spawn_app_on(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let keys_dir = dir.path().join("keys");
    let db_url = backend.fresh_database(dir.path()).await;
    start(dir, keys_dir, db_url, extra).await.expect("build")
}

/// Two instances started at the same moment on one fresh database and key directory (two
/// replicas of a deployment); both must come up.
pub async fn spawn_replicas_on(backend: Backend, extra: &[(&str, &str)]) -> (TestApp, TestApp) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let keys_dir = dir.path().join("keys");
    let db_url = backend.fresh_database(dir.path()).await;
    let (a, b) = tokio::join!(
        start(dir.clone(), keys_dir.clone(), db_url.clone(), extra),
        start(dir, keys_dir, db_url, extra),
    );
    (a.expect("first replica"), b.expect("second replica"))
}

/// The configuration of an app on `dir`'s database and keys.
pub fn config(keys_dir: &std::path::Path, db_url: &str, extra: &[(&str, &str)]) -> IdentityConfig {
    let keys = keys_dir.display().to_string();
    let mut vars: Vec<(&str, &str)> = vec![
        ("IDENTITY_HTTP_ADDR", "127.0.0.1:0"),
        ("IDENTITY_DATABASE_URL", db_url),
        ("IDENTITY_KEYS_DIR", &keys),
        ("IDENTITY_CLIENTS", CLIENTS),
        ("IDENTITY_SHUTDOWN_GRACE_MS", "2000"),
    ];
    vars.extend_from_slice(extra);
    IdentityConfig::from_env(&Env::from_pairs(vars)).expect("config")
}

async fn start(
    dir: Arc<tempfile::TempDir>,
    keys_dir: PathBuf,
    db_url: String,
    extra: &[(&str, &str)],
) -> anyhow::Result<TestApp> {
    init_logs();
    let shutdown = CancellationToken::new();
    let app = App::build(config(&keys_dir, &db_url, extra), shutdown.clone()).await?;
    let base = format!("http://{}", app.local_addr());
    let task = tokio::spawn(app.run());
    Ok(TestApp {
        base,
        http: reqwest::Client::new(),
        keys_dir,
        db_url,
        shutdown,
        task: Some(task),
        dir,
    })
}

/// The `kid` in a token's header.
pub fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// A token's claims, unverified (to look at them).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

impl TestApp {
    /// Stops this instance and starts another on the same database and keys.
    pub async fn restart_with(&mut self, extra: &[(&str, &str)]) {
        self.stop().await;
        let next = start(
            self.dir.clone(),
            self.keys_dir.clone(),
            self.db_url.clone(),
            extra,
        )
        .await
        .expect("restart");
        *self = next;
    }

    /// Building another app on the same files (to see it fail).
    pub async fn build_again(&self, extra: &[(&str, &str)]) -> anyhow::Result<App> {
        App::build(
            config(&self.keys_dir, &self.db_url, extra),
            CancellationToken::new(),
        )
        .await
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn sign_up(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/api/users", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Signs up `username` with a good password and display name; asserts the 201.
    pub async fn sign_up_ok(&self, username: &str, password: &str) -> Value {
        let response = self
            .sign_up(&json!({"username": username, "password": password, "displayName": "Someone"}))
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// POSTs a form to the token endpoint.
    pub async fn token_form(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/auth/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn password_grant(&self, username: &str, password: &str) -> reqwest::Response {
        self.token_form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .await
    }

    /// A token for `username` (asserting the 200).
    pub async fn access_token(&self, username: &str, password: &str) -> String {
        let response = self.password_grant(username, password).await;
        assert_eq!(response.status(), 200, "password grant for {username}");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn jwks(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// The kids the JWKS publishes.
    pub async fn published_kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A verifier as every other service builds one: against this instance's JWKS URL.
    pub fn verifier(&self) -> Arc<JwtVerifier> {
        JwtVerifier::new(AuthConfig {
            keys: KeySource::JwksUrl(Replicas::one(&format!(
                "{}/.well-known/jwks.json",
                self.base
            ))),
            issuer: "studycafe-identity".into(),
            audience: "studycafe".into(),
            max_age: std::time::Duration::from_secs(60),
        })
    }
}

/// Asserts an RFC 6749 error response; returns the body.
pub async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    body
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
