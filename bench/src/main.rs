//! `studycafe-bench`: the load driver of the benchmarks (issue 11) and the bare-transaction
//! references they are compared with. `bench/run` drives it scenario by scenario; see the
//! README's "Benchmarks" section.

mod bare;
mod footprint;
mod generate;
mod http;
mod load;
mod replay;
mod report;
mod saga;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use crate::{
    load::{Mode, Plan},
    report::Report,
};

#[derive(Debug, Parser)]
#[command(
    name = "studycafe-bench",
    about = "Load driver for studycafe's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// POST /api/reservations through the gateway as freshly signed-up customers, each request
    /// on a seat and hour no other request of the run (nor, with --cursor, of earlier runs)
    /// asks for.
    Reserve {
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// Customers to sign up; requests go round-robin over them (the gateway rate-limits
        /// per customer: GATEWAY_RATE_LIMIT_PER_SEC).
        #[arg(long, default_value_t = 8)]
        customers: usize,
        /// Aim every request at the same seat and window (one 202, then 409s, counted as
        /// expected).
        #[arg(long)]
        conflicts: bool,
        /// A file remembering the first free hour after this run's windows, so the next run
        /// on the same data starts after them.
        #[arg(long)]
        cursor: Option<PathBuf>,
        /// seat's SEAT_BOOKING_HORIZON_DAYS: windows stay inside it.
        #[arg(long, default_value_t = 30)]
        horizon_days: i64,
        /// The card simulator's token (tok_approve, tok_decline, tok_slow_<ms>).
        #[arg(long, default_value = "tok_approve")]
        payment_token: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// GET one URL (e.g. /api/seats through the gateway, or straight from seat's port).
    Read {
        #[arg(long, default_value = "http://127.0.0.1:8080/api/seats")]
        url: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The reference for the embedded stack: seat's insert transaction on a fresh SQLite file
    /// opened as seat opens its own (WAL, synchronous=FULL, one writer).
    BareSqlite {
        /// The scratch file (deleted first, with its -wal and -shm).
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The reference for the production stack: pgbench running seat's insert transaction in a
    /// scratch database of the same PostgreSQL (dropped and created afresh).
    BarePostgres {
        /// The server, without a database.
        #[arg(
            long,
            env = "STUDYCAFE_POSTGRES_URL",
            default_value = "postgres://studycafe:studycafe@127.0.0.1:15432"
        )]
        url: String,
        #[arg(long, default_value = "studycafe_bench")]
        database: String,
        /// The pgbench executable [default: PATH, then /usr/lib/postgresql/*/bin].
        #[arg(long)]
        pgbench: Option<PathBuf>,
        /// pgbench's threads (--jobs), at most --clients.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, value_parser = seconds, default_value = "10")]
        duration: Duration,
        #[arg(long, value_parser = seconds, default_value = "2")]
        warmup: Duration,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Saga latency: reservations at a fixed rate (open loop) with the auto-confirm policy on,
    /// each timed from its intended send until the board stream (SSE through the gateway)
    /// shows it REGISTERED; then each reservation's time cut into the saga's hops from its
    /// events' timestamps on the topics.
    Saga {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// Reservations per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        #[arg(long, default_value_t = 8)]
        customers: usize,
        /// As for `reserve`: where the next run's windows may start.
        #[arg(long)]
        cursor: Option<PathBuf>,
        #[arg(long, default_value_t = 30)]
        horizon_days: i64,
        #[arg(long, default_value = "tok_approve")]
        payment_token: String,
        /// An admin's `user:password`, to switch the auto-confirm policy on for the run (and
        /// back off after it if it was off); without it the policy must already be on.
        #[arg(long, default_value = "admin:admin-studies")]
        admin: String,
        /// Leave the policy alone.
        #[arg(long)]
        no_admin: bool,
        /// Kafka bootstrap servers: read the events back for the hop breakdown.
        #[arg(long)]
        brokers: Option<String>,
        /// `service=http://…/metrics`, repeated: consumers' event ages over the run.
        #[arg(long)]
        metrics: Vec<String>,
        /// Sample the memory of this process and its descendants (the launcher) each second.
        #[arg(long)]
        rss_of: Option<u32>,
        #[arg(long, default_value_t = 1024)]
        max_in_flight: usize,
        #[arg(long, value_parser = seconds, default_value = "60")]
        duration: Duration,
        #[arg(long, value_parser = seconds, default_value = "5")]
        warmup: Duration,
        /// A reservation not REGISTERED on the board this long after its intended send time
        /// counts as not seen.
        #[arg(long, value_parser = seconds, default_value = "30")]
        timeout: Duration,
        /// How long after the last send to keep waiting for the rest, so the suite has
        /// drained before whatever runs next (the drain time is reported).
        #[arg(long, value_parser = seconds, default_value = "300")]
        drain_limit: Duration,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The resident memory of a process and all its descendants (the launcher `up` and the
    /// suite's services), per process and in total, from /proc.
    Footprint {
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value = "suite")]
        label: String,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Ready time: polls every endpoint from the launch (Unix nanoseconds, taken just before
    /// the launcher started) until all answer, and watches the launcher's log for its first
    /// "starting" line (the end of its build step) and "studycafe is up".
    Ready {
        #[arg(long)]
        launched_ns: i128,
        /// The launcher's output.
        #[arg(long)]
        log: PathBuf,
        /// `name=http://…/health/ready` or `name=tcp://host:port`, repeated.
        #[arg(long, required = true)]
        endpoint: Vec<String>,
        #[arg(long, value_parser = seconds, default_value = "300")]
        timeout: Duration,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Several runs' percentile curves in one SVG, from their --json reports.
    Plot {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "latency by percentile")]
        title: String,
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Writes a valid event history of the published language (seat catalogue, then
    /// reservation sagas across the seat, registration and payment topics) to the broker, for
    /// the seat-view replay, and a manifest of what the views must then show.
    GenerateEvents {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// How many events in all.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Seats of the catalogue [default: events / 1000, between 40 and 1000].
        #[arg(long)]
        seats: Option<usize>,
        /// Customers [default: one per 25 reservations].
        #[arg(long)]
        customers: Option<usize>,
        #[arg(long, default_value_t = 11)]
        seed: u64,
        /// The producer's compression.type (the services' relay uses none).
        #[arg(long, default_value = "none")]
        compression: String,
        /// Where the manifest goes (JSON).
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Runs seat-view with --rebuild over a generated history until it has handled every
    /// event, then checks its views against the manifest.
    Replay {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The seat-view executable.
        #[arg(long)]
        seat_view: PathBuf,
        /// SEAT_VIEW_DATABASE_URL: a fresh sqlite:// file, or redis://.
        #[arg(long)]
        database_url: String,
        /// SEAT_VIEW_REDIS_PREFIX (fresh per run when on Redis).
        #[arg(long, default_value = "bench-replay")]
        redis_prefix: String,
        /// seat-view's HTTP port.
        #[arg(long, default_value_t = 22094)]
        port: u16,
        /// generate-events' manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// seat-view's log and the run's JWKS go here.
        #[arg(long)]
        work_dir: PathBuf,
        /// Give up when no event was handled for this long.
        #[arg(long, value_parser = seconds, default_value = "120")]
        stall: Duration,
        /// Give up after this long in all (and report the rate so far).
        #[arg(long = "max-secs", value_parser = seconds, default_value = "3600")]
        max: Duration,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The replay's reference: a bare consumer reading every partition of the history's
    /// topics from the start to the high watermark.
    ReadTopics {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Stop after this long (and report the rate so far).
        #[arg(long = "max-secs", value_parser = seconds, default_value = "600")]
        max: Duration,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Deletes every topic under the prefix (after a replay on a shared broker).
    DropTopics {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

/// Where the history lives.
#[derive(Debug, Args)]
struct KafkaArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// KAFKA_TOPIC_PREFIX of the history's topics (and seat-view's group).
    #[arg(long)]
    prefix: String,
    /// Producer idempotence, as the stack's services have it (on for Apache Kafka).
    #[arg(long)]
    idempotence: bool,
}

impl KafkaArgs {
    fn config(&self) -> studycafe_messaging::KafkaConfig {
        let mut config = studycafe_messaging::KafkaConfig::new(&self.brokers, "studycafe-bench");
        config.idempotence = self.idempotence;
        config.topic_prefix.clone_from(&self.prefix);
        config
    }
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Closed loop: this many clients, each sending its next request when the previous one
    /// answered (maximum throughput).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Open loop instead: this many requests per second at fixed intended times, latency
    /// counted from the intended time (no coordinated omission).
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: at most this many requests in flight; later ones wait (and their wait
    /// counts in their latency).
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, value_parser = seconds, default_value = "10")]
    duration: Duration,
    #[arg(long, value_parser = seconds, default_value = "2")]
    warmup: Duration,
    /// Per-request timeout, seconds.
    #[arg(long, value_parser = seconds, default_value = "30")]
    timeout: Duration,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Names the run in the report and the plot.
    #[arg(long)]
    label: Option<String>,
    /// Writes the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Writes the percentile curve as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim_end_matches('s')
        .parse()
        .map_err(|e| format!("{text:?}: {e}"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{text:?}: between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl LoadArgs {
    fn plan(&self, default_label: &str) -> anyhow::Result<Plan> {
        let mode = match self.rate {
            Some(rate) if rate > 0.0 => Mode::Open {
                rate,
                max_in_flight: self.max_in_flight,
            },
            Some(_) => bail!("--rate must be positive"),
            None if self.clients == 0 => bail!("--clients must be at least 1"),
            None => Mode::Closed {
                clients: self.clients,
            },
        };
        let load = match mode {
            Mode::Closed { clients } => format!("{clients} clients"),
            Mode::Open { rate, .. } => format!("{rate:.0}/s open"),
        };
        Ok(Plan {
            mode,
            duration: self.duration,
            warmup: self.warmup,
            label: self
                .output
                .label
                .clone()
                .unwrap_or_else(|| format!("{default_label} {load}")),
        })
    }

    fn connections(&self) -> usize {
        match self.rate {
            Some(_) => self.max_in_flight,
            None => self.clients,
        }
    }
}

fn finish(report: &Report, output: &OutputArgs) -> anyhow::Result<()> {
    report.print();
    if let Some(path) = &output.json {
        report.write_json(path)?;
    }
    if let Some(path) = &output.svg {
        std::fs::write(
            path,
            report::svg(&report.label, std::slice::from_ref(report)),
        )?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Reserve {
            gateway,
            customers,
            conflicts,
            cursor,
            horizon_days,
            payment_token,
            load,
        } => {
            let plan = load.plan(if conflicts {
                "reserve (conflicts)"
            } else {
                "reserve"
            })?;
            let client = http::client(load.connections(), load.timeout)?;
            let reserve = Arc::new(
                http::Reserve::prepare(
                    &client,
                    http::ReserveSettings {
                        gateway,
                        customers: customers.max(1),
                        conflicts,
                        cursor,
                        horizon_days,
                        payment_token,
                    },
                )
                .await?,
            );
            let report = load::run(&plan, reserve.clone().op(client)).await;
            reserve.save_cursor()?;
            finish(&report, &load.output)
        }
        Command::Read { url, load } => {
            let plan = load.plan(&format!("GET {url}"))?;
            let client = http::client(load.connections(), load.timeout)?;
            let report = load::run(&plan, http::read_op(client, url)).await;
            finish(&report, &load.output)
        }
        Command::BareSqlite { file, load } => {
            let plan = load.plan("bare SQLite")?;
            let op = bare::sqlite_op(&file).await?;
            let report = load::run(&plan, op).await;
            finish(&report, &load.output)
        }
        Command::BarePostgres {
            url,
            database,
            pgbench,
            threads,
            clients,
            duration,
            warmup,
            output,
        } => {
            let settings = bare::PgbenchSettings {
                url,
                database,
                pgbench,
                clients: clients.max(1),
                threads,
                duration,
                warmup,
                label: output
                    .label
                    .clone()
                    .unwrap_or_else(|| format!("pgbench {clients} clients")),
            };
            let report = bare::pgbench(&settings).await?;
            finish(&report, &output)
        }
        Command::Saga {
            gateway,
            rate,
            customers,
            cursor,
            horizon_days,
            payment_token,
            admin,
            no_admin,
            brokers,
            metrics,
            rss_of,
            max_in_flight,
            duration,
            warmup,
            timeout,
            drain_limit,
            output,
        } => {
            if !rate.is_finite() || rate <= 0.0 {
                bail!("--rate must be positive");
            }
            let admin = if no_admin {
                None
            } else {
                let (user, password) = admin
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--admin is user:password"))?;
                Some((user.to_owned(), password.to_owned()))
            };
            let settings = saga::SagaSettings {
                reserve: http::ReserveSettings {
                    gateway,
                    customers: customers.max(1),
                    conflicts: false,
                    cursor,
                    horizon_days,
                    payment_token,
                },
                rate,
                max_in_flight,
                duration,
                warmup,
                timeout,
                drain_limit,
                admin,
                brokers,
                metrics: footprint::pairs(&metrics)?,
                rss_of,
                label: output
                    .label
                    .clone()
                    .unwrap_or_else(|| format!("saga {rate:.0}/s")),
            };
            let report = saga::run(&settings).await?;
            report.print();
            if let Some(path) = &output.json {
                footprint::write_json(path, &report)?;
            }
            if let Some(path) = &output.svg {
                std::fs::write(
                    path,
                    report::svg(&report.report.label, std::slice::from_ref(&report.report)),
                )?;
            }
            Ok(())
        }
        Command::Footprint { pid, label, json } => {
            let snapshot = footprint::snapshot(pid, &label)?;
            snapshot.print();
            if let Some(path) = &json {
                footprint::write_json(path, &snapshot)?;
            }
            Ok(())
        }
        Command::Ready {
            launched_ns,
            log,
            endpoint,
            timeout,
            json,
        } => {
            let endpoints = footprint::pairs(&endpoint)?;
            let readiness = footprint::watch_ready(launched_ns, &log, &endpoints, timeout).await?;
            readiness.print();
            if let Some(path) = &json {
                footprint::write_json(path, &readiness)?;
            }
            Ok(())
        }
        Command::Plot {
            out,
            title,
            reports,
        } => {
            let reports = reports
                .iter()
                .map(|p| Report::read_json(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            std::fs::write(&out, report::svg(&title, &reports))?;
            Ok(())
        }
        Command::GenerateEvents {
            kafka,
            events,
            seats,
            customers,
            seed,
            compression,
            manifest,
        } => {
            if events == 0 {
                bail!("--events must be at least 1");
            }
            let settings = generate::Settings {
                kafka: kafka.config(),
                events,
                seats,
                customers,
                seed,
                compression,
                manifest,
            };
            let manifest = generate::run(&settings).await?;
            println!(
                "{} events on prefix {:?}: {} reservations, {} seats, {} customers; produced in {:.1}s ({:.0}/s)",
                manifest.events,
                manifest.prefix,
                manifest.reservations,
                manifest.seats,
                manifest.customers,
                manifest.produce_secs,
                manifest.produce_rate
            );
            Ok(())
        }
        Command::Replay {
            kafka,
            seat_view,
            database_url,
            redis_prefix,
            port,
            manifest,
            work_dir,
            stall,
            max,
            label,
            json,
        } => {
            let store = if database_url.starts_with("redis://") {
                "Redis"
            } else {
                "SQLite"
            };
            let settings = replay::ReplaySettings {
                kafka: kafka.config(),
                seat_view,
                database_url,
                redis_prefix,
                port,
                manifest,
                work_dir,
                label: label.unwrap_or_else(|| format!("seat-view rebuild on {store}")),
                stall,
                max,
            };
            let report = replay::replay(&settings).await?;
            report.print();
            if let Some(path) = &json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
            match &report.gave_up {
                Some(why) => bail!("the replay did not finish: {why}"),
                None if !report.passed() => {
                    bail!("the rebuilt views differ from the history (see above)")
                }
                None => {}
            }
            Ok(())
        }
        Command::ReadTopics {
            kafka,
            max,
            label,
            json,
        } => {
            let label = label.unwrap_or_else(|| "bare consumer".to_owned());
            let report = replay::read_topics(&kafka.config(), &label, max).await?;
            report.print();
            if let Some(path) = &json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
            Ok(())
        }
        Command::DropTopics { kafka } => {
            let dropped = replay::drop_topics(&kafka.config()).await?;
            eprintln!("dropped {} topics: {}", dropped.len(), dropped.join(" "));
            Ok(())
        }
    }
}
