//! `veil tls inspect` and `veil tls proxy`, run against the real binary.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;
use veil_attest::{Tee, Time};
use veil_ca::{issue_attested_cert, AttestedSubject, CaIdentity, Identity};
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: u64 = 86_400;
const SESSION: &str = "shop/main";
const MEASUREMENT: [u8; 48] = [0x3c; 48];

fn veil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run veil")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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

fn ratls_vector(name: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../veil-ratls/testdata")
        .join(name);
    assert!(p.exists(), "missing test vector {}", p.display());
    p.to_string_lossy().into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A session CA and attested certificates from it, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: CaIdentity,
}

/// The files of one attested certificate.
struct Creds {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        let now = Time::now().unix();
        let ca = CaIdentity::generate("shop session CA", 30, Time::from_unix(now - DAY)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        Pki { dir, ca }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// An attested certificate for `service`: the key of a fresh identity,
    /// certified by the session CA.
    fn issue(&self, service: &str) -> Creds {
        let now = Time::now().unix();
        let id = Identity::generate(service, Time::from_unix(now)).unwrap();
        let (_, parsed) = X509Certificate::from_der(id.certificate()).unwrap();
        let spki = parsed.tbs_certificate.subject_pki.raw.to_vec();
        let subject = AttestedSubject {
            session: SESSION.into(),
            service: service.into(),
            tee: Tee::Sim,
            measurement: MEASUREMENT.to_vec(),
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        let der = issue_attested_cert(
            &self.ca,
            &spki,
            &subject,
            Time::from_unix(now - 60),
            Time::from_unix(now + DAY),
        )
        .unwrap();
        let cert = self.dir.path().join(format!("{service}.crt"));
        let key = self.dir.path().join(format!("{service}.key"));
        std::fs::write(
            &cert,
            pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())),
        )
        .unwrap();
        std::fs::write(&key, id.key_pem().as_bytes()).unwrap();
        Creds { cert, key, der }
    }
}

// ---------------------------------------------------------------- inspect

#[test]
fn inspect_veil_certificate_pem_and_der() {
    let pki = Pki::new();
    let db = pki.issue("db");
    let der_file = pki.dir.path().join("db.der");
    std::fs::write(&der_file, &db.der).unwrap();
    let (_, parsed) = X509Certificate::from_der(&db.der).unwrap();
    let spki_sha = hex::encode(sha2::Sha256::digest(parsed.tbs_certificate.subject_pki.raw));
    let m = hex::encode(MEASUREMENT);

    let o = veil(&["tls", "inspect", path(&db.cert)]);
    expect_code(&o, 0);
    let text = stdout(&o);
    for want in [
        "CN=db",
        "shop session CA",
        "(valid now)",
        "localhost",
        "127.0.0.1",
        spki_sha.as_str(),
        "Veil attestation extension",
        SESSION,
        "sim",
        m.as_str(),
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("RA-TLS"), "{text}");

    for file in [&db.cert, &der_file] {
        let o = veil(&["tls", "inspect", path(file), "--json"]);
        expect_code(&o, 0);
        let j = json(&o);
        assert_eq!(j["claims"], "veil");
        assert_eq!(j["valid_now"], true);
        assert_eq!(j["public_key_sha256"], spki_sha.as_str());
        assert_eq!(j["sans"]["dns"][0], "localhost");
        assert_eq!(j["sans"]["ip"][0], "127.0.0.1");
        assert_eq!(j["veil"]["session"], SESSION);
        assert_eq!(j["veil"]["service"], "db");
        assert_eq!(j["veil"]["tee"], "sim");
        assert_eq!(j["veil"]["measurement"], m.as_str());
        assert_eq!(
            j["veil"]["ca_fingerprint"],
            pki.ca.fingerprint().to_string().as_str()
        );
        assert!(j["ratls"].is_null());
        assert!(j["not_before"].is_string() && j["not_after"].is_string());
    }
    let pem_j = json(&veil(&["tls", "inspect", path(&db.cert), "--json"]));
    assert_eq!(pem_j["format"], "pem");
    let der_j = json(&veil(&["tls", "inspect", path(&der_file), "--json"]));
    assert_eq!(der_j["format"], "der");
}

