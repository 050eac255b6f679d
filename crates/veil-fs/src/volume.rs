use ring::hmac;

use crate::keys::{random_array, VolumeId, VolumeKey, VolumeKeys};
use crate::FsError;

/// Length of `veil.volume`.
pub const VOLUME_HEADER_LEN: usize = 64;
const VOLUME_MAGIC: &[u8; 8] = b"VEILVOL\0";
/// The format version this crate writes and reads.
pub(crate) const VERSION: u8 = 1;

/// How a volume protects its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Confidentiality and integrity.
    Encrypted,
    /// Integrity only: plaintext content, every byte authenticated.
    Integrity,
}

impl Mode {
    pub(crate) fn byte(self) -> u8 {
        match self {
            Mode::Encrypted => 1,
            Mode::Integrity => 2,
        }
    }

    pub(crate) fn from_byte(b: u8, what: &'static str) -> Result<Mode, FsError> {
        match b {
            1 => Ok(Mode::Encrypted),
            2 => Ok(Mode::Integrity),
            other => Err(FsError::malformed(
                what,
                format!("mode byte is {other}; expected 1 (encrypted) or 2 (integrity)"),
            )),
        }
    }
}

/// A chunk size: a power of two from 4 KiB to 1 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSize(u32);

impl ChunkSize {
    /// The smallest allowed.
    pub const MIN: u32 = 4096;
    /// The largest allowed.
    pub const MAX: u32 = 1 << 20;
    /// What new volumes use unless told otherwise (docs/benchmarks.md,
    /// file-shield section, has the measurements behind it).
    pub const DEFAULT: ChunkSize = ChunkSize(16 * 1024);

    /// Checks `n`.
    pub fn new(n: u32) -> Result<ChunkSize, FsError> {
        if n.is_power_of_two() && (Self::MIN..=Self::MAX).contains(&n) {
            Ok(ChunkSize(n))
        } else {
            Err(FsError::malformed(
                "chunk size",
                format!("{n} is not a power of two from 4096 to 1048576"),
            ))
        }
    }

    /// In bytes.
    pub fn get(self) -> u32 {
        self.0
    }

    /// In bytes, as usize.
    pub fn bytes(self) -> usize {
        self.0 as usize
    }
}

/// The volume header (`veil.volume`, spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeHeader {
    /// Protection mode.
    pub mode: Mode,
    /// Chunk size of every file.
    pub chunk_size: ChunkSize,
    /// Random id.
    pub volume_id: VolumeId,
}

impl VolumeHeader {
    /// A new volume with a fresh random id.
    pub fn new(mode: Mode, chunk_size: ChunkSize) -> Result<Self, FsError> {
        Ok(VolumeHeader {
            mode,
            chunk_size,
            volume_id: VolumeId(random_array()?),
        })
    }

    /// The volume's keys under `key`.
    pub fn keys(&self, key: &VolumeKey) -> Result<VolumeKeys, FsError> {
        VolumeKeys::derive(key, self.volume_id, self.mode, self.chunk_size)
    }

    /// The 64 header bytes, MAC'ed under `keys` (from [`VolumeHeader::keys`]).
    pub fn encode(&self, keys: &VolumeKeys) -> [u8; VOLUME_HEADER_LEN] {
        let mut b = [0u8; VOLUME_HEADER_LEN];
        b[..8].copy_from_slice(VOLUME_MAGIC);
        b[8] = VERSION;
        b[9] = self.mode.byte();
        b[12..16].copy_from_slice(&self.chunk_size.get().to_be_bytes());
        b[16..32].copy_from_slice(&self.volume_id.0);
        let tag = hmac::sign(&keys.header_mac, &b[..32]);
        b[32..].copy_from_slice(tag.as_ref());
        b
    }

    /// Parses and authenticates a volume header; returns it with its keys.
    pub fn decode(bytes: &[u8], key: &VolumeKey) -> Result<(VolumeHeader, VolumeKeys), FsError> {
        const WHAT: &str = "volume header";
        let b: &[u8; VOLUME_HEADER_LEN] = bytes.try_into().map_err(|_| {
            FsError::malformed(
                WHAT,
                format!("{} bytes; expected {VOLUME_HEADER_LEN}", bytes.len()),
            )
        })?;
        if &b[..8] != VOLUME_MAGIC {
            return Err(FsError::malformed(
                WHAT,
                "no VEILVOL magic: not a Veil volume",
            ));
        }
        if b[8] != VERSION {
            return Err(FsError::malformed(
                WHAT,
                format!("version {}; this Veil reads version {VERSION}", b[8]),
            ));
        }
        let mode = Mode::from_byte(b[9], WHAT)?;
        if b[10..12] != [0, 0] {
            return Err(FsError::malformed(WHAT, "reserved bytes are not zero"));
        }
        let chunk_size = ChunkSize::new(u32::from_be_bytes([b[12], b[13], b[14], b[15]]))?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[16..32]);
        let header = VolumeHeader {
            mode,
            chunk_size,
            volume_id: VolumeId(id),
        };
        let keys = header.keys(key)?;
        hmac::verify(&keys.header_mac, &b[..32], &b[32..])
            .map_err(|_| FsError::WrongKeyOrTamperedHeader)?;
        Ok((header, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_refuse_a_wrong_key_or_any_flip() {
        let key = VolumeKey::random().unwrap();
        let h = VolumeHeader::new(Mode::Encrypted, ChunkSize::new(65536).unwrap()).unwrap();
        let bytes = h.encode(&h.keys(&key).unwrap());
        let (back, keys) = VolumeHeader::decode(&bytes, &key).unwrap();
        assert_eq!(back, h);
        assert_eq!(keys.volume_id(), h.volume_id);
        assert_eq!(
            VolumeHeader::decode(&bytes, &VolumeKey::random().unwrap()).unwrap_err(),
            FsError::WrongKeyOrTamperedHeader
        );
        for i in 0..VOLUME_HEADER_LEN * 8 {
            let mut t = bytes;
            t[i / 8] ^= 1 << (i % 8);
            assert!(VolumeHeader::decode(&t, &key).is_err(), "bit {i}");
        }
        assert!(VolumeHeader::decode(&bytes[..63], &key).is_err());
    }

    #[test]
    fn chunk_sizes_are_checked() {
        assert!(ChunkSize::new(4096).is_ok());
        assert!(ChunkSize::new(1 << 20).is_ok());
        for bad in [0, 2048, 5000, 1 << 21] {
            assert!(ChunkSize::new(bad).is_err(), "{bad}");
        }
    }
}
