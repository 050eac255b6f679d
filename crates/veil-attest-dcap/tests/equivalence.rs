//! The cached path (collateral cache + signature memo) against plain
//! dcap-qvl: identical status and advisories on every vector, and every
//! mutation rejected by both.
//!
//! Three paths are compared on each case:
//! * dcap-qvl alone: `QuoteVerifier::new_prod().allow_debug(true).verify`;
//! * Veil without cache (`without_cache`): Veil's checks, then dcap-qvl as shipped;
//! * Veil with cache (`new`), one verifier kept warm across all cases, so
//!   later cases run with the memo full of earlier cases' signatures.
//!
//! The two Veil paths must return exactly the same `Result`. Where dcap-qvl
//! alone accepts, Veil must accept with the same status and advisories,
//! except for the quotes Veil's extra form checks refuse (non-zero bytes
//! after the quote, a PCK chain with unauthenticated bytes), which are listed.

// Test helpers panic on purpose when a vector does not behave.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use dcap_qvl::QuoteCollateralV3;
use veil_attest::{TcbStatus, Tee, Time, Verifier, VerifyError};
use veil_attest_dcap::{SgxVerifier, TdxVerifier};

/// dcap-qvl's own verdict: (status, advisories) or its error text.
type Direct = Result<(String, Vec<String>), String>;
/// Veil's verdict: (status, advisories) or its error.
type Veil = Result<(TcbStatus, Vec<String>), VerifyError>;

struct Paths {
    sgx_cached: SgxVerifier,
    sgx_plain: SgxVerifier,
    tdx_cached: TdxVerifier,
    tdx_plain: TdxVerifier,
}

impl Paths {
    fn new() -> Self {
        Paths {
            sgx_cached: SgxVerifier::new(),
            sgx_plain: SgxVerifier::without_cache(),
            tdx_cached: TdxVerifier::new(),
            tdx_plain: TdxVerifier::without_cache(),
        }
    }

    /// Runs all three paths; returns (dcap-qvl's result, Veil's result).
    fn run(&self, tee: Tee, quote: &[u8], json: &[u8], t: u64) -> (Direct, Veil) {
        let at = Time::from_unix(t);
        let (cached, plain): (&dyn Verifier, &dyn Verifier) = match tee {
            Tee::Sgx => (&self.sgx_cached, &self.sgx_plain),
            _ => (&self.tdx_cached, &self.tdx_plain),
        };
        let a = cached.verify(quote, &col(json), at);
        let b = plain.verify(quote, &col(json), at);
        assert_eq!(a, b, "cached and uncached paths differ");
        let direct = match serde_json::from_slice::<QuoteCollateralV3>(json) {
            Ok(c) => dcap_qvl::verify::QuoteVerifier::new_prod()
                .allow_debug(true)
                .verify(quote, &c, t)
                .map(|r| (r.status, r.advisory_ids))
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(e.to_string()),
        };
        (direct, a.map(|c| (c.tcb_status, c.advisories)))
    }

    /// Asserts the paths agree on this case; returns whether Veil accepted.
    fn agree(&self, tee: Tee, quote: &[u8], json: &[u8], t: u64, veil_stricter: bool) -> bool {
        let (direct, veil) = self.run(tee, quote, json, t);
        match (&direct, &veil) {
            (Ok((status, advisories)), Ok((s, a))) => {
                assert_eq!(status, s.as_str());
                assert_eq!(advisories, a);
                true
            }
            (Err(_), Err(_)) => false,
            (Ok(_), Err(e)) if veil_stricter => {
                assert!(matches!(e, VerifyError::Malformed { .. }), "{e}");
                false
            }
            _ => panic!("dcap-qvl alone: {direct:?}; Veil: {veil:?}"),
        }
    }
}

#[test]
fn all_vectors_give_identical_results() {
    let p = Paths::new();
    // Twice, so the second round runs from a warm cache.
    for _ in 0..2 {
        assert!(p.agree(Tee::Sgx, SGX_QUOTE, SGX_COLLATERAL, SGX_T, false));
        assert!(p.agree(Tee::Tdx, TDX_QUOTE, TDX_COLLATERAL, TDX_T, false));
        assert!(!p.agree(Tee::Tdx, TDX5_QUOTE, TDX5_COLLATERAL, TDX5_T, false));
        assert!(!p.agree(
            Tee::Tdx,
            &GOTDX_QUOTE[..GOTDX_QUOTE_LEN],
            GOTDX_COLLATERAL,
            GOTDX_T,
            false
        ));
        // dcap-qvl ignores the 39 bytes of text after go-tdx-guest's quote; Veil refuses them.
        assert!(!p.agree(Tee::Tdx, GOTDX_QUOTE, GOTDX_COLLATERAL, GOTDX_T, true));
        // Window edges.
        for t in [SGX_T - 20 * DAY, SGX_T + 16 * DAY, SGX_T + 365 * DAY] {
            assert!(!p.agree(Tee::Sgx, SGX_QUOTE, SGX_COLLATERAL, t, false));
        }
        // Collateral of the other TEE and of another platform.
        assert!(!p.agree(Tee::Sgx, SGX_QUOTE, TDX_COLLATERAL, SGX_T, false));
        assert!(!p.agree(Tee::Tdx, TDX_QUOTE, TDX5_COLLATERAL, TDX5_T, false));
    }
    // The production vectors also give dcap-qvl's default `verify` result.
    let c: QuoteCollateralV3 = serde_json::from_slice(SGX_COLLATERAL).unwrap();
    let r = dcap_qvl::verify::verify(SGX_QUOTE, &c, SGX_T).unwrap();
    let v = p
        .sgx_cached
        .verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap();
    assert_eq!(
        (r.status.as_str(), &r.advisory_ids),
        (v.tcb_status.as_str(), &v.advisories)
    );
    let c: QuoteCollateralV3 = serde_json::from_slice(TDX_COLLATERAL).unwrap();
    let r = dcap_qvl::verify::verify(TDX_QUOTE, &c, TDX_T).unwrap();
    let v = p
        .tdx_cached
        .verify(TDX_QUOTE, &col(TDX_COLLATERAL), Time::from_unix(TDX_T))
        .unwrap();
    assert_eq!(
        (r.status.as_str(), &r.advisory_ids),
        (v.tcb_status.as_str(), &v.advisories)
    );
    // The window-edge cases after the span evicted the entry (expiry is
    // honoured); the last verifications parsed it again, and this one hits.
    p.sgx_cached
        .verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap();
    let stats = p.sgx_cached.cache().unwrap().stats();
    assert!(stats.expired >= 2, "{stats:?}");
    assert!(stats.hits > 0 && stats.signature_hits > 0, "{stats:?}");
}

