//! Checking that a leaf certificate was issued by a CA.

use veil_attest::Time;
use x509_parser::certificate::X509Certificate;

use crate::util::{from_asn1, parse_cert};
use crate::CaError;

/// Checks that `leaf_der` was issued by the CA `ca_der` and that both are
/// valid at `at`.
///
/// Checks, in order: the CA certificate has basicConstraints CA (and, when
/// it has a key usage extension, keyCertSign); the CA is valid at `at`; the
/// leaf's issuer name equals the CA's subject name; the leaf's signature
/// verifies with the CA's public key; the leaf is valid at `at`.
///
/// This is a one-level check for Veil's own certificates (CAs here sign
/// leaves directly); it does not look at name constraints, revocation or the
/// leaf's key usages. TLS stacks do their own path validation.
pub fn verify_chain(leaf_der: &[u8], ca_der: &[u8], at: Time) -> Result<(), CaError> {
    let ca = parse_cert(ca_der, "CA certificate")?;
    check_is_ca(&ca)?;
    check_validity("CA", &ca, at)?;
    let leaf = parse_cert(leaf_der, "certificate")?;
    if leaf.issuer().as_raw() != ca.subject().as_raw() {
        return Err(CaError::IssuerMismatch {
            expected: ca.subject().to_string(),
            found: leaf.issuer().to_string(),
        });
    }
    leaf.verify_signature(Some(ca.public_key()))
        .map_err(|e| CaError::BadSignature(e.to_string()))?;
    check_validity("certificate", &leaf, at)
}

/// basicConstraints CA and, if key usage is present, keyCertSign.
pub(crate) fn check_is_ca(cert: &X509Certificate<'_>) -> Result<(), CaError> {
    let bc = cert
        .basic_constraints()
        .map_err(|e| CaError::malformed("basicConstraints", e))?;
    if !bc.is_some_and(|b| b.value.ca) {
        return Err(CaError::NotACa(
            "basicConstraints does not say CA".to_owned(),
        ));
    }
    let ku = cert
        .key_usage()
        .map_err(|e| CaError::malformed("keyUsage", e))?;
    if let Some(ku) = ku {
        if !ku.value.key_cert_sign() {
            return Err(CaError::NotACa("keyUsage lacks keyCertSign".to_owned()));
        }
    }
    Ok(())
}

fn check_validity(what: &'static str, cert: &X509Certificate<'_>, at: Time) -> Result<(), CaError> {
    let v = cert.validity();
    let not_before = from_asn1(v.not_before);
    let not_after = from_asn1(v.not_after);
    if at < not_before {
        return Err(CaError::NotYetValid {
            what,
            not_before,
            at,
        });
    }
    if at > not_after {
        return Err(CaError::Expired {
            what,
            not_after,
            at,
        });
    }
    Ok(())
}
