//! The control channel of a running `up`: `studycafe rollout SERVICE`, from another terminal,
//! asks it over a Unix socket in the data directory to replace a service's processes. `up`
//! owns the processes, so it does the work; the command only relays the request and prints
//! the progress `up` streams back (which `up` prints in its own terminal too).
//!
//! The protocol is lines of text: the request `rollout SERVICE`; then progress lines, each
//! starting with `> `; then one final line, `ok: …`, `error: …` or `usage: …` (a request
//! that makes no sense, such as an unknown service).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    data_dir::DataDir,
    exit::UsageError,
    services::{self, Handover, SERVICES, ServiceSpec},
};

/// A request to a replica's supervisor: replace your process.
#[derive(Debug)]
pub struct Replace {
    pub progress: Progress,
    /// The outcome: `Err(why)` when the successor was not ready and the old process serves on.
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Where a rollout step reports what it does.
#[derive(Debug, Clone)]
pub struct Progress(pub mpsc::UnboundedSender<String>);

impl Progress {
    pub fn say(&self, line: String) {
        let _ = self.0.send(line);
    }
}

/// One replica `up` runs, as the controller reaches it.
#[derive(Debug)]
pub struct Target {
    pub service: &'static ServiceSpec,
    pub name: String,
    pub replace: mpsc::Sender<Replace>,
}

/// Listens on the data directory's control socket and serves requests one at a time (a
/// second rollout waits for the first). `up` holds the data directory's lock, so a socket file
/// left there is a dead `up`'s.
pub fn serve(data: &DataDir, targets: Vec<Target>) -> anyhow::Result<JoinHandle<()>> {
    let path = data.control_socket();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            handle(stream, &targets).await;
        }
    }))
}

pub fn remove_socket(data: &DataDir) {
    let _ = std::fs::remove_file(data.control_socket());
}

async fn handle(stream: UnixStream, targets: &[Target]) {
    let (read, write) = stream.into_split();
    let mut request = String::new();
    if BufReader::new(read).read_line(&mut request).await.is_err() {
        return;
    }
    let mut reply = Reply {
        write,
        client_gone: false,
    };
    let outcome = match request.trim().split_once(' ') {
        Some(("rollout", service)) => rollout(service.trim(), targets, &mut reply).await,
        _ => Err(Failure::Usage(format!(
            "unknown request {:?}",
            request.trim()
        ))),
    };
    match outcome {
        Ok(done) => reply.send(format!("ok: {done}")).await,
        Err(Failure::Failed(why)) => reply.send(format!("error: {why}")).await,
        Err(Failure::Usage(why)) => reply.send(format!("usage: {why}")).await,
    }
}

/// Why a request did not succeed.
#[derive(Debug)]
enum Failure {
    /// It makes no sense (exit code 2 for the command).
    Usage(String),
    /// It was tried and failed.
    Failed(String),
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Self::Failed(why)
    }
}

/// The requesting client's end.
struct Reply {
    write: tokio::net::unix::OwnedWriteHalf,
    client_gone: bool,
}

impl Reply {
    /// Both terminals see the same lines; a client that went away does not stop the rollout.
    async fn send(&mut self, line: String) {
        println!("rollout: {}", line.trim_start_matches("> "));
        if !self.client_gone
            && self
                .write
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
        {
            self.client_gone = true;
        }
    }
}

/// Replaces `service`'s replicas one after the other; stops at the first that fails.
async fn rollout(service: &str, targets: &[Target], reply: &mut Reply) -> Result<String, Failure> {
    let replicas: Vec<&Target> = targets
        .iter()
        .filter(|t| t.service.name == service)
        .collect();
    let Some(first) = replicas.first() else {
        let names: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
        return Err(Failure::Usage(format!(
            "{service:?} is not a service this `up` runs (services: {})",
            names.join(", ")
        )));
    };
    if services::handover(first.service) == Handover::Never {
        return Err(Failure::Usage(format!(
            "{service} cannot be rolled out: the embedded broker is one node holding the log, \
             and a second one on the same log would corrupt it (restart `up` to restart it; on \
             Kubernetes Kafka's brokers are a StatefulSet restarted one at a time)"
        )));
    }
    let began = Instant::now();
    reply
        .send(format!(
            "> rolling out {service}: {} replica(s), one at a time",
            replicas.len()
        ))
        .await;
    for target in &replicas {
        let (progress, mut lines) = mpsc::unbounded_channel();
        let (done, outcome) = oneshot::channel();
        let request = Replace {
            progress: Progress(progress),
            done,
        };
        if target.replace.send(request).await.is_err() {
            return Err(format!("{}'s supervisor is gone", target.name).into());
        }
        // The supervisor drops its progress sender when it is done.
        while let Some(line) = lines.recv().await {
            reply.send(format!("> {line}")).await;
        }
        match outcome.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(format!("rollout of {service} stopped: {why}").into()),
            Err(_) => return Err(format!("{}'s supervisor stopped", target.name).into()),
        }
    }
    Ok(format!(
        "{service} rolled out ({} replica(s)) in {:.1}s",
        replicas.len(),
        began.elapsed().as_secs_f64()
    ))
}

/// `studycafe rollout SERVICE`: asks the `up` running with `data` to roll `service` out and
/// prints its progress; fails when the rollout failed.
pub async fn request_rollout(data: &DataDir, service: &str) -> anyhow::Result<()> {
    let path: PathBuf = data.control_socket();
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        UsageError(format!(
            "no `studycafe up` is running with the data directory {} ({}: {e})",
            data.root().display(),
            path.display()
        ))
    })?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("rollout {service}\n").as_bytes())
        .await
        .context("cannot talk to `up`")?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await.context("cannot hear from `up`")? {
        if let Some(progress) = line.strip_prefix("> ") {
            println!("{progress}");
        } else if let Some(done) = line.strip_prefix("ok: ") {
            println!("{done}");
            return Ok(());
        } else if let Some(why) = line.strip_prefix("error: ") {
            bail!("{why}");
        } else if let Some(why) = line.strip_prefix("usage: ") {
            return Err(UsageError(why.to_owned()).into());
        }
    }
    bail!("`up` stopped before the rollout finished")
}
