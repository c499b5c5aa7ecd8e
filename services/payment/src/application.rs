//! The use cases of the payment service, each with its own error type.
//!
//! - [`PaymentService::pay`]: charge a reservation, idempotently by reservation id.
//! - [`PaymentService::payments_of`]: a reservation's payments and refunds, for its owner.
//! - [`PaymentService::reservation_closed`]: seat says a reservation is over; refund it.
//! - [`PaymentService::refund_due`]: ask the provider for every refund that is due.
//! - [`PaymentService::reconcile_stranded`]: settle PENDING payments nobody asks about any more.

use std::sync::Arc;

use chrono::Duration;
use futures::StreamExt as _;
use studycafe_kernel::MAX_ATTEMPTS;
use tokio::sync::Notify;
use uuid::Uuid;

mod locks;

use locks::KeyedLocks;

use crate::domain::{
    ChargeRequest, Mismatch, Payment, PaymentEvent, Refund, ReservationClosure, ReservationId,
    ports::{
        CardProvider, Charge, Claim, ClaimOutcome, Clock, CloseOutcome, Consumed, InsertOutcome,
        PaymentStore, ProviderUnavailable, SaveOutcome, StoreError,
    },
};

/// `POST /internal/payments`, parsed.
#[derive(Debug, Clone)]
pub struct Pay {
    pub charge: ChargeRequest,
    /// The command's id (request id), recorded as the event's causation.
    pub causation: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The reservation was paid (or tried) with another amount or by another customer.
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    /// The card processor did not answer; the payment stays PENDING and a retry is safe.
    #[error("payment {} for reservation {reservation} is pending: {source}", payment.id())]
    ProviderUnavailable {
        payment: Payment,
        reservation: ReservationId,
        #[source]
        source: ProviderUnavailable,
    },
    #[error("payment of reservation {0} kept changing; try again")]
    Contended(ReservationId),
    /// Another instance has been asking the provider for this payment for a while; its
    /// answer will be recorded, and a retry then reads it.
    #[error("payment of reservation {0} is being charged by another instance; try again")]
    InProgress(ReservationId),
    /// The background task running the payment died (a bug, or the runtime is stopping).
    #[error("the payment task was interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: String,
    pub admin: bool,
}

impl Actor {
    fn may_see(&self, payment: &Payment) -> bool {
        self.admin || payment.customer_id().as_str() == self.user
    }
}

/// One payment with its refunds, as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub payment: Payment,
    pub refunds: Vec<Refund>,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("no payment is known for reservation {0}")]
    NotFound(ReservationId),
    #[error("the payments of reservation {0} belong to someone else")]
    Forbidden(ReservationId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one refund round came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefundRound {
    pub completed: usize,
    pub postponed: usize,
}

/// What one reconciliation round came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileRound {
    /// Payments the provider answered for (completed or declined).
    pub settled: usize,
    /// Payments still without an answer (provider unavailable, or busy elsewhere).
    pub pending: usize,
}

/// Refund calls in flight at once per round: one slow provider answer must not hold up the
/// rest.
const REFUND_CONCURRENCY: usize = 8;

/// How long a charge or refund claim lasts without renewal: how long a payment or refund stays
/// blocked when the instance that claimed it dies mid-call. Renewed every third of it while
/// the call runs.
pub const CLAIM_TTL: Duration = Duration::seconds(15);

/// How long a request waits for another instance's provider call before answering
/// "try again" (seat retries; the payment is settled by then or soon).
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest wait between two attempts at one refund.
pub const MAX_REFUND_BACKOFF: Duration = Duration::seconds(30);

/// The payment service's application service. Cheap to clone.
#[derive(Debug)]
pub struct PaymentService<S, P> {
    store: S,
    provider: Arc<P>,
    clock: Arc<dyn Clock>,
    locks: Arc<KeyedLocks<ReservationId>>,
    refund_due: Arc<Notify>,
    /// This instance's name in charge and refund claims.
    instance: Uuid,
}

