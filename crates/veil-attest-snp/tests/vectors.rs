//! Real SEV-SNP reports and certificates (see testdata/README.md), verified
//! at fixed times.

use veil_attest::{
    parse_certificates, Endorsement, Evidence, Registry, ReportData, SnpSigner, SnpTcb, TcbStatus,
    Tee, TeeClaims, Time, Verifier, VerifyError,
};
use veil_attest_snp::{looks_like_snp_report, parse_report, SnpVerifier};

const REPORT_V2: &[u8] = include_bytes!("../testdata/trustee_report_v2.bin");
const VCEK: &[u8] = include_bytes!("../testdata/trustee_vcek.der");
const VCEK_INVALID_LEGACY: &[u8] = include_bytes!("../testdata/trustee_vcek_invalid_legacy.der");
const VCEK_INVALID_NEW: &[u8] = include_bytes!("../testdata/trustee_vcek_invalid_new.der");
const VLEK_REPORT: &[u8] = include_bytes!("../testdata/trustee_vlek_report.bin");
const VLEK: &[u8] = include_bytes!("../testdata/trustee_vlek.der");
const ASK_ARK_ASVK: &[u8] = include_bytes!("../testdata/milan_ask_ark_asvk.pem");
const VIRTEE_REPORT_HEX: &[u8] = include_bytes!("../testdata/virtee_report_milan.hex");
const VIRTEE_VCEK: &[u8] = include_bytes!("../testdata/virtee_vcek_milan.der");
const VIRTEE_VCEK_TURIN: &[u8] = include_bytes!("../testdata/virtee_vcek_turin.der");
const CHAIN_MILAN: &[u8] = include_bytes!("../testdata/virtee_cert_chain_milan.pem");
const CHAIN_TURIN: &[u8] = include_bytes!("../testdata/virtee_cert_chain_turin.pem");
const FAKE_ARK: &[u8] = include_bytes!("../testdata/fake_ark_milan.pem");
const TDX_QUOTE: &[u8] = include_bytes!("../testdata/dcapqvl_tdx_quote.bin");

fn t(s: &str) -> Time {
    Time::parse_rfc3339(s).expect("test time")
}

/// Inside the trustee and virtee VCEK windows.
fn t_vcek() -> Time {
    t("2025-01-01T00:00:00Z")
}

/// Inside the VLEK window (2024-12-10 .. 2025-12-10).
fn t_vlek() -> Time {
    t("2025-06-01T00:00:00Z")
}

fn certs(parts: &[&[u8]]) -> Vec<Endorsement> {
    let mut all = Vec::new();
    for p in parts {
        all.extend(parse_certificates(p).expect("test certificates"));
    }
    vec![Endorsement::Certificates(all)]
}

fn verify(
    report: &[u8],
    endorsements: &[Endorsement],
    at: Time,
) -> Result<veil_attest::Claims, VerifyError> {
    SnpVerifier::default().verify(report, endorsements, at)
}

