//! Volume freshness tags (`docs/spec/attestation.md` 4.5,
//! `docs/spec/file-shield.md` section 5): the check of a launcher's
//! `volume:<name>` claims at attestation, the volumes released with a grant,
//! the launcher's compare-and-swap commit, and the owner's accept and list.
//!
//! Tags are kept in [`Table::VOLUME_TAGS`] (sealed like every value) under
//! the key `namespace/name/service/volume`, value the JSON `{"tag": HEX}`.
//! A session name has exactly one `/` and service and volume names none,
//! so the key is unambiguous. A tag outlives policy updates: a volume that
//! is dropped and declared again is held to its old tag (an owner clears
//! it with accept `null`).

use std::collections::BTreeMap;

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use veil_api::{
    is_volume_tag, RuntimeClaims, VolumeAccept, VolumeAccepted, VolumeCommit, VolumeCommitted,
    VolumeList, VolumeState, WireVolume, CLAIM_VOLUME_PREFIX, VOLUME_NEW,
};
use veil_attest::Time;
use veil_policy::{Field, SecretSource, Service, Volume, VolumeMode};
use veil_store::{AuditEntry, Plain, StoreError, Table};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::sessions::{is_owner, parse_fingerprint};
use crate::state::{Active, Cas};
use crate::tls::Peer;

/// The message of a 401 on `POST /v1/volumes/commit`.
const LAUNCHER_CERT_NEEDED: &str = "this call needs the certificate the CAS issued to an attested launcher: call over mutual TLS with that certificate and the key it attested";

/// The key of a volume's tag in [`Table::VOLUME_TAGS`].
pub(crate) fn tag_key(session: &str, service: &str, volume: &str) -> Vec<u8> {
    format!("{session}/{service}/{volume}").into_bytes()
}

/// A tag as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredTag {
    tag: String,
}

fn decode_tag(raw: Option<Plain>) -> Result<Option<String>, String> {
    raw.map(|r| {
        serde_json::from_slice::<StoredTag>(&r)
            .map(|s| s.tag)
            .map_err(|e| format!("a stored volume tag is unreadable: {e}"))
    })
    .transpose()
}

fn encode_tag(tag: &str) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(&StoredTag {
        tag: tag.to_owned(),
    })
    .map_err(|e| ApiError::internal("encoding a volume tag", &e))
}

/// Untrusted text (a claim name or value) for a message: quoted, cut.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    if cut.len() < s.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

fn or_none(t: Option<&str>) -> &str {
    t.unwrap_or("none")
}

