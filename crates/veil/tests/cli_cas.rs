//! The CAS verbs through the real binary: `veil cas serve|verify|status`,
//! `veil identity`, `veil session`, `veil secret put`, `veil audit`, with a
//! canary secret that must never show up in any output, log or file.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

const CANARY: &str = "canary-Zq8vW3xK-never-print-me";

fn veil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    c.env_remove("VEIL_CAS");
    c
}

fn start(dir: &Path) -> common::DevCas {
    let mut cmd = veil();
    cmd.env("RUST_LOG", "debug");
    common::start_dev_cas(cmd, &dir.join("state"), &dir.join("cas.log"), &[])
}

/// Runs veil with `home` as VEIL_HOME; returns the output and records it.
fn run(home: &Path, args: &[&str], stdin: Option<&str>, seen: &mut String) -> Output {
    let mut cmd = veil();
    cmd.args(args)
        .env("VEIL_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    seen.push_str(&String::from_utf8_lossy(&out.stdout));
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn policy(fp: &str, version: u64, predecessor: Option<&str>) -> String {
    let pred = predecessor.map_or(String::new(), |p| format!("predecessor: {p}\n"));
    format!(
        "name: shop/db\nversion: {version}\n{pred}owners: [{fp}]\nsecrets:\n  - {{ name: db_password, kind: password, length: 20 }}\n  - {{ name: api_token, kind: supplied }}\nservices:\n  - name: app\n    accept:\n      - tee: sim\n        measurement: any\n    command: [/bin/app]\n    env:\n      TOKEN: \"{{{{ api_token }}}}\"\n"
    )
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn cas_verbs_end_to_end_and_the_canary_never_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let other = dir.path().join("other");
    let server = start(dir.path());
    let mut seen = String::new();
    let url = server.url.clone();

    // Calls before `cas verify` are refused with advice.
    let o = run(&home, &["session", "list", "--cas", &url], None, &mut seen);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("veil cas verify"), "{}", text(&o));

    let o = run(&home, &["identity", "create"], None, &mut seen);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = run(&home, &["identity", "show", "--json"], None, &mut seen);
    let fp = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fp.len(), 64);

    // A production client refuses a sim CAS; --dev accepts and pins it.
    let o = run(
        &home,
        &["cas", "verify", &url, "--expect-measurement", "00"],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("--dev"), "{}", text(&o));
    let o = run(&home, &["cas", "verify", &url, "--dev"], None, &mut seen);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = run(&home, &["cas", "status", "--json"], None, &mut seen);
    assert_eq!(code(&o), 0, "{}", text(&o));

    let p1 = dir.path().join("v1.yaml");
    std::fs::write(&p1, policy(&fp, 1, None)).unwrap();
    let o = run(
        &home,
        &["session", "apply", p1.to_str().unwrap()],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = run(
        &home,
        &["session", "get", "shop/db", "--json"],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let hash = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    let o = run(
        &home,
        &["secret", "put", "shop/db", "api_token"],
        Some(CANARY),
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    // A generated secret cannot be overwritten.
    let o = run(
        &home,
        &["secret", "put", "shop/db", "db_password"],
        Some("x"),
        &mut seen,
    );
    assert_eq!(code(&o), 1, "{}", text(&o));

    // Updates: a stale or missing predecessor is refused; the right one wins.
    let p2 = dir.path().join("v2.yaml");
    std::fs::write(&p2, policy(&fp, 2, Some(&"0".repeat(64)))).unwrap();
    let o = run(
        &home,
        &["session", "apply", p2.to_str().unwrap()],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    std::fs::write(&p2, policy(&fp, 2, Some(&hash))).unwrap();
    let o = run(
        &home,
        &["session", "diff", p2.to_str().unwrap()],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("version"), "{}", text(&o));
    let o = run(
        &home,
        &["session", "apply", p2.to_str().unwrap()],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = run(&home, &["session", "list"], None, &mut seen);
    assert!(text(&o).contains("shop/db  version 2"), "{}", text(&o));

    // Another identity sees nothing and changes nothing.
    run(&other, &["identity", "create"], None, &mut seen);
    run(&other, &["cas", "verify", &url, "--dev"], None, &mut seen);
    let o = run(&other, &["session", "get", "shop/db"], None, &mut seen);
    assert_ne!(code(&o), 0, "{}", text(&o));
    let o = run(
        &other,
        &["session", "apply", p2.to_str().unwrap()],
        None,
        &mut seen,
    );
    assert_ne!(code(&o), 0, "{}", text(&o));

    let o = run(&home, &["audit", "verify"], None, &mut seen);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = run(
        &home,
        &["audit", "show", "--session", "shop/db", "--json"],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("secret.put") && text(&o).contains("session.update"));

    drop(server);
    let log = std::fs::read_to_string(dir.path().join("cas.log")).unwrap();
    assert!(log.contains("CAS listening on"), "{log}");
    // The canary is nowhere: not in any output, the CAS log, or any file.
    assert!(!seen.contains(CANARY), "a command printed the secret");
    assert!(!log.contains(CANARY), "the CAS logged the secret");
    let mut files = Vec::new();
    all_files(dir.path(), &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "{} holds the secret in clear",
            f.display()
        );
    }
}

#[test]
fn cas_init_and_unseal_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = String::new();
    let homes: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("owner{i}")))
        .collect();
    let mut certs = Vec::new();
    for (i, h) in homes.iter().enumerate() {
        run(h, &["identity", "create"], None, &mut seen);
        let o = run(h, &["identity", "show", "--cert"], None, &mut seen);
        let cert = dir.path().join(format!("owner{i}.pem"));
        std::fs::write(&cert, &o.stdout).unwrap();
        certs.push(cert);
    }
    let server = start(dir.path());
    let url = server.url.clone();
    let o = run(
        &homes[0],
        &["cas", "verify", &url, "--dev"],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    drop(server);

    let state = dir.path().join("state");
    let shares = dir.path().join("shares");
    let mut args = vec![
        "cas".to_owned(),
        "init".into(),
        "--state".into(),
        state.display().to_string(),
        "--recovery-shares".into(),
        "3".into(),
        "--threshold".into(),
        "2".into(),
        "--out".into(),
        shares.display().to_string(),
    ];
    for c in &certs {
        args.push("--recipient".into());
        args.push(c.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&homes[0], &args, None, &mut seen);
    assert_eq!(code(&o), 0, "{}", text(&o));

    // The sealing key is lost: the CAS comes up sealed.
    std::fs::remove_file(state.join("sealing.key")).unwrap();
    std::fs::remove_file(dir.path().join("state.ready")).unwrap();
    let server = start(dir.path());
    let ready = std::fs::read_to_string(dir.path().join("state.ready")).unwrap();
    assert!(ready.trim().ends_with("sealed"), "{ready}");
    let url = server.url.clone();
    let share = |i: usize| {
        shares
            .join(format!("share-{}.json", i + 1))
            .display()
            .to_string()
    };
    // Owner 1's share sent by owner 0 cannot be decrypted by owner 0.
    let o = run(
        &homes[0],
        &["cas", "unseal", &url, "--share", &share(1), "--dev"],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let o = run(
        &homes[0],
        &["cas", "unseal", &url, "--share", &share(0), "--dev"],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("1 of 2"), "{}", text(&o));
    let o = run(
        &homes[2],
        &["cas", "unseal", &url, "--share", &share(2), "--dev"],
        None,
        &mut seen,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("unsealed"), "{}", text(&o));
    // Unsealed, it serves its old identity again: the new pin equals the old.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = run(
            &homes[0],
            &["cas", "status", "--cas", &url, "--json"],
            None,
            &mut seen,
        );
        let sealed = code(&o) != 0;
        if !sealed {
            break;
        }
        let o = run(
            &homes[0],
            &["cas", "verify", &url, "--dev"],
            None,
            &mut seen,
        );
        assert!(Instant::now() < deadline, "{}", text(&o));
        std::thread::sleep(Duration::from_millis(200));
    }
    let pins: serde_json::Value =
        serde_json::from_slice(&std::fs::read(homes[0].join("cas.json")).unwrap()).unwrap();
    let fps: Vec<&str> = pins["cas"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["certificate_sha256"].as_str().unwrap())
        .collect();
    assert_eq!(fps.len(), 2);
    assert_eq!(fps[0], fps[1], "the unsealed CAS must keep its identity");
    drop(server);
}

#[test]
fn a_production_cas_refuses_to_start_without_a_tee() {
    if std::path::Path::new("/sys/kernel/config/tsm/report").exists()
        || std::path::Path::new("/dev/attestation/quote").exists()
    {
        return; // this machine has a TEE: the refusal cannot be observed here
    }
    let dir = tempfile::tempdir().unwrap();
    let o = veil()
        .args(["cas", "serve", "--listen", "127.0.0.1:0", "--state"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no TEE") && err.contains("--dev"), "{err}");
}
