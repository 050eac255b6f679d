//! The CAS's state: its store, identity, verifiers and compiled sessions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use veil_attest::{Registry, Time};
use veil_ca::{CaIdentity, Identity};
use veil_policy::{Session, SessionHash};
use veil_provider::{EvidenceProvider, ProviderChoice, ProviderConfig};
use veil_store::{SealingKey, Store, Table};

use crate::metrics::Metrics;
use crate::nonce::Nonces;

/// How to run a CAS.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// State directory: the store, and with `dev` the key files.
    pub state_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Development mode: sealing key in a file, sim evidence for the CAS
    /// itself, and sim platform keys trusted for launchers.
    pub dev: bool,
    /// Further sim platform public keys to trust (dev only).
    pub trust_sim_keys: Vec<[u8; 32]>,
    /// Nonce lifetime.
    pub nonce_ttl: Duration,
    /// How long a launcher's certificate is valid after attestation; a
    /// launcher renews it by attesting again before it expires.
    pub launcher_cert_validity: Duration,
}

/// The default of [`ServeConfig::launcher_cert_validity`]: 24 hours.
pub const LAUNCHER_CERT_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Why the CAS cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No TEE and not `--dev`.
    #[error("no TEE evidence provider on this machine ({0}); a production CAS must run inside a TEE so clients can attest it. For development, start it with --dev")]
    NoTee(String),
    /// The state directory cannot be used.
    #[error("state directory {path}: {detail}")]
    State {
        /// The directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The store failed to open.
    #[error("store: {0}")]
    Store(#[from] veil_store::StoreError),
    /// Something else.
    #[error("{0}")]
    Other(String),
}

/// A session as the CAS holds it: validated once, when applied.
#[derive(Debug)]
pub struct Active {
    /// The validated policy.
    pub session: Session,
    /// Its hash.
    pub hash: SessionHash,
    /// Its YAML, as applied.
    pub yaml: String,
    /// The session CA that issues launcher certificates.
    pub ca: CaIdentity,
}

/// What [`Cas::open`] found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made once at start-up
pub enum Opened {
    /// The store is open.
    Open(Cas),
    /// The sealing key is gone: waiting for recovery shares.
    Sealed(crate::sealed::SealedCas),
}

/// The running CAS.
#[derive(Debug)]
pub struct Cas {
    pub(crate) store: Store,
    pub(crate) tls: Identity,
    pub(crate) ca: CaIdentity,
    pub(crate) registry: Registry,
    pub(crate) nonces: Nonces,
    pub(crate) launcher_cert_validity: Duration,
    pub(crate) metrics: Metrics,
    pub(crate) evidence: Box<dyn EvidenceProvider>,
    pub(crate) sim_key: Option<[u8; 32]>,
    pub(crate) sessions: RwLock<BTreeMap<String, Arc<Active>>>,
    /// Serializes session changes (apply, approve, secret put).
    pub(crate) change: tokio::sync::Mutex<()>,
}

pub(crate) const META_CA: &[u8] = b"cas.ca";
pub(crate) const META_TLS: &[u8] = b"cas.tls";

/// Stored form of an active session.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredSession {
    pub yaml: String,
    pub hash: String,
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> StartError {
    StartError::State {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

impl Cas {
    /// Opens (or on first start creates) the CAS in `config.state_dir`; a
    /// CAS whose sealing key is gone opens sealed.
    pub fn open(config: &ServeConfig) -> Result<Opened, StartError> {
        let dir = &config.state_dir;
        std::fs::create_dir_all(dir).map_err(|e| state_err(dir, e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| state_err(dir, e))?;
        }
        let sim_dir = dir.join("sim");
        let evidence: Box<dyn EvidenceProvider> = if config.dev {
            veil_provider::provider(
                ProviderChoice::Tee(veil_attest::Tee::Sim),
                &ProviderConfig {
                    root: "/".into(),
                    sim_dir: sim_dir.clone(),
                    sim_measurement: own_measurement(),
                },
            )
            .map_err(|e| StartError::Other(e.to_string()))?
        } else {
            veil_provider::detect(Path::new("/")).map_err(|e| StartError::NoTee(e.to_string()))?
        };
        let sim_key = if config.dev {
            let pem = std::fs::read(sim_dir.join(veil_provider::PLATFORM_PUB_FILE))
                .map_err(|e| state_err(&sim_dir, e))?;
            match veil_attest::Endorsement::from_file_bytes(&pem) {
                Ok(veil_attest::Endorsement::SimPlatformKey(k)) => Some(k),
                _ => {
                    return Err(StartError::Other(format!(
                        "{} is not a sim platform public key",
                        sim_dir.join(veil_provider::PLATFORM_PUB_FILE).display()
                    )))
                }
            }
        } else {
            None
        };
        // TEE-derived sealing keys are not available through configfs-tsm or
        // Gramine's pseudo-files; the key file must live on the TEE's
        // encrypted disk (docs/threat-model.md). When it is gone but the
        // store is there, the CAS starts sealed and waits for recovery shares.
        let key_path = dir.join("sealing.key");
        let store_path = dir.join("cas.redb");
        if !key_path.exists() && store_path.exists() {
            let record_path = dir.join(crate::sealed::RECOVERY_FILE);
            let text = std::fs::read_to_string(&record_path).map_err(|_| {
                StartError::Other(format!(
                    "the sealing key {} is gone and no recovery is configured ({} is missing): restore the key file, or start over with an empty state directory",
                    key_path.display(),
                    record_path.display()
                ))
            })?;
            let record: veil_recovery::RecoveryRecord = serde_json::from_str(&text)
                .map_err(|e| StartError::Other(format!("{}: {e}", record_path.display())))?;
            return Ok(Opened::Sealed(crate::sealed::SealedCas::new(
                store_path, key_path, record, evidence, sim_key,
            )?));
        }
        let sealing_key = SealingKey::load_or_create_key_file(&key_path)?;
        let store = Store::open(&store_path, &sealing_key)?;
        let now = Time::now();
        let (ca, tls) = load_or_create_identity(&store, now)?;
        let mut sim_keys = Vec::new();
        if config.dev {
            sim_keys.extend(sim_key);
            sim_keys.extend(config.trust_sim_keys.iter().copied());
        }
        let registry = veil_verifiers::registry(&veil_verifiers::Options { sim_keys });
        let cas = Cas {
            store,
            tls,
            ca,
            registry,
            nonces: Nonces::new(config.nonce_ttl, 100_000),
            launcher_cert_validity: config.launcher_cert_validity,
            metrics: Metrics::default(),
            evidence,
            sim_key,
            sessions: RwLock::new(BTreeMap::new()),
            change: tokio::sync::Mutex::new(()),
        };
        cas.load_sessions()?;
        Ok(Opened::Open(cas))
    }

    /// SHA-256 of the CAS's CA certificate: what clients pin.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.ca.cert_der()))
    }

    /// The TLS certificate chain (leaf, CA) and key.
    pub fn tls_parts(
        &self,
    ) -> (
        Vec<rustls_pki_types::CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ) {
        (
            vec![
                self.tls.cert_der(),
                rustls_pki_types::CertificateDer::from(self.ca.cert_der().to_vec()),
            ],
            self.tls.key_der(),
        )
    }

    fn load_sessions(&self) -> Result<(), StartError> {
        let rows = self.store.read(|tx| tx.list(Table::SESSIONS, b""))?;
        let mut map = BTreeMap::new();
        for (key, value) in rows {
            let name = String::from_utf8_lossy(&key).into_owned();
            let stored: StoredSession = serde_json::from_slice(&value)
                .map_err(|e| StartError::Other(format!("stored session {name}: {e}")))?;
            let session = veil_policy::parse_session(&stored.yaml)
                .map_err(|e| StartError::Other(format!("stored session {name}: {e}")))?;
            // The hash clients named as predecessor must not change under
            // them (a policy-language change that alters hashing would).
            if session.hash().to_string() != stored.hash {
                return Err(StartError::Other(format!(
                    "stored session {name} now hashes to {}, not {} as applied: this build reads the policy differently",
                    session.hash(),
                    stored.hash
                )));
            }
            let ca = crate::sessions::load_session_ca(&self.store, &name)
                .map_err(|e| StartError::Other(format!("session {name}: {e}")))?;
            map.insert(
                name,
                Arc::new(Active {
                    hash: session.hash(),
                    session,
                    yaml: stored.yaml,
                    ca,
                }),
            );
        }
        self.metrics.sessions.set(map.len() as i64);
        if let Ok(mut g) = self.sessions.write() {
            *g = map;
        }
        Ok(())
    }

    pub(crate) fn session(&self, name: &str) -> Option<Arc<Active>> {
        self.sessions.read().ok()?.get(name).cloned()
    }
}

fn load_or_create_identity(store: &Store, now: Time) -> Result<(CaIdentity, Identity), StartError> {
    let existing = store.read(|tx| {
        Ok::<_, veil_store::StoreError>((
            tx.get(Table::META, META_CA)?,
            tx.get(Table::META, META_TLS)?,
        ))
    })?;
    if let (Some(ca), Some(tls)) = existing {
        let ca = CaIdentity::from_pem(&String::from_utf8_lossy(&ca))
            .map_err(|e| StartError::Other(format!("stored CAS identity: {e}")))?;
        let tls = Identity::from_pem(&String::from_utf8_lossy(&tls))
            .map_err(|e| StartError::Other(format!("stored CAS TLS identity: {e}")))?;
        return Ok((ca, tls));
    }
    let ca = CaIdentity::generate("Veil CAS", 3650, now)
        .map_err(|e| StartError::Other(format!("cannot make the CAS identity: {e}")))?;
    let tls = ca
        .issue_server_identity(
            &["localhost".to_owned(), "veil-cas".to_owned()],
            &[
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            now,
            3650,
        )
        .map_err(|e| StartError::Other(format!("cannot make the CAS TLS certificate: {e}")))?;
    store.write(|tx| {
        tx.put(Table::META, META_CA, ca.to_pem().as_bytes())?;
        tx.put(Table::META, META_TLS, tls.to_pem().as_bytes())?;
        tx.audit(veil_store::AuditEntry::new(
            "cas.init",
            "cas",
            "cas",
            serde_json::json!({ "ca_fingerprint": ca.fingerprint().to_string() }),
        ))?;
        Ok::<_, veil_store::StoreError>(())
    })?;
    Ok((ca, tls))
}

/// SHA-384 of the running executable: what the sim TEE says it runs.
fn own_measurement() -> [u8; 48] {
    veil_provider::own_measurement().unwrap_or([0; 48])
}
