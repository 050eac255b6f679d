//! veil-seal v1 parsing and opening: the header parser, then the whole
//! stream through the pipeline and the streaming reader under a fixed key.
//! Also seals the input and opens it again (round trip).
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;
use veil_seal::{Decryptor, Header, Key};

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes([0x42; 32]);
    let _ = Header::parse(data);
    let mut out = Vec::new();
    let _ = veil_seal::decrypt(&key, &mut &data[..], &mut out, &mut |_| {});
    if let Ok(mut d) = Decryptor::new(&key, data) {
        let mut out = Vec::new();
        let _ = d.read_to_end(&mut out);
    }
    let mut sealed = Vec::new();
    if veil_seal::encrypt(&key, &mut &data[..], &mut sealed, &mut |_| {}).is_ok() {
        let mut back = Vec::new();
        let opened = veil_seal::decrypt(&key, &mut &sealed[..], &mut back, &mut |_| {});
        assert!(opened.is_ok() && back == data);
    }
});
