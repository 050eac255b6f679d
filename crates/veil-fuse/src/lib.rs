//! # veil-fuse: a Veil volume as a mounted file system
//!
//! Unmodified programs inside the TEE see plain files under a mountpoint; on
//! the host's disk they are the sealed records of a [`veil_fs::Volume`]
//! (`docs/spec/file-shield.md`). This crate is the FUSE layer only: every
//! byte, name and commit goes through the volume's path API.
//!
//! * [`mount`] mounts in the background and returns a [`Mounted`] guard;
//!   [`Mounted::unmount`] (and dropping the guard) commits the volume and
//!   unmounts, detaching lazily if the mount is still busy.
//! * [`mount_foreground`] (for `veil fs mount`) blocks until SIGINT or
//!   SIGTERM arrives or the file system is unmounted from outside, then does
//!   the same.
//!
//! How it maps the volume:
//!
//! * **Inodes.** The kernel speaks inode numbers, the volume paths; an inode
//!   table follows renames (a directory's descendants move with it), unlinks
//!   and rmdirs. Numbers are never reused within a mount (generation 0).
//!   A file unlinked while open is parked under a hidden name at the root
//!   until its last close, so programs that unlink open files keep working.
//! * **Errors.** One function maps [`veil_fs::FsError`] to errno. Every
//!   authentication or rollback failure is `EIO` and is logged with the path
//!   and the reason; no unauthenticated byte is ever returned.
//! * **Durability.** `fsync` makes the file durable and commits the manifest
//!   ([`veil_fs::Volume::fsync`]); `fsyncdir`, unmount and (by default) a
//!   periodic committer commit everything ([`veil_fs::Volume::sync`]).
//! * **Attributes.** Owner and group are the mounting process's; `chown` to
//!   anyone else is `EPERM`. Only regular files and directories exist (no
//!   symlinks, hard links, devices or xattrs: the manifest has no place for
//!   them). atime and ctime read as mtime.
//! * **Speed.** Requests and readahead up to 1 MiB, attribute and entry TTLs
//!   of 1 s, the page cache kept across opens, several FUSE threads. The
//!   volume itself is one lock: requests are correct under concurrency, not
//!   parallel inside it.
//!
//! Mounting needs root (or `CAP_SYS_ADMIN`) and `/dev/fuse`; no `fusermount`
//! and no libfuse are used.

mod errno;
mod fs;
mod inodes;
mod sys;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use veil_fs::{FsError, Volume};

use crate::fs::{Shared, VeilFs};

/// How to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountOptions {
    /// FUSE request threads (at least 1).
    pub threads: usize,
    /// How long the kernel may cache attributes and names.
    pub ttl: Duration,
    /// Commit the volume this often while something changed (`None`: only
    /// on `fsync`, `fsyncdir` and unmount).
    pub commit_interval: Option<Duration>,
    /// Mount read-only.
    pub read_only: bool,
    /// Let other users than the mounting one in (the kernel still checks
    /// permission bits).
    pub allow_other: bool,
    /// The volume's host directory: `statfs` reports its file system, and a
    /// growth larger than its free space is refused up front with `ENOSPC`.
    /// Without it `statfs` reports the mountpoint's parent's file system.
    pub volume_dir: Option<PathBuf>,
    /// The source name shown in the mount table.
    pub fs_name: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            threads: 4,
            ttl: Duration::from_secs(1),
            commit_interval: Some(Duration::from_secs(5)),
            read_only: false,
            allow_other: false,
            volume_dir: None,
            fs_name: "veil".to_owned(),
        }
    }
}

