//! Time-driven work: holds that run out, windows that end, payments that are due, seats whose
//! announcement is getting old.
//!
//! One task, one tick: each step is a short database sweep, so a slow step only delays the
//! next tick. Payments also run as soon as a confirmation arrives (the `payment_due` signal).

use std::{sync::Arc, time::Duration};

use studycafe_platform::liveness::Heartbeat;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::application::ReservationService;
use crate::domain::ports::{Payments, ReservationStore};

const SWEEP_LIMIT: u32 = 200;

#[derive(Debug)]
pub struct Timers<S, P> {
    pub service: ReservationService<S>,
    pub payments: Option<P>,
    pub payment_due: Arc<Notify>,
    pub tick: Duration,
    /// Busy during a step (each sweep is short); waiting between ticks.
    pub heartbeat: Heartbeat,
    pub max_payment_backoff: chrono::Duration,
    /// `SEAT_CATALOGUE_REANNOUNCE_SECS`: how old a seat's last `SeatDefined` may get.
    pub catalogue_reannounce: chrono::Duration,
}

impl<S: ReservationStore, P: Payments> Timers<S, P> {
    pub async fn run(self, shutdown: CancellationToken) {
        if self.payments.is_none() {
            tracing::warn!(
                "no payment service configured (SEAT_PAYMENT_URL): confirmed reservations wait for payment"
            );
        }
        let _running = self.heartbeat.running();
        loop {
            {
                let _busy = self.heartbeat.busy();
                self.step().await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.tick) => {}
                _ = self.payment_due.notified() => {}
            }
        }
        tracing::debug!("timers stopped");
    }

    async fn step(&self) {
        if let Err(e) = self.service.expire_due_holds(SWEEP_LIMIT).await {
            tracing::warn!(error = %e, "hold expiry sweep failed");
        }
        self.heartbeat.beat();
        if let Err(e) = self.service.complete_ended(SWEEP_LIMIT).await {
            tracing::warn!(error = %e, "completion sweep failed");
        }
        self.heartbeat.beat();
        match self
            .service
            .reannounce_catalogue(self.catalogue_reannounce, SWEEP_LIMIT)
            .await
        {
            Ok(0) => {}
            Ok(seats) => tracing::info!(seats, "seat catalogue re-announced"),
            Err(e) => tracing::warn!(error = %e, "catalogue re-announcement sweep failed"),
        }
        self.heartbeat.beat();
        if let Some(payments) = &self.payments
            && let Err(e) = self
                .service
                .settle_due_payments(payments, SWEEP_LIMIT, self.max_payment_backoff)
                .await
        {
            tracing::warn!(error = %e, "payment sweep failed");
        }
    }
}
