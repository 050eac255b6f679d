//! The few calls into the OS that the standard library does not wrap: memory
//! that never reaches a core dump, signal masks, and the steps the forked
//! child takes before `execve`. Every `unsafe` block of the crate is here.
#![allow(unsafe_code)]

use std::convert::Infallible;
use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::ptr::NonNull;
use std::sync::Arc;

use libc::{c_char, c_int};

/// Makes the launcher non-dumpable: no core dump, and other processes of the
/// same user cannot ptrace it or read its memory and `/proc/PID/environ`.
pub fn harden() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes plain integers and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling (single) thread into a new mount namespace whose
/// mounts do not propagate to the host: what the launcher mounts there
/// (protected volumes) only it and the program it starts see.
pub fn private_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare takes a flag word; mount with null source, type and
    // data and a valid path only changes propagation of the new namespace.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether the launcher runs with an effective uid of 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Real uid and gid, for a user namespace's identity mapping.
pub fn ids() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// The launcher's pid.
pub fn pid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

fn page_size() -> usize {
    // SAFETY: sysconf with a valid name touches no memory.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|p| *p > 0).unwrap_or(4096)
}

/// An anonymous private mapping, excluded from core dumps, locked where the
/// memlock limit allows, and not shared with children's copies beyond fork's
/// copy-on-write.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value; access goes through
// `&self`/`&mut self`, so the usual borrow rules make sharing sound.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only gives shared reads.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps at least `len` bytes (rounded up to whole pages), zero-filled.
    pub fn new(len: usize) -> io::Result<Self> {
        let page = page_size();
        let len = len
            .checked_add(page - 1)
            .map(|l| l / page * page)
            .ok_or_else(|| io::Error::other("secret buffer too large"))?;
        // SAFETY: an anonymous private mapping at an address the kernel picks;
        // no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let Some(ptr) = NonNull::new(p.cast::<u8>()) else {
            return Err(io::Error::other("mmap returned a null mapping"));
        };
        let map = Mapping { ptr, len };
        // SAFETY: ptr..ptr+len is exactly the mapping made above.
        if unsafe { libc::madvise(p, len, libc::MADV_DONTDUMP) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Locking may exceed RLIMIT_MEMLOCK for an unprivileged user; the
        // launcher is non-dumpable and the memory is still excluded from dumps.
        // SAFETY: as above.
        let _ = unsafe { libc::mlock(p, len) };
        Ok(map)
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes for as long as self lives, and
        // was initialized (zero-filled) by the kernel.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The start address (for tests that look it up in `/proc/self/smaps`).
    #[cfg(test)]
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let p = self.ptr.as_ptr().cast::<libc::c_void>();
        // SAFETY: unlocking and unmapping exactly the mapping this value owns;
        // nothing refers to it after drop.
        unsafe {
            libc::munlock(p, self.len);
            libc::munmap(p, self.len);
        }
    }
}

/// A set of signals.
pub struct SignalSet(libc::sigset_t);

impl std::fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalSet")
    }
}

