//! Verification throughput per TEE, through the default registry, beside
//! calling `dcap_qvl::verify::verify` directly per quote, in the same run.
//!
//! Run: `env -u RUST_BACKTRACE cargo bench -p veil-verifiers --bench throughput`
//!
//! Each case is warmed up, then run in a timed loop; the figures replace the
//! marked section of `docs/benchmarks.md` (set `VEIL_BENCH_NO_WRITE=1` to
//! only print them).

use std::hint::black_box;
use std::time::{Duration, Instant};

use veil_attest::{Endorsement, Evidence, Registry, Tee, Time};
use veil_attest_sim::{SimPlatformKey, SimStatement};

const DCAP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-attest-dcap/testdata/");
const SNP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-attest-snp/testdata/");
const NITRO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../veil-attest-nitro/testdata/"
);

const WARM_UP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);

fn read(dir: &str, name: &str) -> Vec<u8> {
    match std::fs::read(format!("{dir}{name}")) {
        Ok(b) => b,
        Err(e) => panic!("bench vector {dir}{name}: {e}"),
    }
}

/// Runs `f` in a loop and returns operations per second.
fn per_second(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < MEASURE {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

struct Case {
    label: &'static str,
    tee: Tee,
    evidence: Vec<u8>,
    endorsements: Vec<Endorsement>,
    at: Time,
}

fn main() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        eprintln!(
            "note: RUST_BACKTRACE is set; run with `env -u RUST_BACKTRACE` for comparable figures"
        );
    }
    let sim_key = match SimPlatformKey::generate() {
        Ok(k) => k,
        Err(e) => panic!("sim key: {e}"),
    };
    let sim_ev = sim_key.sign(&SimStatement {
        measurement: [1; 48],
        report_data: veil_attest::ReportData([2; 64]),
        issued_at: Time::from_unix(1_700_000_000),
        debug: false,
    });
    let registry: Registry = veil_verifiers::registry(&veil_verifiers::Options {
        sim_keys: vec![sim_key.public_key()],
    });
    let cases = vec![
        Case {
            label: "SGX quote v3 (collateral cached)",
            tee: Tee::Sgx,
            evidence: read(DCAP, "dcapqvl_sgx_quote.bin"),
            endorsements: vec![Endorsement::DcapCollateral(read(
                DCAP,
                "dcapqvl_sgx_quote.collateral.json",
            ))],
            at: Time::from_unix(1751624924),
        },
        Case {
            label: "TDX quote v4 (collateral cached)",
            tee: Tee::Tdx,
            evidence: read(DCAP, "dcapqvl_tdx_quote.bin"),
            endorsements: vec![Endorsement::DcapCollateral(read(
                DCAP,
                "dcapqvl_tdx_quote.collateral.json",
            ))],
            at: Time::from_unix(1751624655),
        },
        Case {
            label: "SEV-SNP report (VCEK, built-in ARK/ASK)",
            tee: Tee::Snp,
            evidence: read(SNP, "trustee_report_v2.bin"),
            endorsements: vec![Endorsement::Certificates(vec![read(
                SNP,
                "trustee_vcek.der",
            )])],
            at: Time::from_unix(1735689600),
        },
        Case {
            label: "AWS Nitro document",
            tee: Tee::Nitro,
            evidence: read(NITRO, "evervault_valid_doc.cbor"),
            endorsements: vec![],
            at: Time::from_unix(1665651600),
        },
        Case {
            label: "sim evidence",
            tee: Tee::Sim,
            evidence: sim_ev,
            endorsements: vec![],
            at: Time::from_unix(1_700_000_000),
        },
    ];

    let mut rows = Vec::new();
    for case in &cases {
        let evidence = Evidence {
            tee: case.tee,
            bytes: case.evidence.clone(),
        };
        if let Err(e) = registry.verify(&evidence, &case.endorsements, case.at) {
            panic!("{}: does not verify: {e}", case.label);
        }
        let rate = per_second(|| {
            let r = registry.verify(black_box(&evidence), &case.endorsements, case.at);
            black_box(r.is_ok());
        });
        println!("{:<45} {:>10.0} /s", case.label, rate);
        rows.push((case.label, case.tee, rate));
    }

    // The peer: dcap-qvl's one-shot verify per quote, collateral already parsed.
    let mut ratios = Vec::new();
    for (case, label) in cases.iter().take(2).zip(["SGX", "TDX"]) {
        let collateral: dcap_qvl::QuoteCollateralV3 = match &case.endorsements[0] {
            Endorsement::DcapCollateral(json) => match serde_json::from_slice(json) {
                Ok(c) => c,
                Err(e) => panic!("collateral: {e}"),
            },
            _ => unreachable!("dcap cases carry collateral"),
        };
        let direct = per_second(|| {
            let r =
                dcap_qvl::verify::verify(black_box(&case.evidence), &collateral, case.at.unix());
            black_box(r.is_ok());
        });
        let veil = rows.iter().find(|r| r.1 == case.tee).map_or(0.0, |r| r.2);
        println!(
            "{label} dcap_qvl::verify direct {direct:>10.0} /s; Veil/direct = {:.2}x",
            veil / direct
        );
        ratios.push((label, veil, direct));
    }

    let mut md = String::new();
    md.push_str(
        "Command: `env -u RUST_BACKTRACE cargo bench -p veil-verifiers --bench throughput` ",
    );
    md.push_str("(one thread; 0.5 s warm-up, 3 s timed loop per case; written by the bench).\n\n");
    md.push_str("| evidence | verifications/s |\n|---|---|\n");
    for (label, _, rate) in &rows {
        md.push_str(&format!("| {label} | {rate:.0} |\n"));
    }
    md.push_str("\nSGX/TDX beside the peer, `dcap_qvl::verify::verify` called directly per quote ");
    md.push_str("(given already-deserialized collateral, which favours it):\n\n");
    md.push_str(
        "| TEE | Veil (cached collateral) /s | dcap-qvl direct /s | ratio |\n|---|---|---|---|\n",
    );
    for (label, veil, direct) in &ratios {
        md.push_str(&format!(
            "| {label} | {veil:.0} | {direct:.0} | {:.2}x |\n",
            veil / direct
        ));
    }
    if std::env::var_os("VEIL_BENCH_NO_WRITE").is_none() {
        write_section("evidence-verify", &md);
    }
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn write_section(name: &str, body: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/benchmarks.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{begin}\n{body}{}", &text[..b], &text[e..])
        }
        _ => format!("{text}\n{begin}\n{body}{end}\n"),
    };
    if let Err(e) = std::fs::write(path, new) {
        eprintln!("cannot write {path}: {e}");
    } else {
        println!("figures written to docs/benchmarks.md");
    }
}
