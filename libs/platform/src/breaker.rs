//! A circuit breaker for synchronous calls to another service.
//!
//! Why: when a dependency is down or drowning, calling it anyway costs every caller a full
//! timeout and keeps the dependency from recovering. After `failure_threshold` consecutive
//! failures the breaker *opens* and calls fail at once; after `open_for` it lets a few probe
//! calls through (*half-open*); a probe that succeeds closes it, one that fails opens it again.
//!
//! The state is exported as a Prometheus enum-style gauge,
//! `circuit_breaker_state{breaker="<name>",state="closed|open|half_open"}` (1 for the current
//! state, 0 for the others), and transitions are counted in
//! `circuit_breaker_transitions_total{breaker, to}`.
//!
//! Callers take a [`Permit`] before the call and report its outcome; a permit dropped without a
//! verdict (the caller was cancelled) frees its probe slot and counts as nothing.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before probing.
    pub open_for: Duration,
    /// Calls let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    const ALL: [Self; 3] = [Self::Closed, Self::Open, Self::HalfOpen];
}

/// The breaker is open: the call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {name} is open (retry in {retry_in:?})")]
pub struct BreakerOpen {
    pub name: &'static str,
    pub retry_in: Duration,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Instant,
    probes_in_flight: u32,
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    name: &'static str,
    settings: BreakerSettings,
    inner: Arc<Mutex<Inner>>,
}

impl CircuitBreaker {
    pub fn new(name: &'static str, settings: BreakerSettings) -> Self {
        let breaker = Self {
            name,
            settings: BreakerSettings {
                failure_threshold: settings.failure_threshold.max(1),
                half_open_probes: settings.half_open_probes.max(1),
                ..settings
            },
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: Instant::now(),
                probes_in_flight: 0,
            })),
        };
        breaker.export(BreakerState::Closed);
        breaker
    }

    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Asks to make a call.
    pub fn acquire(&self) -> Result<Permit, BreakerOpen> {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open {
            let elapsed = inner.opened_at.elapsed();
            if elapsed < self.settings.open_for {
                return Err(BreakerOpen {
                    name: self.name,
                    retry_in: self.settings.open_for - elapsed,
                });
            }
            self.transition(&mut inner, BreakerState::HalfOpen);
        }
        let probe = inner.state == BreakerState::HalfOpen;
        if probe {
            if inner.probes_in_flight >= self.settings.half_open_probes {
                return Err(BreakerOpen {
                    name: self.name,
                    retry_in: Duration::ZERO,
                });
            }
            inner.probes_in_flight += 1;
        }
        Ok(Permit {
            breaker: self.clone(),
            probe,
            settled: false,
        })
    }

    fn settle(&self, probe: bool, success: bool) {
        let mut inner = self.lock();
        if probe {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
        if success {
            inner.consecutive_failures = 0;
            if inner.state == BreakerState::HalfOpen && probe {
                self.transition(&mut inner, BreakerState::Closed);
            }
            return;
        }
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let trip = match inner.state {
            BreakerState::HalfOpen => probe,
            BreakerState::Closed => inner.consecutive_failures >= self.settings.failure_threshold,
            BreakerState::Open => false,
        };
        if trip {
            inner.opened_at = Instant::now();
            self.transition(&mut inner, BreakerState::Open);
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        if inner.state == to {
            return;
        }
        let from = inner.state;
        inner.state = to;
        if to == BreakerState::Closed {
            inner.consecutive_failures = 0;
        }
        match to {
            BreakerState::Open => tracing::warn!(
                breaker = self.name,
                from = from.as_str(),
                failures = inner.consecutive_failures,
                open_for_ms = self.settings.open_for.as_millis() as u64,
                "circuit breaker opened"
            ),
            _ => tracing::info!(
                breaker = self.name,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state changed"
            ),
        }
        metrics::counter!("circuit_breaker_transitions_total", "breaker" => self.name, "to" => to.as_str())
            .increment(1);
        self.export(to);
    }

    fn export(&self, current: BreakerState) {
        for state in BreakerState::ALL {
            metrics::gauge!("circuit_breaker_state", "breaker" => self.name, "state" => state.as_str())
                .set(if state == current { 1.0 } else { 0.0 });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain counters behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Leave to make one call. Report how it went with [`Permit::success`] or [`Permit::failure`].
#[derive(Debug)]
pub struct Permit {
    breaker: CircuitBreaker,
    probe: bool,
    settled: bool,
}

impl Permit {
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.settle(self.probe, true);
    }

    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.settle(self.probe, false);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            let mut inner = self.breaker.lock();
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            BreakerSettings {
                failure_threshold: 3,
                open_for: Duration::from_secs(10),
                half_open_probes: 1,
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_fails_fast() {
        let b = breaker();
        b.acquire().unwrap().failure();
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        let open = b.acquire().unwrap_err();
        assert!(open.retry_in <= Duration::from_secs(10) && open.retry_in > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker();
        b.acquire().unwrap().failure();
        b.acquire().unwrap().failure();
        b.acquire().unwrap().success();
        b.acquire().unwrap().failure();
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_and_closes_on_success() {
        let b = breaker();
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.acquire().unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.acquire().is_err(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().success();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_for_the_full_period() {
        let b = breaker();
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(b.acquire().is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.acquire().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_its_slot() {
        let b = breaker();
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(b.acquire().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
