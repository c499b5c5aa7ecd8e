//! The outbox relay: publishes committed outbox rows to Kafka, in order per key.
//!
//! Ordering: rows are grouped by key in commit order; each key's rows are sent one after the
//! other, the next only once the broker acknowledged the previous, while different keys go
//! concurrently. A failed send stops that key's chain for this round, so a later event of the
//! same reservation can never overtake an earlier one. Rows are marked published only after
//! their acknowledgement: a crash re-publishes at most the rows acknowledged but not yet
//! marked, in their original order, and consumers drop the duplicates by event id.
//!
//! Outages: while the broker is unreachable sends fail (after `message.timeout.ms`), rows stay
//! pending, and the relay retries with backoff. Nothing upstream waits on it.
//!
//! Metrics: `outbox_published_total`, `outbox_publish_failures_total` (rows Kafka did not
//! acknowledge), `outbox_store_failures_total` (reading or marking the outbox table failed: the
//! database, not Kafka), and `outbox_pending_messages`, the rows waiting, sampled by every
//! replica (the standbys too: it is one table) whether or not the broker answers, since an
//! outage is when it grows.

use std::{collections::HashMap, time::Duration};

use futures::future::join_all;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer as _},
};
use studycafe_platform::liveness::{Heartbeat, Heartbeats};
use tokio_util::sync::CancellationToken;

use crate::{KafkaConfig, OutboxSignal, OutboxStore, PendingMessage, logs::KafkaLogs};

/// Tuning of the relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows read per round.
    pub batch_size: u32,
    /// Poll interval when no signal arrives (a safety net: a signal normally wakes the relay).
    pub poll_interval: Duration,
    /// Published rows are deleted after this long.
    pub retention: Duration,
    /// Topics to create before the first send.
    pub topics: Vec<String>,
    /// How long the relay lease lasts without renewal: a replica that dies holding it is
    /// replaced after at most this long.
    pub lease_ttl: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 256,
            poll_interval: Duration::from_millis(500),
            retention: Duration::from_secs(24 * 3600),
            topics: shared_events::topics::ALL
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            lease_ttl: Duration::from_secs(10),
        }
    }
}

/// Publishes one service's outbox.
///
/// Every replica of a service runs a relay, but only the holder of the outbox's lease
/// publishes: the others stand by and take over when the holder stops (it releases the lease)
/// or dies (the lease runs out). Should a holder stall past its lease while a round is in
/// flight, both may publish a row: a duplicate, which consumers drop by event id.
#[derive(Debug)]
pub struct OutboxRelay<S> {
    store: S,
    kafka: KafkaConfig,
    signal: OutboxSignal,
    settings: RelaySettings,
    /// Busy during a round (lease, read, publish, mark); waiting between rounds and in
    /// backoffs.
    heartbeat: Heartbeat,
}

impl<S: OutboxStore> OutboxRelay<S> {
    pub fn new(
        store: S,
        kafka: KafkaConfig,
        signal: OutboxSignal,
        settings: RelaySettings,
    ) -> Self {
        Self {
            store,
            kafka,
            signal,
            settings,
            heartbeat: Heartbeat::detached("outbox relay"),
        }
    }

    /// Reports this relay's progress to `heartbeats` as `outbox relay`.
    pub fn with_heartbeats(mut self, heartbeats: &Heartbeats) -> Self {
        self.heartbeat = heartbeats.register(self.heartbeat.name());
        self
    }

    /// Runs until `shutdown`. A round in flight at shutdown is abandoned: its rows stay
    /// pending, so at worst they are published twice (consumers deduplicate), never lost.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let _running = self.heartbeat.running();
        let producer: FutureProducer<KafkaLogs> = self
            .kafka
            .producer()
            .create_with_context(KafkaLogs::default())?;
        // Readable in the lease table: which service instance publishes.
        let holder = format!("{}/{}", self.kafka.client_id, uuid::Uuid::new_v4());
        let mut lease = Lease::default();
        let stop_sampling = shutdown.child_token();
        let publishing = async {
            self.publish(&producer, &holder, &mut lease, &shutdown)
                .await;
            stop_sampling.cancel();
        };
        tokio::join!(publishing, report_backlog(&self.store, &stop_sampling));