fn err(report: &[u8], endorsements: &[Endorsement], at: Time) -> VerifyError {
    match verify(report, endorsements, at) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn trustee_v2_verifies_with_builtin_chain() {
    let claims = verify(REPORT_V2, &certs(&[VCEK]), t_vcek()).unwrap();
    assert_eq!(claims.tee, Tee::Snp);
    assert!(!claims.insecure);
    assert_eq!(claims.measurement, REPORT_V2[0x90..0xC0].to_vec());
    assert_eq!(claims.measurements.len(), 1);
    assert_eq!(claims.measurements["measurement"], claims.measurement);
    assert_eq!(claims.svn, Some(4));
    assert_eq!(claims.product_id, None);
    assert!(!claims.debug);
    assert_eq!(claims.tcb_status, TcbStatus::NotApplicable);
    assert!(claims.advisories.is_empty());
    assert_eq!(
        claims.report_data,
        ReportData(REPORT_V2[0x50..0x90].try_into().unwrap())
    );
    assert_eq!(claims.platform_id, Some(REPORT_V2[0x1A0..0x1E0].to_vec()));
    assert_eq!(claims.verified_at, t_vcek());
    // AUTHOR_KEY_EN is clear and an ID block was given: the ID key signs.
    assert_eq!(REPORT_V2[0x48] & 1, 0);
    assert_eq!(claims.signer, Some(REPORT_V2[0xE0..0x110].to_vec()));
    let TeeClaims::Snp(snp) = &claims.tee_claims else {
        panic!("not SNP claims: {:?}", claims.tee_claims)
    };
    assert_eq!(snp.version, 2);
    assert_eq!(snp.signer, SnpSigner::Vcek);
    assert_eq!(snp.guest_svn, 4);
    assert_eq!(snp.signature_algo, 1);
    assert_eq!(
        snp.reported_tcb,
        SnpTcb {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None
        }
    );
    assert_eq!(snp.measurement, claims.measurement);
    assert_eq!(snp.chip_id.len(), 64);
    assert_eq!(snp.cpuid, None);
    // The same claims as the unverified parse says.
    assert_eq!(*snp, parse_report(REPORT_V2).unwrap().snp);
}

#[test]
fn trustee_v2_verifies_with_supplied_chain_in_any_order() {
    let expected = verify(REPORT_V2, &certs(&[VCEK]), t_vcek()).unwrap();
    // Chain first, VCEK last.
    let claims = verify(REPORT_V2, &certs(&[CHAIN_MILAN, VCEK]), t_vcek()).unwrap();
    assert_eq!(claims, expected);
    // VCEK first, then ARK before ASK, in separate endorsements.
    let chain = parse_certificates(CHAIN_MILAN).unwrap();
    let split = vec![
        Endorsement::Certificates(vec![VCEK.to_vec()]),
        Endorsement::Certificates(vec![chain[1].clone()]),
        Endorsement::Certificates(vec![chain[0].clone(), VCEK.to_vec()]),
    ];
    assert_eq!(verify(REPORT_V2, &split, t_vcek()).unwrap(), expected);
    // Only the ARK (AMD's): the ASK comes from the built-in chain.
    let ark_only = certs(&[VCEK])
        .into_iter()
        .chain([Endorsement::Certificates(vec![chain[1].clone()])])
        .collect::<Vec<_>>();
    assert_eq!(verify(REPORT_V2, &ark_only, t_vcek()).unwrap(), expected);
}

#[test]
fn virtee_hex_report_verifies() {
    let claims = verify(VIRTEE_REPORT_HEX, &certs(&[VIRTEE_VCEK]), t_vcek()).unwrap();
    assert_eq!(claims.tee, Tee::Snp);
    let parsed = parse_report(VIRTEE_REPORT_HEX).unwrap();
    assert_eq!(claims.measurement, parsed.snp.measurement);
    assert_eq!(claims.report_data, parsed.report_data);
    // With its chain, and with whitespace in the hex.
    let spaced: Vec<u8> = VIRTEE_REPORT_HEX
        .chunks(32)
        .flat_map(|c| c.iter().copied().chain(*b"\n"))
        .collect();
    assert_eq!(
        verify(&spaced, &certs(&[CHAIN_MILAN, VIRTEE_VCEK]), t_vcek()).unwrap(),
        claims
    );
    // The binary form verifies too.
    assert_eq!(
        verify(parsed.raw(), &certs(&[VIRTEE_VCEK]), t_vcek()).unwrap(),
        claims
    );
}

#[test]
fn vlek_report_verifies_with_asvk_chain_and_expires() {
    let claims = verify(VLEK_REPORT, &certs(&[VLEK, ASK_ARK_ASVK]), t_vlek()).unwrap();
    let TeeClaims::Snp(snp) = &claims.tee_claims else {
        panic!("not SNP claims")
    };
    assert_eq!(snp.signer, SnpSigner::Vlek);
    assert_eq!(snp.version, 3);
    assert_eq!(snp.cpuid, Some([0x19, 0x01, 0x01]));
    assert_eq!(claims.platform_id, None, "a VLEK report masks CHIP_ID");
    assert_eq!(snp.vmpl, 1);

    // Order does not matter.
    let mut rev = parse_certificates(ASK_ARK_ASVK).unwrap();
    rev.reverse();
    rev.push(VLEK.to_vec());
    assert_eq!(
        verify(VLEK_REPORT, &[Endorsement::Certificates(rev)], t_vlek()).unwrap(),
        claims
    );

    // After the VLEK's not_after.
    let e = err(
        VLEK_REPORT,
        &certs(&[VLEK, ASK_ARK_ASVK]),
        t("2025-12-11T00:00:00Z"),
    );
    assert!(matches!(e, VerifyError::Expired { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("VLEK certificate expired at 2025-12-10T22:14:21Z"),
        "{e}"
    );
    // One day before its not_before.
    let e = err(
        VLEK_REPORT,
        &certs(&[VLEK, ASK_ARK_ASVK]),
        t("2024-12-09T22:14:21Z"),
    );
    assert!(
        e.to_string()
            .contains("VLEK certificate issued in the future"),
        "{e}"
    );
}

#[test]
fn vlek_report_needs_vlek_and_asvk() {
    // No ASVK (only ASK and ARK), and none built in.
    let chain = parse_certificates(ASK_ARK_ASVK).unwrap();
    let no_asvk = vec![Endorsement::Certificates(vec![
        VLEK.to_vec(),
        chain[0].clone(),
        chain[1].clone(),
    ])];
    let e = err(VLEK_REPORT, &no_asvk, t_vlek());
    assert!(matches!(e, VerifyError::MissingEndorsement(_)), "{e}");
    assert!(e.to_string().contains("ASVK"), "{e}");
    // A VCEK for a VLEK report.
    let e = err(VLEK_REPORT, &certs(&[VCEK, ASK_ARK_ASVK]), t_vlek());
    assert!(matches!(e, VerifyError::MissingEndorsement(_)), "{e}");
    assert!(e.to_string().contains("VLEK certificate"), "{e}");
    // A VLEK for a VCEK report.
    let e = err(REPORT_V2, &certs(&[VLEK, ASK_ARK_ASVK]), t_vlek());
    assert!(e.to_string().contains("VCEK certificate"), "{e}");
    // The VLEK signed by the ASK instead of the ASVK: it is not.
    let forged_mid = vec![Endorsement::Certificates(vec![
        VLEK.to_vec(),
        chain[1].clone(),
    ])];
    assert!(verify(VLEK_REPORT, &forged_mid, t_vlek()).is_err());
}

#[test]
fn invalid_trustee_vceks_are_rejected() {
    for vcek in [VCEK_INVALID_LEGACY, VCEK_INVALID_NEW] {
        let e = err(REPORT_V2, &certs(&[vcek]), t_vcek());
        let msg = e.to_string();
        assert!(
            msg.contains("VCEK certificate")
                || msg.contains("report signature does not verify with VCEK"),
            "{msg}"
        );
        let e2 = err(REPORT_V2, &certs(&[vcek, CHAIN_MILAN]), t_vcek());
        assert!(matches!(e2, VerifyError::BadSignature { .. }), "{e2}");
        assert!(e2.to_string().contains("VCEK certificate"), "{e2}");
    }
}

#[test]
fn wrong_vcek_is_rejected_naming_the_check() {
    // A genuine Milan VCEK, but for another chip.
    let e = err(REPORT_V2, &certs(&[VIRTEE_VCEK]), t_vcek());
    assert!(matches!(e, VerifyError::Mismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("chip id mismatch") || msg.contains("reported TCB"),
        "{msg}"
    );
    let e = err(VIRTEE_REPORT_HEX, &certs(&[VCEK]), t_vcek());
    assert!(matches!(e, VerifyError::Mismatch { .. }), "{e}");
}

#[test]
fn vcek_not_yet_valid_or_expired() {
    // trustee VCEK: 2023-01-24T17:58:26Z .. 2030-01-24T17:58:26Z.
    let e = err(REPORT_V2, &certs(&[VCEK]), t("2023-01-23T17:58:26Z"));
    assert!(matches!(e, VerifyError::NotYetValid { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("VCEK certificate issued in the future"),
        "{e}"
    );
    let e = err(REPORT_V2, &certs(&[VCEK]), t("2030-01-25T00:00:00Z"));
    assert!(
        e.to_string()
            .starts_with("VCEK certificate expired at 2030-01-24T17:58:26Z"),
        "{e}"
    );
    // The built-in ASK/ARK (2020-10-22 .. 2045-10-22) are checked too.
    let e = err(REPORT_V2, &certs(&[VCEK]), t("2046-01-01T00:00:00Z"));
    assert!(e.to_string().contains("expired"), "{e}");
    let e = err(REPORT_V2, &certs(&[VCEK]), t("2019-01-01T00:00:00Z"));
    assert!(
        e.to_string()
            .contains("built-in ARK certificate issued in the future"),
        "{e}"
    );
    // Exactly at the edges: valid.
    verify(REPORT_V2, &certs(&[VCEK]), t("2023-01-24T17:58:26Z")).unwrap();
    verify(REPORT_V2, &certs(&[VCEK]), t("2030-01-24T17:58:26Z")).unwrap();
}

fn flipped(at: usize) -> Vec<u8> {
    let mut b = REPORT_V2.to_vec();
    b[at] ^= 0x01;
    b
}

#[test]
fn flipped_bytes_are_rejected() {
    let vcek = certs(&[VCEK]);
    // Reserved bytes inside the signed part: the sev decoder refuses them.
    let e = err(&flipped(0x29F), &vcek, t_vcek());
    assert!(matches!(e, VerifyError::Malformed { .. }), "{e}");
    // Measurement (body), report data, guest policy: the signature fails.
    for at in [0x90, 0x50, 0x8F, 0x08, 0x1E8] {
        let e = err(&flipped(at), &vcek, t_vcek());
        assert!(
            matches!(e, VerifyError::BadSignature { .. }),
            "{at:#x}: {e}"
        );
        assert!(
            e.to_string()
                .contains("report signature does not verify with VCEK"),
            "{at:#x}: {e}"
        );
    }
    // R and S.
    for at in [0x2A0, 0x2A0 + 47, 0x2A0 + 72, 0x2A0 + 72 + 47] {
        let e = err(&flipped(at), &vcek, t_vcek());
        assert!(
            matches!(e, VerifyError::BadSignature { .. }),
            "{at:#x}: {e}"
        );
    }
    // High bytes of R and S, reserved bytes of the signature field.
    for at in [0x2A0 + 48, 0x2A0 + 71, 0x2A0 + 72 + 48, 0x2A0 + 144, 0x49F] {
        assert!(verify(&flipped(at), &vcek, t_vcek()).is_err(), "{at:#x}");
    }
    // Reported TCB and chip id: named mismatches.
    let e = err(&flipped(0x180), &vcek, t_vcek());
    assert!(
        e.to_string()
            .contains("reported TCB bootloader SPL mismatch"),
        "{e}"
    );
    let e = err(&flipped(0x1A0), &vcek, t_vcek());
    assert!(e.to_string().contains("chip id mismatch"), "{e}");
    // Signing key switched to VLEK: the VCEK is no longer what is asked for.
    let mut b = REPORT_V2.to_vec();
    b[0x48] |= 1 << 2;
    assert!(verify(&b, &vcek, t_vcek()).is_err());
    // Signature algorithm.
    let e = err(&flipped(0x34), &vcek, t_vcek());
    assert!(e.to_string().contains("signature algorithm"), "{e}");
}

#[test]
fn truncated_or_extended_reports_are_malformed() {
    let vcek = certs(&[VCEK]);
    for len in [0, 1, 4, 0x2A0, 0x4A0 - 1] {
        let e = err(&REPORT_V2[..len], &vcek, t_vcek());
        assert!(matches!(e, VerifyError::Malformed { .. }), "{len}: {e}");
    }
    for extra in [1, 16, 0x4A0] {
        let mut b = REPORT_V2.to_vec();
        b.extend(std::iter::repeat_n(0, extra));
        let e = err(&b, &vcek, t_vcek());
        assert!(matches!(e, VerifyError::Malformed { .. }), "{extra}: {e}");
    }
    // Hex text one byte short or long.
    let e = err(
        &VIRTEE_REPORT_HEX[..VIRTEE_REPORT_HEX.len() - 2],
        &certs(&[VIRTEE_VCEK]),
        t_vcek(),
    );
    assert!(matches!(e, VerifyError::Malformed { .. }), "{e}");
    let mut long = VIRTEE_REPORT_HEX.to_vec();
    long.extend_from_slice(b"00");
    let e = err(&long, &certs(&[VIRTEE_VCEK]), t_vcek());
    assert!(matches!(e, VerifyError::Malformed { .. }), "{e}");
    let mut odd = VIRTEE_REPORT_HEX.to_vec();
    odd.push(b'0');
    assert!(matches!(
        err(&odd, &certs(&[VIRTEE_VCEK]), t_vcek()),
        VerifyError::Malformed { .. }
    ));
}

#[test]
fn other_generation_chain_is_rejected() {
    // A Turin ARK/ASK with a Milan VCEK and report.
    let e = err(REPORT_V2, &certs(&[VCEK, CHAIN_TURIN]), t_vcek());
    assert!(matches!(e, VerifyError::Untrusted { .. }), "{e}");
    assert!(e.to_string().contains("not AMD's ARK-Milan"), "{e}");
    // Only the Turin ASK: it is not signed by the Milan ARK.
    let turin = parse_certificates(CHAIN_TURIN).unwrap();
    let e = err(
        REPORT_V2,
        &[Endorsement::Certificates(vec![
            VCEK.to_vec(),
            turin[0].clone(),
        ])],
        t_vcek(),
    );
    assert!(e.to_string().contains("ASK"), "{e}");
    // A Turin VCEK with a Milan (version 2) report.
    let e = err(REPORT_V2, &certs(&[VIRTEE_VCEK_TURIN]), t_vcek());
    assert!(e.to_string().contains("product generation mismatch"), "{e}");
    let e = err(
        REPORT_V2,
        &certs(&[VIRTEE_VCEK_TURIN, CHAIN_TURIN]),
        t_vcek(),
    );
    assert!(e.to_string().contains("product generation mismatch"), "{e}");
}

#[test]
fn supplied_ark_that_is_not_amds_is_untrusted() {
    let e = err(REPORT_V2, &certs(&[VCEK, FAKE_ARK]), t_vcek());
    assert!(matches!(e, VerifyError::Untrusted { .. }), "{e}");
    // With AMD's real ASK beside the fake ARK.
    let e = err(REPORT_V2, &certs(&[FAKE_ARK, CHAIN_MILAN, VCEK]), t_vcek());
    assert!(matches!(e, VerifyError::Untrusted { .. }), "{e}");
    // AMD's ARK with one bit of its signature flipped is not AMD's ARK.
    let mut ark = parse_certificates(CHAIN_MILAN).unwrap()[1].clone();
    let n = ark.len();
    ark[n - 10] ^= 1;
    let e = err(
        REPORT_V2,
        &[Endorsement::Certificates(vec![VCEK.to_vec(), ark])],
        t_vcek(),
    );
    assert!(matches!(e, VerifyError::Untrusted { .. }), "{e}");
}

#[test]
fn other_tee_evidence_and_garbage_are_refused_without_panic() {
    let e = err(TDX_QUOTE, &certs(&[VCEK]), t_vcek());
    assert_eq!(
        e,
        VerifyError::WrongTee {
            expected: Tee::Snp,
            found: "tdx".into()
        }
    );
    assert!(!looks_like_snp_report(TDX_QUOTE));
    for junk in [&b""[..], b"\x00", b"hello", &[0xFF; 1184], &[0; 1184], VCEK] {
        let e = err(junk, &certs(&[VCEK]), t_vcek());
        assert!(
            matches!(
                e,
                VerifyError::Malformed { .. } | VerifyError::WrongTee { .. }
            ),
            "{e}"
        );
        assert!(!looks_like_snp_report(junk));
    }
}

#[test]
fn endorsements_are_checked() {
    // None at all.
    let e = err(REPORT_V2, &[], t_vcek());
    assert!(matches!(e, VerifyError::MissingEndorsement(_)), "{e}");
    assert!(e.is_usage());
    // Not certificates.
    let e = err(REPORT_V2, &[Endorsement::SimPlatformKey([0; 32])], t_vcek());
    assert!(matches!(e, VerifyError::BadEndorsement(_)), "{e}");
    // Not a certificate.
    let e = err(
        REPORT_V2,
        &[Endorsement::Certificates(vec![b"junk".to_vec()])],
        t_vcek(),
    );
    assert!(matches!(e, VerifyError::BadEndorsement(_)), "{e}");
    // Two different VCEKs.
    let e = err(REPORT_V2, &certs(&[VCEK, VIRTEE_VCEK]), t_vcek());
    assert!(e.to_string().contains("more than one VCEK"), "{e}");
    // The same VCEK twice is fine.
    verify(REPORT_V2, &certs(&[VCEK, VCEK]), t_vcek()).unwrap();
    // A forged VCEK beside the real one is ambiguous, not ignored.
    let e = err(
        REPORT_V2,
        &certs(&[VCEK, include_bytes!("../testdata/fake_vcek.der")]),
        t_vcek(),
    );
    assert!(e.to_string().contains("more than one VCEK"), "{e}");
}

#[test]
fn format_detection() {
    assert!(looks_like_snp_report(REPORT_V2));
    assert!(looks_like_snp_report(VLEK_REPORT));
    assert!(looks_like_snp_report(VIRTEE_REPORT_HEX));
    assert!(!looks_like_snp_report(&REPORT_V2[..100]));
    assert!(!looks_like_snp_report(ASK_ARK_ASVK));
}

#[test]
fn registry_routes_snp_evidence() {
    let registry = Registry::new().with(SnpVerifier::default());
    assert_eq!(registry.tees().collect::<Vec<_>>(), vec![Tee::Snp]);
    let evidence = Evidence {
        tee: Tee::Snp,
        bytes: REPORT_V2.to_vec(),
    };
    let claims = registry
        .verify(&evidence, &certs(&[VCEK]), t_vcek())
        .unwrap();
    let rd = claims.report_data;
    registry
        .verify_with_report_data(&evidence, &certs(&[VCEK]), t_vcek(), &rd)
        .unwrap();
    let e = registry
        .verify_with_report_data(&evidence, &certs(&[VCEK]), t_vcek(), &ReportData::ZERO)
        .unwrap_err();
    assert!(matches!(e, VerifyError::ReportDataMismatch { .. }), "{e}");
    assert_eq!(SnpVerifier::default().tee(), Tee::Snp);
    assert!(format!("{:?}", SnpVerifier::new()).contains("SnpVerifier"));
}
