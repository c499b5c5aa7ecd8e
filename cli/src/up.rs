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

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::{
    process::Child,
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    control::{self, Progress, Replace, Target},
    data_dir::DataDir,
    keys, launch,
    services::{
        self, DEMO_ADMIN, Handover, Instance, LivenessProbe, Program, Readiness, SERVICES,
        ServiceSpec, Suite,
    },
    web_app,
};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a service failing liveness gets to stop on SIGTERM before SIGKILL: short, it is
/// not expected to cooperate (a stopped or deadlocked process never will).
const LIVENESS_KILL_GRACE: Duration = Duration::from_secs(2);

/// How long after a stop's first SIGTERM the second comes, which ends the drain: long enough
/// for the process to have taken the first (its signal handler installed at start-up).
const SECOND_SIGNAL_AFTER: Duration = Duration::from_millis(200);

/// Whether a stopping process drains (`SHUTDOWN_DRAIN_MS`) before it closes its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    Wait,
    Skip,
}
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A service that ran this long before dying is restarted quickly again: it was not a loop.
const STABLE_AFTER: Duration = Duration::from_secs(60);
const TAIL_LINES: usize = 20;
/// This crate's workspace, for building the services under `cargo run`.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

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
    let bin_dir = executables().await?;
    let programs = programs(&bin_dir).await?;
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
            program: programs[i_of(spec)].clone(),
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

/// The widest process name, for aligned columns.
fn name_width(suite: &Suite) -> usize {
    suite
        .services()
        .map(|spec| services::instance_name(spec.name, suite.replicas(spec.name) - 1).len())
        .max()
        .unwrap_or(0)
}

