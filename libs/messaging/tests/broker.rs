//! The messaging library against the real embedded broker (its own process per test).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use shared_events::{BookingConfirmed, Envelope, EventMeta, topics};
use sqlx::{SqlitePool, sqlite::SqlitePoolOptions};
use studycafe_messaging::{
    ConsumerSettings, EventConsumer, EventHandler, HandleError, KafkaConfig, OutboxMessage,
    OutboxRelay, OutboxSignal, OutboxStore as _, ReceivedEvent, RelaySettings, sqlite,
    write::Writer,
};
use studycafe_testkit::{BrokerProcess, eventually, kafka};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(90);

async fn database() -> (SqlitePool, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
    // One writer, as in the services: two "replicas" share it like two processes share a DB.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlite::install(&pool).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE applied (n INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,
           reservation_id TEXT NOT NULL, replica TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    (pool, dir)
}

fn booking(reservation_id: &str, seq: usize) -> Envelope<BookingConfirmed> {
    Envelope::wrap(
        EventMeta::new(
            "test",
            reservation_id,
            format!("cmd-{seq}"),
            chrono::Utc::now(),
        ),
        BookingConfirmed {
            reservation_id: reservation_id.to_owned(),
            confirmed_by: format!("seq-{seq}"),
        },
    )
}

/// Applies each event by appending a row: a double application would show as two rows.
#[derive(Clone)]
struct Recorder {
    pool: SqlitePool,
    replica: &'static str,
}

impl EventHandler for Recorder {
    async fn handle(&self, event: &ReceivedEvent) -> Result<(), HandleError> {
        let mut tx = Writer::new("test", self.pool.clone())
            .begin()
            .await
            .map_err(anyhow::Error::from)?;
        if !sqlite::claim(&mut tx, "recorder", event.envelope.id)
            .await
            .map_err(anyhow::Error::from)?
        {
            return Ok(());
        }
        sqlx::query("INSERT INTO applied (event_id, reservation_id, replica) VALUES (?, ?, ?)")
            .bind(event.envelope.id.to_string())
            .bind(&event.envelope.correlation_id)
            .bind(self.replica)
            .execute(&mut *tx)
            .await
            .map_err(anyhow::Error::from)?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }
}

async fn applied(pool: &SqlitePool) -> (i64, i64) {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM applied")
        .fetch_one(pool)
        .await
        .unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT event_id) FROM applied")
        .fetch_one(pool)
        .await
        .unwrap();
    (total, distinct)
}

fn kafka_config(broker: &BrokerProcess, instance: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(broker.brokers(), instance);
    config.session_timeout = Duration::from_secs(6);
    config
}

fn settings() -> ConsumerSettings {
    let mut settings = ConsumerSettings::new("recorder", &[topics::REGISTRATION]);
    settings.retry_backoff = Duration::from_millis(20);
    settings.max_attempts = 3;
    settings
}