#[test]
fn inspect_ratls_certificate_like_evidence_show() {
    let file = ratls_vector("gramine-cert.pem");
    let o = veil(&["tls", "inspect", &file]);
    expect_code(&o, 0);
    let text = stdout(&o);
    for want in [
        "RA-TLS certificate",
        "sgx",
        "binds key     yes",
        "report data",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let o = veil(&["tls", "inspect", &file, "--json"]);
    expect_code(&o, 0);
    let j = json(&o);
    let shown = json(&veil(&["evidence", "show", &file, "--json"]));
    assert_eq!(j["claims"], "ratls");
    assert!(j["veil"].is_null());
    assert_eq!(j["ratls"]["kind"], shown["kind"]);
    assert_eq!(j["ratls"]["tee"], "sgx");
    assert_eq!(j["ratls"]["binds_key"], true);
    assert_eq!(j["ratls"]["report_data"], shown["fields"]["report_data"]);
    assert_eq!(j["ratls"]["fields"], shown["fields"]);
    assert_eq!(
        j["public_key_sha256"], shown["fields"]["spki_sha256"],
        "basics and RA-TLS agree on the key"
    );
}

#[test]
fn inspect_plain_certificate_has_no_claims() {
    let file = ratls_vector("plain-cert.pem");
    let o = veil(&["tls", "inspect", &file]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains("no Veil or RA-TLS claims"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("CN=veil plain test certificate"));
    let o = veil(&["tls", "inspect", &file, "--json"]);
    expect_code(&o, 0);
    let j = json(&o);
    assert_eq!(j["claims"], "none");
    assert!(j["veil"].is_null() && j["ratls"].is_null());
    assert_eq!(j["subject"], "CN=veil plain test certificate");
}

#[test]
fn inspect_bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"hello, not a certificate").unwrap();
    let o = veil(&["tls", "inspect", path(&junk)]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("not an X.509 certificate"),
        "{}",
        stderr(&o)
    );

    let key_only = dir.path().join("key.pem");
    std::fs::write(
        &key_only,
        pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2, 3])),
    )
    .unwrap();
    let o = veil(&["tls", "inspect", path(&key_only), "--json"]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("no CERTIFICATE block"),
        "{}",
        stderr(&o)
    );

    let o = veil(&["tls", "inspect", path(&dir.path().join("missing.pem"))]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
}

// ------------------------------------------------- inspect: RA-TLS evidence

/// A Veil attested certificate as the CAS issues it (attestation spec 3.6):
/// sim evidence bound with report data binding version 2, carried under
/// OID 2.23.133.5.4.9 with its claims buffer. Returns the PEM file, the
/// sim platform public key file and the certificate DER.
struct RaTlsCreds {
    cert: PathBuf,
    sim_key: PathBuf,
    der: Vec<u8>,
    evidence: Vec<u8>,
}

fn issue_with_ratls(pki: &Pki, service: &str) -> RaTlsCreds {
    let now = Time::now().unix();
    let id = Identity::generate(service, Time::from_unix(now)).unwrap();
    let (_, parsed) = X509Certificate::from_der(id.certificate()).unwrap();
    let spki = parsed.tbs_certificate.subject_pki.raw.to_vec();
    let platform = veil_attest_sim::SimPlatformKey::generate().unwrap();
    let nonce = [0x6e; 32];
    let digest = [0x0d; 32];
    let domain = veil_api::ATTEST_DOMAIN;
    let evidence = platform.sign(&veil_attest_sim::SimStatement {
        measurement: MEASUREMENT,
        report_data: veil_api::report_data(domain, &nonce, &spki, &digest),
        issued_at: Time::from_unix(now),
        debug: false,
    });
    let value = veil_ratls::encode_extension(
        veil_ratls::VEIL_SIM_EVIDENCE_TAG,
        &evidence,
        &veil_api::ratls_claims_buffer(domain, &nonce, &spki, &digest),
    );
    let subject = AttestedSubject {
        session: SESSION.into(),
        service: service.into(),
        tee: Tee::Sim,
        measurement: MEASUREMENT.to_vec(),
        dns: vec!["localhost".into()],
        ips: vec![],
    };
    let der = veil_ca::issue_attested_cert_with_evidence(
        &pki.ca,
        &spki,
        &subject,
        Time::from_unix(now - 60),
        Time::from_unix(now + DAY),
        Some(&value),
    )
    .unwrap();
    let cert = pki.dir.path().join(format!("{service}-ratls.crt"));
    std::fs::write(
        &cert,
        pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())),
    )
    .unwrap();
    let sim_key = pki.dir.path().join(format!("{service}-sim.pub"));
    std::fs::write(&sim_key, platform.public_key_pem()).unwrap();
    RaTlsCreds {
        cert,
        sim_key,
        der,
        evidence,
    }
}

