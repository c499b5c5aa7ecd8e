//! The seat-view consumer: every event of every topic, translated from the published language
//! into view changes and projected.
//!
//! Each event is applied exactly once (its id is claimed in the same transaction as the view
//! change). An event whose data this service cannot make sense of (a malformed id, an empty
//! window) is rejected to the dead-letter topic; a store failure is retried.
//!
//! Progress is logged so an operator watching a rebuild sees it move: every 10,000 events, and
//! at the end of each burst (when the consumer has caught up and goes quiet).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use shared_events::{self as pl, IntegrationEvent};
use studycafe_messaging::{EventHandler, HandleError, ReceivedEvent};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::application::ViewService;
use crate::domain::{
    Canceller, ConsumedChange, CustomerId, DetailChange, DetailUpdate, ExternalRef, Money,
    ReservationChange, ReservationId, ReservationRef, SeatDefinition, SeatId, SeatKind, Transition,
    ViewChange, Window,
    ports::{Applied, ViewStore},
};

/// Every topic: the read side follows the whole saga.
pub const TOPICS: &[&str] = &shared_events::topics::ALL;

/// How often (in events applied) progress is logged in the middle of a burst.
const LOG_EVERY: u64 = 10_000;

/// How long the consumer must be quiet for a burst to count as finished.
const BURST_IDLE: Duration = Duration::from_millis(500);

/// Why an event cannot be turned into a view change.
#[derive(Debug, thiserror::Error)]
#[error("{event_type}: {reason}")]
pub struct Untranslatable {
    event_type: &'static str,
    reason: String,
}

fn bad(event_type: &'static str, reason: impl std::fmt::Display) -> Untranslatable {
    Untranslatable {
        event_type,
        reason: reason.to_string(),
    }
}

fn money(event_type: &'static str, m: &pl::Money) -> Result<Money, Untranslatable> {
    // Only KRW exists in the published language; the enum makes anything else undecodable.
    Money::krw(m.amount).map_err(|e| bad(event_type, e))
}

fn reference(
    event_type: &'static str,
    r: &pl::ReservationRef,
) -> Result<ReservationRef, Untranslatable> {
    Ok(ReservationRef {
        id: ReservationId::parse(&r.reservation_id).map_err(|e| bad(event_type, e))?,
        seat_id: SeatId::parse(&r.seat_id).map_err(|e| bad(event_type, e))?,
        customer_id: CustomerId::parse(&r.customer_id).map_err(|e| bad(event_type, e))?,
        window: Window::new(r.starts_at, r.ends_at).map_err(|e| bad(event_type, e))?,
    })
}

fn external(
    event_type: &'static str,
    what: &'static str,
    raw: &str,
) -> Result<ExternalRef, Untranslatable> {
    ExternalRef::parse(what, raw).map_err(|e| bad(event_type, e))
}

