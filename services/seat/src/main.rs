use std::process::ExitCode;

use seat_service::{App, SeatConfig};

fn main() -> ExitCode {
    studycafe_platform::service::main("seat", SeatConfig::from_env, |config, shutdown| async {
        let app = App::build(config, shutdown).await?;
        tracing::info!(addr = %app.local_addr(), "seat service listening");
        app.run().await
    })
}
