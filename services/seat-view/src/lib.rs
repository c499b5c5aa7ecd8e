//! The seat-view service: the read side (CQRS) of studycafe.
//!
//! It consumes every topic of the published language and keeps its own materialized views —
//! the seat board and each customer's reservations — never reading another service's data. It
//! publishes nothing, but it is an idempotent consumer like every other: each event's id is
//! claimed in the same transaction as the view change it makes. Committed board changes are
//! pushed to live watchers over server-sent events.
//!
//! Layout (hexagonal): [`domain`] is the model, its rules and its ports; [`application`] the use cases; [`inbound`] holds the
//! adapters that drive it (Kafka consumer, HTTP, SSE); [`outbound`] the adapters it drives
//! (SQLite views, the broadcast feed). [`App`] wires them.
//!
//! Stores: `SEAT_VIEW_DATABASE_URL`'s scheme picks the view store — `sqlite:` (embedded) or
//! `redis://` (production). Everything else is wired once, generically, by
//! [`App::build_with`]. With Redis, live board changes reach every replica's watchers through
//! a Redis channel (see `outbound::redis_feed`), since each replica consumes only some
//! partitions.
//!
//! Rebuild: with `--rebuild` (or `SEAT_VIEW_REBUILD=true`) the views and the inbox are wiped
//! and the stored generation bumped; the new generation consumes as group
//! `seat-view.g<generation>` from the earliest offsets, so the views are replayed from the
//! topics, and then the service simply keeps running. A plain restart keeps the generation.

pub mod application;
pub mod config;
pub mod domain;
pub mod inbound;
pub mod outbound;

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use anyhow::Context as _;
use studycafe_messaging::{ConsumerSettings, EventConsumer};
use studycafe_platform::{auth::JwtVerifier, http as web, liveness::Heartbeats, shutdown};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub use config::SeatViewConfig;

use crate::{
    application::ViewService,
    config::Backend,
    domain::{
        Generation,
        ports::{BoardFeed, ViewStore},
    },
    inbound::{
        events::{Progress, Projection},
        http::ApiState,
    },
    outbound::{
        feed::BroadcastFeed,
        redis::RedisViews,
        redis_feed::{BoardChannelRelay, PublishedByStore},
        sqlite::SqliteViews,
    },
};

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A store-specific task that runs beside the others until shutdown, its loops reporting to
/// the service's heartbeats.
pub type SideTask = Box<dyn FnOnce(CancellationToken, &Heartbeats) -> RunFuture + Send>;

/// What a backend brings to [`App::build_with`].
pub struct Wiring<S> {
    pub store: S,
    /// Where the projection announces committed board changes.
    pub projection_feed: Arc<dyn BoardFeed>,
    /// The local feed the live streams read.
    pub watchers: BroadcastFeed,
    pub side_tasks: Vec<(&'static str, SideTask)>,
}

impl<S> std::fmt::Debug for Wiring<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring").finish_non_exhaustive()
    }
}

/// A built, bound, not yet running seat-view service.
pub struct App {
    addr: SocketAddr,
    generation: Generation,
    run: RunFuture,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("addr", &self.addr)
            .field("generation", &self.generation)
            .finish()
    }
}

