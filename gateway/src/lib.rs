//! The gateway: the single public entry point of studycafe.
//!
//! It owns no data and consumes no events. Every request is checked at the edge (bearer
//! token verified, client rate limited, route's access rule applied) and then forwarded to
//! the service that owns its path, or served from the static web root. Services still check
//! tokens themselves: the gateway turns away what can never succeed, it is not their only
//! guard.
//!
//! Layout (hexagonal): [`domain`] is the route table and the rate-limit policy, as data;
//! [`inbound`] the HTTP edge; [`outbound`] the upstream client and the web root. [`App`]
//! wires them.

pub mod config;
pub mod domain;
pub mod inbound;
pub mod outbound;

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use anyhow::Context as _;
use studycafe_platform::{auth::JwtVerifier, http as web, shutdown};
use tokio::{
    net::{TcpListener, TcpSocket},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

pub use config::GatewayConfig;

use crate::{
    domain::{RateLimiter, RouteTable},
    inbound::http::Gateway,
    outbound::{upstream::UpstreamClient, web_root::WebRoot},
};

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// How often buckets of idle clients are dropped.
const EVICT_EVERY: Duration = Duration::from_secs(30);

/// Beyond the HTTP grace period, how long the other tasks may take to stop.
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// A built, bound, not yet running gateway.
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
    /// Builds the upstream client and binds the HTTP port. Nothing here waits for a service:
    /// the gateway starts (and is ready) whether or not they are up.
    pub async fn build(config: GatewayConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let limiter = Arc::new(RateLimiter::new(config.rate_limit));
        let upstreams = UpstreamClient::new(
            &config.upstreams,
            config.check,
            config.connect_timeout,
            config.upstream_timeout,
            shutdown.clone(),
        )
        .context("building the upstream HTTP client")?;
        let gateway = Arc::new(Gateway {
            routes: RouteTable::default(),
            verifier: JwtVerifier::new(config.auth.clone()),
            limiter: limiter.clone(),
            upstreams: upstreams.clone(),
            web: WebRoot::new(&config.web_root),
            body_timeout: config.upstream_timeout,
            trusted_proxies: config.trusted_proxies.clone(),
            cors: config.cors.clone(),
        });
        let router = inbound::http::router(gateway);
        let listener = bind(config.http_addr, config.reuse_port)
            .with_context(|| format!("binding GATEWAY_HTTP_ADDR={}", config.http_addr))?;
        let addr = listener.local_addr()?;
        tracing::info!(
            web_root = %config.web_root.display(),
            per_sec = config.rate_limit.per_sec(),
            burst = config.rate_limit.burst(),
            trusted_proxies = ?config.trusted_proxies.networks().iter().map(ToString::to_string).collect::<Vec<_>>(),
            cors_origins = ?config.cors.origins().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "gateway configured"
        );

        let grace = config.shutdown_grace;
        let run = Box::pin(async move {
            let mut tasks = JoinSet::new();
            let token = shutdown.clone();
            tasks.spawn(async move {
                web::serve_with_peer_addr(listener, router, token, grace)
                    .await
                    .context("HTTP server")
            });
            let token = shutdown.clone();
            tasks.spawn(async move {
                evict_idle_clients(&limiter, token).await;
                Ok(())
            });
            let token = shutdown.clone();
            tasks.spawn(async move {
                upstreams.check_replicas(token).await;
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

/// Binds the HTTP listener; with `reuse_port`, `SO_REUSEPORT` lets another gateway process
/// bind the same port, so a new one can take connections while the old one drains (the kernel
/// spreads new connections over both; the old one closes its socket as its shutdown begins).
fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // What `TcpListener::bind` does too: a restart need not wait for TIME_WAIT to pass.
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(reuse_port)?;
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The accept queue's length (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 1024;

/// Keeps the rate limiter's memory to the clients seen lately.
async fn evict_idle_clients(limiter: &RateLimiter, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(EVICT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let evicted = limiter.evict_idle(std::time::Instant::now());
                if evicted > 0 {
                    tracing::debug!(evicted, clients = limiter.clients(), "idle rate-limit buckets dropped");
                }
            }
        }
    }
}
