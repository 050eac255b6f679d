//! The wire forms: set ids, encrypted share files, plaintext shares in
//! transport, and the record the CAS keeps.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use veil_ca::Fingerprint;
use zeroize::Zeroizing;

use crate::RecoveryError;

/// The format version of share files, transport strings and records.
pub const FORMAT_VERSION: u8 = 1;

/// Domain of the check value: `check = SHA-256(CHECK_DOMAIN || secret)`.
pub(crate) const CHECK_DOMAIN: &[u8] = b"veil-recovery-v1 check\0";
/// Domain of the transport string's checksum.
const TRANSPORT_DOMAIN: &[u8] = b"veil-recovery-v1 transport\0";
/// Prefix of a plaintext share in transport.
pub const TRANSPORT_PREFIX: &str = "veil-share-v1:";
/// Length of the encapsulated key of DHKEM(P-256): an uncompressed point.
pub(crate) const ENC_LEN: usize = 65;
/// Length of a share's ciphertext: 32 bytes of share and a 16-byte GCM tag.
pub(crate) const CIPHERTEXT_LEN: usize = 32 + 16;
/// Body of a transport string before its checksum.
const TRANSPORT_BODY_LEN: usize = 1 + 16 + 3 + 32 + 32;
/// Length of the transport checksum.
const TRANSPORT_SUM_LEN: usize = 4;

/// `SHA-256(CHECK_DOMAIN || secret)`: lets the CAS recognise its sealing key
/// without holding it. Not secret, as the key has 256 bits of entropy.
pub fn check_value(secret: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CHECK_DOMAIN);
    h.update(secret);
    h.finalize().into()
}

/// Whether `secret` matches `check`, in constant time.
pub(crate) fn matches_check(secret: &[u8; 32], check: &[u8; 32]) -> bool {
    bool::from(check_value(secret).ct_eq(check))
}

/// The random 16-byte name of one split, shown as 32 hex digits. Every share
/// of a split carries it, so a combiner can tell shares of another split.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId(pub(crate) [u8; 16]);

impl SetId {
    /// Wraps 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        SetId(bytes)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for SetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SetId({self})")
    }
}

impl FromStr for SetId {
    type Err = RecoveryError;

    /// Reads 32 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| RecoveryError::Malformed {
            what: "recovery set id",
            reason: format!("{s:?} is not 32 hex digits"),
        })?;
        Ok(SetId(out))
    }
}

impl Serialize for SetId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SetId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde as 64 hex digits.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out)
            .map_err(|_| serde::de::Error::custom("expected 64 hex digits"))?;
        Ok(out)
    }
}

/// Serde as standard base64 with padding.
mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// Checks that `index`, `threshold` and `total` describe a share of a valid
/// split: `1 <= index <= total`, `1 <= threshold <= total`, and
/// `threshold >= 2` unless `total == 1`.
pub(crate) fn check_header(
    what: &'static str,
    index: u8,
    threshold: u8,
    total: u8,
) -> Result<(), RecoveryError> {
    let bad = |reason: String| Err(RecoveryError::Malformed { what, reason });
    if total == 0 {
        return bad("total is 0".into());
    }
    if index == 0 || index > total {
        return bad(format!("index {index} is not in 1..={total}"));
    }
    if threshold == 0 || threshold > total {
        return bad(format!("threshold {threshold} is not in 1..={total}"));
    }
    if threshold == 1 && total > 1 {
        return bad(format!(
            "threshold 1 with {total} shares (only a single-owner set may have threshold 1)"
        ));
    }
    Ok(())
}

