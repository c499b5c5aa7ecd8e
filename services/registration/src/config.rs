//! The registration service's configuration, from environment variables, validated at
//! start-up.

use std::{net::SocketAddr, time::Duration};

use studycafe_messaging::KafkaConfig;
use studycafe_platform::{
    auth::AuthConfig,
    config::{ConfigError, Env},
};

use crate::domain::CafeId;

#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// `REGISTRATION_HTTP_ADDR` (default `127.0.0.1:8082`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `REGISTRATION_DATABASE_URL` (default `sqlite://var/registration.db`).
    pub database_url: String,
    /// Which store `database_url` names (by its scheme).
    pub database: DatabaseKind,
    /// `REGISTRATION_DATABASE_MAX_CONNECTIONS` (default 10, 1..=200): PostgreSQL connections
    /// per replica (SQLite has one writer and a small read pool regardless).
    pub database_max_connections: u32,
    /// `REGISTRATION_CAFE_ID` (default `main`): the cafe this deployment serves.
    pub cafe_id: CafeId,
    /// `REGISTRATION_AUTO_CONFIRM` (default false): the auto-confirm policy's initial value,
    /// applied while no admin has set the policy.
    pub auto_confirm: bool,
    /// `REGISTRATION_SHUTDOWN_GRACE_MS` (default 10000): how long in-flight requests may
    /// finish.
    pub shutdown_grace: Duration,
    /// `HTTP_MAX_WRITES_IN_FLIGHT` (default 256): write requests running at once, detached
    /// from their clients; one more is refused with 503.
    pub writes_in_flight: usize,
    pub kafka: KafkaConfig,
    /// `LIVENESS_STALL_SECS` (default 60): how long a loop may be busy without progress
    /// before `/health/live` fails.
    pub liveness: studycafe_platform::liveness::LivenessConfig,
    pub auth: AuthConfig,
}

/// The store engines, told apart by the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:` — embedded; replicas on one host may share the file.
    Sqlite,
    /// `postgres:` / `postgresql:` — production, any number of replicas.
    Postgres,
}

impl DatabaseKind {
    /// The engine `url` names, if it is one this service has a store for.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

impl RegistrationConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url: String = env.or(
            "REGISTRATION_DATABASE_URL",
            "sqlite://var/registration.db".to_owned(),
        )?;
        let database = DatabaseKind::of(&database_url).ok_or_else(|| {
            ConfigError::new(
                "REGISTRATION_DATABASE_URL",
                "must be a sqlite: or postgres: URL",
            )
        })?;
        let database_max_connections =
            env.within("REGISTRATION_DATABASE_MAX_CONNECTIONS", 10, 1..=200)?;
        let cafe: String = env.or("REGISTRATION_CAFE_ID", "main".to_owned())?;
        let cafe_id = CafeId::parse(&cafe)
            .map_err(|e| ConfigError::new("REGISTRATION_CAFE_ID", e.to_string()))?;
        Ok(Self {
            http_addr: env.or(
                "REGISTRATION_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8082)),
            )?,
            database_url,
            database,
            database_max_connections,
            cafe_id,
            auto_confirm: env.flag("REGISTRATION_AUTO_CONFIRM", false)?,
            shutdown_grace: env.millis(
                "REGISTRATION_SHUTDOWN_GRACE_MS",
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(120),
            )?,
            writes_in_flight: studycafe_platform::detach::limit_from_env(env)?,
            kafka: KafkaConfig::from_env(env, "registration")?,
            liveness: studycafe_platform::liveness::LivenessConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![("AUTH_JWKS_FILE", "/tmp/jwks.json")]
    }

    #[test]
    fn defaults() {
        let config = RegistrationConfig::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8082");
        assert_eq!(config.database_url, "sqlite://var/registration.db");
        assert_eq!(config.database, DatabaseKind::Sqlite);
        assert_eq!(config.database_max_connections, 10);
        assert_eq!(config.cafe_id.as_str(), "main");
        assert!(!config.auto_confirm);
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn the_url_scheme_picks_the_store() {
        for (url, kind) in [
            ("sqlite::memory:", DatabaseKind::Sqlite),
            (
                "postgres://u:p@db:5432/registration",
                DatabaseKind::Postgres,
            ),
            ("postgresql://db/registration", DatabaseKind::Postgres),
        ] {
            let mut vars = base();
            vars.push(("REGISTRATION_DATABASE_URL", url));
            let config = RegistrationConfig::from_env(&Env::from_pairs(vars)).unwrap();
            assert_eq!(config.database, kind, "{url}");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("REGISTRATION_HTTP_ADDR", "nowhere"),
            ("REGISTRATION_DATABASE_URL", "mysql://db/registration"),
            ("REGISTRATION_DATABASE_URL", "var/registration.db"),
            ("REGISTRATION_AUTO_CONFIRM", "maybe"),
            ("REGISTRATION_DATABASE_MAX_CONNECTIONS", "0"),
            ("REGISTRATION_DATABASE_MAX_CONNECTIONS", "lots"),
            ("REGISTRATION_SHUTDOWN_GRACE_MS", "999999999"),
            ("REGISTRATION_CAFE_ID", "a\u{7}b"),
        ] {
            let mut vars = base();
            vars.push((name, value));
            let err = RegistrationConfig::from_env(&Env::from_pairs(vars)).unwrap_err();
            assert_eq!(err.variable, name, "{err}");
        }
    }
}
