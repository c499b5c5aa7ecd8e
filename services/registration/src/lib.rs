//! The registration service: the cafe admin's bounded context.
//!
//! It turns each reservation the seat service takes into a `Booking` that an admin confirms
//! or rejects (or the cafe's auto-confirm policy confirms at once), registers paid bookings
//! with an entry pass, and closes bookings whose reservation ended. Everything it decides is
//! published on `studycafe.registration.v1` through the transactional outbox.
//!
//! Layout (hexagonal): [`domain`] is the model and its ports; [`application`] the use cases; [`inbound`] holds the adapters
//! that drive it (admin HTTP API, Kafka consumer); [`outbound`] the adapters it drives (SQLite
//! or PostgreSQL store with outbox and inbox, published-language mapping). [`App`] wires
//! them, generic over the store: `REGISTRATION_DATABASE_URL`'s scheme picks one.
//!
//! Replicas: several processes may share one database (file or server) and one consumer
//! group. The store makes every write safe against the other process (see
//! `outbound::sqlite` and `outbound::postgres`); each replica also runs an outbox relay, and
//! the relay's lease lets only one of them publish.

pub mod application;
pub mod config;
pub mod domain;
pub mod inbound;
pub mod outbound;

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use anyhow::Context as _;
use studycafe_messaging::{
    ConsumerSettings, EventConsumer, OutboxRelay, OutboxSignal, OutboxStore, RelaySettings,
};
use studycafe_platform::{
    auth::JwtVerifier, detach::Detached, http as web, liveness::Heartbeats, shutdown,
};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub use config::{DatabaseKind, RegistrationConfig};

use crate::{
    application::BookingService,
    domain::ports::{BookingStore, SystemClock},
    inbound::{events::BookingReactions, http::ApiState},
    outbound::{postgres::PgStore, sqlite::SqliteStore},
};

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A built, bound, not yet running registration service.
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
    /// Opens the database, installs the initial auto-confirm policy and binds the HTTP port.
    /// Nothing here needs the broker: admins can work while Kafka is down.
    pub async fn build(
        config: RegistrationConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let signal = OutboxSignal::new();
        match config.database {
            DatabaseKind::Sqlite => {
                let store = SqliteStore::open(&config.database_url, signal.clone())
                    .await
                    .with_context(|| {
                        format!("opening REGISTRATION_DATABASE_URL={}", config.database_url)
                    })?;
                let outbox = store.outbox();
                Self::build_with(store, outbox, signal, config, shutdown).await
            }
            DatabaseKind::Postgres => {
                // Not the URL in the message: it may hold a password.
                let store = PgStore::open(
                    &config.database_url,
                    config.database_max_connections,
                    signal.clone(),
                )
                .await
                .context("opening the PostgreSQL database at REGISTRATION_DATABASE_URL")?;
                let outbox = store.outbox();
                Self::build_with(store, outbox, signal, config, shutdown).await
            }
        }
    }

    /// The wiring, whatever the store: `outbox` is the relay's view of the same database and
    /// `signal` the one the store notifies after committing an event.
    async fn build_with<S: BookingStore, O: OutboxStore>(
        store: S,
        outbox: O,
        signal: OutboxSignal,
        config: RegistrationConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let service =
            BookingService::new(store.clone(), config.cafe_id.clone(), Arc::new(SystemClock));
        let policy = service
            .seed_policy(config.auto_confirm)
            .await
            .context("installing the auto-confirm policy")?;
        tracing::info!(
            cafe = %policy.cafe_id,
            auto_confirm = policy.auto_confirm,
            set_by_admin = policy.updated_by.is_some(),
            "auto-confirm policy"
        );

        let verifier = JwtVerifier::new(config.auth.clone());
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
            .with_context(|| format!("binding REGISTRATION_HTTP_ADDR={}", config.http_addr))?;
        let addr = listener.local_addr()?;

        let relay = OutboxRelay::new(
            outbox,
            config.kafka.clone(),
            signal,
            RelaySettings::default(),
        )
        .with_heartbeats(&heartbeats);
        let consumer = EventConsumer::new(
            config.kafka.clone(),
            ConsumerSettings::new(inbound::events::CONSUMER, inbound::events::TOPICS),
            BookingReactions { service },
        )
        .with_heartbeats(&heartbeats);

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
