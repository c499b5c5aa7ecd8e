//! The gateway's configuration, from environment variables, validated at start-up.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use studycafe_platform::{
    auth::AuthConfig,
    balancer::{CheckSettings, Replicas},
    config::{ConfigError, Env},
};

use crate::domain::{
    CorsPolicy, RateLimitPolicy, TrustedProxies, Upstream, rate_limit::RateLimitPolicyError,
};

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `GATEWAY_HTTP_ADDR` (default `127.0.0.1:8080`; port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `GATEWAY_<SERVICE>_URL`: where each service listens, one or more replicas.
    pub upstreams: UpstreamUrls,
    /// `GATEWAY_CHECK_PERIOD_MS` (default 1000) and `GATEWAY_CHECK_TIMEOUT_MS` (default 500):
    /// how often, and with what deadline, each replica's `/health/ready` is asked (only for
    /// services with more than one replica).
    pub check: CheckSettings,
    /// `GATEWAY_REUSE_PORT` (default true): bind the listener with `SO_REUSEPORT`, so a new
    /// gateway process can bind the same port while the old one drains (a rolling restart).
    pub reuse_port: bool,
    /// `GATEWAY_WEB_ROOT` (default `web/dist`, the web app's production build): the static
    /// files served for non-API paths; a missing directory serves 404s.
    pub web_root: PathBuf,
    /// `GATEWAY_UPSTREAM_TIMEOUT_MS` (default 10000): the deadline of a whole upstream
    /// response (of the response head only, for event streams).
    pub upstream_timeout: Duration,
    /// `GATEWAY_CONNECT_TIMEOUT_MS` (default 1000): the deadline of connecting to a service.
    pub connect_timeout: Duration,
    /// `GATEWAY_RATE_LIMIT_PER_SEC` (default 50) and `GATEWAY_RATE_LIMIT_BURST` (default 100).
    pub rate_limit: RateLimitPolicy,
    /// `GATEWAY_SHUTDOWN_GRACE_MS` (default 10000): how long in-flight requests may finish.
    pub shutdown_grace: Duration,
    /// `GATEWAY_TRUSTED_PROXIES` (default none): comma-separated CIDRs or addresses of the
    /// proxies in front of the gateway whose `X-Forwarded-For` names the client. From any
    /// other peer the header is ignored (and not passed on).
    pub trusted_proxies: TrustedProxies,
    /// `GATEWAY_CORS_ORIGINS` (default none: same-origin only): comma-separated origins
    /// (`https://cafe.example`) whose pages may call the API from a browser.
    pub cors: CorsPolicy,
    /// `AUTH_*`: the keys tokens are checked against.
    pub auth: AuthConfig,
}

/// The base URLs of every service's replicas behind the gateway (no trailing slash): each
/// variable takes one URL or several separated by commas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrls {
    pub identity: Replicas,
    pub seat: Replicas,
    pub registration: Replicas,
    pub payment: Replicas,
    pub seat_view: Replicas,
    pub notification: Replicas,
}

impl UpstreamUrls {
    pub fn of(&self, upstream: Upstream) -> &Replicas {
        match upstream {
            Upstream::Identity => &self.identity,
            Upstream::Seat => &self.seat,
            Upstream::Registration => &self.registration,
            Upstream::Payment => &self.payment,
            Upstream::SeatView => &self.seat_view,
            Upstream::Notification => &self.notification,
        }
    }

    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = |name: &str, port: u16| -> Result<Replicas, ConfigError> {
            let raw = env.or(name, format!("http://127.0.0.1:{port}"))?;
            Replicas::parse(name, &raw)
        };
        Ok(Self {
            identity: url("GATEWAY_IDENTITY_URL", 8085)?,
            seat: url("GATEWAY_SEAT_URL", 8081)?,
            registration: url("GATEWAY_REGISTRATION_URL", 8082)?,
            payment: url("GATEWAY_PAYMENT_URL", 8083)?,
            seat_view: url("GATEWAY_SEAT_VIEW_URL", 8084)?,
            notification: url("GATEWAY_NOTIFICATION_URL", 8086)?,
        })
    }
}

