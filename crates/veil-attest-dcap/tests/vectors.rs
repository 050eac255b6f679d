//! The real SGX and TDX vectors in testdata/, verified at the times where
//! they are valid (see testdata/README.md), and outside them.

// Test helpers panic on purpose when a vector does not behave.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use veil_attest::{TcbStatus, Tee, TeeClaims, Time, Verifier, VerifyError};
use veil_attest_dcap::{
    detect, parse_collateral, parse_quote, ReportBody, SgxVerifier, TdxVerifier,
};

fn sgx_verifiers() -> [SgxVerifier; 2] {
    [SgxVerifier::new(), SgxVerifier::without_cache()]
}

fn tdx_verifiers() -> [TdxVerifier; 2] {
    [TdxVerifier::new(), TdxVerifier::without_cache()]
}

#[test]
fn sgx_vector_verifies_with_status_and_advisories() {
    for v in sgx_verifiers() {
        // Twice: the second call of the cached verifier is served from the cache.
        for _ in 0..2 {
            let c = v
                .verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
                .unwrap();
            assert_eq!(c.tee, Tee::Sgx);
            assert!(!c.insecure);
            assert_eq!(c.tcb_status, TcbStatus::ConfigurationAndSWHardeningNeeded);
            assert_eq!(c.advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);
            assert!(!c.debug);
            assert_eq!(c.measurement.len(), 32);
            assert_eq!(c.measurements["mrenclave"], c.measurement);
            assert_eq!(c.signer.as_deref(), Some(&c.measurements["mrsigner"][..]));
            assert!(c.product_id.is_some());
            assert!(c.svn.is_some());
            assert_eq!(c.verified_at, Time::from_unix(SGX_T));
            let TeeClaims::Sgx(s) = &c.tee_claims else {
                panic!("not SGX claims")
            };
            assert_eq!(s.quote_version, 3);
            assert_eq!(
                s.fmspc.as_deref(),
                Some(&hex::decode("00A067110000").unwrap()[..])
            );
            assert_eq!(s.attributes[0], 0x05);
            assert_eq!(s.mr_enclave, c.measurement);
            assert!(s.platform_tcb_status.is_some());
            assert!(s.qe_tcb_status.is_some());
            let parsed = parse_quote(SGX_QUOTE).unwrap();
            assert_eq!(c.report_data, parsed.report_data());
        }
    }
    let cached = SgxVerifier::new();
    for _ in 0..3 {
        cached
            .verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(SGX_T))
            .unwrap();
    }
    let stats = cached.cache().unwrap().stats();
    assert_eq!(
        (stats.entries, stats.hits, stats.misses),
        (1, 2, 1),
        "{stats:?}"
    );
    assert!(stats.signature_hits > 0, "{stats:?}");
}

#[test]
fn tdx_v4_vector_verifies_up_to_date() {
    for v in tdx_verifiers() {
        for _ in 0..2 {
            let c = v
                .verify(TDX_QUOTE, &col(TDX_COLLATERAL), Time::from_unix(TDX_T))
                .unwrap();
            assert_eq!(c.tee, Tee::Tdx);
            assert_eq!(c.tcb_status, TcbStatus::UpToDate);
            assert!(c.advisories.is_empty(), "{:?}", c.advisories);
            assert!(c.signer.is_none());
            assert!(c.svn.is_none());
            assert_eq!(c.measurement.len(), 48);
            let names: Vec<&str> = c.measurements.keys().map(String::as_str).collect();
            assert_eq!(
                names,
                [
                    "mrconfigid",
                    "mrowner",
                    "mrownerconfig",
                    "mrseam",
                    "mrtd",
                    "rtmr0",
                    "rtmr1",
                    "rtmr2",
                    "rtmr3"
                ]
            );
            assert_eq!(c.measurements["mrtd"], c.measurement);
            let TeeClaims::Tdx(t) = &c.tee_claims else {
                panic!("not TDX claims")
            };
            assert_eq!(t.quote_version, 4);
            assert_eq!(t.body, "1.0");
            assert_eq!(
                t.fmspc.as_deref(),
                Some(&hex::decode("B0C06F000000").unwrap()[..])
            );
            assert_eq!(t.rt_mr.len(), 4);
            assert_eq!(c.debug, t.td_attributes[0] & 1 != 0);
            assert_eq!(
                c.platform_id.is_some(),
                c.platform_id.as_ref().is_some_and(|p| !p.is_empty())
            );
        }
    }
}

