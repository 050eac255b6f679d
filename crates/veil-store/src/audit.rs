//! The audit log: append-only, hash-chained, each record signed by the CAS.
//!
//! Records are appended by the store inside write transactions (see
//! [`crate::WriteTx::audit`]), so a state change and the record of it commit together or not at
//! all. Everything else in this module is sans-IO: hashing, signing, verifying, and the JSON
//! lines export read by `veil audit show` and `veil audit verify`.
//!
//! # Chain
//!
//! Record `n` carries `prev_hash` = hash of record `n - 1` (all zeros for record 0) and its own
//! `hash` = SHA-256 of the canonical encoding below; the signature is Ed25519 over
//! `"veil-audit-v1 record\0" || hash`. The head of a chain is `(next_seq, hash of the last
//! record)`; the store keeps it sealed in its state record, and an export ends with the head
//! signed over `"veil-audit-v1 head\0" || next_seq (u64 BE) || hash`.
//!
//! # Canonical encoding (what the hash covers)
//!
//! ```text
//! "veil-audit-v1\0"            14 bytes, domain separation
//! seq                          u64 big-endian
//! time_ms                      u64 big-endian, Unix time in milliseconds
//! prev_hash                    32 bytes
//! kind, subject, actor         each u32 big-endian length || UTF-8 bytes
//! detail                       u32 big-endian length || canonical JSON (object keys sorted
//!                              by byte order, no whitespace)
//! ```

use std::io::Write;

use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use crate::error::{AuditError, StoreError};

const RECORD_DOMAIN: &[u8] = b"veil-audit-v1\0";
const RECORD_SIG_DOMAIN: &[u8] = b"veil-audit-v1 record\0";
const HEAD_SIG_DOMAIN: &[u8] = b"veil-audit-v1 head\0";

/// Largest canonical `detail` accepted, in bytes.
pub const MAX_DETAIL_LEN: usize = 16 * 1024;
/// Largest `subject` or `actor`, in bytes.
pub const MAX_FIELD_LEN: usize = 1024;

/// What a caller asks to record. The store fills in seq, time and the chain link.
///
/// Never put secret values in an entry: records are exported in clear by `veil audit show`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// What happened, e.g. `session.apply`, `session.approve`, `attest.grant`, `attest.deny`.
    pub kind: String,
    /// What it happened to: a session, or `session/service`.
    pub subject: String,
    /// Who did it: a client key fingerprint, or `launcher`.
    pub actor: String,
    /// Structured detail (reasons, versions, measurements). Never secret values.
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// A new entry.
    pub fn new(
        kind: impl Into<String>,
        subject: impl Into<String>,
        actor: impl Into<String>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            kind: kind.into(),
            subject: subject.into(),
            actor: actor.into(),
            detail,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let bad = |reason: String| Err(StoreError::InvalidAuditEntry { reason });
        if self.kind.is_empty()
            || self.kind.len() > 64
            || !self
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return bad(format!(
                "kind {:?} must be 1 to 64 characters from a-z, 0-9, '.', '_', '-'",
                self.kind
            ));
        }
        if self.subject.len() > MAX_FIELD_LEN || self.actor.len() > MAX_FIELD_LEN {
            return bad(format!(
                "subject and actor must be at most {MAX_FIELD_LEN} bytes"
            ));
        }
        let mut d = Vec::new();
        canonical_json(&self.detail, &mut d);
        if d.len() > MAX_DETAIL_LEN {
            return bad(format!(
                "detail is {} bytes of JSON, more than {MAX_DETAIL_LEN}",
                d.len()
            ));
        }
        Ok(())
    }
}

/// One record of the chain, without its hash and signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 0, without gaps.
    pub seq: u64,
    /// When it was appended: Unix time in milliseconds.
    pub time_ms: u64,
    /// Hash of the previous record; all zeros for seq 0.
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// See [`AuditEntry::kind`].
    pub kind: String,
    /// See [`AuditEntry::subject`].
    pub subject: String,
    /// See [`AuditEntry::actor`].
    pub actor: String,
    /// See [`AuditEntry::detail`].
    pub detail: serde_json::Value,
}

impl AuditRecord {
    /// The canonical encoding that [`AuditRecord::hash`] covers (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(RECORD_DOMAIN);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(&self.prev_hash);
        for field in [&self.kind, &self.subject, &self.actor] {
            push_lp(&mut out, field.as_bytes());
        }
        let mut d = Vec::new();
        canonical_json(&self.detail, &mut d);
        push_lp(&mut out, &d);
        out
    }

    /// SHA-256 of the canonical encoding.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.canonical_bytes())
    }
}

