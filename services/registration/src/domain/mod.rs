//! The cafe admin's domain: the `Booking` aggregate (approval, then registration with an
//! entry pass) and the cafe's auto-confirm policy.
//!
//! Pure Rust: no web framework, database or broker in here. The outside world reaches the
//! domain through the ports in [`ports`], implemented by adapters in `inbound` and `outbound`.

pub mod booking;
pub mod ids;
pub mod policy;
pub mod ports;
pub mod values;

pub use booking::{
    Booking, BookingEvent, BookingState, BookingStatus, Decider, NewBooking, Registration,
    ReservationEnded, TransitionError,
};
pub use ids::{
    AdminId, CafeId, CustomerId, EntryPassCode, IdError, RegistrationId, ReservationId, SeatId,
};
pub use policy::AutoConfirmPolicy;
pub use values::{Money, RejectionReason, ValueError, Window};