/// Why mounting, unmounting or committing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// The mountpoint cannot be used.
    #[error("{}: cannot mount here: {reason}", path.display())]
    Mountpoint {
        /// The mountpoint.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The kernel refused the mount, or the FUSE handshake failed.
    #[error("mounting at {}: {source} (mounting needs root or CAP_SYS_ADMIN, and /dev/fuse)", path.display())]
    Mount {
        /// The mountpoint.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Neither a clean nor a lazy unmount worked.
    #[error("unmounting {}: {source}", path.display())]
    Unmount {
        /// The mountpoint.
        path: PathBuf,
        /// The OS error of the lazy unmount.
        #[source]
        source: io::Error,
    },
    /// The volume could not be prepared or committed.
    #[error("the volume: {0}")]
    Volume(#[from] FsError),
    /// SIGINT/SIGTERM handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] io::Error),
}

/// Why [`Mounted::wait_for_signal`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// This signal (SIGINT or SIGTERM) arrived; the volume was committed
    /// and unmounted.
    Signal(i32),
    /// The file system was unmounted from outside (`umount`); the volume
    /// was committed.
    Unmounted,
}

/// Mounts `volume` at `mountpoint` (an existing directory) and serves it
/// from background threads until the returned guard is unmounted or
/// dropped.
///
/// Files a crashed earlier mount left parked (unlinked while open) are
/// removed from the volume first.
pub fn mount(
    volume: Arc<Volume>,
    mountpoint: &Path,
    options: &MountOptions,
) -> Result<Mounted, MountError> {
    let bad = |reason: String| MountError::Mountpoint {
        path: mountpoint.to_owned(),
        reason,
    };
    let md = std::fs::metadata(mountpoint).map_err(|e| bad(e.to_string()))?;
    if !md.is_dir() {
        return Err(bad("not a directory".into()));
    }
    if options.threads == 0 {
        return Err(bad("at least one FUSE thread is needed".into()));
    }
    let mnt = mountpoint.canonicalize().map_err(|e| bad(e.to_string()))?;
    fs::remove_stale_orphans(&volume)?;
    if !options.read_only {
        let removed = volume.collect_garbage()?;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed objects no commit referenced (an earlier crash)"
            );
        }
    }

    let volume_dir = volume.dir().to_owned();
    let shared = Arc::new(Shared::new(volume));
    let (statfs_dir, statfs_is_volume) = match &options.volume_dir {
        Some(d) => (d.clone(), true),
        None => (volume_dir, true),
    };
    let vfs = VeilFs::new(shared.clone(), options.ttl, statfs_dir, statfs_is_volume);

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(options.fs_name.clone()),
        fuser::MountOption::Subtype("veil".to_owned()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        if options.read_only {
            fuser::MountOption::RO
        } else {
            fuser::MountOption::RW
        },
    ];
    config.acl = if options.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.n_threads = Some(options.threads);
    config.clone_fd = true;

    let session = fuser::spawn_mount(vfs, &mnt, &config).map_err(|source| MountError::Mount {
        path: mnt.clone(),
        source,
    })?;
    raise_readahead(&mnt);
    let mut mounted = Mounted {
        mountpoint: mnt,
        shared: shared.clone(),
        session: Some(session),
        committer: None,
    };
    if let Some(every) = options.commit_interval {
        match Committer::start(shared, every) {
            Ok(c) => mounted.committer = Some(c),
            Err(e) => tracing::warn!(error = %e, "no periodic commits: cannot start the committer"),
        }
    }
    tracing::info!(mountpoint = %mounted.mountpoint.display(), "volume mounted");
    Ok(mounted)
}

/// Raises the kernel's readahead for this mount to 1 MiB (the FUSE default
/// is 128 KiB): fewer, larger reads for sequential work. Best effort: it
/// needs root and sysfs.
fn raise_readahead(mnt: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mnt) else {
        return;
    };
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, "1024") {
        tracing::debug!(knob, error = %e, "cannot raise the mount's readahead");
    }
}