/// One process slot of the suite (a replica of a service), as this run of `up` starts it.
#[derive(Debug)]
struct Service {
    spec: &'static ServiceSpec,
    /// `seat`, `seat-2`, …: see [`services::instance_name`].
    name: String,
    program: PathBuf,
    /// The environment and port of each of the replica's two sides (see [`Instance`]); a
    /// rollout starts the successor on the side not running.
    envs: [Vec<(&'static str, String)>; 2],
    ports: [u16; 2],
    /// The side its current process runs on.
    side: AtomicUsize,
    data: DataDir,
    /// Its running processes (two during a rollout); for the second Ctrl-C, which kills
    /// everything without waiting for the supervising tasks.
    pids: Mutex<Vec<u32>>,
    /// When the executable last started was built, to tell a rollout whether it changed.
    executable_at: Mutex<Option<SystemTime>>,
    /// How many times its supervisor restarted it (exits and liveness kills).
    restarts: AtomicU32,
    http: reqwest::Client,
    liveness: LivenessProbe,
}

impl Service {
    fn name(&self) -> &str {
        &self.name
    }

    fn port(&self) -> u16 {
        self.ports[self.side.load(Ordering::SeqCst)]
    }

    fn spawn(&self, why: &str) -> anyhow::Result<launch::Spawned> {
        self.spawn_on(self.side.load(Ordering::SeqCst), why)
    }

    fn spawn_on(&self, side: usize, why: &str) -> anyhow::Result<launch::Spawned> {
        let built = executable_time(&self.program);
        let spawned = launch::spawn(
            self.name(),
            &self.program,
            &self.envs[side],
            &self.data,
            why,
        )?;
        *self.executable_at.lock().unwrap() = built;
        lock_pids(&self.pids).push(spawned.pid);
        Ok(spawned)
    }

    /// Bookkeeping once its process `pid` is gone.
    fn reaped(&self, pid: u32) {
        lock_pids(&self.pids).retain(|p| *p != pid);
        launch::remove_pid_file(&self.data, self.name(), pid);
    }

    fn kill(&self) {
        for &pid in lock_pids(&self.pids).iter() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    /// Whether it became ready within [`READY_TIMEOUT`].
    async fn ready(&self) -> bool {
        self.ready_on(self.port(), None).await
    }

    /// Whether the process on `port` became ready within [`READY_TIMEOUT`]. With `pid`, also
    /// that this very process listens there: a successor sharing its port (the gateway)
    /// would otherwise pass on its predecessor's answers.
    async fn ready_on(&self, port: u16, pid: Option<u32>) -> bool {
        let probe = async {
            loop {
                let own = pid.is_none_or(|pid| launch::listens(pid, port));
                if own && self.probe(port).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(READY_TIMEOUT, probe).await.is_ok()
    }

    async fn probe(&self, port: u16) -> bool {
        match self.spec.readiness {
            Readiness::TcpConnect => {
                let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
                matches!(
                    tokio::time::timeout(Duration::from_secs(1), connect).await,
                    Ok(Ok(_))
                )
            }
            Readiness::HttpOk(path) => self
                .http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .is_ok_and(|response| response.status() == reqwest::StatusCode::OK),
        }
    }

    /// One liveness probe: `Err(why)` when it failed. A service without an HTTP health
    /// endpoint (the broker) is probed by connecting, which a hung process still passes: the
    /// kernel completes the handshake.
    async fn live(&self) -> Result<(), String> {
        let timeout = self.liveness.timeout;
        let Readiness::HttpOk(_) = self.spec.readiness else {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", self.port()));
            return match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("cannot connect: {e}")),
                Err(_) => Err(format!("no connection within {}", human(timeout))),
            };
        };
        let probe = async {
            let response = self
                .http
                .get(format!("http://127.0.0.1:{}/health/live", self.port()))
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        format!("no answer within {}", human(timeout))
                    } else {
                        format!("no answer: {e}")
                    }
                })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            // The service names what is stalled in the problem's detail.
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let detail = body["detail"].as_str().unwrap_or_default();
            Err(format!("/health/live answered {status} {detail}")
                .trim_end()
                .to_owned())
        };
        // Reading the body is bounded too: a process may stop between headers and body.
        tokio::time::timeout(timeout, probe)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}", human(timeout))))
    }

    /// Kills a service that failed liveness: SIGTERM, SIGKILL after [`LIVENESS_KILL_GRACE`].
    async fn kill_unhealthy(&self, child: &mut Child) -> Stopped {
        self.terminate(child, LIVENESS_KILL_GRACE, Drain::Skip)
            .await
    }

    /// SIGTERM with no drain (the whole suite is stopping, or the process never took
    /// traffic), then SIGKILL after [`STOP_TIMEOUT`].
    async fn stop(&self, child: &mut Child) -> Stopped {
        self.terminate(child, STOP_TIMEOUT, Drain::Skip).await
    }

    /// A rolled-out process: SIGTERM, after which it drains for [`services::DRAIN`] (not
    /// ready, still serving) while the balancers take it out of rotation, then SIGKILL after
    /// [`STOP_TIMEOUT`].
    async fn retire(&self, child: &mut Child) -> Stopped {
        self.terminate(child, STOP_TIMEOUT, Drain::Wait).await
    }

    /// SIGTERM, then SIGKILL after `grace`.
    async fn terminate(&self, child: &mut Child, grace: Duration, drain: Drain) -> Stopped {
        let began = Instant::now();
        let pid = child.id();
        if let Some(pid) = pid {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            if drain == Drain::Skip
                && tokio::time::timeout(SECOND_SIGNAL_AFTER, child.wait())
                    .await
                    .is_err()
            {
                // A second signal ends the drain at once: nothing balances over a suite
                // that is stopping, and eight drains in a row would make a stop slow.
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        let (status, killed) = match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => (status, false),
            Err(_) => {
                let _ = child.start_kill();
                (child.wait().await, true)
            }
        };
        if let Some(pid) = pid {
            self.reaped(pid);
        }
        match status {
            Ok(status) => Stopped::Exited {
                status,
                after: began.elapsed(),
                killed,
            },
            Err(_) => Stopped::NotRunning,
        }
    }
}

