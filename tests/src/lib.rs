//! The end-to-end harness: the suite as processes, the way `studycafe up` runs it and the way
//! it fails in real life (killed, restarted, its broker gone).
//!
//! Tests live in `suite/`; each starts its own broker and services on free ports with their
//! own data directories, so they can run in parallel.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};
use studycafe_testkit::{
    BrokerProcess, ServiceProcess, TestKeys, eventually, executable, free_port, within,
};

pub mod saga;
pub mod siege;
pub mod stack;
pub mod up;

pub const WAIT: Duration = Duration::from_secs(60);

/// The seat service alone on the embedded broker, each its own process; other services are
/// played by publishing their events. For the whole suite behind the gateway see [`stack`].
#[derive(Debug)]
pub struct Suite {
    pub keys: TestKeys,
    pub broker: BrokerProcess,
    pub seat: ServiceProcess,
    pub seat_url: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Suite {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = TestKeys::new();
        let broker = BrokerProcess::start().await;
        let port = free_port();
        let env = HashMap::from([
            ("SEAT_HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("SEAT_GRPC_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "SEAT_DATABASE_URL".to_owned(),
                format!("sqlite://{}", dir.path().join("seat.db").display()),
            ),
            ("KAFKA_BROKERS".to_owned(), broker.brokers()),
            ("KAFKA_GROUP_INSTANCE_ID".to_owned(), "seat-1".to_owned()),
            (
                "AUTH_JWKS_FILE".to_owned(),
                keys.jwks_file().display().to_string(),
            ),
            ("SEAT_TICK_MS".to_owned(), "200".to_owned()),
        ]);
        let seat = ServiceProcess::start("seat", executable("seat-service"), env, dir.path());
        let suite = Self {
            keys,
            broker,
            seat,
            seat_url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            _dir: dir,
        };
        suite.wait_seat_ready().await;
        suite
    }

    pub async fn wait_seat_ready(&self) {
        let url = format!("{}/health/ready", self.seat_url);
        let ready = within(WAIT, || async {
            let response = self.http.get(&url).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "seat never became ready:\n{}",
            self.seat.log_tail(40)
        );
    }

    /// Reserves `seat` `hours_ahead` hours from now (on the hour) as `customer`; returns the
    /// HTTP status and the reservation id (when accepted).
    pub async fn reserve(
        &self,
        customer: &str,
        seat: &str,
        hours_ahead: i64,
    ) -> (u16, Option<String>) {
        let starts = (chrono::Utc::now() + chrono::Duration::hours(hours_ahead))
            .format("%Y-%m-%dT%H:00:00Z")
            .to_string();
        let response = self
            .http
            .post(format!("{}/api/reservations", self.seat_url))
            .bearer_auth(self.keys.customer(customer))
            .json(&json!({"seatId": seat, "startsAt": starts, "hours": 1, "paymentToken": "tok_approve"}))
            .send()
            .await
            .expect("seat answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body["reservationId"].as_str().map(str::to_owned))
    }

    /// Publishes `event` to its topic, keyed by its correlation id, as its owner would.
    pub async fn publish<T: shared_events::Event>(&self, event: &shared_events::Envelope<T>) {
        studycafe_testkit::kafka::produce(
            &self.broker.brokers(),
            T::TOPIC,
            &event.correlation_id,
            &event.to_json(),
        )
        .await;
    }

    pub async fn cancel(&self, customer: &str, id: &str) -> u16 {
        self.http
            .delete(format!("{}/api/reservations/{id}", self.seat_url))
            .bearer_auth(self.keys.customer(customer))
            .send()
            .await
            .expect("seat answers")
            .status()
            .as_u16()
    }

    pub async fn status_of(&self, id: &str) -> String {
        let response = self
            .http
            .get(format!("{}/api/reservations/{id}", self.seat_url))
            .bearer_auth(self.keys.admin("ops"))
            .send()
            .await;
        match response {
            Ok(r) => r
                .json::<Value>()
                .await
                .map(|b| b["status"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn wait_for_status(&self, id: &str, status: &str) {
        eventually(WAIT, &format!("{id} {status}"), || async {
            (self.status_of(id).await == status).then_some(())
        })
        .await;
    }
}
