//! Saga latency: reservations made through the gateway at a fixed arrival rate (open loop),
//! each timed from its intended send time until the board stream (`GET /api/board/stream`,
//! server-sent events through the gateway) shows it REGISTERED, with the cafe's auto-confirm
//! policy on. Afterwards the events of those reservations are read back from the topics and
//! every reservation's time is cut into the saga's hops (HTTP, outbox relays, broker and
//! consumers) from the events' `occurredAt` (written in the service's transaction) and their
//! Kafka timestamps (set by the relay's producer when it sends them).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::{sync::Semaphore, time::Instant};

use crate::{
    footprint::{Peak, Sampler},
    http::{self, Reserve, ReserveSettings},
    load::{Mode, Outcome, Plan},
    report::{Latency, Report},
};

/// What `studycafe-bench saga` is asked to do.
#[derive(Debug, Clone)]
pub struct SagaSettings {
    pub reserve: ReserveSettings,
    pub rate: f64,
    pub max_in_flight: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// A reservation not seen REGISTERED this long after its intended send time counts as
    /// never seen.
    pub timeout: Duration,
    /// How long after the last send to keep waiting for the rest (beyond `timeout`), so the
    /// suite has drained before the next run and the drain time is known.
    pub drain_limit: Duration,
    /// `user:password` of an admin, to switch the auto-confirm policy on.
    pub admin: Option<(String, String)>,
    /// Kafka bootstrap servers, to read the events back for the hop breakdown.
    pub brokers: Option<String>,
    /// `(service, /metrics URL)`: consumers' event ages from Prometheus, before and after.
    pub metrics: Vec<(String, String)>,
    /// Samples the memory of this process tree (the launcher) during the run.
    pub rss_of: Option<u32>,
    pub label: String,
}