impl SignalSet {
    /// The set of `signals`.
    pub fn of(signals: &[c_int]) -> Self {
        // SAFETY: sigset_t is plain data; sigemptyset initializes it and
        // sigaddset only writes inside it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            SignalSet(set)
        }
    }

    /// Blocks these signals for the calling thread; returns the previous mask.
    pub fn block(&self) -> io::Result<SignalSet> {
        // SAFETY: both pointers refer to valid sigset_t values.
        unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, &mut old);
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
            Ok(SignalSet(old))
        }
    }

    /// Makes this set the calling thread's mask.
    pub fn set_as_mask(&self) {
        // SAFETY: a valid sigset_t; the old mask is not wanted.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }

    /// Waits for one of these (blocked) signals; returns its number and
    /// `si_code`.
    pub fn wait(&self) -> io::Result<(c_int, c_int)> {
        loop {
            // SAFETY: a valid sigset_t and a siginfo_t the call fills in.
            let (r, code) = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let r = libc::sigwaitinfo(&self.0, &mut info);
                (r, info.si_code)
            };
            if r >= 0 {
                return Ok((r, code));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Sends `signal` to process `pid`.
pub fn kill(pid: u32, signal: c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the launcher the reaper of the program's orphaned descendants, so
/// that background processes the program leaves behind can be found and
/// ended when it exits.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What `reap` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// A child ended: its pid and raw wait status.
    Ended(u32, c_int),
    /// Children remain, none has ended.
    Running,
    /// No children at all.
    NoChildren,
}

/// Reaps one ended child, if any, without blocking.
pub fn reap() -> io::Result<Reaped> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: waitpid writes the status into a valid c_int.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r > 0 {
            return Ok(Reaped::Ended(r as u32, status));
        }
        if r == 0 {
            return Ok(Reaped::Running);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(Reaped::NoChildren),
            _ => return Err(e),
        }
    }
}

/// Sets an extended attribute marking a placeholder the launcher created
/// (best effort: file systems without user xattrs just do not get it).
pub fn mark_placeholder(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(p) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid NUL-terminated strings and a one-byte value.
    unsafe {
        libc::setxattr(
            p.as_ptr(),
            PLACEHOLDER_XATTR.as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        ) == 0
    }
}

/// Whether `path` carries the placeholder mark.
pub fn is_placeholder(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(p) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut v = [0u8; 1];
    // SAFETY: valid NUL-terminated strings and a buffer of the given size.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            PLACEHOLDER_XATTR.as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n == 1 && v[0] == b'1'
}

const PLACEHOLDER_XATTR: &std::ffi::CStr = c"user.veil.placeholder";

/// `flock(fd, op)`, retried on EINTR.
pub fn flock(fd: &impl std::os::fd::AsRawFd, op: c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor the caller owns.
        if unsafe { libc::flock(fd.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A step the child takes between fork and exec; reported when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// Restore the signal mask.
    SignalMask = 1,
    /// Die with the launcher.
    ParentDeath,
    /// Enter new user and/or mount namespaces.
    Unshare,
    /// Write `/proc/self/setgroups`, `uid_map`, `gid_map`.
    IdMap,
    /// Make the mount tree private.
    PrivateMounts,
    /// Mount the tmpfs.
    Tmpfs,
    /// Write a released file into the tmpfs.
    WriteFile,
    /// Bind a released file over its declared path.
    Bind,
    /// Detach the staging mount.
    Detach,
    /// `execve`.
    Exec,
}

impl Step {
    /// The step from its wire byte.
    pub fn from_byte(b: u8) -> Option<Step> {
        use Step::*;
        [
            SignalMask,
            ParentDeath,
            Unshare,
            IdMap,
            PrivateMounts,
            Tmpfs,
            WriteFile,
            Bind,
            Detach,
            Exec,
        ]
        .into_iter()
        .find(|s| *s as u8 == b)
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Step::SignalMask => "restoring the signal mask",
            Step::ParentDeath => "tying the program to the launcher",
            Step::Unshare => "creating a private mount namespace",
            Step::IdMap => "mapping the user namespace's ids",
            Step::PrivateMounts => "making mounts private",
            Step::Tmpfs => "mounting the in-memory tmpfs",
            Step::WriteFile => "writing a file into the tmpfs",
            Step::Bind => "bind-mounting a file over its declared path",
            Step::Detach => "detaching the staging mount",
            Step::Exec => "executing the program",
        }
    }
}

/// One released file, as the child places it.
#[derive(Debug)]
pub struct FileMount {
    /// Where it is written inside the tmpfs.
    pub staged: CString,
    /// The declared path it is bound over.
    pub target: CString,
    /// Its mode.
    pub mode: u32,
    /// Its content (in a [`crate::SecretBuf`] that outlives the spawn).
    pub content: *const u8,
    /// Content length.
    pub len: usize,
}

/// The private in-memory mount.
#[derive(Debug)]
pub struct MountPlan {
    /// The empty directory the tmpfs is mounted on, then detached from.
    pub staging: CString,
    /// tmpfs options (with `noswap`).
    pub tmpfs_opts: CString,
    /// Options to retry with when the kernel lacks `noswap` and swap is off.
    pub tmpfs_fallback: Option<CString>,
    /// The files.
    pub files: Vec<FileMount>,
}

/// Everything the child needs between fork and exec, prepared before the
/// fork so that the child allocates nothing.
#[derive(Debug)]
pub struct ChildPlan {
    /// The launcher's pid (the child dies with it).
    pub parent: libc::pid_t,
    /// `uid_map` and `gid_map` contents, when a user namespace is needed.
    pub userns: Option<(Vec<u8>, Vec<u8>)>,
    /// The private mount, when there are files.
    pub mounts: Option<MountPlan>,
    /// The program.
    pub program: CString,
    /// argv, NULL-terminated, pointing into a buffer that outlives the spawn.
    pub argv: Vec<*const c_char>,
    /// envp, likewise.
    pub envp: Vec<*const c_char>,
    /// Where a failing step is reported: [step, errno as i32 LE].
    pub err_fd: c_int,
}

// SAFETY: the raw pointers refer to buffers that the caller of `spawn_child`
// keeps alive and unchanged until `spawn` returns; the plan is only read.
unsafe impl Send for ChildPlan {}
// SAFETY: as above.
unsafe impl Sync for ChildPlan {}

fn errno() -> c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(step: Step, r: c_int) -> Result<(), (Step, c_int)> {
    if r < 0 {
        Err((step, errno()))
    } else {
        Ok(())
    }
}

impl ChildPlan {
    /// Runs in the forked child. Only async-signal-safe system calls on
    /// memory prepared before the fork: no allocation, no locks.
    ///
    /// # Safety
    /// Must be called only in the child between fork and exec, with every
    /// pointer in `self` still valid.
    unsafe fn run(&self) -> Result<Infallible, (Step, c_int)> {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        check(
            Step::SignalMask,
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()),
        )?;
        check(
            Step::ParentDeath,
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0),
        )?;
        if libc::getppid() != self.parent {
            return Err((Step::ParentDeath, libc::ESRCH));
        }
        if let Some(m) = &self.mounts {
            let flags = if self.userns.is_some() {
                libc::CLONE_NEWUSER | libc::CLONE_NEWNS
            } else {
                libc::CLONE_NEWNS
            };
            check(Step::Unshare, libc::unshare(flags))?;
            if let Some((uid_map, gid_map)) = &self.userns {
                // A non-dumpable process's /proc/self files belong to root, so
                // the id maps can only be written while dumpable; the window is
                // these three writes, and execve decides dumpability afresh.
                check(Step::IdMap, libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0))?;
                let r = write_proc(c"/proc/self/setgroups", b"deny")
                    .and_then(|()| write_proc(c"/proc/self/uid_map", uid_map))
                    .and_then(|()| write_proc(c"/proc/self/gid_map", gid_map));
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
                r?;
            }
            check(
                Step::PrivateMounts,
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ),
            )?;
            let tmpfs = |opts: &CString| {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    m.staging.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    opts.as_ptr().cast(),
                )
            };
            if tmpfs(&m.tmpfs_opts) < 0 {
                let e = errno();
                match &m.tmpfs_fallback {
                    Some(fallback) if e == libc::EINVAL => check(Step::Tmpfs, tmpfs(fallback))?,
                    _ => return Err((Step::Tmpfs, e)),
                }
            }
            for f in &m.files {
                let fd = libc::open(
                    f.staged.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o600 as libc::c_uint,
                );
                check(Step::WriteFile, fd)?;
                let mut off = 0usize;
                while off < f.len {
                    let n = libc::write(fd, f.content.add(off).cast(), f.len - off);
                    if n < 0 {
                        let e = errno();
                        if e == libc::EINTR {
                            continue;
                        }
                        libc::close(fd);
                        return Err((Step::WriteFile, e));
                    }
                    off += n as usize;
                }
                let r = libc::fchmod(fd, f.mode as libc::mode_t);
                libc::close(fd);
                check(Step::WriteFile, r)?;
                check(
                    Step::Bind,
                    libc::mount(
                        f.staged.as_ptr(),
                        f.target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ),
                )?;
            }
            check(
                Step::Detach,
                libc::umount2(m.staging.as_ptr(), libc::MNT_DETACH),
            )?;
        }
        libc::execve(
            self.program.as_ptr(),
            self.argv.as_ptr(),
            self.envp.as_ptr(),
        );
        Err((Step::Exec, errno()))
    }
}

