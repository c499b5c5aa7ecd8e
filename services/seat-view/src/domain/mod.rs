//! The read side's model: seats, reservations as their customers follow them, the board, and
//! the changes events make to them.
//!
//! Pure Rust: no web framework, database or broker in here. Events reach the model through
//! the consumer in `inbound`, already translated from the published language into
//! [`ViewChange`]s; the views are kept behind the ports in [`ports`].

pub mod board;
pub mod details;
pub mod ids;
pub mod money;
pub mod ports;
pub mod reservation;
pub mod seat;
pub mod view;

pub use board::{Board, BoardFacts, BoardSeat, Occupancy, SeatStatus};
pub use details::{
    BookingDecision, DetailChange, DetailUpdate, PaymentStatus, RegistrationStatus,
    ReservationDetails,
};
pub use ids::{CustomerId, ExternalRef, IdError, ReservationId, SeatId};
pub use money::{Money, NegativeAmount};
pub use reservation::{
    BoardPresence, Canceller, EmptyWindow, Reservation, ReservationChange, ReservationRef,
    ReservationStatus, Transition, Window,
};
pub use seat::{InvalidSeatKind, SeatDefinition, SeatKind};
pub use view::{
    BoardChange, CONSUMER_GROUP, ConsumedChange, Generation, LimitOutOfRange, PageLimit,
    TimelineEntry, ViewChange,
};
