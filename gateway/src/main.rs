use std::process::ExitCode;

use studycafe_gateway::{App, GatewayConfig};

fn main() -> ExitCode {
    studycafe_platform::service::main(
        "gateway",
        GatewayConfig::from_env,
        |config, shutdown| async {
            let app = App::build(config, shutdown).await?;
            tracing::info!(addr = %app.local_addr(), "gateway listening");
            app.run().await
        },
    )
}
