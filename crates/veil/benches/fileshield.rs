//! The file shield beside its peers, on one common backing store, in one run:
//!
//! * **Mounts.** fio (psync, buffered, one job) 1 MiB sequential write and
//!   read, 4 KiB random read and write, and the untar of a source tree, on a
//!   plain tmpfs directory, a gocryptfs mount and `veil fs mount` of an
//!   encrypted volume, every store on the same tmpfs. Veil is measured at
//!   chunk sizes of 4, 16, 64 and 256 KiB (and the CLI's default, read from
//!   `veil fs init --help`, if it is another), so the default is chosen by
//!   measurement; the comparison with the peers uses the default.
//! * **CLI.** `veil fs encrypt` / `veil fs decrypt` of a 1 GiB file beside
//!   `age -r` / `age -d -i` (X25519 recipient, so no scrypt), on the same
//!   tmpfs, and ring's single-core AES-256-GCM seal throughput over 64 KiB
//!   buffers measured in this process.
//!
//! Run with `env -u RUST_BACKTRACE cargo bench -p veil --bench fileshield`,
//! as root (tmpfs and FUSE mounts); fio, gocryptfs, age and fuse3 (whose
//! `fusermount3` gocryptfs 2.3 mounts with) are installed with apt-get when
//! missing. The figures replace the `file-shield` section of
//! `docs/benchmarks.md`.
//!
//! Knobs (environment): `VEIL_BENCH_ROUNDS` (3), `VEIL_BENCH_SEQ_MIB` (512),
//! `VEIL_BENCH_RAND_MIB` (256), `VEIL_BENCH_RAND_SECS` (10, the cap of each
//! random job), `VEIL_BENCH_CLI_MIB` (1024), `VEIL_BENCH_CLI_RUNS` (3),
//! `VEIL_BENCH_CHUNKS_KIB` (`4,16,64,256`), `VEIL_BENCH_TREE`
//! (`/usr/include`), `VEIL_BENCH_NO_DOCS` (set: do not touch the docs).
//!
//! Method: rounds of every workload, each workload on every system in turn
//! (so that machine noise hits them alike); medians are reported:
//! * sequential write of a new file, `end_fsync=1`; every mount is then
//!   unmounted and mounted again (and the page cache dropped), so the
//!   sequential read goes through the file system, not the kernel's cache;
//! * a file for the random jobs is laid out with 1 MiB writes, the mounts
//!   are remounted, then one random pass over it: 4 KiB reads (each block
//!   once: fio's random map, `fadvise` random, so no readahead and no cache
//!   hit), then 4 KiB writes (`end_fsync=1`); each pass stops at the time
//!   cap (plain tmpfs, all page cache, runs `time_based` for a few seconds
//!   instead: one pass there is too short for fio's clock);
//! * `tar -xf` of a tarball of a tree's regular files and directories,
//!   then `sync DIR` (fsync of the directory: for Veil, a full commit).

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{
    cmd, ensure_installed, first_line, knob, ok, same_content, timed, veil, write_section,
};

const MIB: u64 = 1 << 20;

