//! The use cases of the registration service, each with its own error type.
//!
//! Every change follows one pattern: load the booking, ask it for the transition (which yields
//! the event), store both with an optimistic version check, and start over if someone else —
//! another request, or the other replica's consumer — changed the booking in between.

use std::sync::Arc;

use studycafe_kernel::{Attempt, retry_on_stale};

use crate::domain::{
    AdminId, AutoConfirmPolicy, Booking, BookingEvent, BookingStatus, CafeId, Decider, NewBooking,
    Registration, RejectionReason, ReservationEnded, ReservationId, TransitionError,
    ports::{BookingStore, Clock, Consumed, InsertOutcome, SaveOutcome, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("booking {0} does not exist")]
    NotFound(ReservationId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an admin's confirmation or rejection was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("booking {0} does not exist")]
    NotFound(ReservationId),
    #[error("booking {id} is {}: only a PENDING booking can be {}", .illegal.from, .illegal.action)]
    NotPending {
        id: ReservationId,
        illegal: TransitionError,
    },
    #[error("booking {0} kept changing; try again")]
    Contended(ReservationId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// News from the seat or payment service about an existing booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    PaymentCompleted,
    ReservationEnded(ReservationEnded),
}

/// What a reaction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed(BookingStatus),
    /// Not applicable in the current state (late, duplicate or out-of-order news).
    Ignored(String),
    AlreadyApplied,
    UnknownReservation,
}

/// What a `SeatReserved` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Pending,
    AutoConfirmed,
    /// A booking for the reservation existed already.
    Exists,
    AlreadyApplied,
}

/// The registration service's application service. Cheap to clone.
pub struct BookingService<S> {
    store: S,
    cafe: CafeId,
    clock: Arc<dyn Clock>,
}

impl<S: Clone> Clone for BookingService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            cafe: self.cafe.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for BookingService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookingService")
            .field("store", &self.store)
            .field("cafe", &self.cafe)
            .finish_non_exhaustive()
    }
}

impl<S: BookingStore> BookingService<S> {
    pub fn new(store: S, cafe: CafeId, clock: Arc<dyn Clock>) -> Self {
        Self { store, cafe, clock }
    }

    pub fn cafe(&self) -> &CafeId {
        &self.cafe
    }

    pub async fn bookings(
        &self,
        status: Option<BookingStatus>,
        limit: u32,
    ) -> Result<Vec<Booking>, StoreError> {
        self.store.list(status, limit).await
    }

    pub async fn booking(&self, id: ReservationId) -> Result<Booking, ViewError> {
        self.store.get(id).await?.ok_or(ViewError::NotFound(id))
    }

    /// An admin confirms a pending booking.
    pub async fn confirm(
        &self,
        id: ReservationId,
        admin: AdminId,
        causation: &str,
    ) -> Result<Booking, DecideError> {
        let booking = self
            .decide(id, causation, |booking, now| {
                booking.confirm(Decider::Admin(admin.clone()), now)
            })
            .await?;
        metrics::counter!("bookings_decided_total", "decision" => "confirmed", "by" => "admin")
            .increment(1);
        tracing::info!(reservation_id = %id, admin = %admin, "booking confirmed");
        Ok(booking)
    }

    /// An admin rejects a pending booking.
    pub async fn reject(
        &self,
        id: ReservationId,
        admin: AdminId,
        reason: RejectionReason,
        causation: &str,
    ) -> Result<Booking, DecideError> {
        let booking = self
            .decide(id, causation, |booking, now| {
                booking.reject(admin.clone(), reason.clone(), now)
            })
            .await?;
        metrics::counter!("bookings_decided_total", "decision" => "rejected", "by" => "admin")
            .increment(1);
        tracing::info!(reservation_id = %id, admin = %admin, %reason, "booking rejected");
        Ok(booking)
    }