impl Service {
    /// One step of `studycafe rollout`: starts a successor (from the executable as it is on
    /// disk now, so a new build is picked up) on the replica's other side, waits until it is
    /// ready, then stops `old` gracefully: its readiness turns false, the balancers' checks
    /// take it out of rotation, it drains and exits. If the successor does not become ready,
    /// it is stopped and `old` keeps serving. Returns the successor.
    async fn replace(
        &self,
        old: &mut Child,
        stop: &mut watch::Receiver<bool>,
        progress: &Progress,
    ) -> Result<Child, String> {
        let name = self.name();
        let from = self.side.load(Ordering::SeqCst);
        let to = match services::handover(self.spec) {
            Handover::OtherPort => 1 - from,
            Handover::SamePort => from,
            Handover::Never => return Err(format!("{name} cannot be rolled out")),
        };
        let old_pid = old.id().unwrap_or(0);
        let build = match (
            *self.executable_at.lock().unwrap(),
            executable_time(&self.program),
        ) {
            (Some(before), Some(now)) if now != before => "a new build",
            _ => "the same executable",
        };
        progress.say(format!(
            "{name}: starting its successor on port {} ({build}; the old one, pid {old_pid}, keeps serving on port {})",
            self.ports[to], self.ports[from]
        ));
        let began = Instant::now();
        let launch::Spawned {
            child: mut successor,
            pid,
            ..
        } = self
            .spawn_on(to, "rolling out")
            .map_err(|e| format!("{name}'s successor could not be started: {e:#}"))?;
        let own = (services::handover(self.spec) == Handover::SamePort).then_some(pid);
        let failed = tokio::select! {
            biased;
            () = stop_requested(stop) => Some("up is stopping".to_owned()),
            status = successor.wait() => {
                self.reaped(pid);
                self.restore_pid_file(old_pid);
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                return Err(format!(
                    "{name}'s successor exited ({status}) before it was ready (its log: {}); the old one keeps serving",
                    self.data.log_file(name).display()
                ));
            }
            ready = self.ready_on(self.ports[to], own) => (!ready).then(|| format!(
                "{name}'s successor was not ready within {} (its log: {})",
                human(READY_TIMEOUT),
                self.data.log_file(name).display()
            )),
        };
        if let Some(why) = failed {
            self.terminate(&mut successor, LIVENESS_KILL_GRACE, Drain::Skip)
                .await;
            self.restore_pid_file(old_pid);
            return Err(format!("{why}; the old one keeps serving"));
        }
        progress.say(format!(
            "{name}: successor ready in {} (pid {pid}); stopping the old one (pid {old_pid}): not ready, draining…",
            human(began.elapsed())
        ));
        self.side.store(to, Ordering::SeqCst);
        let stopped = self.retire(old).await;
        progress.say(format!("{name}: the old one {}", describe(Ok(stopped))));
        Ok(successor)
    }
}

impl Service {
    /// Names the old process in the PID file again after its successor failed.
    fn restore_pid_file(&self, pid: u32) {
        if let Err(e) = launch::record_pid(&self.data, self.name(), pid, &self.program) {
            eprintln!("{}: {e:#}", self.name());
        }
    }
}

/// When `program` was last written, if it can be told.
fn executable_time(program: &Path) -> Option<SystemTime> {
    std::fs::metadata(program).and_then(|m| m.modified()).ok()
}

/// The PID list, also after a panic elsewhere (it holds plain numbers).
fn lock_pids(pids: &Mutex<Vec<u32>>) -> std::sync::MutexGuard<'_, Vec<u32>> {
    pids.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How a service's first start went.
#[derive(Debug)]
enum Startup {
    Ready(Duration),
    Failed {
        reason: String,
        /// Where this start's part of its log begins, when it got as far as having one.
        log_start: Option<u64>,
    },
}

/// How a service ended when `up` stopped it.
#[derive(Debug)]
enum Stopped {
    NotRunning,
    Exited {
        status: ExitStatus,
        after: Duration,
        killed: bool,
    },
}

#[derive(Debug)]
struct Handle {
    service: Arc<Service>,
    stop: watch::Sender<bool>,
    /// Asks its supervisor to replace the process (`studycafe rollout`).
    replace: mpsc::Sender<Replace>,
    task: JoinHandle<Stopped>,
}

