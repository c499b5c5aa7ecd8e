//! Starting one service process, and making sure none outlives `up`.
//!
//! A killed `up` (SIGKILL, a crash, a closed terminal) must not leave services behind that
//! hold the suite's ports, or the next `up` could not start. Two layers see to that:
//!
//! 1. **Parent-death signal.** Each service is asked by the kernel to receive SIGTERM when `up`
//!    dies (`PR_SET_PDEATHSIG`). That has to be armed inside the child between fork and exec,
//!    which in Rust means `CommandExt::pre_exec`, an `unsafe` fn that the workspace's
//!    `forbid(unsafe_code)` rules out. So `up` does not start a service directly: it starts
//!    itself as `studycafe __exec-child --parent-pid <up> <service>`, a shim that arms the
//!    signal with nix's safe wrapper and then `exec`s the service. The PID stays the same, and
//!    the signal survives `exec`, so the service is `up`'s direct child that dies with it.
//!    The kernel sends the signal when the *thread* that forked the child ends, which is why
//!    `up` runs on a single-threaded runtime: its only thread lives as long as the process.
//! 2. **PID files.** SIGTERM starts a graceful shutdown that may take seconds, and a service
//!    might hang. Each running service has `<data>/pids/<name>.pid` (PID and executable); the
//!    next `up`, once it holds the data directory's lock (so the previous `up` is surely
//!    gone), stops any process still matching a PID file before it checks the ports.

use std::{
    fs::OpenOptions,
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::{process::Child, time::Instant};

use crate::data_dir::DataDir;

/// The hidden subcommand that runs the shim.
pub const EXEC_SUBCOMMAND: &str = "__exec-child";

/// The shim: runs in the new child process, arms the parent-death signal and becomes
/// `program`. Only returns on failure; its stderr is the service's log.
pub fn exec_child(parent_pid: u32, program: &Path) -> ExitCode {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
        eprintln!("studycafe: cannot arm the parent-death signal: {e}");
        return ExitCode::FAILURE;
    }
    // If `up` died before the signal was armed, nobody will ever send it: give up now.
    if std::os::unix::process::parent_id() != parent_pid {
        eprintln!(
            "studycafe: `up` (pid {parent_pid}) is gone; not starting {}",
            program.display()
        );
        return ExitCode::FAILURE;
    }
    let error = std::process::Command::new(program).exec();
    eprintln!("studycafe: cannot execute {}: {error}", program.display());
    ExitCode::from(127)
}

/// A started service process.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// Kept apart from `child`, which forgets its PID once waited for.
    pub pid: u32,
    /// Where this run's part of the log file begins.
    pub log_start: u64,
}

/// Starts `program` through `shim` (normally [`own_executable`], which runs [`exec_child`])
/// with `env` on top of the inherited environment, its output appended to the service's log
/// file, and records its PID file.
pub fn spawn(
    shim: &Path,
    name: &str,
    program: &Path,
    env: &[(&'static str, String)],
    data: &DataDir,
    why: &str,
) -> anyhow::Result<Spawned> {
    let log_path = data.log_file(name);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log_start = log.metadata()?.len();
    writeln!(
        log,
        "\n===== {} studycafe up: {why} {name} ({}) =====",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S%:z"),
        program.display()
    )?;

    let child = tokio::process::Command::new(shim)
        .arg(EXEC_SUBCOMMAND)
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .arg(program)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: Ctrl-C in the terminal reaches `up` only, which then stops the
        // services one by one in reverse order instead of all of them racing at once.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;

    let pid = child.id().unwrap_or(0);
    // During a rollout the successor's PID replaces its predecessor's here: should `up` be
    // killed then, the predecessor still gets its parent-death signal.
    record_pid(data, name, pid, program)?;
    Ok(Spawned {
        child,
        pid,
        log_start,
    })
}

/// `up`'s own executable for the shim. `/proc/self/exe` still works when cargo has replaced
/// the file on disk since `up` started (a restart during development), where the path would
/// name the new binary or nothing.
pub fn own_executable() -> PathBuf {
    let proc_self = Path::new("/proc/self/exe");
    if proc_self.exists() {
        proc_self.to_owned()
    } else {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("studycafe"))
    }
}

/// Writes `name`'s PID file.
pub fn record_pid(data: &DataDir, name: &str, pid: u32, program: &Path) -> anyhow::Result<()> {
    let pid_file = data.pid_file(name);
    std::fs::write(&pid_file, format!("{pid}\n{}\n", program.display()))
        .with_context(|| format!("cannot write {}", pid_file.display()))
}

/// Removes `name`'s PID file if it still names `pid` (not its successor's, after a rollout).
pub fn remove_pid_file(data: &DataDir, name: &str, pid: u32) {
    let path = data.pid_file(name);
    let names_pid = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| parse_pid_file(&text))
        .is_some_and(|(recorded, _)| recorded.as_raw() as u32 == pid);
    if names_pid {
        let _ = std::fs::remove_file(path);
    }
}

