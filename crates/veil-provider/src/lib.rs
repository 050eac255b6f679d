//! # veil-provider: evidence from the platform Veil runs on
//!
//! This crate runs *inside* the TEE, next to the launcher. It asks the
//! platform for evidence that binds 64 bytes of report data, through the
//! kernel's own interfaces:
//!
//! * [`TsmProvider`]: Linux configfs-tsm (`/sys/kernel/config/tsm/report`),
//!   used by TDX (`tdx_guest`) and SEV-SNP (`sev_guest`) guests.
//! * [`GramineProvider`]: Gramine's `/dev/attestation` pseudo-files, for SGX
//!   enclaves (DCAP).
//! * [`SimProvider`]: the simulated TEE, a platform key kept in a file.
//!
//! Each provider reads below a configurable root directory (`/` on a real
//! machine) so tests point it at a fake directory that serves real vectors.
//! [`detect`] finds which hardware interface the machine has; it never picks
//! the simulated TEE by itself, because sim evidence protects nothing.

mod gramine;
mod sim;
mod tsm;

use std::path::{Path, PathBuf};

pub use gramine::GramineProvider;
pub use sim::{SimProvider, PLATFORM_KEY_FILE, PLATFORM_PUB_FILE};
pub use tsm::{parse_snp_cert_table, TsmProvider};
use veil_attest::{Endorsement, Evidence, ReportData, Tee};

/// Evidence together with what the platform handed out beside it.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The evidence.
    pub evidence: Evidence,
    /// Endorsements the platform supplied (the SNP certificate table from
    /// configfs-tsm's auxblob: VCEK or VLEK, ASK, ARK), possibly none.
    pub endorsements: Vec<Endorsement>,
}

/// Why evidence could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No supported TEE interface was found.
    #[error("no TEE found: looked for {looked_for}; on a machine without TEE hardware use the simulated TEE (--tee sim) for development")]
    NoTee {
        /// The paths that were probed.
        looked_for: String,
    },
    /// The platform's interface is there but is not the TEE asked for.
    #[error("the platform's attestation provider is {found:?}, not {expected}")]
    WrongProvider {
        /// The TEE asked for.
        expected: Tee,
        /// What the platform says it is.
        found: String,
    },
    /// Reading or writing the interface failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The platform answered with something unusable.
    #[error("{0}")]
    Platform(String),
    /// The simulated TEE's key could not be loaded or made.
    #[error("sim platform key {path}: {detail}")]
    SimKey {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl ProviderError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        ProviderError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// Obtains evidence from one platform.
pub trait EvidenceProvider: std::fmt::Debug + Send + Sync {
    /// The TEE whose evidence this provider produces.
    fn tee(&self) -> Tee;

    /// Asks the platform for evidence that binds `report_data`.
    fn collect(&self, report_data: &ReportData) -> Result<Collected, ProviderError>;
}

/// Which provider to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderChoice {
    /// Whatever hardware interface the machine has (never the sim TEE).
    Auto,
    /// A specific TEE.
    Tee(Tee),
}

/// Where providers look.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Root under which kernel interfaces are found (`/` on a real machine).
    pub root: PathBuf,
    /// Directory of the simulated TEE's platform key.
    pub sim_dir: PathBuf,
    /// The measurement the simulated TEE states (what it "launched").
    pub sim_measurement: [u8; 48],
}

/// Picks a provider for `choice` under `config`.
pub fn provider(
    choice: ProviderChoice,
    config: &ProviderConfig,
) -> Result<Box<dyn EvidenceProvider>, ProviderError> {
    match choice {
        ProviderChoice::Auto => detect(&config.root),
        ProviderChoice::Tee(Tee::Sim) => Ok(Box::new(SimProvider::open_or_create(
            &config.sim_dir,
            config.sim_measurement,
        )?)),
        ProviderChoice::Tee(Tee::Sgx) => Ok(Box::new(GramineProvider::new(&config.root)?)),
        ProviderChoice::Tee(tee @ (Tee::Tdx | Tee::Snp)) => {
            Ok(Box::new(TsmProvider::new(&config.root, Some(tee))?))
        }
        ProviderChoice::Tee(tee) => Err(ProviderError::Platform(format!(
            "Veil has no evidence provider for {tee}: {tee} evidence is produced outside Veil"
        ))),
    }
}

/// Finds the TEE interface this machine has under `root`.
///
/// Gramine's `/dev/attestation` (SGX) is tried first, then configfs-tsm
/// (TDX or SNP, told apart by the `provider` attribute on first use).
pub fn detect(root: &Path) -> Result<Box<dyn EvidenceProvider>, ProviderError> {
    let gramine = GramineProvider::dir(root);
    if gramine.join("quote").exists() {
        return Ok(Box::new(GramineProvider::new(root)?));
    }
    let tsm = TsmProvider::dir(root);
    if tsm.is_dir() {
        return Ok(Box::new(TsmProvider::new(root, None)?));
    }
    Err(ProviderError::NoTee {
        looked_for: format!("{} and {}", gramine.display(), tsm.display()),
    })
}

/// SHA-384 of a file's contents, read in chunks: how the simulated TEE
/// measures what it runs.
pub fn measure_file(path: &Path) -> std::io::Result<[u8; 48]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA384);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(buf.get(..n).unwrap_or_default());
    }
    let mut out = [0u8; 48];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

/// The measurement of the running executable (see [`measure_file`]).
pub fn own_measurement() -> std::io::Result<[u8; 48]> {
    measure_file(&std::env::current_exe()?)
}
