//! The SEV-SNP certificate table a configfs-tsm auxblob carries.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = veil_provider::parse_snp_cert_table(data);
});
