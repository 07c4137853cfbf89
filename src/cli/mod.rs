//! Command-line interface: argument definitions and the subcommand shells.
//!
//! Each subcommand is a thin shell over the library: it reads files or
//! opens the store, calls one library function and prints one result. No
//! format or verification logic lives here.

#[cfg(feature = "server")]
mod approve;
#[cfg(feature = "server")]
mod audit_url;
#[cfg(feature = "server")]
mod bench;
#[cfg(feature = "server")]
mod ledger_cmds;
#[cfg(feature = "server")]
mod migrate;
#[cfg(feature = "server")]
mod recover;
#[cfg(feature = "server")]
mod redact;
#[cfg(feature = "server")]
mod rotate;
#[cfg(feature = "server")]
mod sd_notify;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod signals;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
mod token;
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
    Serve(Box<serve::ServeArgs>),
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
    /// Re-verify a whole ledger in a data directory (service stopped), or a running log through its tiles (`--url`).
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
    /// Create, list and revoke principals' bearer tokens.
    #[cfg(feature = "server")]
    Token(token::TokenArgs),
    /// Erase an entry's kept content through a running service's admin socket (recorded in the log).
    #[cfg(feature = "server")]
    Redact(redact::RedactArgs),
    /// Retire a stopped log's key: end it with an entry naming a new log, and start that log.
    #[cfg(feature = "server")]
    Rotate(rotate::RotateArgs),
    /// Append synthetic entries directly (load generator and test helper).
    #[cfg(feature = "server")]
    #[command(hide = true)]
    LedgerLoad(ledger_cmds::LedgerLoadArgs),
}

/// The `main` of an operator's binary: parses the process's arguments and
/// runs them with the operator's sealed `registry`, offering every
/// subcommand the `openexec` binary offers, under the binary's own name
/// and version (`--help`, `--version`).
#[cfg(feature = "server")]
#[must_use]
pub fn main(registry: crate::action::Registry) -> ExitCode {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let binary = &registry.info().binary;
    let matches = Cli::command()
        .name(binary.name.clone())
        .version(binary.version.clone())
        .get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => run_with(cli, registry),
        Err(e) => e.exit(),
    }
}

/// Runs a parsed command line with the built-in demo actions and returns
/// the process exit code.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    #[cfg(feature = "server")]
    {
        match crate::action::Registry::builtin() {
            Ok(registry) => run_with(cli, registry),
            Err(e) => {
                eprintln!("openexec: {e}");
                ExitCode::FAILURE
            }
        }
    }
    #[cfg(not(feature = "server"))]
    {
        dispatch(cli)
    }
}

/// Runs a parsed command line with `registry` and returns the process exit
/// code.
#[cfg(feature = "server")]
#[must_use]
pub fn run_with(cli: Cli, registry: crate::action::Registry) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(&args, registry),
        Command::Rotate(args) => rotate::run(&args, registry),
        other => dispatch(Cli { command: other }),
    }
}

/// Every subcommand but `serve`.
fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        #[cfg(feature = "server")]
        Command::Serve(args) => match crate::action::Registry::builtin() {
            Ok(registry) => serve::run(&args, registry),
            Err(e) => {
                eprintln!("openexec: {e}");
                ExitCode::FAILURE
            }
        },
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
        Command::Token(args) => token::run(&args),
        #[cfg(feature = "server")]
        Command::Rotate(args) => match crate::action::Registry::builtin() {
            Ok(registry) => rotate::run(&args, registry),
            Err(e) => {
                eprintln!("openexec: {e}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "server")]
        Command::LedgerLoad(args) => ledger_cmds::ledger_load(&args),
        #[cfg(feature = "server")]
        Command::Redact(args) => redact::run(&args),
    }
}
