//! The seat-view service's configuration, from environment variables, validated at start-up.

use std::{net::SocketAddr, time::Duration};

use studycafe_messaging::KafkaConfig;
use studycafe_platform::{
    auth::AuthConfig,
    config::{ConfigError, Env},
};

/// Where the views live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Redis,
}

impl Backend {
    fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("redis://") {
            Some(Self::Redis)
        } else {
            None
        }
    }
}

/// A prefix is used in SCAN patterns and hash tags: no glob or brace characters.
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

#[derive(Debug, Clone)]
pub struct SeatViewConfig {
    /// `SEAT_VIEW_HTTP_ADDR` (default `127.0.0.1:8084`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `SEAT_VIEW_DATABASE_URL` (default `sqlite://var/seat-view.db`): `sqlite:` keeps the
    /// views in an embedded SQLite file, `redis://host:port[/db]` in Redis.
    pub database_url: String,
    /// Which store the URL's scheme picked.
    pub backend: Backend,
    /// `SEAT_VIEW_REDIS_PREFIX` (default `seatview`): namespaces every Redis key and the board
    /// channel, so several deployments (or tests) can share one Redis server. Pub/sub ignores
    /// the URL's `/db`, so deployments sharing a server need distinct prefixes.
    pub redis_prefix: String,
    /// `SEAT_VIEW_REBUILD` (default false; also the `--rebuild` argument): wipe the views and
    /// rebuild them by replaying every topic under a new consumer group.
    pub rebuild: bool,
    /// `SEAT_VIEW_SHUTDOWN_GRACE_MS` (default 10000): how long in-flight requests may finish.
    pub shutdown_grace: Duration,
    /// `SEAT_VIEW_STREAM_BUFFER` (default 1024): board changes kept per live stream before a
    /// slow watcher is told to resync.
    pub stream_buffer: usize,
    pub kafka: KafkaConfig,
    /// `LIVENESS_STALL_SECS` (default 60): how long a loop may be busy without progress
    /// before `/health/live` fails.
    pub liveness: studycafe_platform::liveness::LivenessConfig,
    pub auth: AuthConfig,
}

impl SeatViewConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url: String = env.or(
            "SEAT_VIEW_DATABASE_URL",
            "sqlite://var/seat-view.db".to_owned(),
        )?;
        let Some(backend) = Backend::of(&database_url) else {
            return Err(ConfigError::new(
                "SEAT_VIEW_DATABASE_URL",
                "must be a sqlite: or redis:// URL",
            ));
        };
        let redis_prefix: String = env.or("SEAT_VIEW_REDIS_PREFIX", "seatview".to_owned())?;
        if !valid_prefix(&redis_prefix) {
            return Err(ConfigError::new(
                "SEAT_VIEW_REDIS_PREFIX",
                "must be 1 to 64 letters, digits, '_', '-', '.' or ':'",
            ));
        }
        let stream_buffer: usize = env.or("SEAT_VIEW_STREAM_BUFFER", 1024)?;
        if !(16..=1_000_000).contains(&stream_buffer) {
            return Err(ConfigError::new(
                "SEAT_VIEW_STREAM_BUFFER",
                "must be between 16 and 1000000",
            ));
        }
        Ok(Self {
            http_addr: env.or(
                "SEAT_VIEW_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8084)),
            )?,
            database_url,
            backend,
            redis_prefix,
            rebuild: env.flag("SEAT_VIEW_REBUILD", false)?,
            shutdown_grace: env.millis(
                "SEAT_VIEW_SHUTDOWN_GRACE_MS",
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(120),
            )?,
            stream_buffer,
            kafka: KafkaConfig::from_env(env, "seat-view")?,
            liveness: studycafe_platform::liveness::LivenessConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values_name_the_variable() {
        let base = [("AUTH_JWKS_FILE", "/tmp/jwks.json")];
        let config = SeatViewConfig::from_env(&Env::from_pairs(base)).unwrap();
        assert_eq!(config.http_addr.port(), 8084);
        assert_eq!(config.database_url, "sqlite://var/seat-view.db");
        assert_eq!(config.backend, Backend::Sqlite);
        assert_eq!(config.redis_prefix, "seatview");
        assert!(!config.rebuild);
        assert_eq!(config.kafka.client_id, "seat-view");
        for (name, value) in [
            ("SEAT_VIEW_HTTP_ADDR", "nowhere"),
            ("SEAT_VIEW_DATABASE_URL", "postgres://x"),
            ("SEAT_VIEW_REDIS_PREFIX", "views*"),
            ("SEAT_VIEW_REBUILD", "maybe"),
            ("SEAT_VIEW_SHUTDOWN_GRACE_MS", "-1"),
            ("SEAT_VIEW_STREAM_BUFFER", "1"),
        ] {
            let env = Env::from_pairs(base.into_iter().chain([(name, value)]));
            let err = SeatViewConfig::from_env(&env).unwrap_err();
            assert_eq!(err.variable, name);
        }
        let env = Env::from_pairs(base.into_iter().chain([("SEAT_VIEW_REBUILD", "true")]));
        assert!(SeatViewConfig::from_env(&env).unwrap().rebuild);
        let env = Env::from_pairs(base.into_iter().chain([
            ("SEAT_VIEW_DATABASE_URL", "redis://127.0.0.1:6379/2"),
            ("SEAT_VIEW_REDIS_PREFIX", "cafe-1"),
        ]));
        let config = SeatViewConfig::from_env(&env).unwrap();
        assert_eq!(config.backend, Backend::Redis);
        assert_eq!(config.redis_prefix, "cafe-1");
    }
}
