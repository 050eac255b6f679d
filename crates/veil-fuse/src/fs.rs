//! The FUSE operations, on top of [`veil_fs::Volume`]'s path API.
//!
//! Locking: `Shared::ns` (the inode table) is taken for writing by every
//! operation that changes or resolves the namespace (lookup, create, mkdir,
//! unlink, rmdir, rename, open, release, opendir, forget) and for reading by
//! data operations (read, write, getattr, setattr, fsync) and by commits, so
//! that a path resolved from an inode stays valid until the volume call
//! returns, and a commit never lands between the two halves of a rename.
//! The volume has its own lock inside; the order is always ns → volume.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use veil_fs::{EntryKind, FsError, Stat, Volume};

use crate::errno::errno;
use crate::inodes::{Inodes, ROOT};
use crate::sys;

/// Names at the volume's root beginning with this hold files unlinked while
/// open; they are invisible through the mount and removed at the last close
/// (or at the next mount, after a crash).
pub(crate) const ORPHAN_PREFIX: &str = ".veil-fuse-orphan-";
/// Longest name (statfs `namemax`).
const MAX_NAME: usize = 255;
/// Longest volume path.
const MAX_PATH: usize = 4096;
/// Largest file: what the kernel allows on a FUSE mount.
const MAX_FILE: u64 = i64::MAX as u64;
/// Largest read and write request asked of the kernel, and readahead.
pub(crate) const MAX_IO: u32 = 1 << 20;

/// State shared by the FUSE threads, the committer and the mount guard.
pub(crate) struct Shared {
    pub(crate) volume: Arc<Volume>,
    ns: RwLock<Inodes>,
}

impl Shared {
    pub(crate) fn new(volume: Arc<Volume>) -> Shared {
        Shared {
            volume,
            ns: RwLock::new(Inodes::new()),
        }
    }

    fn read_ns(&self) -> RwLockReadGuard<'_, Inodes> {
        self.ns.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_ns(&self) -> RwLockWriteGuard<'_, Inodes> {
        self.ns.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits the volume (every written file durable, then the manifest).
    pub(crate) fn sync(&self) -> Result<[u8; 32], FsError> {
        let _ns = self.read_ns();
        self.volume.sync()
    }

    /// Checkpoints the volume (a no-op when nothing changed since the last
    /// commit: the volume keeps track): metadata and roots become durable,
    /// files being written stay marked dirty (so the next write needs no
    /// write-ahead commit).
    pub(crate) fn checkpoint(&self) -> Result<(), FsError> {
        let _ns = self.read_ns();
        self.volume.checkpoint().map(|_| ())
    }

    /// Removes the files still parked as unlinked-while-open (the mount is
    /// going away: no handle will be closed any more).
    pub(crate) fn drop_orphans(&self) {
        let ns = self.write_ns();
        for hidden in ns.orphans() {
            match self.volume.unlink(&hidden) {
                Ok(()) | Err(FsError::NotFound(_)) => {}
                Err(e) => tracing::warn!(path = %hidden, error = %e, "removing an unlinked file"),
            }
        }
    }
}

/// Removes files a crashed mount left parked under [`ORPHAN_PREFIX`].
pub(crate) fn remove_stale_orphans(volume: &Volume) -> Result<(), FsError> {
    let mut removed = 0usize;
    for (name, st) in volume.list("/")? {
        if name.starts_with(ORPHAN_PREFIX) && st.kind == EntryKind::File {
            volume.unlink(&format!("/{name}"))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "removed files left unlinked-while-open by an earlier mount"
        );
        volume.sync()?;
    }
    Ok(())
}

/// One directory entry of an `opendir` snapshot.
struct DirEnt {
    ino: u64,
    kind: FileType,
    name: String,
}

/// The file system the FUSE session serves.
pub(crate) struct VeilFs {
    shared: Arc<Shared>,
    uid: u32,
    gid: u32,
    ttl: Duration,
    /// Where `statfs` looks (the volume's host directory, when known).
    statfs_dir: PathBuf,
    /// Whether `statfs_dir` is the volume's own directory (free-space checks).
    statfs_is_volume: bool,
    dirs: Mutex<HashMap<u64, Vec<DirEnt>>>,
    next_fh: AtomicU64,
}

type Res<T> = Result<T, Errno>;

fn fail<'a>(op: &'static str, path: &'a str) -> impl Fn(FsError) -> Errno + 'a {
    move |e| errno(op, path, &e)
}

