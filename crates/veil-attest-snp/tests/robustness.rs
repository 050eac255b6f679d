//! No mutation of a valid report is accepted, and no input panics.

use proptest::prelude::*;
use veil_attest::{Endorsement, Time, Verifier, VerifyError};
use veil_attest_snp::{looks_like_snp_report, parse_report, SnpVerifier};

const REPORT_V2: &[u8] = include_bytes!("../testdata/trustee_report_v2.bin");
const VCEK: &[u8] = include_bytes!("../testdata/trustee_vcek.der");
const AT: Time = Time::from_unix(1_735_689_600); // 2025-01-01

fn endorsements() -> Vec<Endorsement> {
    vec![Endorsement::Certificates(vec![VCEK.to_vec()])]
}

#[test]
fn the_unmutated_report_verifies() {
    SnpVerifier::default()
        .verify(REPORT_V2, &endorsements(), AT)
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn single_byte_mutations_are_never_accepted(at in 0..REPORT_V2.len(), x in 1u8..=255) {
        let mut b = REPORT_V2.to_vec();
        b[at] ^= x;
        let r = SnpVerifier::default().verify(&b, &endorsements(), AT);
        prop_assert!(r.is_err(), "mutation at {at:#x} accepted");
    }

    #[test]
    fn truncations_are_malformed(len in 0..REPORT_V2.len()) {
        let r = SnpVerifier::default().verify(&REPORT_V2[..len], &endorsements(), AT);
        prop_assert!(matches!(r, Err(VerifyError::Malformed { .. })), "{len}: {r:?}");
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
        let _ = looks_like_snp_report(&bytes);
        let _ = parse_report(&bytes);
        let r = SnpVerifier::default().verify(&bytes, &endorsements(), AT);
        prop_assert!(r.is_err());
    }

    #[test]
    fn random_report_sized_bytes_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 1184),
        version in prop_oneof![Just(2u32), Just(3), Just(5)],
        cpuid in any::<[u8; 2]>(),
    ) {
        // Get past the version check so the sev decoder runs on noise.
        bytes[..4].copy_from_slice(&version.to_le_bytes());
        bytes[0x48] &= 0b111;
        bytes[0x188..0x18A].copy_from_slice(&cpuid);
        let _ = parse_report(&bytes);
        let r = SnpVerifier::default().verify(&bytes, &endorsements(), AT);
        prop_assert!(r.is_err());
    }

    #[test]
    fn random_certificates_never_panic(
        der in proptest::collection::vec(any::<u8>(), 0..600),
        at in 0..VCEK.len(),
        x in 1u8..=255,
    ) {
        let mut vcek = VCEK.to_vec();
        vcek[at] ^= x;
        for certs in [vec![der.clone()], vec![vcek, der]] {
            let r = SnpVerifier::default().verify(REPORT_V2, &[Endorsement::Certificates(certs)], AT);
            prop_assert!(r.is_err());
        }
    }
}
