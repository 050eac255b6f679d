//! Real AWS Nitro documents (see testdata/README.md), verified at fixed times.

// Test helpers outside #[test] functions unwrap too; VerifyError is large
// (see lib.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use veil_attest::{Registry, ReportData, Tee, TeeClaims, Time, Verifier, VerifyError};
use veil_attest_nitro::{
    is_debug_mode, looks_like_nitro_document, parse_document, NitroVerifier,
    AWS_NITRO_ROOT_G1_SHA256,
};

const VALID: &[u8] = include_bytes!("../testdata/evervault_valid_doc.cbor");
const DEBUG: &[u8] = include_bytes!("../testdata/evervault_debug_doc.cbor");
const VALID_2023_B64: &[u8] = include_bytes!("../testdata/evervault_valid_doc_2023.b64");

/// Inside the leaf window of VALID (08:57:59 .. 11:58:02).
fn t_valid() -> Time {
    Time::parse_rfc3339("2022-10-13T09:00:00Z").unwrap()
}

fn verify(bytes: &[u8], at: Time) -> Result<veil_attest::Claims, VerifyError> {
    NitroVerifier::new().verify(bytes, &[], at)
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn valid_document_verifies_inside_leaf_window() {
    let claims = verify(VALID, t_valid()).unwrap();
    assert_eq!(claims.tee, Tee::Nitro);
    assert!(!claims.insecure);
    assert!(!claims.debug);
    assert_eq!(
        hex::encode(&claims.measurement),
        "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b"
    );
    assert_eq!(claims.measurements.len(), 16);
    assert_eq!(claims.measurements["pcr0"], claims.measurement);
    assert!(claims.measurements.contains_key("pcr15"));
    assert_eq!(claims.signer, None);
    assert_eq!(claims.tcb_status, veil_attest::TcbStatus::NotApplicable);
    assert!(claims.advisories.is_empty());
    assert_eq!(
        claims.platform_id.as_deref(),
        Some(&b"i-020b6af9246d90e92-enc0183d09086c24190"[..])
    );
    assert_eq!(claims.verified_at, t_valid());
    let TeeClaims::Nitro(n) = &claims.tee_claims else {
        panic!("not nitro claims")
    };
    assert_eq!(n.module_id, "i-020b6af9246d90e92-enc0183d09086c24190");
    assert_eq!(n.digest, "SHA384");
    assert_eq!(n.timestamp_ms, 1_665_651_482_136);
    assert_eq!(n.public_key, None);
    assert_eq!(n.user_data, None);
    assert_eq!(n.nonce.as_ref().map(Vec::len), Some(256));
    // A 256-byte nonce does not fit in 64 bytes and user_data is absent.
    assert_eq!(claims.report_data, ReportData::ZERO);
}

#[test]
fn verifies_through_a_registry() {
    let registry = Registry::new().with(NitroVerifier::default());
    let ev = veil_attest::Evidence {
        tee: Tee::Nitro,
        bytes: VALID.to_vec(),
    };
    assert!(registry.verify(&ev, &[], t_valid()).is_ok());
}

#[test]
fn tagged_document_verifies_too() {
    let mut tagged = vec![0xd2];
    tagged.extend_from_slice(VALID);
    let doc = parse_document(&tagged).unwrap();
    assert!(doc.tagged);
    assert!(verify(&tagged, t_valid()).is_ok());
}

#[test]
fn base64_2023_document_verifies_inside_its_window() {
    let at = Time::parse_rfc3339("2023-09-18T15:10:00Z").unwrap();
    let claims = verify(VALID_2023_B64, at).unwrap();
    let TeeClaims::Nitro(n) = &claims.tee_claims else {
        panic!("not nitro claims")
    };
    assert_eq!(n.module_id, "i-0918f6c55e3b61d89-enc018aa8b8e2285d13");
    assert_eq!(n.user_data.as_ref().map(Vec::len), Some(91));
    // user_data (91 bytes) and nonce (256 bytes) are both too long.
    assert_eq!(claims.report_data, ReportData::ZERO);
    // This enclave ran in debug mode too: PCR0..2 are zero.
    assert!(claims.debug);
    // Base64 with surrounding whitespace is accepted.
    let mut spaced = b"\n  ".to_vec();
    spaced.extend_from_slice(VALID_2023_B64);
    spaced.extend_from_slice(b"\n");
    assert!(verify(&spaced, at).is_ok());
    // Outside its window it is expired.
    let late = Time::parse_rfc3339("2023-09-18T18:37:12Z").unwrap();
    let err = verify(VALID_2023_B64, late).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Nitro leaf certificate expired at "),
        "{err}"
    );
}

