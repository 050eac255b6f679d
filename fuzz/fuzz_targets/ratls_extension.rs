//! The RA-TLS extension's CBOR (tag 60000, [evidence, claims]).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = veil_ratls::parse_extension(data);
});
