//! Adapters of the payment port.

use crate::domain::ports::{PaymentOutcome, PaymentRequest, PaymentUnavailable, Payments};

/// Stands in the type slot when no payment service is configured; never called, since the
/// timers take no payments without an adapter.
#[derive(Debug, Clone, Copy)]
pub struct NotConfigured;

impl Payments for NotConfigured {
    async fn pay(&self, _: PaymentRequest) -> Result<PaymentOutcome, PaymentUnavailable> {
        Err(PaymentUnavailable(
            "no payment service is configured".into(),
        ))
    }
}
