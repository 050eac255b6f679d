//! # veil-verifiers: the verifier side, assembled
//!
//! [`registry`] builds a [`Registry`] with one verifier per TEE (SGX, TDX,
//! SEV-SNP, Nitro, and the simulated TEE trusting exactly the platform keys
//! it is given). [`show`] detects what a file of evidence is and decodes its
//! fields without verifying anything, for `veil evidence show`.
//!
//! The SGX and TDX verifiers share one collateral cache, so a long-lived
//! registry (the CAS) verifies collateral once per FMSPC until it expires.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use veil_attest::{Registry, Tee};
use veil_attest_dcap::{CollateralCache, SgxVerifier, TdxVerifier};
use veil_attest_nitro::NitroVerifier;
use veil_attest_sim::SimVerifier;
use veil_attest_snp::SnpVerifier;
use veil_ratls::{BindingCheck, ClaimValue, EvidenceFormat};

/// What to configure in a registry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Sim platform public keys to trust. Empty: sim evidence never verifies.
    pub sim_keys: Vec<[u8; 32]>,
}

/// A registry with every verifier Veil has.
pub fn registry(options: &Options) -> Registry {
    let cache = Arc::new(CollateralCache::default());
    Registry::new()
        .with(SgxVerifier::with_cache(cache.clone()))
        .with(TdxVerifier::with_cache(cache))
        .with(SnpVerifier::new())
        .with(NitroVerifier::default())
        .with(SimVerifier::new(options.sim_keys.iter().copied()))
}

/// A file decoded, not verified.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// What the file is, in words.
    pub kind: String,
    /// The TEE whose evidence it is or carries.
    pub tee: Option<Tee>,
    /// Every field, as JSON.
    pub fields: Value,
    /// Remarks a reader should not miss (debug enclave, broken binding, ...).
    pub notes: Vec<String>,
}

/// Detects what `bytes` are and decodes them without verifying.
///
/// Tried in order: DCAP quote (SGX/TDX), sim evidence, SEV-SNP report
/// (binary or hex), Nitro document (CBOR or base64), RA-TLS certificate (PEM
/// or DER).
pub fn show(bytes: &[u8]) -> Result<Shown, String> {
    if veil_attest_dcap::detect(bytes).is_some() {
        return show_quote(bytes);
    }
    if veil_attest_sim::looks_like_sim_evidence(bytes) {
        return show_sim(bytes);
    }
    if veil_attest_snp::looks_like_snp_report(bytes) {
        return show_snp(bytes);
    }
    if veil_attest_nitro::looks_like_nitro_document(bytes) {
        return show_nitro(bytes);
    }
    if looks_like_certificate(bytes) {
        return show_ratls(bytes);
    }
    Err("not recognised as an SGX/TDX quote, SEV-SNP report, Nitro document, sim evidence or RA-TLS certificate".into())
}

fn looks_like_certificate(bytes: &[u8]) -> bool {
    let text = bytes.trim_ascii_start();
    text.starts_with(b"-----BEGIN CERTIFICATE-----") || bytes.first() == Some(&0x30)
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot encode: {e}"))
}

fn show_quote(bytes: &[u8]) -> Result<Shown, String> {
    let q = veil_attest_dcap::parse_quote(bytes).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    if quote_debug(&q) {
        notes.push(debug_note(q.tee));
    }
    Ok(Shown {
        kind: format!("{} quote v{}", q.tee.as_str().to_uppercase(), q.version),
        tee: Some(q.tee),
        fields: to_json(&q)?,
        notes,
    })
}

fn quote_debug(q: &veil_attest_dcap::ParsedQuote) -> bool {
    q.debug()
}

fn debug_note(tee: Tee) -> String {
    format!("the {tee} debug bit is set: the host can read this TEE's memory")
}

fn show_sim(bytes: &[u8]) -> Result<Shown, String> {
    let p = veil_attest_sim::parse_evidence(bytes).map_err(|e| e.to_string())?;
    let mut notes = vec!["simulated TEE: no protection at all".to_owned()];
    if p.statement.debug {
        notes.push(debug_note(Tee::Sim));
    }
    Ok(Shown {
        kind: "sim evidence v1".into(),
        tee: Some(Tee::Sim),
        fields: json!({
            "platform_key": hex::encode(p.platform_key),
            "measurement": hex::encode(p.statement.measurement),
            "report_data": p.statement.report_data.to_hex(),
            "issued_at": p.statement.issued_at.unix(),
            "debug": p.statement.debug,
        }),
        notes,
    })
}

