//! Reading and writing topics directly, as an outside observer of the services.

use std::{collections::HashMap, time::Duration};

use rdkafka::{
    ClientConfig, Message as _,
    consumer::{BaseConsumer, Consumer as _, StreamConsumer},
    message::Headers as _,
    producer::{FutureProducer, FutureRecord},
};

/// One message as it sits on a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// Whether the broker answers a metadata request.
pub async fn metadata_ok(brokers: &str) -> bool {
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: Result<BaseConsumer, _> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("log_level", "0")
            .create();
        consumer.is_ok_and(|c| c.fetch_metadata(None, Duration::from_secs(2)).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Sends one raw message and waits for the acknowledgement.
pub async fn produce(brokers: &str, topic: &str, key: &str, payload: &[u8]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(20),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// Reads `topic` from the beginning (a fresh consumer group) until `want` messages arrived
/// or `timeout` passed; returns what it got.
pub async fn read_topic(brokers: &str, topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("observer-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("log_level", "0")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while records.len() < want {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            break;
        }
        match tokio::time::timeout(remaining, consumer.recv()).await {
            Ok(Ok(message)) => records.push(record_of(&message)),
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => break,
        }
    }
    records
}

/// Everything `topic` holds right now: every partition read from the start up to its high
/// watermark (no consumer group), so a count over the result sees duplicates too.
pub async fn read_all(brokers: &str, topic: &str, timeout: Duration) -> Vec<Record> {
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("observer-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("log_level", "0")
        .create()
        .expect("consumer");
    // The broker may have just come back (a chaos run resumes it right before the checks):
    // leadership errors then last a moment, so metadata and watermarks are retried until the
    // deadline rather than failing the first time.
    let deadline = tokio::time::Instant::now() + timeout;
    let metadata = until(deadline, "topic metadata", || {
        consumer.fetch_metadata(Some(topic), Duration::from_secs(5))
    })
    .await;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut remaining = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = until(deadline, "watermarks", || {
            consumer.fetch_watermarks(topic, partition, Duration::from_secs(5))
        })
        .await;
        if high > low {
            remaining.insert(partition, high);
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("assignment");
        }
    }
    let mut records = Vec::new();
    if remaining.is_empty() {
        return records;
    }
    consumer.assign(&assignment).expect("assign");
    while !remaining.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(message)) => message,
            Ok(Err(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => panic!("reading {topic} to its end took longer than {timeout:?}"),
        };
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
        records.push(record_of(&message));
    }
    records
}

/// `fetch` again every 200 ms while it fails and `deadline` has not passed; the last error
/// fails the test.
async fn until<T>(
    deadline: tokio::time::Instant,
    what: &str,
    fetch: impl Fn() -> rdkafka::error::KafkaResult<T>,
) -> T {
    loop {
        match fetch() {
            Ok(value) => return value,
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn record_of(message: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let mut headers = HashMap::new();
    if let Some(h) = message.headers() {
        for header in h.iter() {
            if let Some(v) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                headers.insert(header.key.to_owned(), v.to_owned());
            }
        }
    }
    Record {
        key: message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_owned),
        payload: message.payload().unwrap_or_default().to_vec(),
        headers,
        partition: message.partition(),
        offset: message.offset(),
    }
}
