//! The seat service: the core domain of studycafe.
//!
//! It owns the seat catalogue and the `Reservation` aggregate, accepts reservations whatever
//! the state of the rest of the suite, and drives each reservation through the saga as news
//! arrives from registration and payment.
//!
//! Layout (hexagonal): [`domain`] is the model and its ports; [`application`] the use cases; [`inbound`] holds the adapters
//! that drive it (HTTP, Kafka consumer, timers); [`outbound`] the adapters it drives (SQLite or
//! PostgreSQL store with outbox, published-language mapping, catalogue file). [`App`] wires
//! them, once, generic over the store `SEAT_DATABASE_URL` selects.

pub mod application;
pub mod config;
pub mod domain;
pub mod inbound;
pub mod outbound;
pub mod queries;

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
    application::ReservationService,
    domain::ports::SystemClock,
    inbound::{events::SagaReactions, http::ApiState, timers::Timers},
    outbound::{
        StoreAdapter, catalogue, payments::HttpPayments, postgres::PgStore, sqlite::SqliteStore,
    },
};

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A built, bound, not yet running seat service.
pub struct App {
    addr: SocketAddr,
    grpc_addr: SocketAddr,
    run: RunFuture,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("addr", &self.addr)
            .field("grpc_addr", &self.grpc_addr)
            .finish()
    }
}

impl App {
    /// Opens the database, syncs the catalogue and binds the HTTP and gRPC ports. Nothing here needs
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
        let ready_check = readiness.clone();
        let heartbeats = Heartbeats::new(config.liveness);
        let detached = Detached::new(config.writes_in_flight);
        let grpc = inbound::grpc::GrpcApi {
            service: service.clone(),
            queries: store.clone(),
            verifier: verifier.clone(),
            detached: detached.clone(),
        };
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
        let grpc_listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("binding SEAT_GRPC_ADDR={}", config.grpc_addr))?;
        let grpc_addr = grpc_listener.local_addr()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(inbound::grpc::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building the gRPC reflection service")?;
        let grpc_router = tonic::transport::Server::builder()
            // A span per call, as REST has: the events a call causes carry its trace context.
            .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(grpc.into_server());

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
                Some(HttpPayments::over(
                    &payment.urls,
                    payment.check,
                    ServiceToken::new(payment.credentials.clone(), http.clone()),
                    CircuitBreaker::new("payment", payment.breaker),
                    http,
                    payment.attempt_timeout,
                ))
            }
            None => None,
        };
        // Payment's replicas' readiness, followed while seat runs (nothing to do with one).
        let payment_replicas = payments.as_ref().map(|p| p.balancer().clone());
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
            catalogue_reannounce: chrono::Duration::from_std(config.catalogue_reannounce)
                .context("SEAT_CATALOGUE_REANNOUNCE_SECS")?,
        };

        let grace = config.shutdown_grace;
        let tick = config.tick;
        let run = Box::pin(async move {
            let mut tasks = JoinSet::new();
            let token = shutdown.clone();
            tasks.spawn(async move {
                web::serve_with_detached(listener, router, token, grace, detached)
                    .await
                    .context("HTTP server")
            });
            let token = shutdown.clone();
            tasks.spawn(async move {
                grpc_router
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(grpc_listener),
                        token.cancelled_owned(),
                    )
                    .await
                    .context("gRPC server")
            });
            let token = shutdown.clone();
            tasks.spawn(async move {
                grpc_health(health, ready_check, tick, token).await;
                Ok(())
            });
            if let Some(balancer) = payment_replicas {
                let token = shutdown.clone();
                tasks.spawn(async move {
                    balancer.check_until(token).await;
                    Ok(())
                });
            }
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
        Ok(Self {
            addr,
            grpc_addr,
            run,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the gRPC API listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Runs until the shutdown token is cancelled (or a task fails, which cancels it).
    pub async fn run(self) -> anyhow::Result<()> {
        self.run.await
    }
}

/// Keeps `grpc.health.v1` in step with the HTTP readiness check: the server ("") and the
/// seat API are SERVING while the database answers, NOT_SERVING while it does not.
async fn grpc_health(
    health: tonic_health::server::HealthReporter,
    ready: web::ReadinessCheck,
    every: Duration,
    shutdown: CancellationToken,
) {
    use tonic_health::ServingStatus;
    let api = inbound::grpc::pb::seat_reservations_server::SERVICE_NAME;
    let mut last = None;
    loop {
        let status = match ready().await {
            Ok(()) => ServingStatus::Serving,
            Err(e) => {
                tracing::warn!(error = %e, "gRPC health: not serving");
                ServingStatus::NotServing
            }
        };
        if last != Some(status) {
            health.set_service_status("", status).await;
            health.set_service_status(api, status).await;
            last = Some(status);
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    // Draining: tell health checkers before the port closes.
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(api, ServingStatus::NotServing)
        .await;
}

/// Beyond the HTTP grace period, how long the other tasks may take to stop.
const STOP_MARGIN: Duration = Duration::from_secs(8);
