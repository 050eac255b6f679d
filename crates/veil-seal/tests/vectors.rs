//! The test vectors in `testdata/` (listed with their expected outcome in
//! `testdata/expected.txt`), run through both decoders: the pipeline
//! ([`veil_seal::decrypt`]) and the streaming [`veil_seal::Decryptor`].
//! `good.seal` is also made again from its key, salt and plaintext, byte
//! for byte.
//!
//! To write the vectors again (only when the format changes, with a new
//! version): `VEIL_SEAL_WRITE_VECTORS=1 cargo test -p veil-seal --test vectors`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::Read;
use std::path::{Path, PathBuf};

use veil_seal::{Error, Key, CHUNK_LEN, HEADER_LEN, RECORD_LEN};

const KEY_A: [u8; 32] = [0x42; 32];
const KEY_B: [u8; 32] = [0x43; 32];
const SALT: [u8; 32] = [0x01; 32];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The plaintext of `good.seal`: byte i is i mod 251; one full chunk and
/// 100 bytes (so the vectors stay small).
fn good_plain() -> Vec<u8> {
    (0..CHUNK_LEN + 100).map(|i| (i % 251) as u8).collect()
}

fn seal_fixed(plain: &[u8]) -> Vec<u8> {
    let mut s =
        veil_seal::danger::dangerous_sealer_with_salt(&Key::from_bytes(KEY_A), SALT).unwrap();
    let mut out = s.header().to_vec();
    let mut chunks: Vec<&[u8]> = plain.chunks(CHUNK_LEN).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let n = chunks.len();
    let mut rec = vec![0u8; RECORD_LEN];
    for (i, c) in chunks.into_iter().enumerate() {
        rec[..c.len()].copy_from_slice(c);
        let len = s.seal_chunk(&mut rec, c.len(), i + 1 == n).unwrap();
        out.extend_from_slice(&rec[..len]);
    }
    out
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

/// Every vector: (file, bytes).
fn make_vectors() -> Vec<(&'static str, Vec<u8>)> {
    let good = seal_fixed(&good_plain());
    let rec = |i: usize| {
        let a = HEADER_LEN + i * RECORD_LEN;
        good[a..(a + RECORD_LEN).min(good.len())].to_vec()
    };
    let header = good[..HEADER_LEN].to_vec();
    let flip = |v: &[u8], at: usize, bit: u8| {
        let mut v = v.to_vec();
        v[at] ^= 1 << bit;
        v
    };
    // Header flips on a short file: the header is checked before any chunk.
    let hello = seal_fixed(b"hello, veil\n");
    let cat = |parts: &[&[u8]]| parts.concat();
    vec![
        ("good.seal", good.clone()),
        ("empty.seal", seal_fixed(b"")),
        ("hello.seal", hello.clone()),
        ("truncated-boundary.seal", cat(&[&header, &rec(0)])),
        (
            "truncated-mid-chunk.seal",
            good[..HEADER_LEN + 30_000].to_vec(),
        ),
        ("truncated-in-tag.seal", good[..good.len() - 5].to_vec()),
        ("header-only.seal", header.clone()),
        ("short-header.seal", header[..40].to_vec()),
        ("flip-magic.seal", flip(&hello, 0, 0)),
        ("flip-version.seal", flip(&hello, 8, 1)),
        ("flip-reserved.seal", flip(&hello, 10, 7)),
        ("flip-salt.seal", flip(&hello, 20, 3)),
        ("flip-header-mac.seal", flip(&hello, 70, 0)),
        ("flip-body.seal", flip(&good, HEADER_LEN + 1000, 5)),
        ("flip-tag.seal", flip(&good, HEADER_LEN + CHUNK_LEN + 3, 0)),
        ("flip-last-chunk.seal", flip(&good, good.len() - 30, 2)),
        ("reordered.seal", cat(&[&header, &rec(1), &rec(0)])),
        ("appended-bytes.seal", cat(&[&good, b"extra"])),
        ("appended-chunk.seal", cat(&[&good, &rec(1)])),
        ("dropped-chunk.seal", cat(&[&header, &rec(1)])),
    ]
}

#[test]
fn write_vectors_when_asked() {
    if std::env::var_os("VEIL_SEAL_WRITE_VECTORS").is_none() {
        return;
    }
    for (name, bytes) in make_vectors() {
        std::fs::write(dir().join(name), bytes).unwrap();
    }
}

#[test]
fn good_seal_is_reproduced_byte_for_byte() {
    for (name, bytes) in make_vectors() {
        let on_disk = std::fs::read(dir().join(name)).unwrap();
        assert!(
            on_disk == bytes,
            "{name} differs from what the vector recipe makes"
        );
    }
}

/// The outcome, as written in expected.txt.
fn outcome(r: Result<Vec<u8>, Error>) -> String {
    match r {
        Ok(p) => format!("ok {}", sha256_hex(&p)),
        Err(Error::WrongKey) => "wrong-key".into(),
        Err(Error::NotSealed) => "not-sealed".into(),
        Err(Error::UnsupportedVersion(v)) => format!("unsupported-version {v}"),
        Err(Error::MalformedHeader(_)) => "malformed-header".into(),
        Err(Error::TruncatedHeader { len }) => format!("truncated-header {len}"),
        Err(Error::NoChunks) => "no-chunks".into(),
        Err(Error::ChunkFailed { index }) => format!("chunk-failed {index}"),
        Err(Error::Truncated { index }) => format!("truncated {index}"),
        Err(Error::EmptyChunk { index }) => format!("empty-chunk {index}"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn by_pipeline(key: &Key, data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    veil_seal::decrypt(key, &mut &data[..], &mut out, &mut |_| {}).map(|_| out)
}

fn by_reader(key: &Key, data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut d = veil_seal::Decryptor::new(key, data)?;
    let mut out = Vec::new();
    match d.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => {
            let inner = e.into_inner().unwrap();
            Err(*inner.downcast::<Error>().unwrap())
        }
    }
}

#[test]
fn every_vector_has_its_expected_outcome() {
    let text = std::fs::read_to_string(dir().join("expected.txt")).unwrap();
    let mut seen = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (file, key) = (f.next().unwrap(), f.next().unwrap());
        let expect: Vec<&str> = f.collect();
        let expect = expect.join(" ");
        let key = Key::from_bytes(match key {
            "a" => KEY_A,
            "b" => KEY_B,
            k => panic!("unknown key {k}"),
        });
        let data = std::fs::read(dir().join(file)).unwrap();
        assert_eq!(
            outcome(by_pipeline(&key, &data)),
            expect,
            "{file} (pipeline)"
        );
        assert_eq!(outcome(by_reader(&key, &data)), expect, "{file} (reader)");
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} vectors");
    // The plaintext named for good.seal is the recipe's.
    assert!(text.contains(&sha256_hex(&good_plain())));
}
