//! The optimistic use case's loop, written once: load, decide, save at the version that was
//! read; when another writer saved first, do it all again on what that writer stored.

use std::future::Future;

/// How many times a use case decides before it gives up on a record that keeps changing.
pub const MAX_ATTEMPTS: usize = 8;

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt<T> {
    Done(T),
    /// Another writer saved first: load and decide again.
    Stale,
}

/// Runs `attempt` until it ends otherwise than [`Attempt::Stale`], at most [`MAX_ATTEMPTS`]
/// times; then fails with `contended()`. An error of an attempt ends it at once.
pub async fn retry_on_stale<T, E, Fut>(
    mut attempt: impl FnMut() -> Fut,
    contended: impl FnOnce() -> E,
) -> Result<T, E>
where
    Fut: Future<Output = Result<Attempt<T>, E>>,
{
    for _ in 0..MAX_ATTEMPTS {
        if let Attempt::Done(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(contended())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn a_stale_save_is_decided_again_until_it_lands() {
        let tries = Cell::new(0);
        let done: Result<&str, &str> = retry_on_stale(
            || async {
                tries.set(tries.get() + 1);
                Ok(if tries.get() < 3 {
                    Attempt::Stale
                } else {
                    Attempt::Done("saved")
                })
            },
            || "contended",
        )
        .await;
        assert_eq!((Ok("saved"), 3), (done, tries.get()));
    }

    #[tokio::test]
    async fn a_record_that_keeps_changing_is_contended_after_the_last_attempt() {
        let tries = Cell::new(0);
        let done: Result<(), &str> = retry_on_stale(
            || async {
                tries.set(tries.get() + 1);
                Ok(Attempt::Stale)
            },
            || "contended",
        )
        .await;
        assert_eq!((Err("contended"), MAX_ATTEMPTS), (done, tries.get()));
    }

    #[tokio::test]
    async fn an_error_ends_the_use_case_at_once() {
        let tries = Cell::new(0);
        let done: Result<(), &str> = retry_on_stale(
            || async {
                tries.set(tries.get() + 1);
                Err("store down")
            },
            || "contended",
        )
        .await;
        assert_eq!((Err("store down"), 1), (done, tries.get()));
    }
}
