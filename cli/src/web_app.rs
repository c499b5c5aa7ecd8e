//! The web app for `up`: the gateway serves `web/dist`, the production build of `web/`, which
//! is never committed. `up` builds it when it is missing or older than its sources (`npm ci`
//! when the installed packages are older than the lock file, then `npm run build`), so a clean
//! clone's first `up` serves the app.
//!
//! Without Node.js, or when the build fails, the suite still starts (the API needs no web app)
//! and `up` says plainly what is missing and how to get it; an older build, if there is one, is
//! served meanwhile.

use std::{
    ffi::OsStr,
    fs::File,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Instant, SystemTime},
};

use anyhow::{Context as _, bail};

use crate::data_dir::DataDir;

/// The repository's `web/` directory, where the app's sources are.
pub const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../web");

/// What the build writes beside the app (see `web/vite.config.ts`): the build-time settings it
/// was made with, so a changed setting is a stale build too.
const SETTINGS_FILE: &str = "build.json";

/// The environment variables the build reads.
const BUILD_VARIABLES: &[&str] = &["WEB_CAFE_TIME_ZONE"];

/// The oldest Node.js Vite 8 runs on, per release line.
const NODE_REQUIRED: &str = "Node.js 20.19+ or 22.12+ with npm";

/// The web root the gateway serves: the build output of [`SOURCE`].
pub fn web_root() -> PathBuf {
    Path::new(SOURCE).join("dist")
}

/// Whether the gateway has an app to serve, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebApp {
    Ready,
    /// Built before, but it could not be brought up to date: it serves the older build.
    Outdated,
    Missing,
}

/// The summary's line for the web app.
pub fn summary(web: &WebApp, gateway_port: u16) -> String {
    let url = format!("http://127.0.0.1:{gateway_port}/");
    match web {
        WebApp::Ready => format!("{url}  (the seat map; the cafe console at {url}#/admin)"),
        WebApp::Outdated => format!("{url}  (an older build: see the build error above)"),
        WebApp::Missing => "not built (see above); the API is at the gateway".to_owned(),
    }
}

/// Why the build has to run, if it does.
#[derive(Debug, PartialEq, Eq)]
enum Freshness {
    Fresh,
    Missing,
    /// This input changed after the last build.
    Changed(PathBuf),
    SettingsChanged,
}

/// Brings `dist` up to date with `source` if it is not, telling the user what happens.
pub async fn prepare(dist: &Path, data: &DataDir) -> WebApp {
    let Some(source) = dist.parent().filter(|s| s.join("package.json").is_file()) else {
        // An installed `studycafe` far from its sources: serve whatever is there.
        return if dist.join("index.html").is_file() {
            WebApp::Ready
        } else {
            WebApp::Missing
        };
    };
    if matches!(
        freshness(source, dist, &settings_from_env()),
        Ok(Freshness::Fresh)
    ) {
        return WebApp::Ready;
    }
    // Two `up`s (with different data directories) must not run npm in one folder at once; the
    // second waits, then finds the first one's build.
    let _lock = match lock(source) {
        Ok(lock) => Some(lock),
        Err(e) => {
            eprintln!("cannot lock the web app's build ({e:#}); building without the lock");
            None
        }
    };
    let why = match freshness(source, dist, &settings_from_env()) {
        Ok(Freshness::Fresh) => return WebApp::Ready,
        Ok(Freshness::Missing) => "not built yet".to_owned(),
        Ok(Freshness::Changed(input)) => format!(
            "{} changed",
            input.strip_prefix(source).unwrap_or(&input).display()
        ),
        Ok(Freshness::SettingsChanged) => "its build settings changed".to_owned(),
        Err(e) => format!("its state is unreadable ({e:#})"),
    };
    let log = data.log_file("web-build");
    print!("building the web app ({why})… ");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let began = Instant::now();
    let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
    match build(source, &log).await {
        Ok(()) => {
            println!("done in {:.1}s", began.elapsed().as_secs_f64());
            WebApp::Ready
        }
        Err(e) => {
            println!("failed");
            let lines = crate::launch::tail(&log, log_start, 15);
            if !lines.is_empty() {
                eprintln!("last lines of {}:", log.display());
                for line in lines {
                    eprintln!("  | {line}");
                }
            }
            eprintln!("the web app could not be built: {e:#}");
            if dist.join("index.html").is_file() {
                eprintln!("the gateway serves the previous build meanwhile");
                WebApp::Outdated
            } else {
                eprintln!("the suite starts without its web page; the API works as usual");
                WebApp::Missing
            }
        }
    }
}

