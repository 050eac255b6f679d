//! Session lifecycle: apply (create, update, k-of-n approval), read, list,
//! supplied secrets. Every change is written with its audit record in one
//! durable transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use veil_attest::Time;
use veil_ca::{CaIdentity, SecretKindSpec, SecretMaterial};
use veil_policy::{Fingerprint, SecretKind, Session};
use veil_store::{AuditEntry, Store, StoreError, Table, WriteTx};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::state::{Active, Cas, StoredSession};

/// Name of the session CA inside the secrets table (not a valid policy
/// secret name, so it cannot collide).
const SESSION_CA: &str = ".session-ca";

/// A pending update waiting for approvals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub yaml: String,
    pub hash: String,
    pub approvals: Vec<String>,
}

/// A secret as stored (sealed by the store).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredSecret {
    Generated(SecretMaterial),
    Supplied { value: String },
}

pub(crate) fn secret_key(session: &str, secret: &str) -> Vec<u8> {
    let mut k = session.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(secret.as_bytes());
    k
}

fn store_err(context: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| ApiError::internal(context, &e)
}

pub(crate) fn load_session_ca(store: &Store, session: &str) -> Result<CaIdentity, String> {
    let pem = store
        .read(|tx| tx.get(Table::SECRETS, &secret_key(session, SESSION_CA)))
        .map_err(|e| e.to_string())?
        .ok_or("its session CA is missing")?;
    CaIdentity::from_pem(&String::from_utf8_lossy(&pem)).map_err(|e| e.to_string())
}

/// What an apply or approval did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// The session.
    pub name: String,
    /// The hash of the version applied or pending.
    pub hash: String,
    /// `active` or `pending`.
    pub state: String,
    /// Owners who approved (pending updates).
    pub approvals: usize,
    /// Approvals needed.
    pub needed: u32,
}

pub(crate) fn parse_fingerprint(caller: &str) -> Result<Fingerprint, ApiError> {
    caller
        .parse::<Fingerprint>()
        .map_err(|_| ApiError::unauthenticated())
}

pub(crate) fn is_owner(session: &Session, caller: &Fingerprint) -> bool {
    session.owners().iter().any(|o| o == caller)
}

impl Cas {
    /// `POST /v1/sessions`: create or update a session.
    pub(crate) async fn apply(&self, caller: &str, yaml: String) -> Result<ApplyOutcome, ApiError> {
        let who = parse_fingerprint(caller)?;
        let new = veil_policy::parse_session(&yaml)
            .map_err(|e| ApiError::unprocessable("policy_invalid", e.to_string()))?;
        let name = new.name().to_string();
        let _guard = self.change.lock().await;
        match self.session(&name) {
            None => self.create(caller, &who, new, yaml).await,
            Some(cur) => self.update(caller, &who, &cur, new, yaml).await,
        }
    }

    async fn create(
        &self,
        caller: &str,
        who: &Fingerprint,
        new: Session,
        yaml: String,
    ) -> Result<ApplyOutcome, ApiError> {
        let name = new.name().to_string();
        if let Some(p) = new.predecessor() {
            return Err(ApiError::conflict(
                "stale_predecessor",
                format!("session {name} does not exist, but the policy names predecessor {p}: remove `predecessor` to create it"),
            ));
        }
        if !is_owner(&new, who) {
            return Err(ApiError::forbidden(format!(
                "you ({caller}) are not among the owners of the new session {name}: add your fingerprint to `owners`"
            )));
        }
        let ns = new.name().namespace().to_owned();
        let ns_owned_by_others = self
            .sessions
            .read()
            .map(|m| {
                let in_ns: Vec<_> = m
                    .values()
                    .filter(|a| a.session.name().namespace() == ns)
                    .collect();
                !in_ns.is_empty() && !in_ns.iter().any(|a| is_owner(&a.session, who))
            })
            .unwrap_or(true);
        if ns_owned_by_others {
            return Err(ApiError::forbidden(format!(
                "namespace {ns} belongs to other owners: only an owner of a session in {ns} may create sessions there"
            )));
        }
        let now = Time::now();
        let ca = CaIdentity::generate(&format!("{name} session CA"), 3650, now)
            .map_err(|e| ApiError::internal("making the session CA", &e))?;
        let secrets = generate_secrets(&new, &ca, &BTreeMap::new(), now)?;
        let active = Arc::new(Active {
            hash: new.hash(),
            session: new,
            yaml,
            ca,
        });
        self.activate(caller, None, active.clone(), secrets, "session.create")
            .await?;
        Ok(ApplyOutcome {
            name,
            hash: active.hash.to_string(),
            state: "active".into(),
            approvals: 1,
            needed: 1,
        })
    }

