//! The Redis store through a Redis restart: the service reconnects by itself, the consumer's
//! events are applied once Redis is back, and live watchers are told to resync for what the
//! board channel may have carried while they were cut off.
//!
//! It needs a Redis it may kill, so it runs its own `redis-server` (the binary
//! `scripts/engines/redis` installs) on a free port, with an append-only file so the views
//! survive the restart as they do in production.

mod support;

use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use studycafe_testkit::{engines, eventually, free_port};
use support::{Store, WAIT, seat, spawn_app};

/// A `redis-server` of this test's own.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    async fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        redis.spawn().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/engines/up redis installs it)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        eventually(WAIT, "our redis-server answers", || async {
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            let pong: String = redis::cmd("PING").query_async(&mut connection).await.ok()?;
            (pong == "PONG").then_some(())
        })
        .await;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_is_survived_and_watchers_are_told_to_resync() {
    let mut redis = OwnRedis::start().await;
    let mut app = spawn_app(Store::Redis {
        url: redis.url(),
        prefix: engines::unique_name("seatview"),
    })
    .await;
    let mut stream = app.stream().await;
    let before = app.publish("O-01", seat("O-01", true)).await;
    let frame = stream.next_within("the change before the restart").await;
    assert_eq!(frame.id, Some(before.id.to_string()));
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    app.wait_for_board("O-01", at, "FREE").await;

    redis.kill();
    redis.spawn().await;

    // The subscription came back, and said it may have missed changes.
    let frame = stream.next_within("a resync after the restart").await;
    assert_eq!(frame.event.as_deref(), Some("resync"), "{frame:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&frame.data).unwrap(),
        json!({"missed": null})
    );

    // The store reconnected too: new events are applied, announced, and the views kept.
    let after = app.publish("O-02", seat("O-02", false)).await;
    let frame = stream.next_within("the change after the restart").await;
    assert_eq!(frame.event.as_deref(), Some("board-changed"));
    assert_eq!(frame.id, Some(after.id.to_string()));
    app.wait_for_board("O-02", at, "DISABLED").await;
    assert_eq!(app.seat_at("O-01", at).await["status"], "FREE");
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), 200);

    app.stop().await;
}
