//! `spawn_app`: a payment service on port 0 with its own fresh database, a real embedded
//! broker, a test signing key, and a card simulator the test can see into (charges made, calls
//! received) and take down (its outage switch).
//!
//! Store-related tests run on every backend: write the body as `async fn name(backend:
//! Backend)` and list it in [`on_every_backend!`], which makes a `sqlite::name` and a
//! `mysql::name` test of it. The MySQL ones need `TEST_MYSQL_URL` (`eval
//! "$(scripts/engines/up mariadb)"`); each gets a fresh database of its own.

#![allow(dead_code, unused_macros)]

/// One `#[tokio::test]` per backend for each listed `async fn(Backend)`.
macro_rules! on_every_backend {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::support::Backend::Sqlite).await;
                }
            )+
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::support::Backend::MySql).await;
                }
            )+
        }
    };
}

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use payment_service::{App, PaymentConfig, outbound::simulator::CardSimulator};
use serde_json::{Value, json};
use shared_events::{Envelope, EventMeta, ReservationRef, topics};
use studycafe_platform::config::Env;
use studycafe_testkit::{BrokerProcess, TestKeys, eventually, kafka};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);

/// Where the payment store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database on the `TEST_MYSQL_URL` server (MariaDB).
    MySql,
}

/// Where a test's database is, to look into it.
#[derive(Debug, Clone)]
enum DbHandle {
    Sqlite(PathBuf),
    MySql(String),
}

impl Backend {
    /// A fresh database for one test: `(PAYMENT_DATABASE_URL, handle)`.
    async fn fresh_database(self, dir: &std::path::Path) -> (String, DbHandle) {
        match self {
            Self::Sqlite => {
                let path = dir.join("payment.db");
                (
                    format!("sqlite://{}", path.display()),
                    DbHandle::Sqlite(path),
                )
            }
            Self::MySql => {
                let url = studycafe_testkit::engines::mysql_database().await;
                (url.clone(), DbHandle::MySql(url))
            }
        }
    }
}

/// Another instance of the service on the same database and broker (a replica).
pub struct Replica {
    pub base: String,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub keys: TestKeys,
    pub broker: BrokerProcess,
    pub simulator: CardSimulator,
    pub outage: Arc<AtomicBool>,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    config: PaymentConfig,
    db: DbHandle,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Sqlite).await
}

pub async fn spawn_app_on(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// An app on `backend` with `extra` settings on top of the tests' usual ones.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    // Logs only on request (`TEST_LOG=1`): libtest does not capture output from the app's
    // own threads, so they would drown the test report.
    if std::env::var_os("TEST_LOG").is_some() {
        studycafe_platform::observability::init_tracing("payment-test");
    } else {
        studycafe_platform::observability::init_tracing_silent("payment-test");
    }
    let broker = BrokerProcess::start().await;
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().unwrap();
    let (db_url, db) = backend.fresh_database(dir.path()).await;
    let jwks = keys.jwks_file().display().to_string();
    let brokers = broker.brokers();
    let mut vars: Vec<(&str, &str)> = vec![
        ("PAYMENT_HTTP_ADDR", "127.0.0.1:0"),
        ("PAYMENT_DATABASE_URL", &db_url),
        ("PAYMENT_REFUND_TICK_MS", "100"),
        ("KAFKA_BROKERS", &brokers),
        ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ("AUTH_JWKS_FILE", &jwks),
    ];
    vars.extend_from_slice(extra);
    let config = PaymentConfig::from_env(&Env::from_pairs(vars)).expect("config");
    let outage = Arc::new(AtomicBool::new(false));
    let simulator = CardSimulator::with_outage(outage.clone());
    let shutdown = CancellationToken::new();
    let app = App::build_with_provider(config.clone(), shutdown.clone(), simulator.clone())
        .await
        .expect("build");
    let base = format!("http://{}", app.local_addr());
    let task = tokio::spawn(app.run());
    TestApp {
        config,
        base,
        http: reqwest::Client::new(),
        keys,
        broker,
        simulator,
        outage,
        shutdown,
        task: Some(task),
        db,
        _dir: dir,
    }
}

