//! The seat catalogue file.
//!
//! A cafe describes its floor in TOML: zones of seats, each zone one kind at one hourly
//! price, with seats it can switch off. `SEAT_CATALOGUE_FILE` points at it; without it the
//! built-in default cafe (`default-catalogue.toml`, 40 seats) is used.

use serde::Deserialize;

use crate::domain::{Money, Seat, SeatId, SeatKind};

pub const DEFAULT: &str = include_str!("../../default-catalogue.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    zone: Vec<Zone>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Zone {
    /// Zone code, the letters of its seat ids (`A`, `FB`, `G`).
    code: String,
    kind: String,
    hourly_price: i64,
    seats: u16,
    #[serde(default)]
    disabled: Vec<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the catalogue is not valid TOML: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("zone {zone}: {problem}")]
    Zone { zone: String, problem: String },
    #[error("seat {0} appears twice")]
    Duplicate(String),
    #[error("the catalogue has no seats")]
    Empty,
}

/// Parses a catalogue into seats, in floor order.
pub fn parse(text: &str) -> Result<Vec<Seat>, CatalogueError> {
    let file: File = toml::from_str(text)?;
    let mut seats: Vec<Seat> = Vec::new();
    for zone in file.zone {
        let bad = |problem: String| CatalogueError::Zone {
            zone: zone.code.clone(),
            problem,
        };
        let kind = SeatKind::parse(&zone.kind).ok_or_else(|| {
            bad(format!(
                "kind {:?} is not open-desk, focus-booth or group-room",
                zone.kind
            ))
        })?;
        let price = Money::krw(zone.hourly_price).map_err(|e| bad(e.to_string()))?;
        if zone.seats == 0 || zone.seats > 999 {
            return Err(bad("seats must be between 1 and 999".into()));
        }
        if let Some(n) = zone.disabled.iter().find(|n| **n == 0 || **n > zone.seats) {
            return Err(bad(format!("disabled seat {n} is not in the zone")));
        }
        for number in 1..=zone.seats {
            let id = SeatId::parse(&format!("{}-{:02}", zone.code, number))
                .map_err(|e| bad(e.to_string()))?;
            if seats.iter().any(|s| s.id == id) {
                return Err(CatalogueError::Duplicate(id.to_string()));
            }
            seats.push(Seat {
                id,
                zone: zone.code.clone(),
                kind,
                hourly_price: price,
                enabled: !zone.disabled.contains(&number),
            });
        }
    }
    if seats.is_empty() {
        return Err(CatalogueError::Empty);
    }
    Ok(seats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cafe() {
        let seats = parse(DEFAULT).unwrap();
        assert_eq!(seats.len(), 40);
        assert!(seats.iter().any(|s| s.kind == SeatKind::FocusBooth));
        assert!(seats.iter().any(|s| s.kind == SeatKind::GroupRoom));
        assert!(seats.iter().any(|s| !s.enabled));
        assert_eq!(seats[0].id.as_str(), "A-01");
    }

    #[test]
    fn bad_catalogues_say_why() {
        let err = parse("[[zone]]\ncode = \"A\"\nkind = \"sofa\"\nhourly_price = 1\nseats = 2\n")
            .unwrap_err();
        assert!(err.to_string().contains("sofa"));
        let err = parse(
            "[[zone]]\ncode = \"A\"\nkind = \"open-desk\"\nhourly_price = 1\nseats = 2\ndisabled = [3]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("disabled seat 3"));
        assert!(parse("zone = []").is_err());
    }
}