/// A service's whole life under `up`: start, report readiness, then keep it running until
/// told to stop.
async fn run_service(
    service: Arc<Service>,
    started: oneshot::Sender<Startup>,
    mut stop: watch::Receiver<bool>,
    replace: mpsc::Receiver<Replace>,
) -> Stopped {
    let began = Instant::now();
    let launch::Spawned {
        mut child,
        log_start,
        pid,
    } = match service.spawn("starting") {
        Ok(spawned) => spawned,
        Err(e) => {
            let reason = format!("could not be started: {e:#}");
            let _ = started.send(Startup::Failed {
                reason,
                log_start: None,
            });
            return Stopped::NotRunning;
        }
    };
    tokio::select! {
        biased;
        () = stop_requested(&mut stop) => return service.stop(&mut child).await,
        status = child.wait() => {
            service.reaped(pid);
            let reason = match status {
                Ok(status) => format!("exited ({status}) before it was ready"),
                Err(e) => format!("cannot be waited for: {e}"),
            };
            let _ = started.send(Startup::Failed { reason, log_start: Some(log_start) });
            return Stopped::NotRunning;
        }
        ready = service.ready() => if !ready {
            let stopped = service.stop(&mut child).await;
            let reason = format!("was not ready within {}", human(READY_TIMEOUT));
            let _ = started.send(Startup::Failed { reason, log_start: Some(log_start) });
            return stopped;
        }
    }
    let _ = started.send(Startup::Ready(began.elapsed()));
    supervise(&service, child, stop, replace).await
}

/// Restarts the service whenever it exits on its own or keeps failing its liveness probe,
/// until told to stop.
async fn supervise(
    service: &Service,
    mut child: Child,
    mut stop: watch::Receiver<bool>,
    mut replace: mpsc::Receiver<Replace>,
) -> Stopped {
    let name = service.name();
    let probe = service.liveness;
    let mut pid = child.id().unwrap_or(0);
    let mut up_since = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    // `ready` probes a restarted process until it is ready; liveness is probed only then, as
    // a kubelet's starts after the start-up probe.
    let mut probing = false;
    let mut liveness = tokio::time::interval_at(Instant::now() + probe.period, probe.period);
    liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        tokio::select! {
            biased;
            () = stop_requested(&mut stop) => return service.stop(&mut child).await,
            Some(request) = replace.recv() => {
                let outcome = service.replace(&mut child, &mut stop, &request.progress).await;
                let outcome = match outcome {
                    Ok(successor) => {
                        pid = successor.id().unwrap_or(0);
                        child = successor;
                        up_since = Instant::now();
                        backoff = FIRST_BACKOFF;
                        probing = false;
                        failures = 0;
                        liveness.reset();
                        Ok(())
                    }
                    Err(why) => Err(why),
                };
                let _ = request.done.send(outcome);
                continue;
            }
            status = child.wait() => {
                service.reaped(pid);
                let uptime = up_since.elapsed();
                if uptime >= STABLE_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                let restarts = service.restarts.fetch_add(1, Ordering::SeqCst) + 1;
                eprintln!(
                    "{name} exited on its own ({status}) after {}; restarting in {} (restart #{restarts}; log: {})",
                    human(uptime),
                    human(backoff),
                    service.data.log_file(name).display(),
                );
            }
            _ = liveness.tick(), if !probing => {
                match service.live().await {
                    Ok(()) => {
                        failures = 0;
                        continue;
                    }
                    Err(why) if failures + 1 < probe.failure_threshold => {
                        failures += 1;
                        eprintln!(
                            "{name} failed its liveness probe ({failures}/{}): {why}",
                            probe.failure_threshold
                        );
                        continue;
                    }
                    Err(why) => {
                        failures = 0;
                        let restarts = service.restarts.fetch_add(1, Ordering::SeqCst) + 1;
                        eprintln!(
                            "{name} failed its liveness probe {} times in a row (last: {why}); \
                             killing it (SIGKILL after {}) and restarting in {} (restart #{restarts}; log: {})",
                            probe.failure_threshold,
                            human(LIVENESS_KILL_GRACE),
                            human(backoff),
                            service.data.log_file(name).display(),
                        );
                        let stopped = service.kill_unhealthy(&mut child).await;
                        if let Stopped::Exited { killed: true, .. } = stopped {
                            eprintln!("{name} ignored SIGTERM; killed");
                        }
                        if up_since.elapsed() >= STABLE_AFTER {
                            backoff = FIRST_BACKOFF;
                        }
                    }
                }
            }
            ready = service.ready(), if probing => {
                probing = false;
                liveness.reset();
                if ready {
                    println!("{name} ready again in {}", human(up_since.elapsed()));
                } else {
                    eprintln!("{name} is still not ready {} after its restart", human(READY_TIMEOUT));
                }
                continue;
            }
        }
        child = loop {
            tokio::select! {
                biased;
                () = stop_requested(&mut stop) => return Stopped::NotRunning,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match service.spawn("restarting") {
                Ok(spawned) => {
                    pid = spawned.pid;
                    break spawned.child;
                }
                Err(e) => eprintln!(
                    "{name} could not be restarted: {e:#}; retrying in {}",
                    human(backoff)
                ),
            }
        };
        up_since = Instant::now();
        probing = true;
        println!(
            "{name} restarted (pid {}; {} restarts so far)",
            child.id().unwrap_or(0),
            service.restarts.load(Ordering::SeqCst)
        );
    }
}

