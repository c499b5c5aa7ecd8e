//! The idempotent consumer: at-least-once delivery from Kafka, exactly-once effects.
//!
//! For every message, in partition order:
//! 1. the envelope is decoded (undecodable → dead-letter topic at once);
//! 2. the [`EventHandler`] applies it — its state change and the inbox record of the event id
//!    in one transaction, so a redelivery is a no-op;
//! 3. only then is the offset stored (committed by the client within a second, and on
//!    shutdown). A crash between 2 and 3 redelivers, and the inbox absorbs it.
//!
//! A handler that keeps failing does not wedge its partition: after `max_attempts` the message
//! goes to the group's dead-letter topic with the error attached. While it is retried, every
//! partition this process holds waits with it, not only its own (one loop reads them all); see
//! `docs/architecture.md`, "What a failing event holds up". Events of a type this
//! service does not know (a newer publisher) are skipped, not dead-lettered.
//!
//! One consumer group per service: replicas share the partitions, each event reaches one of
//! them.
//!
//! Metrics (what the alerts and the dashboard in `k8s/` read): `consumer_events_total{group,
//! outcome}` (`applied`, `skipped`, `dead_lettered`; every series exported from the start so a
//! first dead letter shows as an increase), `consumer_lag_messages{group,topic,partition}` (high
//! watermark minus committed offset, sampled by a task of its own so a consumer stuck in a
//! handler still reports its growing lag) and `consumer_event_age_seconds{group,type}` (from the
//! event's `occurredAt` until it was applied: how far behind the facts this service acts) and
//! `dead_letter_messages_waiting{group}` (dead letters after the position of the group
//! `studycafe-dlq-replay.<group>` that `studycafe dlq replay` moves: what an operator has not
//! dealt with yet; sampled with the lag) and `consumer_restarts_total{group}` (clients replaced
//! after a fatal error, see [`EventConsumer::run`]).

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer as _, StreamConsumer},
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
    message::{BorrowedMessage, Header, Headers as _, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use shared_events::{DecodeError, IntegrationEvent, RawEnvelope};
use studycafe_platform::liveness::{Heartbeat, Heartbeats};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{KafkaConfig, logs::KafkaLogs};

/// The longest pause between two attempts at one event.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// How long a stopping consumer waits for the broker to take its last offsets.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a consumer samples its lag, and how long one broker query of it may take.
const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(10);
const LAG_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// One decoded event as a handler sees it.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    pub envelope: RawEnvelope,
    pub event: IntegrationEvent,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The event can never be applied (it contradicts this service's data in a way retrying
    /// cannot fix): dead-lettered at once.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Something failed that may work next time (database busy, I/O): retried, then
    /// dead-lettered.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Applies events. Implementations make their effect and the inbox record
/// ([`crate::sqlite::claim`]) one transaction.
pub trait EventHandler: Send + Sync + 'static {
    fn handle(&self, event: &ReceivedEvent)
    -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// What one consumer reads and how it retries.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// The consumer group: the service's name.
    pub group_id: String,
    pub topics: Vec<String>,
    /// Attempts before a failing event is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each attempt.
    pub retry_backoff: Duration,
}

impl ConsumerSettings {
    pub fn new(group_id: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            group_id: group_id.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            // ~80 s of retries (0.2 s doubling, capped at 30 s): long enough to ride out a
            // database restart, short enough that a truly poisonous event moves aside.
            max_attempts: 10,
            retry_backoff: Duration::from_millis(200),
        }
    }

    pub fn dead_letter_topic(&self) -> String {
        shared_events::topics::dead_letter(&self.group_id)
    }
}

/// The consumer group whose committed position on `group`'s dead-letter topic marks what an
/// operator has replayed (`studycafe dlq replay`): what lies after it still waits.
pub fn dead_letter_replay_group(group: &str) -> String {
    format!("studycafe-dlq-replay.{group}")
}

