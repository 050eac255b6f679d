//! What the launcher reads from outside: the head of a program file (its
//! `#!` line) and the CAS's JSON answers. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = veil_launcher::interpreter_of(data);
    let _ = serde_json::from_slice::<veil_api::NonceResponse>(data);
    let _ = serde_json::from_slice::<veil_api::AttestResponse>(data);
});