/// A record with its hash and the CAS's signature: one line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedAuditRecord {
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// [`AuditRecord::hash`] of `record`.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
    /// Ed25519 signature over `"veil-audit-v1 record\0" || hash`.
    #[serde(with = "hexvec")]
    pub signature: Vec<u8>,
}

/// The head of a chain: how many records it has, and the hash of the last one (all zeros when
/// empty). A client that pins a head detects a later truncation or rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// Seq the next record will get = number of records.
    pub next_seq: u64,
    /// Hash of record `next_seq - 1`, or all zeros.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

impl AuditHead {
    /// The head of an empty chain.
    pub const EMPTY: AuditHead = AuditHead {
        next_seq: 0,
        hash: [0; 32],
    };

    fn signed_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(HEAD_SIG_DOMAIN.len() + 40);
        m.extend_from_slice(HEAD_SIG_DOMAIN);
        m.extend_from_slice(&self.next_seq.to_be_bytes());
        m.extend_from_slice(&self.hash);
        m
    }

    /// Sign this head (the last line of an export).
    pub fn sign(&self, signer: &dyn AuditSigner) -> SignedAuditHead {
        SignedAuditHead {
            head: *self,
            signature: signer.sign(&self.signed_message()),
        }
    }
}

/// A head signed by the CAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAuditHead {
    /// The head.
    pub head: AuditHead,
    /// Ed25519 signature over `"veil-audit-v1 head\0" || next_seq (u64 BE) || hash`.
    #[serde(with = "hexvec")]
    pub signature: Vec<u8>,
}

impl SignedAuditHead {
    /// Check the signature.
    pub fn verify(&self, public_key: &[u8]) -> Result<(), AuditError> {
        check_public_key(public_key)?;
        signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
            .verify(&self.head.signed_message(), &self.signature)
            .map_err(|_| AuditError::BadHeadSignature)
    }
}

/// Something that signs audit records: the CAS's audit key, possibly held by a TEE or HSM.
///
/// Verification (see [`verify`]) expects Ed25519 signatures.
pub trait AuditSigner: Send + Sync {
    /// Sign `msg`.
    fn sign(&self, msg: &[u8]) -> Vec<u8>;
    /// The raw 32-byte Ed25519 public key.
    fn public_key(&self) -> Vec<u8>;
}

/// An Ed25519 [`AuditSigner`] (ring). The store's default is derived from its sealing key with
/// HKDF label `"veil-store-v1 audit signing"`.
pub struct Ed25519AuditSigner {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Ed25519AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519AuditSigner")
            .field("public_key", &hex::encode(self.pair.public_key().as_ref()))
            .finish()
    }
}

impl Ed25519AuditSigner {
    /// A signer from a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Ed25519AuditSigner, StoreError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| StoreError::Random)?;
        Ok(Ed25519AuditSigner { pair })
    }

    /// The signer derived from a sealing key.
    pub fn derive(key: &crate::SealingKey) -> Result<Ed25519AuditSigner, StoreError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        key.derive(crate::key::INFO_AUDIT_SIGN, &mut seed[..])?;
        Self::from_seed(&seed)
    }
}

impl AuditSigner for Ed25519AuditSigner {
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }
    fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

/// Hash and sign `record`.
pub fn sign_record(record: AuditRecord, signer: &dyn AuditSigner) -> SignedAuditRecord {
    let hash = record.hash();
    let signature = signer.sign(&record_sig_message(&hash));
    SignedAuditRecord {
        record,
        hash,
        signature,
    }
}

fn record_sig_message(hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(RECORD_SIG_DOMAIN.len() + 32);
    m.extend_from_slice(RECORD_SIG_DOMAIN);
    m.extend_from_slice(hash);
    m
}

/// A chain that verified: its head, and the hash of every record in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// Seq of the first record verified.
    pub first_seq: u64,
    /// The head after the last record.
    pub head: AuditHead,
    hashes: Vec<[u8; 32]>,
}

impl VerifiedChain {
    /// Number of records verified.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no record was verified.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Check that this chain contains the head a client pinned earlier (or the store keeps):
    /// the chain must reach `pinned.next_seq` and have the same hash there. Detects truncation
    /// and rewriting of history; a chain that has grown since is fine.
    pub fn check_head(&self, pinned: &AuditHead) -> Result<(), AuditError> {
        if pinned.next_seq > self.head.next_seq {
            return Err(AuditError::Truncated {
                expected_next: pinned.next_seq,
                found_next: self.head.next_seq,
            });
        }
        if pinned.next_seq == 0 {
            return Ok(());
        }
        let last = pinned.next_seq - 1;
        let found = last
            .checked_sub(self.first_seq)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.hashes.get(i));
        match found {
            Some(h) if *h == pinned.hash => Ok(()),
            _ => Err(AuditError::HeadMismatch { seq: last }),
        }
    }
}

