//! The load engine: closed loop (N clients, each sends when its previous request answered) and
//! open loop (requests at fixed intended times; latency counted from the intended time, so a
//! stalled server shows up in the percentiles instead of slowing the driver down with it —
//! coordinated omission).

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::{sync::Semaphore, time::Instant};

use crate::report::Report;

/// How one operation ended: `Ok` with a label (an HTTP status, `ok`), or an error label.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok(String),
    Err(String),
}

pub type OpFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;
/// One operation; the argument is its sequence number (0, 1, 2, …) across all clients.
pub type Op = Arc<dyn Fn(u64) -> OpFuture + Send + Sync>;

/// How load is offered.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Closed { clients: usize },
    Open { rate: f64, max_in_flight: usize },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub duration: Duration,
    pub warmup: Duration,
    /// Printed on the progress line.
    pub label: String,
}

/// Shared between the load tasks and the progress printer.
#[derive(Debug)]
struct Recorder {
    /// Microseconds.
    histogram: Mutex<Histogram<u64>>,
    outcomes: Mutex<BTreeMap<String, (bool, u64)>>,
    measure_from: Instant,
    done: AtomicU64,
    errors: AtomicU64,
}

impl Recorder {
    fn record(&self, intended: Instant, outcome: Outcome) {
        let finished = Instant::now();
        self.done.fetch_add(1, Ordering::Relaxed);
        let (ok, label) = match outcome {
            Outcome::Ok(label) => (true, label),
            Outcome::Err(label) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                (false, label)
            }
        };
        // Warm-up requests (intended before the measured window) are not part of the figures.
        if intended < self.measure_from {
            return;
        }
        let micros = u64::try_from(finished.duration_since(intended).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        lock(&self.histogram).saturating_record(micros);
        lock(&self.outcomes).entry(label).or_insert((ok, 0)).1 += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking load task must not take the figures of every other one with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `op` under `plan` and measures it.
pub async fn run(plan: &Plan, op: Op) -> Report {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let deadline = measure_from + plan.duration;
    let recorder = Arc::new(Recorder {
        histogram: Mutex::new(
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
        ),
        outcomes: Mutex::new(BTreeMap::new()),
        measure_from,
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let progress = tokio::spawn(progress(
        recorder.clone(),
        start,
        measure_from,
        plan.label.clone(),
    ));
    let sequence = Arc::new(AtomicU64::new(0));
    match plan.mode {
        Mode::Closed { clients } => {
            let mut tasks = Vec::with_capacity(clients);
            for _ in 0..clients {
                let (op, recorder, sequence) = (op.clone(), recorder.clone(), sequence.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let intended = Instant::now();
                        if intended >= deadline {
                            break;
                        }
                        let outcome = op(sequence.fetch_add(1, Ordering::Relaxed)).await;
                        recorder.record(intended, outcome);
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        }
        Mode::Open {
            rate,
            max_in_flight,
        } => {
            let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0u64.. {
                let intended = start + interval.mul_f64(i as f64);
                if intended >= deadline {
                    break;
                }
                tokio::time::sleep_until(intended).await;
                // When the in-flight bound is reached the next sends wait here, but their
                // latency still counts from `intended`: the wait is the server's doing.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (op, recorder) = (op.clone(), recorder.clone());
                tasks.spawn(async move {
                    let outcome = op(i).await;
                    recorder.record(intended, outcome);
                    drop(permit);
                });
                // Reap finished tasks as we go so the set does not grow for the whole run.
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    progress.abort();
    let measured = plan.duration.as_secs_f64();
    let histogram = lock(&recorder.histogram).clone();
    let outcomes = lock(&recorder.outcomes).clone();
    Report::new(plan, measured, &histogram, outcomes)
}

async fn progress(recorder: Arc<Recorder>, start: Instant, measure_from: Instant, label: String) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last = 0;
    loop {
        let now = tick.tick().await;
        let done = recorder.done.load(Ordering::Relaxed);
        let errors = recorder.errors.load(Ordering::Relaxed);
        let phase = if now < measure_from { " (warm-up)" } else { "" };
        eprintln!(
            "[{label}] {:>6.1}s  {done:>8} done  {:>7}/s now  {errors} errors{phase}",
            now.duration_since(start).as_secs_f64(),
            done - last,
        );
        last = done;
    }
}
