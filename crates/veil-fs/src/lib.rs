//! # veil-fs: the file shield's format core (sans-IO)
//!
//! Byte layouts of `docs/spec/file-shield.md` (version 1): key derivation
//! ([`VolumeKey`], [`VolumeKeys`]), the volume header ([`VolumeHeader`]), the
//! file header ([`FileHeader`]) and chunk records sealed with AES-256-GCM
//! ([`FileCipher`]), with associated data binding volume, file, record index
//! and a last-record flag. Nothing here reads a file, a clock or the network;
//! randomness comes from ring's `SystemRandom`.
//!
//! Decryption fails closed: no byte of a record is returned before its tag
//! verifies.

mod error;
mod file;
mod keys;
mod manifest;
mod volume;
mod volume_io;

pub use error::FsError;
pub use file::{FileCipher, FileHeader, RecordLayout, FILE_HEADER_LEN, RECORD_OVERHEAD};
pub use keys::{FileId, VolumeId, VolumeKey, VolumeKeys};
pub use manifest::{check_path, freshness_tag, Entry, EntryKind, Manifest};
pub use volume::{ChunkSize, Mode, VolumeHeader, VOLUME_HEADER_LEN};
pub use volume_io::{CommitHook, Problem, Stat, Volume, HEADER_FILE, MANIFEST_FILE, OBJECTS_DIR};
