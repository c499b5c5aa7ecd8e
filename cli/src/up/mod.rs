//! `studycafe up`: the whole suite on one machine, each service its own process.
//!
//! Start-up is sequential and loud (one line per service, the log's tail when one fails)
//! because a new user's first contact with the project is this command failing or not.
//! Afterwards each service has a supervising task that restarts it when it dies, with a
//! backoff, so the suite heals itself the way an orchestrator would heal it in production.
//! Like a kubelet it also probes each ready service's `/health/live` (see
//! [`services::LivenessProbe`]) and kills and restarts one that keeps failing: a process that
//! hangs is as dead as one that exited.
//! Shutdown goes in reverse start order, so no service outlives one it depends on.
//!
//! This module runs the suite as a whole (the data directory's lock, ports, start order,
//! shutdown); [`build`] finds or builds the executables, [`supervisor`] owns one process's
//! life, [`probe`] asks a process whether it is ready or live, [`present`] prints.

mod build;
mod present;
mod probe;
mod supervisor;

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read as _, Write as _},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
};

use crate::{
    control::{self, Target},
    data_dir::DataDir,
    keys, launch,
    services::{self, Instance, ServiceSpec, Suite},
    web_app,
};
use present::{describe, flush, human, name_width, restarted, summary};
use supervisor::{Handle, Service, Startup, run_service};

const TAIL_LINES: usize = 20;

pub async fn run(data_dir: Option<PathBuf>, replicas: Option<String>) -> anyhow::Result<()> {
    let data_dir_flag = data_dir.is_some();
    let data = DataDir::from_process(data_dir)?.create()?;
    let mut suite = Suite::new(data.clone(), &services::studycafe_env())?;
    if let Some(replicas) = replicas {
        suite.set_replicas("--replicas", &replicas)?;
    }
    let _lock = lock(&data)?;
    launch::stop_leftovers(&data).await?;
    check_ports(&suite)?;
    let bin_dir = build::executables().await?;
    let programs = build::programs(&bin_dir).await?;
    let web = web_app::prepare(&suite.web_root, &data).await;
    suite.seat_client_secret = keys::ensure_client_secret(&data)?;
    let mut signals = Signals::new()?;

    let http = reqwest::Client::builder()
        // An HTTP_PROXY in the user's environment must not swallow loopback probes.
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let width = name_width(&suite);
    let mut running: Vec<Handle> = Vec::new();
    let slots: Vec<(&'static ServiceSpec, Instance)> = suite
        .services()
        .flat_map(|spec| suite.instances(spec).map(move |i| (spec, i)))
        .collect();
    let count = slots.len();
    for (i, &(spec, instance)) in slots.iter().enumerate() {
        let name = services::instance_name(spec.name, instance.replica);
        print!("[{}/{}] {:<width$}  starting… ", i + 1, count, name);
        flush();
        let successor = Instance {
            side: 1,
            ..instance
        };
        let service = Arc::new(Service {
            spec,
            name: name.clone(),
            program: programs[build::i_of(spec)].clone(),
            shim: launch::own_executable(),
            envs: [suite.env(spec, instance), suite.env(spec, successor)],
            ports: [
                suite.port_of(spec.name, instance),
                suite.port_of(spec.name, successor),
            ],
            side: AtomicUsize::new(0),
            data: data.clone(),
            pids: Mutex::new(Vec::new()),
            executable_at: Mutex::new(None),
            restarts: AtomicU32::new(0),
            http: http.clone(),
            liveness: suite.liveness,
        });
        let (started_tx, started) = oneshot::channel();
        let (stop, stop_rx) = watch::channel(false);
        let (replace, replace_rx) = mpsc::channel(1);
        let task = tokio::spawn(run_service(
            service.clone(),
            started_tx,
            stop_rx,
            replace_rx,
        ));
        running.push(Handle {
            service,
            stop,
            replace,
            task,
        });
        tokio::select! {
            outcome = started => match outcome {
                Ok(Startup::Ready(after)) => println!("ready in {}", human(after)),
                Ok(Startup::Failed { reason, log_start }) => {
                    println!("failed");
                    return fail(running, &mut signals, &name, &reason, log_start, &data, width).await;
                }
                Err(_) => {
                    let reason = "its supervisor stopped unexpectedly";
                    println!("failed");
                    return fail(running, &mut signals, &name, reason, None, &data, width).await;
                }
            },
            signal = signals.recv() => {
                println!();
                println!("{signal}");
                shutdown(running, &mut signals, width).await;
                return Ok(());
            }
        }
    }

    summary(&suite, data_dir_flag, &web);
    let targets = running
        .iter()
        .map(|handle| Target {
            service: handle.service.spec,
            name: handle.service.name.clone(),
            replace: handle.replace.clone(),
        })
        .collect();
    let controller = match control::serve(&data, targets) {
        Ok(task) => Some(task),
        Err(e) => {
            eprintln!("studycafe rollout will not work: {e:#}");
            None
        }
    };
    let signal = signals.recv().await;
    println!();
    println!("{signal}");
    // No rollout may start replacing processes that are being stopped.
    if let Some(controller) = controller {
        controller.abort();
        let _ = controller.await;
    }
    control::remove_socket(&data);
    shutdown(running, &mut signals, width).await;
    Ok(())
}

/// Stops every service in reverse start order; a second signal kills them all at once.
async fn shutdown(mut handles: Vec<Handle>, signals: &mut Signals, width: usize) {
    println!("stopping (press Ctrl-C again to kill everything at once)…");
    while let Some(mut handle) = handles.pop() {
        print!("  {:<width$}  stopping… ", handle.service.name());
        flush();
        let _ = handle.stop.send(true);
        let restarts = handle.service.restarts.load(Ordering::SeqCst);
        tokio::select! {
            result = &mut handle.task => println!("{}{}", describe(result), restarted(restarts)),
            signal = signals.recv() => {
                println!("{signal} again: killing everything");
                handles.push(handle);
                // Flags first, so no supervisor restarts what is about to be killed.
                for handle in &handles {
                    let _ = handle.stop.send(true);
                }
                for handle in &handles {
                    handle.service.kill();
                }
                for handle in handles {
                    let _ = handle.task.await;
                }
                println!("killed");
                return;
            }
        }
    }
    println!("stopped");
}

/// Shows the log of a service that did not start, stops the ones that did, and fails the
/// command.
async fn fail(
    mut running: Vec<Handle>,
    signals: &mut Signals,
    name: &str,
    reason: &str,
    log_start: Option<u64>,
    data: &DataDir,
    width: usize,
) -> anyhow::Result<()> {
    // The failed one is last and its supervisor has ended: nothing of it to stop.
    if let Some(failed) = running.pop() {
        let _ = failed.task.await;
    }
    let log = data.log_file(name);
    if let Some(from) = log_start {
        let lines = launch::tail(&log, from, TAIL_LINES);
        if !lines.is_empty() {
            eprintln!("last lines of {}:", log.display());
            for line in lines {
                eprintln!("  | {line}");
            }
        }
    }
    shutdown(running, signals, width).await;
    bail!("{name} {reason} (its log: {})", log.display())
}

/// Holds the data directory's lock for the life of `up`: two `up`s on one data directory would
/// fight over its databases, and stopping leftovers is only safe once no live `up` owns them.
fn lock(data: &DataDir) -> anyhow::Result<File> {
    let path = data.lock_file();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            bail!(
                "another `studycafe up` (pid {}) is running with the data directory {}",
                owner.trim(),
                data.root().display()
            )
        }
        Err(TryLockError::Error(e)) => Err(e).context(format!("cannot lock {}", path.display())),
    }
}