/// One share encrypted to one owner: the JSON file `veil cas init` writes for
/// each owner. See the crate documentation for the field table.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedShare {
    /// Format version, [`FORMAT_VERSION`].
    pub version: u8,
    /// The split this share belongs to.
    pub set_id: SetId,
    /// The share's index, `1..=total` (its Shamir x-coordinate).
    pub index: u8,
    /// Shares needed to recover, K.
    pub threshold: u8,
    /// Shares in the set, N.
    pub total: u8,
    /// Fingerprint (SHA-256 of the SPKI) of the owner it is encrypted to.
    pub recipient: Fingerprint,
    /// `SHA-256("veil-recovery-v1 check\0" || sealing key)`.
    #[serde(with = "hex32")]
    pub check: [u8; 32],
    /// The HPKE encapsulated key (65 bytes, an uncompressed P-256 point).
    #[serde(with = "b64")]
    pub enc: Vec<u8>,
    /// The HPKE ciphertext: the 32-byte share and a 16-byte tag.
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for EncryptedShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedShare")
            .field("version", &self.version)
            .field("set_id", &self.set_id)
            .field("index", &self.index)
            .field("threshold", &self.threshold)
            .field("total", &self.total)
            .field("recipient", &self.recipient)
            .finish_non_exhaustive()
    }
}

impl EncryptedShare {
    /// Reads and validates a share file (JSON). Unknown fields, another
    /// version, inconsistent numbers or wrong lengths are refused.
    pub fn from_json(text: &str) -> Result<Self, RecoveryError> {
        let share: EncryptedShare =
            serde_json::from_str(text).map_err(|e| RecoveryError::Malformed {
                what: "recovery share file",
                reason: e.to_string(),
            })?;
        share.validate()?;
        Ok(share)
    }

    /// The share file as pretty JSON, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Checks version, numbers and lengths.
    pub fn validate(&self) -> Result<(), RecoveryError> {
        if self.version != FORMAT_VERSION {
            return Err(RecoveryError::UnsupportedVersion {
                found: self.version,
                supported: FORMAT_VERSION,
            });
        }
        check_header(
            "recovery share file",
            self.index,
            self.threshold,
            self.total,
        )?;
        if self.enc.len() != ENC_LEN {
            return Err(RecoveryError::Malformed {
                what: "recovery share file",
                reason: format!("enc is {} bytes, expected {ENC_LEN}", self.enc.len()),
            });
        }
        if self.ciphertext.len() != CIPHERTEXT_LEN {
            return Err(RecoveryError::Malformed {
                what: "recovery share file",
                reason: format!(
                    "ciphertext is {} bytes, expected {CIPHERTEXT_LEN}",
                    self.ciphertext.len()
                ),
            });
        }
        Ok(())
    }

    /// The associated data the HPKE ciphertext is bound to: version, set id,
    /// index, threshold, total, recipient fingerprint and check value.
    pub(crate) fn aad(&self) -> Vec<u8> {
        header_aad(
            self.set_id,
            self.index,
            self.threshold,
            self.total,
            &self.recipient,
            &self.check,
        )
    }
}

/// The HPKE associated data of a share (84 bytes).
pub(crate) fn header_aad(
    set_id: SetId,
    index: u8,
    threshold: u8,
    total: u8,
    recipient: &Fingerprint,
    check: &[u8; 32],
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + 16 + 3 + 32 + 32);
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(&set_id.0);
    aad.extend_from_slice(&[index, threshold, total]);
    aad.extend_from_slice(recipient.as_bytes());
    aad.extend_from_slice(check);
    aad
}

