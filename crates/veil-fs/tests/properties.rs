//! Properties of the record format: any content round-trips in both modes,
//! and no single flipped bit anywhere in a sealed file goes unnoticed.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use proptest::prelude::*;
use veil_fs::{ChunkSize, FileCipher, FileId, Mode, VolumeHeader, VolumeKey};

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Encrypted), Just(Mode::Integrity)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_content_round_trips(
        data in proptest::collection::vec(any::<u8>(), 0..20_000),
        mode in mode(),
        shift in 12u32..15,
    ) {
        let key = VolumeKey::random().unwrap();
        let h = VolumeHeader::new(mode, ChunkSize::new(1 << shift).unwrap()).unwrap();
        let keys = h.keys(&key).unwrap();
        let c = FileCipher::new(&keys, FileId::random().unwrap()).unwrap();
        let sealed = c.seal_file(&data).unwrap();
        prop_assert_eq!(c.open_file(&sealed, &keys).unwrap(), data);
    }

    #[test]
    fn any_flipped_bit_is_caught(
        data in proptest::collection::vec(any::<u8>(), 0..10_000),
        mode in mode(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let key = VolumeKey::random().unwrap();
        let h = VolumeHeader::new(mode, ChunkSize::new(4096).unwrap()).unwrap();
        let keys = h.keys(&key).unwrap();
        let c = FileCipher::new(&keys, FileId::random().unwrap()).unwrap();
        let mut sealed = c.seal_file(&data).unwrap();
        let i = at.index(sealed.len());
        sealed[i] ^= 1 << bit;
        prop_assert!(c.open_file(&sealed, &keys).is_err(), "flip at byte {} bit {} went unnoticed", i, bit);
    }
}
