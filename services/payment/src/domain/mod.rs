//! The payments domain: the `Payment` aggregate, refunds, and the card provider it charges.
//!
//! Pure Rust: no web framework, database or broker in here. The outside world reaches the
//! domain through the ports in [`ports`], implemented by adapters in `inbound` and `outbound`.

pub mod ids;
pub mod money;
pub mod payment;
pub mod ports;

pub use ids::{CustomerId, IdError, PaymentId, PaymentToken, RefundId, ReservationId};
pub use money::{Currency, Money, MoneyError};
pub use payment::{
    ChargeRequest, ClosureReason, Mismatch, NotPending, Payment, PaymentEvent, PaymentState,
    PaymentStatus, Refund, RefundState, RefundStatus, ReservationClosure,
};
