//! Whole RA-TLS certificates (DER and PEM) and the quote inspection they use.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = veil_ratls::parse_ratls_certificate(data) {
        let _ = cert.check_binding();
    }
    let _ = veil_ratls::parse_ratls_pem(data);
    let _ = veil_ratls::inspect_quote(data);
});
