//! The service executables `up` starts: built first under `cargo run`, found next to
//! `studycafe` otherwise; the Python service's virtual environment brought up to date.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::services::{self, Program, SERVICES, ServiceSpec};

/// This crate's workspace, for building the services under `cargo run`.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The directory holding the service executables: next to `studycafe`. Under `cargo run` the
/// services are built first, with `studycafe`'s own profile, so one command is all a new
/// contributor needs.
pub(super) async fn executables() -> anyhow::Result<PathBuf> {
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

pub(super) fn i_of(spec: &ServiceSpec) -> usize {
    SERVICES
        .iter()
        .position(|s| s.name == spec.name)
        .unwrap_or_default()
}

/// What to execute for each service of [`SERVICES`], in its order: the cargo-built executables
/// in `bin_dir`; for a Python service, the console script of its virtual environment, which
/// its `scripts/venv` brings up to date with its lock file first (a no-op when it is).
pub(super) async fn programs(bin_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
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
