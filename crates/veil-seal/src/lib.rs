//! # veil-seal: client-side encryption of one stream ("veil-seal v1")
//!
//! The format behind `veil encrypt` and `veil decrypt`, specified in
//! `docs/spec/seal.md`: a 76-byte header (magic, version, a random 32-byte
//! salt, an HMAC-SHA256 over the rest), then the input cut into 64 KiB
//! chunks, each sealed with AES-256-GCM under a per-file key (the STREAM
//! construction: the nonce is an 11-byte chunk counter and a last-chunk
//! flag, so reordering, truncation and extension are caught).
//!
//! Three layers, each usable alone:
//!
//! * **The format core** ([`Sealer`], [`Opener`], [`Header`]): sans-IO. The
//!   caller hands in one chunk at a time in its own buffer and says whether
//!   it is the last; nothing here reads a file, a clock or the network.
//!   Randomness (the salt) comes from ring's `SystemRandom`.
//! * **Streaming adapters** ([`Encryptor`] is a `std::io::Write`,
//!   [`Decryptor`] a `std::io::Read`): one thread, one record of buffer.
//! * **The pipeline** ([`encrypt`], [`decrypt`]): what the CLI uses. Reads
//!   and seals (or opens) batches of records on the calling thread and
//!   writes them on a second one, with vectored I/O straight into and out
//!   of the record slots, so plaintext is copied only by the kernel.
//!   [`encrypt_to_file`] and [`decrypt_to_file`] write a regular file from
//!   two threads with `pwrite`.
//!
//! **Fail closed.** An [`Opener`] authenticates the header (a wrong key is
//! [`Error::WrongKey`], before any chunk) and never returns a byte of a
//! chunk whose tag has not verified. A stream consumer may receive the
//! authentic chunks before a failing one (as with age): callers that must
//! not keep a partial result write to a temporary file and discard it on an
//! error, as `veil decrypt -o` does.
//!
//! **Keys.** [`Key`] and the derived key bytes are zeroized; ring's
//! expanded AES and HMAC key schedules are not (ring does not offer it).
//!
//! All cryptography is ring's: HKDF-SHA256, HMAC-SHA256, AES-256-GCM.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let key = veil_seal::Key::generate()?;
//! // The pipeline, between any reader and writer.
//! let mut sealed = Vec::new();
//! veil_seal::encrypt(&key, &mut &b"hello"[..], &mut sealed, &mut |_| {})?;
//! let mut plain = Vec::new();
//! veil_seal::decrypt(&key, &mut &sealed[..], &mut plain, &mut |_| {})?;
//! assert_eq!(plain, b"hello");
//!
//! // The streaming adapters read the same format.
//! let mut e = veil_seal::Encryptor::new(&key, Vec::new())?;
//! e.write_all(b"hello").map_err(veil_seal::Error::Write)?;
//! let sealed = e.finish()?;
//! let mut d = veil_seal::Decryptor::new(&key, &sealed[..])?;
//! let mut plain = String::new();
//! d.read_to_string(&mut plain).map_err(veil_seal::Error::Read)?;
//! assert_eq!(plain, "hello");
//!
//! // A wrong key is caught at the header.
//! let other = veil_seal::Key::generate()?;
//! assert!(matches!(
//!     veil_seal::Decryptor::new(&other, &sealed[..]),
//!     Err(veil_seal::Error::WrongKey)
//! ));
//! # Ok::<(), veil_seal::Error>(())
//! ```

mod error;
mod format;
mod pipe;
mod stream;

pub use error::Error;
pub use format::{
    Header, Key, Opener, Sealer, CHUNK_LEN, HEADER_LEN, MAGIC, RECORD_LEN, TAG_LEN, VERSION,
};
pub use pipe::{decrypt, decrypt_to_file, encrypt, encrypt_to_file};
pub use stream::{Decryptor, Encryptor};

/// Fixed salts, for test vectors only. A salt must never be reused with
/// the same key: two files would then share a payload key and nonces.
pub mod danger {
    pub use crate::format::dangerous_sealer_with_salt;
}
