//! AWS Nitro attestation document (COSE_Sign1 / CBOR / base64) parsing and verification.
#![no_main]
use libfuzzer_sys::fuzz_target;
use veil_attest::{Time, Verifier};

fuzz_target!(|data: &[u8]| {
    let _ = veil_attest_nitro::looks_like_nitro_document(data);
    let _ = veil_attest_nitro::parse_document(data);
    let _ = veil_attest_nitro::NitroVerifier::new().verify(data, &[], Time::from_unix(1665651600));
});