/// The figures of one saga run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SagaReport {
    /// Latency = intended send → REGISTERED on the board stream; ok = seen in time.
    #[serde(flatten)]
    pub report: Report,
    /// The reserve request alone (intended send → 202), milliseconds.
    pub reserve_ms: Latency,
    /// Measured reservations the suite accepted (202).
    pub accepted: u64,
    /// Accepted but not seen REGISTERED within `timeout_secs`.
    pub not_seen: u64,
    /// Accepted and never seen REGISTERED, even by the end of the drain wait.
    pub never_seen: u64,
    pub timeout_secs: f64,
    /// Seconds from the last intended send until the last accepted reservation was seen
    /// REGISTERED: how long the suite took to finish what it was given (at most
    /// `drain_limit_secs`, when some were never seen).
    pub drain_secs: f64,
    pub drain_limit_secs: f64,
    pub stream: StreamStats,
    /// Each hop of the saga over the reservations whose every event was found on the topics.
    pub hops: Vec<HopStats>,
    pub hops_reservations: u64,
    /// Why there is no breakdown, when reading the topics failed.
    pub hops_error: Option<String>,
    /// Consumers' `consumer_event_age_seconds` (occurredAt → handled) over the run, by
    /// `group type`: count and mean from the histograms' `_sum` and `_count`.
    pub event_age_ms: BTreeMap<String, AgeStats>,
    /// The suite's memory, sampled each second during the run.
    pub memory: Option<Peak>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamStats {
    /// `board-changed` events received.
    pub events: u64,
    /// `resync` events: changes the stream dropped because this watcher fell behind.
    pub resyncs: u64,
    /// Times the stream ended and was opened again (changes in between are lost).
    pub reconnects: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HopStats {
    pub hop: String,
    /// `http`, `relay` or `consume`.
    pub kind: String,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// This hop's part of the summed end-to-end time.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgeStats {
    pub count: f64,
    pub mean_ms: f64,
}

/// One reservation the driver sent.
#[derive(Debug, Clone)]
struct Sent {
    intended: Instant,
    answered: Instant,
    /// The reservation id when accepted, else the outcome's label.
    result: Result<String, String>,
}

/// REGISTERED reservations as the board stream shows them, and when.
#[derive(Debug, Default)]
struct Board {
    registered: Mutex<HashMap<String, Instant>>,
    events: AtomicU64,
    resyncs: AtomicU64,
    reconnects: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The wall-clock time of a monotonic instant (the events' timestamps are wall-clock).
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    fn ms(&self, t: Instant) -> f64 {
        let wall = self.wall.timestamp_micros() as f64 / 1000.0;
        if t >= self.instant {
            wall + t.duration_since(self.instant).as_secs_f64() * 1000.0
        } else {
            wall - self.instant.duration_since(t).as_secs_f64() * 1000.0
        }
    }
}

pub async fn run(settings: &SagaSettings) -> anyhow::Result<SagaReport> {
    let gw = settings.reserve.gateway.trim_end_matches('/').to_owned();
    let client = http::client(settings.max_in_flight, Duration::from_secs(30))?;

    let policy = match &settings.admin {
        Some((user, password)) => {
            let token = http::password_grant(&client, &gw, user, password).await?;
            let before = set_auto_confirm(&client, &gw, &token, true).await?;
            Some((token, before))
        }
        None => None,
    };

    let board = Arc::new(Board::default());
    let watcher = watch_board(&gw, board.clone()).await?;
    let ages_before = scrape_ages(&client, &settings.metrics).await;

    let reserve = Arc::new(Reserve::prepare(&client, settings.reserve.clone()).await?);
    let clock = Clock::now();
    let sampler = settings
        .rss_of
        .map(|pid| Sampler::start(pid, Duration::from_secs(1)));

    let (sent, progress) = offer(settings, &reserve, &client, &board).await;
    let last_intended = sent
        .iter()
        .map(|s| s.intended)
        .max()
        .unwrap_or(clock.instant);
    let accepted: HashSet<String> = sent.iter().filter_map(|s| s.result.clone().ok()).collect();
    // Wait for every accepted reservation to show, up to the drain limit after the last send.
    let wait_until = last_intended + settings.timeout.max(settings.drain_limit);
    loop {
        let missing = {
            let seen = lock(&board.registered);
            accepted.iter().filter(|id| !seen.contains_key(*id)).count()
        };
        if missing == 0 || Instant::now() >= wait_until {
            if missing > 0 {
                eprintln!(
                    "[{}] {missing} reservations not seen REGISTERED {:.0} s after the last send",
                    settings.label,
                    settings.timeout.max(settings.drain_limit).as_secs_f64()
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.abort();
    watcher.abort();
    let memory = match sampler {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    let reserve_cursor = reserve.save_cursor();

    if let Some((token, before)) = &policy
        && !before
    {
        // Leave the cafe as it was (the production stack's databases outlive the run).
        set_auto_confirm(&client, &gw, token, false).await?;
    }
    reserve_cursor?;

    let ages_after = scrape_ages(&client, &settings.metrics).await;
    let event_age_ms = age_deltas(&ages_before, &ages_after);

    let seen = lock(&board.registered).clone();
    let measure_from = clock.instant + settings.warmup;
    let measured: Vec<&Sent> = sent.iter().filter(|s| s.intended >= measure_from).collect();
    let mut latency = new_histogram();
    let mut reserve_latency = new_histogram();
    let mut outcomes: BTreeMap<String, (bool, u64)> = BTreeMap::new();
    let (mut accepted_n, mut not_seen, mut never_seen) = (0, 0, 0);
    let mut timed: Vec<(&str, Instant, Instant)> = Vec::new();
    let not_seen_label = format!("not seen in {:.0} s", settings.timeout.as_secs_f64());
    // Over every accepted reservation, warm-up included: when the suite was done.
    let last_seen = sent
        .iter()
        .filter_map(|s| seen.get(s.result.as_ref().ok()?))
        .max()
        .copied()
        .unwrap_or(last_intended);
    let any_never = accepted.iter().any(|id| !seen.contains_key(id));
    for s in &measured {
        reserve_latency.saturating_record(micros(s.answered - s.intended));
        let label = match &s.result {
            Ok(id) => {
                accepted_n += 1;
                match seen.get(id) {
                    Some(at) if *at - s.intended <= settings.timeout => {
                        latency.saturating_record(micros(*at - s.intended));
                        timed.push((id.as_str(), s.intended, *at));
                        ("REGISTERED".to_owned(), true)
                    }
                    seen_late => {
                        not_seen += 1;
                        if seen_late.is_none() {
                            never_seen += 1;
                        }
                        (not_seen_label.clone(), false)
                    }
                }
            }
            Err(label) => (format!("reserve {label}"), false),
        };
        outcomes.entry(label.0).or_insert((label.1, 0)).1 += 1;
    }
    let drain_limit = settings.timeout.max(settings.drain_limit);
    let drain_secs = if any_never {
        drain_limit.as_secs_f64()
    } else {
        last_seen
            .saturating_duration_since(last_intended)
            .as_secs_f64()
    };

    // The breakdown is best effort: a broker too busy to answer must not cost the run its
    // figures.
    let mut hops_error = None;
    let (hops, hops_reservations) = match &settings.brokers {
        Some(brokers) if !timed.is_empty() => {
            let from_ms = clock.wall.timestamp_millis() - 5_000;
            let brokers = brokers.clone();
            match tokio::task::spawn_blocking(move || read_events(&brokers, from_ms)).await {
                Ok(Ok(events)) => hop_stats(&timed, &events, &clock),
                Ok(Err(e)) => {
                    eprintln!("[{}] no hop breakdown: {e:#}", settings.label);
                    hops_error = Some(format!("{e:#}"));
                    (Vec::new(), 0)
                }
                Err(e) => {
                    hops_error = Some(e.to_string());
                    (Vec::new(), 0)
                }
            }
        }
        _ => (Vec::new(), 0),
    };

    let plan = Plan {
        mode: Mode::Open {
            rate: settings.rate,
            max_in_flight: settings.max_in_flight,
        },
        duration: settings.duration,
        warmup: settings.warmup,
        label: settings.label.clone(),
    };
    let report = Report::new(&plan, settings.duration.as_secs_f64(), &latency, outcomes);
    Ok(SagaReport {
        report,
        reserve_ms: latency_of(&reserve_latency),
        accepted: accepted_n,
        not_seen,
        never_seen,
        timeout_secs: settings.timeout.as_secs_f64(),
        drain_secs,
        drain_limit_secs: drain_limit.as_secs_f64(),
        stream: StreamStats {
            events: board.events.load(Ordering::Relaxed),
            resyncs: board.resyncs.load(Ordering::Relaxed),
            reconnects: board.reconnects.load(Ordering::Relaxed),
        },
        hops,
        hops_reservations,
        hops_error,
        event_age_ms,
        memory,
    })
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn latency_of(h: &Histogram<u64>) -> Latency {
    let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Latency {
        mean: h.mean() / 1000.0,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p99_9: q(0.999),
        max: h.max() as f64 / 1000.0,
    }
}

/// The open loop: reservation `i` intended at `start + i / rate`, for warm-up + duration.
async fn offer(
    settings: &SagaSettings,
    reserve: &Arc<Reserve>,
    client: &reqwest::Client,
    board: &Arc<Board>,
) -> (Vec<Sent>, tokio::task::JoinHandle<()>) {
    let start = Instant::now();
    let deadline = start + settings.warmup + settings.duration;
    let interval = Duration::from_secs_f64(1.0 / settings.rate);
    let permits = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::new(Mutex::new(Vec::new()));
    let progress = tokio::spawn(progress(
        settings.label.clone(),
        start,
        sent.clone(),
        board.clone(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0u64.. {
        let intended = start + interval.mul_f64(i as f64);
        if intended >= deadline {
            break;
        }
        tokio::time::sleep_until(intended).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (reserve, client, sent) = (reserve.clone(), client.clone(), sent.clone());
        tasks.spawn(async move {
            let result = match reserve.send(&client, i).await {
                Ok(response) if response.status() == reqwest::StatusCode::ACCEPTED => {
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    body["reservationId"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| "202 without reservationId".to_owned())
                }
                Ok(response) => {
                    let status = response.status().as_u16().to_string();
                    let _ = response.bytes().await;
                    Err(status)
                }
                Err(e) => match http::transport_error(&e) {
                    Outcome::Ok(label) | Outcome::Err(label) => Err(label),
                },
            };
            lock(&sent).push(Sent {
                intended,
                answered: Instant::now(),
                result,
            });
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    // The progress line keeps going while the saga drains; the caller ends it.
    let out = lock(&sent).clone();
    (out, progress)
}

async fn progress(label: String, start: Instant, sent: Arc<Mutex<Vec<Sent>>>, board: Arc<Board>) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        let now = tick.tick().await;
        let (n, accepted, registered) = {
            let sent = lock(&sent);
            let seen = lock(&board.registered);
            let accepted: Vec<&String> =
                sent.iter().filter_map(|s| s.result.as_ref().ok()).collect();
            let registered = accepted.iter().filter(|id| seen.contains_key(**id)).count();
            (sent.len(), accepted.len(), registered)
        };
        eprintln!(
            "[{label}] {:>6.1}s  {n:>7} sent  {accepted:>7} accepted  {registered:>7} REGISTERED on the board  {:>6} waiting",
            now.duration_since(start).as_secs_f64(),
            accepted - registered,
        );
    }
}

/// Sets the cafe's auto-confirm policy; returns what it was.
async fn set_auto_confirm(
    client: &reqwest::Client,
    gw: &str,
    token: &str,
    on: bool,
) -> anyhow::Result<bool> {
    let url = format!("{gw}/api/admin/policy");
    let before: serde_json::Value = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()
        .context("GET /api/admin/policy")?
        .json()
        .await?;
    client
        .put(&url)
        .bearer_auth(token)
        .json(&json!({ "autoConfirm": on }))
        .send()
        .await?
        .error_for_status()
        .context("PUT /api/admin/policy")?;
    Ok(before["autoConfirm"].as_bool().unwrap_or(false))
}

/// Opens the board stream (subscribed once the answer's headers arrived) and follows it in a
/// task, opening it again if it ends.
async fn watch_board(gw: &str, board: Arc<Board>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    // No overall timeout: the stream is endless.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("{gw}/api/board/stream");
    let open = |client: reqwest::Client, url: String| async move {
        let response = client
            .get(&url)
            .header("accept", "text/event-stream")
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET /api/board/stream: {}",
            response.status()
        );
        Ok::<_, anyhow::Error>(response)
    };
    let first = open(client.clone(), url.clone()).await?;
    Ok(tokio::spawn(async move {
        let mut response = Some(first);
        loop {
            if let Some(r) = response.take() {
                follow(r, &board).await;
            }
            board.reconnects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            response = open(client.clone(), url.clone()).await.ok();
        }
    }))
}

/// Reads server-sent events until the stream ends.
async fn follow(mut response: reqwest::Response, board: &Board) {
    let mut buffer: Vec<u8> = Vec::new();
    let (mut event, mut data) = (String::new(), String::new());
    while let Ok(Some(chunk)) = response.chunk().await {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                dispatch(&event, &data, board);
                event.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim_start().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    }
}

fn dispatch(event: &str, data: &str, board: &Board) {
    match event {
        "board-changed" => {
            let at = Instant::now();
            board.events.fetch_add(1, Ordering::Relaxed);
            let Ok(change) = serde_json::from_str::<serde_json::Value>(data) else {
                return;
            };
            if change["reservationStatus"] == "REGISTERED"
                && let Some(id) = change["reservationId"].as_str()
            {
                lock(&board.registered).entry(id.to_owned()).or_insert(at);
            }
        }
        "resync" => {
            board.resyncs.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// `consumer_event_age_seconds` `_sum` and `_count` of every service, by
/// `service{labels}`.
async fn scrape_ages(
    client: &reqwest::Client,
    endpoints: &[(String, String)],
) -> HashMap<String, (f64, f64)> {
    let mut out: HashMap<String, (f64, f64)> = HashMap::new();
    for (service, url) in endpoints {
        let Ok(response) = client.get(url).send().await else {
            continue;
        };
        let Ok(text) = response.text().await else {
            continue;
        };
        for line in text.lines() {
            let (is_sum, rest) =
                if let Some(r) = line.strip_prefix("consumer_event_age_seconds_sum") {
                    (true, r)
                } else if let Some(r) = line.strip_prefix("consumer_event_age_seconds_count") {
                    (false, r)
                } else {
                    continue;
                };
            let Some((labels, value)) = rest.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let labels: Vec<String> = labels
                .trim_matches(['{', '}'])
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(_, v)| v.trim_matches('"').to_owned())
                .collect();
            // `group type`; the group is usually the service's own name.
            let key = match labels.first() {
                Some(group) if group == service => labels.join(" "),
                _ => format!("{service} {}", labels.join(" ")),
            };
            let entry = out.entry(key).or_default();
            if is_sum {
                entry.0 = value;
            } else {
                entry.1 = value;
            }
        }
    }
    out
}

fn age_deltas(
    before: &HashMap<String, (f64, f64)>,
    after: &HashMap<String, (f64, f64)>,
) -> BTreeMap<String, AgeStats> {
    after
        .iter()
        .filter_map(|(key, (sum, count))| {
            let (sum0, count0) = before.get(key).copied().unwrap_or_default();
            let n = count - count0;
            (n > 0.0).then(|| {
                (
                    key.clone(),
                    AgeStats {
                        count: n,
                        mean_ms: (sum - sum0) / n * 1000.0,
                    },
                )
            })
        })
        .collect()
}

/// One event of the saga as found on its topic.
#[derive(Debug, Clone)]
struct TopicEvent {
    correlation: String,
    kind: String,
    /// `occurredAt`, ms since the epoch.
    occurred_ms: f64,
    /// The Kafka timestamp (the relay's send), ms since the epoch.
    kafka_ms: Option<f64>,
}

const TOPICS: [&str; 3] = [
    shared_topic::SEAT,
    shared_topic::REGISTRATION,
    shared_topic::PAYMENT,
];

/// The topic names of the published language (shared-events' `topics`), spelled here so the
/// driver does not build the services' crates.
mod shared_topic {
    pub const SEAT: &str = "studycafe.seat.v1";
    pub const REGISTRATION: &str = "studycafe.registration.v1";
    pub const PAYMENT: &str = "studycafe.payment.v1";
}

/// Every event of the saga's topics from `from_ms` (a timestamp) to the end each partition
/// had when the read began.
fn read_events(brokers: &str, from_ms: i64) -> anyhow::Result<Vec<TopicEvent>> {
    let timeout = Duration::from_secs(30);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-saga-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .context("Kafka consumer")?;
    let mut wanted = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for topic in TOPICS {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("metadata of {topic}"))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
            if high > low {
                ends.insert((topic.to_owned(), partition.id()), high);
                wanted.add_partition_offset(topic, partition.id(), Offset::Offset(from_ms))?;
            }
        }
    }
    // Timestamps → offsets; a broker that cannot answer is read from the beginning.
    let assignment = match consumer.offsets_for_times(wanted.clone(), timeout) {
        Ok(found) => found,
        Err(e) => {
            eprintln!(
                "offsets for the run's start time: {e}; reading the topics from the beginning"
            );
            let mut all = TopicPartitionList::new();
            for (topic, partition) in ends.keys() {
                all.add_partition_offset(topic, *partition, Offset::Beginning)?;
            }
            all
        }
    };
    let mut assign = TopicPartitionList::new();
    for element in assignment.elements() {
        let key = (element.topic().to_owned(), element.partition());
        match element.offset() {
            Offset::Offset(o) if ends.get(&key).is_some_and(|end| o < *end) => {
                assign.add_partition_offset(
                    element.topic(),
                    element.partition(),
                    Offset::Offset(o),
                )?;
            }
            Offset::Beginning => {
                assign.add_partition_offset(
                    element.topic(),
                    element.partition(),
                    Offset::Beginning,
                )?;
            }
            // Nothing at or after the time on this partition.
            _ => {
                ends.remove(&key);
            }
        }
    }
    ends.retain(|(topic, partition), _| {
        assign
            .elements()
            .iter()
            .any(|e| e.topic() == topic && e.partition() == *partition)
    });
    let mut events = Vec::new();
    if ends.is_empty() {
        return Ok(events);
    }
    consumer.assign(&assign)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() {
        if std::time::Instant::now() >= deadline {
            bail!("reading the saga's topics took longer than 120 s");
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let Ok(message) = message else {
            continue;
        };
        let key = (message.topic().to_owned(), message.partition());
        if let Some(end) = ends.get(&key)
            && message.offset() + 1 >= *end
        {
            ends.remove(&key);
        }
        let Some(payload) = message.payload() else {
            continue;
        };
        let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(payload) else {
            continue;
        };
        let (Some(kind), Some(correlation), Some(occurred)) = (
            envelope["type"].as_str(),
            envelope["correlationId"].as_str(),
            envelope["occurredAt"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
        ) else {
            continue;
        };
        events.push(TopicEvent {
            correlation: correlation.to_owned(),
            kind: kind.to_owned(),
            occurred_ms: occurred.timestamp_micros() as f64 / 1000.0,
            kafka_ms: message.timestamp().to_millis().map(|t| t as f64),
        });
    }
    Ok(events)
}

/// The saga's critical path: the events each step waits for, in order.
const PATH: [&str; 6] = [
    "SeatReserved",
    "BookingConfirmed",
    "ReservationConfirmed",
    "PaymentCompleted",
    "SeatRegistered",
    "ReservationRegistered",
];

/// The hops between consecutive points of the path: `(name, kind)`.
const HOPS: [(&str, &str); 12] = [
    ("reserve: gateway → seat, SeatReserved committed", "http"),
    ("seat relay → Kafka (SeatReserved)", "relay"),
    ("Kafka → registration: booking auto-confirmed", "consume"),
    ("registration relay → Kafka (BookingConfirmed)", "relay"),
    ("Kafka → seat: CONFIRMED", "consume"),
    ("seat → payment (REST): PaymentCompleted", "http"),
    ("payment relay → Kafka (PaymentCompleted)", "relay"),
    ("Kafka → registration: registered", "consume"),
    ("registration relay → Kafka (SeatRegistered)", "relay"),
    ("Kafka → seat: REGISTERED", "consume"),
    ("seat relay → Kafka (ReservationRegistered)", "relay"),
    ("Kafka → seat-view → board stream (gateway SSE)", "consume"),
];

/// Cuts each timed reservation's latency into [`HOPS`].
fn hop_stats(
    timed: &[(&str, Instant, Instant)],
    events: &[TopicEvent],
    clock: &Clock,
) -> (Vec<HopStats>, u64) {
    // The first of each kind per reservation (a redelivered event counts once).
    let mut by_reservation: HashMap<&str, HashMap<&str, (f64, Option<f64>)>> = HashMap::new();
    for e in events {
        by_reservation
            .entry(e.correlation.as_str())
            .or_default()
            .entry(e.kind.as_str())
            .or_insert((e.occurred_ms, e.kafka_ms));
    }
    let mut durations: Vec<Vec<f64>> = vec![Vec::new(); HOPS.len()];
    let mut complete = 0;
    for (id, intended, seen) in timed {
        let Some(found) = by_reservation.get(id) else {
            continue;
        };
        let point = |kind: &str| found.get(kind).copied();
        let (
            Some(reserved),
            Some(booked),
            Some(confirmed),
            Some(paid),
            Some(registered),
            Some(done),
        ) = (
            point(PATH[0]),
            point(PATH[1]),
            point(PATH[2]),
            point(PATH[3]),
            point(PATH[4]),
            point(PATH[5]),
        )
        else {
            continue;
        };
        let (Some(k_reserved), Some(k_booked), Some(k_paid), Some(k_registered), Some(k_done)) =
            (reserved.1, booked.1, paid.1, registered.1, done.1)
        else {
            continue;
        };
        let points = [
            clock.ms(*intended),
            reserved.0,
            k_reserved,
            booked.0,
            k_booked,
            confirmed.0,
            paid.0,
            k_paid,
            registered.0,
            k_registered,
            done.0,
            k_done,
            clock.ms(*seen),
        ];
        for (i, pair) in points.windows(2).enumerate() {
            durations[i].push(pair[1] - pair[0]);
        }
        complete += 1;
    }
    if complete == 0 {
        return (Vec::new(), 0);
    }
    let total: f64 = durations.iter().map(|d| d.iter().sum::<f64>()).sum();
    let stats = durations
        .into_iter()
        .zip(HOPS)
        .map(|(mut d, (hop, kind))| {
            d.sort_by(f64::total_cmp);
            let q = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
            let sum: f64 = d.iter().sum();
            HopStats {
                hop: hop.to_owned(),
                kind: kind.to_owned(),
                mean_ms: sum / d.len() as f64,
                p50_ms: q(0.5),
                p90_ms: q(0.9),
                p99_ms: q(0.99),
                max_ms: d[d.len() - 1],
                share: if total > 0.0 { sum / total } else { 0.0 },
            }
        })
        .collect();
    (stats, complete)
}

impl SagaReport {
    pub fn print(&self) {
        self.report.print();
        let r = &self.reserve_ms;
        println!(
            "  accepted {}   not seen REGISTERED within {:.0} s: {} (never: {})   drained {:.1} s after the last send{}",
            self.accepted,
            self.timeout_secs,
            self.not_seen,
            self.never_seen,
            self.drain_secs,
            if self.never_seen > 0 {
                " (the limit)"
            } else {
                ""
            }
        );
        println!(
            "  reserve (→ 202) ms  p50 {:.2}  p99 {:.2}  max {:.2}",
            r.p50, r.p99, r.max
        );
        println!(
            "  board stream: {} changes, {} resyncs, {} reconnects",
            self.stream.events, self.stream.resyncs, self.stream.reconnects
        );
        if !self.hops.is_empty() {
            println!(
                "  hops over {} reservations (mean, p50, p99 ms, share of the total):",
                self.hops_reservations
            );
            for h in &self.hops {
                println!(
                    "    {:<50} {:>8.1} {:>8.1} {:>8.1}  {:>5.1}%",
                    h.hop,
                    h.mean_ms,
                    h.p50_ms,
                    h.p99_ms,
                    h.share * 100.0
                );
            }
        }
        if let Some(m) = &self.memory {
            println!(
                "  suite memory during the run: peak {:.1} MB RSS (sum), {:.1} MB PSS, {} samples",
                m.max_total_rss_kb as f64 / 1024.0,
                m.max_total_pss_kb as f64 / 1024.0,
                m.samples
            );
        }
    }
}
