//! Veil's report-data binding (attestation spec 4.1, version 2) is an
//! Interoperable RA-TLS binding: evidence bound with `veil_api::report_data`
//! and carried with `veil_api::ratls_claims_buffer` in a certificate issued
//! by `veil_ca` reads back here with its binding holding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sha2::{Digest as _, Sha256};
use veil_attest::{Evidence, Registry, Tee, Time};
use veil_attest_sim::{SimPlatformKey, SimStatement, SimVerifier};
use veil_ca::{issue_attested_cert_with_evidence, AttestedSubject, CaIdentity, Identity};
use veil_ratls::{
    encode_extension, parse_extension, parse_ratls_certificate, tag_for_tee, BindingCheck,
    ClaimValue, EvidenceFormat, EvidenceKind, HashAlg, RaTlsError, VEIL_SIM_EVIDENCE_TAG,
};
use x509_parser::prelude::{FromDer as _, X509Certificate};

const NOW: Time = Time::from_unix(1_764_000_000);
const NONCE: [u8; 32] = [0x4e; 32];
const DIGEST: [u8; 32] = [0xd1; 32];
const MEASUREMENT: [u8; 48] = [0x3c; 48];

fn spki_of(id: &Identity) -> Vec<u8> {
    let (_, c) = X509Certificate::from_der(id.certificate()).unwrap();
    c.tbs_certificate.subject_pki.raw.to_vec()
}

fn subject() -> AttestedSubject {
    AttestedSubject {
        session: "shop/db".into(),
        service: "db".into(),
        tee: Tee::Sim,
        measurement: MEASUREMENT.to_vec(),
        dns: vec!["localhost".into()],
        ips: vec![],
    }
}

/// Sim evidence bound to (nonce, spki, digest) the Veil way, and the
/// certificate the CAS would issue for `cert_spki` carrying it.
fn issue(platform: &SimPlatformKey, bound_spki: &[u8], cert_spki: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let domain = veil_api::ATTEST_DOMAIN;
    let buffer = veil_api::ratls_claims_buffer(domain, &NONCE, bound_spki, &DIGEST);
    let report_data = veil_api::report_data(domain, &NONCE, bound_spki, &DIGEST);
    let evidence = platform.sign(&SimStatement {
        measurement: MEASUREMENT,
        report_data,
        issued_at: NOW,
        debug: false,
    });
    let ca = CaIdentity::generate("shop/db session CA", 30, NOW).unwrap();
    let value = encode_extension(tag_for_tee(Tee::Sim).unwrap(), &evidence, &buffer);
    let der = issue_attested_cert_with_evidence(
        &ca,
        cert_spki,
        &subject(),
        NOW,
        Time::from_unix(NOW.unix() + 3600),
        Some(&value),
    )
    .unwrap();
    (der, evidence)
}

#[test]
fn veil_binding_v2_is_a_valid_ratls_binding() {
    let platform = SimPlatformKey::generate().unwrap();
    let spki = spki_of(&Identity::generate("db", NOW).unwrap());
    let (der, evidence) = issue(&platform, &spki, &spki);

    let cert = parse_ratls_certificate(&der).unwrap();
    assert_eq!(
        cert.format(),
        &EvidenceFormat::TaggedEvidence {
            tag: VEIL_SIM_EVIDENCE_TAG
        }
    );
    assert_eq!(
        cert.evidence_kind(),
        EvidenceKind::SimEvidence { version: 1 }
    );
    assert_eq!(cert.tee(), Tee::Sim);
    assert_eq!(cert.evidence(), evidence.as_slice());
    assert_eq!(cert.binding().report_data, BindingCheck::Match);
    assert_eq!(cert.binding().pubkey_hash, BindingCheck::Match);
    cert.check_binding().unwrap();
    assert_eq!(
        cert.report_data(),
        veil_api::report_data(veil_api::ATTEST_DOMAIN, &NONCE, &spki, &DIGEST)
    );
    assert_eq!(cert.nonce(), Some(&NONCE[..]));
    let ph = cert.pubkey_hash().unwrap();
    assert_eq!(ph.alg, HashAlg::Sha256);
    assert_eq!(ph.value, Sha256::digest(&spki).to_vec());
    assert_eq!(
        cert.claims().get("veil-claims"),
        Some(&ClaimValue::Bytes(DIGEST.to_vec()))
    );
    assert_eq!(
        cert.claims().get("veil-domain"),
        Some(&ClaimValue::Text("veil-attest-v1".into()))
    );
    assert_eq!(
        cert.claims_buffer().unwrap(),
        veil_api::ratls_claims_buffer(veil_api::ATTEST_DOMAIN, &NONCE, &spki, &DIGEST)
    );

    // The evidence verifies, and its verified report data is what binds.
    let registry = Registry::new().with(SimVerifier::new([platform.public_key()]));
    let claims = registry
        .verify(
            &Evidence {
                tee: cert.tee(),
                bytes: cert.evidence().to_vec(),
            },
            &[],
            NOW,
        )
        .unwrap();
    assert_eq!(claims.report_data, cert.report_data());
    assert_eq!(
        claims.report_data.0[..32],
        Sha256::digest(cert.claims_buffer().unwrap())[..]
    );
    assert_eq!(claims.report_data.0[32..], [0u8; 32]);
}

#[test]
fn evidence_bound_to_another_key_does_not_bind() {
    let platform = SimPlatformKey::generate().unwrap();
    let bound = spki_of(&Identity::generate("other", NOW).unwrap());
    let spki = spki_of(&Identity::generate("db", NOW).unwrap());
    let (der, _) = issue(&platform, &bound, &spki);
    let cert = parse_ratls_certificate(&der).unwrap();
    // The claims buffer is consistent with the evidence, but names the
    // other key.
    assert_eq!(cert.binding().report_data, BindingCheck::Match);
    assert!(matches!(
        cert.binding().pubkey_hash,
        BindingCheck::Mismatch { .. }
    ));
    let err = cert.check_binding().unwrap_err();
    assert!(
        matches!(&err, RaTlsError::BindingMismatch { what, .. } if what.contains("pubkey-hash")),
        "{err}"
    );
}

#[test]
fn flipped_evidence_report_data_does_not_bind() {
    let platform = SimPlatformKey::generate().unwrap();
    let spki = spki_of(&Identity::generate("db", NOW).unwrap());
    let (der, evidence) = issue(&platform, &spki, &spki);
    let value = {
        let (_, c) = X509Certificate::from_der(&der).unwrap();
        c.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.23.133.5.4.9")
            .unwrap()
            .value
            .to_vec()
    };
    let tagged = parse_extension(&value).unwrap();
    let mut bad = evidence.clone();
    bad[96] ^= 0x01; // first report data byte of sim evidence
    let forged = encode_extension(tagged.tag, &bad, &tagged.claims_buffer);
    let at = der.windows(value.len()).position(|w| w == value).unwrap();
    let mut der2 = der.clone();
    der2[at..at + value.len()].copy_from_slice(&forged);
    let cert = parse_ratls_certificate(&der2).unwrap();
    assert!(matches!(
        cert.binding().report_data,
        BindingCheck::Mismatch { .. }
    ));
    let err = cert.check_binding().unwrap_err().to_string();
    assert!(err.contains("SHA-256(claims buffer)"), "{err}");
}
