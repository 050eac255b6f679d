//! The collateral cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use veil_attest::{Tee, Time, VerifyError};

use crate::collateral::{self, Collateral};
use crate::memo::SigMemo;

/// How many collateral sets a cache keeps by default: one per FMSPC and TEE
/// a CAS sees, with room for the overlap while Intel reissues them.
pub const DEFAULT_CAPACITY: usize = 64;

/// How many verified signatures one cached collateral set remembers: its own
/// handful, the PCK chains of the platforms seen with it, and room for the
/// per-quote signatures that age out.
const MEMO_CAPACITY: usize = 512;

/// What identifies a cached collateral set: the TEE and FMSPC its TCB info is
/// for, and the SHA-256 of its JSON bytes (which determines the other two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    /// The TEE of the TCB info (`SGX` or `TDX`).
    pub tee: Tee,
    /// The FMSPC of the TCB info.
    pub fmspc: [u8; 6],
    /// SHA-256 of the collateral JSON bytes.
    pub sha256: [u8; 32],
}

/// Counters of a [`CollateralCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Collateral sets held now.
    pub entries: usize,
    /// Lookups answered from the cache (no JSON parsing, no window checks).
    pub hits: u64,
    /// Lookups that parsed the collateral.
    pub misses: u64,
    /// Entries dropped because their collateral expired.
    pub expired: u64,
    /// Entries dropped to stay within capacity.
    pub evicted: u64,
    /// ECDSA verifications answered by the signature memos of the entries held now.
    pub signature_hits: u64,
    /// ECDSA verifications computed while those entries were active.
    pub signature_misses: u64,
}

/// One cached collateral set.
pub(crate) struct CachedCollateral {
    pub(crate) collateral: Collateral,
    /// Latest issueDate/thisUpdate of its dated parts.
    pub(crate) not_before: Time,
    /// Earliest nextUpdate of its dated parts: the entry is dropped after it.
    pub(crate) not_after: Time,
    /// Signatures verified while checking quotes against this collateral.
    pub(crate) memo: Arc<SigMemo>,
}

impl CachedCollateral {
    fn key(&self) -> CacheKey {
        CacheKey {
            tee: self.collateral.tee(),
            fmspc: self.collateral.fmspc(),
            sha256: self.collateral.sha256(),
        }
    }

    fn valid_at(&self, at: Time) -> bool {
        self.not_before <= at && at <= self.not_after
    }
}

struct Slot {
    entry: Arc<CachedCollateral>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<[u8; 32], Slot>,
    clock: u64,
    hits: u64,
    misses: u64,
    expired: u64,
    evicted: u64,
}

/// Parsed and date-checked DCAP collateral, kept until it expires.
///
/// A verifier that holds a cache parses each collateral JSON once and checks
/// its TCB info, QE identity and CRL dates once: later verifications at a
/// time inside the collateral's validity span (latest issue date to earliest
/// next update) reuse the entry. Each entry also carries a memo of the ECDSA
/// signatures that verified while quotes were checked against it (see the
/// crate docs), so the collateral's own signatures and each platform's PCK
/// chain are verified once per collateral set rather than once per quote.
///
/// An entry is dropped when a lookup or insertion happens at a time after its
/// earliest next update ("honouring expiry"), and the least recently used
/// entry is dropped when the cache is full. The cache is safe to share
/// between threads and between an [`crate::SgxVerifier`] and a
/// [`crate::TdxVerifier`].
pub struct CollateralCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl fmt::Debug for CollateralCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollateralCache")
            .field("capacity", &self.capacity)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for CollateralCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl CollateralCache {
    /// A cache holding at most `capacity` collateral sets (at least one).
    pub fn new(capacity: usize) -> Self {
        CollateralCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the map consistent, so a panic on another
        // thread while it held the lock cannot leave a broken entry behind.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counters, and the signature memo figures of the entries held now.
    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        let mut stats = CacheStats {
            entries: inner.slots.len(),
            hits: inner.hits,
            misses: inner.misses,
            expired: inner.expired,
            evicted: inner.evicted,
            signature_hits: 0,
            signature_misses: 0,
        };
        for slot in inner.slots.values() {
            let (_, hits, misses) = slot.entry.memo.stats();
            stats.signature_hits = stats.signature_hits.saturating_add(hits);
            stats.signature_misses = stats.signature_misses.saturating_add(misses);
        }
        stats
    }

    /// The keys of the collateral sets held now, sorted.
    pub fn keys(&self) -> Vec<CacheKey> {
        let mut keys: Vec<CacheKey> = self.lock().slots.values().map(|s| s.entry.key()).collect();
        keys.sort();
        keys
    }

    /// How many collateral sets are held.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// True when no collateral is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry (the counters stay).
    pub fn clear(&self) {
        self.lock().slots.clear();
    }

    /// The collateral of `json` for `tee`, valid at `at`: from the cache, or
    /// parsed, checked and inserted. Fails as [`crate::parse_collateral`],
    /// [`Collateral::check_tee`] and [`Collateral::check_at`] do.
    pub(crate) fn get(
        &self,
        json: &[u8],
        at: Time,
        tee: Tee,
    ) -> Result<Arc<CachedCollateral>, VerifyError> {
        let digest = collateral::digest(json);
        {
            let mut inner = self.lock();
            inner.clock = inner.clock.wrapping_add(1);
            let now = inner.clock;
            let mut expired = false;
            if let Some(slot) = inner.slots.get_mut(&digest) {
                slot.entry.collateral.check_tee(tee)?;
                if slot.entry.valid_at(at) {
                    slot.last_used = now;
                    let entry = slot.entry.clone();
                    inner.hits = inner.hits.saturating_add(1);
                    return Ok(entry);
                }
                // Outside the span: say precisely why.
                let err = slot.entry.collateral.check_at(at).err();
                expired = at > slot.entry.not_after;
                if !expired {
                    if let Some(err) = err {
                        return Err(err);
                    }
                }
            }
            if expired {
                inner.slots.remove(&digest);
                inner.expired = inner.expired.saturating_add(1);
            }
            inner.misses = inner.misses.saturating_add(1);
        }
        // Parse without holding the lock.
        let collateral = collateral::parse_collateral(json)?;
        collateral.check_tee(tee)?;
        collateral.check_at(at)?;
        let (not_before, not_after) = collateral.validity();
        let entry = Arc::new(CachedCollateral {
            collateral,
            not_before,
            not_after,
            memo: Arc::new(SigMemo::new(MEMO_CAPACITY)),
        });
        let mut inner = self.lock();
        inner.clock = inner.clock.wrapping_add(1);
        let now = inner.clock;
        // Drop every entry that has expired by now.
        let before = inner.slots.len();
        inner.slots.retain(|_, s| s.entry.not_after >= at);
        let dropped = before.saturating_sub(inner.slots.len());
        inner.expired = inner.expired.saturating_add(dropped as u64);
        if let Some(slot) = inner.slots.get(&digest) {
            // Another thread inserted it meanwhile: share its memo.
            return Ok(slot.entry.clone());
        }
        while inner.slots.len() >= self.capacity {
            let oldest = inner
                .slots
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    inner.slots.remove(&k);
                    inner.evicted = inner.evicted.saturating_add(1);
                }
                None => break,
            }
        }
        inner.slots.insert(
            digest,
            Slot {
                entry: entry.clone(),
                last_used: now,
            },
        );
        Ok(entry)
    }
}
