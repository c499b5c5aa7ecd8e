//! `studycafe dlq`: the dead letters an operator can act on.
//!
//! A dead-letter topic is never trimmed by this command: what has been dealt with is the
//! position of the consumer group `studycafe-dlq-replay.<group>` on it, so the broker keeps
//! the full history and `list` shows only what still waits.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer},
    message::{Header, Headers, OwnedHeaders, OwnedMessage},
    producer::{BaseProducer, BaseRecord, Producer},
};
use studycafe_messaging::{config::KafkaConfig, consumer::dead_letter_replay_group};

use crate::exit::UsageError;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Broker {
    /// The Kafka brokers.
    #[arg(
        long,
        env = "STUDYCAFE_KAFKA_BROKERS",
        value_name = "HOST:PORT[,...]",
        default_value = "127.0.0.1:9092"
    )]
    brokers: String,
    /// Prepended to topic and group names, as the services do.
    #[arg(
        long,
        env = "KAFKA_TOPIC_PREFIX",
        value_name = "PREFIX",
        default_value = ""
    )]
    topic_prefix: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum Call {
    /// Per dead-letter topic, the messages not yet replayed.
    List {
        /// Only this consumer group's dead letters.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
    /// One dead letter: its headers and its value as pretty JSON.
    Show {
        /// The consumer group that dead-lettered it.
        group: String,
        /// Where it is in the dead-letter topic.
        #[arg(value_name = "PARTITION:OFFSET", value_parser = parse_position)]
        position: (i32, i64),
    },
    /// Re-drive dead letters to the topic they came from, then mark them replayed.
    ///
    /// The consumers are idempotent by event id, so a message applied before is applied once.
    Replay {
        /// The consumer group whose dead letters to replay.
        group: String,
        /// Replay these (repeat for several).
        #[arg(long = "offset", value_name = "PARTITION:OFFSET", value_parser = parse_position,
              required_unless_present = "all", conflicts_with = "all")]
        offsets: Vec<(i32, i64)>,
        /// Replay every waiting message.
        #[arg(long)]
        all: bool,
    },
}

fn parse_position(s: &str) -> Result<(i32, i64), String> {
    let (partition, offset) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not PARTITION:OFFSET"))?;
    let partition = partition
        .parse::<i32>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| format!("{partition:?} is not a partition number"))?;
    let offset = offset
        .parse::<i64>()
        .ok()
        .filter(|o| *o >= 0)
        .ok_or_else(|| format!("{offset:?} is not an offset"))?;
    Ok((partition, offset))
}

pub fn run(broker: &Broker, call: Call) -> anyhow::Result<()> {
    let mut config = KafkaConfig::new(broker.brokers.clone(), "studycafe-dlq");
    config.topic_prefix = broker.topic_prefix.clone();
    match call {
        Call::List { group } => list(&config, group.as_deref()),
        Call::Show { group, position } => show(&config, &group, position),
        Call::Replay {
            group,
            offsets,
            all,
        } => replay(&config, &group, if all { None } else { Some(&offsets) }),
    }
}

fn dead_letter_consumer(config: &KafkaConfig, group: &str) -> anyhow::Result<BaseConsumer> {
    let mut client = config.consumer(&dead_letter_replay_group(group));
    // Only `replay` moves the position, and only after the broker took the re-driven message.
    client
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    client.create().context("creating a Kafka consumer")
}

/// The consumer groups that have a dead-letter topic on the broker.
fn groups_with_dead_letters(config: &KafkaConfig) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer = config.admin().create().context("creating a Kafka client")?;
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .with_context(|| format!("reading the topics of {}", config.brokers))?;
    let head = config.topic(&shared_events::topics::dead_letter(""));
    let (prefix, suffix) = head.split_once("..").expect("dead_letter(\"\") has `..`");
    let mut groups: Vec<String> = metadata
        .topics()
        .iter()
        .filter_map(|t| {
            t.name()
                .strip_prefix(&format!("{prefix}."))?
                .strip_suffix(&format!(".{suffix}"))
                .map(str::to_owned)
        })
        .collect();
    groups.sort();
    Ok(groups)
}