/// Writes `data` to a `/proc/self` file in one `write`, as the id-map files require.
unsafe fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> Result<(), (Step, c_int)> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    check(Step::IdMap, fd)?;
    let n = libc::write(fd, data.as_ptr().cast(), data.len());
    let e = errno();
    libc::close(fd);
    if n < 0 || n as usize != data.len() {
        return Err((Step::IdMap, if n < 0 { e } else { libc::EIO }));
    }
    Ok(())
}

/// Spawns `cmd`, running `plan` in the child (it ends with `execve` of the
/// plan's program, argv and envp; `cmd`'s own program and environment are
/// not used).
pub fn spawn_child(cmd: &mut Command, plan: Arc<ChildPlan>) -> io::Result<Child> {
    // SAFETY: the closure runs in the forked child; `ChildPlan::run` makes only
    // async-signal-safe system calls on memory prepared before the fork, and
    // the report is one `write` of a stack buffer. The buffers the plan points
    // into outlive this call (the caller guarantees it; see `ChildPlan`).
    unsafe {
        cmd.pre_exec(move || match plan.run() {
            Ok(never) => match never {},
            Err((step, e)) => {
                let mut msg = [0u8; 5];
                msg[0] = step as u8;
                msg[1..].copy_from_slice(&e.to_le_bytes());
                libc::write(plan.err_fd, msg.as_ptr().cast(), msg.len());
                Err(io::Error::from_raw_os_error(e))
            }
        });
    }
    cmd.spawn()
}
