//! Client-side load balancing over the replicas of one service.
//!
//! A caller (the gateway, seat's payment client) is configured with one or more base URLs per
//! service ([`Replicas`], comma-separated in the variable). A [`Balancer`] hands out replicas
//! in turn (round-robin) among those *in rotation*:
//!
//! - an **active check** ([`Balancer::check_until`]) asks every replica's `/health/ready` each
//!   period; a failing answer (not 2xx, no answer within the timeout) takes the replica out,
//!   a passing one puts it back;
//! - **passive ejection**: a connection failure (refused, or reset/closed before any response)
//!   takes the replica out at once, until its next passing check.
//!
//! And it decides when a request may be sent again ([`Balancer::call`]):
//!
//! - a connection that could not be established sent nothing, so the request is retried once
//!   on another replica, whatever its method;
//! - a request that may have reached a replica (a connection lost after sending, a timeout, any
//!   response, 5xx included) is sent again only if its method is idempotent (GET, HEAD), and
//!   then only after a lost connection, on another replica, once. A POST is never sent twice.
//!
//! With a single replica nothing changes from a plain client: there is nothing to check (no
//! other replica to send to) and nowhere else to retry.
//!
//! Metrics: `balancer_replicas_in_rotation{upstream}` (gauge) and
//! `balancer_ejections_total{upstream, reason="check|connection"}` (counter).

use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::Method;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Env};

/// The base URLs of a service's replicas (no trailing slash), at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas(Vec<String>);

impl Replicas {
    /// Parses `raw`, one or more http(s) base URLs separated by commas; an error names
    /// `variable`.
    pub fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        let urls = raw
            .split(',')
            .map(|url| base_url(variable, url.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(urls))
    }

    /// One replica, taken as given (less its trailing slash).
    pub fn one(base_url: &str) -> Self {
        Self(vec![base_url.trim_end_matches('/').to_owned()])
    }

    pub fn urls(&self) -> &[String] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The form of the variable: the URLs separated by commas.
impl fmt::Display for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// Compares with the variable's form, so a single replica reads like the URL it is.
impl PartialEq<str> for Replicas {
    fn eq(&self, other: &str) -> bool {
        other.split(',').eq(self.0.iter().map(String::as_str))
    }
}

impl PartialEq<&str> for Replicas {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

/// An http(s) URL with a host and no query, without its trailing slash (request paths are
/// appended to it as they are).
fn base_url(variable: &str, raw: &str) -> Result<String, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            variable,
            "has an empty entry (base URLs separated by commas)",
        ));
    }
    let url = reqwest::Url::parse(raw)
        .map_err(|e| ConfigError::new(variable, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            variable,
            format!("{raw:?} must be an http(s) URL with a host"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            variable,
            format!("{raw:?} must not have a query or fragment"),
        ));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// How the replicas' readiness is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSettings {
    /// Time between two rounds of checks.
    pub period: Duration,
    /// The deadline of one check: no answer by then is a failure.
    pub timeout: Duration,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
        }
    }
}

impl CheckSettings {
    /// `<prefix>_CHECK_PERIOD_MS` (default 1000) and `<prefix>_CHECK_TIMEOUT_MS` (default 500).
    pub fn from_env(env: &Env, prefix: &str) -> Result<Self, ConfigError> {
        let default = Self::default();
        let period_name = format!("{prefix}_CHECK_PERIOD_MS");
        let timeout_name = format!("{prefix}_CHECK_TIMEOUT_MS");
        let period = env.millis(
            &period_name,
            default.period,
            Duration::from_millis(50),
            Duration::from_secs(60),
        )?;
        let timeout = env.millis(
            &timeout_name,
            default.timeout,
            Duration::from_millis(10),
            Duration::from_secs(60),
        )?;
        Ok(Self { period, timeout })
    }
}

/// How far a failed attempt got, which decides ejection and retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was established: nothing was sent.
    NotSent,
    /// The connection broke (reset, closed) before any response: the request may have been
    /// received, and the replica is likely going away.
    Broken,
    /// Anything else (a timeout, a garbled answer): the replica may be busy with it.
    Other,
}

/// An attempt's error that says how far it got.
pub trait AttemptError {
    fn failure(&self) -> Failure;
}

impl AttemptError for reqwest::Error {
    fn failure(&self) -> Failure {
        // A connect timeout is both "connect" and "timeout": nothing was sent.
        if self.is_connect() {
            Failure::NotSent
        } else if self.is_timeout() {
            Failure::Other
        } else if connection_lost(self) {
            Failure::Broken
        } else {
            Failure::Other
        }
    }
}

