//! The collateral cache: hits, expiry, capacity, sharing, threads.

// Test helpers panic on purpose when a vector does not behave.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use sha2::{Digest, Sha256};
use veil_attest::{Tee, Time, Verifier, VerifyError};
use veil_attest_dcap::{parse_collateral, CacheKey, CollateralCache, SgxVerifier, TdxVerifier};

#[test]
fn repeated_verifications_hit_the_cache() {
    let v = SgxVerifier::new();
    for _ in 0..4 {
        v.verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
            .unwrap();
    }
    let s = v.cache().unwrap().stats();
    assert_eq!((s.entries, s.misses, s.hits), (1, 1, 3), "{s:?}");
    // From the second call on, the collateral's own signatures and the PCK
    // chain come from the memo; the quote's two signatures never do.
    assert!(s.signature_hits >= 3 * 5, "{s:?}");
    let digest: [u8; 32] = Sha256::digest(SGX_COLLATERAL).into();
    assert_eq!(
        v.cache().unwrap().keys(),
        [CacheKey {
            tee: Tee::Sgx,
            fmspc: [0x00, 0xA0, 0x67, 0x11, 0x00, 0x00],
            sha256: digest,
        }]
    );
}

#[test]
fn expired_collateral_is_evicted_and_named() {
    let v = SgxVerifier::new();
    v.verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap();
    let c = parse_collateral(SGX_COLLATERAL).unwrap();
    let (_, end) = c.validity();
    // One second past the earliest next update (the QE identity's).
    let e = v
        .verify(
            SGX_QUOTE,
            &col(SGX_COLLATERAL),
            Time::from_unix(end.unix() + 1),
        )
        .unwrap_err();
    assert!(matches!(e, VerifyError::Expired { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("QE identity expired at 2025-07-19T10:01:18Z"),
        "{e}"
    );
    let s = v.cache().unwrap().stats();
    assert_eq!((s.entries, s.expired), (0, 1), "{s:?}");
    // Before the span, the entry stays (a caller may verify at an older time).
    v.verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap();
    let e = v
        .verify(
            SGX_QUOTE,
            &col(SGX_COLLATERAL),
            Time::from_unix(SGX_T - 30 * DAY),
        )
        .unwrap_err();
    assert!(matches!(e, VerifyError::NotYetValid { .. }), "{e}");
    assert_eq!(v.cache().unwrap().len(), 1);
}

#[test]
fn a_full_cache_drops_the_least_recently_used() {
    let cache = Arc::new(CollateralCache::new(1));
    let sgx = SgxVerifier::with_cache(cache.clone());
    let tdx = TdxVerifier::with_cache(cache.clone());
    sgx.verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap();
    tdx.verify(TDX_QUOTE, &col(TDX_COLLATERAL), Time::from_unix(TDX_T))
        .unwrap();
    let s = cache.stats();
    assert_eq!((s.entries, s.evicted), (1, 1), "{s:?}");
    assert_eq!(cache.keys()[0].tee, Tee::Tdx);
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn a_shared_cache_serves_both_verifiers_and_checks_the_tee() {
    let cache = Arc::new(CollateralCache::default());
    let sgx = SgxVerifier::with_cache(cache.clone());
    let tdx = TdxVerifier::with_cache(cache.clone());
    sgx.verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap();
    tdx.verify(TDX_QUOTE, &col(TDX_COLLATERAL), Time::from_unix(TDX_T))
        .unwrap();
    assert_eq!(cache.len(), 2);
    // Cached SGX collateral is still refused for a TDX quote.
    let e = tdx
        .verify(TDX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(TDX_T))
        .unwrap_err();
    assert!(matches!(e, VerifyError::Mismatch { .. }), "{e}");
}

#[test]
fn verifiers_work_from_many_threads() {
    let sgx = Arc::new(SgxVerifier::new());
    let tdx = Arc::new(TdxVerifier::with_cache(sgx.cache().unwrap().clone()));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let sgx = sgx.clone();
            let tdx = tdx.clone();
            std::thread::spawn(move || {
                for _ in 0..3 {
                    if i % 2 == 0 {
                        let c = sgx
                            .verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
                            .unwrap();
                        assert_eq!(c.advisories.len(), 2);
                    } else {
                        let c = tdx
                            .verify(TDX_QUOTE, &col(TDX_COLLATERAL), Time::from_unix(TDX_T))
                            .unwrap();
                        assert!(c.advisories.is_empty());
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = sgx.cache().unwrap().stats();
    assert_eq!(s.entries, 2, "{s:?}");
    assert_eq!(s.hits + s.misses, 12, "{s:?}");
}
