use std::process::ExitCode;

use seat_service::{App, SeatConfig};
use studycafe_platform::{config::Env, observability, shutdown};

#[tokio::main]
async fn main() -> ExitCode {
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