/// The view change an event makes. Every event of the published language makes one.
pub fn translate(
    event: &IntegrationEvent,
    occurred_at: DateTime<Utc>,
) -> Result<ViewChange, Untranslatable> {
    let ty = event.event_type();
    let seat_change = |r: &pl::ReservationRef, transition: Transition| {
        Ok(ViewChange::Reservation(ReservationChange {
            reference: reference(ty, r)?,
            transition,
            occurred_at,
        }))
    };
    let detail = |reservation_id: &str, change: DetailChange| {
        Ok(ViewChange::Detail(DetailUpdate {
            reservation_id: ReservationId::parse(reservation_id).map_err(|e| bad(ty, e))?,
            change,
            occurred_at,
        }))
    };
    match event {
        IntegrationEvent::SeatDefined(e) => Ok(ViewChange::Seat(SeatDefinition {
            id: SeatId::parse(&e.seat_id).map_err(|e| bad(ty, e))?,
            zone: e.zone.trim().to_owned(),
            kind: SeatKind::parse(&e.kind).map_err(|e| bad(ty, e))?,
            hourly_price: money(ty, &e.hourly_price)?,
            enabled: e.enabled,
        })),
        IntegrationEvent::SeatReserved(e) => seat_change(
            &e.reservation,
            Transition::Reserved {
                hours: e.hours,
                price: money(ty, &e.price)?,
                hold_expires_at: e.hold_expires_at,
            },
        ),
        IntegrationEvent::ReservationConfirmed(e) => {
            seat_change(&e.reservation, Transition::Confirmed)
        }
        IntegrationEvent::ReservationRejected(e) => seat_change(
            &e.reservation,
            Transition::Rejected {
                reason: e.reason.clone(),
            },
        ),
        IntegrationEvent::ReservationPaid(e) => seat_change(
            &e.reservation,
            Transition::Paid {
                payment_id: external(ty, "payment id", &e.payment_id)?,
                amount: money(ty, &e.amount)?,
            },
        ),
        IntegrationEvent::ReservationPaymentFailed(e) => seat_change(
            &e.reservation,
            Transition::PaymentFailed {
                reason: e.reason.clone(),
            },
        ),
        IntegrationEvent::ReservationRegistered(e) => seat_change(
            &e.reservation,
            Transition::Registered {
                registration_id: external(ty, "registration id", &e.registration_id)?,
            },
        ),
        IntegrationEvent::ReservationCancelled(e) => seat_change(
            &e.reservation,
            Transition::Cancelled {
                by: match e.cancelled_by {
                    pl::CancelledBy::Customer => Canceller::Customer,
                    pl::CancelledBy::Admin => Canceller::Admin,
                },
            },
        ),
        IntegrationEvent::ReservationExpired(e) => seat_change(
            &e.reservation,
            Transition::Expired {
                expired_in: e.expired_in.clone(),
            },
        ),
        IntegrationEvent::ReservationCompleted(e) => {
            seat_change(&e.reservation, Transition::Completed)
        }
        IntegrationEvent::BookingConfirmed(e) => {
            detail(&e.reservation_id, DetailChange::BookingConfirmed)
        }
        IntegrationEvent::BookingRejected(e) => {
            detail(&e.reservation_id, DetailChange::BookingRejected)
        }
        IntegrationEvent::SeatRegistered(e) => detail(
            &e.reservation_id,
            DetailChange::SeatRegistered {
                registration_id: external(ty, "registration id", &e.registration_id)?,
                entry_pass_code: external(ty, "entry pass code", &e.entry_pass_code)?,
            },
        ),
        IntegrationEvent::RegistrationCancelled(e) => detail(
            &e.reservation_id,
            DetailChange::RegistrationCancelled {
                registration_id: e
                    .registration_id
                    .as_deref()
                    .map(|id| external(ty, "registration id", id))
                    .transpose()?,
            },
        ),
        IntegrationEvent::PaymentCompleted(e) => detail(
            &e.reservation_id,
            DetailChange::PaymentCompleted {
                payment_id: external(ty, "payment id", &e.payment_id)?,
            },
        ),
        IntegrationEvent::PaymentDeclined(e) => detail(
            &e.reservation_id,
            DetailChange::PaymentDeclined {
                payment_id: external(ty, "payment id", &e.payment_id)?,
            },
        ),
        IntegrationEvent::PaymentRefunded(e) => detail(
            &e.reservation_id,
            DetailChange::PaymentRefunded {
                payment_id: external(ty, "payment id", &e.payment_id)?,
                refund_id: external(ty, "refund id", &e.refund_id)?,
                amount: money(ty, &e.amount)?,
            },
        ),
    }
}

/// Counts applied events and tells [`Progress::report`] when one arrives.
#[derive(Debug, Default)]
pub struct Progress {
    applied: AtomicU64,
    duplicates: AtomicU64,
    arrived: Notify,
}

impl Progress {
    fn applied(&self, outcome: Applied) {
        match outcome {
            Applied::Applied => {
                let total = self.applied.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!("seat_view_events_total", "outcome" => "applied").increment(1);
                if total.is_multiple_of(LOG_EVERY) {
                    tracing::info!(applied = total, "projecting events");
                }
            }
            Applied::AlreadyApplied => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("seat_view_events_total", "outcome" => "duplicate").increment(1);
            }
        }
        self.arrived.notify_one();
    }

    /// Logs the end of every burst of events: when none arrived for a moment after some did.
    pub async fn report(self: Arc<Self>, shutdown: CancellationToken) {
        let (mut applied_before, mut duplicates_before) = (0, 0);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.arrived.notified() => {}
            }
            let started = Instant::now();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    quiet = tokio::time::timeout(BURST_IDLE, self.arrived.notified()) => {
                        if quiet.is_err() { break }
                    }
                }
            }
            let applied = self.applied.load(Ordering::Relaxed);
            let duplicates = self.duplicates.load(Ordering::Relaxed);
            tracing::info!(
                applied_in_burst = applied - applied_before,
                duplicates_in_burst = duplicates - duplicates_before,
                applied_total = applied,
                seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
                "caught up with the topics"
            );
            (applied_before, duplicates_before) = (applied, duplicates);
            if shutdown.is_cancelled() {
                return;
            }
        }
    }
}

/// The consumer's handler: translate, project, count.
#[derive(Debug)]
pub struct Projection<S> {
    pub service: ViewService<S>,
    pub progress: Arc<Progress>,
}

impl<S: ViewStore> EventHandler for Projection<S> {
    async fn handle(&self, received: &ReceivedEvent) -> Result<(), HandleError> {
        let change = translate(&received.event, received.envelope.occurred_at)
            .map_err(|e| HandleError::Rejected(e.to_string()))?;
        let consumed = ConsumedChange {
            event_id: received.envelope.id,
            change,
        };
        let outcome = self
            .service
            .project(&consumed)
            .await
            .map_err(|e| HandleError::Failed(e.into()))?;
        match outcome {
            Applied::Applied => tracing::debug!(
                event_type = received.event.event_type(),
                correlation_id = %received.envelope.correlation_id,
                "projected"
            ),
            Applied::AlreadyApplied => tracing::debug!(
                event_id = %received.envelope.id,
                "duplicate delivery"
            ),
        }
        self.progress.applied(outcome);
        Ok(())
    }
}
