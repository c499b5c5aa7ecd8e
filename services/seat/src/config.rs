//! The seat service's configuration, from environment variables, validated at start-up.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use studycafe_messaging::KafkaConfig;
use studycafe_platform::{
    auth::AuthConfig,
    config::{ConfigError, Env},
};

use crate::domain::ReservationPolicy;

#[derive(Debug, Clone)]
pub struct SeatConfig {
    /// `SEAT_HTTP_ADDR` (default `127.0.0.1:8081`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `SEAT_DATABASE_URL` (default `sqlite://var/seat.db`).
    pub database_url: String,
    /// `SEAT_CATALOGUE_FILE` (default: the built-in 40-seat cafe).
    pub catalogue_file: Option<PathBuf>,
    /// `SEAT_HOLD_SECS` (default 600), `SEAT_MAX_HOURS` (default 12),
    /// `SEAT_BOOKING_HORIZON_DAYS` (default 30).
    pub policy: ReservationPolicy,
    /// `SEAT_TICK_MS` (default 1000): how often holds, completions and payments are swept.
    pub tick: Duration,
    /// `SEAT_SHUTDOWN_GRACE_MS` (default 10000): how long in-flight requests may finish.
    pub shutdown_grace: Duration,
    pub kafka: KafkaConfig,
    pub auth: AuthConfig,
}

impl SeatConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url: String =
            env.or("SEAT_DATABASE_URL", "sqlite://var/seat.db".to_owned())?;
        if !database_url.starts_with("sqlite:") {
            return Err(ConfigError::new(
                "SEAT_DATABASE_URL",
                "must be a sqlite: URL (PostgreSQL support arrives with the production stack)",
            ));
        }
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
            database_url,
            catalogue_file: env.optional("SEAT_CATALOGUE_FILE")?,
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
            kafka: KafkaConfig::from_env(env, "seat")?,
            auth: AuthConfig::from_env(env)?,
        })
    }
}
