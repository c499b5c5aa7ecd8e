//! The seat board: every seat's status at one instant.
//!
//! The rule, in order: a disabled seat is DISABLED; else OCCUPIED if a paid, registered or
//! completed reservation's window covers the instant; else HELD if a requested or confirmed one
//! does; else FREE. The board never says who holds a seat.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::{BoardPresence, ReservationStatus, SeatDefinition, SeatId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatStatus {
    Free,
    Held,
    Occupied,
    Disabled,
}

impl SeatStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Free => "FREE",
            Self::Held => "HELD",
            Self::Occupied => "OCCUPIED",
            Self::Disabled => "DISABLED",
        }
    }
}

/// A reservation whose window covers the instant asked about (the store finds these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    pub seat_id: SeatId,
    pub status: ReservationStatus,
    pub ends_at: DateTime<Utc>,
}

/// What the board is made of: the seats and the reservations covering the instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardFacts {
    pub seats: Vec<SeatDefinition>,
    pub covering: Vec<Occupancy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardSeat {
    pub seat: SeatDefinition,
    pub status: SeatStatus,
    /// Until when the seat is occupied or held (that reservation's end).
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    pub at: DateTime<Utc>,
    /// Sorted by seat id.
    pub seats: Vec<BoardSeat>,
}

impl Board {
    pub fn compose(at: DateTime<Utc>, facts: BoardFacts) -> Self {
        // The strongest presence per seat; among equals the one ending last.
        let mut strongest: HashMap<&SeatId, (BoardPresence, DateTime<Utc>)> = HashMap::new();
        for occupancy in &facts.covering {
            let presence = occupancy.status.presence();
            if presence == BoardPresence::None {
                continue;
            }
            let rank = |p: BoardPresence| u8::from(p == BoardPresence::Occupies);
            strongest
                .entry(&occupancy.seat_id)
                .and_modify(|(p, until)| {
                    if (rank(presence), occupancy.ends_at) > (rank(*p), *until) {
                        *p = presence;
                        *until = occupancy.ends_at;
                    }
                })
                .or_insert((presence, occupancy.ends_at));
        }
        let mut seats: Vec<BoardSeat> = facts
            .seats
            .iter()
            .map(|seat| {
                let (status, until) = if !seat.enabled {
                    (SeatStatus::Disabled, None)
                } else {
                    match strongest.get(&seat.id) {
                        Some((BoardPresence::Occupies, until)) => {
                            (SeatStatus::Occupied, Some(*until))
                        }
                        Some((BoardPresence::Holds, until)) => (SeatStatus::Held, Some(*until)),
                        _ => (SeatStatus::Free, None),
                    }
                };
                BoardSeat {
                    seat: seat.clone(),
                    status,
                    until,
                }
            })
            .collect();
        seats.sort_by(|a, b| a.seat.id.cmp(&b.seat.id));
        Self { at, seats }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{Money, SeatKind};

    fn seat(id: &str, enabled: bool) -> SeatDefinition {
        SeatDefinition {
            id: SeatId::parse(id).unwrap(),
            zone: "A".into(),
            kind: SeatKind::parse("open-desk").unwrap(),
            hourly_price: Money::krw(2000).unwrap(),
            enabled,
        }
    }

    fn covering(id: &str, status: ReservationStatus, hour: u32) -> Occupancy {
        Occupancy {
            seat_id: SeatId::parse(id).unwrap(),
            status,
            ends_at: Utc.with_ymd_and_hms(2030, 1, 1, hour, 0, 0).unwrap(),
        }
    }

    #[test]
    fn the_rule() {
        let at = Utc.with_ymd_and_hms(2030, 1, 1, 10, 0, 0).unwrap();
        let board = Board::compose(
            at,
            BoardFacts {
                seats: vec![
                    seat("B-01", true),
                    seat("A-02", true),
                    seat("A-01", true),
                    seat("A-03", false),
                    seat("A-04", true),
                ],
                covering: vec![
                    covering("A-01", ReservationStatus::Requested, 12),
                    covering("A-01", ReservationStatus::Paid, 11),
                    covering("A-02", ReservationStatus::Confirmed, 13),
                    covering("A-03", ReservationStatus::Registered, 13),
                    covering("A-04", ReservationStatus::Cancelled, 13),
                ],
            },
        );
        let shown: Vec<(&str, &str, Option<u32>)> = board
            .seats
            .iter()
            .map(|s| {
                (
                    s.seat.id.as_str(),
                    s.status.as_str(),
                    s.until.map(|u| u.format("%H").to_string().parse().unwrap()),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("A-01", "OCCUPIED", Some(11)),
                ("A-02", "HELD", Some(13)),
                ("A-03", "DISABLED", None),
                ("A-04", "FREE", None),
                ("B-01", "FREE", None),
            ]
        );
    }
}
