//! The use cases of the seat service, each with its own error type.
//!
//! Every change follows one pattern: load the aggregate, ask it for the transition (which
//! yields the event), store both with an optimistic version check, and start over if someone
//! else changed the reservation in between.

use std::sync::Arc;

use studycafe_kernel::{Attempt, MAX_ATTEMPTS, retry_on_stale};

use chrono::{DateTime, Duration, Utc};

use crate::domain::{
    CancelledBy, CustomerId, PaymentToken, Reservation, ReservationEvent, ReservationId,
    ReservationPolicy, ReservationStatus, Seat, SeatId, TimeWindow, TransitionError, WindowError,
    ports::{
        Clock, Consumed, Due, IdempotencyClaim, InsertOutcome, PaymentOutcome, PaymentRequest,
        Payments, ReservationStore, SaveOutcome, StoreError,
    },
    reservation::RequestError,
};

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: CustomerId,
    pub admin: bool,
}

impl Actor {
    fn may_see(&self, reservation: &Reservation) -> bool {
        self.admin || reservation.customer_id() == &self.user
    }
}

/// `POST /api/reservations`, parsed.
#[derive(Debug, Clone)]
pub struct ReserveSeat {
    pub customer: CustomerId,
    pub seat_id: SeatId,
    pub starts_at: DateTime<Utc>,
    pub hours: i64,
    pub payment_token: PaymentToken,
    pub idempotency: Option<IdempotencyClaim>,
    /// The command's id (request id), recorded as the event's causation.
    pub causation: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub reservation_id: ReservationId,
    pub status: ReservationStatus,
    /// True when an earlier request with the same idempotency key made it.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("seat {0} does not exist")]
    UnknownSeat(SeatId),
    #[error("seat {0} is not taking reservations")]
    SeatDisabled(SeatId),
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("seat {seat} is already reserved for part of that time")]
    SeatTaken { seat: SeatId },
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("the price of this reservation cannot be computed")]
    Price,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("reservation {0} does not exist")]
    NotFound(ReservationId),
    #[error("reservation {0} belongs to someone else")]
    Forbidden(ReservationId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("reservation {0} does not exist")]
    NotFound(ReservationId),
    #[error("reservation {0} belongs to someone else")]
    Forbidden(ReservationId),
    #[error(transparent)]
    Illegal(#[from] TransitionError),
    #[error("reservation {0} kept changing; try again")]
    Contended(ReservationId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A fact from another context that moves a reservation along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    BookingConfirmed,
    BookingRejected { reason: String },
    PaymentCompleted { payment_id: String },
    PaymentDeclined { reason: String },
    SeatRegistered { registration_id: String },
}

/// What a reaction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed(ReservationStatus),
    /// Not applicable in the current state (late, duplicate or out-of-order news).
    Ignored(String),
    AlreadyApplied,
    UnknownReservation,
}

/// Payment calls in flight at once per sweep.
const PAYMENT_CONCURRENCY: usize = 16;

/// The seat service's application service. Cheap to clone.
#[derive(Debug)]
pub struct ReservationService<S> {
    store: S,
    policy: ReservationPolicy,
    clock: Arc<dyn Clock>,
}

