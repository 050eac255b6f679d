//! A memo of ECDSA signatures that verified, plugged into dcap-qvl.
//!
//! dcap-qvl lets its caller choose the crypto provider through
//! [`dcap_qvl::config::Config`]. [`MemoConfig`] is dcap-qvl's default
//! configuration (same X.509 parser, same signature encoder, same ECDSA and
//! SHA implementations) except that its signature algorithm first looks the
//! exact `(public key, message, signature)` triple up in the [`SigMemo`] that
//! the calling thread has activated, and records the triple there after the
//! real algorithm accepted it.
//!
//! Why this is sound: ECDSA verification is a deterministic, pure function of
//! the public key, the message and the signature. Returning the remembered
//! result of an earlier call with the very same inputs (keyed by SHA-256 over
//! all three, length-prefixed and domain-separated) cannot change any outcome.
//! Only successes are remembered; a failure is always recomputed. Everything
//! else dcap-qvl does — parsing, certificate path building, validity dates,
//! CRL checks, TCB matching, QE identity policy — runs unchanged on every call.
//!
//! What it saves: with one collateral set, every quote re-verifies the same
//! collateral signatures (root CA CRL, TCB signing certificate, TCB info, QE
//! identity) and, per platform, the same PCK chain and PCK CRL signatures.
//! Those are remembered. The quote's own two signatures — the QE report
//! signed by the PCK key, and the header and report body signed by the
//! attestation key — are new for every quote: the verifier names those two
//! messages when it activates the memo, and they are always verified and
//! never remembered, so a quote verified twice costs the same as two quotes.
//!
//! The memo is scoped, not global: the verifier activates the memo of the
//! cached collateral entry for the duration of one dcap-qvl call on the current
//! thread ([`activate`]), so remembered signatures disappear with the entry
//! when its collateral expires. With no active memo the algorithm is exactly
//! dcap-qvl's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use dcap_qvl::config::{Config, CryptoProvider};
use rustls_pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};
use sha2::{Digest, Sha256};

/// dcap-qvl's default configuration, whose choices [`MemoConfig`] copies.
type Default = dcap_qvl::configs::DefaultConfig;
type DefaultCrypto = <Default as Config>::Crypto;

/// dcap-qvl's default configuration with a memoizing signature algorithm.
pub(crate) struct MemoConfig;

impl Config for MemoConfig {
    type X509 = <Default as Config>::X509;
    type SigEncoder = <Default as Config>::SigEncoder;
    type Crypto = MemoCrypto;
}

/// The crypto provider of [`MemoConfig`]: dcap-qvl's default hashes and a
/// memoizing wrapper around its default ECDSA P-256 algorithm.
pub(crate) struct MemoCrypto;

impl CryptoProvider for MemoCrypto {
    fn sig_algo() -> &'static dyn SignatureVerificationAlgorithm {
        &MEMO_ECDSA_P256_SHA256
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        DefaultCrypto::sha256(data)
    }

    fn sha384(data: &[u8]) -> [u8; 48] {
        DefaultCrypto::sha384(data)
    }
}

static MEMO_ECDSA_P256_SHA256: MemoAlgorithm = MemoAlgorithm;

struct MemoAlgorithm;

impl fmt::Debug for MemoAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Memo({:?})", DefaultCrypto::sig_algo())
    }
}

impl SignatureVerificationAlgorithm for MemoAlgorithm {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let inner = DefaultCrypto::sig_algo();
        let Some(active) = active() else {
            return inner.verify_signature(public_key, message, signature);
        };
        if active.fresh.iter().any(|m| m.as_slice() == message) {
            return inner.verify_signature(public_key, message, signature);
        }
        let key = memo_key(inner, public_key, message, signature);
        if active.memo.remembers(&key) {
            return Ok(());
        }
        inner.verify_signature(public_key, message, signature)?;
        active.memo.remember(key);
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        DefaultCrypto::sig_algo().public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        DefaultCrypto::sig_algo().signature_alg_id()
    }

    fn fips(&self) -> bool {
        DefaultCrypto::sig_algo().fips()
    }
}

/// SHA-256 over a domain tag, the algorithm identifiers and the three inputs,
/// each length-prefixed so no two different triples share an encoding.
fn memo_key(
    alg: &dyn SignatureVerificationAlgorithm,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"veil-dcap-signature-memo-v1");
    for part in [
        alg.public_key_alg_id().as_ref(),
        alg.signature_alg_id().as_ref(),
        public_key,
        message,
        signature,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Signatures that verified, with a bound on how many are kept.
///
/// When full, the least recently used half is dropped: the collateral's own
/// signatures are used by every verification and so stay, while the PCK
/// chains of platforms not seen lately go.
pub(crate) struct SigMemo {
    capacity: usize,
    inner: Mutex<MemoInner>,
}

#[derive(Default)]
struct MemoInner {
    last_used: HashMap<[u8; 32], u64>,
    clock: u64,
    hits: u64,
    misses: u64,
}

impl fmt::Debug for SigMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (len, hits, misses) = self.stats();
        f.debug_struct("SigMemo")
            .field("capacity", &self.capacity)
            .field("len", &len)
            .field("hits", &hits)
            .field("misses", &misses)
            .finish()
    }
}

