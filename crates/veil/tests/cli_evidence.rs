//! The `veil evidence` contract, run against the real binary and real vectors.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn veil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run veil")
}

fn vector(krate: &str, name: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("testdata")
        .join(name);
    assert!(p.exists(), "missing test vector {}", p.display());
    p.to_string_lossy().into_owned()
}

fn dcap(name: &str) -> String {
    vector("veil-attest-dcap", name)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, and that nothing panicked.
fn expect_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("stdout is one JSON object")
}

const SGX_T: &str = "1751624924";

fn verify_sgx(at: &str, extra: &[&str]) -> Output {
    let (q, c) = (
        dcap("dcapqvl_sgx_quote.bin"),
        dcap("dcapqvl_sgx_quote.collateral.json"),
    );
    let mut args = vec![
        "evidence",
        "verify",
        "--tee",
        "sgx",
        "--evidence",
        &q,
        "--endorsement",
        &c,
        "--at",
        at,
    ];
    args.extend_from_slice(extra);
    veil(&args)
}

#[test]
fn sgx_quote_verifies_with_status_and_advisories() {
    let o = verify_sgx(SGX_T, &["--json"]);
    expect_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["tee"], "sgx");
    assert_eq!(v["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(
        v["advisories"],
        serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
    assert_eq!(v["debug"], false);
    assert_eq!(v["insecure"], false);
    assert_eq!(v["measurement"].as_str().map(str::len), Some(64));
    assert_eq!(v["report_data"].as_str().map(str::len), Some(128));
    assert_eq!(v["claims"]["tee_claims"]["tee"], "sgx");
}

#[test]
fn rfc3339_time_is_accepted() {
    expect_code(&verify_sgx("2025-07-04T10:28:44Z", &[]), 0);
}

#[test]
fn sgx_window_edges_name_the_failed_check() {
    // One day before the TCB info was issued (2025-06-19T10:56:11Z).
    let o = verify_sgx("2025-06-18T10:56:11Z", &[]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("issued in the future"),
        "{}",
        stderr(&o)
    );
    // One day after its next update (2025-07-19T10:01:18Z).
    let o = verify_sgx("2025-07-20T10:01:18Z", &[]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("expired at"), "{}", stderr(&o));
}

#[test]
fn tdx_quote_verifies_up_to_date() {
    let (q, c) = (
        dcap("dcapqvl_tdx_quote.bin"),
        dcap("dcapqvl_tdx_quote.collateral.json"),
    );
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "tdx",
        "--evidence",
        &q,
        "--endorsement",
        &c,
        "--at",
        "1751624655",
        "--json",
    ]);
    expect_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["tcb_status"], "UpToDate");
    assert_eq!(v["advisories"], serde_json::json!([]));
    assert_eq!(v["measurement"].as_str().map(str::len), Some(96));
}

#[test]
fn outdated_tdx_v5_quote_is_rejected() {
    let (q, c) = (
        dcap("dcapqvl_tdx_quote_v5_outdated.bin"),
        dcap("dcapqvl_tdx_quote_v5_outdated.collateral.json"),
    );
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "tdx",
        "--evidence",
        &q,
        "--endorsement",
        &c,
        "--at",
        "1772707833",
    ]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("TCB"), "{}", stderr(&o));
}

#[test]
fn snp_report_verifies_with_builtin_amd_roots() {
    let (r, v) = (
        vector("veil-attest-snp", "trustee_report_v2.bin"),
        vector("veil-attest-snp", "trustee_vcek.der"),
    );
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &r,
        "--endorsement",
        &v,
        "--at",
        "2025-01-01T00:00:00Z",
        "--json",
    ]);
    expect_code(&o, 0);
    let j = json(&o);
    assert_eq!(j["tee"], "snp");
    assert_eq!(j["tcb_status"], "NotApplicable");
    // Hex-text reports are accepted too.
    let (r, v) = (
        vector("veil-attest-snp", "virtee_report_milan.hex"),
        vector("veil-attest-snp", "virtee_vcek_milan.der"),
    );
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &r,
        "--endorsement",
        &v,
        "--at",
        "2025-01-01T00:00:00Z",
    ]);
    expect_code(&o, 0);
}

