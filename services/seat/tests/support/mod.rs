//! `spawn_app`: a seat service on port 0 with its own fresh database (a SQLite file, or a
//! PostgreSQL database of its own on `TEST_POSTGRES_URL`), a real embedded broker and a test
//! signing key.
//!
//! `on_both_backends!` turns test bodies taking a [`Db`] into one test per backend, so the
//! same behaviour is checked on SQLite and on PostgreSQL.

#![allow(dead_code)]

pub mod seat_api;

use std::time::Duration;

use seat_service::{App, SeatConfig};
use serde_json::{Value, json};
use studycafe_platform::config::Env;
use studycafe_testkit::{BrokerProcess, TestKeys};
use tokio_util::sync::CancellationToken;

/// The backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// `on_both_backends!(name, ...)`: for each `async fn name(db: Db)` in the test file, a test
/// `sqlite::name` and a test `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::support::Db::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::support::Db::Postgres).await
                }
            )+
        }
    };
}

/// A fresh, empty database of `db`'s kind; the tempdir keeps a SQLite file alive.
pub async fn fresh_database(db: Db) -> (String, Option<tempfile::TempDir>) {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("seat.db").display());
            (url, Some(dir))
        }
        Db::Postgres => (studycafe_testkit::engines::postgres_database().await, None),
    }
}

pub struct TestApp {
    pub base: String,
    /// The gRPC API, `http://127.0.0.1:port`.
    pub grpc: String,
    pub http: reqwest::Client,
    pub keys: TestKeys,
    pub broker: BrokerProcess,
    pub database_url: String,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    vars: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

/// Another replica of a [`TestApp`]: same database, broker and keys, its own HTTP port.
pub struct Replica {
    pub base: String,
    pub grpc: String,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, &[]).await
}

fn init_logs() {
    // Logs only on request (`TEST_LOG=1`): libtest does not capture output from the app's
    // own threads, so they would drown the test report.
    if std::env::var_os("TEST_LOG").is_some() {
        studycafe_platform::observability::init_tracing("seat-test");
    } else {
        studycafe_platform::observability::init_tracing_silent("seat-test");
    }
}

async fn start(
    vars: &[(String, String)],
) -> (
    String,
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let env = Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config = SeatConfig::from_env(&env).expect("config");
    let shutdown = CancellationToken::new();
    let app = App::build(config, shutdown.clone()).await.expect("build");
    let base = format!("http://{}", app.local_addr());
    let grpc = format!("http://{}", app.grpc_addr());
    (base, grpc, shutdown, tokio::spawn(app.run()))
}

pub async fn spawn_app_with(db: Db, extra: &[(&str, &str)]) -> TestApp {
    init_logs();
    let broker = BrokerProcess::start().await;
    let keys = TestKeys::new();
    let (database_url, dir) = fresh_database(db).await;
    let jwks = keys.jwks_file().display().to_string();
    let brokers = broker.brokers();
    let mut vars: Vec<(&str, &str)> = vec![
        ("SEAT_HTTP_ADDR", "127.0.0.1:0"),
        ("SEAT_GRPC_ADDR", "127.0.0.1:0"),
        ("SEAT_DATABASE_URL", &database_url),
        ("KAFKA_BROKERS", &brokers),
        ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ("AUTH_JWKS_FILE", &jwks),
        ("SEAT_TICK_MS", "100"),
    ];
    vars.extend_from_slice(extra);
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (base, grpc, shutdown, task) = start(&vars).await;
    TestApp {
        base,
        grpc,
        http: reqwest::Client::new(),
        keys,
        broker,
        database_url,
        shutdown,
        task: Some(task),
        vars,
        _dir: dir,
    }
}

/// An hour from now, on the hour (so windows of different tests never meet by accident).
pub fn in_hours(hours: i64) -> String {
    let now = chrono::Utc::now();
    let start = now + chrono::Duration::hours(hours);
    start.format("%Y-%m-%dT%H:00:00Z").to_string()
}

pub fn reservation_body(seat: &str, starts_at: &str, hours: i64) -> Value {
    json!({"seatId": seat, "startsAt": starts_at, "hours": hours, "paymentToken": "tok_approve"})
}

impl TestApp {
    /// Starts another replica on the same database (with the same settings).
    pub async fn replica(&self) -> Replica {
        let (base, grpc, shutdown, task) = start(&self.vars).await;
        Replica {
            base,
            grpc,
            shutdown,
            task: Some(task),
        }
    }

    pub async fn reserve(&self, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/api/reservations", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Reserves and returns the new reservation's id (asserting the 202).
    pub async fn reserve_id(&self, token: &str, body: &Value) -> String {
        let response = self.reserve(token, body).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["reservationId"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, token: &str, id: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/api/reservations/{id}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn status_of(&self, id: &str) -> String {
        let admin = self.keys.admin("admin");
        let body: Value = self.get(&admin, id).await.json().await.unwrap();
        body["status"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn wait_for_status(&self, id: &str, status: &str) {
        studycafe_testkit::eventually(Duration::from_secs(60), status, || async {
            (self.status_of(id).await == status).then_some(())
        })
        .await;
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Replica {
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
