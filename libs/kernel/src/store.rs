use std::{fmt, marker::PhantomData};

/// Names a service's store in its failures (`"reservation store"`).
pub trait StoreName {
    const NAME: &'static str;
}

/// A store failed (unreachable, busy, I/O, a corrupt row). Not a business outcome: the caller
/// retries or answers "unavailable".
///
/// One type for every service, told apart by `S` only so each failure still names its store
/// (`reservation store: connection refused`); a service writes
/// `type StoreError = studycafe_kernel::StoreError<Reservations>` once and its ports, use cases
/// and adapters use that.
pub struct StoreError<S> {
    pub message: String,
    store: PhantomData<fn() -> S>,
}

impl<S> StoreError<S> {
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            store: PhantomData,
        }
    }
}

// By hand: derived impls would ask `S` (a marker, never a value) to be `Debug` too.
impl<S> fmt::Debug for StoreError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("message", &self.message)
            .finish()
    }
}

impl<S: StoreName> fmt::Display for StoreError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", S::NAME, self.message)
    }
}

impl<S: StoreName> std::error::Error for StoreError<S> {}

#[cfg(test)]
mod tests {
    use super::*;

    enum Bookings {}

    impl StoreName for Bookings {
        const NAME: &'static str = "booking store";
    }

    #[test]
    fn a_failure_names_its_store() {
        let e = StoreError::<Bookings>::new("database is locked");
        assert_eq!(e.to_string(), "booking store: database is locked");
        assert_eq!(
            format!("{e:?}"),
            r#"StoreError { message: "database is locked" }"#
        );
    }

    fn is_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn a_failure_crosses_tasks() {
        is_send_sync::<StoreError<Bookings>>();
    }
}
