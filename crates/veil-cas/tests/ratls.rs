//! Launcher certificates carry the attestation evidence in the
//! Interoperable RA-TLS form (attestation spec 3.6, binding version 2 of
//! 4.1), so a peer that does not trust the CAS can verify it itself.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use base64::Engine;
use common::{identity, start};
use veil_api::{AttestRequest, AttestResponse, NonceResponse, RuntimeClaims, ATTEST_DOMAIN};
use veil_attest::{Evidence, Registry, Tee, Time};
use veil_attest_sim::{SimStatement, SimVerifier};
use veil_ratls::{BindingCheck, EvidenceFormat, VEIL_SIM_EVIDENCE_TAG};

const MEASUREMENT: [u8; 48] = [0x11; 48];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launcher_certificate_carries_bound_ratls_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let alice = identity();
    let yaml = format!(
        "name: shop/db\nversion: 1\nowners: [{}]\nservices:\n  - name: app\n    accept:\n      - tee: sim\n        measurement: {}\n    command: [/bin/app]\n",
        alice.fingerprint(),
        hex::encode(MEASUREMENT)
    );
    cas.client(Some(&alice))
        .call(
            hyper::Method::POST,
            "/v1/sessions",
            Some((yaml.into_bytes(), "application/yaml")),
        )
        .await
        .unwrap();

    let key = identity();
    let (_, c) = x509_parser::parse_x509_certificate(key.certificate()).unwrap();
    let spki = c.tbs_certificate.subject_pki.raw.to_vec();
    let n: NonceResponse = cas.client(None).get("/v1/nonce").await.unwrap();
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(&n.nonce, &mut nonce).unwrap();
    let runtime_claims: RuntimeClaims = [("executable".to_owned(), "ab".repeat(48))].into();
    let digest = veil_api::runtime_claims_digest(&runtime_claims);
    let evidence = cas.sim_key().sign(&SimStatement {
        measurement: MEASUREMENT,
        report_data: veil_api::report_data(ATTEST_DOMAIN, &nonce, &spki, &digest),
        issued_at: Time::now(),
        debug: false,
    });
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let req = AttestRequest {
        session: "shop/db".into(),
        service: "app".into(),
        nonce: hex::encode(nonce),
        tee: Tee::Sim,
        evidence: b64(&evidence),
        endorsements: vec![],
        spki: b64(&spki),
        runtime_claims,
    };
    let resp: AttestResponse = cas.client(None).post("/v1/attest", &req).await.unwrap();
    let der = pem::parse(&resp.certificate).unwrap().into_contents();
    let ca_der = pem::parse(&resp.ca).unwrap().into_contents();

    // Still a Veil attested certificate of the session CA...
    let attested = veil_ca::verify_attested_cert(&der, &ca_der, Time::now()).unwrap();
    assert_eq!(attested.subject.service, "app");
    // ...and an RA-TLS certificate whose evidence binds its key.
    let cert = veil_ratls::parse_ratls_certificate(&der).unwrap();
    assert_eq!(
        cert.format(),
        &EvidenceFormat::TaggedEvidence {
            tag: VEIL_SIM_EVIDENCE_TAG
        }
    );
    assert_eq!(cert.tee(), Tee::Sim);
    assert_eq!(cert.evidence(), evidence.as_slice());
    assert_eq!(cert.binding().report_data, BindingCheck::Match);
    assert_eq!(cert.binding().pubkey_hash, BindingCheck::Match);
    cert.check_binding().unwrap();
    assert_eq!(cert.nonce(), Some(&nonce[..]));
    assert_eq!(
        cert.claims_buffer().unwrap(),
        veil_api::ratls_claims_buffer(ATTEST_DOMAIN, &nonce, &spki, &digest)
    );
    // A peer trusting only the sim platform key verifies the evidence.
    let registry = Registry::new().with(SimVerifier::new([cas.sim_key().public_key()]));
    let claims = registry
        .verify(
            &Evidence {
                tee: Tee::Sim,
                bytes: cert.evidence().to_vec(),
            },
            &[],
            Time::now(),
        )
        .unwrap();
    assert_eq!(claims.report_data, cert.report_data());
    assert_eq!(claims.measurement, MEASUREMENT.to_vec());
    cas.stop().await;
}
