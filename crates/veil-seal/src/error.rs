use std::fmt;

/// Why a stream could not be sealed or opened.
///
/// The integrity variants ([`Error::is_integrity`]) say what failed and, for
/// chunks, which one; they never carry plaintext.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The input does not start with the veil-seal magic.
    NotSealed,
    /// The header names a version this library does not read.
    UnsupportedVersion(u8),
    /// The input ended inside the header.
    TruncatedHeader {
        /// Bytes found (fewer than [`crate::HEADER_LEN`]).
        len: usize,
    },
    /// A header field that must be zero is not.
    MalformedHeader(&'static str),
    /// The header MAC does not verify: the key is not the one the file was
    /// sealed with (or the header was modified).
    WrongKey,
    /// A chunk's tag does not verify: the chunk was modified, or chunks
    /// were reordered, cut or appended.
    ChunkFailed {
        /// The chunk index, from 0.
        index: u64,
    },
    /// Chunk `index` authenticates, but as a chunk that is not the last, and
    /// nothing follows it: the file was cut at a chunk boundary.
    Truncated {
        /// The index of the last chunk found.
        index: u64,
    },
    /// The header is followed by no chunk at all (an empty input still has
    /// one, empty, last chunk).
    NoChunks,
    /// An empty last chunk after data, which no encryptor writes.
    EmptyChunk {
        /// The chunk index.
        index: u64,
    },
    /// Reading the input failed.
    Read(std::io::Error),
    /// Writing the output failed.
    Write(std::io::Error),
    /// The operating system's random generator failed.
    Random,
    /// The API was used out of order (a chunk after the last one, a chunk
    /// longer than [`crate::CHUNK_LEN`], a buffer too short for its tag).
    Misuse(&'static str),
}

impl Error {
    /// Whether the input is not an authentic veil-seal file under this key
    /// (tampered, truncated, extended, another format or version, or a
    /// wrong key), as opposed to an I/O failure or a misuse.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            Error::NotSealed
                | Error::UnsupportedVersion(_)
                | Error::TruncatedHeader { .. }
                | Error::MalformedHeader(_)
                | Error::WrongKey
                | Error::ChunkFailed { .. }
                | Error::Truncated { .. }
                | Error::NoChunks
                | Error::EmptyChunk { .. }
        )
    }

    /// The chunk an integrity failure is about, if it is about one.
    pub fn chunk(&self) -> Option<u64> {
        match self {
            Error::ChunkFailed { index }
            | Error::Truncated { index }
            | Error::EmptyChunk { index } => Some(*index),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotSealed => f.write_str(
                "not a veil-seal file: it does not start with the veil-seal magic (not made by `veil encrypt`, or its header was modified)",
            ),
            Error::UnsupportedVersion(v) => write!(
                f,
                "veil-seal version {v} is not supported (this build reads version {})",
                crate::VERSION
            ),
            Error::TruncatedHeader { len } => write!(
                f,
                "the file was truncated: it ends inside the header ({len} of {} bytes)",
                crate::HEADER_LEN
            ),
            Error::MalformedHeader(what) => write!(f, "the header is malformed: {what}"),
            Error::WrongKey => f.write_str(
                "wrong key: the header does not authenticate under this key (or the header was modified)",
            ),
            Error::ChunkFailed { index } => write!(
                f,
                "chunk {index} failed authentication: the file was modified or truncated"
            ),
            Error::Truncated { index } => write!(
                f,
                "the file was truncated: it ends after chunk {index}, which was not sealed as the last chunk"
            ),
            Error::NoChunks => {
                f.write_str("the file was truncated: it holds a header but no chunk")
            }
            Error::EmptyChunk { index } => write!(
                f,
                "chunk {index} is an empty last chunk after data, which no encryptor writes: the file was modified"
            ),
            Error::Read(e) => write!(f, "reading the input: {e}"),
            Error::Write(e) => write!(f, "writing the output: {e}"),
            Error::Random => f.write_str("the operating system's random generator failed"),
            Error::Misuse(what) => write!(f, "veil-seal API misuse: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read(e) | Error::Write(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_errors_are_told_apart_from_io() {
        assert!(Error::WrongKey.is_integrity());
        assert!(Error::ChunkFailed { index: 3 }.is_integrity());
        assert!(!Error::Read(std::io::Error::other("x")).is_integrity());
        assert!(!Error::Misuse("x").is_integrity());
        assert_eq!(
            Error::ChunkFailed { index: 3 }.to_string(),
            "chunk 3 failed authentication: the file was modified or truncated"
        );
        assert_eq!(Error::Truncated { index: 1 }.chunk(), Some(1));
        assert_eq!(Error::WrongKey.chunk(), None);
    }
}
