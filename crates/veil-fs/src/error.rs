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
    /// The manifest does not authenticate.
    #[error("the volume manifest does not authenticate: tampered, or from another volume")]
    BadManifest,
    /// A file's content is not the one the manifest committed to.
    #[error("{path}: {detail}")]
    NotCurrent {
        /// The path.
        path: String,
        /// What differs (rolled back, replaced, missing).
        detail: String,
    },
    /// A record of a file does not authenticate.
    #[error("{path}: {source}")]
    InFile {
        /// The path.
        path: String,
        /// What failed.
        source: Box<FsError>,
    },
    /// No such path.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// The path exists.
    #[error("{0}: already exists")]
    AlreadyExists(String),
    /// A directory was expected.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// A file was expected.
    #[error("{0}: is a directory")]
    IsADirectory(String),
    /// An operation that makes no sense (moving a directory into itself).
    #[error("{0}")]
    Invalid(String),
    /// The directory is not empty.
    #[error("{0}: directory not empty")]
    NotEmpty(String),
    /// An operating-system call failed.
    #[error("{action}: {message}")]
    Io {
        /// What was being done (and on which file).
        action: String,
        /// The OS error's kind.
        kind: std::io::ErrorKind,
        /// Its message.
        message: String,
    },
}

impl FsError {
    pub(crate) fn io(action: impl Into<String>, e: &std::io::Error) -> Self {
        FsError::Io {
            action: action.into(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        FsError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}
