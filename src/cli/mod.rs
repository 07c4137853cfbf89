//! Command-line interface: argument definitions and the subcommand shells.
//!
//! Each subcommand is a thin shell over the library: it reads files or
//! opens the store, calls one library function and prints one result. No
//! format or verification logic lives here.

mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// OpenExec: an execution boundary for AI agents with a verifiable receipt ledger.
#[derive(Debug, Parser)]
#[command(name = "openexec", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a receipt offline against the log's verifier key.
    Verify(verify::VerifyArgs),
}

/// Runs a parsed command line and returns the process exit code.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Verify(args) => verify::run(&args),
    }
}
