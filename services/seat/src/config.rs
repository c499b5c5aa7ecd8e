//! The seat service's configuration, from environment variables, validated at start-up.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use studycafe_messaging::KafkaConfig;
use studycafe_platform::{
    auth::AuthConfig,
    balancer::{CheckSettings, Replicas},
    breaker::BreakerSettings,
    client_credentials::ClientCredentials,
    config::{ConfigError, Env},
};

use crate::domain::ReservationPolicy;

#[derive(Debug, Clone)]
pub struct SeatConfig {
    /// `SEAT_HTTP_ADDR` (default `127.0.0.1:8081`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `SEAT_GRPC_ADDR` (default `127.0.0.1:8087`; port 0 picks a free port): the gRPC API
    /// (`studycafe.seat.v1`, health and reflection).
    pub grpc_addr: SocketAddr,
    /// `SEAT_DATABASE_URL` (default `sqlite://var/seat.db`): `sqlite:` (embedded, one process)
    /// or `postgres:`/`postgresql:` (any number of replicas on one database).
    pub database_url: String,
    /// Which store the URL's scheme selects.
    pub database: Backend,
    /// `SEAT_DATABASE_MAX_CONNECTIONS` (default 10): PostgreSQL connections per replica.
    pub database_max_connections: u32,
    /// `SEAT_CATALOGUE_FILE` (default: the built-in 40-seat cafe).
    pub catalogue_file: Option<PathBuf>,
    /// `SEAT_CATALOGUE_REANNOUNCE_SECS` (default 86400, at most 7 days): seats are announced
    /// again (`SeatDefined`) when their last announcement is this old, so the catalogue stays
    /// on the seat topic whatever its retention (keep this well below it; Kafka's default is
    /// 7 days, the suite's topics keep 35).
    pub catalogue_reannounce: Duration,
    /// `SEAT_HOLD_SECS` (default 600), `SEAT_MAX_HOURS` (default 12),
    /// `SEAT_BOOKING_HORIZON_DAYS` (default 30).
    pub policy: ReservationPolicy,
    /// `SEAT_TICK_MS` (default 1000): how often holds, completions and payments are swept.
    pub tick: Duration,
    /// `SEAT_SHUTDOWN_GRACE_MS` (default 10000): how long in-flight requests may finish.
    pub shutdown_grace: Duration,
    /// `HTTP_MAX_WRITES_IN_FLIGHT` (default 256): write requests running at once, detached
    /// from their clients; one more is refused with 503.
    pub writes_in_flight: usize,
    /// The payment service, if any (`SEAT_PAYMENT_URL`); without it confirmed reservations wait.
    pub payment: Option<PaymentClientConfig>,
    pub kafka: KafkaConfig,
    /// `LIVENESS_STALL_SECS` (default 60): how long a loop may be busy without progress
    /// before `/health/live` fails.
    pub liveness: studycafe_platform::liveness::LivenessConfig,
    pub auth: AuthConfig,
}

/// The database engine behind the reservation store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded: one process owns the file.
    Sqlite,
    /// Shared by replicas; the database enforces the no-overlap rule.
    Postgres,
}

impl Backend {
    /// The backend a database URL's scheme names, if supported.
    pub fn of(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }
}

/// How seat calls payment.
#[derive(Debug, Clone)]
pub struct PaymentClientConfig {
    /// `SEAT_PAYMENT_URL`: payment's base URL, e.g. `http://127.0.0.1:8083`, or the base URLs
    /// of its replicas separated by commas (balanced as the gateway does).
    pub urls: Replicas,
    /// `SEAT_PAYMENT_CHECK_PERIOD_MS` (default 1000) and `SEAT_PAYMENT_CHECK_TIMEOUT_MS`
    /// (default 500): the readiness checks of payment's replicas (only with more than one).
    pub check: CheckSettings,
    /// `SEAT_TOKEN_URL`, `SEAT_CLIENT_ID`, `SEAT_CLIENT_SECRET`: seat's machine credentials at
    /// the identity service (required with `SEAT_PAYMENT_URL`).
    pub credentials: ClientCredentials,
    /// `SEAT_PAYMENT_TIMEOUT_MS` (default 2000): the deadline of one attempt.
    pub attempt_timeout: Duration,
    /// `SEAT_PAYMENT_BREAKER_FAILURES` (default 5), `SEAT_PAYMENT_BREAKER_OPEN_MS` (default
    /// 5000), `SEAT_PAYMENT_BREAKER_PROBES` (default 1).
    pub breaker: BreakerSettings,
    /// `SEAT_PAYMENT_MAX_BACKOFF_MS` (default 30000): the longest wait between attempts.
    pub max_backoff: Duration,
}

