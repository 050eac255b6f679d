//! Secrets the CAS generates for a policy.

use std::fmt;
use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rcgen::{KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use veil_attest::Time;
use zeroize::Zeroizing;

use crate::identity::leaf_params;
use crate::util::{fill_random, pem_encode_secret, random_bytes, validity_window};
use crate::{CaError, CaIdentity};

/// The alphabet of a password when the policy names none: the 62 ASCII
/// letters and digits. Such passwords survive shells, URLs, YAML, JSON, INI
/// files and connection strings without quoting; a 24-character password
/// from it carries about 143 bits.
pub const DEFAULT_PASSWORD_ALPHABET: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Shortest password Veil generates.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password Veil generates.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Largest alphabet (distinct characters) a password may use.
pub const MAX_ALPHABET_LEN: usize = 1024;
/// Largest `bytes` secret, in bytes.
pub const MAX_BYTES_SIZE: usize = 65_536;

/// What secret to generate: the generated kinds of a policy, in this crate's
/// own terms (the CAS maps the policy's types onto these).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretKindSpec {
    /// A password of `length` (8..=1024) characters drawn uniformly from
    /// `alphabet` (2..=1024 distinct, non-control characters; use
    /// [`DEFAULT_PASSWORD_ALPHABET`] when the policy names none).
    Password {
        /// Number of characters.
        length: usize,
        /// The characters to draw from.
        alphabet: String,
    },
    /// `size` (1..=65536) random bytes.
    Bytes {
        /// Number of bytes.
        size: usize,
    },
    /// A 256-bit AES key (32 random bytes).
    Aes256,
    /// An ECDSA P-256 private key (PKCS#8 PEM).
    EcdsaP256,
    /// An Ed25519 private key (PKCS#8 v2 PEM, as ring writes it).
    Ed25519,
    /// A P-256 key and an X.509 end-entity certificate for it, issued by the
    /// CA that `issuer` names (the session CA or an `x509-ca` secret), with
    /// key usage digitalSignature and extended key usage serverAuth and
    /// clientAuth.
    X509 {
        /// The issuer's name, resolved through a [`CaLookup`].
        issuer: String,
        /// Subject common name.
        common_name: String,
        /// DNS subject alternative names.
        dns: Vec<String>,
        /// IP subject alternative names.
        ips: Vec<IpAddr>,
        /// Validity in days from now (cut to the issuer's own expiry).
        validity_days: u32,
    },
    /// A new CA: self-signed (see [`CaIdentity::generate`]) without an
    /// issuer, else an intermediate issued by it (see [`CaIdentity::issue_ca`]).
    X509Ca {
        /// The issuer's name, resolved through a [`CaLookup`]; `None`: self-signed.
        issuer: Option<String>,
        /// Subject common name.
        common_name: String,
        /// Validity in days from now.
        validity_days: u32,
    },
}

impl SecretKindSpec {
    /// A password of `length` characters from [`DEFAULT_PASSWORD_ALPHABET`].
    pub fn password(length: usize) -> Self {
        SecretKindSpec::Password {
            length,
            alphabet: DEFAULT_PASSWORD_ALPHABET.to_owned(),
        }
    }

    /// The kind of material this spec produces.
    pub fn kind(&self) -> SecretKind {
        match self {
            SecretKindSpec::Password { .. } => SecretKind::Password,
            SecretKindSpec::Bytes { .. } => SecretKind::Bytes,
            SecretKindSpec::Aes256 => SecretKind::Aes256,
            SecretKindSpec::EcdsaP256 => SecretKind::EcdsaP256,
            SecretKindSpec::Ed25519 => SecretKind::Ed25519,
            SecretKindSpec::X509 { .. } => SecretKind::X509,
            SecretKindSpec::X509Ca { .. } => SecretKind::X509Ca,
        }
    }
}

/// The kind of a generated secret, as written in storage and in policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SecretKind {
    /// `password`
    Password,
    /// `bytes`
    Bytes,
    /// `aes-256`
    #[serde(rename = "aes-256")]
    Aes256,
    /// `ecdsa-p256`
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// `ed25519`
    Ed25519,
    /// `x509`
    X509,
    /// `x509-ca`
    #[serde(rename = "x509-ca")]
    X509Ca,
}