/// Holds `web/.build.lock` (`flock`; the kernel drops it however the holder dies).
fn lock(source: &Path) -> anyhow::Result<File> {
    let path = source.join(".build.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            println!("waiting for another build of the web app…");
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// Runs `npm ci` (when needed) and `npm run build` in `source`, output to `log`.
async fn build(source: &Path, log: &Path) -> anyhow::Result<()> {
    check_node(source).await?;
    let installed = source.join("node_modules/.package-lock.json");
    if newer(&source.join("package-lock.json"), &installed)? {
        npm(source, &["ci", "--no-audit", "--no-fund"], log).await?;
    }
    npm(source, &["run", "build"], log).await
}

async fn check_node(source: &Path) -> anyhow::Result<()> {
    let missing = || {
        format!(
            "it needs {NODE_REQUIRED}, which is not installed (Debian: `apt-get install nodejs \
             npm`; or from nodejs.org); then run `studycafe up` again"
        )
    };
    let output = match tokio::process::Command::new("node")
        .arg("--version")
        .current_dir(source)
        .output()
        .await
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(missing()),
        Err(e) => return Err(e).context("cannot run node"),
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !node_supported(&version) {
        bail!("it needs {NODE_REQUIRED}; this machine has Node.js {version}");
    }
    match tokio::process::Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(missing()),
        Err(e) => Err(e).context("cannot run npm"),
    }
}

/// Whether Vite 8 runs on this `node --version` (`v20.19.0` or later on 20, `v22.12.0` or
/// later on 22, anything from 23 on).
fn node_supported(version: &str) -> bool {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (next(), next()) {
        (Some(20), Some(minor)) => minor >= 19,
        (Some(22), Some(minor)) => minor >= 12,
        (Some(major), Some(_)) => major >= 23,
        _ => false,
    }
}

async fn npm(source: &Path, args: &[&str], log: &Path) -> anyhow::Result<()> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone()?;
    let status = tokio::process::Command::new("npm")
        .args(args)
        .current_dir(source)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .await
        .context("cannot run npm")?;
    if !status.success() {
        bail!(
            "`npm {}` failed ({status}); its output is in {}",
            args.join(" "),
            log.display()
        );
    }
    Ok(())
}

/// The build settings this environment asks for, as the build records them.
fn settings_from_env() -> serde_json::Value {
    let mut settings = serde_json::Map::new();
    for name in BUILD_VARIABLES {
        let value = std::env::var(name).unwrap_or_default();
        settings.insert((*name).to_owned(), serde_json::Value::String(value));
    }
    serde_json::Value::Object(settings)
}

fn freshness(
    source: &Path,
    dist: &Path,
    settings: &serde_json::Value,
) -> anyhow::Result<Freshness> {
    let marker = dist.join(SETTINGS_FILE);
    if !dist.join("index.html").is_file() || !marker.is_file() {
        return Ok(Freshness::Missing);
    }
    let built: serde_json::Value = serde_json::from_slice(&std::fs::read(&marker)?)
        .with_context(|| format!("{} is not JSON", marker.display()))?;
    if &built != settings {
        return Ok(Freshness::SettingsChanged);
    }
    let built_at = modified(&marker)?;
    let mut inputs = Vec::new();
    for name in [
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        inputs.push(source.join(name));
    }
    for dir in ["src", "public"] {
        files_under(&source.join(dir), &mut inputs)?;
    }
    for input in inputs {
        if input.exists() && modified(&input)? > built_at {
            return Ok(Freshness::Changed(input));
        }
    }
    Ok(Freshness::Fresh)
}

fn files_under(dir: &Path, into: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, into)?;
        } else if path.file_name() != Some(OsStr::new(".DS_Store")) {
            into.push(path);
        }
    }
    Ok(())
}

fn modified(path: &Path) -> anyhow::Result<SystemTime> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("cannot read the time of {}", path.display()))
}

/// Whether `a` is newer than `b`, or `b` does not exist.
fn newer(a: &Path, b: &Path) -> anyhow::Result<bool> {
    if !b.exists() {
        return Ok(true);
    }
    Ok(modified(a)? > modified(b)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn touch(path: &Path, at: SystemTime) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if !path.exists() {
            std::fs::write(path, "x").unwrap();
        }
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    fn settings(zone: &str) -> serde_json::Value {
        serde_json::json!({ "WEB_CAFE_TIME_ZONE": zone })
    }

    #[test]
    fn a_build_is_stale_when_missing_older_than_a_source_or_made_with_other_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path();
        let dist = source.join("dist");
        let then = SystemTime::now() - Duration::from_secs(3600);
        let now = SystemTime::now();
        touch(&source.join("package.json"), then);
        touch(&source.join("src/views/seats.tsx"), then);
        assert_eq!(
            freshness(source, &dist, &settings("")).unwrap(),
            Freshness::Missing
        );

        touch(&dist.join("index.html"), now);
        std::fs::write(dist.join(SETTINGS_FILE), settings("").to_string()).unwrap();
        touch(&dist.join(SETTINGS_FILE), now);
        assert_eq!(
            freshness(source, &dist, &settings("")).unwrap(),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(source, &dist, &settings("Europe/Berlin")).unwrap(),
            Freshness::SettingsChanged
        );

        let edited = source.join("src/views/seats.tsx");
        touch(&edited, now + Duration::from_secs(5));
        assert_eq!(
            freshness(source, &dist, &settings("")).unwrap(),
            Freshness::Changed(edited)
        );
    }

    #[test]
    fn node_versions_vite_runs_on() {
        assert!(node_supported("v20.19.0"));
        assert!(node_supported("v20.20.2\n"));
        assert!(node_supported("v22.12.0"));
        assert!(node_supported("v24.1.0"));
        assert!(!node_supported("v18.19.0"));
        assert!(!node_supported("v20.18.3"));
        assert!(!node_supported("v21.7.0"));
        assert!(!node_supported("v22.11.0"));
        assert!(!node_supported("garbage"));
    }
}