fn is_mounted(mp: &Path) -> bool {
    let want = mp.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

/// `umount`, retried a few times, then `umount -l`. (No fusermount.)
fn umount(mp: &Path) {
    for _ in 0..20 {
        if !is_mounted(mp) {
            return;
        }
        let _ = cmd("umount").arg(mp).stderr(Stdio::null()).status();
        if !is_mounted(mp) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("{} is busy: detaching it lazily", mp.display());
    let _ = cmd("umount").arg("-l").arg(mp).status();
}

/// The common backing store: a tmpfs, unmounted when dropped (also on a
/// panic, after every mount on it is gone).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        ok(cmd("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("veil-bench")
            .arg(&dir));
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        umount(&self.dir);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn drop_caches() {
    let _ = cmd("sync").status();
    if std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_err() {
        eprintln!("(cannot drop the page cache here; remounts still empty the FUSE caches)");
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Gocryptfs,
    /// Chunk size in bytes.
    Veil(u32),
}

/// One system under test: where workloads write, and its store.
struct System {
    label: String,
    kind: Kind,
    /// The directory the workloads use (the mountpoint, or a plain dir).
    work: PathBuf,
    /// The backing store (gocryptfs cipher dir, Veil volume).
    store: PathBuf,
    secret: PathBuf,
    log: PathBuf,
    mounted: bool,
    child: Option<Child>,
}

impl System {
    fn new(root: &Path, kind: Kind) -> System {
        let (label, name) = match kind {
            Kind::Plain => ("plain tmpfs".to_owned(), "plain".to_owned()),
            Kind::Gocryptfs => ("gocryptfs 2.3".to_owned(), "gocryptfs".to_owned()),
            Kind::Veil(c) => (format!("Veil {} KiB", c / 1024), format!("veil-{c}")),
        };
        let s = System {
            label,
            kind,
            work: root.join(format!("{name}.mnt")),
            store: root.join(format!("{name}.store")),
            secret: root.join(format!("{name}.secret")),
            log: root.join(format!("{name}.log")),
            mounted: false,
            child: None,
        };
        std::fs::create_dir_all(&s.work).unwrap();
        match kind {
            Kind::Plain => {}
            Kind::Gocryptfs => {
                std::fs::create_dir_all(&s.store).unwrap();
                std::fs::write(&s.secret, "veil-bench-password\n").unwrap();
                ok(cmd("gocryptfs")
                    .args(["-init", "-q", "-passfile"])
                    .arg(&s.secret)
                    .arg(&s.store));
            }
            Kind::Veil(chunk) => {
                ok(veil()
                    .args(["fs", "init"])
                    .arg(&s.store)
                    .args(["--mode", "encrypted", "--key-file"])
                    .arg(&s.secret)
                    .args(["--chunk-size", &chunk.to_string()]));
            }
        }
        s
    }

    fn mount(&mut self) {
        match self.kind {
            Kind::Plain => return,
            Kind::Gocryptfs => {
                // It daemonizes: its output must not be a pipe we wait on.
                let log = std::fs::File::create(&self.log).unwrap();
                let st = cmd("gocryptfs")
                    .args(["-q", "-nosyslog", "-passfile"])
                    .arg(&self.secret)
                    .arg(&self.store)
                    .arg(&self.work)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .status()
                    .unwrap();
                assert!(
                    st.success(),
                    "gocryptfs mount failed ({st}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            Kind::Veil(_) => {
                let log = std::fs::File::create(&self.log).unwrap();
                let child = veil()
                    .args(["fs", "mount"])
                    .arg(&self.store)
                    .arg(&self.work)
                    .arg("--key-file")
                    .arg(&self.secret)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                self.child = Some(child);
            }
        }
        self.mounted = true;
        let t = Instant::now();
        while !is_mounted(&self.work) {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.try_wait().unwrap() {
                    self.child = None;
                    self.mounted = false;
                    panic!(
                        "veil fs mount exited ({st}): {}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{} did not mount at {}",
                self.label,
                self.work.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Unmounts; for Veil, SIGTERM to `veil fs mount` (commit, unmount).
    /// Returns whether it went cleanly.
    fn unmount(&mut self) -> bool {
        if !self.mounted {
            return true;
        }
        self.mounted = false;
        let Some(mut child) = self.child.take() else {
            umount(&self.work);
            return !is_mounted(&self.work);
        };
        let _ = cmd("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let t = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if t.elapsed() > Duration::from_secs(120) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let clean = status.is_some_and(|s| s.success());
        if !clean {
            eprintln!(
                "veil fs mount of {} ended badly ({status:?}): {}",
                self.label,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        umount(&self.work);
        clean
    }

    fn remount(&mut self) {
        if self.kind == Kind::Plain {
            return;
        }
        assert!(self.unmount(), "{}: unmounting failed", self.label);
        self.mount();
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// One fio job's outcome.
#[derive(Clone, Copy, Default)]
struct Fio {
    /// Bytes per second.
    bw: f64,
    iops: f64,
}

fn fio(dir: &Path, file: &str, rw: &str, bs: &str, size_mib: u64, extra: &[&str]) -> Fio {
    let out = ok(cmd("fio")
        .arg(format!("--name={rw}"))
        .arg(format!("--directory={}", dir.display()))
        .arg(format!("--filename={file}"))
        .arg(format!("--rw={rw}"))
        .arg(format!("--bs={bs}"))
        .arg(format!("--size={size_mib}M"))
        .args([
            "--ioengine=psync",
            "--direct=0",
            "--numjobs=1",
            "--fallocate=none",
            "--output-format=json",
        ])
        .args(extra));
    let json = &out[out.find('{').unwrap_or(0)..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let job = &v["jobs"][0];
    assert_eq!(
        job["error"].as_i64(),
        Some(0),
        "fio {rw} in {dir:?}: {json}"
    );
    let side = if rw.contains("read") {
        &job["read"]
    } else {
        &job["write"]
    };
    Fio {
        bw: side["bw_bytes"].as_f64().unwrap(),
        iops: side["iops"].as_f64().unwrap(),
    }
}

const SEQ_WRITE: usize = 0;
const SEQ_READ: usize = 1;
const RAND_READ: usize = 2;
const RAND_WRITE: usize = 3;
const UNTAR: usize = 4;
const METRICS: usize = 5;
/// Seconds of each random job on plain tmpfs (`time_based`).
const PLAIN_RAND_SECS: u64 = 3;

struct Params {
    seq: u64,
    rand: u64,
    rand_secs: u64,
    tar: PathBuf,
}

fn step(started: &Instant, what: &str) {
    println!("-- {what} ({:.0} s)", started.elapsed().as_secs_f64());
}

fn remount_all(systems: &mut [System]) {
    for s in systems.iter_mut() {
        s.remount();
    }
    drop_caches();
}

/// One round of every workload on every system, workload by workload.
fn round(systems: &mut [System], p: &Params, started: &Instant, out: &mut [[Vec<f64>; METRICS]]) {
    let show = |s: &System, v: f64, unit: &str| {
        let v = match unit {
            "MiB/s" => mibs(v),
            "s" => up(v, 2),
            _ => down(v, 0),
        };
        println!("   {:<16} {v:>8} {unit}", s.label);
    };
    step(started, "sequential write");
    for (s, o) in systems.iter().zip(out.iter_mut()) {
        let f = fio(&s.work, "seq.bin", "write", "1M", p.seq, &["--end_fsync=1"]);
        o[SEQ_WRITE].push(f.bw);
        show(s, f.bw, "MiB/s");
    }
    remount_all(systems);
    step(started, "sequential read");
    for (s, o) in systems.iter().zip(out.iter_mut()) {
        let f = fio(&s.work, "seq.bin", "read", "1M", p.seq, &[]);
        o[SEQ_READ].push(f.bw);
        show(s, f.bw, "MiB/s");
    }
    step(started, "random: laying out the file");
    for s in systems.iter() {
        std::fs::remove_file(s.work.join("seq.bin")).unwrap();
        fio(
            &s.work,
            "rand.bin",
            "write",
            "1M",
            p.rand,
            &["--end_fsync=1"],
        );
    }
    remount_all(systems);
    let cap = format!("--runtime={}", p.rand_secs);
    // Plain tmpfs is all page cache: one pass would last a few ms, too short
    // for fio's millisecond clock, so it runs for a fixed time instead.
    let plain_cap = format!("--runtime={}", p.rand_secs.min(PLAIN_RAND_SECS));
    let extra = |s: &System| -> Vec<&str> {
        if s.kind == Kind::Plain {
            vec![&plain_cap, "--time_based"]
        } else {
            vec![&cap]
        }
    };
    step(started, "4 KiB random read");
    for (s, o) in systems.iter().zip(out.iter_mut()) {
        let f = fio(&s.work, "rand.bin", "randread", "4k", p.rand, &extra(s));
        o[RAND_READ].push(f.iops);
        show(s, f.iops, "IOPS");
    }
    step(started, "4 KiB random write");
    for (s, o) in systems.iter().zip(out.iter_mut()) {
        let mut args = extra(s);
        args.push("--end_fsync=1");
        let f = fio(&s.work, "rand.bin", "randwrite", "4k", p.rand, &args);
        o[RAND_WRITE].push(f.iops);
        show(s, f.iops, "IOPS");
    }
    step(started, "untar");
    for (s, o) in systems.iter().zip(out.iter_mut()) {
        std::fs::remove_file(s.work.join("rand.bin")).unwrap();
        let t = untar(&p.tar, &s.work);
        o[UNTAR].push(t);
        show(s, t, "s");
    }
    // Untimed: empty every system for the next round.
    for s in systems.iter() {
        ok(cmd("rm").arg("-rf").arg(s.work.join("untar")));
    }
}

/// A tarball of `tree`'s directories and regular files (no symlinks, hard
/// links stored as files): what every system can hold.
fn make_tarball(tree: &Path, root: &Path) -> (PathBuf, u64, u64) {
    fn walk(base: &Path, rel: &Path, list: &mut Vec<PathBuf>, files: &mut u64, bytes: &mut u64) {
        let Ok(rd) = std::fs::read_dir(base.join(rel)) else {
            return;
        };
        let mut names: Vec<_> = rd.filter_map(Result::ok).map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let Ok(md) = std::fs::symlink_metadata(base.join(&r)) else {
                continue;
            };
            if r.to_string_lossy().contains('\n') {
                continue;
            }
            if md.is_dir() {
                list.push(r.clone());
                walk(base, &r, list, files, bytes);
            } else if md.is_file() {
                list.push(r);
                *files += 1;
                *bytes += md.len();
            }
        }
    }
    let parent = tree.parent().unwrap_or(Path::new("/"));
    let top = PathBuf::from(tree.file_name().unwrap());
    let (mut list, mut files, mut bytes) = (vec![top.clone()], 0, 0);
    walk(parent, &top, &mut list, &mut files, &mut bytes);
    let listing = root.join("tree.list");
    let mut text = String::new();
    for p in &list {
        text.push_str(&p.to_string_lossy());
        text.push('\n');
    }
    std::fs::write(&listing, text).unwrap();
    let tar = root.join("tree.tar");
    ok(cmd("tar")
        .arg("-cf")
        .arg(&tar)
        .args(["--no-recursion", "--hard-dereference", "-C"])
        .arg(parent)
        .arg("--verbatim-files-from")
        .arg("-T")
        .arg(&listing));
    (tar, files, bytes)
}

fn untar(tar: &Path, dir: &Path) -> f64 {
    let dst = dir.join("untar");
    let t = Instant::now();
    std::fs::create_dir(&dst).unwrap();
    ok(cmd("tar")
        .arg("-xf")
        .arg(tar)
        .arg("--no-same-owner")
        .arg("-C")
        .arg(&dst));
    // fsync of the directory: for Veil a full commit (fsyncdir).
    ok(cmd("sync").arg(&dst));
    t.elapsed().as_secs_f64()
}

/// Fills `path` with `mib` MiB of pseudo-random bytes (xorshift).
fn make_data(path: &Path, mib: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; MIB as usize];
    for _ in 0..mib {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}

/// ring's AES-256-GCM seal, one core, 64 KiB buffers: bytes per second.
fn ring_seal_rate(secs: f64) -> f64 {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let mut buf = vec![0x5au8; 64 << 10];
    let aad = [1u8; 57];
    let mut counter = 0u64;
    let mut run = |d: Duration| {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < d {
            for _ in 0..16 {
                counter += 1;
                let mut nb = [0u8; 12];
                nb[4..].copy_from_slice(&counter.to_be_bytes());
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nb),
                        Aad::from(&aad[..]),
                        &mut buf,
                    )
                    .unwrap();
                let _ = std::hint::black_box(tag);
                n += 1;
            }
        }
        (n * buf.len() as u64) as f64 / t.elapsed().as_secs_f64()
    };
    run(Duration::from_millis(300));
    run(Duration::from_secs_f64(secs))
}

/// The median (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Shown figures never flatter: rates and ratios are rounded down, times up.
fn down(x: f64, decimals: i32) -> String {
    let p = 10f64.powi(decimals);
    format!("{:.*}", decimals as usize, (x * p).floor() / p)
}

fn up(x: f64, decimals: i32) -> String {
    let p = 10f64.powi(decimals);
    format!("{:.*}", decimals as usize, (x * p).ceil() / p)
}

fn mibs(bw: f64) -> String {
    down(bw / MIB as f64, 0)
}

fn met(yes: bool) -> &'static str {
    if yes {
        "met"
    } else {
        "NOT met"
    }
}

fn machine_note() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .map_or(0, |k| k / 1024 / 1024);
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let has: Vec<&str> = ["aes", "vaes", "vpclmulqdq", "avx2", "avx512f"]
        .into_iter()
        .filter(|f| flags.contains(f))
        .collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu} ({}), {cores} cores, {mem} GiB, Linux {}",
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
    if !is_root() {
        println!("fileshield: skipped (needs root: tmpfs and FUSE mounts)");
        return;
    }
    ensure_installed(&[
        ("fio", "fio"),
        ("gocryptfs", "gocryptfs"),
        ("age", "age"),
        ("age-keygen", "age"),
        // gocryptfs 2.3 mounts through fusermount3 (it has no direct mount).
        ("fusermount3", "fuse3"),
        ("tar", "tar"),
    ]);
    let seq = knob("VEIL_BENCH_SEQ_MIB", 512);
    let rand = knob("VEIL_BENCH_RAND_MIB", 256);
    let rand_secs = knob("VEIL_BENCH_RAND_SECS", 10);
    let cli_mib = knob("VEIL_BENCH_CLI_MIB", 1024);
    let cli_runs = knob("VEIL_BENCH_CLI_RUNS", 3).max(1);
    let rounds = knob("VEIL_BENCH_ROUNDS", 3).max(1);
    let default_chunk = default_chunk_size();
    let mut chunks: Vec<u32> = std::env::var("VEIL_BENCH_CHUNKS_KIB")
        .unwrap_or_else(|_| "4,16,64,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse::<u32>().ok())
        .map(|k| k * 1024)
        .collect();
    if !chunks.contains(&default_chunk) {
        chunks.push(default_chunk);
        chunks.sort_unstable();
    }
    let tree = PathBuf::from(std::env::var("VEIL_BENCH_TREE").unwrap_or("/usr/include".into()));
    let versions = [
        first_line(&ok(cmd("gocryptfs").arg("-version"))),
        format!("age {}", first_line(&ok(cmd("age").arg("--version")))),
        first_line(&ok(cmd("fio").arg("--version"))),
    ];
    let machine = machine_note();
    let load_start = load();
    let started = Instant::now();
    println!("machine: {machine}; load average {load_start}");
    for v in &versions {
        println!("peer: {v}");
    }

    let base = std::env::temp_dir().join(format!("veil-fileshield.{}", std::process::id()));
    let store = Tmpfs::mount(base, "12g");
    let root = store.dir.clone();
    let (tar, tree_files, tree_bytes) = make_tarball(&tree, &root);
    println!(
        "untar tree: {} ({tree_files} files, {} MiB)",
        tree.display(),
        tree_bytes / MIB
    );

    // ---------------------------------------------------------------- mounts
    let mut systems = vec![
        System::new(&root, Kind::Plain),
        System::new(&root, Kind::Gocryptfs),
    ];
    for &c in &chunks {
        systems.push(System::new(&root, Kind::Veil(c)));
    }
    for s in &mut systems {
        s.mount();
    }
    let p = Params {
        seq,
        rand,
        rand_secs,
        tar: tar.clone(),
    };
    // samples[system][metric]: one value per round.
    let mut samples: Vec<[Vec<f64>; METRICS]> = vec![Default::default(); systems.len()];
    for r in 0..rounds {
        step(&started, &format!("round {} of {rounds}", r + 1));
        round(&mut systems, &p, &started, &mut samples);
    }
    for s in &mut systems {
        assert!(s.unmount(), "{}: unmounting failed", s.label);
        let _ = std::fs::remove_dir_all(&s.store);
        let _ = std::fs::remove_dir_all(&s.work);
    }
    let labels: Vec<String> = systems.iter().map(|s| s.label.clone()).collect();
    let kinds: Vec<Kind> = systems.iter().map(|s| s.kind).collect();
    drop(systems);

    // ---------------------------------------------------------------- CLI
    step(&started, "CLI: veil fs encrypt/decrypt beside age");
    let src = root.join("cli-src");
    std::fs::create_dir(&src).unwrap();
    let data = src.join("data.bin");
    make_data(&data, cli_mib);
    let vkey = root.join("cli.key");
    let akey = root.join("age.key");
    ok(cmd("age-keygen").arg("-o").arg(&akey));
    let recipient = std::fs::read_to_string(&akey)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .trim()
        .to_owned();
    let (mut v_enc, mut v_dec, mut a_enc, mut a_dec) = (vec![], vec![], vec![], vec![]);
    let mut d_copy = vec![];
    for run in 0..cli_runs {
        let vol = root.join("cli-vol");
        let dst = root.join("cli-dst");
        ok(veil()
            .args(["fs", "init"])
            .arg(&vol)
            .args(["--mode", "encrypted", "--key-file"])
            .arg(&vkey));
        v_enc.push(timed(
            veil()
                .args(["fs", "encrypt"])
                .arg(&src)
                .arg(&vol)
                .arg("--key-file")
                .arg(&vkey),
        ));
        v_dec.push(timed(
            veil()
                .args(["fs", "decrypt"])
                .arg(&vol)
                .arg(&dst)
                .arg("--key-file")
                .arg(&vkey),
        ));
        if run == 0 {
            assert!(
                same_content(&data, &dst.join("data.bin")),
                "veil fs decrypt gave other bytes"
            );
        }
        std::fs::remove_dir_all(&vol).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();

        let enc = root.join("data.age");
        let dec = root.join("data.age.out");
        a_enc.push(timed(
            cmd("age")
                .args(["-r", &recipient, "-o"])
                .arg(&enc)
                .arg(&data),
        ));
        a_dec.push(timed(
            cmd("age")
                .arg("-d")
                .arg("-i")
                .arg(&akey)
                .arg("-o")
                .arg(&dec)
                .arg(&enc),
        ));
        if run == 0 {
            assert!(same_content(&data, &dec), "age -d gave other bytes");
        }
        std::fs::remove_file(&enc).unwrap();
        std::fs::remove_file(&dec).unwrap();

        // The floor of any tool that reads and writes through user space.
        let copy = root.join("data.copy");
        d_copy.push(timed(
            cmd("dd")
                .arg(format!("if={}", data.display()))
                .arg(format!("of={}", copy.display()))
                .args(["bs=4M", "status=none"]),
        ));
        std::fs::remove_file(&copy).unwrap();
        let r = run as usize;
        println!(
            "   run {run}: veil encrypt {:.3} s, decrypt {:.3} s; age encrypt {:.3} s, decrypt {:.3} s; dd {:.3} s",
            v_enc[r], v_dec[r], a_enc[r], a_dec[r], d_copy[r]
        );
    }
    std::fs::remove_dir_all(&src).unwrap();
    step(&started, "ring AES-256-GCM, one core");
    let ring_rate = ring_seal_rate(3.0);
    let load_end = load();
    let total = started.elapsed().as_secs_f64();
    drop(store);

    // ---------------------------------------------------------------- report
    let bytes = (cli_mib * MIB) as f64;
    let (ve, vd, ae, ad) = (
        median(&v_enc),
        median(&v_dec),
        median(&a_enc),
        median(&a_dec),
    );
    let idx = |k: Kind| kinds.iter().position(|x| *x == k);
    let plain = idx(Kind::Plain).unwrap();
    let gocry = idx(Kind::Gocryptfs).unwrap();
    let main_veil = idx(Kind::Veil(default_chunk));
    // The shown value of metric `m` (MiB/s, IOPS or seconds).
    let unit = |m: usize, x: f64| if m <= SEQ_READ { x / MIB as f64 } else { x };
    let med = |i: usize, m: usize| unit(m, median(&samples[i][m]));
    let fmt = |m: usize, x: f64| if m == UNTAR { up(x, 2) } else { down(x, 0) };
    let cell = |i: usize, m: usize| {
        let v = &samples[i][m];
        let (lo, hi) = (
            unit(m, v.iter().copied().fold(f64::INFINITY, f64::min)),
            unit(m, v.iter().copied().fold(0.0, f64::max)),
        );
        if v.len() > 1 {
            format!("{} ({}-{})", fmt(m, med(i, m)), fmt(m, lo), fmt(m, hi))
        } else {
            fmt(m, med(i, m))
        }
    };
    // Veil over gocryptfs, as a speed ratio (time ratio for untar).
    let ratio = |i: usize, m: usize| {
        if m == UNTAR {
            med(gocry, m) / med(i, m)
        } else {
            med(i, m) / med(gocry, m)
        }
    };
    let names = [
        "sequential write 1 MiB, MiB/s",
        "sequential read 1 MiB, MiB/s",
        "4 KiB random read, IOPS",
        "4 KiB random write, IOPS",
        "untar, s (lower is better)",
    ];
    let short = [
        "seq write",
        "seq read",
        "4K random read",
        "4K random write",
        "untar",
    ];

    let mut body = String::new();
    let w = &mut body;
    writeln!(
        w,
        "Command: `env -u RUST_BACKTRACE cargo bench -p veil --bench fileshield` (as root; written by the bench; \
         the whole run took {} s). Machine: {machine}; load average {load_start} at the start, {load_end} at the \
         end. Peers: {}; {}; {}. Every store is on one tmpfs; Veil is `veil fs mount` of an encrypted volume \
         (the bench-profile build, default mount options), gocryptfs is mounted with its defaults \
         (`-q -nosyslog -passfile`).",
        up(total, 0),
        versions[0],
        versions[1],
        versions[2]
    )
    .unwrap();
    writeln!(w).unwrap();
    writeln!(
        w,
        "fio, `ioengine=psync`, `direct=0`, one job, {rounds} rounds (each workload on every system in turn; \
         median, with the range in brackets): sequential = `bs=1M` over {seq} MiB (write `end_fsync=1`; every \
         mount remounted and the page cache dropped before the read); random = `bs=4k`, one pass over a {rand} MiB \
         file laid out and remounted before (fio's random map and `fadvise` random: each block once, no readahead, \
         no cache hit), at most {rand_secs} s (plain tmpfs: `time_based`, {} s), write `end_fsync=1`; \
         untar = `tar -xf` of {} ({tree_files} regular files and their directories, {} MiB), then `sync DIR` \
         (fsync of the directory; for Veil a full commit), wall time.",
        rand_secs.min(PLAIN_RAND_SECS),
        tree.display(),
        tree_bytes / MIB
    )
    .unwrap();
    writeln!(w).unwrap();
    let mut goal_lines = Vec::new();
    if let Some(v) = main_veil {
        writeln!(
            w,
            "| workload | {} | {} | {} | {} / gocryptfs | goal: 3x |",
            labels[plain], labels[gocry], labels[v], labels[v]
        )
        .unwrap();
        writeln!(w, "|---|---|---|---|---|---|").unwrap();
        for (m, name) in names.iter().enumerate() {
            writeln!(
                w,
                "| {} | {} | {} | {} | {}x | {} |",
                name,
                cell(plain, m),
                cell(gocry, m),
                cell(v, m),
                down(ratio(v, m), 2),
                met(ratio(v, m) >= 3.0)
            )
            .unwrap();
        }
        writeln!(w).unwrap();
        let n_met = (0..METRICS).filter(|&m| ratio(v, m) >= 3.0).count();
        goal_lines.push(format!(
            "At least 3x gocryptfs on sequential and random work ({}): {}; {n_met} of {METRICS} workloads reach 3x ({}).",
            labels[v],
            met(n_met == METRICS),
            (0..METRICS)
                .map(|m| format!("{} {}x", short[m], down(ratio(v, m), 2)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let veils: Vec<(usize, u32)> = kinds
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match k {
            Kind::Veil(c) => Some((i, *c)),
            _ => None,
        })
        .collect();
    writeln!(
        w,
        "Chunk-size sweep (Veil, same run and workloads, medians; {} KiB is the CLI's default; in brackets: Veil / gocryptfs):",
        default_chunk / 1024
    )
    .unwrap();
    writeln!(w).unwrap();
    writeln!(
        w,
        "| chunk | seq write MiB/s | seq read MiB/s | 4K random read IOPS | 4K random write IOPS | untar s |"
    )
    .unwrap();
    writeln!(w, "|---|---|---|---|---|---|").unwrap();
    for &(i, c) in &veils {
        write!(w, "| {} KiB |", c / 1024).unwrap();
        for m in 0..METRICS {
            write!(w, " {} ({}x) |", fmt(m, med(i, m)), down(ratio(i, m), 2)).unwrap();
        }
        writeln!(w).unwrap();
    }
    writeln!(w).unwrap();
    if let Some(v) = main_veil {
        let parts: Vec<String> = (0..METRICS)
            .map(|m| {
                let better = |a: f64, b: f64| if m == UNTAR { a < b } else { a > b };
                let best = veils
                    .iter()
                    .copied()
                    .reduce(|a, b| {
                        if better(med(b.0, m), med(a.0, m)) {
                            b
                        } else {
                            a
                        }
                    })
                    .unwrap();
                let share = if m == UNTAR {
                    med(best.0, m) / med(v, m)
                } else {
                    med(v, m) / med(best.0, m)
                };
                format!(
                    "{}: best {} KiB, {} at {}% of it",
                    short[m],
                    best.1 / 1024,
                    labels[v],
                    down(share * 100.0, 0)
                )
            })
            .collect();
        writeln!(w, "Per workload, {}.", parts.join("; ")).unwrap();
        writeln!(w).unwrap();
    }

    writeln!(
        w,
        "CLI: a {cli_mib} MiB file of random bytes on the same tmpfs, {cli_runs} runs (median, range in brackets; \
         wall time of the whole command, output written to the tmpfs): `veil fs encrypt SRC VOL --key-file K` \
         into a new volume (the default chunk size, {} KiB) and `veil fs decrypt VOL DST --key-file K`, beside \
         `age -r RECIPIENT -o OUT FILE` and `age -d -i KEY -o OUT FILE.age` (X25519 recipient, no scrypt). \
         ring: `LessSafeKey::seal_in_place_separate_tag`, AES-256-GCM, 64 KiB buffers, one thread, 3 s, in the \
         bench process right after the CLI runs.",
        default_chunk / 1024
    )
    .unwrap();
    writeln!(w).unwrap();
    writeln!(
        w,
        "| | veil fs, s | veil fs, MiB/s | age, s | age, MiB/s | veil / age (goal: 2x) | veil / ring seal (goal: 0.7) |"
    )
    .unwrap();
    writeln!(w, "|---|---|---|---|---|---|---|").unwrap();
    let span = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{} ({}-{})", up(median(v), 3), up(lo, 3), up(hi, 3))
    };
    for (name, vs, v, a_s, a) in [
        ("encrypt", &v_enc, ve, &a_enc, ae),
        ("decrypt", &v_dec, vd, &a_dec, ad),
    ] {
        let vr = bytes / v;
        writeln!(
            w,
            "| {name} | {} | {} | {} | {} | {}x, {} | {}, {} |",
            span(vs),
            mibs(vr),
            span(a_s),
            mibs(bytes / a),
            down(a / v, 2),
            met(a / v >= 2.0),
            down(vr / ring_rate, 2),
            met(vr / ring_rate >= 0.7)
        )
        .unwrap();
        goal_lines.push(format!(
            "`veil fs {name}` at least 2x age: {} ({}x); at least 0.7 of ring's seal: {} ({} MiB/s of {} MiB/s = {}).",
            met(a / v >= 2.0),
            down(a / v, 2),
            met(vr / ring_rate >= 0.7),
            mibs(vr),
            mibs(ring_rate),
            down(vr / ring_rate, 2)
        ));
    }
    writeln!(w).unwrap();
    let dc = median(&d_copy);
    writeln!(
        w,
        "ring AES-256-GCM seal, one core, 64 KiB buffers: {} MiB/s. The same file copied with \
         `dd bs=4M` (read and write through user space, no cryptography; the floor of any single-threaded \
         tool here): {} s, {} MiB/s, {} of ring's seal rate.",
        mibs(ring_rate),
        span(&d_copy),
        mibs(bytes / dc),
        down(bytes / dc / ring_rate, 2)
    )
    .unwrap();
    writeln!(w).unwrap();
    writeln!(w, "Goals in this run:").unwrap();
    writeln!(w).unwrap();
    for g in &goal_lines {
        writeln!(w, "- {g}").unwrap();
    }

    println!();
    print!("{body}");
    if std::env::var_os("VEIL_BENCH_NO_DOCS").is_none() {
        write_section("file-shield", &body);
    }
}

/// The chunk size `veil fs init` uses when given none (from its help).
fn default_chunk_size() -> u32 {
    let help = ok(veil().args(["fs", "init", "--help"]));
    let after = &help[help
        .find("--chunk-size")
        .expect("veil fs init has --chunk-size")..];
    let n: u32 = after
        .find("[default: ")
        .map(|i| &after[i + "[default: ".len()..])
        .and_then(|t| t.split(']').next())
        .and_then(|t| t.trim().parse().ok())
        .expect("veil fs init --help states the default chunk size");
    assert!(n >= 4096 && n.is_power_of_two(), "chunk size {n}");
    n
}

/// Whether this process runs as root (uid 0), read from /proc.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}
