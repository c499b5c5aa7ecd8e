//! Sign-in throttling: how many wrong passwords one username may take before its sign-ins are
//! refused for a while.
//!
//! The gateway's rate limit is per client address; a guesser with many addresses passes it.
//! This counts failures per username instead, wherever they come from, and the count lives in
//! the user store so every identity replica sees the same one. Unknown usernames are counted
//! too, so a refusal does not tell whether an account exists. Lockouts are short and grow
//! (doubling up to a cap), which slows guessing to a crawl while a legitimate user who mistyped
//! a few times waits seconds, not hours; a success forgets the failures.

use chrono::{DateTime, Duration, Utc};

/// Failed sign-ins recorded for one username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedSignIns {
    /// Failures in a row (none further apart than [`ThrottlePolicy::forget_after`]).
    pub failures: u32,
    pub last_failure_at: DateTime<Utc>,
    /// Sign-ins are refused before this instant, whatever the password.
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Failures in a row that may happen before the first lockout.
    pub allowed_failures: u32,
    /// The first lockout; each further failure doubles it.
    pub first_lockout: Duration,
    /// No lockout is longer than this.
    pub max_lockout: Duration,
    /// A failure this long after the previous one starts the count again.
    pub forget_after: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            allowed_failures: 5,
            first_lockout: Duration::seconds(30),
            max_lockout: Duration::minutes(15),
            forget_after: Duration::hours(1),
        }
    }
}

impl ThrottlePolicy {
    /// Until when sign-ins for this username are refused, if they are at `now`.
    pub fn refused_until(
        &self,
        record: Option<&FailedSignIns>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        record
            .and_then(|r| r.locked_until)
            .filter(|until| *until > now)
    }

    /// The record after one more failure at `now`.
    pub fn after_failure(
        &self,
        previous: Option<&FailedSignIns>,
        now: DateTime<Utc>,
    ) -> FailedSignIns {
        let failures = match previous {
            Some(p) if now - p.last_failure_at < self.forget_after => p.failures.saturating_add(1),
            _ => 1,
        };
        let locked_until = failures
            .checked_sub(self.allowed_failures)
            .filter(|over| *over > 0)
            .map(|over| now + self.lockout(over - 1));
        FailedSignIns {
            failures,
            last_failure_at: now,
            locked_until,
        }
    }

    /// The `n`th lockout (from 0): the first one doubled `n` times, capped.
    fn lockout(&self, n: u32) -> Duration {
        let factor = 1i32.checked_shl(n.min(30)).unwrap_or(i32::MAX);
        self.first_lockout
            .checked_mul(factor)
            .map_or(self.max_lockout, |d| d.min(self.max_lockout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_allowed_failures_pass_then_lockouts_double_up_to_the_cap() {
        let policy = ThrottlePolicy::default();
        let mut record = None;
        for n in 1..=5 {
            record = Some(policy.after_failure(record.as_ref(), at(n)));
            let r = record.as_ref().unwrap();
            assert_eq!(r.failures, u32::try_from(n).unwrap());
            assert_eq!(r.locked_until, None, "failure {n} must not lock");
            assert_eq!(policy.refused_until(record.as_ref(), at(n)), None);
        }
        let expected = [30, 60, 120, 240, 480, 900, 900];
        for (i, secs) in expected.into_iter().enumerate() {
            let now = at(100 + i64::try_from(i).unwrap());
            record = Some(policy.after_failure(record.as_ref(), now));
            let until = record.as_ref().unwrap().locked_until.unwrap();
            assert_eq!(until - now, Duration::seconds(secs), "lockout {i}");
            assert_eq!(policy.refused_until(record.as_ref(), now), Some(until));
            assert_eq!(
                policy.refused_until(record.as_ref(), until),
                None,
                "the lockout ends at its instant"
            );
        }
    }

    #[test]
    fn failures_far_apart_start_the_count_again() {
        let policy = ThrottlePolicy::default();
        let mut record = None;
        for n in 0..4 {
            record = Some(policy.after_failure(record.as_ref(), at(n)));
        }
        let later = at(3) + policy.forget_after;
        let record = policy.after_failure(record.as_ref(), later);
        assert_eq!(record.failures, 1);
        assert_eq!(record.locked_until, None);
    }

    #[test]
    fn a_huge_count_does_not_overflow() {
        let policy = ThrottlePolicy::default();
        let previous = FailedSignIns {
            failures: u32::MAX,
            last_failure_at: at(0),
            locked_until: None,
        };
        let record = policy.after_failure(Some(&previous), at(1));
        assert_eq!(record.failures, u32::MAX);
        assert_eq!(record.locked_until, Some(at(1) + policy.max_lockout));
    }
}