        // Whatever is unacknowledged stays pending in the outbox: nothing to flush to be safe,
        // only a courtesy to the broker, bounded and off the async threads.
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(3))).await;
        if lease.held
            && let Err(e) = self.store.release_lease(&holder).await
        {
            tracing::warn!(error = %e, "releasing the relay lease failed; it runs out by itself");
        }
        tracing::info!("outbox relay stopped");
        Ok(())
    }

    /// Publishes rounds while this relay holds the lease, until `shutdown`.
    async fn publish(
        &self,
        producer: &FutureProducer<KafkaLogs>,
        holder: &str,
        lease: &mut Lease,
        shutdown: &CancellationToken,
    ) {
        let topics: Vec<String> = self
            .settings
            .topics
            .iter()
            .map(|t| self.kafka.topic(t))
            .collect();
        if !crate::topics::ensure_topics_retrying(&self.kafka, &topics, shutdown).await {
            return;
        }
        tracing::info!(brokers = %self.kafka.brokers, "outbox relay started");

        let mut backoff = Backoff::default();
        let mut last_prune = tokio::time::Instant::now();
        loop {
            self.heartbeat.beat();
            let turn = self.turn(producer, holder, lease, shutdown).await;
            // Each turn's outcome decides what is counted and how long to wait.
            let wait = match turn {
                Turn::Shutdown => break,
                Turn::Standby => self.settings.poll_interval,
                Turn::Idle => {
                    backoff.recovered();
                    if last_prune.elapsed() > PRUNE_EVERY {
                        last_prune = tokio::time::Instant::now();
                        match self.store.prune(self.settings.retention).await {
                            Ok(n) if n > 0 => tracing::debug!(pruned = n, "outbox pruned"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "outbox prune failed"),
                        }
                    }
                    self.heartbeat.waiting();
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = self.signal.notified() => {}
                        _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    }
                    continue;
                }
                Turn::StoreFailed(e) => {
                    metrics::counter!("outbox_store_failures_total").increment(1);
                    backoff.failed(|retry_in| {
                        tracing::error!(error = %e, retry_in_ms = retry_in.as_millis() as u64, "reading the outbox failed; retrying");
                    })
                }
                Turn::Published(result) => {
                    metrics::counter!("outbox_published_total")
                        .increment(result.published.len() as u64);
                    if let Err(e) = self.store.mark_published(&result.published).await {
                        // Rows stay pending and are sent again: duplicates, never losses.
                        metrics::counter!("outbox_store_failures_total").increment(1);
                        tracing::error!(error = %e, "marking outbox rows published failed");
                    }
                    if result.failed == 0 {
                        backoff.recovered();
                        continue;
                    }
                    metrics::counter!("outbox_publish_failures_total").increment(result.failed);
                    backoff.failed(|retry_in| {
                        tracing::warn!(
                            failed = result.failed,
                            retry_in_ms = retry_in.as_millis() as u64,
                            "publishing to Kafka failed; events stay in the outbox"
                        );
                    })
                }
            };
            self.heartbeat.waiting();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One turn: the lease, then a batch of pending rows read and published.
    async fn turn(
        &self,
        producer: &FutureProducer<KafkaLogs>,
        holder: &str,
        lease: &mut Lease,
        shutdown: &CancellationToken,
    ) -> Turn {
        if shutdown.is_cancelled() {
            return Turn::Shutdown;
        }
        if !lease
            .ensure(&self.store, holder, self.settings.lease_ttl)
            .await
        {
            return Turn::Standby;
        }
        let mut batch = match self.store.pending(self.settings.batch_size).await {
            Ok(batch) if batch.is_empty() => return Turn::Idle,
            Ok(batch) => batch,
            Err(e) => return Turn::StoreFailed(e),
        };
        for pending in &mut batch {
            pending.message.topic = self.kafka.topic(&pending.message.topic);
        }
        // A round can wait for `message.timeout.ms` on a dead broker; shutdown does not.
        // Abandoning it is safe: unmarked rows stay pending and go out next time.
        tokio::select! {
            round = publish_round(producer, batch) => Turn::Published(round),
            _ = shutdown.cancelled() => Turn::Shutdown,
        }
    }
}

/// What one turn of the relay found.
enum Turn {
    Shutdown,
    /// Another replica holds the lease: stand by.
    Standby,
    /// Nothing pending.
    Idle,
    /// The outbox table could not be read (the database, not Kafka).
    StoreFailed(anyhow::Error),
    /// A batch went out; some keys' chains may have failed.
    Published(RoundResult),
}

/// Published rows are pruned at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The wait after consecutive failed turns: 400 ms doubling up to 5 s, reset by a good turn.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Counts a failure and answers how long to wait; `log` runs on the first failure of a run
    /// and every tenth after it, so an outage does not flood the log.
    fn failed(&mut self, log: impl FnOnce(Duration)) -> Duration {
        self.failures += 1;
        let wait =
            Duration::from_millis(200 * 2u64.pow(self.failures.min(5))).min(Duration::from_secs(5));
        if self.failures == 1 || self.failures.is_multiple_of(10) {
            log(wait);
        }
        wait
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            tracing::info!(failed_turns = self.failures, "the outbox relay recovered");
        }
        self.failures = 0;
    }
}

