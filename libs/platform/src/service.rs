//! The process around a service: runtime, configuration, logs, signals, exit code.
//!
//! Every service executable is the same shape (read a typed config, stop with a message naming
//! the variable if it is wrong, start tracing, build the app, run it until SIGINT/SIGTERM), so
//! its `main` is one call to [`main`]. The runtime is built here rather than with
//! `#[tokio::main]` so that blocking work abandoned at shutdown (a client still waiting on an
//! unreachable broker) cannot hold the process: by then everything durable is committed.

use std::{future::Future, process::ExitCode, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    config::{ConfigError, Env},
    observability, shutdown,
};

/// Exit code for a configuration error (distinct from a failure at run time).
pub const CONFIG_ERROR: u8 = 2;

/// Runs a service process. `load` reads the configuration from the environment; `run` builds
/// the app and runs it until the token is cancelled.
pub fn main<C, L, R, F>(service: &'static str, load: L, run: R) -> ExitCode
where
    L: FnOnce(&Env) -> Result<C, ConfigError>,
    R: FnOnce(C, CancellationToken) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let env = Env::from_process();
    let loaded = drain_from(&env).and_then(|drain| Ok((drain, load(&env)?)));
    let (drain, config) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{service}: configuration error: {e}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{service}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        observability::init_tracing(service);
        let token = shutdown::on_signal_after_drain(drain);
        let result = run(config, token).await;
        let code = match result {
            Ok(()) => {
                tracing::info!("{service} stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "{service} stopped on an error");
                ExitCode::FAILURE
            }
        };
        observability::shutdown_tracing();
        code
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// `SHUTDOWN_DRAIN_MS` (default 0, at most 60000): how long after SIGTERM the process reports
/// not ready while still serving, before it closes its listener (see
/// [`shutdown::on_signal_after_drain`]). `studycafe up` sets it above its balancers' check
/// period; Kubernetes drains with a `preStop` hook instead.
pub fn drain_from(env: &Env) -> Result<Duration, ConfigError> {
    env.millis(
        "SHUTDOWN_DRAIN_MS",
        Duration::ZERO,
        Duration::ZERO,
        Duration::from_secs(60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_defaults_to_none_and_names_its_variable_when_wrong() {
        assert_eq!(drain_from(&Env::from_pairs([])).unwrap(), Duration::ZERO);
        assert_eq!(
            drain_from(&Env::from_pairs([("SHUTDOWN_DRAIN_MS", "2500")])).unwrap(),
            Duration::from_millis(2500)
        );
        for bad in ["soon", "60001", "-1"] {
            let error = drain_from(&Env::from_pairs([("SHUTDOWN_DRAIN_MS", bad)])).unwrap_err();
            assert!(error.to_string().contains("SHUTDOWN_DRAIN_MS"), "{error}");
        }
    }
}