#[test]
fn debug_document_verifies_and_reports_debug() {
    // Leaf window 2022-10-12T13:49:51Z .. 16:49:54Z.
    let at = Time::parse_rfc3339("2022-10-12T14:00:00Z").unwrap();
    let claims = verify(DEBUG, at).unwrap();
    assert!(claims.debug);
    assert_eq!(claims.measurement, vec![0u8; 48]);
    let TeeClaims::Nitro(n) = &claims.tee_claims else {
        panic!("not nitro claims")
    };
    assert!(is_debug_mode(n));
    assert_eq!(n.user_data.as_deref(), Some(&b"hello, world!"[..]));
    assert_eq!(n.public_key.as_deref(), Some(&b"my super secret key"[..]));
    assert_eq!(
        claims.report_data,
        ReportData::from_prefix(b"hello, world!").unwrap()
    );
}

#[test]
fn one_hour_after_leaf_expiry_is_expired_naming_the_leaf() {
    let at = Time::parse_rfc3339("2022-10-13T12:58:02Z").unwrap();
    let err = verify(VALID, at).unwrap_err();
    let VerifyError::Expired {
        what, not_after, ..
    } = &err
    else {
        panic!("expected Expired, got {err:?}")
    };
    assert_eq!(what, "Nitro leaf certificate");
    assert_eq!(
        *not_after,
        Time::parse_rfc3339("2022-10-13T11:58:02Z").unwrap()
    );
    assert!(
        err.to_string()
            .starts_with("Nitro leaf certificate expired at 2022-10-13T11:58:02Z"),
        "{err}"
    );
}

#[test]
fn before_leaf_start_is_issued_in_the_future() {
    let at = Time::parse_rfc3339("2022-10-13T08:57:00Z").unwrap();
    let err = verify(VALID, at).unwrap_err();
    assert!(
        matches!(&err, VerifyError::NotYetValid { what, .. } if what == "Nitro leaf certificate"),
        "{err:?}"
    );
    assert!(err.to_string().contains("issued in the future"), "{err}");
}

#[test]
fn long_after_every_certificate_names_the_leaf_first() {
    let at = Time::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    let err = verify(VALID, at).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Nitro leaf certificate expired"),
        "{err}"
    );
}

