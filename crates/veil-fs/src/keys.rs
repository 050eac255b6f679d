use std::fmt;

use ring::{aead, hkdf, hmac};
use zeroize::Zeroizing;

use crate::volume::{ChunkSize, Mode};
use crate::FsError;

/// A volume's 16-byte random identifier (the HKDF salt).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VolumeId(pub [u8; 16]);

/// A file's 16-byte random identifier, never reused in a volume.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub [u8; 16]);

impl FileId {
    /// A fresh random id.
    pub fn random() -> Result<FileId, FsError> {
        Ok(FileId(random_array()?))
    }
}

macro_rules! hex_fmt {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), hex::encode(self.0))
            }
        }
    };
}
hex_fmt!(VolumeId);
hex_fmt!(FileId);

pub(crate) fn random_array<const N: usize>() -> Result<[u8; N], FsError> {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| FsError::Random)?;
    Ok(b)
}

/// The 32-byte volume key. Zeroized on drop; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct VolumeKey(Zeroizing<[u8; 32]>);

impl VolumeKey {
    /// The key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        VolumeKey(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn random() -> Result<Self, FsError> {
        Ok(VolumeKey(Zeroizing::new(random_array()?)))
    }

    /// The key's bytes (to store it sealed, or hand it to the CAS).
    pub fn dangerous_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VolumeKey(<redacted>)")
    }
}

/// HKDF output length marker for ring.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

const HEADER_INFO: &[u8] = b"veil-fs-v1 header";
const CONTENT_INFO: &[u8] = b"veil-fs-v1 content";
const MANIFEST_INFO: &[u8] = b"veil-fs-v1 manifest";

/// Every key of one volume, derived from the volume key and id (spec §1).
pub struct VolumeKeys {
    pub(crate) volume_id: VolumeId,
    pub(crate) mode: Mode,
    pub(crate) chunk_size: ChunkSize,
    prk: hkdf::Prk,
    pub(crate) header_mac: hmac::Key,
    pub(crate) manifest: aead::LessSafeKey,
}

impl fmt::Debug for VolumeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VolumeKeys")
            .field("volume_id", &self.volume_id)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) {
    // A 32-byte output is far below HKDF-SHA256's 255 × 32 limit, so these
    // cannot fail.
    if let Ok(okm) = prk.expand(info, Len(out.len())) {
        let _ = okm.fill(out);
    }
}

impl VolumeKeys {
    pub(crate) fn derive(
        key: &VolumeKey,
        volume_id: VolumeId,
        mode: Mode,
        chunk_size: ChunkSize,
    ) -> Result<Self, FsError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &volume_id.0).extract(&key.0[..]);
        let mut k = Zeroizing::new([0u8; 32]);
        expand(&prk, &[HEADER_INFO], &mut k[..]);
        let header_mac = hmac::Key::new(hmac::HMAC_SHA256, &k[..]);
        expand(&prk, &[MANIFEST_INFO], &mut k[..]);
        let manifest = aead_key(&k)?;
        Ok(VolumeKeys {
            volume_id,
            mode,
            chunk_size,
            prk,
            header_mac,
            manifest,
        })
    }

    /// The volume id.
    pub fn volume_id(&self) -> VolumeId {
        self.volume_id
    }

    /// The volume's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The volume's chunk size.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// The content key of one file.
    pub(crate) fn content_key(&self, file_id: &FileId) -> Result<aead::LessSafeKey, FsError> {
        let mut k = Zeroizing::new([0u8; 32]);
        expand(&self.prk, &[CONTENT_INFO, &file_id.0], &mut k[..]);
        aead_key(&k)
    }
}

fn aead_key(k: &[u8; 32]) -> Result<aead::LessSafeKey, FsError> {
    aead::UnboundKey::new(&aead::AES_256_GCM, k)
        .map(aead::LessSafeKey::new)
        .map_err(|_| FsError::malformed("key", "AES-256-GCM refused the derived key"))
}
