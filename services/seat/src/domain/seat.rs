//! The seat catalogue: what a customer can book.

use crate::domain::{Money, SeatId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatKind {
    /// A desk in the shared open area.
    OpenDesk,
    /// A partitioned single booth for deep work.
    FocusBooth,
    /// A small room for a study group.
    GroupRoom,
}

impl SeatKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OpenDesk => "open-desk",
            Self::FocusBooth => "focus-booth",
            Self::GroupRoom => "group-room",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "open-desk" => Some(Self::OpenDesk),
            "focus-booth" => Some(Self::FocusBooth),
            "group-room" => Some(Self::GroupRoom),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub id: SeatId,
    pub zone: String,
    pub kind: SeatKind,
    pub hourly_price: Money,
    /// A disabled seat (broken lamp, cleaning) takes no new reservations.
    pub enabled: bool,
}
