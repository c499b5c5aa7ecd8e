//! Heartbeats of a service's long-running loops, the substance of `/health/live`.
//!
//! A process that answers HTTP can still be useless: a consumer stuck in a handler that never
//! returns, a relay wedged on a lock, a timer loop that stopped ticking. Each loop registers a
//! [`Heartbeat`] and says what it is doing: *busy* while it works on a unit of work (a message,
//! a round, a sweep) and *waiting* while it legitimately waits (an empty topic, a backoff while
//! its database or the broker is down). A loop is **stalled** when it has been busy without
//! progress for longer than its limit; only that fails liveness. Waiting never does: restarting
//! every replica during a dependency outage would not bring the dependency back.
//!
//! Marking is cheap (two atomics), so loops mark every unit of work.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::config::{ConfigError, Env};

/// `LIVENESS_STALL_SECS`: how long a loop may be busy without progress before the process is
/// reported not live.
pub const STALL_VARIABLE: &str = "LIVENESS_STALL_SECS";

/// The default stall limit: longer than any legitimate unit of work (a Kafka delivery times
/// out after 15 s, a database call after its pool's acquire timeout), short enough that an
/// orchestrator replaces a wedged instance within a couple of minutes.
pub const DEFAULT_STALL: Duration = Duration::from_secs(60);

/// The liveness settings every service with loops reads at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessConfig {
    /// How long a loop may be busy without progress.
    pub stall_limit: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            stall_limit: DEFAULT_STALL,
        }
    }
}

impl LivenessConfig {
    /// Reads `LIVENESS_STALL_SECS` (1–3600, default 60). Keep it above the longest unit of
    /// work: a relay round against a broker that is away lasts up to Kafka's 15 s delivery
    /// timeout, a database call up to its pool's acquire timeout (5–10 s). Short values are for
    /// tests and demonstrations.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secs = env.within(STALL_VARIABLE, DEFAULT_STALL.as_secs(), 1..=3600)?;
        Ok(Self {
            stall_limit: Duration::from_secs(secs),
        })
    }
}

/// The registry of one process's loops.
#[derive(Debug, Clone)]
pub struct Heartbeats {
    epoch: Instant,
    default_limit: Duration,
    loops: Arc<Mutex<Vec<Arc<LoopState>>>>,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self::new(LivenessConfig::default())
    }
}

#[derive(Debug)]
struct LoopState {
    name: String,
    limit: Duration,
    busy: AtomicBool,
    /// Milliseconds since the registry's epoch at the last progress mark.
    progress_at: AtomicU64,
    /// Dropped handles leave their state behind as finished, never stalled.
    finished: AtomicBool,
}

/// A loop found stalled: its name and how long it has been busy without progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    pub name: String,
    pub busy_for: Duration,
    pub limit: Duration,
}

impl Heartbeats {
    pub fn new(config: LivenessConfig) -> Self {
        Self {
            epoch: Instant::now(),
            default_limit: config.stall_limit,
            loops: Arc::default(),
        }
    }

    /// Registers a loop with the process's stall limit. It starts waiting.
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        self.register_with_limit(name, self.default_limit)
    }

    /// Registers a loop with a limit of its own.
    pub fn register_with_limit(&self, name: impl Into<String>, limit: Duration) -> Heartbeat {
        let state = Arc::new(LoopState {
            name: name.into(),
            limit,
            busy: AtomicBool::new(false),
            progress_at: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        });
        if let Ok(mut loops) = self.loops.lock() {
            loops.retain(|l| !l.finished.load(Ordering::Relaxed));
            loops.push(state.clone());
        }
        Heartbeat {
            state,
            epoch: self.epoch,
        }
    }

    /// The loops stalled now; empty when the process is live.
    pub fn stalled(&self) -> Vec<Stalled> {
        let now = millis_since(self.epoch);
        let Ok(loops) = self.loops.lock() else {
            return Vec::new();
        };
        loops
            .iter()
            .filter(|l| l.busy.load(Ordering::Acquire) && !l.finished.load(Ordering::Relaxed))
            .filter_map(|l| {
                let busy_for = Duration::from_millis(
                    now.saturating_sub(l.progress_at.load(Ordering::Acquire)),
                );
                (busy_for > l.limit).then(|| Stalled {
                    name: l.name.clone(),
                    busy_for,
                    limit: l.limit,
                })
            })
            .collect()
    }

    /// The names of the registered loops (for logs and tests).
    pub fn names(&self) -> Vec<String> {
        self.loops
            .lock()
            .map(|loops| loops.iter().map(|l| l.name.clone()).collect())
            .unwrap_or_default()
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One loop's handle. Cloning shares the state (a loop and its helpers mark the same beat).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    state: Arc<LoopState>,
    epoch: Instant,
}

