//! The consumer's and the relay's heartbeats against the real embedded broker: a loop stuck in
//! its work turns liveness false, naming it, and true again once it moves; a consumer idle on
//! an empty topic or backing off while its database is down stays live.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use shared_events::{BookingConfirmed, Envelope, EventMeta, topics};
use sqlx::sqlite::SqlitePoolOptions;
use studycafe_messaging::{
    ConsumerSettings, EventConsumer, EventHandler, HandleError, KafkaConfig, OutboxMessage,
    OutboxRelay, OutboxSignal, OutboxStore, PendingMessage, ReceivedEvent, RelaySettings, sqlite,
    write::Writer,
};
use studycafe_platform::liveness::{Heartbeats, LivenessConfig};
use studycafe_testkit::{BrokerProcess, eventually, kafka};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(90);
const LIMIT: Duration = Duration::from_millis(300);

fn heartbeats() -> Heartbeats {
    Heartbeats::new(LivenessConfig { stall_limit: LIMIT })
}

fn stalled(beats: &Heartbeats) -> Vec<String> {
    beats.stalled().into_iter().map(|s| s.name).collect()
}

fn booking(key: &str) -> Envelope<BookingConfirmed> {
    Envelope::wrap(
        EventMeta::new("test", key, "cmd", chrono::Utc::now()),
        BookingConfirmed {
            reservation_id: key.to_owned(),
            confirmed_by: "admin".to_owned(),
        },
    )
}

async fn publish_one(broker: &BrokerProcess, topic: &str) {
    let event = booking(&Uuid::now_v7().to_string());
    kafka::produce(
        &broker.brokers(),
        topic,
        &event.correlation_id,
        &event.to_json(),
    )
    .await;
}

/// A topic of this test alone, so one test's events never reach another's consumer.
fn settings(group: &str) -> (ConsumerSettings, String) {
    let topic = format!("liveness-{}", Uuid::now_v7());
    let mut settings = ConsumerSettings::new(group, &[]);
    settings.topics = vec![topic.clone()];
    (settings, topic)
}

/// Applies nothing until the test lets it: a handler that does not return.
#[derive(Clone)]
struct Gate {
    permits: Arc<Semaphore>,
    applied: Arc<AtomicUsize>,
}