    async fn update(
        &self,
        caller: &str,
        who: &Fingerprint,
        cur: &Arc<Active>,
        new: Session,
        yaml: String,
    ) -> Result<ApplyOutcome, ApiError> {
        let name = new.name().to_string();
        if !is_owner(&cur.session, who) {
            return Err(ApiError::forbidden(format!(
                "you ({caller}) are not an owner of session {name}"
            )));
        }
        match new.predecessor() {
            None => {
                return Err(ApiError::conflict(
                    "stale_predecessor",
                    format!("session {name} exists: an update must name its predecessor (predecessor: {})", cur.hash),
                ))
            }
            Some(p) if p != cur.hash => {
                return Err(ApiError::conflict(
                    "stale_predecessor",
                    format!("predecessor {p} is not the current version of {name} ({}): someone changed it meanwhile; get the session and apply again", cur.hash),
                ))
            }
            Some(_) => {}
        }
        veil_policy::check_update(&cur.session, &new)
            .map_err(|e| ApiError::unprocessable("policy_invalid", e.to_string()))?;
        let needed = cur.session.approvals();
        let hash = new.hash();
        if needed <= 1 {
            self.activate_update(caller, cur, new, yaml).await?;
            return Ok(ApplyOutcome {
                name,
                hash: hash.to_string(),
                state: "active".into(),
                approvals: 1,
                needed,
            });
        }
        let pending = Pending {
            yaml,
            hash: hash.to_string(),
            approvals: vec![who.to_string()],
        };
        let value = serde_json::to_vec(&pending).map_err(|e| ApiError::internal("encoding", &e))?;
        let key = name.clone();
        let caller_owned = caller.to_owned();
        let detail = serde_json::json!({ "hash": pending.hash, "needed": needed });
        self.write(move |tx| {
            tx.put(Table::PENDING, key.as_bytes(), &value)?;
            tx.audit(AuditEntry::new(
                "session.propose",
                key,
                caller_owned,
                detail,
            ))
        })
        .await?;
        Ok(ApplyOutcome {
            name,
            hash: hash.to_string(),
            state: "pending".into(),
            approvals: 1,
            needed,
        })
    }