/// Stops what a previous, killed `up` left running (see the module doc), whatever replicas
/// it ran: every PID file in the data directory. Must only be called while holding the data
/// directory's lock.
pub async fn stop_leftovers(data: &DataDir) -> anyhow::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(data.pids())
        .with_context(|| format!("cannot read {}", data.pids().display()))?
        .filter_map(|entry| {
            let file = entry.ok()?.file_name().into_string().ok()?;
            file.strip_suffix(".pid").map(str::to_owned)
        })
        .collect();
    names.sort();
    for name in &names {
        let pid_file = data.pid_file(name);
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            continue;
        };
        if let Some((pid, program)) = parse_pid_file(&text)
            && runs(pid, &program)
        {
            println!("stopping {name} left over from an earlier run (pid {pid})…");
            let _ = kill(pid, Signal::SIGTERM);
            if !gone_within(pid, &program, Duration::from_secs(10)).await {
                println!("{name} (pid {pid}) did not stop within 10s; killing it");
                let _ = kill(pid, Signal::SIGKILL);
                if !gone_within(pid, &program, Duration::from_secs(5)).await {
                    anyhow::bail!("{name} (pid {pid}) from an earlier run does not stop");
                }
            }
        }
        std::fs::remove_file(&pid_file)
            .with_context(|| format!("cannot remove {}", pid_file.display()))?;
    }
    Ok(())
}

fn parse_pid_file(text: &str) -> Option<(Pid, PathBuf)> {
    let mut lines = text.lines();
    let pid: i32 = lines.next()?.trim().parse().ok()?;
    let program = PathBuf::from(lines.next()?);
    // 0 and -1 mean "the group" and "everyone" to kill(2); 1 is init.
    (pid > 1).then(|| (Pid::from_raw(pid), program))
}

/// Whether `pid` still runs `program`: a recycled PID runs something else.
fn runs(pid: Pid, program: &Path) -> bool {
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    // A binary rebuilt since it started shows as "<path> (deleted)".
    let exe = exe.to_string_lossy();
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
    Path::new(exe) == program || interprets(pid, program)
}

/// Whether `pid` is an interpreter running the script `program` (a Python service's console
/// script: `/proc/<pid>/exe` is the interpreter, the script its first argument).
fn interprets(pid: Pid, program: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    cmdline
        .split(|b| *b == 0)
        .nth(1)
        .is_some_and(|arg| arg == program.as_os_str().as_encoded_bytes())
}

async fn gone_within(pid: Pid, program: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while runs(pid, program) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Whether process `pid` has a socket listening on TCP `port` (IPv4 or IPv6), from `/proc`:
/// two processes can listen on one port with `SO_REUSEPORT`, and only this tells them apart.
pub fn listens(pid: u32, port: u16) -> bool {
    let listening: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| listening_inodes(&text, port))
        .collect();
    if listening.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .any(|inode| listening.contains(&inode))
}

/// The inodes of the sockets listening on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let ours = u16::from_str_radix(local_port, 16).ok()? == port;
            (ours && *fields.get(3)? == LISTEN).then(|| fields.get(9).map(|i| (*i).to_owned()))?
        })
        .collect()
}

/// The last `lines` lines of `path` written from byte `from` on.
pub fn tail(path: &Path, from: u64, lines: usize) -> Vec<String> {
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    if read.is_err() {
        return Vec::new();
    }
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_round_trip_and_refuse_dangerous_pids() {
        assert_eq!(
            parse_pid_file("1234\n/opt/sc/seat-service\n"),
            Some((Pid::from_raw(1234), PathBuf::from("/opt/sc/seat-service")))
        );
        assert_eq!(parse_pid_file("-1\n/x\n"), None);
        assert_eq!(parse_pid_file("0\n/x\n"), None);
        assert_eq!(parse_pid_file("1\n/x\n"), None);
        assert_eq!(parse_pid_file("garbage"), None);
        assert_eq!(parse_pid_file("42\n"), None);
    }

    #[test]
    fn a_live_pid_running_something_else_is_not_a_leftover() {
        let me = Pid::this();
        let exe = std::env::current_exe().unwrap();
        assert!(runs(me, &exe));
        assert!(!runs(me, Path::new("/usr/bin/seat-service")));
    }

    #[test]
    fn a_listener_is_found_by_its_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listens(std::process::id(), port));
        drop(listener);
        assert!(!listens(std::process::id(), port));
        assert!(!listens(1, port));
    }

    #[tokio::test]
    async fn leftovers_of_a_killed_up_are_stopped_and_a_recycled_pid_is_spared() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::resolve(Some(tmp.path().to_owned()), None, tmp.path())
            .create()
            .unwrap();
        // What a killed `up` left: a service still running, named in its PID file.
        let mut leftover = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .unwrap();
        let program = std::fs::read_link(format!("/proc/{}/exe", leftover.id())).unwrap();
        record_pid(&data, "seat", leftover.id(), &program).unwrap();
        // And a PID file whose PID now belongs to another program (here: this test).
        record_pid(
            &data,
            "payment",
            std::process::id(),
            Path::new("/x/payment"),
        )
        .unwrap();

        stop_leftovers(&data).await.unwrap();

        let status = leftover
            .try_wait()
            .unwrap()
            .expect("the leftover was stopped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::SIGTERM as i32)
        );
        assert!(!data.pid_file("seat").exists());
        assert!(!data.pid_file("payment").exists());
    }

    #[test]
    fn tail_reads_only_this_run() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.log");
        std::fs::write(&path, "old 1\nold 2\n").unwrap();
        let from = std::fs::metadata(&path).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        for i in 0..30 {
            writeln!(file, "new {i}").unwrap();
        }
        let lines = tail(&path, from, 20);
        assert_eq!(lines.len(), 20);
        assert_eq!(lines[0], "new 10");
        assert_eq!(lines[19], "new 29");
        assert_eq!(tail(&path, 0, 100)[0], "old 1");
    }
}