/// Single-bit flips at evenly spread offsets: every region of the quote.
fn flips(quote: &[u8], step: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..quote.len()).step_by(step).map(move |i| {
        let mut m = quote.to_vec();
        m[i] ^= 1 << (i % 8);
        m
    })
}

#[test]
fn every_mutation_is_rejected_by_every_path() {
    let p = Paths::new();
    // Warm the caches so the memo holds the valid quotes' signatures.
    assert!(p.agree(Tee::Sgx, SGX_QUOTE, SGX_COLLATERAL, SGX_T, false));
    assert!(p.agree(Tee::Tdx, TDX_QUOTE, TDX_COLLATERAL, TDX_T, false));
    let mut stricter = 0;
    for m in flips(SGX_QUOTE, 131) {
        let (direct, veil) = p.run(Tee::Sgx, &m, SGX_COLLATERAL, SGX_T);
        assert!(veil.is_err(), "Veil accepted a mutated SGX quote");
        stricter += usize::from(direct.is_ok());
    }
    let tdx = &TDX_QUOTE[..4936];
    for m in flips(tdx, 137) {
        let (direct, veil) = p.run(Tee::Tdx, &m, TDX_COLLATERAL, TDX_T);
        assert!(veil.is_err(), "Veil accepted a mutated TDX quote");
        stricter += usize::from(direct.is_ok());
    }
    // dcap-qvl alone accepts the flips that land in the unauthenticated
    // parts of the PCK chain (line breaks, the root's copy); Veil refuses them.
    assert!(stricter > 0);
    // Truncations and an extension.
    for len in [0, 48, 432, 632, 1000, 2000, 4000, SGX_QUOTE.len() - 1] {
        let (_, veil) = p.run(
            Tee::Sgx,
            &SGX_QUOTE[..len.min(SGX_QUOTE.len())],
            SGX_COLLATERAL,
            SGX_T,
        );
        assert!(veil.is_err());
    }
    let mut longer = SGX_QUOTE.to_vec();
    longer.push(7);
    assert!(!p.agree(Tee::Sgx, &longer, SGX_COLLATERAL, SGX_T, true));
    // The valid quotes still verify on the same warm verifiers.
    assert!(p.agree(Tee::Sgx, SGX_QUOTE, SGX_COLLATERAL, SGX_T, false));
    assert!(p.agree(Tee::Tdx, TDX_QUOTE, TDX_COLLATERAL, TDX_T, false));
}

#[test]
fn tampered_collateral_is_rejected_by_every_path() {
    let p = Paths::new();
    assert!(p.agree(Tee::Sgx, SGX_QUOTE, SGX_COLLATERAL, SGX_T, false));
    let v: serde_json::Value = serde_json::from_slice(SGX_COLLATERAL).unwrap();
    let fields = [
        "tcb_info",
        "tcb_info_signature",
        "qe_identity",
        "qe_identity_signature",
        "root_ca_crl",
        "pck_crl",
        "tcb_info_issuer_chain",
        "pck_crl_issuer_chain",
    ];
    for field in fields {
        let s = v[field].as_str().unwrap();
        // Change one character in the middle, keeping hex hex and base64 base64.
        for at in [s.len() / 3, s.len() / 2, s.len() - 40] {
            let mut t = s.to_owned();
            let c = t.as_bytes()[at];
            let r = match c {
                b'0' => '1',
                b'a'..=b'y' | b'A'..=b'Y' | b'1'..=b'8' => char::from(c + 1),
                _ => continue,
            };
            t.replace_range(at..at + 1, &r.to_string());
            let mut w = v.clone();
            w[field] = serde_json::Value::String(t);
            let json = serde_json::to_vec(&w).unwrap();
            let (direct, veil) = p.run(Tee::Sgx, SGX_QUOTE, &json, SGX_T);
            // The issuer chains carry the root's copy too (never used), and a
            // CRL's unsigned outer bytes; where dcap-qvl ignores a change, so
            // must Veil, with the same result.
            match (&direct, &veil) {
                (Err(_), Err(_)) => {}
                (Ok((st, adv)), Ok((s2, a2))) => {
                    assert_eq!((st.as_str(), adv), (s2.as_str(), a2), "{field}@{at}")
                }
                _ => panic!("{field}@{at}: dcap-qvl alone {direct:?}, Veil {veil:?}"),
            }
        }
    }
}