/// Whether `e` comes from a connection the peer closed or reset before answering.
fn connection_lost(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>()
            && hyper.is_incomplete_message()
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        cause = e.source();
    }
    false
}

#[derive(Debug)]
struct Replica {
    base_url: String,
    in_rotation: AtomicBool,
}

#[derive(Debug)]
struct Inner {
    upstream: String,
    replicas: Vec<Replica>,
    next: AtomicUsize,
    http: reqwest::Client,
    settings: CheckSettings,
}

/// Round-robin over a service's replicas in rotation, with the retry rule; cheap to clone.
#[derive(Debug, Clone)]
pub struct Balancer {
    inner: Arc<Inner>,
}

impl Balancer {
    /// `upstream` names the service in logs and metrics; `http` makes the checks.
    pub fn new(
        upstream: impl Into<String>,
        replicas: &Replicas,
        settings: CheckSettings,
        http: reqwest::Client,
    ) -> Self {
        // All in rotation at the start: the first check follows at once, and a request before
        // it should be tried rather than refused.
        let replicas = replicas
            .urls()
            .iter()
            .map(|url| Replica {
                base_url: url.clone(),
                in_rotation: AtomicBool::new(true),
            })
            .collect();
        let balancer = Self {
            inner: Arc::new(Inner {
                upstream: upstream.into(),
                replicas,
                next: AtomicUsize::new(0),
                http,
                settings,
            }),
        };
        balancer.publish();
        balancer
    }

    pub fn upstream(&self) -> &str {
        &self.inner.upstream
    }

    /// The base URLs of the replicas in rotation now.
    pub fn in_rotation(&self) -> Vec<&str> {
        self.inner
            .replicas
            .iter()
            .filter(|r| r.in_rotation.load(Ordering::Relaxed))
            .map(|r| r.base_url.as_str())
            .collect()
    }

    /// Runs `attempt` with a replica's base URL, and once more on another replica when the
    /// retry rule allows it (see the module's documentation). The error returned is the last
    /// attempt's.
    pub async fn call<T, E, F, Fut>(&self, method: &Method, mut attempt: F) -> Result<T, E>
    where
        E: AttemptError,
        F: FnMut(&str) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let first = self
            .pick(None)
            .expect("a balancer has at least one replica");
        let error = match attempt(&self.inner.replicas[first].base_url).await {
            Ok(answer) => return Ok(answer),
            Err(e) => e,
        };
        let failure = error.failure();
        if matches!(failure, Failure::NotSent | Failure::Broken) {
            self.eject(first, "connection");
        }
        let again = match failure {
            Failure::NotSent => true,
            Failure::Broken => is_idempotent(method),
            Failure::Other => false,
        };
        match self.pick(Some(first)).filter(|_| again) {
            Some(second) => {
                tracing::debug!(
                    upstream = %self.inner.upstream,
                    from = %self.inner.replicas[first].base_url,
                    to = %self.inner.replicas[second].base_url,
                    ?failure,
                    "retrying on another replica"
                );
                metrics::counter!("balancer_retries_total", "upstream" => self.inner.upstream.clone())
                    .increment(1);
                let result = attempt(&self.inner.replicas[second].base_url).await;
                if let Err(e) = &result
                    && matches!(e.failure(), Failure::NotSent | Failure::Broken)
                {
                    self.eject(second, "connection");
                }
                result
            }
            None => Err(error),
        }
    }

    /// The next replica in turn among those in rotation, other than `avoid`.
    fn pick(&self, avoid: Option<usize>) -> Option<usize> {
        let replicas = &self.inner.replicas;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..replicas.len())
            .map(|i| (start + i) % replicas.len())
            .filter(|&i| Some(i) != avoid);
        // None in rotation: try them all anyway. The checker may be behind (every replica
        // restarted within one period), and a dead replica refuses at once, which costs little
        // and is retried elsewhere, whereas refusing here would fail for sure.
        candidates
            .clone()
            .find(|&i| replicas[i].in_rotation.load(Ordering::Relaxed))
            .or_else(|| candidates.clone().next())
    }

    fn eject(&self, index: usize, reason: &'static str) {
        let replica = &self.inner.replicas[index];
        if replica.in_rotation.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                upstream = %self.inner.upstream,
                replica = %replica.base_url,
                reason,
                "replica taken out of rotation"
            );
            metrics::counter!("balancer_ejections_total", "upstream" => self.inner.upstream.clone(), "reason" => reason)
                .increment(1);
            self.publish();
        }
    }

    fn admit(&self, index: usize) {
        let replica = &self.inner.replicas[index];
        if !replica.in_rotation.swap(true, Ordering::Relaxed) {
            tracing::info!(
                upstream = %self.inner.upstream,
                replica = %replica.base_url,
                "replica back in rotation"
            );
            self.publish();
        }
    }

    fn publish(&self) {
        let count = self
            .inner
            .replicas
            .iter()
            .filter(|r| r.in_rotation.load(Ordering::Relaxed))
            .count();
        metrics::gauge!("balancer_replicas_in_rotation", "upstream" => self.inner.upstream.clone())
            .set(count as f64);
    }

    /// Checks every replica now, concurrently, and updates the rotation.
    pub async fn check_once(&self) {
        let checks = self.inner.replicas.iter().map(|replica| async {
            let url = format!("{}/health/ready", replica.base_url);
            let answer = self
                .inner
                .http
                .get(url)
                .timeout(self.inner.settings.timeout)
                .send()
                .await;
            matches!(answer, Ok(response) if response.status().is_success())
        });
        let passed = futures::future::join_all(checks).await;
        for (index, ready) in passed.into_iter().enumerate() {
            if ready {
                self.admit(index);
            } else {
                self.eject(index, "check");
            }
        }
    }

    /// Checks the replicas every period until `shutdown`. With one replica there is nothing to
    /// choose between, so it returns at once (and calls go out as without a balancer).
    pub async fn check_until(&self, shutdown: CancellationToken) {
        if self.inner.replicas.len() < 2 {
            return;
        }
        let mut every = tokio::time::interval(self.inner.settings.period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => self.check_once().await,
            }
        }
    }
}