/// Checks a launcher's `volume:<name>` runtime claims against the service's
/// volumes and the tags the CAS holds (`held`: volume name → tag). Returns
/// the denial's reason code and message.
///
/// In order: every `volume:` claim must name a volume of the service
/// (`unknown_volume`) and be `new` or 64 lower-case hex digits
/// (`volume_claim_invalid`); then, for each volume in policy order with a
/// held tag T, the claim must be T: absent or `new` is `volume_missing`,
/// another tag is `volume_rollback`. A volume with no held tag accepts any
/// claim (first start, or cleared by an owner).
pub(crate) fn check_claims(
    service: &Service,
    claims: &RuntimeClaims,
    held: &BTreeMap<String, String>,
) -> Result<(), (&'static str, String)> {
    let svc = &service.name;
    for (claim, value) in claims.range(CLAIM_VOLUME_PREFIX.to_owned()..) {
        let Some(name) = claim.strip_prefix(CLAIM_VOLUME_PREFIX) else {
            break;
        };
        if !service.volumes.iter().any(|v| v.name == name) {
            let declared: Vec<&str> = service.volumes.iter().map(|v| v.name.as_str()).collect();
            return Err((
                "unknown_volume",
                format!(
                    "the launcher states claim {} for volume {}, which service {svc} does not declare (its volumes: {}): start the launcher with the policy's volumes only",
                    shown(claim),
                    shown(name),
                    if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }
                ),
            ));
        }
        if value != VOLUME_NEW && !is_volume_tag(value) {
            return Err((
                "volume_claim_invalid",
                format!(
                    "claim {claim} is {}: expected `{VOLUME_NEW}` or a freshness tag of 64 lower-case hex digits",
                    shown(value)
                ),
            ));
        }
    }
    for v in &service.volumes {
        let Some(expected) = held.get(&v.name) else {
            continue;
        };
        let claim = claims
            .get(&veil_api::volume_claim(&v.name))
            .map(String::as_str);
        match claim {
            Some(found) if found == expected => {}
            None | Some(VOLUME_NEW) => {
                let how = if claim.is_some() {
                    "found no volume (claim `new`)"
                } else {
                    "states no claim for it"
                };
                return Err((
                    "volume_missing",
                    format!(
                        "volume {} of service {svc}: the CAS holds tag {expected} for it but the launcher {how}: restore the volume, or an owner accepts a new one with `veil volume accept`",
                        v.name
                    ),
                ));
            }
            Some(found) => {
                return Err((
                    "volume_rollback",
                    format!(
                        "volume {} of service {svc} is not the version last committed: tag expected {expected}, found {found} (an older copy of the volume or of a file in it?): restore the latest copy, or an owner accepts this one with `veil volume accept`",
                        v.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The service's volumes as released with a grant: each key is the 32-byte
/// value of the policy's `key` secret, base64; `tag` the held tag.
pub(crate) fn release(
    service: &Service,
    secrets: &dyn SecretSource,
    held: &BTreeMap<String, String>,
) -> Result<Vec<WireVolume>, ApiError> {
    let mut out = Vec::with_capacity(service.volumes.len());
    for v in &service.volumes {
        let failed = |why: &str| {
            ApiError::unprocessable(
                "render_failed",
                format!(
                    "cannot release volume {} of service {}: its key secret {} {why}",
                    v.name, service.name, v.key
                ),
            )
        };
        let value = secrets
            .value(&v.key, Field::Value)
            .ok_or_else(|| failed("has no value"))?;
        if value.len() != 32 {
            return Err(failed(&format!(
                "is {} bytes, not a 32-byte key",
                value.len()
            )));
        }
        out.push(WireVolume {
            name: v.name.clone(),
            path: v.path.clone(),
            mode: match v.mode {
                VolumeMode::Encrypted => veil_api::VolumeMode::Encrypted,
                VolumeMode::Integrity => veil_api::VolumeMode::Integrity,
            },
            key: Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*value)),
            tag: held.get(&v.name).cloned(),
            read_only: v.read_only,
        });
    }
    Ok(out)
}

/// Why a tag write did not happen.
enum TagWrite {
    Store(StoreError),
    Corrupt(String),
    /// Compare-and-swap lost: the tag the CAS holds.
    Conflict(Option<String>),
}

impl From<StoreError> for TagWrite {
    fn from(e: StoreError) -> Self {
        TagWrite::Store(e)
    }
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request("bad_request", message)
}

/// Parses a JSON body that must carry `field` even when it is `null`.
fn parse_requiring<T: DeserializeOwned>(
    body: &[u8],
    field: &str,
    shape: &str,
) -> Result<T, ApiError> {
    let raw: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("expected {shape}: {e}")))?;
    if !raw.is_object() {
        return Err(bad(format!("expected a JSON object {shape}")));
    }
    if raw.get(field).is_none() {
        return Err(bad(format!(
            "expected {shape}: field `{field}` is required (null for none)"
        )));
    }
    serde_json::from_value(raw).map_err(|e| bad(format!("expected {shape}: {e}")))
}

fn check_tag(what: &str, tag: &str) -> Result<(), ApiError> {
    if is_volume_tag(tag) {
        Ok(())
    } else {
        Err(bad(format!(
            "{what} must be a freshness tag: 64 lower-case hex digits, found {}",
            shown(tag)
        )))
    }
}

fn volume_of<'a>(
    active: &'a Active,
    session: &str,
    service: &str,
    volume: &str,
) -> Result<(&'a Service, &'a Volume), ApiError> {
    let svc = active.session.service(service).ok_or_else(|| {
        ApiError::not_found_as(
            "unknown_service",
            format!("session {session} has no service {}", shown(service)),
        )
    })?;
    let vol = svc
        .volumes
        .iter()
        .find(|v| v.name == volume)
        .ok_or_else(|| {
            ApiError::not_found_as(
                "unknown_volume",
                format!(
                    "service {service} of session {session} declares no volume {}",
                    shown(volume)
                ),
            )
        })?;
    Ok((svc, vol))
}

const COMMIT_SHAPE: &str =
    r#"{"session": "ns/name", "service": ..., "volume": ..., "previous": HEX or null, "tag": HEX}"#;
const ACCEPT_SHAPE: &str = r#"{"tag": HEX or null}"#;

impl Cas {
    /// The tags held for the volumes of `service` in `session`: volume → tag.
    pub(crate) fn held_tags(
        &self,
        session: &str,
        service: &str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let prefix = tag_key(session, service, "");
        let rows = self
            .store
            .read(|tx| tx.list(Table::VOLUME_TAGS, &prefix))
            .map_err(|e| ApiError::internal("reading volume tags", &e))?;
        let mut out = BTreeMap::new();
        for (k, v) in rows {
            let volume = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if let Some(tag) =
                decode_tag(Some(v)).map_err(|e| ApiError::internal("reading volume tags", &e))?
            {
                out.insert(volume, tag);
            }
        }
        Ok(out)
    }

    /// `POST /v1/volumes/commit`: an attested launcher commits a new tag.
    pub(crate) async fn commit_volume(
        &self,
        peer: Option<&Peer>,
        body: &[u8],
    ) -> Result<VolumeCommitted, ApiError> {
        let leaf = peer
            .and_then(Peer::leaf)
            .ok_or_else(|| ApiError::unauthenticated_as(LAUNCHER_CERT_NEEDED))?;
        let req: VolumeCommit = parse_requiring(body, "previous", COMMIT_SHAPE)?;
        check_tag("tag", &req.tag)?;
        if let Some(p) = &req.previous {
            check_tag("previous", p)?;
        }
        let active = self.session(&req.session).ok_or_else(|| {
            ApiError::not_found_as(
                "unknown_session",
                format!("no session {}", shown(&req.session)),
            )
        })?;
        let attested = veil_ca::verify_attested_cert(leaf, active.ca.cert_der(), Time::now())
            .map_err(|e| {
                ApiError::forbidden_as(
                    "not_attested",
                    format!(
                        "the client certificate is not a valid certificate the CAS issued to an attested launcher of session {}: {e}. Commit with the certificate from the attestation (and its key); attest again when it expired",
                        req.session
                    ),
                )
            })?;
        if attested.subject.session != req.session || attested.subject.service != req.service {
            return Err(ApiError::forbidden_as(
                "not_attested",
                format!(
                    "the client certificate is for service {} of session {}, not service {} of {}: a launcher commits only its own service's volumes",
                    attested.subject.service,
                    attested.subject.session,
                    shown(&req.service),
                    req.session
                ),
            ));
        }
        volume_of(&active, &req.session, &req.service, &req.volume)?;

        let key = tag_key(&req.session, &req.service, &req.volume);
        let value = encode_tag(&req.tag)?;
        let spki_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&attested.spki));
        let entry = AuditEntry::new(
            "volume.commit",
            req.session.clone(),
            "launcher",
            serde_json::json!({
                "service": req.service,
                "volume": req.volume,
                "previous": req.previous,
                "tag": req.tag,
                "spki_sha256": spki_sha256,
            }),
        );
        let previous = req.previous.clone();
        let store = self.store.clone();
        // Compare and swap on the committer thread, with the audit record,
        // in one durable transaction: the reply waits for it.
        let written = tokio::task::spawn_blocking(move || {
            store.write_grouped(move |tx| {
                let held =
                    decode_tag(tx.get(Table::VOLUME_TAGS, &key)?).map_err(TagWrite::Corrupt)?;
                if held != previous {
                    return Err(TagWrite::Conflict(held));
                }
                tx.put(Table::VOLUME_TAGS, &key, &value)?;
                tx.audit(entry)?;
                Ok(tx.audit_head().next_seq)
            })
        })
        .await
        .map_err(|e| ApiError::internal("committing a volume tag", &e))?;
        match written {
            Ok(audit_seq) => Ok(VolumeCommitted {
                tag: req.tag,
                audit_seq,
            }),
            Err(TagWrite::Conflict(held)) => Err(ApiError::conflict(
                "tag_conflict",
                format!(
                    "volume {} of {}/{}: the CAS holds tag {}, not {} as this commit assumes (another launcher committed meanwhile, or an owner accepted another tag); nothing was changed",
                    req.volume,
                    req.session,
                    req.service,
                    or_none(held.as_deref()),
                    or_none(req.previous.as_deref())
                ),
            )),
            Err(TagWrite::Corrupt(e)) => Err(ApiError::internal("committing a volume tag", &e)),
            Err(TagWrite::Store(e)) => Err(ApiError::internal("committing a volume tag", &e)),
        }
    }

    /// `POST /v1/sessions/{ns}/{name}/volumes/{service}/{volume}/accept`:
    /// an owner sets or clears the held tag.
    pub(crate) async fn accept_volume(
        &self,
        caller: &str,
        session: &str,
        service: &str,
        volume: &str,
        body: &[u8],
    ) -> Result<VolumeAccepted, ApiError> {
        let who = parse_fingerprint(caller)?;
        let req: VolumeAccept = parse_requiring(body, "tag", ACCEPT_SHAPE)?;
        if let Some(t) = &req.tag {
            check_tag("tag", t)?;
        }
        let active = self.session(session).ok_or_else(|| {
            ApiError::not_found_as("unknown_session", format!("no session {}", shown(session)))
        })?;
        if !is_owner(&active.session, &who) {
            return Err(ApiError::forbidden(format!(
                "you ({caller}) are not an owner of session {session}"
            )));
        }
        volume_of(&active, session, service, volume)?;

        let key = tag_key(session, service, volume);
        let value = req.tag.as_deref().map(encode_tag).transpose()?;
        let (subject, actor) = (session.to_owned(), caller.to_owned());
        let (svc, vol, tag) = (service.to_owned(), volume.to_owned(), req.tag.clone());
        let store = self.store.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.write_grouped(move |tx| {
                let previous =
                    decode_tag(tx.get(Table::VOLUME_TAGS, &key)?).map_err(TagWrite::Corrupt)?;
                match &value {
                    Some(v) => tx.put(Table::VOLUME_TAGS, &key, v)?,
                    None => {
                        tx.delete(Table::VOLUME_TAGS, &key)?;
                    }
                }
                tx.audit(AuditEntry::new(
                    "volume.accept",
                    subject,
                    actor,
                    serde_json::json!({
                        "service": svc,
                        "volume": vol,
                        "previous": previous,
                        "tag": tag,
                    }),
                ))?;
                Ok::<_, TagWrite>((previous, tx.audit_head().next_seq))
            })
        })
        .await
        .map_err(|e| ApiError::internal("accepting a volume tag", &e))?;
        match written {
            Ok((previous, audit_seq)) => Ok(VolumeAccepted {
                session: session.to_owned(),
                service: service.to_owned(),
                volume: volume.to_owned(),
                previous,
                tag: req.tag,
                audit_seq,
            }),
            Err(TagWrite::Corrupt(e)) => Err(ApiError::internal("accepting a volume tag", &e)),
            Err(TagWrite::Store(e)) => Err(ApiError::internal("accepting a volume tag", &e)),
            Err(TagWrite::Conflict(_)) => Err(ApiError::internal(
                "accepting a volume tag",
                &"unexpected compare-and-swap conflict",
            )),
        }
    }

    /// `GET /v1/sessions/{ns}/{name}/volumes`: every declared volume and
    /// its held tag, for an owner.
    pub(crate) fn list_volumes(&self, caller: &str, session: &str) -> Result<VolumeList, ApiError> {
        let active = self.owned_session(caller, session)?;
        let mut volumes = Vec::new();
        for svc in active.session.services() {
            if svc.volumes.is_empty() {
                continue;
            }
            let held = self.held_tags(session, &svc.name)?;
            for v in &svc.volumes {
                volumes.push(VolumeState {
                    service: svc.name.clone(),
                    volume: v.name.clone(),
                    tag: held.get(&v.name).cloned(),
                });
            }
        }
        Ok(VolumeList { volumes })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    fn service() -> Service {
        let yaml = r#"name: shop/db
version: 1
owners: [0000000000000000000000000000000000000000000000000000000000000000]
secrets:
  - { name: k, kind: aes-256 }
services:
  - name: app
    accept:
      - { tee: sim, measurement: any }
    command: [/bin/app]
    volumes:
      - { name: data, path: /data, mode: encrypted, key: k }
      - { name: logs, path: /logs, mode: integrity, key: k }
"#;
        veil_policy::parse_session(yaml)
            .unwrap()
            .service("app")
            .unwrap()
            .clone()
    }

    fn claims(pairs: &[(&str, &str)]) -> RuntimeClaims {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn claims_against_held_tags() {
        let svc = service();
        let t1 = "a1".repeat(32);
        let t2 = "b2".repeat(32);
        let none = BTreeMap::new();
        let held: BTreeMap<String, String> = [("data".to_owned(), t1.clone())].into();
        let code = |c: &RuntimeClaims, h: &BTreeMap<String, String>| {
            check_claims(&svc, c, h).map_err(|(code, _)| code)
        };

        // First start: anything well-formed goes.
        assert_eq!(code(&claims(&[]), &none), Ok(()));
        assert_eq!(code(&claims(&[("volume:data", "new")]), &none), Ok(()));
        assert_eq!(code(&claims(&[("volume:data", &t2)]), &none), Ok(()));
        // Held: the same tag only.
        let ok = claims(&[("volume:data", &t1), ("volume:logs", "new")]);
        assert_eq!(code(&ok, &held), Ok(()));
        assert_eq!(
            code(&claims(&[("volume:data", "new")]), &held),
            Err("volume_missing")
        );
        assert_eq!(code(&claims(&[]), &held), Err("volume_missing"));
        let (c, m) = check_claims(&svc, &claims(&[("volume:data", &t2)]), &held).unwrap_err();
        assert_eq!(c, "volume_rollback");
        assert!(
            m.contains(&format!("expected {t1}, found {t2}")) && m.contains("volume data"),
            "{m}"
        );
        // Claims the policy does not know, or malformed values.
        assert_eq!(
            code(&claims(&[("volume:other", "new")]), &none),
            Err("unknown_volume")
        );
        assert_eq!(
            code(&claims(&[("volume:", "new")]), &none),
            Err("unknown_volume")
        );
        for bad in ["NEW", "", &t1.to_uppercase(), &t1[1..], "zz"] {
            assert_eq!(
                code(&claims(&[("volume:data", bad)]), &none),
                Err("volume_claim_invalid"),
                "{bad}"
            );
        }
        // Other claims are not looked at.
        assert_eq!(
            code(&claims(&[("executable", "x"), ("volumez", "y")]), &none),
            Ok(())
        );
    }

    #[test]
    fn tag_keys_do_not_collide_across_sessions() {
        assert_eq!(tag_key("shop/db", "app", "data"), b"shop/db/app/data");
        assert!(!tag_key("shop/db2", "app", "data").starts_with(&tag_key("shop/db", "", "")));
        assert!(!tag_key("shop/db", "app2", "x").starts_with(&tag_key("shop/db", "app", "")));
    }

    struct Keys(Vec<u8>);
    impl SecretSource for Keys {
        fn value(&self, secret: &str, field: Field) -> Option<Zeroizing<Vec<u8>>> {
            (secret == "k" && field == Field::Value).then(|| Zeroizing::new(self.0.clone()))
        }
    }

    #[test]
    fn release_needs_32_byte_keys_and_redacts_them() {
        let svc = service();
        let held: BTreeMap<String, String> = [("logs".to_owned(), "c3".repeat(32))].into();
        let vols = release(&svc, &Keys(vec![7; 32]), &held).unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0].name, "data");
        assert_eq!(vols[0].mode, veil_api::VolumeMode::Encrypted);
        assert_eq!(vols[0].tag, None);
        assert_eq!(vols[1].tag.as_deref(), Some("c3".repeat(32).as_str()));
        let key = base64::engine::general_purpose::STANDARD
            .decode(vols[0].key.as_str())
            .unwrap();
        assert_eq!(key, vec![7; 32]);
        assert!(!format!("{vols:?}").contains(vols[0].key.as_str()));
        let err = release(&svc, &Keys(vec![7; 16]), &held).unwrap_err();
        assert_eq!(err.code, "render_failed");
        assert!(err.message.contains("16 bytes"), "{}", err.message);
    }
}
