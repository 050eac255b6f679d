use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::util::parse_cert;
use crate::CaError;

/// SHA-256 of a SubjectPublicKeyInfo (DER), shown as 64 lower-case hex digits.
///
/// This is how Veil names keys: owners in a policy, the CAS identity a client
/// pins, the issuer of an attested certificate. It hashes the *public key*, not
/// the whole certificate, so a re-issued certificate for the same key keeps its
/// fingerprint. Compare with
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate's public key.
    pub fn of_cert_der(cert_der: &[u8]) -> Result<Self, CaError> {
        let cert = parse_cert(cert_der, "certificate")?;
        Ok(Self::digest(cert.tbs_certificate.subject_pki.raw))
    }

    /// The fingerprint of a SubjectPublicKeyInfo; fails if the bytes are not one.
    pub fn of_spki(spki_der: &[u8]) -> Result<Self, CaError> {
        let (rest, _) = SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| CaError::malformed("SubjectPublicKeyInfo", e))?;
        if !rest.is_empty() {
            return Err(CaError::malformed(
                "SubjectPublicKeyInfo",
                "trailing bytes after the structure",
            ));
        }
        Ok(Self::digest(spki_der))
    }

    /// The fingerprint's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Wraps 32 digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }

    pub(crate) fn digest(spki_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(spki_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The error for text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key fingerprint {0:?}: expected 64 hex digits (SHA-256 of the public key)")]
pub struct FingerprintParseError(pub String);

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    /// Reads 64 hex digits (either case); surrounding white space is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let mut out = [0u8; 32];
        hex::decode_to_slice(t, &mut out).map_err(|_| FingerprintParseError(s.to_owned()))?;
        Ok(Fingerprint(out))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let f = Fingerprint([0xab; 32]);
        let s = f.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(s.parse::<Fingerprint>(), Ok(f));
        assert_eq!(s.to_uppercase().parse::<Fingerprint>(), Ok(f));
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), f);
        assert!("abcd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
        assert!(Fingerprint::of_spki(b"not a key").is_err());
        assert!(Fingerprint::of_cert_der(b"not a cert").is_err());
    }
}
