//! Errors of the network shield.

use veil_ca::CaError;

/// Why a peer's certificate was refused: the check that failed, with what
/// was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// The peer sent no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The certificate does not chain to the session CA at this time
    /// (signature, issuer, validity), or its attestation extension is
    /// missing, malformed or names another CA.
    #[error("certificate check against the session CA failed: {0}")]
    Certificate(CaError),
    /// The certificate is for another session.
    #[error("session: expected {expected:?}, found {found:?}")]
    Session {
        /// The session the rule requires.
        expected: String,
        /// The session in the certificate.
        found: String,
    },
    /// The certificate is for another service.
    #[error("service: expected {expected:?}, found {found:?}")]
    Service {
        /// The service the rule requires.
        expected: String,
        /// The service in the certificate.
        found: String,
    },
    /// The certificate carries another measurement.
    #[error("measurement: expected {expected}, found {found}")]
    Measurement {
        /// The pinned measurement (hex).
        expected: String,
        /// The measurement in the certificate (hex).
        found: String,
    },
}

/// Why a rule, configuration or tunnel could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A peer rule parameter is invalid (CA certificate, measurement hex...).
    #[error("invalid peer rule: {0}")]
    InvalidRule(String),
    /// Our certificate or key is unusable.
    #[error("invalid certificate or key: {0}")]
    InvalidIdentity(String),
    /// The server name to send is neither a DNS name nor an IP address.
    #[error("invalid server name {0}")]
    InvalidServerName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A socket operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
