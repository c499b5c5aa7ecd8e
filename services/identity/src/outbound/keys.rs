//! The signing keys: a directory of PKCS#8 PEM files, the adapter of [`KeyRing`].
//!
//! One file per key, named `<kid>.pem`, where a kid is `key-<UTC yyyymmddTHHMMSSZ>` of its
//! creation: the lexicographically greatest kid is the newest key, and the newest key signs.
//! Every key in the directory is published in the JWKS, so tokens signed by an older key stay
//! verifiable until an operator deletes its file.
//!
//! Rotation needs no restart: `identity-service add-key` writes a new file, and a running
//! service notices (the directory's mtime is checked before each signature and JWKS answer,
//! and the whole directory is reread every [`RESCAN_EVERY`]). A file that does not parse stops
//! the service at start-up, naming the file; at a rescan it is reported and the keys already
//! loaded stay in use, so a half-copied file never takes token issuing down.
//!
//! Files are written to a temporary name and then linked into place, so a reader never sees a
//! half-written key, and mode 0600, since whoever reads one can mint tokens.

use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use studycafe_platform::signing::{SigningKey, jwks};
use tokio_util::sync::CancellationToken;

use crate::domain::{
    TokenClaims,
    ports::{KeyRing, KeyRingError},
};

/// How often the key directory is reread even if its mtime says nothing changed (a file
/// replaced in place does not touch the directory).
pub const RESCAN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KeyDirError {
    #[error("key directory {}: {message}", dir.display())]
    Dir { dir: PathBuf, message: String },
    #[error("key file {}: {message}", file.display())]
    File { file: PathBuf, message: String },
}

fn dir_error(dir: &Path, e: impl std::fmt::Display) -> KeyDirError {
    KeyDirError::Dir {
        dir: dir.to_owned(),
        message: e.to_string(),
    }
}

fn file_error(file: &Path, e: impl std::fmt::Display) -> KeyDirError {
    KeyDirError::File {
        file: file.to_owned(),
        message: e.to_string(),
    }
}

/// The kid of a key created at `at`.
pub fn kid_at(at: DateTime<Utc>) -> String {
    format!("key-{}", at.format("%Y%m%dT%H%M%SZ"))
}

/// `key-` then `yyyymmdd`, `T`, `HHMMSS`, `Z`.
fn is_kid(kid: &str) -> bool {
    let Some(stamp) = kid.strip_prefix("key-") else {
        return false;
    };
    let bytes = stamp.as_bytes();
    bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes[..8]
            .iter()
            .chain(&bytes[9..15])
            .all(u8::is_ascii_digit)
}

/// Reads every key in `dir`, oldest first. Hidden files (our temporary files) and files not
/// ending in `.pem` are not keys.
pub fn read_keys(dir: &Path) -> Result<Vec<SigningKey>, KeyDirError> {
    let mut keys = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| dir_error(dir, e))? {
        let path = entry.map_err(|e| dir_error(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(kid) = name.strip_suffix(".pem") else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        // `metadata` follows symlinks (a Kubernetes secret volume is made of them).
        let meta = fs::metadata(&path).map_err(|e| file_error(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        if !is_kid(kid) {
            return Err(file_error(
                &path,
                "a key file must be named key-<yyyymmddTHHMMSSZ>.pem (its creation time, UTC)",
            ));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "signing key is readable by other users; chmod 600 it");
        }
        let pem = fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        keys.push(SigningKey::from_pkcs8_pem(kid, &pem).map_err(|e| file_error(&path, e))?);
    }
    keys.sort_by(|a, b| a.kid().cmp(b.kid()));
    Ok(keys)
}

fn ensure_dir(dir: &Path) -> Result<(), KeyDirError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| dir_error(dir, e))
}

/// Generates a key, stores it in `dir` (created if missing) and returns its kid: the
/// `add-key` sub-command. The new key is the newest, so it signs from the moment a running
/// service notices it.
pub fn add_key(dir: &Path) -> Result<String, KeyDirError> {
    ensure_dir(dir)?;
    let key = write_new_key(dir)?;
    Ok(key.kid().to_owned())
}

