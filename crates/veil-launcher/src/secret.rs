use std::fmt;

use zeroize::Zeroize;

use crate::sys::Mapping;

/// Bytes that may carry secrets: kept in their own anonymous mapping, marked
/// `MADV_DONTDUMP` (never in a core dump), locked in memory where the limit
/// allows (never swapped), zeroized before the mapping is released. `Debug`
/// prints only the length.
///
/// The capacity is fixed when the buffer is made, so the bytes never move and
/// no copy is left behind by a reallocation.
pub struct SecretBuf {
    map: Mapping,
    len: usize,
}

impl SecretBuf {
    /// An empty buffer that can hold `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> std::io::Result<Self> {
        Ok(SecretBuf {
            map: Mapping::new(capacity.max(1))?,
            len: 0,
        })
    }

    /// A buffer holding a copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> std::io::Result<Self> {
        let mut b = SecretBuf::with_capacity(bytes.len())?;
        b.push(bytes)?;
        Ok(b)
    }

    /// Appends `bytes`; fails (leaving the buffer unchanged) when they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let end = self
            .len
            .checked_add(bytes.len())
            .filter(|&e| e <= self.map.len())
            .ok_or_else(|| std::io::Error::other("secret buffer capacity exceeded"))?;
        if let Some(dst) = self.map.as_mut_slice().get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
        Ok(())
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.map.as_slice().get(..self.len).unwrap_or_default()
    }

    /// How many bytes it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        self.map.as_mut_slice().zeroize();
    }
}

impl fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBuf(<{} bytes redacted>)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_pushed_and_refuses_overflow() {
        let mut b = SecretBuf::with_capacity(8).unwrap();
        b.push(b"canary").unwrap();
        b.push(b"!!").unwrap();
        assert_eq!(b.as_slice(), b"canary!!");
        // Capacity is rounded up to a page, never below what was asked.
        let mut exact = SecretBuf::copy_of(&[1u8; 4096]).unwrap();
        assert!(exact.push(&[2]).is_err());
        assert_eq!(exact.len(), 4096);
        assert!(!format!("{b:?}").contains("canary"));
        assert!(SecretBuf::with_capacity(0).unwrap().is_empty());
    }

    #[test]
    fn is_marked_dontdump() {
        let b = SecretBuf::copy_of(b"canary-dontdump").unwrap();
        let addr = b.map.addr();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_region = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        in_region = lo <= addr && addr < hi;
                        continue;
                    }
                }
            }
            if in_region {
                if let Some(f) = line.strip_prefix("VmFlags:") {
                    flags = Some(f.to_owned());
                }
            }
        }
        let flags = flags.expect("the mapping is in smaps");
        assert!(flags.split_whitespace().any(|f| f == "dd"), "{flags}");
    }
}
