//! A registration service on port 0 with its own fresh database, a real embedded broker and a
//! test signing key; helpers to publish the other contexts' events and to read what the
//! service published.
//!
//! Every test runs on every store backend: write the body as `async fn name(backend:
//! Backend)` and list it in [`on_every_backend!`], which makes a `sqlite::name` and a
//! `postgres::name` test of it. The PostgreSQL ones need `TEST_POSTGRES_URL` (`eval
//! "$(scripts/engines/up postgres)"`); each gets a fresh database of its own.

#![allow(dead_code, unused_macros)]

/// One multi-threaded `#[tokio::test]` per backend for each listed `async fn(Backend)`.
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
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::support::Backend::Postgres).await;
                }
            )+
        }
    };
}

use std::time::Duration;

use chrono::{DateTime, Utc};
use registration_service::{App, RegistrationConfig};
use serde_json::Value;
use shared_events::{
    CancelledBy, Currency, Envelope, EventMeta, Money, PaymentCompleted, ReservationCancelled,
    ReservationExpired, ReservationRef, SeatReserved, topics,
};
use studycafe_messaging::KafkaConfig;
use studycafe_platform::config::Env;
use studycafe_testkit::{BrokerProcess, TestKeys, kafka};

use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);

/// Where the bookings live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database on the `TEST_POSTGRES_URL` server.
    Postgres,
}

impl Backend {
    /// The URL of a new, empty database of this backend (a file in `dir` for SQLite).
    pub async fn fresh_database(self, dir: &std::path::Path) -> String {
        match self {
            Self::Sqlite => format!("sqlite://{}", dir.join("registration.db").display()),
            Self::Postgres => studycafe_testkit::engines::postgres_database().await,
        }
    }
}

/// What the instances of one test share: the broker, the signing key, the database.
pub struct TestEnv {
    pub broker: BrokerProcess,
    pub keys: TestKeys,
    pub db_url: String,
    _dir: tempfile::TempDir,
}

/// One running registration service.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestEnv {
    /// A broker, keys and a fresh SQLite database.
    pub async fn start() -> Self {
        Self::start_on(Backend::Sqlite).await
    }

    /// A broker, keys and a fresh database on `backend`.
    pub async fn start_on(backend: Backend) -> Self {
        // Logs only on request (`TEST_LOG=1`): libtest does not capture output from the app's
        // own threads, so they would drown the test report.
        if std::env::var_os("TEST_LOG").is_some() {
            studycafe_platform::observability::init_tracing("registration-test");
        } else {
            studycafe_platform::observability::init_tracing_silent("registration-test");
        }
        let broker = BrokerProcess::start().await;
        // Topics exist before the test publishes to them (the service creates them too, but
        // concurrently with the test's first message).
        let mut wanted: Vec<String> = topics::ALL.iter().map(|t| (*t).to_owned()).collect();
        wanted.push(topics::dead_letter("registration"));
        studycafe_messaging::topics::ensure_topics(
            &KafkaConfig::new(broker.brokers(), "registration-test"),
            &wanted,
        )
        .await
        .expect("topics");
        let dir = tempfile::tempdir().unwrap();
        let db_url = backend.fresh_database(dir.path()).await;
        Self {
            broker,
            keys: TestKeys::new(),
            db_url,
            _dir: dir,
        }
    }

    pub fn brokers(&self) -> String {
        self.broker.brokers()
    }

    pub fn config(&self, extra: &[(&str, &str)]) -> RegistrationConfig {
        let jwks = self.keys.jwks_file().display().to_string();
        let brokers = self.brokers();
        let mut vars: Vec<(&str, &str)> = vec![
            ("REGISTRATION_HTTP_ADDR", "127.0.0.1:0"),
            ("REGISTRATION_DATABASE_URL", &self.db_url),
            ("KAFKA_BROKERS", &brokers),
            ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ("AUTH_JWKS_FILE", &jwks),
        ];
        vars.extend_from_slice(extra);
        RegistrationConfig::from_env(&Env::from_pairs(vars)).expect("config")
    }

    pub async fn spawn(&self, extra: &[(&str, &str)]) -> TestApp {
        let shutdown = CancellationToken::new();
        let app = App::build(self.config(extra), shutdown.clone())
            .await
            .expect("build");
        TestApp::run(app, shutdown)
    }

    pub fn admin(&self) -> String {
        self.keys.admin("root")
    }

    /// Publishes `data` as the seat or payment service would: in an envelope, keyed by the
    /// reservation id.
    pub async fn publish<T: shared_events::Event>(
        &self,
        reservation_id: &str,
        data: T,
    ) -> Envelope<T> {
        let envelope = Envelope::wrap(
            EventMeta::new("test", reservation_id, "test", Utc::now()),
            data,
        );
        self.publish_again(&envelope).await;
        envelope
    }

    /// Sends an envelope (again): a redelivery as the relay or a producer retry makes it.
    pub async fn publish_again<T: shared_events::Event>(&self, envelope: &Envelope<T>) {
        kafka::produce(
            &self.brokers(),
            T::TOPIC,
            &envelope.correlation_id,
            &envelope.to_json(),
        )
        .await;
    }

    /// What the service published on its topic about `reservation_id`, once at least `want`
    /// such events are there.
    pub async fn published_about(&self, reservation_id: &str, want: usize) -> Vec<Value> {
        studycafe_testkit::eventually(WAIT, "registration events", || async {
            let mine: Vec<Value> = self
                .published()
                .await
                .into_iter()
                .filter(|e| e["correlationId"] == reservation_id)
                .collect();
            (mine.len() >= want).then_some(mine)
        })
        .await
    }

    /// Everything on the registration topic right now.
    pub async fn published(&self) -> Vec<Value> {
        read_all(&self.brokers(), topics::REGISTRATION).await
    }
}

