//! A fresh volume mounted on a temporary directory, exercised with std::fs
//! as any program would, then checked by opening the volume directly.
//! Runs as root with /dev/fuse (no fusermount needed).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{is_mount_point, pattern, whole, Fixture};
use veil_fuse::{Ended, MountOptions};

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[test]
fn create_read_write_at_offsets() {
    let mut fx = Fixture::new();
    let data = pattern(300_000, 1);
    fs::write(fx.p("a"), &data).unwrap();
    assert_eq!(fs::read(fx.p("a")).unwrap(), data);

    // Overwrite across a chunk boundary, and read at offsets.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(fx.p("a"))
        .unwrap();
    f.write_all_at(b"HELLO", 65534).unwrap();
    let mut buf = [0u8; 9];
    f.read_exact_at(&mut buf, 65532).unwrap();
    assert_eq!(&buf[..2], &data[65532..65534]);
    assert_eq!(&buf[2..7], b"HELLO");
    assert_eq!(&buf[7..], &data[65539..65541]);
    // Past the end: a short read.
    let mut tail = [0u8; 100];
    assert_eq!(f.read_at(&mut tail, 299_990).unwrap(), 10);
    assert_eq!(f.read_at(&mut tail, 400_000).unwrap(), 0);
    drop(f);

    let mut expect = data.clone();
    expect[65534..65539].copy_from_slice(b"HELLO");
    assert_eq!(fs::metadata(fx.p("a")).unwrap().len(), 300_000);
    let v = fx.reopen();
    assert_eq!(whole(&v, "/a"), expect);
}

#[test]
fn append_and_create_new() {
    let mut fx = Fixture::new();
    for i in 0..5u8 {
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(fx.p("log"))
            .unwrap();
        f.write_all(&[b'0' + i; 1000]).unwrap();
    }
    let got = fs::read(fx.p("log")).unwrap();
    assert_eq!(got.len(), 5000);
    assert!(got[4000..].iter().all(|b| *b == b'4'));
    // O_APPEND writes land at the end even after a seek.
    let mut f = OpenOptions::new().append(true).open(fx.p("log")).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"END").unwrap();
    drop(f);
    assert_eq!(&fs::read(fx.p("log")).unwrap()[4997..], b"444END");

    let e = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(fx.p("log"))
        .unwrap_err();
    assert_eq!(errno(&e), libc::EEXIST);
    let v = fx.reopen();
    assert_eq!(v.stat("/log").unwrap().len, 5003);
}

#[test]
fn truncate_grow_and_shrink() {
    let mut fx = Fixture::new();
    let data = pattern(200_000, 2);
    fs::write(fx.p("t"), &data).unwrap();
    let f = OpenOptions::new().write(true).open(fx.p("t")).unwrap();
    f.set_len(70_000).unwrap();
    assert_eq!(fs::read(fx.p("t")).unwrap(), &data[..70_000]);
    f.set_len(150_000).unwrap();
    let got = fs::read(fx.p("t")).unwrap();
    assert_eq!(&got[..70_000], &data[..70_000]);
    assert!(got[70_000..].iter().all(|b| *b == 0));
    assert_eq!(got.len(), 150_000);
    drop(f);
    // O_TRUNC.
    fs::write(fx.p("t"), b"short").unwrap();
    assert_eq!(fs::read(fx.p("t")).unwrap(), b"short");
    let v = fx.reopen();
    assert_eq!(whole(&v, "/t"), b"short");
}

#[test]
fn sparse_file_reads_zeros() {
    let mut fx = Fixture::new();
    let mut f = File::create(fx.p("sparse")).unwrap();
    f.write_all(b"head").unwrap();
    f.seek(SeekFrom::Start(10_000_000)).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    let got = fs::read(fx.p("sparse")).unwrap();
    assert_eq!(got.len(), 10_000_004);
    assert_eq!(&got[..4], b"head");
    assert!(got[4..10_000_000].iter().all(|b| *b == 0));
    assert_eq!(&got[10_000_000..], b"tail");
    let v = fx.reopen();
    assert_eq!(whole(&v, "/sparse"), got);
}

