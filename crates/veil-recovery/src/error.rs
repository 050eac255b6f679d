//! The one error type of this crate.

use veil_ca::Fingerprint;

use crate::SetId;

/// Why splitting, encrypting, decrypting or combining recovery shares failed.
///
/// Every message says what to do next. Decryption failures say only that
/// decryption failed (never which byte), and no variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The arguments of [`crate::split`] are out of range.
    #[error("invalid recovery parameters: {reason}")]
    InvalidParameters {
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// A recipient's certificate or public key cannot receive shares.
    #[error("unusable recipient key: {reason}; recovery shares are encrypted to ECDSA P-256 owner identities (`veil identity create`)")]
    UnsupportedRecipientKey {
        /// Why the key was refused.
        reason: String,
    },

    /// The owner's private key (PKCS#8) could not be read.
    #[error("invalid identity key: {reason}; pass the PKCS#8 P-256 private key of the owner identity the share was encrypted to")]
    InvalidIdentityKey {
        /// Why the key was refused.
        reason: String,
    },

    /// A share, share file or transport string is not well formed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which object (share file, transport string, ...).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A share of a format version this build does not read.
    #[error("unsupported recovery share version {found} (this build reads version {supported}); upgrade veil")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },

    /// The share was encrypted to another owner than the key given.
    #[error("this share is for owner {share_for}, but the key given is owner {key_is}; decrypt it with that owner's identity")]
    WrongRecipient {
        /// The fingerprint the share names.
        share_for: Fingerprint,
        /// The fingerprint of the key given.
        key_is: Fingerprint,
    },

    /// HPKE decryption failed: the share file was altered, or it was not
    /// encrypted to this key.
    #[error("the share does not decrypt: the share file was altered or damaged, or it was not encrypted to this identity; ask for a fresh copy of the share file")]
    DecryptFailed,

    /// HPKE encryption failed (an invalid recipient key reached the sender).
    #[error("encrypting a share failed: {reason}")]
    EncryptFailed {
        /// The library's reason.
        reason: String,
    },

    /// The share belongs to another recovery set (another `veil cas init`,
    /// or another CAS).
    #[error("this share belongs to recovery set {found}, but this CAS waits for set {expected}; send a share of set {expected}")]
    Foreign {
        /// The set this combiner recovers.
        expected: SetId,
        /// The set the share names.
        found: SetId,
    },

    /// The share's threshold differs from the set's: it was forged or altered.
    #[error("this share claims a threshold of {found}, but the recovery set needs {expected}; the share was altered, send an intact copy")]
    ThresholdMismatch {
        /// The threshold of the set.
        expected: u8,
        /// The threshold the share claims.
        found: u8,
    },

    /// A share with this index was already added; it is not counted twice.
    #[error(
        "share {index} was already added and is not counted twice; send a share of another owner"
    )]
    Duplicate {
        /// The index of the share.
        index: u8,
    },

    /// The share was sent by someone other than the owner it was made for.
    #[error("share {index} belongs to another owner than the sender {sender}; each owner sends their own share")]
    NotSharesOwner {
        /// The index of the share.
        index: u8,
        /// The authenticated sender.
        sender: Fingerprint,
    },

    /// Too many different shares claiming the same index were offered.
    #[error("too many different shares claim index {index}; at most {max} are kept for one index")]
    ConflictingShares {
        /// The index of the share.
        index: u8,
        /// How many candidates are kept for one index.
        max: usize,
    },

    /// Enough shares arrived, but no `threshold` of them reconstruct the key
    /// that matches the set's check value: at least one share is corrupt or
    /// forged. All shares are kept.
    #[error("the {have} shares received do not reconstruct the sealing key (at least one is corrupt or forged; {tried} combinations of {need} tried{more}); every share is kept: add another owner's share and recovery retries without the bad one")]
    Corrupt {
        /// Distinct share indices held.
        have: usize,
        /// Shares needed (the threshold).
        need: usize,
        /// Combinations tried by this call.
        tried: usize,
        /// A note when the search stopped at its bound.
        more: &'static str,
    },

    /// The combiner already recovered the key.
    #[error("the sealing key was already recovered; no more shares are needed")]
    AlreadyRecovered,

    /// The secret-sharing library refused its input (a bug, not bad input).
    #[error("secret sharing failed: {reason}")]
    Sharing {
        /// The library's reason.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed; retry, and check the system's entropy source")]
    Random,
}
