//! The seat selection domain: the seat catalogue and the `Reservation` aggregate.
//!
//! Pure Rust: no web framework, database or broker in here. The outside world reaches the
//! domain through the ports in [`ports`], implemented by adapters in `inbound` and `outbound`.

pub mod ids;
pub mod money;
pub mod ports;
pub mod reservation;
pub mod seat;
pub mod window;

pub use ids::{CustomerId, PaymentToken, ReservationId, SeatId};
pub use money::Money;
pub use reservation::{
    CancelledBy, PaymentProgress, Reservation, ReservationEvent, ReservationState,
    ReservationStatus, TransitionError,
};
pub use seat::{Seat, SeatKind};
pub use window::{ReservationPolicy, TimeWindow, WindowError};
