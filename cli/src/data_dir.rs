//! The data directory: which one (flag, then `STUDYCAFE_DATA_DIR`, then `./var`) and where
//! things live inside it. Everything the suite writes is under it, so deleting it is a reset
//! and keeping it keeps the data.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

pub const ENV_VAR: &str = "STUDYCAFE_DATA_DIR";
const DEFAULT: &str = "var";

/// A resolved, absolute data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory `flag` (or else `env`, or else `./var`) names, made absolute against
    /// `cwd`: children run with other working directories, and `sqlite://` URLs need a path
    /// that means the same thing to everyone.
    pub fn resolve(flag: Option<PathBuf>, env: Option<OsString>, cwd: &Path) -> Self {
        let chosen = flag
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT));
        Self {
            root: cwd.join(chosen),
        }
    }

    /// [`Self::resolve`] with this process's environment and working directory.
    pub fn from_process(flag: Option<PathBuf>) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("the working directory is unreadable")?;
        Ok(Self::resolve(flag, std::env::var_os(ENV_VAR), &cwd))
    }

    /// Creates the directory tree and settles on its canonical path (so logs and summaries
    /// show `/home/me/var`, not `/home/me/./var/../var`).
    pub fn create(&self) -> anyhow::Result<Self> {
        for dir in [self.root.clone(), self.logs(), self.pids()] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let root = self
            .root
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", self.root.display()))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn log_file(&self, service: &str) -> PathBuf {
        self.logs().join(format!("{service}.log"))
    }

    pub fn pids(&self) -> PathBuf {
        self.root.join("pids")
    }

    pub fn pid_file(&self, service: &str) -> PathBuf {
        self.pids().join(format!("{service}.pid"))
    }

    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The identity service's signing keys (`IDENTITY_KEYS_DIR`).
    pub fn identity_keys(&self) -> PathBuf {
        self.keys().join("identity")
    }

    pub fn seat_client_secret(&self) -> PathBuf {
        self.keys().join("seat-client.secret")
    }

    /// Where the running `up` listens for `studycafe rollout` (a Unix socket).
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// Held (`flock`) by the running `up`; the kernel drops it when `up` dies, however it dies.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("up.lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(flag: Option<&str>, env: Option<&str>) -> PathBuf {
        DataDir::resolve(
            flag.map(PathBuf::from),
            env.map(OsString::from),
            Path::new("/home/me"),
        )
        .root
    }

    #[test]
    fn flag_wins_over_env_which_wins_over_the_default() {
        assert_eq!(resolve(Some("/data"), Some("/env")), PathBuf::from("/data"));
        assert_eq!(resolve(None, Some("/env")), PathBuf::from("/env"));
        assert_eq!(resolve(None, None), PathBuf::from("/home/me/var"));
    }

    #[test]
    fn relative_paths_are_made_absolute_and_empty_values_ignored() {
        assert_eq!(resolve(Some("d"), None), PathBuf::from("/home/me/d"));
        assert_eq!(resolve(None, Some("e/f")), PathBuf::from("/home/me/e/f"));
        assert_eq!(resolve(Some(""), Some("")), PathBuf::from("/home/me/var"));
    }

    #[test]
    fn layout() {
        let data = DataDir::resolve(Some("/d".into()), None, Path::new("/"));
        assert_eq!(data.log_file("seat"), PathBuf::from("/d/logs/seat.log"));
        assert_eq!(data.pid_file("broker"), PathBuf::from("/d/pids/broker.pid"));
        assert_eq!(data.identity_keys(), PathBuf::from("/d/keys/identity"));
        assert_eq!(
            data.seat_client_secret(),
            PathBuf::from("/d/keys/seat-client.secret")
        );
    }
}
