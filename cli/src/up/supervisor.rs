//! One service process under `up`: started, probed until ready, restarted with a backoff when
//! it exits on its own or keeps failing its liveness probe (as a kubelet would), replaced by
//! `studycafe rollout`, and stopped. The tests below drive it over a real child process.

use std::{
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::{
    process::Child,
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

use super::present::{describe, human};
use crate::{
    control::{Progress, Replace},
    data_dir::DataDir,
    launch,
    services::{self, Handover, LivenessProbe, ServiceSpec},
};

pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(60);
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

/// One process slot of the suite (a replica of a service), as this run of `up` starts it.
#[derive(Debug)]
pub(super) struct Service {
    pub(super) spec: &'static ServiceSpec,
    /// `seat`, `seat-2`, …: see [`services::instance_name`].
    pub(super) name: String,
    pub(super) program: PathBuf,
    /// What starts `program`: [`launch::own_executable`] in `up`; the tests' stand-in skips
    /// the parent-death signal, which a test harness binary cannot arm.
    pub(super) shim: PathBuf,
    /// The environment and port of each of the replica's two sides (see [`Instance`]); a
    /// rollout starts the successor on the side not running.
    pub(super) envs: [Vec<(&'static str, String)>; 2],
    pub(super) ports: [u16; 2],
    /// The side its current process runs on.
    pub(super) side: AtomicUsize,
    pub(super) data: DataDir,
    /// Its running processes (two during a rollout); for the second Ctrl-C, which kills
    /// everything without waiting for the supervising tasks.
    pub(super) pids: Mutex<Vec<u32>>,
    /// When the executable last started was built, to tell a rollout whether it changed.
    pub(super) executable_at: Mutex<Option<SystemTime>>,
    /// How many times its supervisor restarted it (exits and liveness kills).
    pub(super) restarts: AtomicU32,
    pub(super) http: reqwest::Client,
    pub(super) liveness: LivenessProbe,
}

impl Service {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn port(&self) -> u16 {
        self.ports[self.side.load(Ordering::SeqCst)]
    }

    fn spawn(&self, why: &str) -> anyhow::Result<launch::Spawned> {
        self.spawn_on(self.side.load(Ordering::SeqCst), why)
    }

    fn spawn_on(&self, side: usize, why: &str) -> anyhow::Result<launch::Spawned> {
        let built = executable_time(&self.program);
        let spawned = launch::spawn(
            &self.shim,
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

    pub(super) fn kill(&self) {
        for &pid in lock_pids(&self.pids).iter() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
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
pub(super) enum Startup {
    Ready(Duration),
    Failed {
        reason: String,
        /// Where this start's part of its log begins, when it got as far as having one.
        log_start: Option<u64>,
    },
}

/// How a service ended when `up` stopped it.
#[derive(Debug)]
pub(super) enum Stopped {
    NotRunning,
    Exited {
        status: ExitStatus,
        after: Duration,
        killed: bool,
    },
}

#[derive(Debug)]
pub(super) struct Handle {
    pub(super) service: Arc<Service>,
    pub(super) stop: watch::Sender<bool>,
    /// Asks its supervisor to replace the process (`studycafe rollout`).
    pub(super) replace: mpsc::Sender<Replace>,
    pub(super) task: JoinHandle<Stopped>,
}

/// A service's whole life under `up`: start, report readiness, then keep it running until
/// told to stop.
pub(super) async fn run_service(
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

#[cfg(test)]
mod tests {
    //! A stand-in service: Python's `http.server` over a folder, so readiness
    //! (`/health/ready`) and liveness (`/health/live`) are files a test creates and deletes.
    //! It is started through a stand-in shim, since the test binary cannot be `studycafe`.

    use std::os::unix::fs::PermissionsExt as _;

    use tempfile::TempDir;

    use super::*;
    use crate::services::{Program, Readiness};

    static FAKE: ServiceSpec = ServiceSpec {
        name: "fake",
        // Unused: the test hands the supervisor its program.
        program: Program::Python {
            project: "none",
            script: "none",
        },
        port_var: "FAKE_PORT",
        default_port: 0,
        readiness: Readiness::HttpOk("/health/ready"),
        env: |_, _| Vec::new(),
        endpoint: |port| format!("http://127.0.0.1:{port}"),
    };

    /// How long any awaited change may take before the test fails: generous, as a busy
    /// machine starts Python slowly.
    const PATIENCE: Duration = Duration::from_secs(30);

    const SERVES: &str =
        r#"exec python3 -m http.server --bind 127.0.0.1 --directory "$FAKE_ROOT" "$FAKE_PORT""#;

    struct Fake {
        _dir: TempDir,
        root: PathBuf,
        service: Arc<Service>,
    }

    fn script(path: &Path, body: &str) {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap().port()
    }

    impl Fake {
        /// A service whose program is the shell `body`, probed for liveness by `liveness`.
        fn new(body: &str, liveness: LivenessProbe) -> Self {
            let dir = TempDir::new().unwrap();
            let root = dir.path().join("www");
            std::fs::create_dir_all(root.join("health")).unwrap();
            for file in ["ready", "live"] {
                std::fs::write(root.join("health").join(file), "ok").unwrap();
            }
            let shim = dir.path().join("shim");
            // Called as `<shim> __exec-child --parent-pid <pid> <program>`, like `studycafe`.
            script(&shim, r#"exec "$4""#);
            let program = dir.path().join("program");
            script(&program, body);
            let data = DataDir::resolve(Some(dir.path().join("data")), None, dir.path())
                .create()
                .unwrap();
            let ports = [free_port(), free_port()];
            let env = |port: u16| {
                vec![
                    ("FAKE_PORT", port.to_string()),
                    ("FAKE_ROOT", root.display().to_string()),
                ]
            };
            let service = Arc::new(Service {
                spec: &FAKE,
                name: "fake".to_owned(),
                program,
                shim,
                envs: [env(ports[0]), env(ports[1])],
                ports,
                side: AtomicUsize::new(0),
                data,
                pids: Mutex::new(Vec::new()),
                executable_at: Mutex::new(None),
                restarts: AtomicU32::new(0),
                http: reqwest::Client::builder().no_proxy().build().unwrap(),
                liveness,
            });
            Self {
                _dir: dir,
                root,
                service,
            }
        }

        fn serving() -> Self {
            Self::new(SERVES, quiet())
        }

        /// Runs it as `up` does; returns how its start went and the supervisor's handle.
        async fn start(&self) -> (Startup, Handle) {
            let (started_tx, started) = oneshot::channel();
            let (stop, stop_rx) = watch::channel(false);
            let (replace, replace_rx) = mpsc::channel(1);
            let task = tokio::spawn(run_service(
                self.service.clone(),
                started_tx,
                stop_rx,
                replace_rx,
            ));
            let startup = tokio::time::timeout(PATIENCE, started)
                .await
                .expect("a start outcome")
                .expect("the supervisor reports its start");
            let handle = Handle {
                service: self.service.clone(),
                stop,
                replace,
                task,
            };
            (startup, handle)
        }

        fn pids(&self) -> Vec<u32> {
            lock_pids(&self.service.pids).clone()
        }

        fn restarts(&self) -> u32 {
            self.service.restarts.load(Ordering::SeqCst)
        }

        async fn ready(&self, port: u16) -> bool {
            self.service.probe(port).await
        }

        fn log(&self) -> String {
            std::fs::read_to_string(self.service.data.log_file("fake")).unwrap_or_default()
        }

        /// Waits until `check` returns something, failing after [`PATIENCE`].
        async fn until<T, F: Future<Output = Option<T>>>(
            &self,
            what: &str,
            check: impl Fn() -> F,
        ) -> T {
            let deadline = Instant::now() + PATIENCE;
            loop {
                if let Some(value) = check().await {
                    return value;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {PATIENCE:?}; its log:\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// A liveness probe that never fires within a test.
    fn quiet() -> LivenessProbe {
        LivenessProbe {
            period: Duration::from_secs(3600),
            timeout: Duration::from_secs(1),
            failure_threshold: 3,
        }
    }

    fn alive(pid: u32) -> bool {
        kill(Pid::from_raw(pid as i32), None).is_ok()
    }

    async fn stop(handle: Handle) -> Stopped {
        let _ = handle.stop.send(true);
        tokio::time::timeout(PATIENCE, handle.task)
            .await
            .expect("stopped in time")
            .expect("the supervisor ends")
    }

    /// One `studycafe rollout` step of `handle`'s service: its outcome and what it said.
    async fn roll_out(handle: &Handle) -> (Result<(), String>, Vec<String>) {
        let (progress, mut said) = mpsc::unbounded_channel();
        let (done, outcome) = oneshot::channel();
        handle
            .replace
            .send(Replace {
                progress: Progress(progress),
                done,
            })
            .await
            .unwrap();
        let outcome = tokio::time::timeout(PATIENCE, outcome)
            .await
            .expect("the rollout ends in time")
            .expect("the supervisor answers");
        let mut lines = Vec::new();
        while let Ok(line) = said.try_recv() {
            lines.push(line);
        }
        (outcome, lines)
    }

    #[tokio::test]
    async fn a_service_that_dies_is_restarted_and_a_stop_ends_it_for_good() {
        let fake = Fake::serving();
        let (startup, handle) = fake.start().await;
        assert!(matches!(startup, Startup::Ready(_)), "{startup:?}");
        let [first] = fake.pids()[..] else {
            panic!("one process: {:?}", fake.pids())
        };

        kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
        let second = fake
            .until("a restarted process", || async {
                let pids = fake.pids();
                let pid = *pids.first()?;
                (pid != first && fake.ready(fake.service.port()).await).then_some(pid)
            })
            .await;
        assert_eq!(fake.restarts(), 1);
        assert!(!alive(first));
        assert!(fake.service.data.pid_file("fake").is_file());

        let stopped = stop(handle).await;
        assert!(
            matches!(stopped, Stopped::Exited { killed: false, .. }),
            "{stopped:?}"
        );
        assert!(!alive(second), "the process outlived its stop");
        assert!(fake.pids().is_empty());
        assert!(!fake.service.data.pid_file("fake").exists());
        // Nothing restarts it after the stop.
        tokio::time::sleep(FIRST_BACKOFF * 2).await;
        assert!(fake.pids().is_empty());
        assert_eq!(fake.restarts(), 1);
    }

    #[tokio::test]
    async fn a_service_failing_liveness_in_a_row_is_killed_and_restarted() {
        let fake = Fake::new(
            SERVES,
            LivenessProbe {
                period: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                failure_threshold: 2,
            },
        );
        let (startup, handle) = fake.start().await;
        assert!(matches!(startup, Startup::Ready(_)), "{startup:?}");
        let first = fake.pids()[0];
        // Two probes pass first: the process is left alone while it is live.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!((fake.pids(), fake.restarts()), (vec![first], 0));

        std::fs::remove_file(fake.root.join("health/live")).unwrap();
        fake.until("a liveness restart", || async {
            (fake.restarts() == 1).then_some(())
        })
        .await;
        // Live again from now on, so the restarted process is kept.
        std::fs::write(fake.root.join("health/live"), "ok").unwrap();
        let second = fake
            .until("the restarted process ready", || async {
                let pid = *fake.pids().first()?;
                (pid != first && fake.ready(fake.service.port()).await).then_some(pid)
            })
            .await;
        assert!(!alive(first), "the unhealthy process was not killed");
        assert!(fake.log().contains("restarting fake"), "{}", fake.log());

        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!((fake.pids(), fake.restarts()), (vec![second], 1));
        stop(handle).await;
    }

    #[tokio::test]
    async fn a_service_that_exits_before_it_is_ready_fails_its_start_with_its_log() {
        let fake = Fake::new("echo 'STUDYCAFE_FAKE_URL is not set' >&2; exit 3", quiet());
        let (startup, handle) = fake.start().await;
        let Startup::Failed {
            reason,
            log_start: Some(log_start),
        } = startup
        else {
            panic!("{startup:?}")
        };
        assert_eq!(reason, "exited (exit status: 3) before it was ready");
        let tail = launch::tail(&fake.service.data.log_file("fake"), log_start, 20);
        assert!(
            tail.iter().any(|l| l == "STUDYCAFE_FAKE_URL is not set"),
            "{tail:?}"
        );
        let stopped = tokio::time::timeout(PATIENCE, handle.task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(stopped, Stopped::NotRunning), "{stopped:?}");
        assert_eq!(fake.restarts(), 0, "a failed start is not retried");
    }

    #[tokio::test]
    async fn a_rollout_hands_over_to_a_ready_successor_on_the_other_port() {
        let fake = Fake::serving();
        let (startup, handle) = fake.start().await;
        assert!(matches!(startup, Startup::Ready(_)), "{startup:?}");
        let old = fake.pids()[0];

        let (outcome, lines) = roll_out(&handle).await;
        assert_eq!(outcome, Ok(()));

        let [new] = fake.pids()[..] else {
            panic!("one process after the rollout: {:?}", fake.pids())
        };
        assert_ne!(new, old);
        assert!(!alive(old), "the old process was not retired");
        assert_eq!(fake.service.port(), fake.service.ports[1]);
        assert!(fake.ready(fake.service.ports[1]).await);
        assert!(
            lines.iter().any(|l| l.starts_with("fake: successor ready")),
            "{lines:?}"
        );
        assert_eq!(fake.restarts(), 0);
        stop(handle).await;
    }

    #[tokio::test]
    async fn a_successor_that_dies_before_it_is_ready_leaves_the_old_process_serving() {
        let fake = Fake::serving();
        let (startup, handle) = fake.start().await;
        assert!(matches!(startup, Startup::Ready(_)), "{startup:?}");
        let old = fake.pids()[0];
        // A broken build: the successor starts from the executable as it is on disk now.
        script(&fake.service.program, "echo 'bad build' >&2; exit 1");

        let (outcome, _) = roll_out(&handle).await;
        let why = outcome.expect_err("the rollout fails");
        assert!(
            why.contains("successor exited") && why.ends_with("the old one keeps serving"),
            "{why}"
        );
        assert_eq!(fake.pids(), vec![old]);
        assert!(alive(old));
        assert_eq!(fake.service.port(), fake.service.ports[0]);
        // The PID file names the process still serving.
        let pid_file = std::fs::read_to_string(fake.service.data.pid_file("fake")).unwrap();
        assert!(pid_file.starts_with(&old.to_string()), "{pid_file}");
        stop(handle).await;
    }
}