/// Loads the keys of `dir`, generating the first one if there is none.
pub fn load_or_create(dir: &Path) -> Result<Vec<SigningKey>, KeyDirError> {
    ensure_dir(dir)?;
    let keys = read_keys(dir)?;
    if !keys.is_empty() {
        return Ok(keys);
    }
    let key = write_new_key(dir)?;
    tracing::info!(kid = key.kid(), dir = %dir.display(), "no signing key found; generated one");
    // Read back rather than use `key` alone: another instance sharing the directory may have
    // generated one at the same moment.
    read_keys(dir)
}

fn write_new_key(dir: &Path) -> Result<SigningKey, KeyDirError> {
    let mut at = Utc::now();
    // A kid taken by a key from this same second moves to the next second: kids stay unique
    // and the new key still sorts after every existing one.
    for _ in 0..600 {
        let kid = kid_at(at);
        let path = dir.join(format!("{kid}.pem"));
        if !path.exists() {
            let key = SigningKey::generate(&kid);
            let pem = key.to_pkcs8_pem().map_err(|e| file_error(&path, e))?;
            if write_new_file(dir, &path, pem.as_bytes()).map_err(|e| file_error(&path, e))? {
                return Ok(key);
            }
        }
        at += chrono::Duration::seconds(1);
    }
    Err(dir_error(dir, "could not find a free key id"))
}

/// Writes `contents` to `path` unless it exists (then `false`): to a temporary file first,
/// flushed, then linked into place in one step. Linking rather than renaming refuses to
/// overwrite, so two processes adding a key in the same second cannot replace each other's
/// key (and with it every token signed by it).
fn write_new_file(dir: &Path, path: &Path, contents: &[u8]) -> io::Result<bool> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("key.pem");
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    drop(file);
    let placed = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: rename, after a last look.
        Err(_) if path.exists() => Ok(false),
        Err(_) => fs::rename(&tmp, path).map(|()| true),
    });
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %tmp.display(), error = %e, "cannot remove a temporary key file")
        }
    }
    if placed? {
        // The new directory entry must survive a power cut too.
        fs::File::open(dir)?.sync_all()?;
        return Ok(true);
    }
    Ok(false)
}

fn dir_mtime(dir: &Path) -> Option<SystemTime> {
    fs::metadata(dir).and_then(|m| m.modified()).ok()
}

/// The keys of a directory, kept current while the service runs.
#[derive(Debug)]
pub struct DirKeyRing {
    dir: PathBuf,
    /// Oldest first; never empty.
    keys: RwLock<Arc<Vec<SigningKey>>>,
    /// The directory's mtime at the last scan, successful or not (a broken file is reported
    /// once per change, not on every request).
    scanned_mtime: Mutex<Option<SystemTime>>,
    scanning: tokio::sync::Mutex<()>,
}

impl DirKeyRing {
    /// Loads `dir`, creating it and a first key if needed. Blocking (start-up only).
    pub fn open(dir: &Path) -> Result<Self, KeyDirError> {
        let mtime = dir_mtime(dir);
        let keys = load_or_create(dir)?;
        let ring = Self {
            dir: dir.to_owned(),
            keys: RwLock::new(Arc::new(keys)),
            scanned_mtime: Mutex::new(mtime),
            scanning: tokio::sync::Mutex::new(()),
        };
        tracing::info!(kids = ?ring.kids(), signing = %ring.signing_kid(), dir = %dir.display(), "signing keys loaded");
        Ok(ring)
    }

    fn current(&self) -> Arc<Vec<SigningKey>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every kid, oldest first.
    pub fn kids(&self) -> Vec<String> {
        self.current().iter().map(|k| k.kid().to_owned()).collect()
    }

    /// The kid that signs new tokens.
    pub fn signing_kid(&self) -> String {
        self.current()
            .last()
            .map(|k| k.kid().to_owned())
            .unwrap_or_default()
    }

