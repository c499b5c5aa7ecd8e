//! The payment service: payments and refunds behind a card provider port.
//!
//! Seat calls `POST /internal/payments` to charge a confirmed reservation (idempotent by
//! reservation id: one charge, whatever the retries); the outcome is published as
//! `PaymentCompleted` or `PaymentDeclined`. When seat reports a reservation closed (cancelled,
//! expired, payment failed), a completed payment is refunded exactly once (`PaymentRefunded`),
//! including a payment that completes only after the closure.
//!
//! Layout (hexagonal): [`domain`] is the model and its ports; [`application`] the use cases; [`inbound`] holds the
//! adapters that drive it (HTTP, Kafka consumer, settlement worker); [`outbound`] the adapters it
//! drives (SQLite or MySQL/MariaDB store with outbox, published-language mapping, the card
//! simulator). [`App`] wires them, generic over the store; `PAYMENT_DATABASE_URL`'s scheme
//! picks which one.
//!
//! Shutdown (SIGTERM/SIGINT cancels the token): the HTTP server stops accepting and lets
//! requests in flight finish for `PAYMENT_SHUTDOWN_GRACE_MS` (a charge already sent to the
//! provider runs as its own task and is recorded either way); the consumer commits its stored
//! offsets and leaves the group; the relay abandons its round (unpublished rows stay in the
//! outbox); the settlement worker stops mid-round (an unrecorded refund is asked again, with the
//! same idempotency key, on the next start). Everything durable is committed before it is
//! acknowledged, so a SIGKILL loses nothing either.

pub mod application;
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
    auth::JwtVerifier, detach::Detached, http as web, liveness::Heartbeats, shutdown,
};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub use config::{Backend, PaymentConfig};

use crate::{
    application::PaymentService,
    domain::ports::{CardProvider, SystemClock},
    inbound::{events::ClosureReactions, http::ApiState, settlement::SettlementWorker},
    outbound::{StoreAdapter, mysql::MySqlStore, simulator::CardSimulator, sqlite::SqliteStore},
};

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A built, bound, not yet running payment service.
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
    /// The service with the built-in card simulator as its provider.
    pub async fn build(config: PaymentConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        tracing::warn!("card provider: the built-in card simulator (no real money moves)");
        Self::build_with_provider(config, shutdown, CardSimulator::new()).await
    }

    /// Opens the database `PAYMENT_DATABASE_URL` names (bringing its schema up to date) and
    /// binds the HTTP port, charging through `provider`. Nothing here needs the broker:
    /// payments are taken (and their events kept in the outbox) while Kafka is down.
    pub async fn build_with_provider<P: CardProvider>(
        config: PaymentConfig,
        shutdown: CancellationToken,
        provider: P,
    ) -> anyhow::Result<Self> {
        let signal = OutboxSignal::new();
        let opening = || {
            format!(
                "opening PAYMENT_DATABASE_URL={}",
                config.database_url_redacted()
            )
        };
        match config.backend {
            Backend::Sqlite => {
                let store = SqliteStore::open(&config.database_url, signal.clone())
                    .await
                    .with_context(opening)?;
                Self::build_with(config, shutdown, provider, store, signal).await
            }
            Backend::MySql => {
                let store =
                    MySqlStore::open(&config.mysql_url(), config.max_connections, signal.clone())
                        .await
                        .with_context(opening)?;
                Self::build_with(config, shutdown, provider, store, signal).await
            }
        }
    }

    /// Wires the service around an opened `store` (whose writes notify `signal`): the same
    /// for every backend.
    pub async fn build_with<P: CardProvider, S: StoreAdapter>(
        config: PaymentConfig,
        shutdown: CancellationToken,
        provider: P,
        store: S,
        signal: OutboxSignal,
    ) -> anyhow::Result<Self> {
        tracing::info!(backend = ?config.backend, "payment store open");
        let service = PaymentService::new(store.clone(), Arc::new(provider), Arc::new(SystemClock));
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
            .with_context(|| format!("binding PAYMENT_HTTP_ADDR={}", config.http_addr))?;
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
            ClosureReactions {
                service: service.clone(),
            },
        )
        .with_heartbeats(&heartbeats);
        let settlement = SettlementWorker {
            service,
            tick: config.refund_tick,
            reconcile_after: config.reconcile_after,
            heartbeat: heartbeats.register("settlement worker"),
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
                settlement.run(token).await;
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
