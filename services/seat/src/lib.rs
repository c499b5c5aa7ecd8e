//! The seat service: the core domain of studycafe.
//!
//! It owns the seat catalogue and the `Reservation` aggregate, accepts reservations whatever
//! the state of the rest of the suite, and drives each reservation through the saga as news
//! arrives from registration and payment.
//!
//! Layout (hexagonal): [`domain`] is the model and its ports; [`inbound`] holds the adapters
//! that drive it (HTTP, Kafka consumer, timers); [`outbound`] the adapters it drives (SQLite or
//! PostgreSQL store with outbox, published-language mapping, catalogue file). [`App`] wires
//! them, once, generic over the store `SEAT_DATABASE_URL` selects.

pub mod config;
pub mod domain;
pub mod inbound;
pub mod outbound;

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use anyhow::Context as _;
use studycafe_messaging::{
    ConsumerSettings, EventConsumer, OutboxRelay, OutboxSignal, RelaySettings,
};
use studycafe_platform::{
    auth::JwtVerifier, breaker::CircuitBreaker, client_credentials::ServiceToken, detach::Detached,
    http as web, liveness::Heartbeats, shutdown,
};
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub use config::{Backend, SeatConfig};

use crate::{
    domain::{ports::SystemClock, service::ReservationService},
    inbound::{events::SagaReactions, http::ApiState, timers::Timers},
    outbound::{
        StoreAdapter, catalogue, payments::HttpPayments, postgres::PgStore, sqlite::SqliteStore,
    },
};

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A built, bound, not yet running seat service.
pub struct App {
    addr: SocketAddr,
    run: RunFuture,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("addr", &self.addr).finish()
    }
}

impl App {
    /// Opens the database, syncs the catalogue and binds the HTTP port. Nothing here needs
    /// the broker: the service starts, and takes reservations, while Kafka is down.
    pub async fn build(config: SeatConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let signal = OutboxSignal::new();
        match config.database {
            Backend::Sqlite => {
                let store = SqliteStore::open(&config.database_url, signal.clone())
                    .await
                    .with_context(|| {
                        format!("opening SEAT_DATABASE_URL={}", config.database_url)
                    })?;
                Self::build_with(store, signal, config, shutdown).await
            }
            Backend::Postgres => {
                let store = PgStore::open(
                    &config.database_url,
                    config.database_max_connections,
                    signal.clone(),
                )
                .await
                // The URL may carry a password: name the variable, not its value.
                .context("opening the PostgreSQL database of SEAT_DATABASE_URL")?;
                Self::build_with(store, signal, config, shutdown).await
            }
        }
    }

    /// The wiring, whatever the store: `signal` is the one the store notifies on commits.
    pub async fn build_with<S: StoreAdapter>(
        store: S,
        signal: OutboxSignal,
        config: SeatConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let seats = match &config.catalogue_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading SEAT_CATALOGUE_FILE={}", path.display()))?;
                catalogue::parse(&text)
                    .with_context(|| format!("SEAT_CATALOGUE_FILE={}", path.display()))?
            }
            None => catalogue::parse(catalogue::DEFAULT).context("the built-in catalogue")?,
        };
        let changed = store.sync_catalogue(&seats).await?;
        tracing::info!(seats = seats.len(), changed, "seat catalogue loaded");

        let service =
            ReservationService::new(store.clone(), config.policy.clone(), Arc::new(SystemClock));
        let verifier = JwtVerifier::new(config.auth.clone());
        let payment_due = Arc::new(Notify::new());

        let ready_store = store.clone();
        let readiness: web::ReadinessCheck = Arc::new(move || {
            let store = ready_store.clone();
            Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
        });
        let heartbeats = Heartbeats::new(config.liveness);
        let detached = Detached::new(config.writes_in_flight);
        let router = web::with_standard_layers(
            inbound::http::routes(
                ApiState {
                    service: service.clone(),
                    verifier,
                },
                &detached,
            )
            .merge(web::ops_routes_with(readiness, heartbeats.clone())),
        );
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding SEAT_HTTP_ADDR={}", config.http_addr))?;
        let addr = listener.local_addr()?;

        let relay = OutboxRelay::new(
            store.outbox(),
            config.kafka.clone(),
            signal,
            RelaySettings::default(),
        )
        .with_heartbeats(&heartbeats);
        let consumer = EventConsumer::new(
            config.kafka.clone(),
            ConsumerSettings::new(inbound::events::CONSUMER, inbound::events::TOPICS),
            SagaReactions {
                service: service.clone(),
                payment_due: payment_due.clone(),
            },
        )
        .with_heartbeats(&heartbeats);
        let payments = match &config.payment {
            Some(payment) => {
                let http = reqwest::Client::builder()
                    .connect_timeout(payment.attempt_timeout.min(Duration::from_secs(1)))
                    .build()
                    .context("building the payment HTTP client")?;
                Some(HttpPayments::new(
                    &payment.base_url,
                    ServiceToken::new(payment.credentials.clone(), http.clone()),
                    CircuitBreaker::new("payment", payment.breaker),
                    http,
                    payment.attempt_timeout,
                ))
            }
            None => None,
        };
        let max_backoff = config
            .payment
            .as_ref()
            .map_or(Duration::from_secs(30), |p| p.max_backoff);
        let timers = Timers {
            service,
            payments,
            payment_due,
            tick: config.tick,
            heartbeat: heartbeats.register("timers"),
            max_payment_backoff: chrono::Duration::from_std(max_backoff)
                .context("SEAT_PAYMENT_MAX_BACKOFF_MS")?,
        };

        let grace = config.shutdown_grace;
        let run = Box::pin(async move {
            let mut tasks = JoinSet::new();
            let token = shutdown.clone();
            tasks.spawn(async move {
                web::serve_with_detached(listener, router, token, grace, detached)
                    .await
                    .context("HTTP server")
            });
            let token = shutdown.clone();
            tasks.spawn(async move { relay.run(token).await.context("outbox relay") });
            let token = shutdown.clone();
            tasks.spawn(async move { consumer.run(token).await.context("event consumer") });
            let token = shutdown.clone();
            tasks.spawn(async move {
                timers.run(token).await;
                Ok(())
            });
            shutdown::supervise(tasks, shutdown, grace + STOP_MARGIN).await
        });
        Ok(Self { addr, run })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until the shutdown token is cancelled (or a task fails, which cancels it).
    pub async fn run(self) -> anyhow::Result<()> {
        self.run.await
    }
}

/// Beyond the HTTP grace period, how long the other tasks may take to stop.
const STOP_MARGIN: Duration = Duration::from_secs(8);
