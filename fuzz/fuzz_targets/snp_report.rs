//! SEV-SNP report parsing (binary and hex) and verification with a fixed VCEK.
#![no_main]
use libfuzzer_sys::fuzz_target;
use veil_attest::{Endorsement, Time, Verifier};

const VCEK: &[u8] = include_bytes!("../../crates/veil-attest-snp/testdata/trustee_vcek.der");

fuzz_target!(|data: &[u8]| {
    let _ = veil_attest_snp::looks_like_snp_report(data);
    let _ = veil_attest_snp::parse_report(data);
    let e = [Endorsement::Certificates(vec![VCEK.to_vec()])];
    let _ = veil_attest_snp::SnpVerifier::new().verify(data, &e, Time::from_unix(1735689600));
});
