//! The sealing key and the per-purpose subkeys derived from it.

use std::io::Write as _;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, hkdf};
use zeroize::{Zeroize, Zeroizing};

use crate::error::StoreError;

/// HKDF salt shared by every derivation of this format version.
const HKDF_SALT: &[u8] = b"veil-store-v1";
/// HKDF info for the AES-256-GCM key that seals records.
pub(crate) const INFO_RECORD_SEAL: &[u8] = b"veil-store-v1 record seal";
/// HKDF info for the Ed25519 seed of the default audit signer.
pub(crate) const INFO_AUDIT_SIGN: &[u8] = b"veil-store-v1 audit signing";

/// The 32-byte root key of a store. Every key the store uses is derived from it with
/// HKDF-SHA256 and a distinct label; the root key itself never keys a cipher.
///
/// Zeroized on drop; `Debug` prints nothing of it.
#[derive(Clone, Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SealingKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl SealingKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Result<SealingKey, StoreError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Random)?;
        Ok(SealingKey { bytes })
    }

    /// A key from 32 bytes, for example derived by the TEE (SEV-SNP `MSG_KEY_REQ`, TDX or SGX
    /// sealing key). The caller should zeroize its copy.
    pub fn from_bytes(bytes: [u8; 32]) -> SealingKey {
        SealingKey { bytes }
    }

    /// A key from a slice that must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<SealingKey, StoreError> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StoreError::KeyLength { len: bytes.len() })?;
        Ok(SealingKey { bytes })
    }

    /// Load the key from `path`, or create it there (mode 0600, written atomically) if the file
    /// does not exist. For `--dev` only: a key file on the host gives no protection against the
    /// host.
    ///
    /// The file holds 64 hex digits and a newline. A file readable by group or others is refused.
    pub fn load_or_create_key_file(path: impl AsRef<Path>) -> Result<SealingKey, StoreError> {
        let path = path.as_ref();
        match Self::load_key_file(path) {
            Err(StoreError::KeyFileIo { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let key = Self::generate()?;
                match key.create_key_file(path) {
                    Ok(()) => Ok(key),
                    // Another process created it first: use theirs.
                    Err(StoreError::KeyFileIo { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Self::load_key_file(path)
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Load the key from an existing key file (see [`SealingKey::load_or_create_key_file`]).
    pub fn load_key_file(path: impl AsRef<Path>) -> Result<SealingKey, StoreError> {
        let path = path.as_ref();
        let io = |source| StoreError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let invalid = |reason| StoreError::KeyFileInvalid {
            path: path.to_owned(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StoreError::KeyFilePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        if meta.len() > 128 {
            return Err(invalid("longer than a key"));
        }
        let text = Zeroizing::new(std::fs::read(path).map_err(io)?);
        let hex_part = text.strip_suffix(b"\n").unwrap_or(&text);
        if hex_part.len() != 64 {
            return Err(invalid("expected 64 hex digits"));
        }
        let mut bytes = [0u8; 32];
        if hex::decode_to_slice(hex_part, &mut bytes).is_err() {
            bytes.zeroize();
            return Err(invalid("not hex"));
        }
        Ok(SealingKey { bytes })
    }

    /// Writes this key to a new key file (mode 0600, created atomically);
    /// fails if the file exists. Used when a CAS is unsealed from recovery
    /// shares.
    pub fn write_key_file(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        self.create_key_file(path.as_ref())
    }

    /// A copy of the raw key, for splitting it into recovery shares and
    /// nothing else: whoever holds these bytes can read the whole store.
    pub fn dangerous_raw_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.bytes)
    }

    fn create_key_file(&self, path: &Path) -> Result<(), StoreError> {
        let io = |source| StoreError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp_name);
        let mut text = Zeroizing::new(hex::encode(self.bytes).into_bytes());
        text.push(b'\n');
        let _ = std::fs::remove_file(&tmp);
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(&text).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        // hard_link fails if `path` exists, so a concurrent creator's key is never replaced.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        linked.map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                d.sync_all().map_err(io)?;
            }
        }
        Ok(())
    }

    /// Derive `out.len()` bytes for `info` with HKDF-SHA256.
    pub(crate) fn derive(&self, info: &[u8], out: &mut [u8]) -> Result<(), StoreError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.bytes);
        let info = [info];
        prk.expand(&info, Len(out.len()))
            .and_then(|okm| okm.fill(out))
            .map_err(|_| StoreError::Random)
    }

    /// The AES-256-GCM key for records.
    pub(crate) fn record_key(&self) -> Result<aead::LessSafeKey, StoreError> {
        let mut k = Zeroizing::new([0u8; 32]);
        self.derive(INFO_RECORD_SEAL, &mut k[..])?;
        let unbound =
            aead::UnboundKey::new(&aead::AES_256_GCM, &k[..]).map_err(|_| StoreError::Random)?;
        Ok(aead::LessSafeKey::new(unbound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_nothing() {
        let k = SealingKey::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "SealingKey(..)");
    }

    #[test]
    fn subkeys_differ_by_purpose() {
        let k = SealingKey::from_bytes([7; 32]);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        k.derive(INFO_RECORD_SEAL, &mut a).unwrap();
        k.derive(INFO_AUDIT_SIGN, &mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [7; 32]);
    }

    #[test]
    fn key_file_roundtrip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sealing.key");
        let k1 = SealingKey::load_or_create_key_file(&p).unwrap();
        let k2 = SealingKey::load_or_create_key_file(&p).unwrap();
        assert_eq!(k1.bytes, k2.bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                SealingKey::load_key_file(&p),
                Err(StoreError::KeyFilePermissions { .. })
            ));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&p, b"abc").unwrap();
        assert!(matches!(
            SealingKey::load_key_file(&p),
            Err(StoreError::KeyFileInvalid { .. })
        ));
    }
}
