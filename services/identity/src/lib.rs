//! The identity service: accounts, credentials, signing keys, the OAuth2 token endpoint and
//! the JWKS every other service verifies tokens against.
//!
//! Layout (hexagonal): [`domain`] is the model and its ports; [`application`] the use cases; [`inbound`] holds the
//! HTTP adapters that drive it; [`outbound`] the adapters it drives (SQLite or PostgreSQL
//! user store, argon2id hashing, the key directory). [`App`] wires them, generic over the
//! store: `IDENTITY_DATABASE_URL`'s scheme picks one, nothing else differs. It needs no broker: identity
//! publishes no events.

pub mod application;
pub mod config;
pub mod domain;
pub mod inbound;
pub mod outbound;

use std::{future::Future, net::SocketAddr, path::Path, pin::Pin, sync::Arc, time::Duration};

use anyhow::Context as _;
use studycafe_platform::{detach::Detached, http as web, shutdown};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub use config::{DatabaseKind, IdentityConfig};

use crate::{
    application::{EnsureError, Ensured, IdentityService, NewAccount},
    domain::{DisplayName, Password, Role, Username, ports::UserStore},
    outbound::{
        argon::Argon2Hasher, keys::DirKeyRing, postgres::PgUserStore, sqlite::SqliteUserStore,
    },
};

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type Service<S> = IdentityService<S, Argon2Hasher, DirKeyRing>;

/// The demo customers `studycafe up` asks for: (username, password, display name).
const DEMO_ACCOUNTS: [(&str, &str, &str); 2] = [
    ("alice", "alice-studies", "Alice"),
    ("bob", "bob-studies", "Bob"),
];

/// A built, bound, not yet running identity service.
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
    /// Opens the database, loads (or creates) the signing keys, ensures the bootstrap
    /// accounts and binds the HTTP port.
    pub async fn build(
        config: IdentityConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        // The URL in errors may hold a password: name the variable and the engine only.
        match config.database {
            DatabaseKind::Sqlite => {
                let store = SqliteUserStore::open(&config.database_url)
                    .await
                    .with_context(|| {
                        format!("opening IDENTITY_DATABASE_URL={}", config.database_url)
                    })?;
                Self::build_with(store, config, shutdown).await
            }
            DatabaseKind::Postgres => {
                let store =
                    PgUserStore::open(&config.database_url, config.database_max_connections)
                        .await
                        .context("opening the PostgreSQL database at IDENTITY_DATABASE_URL")?;
                Self::build_with(store, config, shutdown).await
            }
        }
    }

    /// The wiring, whatever the store.
    async fn build_with<S: UserStore>(
        store: S,
        config: IdentityConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let keys_dir = config.keys_dir.clone();
        let keys = tokio::task::spawn_blocking(move || DirKeyRing::open(&keys_dir))
            .await?
            .with_context(|| format!("IDENTITY_KEYS_DIR={}", config.keys_dir.display()))?;
        let keys = Arc::new(keys);
        if config.clients.is_empty() {
            tracing::info!("no machine clients configured (IDENTITY_CLIENTS)");
        }
        let service = IdentityService::new(
            store.clone(),
            Argon2Hasher,
            keys.clone(),
            config.tokens.clone(),
            config.clients.clone(),
            config.sign_in_throttle.clone(),
        )
        .await
        .context("preparing password hashing")?;
        bootstrap(&service, &config).await?;

        let ready_store = store.clone();
        let readiness: web::ReadinessCheck = Arc::new(move || {
            let store = ready_store.clone();
            Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
        });
        let detached = Detached::new(config.writes_in_flight);
        let router = web::with_standard_layers(
            inbound::http::routes(service, &detached).merge(web::ops_routes(readiness)),
        );
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding IDENTITY_HTTP_ADDR={}", config.http_addr))?;
        let addr = listener.local_addr()?;

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
            tasks.spawn(async move {
                keys.run(outbound::keys::RESCAN_EVERY, token).await;
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
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// Ensures the configured admin and, if asked for, the demo customers.
async fn bootstrap<S: UserStore>(
    service: &Service<S>,
    config: &IdentityConfig,
) -> anyhow::Result<()> {
    if let Some(admin) = &config.admin {
        let account = NewAccount {
            username: admin.username.clone(),
            password: admin.password.clone(),
            display_name: DisplayName::parse("Administrator")?,
        };
        let username = &admin.username;
        match service
            .ensure_account(account, Role::Admin)
            .await
            .context("ensuring the admin account (IDENTITY_ADMIN_USERNAME)")?
        {
            Ensured::Created => tracing::info!(%username, "admin account created"),
            Ensured::Existed { granted } => tracing::info!(
                %username,
                granted_admin = granted,
                "admin account exists; its password was left as it is (IDENTITY_ADMIN_PASSWORD only sets it on creation)"
            ),
        }
    }
    if config.demo_accounts {
        for (username, password, display_name) in DEMO_ACCOUNTS {
            let account = NewAccount {
                username: Username::parse(username)?,
                password: Password::parse(password)?,
                display_name: DisplayName::parse(display_name)?,
            };
            match service.ensure_account(account, Role::Customer).await {
                Ok(Ensured::Created) => tracing::info!(%username, "demo account created"),
                Ok(Ensured::Existed { .. }) => {}
                // Someone's own account under a demo name: theirs to keep.
                Err(e @ EnsureError::NotYours(..)) => {
                    tracing::warn!(error = %e, "demo account skipped");
                }
                Err(e) => return Err(e).context("ensuring the demo accounts"),
            }
        }
    }
    Ok(())
}

/// Generates a new signing key in `dir` and returns its kid: the `add-key` sub-command. A
/// running service picks it up (and signs with it) without a restart; older keys stay
/// published, so tokens they signed stay valid.
pub fn add_key(dir: &Path) -> anyhow::Result<String> {
    outbound::keys::add_key(dir).with_context(|| format!("IDENTITY_KEYS_DIR={}", dir.display()))
}
