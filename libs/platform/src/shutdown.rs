//! Graceful shutdown.
//!
//! One [`CancellationToken`] per process, cancelled on SIGINT or SIGTERM. Every long-running
//! task (HTTP server, relay, consumers, workers) receives a child token and finishes its current
//! unit of work before returning; `main` waits for all of them. Tests cancel the token instead
//! of sending signals.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Set once a signal started the drain: readiness then fails while requests are still served.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Whether this process is draining before it stops: `/health/ready` answers 503 so that load
/// balancers take it out of rotation while it still serves what they already sent.
pub fn draining() -> bool {
    DRAINING.load(Ordering::SeqCst)
}

/// A token cancelled when the process receives SIGINT or SIGTERM.
pub fn on_signal() -> CancellationToken {
    on_signal_after_drain(Duration::ZERO)
}

/// A token cancelled on SIGINT or SIGTERM, `drain` after the signal: meanwhile the process
/// reports not ready and keeps serving, so a client-side balancer checking readiness stops
/// sending before the listener closes (a request on a pooled connection the server is closing
/// fails, and a POST is not sent again). Under Kubernetes the `preStop` hook does this before
/// the signal, and the drain stays 0. A second signal ends the drain at once.
pub fn on_signal_after_drain(drain: Duration) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        if !drain.is_zero() {
            DRAINING.store(true, Ordering::SeqCst);
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "shutdown requested; not ready, draining before the listener closes"
            );
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                () = wait_for_signal() => tracing::info!("second signal; ending the drain"),
            }
        }
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers the process still dies on signals, just not gracefully.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Waits for every task. The first failure cancels the others (a half-running service is
/// worse than a restarted one) and is returned. Once shutdown starts, tasks get `stop_within`
/// to finish; stragglers are abandoned (everything durable is already committed) so a
/// shutdown always ends.
pub async fn supervise(
    mut tasks: JoinSet<anyhow::Result<()>>,
    shutdown: CancellationToken,
    stop_within: Duration,
) -> anyhow::Result<()> {
    let mut first_error = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let joined = match deadline {
            None => tokio::select! {
                joined = tasks.join_next() => joined,
                _ = shutdown.cancelled() => {
                    deadline = Some(tokio::time::Instant::now() + stop_within);
                    continue;
                }
            },
            Some(at) => match tokio::time::timeout_at(at, tasks.join_next()).await {
                Ok(joined) => joined,
                Err(_) => {
                    tracing::warn!(
                        stuck = tasks.len(),
                        "tasks did not stop in time; abandoning them"
                    );
                    tasks.abort_all();
                    break;
                }
            },
        };
        let Some(joined) = joined else { break };
        if let Err(e) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
            tracing::error!(error = %format!("{e:#}"), "a task failed; shutting down");
            shutdown.cancel();
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
