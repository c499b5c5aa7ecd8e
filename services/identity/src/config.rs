//! The identity service's configuration, from environment variables, validated at start-up.
//!
//! Secrets (the admin password, client secrets) are never echoed in an error message or a
//! `Debug` print.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use studycafe_platform::config::{ConfigError, Env};

use crate::domain::{
    Client, ClientId, ClientRegistry, ClientSecret, Password, TokenPolicy, Username,
    throttle::ThrottlePolicy,
};

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// `IDENTITY_HTTP_ADDR` (default `127.0.0.1:8085`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `IDENTITY_DATABASE_URL` (default `sqlite://var/identity.db`).
    pub database_url: String,
    /// Which store `database_url` names (by its scheme).
    pub database: DatabaseKind,
    /// `IDENTITY_DATABASE_MAX_CONNECTIONS` (default 10, 1..=200): PostgreSQL connections per
    /// replica. Sign-ins are argon2-bound, not database-bound, so a few suffice.
    pub database_max_connections: u32,
    /// `IDENTITY_KEYS_DIR` (default `var/identity-keys`): the signing keys, one PEM per key.
    pub keys_dir: PathBuf,
    /// `IDENTITY_ISSUER` (default `studycafe-identity`), `IDENTITY_AUDIENCE` (default
    /// `studycafe`), `IDENTITY_TOKEN_TTL_SECS` (default 3600, 60..=86400).
    pub tokens: TokenPolicy,
    /// `IDENTITY_ADMIN_USERNAME` + `IDENTITY_ADMIN_PASSWORD` (both or neither).
    pub admin: Option<AdminAccount>,
    /// `IDENTITY_DEMO_ACCOUNTS` (default false): create the demo customers alice and bob.
    pub demo_accounts: bool,
    /// `IDENTITY_CLIENTS`: comma-separated `id:secret` pairs (default none).
    pub clients: ClientRegistry,
    /// Sign-in throttling per username: `IDENTITY_SIGN_IN_ALLOWED_FAILURES` (default 5,
    /// 1..=100) wrong passwords in a row cost nothing; the next locks the username out for
    /// `IDENTITY_SIGN_IN_LOCKOUT_SECS` (default 30, 1..=3600), doubling with each further
    /// failure up to `IDENTITY_SIGN_IN_MAX_LOCKOUT_SECS` (default 900, at least the first).
    /// A failure an hour after the previous one starts the count again.
    pub sign_in_throttle: ThrottlePolicy,
    /// `IDENTITY_SHUTDOWN_GRACE_MS` (default 10000): how long in-flight requests may finish.
    pub shutdown_grace: Duration,
    /// `HTTP_MAX_WRITES_IN_FLIGHT` (default 256): write requests running at once, detached
    /// from their clients; one more is refused with 503.
    pub writes_in_flight: usize,
}

/// The user store engines, told apart by the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:` — embedded, one instance (or replicas on one host sharing the file).
    Sqlite,
    /// `postgres:` / `postgresql:` — production, any number of replicas.
    Postgres,
}

impl DatabaseKind {
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

/// The administrator account ensured at start-up.
#[derive(Debug, Clone)]
pub struct AdminAccount {
    pub username: Username,
    pub password: Password,
}

impl IdentityConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url: String = env.or(
            "IDENTITY_DATABASE_URL",
            "sqlite://var/identity.db".to_owned(),
        )?;
        let database = DatabaseKind::of(&database_url).ok_or_else(|| {
            ConfigError::new(
                "IDENTITY_DATABASE_URL",
                "must be a sqlite: or postgres: URL",
            )
        })?;
        let database_max_connections =
            env.within("IDENTITY_DATABASE_MAX_CONNECTIONS", 10, 1..=200)?;
        let ttl_secs: i64 = env.or("IDENTITY_TOKEN_TTL_SECS", 3600)?;
        if !(60..=86_400).contains(&ttl_secs) {
            return Err(ConfigError::new(
                "IDENTITY_TOKEN_TTL_SECS",
                "must be between 60 and 86400",
            ));
        }
        Ok(Self {
            http_addr: env.or(
                "IDENTITY_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8085)),
            )?,
            database_url,
            database,
            database_max_connections,
            keys_dir: keys_dir(env)?,
            tokens: TokenPolicy {
                issuer: env.or("IDENTITY_ISSUER", "studycafe-identity".to_owned())?,
                audience: env.or("IDENTITY_AUDIENCE", "studycafe".to_owned())?,
                ttl: chrono::Duration::seconds(ttl_secs),
            },
            admin: admin(env)?,
            demo_accounts: env.flag("IDENTITY_DEMO_ACCOUNTS", false)?,
            clients: clients(env)?,
            sign_in_throttle: sign_in_throttle(env)?,
            shutdown_grace: env.millis(
                "IDENTITY_SHUTDOWN_GRACE_MS",
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(120),
            )?,
            writes_in_flight: studycafe_platform::detach::limit_from_env(env)?,
        })
    }
}

