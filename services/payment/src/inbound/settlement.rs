//! The settlement worker: pays owed refunds back, and settles payments left PENDING.
//!
//! One task, one tick (`PAYMENT_REFUND_TICK_MS`), and woken at once when a refund becomes
//! owed. Each round
//! - settles stranded payments: PENDING, their reservation closed, untouched for
//!   `PAYMENT_RECONCILE_AFTER_SECS` (see
//!   [`crate::application::PaymentService::reconcile_stranded`]). A completed one is
//!   owed its refund at once, which the same round then pays;
//! - asks the provider for every due PENDING refund; an unanswered one is postponed with
//!   capped exponential backoff (see [`crate::domain::payment::refund_backoff`]).
//!
//! Every replica runs one; a worker asks only for the payments and refunds it claimed in the
//! store (see [`crate::domain::ports::Claim`]), so two replicas never ask about one at once.
//! Stopping mid-round is safe: an answer that was not recorded is asked for again with the
//! same idempotency key, and money moves once.

use std::time::Duration;

use studycafe_platform::liveness::Heartbeat;
use tokio_util::sync::CancellationToken;

use crate::application::PaymentService;
use crate::domain::ports::{CardProvider, PaymentStore};

/// Refunds (and stranded payments) looked at per round.
const ROUND_LIMIT: u32 = 200;

#[derive(Debug)]
pub struct SettlementWorker<S, P> {
    pub service: PaymentService<S, P>,
    pub tick: Duration,
    /// How long a PENDING payment of a closed reservation is left alone before this worker
    /// settles it.
    pub reconcile_after: chrono::Duration,
    /// Busy during a round; waiting between rounds.
    pub heartbeat: Heartbeat,
}

impl<S: PaymentStore, P: CardProvider> SettlementWorker<S, P> {
    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.service.refund_signal();
        let _running = self.heartbeat.running();
        loop {
            {
                let _busy = self.heartbeat.busy();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.round() => {}
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.tick) => {}
                _ = wake.notified() => {}
            }
        }
        tracing::debug!("settlement worker stopped");
    }

    async fn round(&self) {
        match self
            .service
            .reconcile_stranded(self.reconcile_after, ROUND_LIMIT)
            .await
        {
            Ok(round) if round.settled + round.pending > 0 => {
                tracing::info!(
                    settled = round.settled,
                    pending = round.pending,
                    "reconciliation round"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reconciliation round failed"),
        }
        self.heartbeat.beat();
        match self.service.refund_due(ROUND_LIMIT).await {
            Ok(round) if round.completed + round.postponed > 0 => {
                tracing::debug!(
                    completed = round.completed,
                    postponed = round.postponed,
                    "refund round"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "refund round failed"),
        }
    }
}