impl PaymentClientConfig {
    fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(urls) = env.optional::<String>("SEAT_PAYMENT_URL")? else {
            return Ok(None);
        };
        let urls = Replicas::parse("SEAT_PAYMENT_URL", &urls)?;
        let token_url: String = env.required("SEAT_TOKEN_URL")?;
        let token_url = http_url("SEAT_TOKEN_URL", token_url)?;
        let failure_threshold: u32 = env.or("SEAT_PAYMENT_BREAKER_FAILURES", 5)?;
        if !(1..=1000).contains(&failure_threshold) {
            return Err(ConfigError::new(
                "SEAT_PAYMENT_BREAKER_FAILURES",
                "must be between 1 and 1000",
            ));
        }
        let half_open_probes: u32 = env.or("SEAT_PAYMENT_BREAKER_PROBES", 1)?;
        if !(1..=100).contains(&half_open_probes) {
            return Err(ConfigError::new(
                "SEAT_PAYMENT_BREAKER_PROBES",
                "must be between 1 and 100",
            ));
        }
        Ok(Some(Self {
            urls,
            check: CheckSettings::from_env(env, "SEAT_PAYMENT")?,
            credentials: ClientCredentials {
                token_url,
                client_id: env.required("SEAT_CLIENT_ID")?,
                client_secret: env.required("SEAT_CLIENT_SECRET")?,
            },
            attempt_timeout: env.millis(
                "SEAT_PAYMENT_TIMEOUT_MS",
                Duration::from_secs(2),
                Duration::from_millis(50),
                Duration::from_secs(120),
            )?,
            breaker: BreakerSettings {
                failure_threshold,
                open_for: env.millis(
                    "SEAT_PAYMENT_BREAKER_OPEN_MS",
                    Duration::from_secs(5),
                    Duration::from_millis(100),
                    Duration::from_secs(600),
                )?,
                half_open_probes,
            },
            max_backoff: env.millis(
                "SEAT_PAYMENT_MAX_BACKOFF_MS",
                Duration::from_secs(30),
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )?,
        }))
    }
}

fn http_url(name: &str, raw: String) -> Result<String, ConfigError> {
    if raw.starts_with("http://") || raw.starts_with("https://") {
        Ok(raw.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::new(name, "must be an http(s) URL"))
    }
}

