//! Translating the domain's payment events into the published language.
//!
//! The domain speaks of transitions; other contexts read `shared_events`. This is the one
//! place where one becomes the other. Every event is correlated and keyed by the reservation
//! id, so it lands on the reservation's partition, in order with the rest of its saga.

use chrono::{DateTime, Utc};
use shared_events::{self as pl, Envelope, EventMeta};
use studycafe_messaging::OutboxMessage;

use crate::domain::{Currency, Money, Payment, PaymentEvent, Refund};

pub const SOURCE: &str = "payment";

pub fn money(money: Money) -> pl::Money {
    pl::Money {
        amount: money.amount(),
        currency: match money.currency() {
            Currency::Krw => pl::Currency::Krw,
        },
    }
}

fn message<T: pl::Event>(meta: EventMeta, data: T) -> OutboxMessage {
    OutboxMessage::from_event(&Envelope::wrap(meta, data))
}

/// The outbox message for `event`, which just happened to `payment` (already settled).
pub fn payment_message(
    payment: &Payment,
    event: &PaymentEvent,
    causation: &str,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let meta = EventMeta::new(SOURCE, payment.reservation_id().to_string(), causation, now);
    match event {
        PaymentEvent::Completed => message(
            meta,
            pl::PaymentCompleted {
                reservation_id: payment.reservation_id().to_string(),
                payment_id: payment.id().to_string(),
                amount: money(payment.amount()),
            },
        ),
        PaymentEvent::Declined { reason } => message(
            meta,
            pl::PaymentDeclined {
                reservation_id: payment.reservation_id().to_string(),
                payment_id: payment.id().to_string(),
                reason: reason.clone(),
            },
        ),
    }
}

/// The outbox message announcing that `refund` (just completed) paid the money back. Its
/// causation is what made the refund owed (the closure event, or the payment request that
/// completed after the closure).
pub fn refund_message(refund: &Refund, now: DateTime<Utc>) -> OutboxMessage {
    let meta = EventMeta::new(
        SOURCE,
        refund.reservation_id().to_string(),
        refund.cause().to_owned(),
        now,
    );
    message(
        meta,
        pl::PaymentRefunded {
            reservation_id: refund.reservation_id().to_string(),
            payment_id: refund.payment_id().to_string(),
            refund_id: refund.id().to_string(),
            amount: money(refund.amount()),
        },
    )
}
