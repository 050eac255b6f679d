/// Why a volume or file could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// The volume header's MAC does not verify: the key is not this volume's,
    /// or the header was changed.
    #[error(
        "wrong key for this volume, or its header was tampered with (header MAC does not verify)"
    )]
    WrongKeyOrTamperedHeader,
    /// A header is not in the format this version reads.
    #[error("{what} is malformed: {detail}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// What is wrong, expected vs found.
        detail: String,
    },
    /// A file's header names another file than the one expected at this path.
    #[error(
        "file id mismatch: expected {expected}, found {found} (files swapped, renamed or replaced)"
    )]
    FileIdMismatch {
        /// The file id expected.
        expected: String,
        /// The file id found in the header.
        found: String,
    },
    /// A chunk record does not authenticate.
    #[error("record {index} does not authenticate: {reason}")]
    BadRecord {
        /// The record index.
        index: u64,
        /// The likely cause.
        reason: &'static str,
    },
    /// The operating system's random generator failed.
    #[error("no randomness available")]
    Random,
}

impl FsError {
    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        FsError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}