    /// `POST /v1/sessions/{name}/approve`.
    pub(crate) async fn approve(
        &self,
        caller: &str,
        name: &str,
        hash: &str,
    ) -> Result<ApplyOutcome, ApiError> {
        let who = parse_fingerprint(caller)?;
        let _guard = self.change.lock().await;
        let cur = self
            .session(name)
            .ok_or_else(|| ApiError::not_found(format!("no session {name}")))?;
        if !is_owner(&cur.session, &who) {
            return Err(ApiError::forbidden(format!(
                "you ({caller}) are not an owner of session {name}"
            )));
        }
        let raw = self
            .store
            .read(|tx| tx.get(Table::PENDING, name.as_bytes()))
            .map_err(store_err("reading pending updates"))?
            .ok_or_else(|| ApiError::not_found(format!("session {name} has no pending update")))?;
        let mut pending: Pending = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::internal("reading a pending update", &e))?;
        if pending.hash != hash {
            return Err(ApiError::conflict(
                "stale_predecessor",
                format!(
                    "the pending update of {name} is {}, not {hash}",
                    pending.hash
                ),
            ));
        }
        if !pending.approvals.contains(&who.to_string()) {
            pending.approvals.push(who.to_string());
        }
        let needed = cur.session.approvals();
        let count = pending
            .approvals
            .iter()
            .filter(|a| {
                a.parse::<Fingerprint>()
                    .map(|f| is_owner(&cur.session, &f))
                    .unwrap_or(false)
            })
            .count();
        if count >= needed as usize {
            let new = veil_policy::parse_session(&pending.yaml)
                .map_err(|e| ApiError::internal("re-reading a pending update", &e))?;
            if new.predecessor() != Some(cur.hash) {
                return Err(ApiError::conflict(
                    "stale_predecessor",
                    format!("the pending update of {name} no longer follows its current version"),
                ));
            }
            self.activate_update(caller, &cur, new, pending.yaml.clone())
                .await?;
            return Ok(ApplyOutcome {
                name: name.to_owned(),
                hash: pending.hash,
                state: "active".into(),
                approvals: count,
                needed,
            });
        }
        let value = serde_json::to_vec(&pending).map_err(|e| ApiError::internal("encoding", &e))?;
        let key = name.to_owned();
        let caller_owned = caller.to_owned();
        let detail =
            serde_json::json!({ "hash": pending.hash, "approvals": count, "needed": needed });
        self.write(move |tx| {
            tx.put(Table::PENDING, key.as_bytes(), &value)?;
            tx.audit(AuditEntry::new(
                "session.approve",
                key,
                caller_owned,
                detail,
            ))
        })
        .await?;
        Ok(ApplyOutcome {
            name: name.to_owned(),
            hash: pending.hash,
            state: "pending".into(),
            approvals: count,
            needed,
        })
    }

    async fn activate_update(
        &self,
        caller: &str,
        cur: &Arc<Active>,
        new: Session,
        yaml: String,
    ) -> Result<(), ApiError> {
        let name = new.name().to_string();
        let existing = self.load_secrets(&name)?;
        let now = Time::now();
        let mut keep = BTreeMap::new();
        for spec in new.secrets() {
            let rotate = new.rotate().contains(&spec.name);
            if let Some(old) = existing.get(&spec.name) {
                let same_kind = cur
                    .session
                    .secret(&spec.name)
                    .is_some_and(|o| o.kind.as_str() == spec.kind.as_str());
                if !rotate && same_kind {
                    keep.insert(spec.name.clone(), old.clone());
                }
            }
        }
        let generated = generate_secrets(&new, &cur.ca, &keep, now)?;
        let active = Arc::new(Active {
            hash: new.hash(),
            session: new,
            yaml,
            ca: cur.ca.clone(),
        });
        self.activate(caller, Some(cur), active, generated, "session.update")
            .await
    }

    /// Writes a session version, its secrets and its audit record at once,
    /// then makes it the active version.
    async fn activate(
        &self,
        caller: &str,
        old: Option<&Arc<Active>>,
        active: Arc<Active>,
        secrets: BTreeMap<String, StoredSecret>,
        kind: &'static str,
    ) -> Result<(), ApiError> {
        let name = active.session.name().to_string();
        let stored = serde_json::to_vec(&StoredSession {
            yaml: active.yaml.clone(),
            hash: active.hash.to_string(),
        })
        .map_err(|e| ApiError::internal("encoding", &e))?;
        let mut rows = Vec::new();
        for (secret, value) in &secrets {
            let v = serde_json::to_vec(value).map_err(|e| ApiError::internal("encoding", &e))?;
            rows.push((secret_key(&name, secret), Zeroizing::new(v)));
        }
        let declared: Vec<String> = active
            .session
            .secrets()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let ca_pem = active.ca.to_pem();
        let is_new = old.is_none();
        let detail = serde_json::json!({
            "hash": active.hash.to_string(),
            "version": active.session.version(),
            "previous": old.map(|o| o.hash.to_string()),
            "secrets_generated": secrets.keys().collect::<Vec<_>>(),
        });
        let key = name.clone();
        let caller_owned = caller.to_owned();
        self.write(move |tx| {
            // Secrets no longer declared are removed with the version that drops them.
            let prefix = secret_key(&key, "");
            for (k, _) in tx.list(Table::SECRETS, &prefix)? {
                let secret = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                if secret != SESSION_CA && !declared.contains(&secret) {
                    tx.delete(Table::SECRETS, &k)?;
                }
            }
            if is_new {
                tx.put(
                    Table::SECRETS,
                    &secret_key(&key, SESSION_CA),
                    ca_pem.as_bytes(),
                )?;
            }
            for (k, v) in &rows {
                tx.put(Table::SECRETS, k, v)?;
            }
            tx.put(Table::SESSIONS, key.as_bytes(), &stored)?;
            tx.delete(Table::PENDING, key.as_bytes())?;
            tx.audit(AuditEntry::new(kind, key, caller_owned, detail))
        })
        .await?;
        if let Ok(mut m) = self.sessions.write() {
            m.insert(name, active);
            self.metrics.sessions.set(m.len() as i64);
        }
        Ok(())
    }

    /// Runs a write transaction on the blocking pool (the store is synchronous).
    pub(crate) async fn write<F>(&self, f: F) -> Result<(), ApiError>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(|e| ApiError::internal("writing to the store", &e))?
            .map_err(|e| ApiError::internal("writing to the store", &e))
    }

    pub(crate) fn load_secrets(
        &self,
        session: &str,
    ) -> Result<BTreeMap<String, StoredSecret>, ApiError> {
        let prefix = secret_key(session, "");
        let rows = self
            .store
            .read(|tx| tx.list(Table::SECRETS, &prefix))
            .map_err(store_err("reading secrets"))?;
        let mut out = BTreeMap::new();
        for (k, v) in rows {
            let secret = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if secret == SESSION_CA {
                continue;
            }
            let s: StoredSecret = serde_json::from_slice(&v)
                .map_err(|e| ApiError::internal("reading a secret", &e))?;
            out.insert(secret, s);
        }
        Ok(out)
    }

    /// `PUT /v1/sessions/{name}/secrets/{secret}`: an owner supplies a value.
    pub(crate) async fn put_secret(
        &self,
        caller: &str,
        name: &str,
        secret: &str,
        value: Zeroizing<Vec<u8>>,
    ) -> Result<(), ApiError> {
        let who = parse_fingerprint(caller)?;
        let _guard = self.change.lock().await;
        let cur = self
            .session(name)
            .ok_or_else(|| ApiError::not_found(format!("no session {name}")))?;
        if !is_owner(&cur.session, &who) {
            return Err(ApiError::forbidden(format!(
                "you ({caller}) are not an owner of session {name}"
            )));
        }
        match cur.session.secret(secret).map(|s| &s.kind) {
            Some(SecretKind::Supplied) => {}
            Some(other) => {
                return Err(ApiError::unprocessable(
                    "not_supplied",
                    format!("secret {secret} of {name} is a {} secret, generated by the CAS; only `supplied` secrets can be put", other.as_str()),
                ))
            }
            None => {
                return Err(ApiError::not_found(format!(
                    "session {name} declares no secret {secret}"
                )))
            }
        }
        use base64::Engine;
        let stored = StoredSecret::Supplied {
            value: base64::engine::general_purpose::STANDARD.encode(&value),
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec(&stored).map_err(|e| ApiError::internal("encoding", &e))?,
        );
        let key = secret_key(name, secret);
        let subject = name.to_owned();
        let caller_owned = caller.to_owned();
        let secret_name = secret.to_owned();
        let len = value.len();
        self.write(move |tx| {
            tx.put(Table::SECRETS, &key, &bytes)?;
            tx.audit(AuditEntry::new(
                "secret.put",
                subject,
                caller_owned,
                serde_json::json!({ "secret": secret_name, "bytes": len }),
            ))
        })
        .await
    }

    /// `GET /v1/sessions/{name}/secrets/{secret}`: an owner reads a secret
    /// that the policy explicitly exports to owners (`export: [owner]`).
    /// Audited before the value leaves.
    pub(crate) async fn export_secret(
        &self,
        caller: &str,
        name: &str,
        secret: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let active = self.owned_session(caller, name)?;
        let spec = active.session.secret(secret).ok_or_else(|| {
            ApiError::not_found(format!("session {name} declares no secret {secret}"))
        })?;
        if !spec
            .export
            .iter()
            .any(|e| matches!(e, veil_policy::Export::Owner))
        {
            return Err(ApiError::forbidden(format!(
                "secret {secret} of {name} is not exported to owners: secrets are never readable unless the policy says `export: [owner]`"
            )));
        }
        let value = self.load_secrets(name)?.remove(secret).ok_or_else(|| {
            ApiError::not_found(format!("secret {secret} of {name} has no value yet"))
        })?;
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = match &value {
            StoredSecret::Supplied { value } => {
                serde_json::json!({ "kind": "supplied", "value": value })
            }
            StoredSecret::Generated(m) => serde_json::json!({
                "kind": spec.kind.as_str(),
                "value": b64(&m.value),
                "cert": m.cert_pem,
                "key": m.key_pem.as_ref().map(|k| k.as_str().to_owned()),
                "ca": m.ca_pem,
            }),
        };
        let subject = name.to_owned();
        let caller_owned = caller.to_owned();
        let secret_name = secret.to_owned();
        self.write(move |tx| {
            tx.audit(AuditEntry::new(
                "secret.export",
                subject,
                caller_owned,
                serde_json::json!({ "secret": secret_name }),
            ))
        })
        .await?;
        Ok(body)
    }

    /// Sessions the caller owns.
    pub(crate) fn owned(&self, caller: &str) -> Result<Vec<Arc<Active>>, ApiError> {
        let who = parse_fingerprint(caller)?;
        Ok(self
            .sessions
            .read()
            .map(|m| {
                m.values()
                    .filter(|a| is_owner(&a.session, &who))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A session the caller owns (404 for others, so names do not leak).
    pub(crate) fn owned_session(&self, caller: &str, name: &str) -> Result<Arc<Active>, ApiError> {
        let who = parse_fingerprint(caller)?;
        self.session(name)
            .filter(|a| is_owner(&a.session, &who))
            .ok_or_else(|| ApiError::not_found(format!("no session {name} that you own")))
    }

    /// The pending update of a session, if any.
    pub(crate) fn pending(&self, name: &str) -> Result<Option<Pending>, ApiError> {
        let raw = self
            .store
            .read(|tx| tx.get(Table::PENDING, name.as_bytes()))
            .map_err(store_err("reading pending updates"))?;
        raw.map(|r| {
            serde_json::from_slice(&r)
                .map_err(|e| ApiError::internal("reading a pending update", &e))
        })
        .transpose()
    }
}

/// Generates every generated secret of `session` not in `keep`, CAs first
/// (so `x509` secrets can name them as issuer). Returns the full set to store.
fn generate_secrets(
    session: &Session,
    session_ca: &CaIdentity,
    keep: &BTreeMap<String, StoredSecret>,
    now: Time,
) -> Result<BTreeMap<String, StoredSecret>, ApiError> {
    let mut out: BTreeMap<String, StoredSecret> = BTreeMap::new();
    for (k, v) in keep {
        out.insert(k.clone(), v.clone());
    }
    // Issuers before what they issue: a secret whose issuer is not made yet
    // waits for a later pass (the policy has no issuer cycles).
    let mut todo: Vec<_> = session
        .secrets()
        .iter()
        .filter(|s| s.kind.is_generated() && !out.contains_key(&s.name))
        .collect();
    while !todo.is_empty() {
        let before = todo.len();
        let mut waiting = Vec::new();
        for spec in todo {
            let issuer = match &spec.kind {
                SecretKind::X509 { issuer, .. } | SecretKind::X509Ca { issuer, .. } => match issuer
                {
                    veil_policy::Issuer::Secret(name) => Some(name.clone()),
                    _ => None,
                },
                _ => None,
            };
            if issuer.as_ref().is_some_and(|i| !out.contains_key(i)) {
                waiting.push(spec);
                continue;
            }
            let kind = to_ca_spec(&spec.name, &spec.kind)?;
            let cas = |issuer: &str| -> Option<CaIdentity> {
                if issuer == "session-ca" {
                    return Some(session_ca.clone());
                }
                match out.get(issuer) {
                    Some(StoredSecret::Generated(m)) => CaIdentity::from_secret(m).ok(),
                    _ => None,
                }
            };
            let material = veil_ca::generate(&kind, &cas, now).map_err(|e| {
                ApiError::unprocessable(
                    "secret_generation_failed",
                    format!("cannot generate secret {}: {e}", spec.name),
                )
            })?;
            out.insert(spec.name.clone(), StoredSecret::Generated(material));
        }
        if waiting.len() == before {
            let names: Vec<_> = waiting.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::unprocessable(
                "secret_generation_failed",
                format!("cannot generate {names:?}: their issuers are not generated CA secrets of this session"),
            ));
        }
        todo = waiting;
    }
    Ok(out)
}

fn to_ca_spec(name: &str, kind: &SecretKind) -> Result<SecretKindSpec, ApiError> {
    Ok(match kind {
        SecretKind::Password { length, alphabet } => SecretKindSpec::Password {
            length: *length as usize,
            alphabet: alphabet.chars().to_owned(),
        },
        SecretKind::Bytes { size } => SecretKindSpec::Bytes {
            size: *size as usize,
        },
        SecretKind::Aes256 => SecretKindSpec::Aes256,
        SecretKind::EcdsaP256 => SecretKindSpec::EcdsaP256,
        SecretKind::Ed25519 => SecretKindSpec::Ed25519,
        SecretKind::X509 {
            issuer,
            common_name,
            dns,
            ips,
            validity_days,
        } => SecretKindSpec::X509 {
            issuer: issuer.to_string(),
            common_name: common_name.clone().unwrap_or_else(|| name.to_owned()),
            dns: dns.clone(),
            ips: ips.clone(),
            validity_days: *validity_days,
        },
        SecretKind::X509Ca {
            issuer,
            common_name,
            validity_days,
        } => SecretKindSpec::X509Ca {
            issuer: Some(issuer.to_string()),
            common_name: common_name.clone().unwrap_or_else(|| name.to_owned()),
            validity_days: *validity_days,
        },
        other => {
            return Err(ApiError::internal(
                "generating secrets",
                &format!("{} is not a generated kind", other.as_str()),
            ))
        }
    })
}

/// Session fields an owner may read: the policy itself (it holds no secret
/// values) and which secrets have a value.
pub(crate) fn describe(
    active: &Active,
    secrets: &BTreeMap<String, StoredSecret>,
    pending: Option<&Pending>,
) -> serde_json::Value {
    let secret_state: BTreeMap<&str, &str> = active
        .session
        .secrets()
        .iter()
        .map(|s| {
            let state = match secrets.get(&s.name) {
                Some(StoredSecret::Generated(_)) => "generated",
                Some(StoredSecret::Supplied { .. }) => "supplied",
                None if matches!(s.kind, SecretKind::Import { .. }) => "imported",
                None => "missing",
            };
            (s.name.as_str(), state)
        })
        .collect();
    serde_json::json!({
        "name": active.session.name().to_string(),
        "version": active.session.version(),
        "hash": active.hash.to_string(),
        "owners": active.session.owners().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "approvals": active.session.approvals(),
        "services": active.session.services().iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "secrets": secret_state,
        "policy": active.yaml,
        "pending": pending.map(|p| serde_json::json!({"hash": p.hash, "approvals": p.approvals})),
        "session_ca": active.ca.cert_pem(),
    })
}
