//! Starting the program: files on a private tmpfs, then `execve`.
//!
//! When the policy releases files, the child enters a new mount namespace
//! (as root) or new user and mount namespaces (otherwise, mapping the
//! launcher's own uid and gid), mounts a tmpfs with `noswap` on an empty
//! staging directory, writes each file there with its mode, bind-mounts it
//! over its declared path and detaches the staging mount. Only the program
//! (and its children) see the files; nothing reaches a disk.
//!
//! A bind mount needs something to mount over: where a declared path does not
//! exist, the launcher creates an empty placeholder file (and missing parent
//! directories) on the host, and removes them when the program ends. They
//! never hold content.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use crate::sys::{self, ChildPlan, FileMount, MountPlan, SignalSet, Step};
use crate::{ExecPlan, LaunchError};

/// Signals forwarded to the program.
pub(crate) const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The signals the launcher blocks and waits for: the forwarded ones and
/// SIGCHLD.
pub(crate) fn watched_signals() -> SignalSet {
    let mut s = FORWARDED.to_vec();
    s.push(libc::SIGCHLD);
    SignalSet::of(&s)
}

/// A started program.
#[derive(Debug)]
pub struct Running {
    pub(crate) child: Child,
    pub(crate) watched: SignalSet,
    pub(crate) old_mask: SignalSet,
    pub(crate) cleanup: Cleanup,
}

impl Running {
    /// The program's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// What the launcher created (or shares) on the host, removed when the
/// program ends.
#[derive(Debug, Default)]
pub(crate) struct Cleanup {
    /// Every declared path with a shared `flock` held on it while the program
    /// runs, and whether it is a placeholder (ours, or another launcher's
    /// that we share).
    targets: Vec<(PathBuf, std::fs::File, bool)>,
    /// Directories created for placeholders (or found marked as such),
    /// outermost first.
    dirs: Vec<PathBuf>,
    staging: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (path, file, placeholder) in self.targets.drain(..).rev() {
            // Remove a placeholder only when no other launcher holds it, and
            // only if the path still names the same (empty) file.
            if placeholder
                && sys::flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_ok()
                && same_file(&path, &file)
            {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a placeholder the launcher created");
                }
            }
        }
        for d in self.dirs.drain(..).rev() {
            // Fails harmlessly while another launcher still uses it.
            let _ = std::fs::remove_dir(d);
        }
        if let Some(s) = self.staging.take() {
            let _ = std::fs::remove_dir(s);
        }
    }
}

fn same_file(path: &Path, file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn cstring(p: &Path) -> Result<CString, LaunchError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| LaunchError::Protocol(format!("path {} contains a NUL byte", p.display())))
}

/// Whether any swap device or file is active.
fn swap_active() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .map_or(true, |s| s.lines().skip(1).any(|l| !l.trim().is_empty()))
}