/// How often every relay samples the outbox backlog.
const BACKLOG_SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Exports `outbox_pending_messages` until `stop`.
async fn report_backlog<S: OutboxStore>(store: &S, stop: &CancellationToken) {
    loop {
        let sample = tokio::select! {
            _ = stop.cancelled() => return,
            sample = store.backlog() => sample,
        };
        match sample {
            Ok(pending) => metrics::gauge!("outbox_pending_messages").set(pending as f64),
            Err(e) => tracing::debug!(error = %e, "sampling the outbox backlog failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(BACKLOG_SAMPLE_EVERY) => {}
        }
    }
}

/// This relay's view of the outbox lease.
#[derive(Debug, Default)]
struct Lease {
    held: bool,
    renewed_at: Option<tokio::time::Instant>,
}

impl Lease {
    /// True when this relay may publish now. Renews at a third of the lease's life, so a
    /// holder keeps it across a slow round.
    async fn ensure<S: OutboxStore>(&mut self, store: &S, holder: &str, ttl: Duration) -> bool {
        if self.held && self.renewed_at.is_some_and(|at| at.elapsed() < ttl / 3) {
            return true;
        }
        let held = match store.acquire_lease(holder, ttl).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "renewing the relay lease failed");
                false
            }
        };
        if held != self.held {
            if held {
                tracing::info!("this replica now publishes the outbox (relay lease taken)");
            } else {
                tracing::info!("another replica publishes the outbox; standing by");
            }
        }
        self.held = held;
        self.renewed_at = held.then(tokio::time::Instant::now);
        held
    }
}

struct RoundResult {
    published: Vec<i64>,
    failed: u64,
}

/// Sends one batch: per key sequentially, keys concurrently.
async fn publish_round(
    producer: &FutureProducer<KafkaLogs>,
    batch: Vec<PendingMessage>,
) -> RoundResult {
    let mut chains: Vec<Vec<PendingMessage>> = Vec::new();
    let mut chain_of_key: HashMap<String, usize> = HashMap::new();
    for pending in batch {
        let index = *chain_of_key
            .entry(pending.message.key.clone())
            .or_insert_with(|| {
                chains.push(Vec::new());
                chains.len() - 1
            });
        chains[index].push(pending);
    }

    let results = join_all(chains.into_iter().map(|chain| async move {
        let mut published = Vec::with_capacity(chain.len());
        let total = chain.len();
        for pending in chain {
            match send(producer, &pending).await {
                Ok(()) => published.push(pending.seq),
                Err(e) => {
                    tracing::debug!(seq = pending.seq, error = %e, "send failed");
                    let failed = (total - published.len()) as u64;
                    return (published, failed);
                }
            }
        }
        (published, 0)
    }))
    .await;

    let mut round = RoundResult {
        published: Vec::new(),
        failed: 0,
    };
    for (published, failed) in results {
        round.published.extend(published);
        round.failed += failed;
    }
    round
}

async fn send(
    producer: &FutureProducer<KafkaLogs>,
    pending: &PendingMessage,
) -> anyhow::Result<()> {
    let message = &pending.message;
    let mut headers = OwnedHeaders::new_with_capacity(message.headers.len() + 1);
    headers = headers.insert(Header {
        key: "event-id",
        value: Some(message.event_id.to_string().as_bytes()),
    });
    for (key, value) in &message.headers {
        headers = headers.insert(Header {
            key: key.as_str(),
            value: Some(value.as_bytes()),
        });
    }
    let record = FutureRecord::to(&message.topic)
        .key(&message.key)
        .payload(&message.payload)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(5))
        .await
        .map(|_| ())
        .map_err(|(e, _)| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_turns_wait_longer_up_to_five_seconds_and_log_the_first_and_every_tenth() {
        let mut backoff = Backoff::default();
        let mut logged = Vec::new();
        let waits: Vec<u64> = (1..=20)
            .map(|turn| {
                backoff
                    .failed(|_| logged.push(turn))
                    .as_millis()
                    .try_into()
                    .expect("ms")
            })
            .collect();
        assert_eq!(&waits[..6], &[400, 800, 1600, 3200, 5000, 5000]);
        assert!(waits[6..].iter().all(|&w| w == 5000));
        assert_eq!(logged, vec![1, 10, 20]);

        backoff.recovered();
        assert_eq!(400, backoff.failed(|_| {}).as_millis());
    }
}
