//! The `openexec` binary: parse arguments, dispatch, exit.
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = openexec::cli::Cli::parse();
    openexec::cli::run(cli)
}
