//! Errors of the sealed store and of the audit log.

use std::path::PathBuf;

/// An error from [`crate::Store`], [`crate::SealingKey`] or a transaction.
///
/// Every message says what happened and what to do about it. No variant carries a plaintext
/// value or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store was sealed with another key, or its key check record was altered.
    #[error(
        "the store at {path} is sealed with another key: open it with the sealing key it was \
         created with (the TEE-derived key, or with --dev the key file in the state directory); \
         if the key is right, the store's key check record was modified and the store must be \
         restored from a backup"
    )]
    WrongKey {
        /// The database file.
        path: PathBuf,
    },

    /// A sealed record failed authentication: it was modified, moved from another key or table,
    /// or comes from another store. Its content was not returned.
    #[error(
        "record {table}/{key} failed authentication: the store file was modified outside Veil \
         (flipped bytes, or a value copied from another record); the value was not used; \
         restore the store from a backup"
    )]
    Tampered {
        /// Logical table name.
        table: String,
        /// The record key, as text when printable, else as `0x` and hex.
        key: String,
    },

    /// redb found the database file damaged (checksum or structure).
    #[error(
        "the store file is corrupted ({detail}): it was damaged on disk or modified outside \
         Veil; restore the store from a backup"
    )]
    Corrupted {
        /// redb's description of the damage.
        detail: String,
    },

    /// Another process (or another `Store` in this process) has the database open.
    #[error(
        "the store is already open in another process or handle: stop the other CAS using this \
         state directory, or use another state directory"
    )]
    AlreadyOpen,

    /// The file was written by a newer or older, incompatible format.
    #[error("the store file has an incompatible format ({detail}): use the Veil version that wrote it, or migrate it")]
    IncompatibleFormat {
        /// What is incompatible.
        detail: String,
    },

    /// An I/O error on the database file.
    #[error("I/O error on the store file: {0}; check the disk (space, permissions) and retry")]
    Io(#[source] std::io::Error),

    /// Another redb error, not expected in normal operation.
    #[error("storage error: {detail}; retry, and if it persists restore the store from a backup")]
    Storage {
        /// redb's description.
        detail: String,
    },

    /// The key file could not be read or written.
    #[error("key file {path}: {source}; check that the state directory exists and is writable")]
    KeyFileIo {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The key file does not hold a valid key.
    #[error("key file {path} is invalid ({reason}): restore it from a backup; without it the store cannot be opened")]
    KeyFileInvalid {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The key file can be read by other users.
    #[error("key file {path} has mode {mode:o}, readable by other users: run `chmod 600 {path}` and check who may have copied it")]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A sealing key given as bytes had the wrong length.
    #[error("a sealing key must be 32 bytes, got {len}")]
    KeyLength {
        /// The length given.
        len: usize,
    },

    /// The system random number generator failed.
    #[error(
        "the system random number generator failed; retry, and check the platform's entropy source"
    )]
    Random,

    /// A table name is not valid.
    #[error("invalid table name {name:?}: use 1 to 64 characters from a-z, 0-9 and _")]
    InvalidTable {
        /// The name.
        name: String,
    },

    /// A key or value is larger than the store accepts.
    #[error("{what} is {len} bytes, more than the limit of {max}: store large data elsewhere and keep a reference here")]
    TooLarge {
        /// `"key"` or `"value"`.
        what: &'static str,
        /// The length given.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// An audit entry is not valid.
    #[error("invalid audit entry: {reason}")]
    InvalidAuditEntry {
        /// What is wrong.
        reason: String,
    },

    /// The store's audit chain is signed with another key than the signer given.
    #[error(
        "the audit log was signed with another key than the one given: open the store with the \
         audit signer it was created with"
    )]
    AuditKeyChanged,

    /// A write closure panicked; its transaction was rolled back and nothing of it was written.
    #[error("a write closure panicked; nothing it wrote was committed")]
    Panicked,

    /// The store's own audit chain failed verification.
    #[error("the store's audit log failed verification: {0}; restore the store from a backup")]
    AuditChain(#[from] AuditError),

    /// The group committer stopped (the store is closing).
    #[error(
        "the group committer has stopped (the store is closing); retry on a newly opened store"
    )]
    CommitterStopped,
}

impl StoreError {
    pub(crate) fn tampered(table: &str, key: &[u8]) -> Self {
        StoreError::Tampered {
            table: table.to_owned(),
            key: display_key(key),
        }
    }
}

