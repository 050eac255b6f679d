//! Real interoperable RA-TLS certificates (see testdata/README.md).

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sha2::{Digest as _, Sha256};
use veil_attest::Tee;
use veil_ratls::{
    parse_extension, parse_ratls_certificate, parse_ratls_pem, BindingCheck, ClaimValue,
    EvidenceFormat, EvidenceKind, HashAlg, RaTlsError, TCG_DICE_TAGGED_EVIDENCE_OID,
};
use x509_parser::prelude::FromDer as _;

const GRAMINE_PEM: &[u8] = include_bytes!("../testdata/gramine-cert.pem");
const RATS_TLS_PEM: &[u8] = include_bytes!("../testdata/rats-tls-cert.pem");
const PLAIN_PEM: &[u8] = include_bytes!("../testdata/plain-cert.pem");

/// SHA-256 of the SGX quote in gramine-cert.pem, as published separately in
/// the shared vectors (sgx/ccc_gramine_ratls_quote.bin).
const GRAMINE_QUOTE_SHA256: &str =
    "5cfdb51d1d4394645fce76a0aa706df6e3bfd8f1a1a3b1ccb918019955311500";

fn der(pem_text: &[u8]) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

/// The value of the interoperable evidence extension.
fn extension_value(cert_der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).unwrap();
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == TCG_DICE_TAGGED_EVIDENCE_OID)
        .unwrap()
        .value
        .to_vec()
}

/// The DER of the OID 2.23.133.5.4.9 as it appears in a certificate.
const INTEROP_OID_TLV: &[u8] = &[0x06, 0x06, 0x67, 0x81, 0x05, 0x05, 0x04, 0x09];

#[test]
fn gramine_certificate_parses_and_binds() {
    let cert = parse_ratls_pem(GRAMINE_PEM).unwrap();
    assert_eq!(
        cert.format(),
        &EvidenceFormat::TaggedEvidence { tag: 60000 }
    );
    assert_eq!(cert.evidence_kind(), EvidenceKind::SgxQuote { version: 3 });
    assert_eq!(cert.tee(), Tee::Sgx);
    assert_eq!(cert.evidence().len(), 4734);
    assert_eq!(
        hex::encode(Sha256::digest(cert.evidence())),
        GRAMINE_QUOTE_SHA256
    );
    assert_eq!(cert.claims().keys().collect::<Vec<_>>(), ["pubkey-hash"]);
    let ph = cert.pubkey_hash().unwrap();
    assert_eq!(ph.alg, HashAlg::Sha256);
    assert_eq!(
        hex::encode(&ph.value),
        "5a5a5b2d177433048e9d62409d1acc4ec526c06e294d09e69a36cff9369e4851"
    );
    assert_eq!(ph.value, Sha256::digest(cert.spki_der()).to_vec());
    assert_eq!(
        hex::encode(&cert.report_data().0[..32]),
        "d8673446fe0f6842d4af0d182c8751d7e967039116deff5f85a43b2ca90c2831"
    );
    assert_eq!(
        cert.report_data().0[..32],
        Sha256::digest(cert.claims_buffer().unwrap())[..]
    );
    assert_eq!(cert.nonce(), None);
    assert!(cert.binding().holds());
    assert_eq!(cert.binding().report_data, BindingCheck::Match);
    assert_eq!(cert.binding().pubkey_hash, BindingCheck::Match);
    cert.check_binding().unwrap();
    // DER and PEM give the same result.
    assert_eq!(parse_ratls_certificate(&der(GRAMINE_PEM)).unwrap(), cert);
}

