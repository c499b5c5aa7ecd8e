//! The whole suite as processes behind the gateway: broker, identity, payment, seat,
//! registration (one or more replicas), seat-view and gateway, each its own executable on free
//! loopback ports, configured only by environment variables — the way `studycafe up` runs it.
//! Tests talk to the gateway with real tokens from identity.
//!
//! Two stacks, same tests: the embedded one (an SQLite file per service, the embedded broker
//! process per stack) by default, and with `STUDYCAFE_E2E_STACK=production` the production one
//! (PostgreSQL for seat, registration and identity, MariaDB for payment, Redis for seat-view,
//! Apache Kafka), each stack with databases of its own and its own topic prefix on the shared
//! engines that `scripts/engines/up` started.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::Duration,
};

use chrono::{DateTime, Duration as Span, Timelike as _, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use studycafe_testkit::{
    BrokerProcess, ServiceProcess, engines, eventually, executable, free_port, kafka::Record,
    sse::SseStream, within,
};
use tokio::sync::Semaphore;

use crate::WAIT;

/// Whole stacks running at once in one test binary: each is eight processes, the machine may
/// have two cores.
static STACKS: Semaphore = Semaphore::const_new(2);

pub const ADMIN: (&str, &str) = ("admin", "admin-password-e2e");
const SEAT_CLIENT: (&str, &str) = ("seat-service", "seat-secret-for-the-e2e-suite");

#[derive(Debug, Clone)]
pub struct StackOptions {
    /// `SEAT_HOLD_SECS`.
    pub hold_secs: u32,
    /// Registration processes sharing one database and one consumer group.
    pub registration_replicas: usize,
    /// Seat processes sharing one database (the gateway routes to the first).
    pub seat_replicas: usize,
    /// Seat-view processes sharing one store (the gateway routes to the first).
    pub seat_view_replicas: usize,
    /// Whether to run the notification service (Python, from its virtual environment, which
    /// its `scripts/venv` brings up to date first). The gateway always routes to its port.
    pub notification: bool,
    /// Extra variables for the gateway (they win over the stack's own, such as its generous
    /// rate limit).
    pub gateway_env: Vec<(&'static str, String)>,
    /// Extra variables for every seat replica (they win over the stack's own).
    pub seat_env: Vec<(&'static str, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            hold_secs: 300,
            registration_replicas: 1,
            seat_replicas: 1,
            seat_view_replicas: 1,
            notification: false,
            gateway_env: Vec::new(),
            seat_env: Vec::new(),
        }
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub token: String,
}

#[derive(Debug)]
pub struct Stack {
    /// The embedded broker (None on the production stack's shared Kafka).
    pub broker: Option<BrokerProcess>,
    /// Kafka's bootstrap servers and this stack's topic prefix there.
    pub brokers: String,
    pub topic_prefix: String,
    pub identity: ServiceProcess,
    pub payment: ServiceProcess,
    pub seat: ServiceProcess,
    pub registrations: Vec<ServiceProcess>,
    pub seat_view: ServiceProcess,
    /// Replicas beyond the first, when the options asked for them.
    pub more_seats: Vec<ServiceProcess>,
    pub more_seat_views: Vec<ServiceProcess>,
    /// The notification service, when the options asked for it.
    pub notification: Option<ServiceProcess>,
    pub gateway: ServiceProcess,
    /// The public entry point.
    pub url: String,
    /// Direct addresses, for what the gateway does not route (metrics, health).
    pub seat_url: String,
    pub payment_url: String,
    pub seat_view_url: String,
    pub identity_url: String,
    /// The first registration replica's.
    pub registration_url: String,
    pub notification_url: String,
    /// Every replica's direct address, the first one's first.
    pub seat_urls: Vec<String>,
    pub seat_view_urls: Vec<String>,
    /// The services' own databases, for checks that read the truth where it is kept.
    pub databases: Databases,
    pub http: reqwest::Client,
    pub admin: User,
    dir: tempfile::TempDir,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

fn vars(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn sqlite(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(format!("{name}.db")).display())
}

/// Loopback ports for a service's `replicas` processes (at least one); the first is `first`,
/// the one the gateway routes to.
fn replica_ports(first: u16, replicas: usize) -> Vec<u16> {
    (0..replicas.max(1))
        .map(|i| if i == 0 { first } else { free_port() })
        .collect()
}

/// A replica's process name in logs: `service` for the first, `service-N` for the others.
fn replica_name(service: &str, index: usize) -> String {
    match index {
        0 => service.to_owned(),
        _ => format!("{service}-{}", index + 1),
    }
}

/// Where a stack keeps its data and events.
/// The connection URLs of the services' databases (SQLite files in the stack's directory, or
/// databases of their own on the production engines).
#[derive(Debug, Clone)]
pub struct Databases {
    pub seat: String,
    pub payment: String,
    pub registration: String,
}

struct Backends {
    broker: Option<BrokerProcess>,
    brokers: String,
    topic_prefix: String,
    kafka_env: Vec<(&'static str, String)>,
    identity_db: String,
    payment_db: String,
    seat_db: String,
    registration_db: String,
    view_db: String,
    view_env: Vec<(&'static str, String)>,
}

impl Backends {
    async fn new(dir: &Path) -> Self {
        if !engines::production_stack_requested() {
            let broker = BrokerProcess::start().await;
            return Self {
                brokers: broker.brokers(),
                broker: Some(broker),
                topic_prefix: String::new(),
                kafka_env: Vec::new(),
                identity_db: sqlite(dir, "identity"),
                payment_db: sqlite(dir, "payment"),
                seat_db: sqlite(dir, "seat"),
                registration_db: sqlite(dir, "registration"),
                view_db: sqlite(dir, "seat-view"),
                view_env: Vec::new(),
            };
        }
        let topic_prefix = format!("{}.", engines::unique_name("e2e"));
        Self {
            broker: None,
            brokers: engines::kafka_brokers(),
            kafka_env: vec![
                ("KAFKA_TOPIC_PREFIX", topic_prefix.clone()),
                ("KAFKA_IDEMPOTENCE", "true".to_owned()),
            ],
            topic_prefix,
            identity_db: engines::postgres_database().await,
            payment_db: engines::mysql_database().await,
            seat_db: engines::postgres_database().await,
            registration_db: engines::postgres_database().await,
            view_db: engines::redis_url(),
            view_env: vec![("SEAT_VIEW_REDIS_PREFIX", engines::unique_name("e2e"))],
        }
    }
}

impl Stack {
    pub async fn start(options: StackOptions) -> Self {
        let permit = STACKS.acquire().await.expect("semaphore");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_owned();
        let backends = Backends::new(&path).await;
        let port = |_: &str| free_port();
        let (identity_port, payment_port, seat_port, registration_port, view_port, gateway_port) = (
            port("identity"),
            port("payment"),
            port("seat"),
            port("registration"),
            port("seat-view"),
            port("gateway"),
        );
        let notification_port = free_port();
        let at = |p: u16| format!("127.0.0.1:{p}");
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        let jwks = format!("{}/.well-known/jwks.json", url(identity_port));
        let common = |client: &str| {
            let mut env = vec![
                ("KAFKA_BROKERS", backends.brokers.clone()),
                ("AUTH_JWKS_URL", jwks.clone()),
                ("KAFKA_GROUP_INSTANCE_ID", client.to_owned()),
            ];
            env.extend(backends.kafka_env.iter().cloned());
            env
        };

        let identity = ServiceProcess::start(
            "identity",
            executable("identity-service"),
            vars(&[
                ("IDENTITY_HTTP_ADDR", at(identity_port)),
                ("IDENTITY_DATABASE_URL", backends.identity_db.clone()),
                (
                    "IDENTITY_KEYS_DIR",
                    path.join("identity-keys").display().to_string(),
                ),
                ("IDENTITY_ADMIN_USERNAME", ADMIN.0.to_owned()),
                ("IDENTITY_ADMIN_PASSWORD", ADMIN.1.to_owned()),
                (
                    "IDENTITY_CLIENTS",
                    format!("{}:{}", SEAT_CLIENT.0, SEAT_CLIENT.1),
                ),
            ]),
            &path,
        );
        let mut payment_env = vec![
            ("PAYMENT_HTTP_ADDR", at(payment_port)),
            ("PAYMENT_DATABASE_URL", backends.payment_db.clone()),
            ("PAYMENT_REFUND_TICK_MS", "200".to_owned()),
        ];
        payment_env.extend(common("payment-1"));
        let payment = ServiceProcess::start(
            "payment",
            executable("payment-service"),
            vars(&payment_env),
            &path,
        );
        let seat_ports = replica_ports(seat_port, options.seat_replicas);
        let mut seats: Vec<ServiceProcess> = seat_ports
            .iter()
            .enumerate()
            .map(|(i, &http_port)| {
                let mut env = vec![
                    ("SEAT_HTTP_ADDR", at(http_port)),
                    // Stacks run side by side: never seat's default gRPC port.
                    ("SEAT_GRPC_ADDR", "127.0.0.1:0".to_owned()),
                    ("SEAT_DATABASE_URL", backends.seat_db.clone()),
                    ("SEAT_HOLD_SECS", options.hold_secs.to_string()),
                    ("SEAT_TICK_MS", "200".to_owned()),
                    ("SEAT_PAYMENT_URL", url(payment_port)),
                    (
                        "SEAT_TOKEN_URL",
                        format!("{}/auth/token", url(identity_port)),
                    ),
                    ("SEAT_CLIENT_ID", SEAT_CLIENT.0.to_owned()),
                    ("SEAT_CLIENT_SECRET", SEAT_CLIENT.1.to_owned()),
                    ("SEAT_PAYMENT_TIMEOUT_MS", "1000".to_owned()),
                    ("SEAT_PAYMENT_BREAKER_FAILURES", "3".to_owned()),
                    ("SEAT_PAYMENT_BREAKER_OPEN_MS", "1000".to_owned()),
                    ("SEAT_PAYMENT_MAX_BACKOFF_MS", "2000".to_owned()),
                ];
                env.extend(common(&format!("seat-{}", i + 1)));
                env.extend(options.seat_env.iter().cloned());
                let name = replica_name("seat", i);
                ServiceProcess::start(&name, executable("seat-service"), vars(&env), &path)
            })
            .collect();
        let seat = seats.remove(0);
        let registrations = replica_ports(registration_port, options.registration_replicas)
            .into_iter()
            .enumerate()
            .map(|(i, http_port)| {
                let mut env = vec![
                    ("REGISTRATION_HTTP_ADDR", at(http_port)),
                    (
                        "REGISTRATION_DATABASE_URL",
                        backends.registration_db.clone(),
                    ),
                ];
                env.extend(common(&format!("registration-{}", i + 1)));
                ServiceProcess::start(
                    &format!("registration-{}", i + 1),
                    executable("registration-service"),
                    vars(&env),
                    &path,
                )
            })
            .collect();
        let view_ports = replica_ports(view_port, options.seat_view_replicas);
        let mut seat_views: Vec<ServiceProcess> = view_ports
            .iter()
            .enumerate()
            .map(|(i, &http_port)| {
                let mut env = vec![
                    ("SEAT_VIEW_HTTP_ADDR", at(http_port)),
                    ("SEAT_VIEW_DATABASE_URL", backends.view_db.clone()),
                ];
                env.extend(backends.view_env.iter().cloned());
                env.extend(common(&format!("seat-view-{}", i + 1)));
                let name = replica_name("seat-view", i);
                ServiceProcess::start(&name, executable("seat-view-service"), vars(&env), &path)
            })
            .collect();
        let seat_view = seat_views.remove(0);
        let notification = options.notification.then(|| {
            let mut env = vec![
                ("NOTIFICATION_HTTP_ADDR", at(notification_port)),
                (
                    "NOTIFICATION_DATA_DIR",
                    path.join("notification").display().to_string(),
                ),
                (
                    "NOTIFICATION_SCHEMAS_DIR",
                    repository()
                        .join("shared-events/schemas")
                        .display()
                        .to_string(),
                ),
            ];
            env.extend(common("notification-1"));
            ServiceProcess::start("notification", notification_executable(), vars(&env), &path)
        });
        let gateway = ServiceProcess::start(
            "gateway",
            executable("gateway"),
            vars(
                &[
                    vec![
                        ("GATEWAY_HTTP_ADDR", at(gateway_port)),
                        ("GATEWAY_IDENTITY_URL", url(identity_port)),
                        ("GATEWAY_SEAT_URL", url(seat_port)),
                        ("GATEWAY_REGISTRATION_URL", url(registration_port)),
                        ("GATEWAY_PAYMENT_URL", url(payment_port)),
                        ("GATEWAY_SEAT_VIEW_URL", url(view_port)),
                        ("GATEWAY_NOTIFICATION_URL", url(notification_port)),
                        ("GATEWAY_WEB_ROOT", path.join("web").display().to_string()),
                        ("GATEWAY_RATE_LIMIT_PER_SEC", "1000".to_owned()),
                        ("GATEWAY_RATE_LIMIT_BURST", "2000".to_owned()),
                        ("AUTH_JWKS_URL", jwks.clone()),
                    ],
                    options.gateway_env.clone(),
                ]
                .concat(),
            ),
            &path,
        );

        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        let databases = Databases {
            seat: backends.seat_db.clone(),
            payment: backends.payment_db.clone(),
            registration: backends.registration_db.clone(),
        };
        let mut stack = Self {
            databases,
            broker: backends.broker,
            brokers: backends.brokers,
            topic_prefix: backends.topic_prefix,
            identity,
            payment,
            seat,
            registrations,
            seat_view,
            more_seats: seats,
            more_seat_views: seat_views,
            notification,
            gateway,
            url: url(gateway_port),
            seat_url: url(seat_port),
            payment_url: url(payment_port),
            seat_view_url: url(view_port),
            identity_url: url(identity_port),
            registration_url: url(registration_port),
            notification_url: url(notification_port),
            seat_urls: seat_ports.iter().map(|&p| url(p)).collect(),
            seat_view_urls: view_ports.iter().map(|&p| url(p)).collect(),
            http,
            admin: User {
                id: String::new(),
                username: ADMIN.0.to_owned(),
                token: String::new(),
            },
            dir,
            _permit: permit,
        };
        for (name, base) in [
            ("identity", url(identity_port)),
            ("payment", url(payment_port)),
            ("seat", url(seat_port)),
            ("registration-1", url(registration_port)),
            ("seat-view", url(view_port)),
            ("gateway", url(gateway_port)),
        ] {
            stack.wait_ready(name, &base).await;
        }
        if stack.notification.is_some() {
            let base = stack.notification_url.clone();
            stack.wait_ready("notification", &base).await;
        }
        let replicas: Vec<(String, String)> = stack
            .more_seats
            .iter()
            .zip(stack.seat_urls.iter().skip(1))
            .chain(
                stack
                    .more_seat_views
                    .iter()
                    .zip(stack.seat_view_urls.iter().skip(1)),
            )
            .map(|(process, base)| (process.name().to_owned(), base.clone()))
            .collect();
        for (name, base) in replicas {
            stack.wait_ready(&name, &base).await;
        }
        stack.admin = stack.sign_in(ADMIN.0, ADMIN.1).await;
        stack
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits for `GET <base>/health/ready` to answer 200.
    pub async fn wait_ready(&self, name: &str, base: &str) {
        let url = format!("{base}/health/ready");
        let ready = within(WAIT, || async {
            let response = self.http.get(&url).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "{name} never became ready:\n{}",
            self.logs()
        );
    }

    /// Every service process of the stack.
    fn processes(&self) -> Vec<&ServiceProcess> {
        let mut all = vec![
            &self.identity,
            &self.payment,
            &self.seat,
            &self.seat_view,
            &self.gateway,
        ];
        all.extend(self.registrations.iter());
        all.extend(self.notification.iter());
        all.extend(self.more_seats.iter());
        all.extend(self.more_seat_views.iter());
        all
    }

    /// Every process's last log lines, for failure messages.
    pub fn logs(&self) -> String {
        let broker = self
            .broker
            .iter()
            .map(|b| format!("--- broker ---\n{}", b.log_tail(25)));
        broker
            .chain(
                self.processes()
                    .iter()
                    .map(|p| format!("--- {} ---\n{}", p.name(), p.log_tail(25))),
            )
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Copies every process's whole log (the broker's too) into `to`, which outlives the
    /// stack's temporary directory: a long run's failure is read after the run.
    pub fn keep_logs(&self, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        let broker = self.broker.iter().map(|b| ("broker", b.log_path()));
        for (name, log) in broker.chain(self.processes().iter().map(|p| (p.name(), p.log_path()))) {
            let _ = std::fs::copy(log, to.join(format!("{name}.log")))?;
        }
        Ok(())
    }

    /// Every log line of every process that mentions `needle` (a reservation id), for a
    /// failure message: where its saga stopped.
    pub fn log_lines_with(&self, needle: &str) -> String {
        self.processes()
            .iter()
            .flat_map(|p| {
                p.log_lines_with(needle)
                    .into_iter()
                    .map(move |line| format!("[{}] {line}", p.name()))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Signs up a new customer (through the gateway) and signs them in.
    pub async fn customer(&self, name: &str) -> User {
        let username = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let password = format!("{username}-password");
        let response = self
            .http
            .post(self.api("/api/users"))
            .json(&json!({"username": username, "password": password, "displayName": name}))
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(response.status(), 201, "sign-up of {username}");
        self.sign_in(&username, &password).await
    }

    /// A token for seat's machine client (`client_credentials`, role `service`): what seat
    /// sends to payment.
    pub async fn service_token(&self) -> String {
        let response = self
            .http
            .post(self.api("/auth/token"))
            .basic_auth(SEAT_CLIENT.0, Some(SEAT_CLIENT.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("gateway answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "client_credentials: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// `POST /auth/token` with the password grant, whatever it answers.
    pub async fn password_grant(&self, username: &str, password: &str) -> reqwest::Response {
        self.http
            .post(self.api("/auth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .expect("gateway answers")
    }

    /// `POST /auth/token` with the password grant, which must succeed.
    pub async fn sign_in(&self, username: &str, password: &str) -> User {
        let response = self.password_grant(username, password).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status,
            200,
            "sign-in of {username}: {body}\n{}",
            self.logs()
        );
        let token = body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        User {
            id: subject_of(&token),
            username: username.to_owned(),
            token,
        }
    }

    /// `POST /api/reservations` as `user` through the gateway; the raw answer.
    pub async fn reserve(
        &self,
        user: &User,
        seat: &str,
        window: &Window,
        payment_token: &str,
    ) -> (StatusCode, Value) {
        self.reserve_via(&self.url, user, seat, window, payment_token)
            .await
    }

    /// `POST /api/reservations` as `user` at `base` (the gateway, or one seat replica).
    pub async fn reserve_via(
        &self,
        base: &str,
        user: &User,
        seat: &str,
        window: &Window,
        payment_token: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{base}/api/reservations"))
            .bearer_auth(&user.token)
            .json(&json!({
                "seatId": seat,
                "startsAt": window.starts_at.to_rfc3339(),
                "hours": window.hours,
                "paymentToken": payment_token,
            }))
            .send()
            .await
            .expect("gateway answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Reserves and returns the reservation id, asserting a 202.
    pub async fn reserve_ok(
        &self,
        user: &User,
        seat: &str,
        window: &Window,
        token: &str,
    ) -> String {
        let (status, body) = self.reserve(user, seat, window, token).await;
        assert_eq!(status, 202, "reserve {seat}: {body}");
        body["reservationId"]
            .as_str()
            .expect("reservationId")
            .to_owned()
    }

    pub async fn get(&self, user: &User, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.api(path))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("gateway answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        user: Option<&User>,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.api(path));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The authoritative status (seat, through the gateway, as admin).
    pub async fn status(&self, id: &str) -> String {
        let (_, body) = self
            .get(&self.admin, &format!("/api/reservations/{id}"))
            .await;
        body["status"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn wait_for_status(&self, id: &str, status: &str) {
        let reached = within(WAIT, || async {
            (self.status(id).await == status).then_some(())
        })
        .await;
        if reached.is_none() {
            panic!(
                "{id} never reached {status} (is {}):\n{}",
                self.status(id).await,
                self.logs()
            );
        }
    }

    /// Sets the cafe's auto-confirm policy as admin.
    pub async fn auto_confirm(&self, on: bool) {
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                Some(&self.admin),
                "/api/admin/policy",
                Some(json!({"autoConfirm": on})),
            )
            .await;
        assert_eq!(status, 200, "policy: {body}");
    }

    pub async fn confirm(&self, id: &str) -> (StatusCode, Value) {
        self.confirm_as(&self.admin, id).await
    }

    pub async fn confirm_as(&self, user: &User, id: &str) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::POST,
            Some(user),
            &format!("/api/admin/bookings/{id}/confirm"),
            None,
        )
        .await
    }

    /// The board's status of `seat` at `at` (seat-view through the gateway, anonymous).
    pub async fn board_status(&self, seat: &str, at: DateTime<Utc>) -> String {
        self.board_status_via(&self.url, seat, at).await
    }

    /// The board's status of `seat` at `at` as the seat-view at `base` answers.
    pub async fn board_status_via(&self, base: &str, seat: &str, at: DateTime<Utc>) -> String {
        self.board_via(base, at)
            .await
            .remove(seat)
            .unwrap_or_default()
    }

    /// Every seat's status on the board at `at`, through the gateway (empty when unanswered).
    pub async fn board(&self, at: DateTime<Utc>) -> BTreeMap<String, String> {
        self.board_via(&self.url, at).await
    }

    /// Every seat's status on the board at `at` as the seat-view at `base` answers.
    pub async fn board_via(&self, base: &str, at: DateTime<Utc>) -> BTreeMap<String, String> {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let Ok(response) = self
            .http
            .get(format!("{base}/api/board"))
            .query(&[("at", at.as_str())])
            .send()
            .await
        else {
            return BTreeMap::new();
        };
        let body: Value = response.json().await.unwrap_or(Value::Null);
        body["seats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                Some((
                    s["seatId"].as_str()?.to_owned(),
                    s["status"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    pub async fn wait_for_board(&self, seat: &str, at: DateTime<Utc>, status: &str) {
        self.wait_for_board_via(&self.url, seat, at, status).await;
    }

    /// Waits until the seat-view at `base` shows `seat` at `at` as `status`.
    pub async fn wait_for_board_via(
        &self,
        base: &str,
        seat: &str,
        at: DateTime<Utc>,
        status: &str,
    ) {
        let reached = within(WAIT, || async {
            (self.board_status_via(base, seat, at).await == status).then_some(())
        })
        .await;
        if reached.is_none() {
            panic!(
                "{seat} at {at} never showed {status} on the board at {base} (shows {:?}):\n{}",
                self.board_status_via(base, seat, at).await,
                self.logs()
            );
        }
    }

    /// Opens `GET <base>/api/board/stream` (a seat-view replica's live board).
    pub async fn board_stream(&self, base: &str) -> SseStream {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!("{base}/api/board/stream"))
            .send()
            .await
            .expect("seat-view answers");
        assert_eq!(response.status(), 200, "board stream at {base}");
        SseStream::new(response)
    }

    /// A Prometheus metric line's value from `base`'s `/metrics`.
    pub async fn metric(&self, base: &str, series: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .and_then(|line| line[series.len()..].trim().parse().ok())
    }

    /// Waits until each of `replicas` holds partitions of its consumer group (its latest
    /// `partitions assigned` log line names some), so work is shared from the first event.
    pub async fn wait_for_partitions(&self, replicas: &[ServiceProcess]) {
        for replica in replicas {
            self.eventually(
                &format!("{} assigned partitions", replica.name()),
                || async {
                    let log = replica.log_tail(10_000);
                    let latest = log
                        .lines()
                        .rev()
                        .find(|l| l.contains("partitions assigned"))?;
                    (!latest.contains("partitions=none")).then_some(())
                },
            )
            .await;
        }
    }

    /// Everything on `topic` now (duplicates included).
    pub async fn events_of(&self, topic: &str) -> Vec<Record> {
        let topic = format!("{}{topic}", self.topic_prefix);
        studycafe_testkit::kafka::read_all(&self.brokers, &topic, WAIT).await
    }

    /// Everything on `topic` once `check` holds for it.
    pub async fn events_when(
        &self,
        topic: &str,
        what: &str,
        check: impl Fn(&[Record]) -> bool,
    ) -> Vec<Record> {
        let check = &check;
        self.eventually(what, || async move {
            let records = self.events_of(topic).await;
            check(&records).then_some(records)
        })
        .await
    }

    /// Waits until `check` holds, with the stack's logs on failure.
    pub async fn eventually<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        match within(WAIT, check).await {
            Some(value) => value,
            None => panic!("{what}: not within {WAIT:?}\n{}", self.logs()),
        }
    }
}

/// The repository's root (this crate is its `tests/`).
pub fn repository() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the repository")
        .to_owned()
}

/// The notification service's console script in its virtual environment, created or brought
/// up to date from its lock file first (once per test binary; a no-op when it is current).
pub fn notification_executable() -> std::path::PathBuf {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let folder = repository().join("services/notification");
    READY.get_or_init(|| {
        let status = std::process::Command::new(folder.join("scripts/venv"))
            .arg("--quiet")
            .status()
            .expect("running services/notification/scripts/venv");
        assert!(
            status.success(),
            "services/notification/scripts/venv failed"
        );
    });
    folder.join(".venv/bin/notification-service")
}

/// Events of `records` whose key is `key`, by type, in order.
pub fn types_for(records: &[Record], key: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.key.as_deref() == Some(key))
        .map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Distinct events (by envelope id) of `records` with key `key` and type `kind`.
pub fn count_distinct(records: &[Record], key: &str, kind: &str) -> usize {
    records
        .iter()
        .filter(|r| r.key.as_deref() == Some(key))
        .map(|r| r.json())
        .filter(|e| e["type"] == kind)
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// A reservation window: whole hours, in the future.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub starts_at: DateTime<Utc>,
    pub hours: u8,
}

impl Window {
    /// `hours` long, starting on the hour `hours_ahead` hours from now.
    pub fn ahead(hours_ahead: i64, hours: u8) -> Self {
        let next_hour = (Utc::now() + Span::hours(1))
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .expect("on the hour");
        Self {
            starts_at: next_hour + Span::hours(hours_ahead),
            hours,
        }
    }

    pub fn ends_at(&self) -> DateTime<Utc> {
        self.starts_at + Span::hours(i64::from(self.hours))
    }

    /// An instant inside the window.
    pub fn during(&self) -> DateTime<Utc> {
        self.starts_at + Span::minutes(30)
    }

    /// An instant after it.
    pub fn after(&self) -> DateTime<Utc> {
        self.ends_at() + Span::minutes(30)
    }
}

/// The `sub` claim of a JWT (no verification: the services verify).
fn subject_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["sub"].as_str().expect("sub").to_owned()
}

/// Waits for a condition without the stack (plain `eventually`).
pub async fn wait<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(WAIT, what, check).await
}