impl Heartbeat {
    /// A heartbeat registered nowhere: for code run outside a service (tools, some tests).
    pub fn detached(name: impl Into<String>) -> Self {
        Heartbeats::default().register(name)
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Progress: the loop is busy and just moved on (started or finished a step of work).
    pub fn beat(&self) {
        self.state
            .progress_at
            .store(millis_since(self.epoch), Ordering::Release);
        self.state.busy.store(true, Ordering::Release);
    }

    /// The loop waits legitimately (no work, or a backoff): never stalled while so.
    pub fn waiting(&self) {
        self.state.busy.store(false, Ordering::Release);
    }

    /// Busy from now until the guard drops, then waiting: a unit of work that cannot forget to
    /// mark its end, even when cancelled.
    #[must_use = "the loop is busy only while the guard lives"]
    pub fn busy(&self) -> BusyGuard<'_> {
        self.beat();
        BusyGuard(self)
    }

    /// Runs `future` as waiting (a backoff, an idle wait), busy again afterwards.
    pub async fn wait_for<F: Future>(&self, future: F) -> F::Output {
        self.waiting();
        let output = future.await;
        self.beat();
        output
    }
}

/// See [`Heartbeat::busy`].
#[derive(Debug)]
pub struct BusyGuard<'a>(&'a Heartbeat);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting();
    }
}

/// Marks a loop finished when its runner returns, so a loop that ended on purpose (shutdown)
/// is not reported. Hold it for the loop's lifetime.
#[derive(Debug)]
pub struct Running(Heartbeat);

impl Heartbeat {
    /// See [`Running`].
    pub fn running(&self) -> Running {
        self.state.finished.store(false, Ordering::Relaxed);
        Running(self.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.state.busy.store(false, Ordering::Release);
        self.0.state.finished.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(limit_ms: u64) -> Heartbeats {
        Heartbeats::new(LivenessConfig {
            stall_limit: Duration::from_millis(limit_ms),
        })
    }

    #[test]
    fn a_waiting_loop_is_never_stalled() {
        let beats = registry(0);
        let beat = beats.register("consumer");
        beat.waiting();
        std::thread::sleep(Duration::from_millis(5));
        assert!(beats.stalled().is_empty());
    }

    #[test]
    fn a_busy_loop_without_progress_is_stalled_until_it_moves() {
        let beats = registry(1);
        let beat = beats.register("relay");
        let guard = beat.busy();
        std::thread::sleep(Duration::from_millis(5));
        let stalled = beats.stalled();
        assert_eq!(stalled.len(), 1);
        assert_eq!(stalled[0].name, "relay");
        drop(guard);
        assert!(beats.stalled().is_empty(), "waiting again after the work");
    }

    #[test]
    fn progress_resets_the_clock() {
        let beats = registry(60_000);
        let beat = beats.register("timers");
        beat.beat();
        assert!(beats.stalled().is_empty());
    }

    #[test]
    fn a_finished_loop_is_not_reported() {
        let beats = registry(0);
        let beat = beats.register("settlement");
        let running = beat.running();
        beat.beat();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(beats.stalled().len(), 1);
        drop(running);
        assert!(beats.stalled().is_empty());
    }

    #[test]
    fn the_stall_limit_is_validated() {
        let env = Env::from_pairs([(STALL_VARIABLE, "0")]);
        let err = LivenessConfig::from_env(&env).unwrap_err();
        assert_eq!(err.variable, STALL_VARIABLE);
        let env = Env::from_pairs([(STALL_VARIABLE, "3601")]);
        assert!(LivenessConfig::from_env(&env).is_err());
        let env = Env::from_pairs([(STALL_VARIABLE, "30")]);
        assert_eq!(
            LivenessConfig::from_env(&env).unwrap().stall_limit,
            Duration::from_secs(30)
        );
        assert_eq!(
            LivenessConfig::from_env(&Env::default()).unwrap(),
            LivenessConfig::default()
        );
    }
}