/// Mounts, then blocks until SIGINT or SIGTERM arrives or the file system is
/// unmounted from outside; then commits and unmounts. For `veil fs mount`.
///
/// SIGINT and SIGTERM are caught from before the mount exists, so one that
/// arrives while mounting still ends in a clean unmount. `on_mounted` runs
/// once the mount is up (to tell the user).
pub fn mount_foreground(
    volume: Arc<Volume>,
    mountpoint: &Path,
    options: &MountOptions,
    on_mounted: &mut dyn FnMut(&Mounted),
) -> Result<Ended, MountError> {
    let signals = sys::Signals::install().map_err(MountError::Signals)?;
    let mounted = mount(volume, mountpoint, options)?;
    on_mounted(&mounted);
    mounted.wait_with(signals)
}

/// A mounted volume. Dropping it commits and unmounts (errors are logged);
/// [`Mounted::unmount`] does the same and reports them.
pub struct Mounted {
    mountpoint: PathBuf,
    shared: Arc<Shared>,
    session: Option<fuser::BackgroundSession>,
    committer: Option<Committer>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("mountpoint", &self.mountpoint)
            .field("mounted", &self.is_mounted())
            .finish_non_exhaustive()
    }
}

impl Mounted {
    /// Where the volume is mounted (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The mounted volume.
    pub fn volume(&self) -> &Arc<Volume> {
        &self.shared.volume
    }

    /// Whether the file system is still being served (false once it was
    /// unmounted from outside).
    pub fn is_mounted(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Commits the volume now; returns the freshness tag.
    pub fn sync(&self) -> Result<[u8; 32], MountError> {
        Ok(self.shared.sync()?)
    }

    /// Commits the volume and unmounts; if the mount is busy, detaches it
    /// lazily (the kernel ends it when its last user goes).
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.shutdown()
    }

    /// Blocks until SIGINT or SIGTERM arrives (caught while waiting) or the
    /// file system is unmounted from outside; then commits and unmounts.
    pub fn wait_for_signal(self) -> Result<Ended, MountError> {
        let signals = sys::Signals::install().map_err(MountError::Signals)?;
        self.wait_with(signals)
    }

    fn wait_with(mut self, signals: sys::Signals) -> Result<Ended, MountError> {
        let ended = loop {
            if let Some(sig) = signals.take() {
                tracing::info!(signal = sig, "signal received: unmounting");
                break Ended::Signal(sig);
            }
            if !self.is_mounted() {
                tracing::info!("unmounted from outside");
                break Ended::Unmounted;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Signals stay caught until the volume is committed.
        let done = self.shutdown();
        drop(signals);
        done.map(|()| ended)
    }

    fn shutdown(&mut self) -> Result<(), MountError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if let Some(c) = self.committer.take() {
            c.stop();
        }
        // Commit first, so the data is durable even if the unmount ends up
        // lazy and the process goes before the kernel lets go.
        let first = self.shared.sync();
        let unmounted = match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(
                    mountpoint = %self.mountpoint.display(),
                    error = %e,
                    "clean unmount failed: detaching lazily"
                );
                match sys::detach(&self.mountpoint) {
                    Ok(()) => Ok(()),
                    // Not a mount point any more: it is gone already.
                    Err(d) if d.raw_os_error() == Some(libc::EINVAL) => Ok(()),
                    Err(source) => Err(MountError::Unmount {
                        path: self.mountpoint.clone(),
                        source,
                    }),
                }
            }
        };
        // After a clean unmount nothing can change any more: this commit is
        // the last word.
        let last = self.shared.sync();
        unmounted?;
        first?;
        last?;
        tracing::info!(mountpoint = %self.mountpoint.display(), "volume unmounted");
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(mountpoint = %self.mountpoint.display(), error = %e, "unmounting");
        }
    }
}

/// Commits the volume periodically while something changed.
struct Committer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Committer {
    fn start(shared: Arc<Shared>, every: Duration) -> io::Result<Committer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("veil-fuse-commit".to_owned())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(e) = shared.checkpoint() {
                        tracing::error!(error = %e, "periodic commit of the volume failed");
                    }
                }
            })?;
        Ok(Committer { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the committer thread panicked");
        }
    }
}
