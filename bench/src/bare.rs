//! The references: the transaction seat performs for a new reservation, without the services
//! around it. On SQLite it is driven here (seat's own settings, through the same
//! `SqliteDatabase` seat opens); on PostgreSQL by `pgbench`, whose per-transaction log is read
//! back into the same report as the suite's runs.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use chrono::{TimeDelta, TimeZone as _, Utc};
use hdrhistogram::Histogram;
use sqlx::{Connection as _, Executor as _, PgConnection, postgres::PgPoolOptions};
use studycafe_messaging::{
    OutboxMessage,
    sqlite::{SqliteDatabase, Tables},
};

use crate::{
    load::{Mode, Op, OpFuture, Outcome, Plan},
    report::Report,
};

/// As many seats as the default catalogue has enabled (38), so per-seat queuing is alike.
const SEATS: u64 = 38;
/// About the size of seat's `ReservationRequested` envelope.
const PAYLOAD_BYTES: usize = 600;
/// seat's per-seat insert lock class (services/seat/src/outbound/postgres.rs).
const SEAT_INSERT_LOCK_CLASS: i32 = 7_312_102;

async fn seed_seats<'e, E>(executor: E, placeholder: &str) -> sqlx::Result<()>
where
    E: sqlx::Executor<'e>,
{
    let values: Vec<String> = (0..SEATS)
        .map(|i| format!("('S{i}', 'S', 'open-desk', 2000, {placeholder}, {i})"))
        .collect();
    executor
        .execute(
            format!(
                "INSERT INTO seats (seat_id, zone, kind, hourly_price, enabled, position) VALUES {}",
                values.join(", ")
            )
            .as_str(),
        )
        .await?;
    Ok(())
}

/// Opens a fresh SQLite file exactly as seat opens its own (WAL, `synchronous = FULL`, one
/// writer connection, `BEGIN IMMEDIATE`) and returns the insert transaction as an operation.
pub async fn sqlite_op(file: &Path) -> anyhow::Result<Op> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    let migrator = sqlx::migrate!("../services/seat/migrations/sqlite");
    let url = format!("sqlite://{}", file.display());
    let db = Arc::new(SqliteDatabase::open(&url, &migrator, Tables::WithMessaging).await?);
    seed_seats(&db.writer, "1").await?;
    let first = Utc
        .with_ymd_and_hms(2031, 1, 1, 0, 0, 0)
        .single()
        .context("date")?;
    Ok(Arc::new(move |k| -> OpFuture {
        let db = db.clone();
        Box::pin(async move {
            let seat = format!("S{}", k % SEATS);
            let starts = first + TimeDelta::hours((k / SEATS) as i64);
            match sqlite_insert(&db, &seat, starts.timestamp()).await {
                Ok(()) => Outcome::Ok("ok".into()),
                Err(e) => Outcome::Err(match e.as_database_error() {
                    Some(db) => format!("db: {}", db.message()),
                    None => "error".into(),
                }),
            }
        })
    }))
}

/// The statements of seat's `SqliteStore::insert` (no idempotency key, as the driver sends
/// none): the overlap check, the insert (its trigger checks again), the outbox row.
async fn sqlite_insert(db: &SqliteDatabase, seat: &str, starts: i64) -> sqlx::Result<()> {
    let ends = starts + 3600;
    let now = Utc::now().timestamp();
    let id = uuid::Uuid::now_v7();
    let mut tx = db.write().await?;
    let taken: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM reservations WHERE seat_id = ? AND live = 1
         AND starts_at < ? AND ? < ends_at LIMIT 1",
    )
    .bind(seat)
    .bind(ends)
    .bind(starts)
    .fetch_optional(&mut *tx)
    .await?;
    if taken.is_some() {
        return Err(sqlx::Error::Protocol("seat taken".into()));
    }
    sqlx::query(
        "INSERT INTO reservations (reservation_id, seat_id, customer_id, starts_at, ends_at,
           hours, price, status, live, status_reason, hold_expires_at, payment_token,
           payment_attempts, next_payment_at, payment_id, registration_id, created_at,
           updated_at, version)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
    )
    .bind(id.to_string())
    .bind(seat)
    .bind("bench-customer")
    .bind(starts)
    .bind(ends)
    .bind(1_i64)
    .bind(2000_i64)
    .bind("REQUESTED")
    .bind(true)
    .bind(None::<String>)
    .bind(now + 600)
    .bind("tok_approve")
    .bind(0_i64)
    .bind(None::<i64>)
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let message = OutboxMessage {
        event_id: uuid::Uuid::now_v7(),
        topic: "studycafe.seat.v1".into(),
        key: id.to_string(),
        payload: vec![b'x'; PAYLOAD_BYTES],
        headers: [(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        )]
        .into(),
    };
    studycafe_messaging::sqlite::enqueue(&mut tx, &message).await?;
    tx.commit().await
}

#[derive(Debug, Clone)]
pub struct PgbenchSettings {
    /// The server, without a database: `postgres://user:password@host:port`.
    pub url: String,
    /// The scratch database, dropped and created afresh (never one of the suite's).
    pub database: String,
    pub pgbench: Option<PathBuf>,
    pub clients: usize,
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub label: String,
}

