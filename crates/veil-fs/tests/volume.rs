//! The I/O layer against a model, across reopen, tampering and crashes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use veil_fs::{ChunkSize, EntryKind, FsError, Mode, Volume, VolumeKey, OBJECTS_DIR};

const CS: u32 = 4096;

fn new_volume(dir: &Path, mode: Mode) -> (VolumeKey, Volume) {
    let key = VolumeKey::random().unwrap();
    let v = Volume::init(dir, &key, mode, ChunkSize::new(CS).unwrap()).unwrap();
    (key, v)
}

fn whole(v: &Volume, path: &str) -> Vec<u8> {
    let len = v.stat(path).unwrap().len;
    v.read(path, 0, len as usize + 10).unwrap()
}

/// The object file of `path` (the only object whose name is not in `except`).
fn objects(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join(OBJECTS_DIR))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        file: u8,
        offset: u32,
        len: u16,
        byte: u8,
    },
    Truncate {
        file: u8,
        len: u32,
    },
    Sync,
    Fsync {
        file: u8,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, 0u32..40_000, 0u16..10_000, any::<u8>())
            .prop_map(|(file, offset, len, byte)| Op::Write { file, offset, len, byte }),
        2 => (0u8..3, 0u32..30_000).prop_map(|(file, len)| Op::Truncate { file, len }),
        1 => Just(Op::Sync),
        1 => (0u8..3).prop_map(|file| Op::Fsync { file }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any sequence of writes (with holes), truncations, syncs and reopens
    /// reads back exactly like a plain byte vector.
    #[test]
    fn behaves_like_plain_files(ops in proptest::collection::vec(op(), 1..40), integrity in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let mode = if integrity { Mode::Integrity } else { Mode::Encrypted };
        let (key, mut v) = new_volume(&dir, mode);
        let mut model: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        for f in 0..3u8 {
            v.create(&format!("/f{f}"), 0o600).unwrap();
            model.insert(f, Vec::new());
        }
        for op in ops {
            match op {
                Op::Write { file, offset, len, byte } => {
                    let data = vec![byte; len as usize];
                    v.write(&format!("/f{file}"), offset as u64, &data).unwrap();
                    let m = model.get_mut(&file).unwrap();
                    if len > 0 {
                        let end = offset as usize + len as usize;
                        if m.len() < end { m.resize(end, 0); }
                        m[offset as usize..end].copy_from_slice(&data);
                    }
                }
                Op::Truncate { file, len } => {
                    v.truncate(&format!("/f{file}"), len as u64).unwrap();
                    model.get_mut(&file).unwrap().resize(len as usize, 0);
                }
                Op::Sync => { v.sync().unwrap(); }
                Op::Fsync { file } => { v.fsync(&format!("/f{file}")).unwrap(); }
                Op::Reopen => {
                    v.sync().unwrap();
                    drop(v);
                    v = Volume::open(&dir, &key).unwrap();
                }
            }
            for (f, m) in &model {
                prop_assert_eq!(&whole(&v, &format!("/f{f}")), m);
            }
        }
        // A crash (no sync) then reopen: every byte read is authentic and
        // each file is a consistent state.
        drop(v);
        let v = Volume::open(&dir, &key).unwrap();
        for f in 0..3u8 {
            // Files never committed do not exist after a crash.
            if v.stat(&format!("/f{f}")).is_ok() {
                let _ = whole(&v, &format!("/f{f}"));
            }
        }
        prop_assert!(v.verify().is_empty(), "{:?}", v.verify());
    }
}

