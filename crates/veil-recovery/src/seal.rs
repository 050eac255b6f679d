//! Splitting the sealing key and encrypting shares to owners; decrypting a
//! share with an owner's identity key.

use std::collections::BTreeSet;

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::DhP256HkdfSha256;
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use veil_ca::Fingerprint;
use vsss_rs::{Gf256, IdentifierGf256};
use zeroize::{Zeroize as _, Zeroizing};

use crate::format::{check_value, header_aad, CIPHERTEXT_LEN, FORMAT_VERSION};
use crate::rng::OsRng;
use crate::{EncryptedShare, PlainShare, RecipientKey, RecoveryError, RecoveryRecord, SetId};

/// HPKE `info`: the protocol and version. Everything else about a share is in
/// the associated data.
pub(crate) const HPKE_INFO: &[u8] = b"veil-recovery-v1 share";

type Kem = DhP256HkdfSha256;
type HpkePrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// The result of [`split`]: one encrypted share per owner, and what the CAS
/// keeps (set id, threshold, check value).
#[derive(Debug, Clone)]
pub struct RecoverySet {
    set_id: SetId,
    threshold: u8,
    check: [u8; 32],
    shares: Vec<EncryptedShare>,
}

impl RecoverySet {
    /// The random id of this split.
    pub fn set_id(&self) -> SetId {
        self.set_id
    }

    /// Shares needed to recover, K.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Shares made, N.
    pub fn total(&self) -> u8 {
        u8::try_from(self.shares.len()).unwrap_or(u8::MAX)
    }

    /// `SHA-256("veil-recovery-v1 check\0" || sealing key)`; the CAS keeps it
    /// to recognise its key when shares are combined.
    pub fn check(&self) -> [u8; 32] {
        self.check
    }

    /// The encrypted shares, in index order (index 1 first), one per
    /// recipient in the order given to [`split`].
    pub fn shares(&self) -> &[EncryptedShare] {
        &self.shares
    }

    /// The encrypted shares, by value.
    pub fn into_shares(self) -> Vec<EncryptedShare> {
        self.shares
    }

    /// What the CAS keeps to recover while sealed (nothing secret).
    pub fn record(&self) -> RecoveryRecord {
        RecoveryRecord {
            version: FORMAT_VERSION,
            set_id: self.set_id,
            threshold: self.threshold,
            total: self.total(),
            check: self.check,
            recipients: self.shares.iter().map(|s| s.recipient).collect(),
        }
    }
}

/// Splits `secret` (the CAS sealing key) into `recipients.len()` shares, any
/// `threshold` of which recover it, and encrypts share *i* to
/// `recipients[i - 1]`.
///
/// Rules: 1 to 255 recipients, all different; `1 <= threshold <= N`; and
/// `threshold >= 2` unless there is a single recipient. With a threshold of 1
/// every share *is* the key, so any one owner could recover alone: that is
/// only allowed when it is said plainly, with one owner (N = K = 1).
pub fn split(
    secret: &[u8; 32],
    threshold: u8,
    recipients: &[RecipientKey],
) -> Result<RecoverySet, RecoveryError> {
    let total = check_split_params(threshold, recipients)?;
    let mut id = [0u8; 16];
    OsRng::fill(&mut id)?;
    let set_id = SetId(id);
    let check = check_value(secret);
    let values = shamir_split(secret, threshold, total)?;
    let mut rng = OsRng::default();
    let mut shares = Vec::with_capacity(values.len());
    for ((index, value), recipient) in values.iter().zip(recipients) {
        let aad = header_aad(
            set_id,
            *index,
            threshold,
            total,
            &recipient.fingerprint,
            &check,
        );
        let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, Kem>(
            &OpModeS::Base,
            &recipient.public,
            HPKE_INFO,
            &value[..],
            &aad,
            &mut rng,
        )
        .map_err(|e| RecoveryError::EncryptFailed {
            reason: e.to_string(),
        })?;
        shares.push(EncryptedShare {
            version: FORMAT_VERSION,
            set_id,
            index: *index,
            threshold,
            total,
            recipient: recipient.fingerprint,
            check,
            enc: enc.to_bytes().to_vec(),
            ciphertext,
        });
    }
    if rng.failed() {
        return Err(RecoveryError::Random);
    }
    Ok(RecoverySet {
        set_id,
        threshold,
        check,
        shares,
    })
}