/// The certificate with byte `at` of its embedded evidence XORed with 1,
/// written next to it (the CA signature no longer verifies; inspect does
/// not check it, the evidence checks must catch it).
fn tampered(pki: &Pki, c: &RaTlsCreds, at: usize, name: &str) -> PathBuf {
    let start = c
        .der
        .windows(c.evidence.len())
        .position(|w| w == c.evidence.as_slice())
        .unwrap();
    let mut der = c.der.clone();
    der[start + at] ^= 0x01;
    let file = pki.dir.path().join(name);
    std::fs::write(&file, &der).unwrap();
    file
}

#[test]
fn inspect_shows_ratls_evidence_of_a_veil_certificate() {
    let pki = Pki::new();
    let c = issue_with_ratls(&pki, "db");
    let o = veil(&["tls", "inspect", path(&c.cert)]);
    expect_code(&o, 0);
    let text = stdout(&o);
    for want in [
        "Veil attestation extension",
        "RA-TLS certificate",
        "Veil sim evidence v1, CBOR tag 60012",
        "2.23.133.5.4.9",
        "binds key     yes",
        "report data[0..32] = SHA-256(claims buffer): match",
        "claims pubkey-hash = hash(certificate SPKI): match",
        "expected",
        "found",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let j = json(&veil(&["tls", "inspect", path(&c.cert), "--json"]));
    assert_eq!(j["claims"], "veil+ratls");
    assert_eq!(j["ratls"]["tee"], "sim");
    assert_eq!(j["ratls"]["evidence_format"]["tag"], 60012);
    assert_eq!(j["ratls"]["evidence_format"]["veil_tag"], true);
    assert_eq!(j["ratls"]["binding"]["holds"], true);
    let checks = j["ratls"]["binding"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    for check in checks {
        assert_eq!(check["result"], "match", "{check}");
        assert_eq!(check["expected"], check["found"], "{check}");
    }
    assert_eq!(
        checks[1]["expected"], j["public_key_sha256"],
        "pubkey-hash is SHA-256 of the certificate's key"
    );
    assert!(j["verified"].is_null(), "not verified without --verify");
}

#[test]
fn inspect_verify_checks_the_embedded_evidence() {
    let pki = Pki::new();
    let c = issue_with_ratls(&pki, "db");
    let o = veil(&[
        "tls",
        "inspect",
        path(&c.cert),
        "--verify",
        "--endorsement",
        path(&c.sim_key),
    ]);
    expect_code(&o, 0);
    let text = stdout(&o);
    let m = hex::encode(MEASUREMENT);
    for want in [
        "RA-TLS evidence verified: genuine sim evidence",
        "WARNING: simulated TEE",
        m.as_str(),
        "SHA-256(claims buffer) || 32 zero bytes: match",
        "Veil extension match",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let o = veil(&[
        "tls",
        "inspect",
        path(&c.cert),
        "--verify",
        "--endorsement",
        path(&c.sim_key),
        "--json",
    ]);
    expect_code(&o, 0);
    let j = json(&o);
    let v = &j["verified"];
    assert_eq!(v["genuine"], true);
    assert_eq!(v["tee"], "sim");
    assert_eq!(v["insecure"], true);
    assert_eq!(v["measurement"], m.as_str());
    assert_eq!(v["veil_extension"], "match");
    assert_eq!(v["report_data"], j["ratls"]["report_data"]);
    assert!(v["report_data"]
        .as_str()
        .unwrap()
        .ends_with(&"0".repeat(64)));

    // The sim platform key is not trusted unless named: not genuine.
    let o = veil(&["tls", "inspect", path(&c.cert), "--verify"]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("not genuine"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));

    // Nothing to verify in a certificate without RA-TLS evidence.
    let plain = pki.issue("app");
    let o = veil(&["tls", "inspect", path(&plain.cert), "--verify"]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("no RA-TLS evidence"), "{}", stderr(&o));

    // Endorsements only make sense with --verify.
    let o = veil(&[
        "tls",
        "inspect",
        path(&c.cert),
        "--endorsement",
        path(&c.sim_key),
    ]);
    expect_code(&o, 2);
}

#[test]
fn inspect_verify_refuses_tampered_evidence() {
    let pki = Pki::new();
    let c = issue_with_ratls(&pki, "db");
    let verify = |file: &Path| {
        veil(&[
            "tls",
            "inspect",
            path(file),
            "--verify",
            "--endorsement",
            path(&c.sim_key),
        ])
    };

    // A flipped report data byte (sim evidence offset 96): the evidence no
    // longer binds the claims buffer, with expected and found values.
    let file = tampered(&pki, &c, 96, "rd.der");
    let o = veil(&["tls", "inspect", path(&file)]);
    expect_code(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("binds key     NO"), "{text}");
    assert!(
        text.contains("report data[0..32] = SHA-256(claims buffer): MISMATCH"),
        "{text}"
    );
    let o = verify(&file);
    expect_code(&o, 1);
    let err = stderr(&o);
    for want in [
        "not bound to this certificate's key",
        "SHA-256(claims buffer)",
        "expected ",
        "found ",
    ] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }

    // A flipped measurement byte (offset 48): still bound, but the
    // platform's signature no longer verifies.
    let file = tampered(&pki, &c, 48, "m.der");
    let o = verify(&file);
    expect_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("the RA-TLS evidence is not genuine"), "{err}");
}

// ---------------------------------------------------------------- proxy

/// A running `veil tls proxy`; killed when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Proxy {
    fn start(args: &[&str]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
            .arg("tls")
            .arg("proxy")
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start veil tls proxy");
        let err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                }
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let mut proxy = Proxy {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(addr) => proxy.addr = addr.parse().unwrap(),
            Err(_) => panic!("proxy did not start; stderr:\n{}", proxy.log()),
        }
        proxy
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) for the proxy's stderr to contain `text`.
    fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in stderr:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (up to 10 s) for the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "proxy ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plaintext echo server on a thread; counts the connections it accepted.
fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = std::io::copy(&mut s, &mut w);
                let _ = w.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, count)
}

/// Sends `data` to `addr`, half-closes, and returns everything read back
/// until the other side closes (an error, e.g. a reset, ends the read).
fn exchange(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&data);
        let _ = w.shutdown(Shutdown::Write);
    });
    let mut got = Vec::new();
    let mut r = s;
    let mut buf = [0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("no end of stream within 15 s")
            }
            Err(_) => break,
        }
    }
    writer.join().unwrap();
    got
}

fn inbound(pki: &Pki, db: &Creds, to: SocketAddr) -> Proxy {
    let ca = pki.ca();
    let m = hex::encode(MEASUREMENT);
    Proxy::start(&[
        "--listen",
        "127.0.0.1:0",
        "--to",
        &to.to_string(),
        "--cert",
        path(&db.cert),
        "--key",
        path(&db.key),
        "--ca",
        path(&ca),
        "--peer-session",
        SESSION,
        "--peer-service",
        "app",
        "--peer-measurement",
        &m,
        "--handshake-timeout",
        "5",
        "--max-connections",
        "16",
    ])
}

fn outbound(pki: &Pki, app: &Creds, remote: SocketAddr, peer_service: &str) -> Proxy {
    let ca = pki.ca();
    Proxy::start(&[
        "--plain-listen",
        "127.0.0.1:0",
        "--remote",
        &remote.to_string(),
        "--server-name",
        "localhost",
        "--cert",
        path(&app.cert),
        "--key",
        path(&app.key),
        "--ca",
        path(&ca),
        "--peer-session",
        SESSION,
        "--peer-service",
        peer_service,
        "--handshake-timeout",
        "5",
    ])
}