#[test]
fn rename_files_and_directories() {
    let mut fx = Fixture::new();
    fs::create_dir_all(fx.p("d/e/f")).unwrap();
    fs::write(fx.p("d/one"), b"1").unwrap();
    fs::write(fx.p("d/e/f/deep"), b"deep").unwrap();
    // Keep a handle open across the directory rename: it follows the file.
    let held = OpenOptions::new()
        .read(true)
        .write(true)
        .open(fx.p("d/e/f/deep"))
        .unwrap();
    fs::rename(fx.p("d"), fx.p("moved")).unwrap();
    assert!(!fx.p("d").exists());
    assert_eq!(fs::read(fx.p("moved/one")).unwrap(), b"1");
    assert_eq!(fs::read(fx.p("moved/e/f/deep")).unwrap(), b"deep");
    held.write_all_at(b"DEEP", 0).unwrap();
    drop(held);
    assert_eq!(fs::read(fx.p("moved/e/f/deep")).unwrap(), b"DEEP");

    // A file over another file.
    fs::write(fx.p("x"), b"x").unwrap();
    fs::write(fx.p("y"), b"y").unwrap();
    fs::rename(fx.p("x"), fx.p("y")).unwrap();
    assert!(!fx.p("x").exists());
    assert_eq!(fs::read(fx.p("y")).unwrap(), b"x");
    // Across directories.
    fs::rename(fx.p("y"), fx.p("moved/e/y")).unwrap();
    assert_eq!(fs::read(fx.p("moved/e/y")).unwrap(), b"x");
    // A directory over a non-empty directory, a file over a directory.
    fs::create_dir(fx.p("z")).unwrap();
    let e = fs::rename(fx.p("z"), fx.p("moved/e")).unwrap_err();
    assert_eq!(errno(&e), libc::ENOTEMPTY);
    let e = fs::rename(fx.p("moved/one"), fx.p("z")).unwrap_err();
    assert_eq!(errno(&e), libc::EISDIR);

    let v = fx.reopen();
    assert_eq!(whole(&v, "/moved/e/f/deep"), b"DEEP");
    assert_eq!(whole(&v, "/moved/e/y"), b"x");
    assert!(v.stat("/d").is_err());
}

#[test]
fn rename_noreplace() {
    let mut fx = Fixture::new();
    fs::write(fx.p("a"), b"a").unwrap();
    fs::write(fx.p("b"), b"b").unwrap();
    assert_eq!(
        common_sys::rename_noreplace(&fx.p("a"), &fx.p("b")),
        Err(libc::EEXIST)
    );
    assert_eq!(common_sys::rename_noreplace(&fx.p("a"), &fx.p("c")), Ok(()));
    assert_eq!(fs::read(fx.p("c")).unwrap(), b"a");
    assert_eq!(fs::read(fx.p("b")).unwrap(), b"b");
    fx.unmount();
}

#[test]
fn unlink_rmdir_and_enotempty() {
    let mut fx = Fixture::new();
    fs::create_dir(fx.p("dir")).unwrap();
    fs::write(fx.p("dir/f"), b"f").unwrap();
    let e = fs::remove_dir(fx.p("dir")).unwrap_err();
    assert_eq!(errno(&e), libc::ENOTEMPTY);
    let e = fs::remove_file(fx.p("dir")).unwrap_err();
    assert!(matches!(errno(&e), libc::EISDIR | libc::EPERM), "{e}");
    let e = fs::remove_dir(fx.p("dir/f")).unwrap_err();
    assert_eq!(errno(&e), libc::ENOTDIR);
    fs::remove_file(fx.p("dir/f")).unwrap();
    assert_eq!(
        errno(&fs::metadata(fx.p("dir/f")).unwrap_err()),
        libc::ENOENT
    );
    fs::remove_dir(fx.p("dir")).unwrap();
    assert!(!fx.p("dir").exists());
    let e = fs::create_dir(fx.p("nope/deeper")).unwrap_err();
    assert_eq!(errno(&e), libc::ENOENT);
    let v = fx.reopen();
    assert_eq!(v.walk().len(), 1, "only / is left");
}

