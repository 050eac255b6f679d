//! A CAS whose sealing key is gone: it serves status, its evidence and the
//! recovery endpoint, and nothing else, until K owners' shares recover the
//! key (CAS issue §6, `veil cas init` / `veil cas unseal`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use veil_attest::Time;
use veil_ca::{CaIdentity, Identity};
use veil_provider::EvidenceProvider;
use veil_recovery::{AddOutcome, Combiner, PlainShare, RecoveryRecord};
use veil_store::{SealingKey, Store, StoreError};

use crate::error::ApiError;
use crate::state::StartError;

/// Name of the recovery record in the state directory (public data).
pub const RECOVERY_FILE: &str = "recovery.json";

/// The sealed CAS.
#[derive(Debug)]
pub struct SealedCas {
    pub(crate) store_path: PathBuf,
    pub(crate) key_path: PathBuf,
    pub(crate) record: RecoveryRecord,
    pub(crate) combiner: Mutex<Combiner>,
    pub(crate) evidence: Box<dyn EvidenceProvider>,
    pub(crate) tls: Identity,
    pub(crate) ca: CaIdentity,
    pub(crate) unsealed: tokio::sync::watch::Sender<bool>,
    pub(crate) sim_key: Option<[u8; 32]>,
}

impl SealedCas {
    pub(crate) fn new(
        store_path: PathBuf,
        key_path: PathBuf,
        record: RecoveryRecord,
        evidence: Box<dyn EvidenceProvider>,
        sim_key: Option<[u8; 32]>,
    ) -> Result<SealedCas, StartError> {
        let now = Time::now();
        // A throwaway identity: clients attest it (`veil cas unseal`) before
        // sending shares; after unsealing the CAS serves its real identity.
        let ca = CaIdentity::generate("Veil CAS (sealed)", 1, now)
            .map_err(|e| StartError::Other(e.to_string()))?;
        let tls = ca
            .issue_server_identity(
                &["localhost".to_owned()],
                &[std::net::IpAddr::from([127, 0, 0, 1])],
                now,
                1,
            )
            .map_err(|e| StartError::Other(e.to_string()))?;
        let combiner =
            Combiner::from_record(&record).map_err(|e| StartError::Other(e.to_string()))?;
        let (unsealed, _) = tokio::sync::watch::channel(false);
        Ok(SealedCas {
            store_path,
            key_path,
            record,
            combiner: Mutex::new(combiner),
            evidence,
            tls,
            ca,
            unsealed,
            sim_key,
        })
    }

    /// The TLS chain and key while sealed.
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

    fn progress(&self) -> (usize, u8) {
        let have = self.combiner.lock().map(|c| c.have()).unwrap_or(0);
        (have, self.record.threshold)
    }

    /// Tries a recovered key against the store; on success writes the key
    /// file and signals that the CAS may open.
    fn try_key(&self, key: &[u8; 32]) -> Result<(), ApiError> {
        let key = SealingKey::from_bytes(*key);
        match Store::open(&self.store_path, &key) {
            Ok(store) => drop(store),
            Err(StoreError::WrongKey { .. }) => {
                return Err(ApiError::conflict(
                    "foreign_shares",
                    "the shares combine to a key that does not open this CAS's store: they belong to another recovery set",
                ))
            }
            Err(e) => return Err(ApiError::internal("opening the store with the recovered key", &e)),
        }
        key.write_key_file(&self.key_path)
            .map_err(|e| ApiError::internal("writing the recovered sealing key", &e))?;
        self.unsealed.send_replace(true);
        Ok(())
    }
}

/// The routes a sealed CAS serves.
pub fn router(sealed: Arc<SealedCas>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/cas/evidence", get(evidence))
        .route("/v1/recovery/share", post(share))
        .fallback(|| async { ApiError::sealed() })
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(sealed)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "sealed" }))
}

async fn status(State(s): State<Arc<SealedCas>>) -> Json<serde_json::Value> {
    let (have, need) = s.progress();
    Json(serde_json::json!({
        "status": "sealed",
        "sealed": true,
        "version": env!("CARGO_PKG_VERSION"),
        "tee": s.evidence.tee(),
        "recovery": { "set_id": s.record.set_id.to_string(), "have": have, "need": need },
    }))
}

#[derive(Deserialize)]
struct NonceQuery {
    nonce: String,
}

async fn evidence(
    State(s): State<Arc<SealedCas>>,
    Query(q): Query<NonceQuery>,
) -> Result<Json<veil_api::CasEvidence>, ApiError> {
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(q.nonce.trim(), &mut nonce).map_err(|_| {
        ApiError::bad_request(
            "bad_request",
            "nonce must be 64 hex digits (32 random bytes)",
        )
    })?;
    let spki = crate::api::spki_of(&s.tls.cert_der())
        .ok_or_else(|| ApiError::internal("reading the TLS certificate", &"no SPKI"))?;
    let rd = veil_api::report_data(veil_api::CAS_EVIDENCE_DOMAIN, &nonce, &spki, &[0; 32]);
    let inner = s.clone();
    let collected = tokio::task::spawn_blocking(move || inner.evidence.collect(&rd))
        .await
        .map_err(|e| ApiError::internal("collecting evidence", &e))?
        .map_err(|e| ApiError::internal("collecting evidence", &e))?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Ok(Json(veil_api::CasEvidence {
        tee: collected.evidence.tee,
        evidence: b64(&collected.evidence.bytes),
        endorsements: Vec::new(),
        certificate: format!("{}{}", s.tls.cert_pem(), s.ca.cert_pem()),
        sim_platform_key: s.sim_key.map(hex::encode),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    share: String,
}

async fn share(
    State(s): State<Arc<SealedCas>>,
    peer: Option<axum::extract::Extension<crate::tls::Peer>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Only the owner a share was made for may send it (mutual TLS), so
    // nobody else can flood the combiner with forged shares.
    let sender: veil_recovery::Fingerprint = peer
        .and_then(|axum::extract::Extension(p)| p.fingerprint)
        .ok_or_else(ApiError::unauthenticated)?
        .parse()
        .map_err(|_| ApiError::unauthenticated())?;
    let b: ShareBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("bad_request", format!("expected {{\"share\": ...}}: {e}"))
    })?;
    let share = PlainShare::from_transport(&b.share)
        .map_err(|e| ApiError::bad_request("bad_share", e.to_string()))?;
    let outcome = {
        let mut c = s
            .combiner
            .lock()
            .map_err(|_| ApiError::internal("recovering", &"lock poisoned"))?;
        c.add_from(&sender, share)
            .map_err(|e| ApiError::unprocessable("bad_share", e.to_string()))?
    };
    match outcome {
        AddOutcome::NeedMore { have, need } => Ok(Json(serde_json::json!({
            "state": "sealed", "have": have, "need": need,
        }))),
        AddOutcome::Recovered(key) => {
            s.try_key(&key)?;
            tracing::info!("sealing key recovered from shares; the CAS is unsealing");
            Ok(Json(serde_json::json!({ "state": "unsealed" })))
        }
        _ => Err(ApiError::internal(
            "recovering",
            &"unexpected combiner outcome",
        )),
    }
}
