use veil_attest::Time;

/// Why a certificate, key or secret could not be made, read or verified.
///
/// No variant ever carries key material: details name the field or the check,
/// never the secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A parameter of a secret or certificate request is out of range.
    #[error("invalid {what}: {detail}")]
    InvalidSpec {
        /// Which parameter ("password length", "DNS name", ...).
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// An `x509` secret names an issuer that the lookup does not know.
    #[error("unknown certificate issuer {0:?}")]
    UnknownIssuer(String),
    /// Input bytes (DER, PEM, SPKI, key) are not well formed.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// Why it could not be read.
        detail: String,
    },
    /// The private key does not belong to the certificate it came with.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// The key type is not one Veil accepts here.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// A certificate could not be built or signed.
    #[error("cannot build certificate: {0}")]
    Build(String),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Rng,
    /// A certificate's signature does not verify with the CA's key.
    #[error("certificate signature does not verify with the CA key: {0}")]
    BadSignature(String),
    /// The certificate's issuer name is not the CA's subject name.
    #[error("certificate issuer {found:?} is not the CA {expected:?}")]
    IssuerMismatch {
        /// The CA's subject name.
        expected: String,
        /// The certificate's issuer name.
        found: String,
    },
    /// The certificate used as a CA is not a CA (basicConstraints, keyUsage).
    #[error("not a CA certificate: {0}")]
    NotACa(String),
    /// A certificate is not valid yet at the time asked.
    #[error("{what} not valid before {not_before}, checked at {at}")]
    NotYetValid {
        /// Which certificate ("leaf", "CA").
        what: &'static str,
        /// Start of its validity.
        not_before: Time,
        /// The time of the check.
        at: Time,
    },
    /// A certificate has expired at the time asked.
    #[error("{what} expired at {not_after}, checked at {at}")]
    Expired {
        /// Which certificate ("leaf", "CA").
        what: &'static str,
        /// End of its validity.
        not_after: Time,
        /// The time of the check.
        at: Time,
    },
    /// The certificate has no Veil attestation extension.
    #[error("certificate has no Veil attestation extension")]
    MissingExtension,
    /// The Veil attestation extension is present but malformed or of an unknown version.
    #[error("malformed Veil attestation extension: {0}")]
    MalformedExtension(String),
    /// The attestation extension names another CA than the one that verified it.
    #[error(
        "attestation extension names issuer {claimed}, but the certificate chains to {actual}"
    )]
    IssuerFingerprintMismatch {
        /// Fingerprint written in the extension.
        claimed: String,
        /// Fingerprint of the CA the chain was verified against.
        actual: String,
    },
}

impl CaError {
    pub(crate) fn spec(what: &'static str, detail: impl Into<String>) -> Self {
        CaError::InvalidSpec {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl ToString) -> Self {
        CaError::Malformed {
            what,
            detail: detail.to_string(),
        }
    }
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Build(e.to_string())
    }
}
