//! Test support shared by the crates' integration tests and the end-to-end suite.
//!
//! Everything here is real: the broker is the embedded broker's own executable, started as a
//! process on a free loopback port with its own data directory; tokens are signed with a real
//! Ed25519 key whose JWKS the services read. Executables are found next to the test binary's
//! target directory, so `cargo build --workspace --bins` must have run (the README's test
//! command does it).

pub mod engines;
pub mod kafka;
pub mod keys;
pub mod process;
pub mod sse;

use std::{future::Future, net::TcpListener, time::Duration};

pub use keys::TestKeys;
pub use process::{BrokerProcess, ServiceProcess, executable};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
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
