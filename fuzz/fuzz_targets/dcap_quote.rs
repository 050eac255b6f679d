//! SGX/TDX quote parsing, and full verification against fixed collateral.
#![no_main]
use libfuzzer_sys::fuzz_target;
use veil_attest::{Endorsement, Time, Verifier};

const COLLATERAL: &[u8] =
    include_bytes!("../../crates/veil-attest-dcap/testdata/dcapqvl_sgx_quote.collateral.json");

fuzz_target!(|data: &[u8]| {
    let _ = veil_attest_dcap::detect(data);
    let _ = veil_attest_dcap::parse_quote(data);
    let e = [Endorsement::DcapCollateral(COLLATERAL.to_vec())];
    let _ = veil_attest_dcap::SgxVerifier::without_cache().verify(data, &e, Time::from_unix(1751624924));
});