#[test]
fn snp_report_with_the_wrong_vcek_is_not_genuine() {
    let (r, v) = (
        vector("veil-attest-snp", "trustee_report_v2.bin"),
        vector("veil-attest-snp", "virtee_vcek_milan.der"),
    );
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &r,
        "--endorsement",
        &v,
        "--at",
        "2025-01-01T00:00:00Z",
    ]);
    expect_code(&o, 1);
}

#[test]
fn nitro_document_verifies_and_debug_document_is_reported() {
    let d = vector("veil-attest-nitro", "evervault_valid_doc.cbor");
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "nitro",
        "--evidence",
        &d,
        "--at",
        "2022-10-13T09:00:00Z",
        "--json",
    ]);
    expect_code(&o, 0);
    assert_eq!(json(&o)["debug"], false);
    // Hours later the leaf certificate has expired.
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "nitro",
        "--evidence",
        &d,
        "--at",
        "2022-10-13T13:00:00Z",
    ]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("expired"), "{}", stderr(&o));
}

#[test]
fn report_data_mismatch_exits_1() {
    let o = verify_sgx(SGX_T, &["--expect-report-data", "00ff"]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("report data mismatch: expected 00ff"),
        "{}",
        stderr(&o)
    );
    // The quote's real report data ("Hello, world!" zero-padded) passes.
    let o = verify_sgx(
        SGX_T,
        &["--expect-report-data", "48656c6c6f2c20776f726c6421"],
    );
    expect_code(&o, 0);
}

#[test]
fn evidence_of_one_tee_as_another_is_refused() {
    let q = dcap("dcapqvl_sgx_quote.bin");
    let c = dcap("dcapqvl_sgx_quote.collateral.json");
    for tee in ["tdx", "snp", "nitro", "sim"] {
        let o = veil(&[
            "evidence",
            "verify",
            "--tee",
            tee,
            "--evidence",
            &q,
            "--endorsement",
            &c,
            "--at",
            SGX_T,
        ]);
        assert_ne!(o.status.code(), Some(0), "sgx quote accepted as {tee}");
        assert!(!stderr(&o).contains("panicked"));
    }
}

#[test]
fn truncated_evidence_is_not_genuine() {
    let dir = tempfile::tempdir().unwrap();
    let q = std::fs::read(dcap("dcapqvl_sgx_quote.bin")).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &q[..q.len() / 2]).unwrap();
    let c = dcap("dcapqvl_sgx_quote.collateral.json");
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "sgx",
        "--evidence",
        cut.to_str().unwrap(),
        "--endorsement",
        &c,
        "--at",
        SGX_T,
    ]);
    expect_code(&o, 1);
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    for (i, content) in [
        &b""[..],
        b"\x00",
        b"{}",
        b"\xd2\x84\x40",
        &[0x30, 0x82, 0xff, 0xff],
        &[3, 0, 2, 0, 0, 0, 0, 0],
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(&junk, content).unwrap();
        let j = junk.to_str().unwrap();
        for tee in ["sgx", "tdx", "snp", "nitro", "sim"] {
            let o = veil(&[
                "evidence",
                "verify",
                "--tee",
                tee,
                "--evidence",
                j,
                "--endorsement",
                j,
            ]);
            assert!(
                matches!(o.status.code(), Some(1 | 2)),
                "case {i} {tee}: {:?}",
                o.status
            );
            assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        }
        let o = veil(&["evidence", "show", j]);
        assert!(matches!(o.status.code(), Some(1 | 2)));
        assert!(!stderr(&o).contains("panicked"));
    }
}

#[test]
fn usage_and_io_errors_exit_2() {
    let q = dcap("dcapqvl_sgx_quote.bin");
    // Missing collateral.
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "sgx",
        "--evidence",
        &q,
        "--at",
        SGX_T,
    ]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("collateral"), "{}", stderr(&o));
    // Unreadable file.
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "sgx",
        "--evidence",
        "/nonexistent/q",
    ]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("/nonexistent/q"));
    // Bad time and bad report data.
    expect_code(&verify_sgx("last tuesday", &[]), 2);
    expect_code(&verify_sgx(SGX_T, &["--expect-report-data", "zz"]), 2);
    // Unknown TEE.
    expect_code(
        &veil(&["evidence", "verify", "--tee", "sev", "--evidence", &q]),
        2,
    );
}

