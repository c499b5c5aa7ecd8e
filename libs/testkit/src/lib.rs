//! Test support shared by the crates' integration tests and the end-to-end suite.
//!
//! Everything here is real: the broker is the embedded broker's own executable, started as a
//! process on a free loopback port with its own data directory; tokens are signed with a real
//! Ed25519 key whose JWKS the services read. Executables are found next to the test binary's
//! target directory, so `cargo build --workspace --bins` must have run (the README's test
//! command does it).

pub mod cancel;
pub mod engines;
pub mod kafka;
pub mod keys;
pub mod process;
pub mod properties;
pub mod sse;

use std::{future::Future, net::TcpListener, time::Duration};

pub use keys::TestKeys;
pub use process::{BrokerProcess, ServiceProcess, executable};

/// A loopback port that was free a moment ago, never handed out twice by this process.
///
/// Asking the kernel for port 0 and dropping the listener is not enough: a later `bind(0)` (ours
/// or a service's) may get the same port back, and outgoing connections take their local ports
/// from the same ephemeral range (`32768..61000` on Linux), so two services of one stack were once
/// handed one port. Ports therefore come from below the ephemeral range, walked by a process-wide
/// counter that starts at a per-process offset, and each is checked by binding it.
pub fn free_port() -> u16 {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    };
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        AtomicU32::new(std::process::id().wrapping_mul(7919).wrapping_add(nanos))
    });
    for _ in 0..COUNT {
        let port = (FIRST + next.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT)
}

/// Polls `check` every 100 ms until it returns `Some`; `None` once `timeout` has passed.
pub async fn within<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match within(timeout, check).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}
