//! The process on SIGTERM with `SHUTDOWN_DRAIN_MS`: not ready at once, still serving through
//! the drain (a balancer's pooled connections keep working until it has looked), then stopped.
//! The executable itself, signalled as `studycafe up` signals it.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit, at most `within`.
fn exited_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

struct Running {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(drain_ms: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_identity-service"))
        .env_clear()
        .env("IDENTITY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "IDENTITY_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("identity.db").display()),
        )
        .env("IDENTITY_KEYS_DIR", dir.path().join("keys"))
        .env("SHUTDOWN_DRAIN_MS", drain_ms)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(format!("{}/health/ready", running.base))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return running;
        }
        assert!(Instant::now() < until, "identity-service never got ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn on_sigterm_the_service_reports_not_ready_and_serves_through_the_drain_then_stops() {
    let mut service = start("3000").await;
    // One pooled connection, as a balancer holds.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let keys = format!("{}/.well-known/jwks.json", service.base);
    assert_eq!(http.get(&keys).send().await.unwrap().status(), 200);

    signal(&service.child, "TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = http
        .get(format!("{}/health/ready", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["reason"], "shutting down", "{body}");
    for _ in 0..5 {
        let answer = http.get(&keys).send().await.expect("served while draining");
        assert_eq!(answer.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "still running 1.5 s into a 3 s drain"
    );

    let status = exited_within(&mut service.child, Duration::from_secs(15))
        .expect("stopped after the drain");
    assert!(status.success(), "{status}");
    assert!(
        http.get(&keys).send().await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn without_a_drain_or_on_a_second_signal_the_service_stops_at_once() {
    let mut plain = start("0").await;
    let mut draining = start("60000").await;
    signal(&plain.child, "TERM");
    signal(&draining.child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&draining.child, "TERM");
    for service in [&mut plain, &mut draining] {
        let status = exited_within(&mut service.child, Duration::from_secs(15))
            .expect("stopped well before a minute's drain");
        assert!(status.success(), "{status}");
    }
}
