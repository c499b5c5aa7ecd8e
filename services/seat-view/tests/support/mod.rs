//! `TestApp`: a seat-view service in-process on port 0 with its own fresh store (a SQLite file,
//! or a key prefix of its own on the test Redis), a real broker process and a test signing
//! key; plus builders for the events the tests publish, as the other services would.
//!
//! [`on_every_store!`] runs the same test bodies against both stores.

#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use redis::AsyncCommands as _;
use seat_view_service::{App, SeatViewConfig, domain::Generation};
use serde_json::Value;
use shared_events::{
    CancelledBy, Currency, Envelope, Event, EventMeta, Money, ReservationCancelled,
    ReservationConfirmed, ReservationExpired, ReservationPaid, ReservationRef,
    ReservationRegistered, SeatDefined, SeatReserved,
};
use studycafe_platform::config::Env;
use studycafe_testkit::{BrokerProcess, TestKeys, engines, kafka, sse::SseStream};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);

/// Which view store a test runs on.
#[derive(Debug, Clone)]
pub enum Store {
    /// A fresh SQLite file in the test's temporary directory.
    Sqlite,
    /// The test Redis (`TEST_REDIS_URL`) under a key prefix of the test's own.
    Redis { url: String, prefix: String },
}

impl Store {
    pub fn sqlite() -> Self {
        Self::Sqlite
    }

    pub fn redis() -> Self {
        Self::Redis {
            url: engines::redis_url(),
            prefix: engines::unique_name("seatview"),
        }
    }
}

/// Runs each named `async fn(Store)` as a test on SQLite (`sqlite::name`) and on Redis
/// (`redis::name`).
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::support::Store::sqlite()).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::support::Store::redis()).await
                }
            )*
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub keys: TestKeys,
    pub broker: Arc<BrokerProcess>,
    pub store: Store,
    pub generation: Generation,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    extra: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

pub async fn spawn_app(store: Store) -> TestApp {
    spawn_app_with(store, &[]).await
}

pub async fn spawn_app_with(store: Store, extra: &[(&str, &str)]) -> TestApp {
    // Logs only on request (`TEST_LOG=1`): libtest does not capture the app's threads.
    if std::env::var_os("TEST_LOG").is_some() {
        studycafe_platform::observability::init_tracing("seat-view-test");
    } else {
        studycafe_platform::observability::init_tracing_silent("seat-view-test");
    }
    let mut app = TestApp {
        base: String::new(),
        http: reqwest::Client::new(),
        keys: TestKeys::new(),
        broker: Arc::new(BrokerProcess::start().await),
        store,
        generation: Generation::FIRST,
        shutdown: CancellationToken::new(),
        task: None,
        extra: extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        dir: tempfile::tempdir().unwrap(),
    };
    app.start(false).await;
    app
}

impl TestApp {
    pub fn database_url(&self) -> String {
        match &self.store {
            Store::Sqlite => format!(
                "sqlite://{}",
                self.dir.path().join("seat-view.db").display()
            ),
            Store::Redis { url, .. } => url.clone(),
        }
    }

    /// A second instance on the same broker and store (a replica: same consumer group).
    pub async fn replica(&self) -> TestApp {
        assert!(
            matches!(self.store, Store::Redis { .. }),
            "replicas share a Redis store"
        );
        let mut app = TestApp {
            base: String::new(),
            http: reqwest::Client::new(),
            keys: TestKeys::new(),
            broker: self.broker.clone(),
            store: self.store.clone(),
            generation: Generation::FIRST,
            shutdown: CancellationToken::new(),
            task: None,
            extra: self.extra.clone(),
            dir: tempfile::tempdir().unwrap(),
        };
        app.start(false).await;
        app
    }