impl<S: Clone, P> Clone for PaymentService<S, P> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            provider: self.provider.clone(),
            clock: self.clock.clone(),
            locks: self.locks.clone(),
            refund_due: self.refund_due.clone(),
            instance: self.instance,
        }
    }
}

impl<S: PaymentStore, P: CardProvider> PaymentService<S, P> {
    pub fn new(store: S, provider: Arc<P>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            provider,
            clock,
            locks: Arc::default(),
            refund_due: Arc::new(Notify::new()),
            instance: Uuid::new_v4(),
        }
    }

    /// Notified whenever a refund becomes owed, so the settlement worker starts at once.
    pub fn refund_signal(&self) -> Arc<Notify> {
        self.refund_due.clone()
    }

    /// Charges a reservation. Idempotent by reservation id: a settled payment is answered
    /// from the records, a PENDING one is asked of the provider again with the same key.
    ///
    /// Runs as its own task: once the provider has been asked, the answer is recorded even
    /// if the HTTP caller hangs up meanwhile.
    pub async fn pay(&self, command: Pay) -> Result<Payment, PayError> {
        let this = self.clone();
        tokio::spawn(async move { this.pay_serialized(command).await })
            .await
            .map_err(|e| PayError::Interrupted(e.to_string()))?
    }

    async fn pay_serialized(&self, command: Pay) -> Result<Payment, PayError> {
        let reservation = command.charge.reservation_id;
        // One provider call per reservation at a time in this process: a concurrent repeat
        // waits here and then finds the payment settled.
        let _serialized = self.locks.lock(reservation).await;

        let mut payment = match self.store.by_reservation(reservation).await? {
            Some(existing) => {
                existing.check_repeat(&command.charge)?;
                existing
            }
            None => {
                let fresh = Payment::start(command.charge.clone(), self.clock.now());
                // Committed before the provider call: a crash mid-call leaves a PENDING row
                // to resume from, never a charge without a trace.
                match self.store.insert(&fresh).await? {
                    InsertOutcome::Inserted => {
                        tracing::info!(reservation_id = %reservation, payment_id = %fresh.id(), amount = %fresh.amount(), "payment recorded");
                        fresh
                    }
                    InsertOutcome::Exists(existing) => {
                        existing.check_repeat(&command.charge)?;
                        existing
                    }
                }
            }
        };
        if !payment.is_settled() {
            // The keyed lock above covers this process only: the claim in the database keeps
            // other replicas away from the provider while this one asks it.
            payment = self.claim_or_wait(payment).await?;
        }
        if payment.is_settled() {
            tracing::debug!(reservation_id = %reservation, status = payment.status().as_str(), "payment answered from the records");
            return Ok(payment);
        }

        // The reservation id is the processor's idempotency key: a retry after a lost answer
        // or a crash never charges twice.
        let answer = self.charge_holding_claim(&payment).await;

        for _ in 0..MAX_ATTEMPTS {
            if payment.is_settled() {
                return Ok(payment);
            }
            let version = payment.version();
            let now = self.clock.now();
            match &answer {
                Err(unavailable) => {
                    if payment.provider_unavailable(now).is_err() {
                        continue;
                    }
                    match self.store.save_attempt(&mut payment, version).await? {
                        SaveOutcome::Saved(()) => {
                            metrics::counter!("payments_provider_unavailable_total").increment(1);
                            tracing::warn!(reservation_id = %reservation, payment_id = %payment.id(), attempts = payment.attempts(), error = %unavailable, "payment pending: provider unavailable");
                            return Err(PayError::ProviderUnavailable {
                                reservation,
                                payment,
                                source: unavailable.clone(),
                            });
                        }
                        SaveOutcome::Stale => {}
                    }
                }
                Ok(charge) => {
                    let event = match charge {
                        Charge::Approved { provider_ref } => payment.complete(provider_ref, now),
                        Charge::Declined { reason } => payment.decline(reason, now),
                    };
                    let Ok(event) = event else { continue };
                    // Only stored if the reservation is known closed by then (checked in the
                    // same transaction): the money goes straight back.
                    let refund = Refund::owed(&payment, &command.causation, now);
                    match self
                        .store
                        .settle(
                            &mut payment,
                            version,
                            &event,
                            &command.causation,
                            refund.as_ref(),
                        )
                        .await?
                    {
                        SaveOutcome::Saved(refund) => {
                            self.settled(&payment, &event, refund.as_ref());
                            return Ok(payment);
                        }
                        SaveOutcome::Stale => {}
                    }
                }
            }
            // Stale: another process changed it meanwhile; decide again on what it stored.
            payment = self
                .store
                .by_reservation(reservation)
                .await?
                .ok_or_else(|| {
                    StoreError::new(format!("the payment of reservation {reservation} vanished"))
                })?;
        }
        Err(PayError::Contended(reservation))
    }

    fn claim(&self) -> Claim {
        let now = self.clock.now();
        Claim {
            holder: self.instance,
            now,
            until: now + CLAIM_TTL,
        }
    }

    /// Claims the PENDING `payment` for this instance's provider call, or waits while another
    /// instance holds it. Returns the payment to go on with: still PENDING (and claimed), or
    /// settled by the other instance meanwhile.
    async fn claim_or_wait(&self, mut payment: Payment) -> Result<Payment, PayError> {
        let started = tokio::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            match self.store.claim_charge(payment.id(), &self.claim()).await? {
                ClaimOutcome::Claimed => return Ok(payment),
                ClaimOutcome::Busy => {}
            }
            payment = self
                .store
                .by_reservation(payment.reservation_id())
                .await?
                .ok_or_else(|| StoreError::new(format!("payment {} vanished", payment.id())))?;
            if payment.is_settled() {
                return Ok(payment);
            }
            if started.elapsed() >= CLAIM_WAIT {
                tracing::warn!(reservation_id = %payment.reservation_id(), payment_id = %payment.id(), "payment still claimed by another instance");
                return Err(PayError::InProgress(payment.reservation_id()));
            }
            tracing::debug!(reservation_id = %payment.reservation_id(), "payment claimed by another instance: waiting for its answer");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(250));
        }
    }

    /// Asks the provider to charge `payment`, holding its charge claim.
    async fn charge_holding_claim(&self, payment: &Payment) -> Result<Charge, ProviderUnavailable> {
        let key = payment.reservation_id().to_string();
        let charge = self
            .provider
            .charge(&key, payment.amount(), payment.token());
        let renew = || {
            let claim = self.claim();
            async move { self.store.claim_charge(payment.id(), &claim).await }
        };
        holding_claim(charge, renew, "charge", payment.id().to_string()).await
    }

    fn settled(&self, payment: &Payment, event: &PaymentEvent, refund: Option<&Refund>) {
        match event {
            PaymentEvent::Completed => {
                metrics::counter!("payments_completed_total").increment(1);
                tracing::info!(reservation_id = %payment.reservation_id(), payment_id = %payment.id(), amount = %payment.amount(), attempts = payment.attempts(), "payment completed");
            }
            PaymentEvent::Declined { reason } => {
                metrics::counter!("payments_declined_total").increment(1);
                tracing::info!(reservation_id = %payment.reservation_id(), payment_id = %payment.id(), %reason, "payment declined");
            }
        }
        if let Some(refund) = refund {
            tracing::info!(reservation_id = %payment.reservation_id(), refund_id = %refund.id(), "reservation already closed: refund owed");
            self.refund_owed();
        }
    }

    fn refund_owed(&self) {
        metrics::counter!("refunds_owed_total").increment(1);
        self.refund_due.notify_one();
    }

    /// The payments of a reservation (at most one) with their refunds.
    pub async fn payments_of(
        &self,
        actor: &Actor,
        reservation: ReservationId,
    ) -> Result<Vec<PaymentRecord>, ViewError> {
        let payment = self
            .store
            .by_reservation(reservation)
            .await?
            .ok_or(ViewError::NotFound(reservation))?;
        if !actor.may_see(&payment) {
            return Err(ViewError::Forbidden(reservation));
        }
        let refunds = self.store.refunds_of(payment.id()).await?;
        Ok(vec![PaymentRecord { payment, refunds }])
    }

    /// Seat closed a reservation (cancelled, expired, payment failed): remember it, and owe a
    /// refund if its payment completed. Decided on payment's own records, not on what the
    /// event says about payment: that may be stale. Exactly once per consumed event.
    pub async fn reservation_closed(
        &self,
        closure: ReservationClosure,
        consumed: Consumed,
    ) -> Result<CloseOutcome, StoreError> {
        let outcome = self
            .store
            .close_reservation(&closure, consumed, self.clock.now())
            .await?;
        match &outcome {
            CloseOutcome::Recorded {
                refund: Some(refund),
            } => {
                tracing::info!(reservation_id = %closure.reservation_id, reason = closure.reason.as_str(), refund_id = %refund.id(), amount = %refund.amount(), "reservation closed: refund owed");
                self.refund_owed();
            }
            CloseOutcome::Recorded { refund: None } => {
                tracing::info!(reservation_id = %closure.reservation_id, reason = closure.reason.as_str(), "reservation closed: nothing to refund");
            }
            CloseOutcome::AlreadyApplied => {
                tracing::debug!(reservation_id = %closure.reservation_id, "duplicate closure");
            }
        }
        Ok(outcome)
    }

    /// Settles PENDING payments that nobody will ask about any more: their reservation is
    /// closed (seat stops retrying a payment once its hold is over) and they have not changed
    /// for `quiet`. Such a payment is what a crash or an outage mid-call leaves behind, and
    /// the provider may well have taken the money. It is asked again with the same
    /// idempotency key, exactly as a retry would: an answer it already gave is given again
    /// (never a second charge), a charge it never received is made now. Either way the
    /// payment settles, and since the reservation is closed a completed one is refunded
    /// ([`PaymentStore::settle`] owes the refund in the same transaction). A processor that
    /// can void by key would spare the customer the charge-and-refund pair; that belongs in
    /// its adapter.
    pub async fn reconcile_stranded(
        &self,
        quiet: Duration,
        limit: u32,
    ) -> Result<ReconcileRound, StoreError> {
        let now = self.clock.now();
        let stranded = self
            .store
            .stranded_payments(now, now - quiet, limit)
            .await?;
        let mut outcomes = futures::stream::iter(stranded)
            .map(|payment| self.reconcile_one(payment))
            .buffer_unordered(REFUND_CONCURRENCY);
        let mut round = ReconcileRound::default();
        let mut failure = None;
        // Every call in flight runs to its end: dropping one mid-call would leave its claim to
        // lapse for nothing.
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Ok(true) => round.settled += 1,
                Ok(false) => round.pending += 1,
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(round),
        }
    }

    /// `true` when the provider answered and the payment is settled.
    async fn reconcile_one(&self, payment: Payment) -> Result<bool, StoreError> {
        tracing::info!(reservation_id = %payment.reservation_id(), payment_id = %payment.id(), since = %payment.updated_at(), "reconciling a pending payment of a closed reservation");
        let command = Pay {
            charge: payment.charge_request(),
            causation: format!("reconciliation-{}", payment.id()),
        };
        match self.pay_serialized(command).await {
            Ok(settled) => {
                metrics::counter!("payments_reconciled_total", "status" => settled.status().as_str())
                    .increment(1);
                Ok(true)
            }
            Err(
                PayError::ProviderUnavailable { .. }
                | PayError::InProgress(_)
                | PayError::Contended(_),
            ) => Ok(false),
            Err(PayError::Store(e)) => Err(e),
            // The command repeats the payment's own request: it cannot mismatch.
            Err(e @ (PayError::Mismatch(_) | PayError::Interrupted(_))) => {
                tracing::error!(reservation_id = %payment.reservation_id(), error = %e, "reconciliation failed");
                Ok(false)
            }
        }
    }

    /// Asks the provider for every due refund this instance can claim: the refund claim keeps
    /// the workers of several replicas from asking for one refund at once. A refund is
    /// completed (with its event) only while still PENDING, and the provider key is the
    /// payment id, so a refund retried after a lost answer (or a lapsed claim) is paid out
    /// once.
    pub async fn refund_due(&self, limit: u32) -> Result<RefundRound, StoreError> {
        let due = self.store.due_refunds(self.clock.now(), limit).await?;
        let mut outcomes = futures::stream::iter(due)
            .map(|refund| self.refund_one(refund))
            .buffer_unordered(REFUND_CONCURRENCY);
        let mut round = RefundRound::default();
        let mut failure = None;
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Ok(Some(true)) => round.completed += 1,
                Ok(Some(false)) => round.postponed += 1,
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(round),
        }
    }

    /// `Some(true)` refunded, `Some(false)` postponed, `None` claimed or settled elsewhere
    /// meanwhile.
    async fn refund_one(&self, mut refund: Refund) -> Result<Option<bool>, StoreError> {
        // Another replica's worker may have read the same due refund: only the one that claims
        // it asks the provider (and the claim is released when the outcome is recorded).
        if self.store.claim_refund(&refund, &self.claim()).await? == ClaimOutcome::Busy {
            tracing::debug!(refund_id = %refund.id(), "refund claimed or settled by another instance");
            return Ok(None);
        }
        let answer = holding_claim(
            self.provider.refund(
                &refund.payment_id().to_string(),
                refund.charge_ref(),
                refund.amount(),
            ),
            || {
                let (claim, refund) = (self.claim(), &refund);
                async move { self.store.claim_refund(refund, &claim).await }
            },
            "refund",
            refund.id().to_string(),
        )
        .await;
        let now = self.clock.now();
        match answer {
            Ok(provider_ref) => {
                if refund.complete(&provider_ref, now).is_err() {
                    return Ok(None);
                }
                match self.store.complete_refund(&refund).await? {
                    SaveOutcome::Saved(()) => {
                        metrics::counter!("refunds_completed_total").increment(1);
                        tracing::info!(reservation_id = %refund.reservation_id(), refund_id = %refund.id(), payment_id = %refund.payment_id(), amount = %refund.amount(), "refund completed");
                        Ok(Some(true))
                    }
                    SaveOutcome::Stale => Ok(None),
                }
            }
            Err(unavailable) => {
                refund.postpone(now, MAX_REFUND_BACKOFF);
                tracing::warn!(reservation_id = %refund.reservation_id(), refund_id = %refund.id(), attempts = refund.attempts(), next_attempt_at = %refund.next_attempt_at(), error = %unavailable, "refund postponed");
                match self.store.postpone_refund(&refund).await? {
                    SaveOutcome::Saved(()) => Ok(Some(false)),
                    SaveOutcome::Stale => Ok(None),
                }
            }
        }
    }
}

/// Awaits `call` (a provider call) while renewing the claim that allowed it every third of
/// [`CLAIM_TTL`] with `renew`: a slow processor must not let the claim lapse and another
/// replica ask too. `what` and `id` name the claimed row in logs.
async fn holding_claim<T, R>(
    call: impl Future<Output = T>,
    renew: impl Fn() -> R,
    what: &str,
    id: String,
) -> T
where
    R: Future<Output = Result<ClaimOutcome, StoreError>>,
{
    tokio::pin!(call);
    let period = (CLAIM_TTL / 3).to_std().unwrap_or_default();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            answer = &mut call => return answer,
            _ = ticks.tick() => match renew().await {
                Ok(ClaimOutcome::Claimed) => {}
                // The provider's idempotency key still prevents a second charge or refund;
                // the claim only spares the processor a duplicate call.
                Ok(ClaimOutcome::Busy) => tracing::warn!(%id, "{what} claim lost during a slow provider call"),
                Err(e) => tracing::warn!(%id, error = %e, "could not renew the {what} claim"),
            },
        }
    }
}
