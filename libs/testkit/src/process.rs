//! Real processes: the embedded broker and service executables.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};

/// The path of a workspace executable, built beside the running test.
pub fn executable(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the executables first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A child process that is killed when dropped, with its output in a log file.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    exe: PathBuf,
    args: Vec<String>,
    env: HashMap<String, String>,
    log: PathBuf,
    child: Option<Child>,
}

impl ServiceProcess {
    /// Starts `exe` with exactly the variables in `env` added to a minimal environment.
    pub fn start(name: &str, exe: PathBuf, env: HashMap<String, String>, log_dir: &Path) -> Self {
        Self::start_with_args(name, exe, &[], env, log_dir)
    }

    /// [`ServiceProcess::start`] with command-line arguments.
    pub fn start_with_args(
        name: &str,
        exe: PathBuf,
        args: &[&str],
        env: HashMap<String, String>,
        log_dir: &Path,
    ) -> Self {
        let mut process = Self {
            name: name.to_owned(),
            exe,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env,
            log: log_dir.join(format!("{name}.log")),
            child: None,
        };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let child = Command::new(&self.exe)
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("TEST_SERVICE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.exe.display()));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: a crash, nothing flushed, nothing said goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (SIGKILL after 15 s). Returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        self.stop_with(Signal::SIGTERM)
    }

    /// Sends `signal` (SIGINT is Ctrl-C), then waits (SIGKILL after 15 s). Returns whether it
    /// exited successfully.
    pub fn stop_with(&mut self, signal: Signal) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = nix::sys::signal::kill(Pid::from_raw(child.id() as i32), signal);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again with the same executable, environment and log.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Stops it gracefully (SIGTERM), then starts it again with `variable` set to `value`
    /// (a changed setting, as an operator's restart would bring). Returns whether the old
    /// process exited successfully.
    pub fn restart_with(&mut self, variable: &str, value: &str) -> bool {
        let clean = self.stop();
        self.env.insert(variable.to_owned(), value.to_owned());
        self.spawn();
        clean
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Where its log is (every run of the process appends to it).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Every line of its log (this and earlier runs of the process) that contains `needle`:
    /// one reservation's story, for a failure message.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The embedded broker on a free port with its own data directory.
#[derive(Debug)]
pub struct BrokerProcess {
    process: ServiceProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl BrokerProcess {
    /// Starts a broker and waits until it serves Kafka metadata.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::free_port();
        let env = HashMap::from([
            ("BROKER_LISTEN_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            (
                "BROKER_DATA_DIR".to_owned(),
                dir.path().join("data").display().to_string(),
            ),
            // Tansu traces every decoded field at info: the broker's own default filter, not
            // the services' `info`, or logging alone keeps it busy. `TEST_BROKER_LOG` overrides
            // it (`warn,tansu_broker::coordinator=debug` shows the group coordinator's work).
            (
                "RUST_LOG".to_owned(),
                std::env::var("TEST_BROKER_LOG")
                    .unwrap_or_else(|_| "warn,studycafe_broker=info".to_owned()),
            ),
        ]);
        let process =
            ServiceProcess::start("broker", executable("studycafe-broker"), env, dir.path());
        let broker = Self {
            process,
            port,
            _dir: dir,
        };
        broker.wait_ready().await;
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id while it runs (for SIGSTOP and SIGCONT).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub async fn wait_ready(&self) {
        let brokers = self.brokers();
        let ready = crate::within(Duration::from_secs(30), || async {
            crate::kafka::metadata_ok(&brokers).await.then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "broker did not become ready:\n{}",
            self.process.log_tail(30)
        );
    }

    /// SIGKILL the broker (data stays).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM the broker (data stays).
    pub fn stop(&mut self) -> bool {
        self.process.stop()
    }

    /// False once it exited.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Starts it again on the same port and data, and waits until it serves.
    pub async fn restart(&mut self) {
        self.process.restart();
        self.wait_ready().await;
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }
}