/// Fails early and clearly when a port is taken, instead of a service dying on it later.
fn check_ports(suite: &Suite) -> anyhow::Result<()> {
    for (spec, instance) in suite
        .services()
        .flat_map(|spec| suite.instances(spec).map(move |i| (spec, i)))
    {
        let port = suite.port_of(spec.name, instance);
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                bail!(
                    "port {port} is in use — is another `studycafe up` running? \
                     (set {} to run {} elsewhere)",
                    spec.port_var,
                    spec.name
                );
            }
            bail!("cannot listen on 127.0.0.1:{port} for {}: {e}", spec.name);
        }
    }
    Ok(())
}

/// SIGINT and SIGTERM, caught from the moment services start.
#[derive(Debug)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "interrupted",
            _ = self.terminate.recv() => "terminated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_up_on_one_data_directory_is_refused_until_the_first_is_gone() {
        let dir = tempfile::TempDir::new().unwrap();
        let data = DataDir::resolve(Some(dir.path().to_owned()), None, dir.path())
            .create()
            .unwrap();
        let first = lock(&data).unwrap();
        let refused = lock(&data).unwrap_err().to_string();
        assert_eq!(
            refused,
            format!(
                "another `studycafe up` (pid {}) is running with the data directory {}",
                std::process::id(),
                data.root().display()
            )
        );
        drop(first);
        lock(&data).expect("the lock is free once its holder is gone");
    }
}
