#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use veil_ca::{generate_password, CaError, DEFAULT_PASSWORD_ALPHABET};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn length_and_alphabet_hold(
        length in 8usize..=1024,
        alphabet in proptest::collection::btree_set(any::<char>().prop_filter("no control", |c| !c.is_control()), 2..80),
    ) {
        let alphabet: String = alphabet.into_iter().collect();
        let pw = generate_password(length, &alphabet).unwrap();
        prop_assert_eq!(pw.chars().count(), length);
        prop_assert!(pw.chars().all(|c| alphabet.contains(c)));
    }

    #[test]
    fn default_alphabet(length in 8usize..=256) {
        let pw = generate_password(length, DEFAULT_PASSWORD_ALPHABET).unwrap();
        prop_assert_eq!(pw.len(), length);
        prop_assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn out_of_range_lengths_are_refused(length in prop_oneof![0usize..8, 1025usize..5000]) {
        prop_assert!(
            matches!(
                generate_password(length, DEFAULT_PASSWORD_ALPHABET),
                Err(CaError::InvalidSpec { .. })
            ),
            "length {} accepted", length
        );
    }
}
