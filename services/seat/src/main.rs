use std::process::ExitCode;

use seat_service::{App, SeatConfig};
use studycafe_platform::{config::Env, observability, shutdown};

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("seat-service: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run());
    // Blocking work abandoned at shutdown (a client waiting on an unreachable broker) must not
    // hold the process: everything durable is committed by now.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn run() -> ExitCode {
    let config = match SeatConfig::from_env(&Env::from_process()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("seat-service: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    observability::init_tracing("seat");
    let shutdown = shutdown::on_signal();
    let app = match App::build(config, shutdown).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "seat service failed to start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %app.local_addr(), "seat service listening");
    let result = app.run().await;
    observability::shutdown_tracing();
    match result {
        Ok(()) => {
            tracing::info!("seat service stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "seat service stopped on an error");
            ExitCode::FAILURE
        }
    }
}
