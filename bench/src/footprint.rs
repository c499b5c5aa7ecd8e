//! The suite's footprint: how long it takes to be ready after launch, and how much memory its
//! processes hold (resident set of every process under the launcher, from /proc).

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One process of the suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// The executable (for an interpreter, the script it runs).
    pub name: String,
    /// Resident set (VmRSS), kB: shared pages counted in every process that maps them.
    pub rss_kb: u64,
    /// Proportional set size, kB: shared pages split among the processes sharing them, so
    /// the sum is what the suite really holds.
    pub pss_kb: Option<u64>,
}

/// Every process under one root (the launcher) at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub label: String,
    pub root_pid: u32,
    pub taken_at: String,
    pub processes: Vec<Process>,
    pub total_rss_kb: u64,
    pub total_pss_kb: u64,
}

/// `(pid, parent pid)` of every process on the machine.
fn process_table() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// `root` and all its descendants.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid) in process_table() {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out.sort_unstable();
    out
}

fn status_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn name_of(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let base = |a: &str| a.rsplit('/').next().unwrap_or(a).to_owned();
    match args.first() {
        // A Python service shows as its script, not as `python3`.
        Some(first) if base(first).starts_with("python") => args
            .iter()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .map_or_else(|| base(first), |a| format!("{} ({})", base(a), base(first))),
        Some(first) => base(first),
        None => std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_default(),
    }
}

fn process(pid: u32) -> Option<Process> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // Kernel threads and zombies have no resident set.
    let rss_kb = status_kb(&status, "VmRSS:")?;
    let pss_kb = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| status_kb(&t, "Pss:"));
    Some(Process {
        pid,
        name: name_of(pid),
        rss_kb,
        pss_kb,
    })
}

/// The memory of `root` and every process under it, now.
pub fn snapshot(root: u32, label: &str) -> anyhow::Result<Snapshot> {
    if !Path::new(&format!("/proc/{root}")).exists() {
        bail!("no process {root}");
    }
    let processes: Vec<Process> = tree(root).into_iter().filter_map(process).collect();
    Ok(Snapshot {
        label: label.to_owned(),
        root_pid: root,
        taken_at: chrono::Utc::now().to_rfc3339(),
        total_rss_kb: processes.iter().map(|p| p.rss_kb).sum(),
        total_pss_kb: processes.iter().filter_map(|p| p.pss_kb).sum(),
        processes,
    })
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

impl Snapshot {
    pub fn print(&self) {
        println!(
            "{}: {} processes, {:.1} MB resident (RSS sum), {:.1} MB proportional (PSS sum)",
            self.label,
            self.processes.len(),
            mb(self.total_rss_kb),
            mb(self.total_pss_kb)
        );
        for p in &self.processes {
            println!(
                "  {:>7}  {:<34} RSS {:>7.1} MB  PSS {}",
                p.pid,
                p.name,
                mb(p.rss_kb),
                p.pss_kb
                    .map_or_else(|| "-".to_owned(), |k| format!("{:.1} MB", mb(k)))
            );
        }
    }
}

/// Memory sampled while something runs: the highest total seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Peak {
    pub samples: u64,
    pub max_total_rss_kb: u64,
    pub max_total_pss_kb: u64,
    /// The highest RSS of each process name over the samples.
    pub max_rss_kb_by_name: BTreeMap<String, u64>,
}

impl Peak {
    pub fn add(&mut self, s: &Snapshot) {
        self.samples += 1;
        self.max_total_rss_kb = self.max_total_rss_kb.max(s.total_rss_kb);
        self.max_total_pss_kb = self.max_total_pss_kb.max(s.total_pss_kb);
        for p in &s.processes {
            let e = self.max_rss_kb_by_name.entry(p.name.clone()).or_default();
            *e = (*e).max(p.rss_kb);
        }
    }
}

/// Samples the memory of `root`'s tree every `every` until the returned handle is stopped.
pub struct Sampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Peak>,
}