/// A consumer group member feeding one handler.
#[derive(Debug)]
pub struct EventConsumer<H> {
    kafka: KafkaConfig,
    settings: ConsumerSettings,
    handler: H,
    /// Busy while a message is being applied (or dead-lettered); waiting on an empty topic,
    /// in a retry backoff, and while the broker is away.
    heartbeat: Heartbeat,
    /// Busy inside a rebalance callback: a consumer wedged there stops consuming.
    rebalance: Heartbeat,
}

enum Outcome {
    Applied,
    Skipped,
    DeadLettered,
}

impl<H: EventHandler> EventConsumer<H> {
    pub fn new(kafka: KafkaConfig, settings: ConsumerSettings, handler: H) -> Self {
        let name = format!("consumer {}", settings.group_id);
        Self {
            kafka,
            heartbeat: Heartbeat::detached(&name),
            rebalance: Heartbeat::detached(format!("{name} rebalance")),
            settings,
            handler,
        }
    }

    /// Reports this consumer's progress to `heartbeats` (the service's `/health/live`), as
    /// `consumer <group>` and `consumer <group> rebalance`.
    pub fn with_heartbeats(mut self, heartbeats: &Heartbeats) -> Self {
        self.heartbeat = heartbeats.register(self.heartbeat.name());
        self.rebalance = heartbeats.register(self.rebalance.name());
        self
    }

    /// Consumes until `shutdown`, then commits the stored offsets and leaves.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let _running = (self.heartbeat.running(), self.rebalance.running());
        let dead_letter = self.kafka.topic(&self.settings.dead_letter_topic());
        let mut topics: Vec<String> = self
            .settings
            .topics
            .iter()
            .map(|t| self.kafka.topic(t))
            .collect();
        topics.push(dead_letter.clone());
        if !crate::topics::ensure_topics_retrying(&self.kafka, &topics, &shutdown).await {
            return Ok(());
        }

        let dlq_producer: FutureProducer<KafkaLogs> = self
            .kafka
            .producer()
            .create_with_context(KafkaLogs::default())?;
        let subscribed: Vec<&str> = topics[..topics.len() - 1]
            .iter()
            .map(String::as_str)
            .collect();
        for outcome in ["applied", "skipped", "dead_lettered"] {
            metrics::counter!("consumer_events_total", "group" => self.settings.group_id.clone(), "outcome" => outcome)
                .increment(0);
        }