#[test]
fn proxies_tunnel_bytes_and_stop_on_sigterm() {
    let pki = Pki::new();
    let (db, app) = (pki.issue("db"), pki.issue("app"));
    let (echo, accepted) = echo_server();
    let mut inb = inbound(&pki, &db, echo);
    let mut out = outbound(&pki, &app, inb.addr, "db");

    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let got = exchange(out.addr, data.clone());
    assert_eq!(
        got.len(),
        data.len(),
        "inbound:\n{}\noutbound:\n{}",
        inb.log(),
        out.log()
    );
    assert!(got == data, "echoed bytes differ");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // A second connection through the same tunnel works too.
    assert_eq!(exchange(out.addr, b"ping\n".to_vec()), b"ping\n");

    assert_eq!(inb.terminate(), Some(0), "inbound:\n{}", inb.log());
    assert_eq!(out.terminate(), Some(0), "outbound:\n{}", out.log());
    assert!(
        TcpStream::connect_timeout(&inb.addr, Duration::from_secs(1)).is_err(),
        "inbound still accepts after SIGTERM"
    );
}

#[test]
fn no_plaintext_fallback_and_wrong_service_refused() {
    let pki = Pki::new();
    let (db, app) = (pki.issue("db"), pki.issue("app"));
    let (echo, accepted) = echo_server();
    let inb = inbound(&pki, &db, echo);

    // Plaintext straight to the TLS port: the echo server never sees it.
    let got = exchange(inb.addr, b"GET / HTTP/1.0\r\n\r\nsecret".to_vec());
    assert!(
        !got.windows(6).any(|w| w == b"secret"),
        "plaintext echoed: {got:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    // An outbound proxy expecting another service refuses the server.
    let out = outbound(&pki, &app, inb.addr, "wrong");
    let got = exchange(out.addr, b"hello through the wrong tunnel".to_vec());
    assert!(got.is_empty(), "got {got:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    out.wait_log("service: expected \"wrong\", found \"db\"");

    // The inbound refuses a client that is not "app" (here: "db" itself).
    let out2 = outbound(&pki, &db, inb.addr, "db");
    let got = exchange(out2.addr, b"hello from the wrong client".to_vec());
    assert!(!got.windows(5).any(|w| w == b"hello"), "got {got:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    inb.wait_log("service: expected \"app\", found \"db\"");
}

#[test]
fn proxy_usage_errors_exit_2() {
    let pki = Pki::new();
    let db = pki.issue("db");
    let app = pki.issue("app");
    let ca = pki.ca();
    // Key of another certificate.
    let o = veil(&[
        "tls",
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--to",
        "127.0.0.1:9",
        "--cert",
        path(&db.cert),
        "--key",
        path(&app.key),
        "--ca",
        path(&ca),
    ]);
    expect_code(&o, 2);
    // Neither direction given.
    let o = veil(&[
        "tls",
        "proxy",
        "--cert",
        path(&db.cert),
        "--key",
        path(&db.key),
        "--ca",
        path(&ca),
    ]);
    expect_code(&o, 2);
    // --danger-no-client-auth is inbound only.
    let o = veil(&[
        "tls",
        "proxy",
        "--plain-listen",
        "127.0.0.1:0",
        "--remote",
        "127.0.0.1:9",
        "--danger-no-client-auth",
        "--cert",
        path(&db.cert),
        "--key",
        path(&db.key),
        "--ca",
        path(&ca),
    ]);
    expect_code(&o, 2);
}
