use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use veil_attest::{Evidence, ReportData, Tee};

use crate::{Collected, EvidenceProvider, ProviderError};

/// SGX evidence through Gramine's `/dev/attestation` pseudo-files.
///
/// Writing 64 bytes to `user_report_data` and then reading `quote` yields a
/// DCAP quote whose report data is those bytes. Gramine must be configured
/// with `sgx.remote_attestation = "dcap"`.
#[derive(Debug, Clone)]
pub struct GramineProvider {
    dir: PathBuf,
}

impl GramineProvider {
    /// The `/dev/attestation` directory under `root`.
    pub fn dir(root: &Path) -> PathBuf {
        root.join("dev/attestation")
    }

    /// A provider using `root/dev/attestation`, which must exist and be DCAP.
    pub fn new(root: &Path) -> Result<Self, ProviderError> {
        let dir = Self::dir(root);
        if !dir.join("quote").exists() {
            return Err(ProviderError::NoTee {
                looked_for: dir.join("quote").display().to_string(),
            });
        }
        let kind = dir.join("attestation_type");
        if kind.exists() {
            let t =
                fs::read_to_string(&kind).map_err(|e| ProviderError::io("reading", &kind, e))?;
            if t.trim() != "dcap" {
                return Err(ProviderError::Platform(format!(
                    "Gramine attestation type is {:?}; Veil needs \"dcap\" (set sgx.remote_attestation = \"dcap\" in the manifest)",
                    t.trim()
                )));
            }
        }
        Ok(GramineProvider { dir })
    }
}

impl EvidenceProvider for GramineProvider {
    fn tee(&self) -> Tee {
        Tee::Sgx
    }

    fn collect(&self, report_data: &ReportData) -> Result<Collected, ProviderError> {
        let urd = self.dir.join("user_report_data");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&urd)
            .map_err(|e| ProviderError::io("opening", &urd, e))?;
        f.write_all(&report_data.0)
            .map_err(|e| ProviderError::io("writing", &urd, e))?;
        drop(f);
        let quote_path = self.dir.join("quote");
        let quote =
            fs::read(&quote_path).map_err(|e| ProviderError::io("reading", &quote_path, e))?;
        if quote.is_empty() {
            return Err(ProviderError::Platform(format!(
                "{} returned no quote",
                quote_path.display()
            )));
        }
        Ok(Collected {
            evidence: Evidence {
                tee: Tee::Sgx,
                bytes: quote,
            },
            endorsements: Vec::new(),
        })
    }
}