impl SecretKind {
    /// The policy name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::Bytes => "bytes",
            SecretKind::Aes256 => "aes-256",
            SecretKind::EcdsaP256 => "ecdsa-p256",
            SecretKind::Ed25519 => "ed25519",
            SecretKind::X509 => "x509",
            SecretKind::X509Ca => "x509-ca",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A generated secret, ready for storage and for templates.
///
/// | kind | `value` (`{{ name }}`) | `cert_pem` (`.cert`) | `key_pem` (`.key`) | `ca_pem` (`.ca`) |
/// |---|---|---|---|---|
/// | password | the password (UTF-8) | - | - | - |
/// | bytes, aes-256 | raw bytes (templates must encode them) | - | - | - |
/// | ecdsa-p256, ed25519 | PKCS#8 PEM | - | PKCS#8 PEM | - |
/// | x509 | certificate PEM | certificate PEM | PKCS#8 PEM | issuer's certificate PEM |
/// | x509-ca | certificate PEM | certificate PEM | PKCS#8 PEM | the same certificate PEM |
///
/// Serde writes `value` as base64 and the PEM fields as text; `Debug` shows
/// the kind only. Secret fields are zeroized on drop.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretMaterial {
    /// What kind of secret this is.
    pub kind: SecretKind,
    /// The secret's value.
    #[serde(with = "b64_secret")]
    pub value: Zeroizing<Vec<u8>>,
    /// Certificate PEM (x509, x509-ca).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    /// Private key PEM (ecdsa-p256, ed25519, x509, x509-ca).
    #[serde(
        default,
        with = "opt_secret_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_pem: Option<Zeroizing<String>>,
    /// Issuer certificate PEM (x509, x509-ca).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl fmt::Debug for SecretMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMaterial")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl SecretMaterial {
    fn plain(kind: SecretKind, value: Zeroizing<Vec<u8>>) -> Self {
        SecretMaterial {
            kind,
            value,
            cert_pem: None,
            key_pem: None,
            ca_pem: None,
        }
    }

    fn key(kind: SecretKind, key_pem: Zeroizing<String>) -> Self {
        SecretMaterial {
            kind,
            value: Zeroizing::new(key_pem.as_bytes().to_vec()),
            cert_pem: None,
            key_pem: Some(key_pem),
            ca_pem: None,
        }
    }
}

impl CaIdentity {
    /// The CA held by an `x509-ca` secret (so it can issue `x509` secrets).
    pub fn from_secret(secret: &SecretMaterial) -> Result<Self, CaError> {
        if secret.kind != SecretKind::X509Ca {
            return Err(CaError::spec(
                "issuer",
                format!("a {} secret is not a CA", secret.kind),
            ));
        }
        match (&secret.cert_pem, &secret.key_pem) {
            (Some(cert), Some(key)) => {
                let mut text = Zeroizing::new(cert.clone());
                text.push_str(key);
                CaIdentity::from_pem(&text)
            }
            _ => Err(CaError::malformed(
                "x509-ca secret",
                "certificate or key missing",
            )),
        }
    }
}

/// Finds the CA that an `x509` secret's `issuer` names.
pub trait CaLookup {
    /// The CA called `name`, if there is one.
    fn ca(&self, name: &str) -> Option<CaIdentity>;
}

impl<F: Fn(&str) -> Option<CaIdentity>> CaLookup for F {
    fn ca(&self, name: &str) -> Option<CaIdentity> {
        self(name)
    }
}

/// A [`CaLookup`] that knows no CA (for sessions without `x509` secrets).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCa;

impl CaLookup for NoCa {
    fn ca(&self, _name: &str) -> Option<CaIdentity> {
        None
    }
}

