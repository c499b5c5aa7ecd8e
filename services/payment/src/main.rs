use std::process::ExitCode;

use payment_service::{App, PaymentConfig};

fn main() -> ExitCode {
    studycafe_platform::service::main(
        "payment",
        PaymentConfig::from_env,
        |config, shutdown| async {
            let app = App::build(config, shutdown).await?;
            tracing::info!(addr = %app.local_addr(), "payment service listening");
            app.run().await
        },
    )
}