impl SeatConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url: String =
            env.or("SEAT_DATABASE_URL", "sqlite://var/seat.db".to_owned())?;
        let database = Backend::of(&database_url).ok_or_else(|| {
            ConfigError::new(
                "SEAT_DATABASE_URL",
                "must be a sqlite: or postgres: (postgresql:) URL",
            )
        })?;
        let database_max_connections = env.within("SEAT_DATABASE_MAX_CONNECTIONS", 10, 1..=200)?;
        let hold_secs: i64 = env.or("SEAT_HOLD_SECS", 600)?;
        if !(5..=86_400).contains(&hold_secs) {
            return Err(ConfigError::new(
                "SEAT_HOLD_SECS",
                "must be between 5 and 86400",
            ));
        }
        let max_hours: u8 = env.or("SEAT_MAX_HOURS", 12)?;
        if !(1..=24).contains(&max_hours) {
            return Err(ConfigError::new(
                "SEAT_MAX_HOURS",
                "must be between 1 and 24",
            ));
        }
        let horizon_days: i64 = env.or("SEAT_BOOKING_HORIZON_DAYS", 30)?;
        if !(1..=365).contains(&horizon_days) {
            return Err(ConfigError::new(
                "SEAT_BOOKING_HORIZON_DAYS",
                "must be between 1 and 365",
            ));
        }
        Ok(Self {
            http_addr: env.or("SEAT_HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], 8081)))?,
            grpc_addr: env.or("SEAT_GRPC_ADDR", SocketAddr::from(([127, 0, 0, 1], 8087)))?,
            database_url,
            database,
            database_max_connections,
            catalogue_file: env.optional("SEAT_CATALOGUE_FILE")?,
            catalogue_reannounce: Duration::from_secs(env.within(
                "SEAT_CATALOGUE_REANNOUNCE_SECS",
                86_400,
                1..=7 * 86_400,
            )?),
            policy: ReservationPolicy {
                hold: chrono::Duration::seconds(hold_secs),
                max_hours,
                horizon: chrono::Duration::days(horizon_days),
                ..ReservationPolicy::default()
            },
            tick: env.millis(
                "SEAT_TICK_MS",
                Duration::from_secs(1),
                Duration::from_millis(50),
                Duration::from_secs(60),
            )?,
            shutdown_grace: env.millis(
                "SEAT_SHUTDOWN_GRACE_MS",
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(120),
            )?,
            writes_in_flight: studycafe_platform::detach::limit_from_env(env)?,
            payment: PaymentClientConfig::from_env(env)?,
            kafka: KafkaConfig::from_env(env, "seat")?,
            liveness: studycafe_platform::liveness::LivenessConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 2] = [
        ("AUTH_JWKS_FILE", "/keys/jwks.json"),
        ("KAFKA_BROKERS", "127.0.0.1:9092"),
    ];

    fn load(extra: &[(&str, &str)]) -> Result<SeatConfig, ConfigError> {
        SeatConfig::from_env(&Env::from_pairs(BASE.iter().chain(extra).copied()))
    }

    #[test]
    fn payment_is_optional_but_complete_when_given() {
        assert!(load(&[]).unwrap().payment.is_none());
        let err = load(&[("SEAT_PAYMENT_URL", "http://127.0.0.1:8083")]).unwrap_err();
        assert!(err.to_string().contains("SEAT_TOKEN_URL"), "{err}");

        let full = [
            ("SEAT_PAYMENT_URL", "http://127.0.0.1:8083/"),
            ("SEAT_TOKEN_URL", "http://127.0.0.1:8085/auth/token"),
            ("SEAT_CLIENT_ID", "seat-service"),
            ("SEAT_CLIENT_SECRET", "s3cret"),
            ("SEAT_PAYMENT_BREAKER_FAILURES", "3"),
            ("SEAT_PAYMENT_BREAKER_OPEN_MS", "1500"),
        ];
        let payment = load(&full).unwrap().payment.unwrap();
        assert_eq!(payment.urls, "http://127.0.0.1:8083");
        assert_eq!(payment.check, CheckSettings::default());
        assert_eq!(payment.breaker.failure_threshold, 3);
        assert_eq!(payment.breaker.open_for, Duration::from_millis(1500));
        assert_eq!(payment.attempt_timeout, Duration::from_secs(2));
    }

    #[test]
    fn the_catalogue_is_reannounced_daily_unless_told_and_never_past_a_week() {
        assert_eq!(
            load(&[]).unwrap().catalogue_reannounce,
            Duration::from_secs(86_400)
        );
        let config = load(&[("SEAT_CATALOGUE_REANNOUNCE_SECS", "5")]).unwrap();
        assert_eq!(config.catalogue_reannounce, Duration::from_secs(5));
        // A week is Kafka's default retention: any longer and the catalogue could vanish.
        for value in ["0", "604801", "daily"] {
            let err = load(&[("SEAT_CATALOGUE_REANNOUNCE_SECS", value)]).unwrap_err();
            assert_eq!(
                err.variable, "SEAT_CATALOGUE_REANNOUNCE_SECS",
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn payment_takes_several_replicas_and_bad_ones_are_named() {
        let credentials = [
            ("SEAT_TOKEN_URL", "http://127.0.0.1:8085/auth/token"),
            ("SEAT_CLIENT_ID", "seat-service"),
            ("SEAT_CLIENT_SECRET", "s3cret"),
        ];
        let mut vars = credentials.to_vec();
        vars.push((
            "SEAT_PAYMENT_URL",
            "http://127.0.0.1:8083, http://127.0.0.1:18083/",
        ));
        vars.push(("SEAT_PAYMENT_CHECK_PERIOD_MS", "250"));
        let payment = load(&vars).unwrap().payment.unwrap();
        assert_eq!(
            payment.urls.urls(),
            ["http://127.0.0.1:8083", "http://127.0.0.1:18083"]
        );
        assert_eq!(payment.check.period, Duration::from_millis(250));
        for (name, value) in [
            ("SEAT_PAYMENT_URL", "http://127.0.0.1:8083,payment:18083"),
            ("SEAT_PAYMENT_URL", "http://127.0.0.1:8083,"),
            ("SEAT_PAYMENT_CHECK_PERIOD_MS", "0"),
            ("SEAT_PAYMENT_CHECK_TIMEOUT_MS", "soon"),
        ] {
            let mut vars = credentials.to_vec();
            if name != "SEAT_PAYMENT_URL" {
                vars.push(("SEAT_PAYMENT_URL", "http://127.0.0.1:8083"));
            }
            vars.push((name, value));
            let err = load(&vars).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value}: {err}");
        }
    }

    #[test]
    fn the_grpc_address_has_a_default_and_a_bad_one_is_named() {
        assert_eq!(load(&[]).unwrap().grpc_addr.port(), 8087);
        let config = load(&[("SEAT_GRPC_ADDR", "127.0.0.1:0")]).unwrap();
        assert_eq!(config.grpc_addr.port(), 0);
        let err = load(&[("SEAT_GRPC_ADDR", "localhost")]).unwrap_err();
        assert!(err.to_string().contains("SEAT_GRPC_ADDR"), "{err}");
    }

    #[test]
    fn the_database_url_scheme_picks_the_backend() {
        assert_eq!(load(&[]).unwrap().database, Backend::Sqlite);
        for url in ["postgres://u:p@db/seat", "postgresql://db/seat"] {
            let config = load(&[("SEAT_DATABASE_URL", url)]).unwrap();
            assert_eq!(config.database, Backend::Postgres, "{url}");
            assert_eq!(config.database_max_connections, 10);
        }
        for (name, value) in [
            ("SEAT_DATABASE_URL", "mysql://db/seat"),
            ("SEAT_DATABASE_URL", "var/seat.db"),
            ("SEAT_DATABASE_MAX_CONNECTIONS", "0"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{value}: {err}");
        }
    }

    #[test]
    fn bad_payment_settings_name_their_variable() {
        let base = [
            ("SEAT_TOKEN_URL", "http://127.0.0.1:8085/auth/token"),
            ("SEAT_CLIENT_ID", "seat-service"),
            ("SEAT_CLIENT_SECRET", "s3cret"),
        ];
        for (name, value) in [
            ("SEAT_PAYMENT_URL", "127.0.0.1:8083"),
            ("SEAT_PAYMENT_BREAKER_FAILURES", "0"),
            ("SEAT_PAYMENT_BREAKER_OPEN_MS", "soon"),
            ("SEAT_PAYMENT_TIMEOUT_MS", "10"),
        ] {
            let mut vars = base.to_vec();
            if name != "SEAT_PAYMENT_URL" {
                vars.push(("SEAT_PAYMENT_URL", "http://127.0.0.1:8083"));
            }
            vars.push((name, value));
            let err = load(&vars).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }
}