    fn scanned(&self) -> Option<SystemTime> {
        *self
            .scanned_mtime
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rereads the directory if its mtime moved since the last scan. One `stat`: cheap enough
    /// for every token.
    pub async fn refresh_if_changed(&self) {
        let now = dir_mtime(&self.dir);
        if now.is_some() && now != self.scanned() {
            self.rescan(false).await;
        }
    }

    /// Rereads the directory (`force`), or only if it changed since the last scan. A broken
    /// or empty directory is reported and the current keys stay.
    pub async fn rescan(&self, force: bool) {
        let _one_at_a_time = self.scanning.lock().await;
        let dir = self.dir.clone();
        let mtime = dir_mtime(&dir);
        if !force && mtime == self.scanned() {
            // Someone else rescanned while we waited.
            return;
        }
        let scanned = tokio::task::spawn_blocking(move || read_keys(&dir)).await;
        *self
            .scanned_mtime
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = mtime;
        let keys = match scanned {
            Ok(Ok(keys)) if !keys.is_empty() => keys,
            Ok(Ok(_)) => {
                tracing::warn!(dir = %self.dir.display(), "the key directory has no keys; keeping the keys loaded before");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot reload the signing keys; keeping the keys loaded before");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "key scan failed; keeping the keys loaded before");
                return;
            }
        };
        let old = self.kids();
        let new: Vec<String> = keys.iter().map(|k| k.kid().to_owned()).collect();
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        if old != new {
            tracing::info!(kids = ?new, signing = %self.signing_kid(), "signing keys reloaded");
        }
    }

    /// Rereads the directory every `every` until `shutdown`.
    pub async fn run(&self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => self.rescan(true).await,
            }
        }
    }
}

impl KeyRing for DirKeyRing {
    async fn sign(&self, claims: &TokenClaims) -> Result<String, KeyRingError> {
        self.refresh_if_changed().await;
        let keys = self.current();
        let key = keys
            .last()
            .ok_or_else(|| KeyRingError("no signing key loaded".into()))?;
        key.sign(claims).map_err(|e| KeyRingError(e.to_string()))
    }

    async fn jwks(&self) -> serde_json::Value {
        self.refresh_if_changed().await;
        jwks(self.current().iter().rev())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kids_sort_by_time() {
        let early = kid_at("2025-01-02T03:04:05Z".parse().unwrap());
        let late = kid_at("2025-11-02T03:04:05Z".parse().unwrap());
        assert_eq!(early, "key-20250102T030405Z");
        assert!(early < late);
        assert!(is_kid(&early));
        for bad in [
            "key-2025",
            "key-20250102X030405Z",
            "kez-20250102T030405Z",
            "key-2025010aT030405Z",
        ] {
            assert!(!is_kid(bad), "{bad}");
        }
    }

    #[test]
    fn first_key_is_generated_private_and_persistent() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("nested/keys");
        let first = load_or_create(&keys_dir).unwrap();
        assert_eq!(first.len(), 1);
        let file = keys_dir.join(format!("{}.pem", first[0].kid()));
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = load_or_create(&keys_dir).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].public_jwk(), first[0].public_jwk());
    }

    #[test]
    fn added_keys_are_newest_even_within_one_second() {
        let dir = tempfile::tempdir().unwrap();
        let first = add_key(dir.path()).unwrap();
        let second = add_key(dir.path()).unwrap();
        let third = add_key(dir.path()).unwrap();
        assert!(first < second && second < third);
        let kids: Vec<_> = read_keys(dir.path())
            .unwrap()
            .iter()
            .map(|k| k.kid().to_owned())
            .collect();
        assert_eq!(kids, vec![first, second, third]);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn a_broken_or_misnamed_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        add_key(dir.path()).unwrap();
        let broken = dir.path().join("key-20990101T000000Z.pem");
        fs::write(&broken, "not a key").unwrap();
        let err = read_keys(dir.path()).unwrap_err().to_string();
        assert!(err.contains("key-20990101T000000Z.pem"), "{err}");
        fs::remove_file(&broken).unwrap();
        let misnamed = dir.path().join("newest.pem");
        fs::write(&misnamed, "whatever").unwrap();
        let err = read_keys(dir.path()).unwrap_err().to_string();
        assert!(err.contains("newest.pem"), "{err}");
        fs::remove_file(&misnamed).unwrap();
        fs::write(dir.path().join("README.txt"), "not a key file").unwrap();
        assert_eq!(read_keys(dir.path()).unwrap().len(), 1);
    }
}
