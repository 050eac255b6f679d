/// Why a certificate is not a usable RA-TLS certificate, or why its evidence
/// is not bound to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RaTlsError {
    /// The input is not PEM holding a `CERTIFICATE` block.
    #[error("not a PEM certificate: {0}")]
    Pem(String),
    /// The bytes are not one well-formed DER X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Certificate(String),
    /// The certificate carries no RA-TLS evidence extension (neither the
    /// TCG DICE tagged-evidence extension nor a legacy raw-quote extension).
    #[error("certificate is not an RA-TLS certificate: no evidence extension (OID 2.23.133.5.4.9 or a legacy SGX quote OID)")]
    NotRaTls,
    /// An evidence extension appears more than once.
    #[error("RA-TLS evidence extension {oid} appears {count} times")]
    DuplicateExtension {
        /// The OID, dotted.
        oid: String,
        /// How many times it appears.
        count: usize,
    },
    /// The tagged-evidence extension is not the CBOR it must be.
    #[error("malformed RA-TLS evidence extension: {0}")]
    MalformedExtension(String),
    /// The tagged evidence uses a CBOR tag this crate does not support.
    #[error("unsupported RA-TLS evidence CBOR tag {tag} ({}); supported: 60000 (Intel TEE quote), 60010 (SEV-SNP report), 60011 (Nitro document), 60012 (Veil sim evidence)", crate::extension::tag_name(*tag))]
    UnsupportedTag {
        /// The CBOR tag found.
        tag: u64,
    },
    /// The claims buffer is not a CBOR map of text keys.
    #[error("malformed RA-TLS claims: {0}")]
    MalformedClaims(String),
    /// The evidence is not a quote of a known TEE, or too short.
    #[error("malformed RA-TLS evidence: {0}")]
    MalformedEvidence(String),
    /// A binding value differs from the one the certificate requires.
    #[error("RA-TLS binding mismatch: {what}: expected {expected}, found {found}")]
    BindingMismatch {
        /// Which binding ("report data = SHA-256(claims)", ...).
        what: &'static str,
        /// The value the certificate requires (hex).
        expected: String,
        /// The value the evidence or claims carry (hex).
        found: String,
    },
    /// A binding could not be checked.
    #[error("RA-TLS binding cannot be checked: {what}: {reason}")]
    BindingUnavailable {
        /// Which binding.
        what: &'static str,
        /// Why.
        reason: String,
    },
}
