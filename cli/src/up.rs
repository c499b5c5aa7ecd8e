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
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::{
    process::Child,
    signal::unix::{SignalKind, signal},
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    data_dir::DataDir,
    keys, launch,
    services::{self, DEMO_ADMIN, LivenessProbe, Program, Readiness, SERVICES, ServiceSpec, Suite},
    web_app,
};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a service failing liveness gets to stop on SIGTERM before SIGKILL: short, it is
/// not expected to cooperate (a stopped or deadlocked process never will).
const LIVENESS_KILL_GRACE: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A service that ran this long before dying is restarted quickly again: it was not a loop.
const STABLE_AFTER: Duration = Duration::from_secs(60);
const TAIL_LINES: usize = 20;
/// This crate's workspace, for building the services under `cargo run`.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

pub async fn run(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let data_dir_flag = data_dir.is_some();
    let data = DataDir::from_process(data_dir)?.create()?;
    let mut suite = Suite::new(data.clone(), &services::studycafe_env())?;
    let _lock = lock(&data)?;
    launch::stop_leftovers(&data, SERVICES.iter().map(|s| s.name)).await?;
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
    let width = SERVICES.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut running: Vec<Handle> = Vec::new();
    let count = suite.services().count();
    for (i, spec) in suite.services().enumerate() {
        print!("[{}/{}] {:<width$}  starting… ", i + 1, count, spec.name);
        flush();
        let service = Arc::new(Service {
            spec,
            program: programs[i_of(spec)].clone(),
            env: suite.env(spec),
            port: suite.port(spec.name),
            data: data.clone(),
            pid: AtomicU32::new(0),
            restarts: AtomicU32::new(0),
            http: http.clone(),
            liveness: suite.liveness,
        });
        let (started_tx, started) = oneshot::channel();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_service(service.clone(), started_tx, stop_rx));
        running.push(Handle {
            service,
            stop,
            task,
        });
        tokio::select! {
            outcome = started => match outcome {
                Ok(Startup::Ready(after)) => println!("ready in {}", human(after)),
                Ok(Startup::Failed { reason, log_start }) => {
                    println!("failed");
                    return fail(running, &mut signals, spec, &reason, log_start, &data).await;
                }
                Err(_) => {
                    let reason = "its supervisor stopped unexpectedly";
                    println!("failed");
                    return fail(running, &mut signals, spec, reason, None, &data).await;
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
    let signal = signals.recv().await;
    println!();
    println!("{signal}");
    shutdown(running, &mut signals, width).await;
    Ok(())
}

/// One process of the suite, as this run of `up` starts it.
#[derive(Debug)]
struct Service {
    spec: &'static ServiceSpec,
    program: PathBuf,
    env: Vec<(&'static str, String)>,
    port: u16,
    data: DataDir,
    /// Its current PID, 0 while it is not running; for the second Ctrl-C, which kills
    /// everything without waiting for the supervising tasks.
    pid: AtomicU32,
    /// How many times its supervisor restarted it (exits and liveness kills).
    restarts: AtomicU32,
    http: reqwest::Client,
    liveness: LivenessProbe,
}

impl Service {
    fn name(&self) -> &'static str {
        self.spec.name
    }

    fn spawn(&self, why: &str) -> anyhow::Result<launch::Spawned> {
        let spawned = launch::spawn(self.name(), &self.program, &self.env, &self.data, why)?;
        self.pid
            .store(spawned.child.id().unwrap_or(0), Ordering::SeqCst);
        Ok(spawned)
    }

    /// Bookkeeping once its process is gone.
    fn reaped(&self) {
        self.pid.store(0, Ordering::SeqCst);
        launch::remove_pid_file(&self.data, self.name());
    }

    fn kill(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid != 0 {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    /// Whether it became ready within [`READY_TIMEOUT`].
    async fn ready(&self) -> bool {
        let probe = async {
            while !self.probe().await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(READY_TIMEOUT, probe).await.is_ok()
    }

    async fn probe(&self) -> bool {
        match self.spec.readiness {
            Readiness::TcpConnect => {
                let connect = tokio::net::TcpStream::connect(("127.0.0.1", self.port));
                matches!(
                    tokio::time::timeout(Duration::from_secs(1), connect).await,
                    Ok(Ok(_))
                )
            }
            Readiness::HttpOk(path) => self
                .http
                .get(format!("http://127.0.0.1:{}{path}", self.port))
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
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", self.port));
            return match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("cannot connect: {e}")),
                Err(_) => Err(format!("no connection within {}", human(timeout))),
            };
        };
        let probe = async {
            let response = self
                .http
                .get(format!("http://127.0.0.1:{}/health/live", self.port))
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
        self.terminate(child, LIVENESS_KILL_GRACE).await
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
    async fn stop(&self, child: &mut Child) -> Stopped {
        self.terminate(child, STOP_TIMEOUT).await
    }

    /// SIGTERM, then SIGKILL after `grace`.
    async fn terminate(&self, child: &mut Child, grace: Duration) -> Stopped {
        let began = Instant::now();
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let (status, killed) = match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => (status, false),
            Err(_) => {
                let _ = child.start_kill();
                (child.wait().await, true)
            }
        };
        self.reaped();
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
    task: JoinHandle<Stopped>,
}

/// A service's whole life under `up`: start, report readiness, then keep it running until
/// told to stop.
async fn run_service(
    service: Arc<Service>,
    started: oneshot::Sender<Startup>,
    mut stop: watch::Receiver<bool>,
) -> Stopped {
    let began = Instant::now();
    let launch::Spawned {
        mut child,
        log_start,
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
            service.reaped();
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
    supervise(&service, child, stop).await
}

/// Restarts the service whenever it exits on its own or keeps failing its liveness probe,
/// until told to stop.
async fn supervise(
    service: &Service,
    mut child: Child,
    mut stop: watch::Receiver<bool>,
) -> Stopped {
    let name = service.name();
    let probe = service.liveness;
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
            status = child.wait() => {
                service.reaped();
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
                Ok(spawned) => break spawned.child,
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
    spec: &ServiceSpec,
    reason: &str,
    log_start: Option<u64>,
    data: &DataDir,
) -> anyhow::Result<()> {
    // The failed one is last and its supervisor has ended: nothing of it to stop.
    if let Some(failed) = running.pop() {
        let _ = failed.task.await;
    }
    let log = data.log_file(spec.name);
    if let Some(from) = log_start {
        let lines = launch::tail(&log, from, TAIL_LINES);
        if !lines.is_empty() {
            eprintln!("last lines of {}:", log.display());
            for line in lines {
                eprintln!("  | {line}");
            }
        }
    }
    let width = SERVICES.iter().map(|s| s.name.len()).max().unwrap_or(0);
    shutdown(running, signals, width).await;
    bail!("{} {reason} (its log: {})", spec.name, log.display())
}

fn summary(suite: &Suite, data_dir_flag: bool, web: &web_app::WebApp) {
    let width = SERVICES
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    println!();
    println!("studycafe is up:");
    println!(
        "  {:<width$}  {}",
        "web",
        web_app::summary(web, suite.port("gateway"))
    );
    for spec in suite.services() {
        println!(
            "  {:<width$}  {}",
            spec.name,
            (spec.endpoint)(suite.port(spec.name))
        );
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
    for spec in suite.services() {
        let port = suite.port(spec.name);
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