#[test]
fn namespace_operations_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    let (key, v) = new_volume(&dir, Mode::Encrypted);
    v.mkdir("/d", 0o750).unwrap();
    v.mkdir("/d/e", 0o700).unwrap();
    v.create("/d/e/f", 0o640).unwrap();
    v.write("/d/e/f", 0, b"hello secret world").unwrap();
    v.create("/g", 0o600).unwrap();
    assert!(matches!(
        v.mkdir("/d", 0o700),
        Err(FsError::AlreadyExists(_))
    ));
    assert!(matches!(
        v.create("/nope/x", 0o600),
        Err(FsError::NotFound(_))
    ));
    assert!(matches!(v.rmdir("/d"), Err(FsError::NotEmpty(_))));
    assert!(matches!(v.read("/d", 0, 1), Err(FsError::IsADirectory(_))));
    v.rename("/d", "/moved").unwrap();
    assert_eq!(whole(&v, "/moved/e/f"), b"hello secret world");
    assert!(v.stat("/d/e/f").is_err());
    v.rename("/g", "/moved/e/f").unwrap(); // replaces a file
    assert_eq!(whole(&v, "/moved/e/f"), b"");
    v.chmod("/moved/e/f", 0o444).unwrap();
    let names: Vec<String> = v
        .list("/moved")
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["e"]);
    let t1 = v.sync().unwrap();
    assert_eq!(Volume::tag_on_disk(&dir).unwrap(), Some(t1));
    // The replaced file's object is gone after the commit.
    assert_eq!(objects(&dir).len(), 1);
    drop(v);
    let v = Volume::open(&dir, &key).unwrap();
    assert_eq!(v.stat("/moved/e/f").unwrap().mode, 0o444);
    assert_eq!(v.stat("/moved").unwrap().kind, EntryKind::Dir);
    assert_eq!(v.tag(), t1);
    assert!(Volume::open(&dir, &VolumeKey::random().unwrap()).is_err());
    // Names and content are not on the host's disk in encrypted mode.
    for f in walk(&dir) {
        let b = std::fs::read(&f).unwrap();
        assert!(!b.windows(6).any(|w| w == b"secret"), "{}", f.display());
        assert!(!b.windows(5).any(|w| w == b"moved"), "{}", f.display());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn tampering_and_rollback_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    let (key, v) = new_volume(&dir, Mode::Encrypted);
    let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    v.create("/a", 0o600).unwrap();
    v.create("/b", 0o600).unwrap();
    v.write("/a", 0, &data).unwrap();
    v.write("/b", 0, b"other file").unwrap();
    let old_tag = v.sync().unwrap();
    let objs = objects(&dir);
    let old_objects: Vec<Vec<u8>> = objs.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let old_manifest = std::fs::read(dir.join("veil.manifest")).unwrap();
    v.write("/a", 100, b"new version").unwrap();
    let new_tag = v.sync().unwrap();
    assert_ne!(old_tag, new_tag);
    drop(v);

    let reopen = || Volume::open(&dir, &key).unwrap();
    // One file replaced by its older version: caught at first read.
    let a_obj = objs
        .iter()
        .zip(&old_objects)
        .find(|(p, _)| std::fs::read(p).unwrap().len() > 1000)
        .unwrap();
    let current = std::fs::read(a_obj.0).unwrap();
    std::fs::write(a_obj.0, a_obj.1).unwrap();
    let err = reopen().read("/a", 0, 10).unwrap_err();
    assert!(matches!(err, FsError::NotCurrent { .. }), "{err}");
    assert!(err.to_string().contains("rolled back"), "{err}");
    std::fs::write(a_obj.0, &current).unwrap();
    assert_eq!(reopen().read("/a", 100, 11).unwrap(), b"new version");

    // A flipped bit in a record body.
    let mut t = current.clone();
    t[200] ^= 1;
    std::fs::write(a_obj.0, &t).unwrap();
    assert!(reopen().read("/a", 0, 20_000).is_err());
    assert!(!reopen().verify().is_empty());
    std::fs::write(a_obj.0, &current).unwrap();

    // Two objects swapped.
    let (p0, p1) = (&objs[0], &objs[1]);
    let (b0, b1) = (std::fs::read(p0).unwrap(), std::fs::read(p1).unwrap());
    std::fs::write(p0, &b1).unwrap();
    std::fs::write(p1, &b0).unwrap();
    let v = reopen();
    assert!(v.read("/a", 0, 10).is_err() && v.read("/b", 0, 10).is_err());
    let problems = v.verify();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].what.contains("file id mismatch"),
        "{problems:?}"
    );
    std::fs::write(p0, &b0).unwrap();
    std::fs::write(p1, &b1).unwrap();

    // A deleted object.
    std::fs::remove_file(a_obj.0).unwrap();
    assert!(!reopen().verify().is_empty());
    std::fs::write(a_obj.0, &current).unwrap();
    assert!(reopen().verify().is_empty());

    // The whole volume rolled back (old manifest and objects): it opens, and
    // its tag is the old one, which the CAS refuses.
    std::fs::write(dir.join("veil.manifest"), &old_manifest).unwrap();
    for (p, b) in objs.iter().zip(&old_objects) {
        std::fs::write(p, b).unwrap();
    }
    assert_eq!(Volume::tag_on_disk(&dir).unwrap(), Some(old_tag));
    assert_eq!(reopen().tag(), old_tag);

    // A manifest from another volume, a header from another volume.
    let other = tmp.path().join("other");
    let (_, ov) = new_volume(&other, Mode::Encrypted);
    ov.sync().unwrap();
    std::fs::copy(other.join("veil.manifest"), dir.join("veil.manifest")).unwrap();
    assert_eq!(Volume::open(&dir, &key).unwrap_err(), FsError::BadManifest);
    std::fs::write(dir.join("veil.manifest"), &old_manifest).unwrap();
    std::fs::copy(other.join("veil.volume"), dir.join("veil.volume")).unwrap();
    assert_eq!(
        Volume::open(&dir, &key).unwrap_err(),
        FsError::WrongKeyOrTamperedHeader
    );
}

