//! The `baton` binary: one executable for the server and the operator tools.
//!
//! Subcommands are variants of [`Command`]; each lives in its own module and returns the process
//! exit code. Configuration enters here (flags and `BATON_*` variables) and is passed down typed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backup;
mod cli;
mod data_lock;
mod enrollment_flags;
mod inspect;
mod logging;
mod portal_flags;
mod push_cert;
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
    /// The APNs push certificate: make the vendor-signed request for Apple, upload the
    /// certificate Apple returns, show the one in use.
    PushCert(push_cert::PushCertArgs),
    /// Copy a stopped server's data directory (store, CA key, TLS files) to a new directory.
    Backup(backup::BackupArgs),
    /// Put a backup into a data directory; refuses one a running server holds.
    Restore(backup::RestoreArgs),
    /// Operator commands against a running server's admin API.
    #[command(flatten)]
    Admin(Box<cli::AdminCommand>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Admin(command) => cli::run(&command),
        Command::PushCert(args) => push_cert::run(&args),
        Command::Backup(args) => backup::run_backup(&args),
        Command::Restore(args) => backup::run_restore(&args),
        Command::Serve(args) => serve::run(*args),
    }
}
