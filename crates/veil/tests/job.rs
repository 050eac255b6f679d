#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! Secure remote execution, end to end: the shell blocks of
//! `docs/tutorials/remote-execution.md` run in order, exactly as written,
//! with the real `veil` binary first on the PATH. Then: no plaintext of the
//! input, the script or the output on any host-side file or in what the
//! host saw; a changed interpreter or a changed code volume gets no keys; a
//! replayed output is refused by `veil job fetch`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{all_files, is_root};

const VEIL: &str = env!("CARGO_BIN_EXE_veil");

/// The `sh` blocks of the tutorial, in order.
fn tutorial_blocks() -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tutorials/remote-execution.md"),
    )
    .unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unterminated code block");
    blocks
}

/// The tutorial's world: its directory, and the development CAS it starts
/// in the background (killed when dropped).
struct Tutorial {
    dir: tempfile::TempDir,
}

impl Drop for Tutorial {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("cas.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

impl Tutorial {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs shell text in the tutorial's directory, `veil` first on PATH.
    fn sh(&self, script: &str) -> Output {
        let bin = Path::new(VEIL).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("TMPDIR", self.path("tmp"))
            .env_remove("VEIL_HOME")
            .env_remove("VEIL_CAS")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{script}\n--- failed:\n{text}");
        text
    }
}

/// Plaintext of the input, the script and the output.
const SECRETS: &[&str] = &[
    "Northwind",
    "Southmere",
    "canary-widget",
    "tide-gauge",
    "SECRET-FORMULA-7731",
    "DictReader",
    "3140.00",
    "1673.00",
];

fn assert_no_plaintext(what: &str, bytes: &[u8]) {
    for s in SECRETS {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "{s:?} in clear in {what}"
        );
    }
}

#[test]
fn the_remote_execution_tutorial_runs_and_the_host_sees_only_ciphertext() {
    if !is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("needs root and /dev/fuse (the launcher mounts the job's volumes): skipped");
        return;
    }
    let t = Tutorial {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(t.path("tmp")).unwrap();
    let blocks = tutorial_blocks();
    assert_eq!(blocks.len(), 5, "the tutorial's shell blocks changed");

    // 1-2: the CAS, the owner's job.
    t.sh_ok(&blocks[0]);
    let created = t.sh_ok(&blocks[1]);
    assert!(
        created.contains("veil run --session acme/sales-report --service job"),
        "{created}"
    );
    // 3: the host runs it; what it sees on its terminal holds no data.
    let host_saw = t.sh_ok(&blocks[2]);
    assert!(host_saw.contains("report written: 3 regions"), "{host_saw}");
    assert_no_plaintext("the host's terminal", host_saw.as_bytes());
    // 4: the owner's result.
    let fetched = t.sh_ok(&blocks[3]);
    let report = std::fs::read_to_string(t.path("result/report.txt")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(lines[0].starts_with("Southmere-Delta") && lines[0].ends_with("3140.00"));
    assert!(lines[1].starts_with("Eastbrook-Vale") && lines[1].ends_with("1673.00"));
    assert!(lines[2].starts_with("Northwind-Fjord") && lines[2].ends_with("985.80"));
    assert!(
        fetched.contains("Southmere-Delta|3140.00\nEastbrook-Vale|1673.00\nNorthwind-Fjord|985.80"),
        "{fetched}"
    );

    // Nothing the host holds is plaintext: the bundle, its home, its temp.
    let mut files = Vec::new();
    for d in ["job", "host", "tmp"] {
        all_files(&t.path(d), &mut files);
    }
    assert!(files.len() > 5, "{files:?}");
    for f in &files {
        assert_no_plaintext(&f.display().to_string(), &std::fs::read(f).unwrap());
    }

    let host = |args: &str| {
        t.sh(&format!(
            "export VEIL_HOME=$PWD/host/home; cd job; veil run --session {args} --tee sim --cas \"$(cat ../cas.url)\" --volumes-dir volumes"
        ))
    };

    // A changed code volume (one byte of its manifest): no keys.
    let manifest = t.path("job/volumes/acme/sales-report/job/code/veil.manifest");
    let original = std::fs::read(&manifest).unwrap();
    let mut changed = original.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(&manifest, &changed).unwrap();
    let o = host("acme/sales-report --service job");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(77), "{err}");
    assert!(err.contains("volume_rollback"), "{err}");
    std::fs::write(&manifest, &original).unwrap();

    // A replayed output: keep this output, run again (a new output tag),
    // put the old one back: `veil job fetch` refuses it.
    let out_dir = t.path("job/volumes/acme/sales-report/job/output");
    let saved = t.path("saved-output");
    t.sh_ok(&format!("cp -a {} {}", out_dir.display(), saved.display()));
    let o = host("acme/sales-report --service job");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    t.sh_ok(&format!(
        "rm -rf {o} && cp -a {s} {o}",
        o = out_dir.display(),
        s = saved.display()
    ));
    let o = t.sh("export VEIL_HOME=$PWD/owner/home; veil job fetch job -o result2");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not the version the CAS holds"), "{err}");
    assert!(!t.path("result2/report.txt").exists());

    // A changed interpreter: a job pinned to a copy of python3, which the
    // host then changes: no keys, nothing runs.
    t.sh_ok(
        "export VEIL_HOME=$PWD/owner/home
mkdir -p py && cp /usr/bin/python3 py/python3
veil job create --session acme/interp --script owner/report.py --input owner/data \
    --interpreter $PWD/py/python3 --bundle job2 > /dev/null",
    );
    let ok = t.sh("export VEIL_HOME=$PWD/host/home; cd job2; veil run --session acme/interp --service job --tee sim --cas \"$(cat ../cas.url)\" --volumes-dir volumes");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    t.sh_ok("printf '\\0' >> py/python3");
    let o = t.sh("export VEIL_HOME=$PWD/host/home; cd job2; veil run --session acme/interp --service job --tee sim --cas \"$(cat ../cas.url)\" --volumes-dir volumes");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(77), "{err}");
    assert!(err.contains("measurement_mismatch"), "{err}");
    assert!(err.contains("expected") && err.contains("found"), "{err}");

    // 5: the tutorial's last block stops the CAS.
    t.sh_ok(&blocks[4]);
}
