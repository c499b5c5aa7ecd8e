//! The vocabulary of the views as a whole: the changes the projection applies, the live board
//! changes it announces, the customer's timeline entries, and the view generation.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    DetailUpdate, Reservation, ReservationChange, ReservationDetails, ReservationId,
    ReservationStatus, SeatDefinition, SeatId,
};

/// One consumed event, as a change to the views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewChange {
    /// `SeatDefined`: the seat as it now stands.
    Seat(SeatDefinition),
    /// A reservation event of the seat service.
    Reservation(ReservationChange),
    /// A registration or payment event.
    Detail(DetailUpdate),
}

/// A consumed event's id with the change it makes: applied together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedChange {
    pub event_id: Uuid,
    pub change: ViewChange,
}

/// What live board watchers are told after a seat-topic change committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardChange {
    Reservation {
        event_id: Uuid,
        seat_id: SeatId,
        reservation_id: ReservationId,
        status: ReservationStatus,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        occurred_at: DateTime<Utc>,
    },
    Seat {
        event_id: Uuid,
        seat_id: SeatId,
        enabled: bool,
    },
}

impl BoardChange {
    /// The board change a committed view change makes; none for registration or payment news,
    /// which never moves the board.
    pub fn of(consumed: &ConsumedChange) -> Option<Self> {
        let event_id = consumed.event_id;
        match &consumed.change {
            ViewChange::Seat(seat) => Some(Self::Seat {
                event_id,
                seat_id: seat.id.clone(),
                enabled: seat.enabled,
            }),
            ViewChange::Reservation(change) => Some(Self::Reservation {
                event_id,
                seat_id: change.reference.seat_id.clone(),
                reservation_id: change.reference.id,
                status: change.transition.status(),
                starts_at: change.reference.window.starts_at(),
                ends_at: change.reference.window.ends_at(),
                occurred_at: change.occurred_at,
            }),
            ViewChange::Detail(_) => None,
        }
    }

    pub fn event_id(&self) -> Uuid {
        match self {
            Self::Reservation { event_id, .. } | Self::Seat { event_id, .. } => *event_id,
        }
    }
}

/// One entry of a customer's timeline: the seat topic's reservation with whatever
/// registration and payment said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub reservation: Reservation,
    pub details: Option<ReservationDetails>,
}

impl TimelineEntry {
    /// The newest `occurredAt` applied to any part of it.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.details
            .as_ref()
            .map_or(self.reservation.updated_at, |d| {
                d.updated_at.max(self.reservation.updated_at)
            })
    }
}

/// How many timeline entries one page holds: 1 to 200, 50 unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and {max}", max = PageLimit::MAX)]
pub struct LimitOutOfRange;

impl PageLimit {
    pub const MAX: u16 = 200;
    pub const DEFAULT: Self = Self(50);

    pub fn new(limit: i64) -> Result<Self, LimitOutOfRange> {
        u16::try_from(limit)
            .ok()
            .filter(|l| (1..=Self::MAX).contains(l))
            .map(Self)
            .ok_or(LimitOutOfRange)
    }

    pub fn get(&self) -> u16 {
        self.0
    }
}

/// Which incarnation of the views this is. A rebuild wipes the views and starts the next
/// generation, which consumes under its own consumer group from the earliest offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Generation(u32);

impl Generation {
    pub const FIRST: Self = Self(1);

    pub fn new(n: u32) -> Self {
        Self(n.max(1))
    }

    pub fn next(&self) -> Self {
        Self(self.0.saturating_add(1))
    }

    pub fn get(&self) -> u32 {
        self.0
    }

    /// The consumer group this generation reads with: `seat-view`, then `seat-view.g2`, …
    pub fn consumer_group(&self) -> String {
        if *self == Self::FIRST {
            CONSUMER_GROUP.to_owned()
        } else {
            format!("{CONSUMER_GROUP}.g{}", self.0)
        }
    }
}

/// The service's consumer group (the first generation's) and inbox name.
pub const CONSUMER_GROUP: &str = "seat-view";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_name_their_group() {
        assert_eq!(Generation::FIRST.consumer_group(), "seat-view");
        assert_eq!(Generation::FIRST.next().consumer_group(), "seat-view.g2");
        assert_eq!(Generation::new(0), Generation::FIRST);
    }

    #[test]
    fn limits() {
        assert_eq!(PageLimit::new(1).unwrap().get(), 1);
        assert_eq!(PageLimit::new(200).unwrap().get(), 200);
        assert!(PageLimit::new(0).is_err());
        assert!(PageLimit::new(201).is_err());
        assert!(PageLimit::new(-5).is_err());
    }
}
