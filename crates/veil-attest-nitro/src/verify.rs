//! Verification of a parsed document: pinned root, certificate chain, COSE
//! signature, validity windows, then the claims.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};
use veil_attest::{Claims, NitroClaims, ReportData, TcbStatus, Tee, TeeClaims, Time, VerifyError};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384};
use x509_parser::prelude::FromDer as _;

use crate::document::{NitroDocument, COSE_ALG_ES384, WHAT};

/// Length of an ES384 COSE signature: `r || s`, 48 bytes each.
const ES384_SIGNATURE_LEN: usize = 96;

/// One certificate of the chain root → intermediates → leaf, parsed.
struct ChainCert<'a> {
    name: String,
    cert: X509Certificate<'a>,
}

/// Checks `doc` against the root pinned by `root_sha256` at time `at` and
/// returns its claims.
pub(crate) fn verify_document(
    doc: &NitroDocument,
    root_sha256: &[u8; 32],
    at: Time,
) -> Result<Claims, VerifyError> {
    if doc.algorithm != Some(COSE_ALG_ES384) {
        return Err(VerifyError::malformed(
            WHAT,
            format!(
                "protected header algorithm is {}, expected ES384 ({COSE_ALG_ES384})",
                doc.algorithm
                    .map_or_else(|| "absent or not an integer".to_owned(), |a| a.to_string())
            ),
        ));
    }

    if !doc.claims.pcrs.contains_key(&0) {
        return Err(VerifyError::malformed(
            WHAT,
            "PCR0 (the enclave image measurement) is missing",
        ));
    }

    // 1. The root the document carries must be the one we pin.
    let root_der = doc
        .cabundle
        .first()
        .ok_or_else(|| VerifyError::malformed(WHAT, "cabundle is empty"))?;
    let found: [u8; 32] = Sha256::digest(root_der).into();
    if found != *root_sha256 {
        return Err(VerifyError::untrusted(
            "Nitro certificate chain",
            format!(
                "cabundle[0] is not the pinned AWS Nitro root: its SHA-256 is {}, expected {}",
                hex::encode(found),
                hex::encode(root_sha256)
            ),
        ));
    }

    // 2. Parse the chain root first, leaf last.
    let total = doc.cabundle.len() + 1;
    let mut chain = Vec::with_capacity(total);
    for (i, der) in doc
        .cabundle
        .iter()
        .chain(std::iter::once(&doc.certificate))
        .enumerate()
    {
        chain.push(parse_cert(der, i, total)?);
    }

    // 3. Each certificate is issued and signed by its predecessor; every
    //    issuer is a CA allowed to issue this deep.
    for (i, pair) in chain.windows(2).enumerate() {
        let [parent, child] = pair else { continue };
        check_issuer(parent, child, total - 2 - i)?;
    }
    if let Some(root) = chain.first() {
        root.cert.verify_signature(None).map_err(|e| {
            VerifyError::bad_signature(format!("{} self", root.name), e.to_string())
        })?;
    }

    // 4. The leaf key signs the document.
    let leaf = chain
        .last()
        .ok_or_else(|| VerifyError::malformed(WHAT, "no signing certificate"))?;
    check_cose_signature(doc, leaf)?;

    // 5. Every certificate is valid at T, the leaf checked first.
    for c in chain.iter().rev() {
        let validity = c.cert.validity();
        VerifyError::check_window(
            &c.name,
            to_time(validity.not_before.timestamp(), &c.name)?,
            to_time(validity.not_after.timestamp(), &c.name)?,
            at,
        )?;
    }

    Ok(claims_from(doc.claims.clone(), at))
}

fn parse_cert<'a>(der: &'a [u8], i: usize, total: usize) -> Result<ChainCert<'a>, VerifyError> {
    let label = if i == 0 {
        "Nitro root certificate".to_owned()
    } else if i + 1 == total {
        "Nitro leaf certificate".to_owned()
    } else {
        format!("Nitro intermediate certificate {i}")
    };
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| {
        VerifyError::malformed(
            WHAT,
            format!("{label} is not a valid X.509 certificate: {e}"),
        )
    })?;
    if !rest.is_empty() {
        return Err(VerifyError::malformed(
            WHAT,
            format!("{label} has {} bytes of trailing data", rest.len()),
        ));
    }
    let name = match cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
    {
        Some(cn) if i + 1 != total && i != 0 => format!("{label} (CN={cn})"),
        _ => label,
    };
    Ok(ChainCert { name, cert })
}