#[test]
fn another_pinned_root_is_untrusted() {
    let mut other = AWS_NITRO_ROOT_G1_SHA256;
    other[0] ^= 1;
    let err = NitroVerifier::with_root_sha256(other)
        .verify(VALID, &[], t_valid())
        .unwrap_err();
    assert!(matches!(err, VerifyError::Untrusted { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not the pinned AWS Nitro root"),
        "{err}"
    );
    assert_eq!(NitroVerifier::new().root_sha256(), AWS_NITRO_ROOT_G1_SHA256);
}

#[test]
fn flipped_payload_byte_is_a_bad_signature() {
    let mut doc = VALID.to_vec();
    let at = find(&doc, b"i-020b6af9246d90e92-enc");
    doc[at + 2] ^= 0x01; // module_id '0' -> '1'
    let err = verify(&doc, t_valid()).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
}

#[test]
fn flipped_signature_byte_is_a_bad_signature() {
    let mut doc = VALID.to_vec();
    let last = doc.len() - 1;
    doc[last] ^= 0x01;
    let err = verify(&doc, t_valid()).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
    assert!(err.to_string().contains("ES384"), "{err}");
}

#[test]
fn flipped_certificate_bytes_are_rejected() {
    let parsed = parse_document(VALID).unwrap();
    // Root: no longer the pinned one.
    let mut doc = VALID.to_vec();
    let at = find(&doc, &parsed.cabundle[0]);
    doc[at + 100] ^= 0x01;
    assert!(matches!(
        verify(&doc, t_valid()),
        Err(VerifyError::Untrusted { .. })
    ));
    // An intermediate: its signature no longer verifies.
    let mut doc = VALID.to_vec();
    let at = find(&doc, &parsed.cabundle[2]);
    doc[at + 200] ^= 0x01;
    let err = verify(&doc, t_valid()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::BadSignature { .. } | VerifyError::Malformed { .. }
        ),
        "{err:?}"
    );
    // The leaf: its signature no longer verifies.
    let mut doc = VALID.to_vec();
    let at = find(&doc, &parsed.certificate);
    doc[at + 300] ^= 0x01;
    let err = verify(&doc, t_valid()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::BadSignature { .. } | VerifyError::Malformed { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn truncated_or_extended_documents_are_malformed() {
    for len in [0, 1, 10, VALID.len() / 2, VALID.len() - 1] {
        let err = verify(&VALID[..len], t_valid()).unwrap_err();
        assert!(
            matches!(err, VerifyError::Malformed { .. }),
            "{len}: {err:?}"
        );
    }
    let mut longer = VALID.to_vec();
    longer.push(0x00);
    let err = verify(&longer, t_valid()).unwrap_err();
    assert!(matches!(err, VerifyError::Malformed { .. }), "{err:?}");
}

#[test]
fn other_evidence_and_garbage_are_malformed() {
    let sgx = include_bytes!("../testdata/ccc_gramine_ratls_quote.bin");
    for bytes in [
        &sgx[..],
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        b"\x03\x00\x02\x00\x00\x00\x00\x00garbage",
        b"hello world",
        b"\xff\xff\xff",
        b"aGVsbG8=",
        b"\x84\x40\xa0\x40\x40",
    ] {
        let err = verify(bytes, t_valid()).unwrap_err();
        assert!(matches!(err, VerifyError::Malformed { .. }), "{err:?}");
        assert!(!looks_like_nitro_document(bytes));
    }
    assert!(looks_like_nitro_document(VALID));
    assert!(looks_like_nitro_document(DEBUG));
    assert!(looks_like_nitro_document(VALID_2023_B64));
}

#[test]
fn parse_document_reads_the_fields_without_verifying() {
    let doc = parse_document(VALID).unwrap();
    assert_eq!(doc.algorithm, Some(-35));
    assert_eq!(doc.cabundle.len(), 4);
    assert_eq!(doc.signature.len(), 96);
    assert!(!doc.tagged);
    assert_eq!(doc.claims.pcrs.len(), 16);
    assert!(doc.to_be_signed().starts_with(&[0x84, 0x6a]));
}

#[test]
fn verifier_reports_its_tee() {
    assert_eq!(NitroVerifier::new().tee(), Tee::Nitro);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Truncate { len: usize },
    Append { bytes: Vec<u8> },
    Insert { at: usize, byte: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0..VALID.len(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => (0..VALID.len()).prop_map(|len| Mutation::Truncate { len }),
        1 => proptest::collection::vec(any::<u8>(), 1..16).prop_map(|bytes| Mutation::Append { bytes }),
        1 => (0..VALID.len(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mutated_documents_are_never_accepted(m in mutation()) {
        let mut doc = VALID.to_vec();
        match &m {
            Mutation::Flip { at, xor } => doc[*at] ^= xor,
            Mutation::Truncate { len } => doc.truncate(*len),
            Mutation::Append { bytes } => doc.extend_from_slice(bytes),
            Mutation::Insert { at, byte } => doc.insert(*at, *byte),
        }
        let _ = parse_document(&doc);
        let _ = looks_like_nitro_document(&doc);
        prop_assert!(verify(&doc, t_valid()).is_err(), "accepted after {:?}", m);
    }
}