#[test]
fn rats_tls_certificate_parses_and_binds() {
    let cert = parse_ratls_pem(RATS_TLS_PEM).unwrap();
    assert_eq!(cert.evidence_kind(), EvidenceKind::SgxQuote { version: 3 });
    assert_eq!(cert.tee(), Tee::Sgx);
    assert_eq!(
        cert.claims().get("key_0"),
        Some(&ClaimValue::Bytes(b"value_0\0".to_vec()))
    );
    assert_eq!(
        cert.claims().get("key_1"),
        Some(&ClaimValue::Bytes(b"value_1\0".to_vec()))
    );
    assert_eq!(
        hex::encode(&cert.pubkey_hash().unwrap().value),
        "72c0b70c2092741a4cfda0c2465487faf132998617b0aad53118aa5d6e180006"
    );
    assert!(cert.binding().holds());
    cert.check_binding().unwrap();
}

#[test]
fn altered_claims_break_the_report_data_binding() {
    let mut d = der(RATS_TLS_PEM);
    let at = find(&d, b"value_0");
    d[at + 6] = b'9';
    let cert = parse_ratls_certificate(&d).unwrap();
    let BindingCheck::Mismatch { expected, found } = &cert.binding().report_data else {
        panic!("expected a mismatch, got {:?}", cert.binding())
    };
    assert_eq!(
        expected,
        &Sha256::digest(cert.claims_buffer().unwrap()).to_vec()
    );
    assert_eq!(found, &cert.report_data().0[..32].to_vec());
    assert_eq!(cert.binding().pubkey_hash, BindingCheck::Match);
    assert!(!cert.binding().holds());
    let err = cert.check_binding().unwrap_err();
    assert!(
        matches!(&err, RaTlsError::BindingMismatch { what, .. } if what.contains("claims buffer")),
        "{err:?}"
    );
    assert!(err.to_string().contains("expected "), "{err}");
}

#[test]
fn altered_spki_breaks_the_pubkey_binding() {
    for pem_text in [GRAMINE_PEM, RATS_TLS_PEM] {
        let mut d = der(pem_text);
        let spki = parse_ratls_certificate(&d).unwrap().spki_der().to_vec();
        let at = find(&d, &spki) + spki.len() - 1;
        d[at] ^= 0x01;
        let cert = parse_ratls_certificate(&d).unwrap();
        assert_eq!(cert.binding().report_data, BindingCheck::Match);
        let BindingCheck::Mismatch { expected, found } = &cert.binding().pubkey_hash else {
            panic!("expected a mismatch, got {:?}", cert.binding())
        };
        assert_eq!(expected, &Sha256::digest(cert.spki_der()).to_vec());
        assert_eq!(found, &cert.pubkey_hash().unwrap().value);
        let err = cert.check_binding().unwrap_err();
        assert!(err.to_string().contains("pubkey-hash"), "{err}");
    }
}

#[test]
fn altered_pubkey_hash_breaks_both_bindings() {
    let mut d = der(GRAMINE_PEM);
    let ph = parse_ratls_pem(GRAMINE_PEM)
        .unwrap()
        .pubkey_hash()
        .unwrap()
        .value
        .clone();
    let at = find(&d, &[&[0x58, 0x20][..], &ph].concat()) + 2;
    d[at] ^= 0xff;
    let cert = parse_ratls_certificate(&d).unwrap();
    assert!(matches!(
        cert.binding().report_data,
        BindingCheck::Mismatch { .. }
    ));
    assert!(matches!(
        cert.binding().pubkey_hash,
        BindingCheck::Mismatch { .. }
    ));
}

#[test]
fn gramine_legacy_extension_is_used_without_the_interop_one() {
    let mut d = der(GRAMINE_PEM);
    let at = find(&d, INTEROP_OID_TLV);
    d[at + 7] = 0x08; // 2.23.133.5.4.9 -> 2.23.133.5.4.8
    let cert = parse_ratls_certificate(&d).unwrap();
    assert!(
        matches!(cert.format(), EvidenceFormat::LegacyQuote { oid } if oid.contains("Gramine")),
        "{:?}",
        cert.format()
    );
    assert_eq!(cert.tee(), Tee::Sgx);
    assert!(cert.claims().is_empty());
    assert_eq!(cert.claims_buffer(), None);
    // Legacy: report data = SHA-256(SPKI).
    assert_eq!(
        cert.report_data().0[..32],
        Sha256::digest(cert.spki_der())[..]
    );
    assert_eq!(cert.binding().pubkey_hash, BindingCheck::NotApplicable);
    assert!(cert.binding().holds());
    cert.check_binding().unwrap();
}

