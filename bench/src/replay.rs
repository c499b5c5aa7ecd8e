//! The seat-view replay benchmark: how long a `--rebuild` of the views takes over a history
//! written by `generate-events`, and its reference, how fast a bare consumer reads the same
//! topics from the same broker.
//!
//! `replay` starts seat-view on its own (`--rebuild`, the topic prefix of the history, a view
//! store of its own: a fresh SQLite file or a fresh Redis prefix) and measures from the start of
//! the process until its consumer has handled every event of the history (seat-view's
//! `consumer_events_total`, read from its `/metrics` every 100 ms; the counter moves after each
//! event's view transaction committed). It then waits for the group's committed offsets to reach
//! the high watermarks, and checks what the views show against the generator's manifest: the
//! board at its sample instants and its sample customers' timelines, through seat-view's own
//! API (with tokens signed by a key of the run's own).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use chrono::SecondsFormat;
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
};
use serde::{Deserialize, Serialize};
use studycafe_messaging::KafkaConfig;
use studycafe_platform::signing::{AccessClaims, SigningKey, jwks};

use crate::generate::Manifest;

#[derive(Debug, Clone)]
pub struct ReplaySettings {
    pub kafka: KafkaConfig,
    pub seat_view: PathBuf,
    /// `SEAT_VIEW_DATABASE_URL`: a fresh `sqlite://` file or a `redis://` server.
    pub database_url: String,
    /// `SEAT_VIEW_REDIS_PREFIX`: fresh per run.
    pub redis_prefix: String,
    pub port: u16,
    pub manifest: PathBuf,
    /// The JWKS file and seat-view's log go here.
    pub work_dir: PathBuf,
    pub label: String,
    /// Give up when the count does not move for this long.
    pub stall: Duration,
    /// Give up after this long in all (the rate so far is reported).
    pub max: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayReport {
    pub label: String,
    /// `sqlite` or `redis`.
    pub store: String,
    pub events: u64,
    /// Events handled: all of them unless the run gave up (`complete` false).
    pub handled: u64,
    pub complete: bool,
    /// Why it gave up, if it did.
    pub gave_up: Option<String>,
    /// From starting the process until every event was handled (or it gave up).
    pub total_secs: f64,
    /// From starting the process until the first event was handled (start-up, wipe, join).
    pub first_event_secs: f64,
    /// Events per second over `total_secs`.
    pub events_per_sec: f64,
    /// Events per second from the first event handled to the last.
    pub consuming_events_per_sec: f64,
    pub dead_lettered: u64,
    pub skipped: u64,
    /// The group's committed offsets reached every partition's high watermark.
    pub offsets_committed: bool,
    pub boards_checked: usize,
    pub boards_matching: usize,
    pub timelines_checked: usize,
    pub timelines_matching: usize,
    /// A few differences, if any.
    pub mismatches: Vec<String>,
    /// seat-view's peak resident memory (VmHWM), MB.
    pub peak_rss_mb: f64,
    pub finished_at: String,
}

impl ReplayReport {
    pub fn passed(&self) -> bool {
        self.complete
            && self.dead_lettered == 0
            && self.offsets_committed
            && self.boards_matching == self.boards_checked
            && self.timelines_matching == self.timelines_checked
    }

    pub fn print(&self) {
        if let Some(why) = &self.gave_up {
            println!(
                "{}: GAVE UP after {:.1}s with {} of {} events handled ({:.0}/s): {why}",
                self.label, self.total_secs, self.handled, self.events, self.events_per_sec
            );
            return;
        }
        println!(
            "{}: {} events in {:.1}s from start ({:.0}/s); first event after {:.1}s, then {:.0}/s",
            self.label,
            self.events,
            self.total_secs,
            self.events_per_sec,
            self.first_event_secs,
            self.consuming_events_per_sec
        );
        println!(
            "  dead-lettered {}  skipped {}  offsets committed {}  boards {}/{}  timelines {}/{}  peak RSS {:.0} MB",
            self.dead_lettered,
            self.skipped,
            self.offsets_committed,
            self.boards_matching,
            self.boards_checked,
            self.timelines_matching,
            self.timelines_checked,
            self.peak_rss_mb
        );
        for m in &self.mismatches {
            println!("  MISMATCH {m}");
        }
    }
}

/// The counters seat-view exports, summed over their labels.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    handled: u64,
    dead_lettered: u64,
    skipped: u64,
    generation: Option<u32>,
}

