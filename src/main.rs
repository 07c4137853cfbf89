//! The `openexec` binary: parse arguments, dispatch, exit.
use std::process::ExitCode;

use clap::Parser as _;

#[cfg(feature = "server")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = openexec::cli::Cli::parse();
    openexec::cli::run(cli)
}