/// Makes sure `target` exists as something a file can be bound over, and
/// holds a shared lock on it while the program runs.
///
/// Two launchers may place a file at the same path (two replicas, an
/// overlapping restart): placeholders carry the `user.veil.placeholder`
/// extended attribute so the second recognizes the first's, each holds a
/// shared `flock`, and only the last one out removes it.
fn prepare_target(target: &Path, cleanup: &mut Cleanup) -> Result<(), LaunchError> {
    let os =
        |what: &str, e: std::io::Error| LaunchError::os(format!("{what} {}", target.display()), e);
    for _ in 0..8 {
        match std::fs::metadata(target) {
            Ok(m) if m.is_dir() => {
                return Err(LaunchError::NotAllowed(format!(
                    "the policy places a file at {}, which is a directory on this host",
                    target.display()
                )))
            }
            Ok(_) => {
                let file = std::fs::File::open(target).map_err(|e| os("opening", e))?;
                sys::flock(&file, libc::LOCK_SH).map_err(|e| os("locking", e))?;
                if !same_file(target, &file) {
                    continue; // removed or replaced meanwhile: look again
                }
                let placeholder = sys::is_placeholder(target);
                if placeholder {
                    let mut marked = Vec::new();
                    let mut dir = target.parent();
                    while let Some(d) = dir.filter(|d| sys::is_placeholder(d)) {
                        marked.push(d.to_owned());
                        dir = d.parent();
                    }
                    cleanup.dirs.extend(marked.into_iter().rev());
                }
                cleanup.targets.push((target.to_owned(), file, placeholder));
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(os("inspecting", e)),
        }
        let mut missing = Vec::new();
        let mut dir = target.parent();
        while let Some(d) = dir {
            if d.exists() {
                break;
            }
            missing.push(d.to_owned());
            dir = d.parent();
        }
        for d in missing.into_iter().rev() {
            match std::fs::DirBuilder::new().mode(0o755).create(&d) {
                Ok(()) => {
                    sys::mark_placeholder(&d);
                    cleanup.dirs.push(d);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(LaunchError::os(
                        format!("creating directory {}", d.display()),
                        e,
                    ))
                }
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
        {
            Ok(file) => {
                sys::mark_placeholder(target);
                sys::flock(&file, libc::LOCK_SH).map_err(|e| os("locking", e))?;
                cleanup.targets.push((target.to_owned(), file, true));
                return Ok(());
            }
            // Another launcher made it, or removed a directory, meanwhile.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound
                ) => {}
            Err(e) => return Err(os("creating the mount point", e)),
        }
    }
    Err(LaunchError::os(
        format!("preparing {}", target.display()),
        std::io::Error::other("it keeps changing under the launcher"),
    ))
}

fn staging_dir() -> Result<PathBuf, LaunchError> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let mut rnd = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rnd).map_err(|_| {
        LaunchError::os(
            "drawing a random name",
            std::io::Error::other("no randomness"),
        )
    })?;
    let dir = base.join(format!(
        "veil-run-{}-{}",
        std::process::id(),
        hex::encode(rnd)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| LaunchError::os(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

fn hint(step: Step) -> &'static str {
    match step {
        Step::Unshare | Step::IdMap => "the launcher needs CAP_SYS_ADMIN (run it as root in the TEE), or unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0); Veil never falls back to writing the files to disk",
        Step::Tmpfs => "the kernel must allow tmpfs mounts in the launcher's namespace, with `noswap` (Linux 6.4+) unless swap is off",
        Step::Bind => "the declared path must be a file the launcher may mount over",
        _ => "see the launcher's documentation (docs/launcher.md)",
    }
}

/// Starts the program of `plan` and returns it running. Blocks the forwarded
/// signals and SIGCHLD in the calling thread until [`crate::supervise`] ends;
/// call it from a single-threaded process (no async runtime running).
pub fn spawn(plan: &ExecPlan) -> Result<Running, LaunchError> {
    let mut cleanup = Cleanup::default();
    let mounts = if plan.files.is_empty() {
        None
    } else {
        let staging = staging_dir()?;
        cleanup.staging = Some(staging.clone());
        let mut files = Vec::with_capacity(plan.files.len());
        let mut total = 0usize;
        for (i, f) in plan.files.iter().enumerate() {
            prepare_target(&f.path, &mut cleanup)?;
            total += f.content.len();
            files.push(FileMount {
                staged: cstring(&staging.join(i.to_string()))?,
                target: cstring(&f.path)?,
                mode: f.mode,
                content: f.content.as_slice().as_ptr(),
                len: f.content.len(),
            });
        }
        // Room for the files and for the program rewriting them.
        let size = total.saturating_mul(2).saturating_add(1 << 20);
        let base = format!("mode=0700,size={size},nr_inodes={}", files.len() + 16);
        let opts = CString::new(format!("{base},noswap"))
            .map_err(|_| LaunchError::Protocol("tmpfs options".into()))?;
        let fallback = if swap_active() {
            None
        } else {
            Some(CString::new(base).map_err(|_| LaunchError::Protocol("tmpfs options".into()))?)
        };
        Some(MountPlan {
            staging: cstring(&staging)?,
            tmpfs_opts: opts,
            tmpfs_fallback: fallback,
            files,
        })
    };
    let userns = if mounts.is_some() && !sys::is_root() {
        let (uid, gid) = sys::ids();
        Some((
            format!("{uid} {uid} 1\n").into_bytes(),
            format!("{gid} {gid} 1\n").into_bytes(),
        ))
    } else {
        None
    };

    let base = plan.strings.as_slice().as_ptr();
    let ptrs = |offs: &[usize]| -> Vec<*const libc::c_char> {
        offs.iter()
            .map(|&o| base.wrapping_add(o).cast::<libc::c_char>())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (err_read, err_write) = sys::pipe().map_err(|e| LaunchError::os("creating a pipe", e))?;
    let child_plan = Arc::new(ChildPlan {
        parent: sys::pid(),
        userns,
        mounts,
        program: cstring(&plan.program)?,
        argv: ptrs(&plan.argv),
        envp: ptrs(&plan.env),
        err_fd: std::os::fd::AsRawFd::as_raw_fd(&err_write),
    });

    let watched = watched_signals();
    let old_mask = watched
        .block()
        .map_err(|e| LaunchError::os("blocking signals", e))?;

    // Orphans of the program become the launcher's, so that none outlives it.
    if let Err(e) = sys::set_child_subreaper() {
        tracing::warn!(error = %e, "cannot become a child subreaper; the program's orphans will not be ended with it");
    }
    let mut cmd = Command::new(&plan.program);
    cmd.env_clear();
    let spawned = sys::spawn_child(&mut cmd, Arc::clone(&child_plan));
    drop(cmd);
    drop(child_plan);
    drop(err_write);
    match spawned {
        Ok(child) => Ok(Running {
            child,
            watched,
            old_mask,
            cleanup,
        }),
        Err(e) => {
            old_mask.set_as_mask();
            let mut report = [0u8; 5];
            let step = match std::fs::File::from(err_read).read_exact(&mut report) {
                Ok(()) => Step::from_byte(report[0]),
                Err(_) => None,
            };
            Err(match step {
                Some(Step::Exec) => LaunchError::Exec {
                    path: plan.program.clone(),
                    source: e,
                },
                Some(step) => LaunchError::Isolation {
                    step: step.name(),
                    source: e,
                    hint: hint(step),
                },
                None => LaunchError::os(format!("starting {}", plan.program.display()), e),
            })
        }
    }
}