impl GatewayConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let per_sec: f64 = env.or("GATEWAY_RATE_LIMIT_PER_SEC", 50.0)?;
        let burst: u32 = env.or("GATEWAY_RATE_LIMIT_BURST", 100)?;
        let rate_limit = RateLimitPolicy::new(per_sec, burst).map_err(|e| {
            let name = match e {
                RateLimitPolicyError::Rate => "GATEWAY_RATE_LIMIT_PER_SEC",
                RateLimitPolicyError::Burst => "GATEWAY_RATE_LIMIT_BURST",
            };
            ConfigError::new(name, e.to_string())
        })?;
        Ok(Self {
            http_addr: env.or(
                "GATEWAY_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            upstreams: UpstreamUrls::from_env(env)?,
            check: CheckSettings::from_env(env, "GATEWAY")?,
            reuse_port: env.flag("GATEWAY_REUSE_PORT", true)?,
            web_root: env.or("GATEWAY_WEB_ROOT", PathBuf::from("web/dist"))?,
            upstream_timeout: env.millis(
                "GATEWAY_UPSTREAM_TIMEOUT_MS",
                Duration::from_secs(10),
                Duration::from_millis(50),
                Duration::from_secs(600),
            )?,
            connect_timeout: env.millis(
                "GATEWAY_CONNECT_TIMEOUT_MS",
                Duration::from_secs(1),
                Duration::from_millis(10),
                Duration::from_secs(60),
            )?,
            rate_limit,
            shutdown_grace: env.millis(
                "GATEWAY_SHUTDOWN_GRACE_MS",
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(120),
            )?,
            trusted_proxies: TrustedProxies::parse(
                &env.or("GATEWAY_TRUSTED_PROXIES", String::new())?,
            )
            .map_err(|e| ConfigError::new("GATEWAY_TRUSTED_PROXIES", e.to_string()))?,
            cors: CorsPolicy::parse(&env.or("GATEWAY_CORS_ORIGINS", String::new())?)
                .map_err(|e| ConfigError::new("GATEWAY_CORS_ORIGINS", e.to_string()))?,
            auth: AuthConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 1] = [(
        "AUTH_JWKS_URL",
        "http://127.0.0.1:8085/.well-known/jwks.json",
    )];

    fn load(extra: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_env(&Env::from_pairs(BASE.iter().chain(extra).copied()))
    }

    #[test]
    fn defaults() {
        let config = load(&[]).unwrap();
        assert_eq!(config.http_addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(config.upstreams.identity, "http://127.0.0.1:8085");
        assert_eq!(config.upstreams.of(Upstream::Seat), "http://127.0.0.1:8081");
        assert_eq!(config.upstreams.registration, "http://127.0.0.1:8082");
        assert_eq!(config.upstreams.payment, "http://127.0.0.1:8083");
        assert_eq!(config.upstreams.seat_view, "http://127.0.0.1:8084");
        assert_eq!(
            config.upstreams.of(Upstream::Notification),
            "http://127.0.0.1:8086"
        );
        assert_eq!(config.web_root, PathBuf::from("web/dist"));
        assert_eq!(config.upstream_timeout, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_secs(1));
        assert_eq!(config.rate_limit.per_sec(), 50.0);
        assert_eq!(config.rate_limit.burst(), 100);
        assert!(config.trusted_proxies.is_empty());
        assert!(config.cors.is_empty());
    }

    #[test]
    fn proxies_and_origins_are_lists() {
        let config = load(&[
            ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7,fd00::/8"),
            (
                "GATEWAY_CORS_ORIGINS",
                "https://cafe.example,http://localhost:5173",
            ),
        ])
        .unwrap();
        assert_eq!(config.trusted_proxies.networks().len(), 3);
        assert!(config.trusted_proxies.trusts("10.1.2.3".parse().unwrap()));
        assert!(config.cors.allows("http://localhost:5173"));
        assert!(!config.cors.allows("https://evil.example"));
    }

    #[test]
    fn upstream_urls_lose_their_trailing_slash() {
        let config = load(&[("GATEWAY_SEAT_URL", "http://seat.svc:8081/")]).unwrap();
        assert_eq!(config.upstreams.seat, "http://seat.svc:8081");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("GATEWAY_HTTP_ADDR", "localhost"),
            ("GATEWAY_SEAT_URL", "seat:8081"),
            ("GATEWAY_PAYMENT_URL", "ftp://payment"),
            ("GATEWAY_IDENTITY_URL", "http://identity?x=1"),
            ("GATEWAY_UPSTREAM_TIMEOUT_MS", "10"),
            ("GATEWAY_CONNECT_TIMEOUT_MS", "soon"),
            ("GATEWAY_RATE_LIMIT_PER_SEC", "0"),
            ("GATEWAY_RATE_LIMIT_BURST", "0"),
            ("GATEWAY_SHUTDOWN_GRACE_MS", "-1"),
            ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("GATEWAY_TRUSTED_PROXIES", "10.0.0.1/8"),
            ("GATEWAY_CORS_ORIGINS", "*"),
            ("GATEWAY_CORS_ORIGINS", "https://cafe.example/app"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value}: {err}");
        }
        let err = GatewayConfig::from_env(&Env::default()).unwrap_err();
        assert_eq!(err.variable, "AUTH_JWKS_URL");
    }

    #[test]
    fn upstreams_take_several_replicas_and_checks_have_defaults() {
        let config = load(&[(
            "GATEWAY_SEAT_URL",
            "http://127.0.0.1:8081, http://127.0.0.1:18081/",
        )])
        .unwrap();
        assert_eq!(
            config.upstreams.seat.urls(),
            ["http://127.0.0.1:8081", "http://127.0.0.1:18081"]
        );
        assert_eq!(config.upstreams.payment.len(), 1);
        assert_eq!(config.check, CheckSettings::default());
        assert!(config.reuse_port);
        for (name, value) in [
            ("GATEWAY_SEAT_URL", "http://127.0.0.1:8081,seat:18081"),
            ("GATEWAY_NOTIFICATION_URL", "http://127.0.0.1:8086,"),
            ("GATEWAY_CHECK_PERIOD_MS", "0"),
            ("GATEWAY_CHECK_TIMEOUT_MS", "later"),
            ("GATEWAY_REUSE_PORT", "maybe"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value}: {err}");
        }
    }
}
