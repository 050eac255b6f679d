//! Flipped bytes anywhere in a closed store file are either refused by redb with a clear error,
//! or every read returns the right data or `Tampered`: never wrong data, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::json;
use veil_store::{AuditEntry, SealingKey, Store, StoreError, Table};

type Expected = BTreeMap<(&'static str, Vec<u8>), Vec<u8>>;

fn tables() -> [Table; 3] {
    [Table::SESSIONS, Table::SECRETS, Table::NONCES]
}

fn build(path: &std::path::Path, key: &SealingKey) -> Expected {
    let s = Store::open(path, key).unwrap();
    let mut expected = Expected::new();
    for round in 0..4u32 {
        s.write(|tx| {
            for i in 0..12u32 {
                for t in tables() {
                    let k = format!("{}/{round}/{i:03}", t.name());
                    let v = format!("value of {k} {}", "x".repeat((i * 7) as usize));
                    tx.put(t, k.as_bytes(), v.as_bytes())?;
                    expected.insert((t.name(), k.into_bytes()), v.into_bytes());
                }
            }
            tx.audit(AuditEntry::new(
                "session.apply",
                format!("r{round}"),
                "7d1e",
                json!({"round": round}),
            ))
        })
        .unwrap();
    }
    expected
}

#[derive(Default, Debug)]
struct Outcome {
    open_refused: BTreeMap<String, usize>,
    reads_ok: usize,
    reads_tampered: usize,
    reads_other_err: usize,
    unaffected: usize,
}

fn category(e: &StoreError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '{', '(']).next().unwrap_or("?").to_owned()
}

/// Open the flipped file and check every record. Panics (fails the test) on wrong data.
fn check(
    path: &std::path::Path,
    key: &SealingKey,
    expected: &Expected,
    out: &mut Outcome,
    offset: usize,
) {
    let s = match Store::open(path, key) {
        Ok(s) => s,
        Err(e) => {
            *out.open_refused.entry(category(&e)).or_default() += 1;
            return;
        }
    };
    let mut all_ok = true;
    for t in tables() {
        for ((tn, k), v) in expected.range((t.name(), Vec::new())..) {
            if *tn != t.name() {
                break;
            }
            match s.read(|tx| tx.get(t, k)) {
                Ok(Some(got)) => {
                    assert_eq!(
                        got.as_slice(),
                        v.as_slice(),
                        "wrong data after flipping offset {offset}"
                    );
                    out.reads_ok += 1;
                }
                Ok(None) => panic!(
                    "record {}/{} vanished after flipping offset {offset}",
                    t.name(),
                    String::from_utf8_lossy(k)
                ),
                Err(StoreError::Tampered { .. }) => {
                    out.reads_tampered += 1;
                    all_ok = false;
                }
                Err(e) => {
                    let _ = e.to_string();
                    out.reads_other_err += 1;
                    all_ok = false;
                }
            }
        }
        // list must agree: same data, or an error
        if let Ok(l) = s.read(|tx| tx.list(t, b"")) {
            for (k, v) in l {
                assert_eq!(
                    expected.get(&(t.name(), k.clone())).map(Vec::as_slice),
                    Some(v.as_slice()),
                    "offset {offset}"
                );
            }
        }
    }
    match s.verify_audit() {
        Ok(c) => assert_eq!(c.len(), 4, "offset {offset}"),
        Err(_) => all_ok = false,
    }
    if all_ok {
        out.unaffected += 1;
    }
}

#[test]
fn flipped_bytes_are_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("orig.redb");
    let key = SealingKey::generate().unwrap();
    let expected = build(&orig, &key);
    let bytes = std::fs::read(&orig).unwrap();
    let trials: usize = std::env::var("VEIL_STORE_TAMPER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let step = (bytes.len() / trials).max(1);
    let path = dir.path().join("flipped.redb");
    let mut out = Outcome::default();
    let mut offset = 0;
    let mut n = 0;
    while offset < bytes.len() {
        let mut b = bytes.clone();
        b[offset] ^= if n % 2 == 0 { 0x01 } else { 0x80 };
        std::fs::write(&path, &b).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            check(&path, &key, &expected, &mut out, offset)
        }));
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("flipping byte {offset} of {}: {msg}", bytes.len());
        }
        offset += step + (n % 7);
        n += 1;
    }
    println!("file {} bytes, {n} flips: {out:?}", bytes.len());
}

#[test]
fn garbage_and_empty_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::generate().unwrap();
    let p = dir.path().join("garbage.redb");
    std::fs::write(&p, vec![0x5a; 10_000]).unwrap();
    let e = Store::open(&p, &key).unwrap_err();
    println!("{e}");
    // A truncated store.
    let orig = dir.path().join("orig.redb");
    build(&orig, &key);
    let bytes = std::fs::read(&orig).unwrap();
    for cut in [bytes.len() / 2, 4096, 100] {
        let p = dir.path().join(format!("cut{cut}.redb"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| Store::open(&p, &key).map(|_| ())));
        match r {
            Ok(Err(e)) => println!("cut at {cut}: {e}"),
            Ok(Ok(())) => panic!("store truncated at {cut} opened"),
            Err(_) => panic!("opening a store truncated at {cut} panicked"),
        }
    }
}