#[test]
fn unsupported_tag_is_refused_by_number() {
    let mut d = der(RATS_TLS_PEM);
    let at = find(&d, &[0xd9, 0xea, 0x60, 0x82]);
    d[at + 2] = 0x61;
    let err = parse_ratls_certificate(&d).unwrap_err();
    assert_eq!(err, RaTlsError::UnsupportedTag { tag: 60001 });
    assert!(err.to_string().contains("60001"), "{err}");
}

#[test]
fn certificates_without_evidence_are_not_ratls() {
    assert_eq!(parse_ratls_pem(PLAIN_PEM), Err(RaTlsError::NotRaTls));
    let mut d = der(RATS_TLS_PEM);
    let at = find(&d, INTEROP_OID_TLV);
    d[at + 7] = 0x08;
    assert_eq!(parse_ratls_certificate(&d), Err(RaTlsError::NotRaTls));
}

#[test]
fn garbage_is_an_error() {
    assert!(matches!(
        parse_ratls_certificate(b""),
        Err(RaTlsError::Certificate(_))
    ));
    assert!(matches!(
        parse_ratls_certificate(b"\x30\x03\x02\x01\x01"),
        Err(RaTlsError::Certificate(_))
    ));
    assert!(matches!(
        parse_ratls_pem(b"not pem"),
        Err(RaTlsError::Pem(_))
    ));
    assert!(matches!(
        parse_ratls_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(RaTlsError::Pem(_))
    ));
    let mut d = der(GRAMINE_PEM);
    d.push(0);
    assert!(matches!(
        parse_ratls_certificate(&d),
        Err(RaTlsError::Certificate(_))
    ));
    let d = der(GRAMINE_PEM);
    for len in [1, 10, 100, d.len() / 2, d.len() - 1] {
        assert!(parse_ratls_certificate(&d[..len]).is_err(), "{len}");
    }
}

#[test]
fn parse_extension_reads_the_vector_extensions() {
    for pem_text in [GRAMINE_PEM, RATS_TLS_PEM] {
        let value = extension_value(&der(pem_text));
        let tagged = parse_extension(&value).unwrap();
        assert_eq!(tagged.tag, 60000);
        assert_eq!(tagged.evidence.len(), 4734);
        assert!(tagged.pubkey_hash.is_some());
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Truncate { at: usize },
    Insert { at: usize, byte: u8 },
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match *m {
        Mutation::Flip { at, xor } => bytes[at % len] ^= xor,
        Mutation::Truncate { at } => bytes.truncate(at % len),
        Mutation::Insert { at, byte } => bytes.insert(at % len, byte),
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_extension_values_never_panic(ms in proptest::collection::vec(mutation(), 1..4)) {
        let mut value = extension_value(&der(RATS_TLS_PEM));
        for m in &ms {
            apply(&mut value, m);
        }
        let _ = parse_extension(&value);
    }

    #[test]
    fn mutated_certificates_never_panic(m in mutation()) {
        let mut d = der(GRAMINE_PEM);
        apply(&mut d, &m);
        if let Ok(cert) = parse_ratls_certificate(&d) {
            let _ = cert.check_binding();
        }
    }

    #[test]
    fn flipped_claims_never_bind(at in 0usize..81, xor in 1u8..=255) {
        let mut d = der(RATS_TLS_PEM);
        let claims = parse_ratls_pem(RATS_TLS_PEM).unwrap().claims_buffer().unwrap().to_vec();
        let start = find(&d, &claims);
        d[start + at] ^= xor;
        if let Ok(cert) = parse_ratls_certificate(&d) {
            prop_assert!(!cert.binding().holds());
            prop_assert!(cert.check_binding().is_err());
        }
    }
}