/// Every message on `topic` up to its current end, read without a consumer group (no
/// rebalance to wait for): partitions are assigned directly and read to their high watermark.
pub async fn read_all(brokers: &str, topic: &str) -> Vec<Value> {
    use rdkafka::{
        ClientConfig, Message as _, Offset, TopicPartitionList,
        consumer::{BaseConsumer, Consumer as _},
    };
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("log_level", "0")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        let mut ends = std::collections::HashMap::new();
        for partition in 0..topics::PARTITIONS {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            if high > low {
                assignment
                    .add_partition_offset(&topic, partition, Offset::Offset(low))
                    .expect("assign");
                ends.insert(partition, high);
            }
        }
        let mut messages = Vec::new();
        if ends.is_empty() {
            return messages;
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ends.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "reading {topic} timed out"
            );
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let partition = message.partition();
            messages.push(
                serde_json::from_slice(message.payload().unwrap_or_default())
                    .unwrap_or(Value::Null),
            );
            if ends
                .get(&partition)
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                ends.remove(&partition);
            }
        }
        messages
    })
    .await
    .unwrap()
}

/// Events of `event_type` in `events`.
pub fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == event_type).collect()
}

impl TestApp {
    pub fn run(app: App, shutdown: CancellationToken) -> Self {
        let base = format!("http://{}", app.local_addr());
        let task = tokio::spawn(app.run());
        Self {
            base,
            http: reqwest::Client::new(),
            shutdown,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, token: &str, path: &str, body: Option<Value>) -> reqwest::Response {
        let request = self.http.post(self.url(path)).bearer_auth(token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap()
    }

    pub async fn booking(&self, token: &str, id: &str) -> Option<Value> {
        let response = self.get(token, &format!("/api/admin/bookings/{id}")).await;
        match response.status().as_u16() {
            200 => Some(response.json().await.unwrap()),
            404 => None,
            other => panic!("GET booking: {other}"),
        }
    }

    /// Waits until the booking exists with `status`; returns it.
    pub async fn wait_for_status(&self, token: &str, id: &str, status: &str) -> Value {
        studycafe_testkit::eventually(WAIT, status, || async {
            self.booking(token, id)
                .await
                .filter(|b| b["status"] == status)
        })
        .await
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

pub fn new_reservation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn krw(amount: i64) -> Money {
    Money {
        amount,
        currency: Currency::Krw,
    }
}

/// The window of every test reservation: tomorrow, 2 hours.
pub fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    let starts = "2030-01-02T09:00:00Z".parse::<DateTime<Utc>>().unwrap();
    (starts, starts + chrono::Duration::hours(2))
}

pub fn reference(id: &str, seat: &str) -> ReservationRef {
    let (starts_at, ends_at) = window();
    ReservationRef {
        reservation_id: id.to_owned(),
        seat_id: seat.to_owned(),
        customer_id: "alice".to_owned(),
        starts_at,
        ends_at,
    }
}

pub fn seat_reserved(id: &str, seat: &str) -> SeatReserved {
    SeatReserved {
        reservation: reference(id, seat),
        hours: 2,
        price: krw(6000),
        hold_expires_at: Utc::now() + chrono::Duration::minutes(10),
    }
}

pub fn payment_completed(id: &str) -> PaymentCompleted {
    PaymentCompleted {
        reservation_id: id.to_owned(),
        payment_id: format!("pay-{id}"),
        amount: krw(6000),
    }
}

pub fn reservation_cancelled(id: &str, seat: &str) -> ReservationCancelled {
    ReservationCancelled {
        reservation: reference(id, seat),
        cancelled_by: CancelledBy::Customer,
        was_paid: true,
    }
}

pub fn reservation_expired(id: &str, seat: &str) -> ReservationExpired {
    ReservationExpired {
        reservation: reference(id, seat),
        expired_in: "REQUESTED".to_owned(),
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