impl Sampler {
    pub fn start(root: u32, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peak = Peak::default();
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                if let Ok(s) = tokio::task::spawn_blocking(move || snapshot(root, "sample")).await
                    && let Ok(s) = s
                {
                    peak.add(&s);
                }
            }
            peak
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> Peak {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// When the suite became ready after its launch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    /// Launch (the moment `bench/run` started the launcher) → the launcher's first "starting"
    /// line: its build step (cargo's up-to-date check under `cargo run`, the Python
    /// service's virtual environment).
    pub build_step_ms: Option<f64>,
    /// The first "starting" line → every endpoint ready: the suite's ready time after build.
    pub ready_after_build_ms: Option<f64>,
    /// Launch → every endpoint ready.
    pub ready_after_launch_ms: f64,
    /// Launch → the launcher printed "studycafe is up".
    pub launcher_up_ms: Option<f64>,
    /// Launch → each endpoint's first successful answer (a TCP accept for `tcp://`).
    pub endpoints_ms: BTreeMap<String, f64>,
}

/// Polls `endpoints` (`name=http://…/health/ready` or `name=tcp://host:port`) every few
/// milliseconds from `launched` (Unix time) until all answer; watches `log` for the
/// launcher's first "starting" line and its "is up" line.
pub async fn watch_ready(
    launched_unix_ns: i128,
    log: &Path,
    endpoints: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<Readiness> {
    let now_ns = chrono::Utc::now()
        .timestamp_nanos_opt()
        .context("the clock is out of range")? as i128;
    // Instants are monotonic; the launch time came from the wall clock of the same machine.
    let behind = Duration::from_nanos(u64::try_from((now_ns - launched_unix_ns).max(0))?);
    let started = Instant::now();
    let launched = started.checked_sub(behind).unwrap_or(started);
    let since = |t: Instant| t.duration_since(launched).as_secs_f64() * 1000.0;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(500))
        .build()?;
    let mut ready: BTreeMap<String, f64> = BTreeMap::new();
    let (mut first_start, mut launcher_up) = (None, None);
    let deadline = started + timeout;
    loop {
        let now = Instant::now();
        if first_start.is_none() || launcher_up.is_none() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if first_start.is_none() && text.contains("[1/") {
                first_start = Some(since(now));
            }
            if launcher_up.is_none() && text.contains("studycafe is up") {
                launcher_up = Some(since(now));
            }
        }
        for (name, url) in endpoints {
            if ready.contains_key(name) {
                continue;
            }
            let ok = match url.strip_prefix("tcp://") {
                Some(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
                None => client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
            };
            if ok {
                ready.insert(name.clone(), since(Instant::now()));
            }
        }
        if ready.len() == endpoints.len() && launcher_up.is_some() {
            break;
        }
        if now >= deadline {
            let missing: Vec<&str> = endpoints
                .iter()
                .filter(|(n, _)| !ready.contains_key(n))
                .map(|(n, _)| n.as_str())
                .collect();
            bail!(
                "not ready within {timeout:?}: {}",
                if missing.is_empty() {
                    "the launcher never printed \"studycafe is up\"".to_owned()
                } else {
                    missing.join(", ")
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = ready.values().copied().fold(0.0, f64::max);
    Ok(Readiness {
        build_step_ms: first_start,
        ready_after_build_ms: first_start.map(|f| all - f),
        ready_after_launch_ms: all,
        launcher_up_ms: launcher_up,
        endpoints_ms: ready,
    })
}

impl Readiness {
    pub fn print(&self) {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
        println!(
            "ready: {} after the build step ({} after launch; build step {}; launcher said up at {})",
            ms(self.ready_after_build_ms),
            ms(Some(self.ready_after_launch_ms)),
            ms(self.build_step_ms),
            ms(self.launcher_up_ms)
        );
        let mut by_time: Vec<(&String, &f64)> = self.endpoints_ms.iter().collect();
        by_time.sort_by(|a, b| a.1.total_cmp(b.1));
        let mut line = String::new();
        for (name, t) in by_time {
            let _ = write!(line, "  {name} {t:.0} ms");
        }
        println!(" {line}");
    }
}

pub fn write_json<T: Serialize>(path: &PathBuf, value: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// `name=value` pairs.
pub fn pairs(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|i| {
            i.split_once('=')
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .with_context(|| format!("{i:?} is not NAME=VALUE"))
        })
        .collect()
}
