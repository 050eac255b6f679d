//! Properties: round trips of random sizes around chunk boundaries, through
//! the pipeline and the streaming adapters (with random write sizes); any
//! single flipped bit is caught, and no plaintext of the failing chunk or
//! after it is output.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read, Write};

use proptest::prelude::*;
use veil_seal::{Decryptor, Encryptor, Error, Key, CHUNK_LEN, HEADER_LEN, RECORD_LEN};

fn plain(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed))
        .collect()
}

fn seal(key: &Key, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    veil_seal::encrypt(key, &mut &data[..], &mut out, &mut |_| {}).unwrap();
    out
}

fn open(key: &Key, data: &[u8]) -> (Vec<u8>, Result<u64, Error>) {
    let mut out = Vec::new();
    let r = veil_seal::decrypt(key, &mut &data[..], &mut out, &mut |_| {});
    (out, r)
}

/// A length near a chunk boundary: k chunks, plus or minus a few bytes.
fn near_boundary() -> impl Strategy<Value = usize> {
    (0usize..4, -3i64..=3).prop_map(|(k, d)| (k as i64 * CHUNK_LEN as i64 + d).max(0) as usize)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_near_chunk_boundaries(n in near_boundary(), seed in any::<u8>()) {
        let key = Key::generate().unwrap();
        let data = plain(n, seed);
        let sealed = seal(&key, &data);
        let records = n.div_ceil(CHUNK_LEN).max(1);
        prop_assert_eq!(sealed.len(), HEADER_LEN + n + records * 16);
        let (out, r) = open(&key, &sealed);
        prop_assert_eq!(r.unwrap(), n as u64);
        prop_assert!(out == data);
        // The streaming reader opens what the pipeline sealed.
        let mut d = Decryptor::new(&key, &sealed[..]).unwrap();
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        prop_assert!(out == data);
    }

    #[test]
    fn streaming_writer_with_random_write_sizes(
        n in near_boundary(),
        sizes in proptest::collection::vec(1usize..100_000, 1..8),
    ) {
        let key = Key::generate().unwrap();
        let data = plain(n, 7);
        let mut e = Encryptor::new(&key, Vec::new()).unwrap();
        let mut at = 0;
        let mut i = 0;
        while at < data.len() {
            let take = sizes[i % sizes.len()].min(data.len() - at);
            e.write_all(&data[at..at + take]).unwrap();
            at += take;
            i += 1;
        }
        let sealed = e.finish().unwrap();
        // Same layout as the pipeline's.
        let records = n.div_ceil(CHUNK_LEN).max(1);
        prop_assert_eq!(sealed.len(), HEADER_LEN + n + records * 16);
        let (out, r) = open(&key, &sealed);
        prop_assert_eq!(r.unwrap(), n as u64);
        prop_assert!(out == data);
    }

    #[test]
    fn any_single_bit_flip_fails_closed(n in 0usize..(2 * CHUNK_LEN + 300), pick in any::<u64>(), bit in 0u8..8) {
        let key = Key::generate().unwrap();
        let data = plain(n, 3);
        let mut sealed = seal(&key, &data);
        let at = (pick % sealed.len() as u64) as usize;
        sealed[at] ^= 1 << bit;
        let (out, r) = open(&key, &sealed);
        let e = r.unwrap_err();
        prop_assert!(e.is_integrity(), "{}", e);
        // Only plaintext of chunks before the flipped one, if any.
        prop_assert!(out == data[..out.len()]);
        if at >= HEADER_LEN {
            let chunk = (at - HEADER_LEN) / RECORD_LEN;
            prop_assert_eq!(e.chunk(), Some(chunk as u64));
            prop_assert!(out.len() <= chunk * CHUNK_LEN);
        } else {
            prop_assert!(out.is_empty());
        }
        let mut d = match Decryptor::new(&key, &sealed[..]) {
            Ok(d) => d,
            Err(e) => {
                prop_assert!(e.is_integrity());
                return Ok(());
            }
        };
        let mut out = Vec::new();
        prop_assert!(d.read_to_end(&mut out).is_err());
    }

    #[test]
    fn a_wrong_key_fails_before_any_output(n in 0usize..100_000) {
        let data = plain(n, 9);
        let sealed = seal(&Key::generate().unwrap(), &data);
        let (out, r) = open(&Key::generate().unwrap(), &sealed);
        prop_assert!(matches!(r, Err(Error::WrongKey)));
        prop_assert!(out.is_empty());
    }
}
