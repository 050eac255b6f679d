//! Turning dcap-qvl's error messages into [`VerifyError`]s that name the check.
//!
//! dcap-qvl reports failures as `anyhow` errors with context chains; the
//! texts below are those of dcap-qvl 0.7.1 (`src/verify.rs`, `src/utils.rs`)
//! and of its webpki fork. The full chain is always kept in the detail, so a
//! message this table does not know still reaches the operator.

use std::error::Error as StdError;

use veil_attest::{Tee, Time, VerifyError};

use crate::quote::{parse_quote, what, ReportBody};

/// Every message of an error's source chain, outermost first.
pub(crate) fn chain(e: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        out.push(err.to_string());
        cur = err.source();
        if out.len() > 32 {
            break;
        }
    }
    out
}

/// Reads `UnixTime(N)` after `field: ` in a webpki error's debug text.
fn unix_field(text: &str, field: &str) -> Option<Time> {
    let start = text.find(&format!("{field}: UnixTime("))? + field.len() + ": UnixTime(".len();
    let digits: String = text
        .get(start..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().map(Time::from_unix)
}

/// Splits "X mismatch: expected A, got B" (dcap-qvl's wording).
fn mismatch(text: &str) -> Option<VerifyError> {
    let (lhs, rhs) = text.rsplit_once(" mismatch")?;
    let what = lhs.rsplit(": ").next().unwrap_or(lhs);
    let rhs = rhs.strip_prefix(':').unwrap_or(rhs);
    let (at, rest) = rhs.split_once("expected ")?;
    let (expected, found) = rest.split_once(", got ")?;
    let what = format!("{what}{}", at.trim_end_matches(": ").trim_end_matches(':'));
    Some(VerifyError::mismatch(
        what.trim(),
        expected.trim(),
        found.trim(),
    ))
}

/// Maps a dcap-qvl verification error for a quote of `tee`.
pub(crate) fn map_qvl_error(
    e: &(dyn StdError + 'static),
    tee: Tee,
    evidence: &[u8],
    collateral_fmspc: [u8; 6],
    at: Time,
) -> VerifyError {
    let msgs = chain(e);
    let full = msgs.join(": ");
    let has = |s: &str| full.contains(s);

    // Revocation first: it is the most serious finding.
    if has("TCB status is invalid: Revoked") {
        return VerifyError::Revoked {
            what: format!(
                "platform TCB level (Intel's TCB info marks it Revoked; dcap-qvl: {full})"
            ),
        };
    }
    if has("CertRevoked") {
        let what = if msgs.len() == 1 {
            "Intel SGX root CA certificate (listed in the root CA CRL)".to_owned()
        } else {
            format!("a certificate of the PCK or collateral signing chain ({full})")
        };
        return VerifyError::Revoked { what };
    }

    // Signatures.
    if has("Signature is invalid for tcb_info") {
        return VerifyError::bad_signature("TCB info (by the TCB signing certificate)", full);
    }
    if has("Signature is invalid for qe_identity") {
        return VerifyError::bad_signature("QE identity (by the TCB signing certificate)", full);
    }
    if has("Signature is invalid for qe_report") {
        return VerifyError::bad_signature("QE report (by the PCK certificate)", full);
    }
    if has("ISV enclave report signature is invalid") {
        return VerifyError::bad_signature(
            format!(
                "{} (header and report body, by the attestation key)",
                what(tee)
            ),
            full,
        );
    }
    if has("QE report hash mismatch") {
        return VerifyError::mismatch(
            "QE report data (binding of the attestation key)",
            "SHA-256(attestation key || QE authentication data)",
            format!("another value ({full})"),
        );
    }

    // Collateral that cannot be read.
    if has("Failed to parse root CA CRL") {
        if has("Signature") {
            return VerifyError::bad_signature("root CA CRL (by the Intel SGX root CA)", full);
        }
        return VerifyError::BadEndorsement(format!("root CA CRL: {full}"));
    }
    if has("Failed to parse PCK CRL") {
        return VerifyError::BadEndorsement(format!("PCK CRL: {full}"));
    }
    if has("must be issued directly by the root CA") {
        return VerifyError::untrusted("collateral signing certificate", full);
    }
    for marker in [
        "Failed to parse certs",
        "Certificate chain is too short for",
        "Failed to parse TCB Info leaf certificate",
        "Failed to parse QE Identity leaf certificate",
        "Failed to decode TcbInfo",
        "Failed to decode QeIdentity",
        "Failed to extract PCK certificates from collateral",
    ] {
        if has(marker) {
            return VerifyError::BadEndorsement(full);
        }
    }

    // Certificate chains (webpki's errors).
    if has("Failed to verify certificate chain") || has("Failed to load root ca") {
        let chain_name = "Intel certificate chain (PCK, TCB signing or root)";
        if has("CertExpired") {
            if let Some(not_after) = unix_field(&full, "not_after") {
                return VerifyError::Expired {
                    what: format!("certificate in the {chain_name}"),
                    not_after,
                    at,
                };
            }
        }
        if has("CertNotValidYet") {
            if let Some(not_before) = unix_field(&full, "not_before") {
                return VerifyError::NotYetValid {
                    what: format!("certificate in the {chain_name}"),
                    not_before,
                    at,
                };
            }
        }
        if has("CrlExpired") {
            if let Some(next_update) = unix_field(&full, "next_update") {
                return VerifyError::Expired {
                    what: "CRL".to_owned(),
                    not_after: next_update,
                    at,
                };
            }
        }
        if has("InvalidSignatureForPublicKey") || has("InvalidCrlSignatureForPublicKey") {
            return VerifyError::bad_signature(
                format!("certificate or CRL in the {chain_name}"),
                full,
            );
        }
        return VerifyError::untrusted(chain_name, full);
    }

    // The quote's platform against the collateral.
    if has("Fmspc mismatch") {
        return VerifyError::mismatch(
            "FMSPC (TCB info vs PCK certificate)",
            hex::encode_upper(collateral_fmspc),
            parse_quote(evidence)
                .ok()
                .and_then(|q| q.pck_fmspc)
                .map_or_else(|| "unknown".to_owned(), hex::encode_upper),
        );
    }
    if has("non-TDX TCB info")
        || has("non-SGX TCB info")
        || has("Unsupported QE Identity id/version")
    {
        return VerifyError::mismatch("collateral TEE", tee.as_str(), full);
    }
    if has("TDX module ISVSVN") || has("No TDX module identity") || has("TDX module TCB level") {
        return VerifyError::Collateral(format!(
            "no matching TDX module TCB level in the TCB info ({full})"
        ));
    }
    if has("No matching TCB level found") {
        let svns = if tee == Tee::Tdx {
            "CPUSVN, PCESVN and TEE_TCB_SVN"
        } else {
            "CPUSVN and PCESVN"
        };
        return VerifyError::Collateral(format!(
            "no matching TCB level: the TCB info has no level the platform's {svns} meet ({full})"
        ));
    }
    if has("QE ISVSVN") || has("No TCB levels found in QE Identity") {
        return VerifyError::Collateral(format!(
            "no matching QE TCB level in the QE identity ({full})"
        ));
    }
    if has("Unrecognized TCB status") {
        return VerifyError::Collateral(full);
    }
    if has("QE report validation failed") {
        return VerifyError::untrusted("quoting enclave", full);
    }
    if let Some(err) = msgs.iter().find_map(|m| mismatch(m)) {
        return err;
    }

    // TD attributes dcap-qvl refuses whatever the policy (debug is allowed).
    let td_attributes = match parse_quote(evidence).map(|q| q.body) {
        Ok(ReportBody::Td(r)) => hex::encode(&r.td_attributes),
        _ => String::new(),
    };
    for (marker, expected) in [
        ("TD profiling", "no TUD profiling bits"),
        ("Reserved bits in TD attributes", "reserved bits zero"),
        ("TD migration is enabled", "MIGRATABLE clear"),
        ("SERVTD_EXT is enabled", "SERVTD_EXT clear"),
        ("SEPT_VE_DISABLE is not enabled", "SEPT_VE_DISABLE set"),
    ] {
        if has(marker) {
            return VerifyError::mismatch(
                "TD_ATTRIBUTES",
                expected,
                format!("{td_attributes} ({full})"),
            );
        }
    }
    if has("Invalid MR service TD") {
        return VerifyError::mismatch(
            "MRSERVICETD",
            "all zero (no service TD bound)",
            format!("non-zero ({full})"),
        );
    }
    if has("Debug mode is enabled") {
        return VerifyError::untrusted("report attributes", full);
    }

    // The quote itself.
    for marker in [
        "Failed to decode quote",
        "Unsupported DCAP quote version",
        "Unknown QE vendor ID",
        "Unsupported TEE type",
        "must have version",
        "Unsupported DCAP attestation key type",
        "Failed to decode QE report",
        "Invalid QE auth data length",
        "Failed to get signed quote scope",
        "Unsupported DCAP PCK cert format",
        "Failed to extract PCK certificates from quote",
        "Certificate chain is too short in quote",
        "Failed to parse PCK certificate",
        "Intel extension not found",
        "Invalid key length",
        "OID is missing",
        "length mismatch",
    ] {
        if has(marker) {
            return VerifyError::malformed(what(tee), full);
        }
    }
    VerifyError::Collateral(format!("dcap-qvl rejected the quote: {full}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_mismatch_messages() {
        let e = mismatch("QE MRSIGNER mismatch: expected AB, got CD").unwrap();
        assert_eq!(e, VerifyError::mismatch("QE MRSIGNER", "AB", "CD"));
        let e = mismatch("QE ATTRIBUTES mismatch at byte 3: expected 11 (masked), got 13 (masked)")
            .unwrap();
        assert_eq!(
            e,
            VerifyError::mismatch("QE ATTRIBUTES at byte 3", "11 (masked)", "13 (masked)")
        );
        assert!(mismatch("Fmspc mismatch").is_none());
    }

    #[test]
    fn reads_webpki_times() {
        let t = "Failed to verify certificate chain: CertExpired { time: UnixTime(200), not_after: UnixTime(100) }";
        assert_eq!(unix_field(t, "not_after"), Some(Time::from_unix(100)));
        assert_eq!(unix_field(t, "not_before"), None);
    }
}
