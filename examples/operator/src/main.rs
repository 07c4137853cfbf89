//! `openexec-operator`: every `openexec` subcommand, serving the actions
//! of this crate beside the demo actions.

use std::process::ExitCode;

use openexec_example_operator::Config;

fn main() -> ExitCode {
    match Config::from_env().and_then(Config::registry) {
        Ok(registry) => openexec::cli::main(registry),
        Err(e) => {
            eprintln!("openexec-operator: {e}");
            ExitCode::FAILURE
        }
    }
}
