//! The few system calls std does not wrap: the process's ids, `statvfs`,
//! a lazy unmount, and SIGINT/SIGTERM handlers. The crate's only `unsafe`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// The real uid and gid of this process.
pub(crate) fn ids() -> (u32, u32) {
    // SAFETY: getuid and getgid take no arguments, touch no memory of ours
    // and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// What `statvfs` says about a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FsStats {
    pub(crate) blocks: u64,
    pub(crate) bfree: u64,
    pub(crate) bavail: u64,
    pub(crate) files: u64,
    pub(crate) ffree: u64,
    pub(crate) bsize: u32,
    pub(crate) frsize: u32,
}

/// `statvfs(2)` of the file system holding `path`.
pub(crate) fn statvfs(path: &Path) -> io::Result<FsStats> {
    let p = c_path(path)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `p` is a NUL-terminated string that outlives the call; `st`
    // points to writable memory the size of a `statvfs`, which the kernel
    // fills on success (and which is all-zero, a valid value, otherwise).
    let rc = unsafe { libc::statvfs(p.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialized above and filled by a successful call.
    let st = unsafe { st.assume_init() };
    Ok(FsStats {
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        files: st.f_files,
        ffree: st.f_ffree,
        bsize: u32::try_from(st.f_bsize).unwrap_or(u32::MAX),
        frsize: u32::try_from(st.f_frsize).unwrap_or(u32::MAX),
    })
}

/// Detaches the mount at `path` now; the kernel tears it down when its last
/// user goes (`umount2(MNT_DETACH)`).
pub(crate) fn detach(path: &Path) -> io::Result<()> {
    let p = c_path(path)?;
    // SAFETY: `p` is a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The last SIGINT or SIGTERM caught (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: one atomic store.
    CAUGHT.store(sig, Ordering::SeqCst);
}

/// SIGINT and SIGTERM caught instead of ending the process, while this
/// value lives; the previous handlers come back when it is dropped.
#[derive(Debug)]
pub(crate) struct Signals {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl Signals {
    pub(crate) const WATCHED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

    pub(crate) fn install() -> io::Result<Signals> {
        CAUGHT.store(0, Ordering::SeqCst);
        let mut s = Signals { old: Vec::new() };
        for sig in Self::WATCHED {
            // SAFETY: an all-zero sigaction is a valid value (no handler, empty
            // mask, no flags); we then set a handler of the right type, an
            // empty mask through sigemptyset, and pass valid pointers to
            // sigaction for the new and the old disposition.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                let handler: extern "C" fn(libc::c_int) = on_signal;
                sa.sa_sigaction = handler as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &sa, &mut old) != 0 {
                    return Err(io::Error::last_os_error());
                }
                s.old.push((sig, old));
            }
        }
        Ok(s)
    }

    /// The signal caught since the last call, if any.
    pub(crate) fn take(&self) -> Option<i32> {
        match CAUGHT.swap(0, Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for (sig, old) in self.old.drain(..) {
            // SAFETY: `old` is the disposition sigaction returned for `sig`.
            unsafe {
                libc::sigaction(sig, &old, std::ptr::null_mut());
            }
        }
    }
}