/// seat's request body for `reservation`.
pub fn pay_body(reservation: &str, customer: &str, amount: i64, token: &str) -> Value {
    json!({
        "reservationId": reservation,
        "customerId": customer,
        "amount": {"amount": amount, "currency": "KRW"},
        "paymentToken": token,
    })
}

pub fn new_reservation() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl TestApp {
    /// The token seat's machine client gets from identity.
    pub fn seat_token(&self) -> String {
        self.keys.token("seat-service", &["service"])
    }

    pub async fn pay_as(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        self.pay_at(&self.base, token, body).await
    }

    /// Pays through the instance at `base` (this one or a replica).
    pub async fn pay_at(&self, base: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{base}/internal/payments"))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Pays as seat does.
    pub async fn pay(&self, body: &Value) -> reqwest::Response {
        self.pay_as(Some(&self.seat_token()), body).await
    }

    /// Pays as seat does and returns the 200 answer.
    pub async fn pay_ok(&self, body: &Value) -> Value {
        let response = self.pay(body).await;
        assert_eq!(response.status(), 200, "pay");
        response.json().await.unwrap()
    }

    pub async fn payments(&self, token: Option<&str>, query: &str) -> reqwest::Response {
        let mut request = self.http.get(format!("{}/api/payments{query}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// The reservation's payments as an admin sees them (`Null` when nothing is known).
    pub async fn payments_of(&self, reservation: &str) -> Value {
        let admin = self.keys.admin("root");
        let response = self
            .payments(Some(&admin), &format!("?reservationId={reservation}"))
            .await;
        if response.status() == 404 {
            return Value::Null;
        }
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Waits until the reservation's payment has a COMPLETED refund; returns its refunds.
    pub async fn wait_for_refund(&self, reservation: &str) -> Vec<Value> {
        eventually(WAIT, "a completed refund", || async {
            let view = self.payments_of(reservation).await;
            let refunds = view["payments"][0]["refunds"].as_array()?.clone();
            refunds
                .iter()
                .any(|r| r["status"] == "COMPLETED")
                .then_some(refunds)
        })
        .await
    }

    /// One integer (or nothing) from the service's database, read on a connection of its own.
    pub async fn scalar(&self, sql: &str, binds: &[&str]) -> Option<i64> {
        use sqlx::Connection as _;
        match &self.db {
            DbHandle::Sqlite(path) => {
                let url = format!("sqlite://{}?mode=ro", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let mut query = sqlx::query_scalar(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                let value = query.fetch_optional(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                value
            }
            DbHandle::MySql(url) => {
                let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
                let mut query = sqlx::query_scalar(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                let value = query.fetch_optional(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                value
            }
        }
    }

    /// Runs one statement on the service's database behind its back (as an operator or a bug
    /// might): the rows it touched, or the database's refusal.
    pub async fn execute(&self, sql: &str, binds: &[&str]) -> Result<u64, String> {
        use sqlx::Connection as _;
        match &self.db {
            DbHandle::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                let done = query.execute(&mut conn).await;
                conn.close().await.unwrap();
                done.map(|r| r.rows_affected()).map_err(|e| e.to_string())
            }
            DbHandle::MySql(url) => {
                let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                let done = query.execute(&mut conn).await;
                conn.close().await.unwrap();
                done.map(|r| r.rows_affected()).map_err(|e| e.to_string())
            }
        }
    }

    /// Waits until the service's consumer has applied the event `event_id` (it is in the
    /// inbox): every event before it on its partition has been handled too.
    pub async fn wait_consumed(&self, event_id: uuid::Uuid) {
        let id = event_id.to_string();
        eventually(WAIT, "the event consumed", || async {
            self.scalar(
                "SELECT 1 FROM messaging_inbox WHERE consumer = 'payment' AND event_id = ?",
                &[&id],
            )
            .await
            .map(|_| ())
        })
        .await;
    }

    /// How many unanswered provider calls the reservation's refund has had.
    pub async fn refund_attempts(&self, reservation: &str) -> Option<i64> {
        self.scalar(
            "SELECT attempts FROM refunds WHERE reservation_id = ?",
            &[reservation],
        )
        .await
    }

    /// Waits until the outbox has published everything written so far.
    pub async fn wait_outbox_drained(&self) {
        eventually(WAIT, "the outbox drained", || async {
            let pending = self
                .scalar(
                    "SELECT COUNT(*) FROM messaging_outbox WHERE published_at IS NULL",
                    &[],
                )
                .await;
            (pending == Some(0)).then_some(())
        })
        .await;
    }

    /// Every event on the payment topic about `reservation` (after the outbox drained), as
    /// `(type, envelope)`.
    pub async fn payment_events(&self, reservation: &str) -> Vec<(String, Value)> {
        self.wait_outbox_drained().await;
        kafka::read_all(&self.broker.brokers(), topics::PAYMENT, WAIT)
            .await
            .iter()
            .filter(|r| r.key.as_deref() == Some(reservation))
            .map(|r| {
                let event = r.json();
                (event["type"].as_str().unwrap_or_default().to_owned(), event)
            })
            .collect()
    }

    /// Publishes a seat event about `reservation` on the seat topic, as seat would.
    pub async fn publish<T: shared_events::Event>(
        &self,
        reservation: &str,
        data: T,
    ) -> Envelope<T> {
        let envelope = Envelope::wrap(
            EventMeta::new("seat", reservation, "test", Utc::now()),
            data,
        );
        self.publish_again(reservation, &envelope).await;
        envelope
    }

    /// Delivers the same envelope once more (a producer retry).
    pub async fn publish_again<T: shared_events::Event>(
        &self,
        reservation: &str,
        envelope: &Envelope<T>,
    ) {
        kafka::produce(
            &self.broker.brokers(),
            topics::SEAT,
            reservation,
            &envelope.to_json(),
        )
        .await;
    }

    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }

    /// Stops the service and starts it again on the same database and broker (on a new
    /// port). The card processor, being someone else's, keeps running: same simulator.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.shutdown = CancellationToken::new();
        let app = App::build_with_provider(
            self.config.clone(),
            self.shutdown.clone(),
            self.simulator.clone(),
        )
        .await
        .expect("rebuild");
        self.base = format!("http://{}", app.local_addr());
        self.task = Some(tokio::spawn(app.run()));
    }

    /// Starts a second instance of the service on the same database and broker, charging
    /// through the same card processor.
    pub async fn spawn_replica(&self) -> Replica {
        let shutdown = CancellationToken::new();
        let app = App::build_with_provider(
            self.config.clone(),
            shutdown.clone(),
            self.simulator.clone(),
        )
        .await
        .expect("build replica");
        Replica {
            base: format!("http://{}", app.local_addr()),
            shutdown,
            task: Some(tokio::spawn(app.run())),
        }
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// What seat's events say about a reservation.
pub fn reservation_ref(reservation: &str, customer: &str) -> ReservationRef {
    let starts_at = Utc::now() + chrono::Duration::hours(1);
    ReservationRef {
        reservation_id: reservation.to_owned(),
        seat_id: "A-01".into(),
        customer_id: customer.to_owned(),
        starts_at,
        ends_at: starts_at + chrono::Duration::hours(2),
    }
}

/// How many distinct events of `event_type` are among `events`.
pub fn count(events: &[(String, Value)], event_type: &str) -> usize {
    let mut ids: Vec<&str> = events
        .iter()
        .filter(|(t, _)| t == event_type)
        .filter_map(|(_, e)| e["id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
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