/// Methods whose repetition has no other effect than one request's (RFC 9110 §9.2.2) and that
/// are safe to repeat blindly. PUT and DELETE are idempotent too, but a repeated one can answer
/// differently (404 after a delete that went through), so they are not retried.
fn is_idempotent(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_comma_separated_urls_without_trailing_slashes() {
        let one = Replicas::parse("X_URL", "http://a:1/").unwrap();
        assert_eq!(one, "http://a:1");
        let two = Replicas::parse("X_URL", "http://a:1, https://b:2/").unwrap();
        assert_eq!(two.urls(), ["http://a:1", "https://b:2"]);
        assert_eq!(two.to_string(), "http://a:1,https://b:2");
        for bad in [
            "",
            "a:1",
            "http://a:1,",
            "http://a:1,,http://b:2",
            "http://a:1,ftp://b",
            "http://a?x=1",
        ] {
            let err = Replicas::parse("X_URL", bad).unwrap_err();
            assert_eq!(err.variable, "X_URL", "{bad:?}: {err}");
        }
    }

    #[test]
    fn check_settings_have_defaults_and_name_bad_values() {
        let env = Env::from_pairs([("P_CHECK_PERIOD_MS", "250")]);
        let settings = CheckSettings::from_env(&env, "P").unwrap();
        assert_eq!(settings.period, Duration::from_millis(250));
        assert_eq!(settings.timeout, Duration::from_millis(500));
        let env = Env::from_pairs([("P_CHECK_TIMEOUT_MS", "soon")]);
        let err = CheckSettings::from_env(&env, "P").unwrap_err();
        assert_eq!(err.variable, "P_CHECK_TIMEOUT_MS");
    }

    fn balancer(n: usize) -> Balancer {
        let urls: Vec<String> = (0..n).map(|i| format!("http://r{i}")).collect();
        Balancer::new(
            "test",
            &Replicas::parse("X", &urls.join(",")).unwrap(),
            CheckSettings::default(),
            reqwest::Client::new(),
        )
    }

    #[test]
    fn picks_go_round_skipping_replicas_out_of_rotation() {
        let b = balancer(3);
        let picks: Vec<usize> = (0..4).map(|_| b.pick(None).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
        b.eject(1, "check");
        for _ in 0..6 {
            assert_ne!(b.pick(None), Some(1));
        }
        assert_eq!(b.in_rotation(), ["http://r0", "http://r2"]);
        b.admit(1);
        assert_eq!(b.in_rotation().len(), 3);
    }

    #[test]
    fn with_none_in_rotation_every_replica_is_tried() {
        let b = balancer(2);
        b.eject(0, "check");
        b.eject(1, "check");
        assert_eq!(b.pick(None), Some(0));
        assert_eq!(b.pick(None), Some(1));
        // A retry goes elsewhere, and with one replica nowhere.
        assert_eq!(b.pick(Some(1)), Some(0));
        assert_eq!(balancer(1).pick(Some(0)), None);
    }
}
