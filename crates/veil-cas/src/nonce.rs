//! Single-use attestation nonces with a short lifetime.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Never issued, already used, or forgotten after a restart.
    Unknown,
    /// Issued, but its lifetime is over.
    Expired,
}

/// Nonces issued and not yet used.
#[derive(Debug)]
pub struct Nonces {
    ttl: Duration,
    capacity: usize,
    issued: Mutex<HashMap<[u8; 32], Instant>>,
    rng: ring::rand::SystemRandom,
}

impl Nonces {
    /// Nonces valid for `ttl`, at most `capacity` outstanding.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Nonces {
            ttl,
            capacity,
            issued: Mutex::new(HashMap::new()),
            rng: ring::rand::SystemRandom::new(),
        }
    }

    /// The lifetime of a nonce.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a fresh random nonce.
    pub fn issue(&self) -> Result<[u8; 32], ring::error::Unspecified> {
        let mut n = [0u8; 32];
        ring::rand::SecureRandom::fill(&self.rng, &mut n)?;
        let now = Instant::now();
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        if issued.len() >= self.capacity {
            issued.retain(|_, t| now.duration_since(*t) < self.ttl);
        }
        if issued.len() >= self.capacity {
            // Still full of live nonces: drop the oldest rather than refuse.
            if let Some(oldest) = issued.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                issued.remove(&oldest);
            }
        }
        issued.insert(n, now);
        Ok(n)
    }

    /// Uses a nonce: succeeds once per issued nonce within its lifetime.
    pub fn consume(&self, nonce: &[u8; 32]) -> Result<(), NonceError> {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        match issued.remove(nonce) {
            None => Err(NonceError::Unknown),
            Some(t) if t.elapsed() > self.ttl => Err(NonceError::Expired),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_used_once() {
        let n = Nonces::new(Duration::from_secs(60), 10);
        let a = n.issue().unwrap();
        assert_eq!(n.consume(&a), Ok(()));
        assert_eq!(n.consume(&a), Err(NonceError::Unknown));
        assert_eq!(n.consume(&[0; 32]), Err(NonceError::Unknown));
    }

    #[test]
    fn expired_nonces_are_refused() {
        let n = Nonces::new(Duration::from_millis(1), 10);
        let a = n.issue().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(n.consume(&a), Err(NonceError::Expired));
    }

    #[test]
    fn capacity_is_bounded() {
        let n = Nonces::new(Duration::from_secs(60), 3);
        let first = n.issue().unwrap();
        for _ in 0..5 {
            n.issue().unwrap();
        }
        assert_eq!(n.issued.lock().unwrap().len(), 3);
        assert_eq!(n.consume(&first), Err(NonceError::Unknown));
    }
}