fn sign_in_throttle(env: &Env) -> Result<ThrottlePolicy, ConfigError> {
    let allowed_failures = env.within("IDENTITY_SIGN_IN_ALLOWED_FAILURES", 5u32, 1..=100)?;
    let first: i64 = env.within("IDENTITY_SIGN_IN_LOCKOUT_SECS", 30, 1..=3600)?;
    let max: i64 = env.within("IDENTITY_SIGN_IN_MAX_LOCKOUT_SECS", 900, 1..=86_400)?;
    if max < first {
        return Err(ConfigError::new(
            "IDENTITY_SIGN_IN_MAX_LOCKOUT_SECS",
            "must be at least IDENTITY_SIGN_IN_LOCKOUT_SECS",
        ));
    }
    Ok(ThrottlePolicy {
        allowed_failures,
        first_lockout: chrono::Duration::seconds(first),
        max_lockout: chrono::Duration::seconds(max),
        forget_after: chrono::Duration::hours(1),
    })
}

/// `IDENTITY_KEYS_DIR` alone: all the `add-key` sub-command needs.
pub fn keys_dir(env: &Env) -> Result<PathBuf, ConfigError> {
    env.or("IDENTITY_KEYS_DIR", PathBuf::from("var/identity-keys"))
}

fn admin(env: &Env) -> Result<Option<AdminAccount>, ConfigError> {
    const USER: &str = "IDENTITY_ADMIN_USERNAME";
    const PASSWORD: &str = "IDENTITY_ADMIN_PASSWORD";
    match (env.raw(USER), env.raw(PASSWORD)) {
        (None, None) => Ok(None),
        (Some(username), Some(password)) => Ok(Some(AdminAccount {
            username: Username::parse(username).map_err(|e| ConfigError::new(USER, e.message))?,
            // The message states the rule, never the value.
            password: Password::parse(password)
                .map_err(|e| ConfigError::new(PASSWORD, e.message))?,
        })),
        (Some(_), None) => Err(ConfigError::new(
            PASSWORD,
            "is required when IDENTITY_ADMIN_USERNAME is set",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            USER,
            "is required when IDENTITY_ADMIN_PASSWORD is set",
        )),
    }
}

