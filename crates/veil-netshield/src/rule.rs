//! What a peer must be.

use std::fmt;

use veil_attest::Time;
use veil_ca::{verify_attested_cert, AttestedCert, CaError, Fingerprint};

use crate::{Denial, NetError};

/// What the other end of a tunnel must be: its certificate chains directly
/// to the session CA `ca` (signature, issuer, validity, and the attestation
/// extension names that CA's key), and, when set, its extension names the
/// required session, service and measurement.
///
/// Names in the certificate are only trusted after the chain check: the
/// session CA signs attested certificates only after verifying evidence.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerRule {
    ca_der: Vec<u8>,
    ca_fingerprint: Fingerprint,
    session: Option<String>,
    service: Option<String>,
    measurement: Option<Vec<u8>>,
}

impl PeerRule {
    /// A rule accepting any attested certificate issued by the CA `ca_der`
    /// (DER). Fails when `ca_der` is not a certificate.
    pub fn new(ca_der: impl Into<Vec<u8>>) -> Result<PeerRule, NetError> {
        let ca_der = ca_der.into();
        let ca_fingerprint = Fingerprint::of_cert_der(&ca_der)
            .map_err(|e| NetError::InvalidRule(format!("session CA certificate: {e}")))?;
        Ok(PeerRule {
            ca_der,
            ca_fingerprint,
            session: None,
            service: None,
            measurement: None,
        })
    }

    /// Also requires the session `name`.
    #[must_use]
    pub fn session(mut self, name: impl Into<String>) -> PeerRule {
        self.session = Some(name.into());
        self
    }

    /// Also requires the service `name`.
    #[must_use]
    pub fn service(mut self, name: impl Into<String>) -> PeerRule {
        self.service = Some(name.into());
        self
    }

    /// Also pins the measurement, given in hex (as in policies).
    pub fn measurement_hex(mut self, hex_text: &str) -> Result<PeerRule, NetError> {
        let m = hex::decode(hex_text.trim())
            .map_err(|e| NetError::InvalidRule(format!("measurement {hex_text:?}: {e}")))?;
        if m.is_empty() {
            return Err(NetError::InvalidRule("empty measurement".into()));
        }
        self.measurement = Some(m);
        Ok(self)
    }

    /// The session CA certificate (DER).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Checks the peer's end-entity certificate `leaf_der` at time `at`:
    /// chain to the CA first, then session, service, measurement.
    pub fn check(&self, leaf_der: &[u8], at: Time) -> Result<AttestedCert, Denial> {
        let cert = verify_attested_cert(leaf_der, &self.ca_der, at).map_err(Denial::Certificate)?;
        if let Some(expected) = &self.session {
            if *expected != cert.subject.session {
                return Err(Denial::Session {
                    expected: expected.clone(),
                    found: cert.subject.session.clone(),
                });
            }
        }
        if let Some(expected) = &self.service {
            if *expected != cert.subject.service {
                return Err(Denial::Service {
                    expected: expected.clone(),
                    found: cert.subject.service.clone(),
                });
            }
        }
        if let Some(expected) = &self.measurement {
            if *expected != cert.subject.measurement {
                return Err(Denial::Measurement {
                    expected: hex::encode(expected),
                    found: hex::encode(&cert.subject.measurement),
                });
            }
        }
        Ok(cert)
    }
}

impl fmt::Debug for PeerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerRule")
            .field("ca", &self.ca_fingerprint.to_string())
            .field("session", &self.session)
            .field("service", &self.service)
            .field("measurement", &self.measurement.as_ref().map(hex::encode))
            .finish()
    }
}

/// Maps a denial to the rustls error the handshake fails with.
pub(crate) fn to_rustls(denial: Denial) -> rustls::Error {
    use rustls::CertificateError as C;
    let e = match denial {
        Denial::NoCertificate => return rustls::Error::NoCertificatesPresented,
        Denial::Certificate(CaError::Expired { .. }) => C::Expired,
        Denial::Certificate(CaError::NotYetValid { .. }) => C::NotValidYet,
        Denial::Certificate(CaError::BadSignature(_) | CaError::IssuerMismatch { .. }) => {
            C::UnknownIssuer
        }
        other => C::Other(rustls::OtherError(std::sync::Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(e)
}
