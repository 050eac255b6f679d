//! What `veil run` adds to starting a program: `veil run` of `/bin/true`
//! against `/bin/true` started directly, in the same run, with a local
//! development CAS on loopback.
//!
//! Three cases, interleaved so that machine noise hits them alike:
//! * `/bin/true` spawned and waited for directly (the peer);
//! * `veil run` of a service whose command is `/bin/true` (no files);
//! * the same with one injected file (private mount namespace + tmpfs).
//!
//! Run with `env -u RUST_BACKTRACE cargo bench -p veil --bench launch`
//! (`VEIL_BENCH_RUNS` overrides the 200 runs per case). The figures replace
//! the `launch` section of `docs/benchmarks.md`.

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::write_section;

struct Cas {
    child: Child,
}

impl Drop for Cas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn veil(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    c.env("VEIL_HOME", home)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .env_remove("VEIL_CAS");
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_cas(dir: &Path, home: &Path) -> (Cas, String) {
    let ready = dir.join("ready");
    let log = std::fs::File::create(dir.join("cas.log")).unwrap();
    let child = veil(home)
        .args([
            "cas",
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--state",
        ])
        .arg(dir.join("cas"))
        .arg("--trust-sim-key")
        .arg(home.join("sim/platform.pub"))
        .arg("--ready-file")
        .arg(&ready)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let cas = Cas { child };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(&ready) {
            if let Some(url) = t.split_whitespace().next() {
                return (cas, url.to_owned());
            }
        }
        assert!(Instant::now() < deadline, "the CAS did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn time(c: &mut Command) -> Duration {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let status = c.status().unwrap();
    let d = t0.elapsed();
    assert!(status.success(), "{c:?} failed: {status}");
    d
}

struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(v[((v.len() - 1) as f64 * q).round() as usize]);
    Stats {
        median: at(0.5),
        p10: at(0.1),
        p90: at(0.9),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("VEIL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let home = dir.join("home");
    veil_provider::SimProvider::open_or_create(&home.join("sim"), [0; 48]).unwrap();
    let (_cas, url) = start_cas(dir, &home);
    ok(veil(&home).args(["cas", "verify", "--dev", &url]));
    ok(veil(&home).args(["identity", "create"]));
    let fp = ok(veil(&home).args(["identity", "show"])).trim().to_owned();
    let measured = ok(veil(&home).args(["measure", "--json", "/bin/true"]));
    let m: serde_json::Value = serde_json::from_str(&measured).unwrap();
    let measurement = m["sim_measurement"].as_str().unwrap().to_owned();
    let file: PathBuf = dir.join("etc/bench.conf");
    let policy = format!(
        "name: bench/launch\nversion: 1\nowners: [{fp}]\nsecrets:\n  - {{ name: pw, kind: password, length: 24 }}\nservices:\n  - name: plain\n    accept:\n      - tee: sim\n        measurement: {measurement}\n    command: [/bin/true]\n    env:\n      PW: \"{{{{ pw }}}}\"\n  - name: files\n    accept:\n      - tee: sim\n        measurement: {measurement}\n    command: [/bin/true]\n    env:\n      PW: \"{{{{ pw }}}}\"\n    files:\n      {}: \"password = {{{{ pw }}}}\"\n",
        file.display()
    );
    let policy_path = dir.join("policy.yaml");
    std::fs::write(&policy_path, policy).unwrap();
    ok(veil(&home).args(["session", "apply"]).arg(&policy_path));

    let run = |service: &str| {
        let mut c = veil(&home);
        c.args([
            "run",
            "--session",
            "bench/launch",
            "--service",
            service,
            "--tee",
            "sim",
        ]);
        c
    };
    // Warm-up: caches (the launcher digest, page cache, TLS session setup).
    for _ in 0..10 {
        time(&mut Command::new("/bin/true"));
        time(&mut run("plain"));
        time(&mut run("files"));
    }
    let (mut direct, mut plain, mut files) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        direct.push(time(&mut Command::new("/bin/true")));
        plain.push(time(&mut run("plain")));
        files.push(time(&mut run("files")));
    }
    let (d, p, f) = (stats(direct), stats(plain), stats(files));
    let body = format!(
        "Command: `env -u RUST_BACKTRACE cargo bench -p veil --bench launch` ({runs} runs per case, interleaved, after 10 warm-up runs; wall time from spawn to exit as seen by the caller; local dev CAS on 127.0.0.1, simulated TEE; written by the bench).\n\n\
| case | median ms | p10 ms | p90 ms | added to direct (median) |\n|---|---|---|---|---|\n\
| `/bin/true` directly | {:.2} | {:.2} | {:.2} | |\n\
| `veil run` of `/bin/true` | {:.2} | {:.2} | {:.2} | {:.2} ms |\n\
| `veil run` of `/bin/true`, one injected file | {:.2} | {:.2} | {:.2} | {:.2} ms |\n",
        d.median, d.p10, d.p90,
        p.median, p.p10, p.p90, p.median - d.median,
        f.median, f.p10, f.p90, f.median - d.median,
    );
    println!("{body}");
    write_section("launch", &body);
}