fn time_of(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

fn ns_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn now_ns() -> i64 {
    ns_of(SystemTime::now())
}

fn parent_of(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// A path at the root reserved for files unlinked while open.
fn is_hidden(path: &str) -> bool {
    path.strip_prefix('/')
        .is_some_and(|n| n.starts_with(ORPHAN_PREFIX) && !n.contains('/'))
}

fn hidden_path(ino: u64) -> String {
    format!("/{ORPHAN_PREFIX}{ino}")
}

fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
    }
}

impl VeilFs {
    pub(crate) fn new(
        shared: Arc<Shared>,
        ttl: Duration,
        statfs_dir: PathBuf,
        statfs_is_volume: bool,
    ) -> VeilFs {
        let (uid, gid) = sys::ids();
        VeilFs {
            shared,
            uid,
            gid,
            ttl,
            statfs_dir,
            statfs_is_volume,
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn volume(&self) -> &Volume {
        &self.shared.volume
    }

    fn fh(&self) -> FileHandle {
        FileHandle(self.next_fh.fetch_add(1, Ordering::Relaxed))
    }

    fn attr(&self, ino: u64, st: &Stat) -> FileAttr {
        let t = time_of(st.mtime_ns);
        let (size, nlink) = match st.kind {
            EntryKind::File => (st.len, 1),
            EntryKind::Dir => (0, 2),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: file_type(st.kind),
            perm: (st.mode & 0o7777) as u16,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: self.volume().chunk_size().get(),
            flags: 0,
        }
    }

    /// The volume path of `name` in directory `parent`.
    fn child(ns: &Inodes, parent: INodeNo, name: &OsStr) -> Res<String> {
        let dir = ns.path(parent.0).ok_or(Errno::ENOENT)?;
        let name = name.to_str().ok_or(Errno::from_i32(libc::EILSEQ))?;
        if name.len() > MAX_NAME {
            return Err(Errno::from_i32(libc::ENAMETOOLONG));
        }
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(Errno::EINVAL);
        }
        let path = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        if path.len() > MAX_PATH {
            return Err(Errno::from_i32(libc::ENAMETOOLONG));
        }
        Ok(path)
    }

    /// A path a new entry may take.
    fn new_child(ns: &Inodes, parent: INodeNo, name: &OsStr) -> Res<String> {
        let path = Self::child(ns, parent, name)?;
        if is_hidden(&path) {
            return Err(Errno::EPERM);
        }
        Ok(path)
    }

    fn path(ns: &Inodes, ino: INodeNo) -> Res<String> {
        ns.path(ino.0).map(str::to_owned).ok_or(Errno::ENOENT)
    }

    fn stat(&self, op: &'static str, path: &str) -> Res<Stat> {
        self.volume().stat(path).map_err(fail(op, path))
    }

    /// Refuses a growth from `from` to `to` bytes that cannot fit in the
    /// backing file system (holes are materialized as encrypted zeros).
    fn grow(&self, _op: &'static str, _path: &str, from: u64, to: u64) -> Res<()> {
        if to > from && self.statfs_is_volume {
            if let Ok(st) = sys::statvfs(&self.statfs_dir) {
                let avail = st.bavail.saturating_mul(u64::from(st.frsize));
                if to - from > avail {
                    return Err(Errno::from_i32(libc::ENOSPC));
                }
            }
        }
        Ok(())
    }

    fn do_lookup(&self, parent: INodeNo, name: &OsStr) -> Res<FileAttr> {
        let mut ns = self.shared.write_ns();
        let path = Self::child(&ns, parent, name)?;
        if is_hidden(&path) {
            return Err(Errno::ENOENT);
        }
        let st = self.stat("lookup", &path)?;
        let ino = ns.lookup(&path);
        Ok(self.attr(ino, &st))
    }

    fn do_getattr(&self, ino: INodeNo) -> Res<FileAttr> {
        let ns = self.shared.read_ns();
        let path = Self::path(&ns, ino)?;
        let st = self.stat("getattr", &path)?;
        Ok(self.attr(ino.0, &st))
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        mtime: Option<TimeOrNow>,
    ) -> Res<FileAttr> {
        if uid.is_some_and(|u| u != self.uid) || gid.is_some_and(|g| g != self.gid) {
            return Err(Errno::EPERM);
        }
        let ns = self.shared.read_ns();
        let path = Self::path(&ns, ino)?;
        if let Some(mode) = mode {
            self.volume()
                .chmod(&path, mode & 0o7777)
                .map_err(fail("chmod", &path))?;
        }
        if let Some(size) = size {
            if size > MAX_FILE {
                return Err(Errno::from_i32(libc::EFBIG));
            }
            let st = self.stat("truncate", &path)?;
            if st.kind == EntryKind::Dir {
                return Err(Errno::EISDIR);
            }
            self.grow("truncate", &path, st.len, size)?;
            self.volume()
                .truncate(&path, size)
                .map_err(fail("truncate", &path))?;
        }
        if let Some(t) = mtime {
            let ns_time = match t {
                TimeOrNow::SpecificTime(t) => ns_of(t),
                TimeOrNow::Now => now_ns(),
            };
            self.volume()
                .set_mtime(&path, ns_time)
                .map_err(fail("utimens", &path))?;
        }
        let st = self.stat("setattr", &path)?;
        Ok(self.attr(ino.0, &st))
    }

    fn do_mknod(&self, parent: INodeNo, name: &OsStr, mode: u32, umask: u32) -> Res<FileAttr> {
        let fmt = mode & libc::S_IFMT;
        if fmt != 0 && fmt != libc::S_IFREG {
            // Devices, FIFOs and sockets have no place in the manifest.
            return Err(Errno::EPERM);
        }
        let mut ns = self.shared.write_ns();
        let path = Self::new_child(&ns, parent, name)?;
        self.volume()
            .create(&path, mode & !umask & 0o7777)
            .map_err(fail("mknod", &path))?;
        let st = self.stat("mknod", &path)?;
        let ino = ns.lookup(&path);
        Ok(self.attr(ino, &st))
    }

    fn do_create(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Res<FileAttr> {
        let mut ns = self.shared.write_ns();
        let path = Self::new_child(&ns, parent, name)?;
        match self.volume().create(&path, mode & !umask & 0o7777) {
            Ok(()) => {}
            // Created meanwhile by another opener: open it, unless O_EXCL.
            Err(FsError::AlreadyExists(_)) if flags & libc::O_EXCL == 0 => {
                let st = self.stat("create", &path)?;
                if st.kind == EntryKind::Dir {
                    return Err(Errno::EISDIR);
                }
                if flags & libc::O_TRUNC != 0 {
                    self.volume()
                        .truncate(&path, 0)
                        .map_err(fail("create", &path))?;
                }
            }
            Err(e) => return Err(errno("create", &path, &e)),
        }
        let st = self.stat("create", &path)?;
        let ino = ns.lookup(&path);
        ns.open(ino);
        Ok(self.attr(ino, &st))
    }

    fn do_mkdir(&self, parent: INodeNo, name: &OsStr, mode: u32, umask: u32) -> Res<FileAttr> {
        let mut ns = self.shared.write_ns();
        let path = Self::new_child(&ns, parent, name)?;
        self.volume()
            .mkdir(&path, mode & !umask & 0o7777)
            .map_err(fail("mkdir", &path))?;
        let st = self.stat("mkdir", &path)?;
        let ino = ns.lookup(&path);
        Ok(self.attr(ino, &st))
    }

    fn do_unlink(&self, parent: INodeNo, name: &OsStr) -> Res<()> {
        let mut ns = self.shared.write_ns();
        let path = Self::child(&ns, parent, name)?;
        if is_hidden(&path) {
            return Err(Errno::ENOENT);
        }
        let st = self.stat("unlink", &path)?;
        if st.kind == EntryKind::Dir {
            return Err(Errno::EISDIR);
        }
        match ns.ino_of(&path) {
            Some(ino) if ns.opens_of(&path) > 0 => {
                // Still open: park it where nobody sees it until the last close.
                let hidden = hidden_path(ino);
                self.volume()
                    .rename(&path, &hidden)
                    .map_err(fail("unlink", &path))?;
                ns.orphaned(&path, &hidden);
            }
            _ => {
                self.volume().unlink(&path).map_err(fail("unlink", &path))?;
                ns.unlinked(&path);
            }
        }
        Ok(())
    }

    fn do_rmdir(&self, parent: INodeNo, name: &OsStr) -> Res<()> {
        let mut ns = self.shared.write_ns();
        let path = Self::child(&ns, parent, name)?;
        if is_hidden(&path) {
            return Err(Errno::ENOENT);
        }
        self.volume().rmdir(&path).map_err(fail("rmdir", &path))?;
        ns.unlinked(&path);
        Ok(())
    }

    fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Res<()> {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not supported.
            return Err(Errno::EINVAL);
        }
        let mut ns = self.shared.write_ns();
        let from = Self::child(&ns, parent, name)?;
        let to = Self::new_child(&ns, newparent, newname)?;
        if is_hidden(&from) {
            return Err(Errno::ENOENT);
        }
        let src = self.stat("rename", &from)?;
        let dst = match self.volume().stat(&to) {
            Ok(st) => Some(st),
            Err(FsError::NotFound(_)) => None,
            Err(e) => return Err(errno("rename", &to, &e)),
        };
        if dst.is_some() && flags.contains(RenameFlags::RENAME_NOREPLACE) {
            return Err(Errno::EEXIST);
        }
        let open_target = match (dst, ns.ino_of(&to)) {
            (Some(d), Some(ino))
                if from != to
                    && d.kind == EntryKind::File
                    && src.kind == EntryKind::File
                    && ns.opens_of(&to) > 0 =>
            {
                Some(hidden_path(ino))
            }
            _ => None,
        };
        if let Some(hidden) = &open_target {
            // The replaced file is still open: park it, then move.
            self.volume()
                .rename(&to, hidden)
                .map_err(fail("rename", &to))?;
            if let Err(e) = self.volume().rename(&from, &to) {
                if let Err(back) = self.volume().rename(hidden, &to) {
                    tracing::error!(path = %to, error = %back, "restoring a file after a failed rename");
                }
                return Err(errno("rename", &from, &e));
            }
            ns.orphaned(&to, hidden);
        } else {
            self.volume()
                .rename(&from, &to)
                .map_err(fail("rename", &from))?;
        }
        ns.renamed(&from, &to);
        Ok(())
    }

    fn do_open(&self, ino: INodeNo) -> Res<FileHandle> {
        let mut ns = self.shared.write_ns();
        let path = Self::path(&ns, ino)?;
        let st = self.stat("open", &path)?;
        if st.kind == EntryKind::Dir {
            return Err(Errno::EISDIR);
        }
        ns.open(ino.0);
        Ok(self.fh())
    }

    /// Reads into this FUSE thread's reusable buffers (no allocation per
    /// request) and hands the plaintext to `reply`.
    fn do_read(&self, ino: INodeNo, offset: u64, size: u32, reply: ReplyData) {
        thread_local! {
            static BUFS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        // The namespace stays read-locked through the read, as for every
        // operation on a path (a rename cannot move it meanwhile).
        let ns = self.shared.read_ns();
        let path = match Self::path(&ns, ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        BUFS.with(|b| {
            let (scratch, out) = &mut *b.borrow_mut();
            match self
                .volume()
                .read_into(&path, offset, size as usize, scratch, out)
            {
                Ok(()) => reply.data(out),
                Err(e) => reply.error(fail("read", &path)(e)),
            }
        });
    }

    /// Writes at the offset the kernel chose (for `O_APPEND` it is the end
    /// of file as this mount reported it, under the kernel's inode lock).
    fn do_write(&self, ino: INodeNo, offset: u64, data: &[u8]) -> Res<u32> {
        let ns = self.shared.read_ns();
        let path = Self::path(&ns, ino)?;
        let n = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        if offset
            .checked_add(u64::from(n))
            .is_none_or(|end| end > MAX_FILE)
        {
            return Err(Errno::from_i32(libc::EFBIG));
        }
        let len = self.stat("write", &path)?.len;
        self.grow("write", &path, len, offset)?;
        let written = self
            .volume()
            .write(&path, offset, data)
            .map_err(fail("write", &path))?;
        u32::try_from(written).map_err(|_| Errno::EIO)
    }

    fn do_release(&self, ino: INodeNo) {
        let mut ns = self.shared.write_ns();
        if let Some(hidden) = ns.release(ino.0) {
            match self.volume().unlink(&hidden) {
                Ok(()) => {}
                Err(e) => {
                    errno("release", &hidden, &e);
                }
            }
        }
    }

    fn do_fsync(&self, ino: INodeNo) -> Res<()> {
        let ns = self.shared.read_ns();
        let path = Self::path(&ns, ino)?;
        self.volume().fsync(&path).map_err(fail("fsync", &path))?;
        Ok(())
    }

    fn do_opendir(&self, ino: INodeNo) -> Res<FileHandle> {
        let mut ns = self.shared.write_ns();
        let path = Self::path(&ns, ino)?;
        let children = self.volume().list(&path).map_err(fail("opendir", &path))?;
        let parent = if path == "/" {
            ROOT
        } else {
            ns.ino_for(parent_of(&path))
        };
        let mut ents = Vec::with_capacity(children.len() + 2);
        ents.push(DirEnt {
            ino: ino.0,
            kind: FileType::Directory,
            name: ".".to_owned(),
        });
        ents.push(DirEnt {
            ino: parent,
            kind: FileType::Directory,
            name: "..".to_owned(),
        });
        for (name, st) in children {
            let child = if path == "/" {
                format!("/{name}")
            } else {
                format!("{path}/{name}")
            };
            if is_hidden(&child) {
                continue;
            }
            ents.push(DirEnt {
                ino: ns.ino_for(&child),
                kind: file_type(st.kind),
                name,
            });
        }
        drop(ns);
        let fh = self.fh();
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh.0, ents);
        Ok(fh)
    }

    fn do_statfs(&self) -> Res<sys::FsStats> {
        sys::statvfs(&self.statfs_dir).map_err(|e| {
            tracing::warn!(dir = %self.statfs_dir.display(), error = %e, "statvfs failed");
            Errno::EIO
        })
    }

    fn do_access(&self, req: &Request, ino: INodeNo, mask: AccessFlags) -> Res<()> {
        let ns = self.shared.read_ns();
        let path = Self::path(&ns, ino)?;
        let st = self.stat("access", &path)?;
        let want = mask & (AccessFlags::R_OK | AccessFlags::W_OK | AccessFlags::X_OK);
        if want.is_empty() {
            return Ok(());
        }
        let mode = st.mode;
        let bits = if req.uid() == 0 {
            // Root may read and write anything, and execute what has an x bit.
            let x = if st.kind == EntryKind::Dir || mode & 0o111 != 0 {
                1
            } else {
                0
            };
            6 | x
        } else if req.uid() == self.uid {
            (mode >> 6) & 7
        } else if req.gid() == self.gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        let need = (if want.contains(AccessFlags::R_OK) {
            4
        } else {
            0
        }) | (if want.contains(AccessFlags::W_OK) {
            2
        } else {
            0
        }) | (if want.contains(AccessFlags::X_OK) {
            1
        } else {
            0
        });
        if bits & need == need {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }
}

impl Filesystem for VeilFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_write(MAX_IO) {
            let _ = config.set_max_write(max);
        }
        if let Err(max) = config.set_max_readahead(MAX_IO) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        tracing::debug!(?config, "FUSE session initialized");
        Ok(())
    }

    fn destroy(&mut self) {
        self.shared.drop_orphans();
        if let Err(e) = self.shared.sync() {
            tracing::error!(error = %e, "committing the volume at the end of the FUSE session");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.do_lookup(parent, name) {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.write_ns().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.do_getattr(ino) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino, mode, uid, gid, size, mtime) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        match self.do_mknod(parent, name, mode, umask) {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.do_mkdir(parent, name, mode, umask) {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_unlink(parent, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_rmdir(parent, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.do_rename(parent, name, newparent, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.do_open(ino) {
            // The page cache stays valid across opens: every change goes
            // through this mount.
            Ok(fh) => reply.opened(fh, FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.do_read(ino, offset, size, reply);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.do_write(ino, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes reach the volume when they are made; commits happen on
        // fsync, periodically and at unmount.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.do_release(ino);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.do_fsync(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.do_opendir(ino) {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ents) = dirs.get(&fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in ents.iter().enumerate().skip(start) {
            if reply.add(INodeNo(e.ino), i as u64 + 1, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.shared.sync() {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(errno("fsyncdir", "/", &e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.do_statfs() {
            Ok(s) => reply.statfs(
                s.blocks,
                s.bfree,
                s.bavail,
                s.files,
                s.ffree,
                s.bsize,
                MAX_NAME as u32,
                s.frsize,
            ),
            Err(e) => reply.error(e),
        }
    }

    // No ioctl is supported (a terminal probe such as TCGETS gets ENOTTY,
    // as on any regular file).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::from_i32(libc::ENOTTY));
    }

    // Volumes keep no extended attributes: reads find none (what programs
    // such as `cp -a` and the kernel's capability check expect), writes are
    // not supported.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::NO_XATTR);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::NO_XATTR);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.do_access(req, ino, mask) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.do_create(parent, name, mode, umask, flags) {
            Ok(attr) => reply.created(
                &self.ttl,
                &attr,
                Generation(0),
                self.fh(),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(e),
        }
    }
}
