//! The format core (sans-IO): header, key derivation, chunk sealing and
//! opening (`docs/spec/seal.md`).

use std::fmt;

use ring::{aead, hkdf, hmac};
use zeroize::Zeroizing;

use crate::Error;

/// The first 8 bytes of every veil-seal file.
pub const MAGIC: &[u8; 8] = b"VEILSEAL";
/// The format version this library writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the header: magic, version, 3 reserved, salt (32), MAC (32).
pub const HEADER_LEN: usize = 76;
/// Plaintext bytes of every chunk but the last (64 KiB).
pub const CHUNK_LEN: usize = 65536;
/// Bytes of an AES-256-GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a full record on disk: a chunk's ciphertext and its tag.
pub const RECORD_LEN: usize = CHUNK_LEN + TAG_LEN;

const SALT_LEN: usize = 32;
const MAC_OFFSET: usize = 44;
const HEADER_INFO: &[u8] = b"veil-seal v1 header";
const PAYLOAD_INFO: &[u8] = b"veil-seal v1 payload";

/// A 32-byte key (a key file's, or an `aes-256` secret's). Zeroized on
/// drop; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; 32]>);

impl Key {
    /// The key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, Error> {
        Ok(Key(Zeroizing::new(random()?)))
    }

    /// The key's bytes (to store it).
    pub fn dangerous_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::Random)?;
    Ok(b)
}

/// HKDF output length marker for ring.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The per-file keys: the header MAC key and the payload AEAD key.
fn derive(key: &Key, salt: &[u8; SALT_LEN]) -> Result<(hmac::Key, aead::LessSafeKey), Error> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&key.0[..]);
    let mut k = Zeroizing::new([0u8; 32]);
    let expand = |info: &[u8], out: &mut [u8; 32]| {
        prk.expand(&[info], Len(32))
            .and_then(|okm| okm.fill(out))
            .map_err(|_| Error::Misuse("HKDF refused a 32-byte output"))
    };
    expand(HEADER_INFO, &mut k)?;
    let mac = hmac::Key::new(hmac::HMAC_SHA256, &k[..]);
    expand(PAYLOAD_INFO, &mut k)?;
    let aead = aead::UnboundKey::new(&aead::AES_256_GCM, &k[..])
        .map(aead::LessSafeKey::new)
        .map_err(|_| Error::Misuse("AES-256-GCM refused the derived key"))?;
    Ok((mac, aead))
}

/// The nonce of chunk `index`: the index as 11 bytes big-endian, then 1 for
/// the last chunk and 0 for the others.
fn nonce(index: u64, last: bool) -> aead::Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    aead::Nonce::assume_unique_for_key(n)
}

/// A parsed header (structure only: its MAC is checked by [`Opener::new`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; HEADER_LEN],
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("version", &self.bytes[8])
            .field("salt", &Hex(self.salt()))
            .finish_non_exhaustive()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes of `input` (more are ignored).
    /// Checks the magic, the version and the reserved bytes, in that order.
    pub fn parse(input: &[u8]) -> Result<Header, Error> {
        let m = input.len().min(MAGIC.len());
        if input[..m] != MAGIC[..m] {
            return Err(Error::NotSealed);
        }
        let Some(bytes) = input.get(..HEADER_LEN) else {
            return Err(Error::TruncatedHeader { len: input.len() });
        };
        if bytes[8] != VERSION {
            return Err(Error::UnsupportedVersion(bytes[8]));
        }
        if bytes[9..12] != [0, 0, 0] {
            return Err(Error::MalformedHeader("reserved bytes 9..12 are not zero"));
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(bytes);
        Ok(Header { bytes: h })
    }

    /// The header's bytes, as written.
    pub fn as_bytes(&self) -> &[u8; HEADER_LEN] {
        &self.bytes
    }

    /// The random per-file salt.
    pub fn salt(&self) -> &[u8] {
        &self.bytes[12..MAC_OFFSET]
    }

    fn salt_array(&self) -> [u8; SALT_LEN] {
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(self.salt());
        s
    }
}

