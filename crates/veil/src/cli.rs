//! The command line, as clap types. Nothing here does work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use veil_attest::{Tee, Time};

/// Veil: run unmodified programs in trusted execution environments, with
/// secrets, files and traffic never in clear text outside them.
#[derive(Debug, Parser)]
#[command(name = "veil", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify, inspect and collect TEE evidence (quotes, reports, documents).
    #[command(subcommand)]
    Evidence(EvidenceCommand),
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Check that evidence is genuine at a time, and print what it says.
    Verify(VerifyArgs),
    /// Detect what a file is and print its fields, without verifying it.
    Show(ShowArgs),
    /// Ask this machine's TEE for evidence binding the given report data.
    Collect(CollectArgs),
}

/// The TEEs whose evidence `veil evidence verify` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyTee {
    Sgx,
    Tdx,
    Snp,
    Nitro,
    Sim,
}

impl From<VerifyTee> for Tee {
    fn from(t: VerifyTee) -> Tee {
        match t {
            VerifyTee::Sgx => Tee::Sgx,
            VerifyTee::Tdx => Tee::Tdx,
            VerifyTee::Snp => Tee::Snp,
            VerifyTee::Nitro => Tee::Nitro,
            VerifyTee::Sim => Tee::Sim,
        }
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Which TEE the evidence must come from.
    #[arg(long, value_enum)]
    pub tee: VerifyTee,
    /// The evidence file (quote, report as binary or hex, COSE document, sim evidence).
    #[arg(long)]
    pub evidence: PathBuf,
    /// Endorsements: DCAP collateral JSON (sgx, tdx); VCEK or VLEK and CA
    /// chain, DER or PEM (snp); the sim platform public key (sim).
    #[arg(long = "endorsement")]
    pub endorsements: Vec<PathBuf>,
    /// Verify as of this time: Unix seconds or RFC 3339 (default: now).
    #[arg(long, value_parser = parse_time)]
    pub at: Option<Time>,
    /// Fail unless the evidence carries this report data (hex, up to 64 bytes,
    /// zero-padded).
    #[arg(long)]
    pub expect_report_data: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A quote, SNP report, Nitro document, sim evidence or RA-TLS certificate.
    pub file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where `veil evidence collect` gets evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CollectTee {
    /// Whatever TEE interface this machine has (never the simulated TEE).
    Auto,
    Sim,
    Snp,
    Tdx,
    Sgx,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Which TEE interface to use.
    #[arg(long, value_enum, default_value = "auto")]
    pub tee: CollectTee,
    /// Report data to bind, hex (up to 64 bytes, zero-padded).
    #[arg(long)]
    pub report_data: String,
    /// Root under which the kernel interfaces are found (default /); for
    /// --tee sim, the directory of the sim platform key (default
    /// $VEIL_HOME/sim).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Measurement the simulated TEE states, hex (default: SHA-384 of the
    /// veil executable).
    #[arg(long)]
    pub sim_measurement: Option<String>,
    /// Where to write the evidence.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Where to write certificates the platform handed out (SNP), as PEM.
    #[arg(long)]
    pub endorsement_out: Option<PathBuf>,
}

fn parse_time(s: &str) -> Result<Time, String> {
    s.parse::<Time>().map_err(|e| e.to_string())
}
