//! The dev signing key: until the identity service exists, `up` plays its part by keeping an
//! Ed25519 key in the data directory and publishing its public half as a JWKS file the
//! services verify tokens against; `token` signs with the same key.

use std::{
    fs::{DirBuilder, OpenOptions},
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use anyhow::{Context as _, bail};
use studycafe_platform::signing::{SigningKey, jwks};

use crate::data_dir::DataDir;

/// The key id of the dev key, in token headers and the JWKS.
pub const DEV_KID: &str = "dev-1";

/// Loads the data directory's dev key, generating it on first use, and (re)writes the JWKS
/// next to it.
pub fn ensure_dev_key(data: &DataDir) -> anyhow::Result<SigningKey> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data.keys())
        .with_context(|| format!("cannot create {}", data.keys().display()))?;
    let path = data.signing_key();
    let key = if path.exists() {
        read_key(&path)?
    } else {
        let key = SigningKey::generate(DEV_KID);
        let pem = key.to_pkcs8_pem().context("encoding the new dev key")?;
        write_atomically(&path, pem.as_bytes(), 0o600)?;
        key
    };
    let document = serde_json::to_string_pretty(&jwks([&key]))?;
    write_atomically(&data.jwks(), document.as_bytes(), 0o644)?;
    Ok(key)
}

/// The data directory's dev key, which `up` must have created.
pub fn load_dev_key(data: &DataDir) -> anyhow::Result<SigningKey> {
    let path = data.signing_key();
    if !path.exists() {
        bail!(
            "no signing key at {}: run `studycafe up` with this data directory first",
            path.display()
        );
    }
    read_key(&path)
}

fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    SigningKey::from_pkcs8_pem(DEV_KID, &pem)
        .with_context(|| format!("{} is not a usable key", path.display()))
}

/// Writes through a temporary file and a rename, so a crash mid-write never leaves a torn key
/// that would stop every later start.
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
    fn the_key_is_generated_once_then_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let data = data_dir(&tmp);
        assert!(load_dev_key(&data).is_err(), "no key before the first `up`");

        let first = ensure_dev_key(&data).unwrap();
        let again = ensure_dev_key(&data).unwrap();
        let loaded = load_dev_key(&data).unwrap();
        assert_eq!(first.kid(), DEV_KID);
        assert_eq!(first.public_jwk(), again.public_jwk());
        assert_eq!(first.public_jwk(), loaded.public_jwk());

        let mode = std::fs::metadata(data.signing_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let published: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data.jwks()).unwrap()).unwrap();
        assert_eq!(published["keys"][0], first.public_jwk());
        assert!(!data.signing_key().with_extension("tmp").exists());
    }
}