async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    // A dropped sender means `up` is going away: stop as well.
    let _ = stop.wait_for(|stop| *stop).await;
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

/// ` (restarted N times)`, or nothing.
fn restarted(restarts: u32) -> String {
    match restarts {
        0 => String::new(),
        1 => " (restarted once)".to_owned(),
        n => format!(" (restarted {n} times)"),
    }
}

fn describe(result: Result<Stopped, tokio::task::JoinError>) -> String {
    match result {
        Ok(Stopped::NotRunning) => "was not running".to_owned(),
        Ok(Stopped::Exited {
            status,
            after,
            killed,
        }) => {
            let mut text = if killed {
                format!("killed after {}", human(after))
            } else {
                format!("stopped in {}", human(after))
            };
            if !killed && !status.success() {
                text.push_str(&format!(" ({status})"));
            }
            text
        }
        Err(e) => format!("its supervisor failed: {e}"),
    }
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

fn summary(suite: &Suite, data_dir_flag: bool, web: &web_app::WebApp) {
    let width = name_width(suite).max(7);
    println!();
    println!("studycafe is up:");
    println!(
        "  {:<width$}  {}",
        "web",
        web_app::summary(web, suite.port("gateway"))
    );
    for spec in suite.services() {
        for instance in suite.instances(spec) {
            println!(
                "  {:<width$}  {}",
                services::instance_name(spec.name, instance.replica),
                (spec.endpoint)(suite.port_of(spec.name, instance))
            );
        }
        if spec.name == "seat" {
            println!(
                "  {:<width$}  127.0.0.1:{} (gRPC studycafe.seat.v1, health, reflection; `studycafe seat-grpc`)",
                "", suite.seat_grpc_port
            );
        }
    }
    if let Some(engines) = &suite.engines {
        println!(
            "  {:<width$}  Kafka {}, PostgreSQL {}, MariaDB {}, Redis {}",
            "engines",
            engines.kafka,
            redact(&engines.postgres),
            redact(&engines.mysql),
            redact(&engines.redis)
        );
    }
    println!("  {:<width$}  {}", "data", suite.data.root().display());
    println!("  {:<width$}  {}", "logs", suite.data.logs().display());
    let data_arg = if data_dir_flag {
        format!(
            " --data-dir {}",
            shell_quote(&suite.data.root().display().to_string())
        )
    } else {
        String::new()
    };
    let gateway = suite.port("gateway");
    println!();
    println!(
        "accounts: customers alice / alice-studies and bob / bob-studies, admin {} / {}",
        DEMO_ADMIN.0, DEMO_ADMIN.1
    );
    println!(
        "get a token:  curl -s -d grant_type=password -d username=alice -d password=alice-studies \\\n    http://127.0.0.1:{gateway}/auth/token"
    );
    println!(
        "  the seat board:  curl -s http://127.0.0.1:{gateway}/api/board  (a dev token without a password: studycafe token --user alice{data_arg})"
    );
    println!(
        "replace a service's processes one at a time, without downtime:  studycafe rollout SERVICE{data_arg}"
    );
    println!("press Ctrl-C to stop");
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

/// A URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
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

/// The directory holding the service executables: next to `studycafe`. Under `cargo run` the
/// services are built first, with `studycafe`'s own profile, so one command is all a new
/// contributor needs.
async fn executables() -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe().context("cannot find the studycafe executable")?;
    let dir = own
        .parent()
        .context("the studycafe executable has no directory")?
        .to_owned();
    let workspace = Path::new(WORKSPACE);
    let release = !cfg!(debug_assertions);
    if let Some(cargo) = std::env::var_os("CARGO")
        && workspace.join("Cargo.toml").is_file()
    {
        println!("building the services (the first build takes several minutes)…");
        let mut command = tokio::process::Command::new(cargo);
        command.arg("build").current_dir(workspace);
        // `cargo run` describes the running package to it in these; a nested cargo that sees
        // them thinks the environment changed (ring's build script watches
        // CARGO_MANIFEST_DIR) and rebuilds half the tree, then the next plain `cargo build`
        // rebuilds it back.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || matches!(
                    &*name,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                )
            {
                command.env_remove(&*name);
            }
        }
        if release {
            command.arg("--release");
        }
        for (_, package) in cargo_programs() {
            command.args(["-p", package]);
        }
        let status = command.status().await.context("cannot run cargo")?;
        if !status.success() {
            bail!("building the services failed ({status})");
        }
    }
    for spec in SERVICES {
        let Program::Cargo {
            executable,
            package,
        } = spec.program
        else {
            continue;
        };
        if !dir.join(executable).is_file() {
            bail!(
                "{executable} (the {} service) is not in {}: build it with `cargo build{} -p {package}`",
                spec.name,
                dir.display(),
                if release { " --release" } else { "" },
            );
        }
    }
    Ok(dir)
}