        loop {
            let consumer: Arc<StreamConsumer<KafkaLogs>> = Arc::new(
                self.kafka
                    .consumer(&self.settings.group_id)
                    .create_with_context(KafkaLogs::rebalancing(self.rebalance.clone()))?,
            );
            consumer.subscribe(&subscribed)?;
            tracing::info!(group = %self.settings.group_id, topics = ?subscribed, "consumer started");

            let stop_sampling = shutdown.child_token();
            let sampler = tokio::spawn(sample_lag(
                consumer.clone(),
                self.kafka.clone(),
                self.settings.group_id.clone(),
                stop_sampling.clone(),
            ));
            let ended = self
                .consume(&consumer, &dlq_producer, &dead_letter, &shutdown)
                .await;
            stop_sampling.cancel();
            let _ = sampler.await;

            match ended {
                Ended::Shutdown => {
                    leave(consumer, true).await;
                    break;
                }
                Ended::Fatal(error) => {
                    // librdkafka gives up on a fatal error for good (typically fenced: after a
                    // broker outage its own retried JoinGroup, or another process with this
                    // KAFKA_GROUP_INSTANCE_ID, took the static membership), and a client can
                    // stay unreachable long after its broker is back (UNREACHABLE_FOR). A client
                    // that only logs it again and again consumes nothing while it looks alive;
                    // a new one resumes from the committed offsets, and the inbox absorbs what
                    // it sees twice.
                    tracing::error!(group = %self.settings.group_id, %error, "the Kafka consumer cannot go on; starting a new one");
                    metrics::counter!("consumer_restarts_total", "group" => self.settings.group_id.clone())
                        .increment(1);
                    leave(consumer, false).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(FATAL_RESTART_DELAY) => {}
                    }
                }
            }
        }
        tracing::info!(group = %self.settings.group_id, "consumer stopped");
        Ok(())
    }

    /// The consuming loop proper, until `shutdown` (or a shutdown mid-retry), or until the
    /// client fails for good.
    async fn consume(
        &self,
        consumer: &StreamConsumer<KafkaLogs>,
        dlq_producer: &FutureProducer<KafkaLogs>,
        dead_letter: &str,
        shutdown: &CancellationToken,
    ) -> Ended {
        let mut unreachable = Outage::default();
        loop {
            self.heartbeat.waiting();
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ended::Shutdown,
                received = consumer.recv() => received,
            };
            let message = match message {
                Ok(m) => {
                    unreachable.reset();
                    m
                }
                Err(e) => {
                    if let Some(fatal) = fatal(consumer, &e) {
                        return Ended::Fatal(fatal);
                    }
                    if is_transport(&e) && unreachable.goes_on(Instant::now()) {
                        return Ended::Fatal(format!(
                            "only transport errors for {UNREACHABLE_FOR:?} ({e})"
                        ));
                    }
                    // Broker gone, rebalancing: the client reconnects by itself.
                    tracing::warn!(error = %e, "consumer error");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ended::Shutdown,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    continue;
                }
            };

            let _busy = self.heartbeat.busy();
            let outcome = self
                .process(&message, dlq_producer, dead_letter, shutdown)
                .await;
            let Some(outcome) = outcome else {
                // Shut down mid-retry: do not store the offset, the event is redelivered.
                return Ended::Shutdown;
            };
            let label = match outcome {
                Outcome::Applied => "applied",
                Outcome::Skipped => "skipped",
                Outcome::DeadLettered => "dead_lettered",
            };
            metrics::counter!("consumer_events_total", "group" => self.settings.group_id.clone(), "outcome" => label)
                .increment(1);
            if let Err(e) = consumer.store_offset_from_message(&message) {
                // Lost our partition in a rebalance: the new owner redelivers; inbox absorbs.
                tracing::warn!(error = %e, "storing offset failed");
            }
        }
    }

    /// Decodes and applies one message. None when shutdown interrupted it.
    async fn process(
        &self,
        message: &BorrowedMessage<'_>,
        dlq: &FutureProducer<KafkaLogs>,
        dead_letter: &str,
        shutdown: &CancellationToken,
    ) -> Option<Outcome> {
        let headers = headers_of(message);
        let payload = message.payload().unwrap_or_default();
        let envelope = match RawEnvelope::from_json(payload) {
            Ok(e) => e,
            Err(e) => {
                return self
                    .dead_letter(message, dlq, dead_letter, &e.to_string(), 0, shutdown)
                    .await;
            }
        };
        let event = match IntegrationEvent::decode(&envelope) {
            Ok(event) => event,
            Err(DecodeError::UnknownType {
                event_type,
                version,
            }) => {
                tracing::debug!(%event_type, version, "skipping an event type this service does not handle");
                return Some(Outcome::Skipped);
            }
            Err(e) => {
                return self
                    .dead_letter(message, dlq, dead_letter, &e.to_string(), 0, shutdown)
                    .await;
            }
        };
        let received = ReceivedEvent {
            envelope,
            event,
            topic: self.kafka.logical_topic(message.topic()).to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };

        let span = tracing::info_span!(
            "consume",
            event_type = received.event.event_type(),
            event_id = %received.envelope.id,
            correlation_id = %received.envelope.correlation_id,
            group = %self.settings.group_id,
        );
        crate::trace::adopt_parent(&span, &headers);

        let mut backoff = self.settings.retry_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.heartbeat.beat();
            match self
                .handler
                .handle(&received)
                .instrument(span.clone())
                .await
            {
                Ok(()) => {
                    let age = chrono::Utc::now() - received.envelope.occurred_at;
                    metrics::histogram!(
                        "consumer_event_age_seconds",
                        "group" => self.settings.group_id.clone(),
                        "type" => received.envelope.event_type.clone()
                    )
                    .record(age.as_seconds_f64().max(0.0));
                    return Some(Outcome::Applied);
                }
                Err(HandleError::Rejected(reason)) => {
                    return self
                        .dead_letter(message, dlq, dead_letter, &reason, attempt, shutdown)
                        .await;
                }
                Err(HandleError::Failed(e)) if attempt >= self.settings.max_attempts => {
                    return self
                        .dead_letter(
                            message,
                            dlq,
                            dead_letter,
                            &format!("{e:#}"),
                            attempt,
                            shutdown,
                        )
                        .await;
                }
                Err(HandleError::Failed(e)) => {
                    span.in_scope(|| tracing::warn!(attempt, error = %format!("{e:#}"), "handler failed, retrying"));
                    // Backing off while a dependency is down is waiting, not a stall.
                    let stop = self.heartbeat.wait_for(async {
                        tokio::select! {
                            _ = shutdown.cancelled() => true,
                            _ = tokio::time::sleep(backoff) => false,
                        }
                    });
                    if stop.await {
                        return None;
                    }
                    backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                }
            }
        }
    }

    /// Publishes the original message to the dead-letter topic with the error in headers. It
    /// retries until the broker takes it: dropping a poison message silently would lose it.
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        dlq: &FutureProducer<KafkaLogs>,
        dead_letter: &str,
        error: &str,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> Option<Outcome> {
        tracing::error!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            %error,
            "dead-lettering a message"
        );
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let attempts = attempts.to_string();
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                for header in original.iter() {
                    headers = headers.insert(Header {
                        key: header.key,
                        value: header.value,
                    });
                }
            }
            for (key, value) in [
                ("dlq-error", error),
                ("dlq-source-topic", message.topic()),
                ("dlq-source-partition", partition.as_str()),
                ("dlq-source-offset", offset.as_str()),
                ("dlq-consumer-group", self.settings.group_id.as_str()),
                ("dlq-attempts", attempts.as_str()),
            ] {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(dead_letter).headers(headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            self.heartbeat.beat();
            match dlq.send(record, Duration::from_secs(5)).await {
                Ok(_) => return Some(Outcome::DeadLettered),
                Err((e, _)) => {
                    tracing::warn!(error = %e, "dead-letter publish failed, retrying");
                    let stop = self.heartbeat.wait_for(async {
                        tokio::select! {
                            _ = shutdown.cancelled() => true,
                            _ = tokio::time::sleep(backoff) => false,
                        }
                    });
                    if stop.await {
                        return None;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// How a consuming loop ended.
enum Ended {
    Shutdown,
    /// The client failed for good, or has been unreachable too long (why): only a new one
    /// consumes again.
    Fatal(String),
}

/// A client whose every answer is a transport error for this long is replaced. Seen on the
/// embedded broker: a consumer that had just joined when the broker was killed reported "all
/// brokers down" every half second for minutes after the broker was back, while the other
/// clients of the suite had long reconnected; a new client joins at once.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);
/// Transport errors further apart than this are separate outages: in between the client was
/// connected (it retries every second at most, `reconnect.backoff.max.ms`).
const OUTAGE_GAP: Duration = Duration::from_secs(5);

/// An unbroken run of transport errors.
#[derive(Debug, Default)]
struct Outage {
    /// When the run began, and its latest error.
    run: Option<(Instant, Instant)>,
}

impl Outage {
    fn reset(&mut self) {
        self.run = None;
    }

    /// Records a transport error at `now`; true once the run has lasted [`UNREACHABLE_FOR`].
    fn goes_on(&mut self, now: Instant) -> bool {
        let began = match self.run {
            Some((began, latest)) if now.duration_since(latest) <= OUTAGE_GAP => began,
            _ => now,
        };
        self.run = Some((began, now));
        now.duration_since(began) >= UNREACHABLE_FOR
    }
}

fn is_transport(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
    )
}

/// Waited for after a fatal error before a new client joins the group.
const FATAL_RESTART_DELAY: Duration = Duration::from_secs(1);

/// The fatal error behind `error`, if the client has failed for good.
fn fatal(consumer: &StreamConsumer<KafkaLogs>, error: &KafkaError) -> Option<String> {
    if let Some((code, reason)) = consumer.client().fatal_error() {
        return Some(format!("{code:?}: {reason}"));
    }
    matches!(error, KafkaError::MessageConsumptionFatal(_)).then(|| error.to_string())
}

/// Commits the stored offsets (when the client can still) and leaves the group. Blocking calls
/// that wait on the broker: off the async threads, and bounded, so an unreachable broker cannot
/// hold up shutdown. Offsets not committed here are redelivered and absorbed by the inbox.
async fn leave(consumer: Arc<StreamConsumer<KafkaLogs>>, commit: bool) {
    let leave = tokio::task::spawn_blocking(move || {
        if commit && let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final offset commit");
        }
        consumer.unsubscribe();
        drop(consumer);
    });
    if tokio::time::timeout(LEAVE_TIMEOUT, leave).await.is_err() {
        tracing::warn!("the broker did not answer while leaving the group");
    }
}

/// Exports `consumer_lag_messages` for the partitions this member owns, every
/// [`LAG_SAMPLE_EVERY`] until `stop`. Runs beside the consuming loop, not in it: a handler that
/// hangs or retries for minutes is exactly when the lag must keep being reported. Partitions
/// this member lost report 0 (their new owner reports them), so a sum over replicas is right.
async fn sample_lag(
    consumer: Arc<StreamConsumer<KafkaLogs>>,
    kafka: KafkaConfig,
    group: String,
    stop: CancellationToken,
) {
    let mut reported: HashSet<(String, i32)> = HashSet::new();
    let dead_letters = match DeadLetters::new(&kafka, &group) {
        Ok(reader) => Arc::new(reader),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the dead-letter topic's replay position");
            return;
        }
    };
    let positions = match position_reader(&kafka, &group) {
        Ok(reader) => Arc::new(reader),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the group's positions; no lag reported");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(LAG_SAMPLE_EVERY) => {}
        }
        let (sampling, reading) = (consumer.clone(), positions.clone());
        // Shutdown does not wait for a sample in flight (it may wait on a broker that is away).
        let sample = tokio::select! {
            _ = stop.cancelled() => return,
            sample = tokio::task::spawn_blocking(move || lag_of_assignment(&sampling, &reading)) => sample,
        };
        let lags = match sample {
            Ok(Ok(lags)) => lags,
            // The broker is away or the group is rebalancing: keep the last values.
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "sampling consumer lag failed");
                continue;
            }
            Err(_) => continue,
        };
        let reading = dead_letters.clone();
        match tokio::task::spawn_blocking(move || dead_letters_waiting(&reading)).await {
            Ok(Ok(waiting)) => {
                metrics::gauge!("dead_letter_messages_waiting", "group" => group.clone())
                    .set(waiting as f64);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "sampling waiting dead letters failed"),
            Err(_) => {}
        }
        let mut now: HashSet<(String, i32)> = HashSet::new();
        for (topic, partition, lag) in lags {
            let topic = kafka.logical_topic(&topic).to_owned();
            metrics::gauge!(
                "consumer_lag_messages",
                "group" => group.clone(),
                "topic" => topic.clone(),
                "partition" => partition.to_string()
            )
            .set(lag as f64);
            now.insert((topic, partition));
        }
        for (topic, partition) in reported.difference(&now) {
            metrics::gauge!(
                "consumer_lag_messages",
                "group" => group.clone(),
                "topic" => topic.clone(),
                "partition" => partition.to_string()
            )
            .set(0.0);
        }
        reported.extend(now);
    }
}

