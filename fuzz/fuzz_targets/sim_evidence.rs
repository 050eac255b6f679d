//! Sim evidence parsing and verification against a fixed trusted key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use veil_attest::{Time, Verifier};

fuzz_target!(|data: &[u8]| {
    let _ = veil_attest_sim::parse_evidence(data);
    let _ = veil_attest_sim::SimVerifier::new([[7u8; 32]]).verify(data, &[], Time::from_unix(1_700_000_000));
});
