//! Write requests that finish whatever their client does.
//!
//! Why: hyper drops a handler's future the moment its client disconnects (a phone on a bad
//! network, a load tester closing its connections, the gateway giving up on its own client). A
//! use case dropped part-way may have asked a card processor and not recorded the answer, or
//! taken a claim it never releases. So a write route runs its handler as a task of its own
//! ([`detach`]): a client that hangs up no longer cancels it, and an abandoned reservation
//! either happened (an `Idempotency-Key` retry returns it) or did not, never half.
//!
//! Bounded: at most `limit` detached requests run at once; one more is refused at once with a
//! 503 problem (`/problems/overloaded`, `Retry-After: 1`) rather than piling up work nobody may
//! be waiting for. The limit is `HTTP_MAX_WRITES_IN_FLIGHT` ([`limit_from_env`]). In flight:
//! the `http_detached_in_flight` gauge; refusals: `http_detached_refused_total`.
//!
//! Shutdown: [`Detached::drain`] waits (bounded) for the requests still running, so a
//! graceful stop lets them finish like any other request.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument as _;

use crate::{
    Problem,
    config::{ConfigError, Env},
};

/// The variable that bounds each service's detached requests.
pub const LIMIT_VARIABLE: &str = "HTTP_MAX_WRITES_IN_FLIGHT";
/// Its default: far more than a healthy store has in flight, far less than a storm.
pub const DEFAULT_LIMIT: usize = 256;

/// `HTTP_MAX_WRITES_IN_FLIGHT` (default 256, 1–100000).
pub fn limit_from_env(env: &Env) -> Result<usize, ConfigError> {
    env.within(LIMIT_VARIABLE, DEFAULT_LIMIT, 1..=100_000)
}

/// Runs work to completion, detached from whoever asked for it, at most `limit` at once.
#[derive(Debug, Clone)]
pub struct Detached {
    permits: Arc<Semaphore>,
    limit: usize,
    tasks: TaskTracker,
    /// Refusing requests now (logged once per episode, not once per request).
    refusing: Arc<AtomicBool>,
}

/// A slot of the limit, given back (and the gauge updated) when the task ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    detached: Detached,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permit is released after this body: count it as gone already.
        self.detached.export(1);
    }
}

impl Detached {
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            tasks: TaskTracker::new(),
            refusing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Runs `work` as a task of its own and waits for its output. Dropping the returned future
    /// does not cancel the work. `Err` (a problem to answer with) when the limit is reached,
    /// when the work panicked, or when the runtime is shutting down.
    pub async fn run<F>(&self, work: F) -> Result<F::Output, Problem>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            metrics::counter!("http_detached_refused_total").increment(1);
            if !self.refusing.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    limit = self.limit,
                    "overloaded: refusing write requests while {} are in progress \
                     (logged once until one is taken again; counted in http_detached_refused_total)",
                    self.limit
                );
            }
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded",
                "too many requests are in progress; try again shortly",
            )
            .retry_after(1));
        };
        if self.refusing.swap(false, Ordering::AcqRel) {
            tracing::info!("taking write requests again");
        }
        let slot = Slot {
            _permit: permit,
            detached: self.clone(),
        };
        self.export(0);
        let task = self.tasks.spawn(
            async move {
                let _slot = slot;
                work.await
            }
            // Logs of the work stay in the request's span.
            .instrument(tracing::Span::current()),
        );
        match task.await {
            Ok(output) => Ok(output),
            Err(e) if e.is_panic() => Err(Problem::internal(&"a request handler panicked")),
            Err(_) => Err(Problem::unavailable("the service is shutting down")),
        }
    }

    /// Once `shutdown` is cancelled, waits until every detached request has finished, at most
    /// `within`: run it beside the HTTP server, whose own grace covers only the requests whose
    /// clients are still connected.
    pub async fn drain_on(&self, shutdown: CancellationToken, within: Duration) -> bool {
        shutdown.cancelled().await;
        self.drain(within).await
    }

    /// Waits until every detached request has finished, at most `within`. False when some
    /// were still running.
    pub async fn drain(&self, within: Duration) -> bool {
        self.tasks.close();
        let drained = tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                running = self.tasks.len(),
                "write requests still running at shutdown; abandoning them"
            );
        }
        drained
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    fn export(&self, leaving: usize) {
        metrics::gauge!("http_detached_in_flight")
            .set(self.in_flight().saturating_sub(leaving) as f64);
    }
}

/// Middleware for a write route: its handler (extractors included) runs as a detached task.
///
/// ```ignore
/// .route("/api/things", post(create).layer(middleware::from_fn_with_state(detached, detach)))
/// ```
pub async fn detach(State(detached): State<Detached>, request: Request, next: Next) -> Response {
    match detached.run(next.run(request)).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn dropping_the_caller_does_not_cancel_the_work() {
        let detached = Detached::new(4);
        let done = Arc::new(AtomicBool::new(false));
        let (go, wait) = oneshot::channel::<()>();
        let flag = done.clone();
        let caller = detached.run(async move {
            let _ = wait.await;
            flag.store(true, Ordering::SeqCst);
        });
        // The client hangs up while the work waits.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), caller)
                .await
                .is_err()
        );
        assert_eq!(detached.in_flight(), 1, "still running");
        go.send(()).unwrap();
        assert!(detached.drain(Duration::from_secs(5)).await);
        assert!(done.load(Ordering::SeqCst), "finished without its caller");
        assert_eq!(detached.in_flight(), 0);
    }

    #[tokio::test]
    async fn beyond_the_limit_requests_are_refused_at_once() {
        let detached = Detached::new(1);
        let (go, wait) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let detached = detached.clone();
            async move { detached.run(async move { wait.await.is_ok() }).await }
        });
        while detached.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = detached.run(async {}).await.expect_err("over the limit");
        assert_eq!(refused.status, 503);
        assert_eq!(refused.problem_type, "/problems/overloaded");
        go.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        detached.run(async {}).await.expect("a slot again");
    }

    #[tokio::test]
    async fn a_panic_in_the_work_is_a_500_problem() {
        let detached = Detached::new(1);
        let problem = detached
            .run(async { panic!("boom") })
            .await
            .expect_err("panicked");
        assert_eq!(problem.status, 500);
        detached
            .run(async {})
            .await
            .expect("its slot was given back");
    }
}