/// A crash at every point of a growing and of a shrinking write: the file
/// reopens to an authentic state (old or new content per record), never an
/// error, never unauthenticated bytes.
#[test]
fn crashes_mid_write_reopen_consistent() {
    for grow in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let (key, v) = new_volume(&dir, Mode::Encrypted);
        v.create("/f", 0o600).unwrap();
        let before: Vec<u8> = (0..(3 * CS + 100)).map(|i| (i % 251) as u8).collect();
        v.write("/f", 0, &before).unwrap();
        v.sync().unwrap();
        let obj = objects(&dir)[0].clone();
        let committed_obj = std::fs::read(&obj).unwrap();
        if grow {
            v.write("/f", before.len() as u64 - 10, &[0xee; 3 * CS as usize])
                .unwrap();
        } else {
            v.truncate("/f", CS as u64 + 7).unwrap();
        }
        drop(v); // crash: no sync; the manifest marks /f dirty
        let final_obj = std::fs::read(&obj).unwrap();
        // Every prefix/suffix mix of the committed and final object bytes is
        // a state a crash could leave (writes land in order).
        let n = committed_obj.len().max(final_obj.len());
        for cut in (0..=n).step_by(997).chain([n]) {
            let k = cut.min(final_obj.len());
            let mut state = final_obj[..k].to_vec();
            if k < committed_obj.len() {
                state.extend_from_slice(&committed_obj[k..]);
            }
            std::fs::write(&obj, &state).unwrap();
            match Volume::open(&dir, &key) {
                Ok(v) => {
                    let got = whole(&v, "/f");
                    assert!(v.verify().is_empty(), "grow={grow} cut={cut}");
                    drop(got);
                }
                Err(e) => panic!("grow={grow} cut={cut}: {e}"),
            }
        }
    }
}

/// A reader that hands out at most `step` bytes per call.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
}

impl std::io::Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn streaming_import_and_export_round_trip_at_every_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    let (key, v) = new_volume(&dir, Mode::Encrypted);
    let batch = 4 << 20;
    for (k, len) in [
        0usize,
        1,
        CS as usize,
        CS as usize + 1,
        batch,
        batch + CS as usize,
        2 * batch + 5,
    ]
    .into_iter()
    .enumerate()
    {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
        for step in [7usize, 65536, usize::MAX] {
            let path = format!("/f{k}-{}", step.min(99999));
            let mut last = 0;
            let n = v
                .import(&path, 0o600, &mut Dribble { data: &data, step }, &mut |p| {
                    last = p
                })
                .unwrap();
            assert_eq!(n, len as u64);
            assert_eq!(last, len as u64);
            let mut out = Vec::new();
            v.export(&path, &mut out, &mut |_| {}).unwrap();
            assert_eq!(out, data, "len {len} step {step}");
            // Then it behaves like any file: append to it.
            v.write(&path, len as u64, b"tail").unwrap();
            assert_eq!(&whole(&v, &path)[len..], b"tail");
        }
    }
    v.sync().unwrap();
    drop(v);
    let v = Volume::open(&dir, &key).unwrap();
    assert!(v.verify().is_empty(), "{:?}", v.verify());
}
