//! The payment service's configuration, from environment variables, validated at start-up.

use std::{net::SocketAddr, time::Duration};

use studycafe_messaging::KafkaConfig;
use studycafe_platform::{
    auth::AuthConfig,
    config::{ConfigError, Env},
};

/// Which store `PAYMENT_DATABASE_URL` names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` — the embedded default, one file.
    Sqlite,
    /// `mysql:` (or `mariadb:`) — MySQL/MariaDB, for several replicas on one database.
    MySql,
}

impl Backend {
    fn of(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Self::Sqlite),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PaymentConfig {
    /// `PAYMENT_HTTP_ADDR` (default `127.0.0.1:8083`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `PAYMENT_DATABASE_URL` (default `sqlite://var/payment.db`; `mysql://user:pass@host/db`
    /// for MySQL/MariaDB, whose database must exist).
    pub database_url: String,
    /// The store the URL's scheme names.
    pub backend: Backend,
    /// `PAYMENT_DATABASE_MAX_CONNECTIONS` (default 10, 1..=100): the MySQL pool's size per
    /// replica (SQLite has one writer and a small read pool regardless).
    pub max_connections: u32,
    /// `PAYMENT_REFUND_TICK_MS` (default 500): how often due refunds are looked for (a new
    /// refund also wakes the worker at once).
    pub refund_tick: Duration,
    /// `PAYMENT_RECONCILE_AFTER_SECS` (default 60, 1..=86400): how long a PENDING payment of a
    /// reservation seat has closed is left alone before the settlement worker asks the
    /// provider about it itself (seat has stopped asking by then).
    pub reconcile_after: chrono::Duration,
    /// `PAYMENT_SHUTDOWN_GRACE_MS` (default 10000): how long in-flight requests may finish.
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

impl PaymentConfig {
    /// The database URL as sqlx's MySQL driver takes it (`mariadb:` is our alias).
    pub fn mysql_url(&self) -> String {
        self.database_url.replacen("mariadb:", "mysql:", 1)
    }

    /// The database URL fit for logs and error messages: without its password.
    pub fn database_url_redacted(&self) -> String {
        redact_password(&self.database_url)
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url: String =
            env.or("PAYMENT_DATABASE_URL", "sqlite://var/payment.db".to_owned())?;
        let backend = Backend::of(&database_url).ok_or_else(|| {
            ConfigError::new(
                "PAYMENT_DATABASE_URL",
                "must be a sqlite: or mysql: (mariadb:) URL",
            )
        })?;
        if backend == Backend::MySql
            && let Err(e) = database_url
                .replacen("mariadb:", "mysql:", 1)
                .parse::<sqlx::mysql::MySqlConnectOptions>()
        {
            return Err(ConfigError::new(
                "PAYMENT_DATABASE_URL",
                format!("not a MySQL URL: {e}"),
            ));
        }
        let max_connections: u32 = env.or(
            "PAYMENT_DATABASE_MAX_CONNECTIONS",
            crate::outbound::mysql::DEFAULT_MAX_CONNECTIONS,
        )?;
        if !(1..=100).contains(&max_connections) {
            return Err(ConfigError::new(
                "PAYMENT_DATABASE_MAX_CONNECTIONS",
                "must be between 1 and 100",
            ));
        }
        Ok(Self {
            http_addr: env.or(
                "PAYMENT_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8083)),
            )?,
            database_url,
            backend,
            max_connections,
            refund_tick: env.millis(
                "PAYMENT_REFUND_TICK_MS",
                Duration::from_millis(500),
                Duration::from_millis(50),
                Duration::from_secs(60),
            )?,
            reconcile_after: chrono::Duration::seconds(env.within(
                "PAYMENT_RECONCILE_AFTER_SECS",
                60,
                1..=86_400,
            )?),
            shutdown_grace: env.millis(
                "PAYMENT_SHUTDOWN_GRACE_MS",
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(120),
            )?,
            writes_in_flight: studycafe_platform::detach::limit_from_env(env)?,
            kafka: KafkaConfig::from_env(env, "payment")?,
            liveness: studycafe_platform::liveness::LivenessConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
        })
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 1] = [("AUTH_JWKS_FILE", "/keys/jwks.json")];

    fn load(extra: &[(&str, &str)]) -> Result<PaymentConfig, ConfigError> {
        PaymentConfig::from_env(&Env::from_pairs(BASE.iter().chain(extra).copied()))
    }

    #[test]
    fn defaults() {
        let config = load(&[]).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8083");
        assert_eq!(config.database_url, "sqlite://var/payment.db");
        assert_eq!(config.backend, Backend::Sqlite);
        assert_eq!(config.max_connections, 10);
        assert_eq!(config.refund_tick, Duration::from_millis(500));
        assert_eq!(config.reconcile_after.num_seconds(), 60);
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.kafka.client_id, "payment");
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("PAYMENT_HTTP_ADDR", "localhost"),
            ("PAYMENT_DATABASE_URL", "postgres://db/payment"),
            ("PAYMENT_DATABASE_URL", "var/payment.db"),
            ("PAYMENT_DATABASE_URL", "mysql://db:port/payment"),
            ("PAYMENT_DATABASE_MAX_CONNECTIONS", "0"),
            ("PAYMENT_RECONCILE_AFTER_SECS", "0"),
            ("PAYMENT_RECONCILE_AFTER_SECS", "soon"),
            ("PAYMENT_DATABASE_MAX_CONNECTIONS", "many"),
            ("PAYMENT_REFUND_TICK_MS", "10"),
            ("PAYMENT_REFUND_TICK_MS", "soon"),
            ("PAYMENT_SHUTDOWN_GRACE_MS", "999999"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value}: {err}");
        }
        let err = PaymentConfig::from_env(&Env::from_pairs([])).unwrap_err();
        assert!(err.variable.starts_with("AUTH_JWKS"), "{err}");
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact_password("mysql://studycafe:secret@db:3306/payment"),
            "mysql://studycafe:***@db:3306/payment"
        );
        assert_eq!(
            redact_password("sqlite://var/payment.db"),
            "sqlite://var/payment.db"
        );
        assert_eq!(redact_password("mysql://db/payment"), "mysql://db/payment");
    }

    #[test]
    fn the_url_scheme_picks_the_store() {
        for (url, backend) in [
            ("sqlite://var/payment.db", Backend::Sqlite),
            ("sqlite::memory:", Backend::Sqlite),
            ("mysql://studycafe:secret@db:3306/payment", Backend::MySql),
            ("mariadb://studycafe@db/payment", Backend::MySql),
        ] {
            let config = load(&[("PAYMENT_DATABASE_URL", url)]).unwrap();
            assert_eq!(config.backend, backend, "{url}");
        }
    }
}