/// A decrypted share, on its way from an owner to the sealed CAS.
///
/// The share value is zeroized on drop and `Debug` shows only the set id,
/// index and threshold. [`PlainShare::to_transport`] gives a compact string
/// to paste or send to the CAS (over an attested channel: whoever reads K of
/// them has the key).
#[derive(Clone)]
pub struct PlainShare {
    pub(crate) set_id: SetId,
    pub(crate) index: u8,
    pub(crate) threshold: u8,
    pub(crate) total: u8,
    pub(crate) check: [u8; 32],
    pub(crate) value: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for PlainShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainShare")
            .field("set_id", &self.set_id)
            .field("index", &self.index)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl PlainShare {
    /// The split this share belongs to.
    pub fn set_id(&self) -> SetId {
        self.set_id
    }

    /// The share's index, `1..=total`.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// Shares needed to recover.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Shares in the set.
    pub fn total(&self) -> u8 {
        self.total
    }

    /// The set's check value.
    pub fn check(&self) -> [u8; 32] {
        self.check
    }

    /// The compact transport form: `veil-share-v1:` then base64url (no
    /// padding) of version (1) ‖ set id (16) ‖ index ‖ threshold ‖ total ‖
    /// check (32) ‖ share (32) ‖ checksum (4: the first bytes of
    /// `SHA-256("veil-recovery-v1 transport\0" ‖ preceding bytes)`). The
    /// checksum catches typing and copying mistakes; forged shares are caught
    /// by the combiner.
    pub fn to_transport(&self) -> Zeroizing<String> {
        let mut body = Zeroizing::new(Vec::with_capacity(TRANSPORT_BODY_LEN + TRANSPORT_SUM_LEN));
        body.push(FORMAT_VERSION);
        body.extend_from_slice(&self.set_id.0);
        body.extend_from_slice(&[self.index, self.threshold, self.total]);
        body.extend_from_slice(&self.check);
        body.extend_from_slice(&self.value[..]);
        let sum = transport_sum(&body);
        body.extend_from_slice(&sum);
        let mut out = Zeroizing::new(String::with_capacity(TRANSPORT_PREFIX.len() + 120));
        out.push_str(TRANSPORT_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&body[..], &mut out);
        out
    }

    /// Reads a transport string (surrounding white space is ignored).
    pub fn from_transport(text: &str) -> Result<Self, RecoveryError> {
        let what = "recovery share";
        let bad = |reason: &str| RecoveryError::Malformed {
            what,
            reason: reason.to_owned(),
        };
        let text = text.trim();
        let rest = text
            .strip_prefix(TRANSPORT_PREFIX)
            .ok_or_else(|| bad("it does not start with \"veil-share-v1:\""))?;
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(rest.as_bytes())
                .map_err(|_| bad("not base64url; copy the whole line again"))?,
        );
        if bytes.len() != TRANSPORT_BODY_LEN + TRANSPORT_SUM_LEN {
            return Err(bad("wrong length; copy the whole line again"));
        }
        let (body, sum) = bytes.split_at(TRANSPORT_BODY_LEN);
        if !bool::from(transport_sum(body).ct_eq(sum)) {
            return Err(bad("checksum mismatch; the line was mistyped or cut"));
        }
        if body[0] != FORMAT_VERSION {
            return Err(RecoveryError::UnsupportedVersion {
                found: body[0],
                supported: FORMAT_VERSION,
            });
        }
        let mut set_id = [0u8; 16];
        set_id.copy_from_slice(&body[1..17]);
        let (index, threshold, total) = (body[17], body[18], body[19]);
        check_header(what, index, threshold, total)?;
        let mut check = [0u8; 32];
        check.copy_from_slice(&body[20..52]);
        let mut value = Zeroizing::new([0u8; 32]);
        value.copy_from_slice(&body[52..84]);
        Ok(PlainShare {
            set_id: SetId(set_id),
            index,
            threshold,
            total,
            check,
            value,
        })
    }
}

fn transport_sum(body: &[u8]) -> [u8; TRANSPORT_SUM_LEN] {
    let mut h = Sha256::new();
    h.update(TRANSPORT_DOMAIN);
    h.update(body);
    let d = h.finalize();
    let mut out = [0u8; TRANSPORT_SUM_LEN];
    out.copy_from_slice(&d[..TRANSPORT_SUM_LEN]);
    out
}

/// What a CAS keeps about its recovery set so it can recover while sealed:
/// nothing secret. Made by [`crate::RecoverySet::record`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRecord {
    /// Format version, [`FORMAT_VERSION`].
    pub version: u8,
    /// The split.
    pub set_id: SetId,
    /// Shares needed, K.
    pub threshold: u8,
    /// Shares made, N.
    pub total: u8,
    /// `SHA-256("veil-recovery-v1 check\0" || sealing key)`, hex.
    #[serde(with = "hex32")]
    pub check: [u8; 32],
    /// The owners, by fingerprint, in share-index order (index 1 first).
    pub recipients: Vec<Fingerprint>,
}
