//! The refund worker: pays owed refunds back through the card provider.
//!
//! One task, one tick (`PAYMENT_REFUND_TICK_MS`), and woken at once when a refund becomes
//! owed. Each round asks the provider for every due PENDING refund; an unanswered one is
//! postponed with capped exponential backoff (see [`crate::domain::payment::refund_backoff`]).
//! Every replica runs one; a worker asks only for the refunds it claimed in the store (see
//! [`crate::domain::ports::Claim`]), so two replicas never ask for one refund at once.
//! Stopping mid-round is safe: a refund whose answer was not recorded is asked again with the
//! same idempotency key and paid out once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{
    ports::{CardProvider, PaymentStore},
    service::PaymentService,
};

/// Refunds looked at per round.
const ROUND_LIMIT: u32 = 200;

#[derive(Debug)]
pub struct RefundWorker<S, P> {
    pub service: PaymentService<S, P>,
    pub tick: Duration,
}

impl<S: PaymentStore, P: CardProvider> RefundWorker<S, P> {
    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.service.refund_signal();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.round() => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.tick) => {}
                _ = wake.notified() => {}
            }
        }
        tracing::debug!("refund worker stopped");
    }

    async fn round(&self) {
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