fn parse_metrics(text: &str) -> Counts {
    let mut counts = Counts::default();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        if series.starts_with("consumer_events_total{") {
            counts.handled += value as u64;
            if series.contains("outcome=\"dead_lettered\"") {
                counts.dead_lettered += value as u64;
            }
            if series.contains("outcome=\"skipped\"") {
                counts.skipped += value as u64;
            }
        } else if series == "seat_view_generation" || series.starts_with("seat_view_generation{") {
            counts.generation = Some(value as u32);
        }
    }
    counts
}

struct Running {
    child: Child,
}

impl Running {
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

pub async fn replay(settings: &ReplaySettings) -> anyhow::Result<ReplayReport> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&settings.manifest)
            .with_context(|| format!("reading {}", settings.manifest.display()))?,
    )
    .context("parsing the manifest")?;
    if manifest.prefix != settings.kafka.topic_prefix {
        bail!(
            "the manifest is of prefix {:?}, not {:?}",
            manifest.prefix,
            settings.kafka.topic_prefix
        );
    }
    std::fs::create_dir_all(&settings.work_dir)?;
    let store = if settings.database_url.starts_with("redis://") {
        "redis"
    } else {
        "sqlite"
    };
    // A key and a JWKS file per run: replays sharing a work directory must not check each
    // other's tokens against the wrong key.
    let key = SigningKey::generate(format!("bench-replay-{}", uuid::Uuid::new_v4()));
    let jwks_file = settings
        .work_dir
        .join(format!("jwks-{store}-{}.json", settings.port));
    std::fs::write(&jwks_file, jwks([&key]).to_string())?;
    let log = settings.work_dir.join(format!("seat-view-{store}.log"));
    let log_file = std::fs::File::create(&log)?;

    let base = format!("http://127.0.0.1:{}", settings.port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    let child = Command::new(&settings.seat_view)
        .arg("--rebuild")
        .env(
            "SEAT_VIEW_HTTP_ADDR",
            format!("127.0.0.1:{}", settings.port),
        )
        .env("SEAT_VIEW_DATABASE_URL", &settings.database_url)
        .env("SEAT_VIEW_REDIS_PREFIX", &settings.redis_prefix)
        .env("KAFKA_BROKERS", &settings.kafka.brokers)
        .env("KAFKA_TOPIC_PREFIX", &settings.kafka.topic_prefix)
        .env("KAFKA_IDEMPOTENCE", settings.kafka.idempotence.to_string())
        .env_remove("KAFKA_GROUP_INSTANCE_ID")
        .env_remove("AUTH_JWKS_URL")
        .env("AUTH_JWKS_FILE", &jwks_file)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", settings.seat_view.display()))?;
    let mut running = Running { child };

    let mut first_event: Option<Duration> = None;
    let mut counts = Counts::default();
    let mut last_move = Instant::now();
    let mut last_print = Instant::now();
    let mut printed = 0;
    let mut gave_up = None;
    let done = loop {
        if let Some(status) = running.child.try_wait()? {
            bail!(
                "seat-view exited ({status}) before it had handled every event:\n{}",
                log_tail(&log)
            );
        }
        if let Ok(response) = http.get(format!("{base}/metrics")).send().await
            && let Ok(text) = response.text().await
        {
            let now = parse_metrics(&text);
            if now.handled > counts.handled {
                last_move = Instant::now();
                if first_event.is_none() {
                    first_event = Some(started.elapsed());
                }
            }
            counts = now;
        }
        if counts.handled >= manifest.events {
            break started.elapsed();
        }
        if last_move.elapsed() > settings.stall || started.elapsed() > settings.max {
            let why = if last_move.elapsed() > settings.stall {
                format!("no event handled for {:?}", settings.stall)
            } else {
                format!("not done within {:?}", settings.max)
            };
            eprintln!(
                "[{}] giving up: {why}; seat-view's log ends:\n{}",
                settings.label,
                log_tail(&log)
            );
            gave_up = Some(why);
            break started.elapsed();
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "[{}] {:>6.1}s  {:>9}/{} events  {:>7}/s now",
                settings.label,
                started.elapsed().as_secs_f64(),
                counts.handled,
                manifest.events,
                counts.handled - printed
            );
            printed = counts.handled;
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first = first_event.unwrap_or(done);
    let total_secs = done.as_secs_f64();
    if let Some(why) = gave_up {
        let peak_rss_mb = running.peak_rss_mb();
        running.stop();
        return Ok(ReplayReport {
            label: settings.label.clone(),
            store: store.to_owned(),
            events: manifest.events,
            handled: counts.handled,
            complete: false,
            gave_up: Some(why),
            total_secs,
            first_event_secs: first.as_secs_f64(),
            events_per_sec: counts.handled as f64 / total_secs,
            consuming_events_per_sec: 0.0,
            dead_lettered: counts.dead_lettered,
            skipped: counts.skipped,
            offsets_committed: false,
            boards_checked: 0,
            boards_matching: 0,
            timelines_checked: 0,
            timelines_matching: 0,
            mismatches: Vec::new(),
            peak_rss_mb,
            finished_at: chrono::Utc::now().to_rfc3339(),
        });
    }
    eprintln!(
        "[{}] all {} events handled after {total_secs:.1}s; checking offsets and views",
        settings.label, manifest.events
    );

    let group = format!(
        "{}seat-view.g{}",
        settings.kafka.topic_prefix,
        counts.generation.unwrap_or(2)
    );
    let offsets_committed = committed_everything(&settings.kafka, &group).await?;

    let mut mismatches = Vec::new();
    let mut boards_matching = 0;
    for sample in &manifest.boards {
        let at = sample.at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let board: serde_json::Value = http
            .get(format!("{base}/api/board"))
            .query(&[("at", &at)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let shown: BTreeMap<String, String> = board["seats"]
            .as_array()
            .map(|seats| {
                seats
                    .iter()
                    .map(|s| {
                        (
                            s["seatId"].as_str().unwrap_or_default().to_owned(),
                            s["status"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        match first_difference(&sample.seats, &shown) {
            None => boards_matching += 1,
            Some(d) => mismatches.push(format!("board at {at}: {d}")),
        }
    }
    let mut timelines_matching = 0;
    for sample in &manifest.timelines {
        let token = key.sign(&AccessClaims::new(
            "studycafe-identity",
            "studycafe",
            &sample.customer,
            &["customer"],
            chrono::Duration::minutes(10),
        ))?;
        let timeline: serde_json::Value = http
            .get(format!("{base}/api/my/reservations"))
            .query(&[("limit", "200")])
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let shown: BTreeMap<String, String> = timeline["reservations"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        (
                            r["reservationId"].as_str().unwrap_or_default().to_owned(),
                            r["status"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        match first_difference(&sample.reservations, &shown) {
            None => timelines_matching += 1,
            Some(d) => mismatches.push(format!("timeline of {}: {d}", sample.customer)),
        }
    }
    let peak_rss_mb = running.peak_rss_mb();
    running.stop();

    let consuming = (done - first).as_secs_f64();
    Ok(ReplayReport {
        label: settings.label.clone(),
        store: store.to_owned(),
        events: manifest.events,
        handled: counts.handled,
        complete: true,
        gave_up: None,
        total_secs,
        first_event_secs: first.as_secs_f64(),
        events_per_sec: manifest.events as f64 / total_secs,
        consuming_events_per_sec: if consuming > 0.0 {
            manifest.events as f64 / consuming
        } else {
            0.0
        },
        dead_lettered: counts.dead_lettered,
        skipped: counts.skipped,
        offsets_committed,
        boards_checked: manifest.boards.len(),
        boards_matching,
        timelines_checked: manifest.timelines.len(),
        timelines_matching,
        mismatches: mismatches.into_iter().take(5).collect(),
        peak_rss_mb,
        finished_at: chrono::Utc::now().to_rfc3339(),
    })
}

/// The first key whose value differs (or is missing on either side), in words.
fn first_difference(
    expected: &BTreeMap<String, String>,
    shown: &BTreeMap<String, String>,
) -> Option<String> {
    let differing = expected
        .iter()
        .filter(|(k, v)| shown.get(*k) != Some(*v))
        .count()
        + shown.keys().filter(|k| !expected.contains_key(*k)).count();
    if differing == 0 {
        return None;
    }
    let example = expected
        .iter()
        .find(|(k, v)| shown.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k} expected {v}, shown {:?}", shown.get(k)))
        .or_else(|| {
            shown
                .keys()
                .find(|k| !expected.contains_key(*k))
                .map(|k| format!("{k} shown but not expected"))
        })
        .unwrap_or_default();
    Some(format!("{differing} differ (e.g. {example})"))
}

fn plain_consumer(kafka: &KafkaConfig, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", "studycafe-bench")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("log_level", "3")
        .create()?)
}

/// Every partition of the history's topics with its low and high watermarks.
fn partitions(
    consumer: &BaseConsumer,
    kafka: &KafkaConfig,
) -> anyhow::Result<Vec<(String, i32, i64, i64)>> {
    let timeout = Duration::from_secs(10);
    let mut out = Vec::new();
    for logical in shared_events::topics::ALL {
        let topic = kafka.topic(logical);
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let Some(t) = metadata.topics().first() else {
            bail!("no metadata for {topic}");
        };
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(&topic, p.id(), timeout)?;
            out.push((topic.clone(), p.id(), low, high));
        }
    }
    Ok(out)
}

/// Waits (up to 15 s: seat-view commits its stored offsets every second) until `group`'s
/// committed offsets reach the high watermarks.
async fn committed_everything(kafka: &KafkaConfig, group: &str) -> anyhow::Result<bool> {
    let kafka = kafka.clone();
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let consumer = plain_consumer(&kafka, &group)?;
        let parts = partitions(&consumer, &kafka)?;
        let mut list = TopicPartitionList::new();
        for (topic, p, _, _) in &parts {
            list.add_partition(topic, *p);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let committed = consumer.committed_offsets(list.clone(), Duration::from_secs(10))?;
            let behind = parts.iter().any(|(topic, p, _, high)| {
                let at = committed
                    .find_partition(topic, *p)
                    .and_then(|e| e.offset().to_raw())
                    .unwrap_or(-1);
                *high > 0 && at < *high
            });
            if !behind {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .await?
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadReport {
    pub label: String,
    /// Whether it read to the high watermarks (else it stopped at its time limit).
    pub complete: bool,
    pub events: u64,
    pub bytes: u64,
    pub secs: f64,
    pub events_per_sec: f64,
    pub mb_per_sec: f64,
    pub finished_at: String,
}

impl ReadReport {
    pub fn print(&self) {
        println!(
            "{}: {} events ({:.0} MB) in {:.1}s{}: {:.0} events/s, {:.1} MB/s",
            self.label,
            self.events,
            self.bytes as f64 / 1e6,
            self.secs,
            if self.complete {
                ""
            } else {
                " (stopped at the time limit)"
            },
            self.events_per_sec,
            self.mb_per_sec
        );
    }
}

/// The reference: a bare consumer (librdkafka's defaults, no group work, no decoding, no
/// store) reading every partition of the history's topics from the start to the high watermark.
pub async fn read_topics(
    kafka: &KafkaConfig,
    label: &str,
    max: Duration,
) -> anyhow::Result<ReadReport> {
    let kafka = kafka.clone();
    let label = label.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<ReadReport> {
        let group = format!(
            "{}studycafe-bench.read.{}",
            kafka.topic_prefix,
            uuid::Uuid::new_v4()
        );
        let consumer = plain_consumer(&kafka, &group)?;
        let parts = partitions(&consumer, &kafka)?;
        let started = Instant::now();
        let mut list = TopicPartitionList::new();
        let mut remaining: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for (topic, p, low, high) in &parts {
            list.add_partition_offset(topic, *p, Offset::Beginning)?;
            if high > low {
                remaining.insert((topic.clone(), *p), *high);
            }
        }
        consumer.assign(&list)?;
        let (mut events, mut bytes) = (0u64, 0u64);
        let mut last_print = Instant::now();
        let mut printed = 0;
        while !remaining.is_empty() {
            if let Some(message) = consumer.poll(Duration::from_millis(500)) {
                let message = message?;
                events += 1;
                bytes += message.payload_len() as u64;
                let key = (message.topic().to_owned(), message.partition());
                if let Some(high) = remaining.get(&key)
                    && message.offset() + 1 >= *high
                {
                    remaining.remove(&key);
                }
            }
            if last_print.elapsed() >= Duration::from_secs(1) {
                eprintln!(
                    "[{label}] {:>6.1}s  {events:>9} events read  {:>7}/s now",
                    started.elapsed().as_secs_f64(),
                    events - printed
                );
                printed = events;
                last_print = Instant::now();
            }
            if started.elapsed() > max {
                eprintln!("[{label}] stopping after {max:?}: the rate so far is the figure");
                break;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(ReadReport {
            label,
            complete: remaining.is_empty(),
            events,
            bytes,
            secs,
            events_per_sec: events as f64 / secs,
            mb_per_sec: bytes as f64 / 1e6 / secs,
            finished_at: chrono::Utc::now().to_rfc3339(),
        })
    })
    .await?
}

/// Deletes every topic under the history's prefix (its three topics and seat-view's
/// dead-letter topics): a replay's history takes hundreds of MB of a shared broker.
pub async fn drop_topics(kafka: &KafkaConfig) -> anyhow::Result<Vec<String>> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    if kafka.topic_prefix.is_empty() {
        bail!("refusing to drop topics without a prefix");
    }
    let consumer = plain_consumer(kafka, "studycafe-bench.drop")?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|name| name.starts_with(&kafka.topic_prefix))
        .collect();
    if topics.is_empty() {
        return Ok(topics);
    }
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = kafka.admin().create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    for result in admin
        .delete_topics(
            &names,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        if let Err((topic, code)) = result {
            bail!("deleting {topic}: {code}");
        }
    }
    Ok(topics)
}