/// A client that reads `group`'s committed offsets and the topics' watermarks on connections of
/// its own. It never joins the group and never commits.
///
/// Why not ask the consuming client: a broker answers one connection's requests in order, so
/// an offsets query queues behind the consumer's fetch, and when it times out librdkafka drops
/// the whole connection, the fetch in flight with it. Under a backlog (fetches slow) every
/// sample then cost the consumer a fetch and, on the embedded broker, its group session.
fn position_reader(kafka: &KafkaConfig, group: &str) -> KafkaResult<BaseConsumer> {
    let mut config = kafka.consumer(group);
    config
        .set("enable.auto.commit", "false")
        .remove("group.instance.id");
    config.create()
}

/// `(topic, partition, lag)` of every partition assigned to `consumer`: the high watermark
/// minus the committed offset (what was applied and committed; a partition never committed
/// counts from its low watermark, where `auto.offset.reset=earliest` starts), both read by
/// `positions` (see [`position_reader`]). Blocking broker queries.
fn lag_of_assignment(
    consumer: &StreamConsumer<KafkaLogs>,
    positions: &BaseConsumer,
) -> KafkaResult<Vec<(String, i32, i64)>> {
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = positions.committed_offsets(assignment, LAG_QUERY_TIMEOUT)?;
    let mut lags = Vec::with_capacity(committed.count());
    for element in committed.elements() {
        let (low, high) =
            positions.fetch_watermarks(element.topic(), element.partition(), LAG_QUERY_TIMEOUT)?;
        let done = match element.offset() {
            Offset::Offset(offset) => offset.max(low),
            _ => low,
        };
        lags.push((
            element.topic().to_owned(),
            element.partition(),
            (high - done).max(0),
        ));
    }
    Ok(lags)
}