    async fn decide(
        &self,
        id: ReservationId,
        causation: &str,
        transition: impl Fn(
            &mut Booking,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<BookingEvent, TransitionError>,
    ) -> Result<Booking, DecideError> {
        let transition = &transition;
        retry_on_stale(
            || async move {
                let mut booking = self.store.get(id).await?.ok_or(DecideError::NotFound(id))?;
                let version = booking.version();
                let event = transition(&mut booking, self.clock.now())
                    .map_err(|illegal| DecideError::NotPending { id, illegal })?;
                Ok(
                    match self
                        .store
                        .save(&mut booking, version, &event, causation, None)
                        .await?
                    {
                        SaveOutcome::Saved | SaveOutcome::AlreadyApplied => Attempt::Done(booking),
                        SaveOutcome::Stale => Attempt::Stale,
                    },
                )
            },
            || DecideError::Contended(id),
        )
        .await
    }

    /// The policy in force for this deployment's cafe.
    pub async fn policy(&self) -> Result<AutoConfirmPolicy, StoreError> {
        Ok(self
            .store
            .policy(&self.cafe)
            .await?
            .unwrap_or_else(|| AutoConfirmPolicy::initial(self.cafe.clone(), false)))
    }

    /// Installs the deployment's initial setting unless an admin already decided.
    pub async fn seed_policy(&self, auto_confirm: bool) -> Result<AutoConfirmPolicy, StoreError> {
        self.store
            .seed_policy(&AutoConfirmPolicy::initial(self.cafe.clone(), auto_confirm))
            .await
    }

    pub async fn set_policy(
        &self,
        auto_confirm: bool,
        admin: AdminId,
    ) -> Result<AutoConfirmPolicy, StoreError> {
        let mut policy = self.policy().await?;
        policy.set(auto_confirm, admin.clone(), self.clock.now());
        self.store.save_policy(&policy).await?;
        tracing::info!(cafe = %self.cafe, auto_confirm, admin = %admin, "auto-confirm policy changed");
        Ok(policy)
    }

    /// The seat service took a reservation: open a pending booking, confirmed at once if the
    /// cafe auto-confirms.
    pub async fn open(&self, new: NewBooking, consumed: Consumed) -> Result<Opened, StoreError> {
        let now = self.clock.now();
        let mut booking = Booking::open(new, now);
        let policy = self.policy().await?;
        let event = match policy.confirmer() {
            Some(confirmer) => Some(
                booking
                    .confirm(confirmer, now)
                    .map_err(|e| StoreError::new(format!("a new booking refused: {e}")))?,
            ),
            None => None,
        };
        let outcome = self
            .store
            .insert(&booking, event.as_ref(), consumed)
            .await?;
        Ok(match outcome {
            InsertOutcome::Inserted if event.is_some() => {
                metrics::counter!("bookings_opened_total").increment(1);
                metrics::counter!("bookings_decided_total", "decision" => "confirmed", "by" => "auto-confirm")
                    .increment(1);
                Opened::AutoConfirmed
            }
            InsertOutcome::Inserted => {
                metrics::counter!("bookings_opened_total").increment(1);
                Opened::Pending
            }
            InsertOutcome::Exists => Opened::Exists,
            InsertOutcome::AlreadyApplied => Opened::AlreadyApplied,
        })
    }

    /// Applies news from seat or payment to one booking, exactly once per consumed event.
    pub async fn react(
        &self,
        id: ReservationId,
        reaction: &Reaction,
        consumed: Consumed,
    ) -> Result<Applied, StoreError> {
        let causation = &consumed.event_id.to_string();
        retry_on_stale(
            || async move {
                let Some(mut booking) = self.store.get(id).await? else {
                    // Never create a booking from anything but SeatReserved.
                    if !self.store.mark_consumed(consumed).await? {
                        return Ok(Attempt::Done(Applied::AlreadyApplied));
                    }
                    return Ok(Attempt::Done(Applied::UnknownReservation));
                };
                let version = booking.version();
                let now = self.clock.now();
                let transition = match reaction {
                    Reaction::PaymentCompleted => booking.register(Registration::issue(now), now),
                    Reaction::ReservationEnded(ended) => booking.cancel(ended, now),
                };
                let event = match transition {
                    Ok(event) => event,
                    Err(not_applicable) => {
                        // A closed booking's payment is refunded by payment; a duplicate changes
                        // nothing. Recorded so a redelivery is not reconsidered. Already recorded:
                        // this very event's effect (applied by another replica between our read
                        // and now) may be why the transition does not apply — a duplicate, not news.
                        if !self.store.mark_consumed(consumed).await? {
                            return Ok(Attempt::Done(Applied::AlreadyApplied));
                        }
                        return Ok(Attempt::Done(Applied::Ignored(not_applicable.to_string())));
                    }
                };
                Ok(
                    match self
                        .store
                        .save(&mut booking, version, &event, causation, Some(consumed))
                        .await?
                    {
                        SaveOutcome::Saved => {
                            match &event {
                                BookingEvent::Registered => {
                                    metrics::counter!("registrations_total").increment(1);
                                }
                                BookingEvent::Cancelled { .. } => {
                                    metrics::counter!("bookings_cancelled_total").increment(1);
                                }
                                _ => {}
                            }
                            Attempt::Done(Applied::Changed(booking.status()))
                        }
                        SaveOutcome::AlreadyApplied => Attempt::Done(Applied::AlreadyApplied),
                        SaveOutcome::Stale => Attempt::Stale,
                    },
                )
            },
            || {
                StoreError::new(format!(
                    "booking {id} kept changing while applying {reaction:?}"
                ))
            },
        )
        .await
    }
}