async fn publish(broker: &BrokerProcess, events: &[Envelope<BookingConfirmed>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let sends = events.iter().map(|event| {
        let payload = event.to_json();
        let producer = producer.clone();
        let key = event.correlation_id.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(topics::REGISTRATION)
                        .key(&key)
                        .payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    });
    futures::future::join_all(sends).await;
}

fn spawn_consumer(
    broker: &BrokerProcess,
    pool: &SqlitePool,
    replica: &'static str,
    settings: ConsumerSettings,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let token = CancellationToken::new();
    let consumer = EventConsumer::new(
        kafka_config(broker, replica),
        settings,
        Recorder {
            pool: pool.clone(),
            replica,
        },
    );
    let handle = tokio::spawn(consumer.run(token.clone()));
    (token, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_publishes_everything_in_order_per_key_and_survives_a_broker_outage() {
    let mut broker = BrokerProcess::start().await;
    let (pool, _dir) = database().await;
    let signal = OutboxSignal::new();
    let keys: Vec<String> = (0..5).map(|_| Uuid::now_v7().to_string()).collect();

    // Interleaved keys, committed in this order.
    let enqueue = |range: std::ops::Range<usize>| {
        let pool = pool.clone();
        let keys = keys.clone();
        async move {
            for seq in range {
                let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
                let event = booking(&keys[seq % keys.len()], seq);
                sqlite::enqueue(&mut tx, &OutboxMessage::from_event(&event))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
    };
    enqueue(0..50).await;

    let shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(
        sqlite::SqliteOutbox::new(pool.clone()),
        kafka_config(&broker, "relay"),
        signal.clone(),
        RelaySettings {
            poll_interval: Duration::from_millis(100),
            ..RelaySettings::default()
        },
    );
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    let store = sqlite::SqliteOutbox::new(pool.clone());
    eventually(WAIT, "first 50 published", || async {
        (store.backlog().await.unwrap() == 0).then_some(())
    })
    .await;

    // Broker down: events keep being committed, nothing is lost.
    assert!(
        broker.stop(),
        "broker stops cleanly:\n{}",
        broker.log_tail(20)
    );
    enqueue(50..100).await;
    signal.notify();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        store.backlog().await.unwrap(),
        50,
        "held in the outbox while the broker is down"
    );
    broker.restart().await;
    eventually(
        WAIT,
        "the rest published after the broker returned",
        || async { (store.backlog().await.unwrap() == 0).then_some(()) },
    )
    .await;

    let records = kafka::read_topic(&broker.brokers(), topics::REGISTRATION, 100, WAIT).await;
    assert!(records.len() >= 100, "got {} of 100", records.len());
    for key in &keys {
        let seqs: Vec<usize> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key))
            .map(|r| {
                let by = r.json()["data"]["confirmedBy"].as_str().unwrap().to_owned();
                by.trim_start_matches("seq-").parse().unwrap()
            })
            .collect();
        let mut deduped = seqs.clone();
        deduped.dedup();
        let mut sorted = deduped.clone();
        sorted.sort();
        assert_eq!(deduped, sorted, "key {key}: order kept, got {seqs:?}");
        assert_eq!(sorted.len(), 20, "key {key}: every event once at least");
        // All events of one key sit on one partition.
        let partitions: std::collections::HashSet<i32> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key))
            .map(|r| r.partition)
            .collect();
        assert_eq!(partitions.len(), 1);
    }
    // Headers: event id and type ride along.
    assert!(records.iter().all(|r| r.headers.contains_key("event-id")));
    assert!(
        records
            .iter()
            .all(|r| r.headers.get("event-type").map(String::as_str) == Some("BookingConfirmed"))
    );

    shutdown.cancel();
    relay_task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_in_one_group_apply_1000_events_exactly_once() {
    let broker = BrokerProcess::start().await;
    let (pool, _dir) = database().await;
    let events: Vec<_> = (0..1000)
        .map(|i| booking(&Uuid::now_v7().to_string(), i))
        .collect();

    let (stop_a, task_a) = spawn_consumer(&broker, &pool, "replica-a", settings());
    publish(&broker, &events[..500]).await;
    // The second replica joins mid-stream: the group rebalances while events keep flowing
    // (a trickle over ~10 s, so the rebalance happens in the middle of it).
    let (stop_b, task_b) = spawn_consumer(&broker, &pool, "replica-b", settings());
    for chunk in events[500..].chunks(10) {
        publish(&broker, chunk).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    eventually(WAIT, "1000 events applied", || async {
        (applied(&pool).await.1 == 1000).then_some(())
    })
    .await;
    // Give stragglers (redeliveries after the rebalance) time to show up if they were applied.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        applied(&pool).await,
        (1000, 1000),
        "every effect exactly once"
    );
    let replicas: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT replica) FROM applied")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(replicas, 2, "both replicas took a share of the partitions");

    stop_a.cancel();
    stop_b.cancel();
    task_a.await.unwrap().unwrap();
    task_b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_consumer_processes_exactly_what_it_missed() {
    let broker = BrokerProcess::start().await;
    let (pool, _dir) = database().await;
    let first: Vec<_> = (0..10)
        .map(|i| booking(&Uuid::now_v7().to_string(), i))
        .collect();
    let missed: Vec<_> = (10..110)
        .map(|i| booking(&Uuid::now_v7().to_string(), i))
        .collect();

    let (stop, task) = spawn_consumer(&broker, &pool, "replica-a", settings());
    publish(&broker, &first).await;
    eventually(WAIT, "the first 10 applied", || async {
        (applied(&pool).await.1 == 10).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    publish(&broker, &missed).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(applied(&pool).await.1, 10, "nothing applied while stopped");

    let (stop, task) = spawn_consumer(&broker, &pool, "replica-a", settings());
    eventually(WAIT, "the 100 missed events applied", || async {
        (applied(&pool).await.1 == 110).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(applied(&pool).await, (110, 110));
    let missed_ids: Vec<String> = missed.iter().map(|e| e.id.to_string()).collect();
    let applied_after: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM applied ORDER BY n LIMIT -1 OFFSET 10")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut expected = missed_ids.clone();
    expected.sort();
    let mut got = applied_after.clone();
    got.sort();
    assert_eq!(got, expected, "exactly the missed events");
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// Fails every event whose confirmer is "poison"; rejects "reject".
#[derive(Clone)]
struct Picky {
    inner: Recorder,
    attempts: Arc<AtomicUsize>,
}

impl EventHandler for Picky {
    async fn handle(&self, event: &ReceivedEvent) -> Result<(), HandleError> {
        if let shared_events::IntegrationEvent::BookingConfirmed(b) = &event.event {
            if b.confirmed_by == "poison" {
                self.attempts.fetch_add(1, Ordering::SeqCst);
                return Err(HandleError::Failed(anyhow::anyhow!("database says no")));
            }
            if b.confirmed_by == "reject" {
                return Err(HandleError::Rejected("not ours".into()));
            }
        }
        self.inner.handle(event).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_go_to_the_dead_letter_topic_and_the_partition_keeps_moving() {
    let broker = BrokerProcess::start().await;
    let (pool, _dir) = database().await;
    // One key, so everything sits on one partition behind the poison.
    let key = Uuid::now_v7().to_string();
    let attempts = Arc::new(AtomicUsize::new(0));
    let settings = settings();
    let dead_letter = settings.dead_letter_topic();

    let token = CancellationToken::new();
    let consumer = EventConsumer::new(
        kafka_config(&broker, "picky"),
        settings,
        Picky {
            inner: Recorder {
                pool: pool.clone(),
                replica: "picky",
            },
            attempts: attempts.clone(),
        },
    );
    let task = tokio::spawn(consumer.run(token.clone()));

    kafka::produce(
        &broker.brokers(),
        topics::REGISTRATION,
        &key,
        b"{this is not json",
    )
    .await;
    let mut bad_data = booking(&key, 1).to_raw();
    bad_data.data = serde_json::json!({"reservationId": 42});
    kafka::produce(
        &broker.brokers(),
        topics::REGISTRATION,
        &key,
        &bad_data.to_json(),
    )
    .await;
    let mut poison = booking(&key, 2);
    poison.data.confirmed_by = "poison".into();
    kafka::produce(
        &broker.brokers(),
        topics::REGISTRATION,
        &key,
        &poison.to_json(),
    )
    .await;
    let mut rejected = booking(&key, 3);
    rejected.data.confirmed_by = "reject".into();
    kafka::produce(
        &broker.brokers(),
        topics::REGISTRATION,
        &key,
        &rejected.to_json(),
    )
    .await;
    let good = booking(&key, 4);
    kafka::produce(
        &broker.brokers(),
        topics::REGISTRATION,
        &key,
        &good.to_json(),
    )
    .await;

    eventually(WAIT, "the good event behind the poison applied", || async {
        (applied(&pool).await.1 == 1).then_some(())
    })
    .await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "retried max_attempts times"
    );

    let dead = kafka::read_topic(&broker.brokers(), &dead_letter, 4, WAIT).await;
    assert_eq!(dead.len(), 4, "undecodable, bad data, failing, rejected");
    assert_eq!(dead[0].payload, b"{this is not json");
    assert!(dead[0].headers["dlq-error"].contains("not a valid event envelope"));
    assert!(dead[1].headers["dlq-error"].contains("invalid data"));
    assert!(dead[2].headers["dlq-error"].contains("database says no"));
    assert_eq!(dead[2].headers["dlq-attempts"], "3");
    assert_eq!(dead[3].headers["dlq-error"], "not ours");
    for record in &dead {
        assert_eq!(record.key.as_deref(), Some(key.as_str()));
        assert_eq!(record.headers["dlq-source-topic"], topics::REGISTRATION);
        assert_eq!(record.headers["dlq-consumer-group"], "recorder");
    }
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_an_outbox_through_one_relay_and_the_standby_takes_over() {
    let broker = BrokerProcess::start().await;
    let (pool, _dir) = database().await;
    let key = Uuid::now_v7().to_string();
    let enqueue = |range: std::ops::Range<usize>| {
        let pool = pool.clone();
        let key = key.clone();
        async move {
            for seq in range {
                let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
                sqlite::enqueue(&mut tx, &OutboxMessage::from_event(&booking(&key, seq)))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
    };
    let settings = RelaySettings {
        poll_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(3),
        ..RelaySettings::default()
    };
    let relay = |name: &str, token: &CancellationToken| {
        let relay = OutboxRelay::new(
            sqlite::SqliteOutbox::new(pool.clone()),
            kafka_config(&broker, name),
            OutboxSignal::new(),
            settings.clone(),
        );
        tokio::spawn(relay.run(token.clone()))
    };
    let (first, second) = (CancellationToken::new(), CancellationToken::new());
    let first_task = relay("relay-a", &first);
    let second_task = relay("relay-b", &second);

    enqueue(0..100).await;
    let store = sqlite::SqliteOutbox::new(pool.clone());
    eventually(WAIT, "the first 100 published", || async {
        (store.backlog().await.unwrap() == 0).then_some(())
    })
    .await;

    // The relay holding the lease stops; the other publishes the rest.
    let holder: String = sqlx::query_scalar("SELECT holder FROM messaging_relay_lease")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (stopping, stopping_task, standby, standby_task) = if holder.starts_with("relay-a/") {
        (first, first_task, second, second_task)
    } else {
        (second, second_task, first, first_task)
    };
    stopping.cancel();
    stopping_task.await.unwrap().unwrap();
    enqueue(100..200).await;
    eventually(WAIT, "the standby published the next 100", || async {
        (store.backlog().await.unwrap() == 0).then_some(())
    })
    .await;

    let records = kafka::read_topic(&broker.brokers(), topics::REGISTRATION, 200, WAIT).await;
    let seqs: Vec<usize> = records
        .iter()
        .map(|r| {
            let by = r.json()["data"]["confirmedBy"].as_str().unwrap().to_owned();
            by.trim_start_matches("seq-").parse().unwrap()
        })
        .collect();
    assert_eq!(
        seqs,
        (0..200).collect::<Vec<_>>(),
        "one relay at a time: each event once, in commit order"
    );
    let new_holder: String = sqlx::query_scalar("SELECT holder FROM messaging_relay_lease")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(new_holder, holder, "the standby took the lease over");
    standby.cancel();
    standby_task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployments_with_different_topic_prefixes_do_not_hear_each_other() {
    let broker = BrokerProcess::start().await;
    let mut counts = Vec::new();
    let mut tasks = Vec::new();
    let (pool, _dir) = database().await;
    for prefix in ["blue.", "green."] {
        let mut kafka = kafka_config(&broker, prefix);
        kafka.topic_prefix = prefix.to_owned();
        let applied = Arc::new(AtomicUsize::new(0));
        counts.push(applied.clone());
        let token = CancellationToken::new();
        let consumer = EventConsumer::new(kafka.clone(), settings(), Counter(applied));
        tasks.push((token.clone(), tokio::spawn(consumer.run(token))));
        if prefix == "blue." {
            let signal = OutboxSignal::new();
            let relay = OutboxRelay::new(
                sqlite::SqliteOutbox::new(pool.clone()),
                kafka,
                signal,
                RelaySettings {
                    poll_interval: Duration::from_millis(100),
                    ..RelaySettings::default()
                },
            );
            let token = CancellationToken::new();
            tasks.push((token.clone(), tokio::spawn(relay.run(token))));
        }
    }
    for seq in 0..10 {
        let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
        let event = booking(&Uuid::now_v7().to_string(), seq);
        sqlite::enqueue(&mut tx, &OutboxMessage::from_event(&event))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    eventually(WAIT, "blue's consumer got blue's events", || async {
        (counts[0].load(Ordering::SeqCst) == 10).then_some(())
    })
    .await;
    let on_blue = kafka::read_all(
        &broker.brokers(),
        &format!("blue.{}", topics::REGISTRATION),
        WAIT,
    )
    .await;
    assert_eq!(on_blue.len(), 10, "published under the prefix");
    // Green shares the broker, its group name and topics' logical names, and heard nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counts[1].load(Ordering::SeqCst), 0);
    for (token, task) in tasks {
        token.cancel();
        task.await.unwrap().unwrap();
    }
}

/// Counts applied events (no database: the prefix test is about routing).
struct Counter(Arc<AtomicUsize>);

impl EventHandler for Counter {
    async fn handle(&self, _: &ReceivedEvent) -> Result<(), HandleError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Applies nothing until the test lets it: a consumer stuck in a slow handler.
#[derive(Clone)]
struct Gate(Arc<tokio::sync::Semaphore>);

impl EventHandler for Gate {
    async fn handle(&self, _: &ReceivedEvent) -> Result<(), HandleError> {
        self.0
            .acquire()
            .await
            .map_err(|e| HandleError::Failed(e.into()))?
            .forget();
        Ok(())
    }
}

/// The sum of `consumer_lag_messages` of one group in this process's metrics, if exported.
fn lag_of(group: &str) -> Option<f64> {
    let label = format!("group=\"{group}\"");
    let values: Vec<f64> = studycafe_platform::observability::metrics()
        .render()
        .lines()
        .filter(|l| l.starts_with("consumer_lag_messages{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_stuck_in_its_handler_reports_its_lag_growing_and_then_drained() {
    let broker = BrokerProcess::start().await;
    let gate = Gate(Arc::new(tokio::sync::Semaphore::new(0)));
    let settings = ConsumerSettings::new("lag-probe", &[topics::REGISTRATION]);
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        EventConsumer::new(kafka_config(&broker, "lag-probe-1"), settings, gate.clone())
            .run(stop.clone()),
    );
    // One key: one partition, so the first event blocks the other four behind it.
    let key = Uuid::now_v7().to_string();
    let events: Vec<_> = (0..5).map(|i| booking(&key, i)).collect();
    publish(&broker, &events).await;

    // Nothing applied, nothing committed: all five lag, sampled while the handler hangs.
    eventually(WAIT, "a lag of 5 while the handler hangs", || async {
        (lag_of("lag-probe") == Some(5.0)).then_some(())
    })
    .await;

    gate.0.add_permits(5);
    eventually(
        WAIT,
        "no lag once the handler applied everything",
        || async { (lag_of("lag-probe") == Some(0.0)).then_some(()) },
    )
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
}