impl SigMemo {
    pub(crate) fn new(capacity: usize) -> Self {
        SigMemo {
            capacity: capacity.max(2),
            inner: Mutex::new(MemoInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoInner> {
        // The memo holds plain data that is consistent after every statement;
        // a panic elsewhere while it was locked leaves nothing half-done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remembers(&self, key: &[u8; 32]) -> bool {
        let mut m = self.lock();
        m.clock = m.clock.wrapping_add(1);
        let now = m.clock;
        match m.last_used.get_mut(key) {
            Some(t) => {
                *t = now;
                m.hits = m.hits.saturating_add(1);
                true
            }
            None => {
                m.misses = m.misses.saturating_add(1);
                false
            }
        }
    }

    fn remember(&self, key: [u8; 32]) {
        let mut m = self.lock();
        if m.last_used.len() >= self.capacity {
            let mut ticks: Vec<u64> = m.last_used.values().copied().collect();
            ticks.sort_unstable();
            let cut = ticks.get(ticks.len() / 2).copied().unwrap_or(u64::MAX);
            m.last_used.retain(|_, t| *t >= cut);
        }
        m.clock = m.clock.wrapping_add(1);
        let now = m.clock;
        m.last_used.insert(key, now);
    }

    /// (signatures remembered, lookups that hit, lookups that missed).
    pub(crate) fn stats(&self) -> (usize, u64, u64) {
        let m = self.lock();
        (m.last_used.len(), m.hits, m.misses)
    }
}

/// What a thread has activated: the memo, and the messages whose signatures
/// must always be verified afresh.
struct Active {
    memo: Arc<SigMemo>,
    fresh: Vec<Vec<u8>>,
}

thread_local! {
    static ACTIVE: RefCell<Option<Arc<Active>>> = const { RefCell::new(None) };
}

fn active() -> Option<Arc<Active>> {
    ACTIVE
        .try_with(|a| a.try_borrow().ok().and_then(|m| m.clone()))
        .ok()
        .flatten()
}

/// Makes `memo` the active memo of this thread until the guard drops (also on
/// unwinding); the previously active memo, if any, is restored then.
/// Signatures over any of the `fresh` messages (the quote's own signed data)
/// are verified every time and never remembered.
pub(crate) fn activate(memo: Arc<SigMemo>, fresh: Vec<Vec<u8>>) -> ActiveMemo {
    let now = Arc::new(Active { memo, fresh });
    let previous = ACTIVE
        .try_with(|a| a.try_borrow_mut().ok().and_then(|mut m| m.replace(now)))
        .ok()
        .flatten();
    ActiveMemo { previous }
}

/// Restores the previously active memo when dropped.
pub(crate) struct ActiveMemo {
    previous: Option<Arc<Active>>,
}

impl Drop for ActiveMemo {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = ACTIVE.try_with(|a| {
            if let Ok(mut m) = a.try_borrow_mut() {
                *m = previous;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_keeps_hot_entries_and_drops_cold_ones() {
        let memo = SigMemo::new(8);
        let hot = [1u8; 32];
        memo.remember(hot);
        for i in 0..100u8 {
            assert!(memo.remembers(&hot));
            memo.remember([i.wrapping_add(2); 32]);
        }
        assert!(memo.remembers(&hot));
        let (len, _, _) = memo.stats();
        assert!(len <= 8, "{len}");
        assert!(!memo.remembers(&[2u8; 32]));
    }

    #[test]
    fn activation_is_scoped() {
        assert!(active().is_none());
        let m = Arc::new(SigMemo::new(4));
        {
            let _g = activate(m.clone(), vec![]);
            assert!(active().is_some());
            {
                let m2 = Arc::new(SigMemo::new(4));
                let _g2 = activate(m2.clone(), vec![b"quote".to_vec()]);
                assert!(Arc::ptr_eq(&active().unwrap().memo, &m2));
            }
            assert!(Arc::ptr_eq(&active().unwrap().memo, &m));
        }
        assert!(active().is_none());
    }

    #[test]
    fn keys_separate_inputs() {
        let alg = DefaultCrypto::sig_algo();
        let a = memo_key(alg, b"ab", b"c", b"d");
        let b = memo_key(alg, b"a", b"bc", b"d");
        assert_ne!(a, b);
    }
}
