//! Whole RA-TLS certificates (DER and PEM) and the evidence inspection they
//! use (quotes, and SNP reports, Nitro documents, sim evidence under Veil tags).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = veil_ratls::parse_ratls_certificate(data) {
        let _ = cert.check_binding();
    }
    let _ = veil_ratls::parse_ratls_pem(data);
    let _ = veil_ratls::inspect_quote(data);
    for tag in veil_ratls::SUPPORTED_TAGS {
        let _ = veil_ratls::inspect_evidence(tag, data);
    }
});