#[test]
fn tdx_v5_outdated_vector_is_rejected_no_matching_tcb_level() {
    for v in tdx_verifiers() {
        let e = v
            .verify(TDX5_QUOTE, &col(TDX5_COLLATERAL), Time::from_unix(TDX5_T))
            .unwrap_err();
        assert!(matches!(e, VerifyError::Collateral(_)), "{e}");
        assert!(e.to_string().contains("no matching"), "{e}");
    }
    let q = parse_quote(TDX5_QUOTE).unwrap();
    assert_eq!(q.version, 5);
}

#[test]
fn gotdx_vector_is_rejected() {
    // As published, 39 bytes of text follow the quote: refused as malformed.
    for v in tdx_verifiers() {
        let e = v
            .verify(
                GOTDX_QUOTE,
                &col(GOTDX_COLLATERAL),
                Time::from_unix(GOTDX_T),
            )
            .unwrap_err();
        assert!(matches!(e, VerifyError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains("not zero padding"), "{e}");
    }
    // Without them, the collateral has no TCB level for the platform.
    let q = parse_quote(GOTDX_QUOTE).unwrap();
    assert_eq!(q.trailing_len, 39);
    assert_eq!(q.quote_len, GOTDX_QUOTE_LEN);
    let trimmed = &GOTDX_QUOTE[..q.quote_len];
    for v in tdx_verifiers() {
        let e = v
            .verify(trimmed, &col(GOTDX_COLLATERAL), Time::from_unix(GOTDX_T))
            .unwrap_err();
        assert!(matches!(e, VerifyError::Collateral(_)), "{e}");
        assert!(e.to_string().contains("no matching TCB level"), "{e}");
    }
}

#[test]
fn tdx_zero_padding_after_the_quote_is_accepted() {
    let q = parse_quote(TDX_QUOTE).unwrap();
    assert_eq!(q.trailing_len, 70);
    assert!(!q.trailing_nonzero);
}

#[test]
fn sgx_window_edges_name_the_failed_check() {
    let c = parse_collateral(SGX_COLLATERAL).unwrap();
    let issue = c.tcb_info().issue_date.unix();
    let next = c.tcb_info().next_update.unix();
    for v in sgx_verifiers() {
        let e = v
            .verify(
                SGX_QUOTE,
                &col(SGX_COLLATERAL),
                Time::from_unix(issue - DAY),
            )
            .unwrap_err();
        assert!(matches!(e, VerifyError::NotYetValid { .. }), "{e}");
        assert!(
            e.to_string().starts_with("TCB info issued in the future"),
            "{e}"
        );

        let e = v
            .verify(SGX_QUOTE, &col(SGX_COLLATERAL), Time::from_unix(next + DAY))
            .unwrap_err();
        assert!(matches!(e, VerifyError::Expired { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("TCB info expired at 2025-07-19T10:56:11Z"),
            "{e}"
        );

        let e = v
            .verify(
                SGX_QUOTE,
                &col(SGX_COLLATERAL),
                Time::from_unix(SGX_T + 365 * DAY),
            )
            .unwrap_err();
        assert!(matches!(e, VerifyError::Expired { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("root CA CRL expired at 2026-04-03T11:21:57Z"),
            "{e}"
        );
    }
}

#[test]
fn debug_enclaves_parse_and_show_debug() {
    for quote in [OCCLUM_QUOTE, GRAMINE_QUOTE] {
        let q = parse_quote(quote).unwrap();
        assert_eq!(q.tee, Tee::Sgx);
        assert_eq!(q.version, 3);
        assert!(q.debug());
        let ReportBody::Sgx(body) = &q.body else {
            panic!("not an SGX body")
        };
        assert_eq!(body.attributes[0], 0x07);
        assert_eq!(q.cert_data_type, 5);
        assert!(q.pck_fmspc.is_some());
        assert_eq!(detect(quote), Some(Tee::Sgx));
        // The verifier's own form checks pass too (it reports debug, never refuses it).
        assert!(SgxVerifier::new().check_form(quote).unwrap().debug());
    }
    let q = parse_quote(SGX_QUOTE).unwrap();
    assert!(!q.debug());
    assert_eq!(
        q.pck_fmspc.as_deref(),
        Some(&hex::decode("00A067110000").unwrap()[..])
    );
    assert_eq!(q.pck_ca.as_deref(), Some("processor"));
}

#[test]
fn parsed_quotes_show_every_field() {
    let q = parse_quote(TDX_QUOTE).unwrap();
    assert_eq!((q.tee, q.version, q.attestation_key_type), (Tee::Tdx, 4, 2));
    let ReportBody::Td(td) = &q.body else {
        panic!("not a TD body")
    };
    assert_eq!(td.body, "1.0");
    assert_eq!(td.mr_td.len(), 48);
    assert!(td.tee_tcb_svn2.is_none());
    let q5 = parse_quote(TDX5_QUOTE).unwrap();
    let ReportBody::Td(td5) = &q5.body else {
        panic!("not a TD body")
    };
    assert_eq!(q5.version, 5);
    assert_eq!(td5.body, "1.5");
    assert!(td5.tee_tcb_svn2.is_some() && td5.mr_service_td.is_some());
    let json = serde_json::to_value(&q).unwrap();
    assert_eq!(json["tee"], "tdx");
    assert_eq!(json["body"]["kind"], "td");
    assert_eq!(json["body"]["rt_mr"].as_array().map(Vec::len), Some(4));
}

#[test]
fn detect_tells_sgx_from_tdx_and_from_noise() {
    assert_eq!(detect(SGX_QUOTE), Some(Tee::Sgx));
    assert_eq!(detect(TDX_QUOTE), Some(Tee::Tdx));
    assert_eq!(detect(TDX5_QUOTE), Some(Tee::Tdx));
    assert_eq!(detect(GOTDX_QUOTE), Some(Tee::Tdx));
    assert_eq!(detect(b""), None);
    assert_eq!(detect(&SGX_QUOTE[..47]), None);
    assert_eq!(detect(&[0u8; 5000]), None);
    assert_eq!(detect(&[0xa5u8; 5000]), None);
    assert_eq!(detect(br#"{"tcb_info": 1}"#), None);
    // An SEV-SNP report (version 2, 1184 bytes) is no quote.
    let mut snp = vec![0u8; 1184];
    snp[0] = 2;
    assert_eq!(detect(&snp), None);
}

#[test]
fn collateral_parses_with_dates_and_identity() {
    let c = parse_collateral(SGX_COLLATERAL).unwrap();
    assert_eq!(c.tee(), Tee::Sgx);
    assert_eq!(c.fmspc(), [0x00, 0xA0, 0x67, 0x11, 0x00, 0x00]);
    assert_eq!(
        c.tcb_info().issue_date,
        Time::parse_rfc3339("2025-06-19T10:56:11Z").unwrap()
    );
    assert_eq!(
        c.qe_identity().next_update,
        Time::parse_rfc3339("2025-07-19T10:01:18Z").unwrap()
    );
    assert_eq!(c.pck_crl_issuer(), "Intel SGX PCK Processor CA");
    let (from, to) = c.validity();
    assert!(from <= Time::from_unix(SGX_T) && Time::from_unix(SGX_T) <= to);
    // The earliest next update is the QE identity's.
    assert_eq!(to, c.qe_identity().next_update);
    let t = parse_collateral(TDX_COLLATERAL).unwrap();
    assert_eq!(t.tee(), Tee::Tdx);
    assert_eq!(t.pck_crl_issuer(), "Intel SGX PCK Platform CA");
    for json in [&b""[..], b"{}", b"[]", b"not json", &SGX_COLLATERAL[..100]] {
        let e = parse_collateral(json).unwrap_err();
        assert!(matches!(e, VerifyError::BadEndorsement(_)), "{e}");
    }
}
