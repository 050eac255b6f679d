//! `veil encrypt` and `veil decrypt` through the real binary: round trips
//! through files and pipes (empty, 1 byte, one chunk, several chunks,
//! 20 MiB), the plaintext never in the ciphertext, a wrong key and every
//! kind of tampering refused with exit 1 (the chunk named, no output file
//! left), usage errors with exit 2, and keys from a session secret read back
//! from a development CAS.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

const CHUNK: usize = 65536;
const HEADER: usize = 76;
const TAG: usize = 16;
const RECORD: usize = CHUNK + TAG;
/// A string that must never appear in a ciphertext.
const CANARY: &str = "plaintext-canary-Zt4Qm8";

fn veil(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    c.env_remove("VEIL_CAS")
        .env_remove("RUST_LOG")
        .env("VEIL_HOME", home);
    c
}

/// Runs veil with `stdin` as its standard input; checks it did not panic.
fn run_with(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = veil(home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // Written on a thread: veil may stop reading early (a wrong key).
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run(home: &Path, args: &[&str]) -> Output {
    run_with(home, args, b"")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn expect(home: &Path, args: &[&str], want: i32) -> Output {
    let o = run(home, args);
    assert_eq!(code(&o), want, "veil {}: {}", args.join(" "), err(&o));
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Deterministic pseudo-random bytes, with the canary every 100 KiB.
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut at = 0;
    while at + CANARY.len() <= n {
        v[at..at + CANARY.len()].copy_from_slice(CANARY.as_bytes());
        at += 100 << 10;
    }
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn sealed_len(n: usize) -> usize {
    HEADER + n + TAG * n.div_ceil(CHUNK).max(1)
}

fn write_key(path: &Path, byte: u8) {
    std::fs::write(path, format!("{}\n", hex_of(&[byte; 32]))).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Files in `dir` (to see that nothing, not even a temporary file, is left).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    home: PathBuf,
    key: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let key = dir.join("k.key");
    write_key(&key, 0x42);
    Setup {
        home: dir.join("home"),
        dir,
        key,
        _tmp: tmp,
    }
}

#[test]
fn round_trips_through_files_and_pipes_and_hide_the_plaintext() {
    let t = setup();
    let k = s(&t.key);
    for (i, n) in [0, 1, CHUNK, 3 * CHUNK + 5, 20 << 20]
        .into_iter()
        .enumerate()
    {
        let plain = data(n, i as u64 + 1);
        let p = t.dir.join(format!("p{i}"));
        let c = t.dir.join(format!("c{i}"));
        let back = t.dir.join(format!("b{i}"));
        std::fs::write(&p, &plain).unwrap();

        // Files in, files out.
        expect(
            &t.home,
            &["encrypt", s(&p), "-o", s(&c), "--key-file", k],
            0,
        );
        let sealed = std::fs::read(&c).unwrap();
        assert_eq!(sealed.len(), sealed_len(n), "n = {n}");
        assert_eq!(&sealed[..8], b"VEILSEAL");
        if n >= CANARY.len() {
            assert!(contains(&plain, CANARY.as_bytes()));
            assert!(
                !contains(&sealed, CANARY.as_bytes()),
                "the canary is in the ciphertext (n = {n})"
            );
        }
        expect(
            &t.home,
            &["decrypt", s(&c), "-o", s(&back), "--key-file", k],
            0,
        );
        assert!(std::fs::read(&back).unwrap() == plain, "n = {n}");

        // Standard input to standard output, both ways (and `-`).
        let o = run_with(&t.home, &["encrypt", "--key-file", k], &plain);
        assert_eq!(code(&o), 0, "{}", err(&o));
        assert_eq!(o.stdout.len(), sealed_len(n));
        // A fresh salt every time: the same input seals differently.
        assert!(o.stdout != sealed);
        let o2 = run_with(
            &t.home,
            &["decrypt", "-", "-o", "-", "--key-file", k],
            &o.stdout,
        );
        assert_eq!(code(&o2), 0, "{}", err(&o2));
        assert!(o2.stdout == plain, "n = {n}");
        // A file's ciphertext through a pipe, and the reverse.
        let o3 = run_with(&t.home, &["decrypt", "--key-file", k], &sealed);
        assert!(code(&o3) == 0 && o3.stdout == plain, "{}", err(&o3));
        let c2 = t.dir.join(format!("c{i}-from-stdin"));
        let o4 = run_with(&t.home, &["encrypt", "-o", s(&c2), "--key-file", k], &plain);
        assert_eq!(code(&o4), 0, "{}", err(&o4));
        let o5 = run(&t.home, &["decrypt", s(&c2), "--key-file", k]);
        assert!(code(&o5) == 0 && o5.stdout == plain, "{}", err(&o5));
        // Nothing printed on success (no terminal here: no progress bar).
        assert!(o.stderr.is_empty() && o5.stderr.is_empty(), "{}", err(&o5));
    }
    // `-o /dev/null` writes to the device (it is not replaced by a file);
    // `-o LINK` replaces the link's target and keeps the link.
    let p = t.dir.join("p3");
    expect(
        &t.home,
        &["encrypt", s(&p), "-o", "/dev/null", "--key-file", k],
        0,
    );
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(!null.is_file(), "/dev/null was replaced");
    let real = t.dir.join("real.veil");
    std::fs::write(&real, b"old").unwrap();
    let link = t.dir.join("link.veil");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    expect(
        &t.home,
        &["encrypt", s(&p), "-o", s(&link), "--key-file", k],
        0,
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let o = run(&t.home, &["decrypt", s(&real), "--key-file", k]);
    assert!(
        code(&o) == 0 && o.stdout == std::fs::read(&p).unwrap(),
        "{}",
        err(&o)
    );

    // Output files are private, and no temporary file is left behind.
    let mode = std::fs::metadata(t.dir.join("b1"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        names(&t.dir).iter().all(|n| !n.contains("veil-tmp")),
        "{:?}",
        names(&t.dir)
    );
}

/// The sealed file of `n` bytes under t.key.
fn sealed_file(t: &Setup, name: &str, n: usize) -> (Vec<u8>, Vec<u8>, PathBuf) {
    let plain = data(n, 99);
    let p = t.dir.join(format!("{name}.plain"));
    let c = t.dir.join(format!("{name}.veil"));
    std::fs::write(&p, &plain).unwrap();
    expect(
        &t.home,
        &["encrypt", s(&p), "-o", s(&c), "--key-file", s(&t.key)],
        0,
    );
    (plain, std::fs::read(&c).unwrap(), c)
}

/// Decrypting `bytes` into a file fails with exit 1 and a message holding
/// `needle`; the output file is not made (nor any temporary file left).
#[track_caller]
fn refused(t: &Setup, bytes: &[u8], key: &Path, needle: &str) -> String {
    let out_dir = t.dir.join("out");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let c = t.dir.join("case.veil");
    std::fs::write(&c, bytes).unwrap();
    let out = out_dir.join("plain");
    let o = run(
        &t.home,
        &["decrypt", s(&c), "-o", s(&out), "--key-file", s(key)],
    );
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(
        err(&o).contains(needle),
        "wanted {needle:?} in: {}",
        err(&o)
    );
    assert!(names(&out_dir).is_empty(), "left: {:?}", names(&out_dir));
    // Through a pipe too: exit 1, and nothing of a failing chunk.
    let o = run_with(&t.home, &["decrypt", "--key-file", s(key)], bytes);
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(
        err(&o).contains(needle),
        "wanted {needle:?} in: {}",
        err(&o)
    );
    err(&o)
}

#[test]
fn a_wrong_key_and_every_kind_of_tampering_exit_1_and_leave_no_output() {
    let t = setup();
    let n = 5 * CHUNK + 123;
    let (plain, good, _) = sealed_file(&t, "f", n);
    let o = run_with(&t.home, &["decrypt", "--key-file", s(&t.key)], &good);
    assert!(code(&o) == 0 && o.stdout == plain, "{}", err(&o));
    let other = t.dir.join("other.key");
    write_key(&other, 0x43);

    // A wrong key: refused at the header, before anything is written.
    let e = refused(&t, &good, &other, "wrong key");
    assert!(!e.contains("chunk"), "{e}");
    let o = run_with(&t.home, &["decrypt", "--key-file", s(&other)], &good);
    assert!(o.stdout.is_empty());

    // An existing output file is left as it was.
    let keep = t.dir.join("keep.txt");
    std::fs::write(&keep, b"old content").unwrap();
    let c = t.dir.join("good.veil");
    std::fs::write(&c, &good).unwrap();
    expect(
        &t.home,
        &["decrypt", s(&c), "-o", s(&keep), "--key-file", s(&other)],
        1,
    );
    assert_eq!(std::fs::read(&keep).unwrap(), b"old content");

    let at = |chunk: usize, off: usize| HEADER + chunk * RECORD + off;
    let flip = |i: usize| {
        let mut v = good.clone();
        v[i] ^= 0x10;
        v
    };
    // A flipped bit in chunk 3's body, in chunk 0's tag, in the last chunk.
    refused(
        &t,
        &flip(at(3, 777)),
        &t.key,
        "chunk 3 failed authentication: the file was modified or truncated",
    );
    refused(
        &t,
        &flip(at(0, CHUNK + 2)),
        &t.key,
        "chunk 0 failed authentication",
    );
    refused(
        &t,
        &flip(good.len() - 1),
        &t.key,
        "chunk 5 failed authentication",
    );
    // Header bits: the salt or the MAC (reported as a wrong key or a changed
    // header), the magic, the version.
    refused(&t, &flip(30), &t.key, "wrong key");
    refused(&t, &flip(60), &t.key, "header was modified");
    refused(&t, &flip(0), &t.key, "not a veil-seal file");
    refused(&t, &flip(8), &t.key, "version 17 is not supported");
    // Cut at a chunk boundary, inside a chunk, inside the header.
    refused(
        &t,
        &good[..at(2, 0)],
        &t.key,
        "truncated: it ends after chunk 1",
    );
    refused(
        &t,
        &good[..at(4, 1000)],
        &t.key,
        "chunk 4 failed authentication",
    );
    refused(&t, &good[..50], &t.key, "ends inside the header");
    refused(&t, &good[..HEADER], &t.key, "no chunk");
    // Reordered chunks, data appended, a chunk dropped.
    let mut swapped = good[..HEADER].to_vec();
    swapped.extend_from_slice(&good[at(1, 0)..at(2, 0)]);
    swapped.extend_from_slice(&good[at(0, 0)..at(1, 0)]);
    swapped.extend_from_slice(&good[at(2, 0)..]);
    refused(&t, &swapped, &t.key, "chunk 0 failed authentication");
    let mut longer = good.clone();
    longer.extend_from_slice(b"appended");
    refused(&t, &longer, &t.key, "chunk 5 failed authentication");
    let mut dropped = good[..at(2, 0)].to_vec();
    dropped.extend_from_slice(&good[at(3, 0)..]);
    refused(&t, &dropped, &t.key, "chunk 2 failed authentication");
    // Something else entirely.
    refused(
        &t,
        b"age-encryption.org/v1\n-> X25519 ...",
        &t.key,
        "not a veil-seal file",
    );

    // On a pipe, a failure late in a big file: exit 1 and only authentic
    // plaintext from before the failing chunk (the message says so).
    let (plain, good, _) = sealed_file(&t, "big", 40 * CHUNK);
    let mut bad = good.clone();
    bad[at(35, 9)] ^= 1;
    let o = run_with(&t.home, &["decrypt", "--key-file", s(&t.key)], &bad);
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(
        err(&o).contains("chunk 35 failed") && err(&o).contains("discard"),
        "{}",
        err(&o)
    );
    assert!(o.stdout.len() <= 35 * CHUNK);
    assert!(o.stdout == plain[..o.stdout.len()]);
}

#[test]
fn usage_errors_exit_2() {
    let t = setup();
    let p = t.dir.join("p");
    std::fs::write(&p, b"hello").unwrap();
    // No key; both kinds of key; --session without --secret.
    let o = expect(&t.home, &["encrypt", s(&p)], 2);
    assert!(err(&o).contains("--key-file"), "{}", err(&o));
    expect(
        &t.home,
        &[
            "encrypt",
            s(&p),
            "--key-file",
            s(&t.key),
            "--session",
            "a/b",
            "--secret",
            "k",
        ],
        2,
    );
    expect(&t.home, &["encrypt", s(&p), "--session", "a/b"], 2);
    // A missing key file (with a hint to make one), a malformed one.
    let o = expect(
        &t.home,
        &["encrypt", s(&p), "--key-file", s(&t.dir.join("nope.key"))],
        2,
    );
    assert!(err(&o).contains("openssl rand -hex 32"), "{}", err(&o));
    let bad = t.dir.join("bad.key");
    std::fs::write(&bad, "not hex at all").unwrap();
    let o = expect(&t.home, &["encrypt", s(&p), "--key-file", s(&bad)], 2);
    assert!(err(&o).contains("64 lower-case hex digits"), "{}", err(&o));
    // A missing input, a directory as input or output, an output directory
    // that does not exist.
    expect(
        &t.home,
        &[
            "encrypt",
            s(&t.dir.join("missing")),
            "--key-file",
            s(&t.key),
        ],
        2,
    );
    expect(
        &t.home,
        &["encrypt", s(&t.dir), "-o", "x", "--key-file", s(&t.key)],
        2,
    );
    expect(
        &t.home,
        &["encrypt", s(&p), "-o", s(&t.dir), "--key-file", s(&t.key)],
        2,
    );
    expect(
        &t.home,
        &[
            "encrypt",
            s(&p),
            "-o",
            s(&t.dir.join("no/such/dir/out")),
            "--key-file",
            s(&t.key),
        ],
        2,
    );
    // A world-readable key file works, with a warning.
    let loose = t.dir.join("loose.key");
    write_key(&loose, 1);
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = expect(
        &t.home,
        &[
            "encrypt",
            s(&p),
            "-o",
            s(&t.dir.join("c")),
            "--key-file",
            s(&loose),
        ],
        0,
    );
    assert!(err(&o).contains("chmod 600"), "{}", err(&o));
}

/// `script` gives the command a terminal: ciphertext is not written to it.
#[test]
fn ciphertext_is_not_written_to_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to make a terminal");
        return;
    }
    let t = setup();
    let p = t.dir.join("p");
    std::fs::write(&p, b"hello").unwrap();
    let cmd = format!(
        "{} encrypt {} --key-file {}; echo \"exit=$?\"",
        env!("CARGO_BIN_EXE_veil"),
        s(&p),
        s(&t.key)
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("VEIL_HOME", &t.home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("refusing to write binary ciphertext to a terminal")
            && text.contains("exit=2"),
        "{text}"
    );
    assert!(!text.contains("VEILSEAL"), "{text}");

    // On a terminal, an input of 4 MiB or more gets a progress bar on
    // stderr; the output is the same.
    let big = t.dir.join("big");
    std::fs::write(&big, data(6 << 20, 4)).unwrap();
    let c = t.dir.join("big.veil");
    let back = t.dir.join("big.back");
    let cmd = format!(
        "{0} encrypt {1} -o {2} --key-file {3} && {0} decrypt {2} -o {4} --key-file {3}; echo \"exit=$?\"",
        env!("CARGO_BIN_EXE_veil"),
        s(&big),
        s(&c),
        s(&t.key),
        s(&back)
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("VEIL_HOME", &t.home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("exit=0") && text.contains("encrypting") && text.contains("decrypting"),
        "{text}"
    );
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&big).unwrap());
}

// ------------------------------------------------------------ with a CAS

fn start_cas(dir: &Path) -> common::DevCas {
    common::start_dev_cas(
        veil(&dir.join("cas-home")),
        &dir.join("state"),
        &dir.join("cas.log"),
        &[],
    )
}

fn secrets_policy(fp: &str) -> String {
    format!(
        r#"name: shop/crypt
version: 1
owners: [{fp}]
secrets:
  - {{ name: backup_key, kind: aes-256, export: [{{ owner: true }}] }}
  - {{ name: raw32, kind: bytes, size: 32, export: [{{ owner: true }}] }}
  - {{ name: hidden, kind: aes-256 }}
  - {{ name: pw, kind: password, export: [{{ owner: true }}] }}
services:
  - name: app
    accept:
      - {{ tee: sim, measurement: any }}
    command: [/bin/app]
"#
    )
}

#[test]
fn keys_from_a_session_secret_exported_to_owners() {
    let t = setup();
    let server = start_cas(&t.dir);
    let url = server.url.clone();
    expect(&t.home, &["identity", "create"], 0);
    let o = expect(&t.home, &["identity", "show", "--json"], 0);
    let fp = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(&t.home, &["cas", "verify", &url, "--dev"], 0);
    let policy = t.dir.join("crypt.yaml");
    std::fs::write(&policy, secrets_policy(&fp)).unwrap();
    expect(&t.home, &["session", "apply", s(&policy)], 0);

    let plain = data(3 * CHUNK + 17, 5);
    let p = t.dir.join("p");
    std::fs::write(&p, &plain).unwrap();
    let c = t.dir.join("c");
    let back = t.dir.join("back");
    let sess = |secret: &'static str| ["--session", "shop/crypt", "--secret", secret];
    let with = |args: &[&str], secret: &'static str| -> Vec<String> {
        args.iter()
            .copied()
            .chain(sess(secret))
            .map(str::to_owned)
            .collect()
    };
    let go = |args: Vec<String>, want: i32| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        expect(&t.home, &a, want)
    };

    go(with(&["encrypt", s(&p), "-o", s(&c)], "backup_key"), 0);
    assert!(!contains(&std::fs::read(&c).unwrap(), CANARY.as_bytes()));
    go(with(&["decrypt", s(&c), "-o", s(&back)], "backup_key"), 0);
    assert!(std::fs::read(&back).unwrap() == plain);
    // Another 32-byte secret is another key: refused as a wrong key.
    let o = go(with(&["decrypt", s(&c), "-o", s(&back)], "raw32"), 1);
    assert!(err(&o).contains("wrong key"), "{}", err(&o));
    // `bytes` of size 32 works as a key too.
    go(with(&["encrypt", s(&p), "-o", s(&c)], "raw32"), 0);
    go(with(&["decrypt", s(&c), "-o", s(&back)], "raw32"), 0);
    assert!(std::fs::read(&back).unwrap() == plain);

    // Not exported to owners: exit 1 with the line to add to the policy.
    let o = go(with(&["encrypt", s(&p), "-o", s(&c)], "hidden"), 1);
    assert!(err(&o).contains("export: [{ owner: true }]"), "{}", err(&o));
    // Not a 32-byte key kind; not declared (the usable ones are listed).
    let o = go(with(&["encrypt", s(&p), "-o", s(&c)], "pw"), 2);
    assert!(err(&o).contains("not a 32-byte key"), "{}", err(&o));
    let o = go(with(&["encrypt", s(&p), "-o", s(&c)], "nope"), 2);
    assert!(
        err(&o).contains("backup_key") && err(&o).contains("raw32"),
        "{}",
        err(&o)
    );
    // A session that does not exist.
    let o = expect(
        &t.home,
        &[
            "encrypt",
            s(&p),
            "-o",
            s(&c),
            "--session",
            "shop/none",
            "--secret",
            "k",
        ],
        2,
    );
    assert!(!err(&o).is_empty());
    // The CAS audited the owner's reads of the secret.
    let o = expect(
        &t.home,
        &["audit", "show", "--session", "shop/crypt", "--json"],
        0,
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("secret.export"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    drop(server);
}