#[test]
fn unlinked_open_file_stays_usable_until_closed() {
    let mut fx = Fixture::new();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(fx.p("tmp"))
        .unwrap();
    f.write_all(b"before").unwrap();
    fs::remove_file(fx.p("tmp")).unwrap();
    assert!(!fx.p("tmp").exists());
    let names: Vec<_> = fs::read_dir(&fx.mnt).unwrap().collect();
    assert!(names.is_empty(), "{names:?}");
    f.write_all(b" after").unwrap();
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "before after");
    // Replaced by a rename while open: same rule.
    fs::write(fx.p("target"), b"old").unwrap();
    let mut old = File::open(fx.p("target")).unwrap();
    fs::write(fx.p("new"), b"new").unwrap();
    fs::rename(fx.p("new"), fx.p("target")).unwrap();
    let mut s = String::new();
    old.read_to_string(&mut s).unwrap();
    assert_eq!(s, "old");
    assert_eq!(fs::read(fx.p("target")).unwrap(), b"new");
    drop(f);
    drop(old);
    let v = fx.reopen();
    let paths: Vec<String> = v.walk().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, vec!["/".to_owned(), "/target".to_owned()]);
}

#[test]
fn readdir_lists_everything_once() {
    let mut fx = Fixture::new();
    fs::create_dir(fx.p("sub")).unwrap();
    let mut want = vec!["sub".to_owned()];
    for i in 0..300 {
        let name = format!("file-{i:04}-with-a-longish-name-to-fill-buffers");
        fs::write(fx.p(&name), i.to_string()).unwrap();
        want.push(name);
    }
    want.sort();
    let mut got: Vec<String> = fs::read_dir(&fx.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, want);
    let kinds: Vec<bool> = fs::read_dir(&fx.mnt)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() == "sub")
        .map(|e| e.file_type().unwrap().is_dir())
        .collect();
    assert_eq!(kinds, vec![true]);
    // `ls -a` sees . and ..
    let out = std::process::Command::new("ls")
        .arg("-a")
        .arg(&fx.mnt)
        .output()
        .unwrap();
    let ls = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(&lines[..2], &[".", ".."]);
    assert_eq!(lines.len(), 2 + want.len());
    fx.unmount();
}

