//! The PostgreSQL and MySQL/MariaDB outbox, inbox and lease adapters against the real engines
//! (`scripts/engines/up`; a fresh database per test), the relay from PostgreSQL to Apache
//! Kafka, and a consumer fenced out of its group on Apache Kafka.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use shared_events::{BookingConfirmed, Envelope, EventMeta, topics};
use sqlx::{mysql::MySqlPoolOptions, postgres::PgPoolOptions};
use studycafe_messaging::{
    ConsumerSettings, EventConsumer, EventHandler, HandleError, KafkaConfig, OutboxMessage,
    OutboxRelay, OutboxSignal, OutboxStore, ReceivedEvent, RelaySettings, mysql, postgres,
    write::Writer,
};
use studycafe_testkit::{engines, eventually, kafka};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

fn message(key: &str, seq: usize) -> OutboxMessage {
    OutboxMessage::from_event(&Envelope::wrap(
        EventMeta::new("test", key, format!("cmd-{seq}"), chrono::Utc::now()),
        BookingConfirmed {
            reservation_id: key.to_owned(),
            confirmed_by: format!("seq-{seq}"),
        },
    ))
}

/// What the relay relies on once the three `originals` were committed (and a fourth rolled
/// back): they are pending in commit order, field for field; the first `publish` of them,
/// once marked published, leave the backlog and are pruned.
async fn pending_contract<S: OutboxStore>(store: &S, originals: &[OutboxMessage], publish: usize) {
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.len(), 3);
    assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
    let stored: Vec<OutboxMessage> = pending.iter().map(|p| p.message.clone()).collect();
    assert_eq!(
        stored, originals,
        "round-trips field for field, in commit order"
    );
    let seqs: Vec<i64> = pending[..publish].iter().map(|p| p.seq).collect();
    store.mark_published(&seqs).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), (3 - publish) as i64);
    assert_eq!(store.prune(Duration::ZERO).await.unwrap(), publish as u64);
}

/// The contract every outbox adapter keeps, whatever the database.
async fn lease_contract<S: OutboxStore>(store: &S) {
    let ttl = Duration::from_millis(400);
    assert!(store.acquire_lease("a", ttl).await.unwrap(), "free: taken");
    assert!(!store.acquire_lease("b", ttl).await.unwrap(), "held by a");
    assert!(store.acquire_lease("a", ttl).await.unwrap(), "a renews");
    store.release_lease("a").await.unwrap();
    assert!(
        store.acquire_lease("b", ttl).await.unwrap(),
        "released: b takes it"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        store.acquire_lease("c", ttl).await.unwrap(),
        "expired: c takes it"
    );
    assert!(!store.acquire_lease("b", ttl).await.unwrap());
}

#[tokio::test]
async fn postgres_outbox_inbox_and_lease() {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&engines::postgres_database().await)
        .await
        .unwrap();
    postgres::install(&pool).await.unwrap();
    postgres::install(&pool).await.unwrap();
    let store = postgres::PgOutbox::new(pool.clone());

    // Committed rows are pending in order; rolled back ones never existed.
    let originals: Vec<OutboxMessage> = (0..3).map(|seq| message("k", seq)).collect();
    let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
    for original in &originals {
        postgres::enqueue(&mut tx, original).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
    postgres::enqueue(&mut tx, &message("k", 99)).await.unwrap();
    tx.rollback().await.unwrap();
    pending_contract(&store, &originals, 1).await;

    // The inbox: a second claim of one event is refused, another consumer may claim it.
    let id = Uuid::now_v7();
    let mut conn = pool.acquire().await.unwrap();
    assert!(postgres::claim(&mut conn, "c1", id).await.unwrap());
    assert!(!postgres::claim(&mut conn, "c1", id).await.unwrap());
    assert!(postgres::claim(&mut conn, "c2", id).await.unwrap());
    drop(conn);

    lease_contract(&store).await;
}

