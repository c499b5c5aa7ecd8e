//! Dropping a future at a chosen await point, the way a client that hangs up (or a timeout, or
//! a `select!`) drops a request's future: to prove that no await point leaves shared state
//! half-done.
//!
//! [`drop_after_polls`] polls a future by hand, each poll only after the previous one's
//! wake-up (the database answered, a lock was granted), and drops it before poll `n + 1`. Run
//! it for `n = 0, 1, 2, …` until the future finishes within its polls, and every await point
//! the future passes through has been a drop point once, deterministically, whatever the
//! timing. [`at_spread_moments`] adds drops after wall-clock delays spread over a range, for
//! futures whose I/O wakes them less often than they have await points.

use std::{
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Wake, Waker},
    time::Duration,
};

use tokio::sync::Notify;

/// How long one step may wait for its wake-up before the test fails (a future that is never
/// woken again is a hang, and that is a finding too).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

struct Woken(Notify);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        // Stores a permit when nobody waits yet: a wake-up before we wait is not lost.
        self.0.notify_one();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify_one();
    }
}

/// Polls `future` at most `polls` times, each time after it asked to be woken, and drops it
/// after the last poll. `Some(output)` when it finished within those polls, `None` when it
/// was dropped part-way (with `polls = 0`: dropped before it ever ran).
pub async fn drop_after_polls<F: Future>(future: F, polls: usize) -> Option<F::Output> {
    let woken = Arc::new(Woken(Notify::new()));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    for poll in 0..polls {
        if poll > 0 {
            tokio::time::timeout(STEP_TIMEOUT, woken.0.notified())
                .await
                .unwrap_or_else(|_| panic!("the future was never woken after poll {poll}"));
        }
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
    }
    None
}

/// Where a future was dropped, for the messages of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropPoint {
    /// After this many polls.
    Poll(usize),
    /// After this long.
    After(Duration),
}

impl std::fmt::Display for DropPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Poll(polls) => write!(f, "a drop after poll {polls}"),
            Self::After(delay) => write!(f, "a drop after {delay:?}"),
        }
    }
}

/// Runs `make()`'s future once for every await point it has: dropped after 0 polls, after 1,
/// after 2, … and finally run to its end. After each drop, `check(point)` must hold (the state
/// the drop left behind is sound: the pool still serves, nothing half-written). Returns the
/// number of drop points visited. Panics beyond `max_polls` (a future that never finishes).
pub async fn at_every_await_point<F, Fut, C, CFut>(
    max_polls: usize,
    mut make: F,
    mut check: C,
) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future,
    C: FnMut(DropPoint) -> CFut,
    CFut: Future<Output = ()>,
{
    for polls in 0..=max_polls {
        let finished = drop_after_polls(make(), polls).await.is_some();
        check(DropPoint::Poll(polls)).await;
        if finished {
            return polls;
        }
    }
    panic!("the future did not finish within {max_polls} polls")
}

/// Runs `make()`'s future `runs` times, dropping run `i` after `i / runs` of `within` (unless it
/// finished first), with `check(point)` after each: drops at moments spread over the time the
/// future takes, whichever await point it is at then.
pub async fn at_spread_moments<F, Fut, C, CFut>(
    runs: u32,
    within: Duration,
    mut make: F,
    mut check: C,
) where
    F: FnMut() -> Fut,
    Fut: Future,
    C: FnMut(DropPoint) -> CFut,
    CFut: Future<Output = ()>,
{
    for run in 0..runs {
        let delay = within * run / runs.max(1);
        let _ = tokio::time::timeout(delay, make()).await;
        check(DropPoint::After(delay)).await;
    }
}
