use std::process::ExitCode;

use registration_service::{App, RegistrationConfig};

fn main() -> ExitCode {
    studycafe_platform::service::main(
        "registration",
        RegistrationConfig::from_env,
        |config, shutdown| async {
            let app = App::build(config, shutdown).await?;
            tracing::info!(addr = %app.local_addr(), "registration service listening");
            app.run().await
        },
    )
}