/// Reads the replay position on one group's dead-letter topic.
struct DeadLetters {
    topic: String,
    reader: BaseConsumer,
}

impl DeadLetters {
    fn new(kafka: &KafkaConfig, group: &str) -> KafkaResult<Self> {
        Ok(Self {
            topic: kafka.topic(&shared_events::topics::dead_letter(group)),
            // Only reads the position; it must never move it.
            reader: position_reader(kafka, &dead_letter_replay_group(group))?,
        })
    }
}

/// How many messages of the dead-letter topic lie after the replay position (summed over
/// partitions, counted like the lag). Every replica reports the same number: read it with
/// `max`, not `sum`. A missing topic (nothing ever dead-lettered) counts 0. Blocking.
fn dead_letters_waiting(dead: &DeadLetters) -> KafkaResult<i64> {
    let DeadLetters { topic, reader } = dead;
    let metadata = reader.fetch_metadata(Some(topic), LAG_QUERY_TIMEOUT)?;
    let mut partitions = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
        for p in t.partitions() {
            partitions.add_partition(topic, p.id());
        }
    }
    if partitions.count() == 0 {
        return Ok(0);
    }
    let committed = reader.committed_offsets(partitions, LAG_QUERY_TIMEOUT)?;
    let mut waiting = 0;
    for element in committed.elements() {
        let (low, high) = reader.fetch_watermarks(topic, element.partition(), LAG_QUERY_TIMEOUT)?;
        let done = match element.offset() {
            Offset::Offset(offset) => offset.max(low),
            _ => low,
        };
        waiting += (high - done).max(0);
    }
    Ok(waiting)
}

fn headers_of(message: &BorrowedMessage<'_>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            if let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                map.insert(header.key.to_owned(), value.to_owned());
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_unbroken_run_of_transport_errors_replaces_the_client_after_its_limit() {
        let start = Instant::now();
        let mut outage = Outage::default();
        for second in 0..UNREACHABLE_FOR.as_secs() {
            assert!(!outage.goes_on(start + secs(second)), "at {second} s");
        }
        assert!(outage.goes_on(start + UNREACHABLE_FOR));
    }

    #[test]
    fn errors_far_apart_or_a_message_between_them_start_a_new_run() {
        let start = Instant::now();
        let mut outage = Outage::default();
        // Brief outages, hours of health between them: never one long run.
        for hour in 0..10 {
            let at = start + secs(hour * 3600);
            assert!(!outage.goes_on(at));
            assert!(!outage.goes_on(at + secs(1)));
        }
        // A message received resets the run, however close the next error comes.
        let at = start + secs(100_000);
        assert!(!outage.goes_on(at));
        for second in 1..UNREACHABLE_FOR.as_secs() {
            assert!(!outage.goes_on(at + secs(second)));
        }
        outage.reset();
        assert!(!outage.goes_on(at + UNREACHABLE_FOR));
    }
}
