//! The `baton` binary: one executable for the server and the operator tools.
//!
//! Subcommands are variants of [`Command`]; each lives in its own module and returns the process
//! exit code. Configuration enters here (flags and `BATON_*` variables) and is passed down typed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod enrollment_flags;
mod inspect;
mod portal_flags;
mod push_flags;
mod retention_flags;
mod serve;

/// Baton: an Apple MDM server for shared iOS devices.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands of `baton`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Decode an MDM plist (check-in message, command report, command or configuration profile)
    /// and print what it is, plus its content as JSON. Exit 0 when it decodes, 2 when it does not.
    Inspect(inspect::InspectArgs),
    /// Run the MDM server (self-signed TLS and a generated API key when nothing is configured).
    Serve(Box<serve::ServeArgs>),
    /// Operator commands against a running server's admin API.
    #[command(flatten)]
    Admin(Box<cli::AdminCommand>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Admin(command) => cli::run(&command),
        Command::Serve(args) => {
            init_tracing();
            serve::run(*args)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). Only the binary installs a subscriber.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
