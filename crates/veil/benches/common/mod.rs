//! What the benches of this crate share: child processes without the
//! machine's RUST_BACKTRACE, tools installed with apt-get when missing, and
//! the section of `docs/benchmarks.md` each bench rewrites.

#![allow(dead_code)] // each bench uses part of it

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// An integer knob from the environment.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process command: no backtraces, no log settings inherited.
pub fn cmd(prog: &str) -> Command {
    let mut c = Command::new(prog);
    c.env_remove("RUST_BACKTRACE").env_remove("RUST_LOG");
    c
}

/// This build's `veil`, with no CAS or home inherited.
pub fn veil() -> Command {
    let mut c = cmd(env!("CARGO_BIN_EXE_veil"));
    c.env_remove("VEIL_CAS").env_remove("VEIL_HOME");
    c
}

/// Runs `c`; panics with its output when it fails. Returns stdout.
pub fn ok(c: &mut Command) -> String {
    let out = c.stdin(Stdio::null()).output().expect("run a command");
    assert!(
        out.status.success(),
        "{c:?} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `c` and returns its wall time in seconds; panics when it fails.
pub fn timed(c: &mut Command) -> f64 {
    let t = Instant::now();
    ok(c);
    t.elapsed().as_secs_f64()
}

/// Whether `prog` is on the PATH (or in the usual system directories).
pub fn on_path(prog: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/bin", "/usr/bin"])
        .any(|d| Path::new(d).join(prog).is_file());
    found
}

/// Installs, with apt-get, the package of every `(command, package)` whose
/// command is missing, as scripts/test.sh does.
pub fn ensure_installed(needs: &[(&str, &str)]) {
    let mut missing: Vec<&str> = needs
        .iter()
        .filter(|(c, _)| !on_path(c))
        .map(|(_, p)| *p)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return;
    }
    println!("== installing {} with apt-get", missing.join(" "));
    let _ = cmd("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    ok(cmd("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"));
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
/// in `docs/benchmarks.md` with `body` (appends the section, with the
/// markers, when they are absent).
pub fn write_section(name: &str, body: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/benchmarks.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{body}{}", &text[..b], &text[e..]),
        _ => format!("{text}\n{begin}\n{body}{end}\n"),
    };
    if let Err(e) = std::fs::write(path, new) {
        eprintln!("cannot write {path}: {e}");
    } else {
        println!("figures written to docs/benchmarks.md");
    }
}

/// Whether two files have the same content.
pub fn same_content(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).expect("open a file to compare"),
        std::fs::File::open(b).expect("open a file to compare"),
    );
    let (mut ba, mut bb) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

/// Fills `buf` from `f` as far as the file goes; the bytes read.
pub fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).expect("read a file") {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Median, minimum and maximum of `v` (sorted in place).
pub fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The first line of `s`, trimmed.
pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}
