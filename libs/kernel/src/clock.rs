use chrono::{DateTime, Utc};

/// Where the domain and its use cases get the time: a port, so tests can hold or move it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

// Here rather than in each service: services hold an `Arc<dyn Clock>` in types that derive
// `Debug`, and only this crate may implement a foreign trait for `dyn Clock`.
impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_shared_clock_prints_without_its_state() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        assert_eq!(format!("{clock:?}"), "Clock");
    }
}
