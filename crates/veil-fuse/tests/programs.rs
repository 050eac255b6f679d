//! Unmodified programs on a mounted volume: tar and diff, sqlite3, python3.
//! Each result is compared with the same work done on a plain directory.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{pattern, whole, Fixture};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("one"), b"1").unwrap();
    fs::write(root.join("a/chunk"), pattern(65536, 1)).unwrap();
    fs::write(root.join("a/chunk+1"), pattern(65537, 2)).unwrap();
    fs::write(root.join("a/b/big"), pattern((3 << 20) + 3, 3)).unwrap();
    fs::write(root.join("a/b/c/naïve name.txt"), "ünïcödé\n".repeat(100)).unwrap();
    fs::write(root.join("a/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("a/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("a/private"), b"secret").unwrap();
    fs::set_permissions(root.join("a/private"), fs::Permissions::from_mode(0o600)).unwrap();
    for i in 0..50 {
        fs::write(
            root.join(format!("a/b/c/small-{i}")),
            i.to_string().repeat(i),
        )
        .unwrap();
    }
}

#[test]
fn tar_into_and_out_of_the_mount() {
    let mut fx = Fixture::new();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);

    // Archive written into the mount, extracted inside the mount.
    run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(fx.p("tree.tar"))
        .arg("."));
    fs::create_dir(fx.p("x")).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(fx.p("x"))
        .arg("-xpf")
        .arg(fx.p("tree.tar")));
    run(Command::new("diff").arg("-r").arg(&src).arg(fx.p("x")));
    assert_eq!(
        fs::metadata(fx.p("x/a/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        fs::metadata(fx.p("x/a/private"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The executable runs from the mount.
    let hi = run(&mut Command::new(fx.p("x/a/run.sh")));
    assert_eq!(hi.stdout, b"hi\n");

    // And back out to a plain directory.
    let back = work.path().join("back");
    fs::create_dir(&back).unwrap();
    let mut piped = Command::new("tar")
        .arg("-C")
        .arg(fx.p("x"))
        .arg("-cf")
        .arg("-")
        .arg(".")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&back)
        .arg("-xpf")
        .arg("-")
        .stdin(piped.stdout.take().unwrap()));
    assert!(piped.wait().unwrap().success());
    run(Command::new("diff").arg("-r").arg(&src).arg(&back));

    let v = fx.reopen();
    assert_eq!(whole(&v, "/x/a/b/big"), pattern((3 << 20) + 3, 3));
    assert_eq!(v.stat("/x/a/run.sh").unwrap().mode & 0o777, 0o755);
    assert!(v.stat("/x/empty dir").is_ok());
}

fn sqlite_script() -> String {
    let mut s = String::from(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL, b BLOB);\n",
    );
    for tx in 0..10 {
        s.push_str("BEGIN;\n");
        for i in 0..100 {
            let id = tx * 100 + i + 1;
            s.push_str(&format!(
                "INSERT INTO t(name, v, b) VALUES ('row {id}', {id}.5, zeroblob({}) || x'{:02x}');\n",
                (id * 37) % 3000,
                id % 256
            ));
        }
        s.push_str("COMMIT;\n");
    }
    s.push_str(
        "CREATE INDEX t_name ON t(name);\n\
         BEGIN;\n\
         UPDATE t SET v = v * 2 WHERE id % 7 = 0;\n\
         DELETE FROM t WHERE id % 11 = 0;\n\
         COMMIT;\n\
         BEGIN; UPDATE t SET name = 'rolled back'; ROLLBACK;\n\
         VACUUM;\n",
    );
    s
}

const SQLITE_QUERIES: &str = "SELECT count(*), sum(v), sum(length(b)) FROM t;\n\
     SELECT id, name, v, hex(substr(b, -1)) FROM t WHERE id % 97 = 0 ORDER BY id;\n\
     SELECT name FROM t WHERE name LIKE 'row 99%' ORDER BY name;\n\
     PRAGMA integrity_check;\n";

