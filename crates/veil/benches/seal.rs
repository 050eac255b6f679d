//! `veil encrypt` / `veil decrypt` beside age, in one run, on one file.
//!
//! A file of random bytes (1 GiB) on /dev/shm (else the temp dir) is
//! encrypted and decrypted, file to file, by the `veil` binary of this build
//! (the bench profile: the release profile with line tables) and by `age`
//! with an X25519 recipient (`age -r RECIPIENT -o OUT IN`, `age -d -i KEY -o
//! OUT IN`: no scrypt). Runs alternate between the two tools (so machine
//! noise hits both alike), after one warm-up round that is not counted (on
//! a VM the first writes to fresh memory are slow for any tool); the median
//! of the runs is reported, with the range. `RUST_BACKTRACE` and `RUST_LOG` are unset for both. The same file
//! copied with `dd bs=4M` (no cryptography) is timed too: the floor of any
//! tool that reads and writes through user space here.
//!
//! Run with `env -u RUST_BACKTRACE cargo bench -p veil --bench seal`; age is
//! installed with apt-get when missing. The figures replace the `seal`
//! section of `docs/benchmarks.md` (unless `VEIL_BENCH_NO_DOCS` is set).
//!
//! Knobs (environment): `VEIL_BENCH_SEAL_MIB` (1024), `VEIL_BENCH_RUNS` (3).

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;
use common::{
    cmd, ensure_installed, first_line, knob, ok, same_content, stats, timed, veil, write_section,
};

const MIB: u64 = 1 << 20;

