//! Owners' public keys, from their identity certificates.

use std::fmt;

use hpke::kem::DhP256HkdfSha256;
use hpke::Deserializable as _;
use veil_ca::Fingerprint;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::RecoveryError;

pub(crate) type HpkePublicKey = <DhP256HkdfSha256 as hpke::Kem>::PublicKey;

/// An owner's P-256 public key, which shares are encrypted to, named by its
/// [`Fingerprint`] (SHA-256 of the SubjectPublicKeyInfo, as in policies).
#[derive(Clone)]
pub struct RecipientKey {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) public: HpkePublicKey,
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientKey")
            .field("fingerprint", &self.fingerprint.to_string())
            .finish_non_exhaustive()
    }
}

impl RecipientKey {
    /// The key of an owner identity certificate (DER), as `veil identity
    /// create` makes. Only ECDSA P-256 keys (id-ecPublicKey, prime256v1) are
    /// accepted. The certificate's signature and validity are not checked:
    /// the caller chose this owner by fingerprint.
    pub fn from_cert_der(cert_der: &[u8]) -> Result<Self, RecoveryError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| {
            RecoveryError::UnsupportedRecipientKey {
                reason: format!("not an X.509 certificate (DER): {e}"),
            }
        })?;
        if !rest.is_empty() {
            return Err(RecoveryError::UnsupportedRecipientKey {
                reason: "trailing bytes after the certificate".into(),
            });
        }
        Self::from_parsed_spki(&cert.tbs_certificate.subject_pki)
    }

    /// The key of a SubjectPublicKeyInfo (DER) holding a P-256 key.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<Self, RecoveryError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| {
            RecoveryError::UnsupportedRecipientKey {
                reason: format!("not a SubjectPublicKeyInfo (DER): {e}"),
            }
        })?;
        if !rest.is_empty() {
            return Err(RecoveryError::UnsupportedRecipientKey {
                reason: "trailing bytes after the SubjectPublicKeyInfo".into(),
            });
        }
        Self::from_parsed_spki(&spki)
    }

    fn from_parsed_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, RecoveryError> {
        let unsupported = |reason: String| RecoveryError::UnsupportedRecipientKey { reason };
        if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
            return Err(unsupported(format!(
                "the key's algorithm is {}, not an elliptic-curve key",
                spki.algorithm.algorithm
            )));
        }
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if curve.as_ref() != Some(&OID_EC_P256) {
            return Err(unsupported(match curve {
                Some(oid) => format!("the key is on curve {oid}, not P-256"),
                None => "the key names no named curve".into(),
            }));
        }
        let point: &[u8] = &spki.subject_public_key.data;
        if point.len() != 65 || point.first() != Some(&0x04) {
            return Err(unsupported(
                "the P-256 point is not in uncompressed form".into(),
            ));
        }
        let public = HpkePublicKey::from_bytes(point)
            .map_err(|_| unsupported("the P-256 point is not on the curve".into()))?;
        let fingerprint = Fingerprint::of_spki(spki.raw)
            .map_err(|e| unsupported(format!("cannot fingerprint the key: {e}")))?;
        Ok(RecipientKey {
            fingerprint,
            public,
        })
    }

    /// SHA-256 of the key's SubjectPublicKeyInfo: the owner's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}
