//! The client's files under `$VEIL_HOME` (default `~/.config/veil`):
//! `identity.pem` (mode 0600) and `cas.json` (pinned CAS certificates).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use veil_client::{CasClient, ClientIdentity, Trust};

use crate::cli::CasUrl;
use crate::failure::Failure;

/// `$VEIL_HOME`, default `~/.config/veil`.
pub fn veil_home() -> PathBuf {
    if let Some(h) = std::env::var_os("VEIL_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    home.join(".config/veil")
}

/// Where the client identity lives.
pub fn identity_path() -> PathBuf {
    veil_home().join("identity.pem")
}

fn pins_path() -> PathBuf {
    veil_home().join("cas.json")
}

/// One verified CAS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedCas {
    /// SHA-256 of the CAS's TLS certificate (DER), hex.
    pub certificate_sha256: String,
    /// The TEE the CAS was attested in.
    pub tee: String,
    /// Its measurement, hex.
    pub measurement: String,
    /// When it was verified (Unix seconds).
    pub verified_at: u64,
}

/// `cas.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    /// The CAS used when neither `--cas` nor `VEIL_CAS` names one.
    pub default: Option<String>,
    /// Verified CASes by URL.
    pub cas: BTreeMap<String, PinnedCas>,
}

impl Pins {
    /// Reads `cas.json` (empty when missing).
    pub fn load() -> Result<Pins, Failure> {
        let path = pins_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Failure::Usage(format!(
                    "{} is not valid: {e}; remove it and run `veil cas verify` again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pins::default()),
            Err(e) => Err(Failure::io("cannot read", &path, e)),
        }
    }

    /// Writes `cas.json`.
    pub fn save(&self) -> Result<(), Failure> {
        let path = pins_path();
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Failure::Usage(format!("cannot encode pins: {e}")))?;
        write_private(&path, &text)
    }
}

/// Writes a file readable only by its owner, creating parent directories.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Failure::io("cannot create", parent, e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Failure::io("cannot create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Failure::io("cannot replace", path, e))
}

/// The client identity, when one was created.
pub fn load_identity() -> Result<Option<veil_ca::Identity>, Failure> {
    let path = identity_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = zeroize::Zeroizing::new(text);
            veil_ca::Identity::from_pem(&text)
                .map(Some)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::io("cannot read", &path, e)),
    }
}

/// The CAS named by `--cas`/`VEIL_CAS`/the default pin, and its pinned
/// certificate digest.
fn pinned(url: &CasUrl) -> Result<(String, [u8; 32]), Failure> {
    let pins = Pins::load()?;
    let url =
        match url.url.clone().or(pins.default.clone()) {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => return Err(Failure::Usage(
                "no CAS given: pass --cas URL, set VEIL_CAS, or run `veil cas verify URL` first"
                    .into(),
            )),
        };
    let pin = pins.cas.get(&url).ok_or_else(|| {
        Failure::Usage(format!(
            "the CAS at {url} is not verified yet: run `veil cas verify {url}` first"
        ))
    })?;
    let mut sha = [0u8; 32];
    hex::decode_to_slice(&pin.certificate_sha256, &mut sha).map_err(|_| {
        Failure::Usage(format!(
            "the pin for {url} in cas.json is not 64 hex digits"
        ))
    })?;
    Ok((url, sha))
}

fn connect(
    (url, sha): (String, [u8; 32]),
    identity: Option<ClientIdentity>,
) -> Result<CasClient, Failure> {
    veil_client::CasClient::new(&url, Trust::Pinned(sha), identity)
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// A client of the CAS named by `--cas`/`VEIL_CAS`/the default pin, pinned,
/// with the client identity when `with_identity` (required then).
pub fn client(url: &CasUrl, with_identity: bool) -> Result<CasClient, Failure> {
    // The CAS first: an unverified CAS is the first thing to fix.
    let cas = pinned(url)?;
    let identity = if with_identity {
        let id = load_identity()?.ok_or_else(|| {
            Failure::Usage(
                "this needs your client identity: run `veil identity create` first".into(),
            )
        })?;
        Some(ClientIdentity {
            chain: vec![id.cert_der()],
            key: id.key_der(),
        })
    } else {
        None
    };
    connect(cas, identity)
}

/// A client of the same CAS presenting `identity` (the launcher's attested
/// certificate and key).
pub fn client_as(url: &CasUrl, identity: ClientIdentity) -> Result<CasClient, Failure> {
    connect(pinned(url)?, Some(identity))
}

/// A current-thread tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))
}

impl From<veil_client::ClientError> for Failure {
    fn from(e: veil_client::ClientError) -> Self {
        match &e {
            veil_client::ClientError::Api { status, .. }
                if *status == 403 || *status == 409 || *status == 422 =>
            {
                Failure::NotAcceptable(e.to_string())
            }
            _ => Failure::Usage(e.to_string()),
        }
    }
}