#[tokio::test]
async fn mysql_outbox_inbox_and_lease() {
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .connect(&engines::mysql_database().await)
        .await
        .unwrap();
    mysql::install(&pool).await.unwrap();
    mysql::install(&pool).await.unwrap();
    let store = mysql::MySqlOutbox::new(pool.clone());

    let originals: Vec<OutboxMessage> = (0..3).map(|seq| message("k", seq)).collect();
    let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
    for original in &originals {
        mysql::enqueue(&mut tx, original).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
    mysql::enqueue(&mut tx, &message("k", 99)).await.unwrap();
    tx.rollback().await.unwrap();
    pending_contract(&store, &originals, 2).await;

    let id = Uuid::now_v7();
    let mut conn = pool.acquire().await.unwrap();
    assert!(mysql::claim(&mut conn, "c1", id).await.unwrap());
    assert!(!mysql::claim(&mut conn, "c1", id).await.unwrap());
    assert!(mysql::claim(&mut conn, "c2", id).await.unwrap());
    drop(conn);

    lease_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_publishes_a_postgres_outbox_to_apache_kafka_in_order() {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&engines::postgres_database().await)
        .await
        .unwrap();
    postgres::install(&pool).await.unwrap();
    let keys: Vec<String> = (0..4).map(|_| Uuid::now_v7().to_string()).collect();
    for seq in 0..40 {
        let mut tx = Writer::new("test", pool.clone()).begin().await.unwrap();
        postgres::enqueue(&mut tx, &message(&keys[seq % keys.len()], seq))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut kafka_config = KafkaConfig::new(engines::kafka_brokers(), "relay-test");
    kafka_config.idempotence = true;
    kafka_config.topic_prefix = format!("{}.", engines::unique_name("msg"));
    let topic = kafka_config.topic(topics::REGISTRATION);
    let shutdown = CancellationToken::new();
    let relay = OutboxRelay::new(
        postgres::PgOutbox::new(pool.clone()),
        kafka_config,
        OutboxSignal::new(),
        RelaySettings {
            poll_interval: Duration::from_millis(100),
            ..RelaySettings::default()
        },
    );
    let task = tokio::spawn(relay.run(shutdown.clone()));
    let store = postgres::PgOutbox::new(pool.clone());
    eventually(WAIT, "all 40 published", || async {
        (store.backlog().await.unwrap() == 0).then_some(())
    })
    .await;
    let records = kafka::read_all(&engines::kafka_brokers(), &topic, WAIT).await;
    assert_eq!(records.len(), 40, "each once (idempotent producer)");
    for key in &keys {
        let seqs: Vec<usize> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key))
            .map(|r| {
                let by = r.json()["data"]["confirmedBy"].as_str().unwrap().to_owned();
                by.trim_start_matches("seq-").parse().unwrap()
            })
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted, "key {key} in commit order");
        assert_eq!(seqs.len(), 10);
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// Remembers the reservation ids it was handed.
#[derive(Clone, Default)]
struct Seen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl EventHandler for Seen {
    async fn handle(&self, event: &ReceivedEvent) -> Result<(), HandleError> {
        self.0
            .lock()
            .unwrap()
            .push(event.envelope.correlation_id.clone());
        Ok(())
    }
}

async fn produce(config: &KafkaConfig, key: &str, seq: usize) {
    let event = OutboxMessage::from_event(&Envelope::wrap(
        EventMeta::new("test", key, format!("cmd-{seq}"), chrono::Utc::now()),
        BookingConfirmed {
            reservation_id: key.to_owned(),
            confirmed_by: format!("seq-{seq}"),
        },
    ));
    kafka::produce(
        &config.brokers,
        &config.topic(topics::REGISTRATION),
        key,
        &event.payload,
    )
    .await;
}

/// librdkafka treats being fenced (another member took this static member id: after a broker
/// outage its own retried join can do it) as fatal and never consumes again. The consumer
/// starts a new client, which takes the membership back and goes on from the committed
/// offsets. Found by the chaos run: seat-view's board stopped following.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_fenced_out_of_its_static_membership_starts_a_new_client_and_goes_on() {
    let mut config = KafkaConfig::new(engines::kafka_brokers(), "fenced-test");
    config.topic_prefix = format!("{}.", engines::unique_name("fence"));
    config.group_instance_id = Some("fenced-1".to_owned());
    config.session_timeout = Duration::from_secs(6);
    let seen = Seen::default();
    let shutdown = CancellationToken::new();
    let consumer = EventConsumer::new(
        config.clone(),
        ConsumerSettings::new("fenced", &[topics::REGISTRATION]),
        seen.clone(),
    );
    let task = tokio::spawn(consumer.run(shutdown.clone()));
    let first = Uuid::now_v7().to_string();
    produce(&config, &first, 1).await;
    eventually(WAIT, "the first event consumed", || async {
        seen.0.lock().unwrap().contains(&first).then_some(())
    })
    .await;

    // Another client joins with the same group and static member id: the broker fences the
    // consumer's member.
    let intruder: BaseConsumer = config.consumer("fenced").create().unwrap();
    intruder
        .subscribe(&[&config.topic(topics::REGISTRATION)])
        .unwrap();
    let until = std::time::Instant::now() + WAIT;
    while intruder.assignment().unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the intruder never joined"
        );
        intruder.poll(Duration::from_millis(200));
    }
    // The old member learns it was fenced at its next heartbeat (every 2 s here); until then
    // it may still fetch.
    let fenced = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < fenced {
        intruder.poll(Duration::from_millis(200));
    }
    drop(intruder);

    let second = Uuid::now_v7().to_string();
    produce(&config, &second, 2).await;
    eventually(
        WAIT,
        "the second event consumed by a new client",
        || async { seen.0.lock().unwrap().contains(&second).then_some(()) },
    )
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