/// The messages of `group`'s dead-letter topic after the replay position, by partition and
/// offset.
fn waiting(
    consumer: &BaseConsumer,
    config: &KafkaConfig,
    group: &str,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let topic = config.topic(&shared_events::topics::dead_letter(group));
    let metadata = consumer
        .fetch_metadata(Some(&topic), TIMEOUT)
        .with_context(|| format!("reading the partitions of {topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut asked = TopicPartitionList::new();
    for &partition in &partitions {
        asked.add_partition(&topic, partition);
    }
    let committed = consumer
        .committed_offsets(asked, TIMEOUT)
        .with_context(|| format!("reading the replay position on {topic}"))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, TIMEOUT)
            .with_context(|| format!("reading the offsets of {topic}/{partition}"))?;
        let start = match committed
            .find_partition(&topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        if start < high {
            assignment.add_partition_offset(&topic, partition, Offset::Offset(start))?;
            ends.insert(partition, high);
        }
    }
    let mut messages = Vec::new();
    if ends.is_empty() {
        return Ok(messages);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + TIMEOUT;
    let mut done = BTreeMap::new();
    while done.len() < ends.len() {
        if Instant::now() > deadline {
            bail!("timed out reading {topic}");
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.with_context(|| format!("reading {topic}"))?;
        let Some(&end) = ends.get(&message.partition()) else {
            continue;
        };
        if message.offset() < end {
            messages.push(message.detach());
        }
        if message.offset() + 1 >= end {
            done.insert(message.partition(), ());
        }
    }
    consumer.unassign()?;
    messages.sort_by_key(|m| (m.partition(), m.offset()));
    Ok(messages)
}

fn header<'a>(message: &'a OwnedMessage, key: &str) -> &'a str {
    message
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == key))
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("-")
}

fn list(config: &KafkaConfig, group: Option<&str>) -> anyhow::Result<()> {
    let groups = match group {
        Some(group) => vec![group.to_owned()],
        None => groups_with_dead_letters(config)?,
    };
    for group in groups {
        let consumer = dead_letter_consumer(config, &group)?;
        let messages = waiting(&consumer, config, &group)?;
        println!(
            "{} ({} waiting)",
            config.topic(&shared_events::topics::dead_letter(&group)),
            messages.len()
        );
        for m in &messages {
            let value: Option<serde_json::Value> =
                m.payload().and_then(|p| serde_json::from_slice(p).ok());
            let field = |name: &str| {
                value
                    .as_ref()
                    .and_then(|v| v.get(name))
                    .and_then(|v| v.as_str())
                    .unwrap_or("-")
                    .to_owned()
            };
            let timestamp = m
                .timestamp()
                .to_millis()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
            println!(
                "  {}:{}  from {}/{}:{}  type={} id={}  attempts={}  at={}  error={}",
                m.partition(),
                m.offset(),
                header(m, "dlq-source-topic"),
                header(m, "dlq-source-partition"),
                header(m, "dlq-source-offset"),
                field("type"),
                field("id"),
                header(m, "dlq-attempts"),
                timestamp,
                header(m, "dlq-error"),
            );
        }
    }
    Ok(())
}

