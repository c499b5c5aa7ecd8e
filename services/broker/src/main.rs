//! The embedded broker: Tansu, an Apache-Kafka-compatible broker, storing its log in one SQLite
//! file under the data directory so events survive a restart.
//!
//! It is a process of its own for two reasons: it can be stopped and restarted alone (the suite
//! must keep accepting reservations through a broker outage), and Tansu's libsql bundles its own
//! SQLite, which must never be linked into a binary that also links sqlx's SQLite.
//!
//! Configuration (environment):
//! - `BROKER_LISTEN_ADDR` (default `127.0.0.1:9092`): where Kafka clients connect.
//! - `BROKER_ADVERTISED_ADDR` (default: the listen address): what metadata tells clients.
//! - `BROKER_DATA_DIR` (default `./var/broker`): holds `broker.db`.
//! - `BROKER_CLUSTER_ID` (default `studycafe`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, str::FromStr};

use anyhow::Context as _;
use tansu_broker::{NODE_ID, broker::Broker, coordinator::group::administrator::Controller};
use tansu_storage::StorageContainer;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::Instant,
};
use url::Url;

#[derive(Debug)]
struct Config {
    listen: SocketAddr,
    advertised: SocketAddr,
    data_dir: PathBuf,
    cluster_id: String,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        fn var<T: FromStr>(name: &str, default: &str) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            let raw = std::env::var(name).unwrap_or_else(|_| default.to_owned());
            raw.parse::<T>()
                .map_err(|e| anyhow::anyhow!("{name}={raw:?} is invalid: {e}"))
        }
        let listen: SocketAddr = var("BROKER_LISTEN_ADDR", "127.0.0.1:9092")?;
        let advertised = match std::env::var("BROKER_ADVERTISED_ADDR") {
            Ok(_) => var("BROKER_ADVERTISED_ADDR", "")?,
            Err(_) => listen,
        };
        let data_dir: PathBuf = var("BROKER_DATA_DIR", "./var/broker")?;
        let cluster_id: String = var("BROKER_CLUSTER_ID", "studycafe")?;
        if cluster_id.trim().is_empty() {
            anyhow::bail!("BROKER_CLUSTER_ID must not be empty");
        }
        Ok(Self {
            listen,
            advertised,
            data_dir,
            cluster_id,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,studycafe_broker=info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("studycafe-broker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("BROKER_DATA_DIR={}", config.data_dir.display()))?;
    // Tansu resolves `sqlite://` paths against the working directory.
    std::env::set_current_dir(&config.data_dir)
        .with_context(|| format!("BROKER_DATA_DIR={}", config.data_dir.display()))?;

    let listener = Url::parse(&format!("tcp://{}", config.listen))?;
    let advertised = Url::parse(&format!("tcp://{}", config.advertised))?;
    // Fail fast (and non-zero) when the port is taken, before Tansu's own task swallows it.
    drop(
        std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("BROKER_LISTEN_ADDR={} cannot be bound", config.listen))?,
    );

    let started = Instant::now();
    let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(NODE_ID)
        .cluster_id(config.cluster_id.clone())
        .incarnation_id(uuid::Uuid::now_v7())
        .advertised_listener(advertised)
        .otlp_endpoint_url(None)
        .schema_registry(None)
        .storage(Url::parse("sqlite://broker.db")?)
        .listener(listener)
        .authentication(false)
        .tls_server_config(None)
        .silent(true)
        .build()
        .await
        .context("starting the broker")?;

    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        "broker starting"
    );

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        served = broker.serve(started) => served.context("broker stopped"),
        _ = interrupt.recv() => { tracing::info!("interrupted, stopping"); Ok(()) }
        _ = terminate.recv() => { tracing::info!("terminated, stopping"); Ok(()) }
    }
}