impl StoreError {
    /// A copy of this error, for reporting one failed group commit to every caller in it.
    pub(crate) fn duplicate(&self) -> StoreError {
        use StoreError as E;
        match self {
            E::WrongKey { path } => E::WrongKey { path: path.clone() },
            E::Tampered { table, key } => E::Tampered {
                table: table.clone(),
                key: key.clone(),
            },
            E::Corrupted { detail } => E::Corrupted {
                detail: detail.clone(),
            },
            E::AlreadyOpen => E::AlreadyOpen,
            E::IncompatibleFormat { detail } => E::IncompatibleFormat {
                detail: detail.clone(),
            },
            E::Io(io) => E::Io(std::io::Error::new(io.kind(), io.to_string())),
            E::KeyFileIo { path, source } => E::KeyFileIo {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            E::KeyFileInvalid { path, reason } => E::KeyFileInvalid {
                path: path.clone(),
                reason,
            },
            E::KeyFilePermissions { path, mode } => E::KeyFilePermissions {
                path: path.clone(),
                mode: *mode,
            },
            E::KeyLength { len } => E::KeyLength { len: *len },
            E::Random => E::Random,
            E::InvalidTable { name } => E::InvalidTable { name: name.clone() },
            E::TooLarge { what, len, max } => E::TooLarge {
                what,
                len: *len,
                max: *max,
            },
            E::InvalidAuditEntry { reason } => E::InvalidAuditEntry {
                reason: reason.clone(),
            },
            E::AuditKeyChanged => E::AuditKeyChanged,
            E::AuditChain(e) => E::AuditChain(e.clone()),
            E::Panicked => E::Panicked,
            E::CommitterStopped => E::CommitterStopped,
            E::Storage { detail } => E::Storage {
                detail: detail.clone(),
            },
        }
    }
}

/// A record key as text if it is printable UTF-8, else as `0x` and hex.
pub(crate) fn display_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.is_empty() && !s.chars().any(char::is_control) => s.to_owned(),
        _ => format!("0x{}", hex::encode(key)),
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Corrupted(detail) => StoreError::Corrupted { detail },
            redb::Error::DatabaseAlreadyOpen => StoreError::AlreadyOpen,
            redb::Error::UpgradeRequired(v) => StoreError::IncompatibleFormat {
                detail: format!("redb file format {v} needs an upgrade"),
            },
            // redb reports a foreign or cut file as these I/O errors.
            redb::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                StoreError::Corrupted {
                    detail: io.to_string(),
                }
            }
            redb::Error::Io(io) => StoreError::Io(io),
            redb::Error::ValueTooLarge(len) => StoreError::TooLarge {
                what: "value",
                len,
                max: crate::store::MAX_VALUE_LEN,
            },
            redb::Error::TableTypeMismatch { .. } | redb::Error::TableIsMultimap(_) => {
                StoreError::IncompatibleFormat {
                    detail: e.to_string(),
                }
            }
            other => StoreError::Storage {
                detail: other.to_string(),
            },
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// An error found while verifying an audit chain. Each names the sequence number at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The first record does not start the chain (seq 0, all-zero previous hash), and no anchor
    /// was given: records at the start were removed.
    #[error("audit record {seq} does not start the chain: records before it are missing (the log was cut at the start)")]
    MissingStart {
        /// The first seq found.
        seq: u64,
    },
    /// A seq number was skipped or repeated: a record was removed, duplicated or moved.
    #[error("audit record at position {position} has seq {found}, expected {expected}: records were removed, duplicated or reordered")]
    SeqGap {
        /// Expected seq.
        expected: u64,
        /// Seq found.
        found: u64,
        /// 0-based position in the input.
        position: usize,
    },
    /// A record's `prev_hash` is not the hash of the record before it.
    #[error("audit record {seq} does not link to the record before it: records were removed, replaced or reordered")]
    BrokenLink {
        /// The seq.
        seq: u64,
    },
    /// A record's content does not match its hash: it was edited.
    #[error("audit record {seq} was edited: its content does not match its hash")]
    Edited {
        /// The seq.
        seq: u64,
    },
    /// A record's signature does not verify under the given public key.
    #[error("audit record {seq} has a bad signature: it was forged, or the public key given is not the CAS's audit key")]
    BadSignature {
        /// The seq.
        seq: u64,
    },
    /// The chain ends before the head the CAS signed or the client pinned: records at the end were
    /// removed.
    #[error("the audit log is truncated: it ends at seq {found_next} but the head says {expected_next} records; records at the end were removed")]
    Truncated {
        /// Number of records the head says exist.
        expected_next: u64,
        /// Number of records found.
        found_next: u64,
    },
    /// The chain does not match the head (same length, different hash), or is longer than a
    /// signed head.
    #[error(
        "the audit log does not match its head at seq {seq}: the log or the head was replaced"
    )]
    HeadMismatch {
        /// The seq of the last record the head covers.
        seq: u64,
    },
    /// The signed head's signature does not verify.
    #[error(
        "the audit log's signed head has a bad signature: it was forged or the public key is wrong"
    )]
    BadHeadSignature,
    /// An export has no signed head line: it was cut at the end.
    #[error("the audit export has no signed head line at its end: the export was truncated")]
    MissingHead,
    /// The public key is not a valid Ed25519 public key.
    #[error("the audit public key is not a 32-byte Ed25519 public key")]
    BadPublicKey,
    /// A line of an export could not be parsed.
    #[error("audit export line {line} is malformed: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}
