//! Tampered, truncated, extended and misdirected evidence and collateral:
//! each is refused with the error that names the failed check.

// Test helpers panic on purpose when a vector does not behave.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use veil_attest::{Endorsement, Tee, Time, Verifier, VerifyError};
use veil_attest_dcap::{
    parse_collateral, parse_quote, SgxVerifier, TdxVerifier, MISSING_COLLATERAL,
};

/// Offsets in an SGX quote v3: header 0..48, report body 48..432 (report
/// data 368..432 of the quote), then the signature data.
const SGX_BODY: usize = 48;
const SGX_REPORT_DATA: usize = 48 + 320;
const SGX_SIGNATURE: usize = 432 + 4;

fn flipped(quote: &[u8], at: usize) -> Vec<u8> {
    let mut m = quote.to_vec();
    m[at] ^= 0x01;
    m
}

fn sgx_err(quote: &[u8]) -> VerifyError {
    SgxVerifier::new()
        .verify(quote, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap_err()
}

#[test]
fn flipped_report_body_byte_breaks_the_quote_signature() {
    // MRENCLAVE is at offset 64 of the report body.
    let e = sgx_err(&flipped(SGX_QUOTE, SGX_BODY + 64));
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("by the attestation key"), "{e}");
}

#[test]
fn flipped_report_data_breaks_the_quote_signature() {
    let e = sgx_err(&flipped(SGX_QUOTE, SGX_REPORT_DATA + 5));
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
}

#[test]
fn flipped_header_breaks_the_quote_signature() {
    // QE SVN (offset 8) is signed with the body.
    let e = sgx_err(&flipped(SGX_QUOTE, 8));
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
}

#[test]
fn flipped_signature_byte_is_refused() {
    let e = sgx_err(&flipped(SGX_QUOTE, SGX_SIGNATURE + 10));
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
}

#[test]
fn flipped_attestation_key_breaks_the_qe_binding() {
    let e = sgx_err(&flipped(SGX_QUOTE, SGX_SIGNATURE + 64 + 3));
    assert!(
        matches!(&e, VerifyError::Mismatch { what, .. } if what.contains("QE report data")),
        "{e}"
    );
}

#[test]
fn flipped_qe_report_breaks_the_pck_signature() {
    let e = sgx_err(&flipped(SGX_QUOTE, SGX_SIGNATURE + 128 + 100));
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("QE report"), "{e}");
}

#[test]
fn truncated_quotes_are_malformed() {
    for len in [0, 10, 47, 48, 431, 432, 1000, SGX_QUOTE.len() - 1] {
        let e = sgx_err(&SGX_QUOTE[..len]);
        assert!(matches!(e, VerifyError::Malformed { .. }), "{len}: {e}");
    }
}

