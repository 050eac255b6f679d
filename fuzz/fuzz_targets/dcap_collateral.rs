//! DCAP collateral JSON parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = veil_attest_dcap::parse_collateral(data);
});
