//! The board feed's heartbeat: seat-view's relay of the Redis board channel, stuck on a check
//! of its subscription that Redis does not answer (the server hangs: SIGSTOP), turns liveness
//! false, naming it, and true again once Redis answers; idle between messages it stays live.
//!
//! It hangs a Redis of its own (the `redis-server` that `scripts/engines/redis` installs), on a
//! free port, never the shared one.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use seat_view_service::outbound::{feed::BroadcastFeed, redis_feed::BoardChannelRelay};
use studycafe_platform::liveness::{Heartbeats, LivenessConfig};
use studycafe_testkit::{eventually, free_port};
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(60);

struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/engines/up redis installs it)");
        let redis = Self { port, child };
        let client = redis::Client::open(redis.url()).unwrap();
        eventually(WAIT, "our redis-server answers", || async {
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            let pong: String = redis::cmd("PING").query_async(&mut connection).await.ok()?;
            (pong == "PONG").then_some(())
        })
        .await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stalled(beats: &Heartbeats) -> Vec<String> {
    beats.stalled().into_iter().map(|s| s.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_feed_stuck_on_an_unanswered_check_is_not_live_until_redis_answers() {
    let redis = OwnRedis::start().await;
    let beats = Heartbeats::new(LivenessConfig { stall_limit: LIMIT });
    let relay = BoardChannelRelay::subscribe(&redis.url(), "liveness", BroadcastFeed::new(16))
        .await
        .unwrap()
        .with_heartbeats(&beats);
    assert_eq!(beats.names(), ["board feed"]);
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));

    // Subscribed and idle, many times the limit: live.
    for _ in 0..5 {
        tokio::time::sleep(LIMIT).await;
        assert_eq!(stalled(&beats), Vec::<String>::new(), "an idle board feed");
    }

    // Redis hangs; the feed's next subscription check (every 10 s) gets no answer.
    redis.signal("STOP");
    eventually(WAIT, "the stuck board feed named as stalled", || async {
        (stalled(&beats) == ["board feed"]).then_some(())
    })
    .await;
    redis.signal("CONT");
    eventually(WAIT, "live again once Redis answers", || async {
        stalled(&beats).is_empty().then_some(())
    })
    .await;

    stop.cancel();
    task.await.unwrap().unwrap();
}