/// Generates one secret. `now` sets the validity of certificates.
pub fn generate(
    spec: &SecretKindSpec,
    cas: &dyn CaLookup,
    now: Time,
) -> Result<SecretMaterial, CaError> {
    match spec {
        SecretKindSpec::Password { length, alphabet } => {
            let pw = generate_password(*length, alphabet)?;
            Ok(SecretMaterial::plain(
                SecretKind::Password,
                Zeroizing::new(pw.as_bytes().to_vec()),
            ))
        }
        SecretKindSpec::Bytes { size } => {
            if *size == 0 || *size > MAX_BYTES_SIZE {
                return Err(CaError::spec(
                    "bytes size",
                    format!("{size} is outside 1..={MAX_BYTES_SIZE}"),
                ));
            }
            Ok(SecretMaterial::plain(
                SecretKind::Bytes,
                random_bytes(*size)?,
            ))
        }
        SecretKindSpec::Aes256 => Ok(SecretMaterial::plain(SecretKind::Aes256, random_bytes(32)?)),
        SecretKindSpec::EcdsaP256 => {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                    .map_err(|_| CaError::Rng)?;
            Ok(SecretMaterial::key(
                SecretKind::EcdsaP256,
                pem_encode_secret("PRIVATE KEY", doc.as_ref()),
            ))
        }
        SecretKindSpec::Ed25519 => {
            let doc =
                Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| CaError::Rng)?;
            Ok(SecretMaterial::key(
                SecretKind::Ed25519,
                pem_encode_secret("PRIVATE KEY", doc.as_ref()),
            ))
        }
        SecretKindSpec::X509 {
            issuer,
            common_name,
            dns,
            ips,
            validity_days,
        } => {
            let ca = cas
                .ca(issuer)
                .ok_or_else(|| CaError::UnknownIssuer(issuer.clone()))?;
            let (not_before, not_after) = validity_window(now, *validity_days)?;
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let mut params = leaf_params(common_name, dns, ips, not_before, not_after)?;
            let spki = key.subject_public_key_info();
            let public_key = crate::identity::spki_public_key(&spki)?;
            let cert = ca.sign(&mut params, &public_key)?;
            let cert_pem = crate::util::pem_encode("CERTIFICATE", &cert);
            Ok(SecretMaterial {
                kind: SecretKind::X509,
                value: Zeroizing::new(cert_pem.as_bytes().to_vec()),
                cert_pem: Some(cert_pem),
                key_pem: Some(pem_encode_secret(
                    "PRIVATE KEY",
                    &Zeroizing::new(key.serialize_der()),
                )),
                ca_pem: Some(ca.cert_pem()),
            })
        }
        SecretKindSpec::X509Ca {
            issuer,
            common_name,
            validity_days,
        } => {
            let (ca, issuer_pem) = match issuer {
                None => {
                    let ca = CaIdentity::generate(common_name, *validity_days, now)?;
                    let pem = ca.cert_pem();
                    (ca, pem)
                }
                Some(name) => {
                    let parent = cas
                        .ca(name)
                        .ok_or_else(|| CaError::UnknownIssuer(name.clone()))?;
                    (
                        parent.issue_ca(common_name, *validity_days, now)?,
                        parent.cert_pem(),
                    )
                }
            };
            let cert_pem = ca.cert_pem();
            Ok(SecretMaterial {
                kind: SecretKind::X509Ca,
                value: Zeroizing::new(cert_pem.as_bytes().to_vec()),
                cert_pem: Some(cert_pem),
                key_pem: Some(ca.key_pem()),
                ca_pem: Some(issuer_pem),
            })
        }
    }
}

/// A password of `length` (8..=1024) characters, each drawn uniformly and
/// independently from `alphabet` (2..=1024 distinct, non-control characters).
///
/// Each character comes from a 32-bit random number `r` from the system RNG;
/// `r` is rejected and redrawn when it falls in the last, incomplete copy of
/// the alphabet in `0..2^32`, so `r % n` has no modulo bias.
pub fn generate_password(length: usize, alphabet: &str) -> Result<Zeroizing<String>, CaError> {
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&length) {
        return Err(CaError::spec(
            "password length",
            format!("{length} is outside {MIN_PASSWORD_LEN}..={MAX_PASSWORD_LEN}"),
        ));
    }
    let chars = check_alphabet(alphabet)?;
    let n = chars.len() as u64;
    let range = 1u64 << 32;
    let limit = range - range % n; // largest multiple of n not above 2^32
    let mut out = Zeroizing::new(String::with_capacity(length * 4));
    let mut count = 0;
    let mut buf = Zeroizing::new(vec![0u8; 4 * length + 64]);
    while count < length {
        fill_random(&mut buf)?;
        for word in buf.chunks_exact(4) {
            if count == length {
                break;
            }
            let r = u64::from(u32::from_le_bytes([word[0], word[1], word[2], word[3]]));
            if r >= limit {
                continue;
            }
            let idx = usize::try_from(r % n).map_err(|_| CaError::Rng)?;
            if let Some(c) = chars.get(idx) {
                out.push(*c);
                count += 1;
            }
        }
    }
    Ok(out)
}

fn check_alphabet(alphabet: &str) -> Result<Vec<char>, CaError> {
    let chars: Vec<char> = alphabet.chars().collect();
    if chars.len() < 2 || chars.len() > MAX_ALPHABET_LEN {
        return Err(CaError::spec(
            "password alphabet",
            format!(
                "must have 2..={MAX_ALPHABET_LEN} characters, has {}",
                chars.len()
            ),
        ));
    }
    if chars.iter().any(|c| c.is_control()) {
        return Err(CaError::spec(
            "password alphabet",
            "control characters are not allowed",
        ));
    }
    let mut sorted = chars.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(CaError::spec(
            "password alphabet",
            format!(
                "{:?} appears more than once (that would bias the draw)",
                w[0]
            ),
        ));
    }
    Ok(chars)
}

mod b64_secret {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        v: &Zeroizing<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(B64.encode(v.as_slice()));
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        B64.decode(text.as_bytes())
            .map(Zeroizing::new)
            .map_err(serde::de::Error::custom)
    }
}

mod opt_secret_string {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        v: &Option<Zeroizing<String>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(text) => s.serialize_some(text.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Zeroizing<String>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
    }
}
