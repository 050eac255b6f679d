//! Quotes per second: Veil's SGX/TDX verifiers (with the collateral cache,
//! and without it) beside calling `dcap_qvl::verify::verify` directly for
//! each quote, on the same vectors, in the same run.
//!
//! Run: `env -u RUST_BACKTRACE cargo bench -p veil-attest-dcap`
//!
//! The direct dcap-qvl baseline gets the collateral already deserialized
//! (it is given a `&QuoteCollateralV3`), which favours it: Veil's verifiers
//! take the collateral JSON bytes. After criterion's figures, a plain timed
//! loop prints quotes/second for each and the ratio to the baseline.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dcap_qvl::QuoteCollateralV3;
use veil_attest::{Endorsement, Time, Verifier};
use veil_attest_dcap::{SgxVerifier, TdxVerifier};

const SGX_QUOTE: &[u8] = include_bytes!("../testdata/dcapqvl_sgx_quote.bin");
const SGX_COLLATERAL: &[u8] = include_bytes!("../testdata/dcapqvl_sgx_quote.collateral.json");
const SGX_T: u64 = 1751624924;
const TDX_QUOTE: &[u8] = include_bytes!("../testdata/dcapqvl_tdx_quote.bin");
const TDX_COLLATERAL: &[u8] = include_bytes!("../testdata/dcapqvl_tdx_quote.collateral.json");
const TDX_T: u64 = 1751624655;

struct Case {
    name: &'static str,
    quote: &'static [u8],
    json: &'static [u8],
    t: u64,
    cached: Box<dyn Verifier>,
    uncached: Box<dyn Verifier>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "sgx",
            quote: SGX_QUOTE,
            json: SGX_COLLATERAL,
            t: SGX_T,
            cached: Box::new(SgxVerifier::new()),
            uncached: Box::new(SgxVerifier::without_cache()),
        },
        Case {
            name: "tdx",
            quote: TDX_QUOTE,
            json: TDX_COLLATERAL,
            t: TDX_T,
            cached: Box::new(TdxVerifier::new()),
            uncached: Box::new(TdxVerifier::without_cache()),
        },
    ]
}

fn parsed(json: &[u8]) -> QuoteCollateralV3 {
    match serde_json::from_slice(json) {
        Ok(c) => c,
        Err(e) => panic!("bench collateral does not parse: {e}"),
    }
}

fn bench(c: &mut Criterion, cases: &[Case]) {
    for case in cases {
        let collateral = parsed(case.json);
        let endorsements = [Endorsement::DcapCollateral(case.json.to_vec())];
        let at = Time::from_unix(case.t);
        let mut g = c.benchmark_group(case.name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("dcap_qvl_verify_direct", |b| {
            b.iter(|| {
                let r = dcap_qvl::verify::verify(black_box(case.quote), &collateral, case.t);
                assert!(r.is_ok());
            })
        });
        g.bench_function("veil_uncached", |b| {
            b.iter(|| {
                let r = case
                    .uncached
                    .verify(black_box(case.quote), &endorsements, at);
                assert!(r.is_ok());
            })
        });
        g.bench_function("veil_cached", |b| {
            b.iter(|| {
                let r = case.cached.verify(black_box(case.quote), &endorsements, at);
                assert!(r.is_ok());
            })
        });
        g.finish();
    }
}

/// Verifications per second of `f` over about `budget`.
fn rate(budget: Duration, mut f: impl FnMut() -> bool) -> f64 {
    // Warm up (fills the cache for the cached verifier).
    for _ in 0..3 {
        assert!(f());
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        assert!(f());
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn summary(cases: &[Case]) {
    println!();
    println!("quotes/second (timed loop, 2 s each, single thread):");
    println!(
        "{:<5} {:>22} {:>15} {:>15} {:>16} {:>18}",
        "tee",
        "dcap_qvl direct",
        "veil uncached",
        "veil cached",
        "cached/direct",
        "uncached/direct"
    );
    for case in cases {
        let collateral = parsed(case.json);
        let endorsements = [Endorsement::DcapCollateral(case.json.to_vec())];
        let at = Time::from_unix(case.t);
        let budget = Duration::from_secs(2);
        let direct = rate(budget, || {
            dcap_qvl::verify::verify(black_box(case.quote), &collateral, case.t).is_ok()
        });
        let uncached = rate(budget, || {
            case.uncached
                .verify(black_box(case.quote), &endorsements, at)
                .is_ok()
        });
        let cached = rate(budget, || {
            case.cached
                .verify(black_box(case.quote), &endorsements, at)
                .is_ok()
        });
        println!(
            "{:<5} {:>22.0} {:>15.0} {:>15.0} {:>15.2}x {:>17.2}x",
            case.name,
            direct,
            uncached,
            cached,
            cached / direct,
            uncached / direct
        );
    }
}

fn main() {
    let cases = cases();
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    bench(&mut c, &cases);
    c.final_summary();
    summary(&cases);
}
