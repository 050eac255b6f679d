//! The operating system's CSPRNG as a `rand_core` 0.10 generator that never
//! panics: a failure is remembered and reported after the operation, whose
//! output is then discarded (fail closed).

use std::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};

/// `getrandom` behind an infallible interface; check [`OsRng::failed`]
/// before using anything made with it.
#[derive(Debug, Default)]
pub(crate) struct OsRng {
    failed: bool,
}

impl OsRng {
    /// Whether any request failed (its bytes were zeros).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Fills `dst`, or reports [`crate::RecoveryError::Random`].
    pub(crate) fn fill(dst: &mut [u8]) -> Result<(), crate::RecoveryError> {
        getrandom::fill(dst).map_err(|_| crate::RecoveryError::Random)
    }
}

impl TryRng for OsRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        if getrandom::fill(dst).is_err() {
            self.failed = true;
            dst.fill(0);
        }
        Ok(())
    }
}

impl TryCryptoRng for OsRng {}