fn show(config: &KafkaConfig, group: &str, (partition, offset): (i32, i64)) -> anyhow::Result<()> {
    let topic = config.topic(&shared_events::topics::dead_letter(group));
    let consumer = dead_letter_consumer(config, group)?;
    let (_, high) = consumer
        .fetch_watermarks(&topic, partition, TIMEOUT)
        .with_context(|| format!("reading the offsets of {topic}/{partition}"))?;
    if offset >= high {
        return Err(UsageError(format!("{topic} has no message at {partition}:{offset}")).into());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + TIMEOUT;
    let message = loop {
        if Instant::now() > deadline {
            bail!("timed out reading {topic}/{partition}");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.with_context(|| format!("reading {topic}"))?;
            if m.offset() == offset {
                break m.detach();
            }
            // Compacted or trimmed away: the broker starts at the next one.
            bail!("{topic} has no message at {partition}:{offset} any more");
        }
    };
    println!("{topic} {partition}:{offset}");
    if let Some(key) = message.key() {
        println!("key: {}", String::from_utf8_lossy(key));
    }
    if let Some(headers) = message.headers() {
        for h in headers.iter() {
            println!(
                "{}: {}",
                h.key,
                h.value.map(String::from_utf8_lossy).unwrap_or_default()
            );
        }
    }
    println!();
    match message.payload() {
        None => println!("(no value)"),
        Some(p) => match serde_json::from_slice::<serde_json::Value>(p) {
            Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
            // A dead letter is often one because it is not JSON: show it as it is.
            Err(_) => println!("{}", String::from_utf8_lossy(p)),
        },
    }
    Ok(())
}

fn replay(
    config: &KafkaConfig,
    group: &str,
    chosen: Option<&Vec<(i32, i64)>>,
) -> anyhow::Result<()> {
    let topic = config.topic(&shared_events::topics::dead_letter(group));
    let consumer = dead_letter_consumer(config, group)?;
    let messages = waiting(&consumer, config, group)?;
    if let Some(chosen) = chosen {
        for &(p, o) in chosen {
            if !messages
                .iter()
                .any(|m| (m.partition(), m.offset()) == (p, o))
            {
                return Err(UsageError(format!(
                    "{p}:{o} is not waiting in {topic} (replayed already, or no such message)"
                ))
                .into());
            }
        }
    }
    let selected =
        |m: &OwnedMessage| chosen.is_none_or(|c| c.contains(&(m.partition(), m.offset())));
    let producer: BaseProducer = config
        .producer()
        .create()
        .context("creating a Kafka producer")?;
    let mut replayed = 0;
    for m in messages.iter().filter(|m| selected(m)) {
        let source = header(m, "dlq-source-topic");
        if source == "-" {
            bail!(
                "{}:{} has no dlq-source-topic header",
                m.partition(),
                m.offset()
            );
        }
        let from = format!("{topic}/{}:{}", m.partition(), m.offset());
        // The original headers (trace context) travel on; the dead-letter ones would mislead
        // the consumer's next dead-lettering of it.
        let mut headers = OwnedHeaders::new();
        if let Some(original) = m.headers() {
            for h in original.iter().filter(|h| !h.key.starts_with("dlq-")) {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        headers = headers.insert(Header {
            key: "dlq-replayed-from",
            value: Some(from.as_bytes()),
        });
        let mut record = BaseRecord::<[u8], [u8]>::to(source).headers(headers);
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        if let Some(payload) = m.payload() {
            record = record.payload(payload);
        }
        producer
            .send(record)
            .map_err(|(e, _)| e)
            .with_context(|| format!("re-driving {from} to {source}"))?;
        producer
            .flush(TIMEOUT)
            .with_context(|| format!("re-driving {from} to {source}"))?;
        println!("replayed {}:{} to {source}", m.partition(), m.offset());
        replayed += 1;
    }
    // One position per partition: it moves past the waiting messages up to the first one not
    // chosen, so nothing skipped is ever marked replayed.
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut blocked = Vec::new();
    for m in &messages {
        if blocked.contains(&m.partition()) {
            continue;
        }
        if selected(m) {
            positions.insert(m.partition(), m.offset() + 1);
        } else {
            blocked.push(m.partition());
        }
    }
    if !positions.is_empty() {
        let mut commit = TopicPartitionList::new();
        for (&partition, &offset) in &positions {
            commit.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        consumer
            .commit(&commit, CommitMode::Sync)
            .with_context(|| format!("recording the replay position on {topic}"))?;
    }
    println!("{replayed} replayed from {topic}");
    Ok(())
}
