use std::process::ExitCode;

use identity_service::{App, IdentityConfig};
use studycafe_platform::{
    config::Env,
    service::{self, CONFIG_ERROR},
};

const USAGE: &str = "usage: identity-service [serve | add-key]
  serve    run the service (the default)
  add-key  write a new signing key into IDENTITY_KEYS_DIR, print its kid and exit;
           a running service starts signing with it without a restart";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => serve(),
        ["add-key"] => add_key(),
        ["help" | "-h" | "--help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(CONFIG_ERROR)
        }
    }
}

fn serve() -> ExitCode {
    service::main(
        "identity",
        IdentityConfig::from_env,
        |config, shutdown| async {
            let app = App::build(config, shutdown).await?;
            tracing::info!(addr = %app.local_addr(), "identity service listening");
            app.run().await
        },
    )
}

fn add_key() -> ExitCode {
    let dir = match identity_service::config::keys_dir(&Env::from_process()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("identity: configuration error: {e}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    match identity_service::add_key(&dir) {
        Ok(kid) => {
            println!("{kid}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("identity: {e:#}");
            ExitCode::FAILURE
        }
    }
}