impl<S: Clone> Clone for ReservationService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            policy: self.policy.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<S: ReservationStore> ReservationService<S> {
    pub fn new(store: S, policy: ReservationPolicy, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            policy,
            clock,
        }
    }

    pub fn policy(&self) -> &ReservationPolicy {
        &self.policy
    }

    pub async fn seats(&self) -> Result<Vec<Seat>, StoreError> {
        self.store.seats().await
    }

    /// Announces again every seat whose last announcement is older than `every` (at most
    /// `limit` per call); returns how many.
    pub async fn reannounce_catalogue(
        &self,
        every: chrono::Duration,
        limit: u32,
    ) -> Result<usize, StoreError> {
        let now = self.clock.now();
        self.store.reannounce_seats(now - every, now, limit).await
    }

    pub async fn reserve(&self, command: ReserveSeat) -> Result<Reserved, ReserveError> {
        let now = self.clock.now();
        let seat = self
            .store
            .seat(&command.seat_id)
            .await?
            .ok_or_else(|| ReserveError::UnknownSeat(command.seat_id.clone()))?;
        let window =
            TimeWindow::for_new_reservation(command.starts_at, command.hours, &self.policy, now)?;
        let (reservation, event) = Reservation::request(
            &seat,
            command.customer,
            window,
            command.payment_token,
            &self.policy,
            now,
        )
        .map_err(|e| match e {
            RequestError::SeatDisabled(id) => ReserveError::SeatDisabled(id),
            RequestError::Price => ReserveError::Price,
        })?;
        let outcome = self
            .store
            .insert(
                &reservation,
                &event,
                &command.causation,
                command.idempotency.as_ref(),
            )
            .await?;
        match outcome {
            InsertOutcome::Inserted => {
                metrics::counter!("reservations_requested_total").increment(1);
                tracing::info!(
                    reservation_id = %reservation.id(),
                    seat_id = %reservation.seat_id(),
                    starts_at = %reservation.window().starts_at(),
                    hours = reservation.window().hours(),
                    "seat reserved"
                );
                Ok(Reserved {
                    reservation_id: reservation.id(),
                    status: reservation.status(),
                    replayed: false,
                })
            }
            InsertOutcome::SeatTaken => Err(ReserveError::SeatTaken { seat: seat.id }),
            InsertOutcome::KeyReused => Err(ReserveError::IdempotencyKeyReused),
            InsertOutcome::Replayed(id) => {
                let status = self
                    .store
                    .get(id)
                    .await?
                    .map(|r| r.status())
                    .unwrap_or(ReservationStatus::Requested);
                Ok(Reserved {
                    reservation_id: id,
                    status,
                    replayed: true,
                })
            }
        }
    }

    pub async fn get(&self, actor: &Actor, id: ReservationId) -> Result<Reservation, ViewError> {
        let reservation = self.store.get(id).await?.ok_or(ViewError::NotFound(id))?;
        if !actor.may_see(&reservation) {
            return Err(ViewError::Forbidden(id));
        }
        Ok(reservation)
    }

    pub async fn cancel(
        &self,
        actor: &Actor,
        id: ReservationId,
        causation: &str,
    ) -> Result<Reservation, CancelError> {
        retry_on_stale(
            || async move {
                let mut reservation = self.store.get(id).await?.ok_or(CancelError::NotFound(id))?;
                if !actor.may_see(&reservation) {
                    return Err(CancelError::Forbidden(id));
                }
                let by = if reservation.customer_id() == &actor.user {
                    CancelledBy::Customer
                } else {
                    CancelledBy::Admin
                };
                let version = reservation.version();
                let event = reservation.cancel(by, self.clock.now())?;
                Ok(
                    match self
                        .store
                        .save(&reservation, version, &[event], causation, None)
                        .await?
                    {
                        SaveOutcome::Saved | SaveOutcome::AlreadyApplied => {
                            tracing::info!(reservation_id = %id, ?by, "reservation cancelled");
                            Attempt::Done(reservation)
                        }
                        SaveOutcome::Stale => Attempt::Stale,
                    },
                )
            },
            || CancelError::Contended(id),
        )
        .await
    }

    /// Applies news from registration or payment to one reservation, exactly once per
    /// consumed event.
    pub async fn react(
        &self,
        id: ReservationId,
        reaction: &Reaction,
        consumed: Consumed,
    ) -> Result<Applied, StoreError> {
        let causation = &consumed.event_id.to_string();
        retry_on_stale(
            || async move {
                let Some(mut reservation) = self.store.get(id).await? else {
                    self.store.mark_consumed(consumed).await?;
                    return Ok(Attempt::Done(Applied::UnknownReservation));
                };
                let version = reservation.version();
                let now = self.clock.now();
                let transition = match reaction {
                    Reaction::BookingConfirmed => reservation.confirm(now).map(|e| vec![e]),
                    Reaction::BookingRejected { reason } => {
                        reservation.reject(reason, now).map(|e| vec![e])
                    }
                    Reaction::PaymentCompleted { payment_id } => {
                        reservation.mark_paid(payment_id, now)
                    }
                    Reaction::PaymentDeclined { reason } => reservation
                        .mark_payment_failed(reason, now)
                        .map(|e| vec![e]),
                    Reaction::SeatRegistered { registration_id } => {
                        reservation.register(registration_id, now)
                    }
                };
                let events = match transition {
                    Ok(events) => events,
                    Err(not_applicable) => {
                        self.store.mark_consumed(consumed).await?;
                        return Ok(Attempt::Done(Applied::Ignored(not_applicable.to_string())));
                    }
                };
                Ok(
                    match self
                        .store
                        .save(&reservation, version, &events, causation, Some(consumed))
                        .await?
                    {
                        SaveOutcome::Saved => Attempt::Done(Applied::Changed(reservation.status())),
                        SaveOutcome::AlreadyApplied => Attempt::Done(Applied::AlreadyApplied),
                        SaveOutcome::Stale => Attempt::Stale,
                    },
                )
            },
            || {
                StoreError::new(format!(
                    "reservation {id} kept changing while applying {reaction:?}"
                ))
            },
        )
        .await
    }

    /// Expires unpaid reservations whose hold ran out; returns how many.
    pub async fn expire_due_holds(&self, limit: u32) -> Result<usize, StoreError> {
        self.sweep(Due::HoldExpiry, limit, "hold-expiry", Reservation::expire)
            .await
    }

    /// Completes registered reservations whose window ended; returns how many.
    pub async fn complete_ended(&self, limit: u32) -> Result<usize, StoreError> {
        self.sweep(Due::Completion, limit, "completion", Reservation::complete)
            .await
    }

    async fn sweep(
        &self,
        due: Due,
        limit: u32,
        causation: &str,
        transition: fn(
            &mut Reservation,
            DateTime<Utc>,
        ) -> Result<ReservationEvent, TransitionError>,
    ) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut changed = 0;
        for mut reservation in self.store.due(due, now, limit).await? {
            let version = reservation.version();
            let Ok(event) = transition(&mut reservation, now) else {
                continue;
            };
            // Stale: someone moved it meanwhile; the next sweep looks again.
            if self
                .store
                .save(&reservation, version, &[event], causation, None)
                .await?
                == SaveOutcome::Saved
            {
                tracing::info!(reservation_id = %reservation.id(), status = reservation.status().as_str(), "{causation}");
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Takes payment for every confirmed reservation whose attempt is due. An unanswered
    /// call postpones the attempt with exponential backoff (capped at `max_backoff`); the hold
    /// expiry ends the retries. Returns how many reservations were settled (paid or declined).
    pub async fn settle_due_payments<P: Payments>(
        &self,
        payments: &P,
        limit: u32,
        max_backoff: Duration,
    ) -> Result<usize, StoreError> {
        use futures::StreamExt as _;
        let due = self
            .store
            .due(Due::Payment, self.clock.now(), limit)
            .await?;
        // Concurrently: one slow answer (a payment that takes seconds) must not hold up the
        // rest. Payment serializes calls per reservation, and each reservation is here once.
        let mut outcomes = futures::stream::iter(due)
            .map(|reservation| self.settle_payment(payments, reservation, max_backoff))
            .buffer_unordered(PAYMENT_CONCURRENCY);
        let mut settled = 0;
        let mut failure = None;
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Ok(true) => settled += 1,
                Ok(false) => {}
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(settled),
        }
    }

    async fn settle_payment<P: Payments>(
        &self,
        payments: &P,
        mut reservation: Reservation,
        max_backoff: Duration,
    ) -> Result<bool, StoreError> {
        let request = PaymentRequest {
            reservation_id: reservation.id(),
            customer_id: reservation.customer_id().clone(),
            amount: reservation.price(),
            token: reservation.payment_token().clone(),
        };
        let answer = payments.pay(request).await;
        // The call took time: decide on the latest state, not the one read before it.
        for _ in 0..MAX_ATTEMPTS {
            let version = reservation.version();
            let now = self.clock.now();
            let events = match &answer {
                Ok(PaymentOutcome::Approved { payment_id }) => {
                    reservation.mark_paid(payment_id, now)
                }
                Ok(PaymentOutcome::Declined { reason }) => reservation
                    .mark_payment_failed(reason, now)
                    .map(|e| vec![e]),
                Err(unavailable) => {
                    let backoff = Duration::seconds(1 << reservation.payment().attempts().min(6))
                        .min(max_backoff);
                    tracing::warn!(reservation_id = %reservation.id(), error = %unavailable, retry_in_s = backoff.num_seconds(), "payment pending");
                    reservation.postpone_payment(backoff, now).map(|()| vec![])
                }
            };
            let Ok(events) = events else {
                // No longer CONFIRMED (cancelled, expired, or PaymentCompleted got here
                // first). A charge for a reservation no longer live is refunded by payment.
                return Ok(false);
            };
            match self
                .store
                .save(&reservation, version, &events, "payment", None)
                .await?
            {
                SaveOutcome::Saved | SaveOutcome::AlreadyApplied => return Ok(!events.is_empty()),
                SaveOutcome::Stale => match self.store.get(reservation.id()).await? {
                    Some(latest) => reservation = latest,
                    None => return Ok(false),
                },
            }
        }
        Ok(false)
    }
}