#[test]
fn show_detects_each_kind() {
    let cases = [
        (dcap("dcapqvl_sgx_quote.bin"), "SGX quote v3", "sgx"),
        (dcap("dcapqvl_tdx_quote.bin"), "TDX quote v4", "tdx"),
        (
            vector("veil-attest-snp", "trustee_report_v2.bin"),
            "SEV-SNP report",
            "snp",
        ),
        (
            vector("veil-attest-snp", "virtee_report_milan.hex"),
            "SEV-SNP report",
            "snp",
        ),
        (
            vector("veil-attest-nitro", "evervault_valid_doc.cbor"),
            "Nitro",
            "nitro",
        ),
        (
            vector("veil-ratls", "gramine-cert.pem"),
            "RA-TLS certificate",
            "sgx",
        ),
    ];
    for (file, kind, tee) in cases {
        let o = veil(&["evidence", "show", &file]);
        expect_code(&o, 0);
        assert!(stdout(&o).contains(kind), "{file}: {}", stdout(&o));
        let o = veil(&["evidence", "show", &file, "--json"]);
        expect_code(&o, 0);
        assert_eq!(json(&o)["tee"], tee, "{file}");
    }
}

#[test]
fn show_flags_debug_enclaves_and_ratls_binding() {
    let o = veil(&["evidence", "show", &dcap("trustee_occlum_quote.bin")]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("debug bit is set"), "{}", stdout(&o));
    let o = veil(&[
        "evidence",
        "show",
        &vector("veil-ratls", "gramine-cert.pem"),
        "--json",
    ]);
    expect_code(&o, 0);
    assert_eq!(json(&o)["fields"]["binding"]["holds"], true);
}

#[test]
fn sim_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let ev = dir.path().join("ev.bin");
    let rd = "ab".repeat(64);
    let o = veil(&[
        "evidence",
        "collect",
        "--tee",
        "sim",
        "--root",
        sim.to_str().unwrap(),
        "--report-data",
        &rd,
        "-o",
        ev.to_str().unwrap(),
    ]);
    expect_code(&o, 0);
    let pubkey = sim.join("platform.pub");
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "sim",
        "--evidence",
        ev.to_str().unwrap(),
        "--endorsement",
        pubkey.to_str().unwrap(),
        "--expect-report-data",
        &rd,
        "--json",
    ]);
    expect_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["insecure"], true);
    assert_eq!(v["tee"], "sim");
    // Without the platform key nothing is trusted.
    let o = veil(&[
        "evidence",
        "verify",
        "--tee",
        "sim",
        "--evidence",
        ev.to_str().unwrap(),
    ]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("untrusted sim platform key"),
        "{}",
        stderr(&o)
    );
    let o = veil(&["evidence", "show", ev.to_str().unwrap()]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("no protection"));
}

#[test]
fn collect_through_a_fake_gramine_device() {
    let dir = tempfile::tempdir().unwrap();
    let att = dir.path().join("dev/attestation");
    std::fs::create_dir_all(&att).unwrap();
    std::fs::write(att.join("attestation_type"), "dcap").unwrap();
    std::fs::write(att.join("user_report_data"), [0u8; 64]).unwrap();
    std::fs::copy(dcap("dcapqvl_sgx_quote.bin"), att.join("quote")).unwrap();
    let out = dir.path().join("q.bin");
    let o = veil(&[
        "evidence",
        "collect",
        "--tee",
        "auto",
        "--root",
        dir.path().to_str().unwrap(),
        "--report-data",
        "01",
        "-o",
        out.to_str().unwrap(),
    ]);
    expect_code(&o, 0);
    assert_eq!(
        std::fs::read(att.join("user_report_data")).unwrap()[..2],
        [1, 0]
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(dcap("dcapqvl_sgx_quote.bin")).unwrap()
    );
    // With no TEE interface under the root, auto says so and suggests sim.
    let empty = tempfile::tempdir().unwrap();
    let o = veil(&[
        "evidence",
        "collect",
        "--root",
        empty.path().to_str().unwrap(),
        "--report-data",
        "01",
        "-o",
        out.to_str().unwrap(),
    ]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--tee sim"), "{}", stderr(&o));
}
