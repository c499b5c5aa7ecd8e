//! The reserved time window and the rules a new one must satisfy.

use chrono::{DateTime, Duration, DurationRound as _, Utc};

/// `[starts_at, ends_at)`, whole hours long, on whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    starts_at: DateTime<Utc>,
    hours: u8,
}

/// The cafe's booking rules.
#[derive(Debug, Clone)]
pub struct ReservationPolicy {
    /// How long an unpaid reservation holds its seat.
    pub hold: Duration,
    pub min_hours: u8,
    pub max_hours: u8,
    /// How far ahead a seat can be booked.
    pub horizon: Duration,
    /// A start this little in the past is accepted (clock skew, "from now" bookings).
    pub past_tolerance: Duration,
}

impl Default for ReservationPolicy {
    fn default() -> Self {
        Self {
            hold: Duration::minutes(10),
            min_hours: 1,
            max_hours: 12,
            horizon: Duration::days(30),
            past_tolerance: Duration::minutes(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("hours must be between {min} and {max}, got {got}")]
    HoursOutOfRange { min: u8, max: u8, got: i64 },
    #[error("startsAt {starts_at} is in the past")]
    StartsInPast { starts_at: DateTime<Utc> },
    #[error("startsAt {starts_at} is more than {days} days ahead")]
    TooFarAhead { starts_at: DateTime<Utc>, days: i64 },
}

impl TimeWindow {
    /// A new window for a reservation made at `now`, checked against `policy`.
    pub fn for_new_reservation(
        starts_at: DateTime<Utc>,
        hours: i64,
        policy: &ReservationPolicy,
        now: DateTime<Utc>,
    ) -> Result<Self, WindowError> {
        if hours < i64::from(policy.min_hours) || hours > i64::from(policy.max_hours) {
            return Err(WindowError::HoursOutOfRange {
                min: policy.min_hours,
                max: policy.max_hours,
                got: hours,
            });
        }
        let starts_at = starts_at
            .duration_trunc(Duration::seconds(1))
            .unwrap_or(starts_at);
        if starts_at < now - policy.past_tolerance {
            return Err(WindowError::StartsInPast { starts_at });
        }
        if starts_at > now + policy.horizon {
            return Err(WindowError::TooFarAhead {
                starts_at,
                days: policy.horizon.num_days(),
            });
        }
        Ok(Self {
            starts_at,
            hours: hours as u8,
        })
    }

    /// A window as stored (already validated when it was made).
    pub fn restore(starts_at: DateTime<Utc>, hours: u8) -> Self {
        Self { starts_at, hours }
    }

    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    pub fn ends_at(&self) -> DateTime<Utc> {
        self.starts_at + Duration::hours(i64::from(self.hours))
    }

    pub fn hours(&self) -> u8 {
        self.hours
    }

    pub fn overlaps(&self, other: &TimeWindow) -> bool {
        self.starts_at < other.ends_at() && other.starts_at < self.ends_at()
    }

    pub fn has_ended(&self, now: DateTime<Utc>) -> bool {
        now >= self.ends_at()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    #[test]
    fn rules() {
        let policy = ReservationPolicy::default();
        let now = at(8);
        assert!(TimeWindow::for_new_reservation(at(9), 2, &policy, now).is_ok());
        assert!(matches!(
            TimeWindow::for_new_reservation(at(9), 0, &policy, now),
            Err(WindowError::HoursOutOfRange { .. })
        ));
        assert!(matches!(
            TimeWindow::for_new_reservation(at(9), 13, &policy, now),
            Err(WindowError::HoursOutOfRange { .. })
        ));
        assert!(matches!(
            TimeWindow::for_new_reservation(at(7), 1, &policy, now),
            Err(WindowError::StartsInPast { .. })
        ));
        // A few seconds late is fine: "from now".
        assert!(
            TimeWindow::for_new_reservation(now - Duration::seconds(20), 1, &policy, now).is_ok()
        );
        assert!(matches!(
            TimeWindow::for_new_reservation(now + Duration::days(31), 1, &policy, now),
            Err(WindowError::TooFarAhead { .. })
        ));
    }

    #[test]
    fn overlap_is_half_open() {
        let a = TimeWindow::restore(at(9), 2); // 9-11
        assert!(a.overlaps(&TimeWindow::restore(at(10), 1)));
        assert!(a.overlaps(&TimeWindow::restore(at(8), 2)));
        assert!(
            !a.overlaps(&TimeWindow::restore(at(11), 1)),
            "back to back is fine"
        );
        assert!(!a.overlaps(&TimeWindow::restore(at(7), 2)));
        assert!(a.has_ended(at(11)));
        assert!(!a.has_ended(at(10)));
    }
}