/// `cas_below` is how many CA certificates sit between `parent` and the leaf.
fn check_issuer(
    parent: &ChainCert<'_>,
    child: &ChainCert<'_>,
    cas_below: usize,
) -> Result<(), VerifyError> {
    if child.cert.issuer().as_raw() != parent.cert.subject().as_raw() {
        return Err(VerifyError::untrusted(
            "Nitro certificate chain",
            format!(
                "issuer of {} ({}) is not the subject of {} ({})",
                child.name,
                child.cert.issuer(),
                parent.name,
                parent.cert.subject()
            ),
        ));
    }
    let constraints = parent
        .cert
        .basic_constraints()
        .ok()
        .flatten()
        .map(|bc| bc.value.clone());
    match constraints {
        Some(bc) if bc.ca => {
            if let Some(max) = bc.path_len_constraint {
                if u64::try_from(cas_below).unwrap_or(u64::MAX) > u64::from(max) {
                    return Err(VerifyError::untrusted(
                        "Nitro certificate chain",
                        format!(
                            "{} allows {max} CA certificates below it, the chain has {cas_below}",
                            parent.name
                        ),
                    ));
                }
            }
        }
        _ => {
            return Err(VerifyError::untrusted(
                "Nitro certificate chain",
                format!(
                    "{} issues {} but is not a CA (basicConstraints cA is not true)",
                    parent.name, child.name
                ),
            ))
        }
    }
    match parent.cert.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => {
            return Err(VerifyError::untrusted(
                "Nitro certificate chain",
                format!("{} may not sign certificates (keyUsage)", parent.name),
            ))
        }
        Err(e) => {
            return Err(VerifyError::malformed(
                WHAT,
                format!("{} has an invalid keyUsage: {e}", parent.name),
            ))
        }
        _ => {}
    }
    child
        .cert
        .verify_signature(Some(parent.cert.public_key()))
        .map_err(|e| {
            VerifyError::bad_signature(
                format!("{} (signed by {})", child.name, parent.name),
                e.to_string(),
            )
        })
}

fn check_cose_signature(doc: &NitroDocument, leaf: &ChainCert<'_>) -> Result<(), VerifyError> {
    let spki = leaf.cert.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || curve != Some(OID_NIST_EC_P384) {
        return Err(VerifyError::bad_signature(
            "Nitro attestation document",
            format!("{} does not hold a P-384 key", leaf.name),
        ));
    }
    if doc.signature.len() != ES384_SIGNATURE_LEN {
        return Err(VerifyError::bad_signature(
            "Nitro attestation document",
            format!(
                "signature is {} bytes; ES384 signatures are {ES384_SIGNATURE_LEN} (r || s)",
                doc.signature.len()
            ),
        ));
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P384_SHA384_FIXED,
        &spki.subject_public_key.data,
    );
    key.verify(doc.to_be_signed(), &doc.signature).map_err(|_| {
        VerifyError::bad_signature(
            "Nitro attestation document",
            format!(
                "ES384 signature does not verify with the key of the {}",
                leaf.name
            ),
        )
    })
}

fn to_time(secs: i64, what: &str) -> Result<Time, VerifyError> {
    u64::try_from(secs).map(Time::from_unix).map_err(|_| {
        VerifyError::malformed(WHAT, format!("{what} has a validity time before 1970"))
    })
}

/// True when PCR0, PCR1 and PCR2 are all zero (or absent): AWS fills them
/// with zeros when an enclave runs in debug mode.
pub(crate) fn is_debug(pcrs: &BTreeMap<u8, Vec<u8>>) -> bool {
    (0u8..=2).all(|i| pcrs.get(&i).is_none_or(|v| v.iter().all(|b| *b == 0)))
}

/// The report data of a document: see the crate docs.
pub(crate) fn report_data(claims: &NitroClaims) -> ReportData {
    [claims.user_data.as_deref(), claims.nonce.as_deref()]
        .into_iter()
        .flatten()
        .find_map(ReportData::from_prefix)
        .unwrap_or(ReportData::ZERO)
}

