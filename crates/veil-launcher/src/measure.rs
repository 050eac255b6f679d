//! What the launcher states about the program it starts.
//!
//! * `executable`: SHA-384 of the program file (for a `#!` script, the script).
//! * `interpreter`: SHA-384 of the script's interpreter, when it is a script.
//!
//! These runtime claims are bound into the report data on every TEE. The
//! simulated TEE also folds them, with the launcher's own digest, into the
//! one measurement its evidence states ([`sim_launch_measurement`]), so that a
//! `tee: sim` accept rule that pins a measurement pins launcher and program.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use veil_api::RuntimeClaims;

use crate::LaunchError;

/// Domain separator of the sim launch measurement.
const SIM_LAUNCH_DOMAIN: &[u8] = b"veil-sim-launch-v1";
/// The longest `#!` line the kernel reads (Linux 5.1+: 256 bytes).
const SHEBANG_MAX: usize = 256;

/// The measurement of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramMeasurement {
    /// The program file that will be executed.
    pub path: PathBuf,
    /// SHA-384 of its content.
    pub executable: [u8; 48],
    /// For a `#!` script: the interpreter and the SHA-384 of its content.
    pub interpreter: Option<(PathBuf, [u8; 48])>,
}

impl ProgramMeasurement {
    /// The runtime claims the launcher sends for this program.
    pub fn runtime_claims(&self) -> RuntimeClaims {
        let mut c = RuntimeClaims::new();
        c.insert("executable".into(), hex::encode(self.executable));
        if let Some((_, d)) = &self.interpreter {
            c.insert("interpreter".into(), hex::encode(d));
        }
        c
    }
}

/// Finds the program the policy names: an absolute path is used as is; a bare
/// name is looked up in the launcher's `PATH` (what is found is measured, so
/// the host choosing it gains nothing).
pub fn resolve_program(name: &str) -> Result<PathBuf, LaunchError> {
    let p = Path::new(name);
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    if name.contains('/') {
        return Err(LaunchError::Program {
            path: p.to_owned(),
            detail: "a relative path with a directory is ambiguous; the policy's command[0] must be an absolute path or a bare name found in PATH".into(),
        });
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if is_executable_file(&candidate) {
            return Ok(candidate);
        }
    }
    Err(LaunchError::Program {
        path: p.to_owned(),
        detail: "not found in PATH; give the policy's command[0] as an absolute path".into(),
    })
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Measures the program at `path` (and its interpreter, for a script).
pub fn measure_program(path: &Path) -> Result<ProgramMeasurement, LaunchError> {
    let err = |detail: String| LaunchError::Program {
        path: path.to_owned(),
        detail,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(err("not executable (no x permission bit)".into()));
    }
    let executable = veil_provider::measure_file(path).map_err(|e| err(e.to_string()))?;
    let interpreter = match shebang(path).map_err(|e| err(e.to_string()))? {
        None => None,
        Some(interp) => {
            let d = veil_provider::measure_file(&interp).map_err(|e| {
                err(format!(
                    "its interpreter {} cannot be measured: {e}",
                    interp.display()
                ))
            })?;
            Some((interp, d))
        }
    };
    Ok(ProgramMeasurement {
        path: path.to_owned(),
        executable,
        interpreter,
    })
}

/// The interpreter named by a `#!` line, if the file starts with one.
fn shebang(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut head = Vec::with_capacity(SHEBANG_MAX);
    std::fs::File::open(path)?
        .take(SHEBANG_MAX as u64)
        .read_to_end(&mut head)?;
    Ok(interpreter_of(&head))
}

/// The interpreter a file starting with `head` names on its `#!` line (the
/// first word after `#!`, as the kernel reads it), if it has one.
pub fn interpreter_of(head: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let interp = line
        .split(|b| *b == b' ' || *b == b'\t')
        .find(|t| !t.is_empty())?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(interp)))
}

/// The simulated TEE's measurement of a launch: SHA-384 over the domain
/// `veil-sim-launch-v1`, the launcher's digest, the executable's digest and
/// the interpreter's digest (empty when none), each length-prefixed.
pub fn sim_launch_measurement(launcher: &[u8; 48], program: &ProgramMeasurement) -> [u8; 48] {
    let interp: &[u8] = program.interpreter.as_ref().map_or(&[], |(_, d)| &d[..]);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA384);
    for part in [
        SIM_LAUNCH_DOMAIN,
        &launcher[..],
        &program.executable[..],
        interp,
    ] {
        ctx.update(&(part.len() as u32).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 48];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A remembered digest of the launcher binary, keyed by what changes when the
/// file does.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct CachedDigest {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    sha384: String,
}

