//! The sealed record format (see docs/design.md, "Sealed records").
//!
//! ```text
//! record = format (u8, = 1) || generation (u64 BE) || nonce (12 bytes) || ciphertext || tag (16)
//! aad    = "veil-store-v1" || format (u8) || len(table) (u8) || table
//!          || len(key) (u32 BE) || key || generation (u64 BE)
//! ```

use ring::aead::{Aad, LessSafeKey, Nonce};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::SealingKey;

/// The record format version, first byte of every record.
pub(crate) const FORMAT: u8 = 1;
const AAD_DOMAIN: &[u8] = b"veil-store-v1";
/// Bytes before the ciphertext.
pub(crate) const HEADER_LEN: usize = 1 + 8 + 12;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;

pub(crate) struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

fn aad(table: &str, key: &[u8], generation: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_DOMAIN.len() + 2 + table.len() + 4 + key.len() + 8);
    a.extend_from_slice(AAD_DOMAIN);
    a.push(FORMAT);
    // Table names are at most 64 bytes (checked by `Table`); internal names are short.
    a.push(u8::try_from(table.len()).unwrap_or(u8::MAX));
    a.extend_from_slice(table.as_bytes());
    a.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    a.extend_from_slice(key);
    a.extend_from_slice(&generation.to_be_bytes());
    a
}

impl Sealer {
    pub(crate) fn new(key: &SealingKey) -> Result<Sealer, StoreError> {
        Ok(Sealer {
            key: key.record_key()?,
            rng: SystemRandom::new(),
        })
    }

    /// Seal `plain` as the value of `table`/`key`, written in commit `generation`.
    pub(crate) fn seal(
        &self,
        table: &str,
        key: &[u8],
        generation: u64,
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; 12];
        self.rng.fill(&mut nonce).map_err(|_| StoreError::Random)?;
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        out.push(FORMAT);
        out.extend_from_slice(&generation.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(table, key, generation)),
                out.get_mut(HEADER_LEN..).unwrap_or_default(),
            )
            .map_err(|_| StoreError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Open a record of `table`/`key`. Fails with [`StoreError::Tampered`] if it does not
    /// authenticate, or claims a generation newer than `max_generation` (a record spliced in
    /// from a later copy of the file).
    pub(crate) fn open(
        &self,
        table: &str,
        key: &[u8],
        record: &[u8],
        max_generation: u64,
    ) -> Result<(u64, Zeroizing<Vec<u8>>), StoreError> {
        let tampered = || StoreError::tampered(table, key);
        if record.len() < HEADER_LEN + TAG_LEN || record.first() != Some(&FORMAT) {
            return Err(tampered());
        }
        let generation = record
            .get(1..9)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(tampered)?;
        if generation > max_generation {
            return Err(tampered());
        }
        let nonce: [u8; 12] = record
            .get(9..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(tampered)?;
        let mut buf = Zeroizing::new(record.get(HEADER_LEN..).unwrap_or_default().to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(table, key, generation)),
                &mut buf,
            )
            .map_err(|_| tampered())?
            .len();
        buf.truncate(len);
        Ok((generation, buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&SealingKey::from_bytes([1; 32])).unwrap()
    }

    #[test]
    fn roundtrip() {
        let s = sealer();
        let r = s.seal("sessions", b"a", 5, b"hello").unwrap();
        assert_eq!(r.len(), HEADER_LEN + 5 + TAG_LEN);
        let (g, p) = s.open("sessions", b"a", &r, 5).unwrap();
        assert_eq!(g, 5);
        assert_eq!(p.as_slice(), b"hello");
    }

    #[test]
    fn bound_to_table_key_generation_and_future() {
        let s = sealer();
        let r = s.seal("sessions", b"a", 5, b"hello").unwrap();
        assert!(s.open("secrets", b"a", &r, 9).is_err());
        assert!(s.open("sessions", b"b", &r, 9).is_err());
        assert!(s.open("sessions", b"a", &r, 4).is_err());
        let mut g = r.clone();
        g[8] ^= 1; // generation 5 -> 4
        assert!(s.open("sessions", b"a", &g, 9).is_err());
        for i in 0..r.len() {
            let mut t = r.clone();
            t[i] ^= 0x40;
            assert!(
                matches!(
                    s.open("sessions", b"a", &t, u64::MAX),
                    Err(StoreError::Tampered { .. })
                ),
                "byte {i}"
            );
        }
        let other = Sealer::new(&SealingKey::from_bytes([2; 32])).unwrap();
        assert!(other.open("sessions", b"a", &r, 9).is_err());
    }

    #[test]
    fn table_key_boundary_is_unambiguous() {
        // ("ab", "c") and ("a", "bc") must not share AAD.
        assert_ne!(aad("ab", b"c", 0), aad("a", b"bc", 0));
    }
}
