//! `veil demo`, the README's first command, through the real binary: as root
//! (mount namespace) and, where the machine allows it, as an unprivileged
//! user (user + mount namespaces).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn check_demo_output(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    // The unmodified program received its environment variable, argument
    // and file.
    assert!(
        stdout.contains("app: environment  DB_PASSWORD=demo-"),
        "{stdout}"
    );
    assert!(stdout.contains("app: argument     --api-key="), "{stdout}");
    assert!(
        stdout.contains("app: config file  password = demo-"),
        "{stdout}"
    );
    // Nothing of it on disk, and the file's mount point is gone.
    assert!(
        stdout.contains("The password is in none of the"),
        "{stdout}"
    );
    assert!(stdout.contains("is gone on the host"), "{stdout}");
    // The changed program was refused, with the reason.
    assert!(stdout.contains("measurement_mismatch"), "{stdout}");
    assert!(stdout.contains("measurement expected"), "{stdout}");
    assert!(stdout.contains("Exit code 77"), "{stdout}");
    assert!(!stdout.contains("exfiltrating"), "{stdout}");
}

#[test]
fn the_demo_runs_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .env_remove("VEIL_CAS")
        .output()
        .unwrap();
    check_demo_output(&out);
    // Its temporary directory is removed.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The same flow as an unprivileged user: the launcher enters a user
/// namespace of its own to mount the tmpfs. Skipped (with a message) where
/// the test does not run as root or `setpriv` is missing.
#[test]
fn the_demo_runs_unprivileged_through_a_user_namespace() {
    let root = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        eprintln!("skipped: needs root to switch to an unprivileged user");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is missing");
        return;
    }
    let nobody = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    let userns = Command::new("setpriv")
        .args(nobody)
        .args(["unshare", "--user", "--mount", "true"])
        .status()
        .unwrap();
    if !userns.success() {
        eprintln!("skipped: this kernel refuses unprivileged user namespaces");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // A copy of the binary that the unprivileged user can read and execute.
    let exe = tmp.path().join("veil");
    std::fs::copy(env!("CARGO_BIN_EXE_veil"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(nobody)
        .arg(&exe)
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .env("HOME", tmp.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("VEIL_CAS")
        .output()
        .unwrap();
    check_demo_output(&out);
}