/// Seals one stream, chunk by chunk (sans-IO).
///
/// Write [`Sealer::header`] first, then every chunk in order: all but the
/// last exactly [`CHUNK_LEN`] bytes, the last 1 to [`CHUNK_LEN`] bytes (or
/// 0 when the whole input is empty).
pub struct Sealer {
    header: Header,
    aead: aead::LessSafeKey,
    next: u64,
    finished: bool,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("next", &self.next)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// A [`Sealer`] with a fixed salt (for test vectors only; see
/// [`crate::danger`]).
pub fn dangerous_sealer_with_salt(key: &Key, salt: [u8; 32]) -> Result<Sealer, Error> {
    Sealer::with_salt(key, salt)
}

impl Sealer {
    /// A sealer for a new stream, with a fresh random salt.
    pub fn new(key: &Key) -> Result<Sealer, Error> {
        Sealer::with_salt(key, random()?)
    }

    fn with_salt(key: &Key, salt: [u8; SALT_LEN]) -> Result<Sealer, Error> {
        let (mac, aead) = derive(key, &salt)?;
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8] = VERSION;
        bytes[12..MAC_OFFSET].copy_from_slice(&salt);
        let tag = hmac::sign(&mac, &bytes[..MAC_OFFSET]);
        bytes[MAC_OFFSET..].copy_from_slice(tag.as_ref());
        Ok(Sealer {
            header: Header { bytes },
            aead,
            next: 0,
            finished: false,
        })
    }

    /// The header to write before the first record.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header.bytes
    }

    /// Seals the next chunk in place: `record[..len]` holds its plaintext;
    /// the ciphertext replaces it and the tag is written to
    /// `record[len..len + TAG_LEN]`. Returns the record's length on disk,
    /// `len + TAG_LEN`.
    pub fn seal_chunk(
        &mut self,
        record: &mut [u8],
        len: usize,
        last: bool,
    ) -> Result<usize, Error> {
        if self.finished {
            return Err(Error::Misuse("a chunk after the last one"));
        }
        if len > CHUNK_LEN {
            return Err(Error::Misuse("a chunk longer than CHUNK_LEN"));
        }
        if !last && len != CHUNK_LEN {
            return Err(Error::Misuse(
                "a chunk that is not the last must be CHUNK_LEN bytes",
            ));
        }
        if last && len == 0 && self.next != 0 {
            return Err(Error::Misuse(
                "an empty last chunk is only for an empty input",
            ));
        }
        let Some(out) = record.get_mut(..len + TAG_LEN) else {
            return Err(Error::Misuse("the record buffer has no room for the tag"));
        };
        let (body, tag_out) = out.split_at_mut(len);
        let tag = self
            .aead
            .seal_in_place_separate_tag(nonce(self.next, last), aead::Aad::empty(), body)
            .map_err(|_| Error::Misuse("AES-GCM refused to seal"))?;
        tag_out.copy_from_slice(tag.as_ref());
        self.next += 1;
        self.finished = last;
        Ok(len + TAG_LEN)
    }

    /// Chunks sealed so far.
    pub fn chunks(&self) -> u64 {
        self.next
    }

    /// Whether the last chunk has been sealed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Opens one stream, chunk by chunk (sans-IO).
///
/// Made from the header, whose MAC it checks. The caller frames the
/// records: every record but the last is [`RECORD_LEN`] bytes; the last is
/// whatever remains at the end of the input (at most [`RECORD_LEN`]), and
/// the caller must say it is the last.
pub struct Opener {
    aead: aead::LessSafeKey,
    next: u64,
    finished: bool,
    /// A copy of the last record, to tell a cut file from a modified one.
    scratch: Vec<u8>,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("next", &self.next)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// Parses `header` (its first [`HEADER_LEN`] bytes) and checks its MAC
    /// under `key`: [`Error::WrongKey`] when it does not verify.
    pub fn new(key: &Key, header: &[u8]) -> Result<Opener, Error> {
        let h = Header::parse(header)?;
        let (mac, aead) = derive(key, &h.salt_array())?;
        hmac::verify(&mac, &h.bytes[..MAC_OFFSET], &h.bytes[MAC_OFFSET..])
            .map_err(|_| Error::WrongKey)?;
        Ok(Opener {
            aead,
            next: 0,
            finished: false,
            scratch: Vec::new(),
        })
    }

