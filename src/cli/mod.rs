//! Command-line interface: argument definitions and the subcommand shells.
//!
//! Each subcommand is a thin shell over the library: it reads files or
//! opens the store, calls one library function and prints one result. No
//! format or verification logic lives here.

#[cfg(feature = "server")]
mod approve;
#[cfg(feature = "server")]
mod bench;
#[cfg(feature = "server")]
mod ledger_cmds;
#[cfg(feature = "server")]
mod migrate;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod signals;
mod verify;
#[cfg(feature = "server")]
mod witness;

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
    /// Run the execution boundary service.
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    /// Mint an approval artifact (v1 or v2) from an approver private key.
    #[cfg(feature = "server")]
    Approve(approve::ApproveArgs),
    /// Create an approver key pair (PKCS#8 PEM private key; prints the public key PEM).
    #[cfg(feature = "server")]
    ApproverKeygen(approve::ApproverKeygenArgs),
    /// Verify a receipt offline against the log's verifier key.
    Verify(verify::VerifyArgs),
    /// Create a log signing key (signed-note form) and print its verifier key.
    #[cfg(feature = "server")]
    Keygen(ledger_cmds::KeygenArgs),
    /// Re-verify a whole ledger in a data directory (service stopped).
    #[cfg(feature = "server")]
    Audit(ledger_cmds::AuditArgs),
    /// Convert a stopped service's store to this build's store format.
    #[cfg(feature = "server")]
    Migrate(migrate::MigrateArgs),
    /// Load-test a running service: POST /execute with unique nonces.
    #[cfg(feature = "server")]
    Bench(bench::BenchArgs),
    /// Run a C2SP witness: follow logs, cosign consistent checkpoints, serve add-checkpoint.
    #[cfg(feature = "server")]
    Witness(witness::WitnessArgs),
    /// Append synthetic entries directly (load generator and test helper).
    #[cfg(feature = "server")]
    #[command(hide = true)]
    LedgerLoad(ledger_cmds::LedgerLoadArgs),
}

/// Runs a parsed command line and returns the process exit code.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(&args),
        #[cfg(feature = "server")]
        Command::Approve(args) => approve::approve(&args),
        #[cfg(feature = "server")]
        Command::ApproverKeygen(args) => approve::approver_keygen(&args),
        Command::Verify(args) => verify::run(&args),
        #[cfg(feature = "server")]
        Command::Keygen(args) => ledger_cmds::keygen(&args),
        #[cfg(feature = "server")]
        Command::Audit(args) => ledger_cmds::run_audit(&args),
        #[cfg(feature = "server")]
        Command::Migrate(args) => migrate::run(&args),
        #[cfg(feature = "server")]
        Command::Bench(args) => bench::run(&args),
        #[cfg(feature = "server")]
        Command::Witness(args) => witness::run(&args),
        #[cfg(feature = "server")]
        Command::LedgerLoad(args) => ledger_cmds::ledger_load(&args),
    }
}