impl EventHandler for Gate {
    async fn handle(&self, _: &ReceivedEvent) -> Result<(), HandleError> {
        self.permits
            .acquire()
            .await
            .map_err(|e| HandleError::Failed(e.into()))?
            .forget();
        self.applied.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_stuck_in_its_handler_is_not_live_until_it_moves_and_idle_it_stays_live() {
    let broker = BrokerProcess::start().await;
    let beats = heartbeats();
    let gate = Gate {
        permits: Arc::new(Semaphore::new(0)),
        applied: Arc::default(),
    };
    let (settings, topic) = settings("liveness-gate");
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        EventConsumer::new(
            KafkaConfig::new(broker.brokers(), "liveness-gate-1"),
            settings,
            gate.clone(),
        )
        .with_heartbeats(&beats)
        .run(stop.clone()),
    );
    assert!(
        beats.names().contains(&"consumer liveness-gate".to_owned()),
        "{:?}",
        beats.names()
    );

    publish_one(&broker, &topic).await;
    eventually(WAIT, "the stuck consumer named as stalled", || async {
        (stalled(&beats) == ["consumer liveness-gate"]).then_some(())
    })
    .await;

    gate.permits.add_permits(1);
    eventually(WAIT, "live again once the handler returned", || async {
        (gate.applied.load(Ordering::SeqCst) == 1 && stalled(&beats).is_empty()).then_some(())
    })
    .await;

    // Waiting on an empty topic, many times the limit: still live.
    for _ in 0..10 {
        tokio::time::sleep(LIMIT).await;
        assert_eq!(
            stalled(&beats),
            Vec::<String>::new(),
            "idle on an empty topic"
        );
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// Fails every attempt as a handler does while its database is down.
#[derive(Clone, Default)]
struct DatabaseDown {
    attempts: Arc<AtomicUsize>,
}

impl EventHandler for DatabaseDown {
    async fn handle(&self, _: &ReceivedEvent) -> Result<(), HandleError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Err(HandleError::Failed(anyhow::anyhow!(
            "connection refused (the database is down)"
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_backing_off_while_its_database_is_down_stays_live() {
    let broker = BrokerProcess::start().await;
    let beats = heartbeats();
    let handler = DatabaseDown::default();
    let (mut settings, topic) = settings("liveness-backoff");
    // Each backoff is several stall limits long: only "waiting" keeps the consumer live.
    settings.retry_backoff = LIMIT * 4;
    settings.max_attempts = 1000;
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        EventConsumer::new(
            KafkaConfig::new(broker.brokers(), "liveness-backoff-1"),
            settings,
            handler.clone(),
        )
        .with_heartbeats(&beats)
        .run(stop.clone()),
    );
    publish_one(&broker, &topic).await;
    eventually(WAIT, "the first failed attempt", || async {
        (handler.attempts.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    while handler.attempts.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(LIMIT / 3).await;
        assert_eq!(
            stalled(&beats),
            Vec::<String>::new(),
            "backing off is waiting, not a stall"
        );
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// The SQLite outbox, whose reads hang while `stuck` is set: a relay wedged mid-round.
#[derive(Clone)]
struct Wedgeable {
    inner: sqlite::SqliteOutbox,
    stuck: Arc<AtomicBool>,
}

impl OutboxStore for Wedgeable {
    async fn pending(&self, limit: u32) -> anyhow::Result<Vec<PendingMessage>> {
        while self.stuck.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.pending(limit).await
    }
    async fn mark_published(&self, seqs: &[i64]) -> anyhow::Result<()> {
        self.inner.mark_published(seqs).await
    }
    async fn prune(&self, retention: Duration) -> anyhow::Result<u64> {
        self.inner.prune(retention).await
    }
    async fn backlog(&self) -> anyhow::Result<i64> {
        self.inner.backlog().await
    }
    async fn acquire_lease(&self, holder: &str, ttl: Duration) -> anyhow::Result<bool> {
        self.inner.acquire_lease(holder, ttl).await
    }
    async fn release_lease(&self, holder: &str) -> anyhow::Result<()> {
        self.inner.release_lease(holder).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_wedged_in_a_round_is_not_live_until_it_moves_and_idle_it_stays_live() {
    let broker = BrokerProcess::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlite::install(&pool).await.unwrap();
    let store = Wedgeable {
        inner: sqlite::SqliteOutbox::new(pool.clone()),
        stuck: Arc::default(),
    };
    let beats = heartbeats();
    let signal = OutboxSignal::new();
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        OutboxRelay::new(
            store.clone(),
            KafkaConfig::new(broker.brokers(), "liveness-relay"),
            signal.clone(),
            RelaySettings {
                poll_interval: Duration::from_millis(50),
                topics: vec![topics::REGISTRATION.to_owned()],
                ..RelaySettings::default()
            },
        )
        .with_heartbeats(&beats)
        .run(stop.clone()),
    );

    let enqueue = || async {
        let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
        let event = booking(&Uuid::now_v7().to_string());
        sqlite::enqueue(&mut tx, &OutboxMessage::from_event(&event))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        signal.notify();
    };
    enqueue().await;
    eventually(WAIT, "the first event published", || async {
        (store.inner.backlog().await.unwrap() == 0).then_some(())
    })
    .await;
    // Idle between rounds, many times the limit: live.
    for _ in 0..10 {
        tokio::time::sleep(LIMIT).await;
        assert_eq!(stalled(&beats), Vec::<String>::new(), "an idle relay");
    }

    store.stuck.store(true, Ordering::SeqCst);
    enqueue().await;
    eventually(WAIT, "the wedged relay named as stalled", || async {
        (stalled(&beats) == ["outbox relay"]).then_some(())
    })
    .await;

    store.stuck.store(false, Ordering::SeqCst);
    eventually(WAIT, "published and live again", || async {
        (store.inner.backlog().await.unwrap() == 0 && stalled(&beats).is_empty()).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
}
