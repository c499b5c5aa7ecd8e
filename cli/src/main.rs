//! `studycafe`: runs the whole suite on one machine (`up`) and mints dev access tokens
//! (`token`). Parsing and exit codes live here; the work is in the modules.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.

mod control;
mod data_dir;
mod dlq;
mod exit;
mod keys;
mod launch;
mod seat_grpc;
mod services;
mod token;
mod up;
mod web_app;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{exit::UsageError, token::Role};

/// Runs the studycafe seat reservation suite on one machine.
#[derive(Debug, Parser)]
#[command(name = "studycafe", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start every service (broker, seat) as its own process, supervise them, stop them on
    /// Ctrl-C.
    ///
    /// Databases, the broker log, dev keys and one log file per service live in the data
    /// directory, so data survives restarts. Ports: STUDYCAFE_BROKER_PORT (default 9092),
    /// STUDYCAFE_SEAT_PORT (default 8081). Other variables (RUST_LOG, SEAT_HOLD_SECS, ...)
    /// pass through to the services.
    ///
    /// Replicas: `--replicas seat=2,payment=2` (or STUDYCAFE_REPLICAS) runs that many
    /// processes of a service, sharing its database and consumer group; replica r (0-based)
    /// listens on the service's port + 200·r, and its successor during a rollout on + 100 more.
    Up {
        /// How many processes of which services, e.g. seat=2,payment=2 [default:
        /// $STUDYCAFE_REPLICAS, else one of each].
        #[arg(long, value_name = "SERVICE=N,...")]
        replicas: Option<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Replace a service's processes under a running `up`, one replica at a time, without
    /// downtime: start the new process (a new build, if there is one), wait until it is ready,
    /// then stop the old one gracefully.
    ///
    /// Fails, leaving the old process serving, when the new one does not become ready.
    Rollout {
        /// The service: identity, payment, seat, registration, seat-view, notification,
        /// gateway.
        service: String,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Print a JWT signed with the dev key of a data directory, for curl demos.
    ///
    /// Example: curl -H "Authorization: Bearer $(studycafe token --user alice)"
    /// http://127.0.0.1:8081/api/seats
    Token {
        /// The user the token is for (its `sub`).
        #[arg(long, value_name = "NAME")]
        user: String,
        /// A role of the user; repeat for several.
        #[arg(long = "role", value_enum, value_name = "ROLE", default_values_t = [Role::Customer])]
        roles: Vec<Role>,
        /// How long the token is valid, in minutes.
        #[arg(long, value_name = "MINUTES", default_value_t = 60,
              value_parser = clap::value_parser!(u32).range(1..))]
        ttl_mins: u32,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Call seat's gRPC API (studycafe.seat.v1), e.g. against `studycafe up`.
    ///
    /// Example: studycafe seat-grpc --token "$(studycafe token --user alice)" reserve
    /// --seat A-01 --starts-at 2026-12-24T09:00:00Z --hours 2
    SeatGrpc {
        /// seat's gRPC address.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8087")]
        addr: String,
        /// The bearer token (`studycafe token --user NAME`, or POST /auth/token).
        #[arg(long, env = "STUDYCAFE_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        call: seat_grpc::Call,
    },
    /// Dead letters: list them, show one, replay them to the topic they came from.
    ///
    /// Example: studycafe dlq list; studycafe dlq replay registration --all
    Dlq {
        #[command(flatten)]
        broker: dlq::Broker,
        #[command(subcommand)]
        call: dlq::Call,
    },
    /// Internal: how `up` starts each service (see `launch.rs`).
    #[command(name = launch::EXEC_SUBCOMMAND, hide = true)]
    ExecChild {
        #[arg(long)]
        parent_pid: u32,
        program: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct DataDirArg {
    /// Where the suite keeps its data [default: $STUDYCAFE_DATA_DIR, else ./var].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up { replicas, data } => tokio::runtime::Builder::new_current_thread()
            // One thread on purpose: see `launch.rs` on why children must be spawned by a
            // thread that lives as long as the process.
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(up::run(data.data_dir, replicas))),
        Command::Rollout { service, data } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| {
                let data = data_dir::DataDir::from_process(data.data_dir)?;
                runtime.block_on(control::request_rollout(&data, &service))
            }),
        Command::Token {
            user,
            roles,
            ttl_mins,
            data,
        } => token::run(data.data_dir, &user, &roles, ttl_mins),
        Command::SeatGrpc { addr, token, call } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(seat_grpc::run(&addr, &token, call))),
        Command::Dlq { broker, call } => dlq::run(&broker, call),
        Command::ExecChild {
            parent_pid,
            program,
        } => return launch::exec_child(parent_pid, &program),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("studycafe: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