#[test]
fn metadata_chmod_mtime_and_owner() {
    let mut fx = Fixture::new();
    fs::write(fx.p("m"), b"1234").unwrap();
    fs::set_permissions(fx.p("m"), fs::Permissions::from_mode(0o640)).unwrap();
    let md = fs::metadata(fx.p("m")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert!(md.is_file());
    assert_eq!(md.len(), 4);
    // SAFETY-free: the ids of this process, through /proc.
    let me = fs::metadata("/proc/self").unwrap();
    assert_eq!((md.uid(), md.gid()), (me.uid(), me.gid()));
    // chown to ourselves is fine, to anyone else EPERM.
    std::os::unix::fs::chown(fx.p("m"), Some(me.uid()), Some(me.gid())).unwrap();
    let e = std::os::unix::fs::chown(fx.p("m"), Some(4242), None).unwrap_err();
    assert_eq!(errno(&e), libc::EPERM);
    // mtime.
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::options()
        .write(true)
        .open(fx.p("m"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    assert_eq!(fs::metadata(fx.p("m")).unwrap().modified().unwrap(), when);
    fs::create_dir(fx.p("d")).unwrap();
    fs::set_permissions(fx.p("d"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(fs::metadata(fx.p("d")).unwrap().mode() & 0o7777, 0o700);
    assert!(fs::metadata(fx.p("d")).unwrap().is_dir());

    let v = fx.reopen();
    assert_eq!(v.stat("/m").unwrap().mode, 0o640);
    assert_eq!(v.stat("/d").unwrap().mode, 0o700);
    assert_eq!(v.stat("/m").unwrap().mtime_ns, 1_000_000_000_000_000_000);
}

#[test]
fn unsupported_kinds_are_refused() {
    let mut fx = Fixture::new();
    fs::write(fx.p("f"), b"f").unwrap();
    let e = std::os::unix::fs::symlink("f", fx.p("link")).unwrap_err();
    assert_eq!(errno(&e), libc::EPERM);
    let e = fs::hard_link(fx.p("f"), fx.p("hard")).unwrap_err();
    assert_eq!(errno(&e), libc::EPERM);
    let status = std::process::Command::new("mkfifo")
        .arg(fx.p("fifo"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    fx.unmount();
}

#[test]
fn fsync_commits_the_file() {
    let mut fx = Fixture::new();
    let g0 = fx.mounted().volume().generation();
    let mut f = File::create(fx.p("durable")).unwrap();
    f.write_all(b"committed by fsync").unwrap();
    f.sync_all().unwrap();
    assert!(fx.mounted().volume().generation() > g0);
    // What a crash right now would leave: the committed manifest on disk,
    // opened by another reader, has the file.
    let other = veil_fs::Volume::open(&fx.vol, &fx.key).unwrap();
    assert_eq!(whole(&other, "/durable"), b"committed by fsync");
    drop(other);
    // fsync of a directory commits everything.
    fs::create_dir(fx.p("dir")).unwrap();
    File::open(&fx.mnt).unwrap().sync_all().unwrap();
    let other = veil_fs::Volume::open(&fx.vol, &fx.key).unwrap();
    assert!(other.stat("/dir").is_ok());
    drop(other);
    drop(f);
    fx.unmount();
}

#[test]
fn periodic_commit() {
    let mut opts = MountOptions::default();
    opts.commit_interval = Some(Duration::from_millis(200));
    let mut fx = Fixture::with_options(opts);
    fs::write(fx.p("p"), b"periodic").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let other = veil_fs::Volume::open(&fx.vol, &fx.key).unwrap();
        if other.stat("/p").is_ok_and(|s| s.len == 8) {
            assert_eq!(whole(&other, "/p"), b"periodic");
            break;
        }
        assert!(Instant::now() < deadline, "never committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    fx.unmount();
}

#[test]
fn statfs_reports_the_backing_file_system() {
    let mut fx = Fixture::new();
    let stat_f = |p: &std::path::Path| {
        let out = std::process::Command::new("stat")
            .args(["-f", "-c", "%b %S %l"])
            .arg(p)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let host = stat_f(&fx.vol);
    let mnt = stat_f(&fx.mnt);
    let (hb, mb): (Vec<&str>, Vec<&str>) = (
        host.split_whitespace().collect(),
        mnt.split_whitespace().collect(),
    );
    assert_eq!(hb[0], mb[0], "total blocks");
    assert_eq!(hb[1], mb[1], "block size");
    assert_eq!(mb[2], "255", "name length");
    fx.unmount();
}

#[test]
fn names_that_do_not_fit() {
    let mut fx = Fixture::new();
    let long = "n".repeat(256);
    let e = fs::write(fx.p(&long), b"").unwrap_err();
    assert_eq!(errno(&e), libc::ENAMETOOLONG);
    let ok = "n".repeat(255);
    fs::write(fx.p(&ok), b"ok").unwrap();
    assert_eq!(fs::read(fx.p(&ok)).unwrap(), b"ok");
    // The name space of parked files is not reachable.
    let e = fs::write(fx.p(".veil-fuse-orphan-7"), b"").unwrap_err();
    assert_eq!(errno(&e), libc::EPERM);
    fx.unmount();
}

#[test]
fn concurrent_readers_see_the_right_bytes() {
    let mut fx = Fixture::new();
    let data = Arc::new(pattern(8 << 20, 9));
    fs::write(fx.p("shared"), &*data).unwrap();
    let path = fx.p("shared");
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let data = data.clone();
            let path = path.clone();
            std::thread::spawn(move || {
                let f = File::open(&path).unwrap();
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                let mut buf = vec![0u8; 300_000];
                for _ in 0..200 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let off = (seed % (data.len() as u64 - 1)) as usize;
                    let len = (seed as usize >> 40) % buf.len() + 1;
                    let n = f.read_at(&mut buf[..len], off as u64).unwrap();
                    let want = &data[off..(off + len).min(data.len())];
                    assert_eq!(&buf[..n], want, "thread {t} at {off}+{len}");
                }
                // And the whole file.
                assert_eq!(fs::read(&path).unwrap(), *data);
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    fx.unmount();
}

#[test]
fn tampered_record_reads_as_eio() {
    let mut fx = Fixture::new();
    fs::write(fx.p("secret"), pattern(100_000, 3)).unwrap();
    fx.unmount();
    // The host flips one ciphertext byte of the only object.
    let objects: Vec<_> = fs::read_dir(fx.vol.join(veil_fs::OBJECTS_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(objects.len(), 1);
    let obj = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&objects[0])
        .unwrap();
    let mut b = [0u8; 1];
    obj.read_exact_at(&mut b, 32 + 12 + 100).unwrap();
    b[0] ^= 0x40;
    obj.write_all_at(&b, 32 + 12 + 100).unwrap();
    drop(obj);
    fx.remount();
    let e = fs::read(fx.p("secret")).unwrap_err();
    assert_eq!(errno(&e), libc::EIO);
    // The other records still authenticate.
    let f = File::open(fx.p("secret")).unwrap();
    let mut tail = [0u8; 10];
    f.read_exact_at(&mut tail, 99_990).unwrap();
    assert_eq!(&tail, &pattern(100_000, 3)[99_990..]);
    drop(f);
    fx.unmount();
}

#[test]
fn unmount_leaves_an_ordinary_empty_directory() {
    let mut fx = Fixture::new();
    fs::create_dir(fx.p("x")).unwrap();
    fs::write(fx.p("x/y"), b"y").unwrap();
    fx.unmount();
    assert!(!is_mount_point(&fx.mnt));
    assert!(fs::metadata(&fx.mnt).unwrap().is_dir());
    assert_eq!(fs::read_dir(&fx.mnt).unwrap().count(), 0);
    // And it mounts again, with the content.
    fx.remount();
    assert_eq!(fs::read(fx.p("x/y")).unwrap(), b"y");
    fx.unmount();
}

#[test]
fn busy_mount_is_detached_lazily() {
    let mut fx = Fixture::new();
    fs::write(fx.p("busy"), b"busy").unwrap();
    let held = File::open(fx.p("busy")).unwrap();
    let m = fx.mounted.take().unwrap();
    m.unmount().unwrap();
    assert!(!is_mount_point(&fx.mnt));
    // The open file still works until it is closed.
    let mut s = [0u8; 4];
    held.read_exact_at(&mut s, 0).unwrap();
    assert_eq!(&s, b"busy");
    drop(held);
    let v = veil_fs::Volume::open(&fx.vol, &fx.key).unwrap();
    assert_eq!(whole(&v, "/busy"), b"busy");
}

#[test]
fn external_unmount_ends_the_wait() {
    let mut fx = Fixture::new();
    fs::write(fx.p("f"), b"written before umount").unwrap();
    let m = fx.mounted.take().unwrap();
    let waiter = std::thread::spawn(move || m.wait_for_signal());
    std::thread::sleep(Duration::from_millis(200));
    let st = std::process::Command::new("umount")
        .arg(&fx.mnt)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(waiter.join().unwrap().unwrap(), Ended::Unmounted);
    let v = fx.reopen();
    assert_eq!(whole(&v, "/f"), b"written before umount");
}

/// Mounts in a child process (this test binary, re-run on `signal_child`),
/// sends it SIGTERM, and checks it committed, unmounted and exited 0.
#[test]
fn sigterm_unmounts_the_foreground_mount() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mnt = mnt.canonicalize().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signal_child", "--nocapture", "--test-threads=1"])
        .env("VEIL_FUSE_SIGNAL_CHILD", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until it is mounted and catches SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0);
        if caught && is_mount_point(&mnt) && mnt.join("ready").exists() {
            break;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&mnt)
                .status();
            panic!("the child never got ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mount_point(&mnt));
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0);
}

#[test]
fn signal_child() {
    let Some(dir) = std::env::var_os("VEIL_FUSE_SIGNAL_CHILD") else {
        return; // only meaningful as the child of the test above
    };
    let dir = std::path::PathBuf::from(dir);
    let key = veil_fs::VolumeKey::random().unwrap();
    let vol = dir.join("vol");
    let v = veil_fs::Volume::init(
        &vol,
        &key,
        veil_fs::Mode::Encrypted,
        veil_fs::ChunkSize::new(4096).unwrap(),
    )
    .unwrap();
    let mnt = dir.join("mnt");
    let m = veil_fuse::mount(Arc::new(v), &mnt, &MountOptions::default()).unwrap();
    let writer = {
        let mnt = mnt.clone();
        std::thread::spawn(move || {
            // Ready once the handlers are in: the parent checks SigCgt too.
            fs::write(mnt.join("ready"), b"ready").unwrap();
        })
    };
    writer.join().unwrap();
    let ended = m.wait_for_signal().unwrap();
    assert_eq!(ended, Ended::Signal(libc::SIGTERM));
    let v = veil_fs::Volume::open(&vol, &key).unwrap();
    assert_eq!(whole(&v, "/ready"), b"ready");
}

/// A few bytes at 5 GiB (at 4 GiB + 4 KiB with under 12 GiB free): the u64
/// path end to end. Holes are materialized as encrypted zeros, so this
/// writes gigabytes of ciphertext (about 15 s here); skipped with under
/// 6 GiB free.
#[test]
fn file_larger_than_4_gib() {
    let mut fx = Fixture::new();
    let free = common_sys::free_bytes(&fx.vol);
    let offset: u64 = if free > 12 << 30 {
        5 << 30
    } else if free > 6 << 30 {
        (4 << 30) + 4096
    } else {
        eprintln!("skipped: only {free} bytes free for a > 4 GiB file");
        fx.unmount();
        return;
    };
    let t = Instant::now();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(fx.p("big"))
        .unwrap();
    f.write_all_at(b"beyond 4 GiB", offset).unwrap();
    let mut got = [0u8; 12];
    f.read_exact_at(&mut got, offset).unwrap();
    assert_eq!(&got, b"beyond 4 GiB");
    let mut zeros = [1u8; 4096];
    f.read_exact_at(&mut zeros, offset - 4096).unwrap();
    assert!(zeros.iter().all(|b| *b == 0));
    assert_eq!(f.metadata().unwrap().len(), offset + 12);
    drop(f);
    eprintln!("{offset} bytes written in {:?}", t.elapsed());
    let v = fx.reopen();
    assert_eq!(v.read("/big", offset, 100).unwrap(), b"beyond 4 GiB");
    assert_eq!(v.stat("/big").unwrap().len, offset + 12);
}

mod common_sys {
    //! Calls std does not wrap, for the tests.
    #![allow(unsafe_code)]

    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// `renameat2(RENAME_NOREPLACE)`; the errno on failure.
    pub fn rename_noreplace(from: &Path, to: &Path) -> Result<(), i32> {
        let f = CString::new(from.as_os_str().as_bytes()).unwrap();
        let t = CString::new(to.as_os_str().as_bytes()).unwrap();
        // SAFETY: two NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    }

    /// Free bytes for an unprivileged user on the file system of `p`.
    pub fn free_bytes(p: &Path) -> u64 {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: a NUL-terminated path and a writable statvfs-sized buffer.
        let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: zeroed, then filled by the successful call.
        let st = unsafe { st.assume_init() };
        st.f_bavail * st.f_frsize
    }
}

/// Writers, renamers and listers at once: no deadlock, nothing lost.
#[test]
fn parallel_namespace_and_data_work() {
    let mut fx = Fixture::new();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let root = fx.p(&format!("w{t}"));
            std::thread::spawn(move || {
                fs::create_dir(&root).unwrap();
                for i in 0..40 {
                    let a = root.join(format!("f{i}"));
                    fs::write(&a, pattern(10_000 + i * 100, t as u8)).unwrap();
                    let b = root.join(format!("g{i}"));
                    fs::rename(&a, &b).unwrap();
                    if i % 3 == 0 {
                        fs::remove_file(&b).unwrap();
                    }
                    let _ = fs::read_dir(&root).unwrap().count();
                }
            })
        })
        .collect();
    let lister = {
        let mnt = fx.mnt.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                for e in fs::read_dir(&mnt).unwrap() {
                    let _ = e.unwrap().metadata();
                }
            }
        })
    };
    for w in workers {
        w.join().unwrap();
    }
    lister.join().unwrap();
    let v = fx.reopen();
    for t in 0..4u8 {
        for i in 0..40usize {
            let p = format!("/w{t}/g{i}");
            if i % 3 == 0 {
                assert!(v.stat(&p).is_err());
            } else {
                assert_eq!(whole(&v, &p), pattern(10_000 + i * 100, t));
            }
        }
    }
}
