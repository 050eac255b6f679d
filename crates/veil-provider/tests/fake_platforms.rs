//! Providers against fake kernel interfaces that serve real evidence.
//!
//! The configfs-tsm fake plays the kernel's part: a thread watches the
//! report directory, populates each new entry with its attributes, and
//! serves `outblob` through a FIFO, so the quote is produced only after the
//! provider has written `inblob`, as in the real interface.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use veil_attest::{Endorsement, ReportData, Tee};
use veil_provider::{
    detect, parse_snp_cert_table, provider, EvidenceProvider, GramineProvider, ProviderChoice,
    ProviderConfig, ProviderError, TsmProvider,
};

fn testdata(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name),
    )
    .unwrap()
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A fake configfs-tsm "kernel": what it saw written to inblob, per entry.
struct FakeTsm {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    handle: Option<JoinHandle<()>>,
}

impl FakeTsm {
    fn start(root: &Path, provider: &'static str, outblob: Vec<u8>, auxblob: Vec<u8>) -> Self {
        let dir = root.join("sys/kernel/config/tsm/report");
        fs::create_dir_all(&dir).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let handle = std::thread::spawn(move || {
            let mut served: Vec<PathBuf> = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                for entry in fs::read_dir(&dir).unwrap().flatten() {
                    let path = entry.path();
                    if served.contains(&path) || !path.is_dir() {
                        continue;
                    }
                    served.push(path.clone());
                    fs::write(path.join("provider"), format!("{provider}\n")).unwrap();
                    fs::write(path.join("generation"), "1\n").unwrap();
                    fs::write(path.join("auxblob"), &auxblob).unwrap();
                    mkfifo(&path.join("outblob"));
                    fs::write(path.join("inblob"), b"").unwrap();
                    // The FIFO opens for writing only once the provider
                    // opens outblob for reading, which it does after writing
                    // inblob. Poll without blocking so a provider that gives
                    // up early (wrong TEE) does not hang the fake.
                    let mut out = loop {
                        match fs::OpenOptions::new()
                            .write(true)
                            .custom_flags(libc::O_NONBLOCK)
                            .open(path.join("outblob"))
                        {
                            Ok(f) => break Some(f),
                            Err(_) if stop2.load(Ordering::Relaxed) => break None,
                            Err(_) => std::thread::sleep(Duration::from_millis(2)),
                        }
                    };
                    let Some(out) = out.as_mut() else { return };
                    seen2
                        .lock()
                        .unwrap()
                        .push(fs::read(path.join("inblob")).unwrap());
                    out.write_all(&outblob).unwrap();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        FakeTsm {
            stop,
            seen,
            handle: Some(handle),
        }
    }

    fn inblobs(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeTsm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn config(root: &Path) -> ProviderConfig {
    ProviderConfig {
        root: root.to_owned(),
        sim_dir: root.join("sim"),
        sim_measurement: [3; 48],
    }
}

#[test]
fn tdx_through_configfs_tsm() {
    let root = tempfile::tempdir().unwrap();
    let quote = testdata("dcapqvl_tdx_quote.bin");
    let fake = FakeTsm::start(root.path(), "tdx_guest", quote.clone(), Vec::new());
    let p = provider(ProviderChoice::Tee(Tee::Tdx), &config(root.path())).unwrap();
    let rd = ReportData([0x5a; 64]);
    let got = p.collect(&rd).unwrap();
    assert_eq!(got.evidence.tee, Tee::Tdx);
    assert_eq!(got.evidence.bytes, quote);
    assert!(got.endorsements.is_empty());
    assert_eq!(fake.inblobs(), vec![rd.0.to_vec()]);
}

/// Builds an SNP certificate table (GUIDs in the GHCB's little-endian layout).
fn cert_table(vcek: &[u8]) -> Vec<u8> {
    let guid_le: [u8; 16] = [
        0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac,
        0xcd,
    ];
    let mut t = Vec::new();
    t.extend_from_slice(&guid_le);
    t.extend_from_slice(&48u32.to_le_bytes());
    t.extend_from_slice(&(vcek.len() as u32).to_le_bytes());
    t.extend_from_slice(&[0u8; 24]);
    t.extend_from_slice(vcek);
    t
}

#[test]
fn snp_through_configfs_tsm_with_cert_table() {
    let root = tempfile::tempdir().unwrap();
    let report = testdata("trustee_report_v2.bin");
    let vcek = testdata("trustee_vcek.der");
    let _fake = FakeTsm::start(root.path(), "sev_guest", report.clone(), cert_table(&vcek));
    // `auto` finds configfs-tsm and learns from it that this is SNP.
    let p = detect(root.path()).unwrap();
    let got = p.collect(&ReportData([1; 64])).unwrap();
    assert_eq!(got.evidence.tee, Tee::Snp);
    assert_eq!(got.evidence.bytes, report);
    assert_eq!(
        got.endorsements,
        vec![Endorsement::Certificates(vec![vcek])]
    );
}

#[test]
fn asking_for_snp_on_a_tdx_guest_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let _fake = FakeTsm::start(
        root.path(),
        "tdx_guest",
        testdata("dcapqvl_tdx_quote.bin"),
        Vec::new(),
    );
    let p = TsmProvider::new(root.path(), Some(Tee::Snp)).unwrap();
    let err = p.collect(&ReportData::ZERO).unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::WrongProvider {
                expected: Tee::Snp,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn sgx_through_gramine_dev_attestation() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dev/attestation");
    fs::create_dir_all(&dir).unwrap();
    let quote = testdata("dcapqvl_sgx_quote.bin");
    fs::write(dir.join("attestation_type"), "dcap").unwrap();
    fs::write(dir.join("user_report_data"), [0u8; 64]).unwrap();
    fs::write(dir.join("quote"), &quote).unwrap();
    let p = detect(root.path()).unwrap();
    assert_eq!(p.tee(), Tee::Sgx);
    let rd = ReportData([0xab; 64]);
    let got = p.collect(&rd).unwrap();
    assert_eq!(got.evidence.bytes, quote);
    assert_eq!(
        fs::read(dir.join("user_report_data")).unwrap(),
        rd.0.to_vec()
    );
}

#[test]
fn gramine_without_dcap_is_refused_with_advice() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dev/attestation");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("attestation_type"), "none").unwrap();
    fs::write(dir.join("quote"), b"x").unwrap();
    let err = GramineProvider::new(root.path()).unwrap_err();
    assert!(err.to_string().contains("sgx.remote_attestation"), "{err}");
}

#[test]
fn no_tee_is_a_clear_error_and_auto_never_picks_sim() {
    let root = tempfile::tempdir().unwrap();
    let err = provider(ProviderChoice::Auto, &config(root.path())).unwrap_err();
    assert!(matches!(err, ProviderError::NoTee { .. }));
    assert!(err.to_string().contains("--tee sim"), "{err}");
}

#[test]
fn sim_provider_creates_its_key_once_and_signs() {
    let root = tempfile::tempdir().unwrap();
    let cfg = config(root.path());
    let p = provider(ProviderChoice::Tee(Tee::Sim), &cfg).unwrap();
    let ev = p.collect(&ReportData([4; 64])).unwrap().evidence;
    let key_file = cfg.sim_dir.join(veil_provider::PLATFORM_KEY_FILE);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pubkey = fs::read(cfg.sim_dir.join(veil_provider::PLATFORM_PUB_FILE)).unwrap();
    let Ok(Endorsement::SimPlatformKey(k)) = Endorsement::from_file_bytes(&pubkey) else {
        panic!("public key file is not a sim key")
    };
    // A second provider reuses the same key.
    let p2 = provider(ProviderChoice::Tee(Tee::Sim), &cfg).unwrap();
    let ev2 = p2.collect(&ReportData([4; 64])).unwrap().evidence;
    let v = veil_attest_sim::SimVerifier::new([k]);
    use veil_attest::Verifier;
    for e in [ev, ev2] {
        let c = v.verify(&e.bytes, &[], veil_attest::Time::now()).unwrap();
        assert_eq!(c.measurement, vec![3; 48]);
        assert_eq!(c.report_data, ReportData([4; 64]));
    }
}

#[test]
fn cert_table_rejects_out_of_bounds_and_unterminated() {
    let mut t = cert_table(b"0123");
    assert_eq!(parse_snp_cert_table(&t).unwrap(), vec![b"0123".to_vec()]);
    t[16] = 0xff; // offset far outside
    assert!(parse_snp_cert_table(&t).is_err());
    assert!(parse_snp_cert_table(&[1u8; 24]).is_err());
    assert!(parse_snp_cert_table(&[0u8; 10]).is_err());
    assert_eq!(
        parse_snp_cert_table(&[0u8; 24]).unwrap(),
        Vec::<Vec<u8>>::new()
    );
}