fn sqlite(db: &Path, sql: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("/usr/bin/sqlite3")
        .arg("-batch")
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sqlite3 on {}: {}",
        db.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn sqlite_matches_a_plain_directory() {
    let mut fx = Fixture::new();
    let plain = tempfile::tempdir().unwrap();
    fs::create_dir(fx.p("db")).unwrap();
    let on_mount = fx.p("db/test.db");
    let on_plain = plain.path().join("test.db");
    let script = sqlite_script();

    let m1 = sqlite(&on_mount, &script);
    let p1 = sqlite(&on_plain, &script);
    assert_eq!(m1, p1);
    let m2 = sqlite(&on_mount, SQLITE_QUERIES);
    let p2 = sqlite(&on_plain, SQLITE_QUERIES);
    assert_eq!(
        String::from_utf8(m2.clone()).unwrap(),
        String::from_utf8(p2).unwrap()
    );
    assert!(String::from_utf8_lossy(&m2).ends_with("ok\n"));
    assert!(String::from_utf8_lossy(&m2).starts_with("910|"));
    // The journal is gone, and the database is the same bytes.
    let names: Vec<_> = fs::read_dir(fx.p("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["test.db"]);
    let db_bytes = fs::read(&on_mount).unwrap();
    assert_eq!(db_bytes, fs::read(&on_plain).unwrap());

    // WAL mode: shared memory through a shared writable mmap of -shm.
    let wal = "PRAGMA journal_mode=WAL;\n\
               BEGIN; UPDATE t SET v = v + 1 WHERE id % 3 = 0; COMMIT;\n\
               SELECT count(*), sum(v) FROM t;\n";
    assert_eq!(sqlite(&on_mount, wal), sqlite(&on_plain, wal));
    assert_eq!(
        sqlite(&on_mount, SQLITE_QUERIES),
        sqlite(&on_plain, SQLITE_QUERIES)
    );

    let v = fx.reopen();
    assert_eq!(
        v.stat("/db/test.db").unwrap().len,
        fs::metadata(&on_plain).unwrap().len()
    );
}

const PY: &str = r#"
import hashlib, json, os, shutil, sys, tempfile
root = sys.argv[1]
os.makedirs(os.path.join(root, "p/q/r"), exist_ok=True)
p = os.path.join(root, "p")
with open(os.path.join(p, "text.txt"), "w", encoding="utf-8") as f:
    for i in range(2000):
        f.write(f"line {i} ✓\n")
with open(os.path.join(p, "bin"), "wb") as f:
    f.write(bytes(range(256)) * 1000)
    f.seek(100)
    f.write(b"XYZ")
    f.seek(0, os.SEEK_END)
    assert f.tell() == 256000
with open(os.path.join(p, "bin"), "ab") as f:
    f.write(b"appended")
with open(os.path.join(p, "bin"), "r+b") as f:
    f.seek(255990)
    assert f.read(18) == (bytes(range(256)) * 1000)[255990:] + b"appended"
    f.truncate(1000)
assert os.path.getsize(os.path.join(p, "bin")) == 1000
json.dump({"k": list(range(100))}, open(os.path.join(p, "q/data.json"), "w"))
assert json.load(open(os.path.join(p, "q/data.json")))["k"][99] == 99
os.rename(os.path.join(p, "q"), os.path.join(p, "q2"))
os.replace(os.path.join(p, "text.txt"), os.path.join(p, "q2/r/text.txt"))
shutil.copytree(os.path.join(p, "q2"), os.path.join(p, "copy"))
shutil.rmtree(os.path.join(p, "q2"))
with tempfile.NamedTemporaryFile(dir=p) as t:
    t.write(b"gone at close")
    t.flush()
    t.seek(0)
    assert t.read() == b"gone at close"
with tempfile.TemporaryFile(dir=p) as t:
    t.write(b"anonymous")
    t.seek(0)
    assert t.read() == b"anonymous"
os.chmod(os.path.join(p, "bin"), 0o604)
assert os.stat(os.path.join(p, "bin")).st_mode & 0o777 == 0o604
st = os.statvfs(root)
assert st.f_bsize > 0 and st.f_blocks > 0
h = hashlib.sha256()
for d, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    for name in sorted(files):
        full = os.path.join(d, name)
        h.update(os.path.relpath(full, root).encode())
        h.update(open(full, "rb").read())
print(sorted(os.listdir(p)))
print(h.hexdigest())
"#;

#[test]
fn python_matches_a_plain_directory() {
    let mut fx = Fixture::new();
    let plain = tempfile::tempdir().unwrap();
    let py = |root: &Path| run(Command::new("/usr/bin/python3").arg("-c").arg(PY).arg(root)).stdout;
    let on_mount = py(&fx.mnt);
    let on_plain = py(plain.path());
    assert_eq!(
        String::from_utf8(on_mount).unwrap(),
        String::from_utf8(on_plain).unwrap()
    );
    let v = fx.reopen();
    let text = whole(&v, "/p/copy/r/text.txt");
    assert!(String::from_utf8(text).unwrap().ends_with("line 1999 ✓\n"));
    // No parked temporary file survives.
    assert!(v
        .walk()
        .iter()
        .all(|(p, _)| !p.contains(".veil-fuse-orphan-")));
}