    /// Writes a seat the topics never defined straight into the (stopped) app's current views,
    /// as corruption or a bug would: a rebuild must not keep it.
    pub async fn plant_stray_seat(&self) {
        match &self.store {
            Store::Sqlite => {
                let db = sqlx::SqlitePool::connect(&self.database_url())
                    .await
                    .unwrap();
                sqlx::query(
                    "INSERT INTO board_seats (seat_id, zone, kind, hourly_price, enabled)
                     VALUES ('X-99', 'X', 'open-desk', 1, 1)",
                )
                .execute(&db)
                .await
                .unwrap();
                db.close().await;
            }
            Store::Redis { prefix, .. } => {
                let key = format!("{prefix}:{{g{}}}:seats", self.generation.get());
                let doc = r#"{"zone":"X","kind":"open-desk","hourly_price":1,"enabled":true}"#;
                let _: () = self.redis().await.hset(key, "X-99", doc).await.unwrap();
            }
        }
    }

    /// A connection to the test Redis (Redis stores only).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let Store::Redis { url, .. } = &self.store else {
            panic!("not a Redis store")
        };
        redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// The Redis keys matching `pattern` (SCAN, so the server is never blocked).
    pub async fn redis_keys(&self, pattern: &str) -> Vec<String> {
        let mut connection = self.redis().await;
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .unwrap();
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                return keys;
            }
        }
    }

    /// Starts the service (again) on the same database and broker.
    pub async fn start(&mut self, rebuild: bool) {
        assert!(self.task.is_none(), "already running");
        let db = self.database_url();
        let jwks = self.keys.jwks_file().display().to_string();
        let brokers = self.broker.brokers();
        let mut vars: Vec<(&str, &str)> = vec![
            ("SEAT_VIEW_HTTP_ADDR", "127.0.0.1:0"),
            ("SEAT_VIEW_DATABASE_URL", &db),
            ("SEAT_VIEW_REBUILD", if rebuild { "true" } else { "false" }),
            ("KAFKA_BROKERS", &brokers),
            ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ("AUTH_JWKS_FILE", &jwks),
        ];
        if let Store::Redis { prefix, .. } = &self.store {
            vars.push(("SEAT_VIEW_REDIS_PREFIX", prefix));
        }
        vars.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let config = SeatViewConfig::from_env(&Env::from_pairs(vars)).expect("config");
        self.shutdown = CancellationToken::new();
        let app = App::build(config, self.shutdown.clone())
            .await
            .expect("build");
        self.base = format!("http://{}", app.local_addr());
        self.generation = app.generation();
        self.task = Some(tokio::spawn(app.run()));
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Publishes `data` as `source` would, keyed by `key`, happening at `occurred_at`.
    pub async fn publish_at<T: Event>(
        &self,
        key: &str,
        occurred_at: DateTime<Utc>,
        data: T,
    ) -> Envelope<T> {
        let envelope = Envelope::wrap(EventMeta::new("test", key, "test", occurred_at), data);
        self.redeliver(key, &envelope).await;
        envelope
    }

    pub async fn publish<T: Event>(&self, key: &str, data: T) -> Envelope<T> {
        self.publish_at(key, Utc::now(), data).await
    }

    /// Sends an envelope (again), as a producer retry would.
    pub async fn redeliver<T: Event>(&self, key: &str, envelope: &Envelope<T>) {
        kafka::produce(&self.broker.brokers(), T::TOPIC, key, &envelope.to_json()).await;
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Opens the live board stream.
    pub async fn stream(&self) -> Frames {
        let response = self
            .http
            .get(format!("{}/api/board/stream", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Frames::new(response)
    }

    /// The board at `at`, as JSON.
    pub async fn board(&self, at: DateTime<Utc>) -> Value {
        let response = self
            .http
            .get(format!("{}/api/board", self.base))
            .query(&[("at", rfc3339(at))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// One seat of the board at `at` (Null if the board does not list it).
    pub async fn seat_at(&self, seat: &str, at: DateTime<Utc>) -> Value {
        let board = self.board(at).await;
        board["seats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["seatId"] == seat)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub async fn wait_for_board(&self, seat: &str, at: DateTime<Utc>, status: &str) -> Value {
        studycafe_testkit::eventually(WAIT, &format!("{seat} {status} at {at}"), || async {
            let shown = self.seat_at(seat, at).await;
            (shown["status"] == status).then_some(shown)
        })
        .await
    }

    /// The caller's reservations (asserting a 200).
    pub async fn mine(&self, token: &str, query: &str) -> Vec<Value> {
        let response = self
            .get(&format!("/api/my/reservations{query}"), Some(token))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["reservations"].as_array().unwrap().clone()
    }

    /// Waits until `token`'s reservation `id` satisfies `check`; returns it.
    pub async fn wait_for_mine(
        &self,
        token: &str,
        id: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        studycafe_testkit::eventually(WAIT, what, || async {
            self.mine(token, "")
                .await
                .into_iter()
                .find(|r| r["reservationId"] == id && check(r))
        })
        .await
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `hours` from now, on the hour (whole seconds, as the seat service books).
pub fn hours_ahead(hours: i64) -> DateTime<Utc> {
    let t = Utc::now() + chrono::Duration::hours(hours);
    DateTime::parse_from_rfc3339(&t.format("%Y-%m-%dT%H:00:00Z").to_string())
        .unwrap()
        .with_timezone(&Utc)
}

pub fn krw(amount: i64) -> Money {
    Money {
        amount,
        currency: Currency::Krw,
    }
}

pub fn seat(id: &str, enabled: bool) -> SeatDefined {
    SeatDefined {
        seat_id: id.into(),
        zone: id.split('-').next().unwrap_or("A").into(),
        kind: "open-desk".into(),
        hourly_price: krw(2000),
        enabled,
    }
}

/// A reservation as the seat service would describe it in its events.
#[derive(Debug, Clone)]
pub struct Booking {
    pub id: String,
    pub seat: String,
    pub customer: String,
    pub starts_at: DateTime<Utc>,
    pub hours: u8,
}

impl Booking {
    pub fn new(seat: &str, customer: &str, starts_at: DateTime<Utc>, hours: u8) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            seat: seat.into(),
            customer: customer.into(),
            starts_at,
            hours,
        }
    }

    pub fn ends_at(&self) -> DateTime<Utc> {
        self.starts_at + chrono::Duration::hours(i64::from(self.hours))
    }

    /// An instant inside the window.
    pub fn during(&self) -> DateTime<Utc> {
        self.starts_at + chrono::Duration::minutes(30)
    }

    pub fn reference(&self) -> ReservationRef {
        ReservationRef {
            reservation_id: self.id.clone(),
            seat_id: self.seat.clone(),
            customer_id: self.customer.clone(),
            starts_at: self.starts_at,
            ends_at: self.ends_at(),
        }
    }

    pub fn price(&self) -> Money {
        krw(2000 * i64::from(self.hours))
    }

    pub fn reserved(&self) -> SeatReserved {
        SeatReserved {
            reservation: self.reference(),
            hours: self.hours,
            price: self.price(),
            hold_expires_at: Utc::now() + chrono::Duration::minutes(10),
        }
    }

    pub fn confirmed(&self) -> ReservationConfirmed {
        ReservationConfirmed {
            reservation: self.reference(),
        }
    }

    pub fn paid(&self) -> ReservationPaid {
        ReservationPaid {
            reservation: self.reference(),
            payment_id: format!("pay-{}", self.id),
            amount: self.price(),
        }
    }

    pub fn registered(&self) -> ReservationRegistered {
        ReservationRegistered {
            reservation: self.reference(),
            registration_id: format!("reg-{}", self.id),
        }
    }

    pub fn cancelled(&self) -> ReservationCancelled {
        ReservationCancelled {
            reservation: self.reference(),
            cancelled_by: CancelledBy::Customer,
            was_paid: true,
        }
    }

    pub fn expired(&self) -> ReservationExpired {
        ReservationExpired {
            reservation: self.reference(),
            expired_in: "REQUESTED".into(),
        }
    }
}

pub use studycafe_testkit::sse::SseEvent as Frame;

/// The live board's events, read off a response body (testkit's reader, with this suite's wait).
#[derive(Debug)]
pub struct Frames(SseStream);

impl Frames {
    pub fn new(response: reqwest::Response) -> Self {
        Self(SseStream::new(response))
    }

    /// The next event (comments skipped); None when the stream ended.
    pub async fn next(&mut self) -> Option<Frame> {
        self.0.next().await
    }

    pub async fn next_within(&mut self, what: &str) -> Frame {
        self.0.next_within(WAIT, what).await
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
    body
}