fn claims_from(nitro: NitroClaims, at: Time) -> Claims {
    let measurements: BTreeMap<String, Vec<u8>> = nitro
        .pcrs
        .iter()
        .map(|(i, v)| (format!("pcr{i}"), v.clone()))
        .collect();
    // verify_document refused documents without PCR0.
    let measurement = nitro.pcrs.get(&0).cloned().unwrap_or_default();
    Claims {
        tee: Tee::Nitro,
        insecure: false,
        measurement,
        measurements,
        signer: None,
        product_id: None,
        svn: None,
        debug: is_debug(&nitro.pcrs),
        tcb_status: TcbStatus::NotApplicable,
        advisories: Vec::new(),
        report_data: report_data(&nitro),
        platform_id: Some(nitro.module_id.clone().into_bytes()),
        verified_at: at,
        tee_claims: TeeClaims::Nitro(nitro),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_document;

    const VALID: &[u8] = include_bytes!("../testdata/evervault_valid_doc.cbor");

    fn at() -> Time {
        Time::parse_rfc3339("2022-10-13T09:00:00Z").unwrap()
    }

    #[test]
    fn algorithm_other_than_es384_is_refused() {
        let mut doc = parse_document(VALID).unwrap();
        doc.algorithm = Some(-7);
        let err = verify_document(&doc, &crate::AWS_NITRO_ROOT_G1_SHA256, at()).unwrap_err();
        assert!(err.to_string().contains("expected ES384 (-35)"), "{err}");
        doc.algorithm = None;
        assert!(verify_document(&doc, &crate::AWS_NITRO_ROOT_G1_SHA256, at()).is_err());
    }

    #[test]
    fn short_signature_is_refused() {
        let mut doc = parse_document(VALID).unwrap();
        doc.signature.truncate(95);
        let err = verify_document(&doc, &crate::AWS_NITRO_ROOT_G1_SHA256, at()).unwrap_err();
        assert!(err.to_string().contains("95 bytes"), "{err}");
    }

    #[test]
    fn chain_must_be_complete_and_ordered() {
        let good = parse_document(VALID).unwrap();
        // An intermediate left out: the names no longer chain.
        let mut doc = good.clone();
        doc.cabundle.remove(2);
        let err = verify_document(&doc, &crate::AWS_NITRO_ROOT_G1_SHA256, at()).unwrap_err();
        assert!(matches!(err, VerifyError::Untrusted { .. }), "{err:?}");
        assert!(err.to_string().contains("is not the subject of"), "{err}");
        // Intermediates swapped.
        let mut doc = good.clone();
        doc.cabundle.swap(1, 2);
        assert!(verify_document(&doc, &crate::AWS_NITRO_ROOT_G1_SHA256, at()).is_err());
        // The leaf signing a further "leaf": the leaf is not a CA.
        let mut doc = good.clone();
        doc.cabundle.push(good.certificate.clone());
        let err = verify_document(&doc, &crate::AWS_NITRO_ROOT_G1_SHA256, at()).unwrap_err();
        assert!(matches!(err, VerifyError::Untrusted { .. }), "{err:?}");
        // Only the root: the leaf is not issued by it.
        let mut doc = good;
        doc.cabundle.truncate(1);
        assert!(verify_document(&doc, &crate::AWS_NITRO_ROOT_G1_SHA256, at()).is_err());
    }

    #[test]
    fn pcr0_is_required() {
        let mut doc = parse_document(VALID).unwrap();
        doc.claims.pcrs.remove(&0);
        let err = verify_document(&doc, &crate::AWS_NITRO_ROOT_G1_SHA256, at()).unwrap_err();
        assert!(err.to_string().contains("PCR0"), "{err}");
    }

    #[test]
    fn report_data_takes_the_first_field_that_fits() {
        let mut c = parse_document(VALID).unwrap().claims;
        c.user_data = Some(vec![1; 64]);
        c.nonce = Some(vec![2; 8]);
        assert_eq!(report_data(&c), ReportData([1; 64]));
        c.user_data = Some(vec![1; 65]);
        assert_eq!(report_data(&c), ReportData::from_prefix(&[2; 8]).unwrap());
        c.user_data = None;
        assert_eq!(report_data(&c), ReportData::from_prefix(&[2; 8]).unwrap());
        c.nonce = Some(vec![2; 65]);
        assert_eq!(report_data(&c), ReportData::ZERO);
    }

    #[test]
    fn debug_needs_pcr0_to_2_zero() {
        let mut pcrs = BTreeMap::new();
        for i in 0..3 {
            pcrs.insert(i, vec![0u8; 48]);
        }
        pcrs.insert(3, vec![1u8; 48]);
        assert!(is_debug(&pcrs));
        pcrs.insert(2, vec![1u8; 48]);
        assert!(!is_debug(&pcrs));
    }
}