impl App {
    /// Opens the store the URL names (wiping the views first when rebuilding) and binds the
    /// HTTP port. Nothing here needs the broker: the views are served while Kafka is down.
    pub async fn build(
        config: SeatViewConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let watchers = BroadcastFeed::new(config.stream_buffer);
        match config.backend {
            Backend::Sqlite => {
                let store = SqliteViews::open(&config.database_url)
                    .await
                    .with_context(|| {
                        format!("opening SEAT_VIEW_DATABASE_URL={}", config.database_url)
                    })?;
                let wiring = Wiring {
                    store,
                    projection_feed: Arc::new(watchers.clone()),
                    watchers,
                    side_tasks: Vec::new(),
                };
                Self::build_with(config, wiring, shutdown).await
            }
            Backend::Redis => {
                let store = RedisViews::open(&config.database_url, &config.redis_prefix)
                    .await
                    .with_context(|| {
                        format!(
                            "connecting to SEAT_VIEW_DATABASE_URL={}",
                            config.database_url
                        )
                    })?;
                let relay = BoardChannelRelay::subscribe(
                    &config.database_url,
                    &config.redis_prefix,
                    watchers.clone(),
                )
                .await
                .context("subscribing to the board channel")?;
                let relay: SideTask = Box::new(move |token, heartbeats| {
                    let relay = relay.with_heartbeats(heartbeats);
                    Box::pin(async move { relay.run(token).await.context("board channel relay") })
                });
                let wiring = Wiring {
                    store,
                    // The store publishes on the channel inside the commit; the relay brings
                    // the change back to this replica's watchers like to every other's.
                    projection_feed: Arc::new(PublishedByStore),
                    watchers,
                    side_tasks: vec![("board channel relay", relay)],
                };
                Self::build_with(config, wiring, shutdown).await
            }
        }
    }

    /// Wires the service around any view store.
    pub async fn build_with<S: ViewStore>(
        config: SeatViewConfig,
        wiring: Wiring<S>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let Wiring {
            store,
            projection_feed,
            watchers: feed,
            side_tasks,
        } = wiring;
        let service = ViewService::new(store, projection_feed);
        let generation = service
            .generation(config.rebuild)
            .await
            .context("reading the view generation")?;
        let group = generation.consumer_group();
        tracing::info!(generation = generation.get(), %group, "seat views");

        let ready = service.clone();
        let readiness: web::ReadinessCheck = Arc::new(move || {
            let service = ready.clone();
            Box::pin(async move { service.ping().await.map_err(|e| e.to_string()) })
        });
        let heartbeats = Heartbeats::new(config.liveness);
        let router = web::with_standard_layers(
            inbound::http::routes(ApiState {
                service: service.clone(),
                verifier: JwtVerifier::new(config.auth.clone()),
                feed,
                shutdown: shutdown.clone(),
            })
            .merge(web::ops_routes_with(readiness, heartbeats.clone())),
        );
        // After `ops_routes`, which installs the metrics recorder.
        metrics::gauge!("seat_view_generation").set(f64::from(generation.get()));
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding SEAT_VIEW_HTTP_ADDR={}", config.http_addr))?;
        let addr = listener.local_addr()?;

        let progress = Arc::new(Progress::default());
        let consumer = EventConsumer::new(
            config.kafka.clone(),
            ConsumerSettings::new(group, inbound::events::TOPICS),
            Projection {
                service,
                progress: progress.clone(),
            },
        )
        .with_heartbeats(&heartbeats);

        let grace = config.shutdown_grace;
        let run = Box::pin(async move {
            let mut tasks = JoinSet::new();
            let token = shutdown.clone();
            tasks.spawn(async move {
                web::serve(listener, router, token, grace)
                    .await
                    .context("HTTP server")
            });
            let token = shutdown.clone();
            tasks.spawn(async move { consumer.run(token).await.context("event consumer") });
            let token = shutdown.clone();
            tasks.spawn(async move {
                progress.report(token).await;
                Ok(())
            });
            for (name, task) in side_tasks {
                tracing::debug!(task = name, "starting");
                tasks.spawn(task(shutdown.clone(), &heartbeats));
            }
            shutdown::supervise(tasks, shutdown, grace + STOP_MARGIN).await
        });
        Ok(Self {
            addr,
            generation,
            run,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The generation of the views this app consumes for.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Runs until the shutdown token is cancelled (or a task fails, which cancels it).
    pub async fn run(self) -> anyhow::Result<()> {
        self.run.await
    }
}

/// Beyond the HTTP grace period, how long the other tasks may take to stop.
const STOP_MARGIN: Duration = Duration::from_secs(8);