fn check_public_key(public_key: &[u8]) -> Result<(), AuditError> {
    if public_key.len() == 32 {
        Ok(())
    } else {
        Err(AuditError::BadPublicKey)
    }
}

/// Verify a whole chain from seq 0: links, hashes, seq numbers and signatures.
///
/// This alone cannot see records removed from the end; check the result against a head with
/// [`VerifiedChain::check_head`] (the store's, a pinned one, or the signed head of an export:
/// [`verify_export`] does this).
pub fn verify(
    records: &[SignedAuditRecord],
    public_key: &[u8],
) -> Result<VerifiedChain, AuditError> {
    verify_from(records, public_key, &AuditHead::EMPTY)
}

/// Verify a chain segment that continues from `anchor` (a head verified before).
pub fn verify_from(
    records: &[SignedAuditRecord],
    public_key: &[u8],
    anchor: &AuditHead,
) -> Result<VerifiedChain, AuditError> {
    check_public_key(public_key)?;
    let key = signature::UnparsedPublicKey::new(&signature::ED25519, public_key);
    let mut head = *anchor;
    let mut hashes = Vec::with_capacity(records.len());
    for (position, r) in records.iter().enumerate() {
        let seq = r.record.seq;
        if position == 0 && anchor.next_seq == 0 && seq != 0 {
            return Err(AuditError::MissingStart { seq });
        }
        if seq != head.next_seq {
            return Err(AuditError::SeqGap {
                expected: head.next_seq,
                found: seq,
                position,
            });
        }
        if r.record.prev_hash != head.hash {
            return Err(AuditError::BrokenLink { seq });
        }
        if r.record.hash() != r.hash {
            return Err(AuditError::Edited { seq });
        }
        key.verify(&record_sig_message(&r.hash), &r.signature)
            .map_err(|_| AuditError::BadSignature { seq })?;
        hashes.push(r.hash);
        head = AuditHead {
            next_seq: seq.saturating_add(1),
            hash: r.hash,
        };
    }
    Ok(VerifiedChain {
        first_seq: anchor.next_seq,
        head,
        hashes,
    })
}

#[derive(Serialize, Deserialize)]
struct HeadLine {
    head: SignedAuditHead,
}

/// Write an export: one JSON line per record, then one line `{"head": {...}}` with the signed
/// head. Readable by `jq`; verified by [`verify_export`].
pub fn write_export(
    records: &[SignedAuditRecord],
    head: &SignedAuditHead,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for r in records {
        serde_json::to_writer(&mut *out, r)?;
        out.write_all(b"\n")?;
    }
    serde_json::to_writer(&mut *out, &HeadLine { head: head.clone() })?;
    out.write_all(b"\n")
}

/// Parse an export written by [`write_export`] without verifying it.
pub fn parse_export(
    text: &str,
) -> Result<(Vec<SignedAuditRecord>, Option<SignedAuditHead>), AuditError> {
    let mut records = Vec::new();
    let mut head = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |reason: String| AuditError::Malformed {
            line: line_no,
            reason,
        };
        if head.is_some() {
            return Err(malformed("a line follows the head line".into()));
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
        if v.get("head").is_some() {
            let h: HeadLine = serde_json::from_value(v).map_err(|e| malformed(e.to_string()))?;
            head = Some(h.head);
        } else {
            let r: SignedAuditRecord =
                serde_json::from_value(v).map_err(|e| malformed(e.to_string()))?;
            records.push(r);
        }
    }
    Ok((records, head))
}

/// Parse and verify an export: every record, the signed head, and that the head is exactly the
/// end of the records (so truncation of the export is detected).
pub fn verify_export(text: &str, public_key: &[u8]) -> Result<VerifiedChain, AuditError> {
    let (records, head) = parse_export(text)?;
    let head = head.ok_or(AuditError::MissingHead)?;
    head.verify(public_key)?;
    let chain = verify(&records, public_key)?;
    chain.check_head(&head.head)?;
    if chain.head != head.head {
        return Err(AuditError::HeadMismatch {
            seq: head.head.next_seq.saturating_sub(1),
        });
    }
    Ok(chain)
}

fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    // Fields are bounded far below 4 GiB by validation; saturate rather than panic.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Canonical JSON: object keys sorted by bytes, no whitespace, serde_json's number and string
/// formatting. Independent of serde_json's `preserve_order` feature.
pub fn canonical_json(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            // Serializing a scalar Value to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, v);
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(x, out);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                if let Some(x) = m.get(*k) {
                    canonical_json(x, out);
                }
            }
            out.push(b'}');
        }
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

mod hexvec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