fn clients(env: &Env) -> Result<ClientRegistry, ConfigError> {
    const NAME: &str = "IDENTITY_CLIENTS";
    let Some(raw) = env.raw(NAME) else {
        return Ok(ClientRegistry::default());
    };
    let mut clients = Vec::new();
    for (n, pair) in raw.split(',').map(str::trim).enumerate() {
        if pair.is_empty() {
            continue;
        }
        let Some((id, secret)) = pair.split_once(':') else {
            return Err(ConfigError::new(
                NAME,
                format!("entry {} is not id:secret", n + 1),
            ));
        };
        let id = ClientId::parse(id).map_err(|e| ConfigError::new(NAME, e))?;
        if secret.is_empty() {
            return Err(ConfigError::new(
                NAME,
                format!("client {id} has an empty secret"),
            ));
        }
        clients.push(Client::new(id, &ClientSecret::new(secret)));
    }
    ClientRegistry::new(clients).map_err(|e| ConfigError::new(NAME, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<IdentityConfig, ConfigError> {
        IdentityConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults() {
        let config = load(&[]).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8085");
        assert_eq!(config.database_url, "sqlite://var/identity.db");
        assert_eq!(config.database, DatabaseKind::Sqlite);
        let pg = load(&[("IDENTITY_DATABASE_URL", "postgres://db/identity")]).unwrap();
        assert_eq!(pg.database, DatabaseKind::Postgres);
        assert_eq!(config.keys_dir, PathBuf::from("var/identity-keys"));
        assert_eq!(config.tokens.issuer, "studycafe-identity");
        assert_eq!(config.tokens.audience, "studycafe");
        assert_eq!(config.tokens.ttl.num_seconds(), 3600);
        assert!(config.admin.is_none());
        assert!(!config.demo_accounts);
        assert!(config.clients.is_empty());
    }

    #[test]
    fn sign_in_throttle_defaults_and_bounds() {
        let config = load(&[]).unwrap();
        assert_eq!(config.sign_in_throttle.allowed_failures, 5);
        assert_eq!(config.sign_in_throttle.first_lockout.num_seconds(), 30);
        assert_eq!(config.sign_in_throttle.max_lockout.num_seconds(), 900);
        for (name, value) in [
            ("IDENTITY_SIGN_IN_ALLOWED_FAILURES", "0"),
            ("IDENTITY_SIGN_IN_LOCKOUT_SECS", "0"),
            ("IDENTITY_SIGN_IN_LOCKOUT_SECS", "soon"),
            ("IDENTITY_SIGN_IN_MAX_LOCKOUT_SECS", "10"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value}");
        }
    }

    #[test]
    fn admin_needs_both_and_a_valid_password_that_is_never_echoed() {
        let err = load(&[("IDENTITY_ADMIN_USERNAME", "root")]).unwrap_err();
        assert_eq!(err.variable, "IDENTITY_ADMIN_PASSWORD");
        let err = load(&[("IDENTITY_ADMIN_PASSWORD", "long enough")]).unwrap_err();
        assert_eq!(err.variable, "IDENTITY_ADMIN_USERNAME");
        let err = load(&[
            ("IDENTITY_ADMIN_USERNAME", "root"),
            ("IDENTITY_ADMIN_PASSWORD", "tiny"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "IDENTITY_ADMIN_PASSWORD");
        assert!(!err.to_string().contains("tiny"));
        let config = load(&[
            ("IDENTITY_ADMIN_USERNAME", "Root"),
            ("IDENTITY_ADMIN_PASSWORD", "root-password"),
        ])
        .unwrap();
        assert_eq!(config.admin.as_ref().unwrap().username.as_str(), "root");
        assert!(!format!("{config:?}").contains("root-password"));
    }

    #[test]
    fn clients_are_parsed_and_secrets_stay_hidden() {
        let config = load(&[(
            "IDENTITY_CLIENTS",
            "seat-service:s3cret-s3cret, payment-service:p4ss:word",
        )])
        .unwrap();
        assert_eq!(config.clients.len(), 2);
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(
            config
                .clients
                .authenticate("payment-service", &ClientSecret::new("p4ss:word"))
                .is_some()
        );
        for bad in ["seat-service", "seat-service:", "a b:x", "x:1,x:2"] {
            let err = load(&[("IDENTITY_CLIENTS", bad)]).unwrap_err();
            assert_eq!(err.variable, "IDENTITY_CLIENTS", "{bad}");
            assert!(!err.to_string().contains(":1"), "{err}");
        }
    }

    #[test]
    fn bounds_and_urls() {
        for (name, value) in [
            ("IDENTITY_TOKEN_TTL_SECS", "59"),
            ("IDENTITY_TOKEN_TTL_SECS", "86401"),
            ("IDENTITY_DATABASE_URL", "mysql://x"),
            ("IDENTITY_DATABASE_URL", "var/identity.db"),
            ("IDENTITY_HTTP_ADDR", "nowhere"),
            ("IDENTITY_DEMO_ACCOUNTS", "maybe"),
            ("IDENTITY_DATABASE_MAX_CONNECTIONS", "0"),
            ("IDENTITY_DATABASE_MAX_CONNECTIONS", "201"),
            ("IDENTITY_SHUTDOWN_GRACE_MS", "soon"),
        ] {
            assert_eq!(load(&[(name, value)]).unwrap_err().variable, name);
        }
    }
}