    /// Opens the next record in place and returns its plaintext (a prefix
    /// of `record`). On an error no plaintext of this record is returned,
    /// and the record's bytes are unspecified.
    pub fn open_chunk<'a>(
        &mut self,
        record: &'a mut [u8],
        last: bool,
    ) -> Result<&'a mut [u8], Error> {
        if self.finished {
            return Err(Error::Misuse("a record after the last one"));
        }
        if record.len() > RECORD_LEN || (!last && record.len() != RECORD_LEN) {
            return Err(Error::Misuse(
                "a record that is not the last must be RECORD_LEN bytes",
            ));
        }
        let index = self.next;
        if record.len() < TAG_LEN {
            // Cut inside the tag of the last record.
            return Err(Error::ChunkFailed { index });
        }
        if last {
            // Kept to tell a cut at a chunk boundary from a modification.
            self.scratch.clear();
            self.scratch.extend_from_slice(record);
        }
        match self
            .aead
            .open_in_place(nonce(index, last), aead::Aad::empty(), record)
        {
            Ok(plain) => {
                if last && plain.is_empty() && index != 0 {
                    return Err(Error::EmptyChunk { index });
                }
                self.next += 1;
                self.finished = last;
                Ok(plain)
            }
            Err(_) => {
                if last
                    && self.scratch.len() == RECORD_LEN
                    && self
                        .aead
                        .open_in_place(nonce(index, false), aead::Aad::empty(), &mut self.scratch)
                        .is_ok()
                {
                    // It held that record's plaintext.
                    zeroize::Zeroize::zeroize(&mut self.scratch);
                    return Err(Error::Truncated { index });
                }
                Err(Error::ChunkFailed { index })
            }
        }
    }

    /// Records opened so far (the index of the next one).
    pub fn chunks(&self) -> u64 {
        self.next
    }

    /// Whether the last record has been opened.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        // The scratch copy may hold plaintext of a record opened as a
        // middle one when diagnosing a cut.
        zeroize::Zeroize::zeroize(&mut self.scratch);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn seal_all(key: &Key, salt: [u8; 32], plain: &[u8]) -> Vec<u8> {
        let mut s = Sealer::with_salt(key, salt).unwrap();
        let mut out = s.header().to_vec();
        let mut chunks: Vec<&[u8]> = plain.chunks(CHUNK_LEN).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            let mut rec = vec![0u8; c.len() + TAG_LEN];
            rec[..c.len()].copy_from_slice(c);
            let len = s.seal_chunk(&mut rec, c.len(), i + 1 == n).unwrap();
            out.extend_from_slice(&rec[..len]);
        }
        out
    }

    #[test]
    fn nonce_is_counter_and_flag() {
        let n = nonce(0x0102, true);
        assert_eq!(n.as_ref(), &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1],);
        assert_eq!(nonce(7, false).as_ref()[11], 0);
    }

    #[test]
    fn header_layout() {
        let s = Sealer::with_salt(&Key::from_bytes([0x42; 32]), [1; 32]).unwrap();
        let h = s.header();
        assert_eq!(&h[..8], b"VEILSEAL");
        assert_eq!(h[8], 1);
        assert_eq!(&h[9..12], &[0, 0, 0]);
        assert_eq!(&h[12..44], &[1; 32]);
        let o = Opener::new(&Key::from_bytes([0x42; 32]), h);
        assert!(o.is_ok());
        assert!(matches!(
            Opener::new(&Key::from_bytes([0x43; 32]), h),
            Err(Error::WrongKey)
        ));
    }

    #[test]
    fn header_parse_errors() {
        assert!(matches!(
            Header::parse(b"VEIL"),
            Err(Error::TruncatedHeader { len: 4 })
        ));
        assert!(matches!(
            Header::parse(b"age-encryption.org/v1"),
            Err(Error::NotSealed)
        ));
        assert!(matches!(
            Header::parse(b""),
            Err(Error::TruncatedHeader { len: 0 })
        ));
        let mut h = *Sealer::new(&Key::generate().unwrap()).unwrap().header();
        h[8] = 2;
        assert!(matches!(
            Header::parse(&h),
            Err(Error::UnsupportedVersion(2))
        ));
        h[8] = 1;
        h[10] = 1;
        assert!(matches!(Header::parse(&h), Err(Error::MalformedHeader(_))));
    }

    #[test]
    fn sealer_refuses_misuse() {
        let mut s = Sealer::new(&Key::generate().unwrap()).unwrap();
        let mut rec = vec![0u8; RECORD_LEN];
        assert!(matches!(
            s.seal_chunk(&mut rec, 10, false),
            Err(Error::Misuse(_))
        ));
        assert!(matches!(
            s.seal_chunk(&mut rec[..20], 10, true),
            Err(Error::Misuse(_))
        ));
        assert_eq!(s.seal_chunk(&mut rec, 10, true).unwrap(), 26);
        assert!(matches!(
            s.seal_chunk(&mut rec, 10, true),
            Err(Error::Misuse(_))
        ));
    }

    #[test]
    fn cut_at_a_boundary_is_told_from_a_modification() {
        let key = Key::from_bytes([7; 32]);
        let plain = vec![5u8; CHUNK_LEN * 2 + 3];
        let sealed = seal_all(&key, [9; 32], &plain);
        let body = &sealed[HEADER_LEN..];
        // Cut after record 0: record 0 opened as last.
        let mut o = Opener::new(&key, &sealed).unwrap();
        let mut r0 = body[..RECORD_LEN].to_vec();
        assert!(matches!(
            o.open_chunk(&mut r0, true),
            Err(Error::Truncated { index: 0 })
        ));
        // Modified record 1.
        let mut o = Opener::new(&key, &sealed).unwrap();
        let mut r0 = body[..RECORD_LEN].to_vec();
        assert_eq!(o.open_chunk(&mut r0, false).unwrap(), &plain[..CHUNK_LEN]);
        let mut r1 = body[RECORD_LEN..2 * RECORD_LEN].to_vec();
        r1[5] ^= 1;
        assert!(matches!(
            o.open_chunk(&mut r1, false),
            Err(Error::ChunkFailed { index: 1 })
        ));
        // A last record cut inside its tag.
        let mut o = Opener::new(&key, &sealed).unwrap();
        let mut r0 = body[..RECORD_LEN].to_vec();
        o.open_chunk(&mut r0, false).unwrap();
        let mut r1 = body[RECORD_LEN..2 * RECORD_LEN].to_vec();
        o.open_chunk(&mut r1, false).unwrap();
        let mut r2 = body[2 * RECORD_LEN..2 * RECORD_LEN + 10].to_vec();
        assert!(matches!(
            o.open_chunk(&mut r2, true),
            Err(Error::ChunkFailed { index: 2 })
        ));
    }

    #[test]
    fn empty_input_is_one_empty_last_chunk() {
        let key = Key::from_bytes([7; 32]);
        let sealed = seal_all(&key, [9; 32], b"");
        assert_eq!(sealed.len(), HEADER_LEN + TAG_LEN);
        let mut o = Opener::new(&key, &sealed).unwrap();
        let mut rec = sealed[HEADER_LEN..].to_vec();
        assert!(o.open_chunk(&mut rec, true).unwrap().is_empty());
        assert!(o.is_finished());
    }
}
