//! `veil`: the one binary of Veil. A thin layer over the libraries: it parses
//! arguments (clap, noun-verb), calls a library, prints, and maps every error
//! to an exit code in one place (`failure::Failure::exit_code`).
//!
//! Exit codes: 0 success; 1 the thing checked is not acceptable (evidence not
//! genuine, report data mismatch, ...); 2 usage or I/O error. `veil run`
//! exits with the program's status (128 + N when signal N ended it), or,
//! when the program could not be started: 69 CAS unreachable or untrusted,
//! 77 attestation denied, 71 the private file mount could not be set up,
//! 126 the program could not be executed, 127 it was not found.

mod cli;
mod cmd;
mod config;
mod failure;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    match cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("veil: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
