use std::fs;
use std::io::Write;
use std::path::Path;

use veil_attest::{Evidence, ReportData, Tee, Time};
use veil_attest_sim::{SimPlatformKey, SimStatement};

use crate::{Collected, EvidenceProvider, ProviderError};

/// File name of the sim platform private key inside the sim directory.
pub const PLATFORM_KEY_FILE: &str = "platform.key";
/// File name of the sim platform public key inside the sim directory.
pub const PLATFORM_PUB_FILE: &str = "platform.pub";

/// The simulated TEE: signs statements with a platform key kept in a file.
///
/// Gives no protection: anyone who can read the key file can forge evidence.
#[derive(Debug)]
pub struct SimProvider {
    key: SimPlatformKey,
    measurement: [u8; 48],
}

impl SimProvider {
    /// Loads the platform key from `dir`, creating the directory and a new key
    /// (mode 0600) on first use, and states `measurement` in its evidence.
    pub fn open_or_create(dir: &Path, measurement: [u8; 48]) -> Result<Self, ProviderError> {
        let key_path = dir.join(PLATFORM_KEY_FILE);
        let key = if key_path.exists() {
            load_key(&key_path)?
        } else {
            create_key(dir)?
        };
        Ok(SimProvider { key, measurement })
    }

    /// The platform public key, which a verifier must be told to trust.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }
}

fn load_key(path: &Path) -> Result<SimPlatformKey, ProviderError> {
    let text =
        zeroize::Zeroizing::new(fs::read(path).map_err(|e| ProviderError::io("reading", path, e))?);
    SimPlatformKey::from_pem(&text).map_err(|e| ProviderError::SimKey {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

fn create_key(dir: &Path) -> Result<SimPlatformKey, ProviderError> {
    fs::create_dir_all(dir).map_err(|e| ProviderError::io("creating", dir, e))?;
    let key_path = dir.join(PLATFORM_KEY_FILE);
    let key = SimPlatformKey::generate().map_err(|e| ProviderError::SimKey {
        path: key_path.clone(),
        detail: e.to_string(),
    })?;
    write_new(&key_path, key.to_pem().as_bytes(), 0o600)?;
    write_new(
        &dir.join(PLATFORM_PUB_FILE),
        key.public_key_pem().as_bytes(),
        0o644,
    )?;
    tracing::info!(dir = %dir.display(), "created a new sim platform key");
    Ok(key)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProviderError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| ProviderError::io("creating", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| ProviderError::io("writing", path, e))
}

impl EvidenceProvider for SimProvider {
    fn tee(&self) -> Tee {
        Tee::Sim
    }

    fn collect(&self, report_data: &ReportData) -> Result<Collected, ProviderError> {
        let bytes = self.key.sign(&SimStatement {
            measurement: self.measurement,
            report_data: *report_data,
            issued_at: Time::now(),
            debug: false,
        });
        Ok(Collected {
            evidence: Evidence {
                tee: Tee::Sim,
                bytes,
            },
            endorsements: Vec::new(),
        })
    }
}