#[test]
fn extended_quotes_are_refused_unless_zero_padded() {
    let mut m = SGX_QUOTE.to_vec();
    m.extend_from_slice(b"\x01extra");
    let e = sgx_err(&m);
    assert!(matches!(e, VerifyError::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("not zero padding"), "{e}");
    // Zero padding (as from a fixed-size buffer) carries nothing and is accepted.
    let mut m = SGX_QUOTE.to_vec();
    m.extend_from_slice(&[0; 64]);
    let c = SgxVerifier::new()
        .verify(&m, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap();
    assert_eq!(c.report_data, parse_quote(SGX_QUOTE).unwrap().report_data());
}

#[test]
fn unauthenticated_bytes_in_the_pck_chain_are_refused() {
    let q = parse_quote(SGX_QUOTE).unwrap();
    let text = String::from_utf8_lossy(SGX_QUOTE).into_owned();
    // A line break of the PCK chain turned into another whitespace.
    let nl = SGX_QUOTE
        .iter()
        .enumerate()
        .skip(1100)
        .find(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .unwrap();
    let mut m = SGX_QUOTE.to_vec();
    m[nl] = b'\r';
    let e = sgx_err(&m);
    assert!(e.to_string().contains("canonical PEM"), "{e}");
    // A byte of the root certificate's copy in the quote.
    let third = text
        .match_indices("-----BEGIN CERTIFICATE-----")
        .nth(2)
        .unwrap()
        .0;
    let mut m = SGX_QUOTE.to_vec();
    m[third + 200] ^= 0x01;
    let e = sgx_err(&m);
    assert!(e.to_string().contains("Intel SGX Root CA"), "{e}");
    assert_eq!(q.cert_data_type, 5);
}

#[test]
fn random_bytes_are_malformed() {
    let mut noise = vec![0u8; 4600];
    let mut x: u32 = 0x1234_5678;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    for v in [&SgxVerifier::new() as &dyn Verifier, &TdxVerifier::new()] {
        let e = v
            .verify(&noise, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
            .unwrap_err();
        assert!(matches!(e, VerifyError::Malformed { .. }), "{e}");
    }
    // An SGX header over noise.
    let mut m = SGX_QUOTE[..48].to_vec();
    m.extend_from_slice(&noise);
    let e = sgx_err(&m);
    assert!(matches!(e, VerifyError::Malformed { .. }), "{e}");
}

#[test]
fn quotes_of_the_other_tee_are_wrong_tee() {
    let e = TdxVerifier::new()
        .verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap_err();
    assert_eq!(
        e,
        VerifyError::WrongTee {
            expected: Tee::Tdx,
            found: "sgx".into()
        }
    );
    let e = SgxVerifier::new()
        .verify(TDX_QUOTE, &col(TDX_COLLATERAL), Time::from_unix(TDX_T))
        .unwrap_err();
    assert_eq!(
        e,
        VerifyError::WrongTee {
            expected: Tee::Sgx,
            found: "tdx".into()
        }
    );
    // Even without collateral, the TEE is checked first.
    let e = SgxVerifier::new()
        .verify(TDX_QUOTE, &[], Time::from_unix(TDX_T))
        .unwrap_err();
    assert!(matches!(e, VerifyError::WrongTee { .. }), "{e}");
}

#[test]
fn collateral_of_the_other_tee_is_a_mismatch() {
    let e = SgxVerifier::new()
        .verify(SGX_QUOTE, &col(TDX_COLLATERAL), Time::from_unix(SGX_T))
        .unwrap_err();
    assert_eq!(
        e,
        VerifyError::mismatch("collateral TEE (TCB info id)", "SGX", "TDX")
    );
    let e = TdxVerifier::new()
        .verify(TDX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(TDX_T))
        .unwrap_err();
    assert_eq!(
        e,
        VerifyError::mismatch("collateral TEE (TCB info id)", "TDX", "SGX")
    );
}

#[test]
fn collateral_of_another_platform_is_an_fmspc_mismatch() {
    // The v5 vector's collateral is TDX but for FMSPC 90C06F000000.
    let e = TdxVerifier::new()
        .verify(TDX_QUOTE, &col(TDX5_COLLATERAL), Time::from_unix(TDX5_T))
        .unwrap_err();
    assert_eq!(
        e,
        VerifyError::mismatch(
            "FMSPC (TCB info vs PCK certificate)",
            "90C06F000000",
            "B0C06F000000"
        ),
        "{e}"
    );
}

#[test]
fn missing_and_unusable_collateral_are_usage_errors() {
    let e = SgxVerifier::new()
        .verify(SGX_QUOTE, &[], Time::from_unix(SGX_T))
        .unwrap_err();
    assert_eq!(
        e,
        VerifyError::MissingEndorsement(MISSING_COLLATERAL.into())
    );
    assert_eq!(
        e.to_string(),
        "missing endorsement: SGX/TDX quotes need the DCAP collateral JSON (--endorsement collateral.json)"
    );
    assert!(e.is_usage());
    let other = [Endorsement::Certificates(vec![vec![0x30, 0]])];
    let e = SgxVerifier::new()
        .verify(SGX_QUOTE, &other, Time::from_unix(SGX_T))
        .unwrap_err();
    assert!(matches!(e, VerifyError::MissingEndorsement(_)), "{e}");
    let e = SgxVerifier::new()
        .verify(
            SGX_QUOTE,
            &col(b"{\"tcb_info\": 1}"),
            Time::from_unix(SGX_T),
        )
        .unwrap_err();
    assert!(matches!(e, VerifyError::BadEndorsement(_)), "{e}");
    assert!(e.is_usage());
}

/// The collateral JSON with `field` (a string) changed by `f`.
fn tamper(json: &[u8], field: &str, f: impl FnOnce(&mut String)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(json).unwrap();
    let mut s = v[field].as_str().unwrap().to_owned();
    f(&mut s);
    v[field] = serde_json::Value::String(s);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn tampered_collateral_is_refused() {
    let at = Time::from_unix(SGX_T);
    let v = SgxVerifier::new();
    // Signed TCB info text with a status changed.
    let j = tamper(SGX_COLLATERAL, "tcb_info", |s| {
        *s = s.replacen("OutOfDate", "UpToDate", 1);
    });
    let e = v.verify(SGX_QUOTE, &col(&j), at).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("TCB info"), "{e}");
    // TCB info signature.
    let j = tamper(SGX_COLLATERAL, "tcb_info_signature", |s| {
        let c = if s.starts_with('0') { "1" } else { "0" };
        s.replace_range(0..1, c);
    });
    let e = v.verify(SGX_QUOTE, &col(&j), at).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
    // QE identity text.
    let j = tamper(SGX_COLLATERAL, "qe_identity", |s| {
        *s = s.replacen("\"isvprodid\":1", "\"isvprodid\":2", 1);
    });
    let e = v.verify(SGX_QUOTE, &col(&j), at).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("QE identity"), "{e}");
    // A byte of the root CA CRL's signature (its last bytes).
    let j = tamper(SGX_COLLATERAL, "root_ca_crl", |s| {
        let n = s.len() - 2;
        let c = if &s[n..n + 1] == "0" { "1" } else { "0" };
        s.replace_range(n..n + 1, c);
    });
    let e = v.verify(SGX_QUOTE, &col(&j), at).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("root CA CRL"), "{e}");
    // The same collateral, untouched, still verifies on the same verifier.
    v.verify(SGX_QUOTE, &col(SGX_COLLATERAL), at).unwrap();
}

#[test]
fn collateral_dates_out_of_range_name_the_part() {
    let c = parse_collateral(TDX_COLLATERAL).unwrap();
    let e = TdxVerifier::new()
        .verify(
            TDX_QUOTE,
            &col(TDX_COLLATERAL),
            Time::from_unix(c.qe_identity().next_update.unix() + 1),
        )
        .unwrap_err();
    // After 10:32:27 the PCK CRL, the TCB info and the QE identity have all
    // expired; the checks run in dcap-qvl's order (root CA CRL, TCB info, QE
    // identity, PCK CRL) and name the first that fails: the TCB info.
    assert!(e.to_string().starts_with("TCB info expired"), "{e}");
    let e = TdxVerifier::new()
        .verify(
            TDX_QUOTE,
            &col(TDX_COLLATERAL),
            Time::parse_rfc3339("2025-07-19T10:10:00Z").unwrap(),
        )
        .unwrap_err();
    // At 10:10 only the PCK CRL (next update 10:00:35) has expired.
    assert!(
        e.to_string()
            .starts_with("PCK CRL (Intel SGX PCK Platform CA) expired at 2025-07-19T10:00:35Z"),
        "{e}"
    );
}

/// A mutation of the SGX quote: a byte replaced, or the quote cut short.
#[derive(Debug, Clone)]
enum Mutation {
    Replace { at: usize, xor: u8 },
    Truncate { len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let n = SGX_QUOTE.len();
    prop_oneof![
        4 => (0..n, 1u8..=255).prop_map(|(at, xor)| Mutation::Replace { at, xor }),
        1 => (0..n).prop_map(|len| Mutation::Truncate { len }),
    ]
}

proptest! {
    // Each case costs a verification (milliseconds): 48 keep the suite fast.
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_single_byte_mutation_or_truncation_verifies(m in mutation()) {
        thread_local! {
            static V: SgxVerifier = SgxVerifier::new();
        }
        let mut q = SGX_QUOTE.to_vec();
        match m {
            Mutation::Replace { at, xor } => q[at] ^= xor,
            Mutation::Truncate { len } => q.truncate(len),
        }
        let r = V.with(|v| v.verify(&q, &col(SGX_COLLATERAL), Time::from_unix(SGX_T)));
        prop_assert!(r.is_err(), "mutation {:?} verified", m);
    }

    #[test]
    fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = parse_quote(&bytes);
        let _ = parse_collateral(&bytes);
        let _ = veil_attest_dcap::detect(&bytes);
    }
}