/// `(executable, package)` of every service cargo builds.
fn cargo_programs() -> impl Iterator<Item = (&'static str, &'static str)> {
    SERVICES.iter().filter_map(|spec| match spec.program {
        Program::Cargo {
            executable,
            package,
        } => Some((executable, package)),
        Program::Python { .. } => None,
    })
}

fn i_of(spec: &ServiceSpec) -> usize {
    SERVICES
        .iter()
        .position(|s| s.name == spec.name)
        .unwrap_or_default()
}

/// What to execute for each service of [`SERVICES`], in its order: the cargo-built executables
/// in `bin_dir`; for a Python service, the console script of its virtual environment, which
/// its `scripts/venv` brings up to date with its lock file first (a no-op when it is).
async fn programs(bin_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut programs = Vec::with_capacity(SERVICES.len());
    for spec in SERVICES {
        programs.push(match spec.program {
            Program::Cargo { executable, .. } => bin_dir.join(executable),
            Program::Python { project, script } => {
                let folder = Path::new(services::REPOSITORY).join(project);
                let setup = folder.join("scripts").join("venv");
                if !setup.is_file() {
                    bail!(
                        "the {} service's folder {} is missing (it runs from the repository)",
                        spec.name,
                        folder.display()
                    );
                }
                let status = tokio::process::Command::new(&setup)
                    .arg("--quiet")
                    .status()
                    .await
                    .with_context(|| format!("cannot run {}", setup.display()))?;
                if !status.success() {
                    bail!(
                        "preparing the {} service's Python environment failed ({status}); run {} to see why",
                        spec.name,
                        setup.display()
                    );
                }
                folder.join(".venv").join("bin").join(script)
            }
        });
    }
    Ok(programs)
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

fn flush() {
    let _ = std::io::stdout().flush();
}

/// `0.4s`, `12.0s`, `3m05s`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// Quotes `text` for a POSIX shell when it needs quoting, for copy-pasteable hints.
fn shell_quote(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c));
    if plain && !text.is_empty() {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(420)), "0.4s");
        assert_eq!(human(Duration::from_secs(60)), "1m00s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
    }

    #[test]
    fn printed_urls_hide_passwords() {
        assert_eq!(
            redact("postgres://studycafe:secret@127.0.0.1:15432"),
            "postgres://studycafe:***@127.0.0.1:15432"
        );
        assert_eq!(redact("redis://127.0.0.1:16379"), "redis://127.0.0.1:16379");
    }

    #[test]
    fn hints_are_copy_pasteable() {
        assert_eq!(shell_quote("/tmp/sc-up"), "/tmp/sc-up");
        assert_eq!(shell_quote("/tmp/my data"), "'/tmp/my data'");
        assert_eq!(shell_quote("/tmp/it's"), r"'/tmp/it'\''s'");
    }
}