fn show_snp(bytes: &[u8]) -> Result<Shown, String> {
    let r = veil_attest_snp::parse_report(bytes).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    if r.debug() {
        notes.push(debug_note(Tee::Snp));
    }
    let mut fields = to_json(&r.snp)?;
    if let Value::Object(m) = &mut fields {
        m.insert("report_data".into(), json!(r.report_data.to_hex()));
        m.insert("author_key_en".into(), json!(r.author_key_en));
        m.insert("mask_chip_key".into(), json!(r.mask_chip_key));
        m.insert("generation".into(), json!(r.generation.map(|g| g.name())));
    }
    Ok(Shown {
        kind: format!("SEV-SNP report v{}", r.snp.version),
        tee: Some(Tee::Snp),
        fields,
        notes,
    })
}

fn show_nitro(bytes: &[u8]) -> Result<Shown, String> {
    let d = veil_attest_nitro::parse_document(bytes).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    if veil_attest_nitro::is_debug_mode(&d.claims) {
        notes.push("PCR0-2 are all zero: a debug-mode enclave".to_owned());
    }
    let mut fields = to_json(&d.claims)?;
    if let Value::Object(m) = &mut fields {
        m.insert("certificates".into(), json!(1 + d.cabundle.len()));
        m.insert("algorithm".into(), json!(d.algorithm));
    }
    Ok(Shown {
        kind: "AWS Nitro attestation document".into(),
        tee: Some(Tee::Nitro),
        fields,
        notes,
    })
}

fn show_ratls(bytes: &[u8]) -> Result<Shown, String> {
    let text = bytes.trim_ascii_start();
    let cert = if text.starts_with(b"-----BEGIN") {
        veil_ratls::parse_ratls_pem(bytes)
    } else {
        veil_ratls::parse_ratls_certificate(bytes)
    }
    .map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let binding = cert.binding();
    if binding.holds() {
        notes.push("the evidence's report data binds this certificate's public key".into());
    } else {
        notes.push("the evidence does NOT bind this certificate's public key".into());
    }
    let quote = veil_attest_dcap::parse_quote(cert.evidence())
        .ok()
        .and_then(|q| {
            if quote_debug(&q) {
                notes.push(debug_note(q.tee));
            }
            serde_json::to_value(&q).ok()
        });
    Ok(Shown {
        kind: "RA-TLS certificate".into(),
        tee: Some(cert.tee()),
        fields: json!({
            "format": format_json(cert.format()),
            "spki_sha256": hex::encode(sha256(cert.spki_der())),
            "evidence_len": cert.evidence().len(),
            "report_data": cert.report_data().to_hex(),
            "claims": cert.claims().iter().map(|(k, v)| (k.clone(), claim_json(v))).collect::<serde_json::Map<_, _>>(),
            "binding": {
                "holds": binding.holds(),
                "report_data": check_json(&binding.report_data),
                "pubkey_hash": check_json(&binding.pubkey_hash),
            },
            "quote": quote,
        }),
        notes,
    })
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

fn format_json(f: &EvidenceFormat) -> Value {
    match f {
        EvidenceFormat::TaggedEvidence { tag } => json!({"tagged_evidence": tag}),
        EvidenceFormat::LegacyQuote { oid } => json!({"legacy_quote_oid": oid}),
        _ => json!("other"),
    }
}

fn claim_json(v: &ClaimValue) -> Value {
    match v {
        ClaimValue::Bytes(b) => json!(hex::encode(b)),
        ClaimValue::Text(t) => json!(t),
        ClaimValue::Integer(i) => json!(i.to_string()),
        ClaimValue::Bool(b) => json!(b),
        ClaimValue::Null => Value::Null,
        ClaimValue::Other(kind) => json!(format!("<{kind}>")),
        _ => json!("<unknown>"),
    }
}

fn check_json(c: &BindingCheck) -> Value {
    match c {
        BindingCheck::Match => json!("match"),
        BindingCheck::Mismatch { expected, found } => json!({
            "mismatch": {"expected": hex::encode(expected), "found": hex::encode(found)}
        }),
        BindingCheck::Unavailable(why) => json!({"unavailable": why}),
        BindingCheck::NotApplicable => json!("not applicable"),
        _ => json!("other"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_has_every_tee() {
        let r = registry(&Options::default());
        assert_eq!(r.tees().collect::<Vec<_>>(), Tee::ALL.to_vec());
    }

    #[test]
    fn show_refuses_garbage() {
        assert!(show(b"hello world").is_err());
        assert!(show(b"").is_err());
    }
}
