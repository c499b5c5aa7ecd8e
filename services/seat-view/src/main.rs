//! `seat-view-service [--rebuild]`: the read side of studycafe as its own process.

use std::process::ExitCode;

use seat_view_service::{App, SeatViewConfig};

const USAGE: &str = "usage: seat-view-service [--rebuild]

  --rebuild   wipe the views, then rebuild them by replaying every topic from the start
              (same as SEAT_VIEW_REBUILD=true); the service keeps running afterwards

Configured by environment variables (SEAT_VIEW_*, KAFKA_*, AUTH_*): see the README.";

fn main() -> ExitCode {
    let mut rebuild = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--rebuild" => rebuild = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("seat-view: unknown argument {other:?}\n\n{USAGE}");
                return ExitCode::from(studycafe_platform::service::CONFIG_ERROR);
            }
        }
    }
    studycafe_platform::service::main(
        "seat-view",
        |env| {
            let mut config = SeatViewConfig::from_env(env)?;
            config.rebuild |= rebuild;
            Ok(config)
        },
        |config, shutdown| async {
            let app = App::build(config, shutdown).await?;
            tracing::info!(addr = %app.local_addr(), "seat-view service listening");
            app.run().await
        },
    )
}
