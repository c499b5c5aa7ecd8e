//! The payment service's configuration, from environment variables, validated at start-up.

use std::{net::SocketAddr, time::Duration};

use studycafe_messaging::KafkaConfig;
use studycafe_platform::{
    auth::AuthConfig,
    config::{ConfigError, Env},
};

#[derive(Debug, Clone)]
pub struct PaymentConfig {
    /// `PAYMENT_HTTP_ADDR` (default `127.0.0.1:8083`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `PAYMENT_DATABASE_URL` (default `sqlite://var/payment.db`).
    pub database_url: String,
    /// `PAYMENT_REFUND_TICK_MS` (default 500): how often due refunds are looked for (a new
    /// refund also wakes the worker at once).
    pub refund_tick: Duration,
    /// `PAYMENT_SHUTDOWN_GRACE_MS` (default 10000): how long in-flight requests may finish.
    pub shutdown_grace: Duration,
    pub kafka: KafkaConfig,
    pub auth: AuthConfig,
}

impl PaymentConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url: String =
            env.or("PAYMENT_DATABASE_URL", "sqlite://var/payment.db".to_owned())?;
        if !database_url.starts_with("sqlite:") {
            return Err(ConfigError::new(
                "PAYMENT_DATABASE_URL",
                "must be a sqlite: URL (MySQL support arrives with the production stack)",
            ));
        }
        Ok(Self {
            http_addr: env.or(
                "PAYMENT_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8083)),
            )?,
            database_url,
            refund_tick: env.millis(
                "PAYMENT_REFUND_TICK_MS",
                Duration::from_millis(500),
                Duration::from_millis(50),
                Duration::from_secs(60),
            )?,
            shutdown_grace: env.millis(
                "PAYMENT_SHUTDOWN_GRACE_MS",
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(120),
            )?,
            kafka: KafkaConfig::from_env(env, "payment")?,
            auth: AuthConfig::from_env(env)?,
        })
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
        assert_eq!(config.refund_tick, Duration::from_millis(500));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.kafka.client_id, "payment");
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("PAYMENT_HTTP_ADDR", "localhost"),
            ("PAYMENT_DATABASE_URL", "mysql://db/payment"),
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
}
