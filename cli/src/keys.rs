//! Secrets of the one-machine suite, kept in the data directory.
//!
//! - The identity service's signing keys live in `keys/identity/` (its `IDENTITY_KEYS_DIR`);
//!   identity creates and rotates them, `token` signs dev tokens with the newest one.
//! - seat's machine-client secret (`client_credentials` at identity, to call payment) is
//!   generated once into `keys/seat-client.secret` and handed to both identity and seat.

use std::{
    fs::{DirBuilder, OpenOptions},
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use anyhow::{Context as _, bail};
use rand::RngCore as _;
use studycafe_platform::signing::SigningKey;

use crate::data_dir::DataDir;

/// The machine-client id seat uses at identity.
pub const SEAT_CLIENT_ID: &str = "seat-service";

/// seat's client secret, generated on first use.
pub fn ensure_client_secret(data: &DataDir) -> anyhow::Result<String> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data.keys())
        .with_context(|| format!("cannot create {}", data.keys().display()))?;
    let path = data.seat_client_secret();
    if path.exists() {
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let secret = secret.trim();
        if secret.len() >= 32 {
            return Ok(secret.to_owned());
        }
        tracing_free_warning(&path);
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_atomically(&path, secret.as_bytes(), 0o600)?;
    Ok(secret)
}

fn tracing_free_warning(path: &Path) {
    eprintln!("{} is too short; generating a new secret", path.display());
}

/// The newest of identity's signing keys (identity names each `<kid>.pem`, kids sorting by
/// age).
pub fn newest_identity_key(data: &DataDir) -> anyhow::Result<SigningKey> {
    let dir = data.identity_keys();
    let mut newest: Option<(String, std::path::PathBuf)> = None;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no signing keys in {}: run `studycafe up` with this data directory first",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pem")
            && let Some(kid) = path.file_stem().and_then(|s| s.to_str())
            && newest.as_ref().is_none_or(|(best, _)| kid > best.as_str())
        {
            newest = Some((kid.to_owned(), path.clone()));
        }
    }
    let Some((kid, path)) = newest else {
        bail!(
            "no signing keys in {}: run `studycafe up` with this data directory first",
            dir.display()
        );
    };
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    SigningKey::from_pkcs8_pem(kid, &pem)
        .with_context(|| format!("{} is not a usable key", path.display()))
}

/// Writes through a temporary file and a rename, so a crash mid-write never leaves a torn
/// secret that would stop every later start.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    // `mode` only applies when the file is created; a leftover temp file keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir(tmp: &tempfile::TempDir) -> DataDir {
        DataDir::resolve(Some(tmp.path().into()), None, Path::new("/"))
    }

    #[test]
    fn the_client_secret_is_generated_once_then_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let data = data_dir(&tmp);
        let first = ensure_client_secret(&data).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(ensure_client_secret(&data).unwrap(), first);
        let mode = std::fs::metadata(data.seat_client_secret())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_newest_identity_key_signs() {
        let tmp = tempfile::tempdir().unwrap();
        let data = data_dir(&tmp);
        assert!(newest_identity_key(&data).is_err(), "no keys before `up`");
        std::fs::create_dir_all(data.identity_keys()).unwrap();
        for kid in ["key-20260101T000000Z", "key-20261124T101010Z"] {
            let pem = SigningKey::generate(kid).to_pkcs8_pem().unwrap();
            std::fs::write(data.identity_keys().join(format!("{kid}.pem")), pem).unwrap();
        }
        std::fs::write(data.identity_keys().join("notes.txt"), "not a key").unwrap();
        assert_eq!(
            newest_identity_key(&data).unwrap().kid(),
            "key-20261124T101010Z"
        );
    }
}