/// Validates the parameters of [`split`]; returns N.
fn check_split_params(threshold: u8, recipients: &[RecipientKey]) -> Result<u8, RecoveryError> {
    let invalid = |reason: String| Err(RecoveryError::InvalidParameters { reason });
    let n = recipients.len();
    let Ok(total) = u8::try_from(n) else {
        return invalid(format!("{n} recipients; at most 255 are supported"));
    };
    if total == 0 {
        return invalid("no recipients; name at least one owner identity".into());
    }
    if threshold == 0 || threshold > total {
        return invalid(format!(
            "threshold {threshold} with {total} shares; the threshold must be between 1 and the number of shares"
        ));
    }
    if threshold == 1 && total > 1 {
        return invalid(format!(
            "threshold 1 with {total} shares would let any single owner recover the key alone; use a threshold of at least 2, or a single owner"
        ));
    }
    let mut seen = BTreeSet::new();
    for r in recipients {
        if !seen.insert(r.fingerprint) {
            return invalid(format!(
                "owner {} is listed twice; each owner gets one share",
                r.fingerprint
            ));
        }
    }
    Ok(total)
}

/// One Shamir share: x (the index, 1..=N) and y.
pub(crate) type ShamirShare = (u8, Zeroizing<[u8; 32]>);

/// Shamir shares of `secret` over GF(256) (vsss-rs), with x-coordinates
/// `1..=total`: `(index, y)` pairs. With a threshold of 1 (one owner), the
/// share is the secret itself (a constant polynomial).
pub(crate) fn shamir_split(
    secret: &[u8; 32],
    threshold: u8,
    total: u8,
) -> Result<Vec<ShamirShare>, RecoveryError> {
    if threshold == 1 {
        return Ok((1..=total).map(|i| (i, Zeroizing::new(*secret))).collect());
    }
    let mut rng = OsRng::default();
    let ids = (1..=total).map(|i| IdentifierGf256(Gf256(i)));
    let mut raw = Zeroizing::new(
        Gf256::split_bytes_with_participant_ids_iter(
            usize::from(threshold),
            usize::from(total),
            secret,
            &mut rng,
            ids,
        )
        .map_err(|e| RecoveryError::Sharing {
            reason: e.to_string(),
        })?,
    );
    if rng.failed() {
        raw.zeroize();
        return Err(RecoveryError::Random);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (expected, share) in (1..=total).zip(raw.iter()) {
        match share.split_first() {
            Some((&x, y)) if x == expected && y.len() == 32 => {
                let mut v = Zeroizing::new([0u8; 32]);
                v.copy_from_slice(y);
                out.push((x, v));
            }
            _ => {
                return Err(RecoveryError::Sharing {
                    reason: "unexpected share layout from vsss-rs".into(),
                })
            }
        }
    }
    if out.len() != usize::from(total) {
        return Err(RecoveryError::Sharing {
            reason: "vsss-rs returned too few shares".into(),
        });
    }
    Ok(out)
}

/// Decrypts a share with the owner's identity key: the PKCS#8 (DER) P-256
/// private key of the identity whose fingerprint the share names.
///
/// Fails with [`RecoveryError::WrongRecipient`] if the key is another
/// owner's, and [`RecoveryError::DecryptFailed`] if the file was altered
/// (any byte of the header, `enc` or `ciphertext`).
pub fn decrypt_share(
    share: &EncryptedShare,
    identity_key_pkcs8: &[u8],
) -> Result<PlainShare, RecoveryError> {
    share.validate()?;
    let secret_key = p256::SecretKey::from_pkcs8_der(identity_key_pkcs8).map_err(|e| {
        RecoveryError::InvalidIdentityKey {
            reason: format!("not a PKCS#8 P-256 private key: {e}"),
        }
    })?;
    let spki = secret_key.public_key().to_public_key_der().map_err(|e| {
        RecoveryError::InvalidIdentityKey {
            reason: format!("cannot encode its public key: {e}"),
        }
    })?;
    let key_is =
        Fingerprint::of_spki(spki.as_bytes()).map_err(|e| RecoveryError::InvalidIdentityKey {
            reason: format!("cannot fingerprint its public key: {e}"),
        })?;
    if key_is != share.recipient {
        return Err(RecoveryError::WrongRecipient {
            share_for: share.recipient,
            key_is,
        });
    }
    let scalar = Zeroizing::new(secret_key.to_bytes());
    let private =
        HpkePrivateKey::from_bytes(&scalar[..]).map_err(|_| RecoveryError::InvalidIdentityKey {
            reason: "the scalar is not a valid P-256 private key".into(),
        })?;
    let enc = EncappedKey::from_bytes(&share.enc).map_err(|_| RecoveryError::DecryptFailed)?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &private,
            &enc,
            HPKE_INFO,
            &share.ciphertext,
            &share.aad(),
        )
        .map_err(|_| RecoveryError::DecryptFailed)?,
    );
    if plain.len() + 16 != CIPHERTEXT_LEN {
        return Err(RecoveryError::DecryptFailed);
    }
    let mut value = Zeroizing::new([0u8; 32]);
    value.copy_from_slice(&plain);
    Ok(PlainShare {
        set_id: share.set_id,
        index: share.index,
        threshold: share.threshold,
        total: share.total,
        check: share.check,
        value,
    })
}