/// One pgbench transaction: seat's `PostgresStore::insert` statement for statement (seat
/// lock, insert under the exclusion constraint, outbox row), prepared like sqlx's. The slot
/// comes from a sequence in the lock statement so the round trips are the same as seat's.
/// No `:` inside literals: pgbench would read them as variables.
fn pgbench_script() -> String {
    format!(
        r#"BEGIN;
SELECT s AS slot, pg_advisory_xact_lock({SEAT_INSERT_LOCK_CLASS}, hashtext('S' || (s % {SEATS}))) AS locked FROM nextval('bench_slot') AS s \gset
INSERT INTO reservations (reservation_id, seat_id, customer_id, starts_at, ends_at, hours, price, status, status_reason, hold_expires_at, payment_token, payment_attempts, next_payment_at, payment_id, registration_id, created_at, updated_at, version) VALUES (gen_random_uuid(), 'S' || (CAST(:slot AS bigint) % {SEATS}), 'bench-customer', make_timestamptz(2031, 1, 1, 0, 0, 0, 'UTC') + (CAST(:slot AS bigint) / {SEATS}) * interval '1 hour', make_timestamptz(2031, 1, 1, 1, 0, 0, 'UTC') + (CAST(:slot AS bigint) / {SEATS}) * interval '1 hour', 1, 2000, 'REQUESTED', NULL, now() + interval '10 minutes', 'tok_approve', 0, NULL, NULL, NULL, now(), now(), 0);
INSERT INTO messaging_outbox (event_id, topic, message_key, payload, headers) VALUES (gen_random_uuid(), 'studycafe.seat.v1', gen_random_uuid()::text, convert_to(repeat('x', {PAYLOAD_BYTES}), 'UTF8'), jsonb_build_object('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'));
END;
"#
    )
}

/// pgbench from PATH, else from PostgreSQL's versioned bin directories (Debian does not put
/// it on PATH).
fn find_pgbench() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("pgbench");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .context("pgbench not found on PATH nor under /usr/lib/postgresql/*/bin (--pgbench)")
}

pub async fn pgbench(settings: &PgbenchSettings) -> anyhow::Result<Report> {
    let base = settings.url.trim_end_matches('/');
    let db = &settings.database;
    if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || db.is_empty() {
        bail!("--database {db:?}: letters, digits and _ only");
    }
    if ["seat", "registration", "identity", "postgres"].contains(&db.as_str()) {
        bail!("--database {db}: that is not a scratch database");
    }
    {
        let mut admin = PgConnection::connect(&format!("{base}/postgres")).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
            .await?;
        admin
            .execute(format!("CREATE DATABASE {db}").as_str())
            .await?;
    }
    let url = format!("{base}/{db}");
    {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        studycafe_messaging::postgres::install(&pool).await?;
        sqlx::migrate!("../services/seat/migrations/postgres")
            .run(&pool)
            .await?;
        seed_seats(&pool, "true").await?;
        pool.execute("CREATE SEQUENCE bench_slot").await?;
        pool.close().await;
    }
    let dir = std::env::temp_dir().join(format!("studycafe-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("reserve.sql");
    std::fs::write(&script, pgbench_script())?;
    let parsed = url::Url::parse(&url).context("--url")?;
    let program = match &settings.pgbench {
        Some(p) => p.clone(),
        None => find_pgbench()?,
    };
    let total = settings.duration + settings.warmup;
    let output = tokio::process::Command::new(&program)
        .args(["-n", "-M", "prepared", "-l"])
        .arg(format!("--log-prefix={}", dir.join("log").display()))
        .arg(format!("--client={}", settings.clients))
        .arg(format!(
            "--jobs={}",
            settings.threads.min(settings.clients).max(1)
        ))
        .arg(format!("--time={}", total.as_secs().max(1)))
        .arg(format!("--file={}", script.display()))
        .arg(format!(
            "--host={}",
            parsed.host_str().unwrap_or("127.0.0.1")
        ))
        .arg(format!("--port={}", parsed.port().unwrap_or(5432)))
        .arg(format!("--username={}", parsed.username()))
        .arg(db)
        .env("PGPASSWORD", parsed.password().unwrap_or(""))
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if let Some(tps) = stdout.lines().find(|l| l.starts_with("tps")) {
        eprintln!("pgbench says: {tps}");
    }
    let report = read_pgbench_logs(&dir, settings)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// pgbench's per-transaction log (`client tx latency_us script epoch_s epoch_us`), with the
/// warm-up cut off the same way as the driver's runs.
fn read_pgbench_logs(dir: &Path, settings: &PgbenchSettings) -> anyhow::Result<Report> {
    let mut entries = Vec::new();
    let mut failed = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("log"))
        {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 {
                continue;
            }
            let (Ok(epoch_s), Ok(epoch_us)) = (fields[4].parse::<u64>(), fields[5].parse::<u64>())
            else {
                continue;
            };
            let end = epoch_s * 1_000_000 + epoch_us;
            match fields[2].parse::<u64>() {
                Ok(latency) => entries.push((end.saturating_sub(latency), latency)),
                Err(_) => failed += 1,
            }
        }
    }
    let Some(start) = entries.iter().map(|(s, _)| *s).min() else {
        bail!("pgbench logged no transaction");
    };
    let measure_from = start + u64::try_from(settings.warmup.as_micros())?;
    let until = measure_from + u64::try_from(settings.duration.as_micros())?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut ok = 0u64;
    for (begun, latency) in entries {
        if begun >= measure_from && begun < until {
            histogram.saturating_record(latency.max(1));
            ok += 1;
        }
    }
    let mut outcomes = BTreeMap::new();
    outcomes.insert("ok".to_owned(), (true, ok));
    if failed > 0 {
        outcomes.insert("failed".to_owned(), (false, failed));
    }
    let plan = Plan {
        mode: Mode::Closed {
            clients: settings.clients,
        },
        duration: settings.duration,
        warmup: settings.warmup,
        label: settings.label.clone(),
    };
    Ok(Report::new(
        &plan,
        settings.duration.as_secs_f64(),
        &histogram,
        outcomes,
    ))
}