impl CachedDigest {
    fn key_of(meta: &std::fs::Metadata) -> (u64, u64, u64, i128, i128) {
        (
            meta.dev(),
            meta.ino(),
            meta.size(),
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        )
    }
}

/// SHA-384 of the running launcher binary.
///
/// Hashing a release binary takes tens of milliseconds, so with `cache_dir`
/// the digest is remembered in `cache_dir/launcher-digest.json`, keyed by
/// device, inode, size, mtime and ctime (any write to the file changes ctime).
/// Only the simulated TEE uses this, and it protects nothing: whoever can
/// write that directory can also read the sim platform key beside it.
pub fn launcher_measurement(cache_dir: Option<&Path>) -> std::io::Result<[u8; 48]> {
    let exe = std::env::current_exe()?;
    let Some(dir) = cache_dir else {
        return veil_provider::measure_file(&exe);
    };
    let meta = std::fs::metadata(&exe)?;
    let key = CachedDigest::key_of(&meta);
    let cache = dir.join("launcher-digest.json");
    if let Ok(bytes) = std::fs::read(&cache) {
        if let Ok(c) = serde_json::from_slice::<CachedDigest>(&bytes) {
            let mut d = [0u8; 48];
            if (c.dev, c.ino, c.size, c.mtime_ns, c.ctime_ns) == key
                && hex::decode_to_slice(&c.sha384, &mut d).is_ok()
            {
                return Ok(d);
            }
        }
    }
    let d = veil_provider::measure_file(&exe)?;
    let entry = CachedDigest {
        dev: key.0,
        ino: key.1,
        size: key.2,
        mtime_ns: key.3,
        ctime_ns: key.4,
        sha384: hex::encode(d),
    };
    // A cache that cannot be written only costs time.
    if std::fs::create_dir_all(dir).is_ok() {
        if let Ok(json) = serde_json::to_vec(&entry) {
            let tmp = dir.join(format!("launcher-digest.{}.tmp", std::process::id()));
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, &cache);
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_are_parsed_like_the_kernel_does() {
        assert_eq!(interpreter_of(b"#!/bin/sh\necho"), Some("/bin/sh".into()));
        assert_eq!(
            interpreter_of(b"#! /usr/bin/env python3\n"),
            Some("/usr/bin/env".into())
        );
        assert_eq!(
            interpreter_of(b"#!\t/bin/bash -e"),
            Some("/bin/bash".into())
        );
        assert_eq!(interpreter_of(b"\x7fELF"), None);
        assert_eq!(interpreter_of(b"#!\n"), None);
        assert_eq!(interpreter_of(b""), None);
    }

    #[test]
    fn scripts_are_measured_with_their_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let m = measure_program(&script).unwrap();
        assert_eq!(m.interpreter.as_ref().unwrap().0, Path::new("/bin/sh"));
        let claims = m.runtime_claims();
        assert_eq!(claims.len(), 2);
        assert_eq!(claims["executable"].len(), 96);

        // A changed script changes the claims and the sim measurement.
        let launcher = [7u8; 48];
        let before = sim_launch_measurement(&launcher, &m);
        std::fs::write(&script, "#!/bin/sh\necho bye\n").unwrap();
        let m2 = measure_program(&script).unwrap();
        assert_ne!(m.executable, m2.executable);
        assert_ne!(before, sim_launch_measurement(&launcher, &m2));
        // So does another launcher.
        assert_ne!(before, sim_launch_measurement(&[8u8; 48], &m));
    }

    #[test]
    fn non_executables_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("data");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = measure_program(&f).unwrap_err().to_string();
        assert!(e.contains("not executable"), "{e}");
        let e = measure_program(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = resolve_program("bin/x").unwrap_err().to_string();
        assert!(e.contains("absolute"), "{e}");
        assert!(resolve_program("sh").unwrap().is_absolute());
    }

    #[test]
    fn the_launcher_digest_cache_is_keyed_by_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = launcher_measurement(Some(dir.path())).unwrap();
        assert!(dir.path().join("launcher-digest.json").exists());
        let b = launcher_measurement(Some(dir.path())).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, launcher_measurement(None).unwrap());
        // A stale entry (other inode) is not used.
        let mut c: CachedDigest = serde_json::from_slice(
            &std::fs::read(dir.path().join("launcher-digest.json")).unwrap(),
        )
        .unwrap();
        c.ino ^= 1;
        c.sha384 = hex::encode([0u8; 48]);
        std::fs::write(
            dir.path().join("launcher-digest.json"),
            serde_json::to_vec(&c).unwrap(),
        )
        .unwrap();
        assert_eq!(launcher_measurement(Some(dir.path())).unwrap(), a);
    }
}
