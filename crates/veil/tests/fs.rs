//! `veil fs` and `veil volume` through the real binary: round trips in both
//! modes, every kind of host tampering caught with exit 1 and the file
//! named, keys from key files and from a dev CAS, a FUSE mount ended by
//! SIGTERM, and the owner's `volume list|accept`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A string that must never appear on the host's disk in encrypted mode.
const PLAIN: &str = "plaintext-canary-Vq7Lw2";
/// A file name that must never appear on the host's disk in encrypted mode.
const NAME: &str = "name-canary-K3xP9.txt";
/// The chunk size the tamper tests use (records are cheap to find).
const CS: u64 = 4096;
const RECORD_OVERHEAD: u64 = 28;
const FILE_HEADER: u64 = 32;

fn veil(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    c.env_remove("VEIL_CAS")
        .env_remove("RUST_LOG")
        .env("VEIL_HOME", home);
    c
}

/// Runs veil; checks it did not panic.
fn run(home: &Path, args: &[&str]) -> Output {
    let out = veil(home).args(args).stdin(Stdio::null()).output().unwrap();
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Runs veil and requires exit `want`; returns the output.
#[track_caller]
fn expect(home: &Path, args: &[&str], want: i32) -> Output {
    let o = run(home, args);
    assert_eq!(code(&o), want, "veil {}: {}", args.join(" "), text(&o));
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Deterministic pseudo-random bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with nested directories, an empty file, a 3 MiB file, a file
/// holding PLAIN under the name NAME, and various modes.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs/deep/er")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("big.bin"), bytes(3 << 20, 1)).unwrap();
    std::fs::write(
        root.join("docs").join(NAME),
        format!("hello {PLAIN} world\n").repeat(50),
    )
    .unwrap();
    std::fs::write(root.join("docs/deep/er/notes.md"), bytes(70_001, 2)).unwrap();
    std::fs::write(root.join("docs/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    set_mode(&root.join("docs/run.sh"), 0o755);
    set_mode(&root.join("docs").join(NAME), 0o640);
    set_mode(&root.join("empty"), 0o400);
    set_mode(&root.join("docs/deep"), 0o750);
    set_mode(&root.join("empty-dir"), 0o700);
}

/// Every path under `root`, relative, sorted.
fn listing(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_owned());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The trees are the same: paths, kinds, modes, mtimes and contents.
fn assert_same_tree(a: &Path, b: &Path) {
    let (la, lb) = (listing(a), listing(b));
    assert_eq!(la, lb, "different paths");
    for rel in std::iter::once(PathBuf::new()).chain(la) {
        let (pa, pb) = (a.join(&rel), b.join(&rel));
        let (ma, mb) = (
            std::fs::symlink_metadata(&pa).unwrap(),
            std::fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.is_dir(), mb.is_dir(), "{}", rel.display());
        assert_eq!(
            ma.mode() & 0o7777,
            mb.mode() & 0o7777,
            "mode of {}",
            rel.display()
        );
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {}",
            rel.display()
        );
        if ma.is_file() {
            assert!(
                std::fs::read(&pa).unwrap() == std::fs::read(&pb).unwrap(),
                "content of {}",
                rel.display()
            );
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
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

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The size on disk of a protected file of `len` bytes.
fn object_size(len: u64, cs: u64) -> u64 {
    FILE_HEADER + len + RECORD_OVERHEAD * len.div_ceil(cs).max(1)
}

/// The object of the (only) file of `len` bytes in volume `vol`.
fn object_of(vol: &Path, len: u64, cs: u64) -> PathBuf {
    let want = object_size(len, cs);
    let found: Vec<PathBuf> = std::fs::read_dir(vol.join("objects"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() == want)
        .collect();
    assert_eq!(found.len(), 1, "objects of {want} bytes: {found:?}");
    found.into_iter().next().unwrap()
}

fn flip(path: &Path, offset: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[offset as usize] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn round_trips_in_both_modes_and_encrypted_hides_content_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let src = dir.path().join("src");
    make_tree(&src);
    for mode in ["encrypted", "integrity"] {
        let vol = dir.path().join(format!("vol-{mode}"));
        let key = dir.path().join(format!("{mode}.key"));
        let out = dir.path().join(format!("out-{mode}"));

        let o = expect(
            &home,
            &["fs", "init", s(&vol), "--mode", mode, "--key-file", s(&key)],
            0,
        );
        let empty_tag = stdout(&o);
        assert_eq!(empty_tag.len(), 64, "{}", text(&o));
        let k = std::fs::read_to_string(&key).unwrap();
        assert_eq!(k.len(), 65);
        assert!(k.ends_with('\n'));
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert!(!text(&o).contains(k.trim()), "the key was printed");

        // --progress shows progress on a pipe; without it nothing.
        let o = expect(
            &home,
            &[
                "fs",
                "encrypt",
                s(&src),
                s(&vol),
                "--key-file",
                s(&key),
                "--progress",
            ],
            0,
        );
        let tag = stdout(&o);
        assert_eq!(tag.len(), 64);
        assert_ne!(tag, empty_tag);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("encrypting:") && err.contains("MiB"), "{err}");
        assert!(!text(&o).contains(k.trim()), "the key was printed");

        let o = expect(&home, &["fs", "verify", s(&vol), "--key-file", s(&key)], 0);
        assert!(text(&o).contains("intact"), "{}", text(&o));
        assert!(!String::from_utf8_lossy(&o.stderr).contains("verifying"));
        let o = expect(
            &home,
            &["fs", "verify", s(&vol), "--key-file", s(&key), "--json"],
            0,
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["intact"], true);
        assert_eq!(v["files"], 5);
        assert_eq!(v["tag"], tag.as_str());
        expect(
            &home,
            &[
                "fs",
                "verify",
                s(&vol),
                "--key-file",
                s(&key),
                "--expect-tag",
                &tag,
            ],
            0,
        );

        // The tag: without a key (as on disk) and with one.
        assert_eq!(stdout(&expect(&home, &["fs", "tag", s(&vol)], 0)), tag);
        assert_eq!(
            stdout(&expect(
                &home,
                &["fs", "tag", s(&vol), "--key-file", s(&key)],
                0
            )),
            tag
        );

        let o = expect(
            &home,
            &[
                "fs",
                "decrypt",
                s(&vol),
                s(&out),
                "--key-file",
                s(&key),
                "--progress",
            ],
            0,
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("decrypting:"));
        assert_same_tree(&src, &out);
        let diff = Command::new("diff")
            .arg("-r")
            .arg(&src)
            .arg(&out)
            .output()
            .unwrap();
        assert!(diff.status.success(), "{}", text(&diff));

        // Decrypting again into a non-empty directory is refused.
        let o = expect(
            &home,
            &["fs", "decrypt", s(&vol), s(&out), "--key-file", s(&key)],
            2,
        );
        assert!(text(&o).contains("not empty"), "{}", text(&o));

        let mut files = Vec::new();
        all_files(&vol, &mut files);
        let host: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let names: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
        if mode == "encrypted" {
            for (f, b) in files.iter().zip(&host) {
                assert!(!contains(b, PLAIN), "{} holds the plaintext", f.display());
                assert!(!contains(b, NAME), "{} holds a file name", f.display());
                assert!(
                    !contains(b, "notes.md"),
                    "{} holds a file name",
                    f.display()
                );
            }
            assert!(!names.contains(NAME) && !names.contains("docs"), "{names}");
        } else {
            // Integrity mode: readable on the host, every byte authenticated.
            assert!(host.iter().any(|b| contains(b, PLAIN)));
        }
    }
}

/// A fresh copy of the pristine volume, tampered with by `f`; verify must
/// exit 1 naming `named`.
#[track_caller]
fn caught(
    home: &Path,
    dir: &Path,
    pristine: &Path,
    key: &Path,
    case: &str,
    named: &str,
    f: impl FnOnce(&Path),
) -> String {
    let vol = dir.join(format!("case-{case}"));
    copy_dir(pristine, &vol);
    f(&vol);
    let o = run(home, &["fs", "verify", s(&vol), "--key-file", s(key)]);
    let t = text(&o);
    assert_eq!(code(&o), 1, "{case}: {t}");
    assert!(t.contains(named), "{case}: does not name {named}: {t}");
    t
}

#[test]
fn every_kind_of_tampering_is_caught_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let home = dir.join("home");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("docs")).unwrap();
    // Distinct lengths, so each object is found by its size.
    let (report_len, a_len, b_len) = (5 * CS + 1000, 10_000u64, 12_000u64);
    std::fs::write(src.join("docs/report.txt"), bytes(report_len as usize, 3)).unwrap();
    std::fs::write(src.join("a.txt"), bytes(a_len as usize, 4)).unwrap();
    std::fs::write(src.join("b.txt"), bytes(b_len as usize, 5)).unwrap();
    let key = dir.join("k");
    let pristine = dir.join("pristine");
    let cs = CS.to_string();
    expect(
        &home,
        &[
            "fs",
            "encrypt",
            s(&src),
            s(&pristine),
            "--init",
            "--mode",
            "encrypted",
            "--chunk-size",
            &cs,
            "--key-file",
            s(&key),
        ],
        0,
    );
    expect(
        &home,
        &["fs", "verify", s(&pristine), "--key-file", s(&key)],
        0,
    );
    let report = |v: &Path| object_of(v, report_len, CS);
    let full = CS + RECORD_OVERHEAD;

    // Flipped bits: file header (magic; file id), a record's body, its tag.
    caught(
        &home,
        dir,
        &pristine,
        &key,
        "header-magic",
        "/docs/report.txt",
        |v| flip(&report(v), 2),
    );
    caught(
        &home,
        dir,
        &pristine,
        &key,
        "header-id",
        "/docs/report.txt",
        |v| flip(&report(v), 20),
    );
    let t = caught(
        &home,
        dir,
        &pristine,
        &key,
        "body",
        "/docs/report.txt",
        |v| flip(&report(v), FILE_HEADER + full + 12 + 100),
    );
    assert!(t.contains("record 1"), "{t}");
    caught(
        &home,
        dir,
        &pristine,
        &key,
        "tag",
        "/docs/report.txt",
        |v| flip(&report(v), FILE_HEADER + 2 * full - 1),
    );
    // Truncation at a record boundary and inside a record; extension.
    caught(
        &home,
        dir,
        &pristine,
        &key,
        "cut-at",
        "/docs/report.txt",
        |v| set_len(&report(v), FILE_HEADER + 3 * full),
    );
    caught(
        &home,
        dir,
        &pristine,
        &key,
        "cut-in",
        "/docs/report.txt",
        |v| set_len(&report(v), FILE_HEADER + 3 * full + 700),
    );
    caught(&home, dir, &pristine, &key, "cut-tail", "/a.txt", |v| {
        let o = object_of(v, a_len, CS);
        set_len(&o, object_size(a_len, CS) - 1)
    });
    caught(
        &home,
        dir,
        &pristine,
        &key,
        "extended",
        "/docs/report.txt",
        |v| {
            let o = report(v);
            let mut b = std::fs::read(&o).unwrap();
            b.extend_from_slice(&[0u8; 200]);
            std::fs::write(&o, b).unwrap();
        },
    );
    // Two objects swapped.
    let t = caught(&home, dir, &pristine, &key, "swapped", "/a.txt", |v| {
        let (a, b) = (object_of(v, a_len, CS), object_of(v, b_len, CS));
        let tmp = v.join("tmp");
        std::fs::rename(&a, &tmp).unwrap();
        std::fs::rename(&b, &a).unwrap();
        std::fs::rename(&tmp, &b).unwrap();
    });
    assert!(t.contains("/b.txt"), "{t}");
    // An object deleted.
    caught(&home, dir, &pristine, &key, "deleted", "/b.txt", |v| {
        std::fs::remove_file(object_of(v, b_len, CS)).unwrap()
    });
    // The manifest changed.
    caught(
        &home,
        dir,
        &pristine,
        &key,
        "manifest",
        "veil.manifest",
        |v| {
            let m = v.join("veil.manifest");
            let n = std::fs::metadata(&m).unwrap().len();
            flip(&m, n - 5)
        },
    );
    // A header from another volume: under another key its MAC fails; under
    // the same key it no longer authenticates the manifest.
    let other_key = dir.join("other.key");
    let other = dir.join("other");
    let same_key_other = dir.join("other-same-key");
    for (v, k) in [(&other, &other_key), (&same_key_other, &key)] {
        expect(
            &home,
            &[
                "fs",
                "init",
                s(v),
                "--mode",
                "encrypted",
                "--key-file",
                s(k),
            ],
            0,
        );
    }
    let t = caught(
        &home,
        dir,
        &pristine,
        &key,
        "foreign-header",
        "veil.volume",
        |v| {
            std::fs::copy(other.join("veil.volume"), v.join("veil.volume")).unwrap();
        },
    );
    assert!(t.contains("wrong key or tampered"), "{t}");
    caught(
        &home,
        dir,
        &pristine,
        &key,
        "foreign-header-same-key",
        "veil.manifest",
        |v| {
            std::fs::copy(same_key_other.join("veil.volume"), v.join("veil.volume")).unwrap();
        },
    );
    let vol = dir.join("case-foreign-header");
    let o = expect(
        &home,
        &[
            "fs",
            "decrypt",
            s(&vol),
            s(&dir.join("nope")),
            "--key-file",
            s(&key),
        ],
        1,
    );
    assert!(text(&o).contains("wrong key or tampered"), "{}", text(&o));

    // Decrypting a tampered volume stops at the file, removes it, exit 1;
    // no unauthenticated byte is left in DST.
    let vol = dir.join("case-body");
    let out = dir.join("out-body");
    let o = expect(
        &home,
        &["fs", "decrypt", s(&vol), s(&out), "--key-file", s(&key)],
        1,
    );
    assert!(text(&o).contains("/docs/report.txt"), "{}", text(&o));
    assert!(!out.join("docs/report.txt").exists());
    assert_eq!(
        std::fs::read(out.join("a.txt")).unwrap(),
        bytes(a_len as usize, 4),
        "files before the bad one are whole"
    );

    // A wrong key: a clear error, exit 1; malformed key files: exit 2.
    let wrong = dir.join("wrong.key");
    std::fs::write(&wrong, format!("{}\n", "ab".repeat(32))).unwrap();
    let o = expect(
        &home,
        &["fs", "verify", s(&pristine), "--key-file", s(&wrong)],
        1,
    );
    assert!(text(&o).contains("wrong key or tampered"), "{}", text(&o));
    let o = expect(
        &home,
        &[
            "fs",
            "decrypt",
            s(&pristine),
            s(&dir.join("o2")),
            "--key-file",
            s(&wrong),
        ],
        1,
    );
    assert!(text(&o).contains("wrong key"), "{}", text(&o));
    for (name, content) in [
        ("short.key", "abcd\n".to_owned()),
        ("upper.key", format!("{}\n", "AB".repeat(32))),
        ("nothex.key", format!("{}\n", "zz".repeat(32))),
        ("long.key", format!("{}\n", "ab".repeat(33))),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, &content).unwrap();
        let o = expect(
            &home,
            &["fs", "verify", s(&pristine), "--key-file", s(&p)],
            2,
        );
        assert!(text(&o).contains("64 lower-case hex"), "{}", text(&o));
        assert!(
            !text(&o).contains(content.trim()),
            "the key file's content was printed"
        );
    }
    // No key at all.
    let o = expect(&home, &["fs", "verify", s(&pristine)], 2);
    assert!(text(&o).contains("--key-file"), "{}", text(&o));

    // One file replaced by its older version: keep the object, rewrite the
    // file (same file id) with --force, put the old object back.
    let rolled = dir.join("rolled");
    copy_dir(&pristine, &rolled);
    let t1 = stdout(&expect(&home, &["fs", "tag", s(&rolled)], 0));
    let old_object = report(&rolled);
    let old_copy = dir.join("old-object");
    std::fs::copy(&old_object, &old_copy).unwrap();
    let whole_copy = dir.join("rolled-v1");
    copy_dir(&rolled, &whole_copy);
    std::fs::write(src.join("docs/report.txt"), bytes(report_len as usize, 33)).unwrap();
    let o = expect(
        &home,
        &["fs", "encrypt", s(&src), s(&rolled), "--key-file", s(&key)],
        2,
    );
    assert!(
        text(&o).contains("--force") && text(&o).contains("/a.txt"),
        "{}",
        text(&o)
    );
    let t2 = stdout(&expect(
        &home,
        &[
            "fs",
            "encrypt",
            s(&src),
            s(&rolled),
            "--key-file",
            s(&key),
            "--force",
        ],
        0,
    ));
    assert_ne!(t1, t2);
    assert_eq!(
        report(&rolled),
        old_object,
        "rewritten in place: same object"
    );
    expect(
        &home,
        &["fs", "verify", s(&rolled), "--key-file", s(&key)],
        0,
    );
    std::fs::copy(&old_copy, &old_object).unwrap();
    let o = expect(
        &home,
        &["fs", "verify", s(&rolled), "--key-file", s(&key)],
        1,
    );
    assert!(text(&o).contains("/docs/report.txt"), "{}", text(&o));
    assert!(text(&o).contains("not the version"), "{}", text(&o));

    // The whole volume rolled back: consistent, so only the tag tells.
    let o = expect(
        &home,
        &[
            "fs",
            "verify",
            s(&whole_copy),
            "--key-file",
            s(&key),
            "--expect-tag",
            &t2,
        ],
        1,
    );
    let t = text(&o);
    assert!(
        t.contains("not the expected version") && t.contains(&t1) && t.contains(&t2),
        "{t}"
    );
    let o = expect(
        &home,
        &[
            "fs",
            "verify",
            s(&whole_copy),
            "--key-file",
            s(&key),
            "--expect-tag",
            &t2,
            "--json",
        ],
        1,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["expected"], false);
    expect(
        &home,
        &["fs", "verify", s(&whole_copy), "--key-file", s(&key)],
        0,
    );
    expect(
        &home,
        &[
            "fs",
            "verify",
            s(&whole_copy),
            "--key-file",
            s(&key),
            "--expect-tag",
            &t1.to_uppercase(),
        ],
        0,
    );
    expect(
        &home,
        &[
            "fs",
            "verify",
            s(&whole_copy),
            "--key-file",
            s(&key),
            "--expect-tag",
            "12",
        ],
        2,
    );
}

#[test]
fn encrypt_and_init_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let home = dir.join("home");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/f.txt"), b"one").unwrap();
    std::fs::write(src.join("x"), b"x").unwrap();
    let key = dir.join("k");
    let vol = dir.join("vol");

    // Not a volume yet, and no --init.
    let o = expect(
        &home,
        &["fs", "encrypt", s(&src), s(&vol), "--key-file", s(&key)],
        2,
    );
    assert!(text(&o).contains("--init"), "{}", text(&o));
    // init: --mode needed with a key file; a bad chunk size; a non-empty dir.
    let o = expect(&home, &["fs", "init", s(&vol), "--key-file", s(&key)], 2);
    assert!(text(&o).contains("--mode"), "{}", text(&o));
    assert!(!key.exists(), "no key file is made for a volume not made");
    let o = expect(
        &home,
        &[
            "fs",
            "init",
            s(&vol),
            "--mode",
            "integrity",
            "--chunk-size",
            "5000",
            "--key-file",
            s(&key),
        ],
        2,
    );
    assert!(text(&o).contains("chunk"), "{}", text(&o));
    let o = expect(
        &home,
        &[
            "fs",
            "init",
            s(&src),
            "--mode",
            "integrity",
            "--key-file",
            s(&key),
        ],
        2,
    );
    assert!(text(&o).contains("not empty"), "{}", text(&o));
    assert!(!key.exists());

    // Special files are refused by name, or skipped with --skip-special.
    std::os::unix::fs::symlink("x", src.join("d/link")).unwrap();
    let o = expect(
        &home,
        &[
            "fs",
            "encrypt",
            s(&src),
            s(&vol),
            "--init",
            "--mode",
            "integrity",
            "--key-file",
            s(&key),
        ],
        2,
    );
    assert!(
        text(&o).contains("link") && text(&o).contains("symbolic link"),
        "{}",
        text(&o)
    );
    assert!(!vol.exists(), "nothing made");
    let o = expect(
        &home,
        &[
            "fs",
            "encrypt",
            s(&src),
            s(&vol),
            "--init",
            "--mode",
            "integrity",
            "--key-file",
            s(&key),
            "--skip-special",
        ],
        0,
    );
    assert!(text(&o).contains("skipped"), "{}", text(&o));
    // The key file was made by --init, mode 0600.
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    // An existing volume: --mode must agree.
    std::fs::remove_file(src.join("d/link")).unwrap();
    let o = expect(
        &home,
        &[
            "fs",
            "encrypt",
            s(&src),
            s(&vol),
            "--init",
            "--mode",
            "encrypted",
            "--key-file",
            s(&key),
            "--force",
        ],
        2,
    );
    assert!(text(&o).contains("integrity"), "{}", text(&o));

    // --force replaces a file by a directory and the reverse, and content.
    std::fs::remove_file(src.join("x")).unwrap();
    std::fs::create_dir(src.join("x")).unwrap();
    std::fs::write(src.join("x/inner"), b"inner").unwrap();
    std::fs::remove_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d"), b"now a file").unwrap();
    let o = expect(
        &home,
        &["fs", "encrypt", s(&src), s(&vol), "--key-file", s(&key)],
        2,
    );
    assert!(text(&o).contains("--force"), "{}", text(&o));
    expect(
        &home,
        &[
            "fs",
            "encrypt",
            s(&src),
            s(&vol),
            "--key-file",
            s(&key),
            "--force",
        ],
        0,
    );
    let out = dir.join("out");
    expect(
        &home,
        &["fs", "decrypt", s(&vol), s(&out), "--key-file", s(&key)],
        0,
    );
    assert_eq!(std::fs::read(out.join("d")).unwrap(), b"now a file");
    assert_eq!(std::fs::read(out.join("x/inner")).unwrap(), b"inner");
    assert!(!out.join("d/f.txt").exists());
    expect(&home, &["fs", "verify", s(&vol), "--key-file", s(&key)], 0);

    // A key file of an existing volume is read, never replaced.
    let before = std::fs::read(&key).unwrap();
    expect(
        &home,
        &[
            "fs",
            "init",
            s(&dir.join("vol2")),
            "--mode",
            "encrypted",
            "--key-file",
            s(&key),
        ],
        0,
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
    // Not volumes.
    expect(&home, &["fs", "tag", s(&src)], 2);
    expect(
        &home,
        &[
            "fs",
            "verify",
            s(&dir.join("missing")),
            "--key-file",
            s(&key),
        ],
        2,
    );
}

fn uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

fn mounted_at(mp: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(mp.to_str().unwrap()))
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `veil fs mount VOL MP --key-file KEY` in the background (stdout piped,
/// stderr to `log`), once the mount is in place.
fn mount_in_background(home: &Path, vol: &Path, mp: &Path, key: &Path, log: &Path) -> Reaped {
    let child = veil(home)
        .args(["fs", "mount", s(vol), s(mp), "--key-file", s(key)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mounted_at(mp) {
        if let Some(st) = child.0.try_wait().unwrap() {
            panic!(
                "veil fs mount of {} ended ({st}): {}",
                vol.display(),
                std::fs::read_to_string(log).unwrap()
            );
        }
        assert!(Instant::now() < deadline, "not mounted in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn mount_serves_files_and_sigterm_commits_and_unmounts() {
    if !Path::new("/dev/fuse").exists() || !uid_is_root() {
        eprintln!("skipped: mounting needs /dev/fuse and root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let home = dir.join("home");
    let key = dir.join("k");
    let vol = dir.join("vol");
    let mp = dir.join("mnt");
    std::fs::create_dir(&mp).unwrap();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("old")).unwrap();
    std::fs::write(src.join("old/kept.txt"), b"from before").unwrap();
    expect(
        &home,
        &[
            "fs",
            "encrypt",
            s(&src),
            s(&vol),
            "--init",
            "--mode",
            "encrypted",
            "--key-file",
            s(&key),
        ],
        0,
    );
    let log = dir.join("mount.log");
    let mut child = mount_in_background(&home, &vol, &mp, &key, &log);

    // Through the mount: std::fs and an unmodified python3.
    assert_eq!(
        std::fs::read(mp.join("old/kept.txt")).unwrap(),
        b"from before"
    );
    std::fs::create_dir(mp.join("new")).unwrap();
    std::fs::write(mp.join("new/one.txt"), format!("one {PLAIN}")).unwrap();
    let big = bytes(1 << 20, 9);
    std::fs::write(mp.join("new/big.bin"), &big).unwrap();
    let py = Command::new("python3")
        .arg("-c")
        .arg(
            "import os,sys\n\
             d=sys.argv[1]\n\
             with open(os.path.join(d,'py.txt'),'w') as f: f.write('from python\\n')\n\
             with open(os.path.join(d,'py.txt'),'a') as f: f.write('appended\\n'); f.flush(); os.fsync(f.fileno())\n\
             os.rename(os.path.join(d,'py.txt'), os.path.join(d,'python.txt'))\n\
             print(open(os.path.join(d,'python.txt')).read(), end='')\n",
        )
        .arg(&mp)
        .output();
    let python = match py {
        Ok(o) => {
            assert!(o.status.success(), "{}", text(&o));
            assert_eq!(
                String::from_utf8_lossy(&o.stdout),
                "from python\nappended\n"
            );
            true
        }
        Err(e) => {
            eprintln!("no python3 ({e}): its part is skipped");
            false
        }
    };
    assert_eq!(std::fs::read(mp.join("new/big.bin")).unwrap(), big);

    // SIGTERM: commit, unmount, exit 0.
    let pid = child.0.id().to_string();
    let k = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(k.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "veil fs mount did not end on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("mounted") && err.contains("Ctrl-C"), "{err}");
    assert!(!mounted_at(&mp), "still mounted");
    let mut out = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    let tag = out.trim().to_owned();
    assert_eq!(stdout(&expect(&home, &["fs", "tag", s(&vol)], 0)), tag);

    // Everything written through the mount is in the volume, sealed.
    expect(&home, &["fs", "verify", s(&vol), "--key-file", s(&key)], 0);
    let dst = dir.join("out");
    expect(
        &home,
        &["fs", "decrypt", s(&vol), s(&dst), "--key-file", s(&key)],
        0,
    );
    assert_eq!(
        std::fs::read(dst.join("old/kept.txt")).unwrap(),
        b"from before"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("new/one.txt")).unwrap(),
        format!("one {PLAIN}")
    );
    assert_eq!(std::fs::read(dst.join("new/big.bin")).unwrap(), big);
    if python {
        assert_eq!(
            std::fs::read_to_string(dst.join("python.txt")).unwrap(),
            "from python\nappended\n"
        );
        assert!(!dst.join("py.txt").exists());
    }
    let mut files = Vec::new();
    all_files(&vol, &mut files);
    for f in files {
        assert!(
            !contains(&std::fs::read(&f).unwrap(), PLAIN),
            "{}",
            f.display()
        );
    }
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

fn files_policy(fp: &str) -> String {
    format!(
        r#"name: shop/files
version: 1
owners: [{fp}]
secrets:
  - {{ name: vk, kind: aes-256, export: [{{ owner: true }}] }}
  - {{ name: hidden, kind: aes-256 }}
services:
  - name: app
    accept:
      - {{ tee: sim, measurement: any }}
    command: [/bin/app]
    volumes:
      - {{ name: data, path: /data, mode: integrity, key: vk }}
      - {{ name: vault, path: /vault, mode: encrypted, key: hidden }}
  - name: worker
    accept:
      - {{ tee: sim, measurement: any }}
    command: [/bin/worker]
    volumes:
      - {{ name: data, path: /data, mode: integrity, key: vk }}
      - {{ name: solo, path: /solo, mode: encrypted, key: vk }}
"#
    )
}

#[test]
fn keys_from_a_policy_volume_and_the_owners_volume_verbs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let home = dir.join("home");
    let server = start_cas(dir);
    let url = server.url.clone();
    expect(&home, &["identity", "create"], 0);
    let o = expect(&home, &["identity", "show", "--json"], 0);
    let fp = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(&home, &["cas", "verify", &url, "--dev"], 0);
    let policy = dir.join("files.yaml");
    std::fs::write(&policy, files_policy(&fp)).unwrap();
    expect(&home, &["session", "apply", s(&policy)], 0);

    let src = dir.join("src");
    make_tree(&src);
    let vol = dir.join("vol");
    let sess = ["--session", "shop/files", "--volume", "data"];
    let with = |args: &[&str], extra: &[&str]| -> Vec<String> {
        args.iter()
            .chain(sess.iter())
            .chain(extra.iter())
            .map(|a| (*a).to_owned())
            .collect()
    };
    let go = |args: Vec<String>, want: i32| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        expect(&home, &a, want)
    };

    // Two services declare `data`: ambiguous without --service.
    let o = go(with(&["fs", "init", s(&vol)], &[]), 2);
    assert!(
        text(&o).contains("app") && text(&o).contains("worker") && text(&o).contains("--service"),
        "{}",
        text(&o)
    );
    // The mode comes from the policy; a different one is refused.
    let o = go(
        with(
            &["fs", "init", s(&vol)],
            &["--service", "app", "--mode", "encrypted"],
        ),
        2,
    );
    assert!(text(&o).contains("integrity"), "{}", text(&o));
    let o = go(with(&["fs", "init", s(&vol)], &["--service", "app"]), 0);
    assert!(text(&o).contains("integrity volume"), "{}", text(&o));
    let o = go(
        with(&["fs", "encrypt", s(&src), s(&vol)], &["--service", "app"]),
        0,
    );
    let tag = stdout(&o);
    assert!(
        text(&o).contains(&format!(
            "veil volume accept shop/files app data --tag {tag}"
        )),
        "{}",
        text(&o)
    );
    let out = dir.join("out");
    go(
        with(&["fs", "decrypt", s(&vol), s(&out)], &["--service", "app"]),
        0,
    );
    assert_same_tree(&src, &out);
    go(
        with(
            &["fs", "verify", s(&vol)],
            &["--service", "app", "--expect-tag", &tag],
        ),
        0,
    );

    // A volume whose key is not exported to owners; an unknown volume.
    let o = expect(
        &home,
        &[
            "fs",
            "init",
            s(&dir.join("v2")),
            "--session",
            "shop/files",
            "--volume",
            "vault",
        ],
        1,
    );
    assert!(
        text(&o).contains("export: [{ owner: true }]"),
        "{}",
        text(&o)
    );
    let o = expect(
        &home,
        &[
            "fs",
            "init",
            s(&dir.join("v3")),
            "--session",
            "shop/files",
            "--volume",
            "nope",
        ],
        2,
    );
    assert!(text(&o).contains("app/data"), "{}", text(&o));
    // The only service declaring `solo` is found without --service; it
    // has the same key as `data`, so it opens the same volume.
    go(
        vec![
            "fs".into(),
            "verify".into(),
            s(&vol).into(),
            "--session".into(),
            "shop/files".into(),
            "--volume".into(),
            "solo".into(),
        ],
        0,
    );

    // The owner's view of the tags, and accepting one.
    let o = expect(&home, &["volume", "list", "shop/files", "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let vols = v["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 4, "{v}");
    assert!(vols.iter().all(|x| x["tag"].is_null()), "{v}");
    let o = expect(
        &home,
        &[
            "volume",
            "accept",
            "shop/files",
            "app",
            "data",
            "--tag",
            &tag,
        ],
        0,
    );
    assert!(text(&o).contains(&tag), "{}", text(&o));
    let o = expect(&home, &["volume", "list", "shop/files"], 0);
    assert!(
        text(&o).contains(&format!("app  data  {tag}")),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("worker  data  -"), "{}", text(&o));
    let o = expect(
        &home,
        &[
            "volume",
            "accept",
            "shop/files",
            "app",
            "data",
            "--clear",
            "--json",
        ],
        0,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["previous"], tag.as_str());
    assert!(v["tag"].is_null());
    expect(
        &home,
        &[
            "volume",
            "accept",
            "shop/files",
            "app",
            "data",
            "--tag",
            "xyz",
        ],
        2,
    );
    expect(&home, &["volume", "accept", "shop/files", "app", "data"], 2);
    let o = run(
        &home,
        &[
            "volume",
            "accept",
            "shop/files",
            "app",
            "nope",
            "--tag",
            &tag,
        ],
    );
    assert_ne!(code(&o), 0, "{}", text(&o));

    let o = expect(
        &home,
        &["audit", "show", "--session", "shop/files", "--json"],
        0,
    );
    assert!(
        text(&o).contains("volume.accept") && text(&o).contains("secret.export"),
        "{}",
        text(&o)
    );
    drop(server);
}

/// kill -9 of `veil fs mount` while a program writes through it (random
/// writes, appends, truncations, fsyncs, new files, renames): every time,
/// the volume verifies intact afterwards, decrypts, and mounts again.
#[test]
fn kill_9_of_the_mount_during_writes_leaves_a_consistent_volume() {
    if !Path::new("/dev/fuse").exists() || !uid_is_root() {
        eprintln!("skipped: mounting needs /dev/fuse and root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let home = dir.join("home");
    let key = dir.join("k");
    let vol = dir.join("vol");
    let mp = dir.join("mnt");
    std::fs::create_dir(&mp).unwrap();
    expect(
        &home,
        &[
            "fs",
            "init",
            s(&vol),
            "--mode",
            "encrypted",
            "--chunk-size",
            "4096",
            "--key-file",
            s(&key),
        ],
        0,
    );
    let writer = r#"
import os, random, sys
mp = sys.argv[1]
rnd = random.Random(int(sys.argv[2]))
i = 0
while True:
    name = os.path.join(mp, "f%d" % rnd.randrange(4))
    fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o600)
    op = rnd.randrange(5)
    if op == 0:
        os.pwrite(fd, os.urandom(rnd.randrange(1, 20000)), rnd.randrange(0, 50000))
    elif op == 1:
        os.lseek(fd, 0, os.SEEK_END); os.write(fd, b"x" * rnd.randrange(1, 9000))
    elif op == 2:
        os.ftruncate(fd, rnd.randrange(0, 40000))
    elif op == 3:
        os.fsync(fd)
    else:
        tmp = os.path.join(mp, "t%d" % i)
        with open(tmp, "wb") as f:
            f.write(os.urandom(5000))
        os.replace(tmp, os.path.join(mp, "r%d" % rnd.randrange(3)))
    os.close(fd)
    i += 1
"#;
    for cycle in 0..4u64 {
        let log = dir.join(format!("mount-{cycle}.log"));
        let mut mount = mount_in_background(&home, &vol, &mp, &key, &log);
        let w = Command::new("python3")
            .args(["-c", writer, s(&mp), &cycle.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut w = Reaped(w);
        std::thread::sleep(Duration::from_millis(300 + 150 * cycle));
        assert!(
            w.0.try_wait().unwrap().is_none(),
            "cycle {cycle}: the writer stopped early"
        );
        mount.0.kill().unwrap(); // SIGKILL: no flush, no unmount
        mount.0.wait().unwrap();
        let _ = w.0.kill();
        let _ = w.0.wait();
        let um = Command::new("umount")
            .args(["-l", s(&mp)])
            .status()
            .unwrap();
        assert!(um.success(), "cycle {cycle}: lazy unmount failed");
        assert!(!mounted_at(&mp));

        let v = run(&home, &["fs", "verify", s(&vol), "--key-file", s(&key)]);
        assert_eq!(code(&v), 0, "cycle {cycle}: {}", text(&v));
        let out = dir.join(format!("out-{cycle}"));
        let d = run(
            &home,
            &["fs", "decrypt", s(&vol), s(&out), "--key-file", s(&key)],
        );
        assert_eq!(code(&d), 0, "cycle {cycle}: {}", text(&d));
    }
}