/// A scratch directory on /dev/shm when it has room, else the temp dir;
/// removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(need: u64) -> Scratch {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() && free_bytes(shm).is_some_and(|f| f > need) {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("veil-seal-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Free bytes of the file system holding `dir` (`df -B1`).
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = cmd("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// Writes `mib` MiB of random bytes to `path`.
fn random_file(path: &Path, mib: u64) {
    let mut src = std::fs::File::open("/dev/urandom").unwrap();
    let mut dst = std::fs::File::create(path).unwrap();
    let mut buf = vec![0u8; MIB as usize];
    for _ in 0..mib {
        src.read_exact(&mut buf).unwrap();
        dst.write_all(&buf).unwrap();
    }
}

fn machine_note() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let has: Vec<&str> = ["aes", "vaes", "vpclmulqdq", "avx2", "avx512f"]
        .into_iter()
        .filter(|f| flags.contains(f))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu} ({}), {cores} cores, Linux {}",
        has.join(" "),
        kernel.trim()
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    ensure_installed(&[("age", "age"), ("age-keygen", "age")]);
    let mib = knob("VEIL_BENCH_SEAL_MIB", 1024).max(1);
    let runs = knob("VEIL_BENCH_RUNS", 3).max(1) as usize;
    let started = Instant::now();
    let load_start = load();
    let scratch = Scratch::new(5 * mib * MIB);
    let d = &scratch.0;
    let src = d.join("plain.bin");
    println!("== {mib} MiB of random bytes in {}", d.display());
    random_file(&src, mib);

    // Keys: a Veil key file and an age X25519 identity.
    let key = d.join("veil.key");
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut k)
        .unwrap();
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&key, format!("{hex}\n")).unwrap();
    ok(cmd("chmod").arg("600").arg(&key));
    let age_key = d.join("age.key");
    ok(cmd("age-keygen").arg("-o").arg(&age_key));
    let recipient = first_line(&ok(cmd("age-keygen").arg("-y").arg(&age_key)));
    let age_version = first_line(&ok(cmd("age").arg("--version")));

    let (v_enc, v_dec) = (d.join("v.veil"), d.join("v.out"));
    let (a_enc, a_dec) = (d.join("a.age"), d.join("a.out"));
    let copy = d.join("copy.bin");
    let rm = |p: &Path| {
        let _ = std::fs::remove_file(p);
    };
    let mut t: [Vec<f64>; 9] = Default::default();
    // Round 0 is a warm-up, not counted: on a VM, the first writes of
    // fresh memory are much slower than later ones (the host backs the
    // pages on first touch), whichever tool makes them.
    for round in 0..=runs {
        for p in [&v_enc, &a_enc] {
            rm(p);
        }
        t[0].push(timed(
            veil()
                .arg("encrypt")
                .arg(&src)
                .arg("-o")
                .arg(&v_enc)
                .arg("--key-file")
                .arg(&key),
        ));
        t[1].push(timed(
            cmd("age")
                .arg("-r")
                .arg(&recipient)
                .arg("-o")
                .arg(&a_enc)
                .arg(&src),
        ));
        for p in [&v_dec, &a_dec] {
            rm(p);
        }
        t[2].push(timed(
            veil()
                .arg("decrypt")
                .arg(&v_enc)
                .arg("-o")
                .arg(&v_dec)
                .arg("--key-file")
                .arg(&key),
        ));
        t[3].push(timed(
            cmd("age")
                .arg("-d")
                .arg("-i")
                .arg(&age_key)
                .arg("-o")
                .arg(&a_dec)
                .arg(&a_enc),
        ));
        rm(&copy);
        t[4].push(timed(
            cmd("dd")
                .arg(format!("if={}", src.display()))
                .arg(format!("of={}", copy.display()))
                .arg("bs=4M")
                .arg("status=none"),
        ));
        // The same, writing to /dev/null: the tools' own work, without
        // the allocation of the output's pages.
        let null = Path::new("/dev/null");
        t[5].push(timed(
            veil()
                .arg("encrypt")
                .arg(&src)
                .arg("-o")
                .arg(null)
                .arg("--key-file")
                .arg(&key),
        ));
        t[6].push(timed(
            cmd("age")
                .arg("-r")
                .arg(&recipient)
                .arg("-o")
                .arg(null)
                .arg(&src),
        ));
        t[7].push(timed(
            veil()
                .arg("decrypt")
                .arg(&v_enc)
                .arg("-o")
                .arg(null)
                .arg("--key-file")
                .arg(&key),
        ));
        t[8].push(timed(
            cmd("age")
                .arg("-d")
                .arg("-i")
                .arg(&age_key)
                .arg("-o")
                .arg(null)
                .arg(&a_enc),
        ));
        let last = t[0].len() - 1;
        println!(
            "round {round}{}: veil enc {:.3} s, age enc {:.3} s, veil dec {:.3} s, age dec {:.3} s, dd {:.3} s; to /dev/null: veil enc {:.3} s, age enc {:.3} s, veil dec {:.3} s, age dec {:.3} s",
            if round == 0 { " (warm-up)" } else { "" },
            t[0][last],
            t[1][last],
            t[2][last],
            t[3][last],
            t[4][last],
            t[5][last],
            t[6][last],
            t[7][last],
            t[8][last]
        );
        if round == 0 {
            for v in &mut t {
                v.clear();
            }
        }
    }
    assert!(same_content(&src, &v_dec), "veil's round trip differs");
    assert!(same_content(&src, &a_dec), "age's round trip differs");
    let v_size = std::fs::metadata(&v_enc).unwrap().len();
    let a_size = std::fs::metadata(&a_enc).unwrap().len();
    let on_shm = d.starts_with("/dev/shm");
    drop(scratch);

    let mibs = |s: f64| mib as f64 / s;
    let [ve, ae, vd, ad, dd, ven, aen, vdn, adn] = t.map(|mut v| stats(&mut v));
    let row = |name: &str, v: (f64, f64, f64), a: (f64, f64, f64)| {
        let ratio = a.0 / v.0;
        format!(
            "| {name} | {:.3} ({:.3}-{:.3}) | {:.0} | {:.3} ({:.3}-{:.3}) | {:.0} | {ratio:.2}x, {} |\n",
            v.0,
            v.1,
            v.2,
            mibs(v.0),
            a.0,
            a.1,
            a.2,
            mibs(a.0),
            if ratio >= 2.0 { "met" } else { "NOT met" }
        )
    };
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Command: `env -u RUST_BACKTRACE cargo bench -p veil --bench seal` (written by the bench; the whole run took {:.0} s). Machine: {}; load average {} at the start, {} at the end. Peer: age {age_version}.\n",
        started.elapsed().as_secs_f64(),
        machine_note(),
        load_start,
        load()
    );
    let _ = writeln!(
        body,
        "A {mib} MiB file of random bytes on {}, {runs} runs alternating between the tools after one warm-up round that is not counted (median, range in brackets; wall time of the whole command, output written beside the input): `veil encrypt IN -o OUT --key-file K` and `veil decrypt OUT -o BACK --key-file K` (this build's bench profile, i.e. release), beside `age -r RECIPIENT -o OUT IN` and `age -d -i KEY -o BACK OUT` (X25519 recipient, no scrypt). Sizes: veil-seal {v_size} bytes, age {a_size} bytes.\n",
        if on_shm { "/dev/shm (tmpfs)" } else { "the temp dir" },
    );
    body.push_str(
        "| | veil, s | veil, MiB/s | age, s | age, MiB/s | veil / age (goal: 2x) |\n|---|---|---|---|---|---|\n",
    );
    body.push_str(&row("encrypt", ve, ae));
    body.push_str(&row("decrypt", vd, ad));
    body.push_str(&row("encrypt to /dev/null", ven, aen));
    body.push_str(&row("decrypt to /dev/null", vdn, adn));
    let _ = writeln!(
        body,
        "\nThe rows `to /dev/null` run the same commands with `-o /dev/null`: each tool's own work, without allocating the output's pages on the tmpfs, which on this VM is the slowest and noisiest part of writing a file (its cost varies several-fold from run to run, for any program). The same file copied with `dd bs=4M` (no cryptography): {:.3} ({:.3}-{:.3}) s, {:.0} MiB/s.",
        dd.0,
        dd.1,
        dd.2,
        mibs(dd.0)
    );
    println!("{body}");
    if std::env::var_os("VEIL_BENCH_NO_DOCS").is_none() {
        write_section("seal", &body);
    }
}
