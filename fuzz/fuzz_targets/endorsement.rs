//! Endorsement file sniffing (JSON, PEM, DER, sim keys).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = veil_attest::Endorsement::from_file_bytes(data);
    let _ = veil_attest::parse_certificates(data);
});
