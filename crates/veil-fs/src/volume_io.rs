//! The I/O layer: a volume directory on the host, read and written through
//! the format core. Paths are the volume's own (`/`, `/a/b`); the host sees
//! `veil.volume`, `veil.manifest` and `objects/<hex file id>`.
//!
//! Durability and crash consistency (spec §5):
//! * object files are written in place, one record per `pwrite`;
//! * the manifest is replaced atomically (temporary file, `fsync`, `rename`,
//!   `fsync` of the directory) by [`Volume::sync`], [`Volume::fsync`] and
//!   before the first write to a file the committed manifest lists as clean
//!   (the write-ahead *dirty* mark);
//! * after an unclean shutdown a dirty file is checked record by record, a
//!   torn or half-extended tail is cut back to the last consistent record,
//!   and its root is recomputed; clean files must match their root exactly.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::file::{FileCipher, FileHeader, RecordLayout, FILE_HEADER_LEN, RECORD_OVERHEAD};
use crate::keys::{FileId, VolumeKey, VolumeKeys};
use crate::manifest::{check_path, freshness_tag, parent, Entry, EntryKind, Manifest};
use crate::volume::{ChunkSize, Mode, VolumeHeader, VOLUME_HEADER_LEN};
use crate::FsError;

/// File name of the volume header.
pub const HEADER_FILE: &str = "veil.volume";
/// File name of the manifest.
pub const MANIFEST_FILE: &str = "veil.manifest";
/// Directory of the protected files.
pub const OBJECTS_DIR: &str = "objects";
const SEAL_LEN: usize = RECORD_OVERHEAD;
/// Bytes per `pwrite`/`pread` batch in streaming import and export.
const BATCH: usize = 4 << 20;

fn open_writes(len: u64, cs: usize) -> u64 {
    len.div_ceil(cs as u64).max(1)
}

/// What `stat` says about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// File or directory.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Plaintext length.
    pub len: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
}

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The volume path (or the host file) concerned.
    pub path: String,
    /// What is wrong.
    pub what: String,
}

/// An open file's cached state.
struct Open {
    obj: File,
    cipher: FileCipher,
    /// nonce ‖ tag of every record, in order.
    seals: Vec<[u8; SEAL_LEN]>,
}

struct Inner {
    manifest: Manifest,
    /// The manifest as last committed.
    sealed: Vec<u8>,
    /// The committed manifest's entries' dirty flags, by file id.
    committed_clean: std::collections::HashSet<FileId>,
    files: HashMap<FileId, Open>,
    /// Objects to delete once a commit no longer references them.
    doomed: Vec<FileId>,
    changed: bool,
    /// Told the freshness tag after every commit.
    hook: Option<CommitHook>,
}

/// A function told every new freshness tag (see [`Volume::on_commit`]).
pub type CommitHook = Box<dyn Fn([u8; 32]) + Send + Sync>;

/// An open volume.
pub struct Volume {
    dir: PathBuf,
    header_bytes: [u8; VOLUME_HEADER_LEN],
    keys: VolumeKeys,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("dir", &self.dir)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn root_of(file_id: &FileId, seals: &[[u8; SEAL_LEN]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&file_id.0);
    ctx.update(&(seals.len() as u64).to_be_bytes());
    for s in seals {
        ctx.update(s);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| FsError::io(format!("creating {}", tmp.display()), &e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| FsError::io(format!("writing {}", tmp.display()), &e))?;
    std::fs::rename(&tmp, &target)
        .map_err(|e| FsError::io(format!("replacing {}", target.display()), &e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::io(format!("syncing {}", dir.display()), &e))
}

impl Volume {
    /// Creates a new, empty volume in `dir` (which must be missing or empty).
    pub fn init(
        dir: &Path,
        key: &VolumeKey,
        mode: Mode,
        chunk: ChunkSize,
    ) -> Result<Volume, FsError> {
        if dir.exists() {
            let mut it = std::fs::read_dir(dir)
                .map_err(|e| FsError::io(format!("reading {}", dir.display()), &e))?;
            if it.next().is_some() {
                return Err(FsError::AlreadyExists(format!(
                    "{} (not empty; a volume is made in a new or empty directory)",
                    dir.display()
                )));
            }
        }
        std::fs::create_dir_all(dir.join(OBJECTS_DIR))
            .map_err(|e| FsError::io(format!("creating {}", dir.display()), &e))?;
        let header = VolumeHeader::new(mode, chunk)?;
        let keys = header.keys(key)?;
        let header_bytes = header.encode(&keys);
        write_atomic(dir, HEADER_FILE, &header_bytes)?;
        let manifest = Manifest::new(now_ns());
        let sealed = manifest.seal(&keys)?;
        write_atomic(dir, MANIFEST_FILE, &sealed)?;
        Ok(Volume {
            dir: dir.to_owned(),
            header_bytes,
            keys,
            inner: Mutex::new(Inner {
                manifest,
                sealed,
                committed_clean: Default::default(),
                files: HashMap::new(),
                doomed: Vec::new(),
                changed: false,
                hook: None,
            }),
        })
    }

    /// The freshness tag of the volume in `dir` as it is on disk, without
    /// its key (what a launcher states before it attests).
    pub fn tag_on_disk(dir: &Path) -> Result<Option<[u8; 32]>, FsError> {
        let h = match std::fs::read(dir.join(HEADER_FILE)) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::io(format!("reading {}", dir.display()), &e)),
        };
        let m = std::fs::read(dir.join(MANIFEST_FILE))
            .map_err(|e| FsError::io(format!("reading the manifest in {}", dir.display()), &e))?;
        Ok(Some(freshness_tag(&h, &m)))
    }

    /// Opens the volume in `dir` with `key`; recovers files that were being
    /// written when it was last closed uncleanly.
    pub fn open(dir: &Path, key: &VolumeKey) -> Result<Volume, FsError> {
        let hb = std::fs::read(dir.join(HEADER_FILE))
            .map_err(|e| FsError::io(format!("reading {}/{HEADER_FILE}", dir.display()), &e))?;
        let (_, keys) = VolumeHeader::decode(&hb, key)?;
        let mut header_bytes = [0u8; VOLUME_HEADER_LEN];
        header_bytes.copy_from_slice(&hb);
        let sealed = std::fs::read(dir.join(MANIFEST_FILE))
            .map_err(|e| FsError::io(format!("reading {}/{MANIFEST_FILE}", dir.display()), &e))?;
        let manifest = Manifest::open(&sealed, &keys)?;
        let committed_clean = manifest
            .entries
            .values()
            .filter(|e| e.kind == EntryKind::File && !e.dirty)
            .map(|e| e.file_id)
            .collect();
        let v = Volume {
            dir: dir.to_owned(),
            header_bytes,
            keys,
            inner: Mutex::new(Inner {
                manifest,
                sealed,
                committed_clean,
                files: HashMap::new(),
                doomed: Vec::new(),
                changed: false,
                hook: None,
            }),
        };
        v.recover()?;
        Ok(v)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn object_path(&self, id: &FileId) -> PathBuf {
        self.dir.join(OBJECTS_DIR).join(id.to_string())
    }

    /// Dirty files (being written at an unclean shutdown): cut a torn or
    /// half-extended tail back, recompute length and root.
    fn recover(&self) -> Result<(), FsError> {
        let mut inner = self.lock();
        let dirty: Vec<(String, FileId, u64)> = inner
            .manifest
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File && e.dirty)
            .map(|(p, e)| (p.clone(), e.file_id, e.len))
            .collect();
        for (path, id, committed_len) in dirty {
            let open = self.recover_file(&path, id, committed_len)?;
            let len = self.plain_len(&open)?;
            if let Some(e) = inner.manifest.entries.get_mut(&path) {
                e.len = len;
                e.root = root_of(&id, &open.seals);
            }
            inner.files.insert(id, open);
            inner.changed = true;
        }
        Ok(())
    }

    fn plain_len(&self, open: &Open) -> Result<u64, FsError> {
        let len = open
            .obj
            .metadata()
            .map_err(|e| FsError::io("stat of an object", &e))?
            .len();
        Ok(RecordLayout::of(len, self.keys.chunk_size())?.plaintext_len)
    }

    /// Recovers a file that was being written at an unclean shutdown, to
    /// the first of: its current layout if every record authenticates; the
    /// layout of its last committed length (a crash while it grew); the
    /// longest run of authentic records, the last one re-sealed as last (a
    /// crash while it shrank or mid-append). Nothing unauthenticated is kept.
    fn recover_file(&self, path: &str, id: FileId, committed_len: u64) -> Result<Open, FsError> {
        let in_file = |e: FsError| FsError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        };
        let p = self.object_path(&id);
        let obj = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .map_err(|e| in_file(FsError::io(format!("opening {}", p.display()), &e)))?;
        let mut open = Open {
            cipher: FileCipher::new(&self.keys, id)?,
            obj,
            seals: Vec::new(),
        };
        let mut head = [0u8; FILE_HEADER_LEN];
        open.obj
            .read_exact_at(&mut head, 0)
            .map_err(|e| in_file(FsError::io("reading the file header", &e)))?;
        FileHeader::decode(&head, &self.keys, Some(&id)).map_err(in_file)?;
        let chunk = self.keys.chunk_size();
        let cs = chunk.get() as u64;
        let size = open
            .obj
            .metadata()
            .map_err(|e| in_file(FsError::io("stat", &e)))?
            .len();
        // (a) and (b): whole layouts.
        let mut candidates = Vec::new();
        if let Ok(l) = RecordLayout::of(size, chunk) {
            candidates.push(l.plaintext_len);
        }
        candidates.push(committed_len);
        for len in candidates {
            if let Some(seals) = self.authentic_layout(&open, len) {
                let n = seals.len() as u64;
                let end = RecordLayout::offset(n - 1, chunk)
                    + (if len == 0 { 0 } else { len - (n - 1) * cs })
                    + RECORD_OVERHEAD as u64;
                if end <= size {
                    open.obj
                        .set_len(end)
                        .map_err(|e| in_file(FsError::io("cutting a torn tail", &e)))?;
                    open.seals = seals;
                    return Ok(open);
                }
            }
        }
        // (c): the longest run of authentic full records.
        let full = chunk.bytes() + RECORD_OVERHEAD;
        let mut plains: Option<Vec<u8>> = None;
        let mut i = 0u64;
        loop {
            let off = RecordLayout::offset(i, chunk);
            if off + full as u64 > size {
                break;
            }
            let mut rec = vec![0u8; full];
            if open.obj.read_exact_at(&mut rec, off).is_err() {
                break;
            }
            let seal = seal_of(&rec);
            match open.cipher.open(i, false, &mut rec) {
                Ok(plain) => {
                    plains = Some(plain.to_vec());
                    open.seals.push(seal);
                    i += 1;
                }
                Err(_) => break,
            }
        }
        let Some(last_plain) = plains else {
            return Err(in_file(FsError::BadRecord {
                index: 0,
                reason: "no authentic record after an unclean shutdown",
            }));
        };
        let last = i - 1;
        open.seals.truncate(last as usize);
        self.put_record(&mut open, path, last, true, &last_plain)?;
        open.obj
            .set_len(RecordLayout::offset(last + 1, chunk))
            .map_err(|e| in_file(FsError::io("cutting a torn tail", &e)))?;
        Ok(open)
    }

    /// The seals of a file of plaintext length `len`, if every record of
    /// that layout authenticates.
    fn authentic_layout(&self, open: &Open, len: u64) -> Option<Vec<[u8; SEAL_LEN]>> {
        let chunk = self.keys.chunk_size();
        let cs = chunk.get() as u64;
        let n = if len == 0 { 1 } else { len.div_ceil(cs) };
        let mut seals = Vec::with_capacity(n as usize);
        for i in 0..n {
            let plain = if i + 1 == n { len - i * cs } else { cs };
            let mut rec = vec![0u8; plain as usize + RECORD_OVERHEAD];
            open.obj
                .read_exact_at(&mut rec, RecordLayout::offset(i, chunk))
                .ok()?;
            let seal = seal_of(&rec);
            open.cipher.open(i, i + 1 == n, &mut rec).ok()?;
            seals.push(seal);
        }
        Some(seals)
    }

    /// The freshness tag of the last commit.
    pub fn tag(&self) -> [u8; 32] {
        freshness_tag(&self.header_bytes, &self.lock().sealed)
    }

    /// The manifest generation of the last commit.
    pub fn generation(&self) -> u64 {
        self.lock().manifest.generation
    }

    /// The volume's mode.
    pub fn mode(&self) -> Mode {
        self.keys.mode()
    }

    /// The volume's chunk size.
    pub fn chunk_size(&self) -> ChunkSize {
        self.keys.chunk_size()
    }

    /// The volume's directory on the host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes objects no committed entry references (left by a crash
    /// before a commit, or by an interrupted import). Call when the volume
    /// is opened for writing; returns how many were removed.
    pub fn collect_garbage(&self) -> Result<usize, FsError> {
        let inner = self.lock();
        let live: std::collections::HashSet<String> = inner
            .manifest
            .entries
            .values()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.file_id.to_string())
            .chain(inner.files.keys().map(|id| id.to_string()))
            .collect();
        let dir = self.dir.join(OBJECTS_DIR);
        let mut removed = 0;
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| FsError::io(format!("listing {}", dir.display()), &e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_object = name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if is_object && !live.contains(&name) && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Calls `hook` with the new freshness tag after every commit (sync,
    /// fsync, checkpoint, write-ahead marks), under the volume's lock: it
    /// must be quick (send the tag to another thread). The launcher uses it
    /// to keep the CAS's tag current.
    pub fn on_commit(&self, hook: CommitHook) {
        self.lock().hook = Some(hook);
    }

    /// Commits pending changes (metadata, lengths, roots) without fsyncing
    /// file content or marking written files clean: cheap enough to run
    /// periodically, and files being written need no new write-ahead mark.
    /// After an unclean shutdown those files are recovered as dirty ones.
    pub fn checkpoint(&self) -> Result<[u8; 32], FsError> {
        let mut inner = self.lock();
        if inner.changed {
            self.commit(&mut inner)?;
        }
        Ok(freshness_tag(&self.header_bytes, &inner.sealed))
    }

    /// What is at `path`.
    pub fn stat(&self, path: &str) -> Result<Stat, FsError> {
        let inner = self.lock();
        let e = inner
            .manifest
            .entries
            .get(path)
            .ok_or_else(|| FsError::NotFound(path.to_owned()))?;
        Ok(stat_of(e))
    }

    /// The children of directory `path`, by name.
    pub fn list(&self, path: &str) -> Result<Vec<(String, Stat)>, FsError> {
        let inner = self.lock();
        dir_entry(&inner.manifest, path)?;
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        Ok(inner
            .manifest
            .entries
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.len() > prefix.len() && !p[prefix.len()..].contains('/'))
            .map(|(p, e)| (p[prefix.len()..].to_owned(), stat_of(e)))
            .collect())
    }

    /// Every path of the volume, in order.
    pub fn walk(&self) -> Vec<(String, Stat)> {
        self.lock()
            .manifest
            .entries
            .iter()
            .map(|(p, e)| (p.clone(), stat_of(e)))
            .collect()
    }

    fn new_entry_check(m: &Manifest, path: &str) -> Result<(), FsError> {
        check_path(path)?;
        if path == "/" || m.entries.contains_key(path) {
            return Err(FsError::AlreadyExists(path.to_owned()));
        }
        dir_entry(m, parent(path))?;
        Ok(())
    }

    /// Makes directory `path`.
    pub fn mkdir(&self, path: &str, mode: u32) -> Result<(), FsError> {
        let mut inner = self.lock();
        Self::new_entry_check(&inner.manifest, path)?;
        inner
            .manifest
            .entries
            .insert(path.to_owned(), Entry::dir(mode & 0o7777, now_ns()));
        inner.changed = true;
        Ok(())
    }

    /// Creates an empty file at `path`.
    pub fn create(&self, path: &str, mode: u32) -> Result<(), FsError> {
        let mut inner = self.lock();
        Self::new_entry_check(&inner.manifest, path)?;
        let id = FileId::random()?;
        let cipher = FileCipher::new(&self.keys, id)?;
        let bytes = cipher.seal_file(&[])?;
        let p = self.object_path(&id);
        let obj = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| FsError::io(format!("creating {}", p.display()), &e))?;
        obj.write_all_at(&bytes, 0)
            .map_err(|e| FsError::io(format!("writing {}", p.display()), &e))?;
        let seals = vec![seal_of(&bytes[FILE_HEADER_LEN..])];
        let root = root_of(&id, &seals);
        inner.manifest.entries.insert(
            path.to_owned(),
            Entry {
                kind: EntryKind::File,
                // New in this session: no committed manifest lists it yet, so
                // no write-ahead mark is needed.
                dirty: true,
                mode: mode & 0o7777,
                file_id: id,
                len: 0,
                writes: 1,
                mtime_ns: now_ns(),
                root,
            },
        );
        inner.files.insert(id, Open { obj, cipher, seals });
        inner.changed = true;
        Ok(())
    }

    /// Removes file `path`.
    pub fn unlink(&self, path: &str) -> Result<(), FsError> {
        let mut inner = self.lock();
        let e = file_entry(&inner.manifest, path)?.clone();
        inner.manifest.entries.remove(path);
        inner.files.remove(&e.file_id);
        inner.doomed.push(e.file_id);
        inner.changed = true;
        Ok(())
    }

    /// Removes empty directory `path`.
    pub fn rmdir(&self, path: &str) -> Result<(), FsError> {
        let mut inner = self.lock();
        if path == "/" {
            return Err(FsError::NotEmpty("/".into()));
        }
        dir_entry(&inner.manifest, path)?;
        let prefix = format!("{path}/");
        if inner
            .manifest
            .entries
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
        {
            return Err(FsError::NotEmpty(path.to_owned()));
        }
        inner.manifest.entries.remove(path);
        inner.changed = true;
        Ok(())
    }

    /// Renames `from` to `to` (replacing a file, or an empty directory).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        let mut inner = self.lock();
        check_path(to)?;
        let src = inner
            .manifest
            .entries
            .get(from)
            .cloned()
            .ok_or_else(|| FsError::NotFound(from.to_owned()))?;
        if from == "/" || to == "/" || to.starts_with(&format!("{from}/")) {
            return Err(FsError::Invalid(format!(
                "cannot move {from} to {to} (the root, or into itself)"
            )));
        }
        if from == to {
            return Ok(());
        }
        dir_entry(&inner.manifest, parent(to))?;
        if let Some(dst) = inner.manifest.entries.get(to).cloned() {
            match (src.kind, dst.kind) {
                (EntryKind::File, EntryKind::File) => {
                    inner.files.remove(&dst.file_id);
                    inner.doomed.push(dst.file_id);
                }
                (EntryKind::Dir, EntryKind::Dir) => {
                    let prefix = format!("{to}/");
                    if inner
                        .manifest
                        .entries
                        .range(prefix.clone()..)
                        .next()
                        .is_some_and(|(p, _)| p.starts_with(&prefix))
                    {
                        return Err(FsError::NotEmpty(to.to_owned()));
                    }
                }
                (EntryKind::File, EntryKind::Dir) => {
                    return Err(FsError::IsADirectory(to.to_owned()))
                }
                (EntryKind::Dir, EntryKind::File) => {
                    return Err(FsError::NotADirectory(to.to_owned()))
                }
            }
            inner.manifest.entries.remove(to);
        }
        let prefix = format!("{from}/");
        let moved: Vec<String> = inner
            .manifest
            .entries
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        inner.manifest.entries.remove(from);
        inner.manifest.entries.insert(to.to_owned(), src);
        for p in moved {
            if let Some(e) = inner.manifest.entries.remove(&p) {
                let new = format!("{to}/{}", &p[prefix.len()..]);
                inner.manifest.entries.insert(new, e);
            }
        }
        inner.changed = true;
        Ok(())
    }

    /// Sets the permission bits of `path`.
    pub fn chmod(&self, path: &str, mode: u32) -> Result<(), FsError> {
        let mut inner = self.lock();
        let e = inner
            .manifest
            .entries
            .get_mut(path)
            .ok_or_else(|| FsError::NotFound(path.to_owned()))?;
        e.mode = mode & 0o7777;
        inner.changed = true;
        Ok(())
    }

    /// Sets the modification time of `path`.
    pub fn set_mtime(&self, path: &str, mtime_ns: i64) -> Result<(), FsError> {
        let mut inner = self.lock();
        let e = inner
            .manifest
            .entries
            .get_mut(path)
            .ok_or_else(|| FsError::NotFound(path.to_owned()))?;
        e.mtime_ns = mtime_ns;
        inner.changed = true;
        Ok(())
    }

    /// Opens (and caches) the object of a file, checking a clean file
    /// against its committed root.
    fn open_file<'a>(&self, inner: &'a mut Inner, path: &str) -> Result<&'a mut Open, FsError> {
        let e = file_entry(&inner.manifest, path)?.clone();
        match inner.files.entry(e.file_id) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => Ok(v.insert(self.load(path, &e)?)),
        }
    }

    fn load(&self, path: &str, e: &Entry) -> Result<Open, FsError> {
        let not_current = |detail: String| FsError::NotCurrent {
            path: path.to_owned(),
            detail,
        };
        let p = self.object_path(&e.file_id);
        let obj = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .map_err(|err| {
                not_current(format!(
                    "its object {} cannot be opened: {err} (deleted or renamed by the host?)",
                    p.display()
                ))
            })?;
        let mut head = [0u8; FILE_HEADER_LEN];
        obj.read_exact_at(&mut head, 0)
            .map_err(|_| not_current("its object is shorter than a header (truncated)".into()))?;
        FileHeader::decode(&head, &self.keys, Some(&e.file_id)).map_err(|err| FsError::InFile {
            path: path.to_owned(),
            source: Box::new(err),
        })?;
        let len = obj
            .metadata()
            .map_err(|err| FsError::io(format!("stat of {}", p.display()), &err))?
            .len();
        let chunk = self.keys.chunk_size();
        let layout = RecordLayout::of(len, chunk).map_err(|err| FsError::InFile {
            path: path.to_owned(),
            source: Box::new(err),
        })?;
        let mut seals = Vec::with_capacity(layout.records as usize);
        let record_len = |i: u64| {
            if i + 1 == layout.records {
                layout.last_len + RECORD_OVERHEAD
            } else {
                chunk.bytes() + RECORD_OVERHEAD
            }
        };
        for i in 0..layout.records {
            let off = RecordLayout::offset(i, chunk);
            let rl = record_len(i);
            let mut nonce = [0u8; 12];
            let mut tag = [0u8; 16];
            obj.read_exact_at(&mut nonce, off)
                .and_then(|()| obj.read_exact_at(&mut tag, off + rl as u64 - 16))
                .map_err(|err| FsError::io(format!("reading {}", p.display()), &err))?;
            let mut s = [0u8; SEAL_LEN];
            s[..12].copy_from_slice(&nonce);
            s[12..].copy_from_slice(&tag);
            seals.push(s);
        }
        if !e.dirty {
            let root = root_of(&e.file_id, &seals);
            if root != e.root || layout.plaintext_len != e.len {
                return Err(not_current(format!(
                    "its content is not the version the manifest committed to (length {} vs {}): rolled back or replaced by the host",
                    layout.plaintext_len, e.len
                )));
            }
        }
        Ok(Open {
            obj,
            cipher: FileCipher::new(&self.keys, e.file_id)?,
            seals,
        })
    }

    /// Reads up to `size` bytes of file `path` at `offset`. Every byte
    /// returned was authenticated.
    pub fn read(&self, path: &str, offset: u64, size: usize) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        self.read_into(path, offset, size, &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    /// [`Volume::read`] into `out` (cleared first), using `scratch` for the
    /// ciphertext: callers that read a lot reuse both and allocate nothing.
    pub fn read_into(
        &self,
        path: &str,
        offset: u64,
        size: usize,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), FsError> {
        out.clear();
        let mut inner = self.lock();
        let len = file_entry(&inner.manifest, path)?.len;
        if offset >= len || size == 0 {
            return Ok(());
        }
        let end = len.min(offset.saturating_add(size as u64));
        let chunk = self.keys.chunk_size();
        let cs = chunk.get() as u64;
        let (first, last) = (offset / cs, (end - 1) / cs);
        let open = self.open_file(&mut inner, path)?;
        let records = open.seals.len() as u64;
        let span_start = RecordLayout::offset(first, chunk);
        let span_end = if last + 1 == records {
            FILE_HEADER_LEN as u64
                + last * (cs + RECORD_OVERHEAD as u64)
                + (len - last * cs)
                + RECORD_OVERHEAD as u64
        } else {
            RecordLayout::offset(last + 1, chunk)
        };
        let need = (span_end - span_start) as usize;
        if scratch.len() < need {
            scratch.resize(need, 0);
        }
        let buf = &mut scratch[..need];
        open.obj
            .read_exact_at(buf, span_start)
            .map_err(|e| FsError::InFile {
                path: path.to_owned(),
                source: Box::new(FsError::io("reading records", &e)),
            })?;
        out.reserve((end - offset) as usize);
        let full = chunk.bytes() + RECORD_OVERHEAD;
        for (k, rec) in buf.chunks_mut(full).enumerate() {
            let i = first + k as u64;
            let plain = open_checked(open, path, i, records, rec)?;
            let base = i * cs;
            let from = offset.saturating_sub(base) as usize;
            let to = ((end - base) as usize).min(plain.len());
            if from < to {
                out.extend_from_slice(&plain[from..to]);
            }
        }
        Ok(())
    }

    /// Marks a file dirty in a committed manifest before its object changes
    /// (write-ahead), unless it already is.
    fn mark_dirty(&self, inner: &mut Inner, path: &str) -> Result<(), FsError> {
        let e = file_entry(&inner.manifest, path)?.clone();
        if inner.committed_clean.contains(&e.file_id) {
            if let Some(m) = inner.manifest.entries.get_mut(path) {
                m.dirty = true;
            }
            self.commit(inner)?;
        } else if !e.dirty {
            if let Some(m) = inner.manifest.entries.get_mut(path) {
                m.dirty = true;
            }
        }
        Ok(())
    }

    /// Reads record `i` of an open file as plaintext (checked).
    fn read_record(&self, open: &Open, path: &str, i: u64, len: u64) -> Result<Vec<u8>, FsError> {
        let chunk = self.keys.chunk_size();
        let cs = chunk.get() as u64;
        let records = open.seals.len() as u64;
        let plain_len = if i + 1 == records { len - i * cs } else { cs };
        let mut rec = vec![0u8; plain_len as usize + RECORD_OVERHEAD];
        open.obj
            .read_exact_at(&mut rec, RecordLayout::offset(i, chunk))
            .map_err(|e| FsError::io(format!("reading {path}"), &e))?;
        Ok(open_checked(open, path, i, records, &mut rec)?.to_vec())
    }

    /// Seals and writes record `i`.
    fn put_record(
        &self,
        open: &mut Open,
        path: &str,
        i: u64,
        last: bool,
        plain: &[u8],
    ) -> Result<(), FsError> {
        let mut rec = Vec::with_capacity(plain.len() + RECORD_OVERHEAD);
        open.cipher.seal(i, last, plain, &mut rec)?;
        open.obj
            .write_all_at(&rec, RecordLayout::offset(i, self.keys.chunk_size()))
            .map_err(|e| FsError::io(format!("writing {path}"), &e))?;
        let s = seal_of(&rec);
        let idx = i as usize;
        if idx < open.seals.len() {
            open.seals[idx] = s;
        } else {
            open.seals.push(s);
        }
        Ok(())
    }

    /// Writes `data` to file `path` at `offset` (a hole before it reads as
    /// zeros). Returns the bytes written.
    pub fn write(&self, path: &str, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        if data.is_empty() {
            return Ok(0);
        }
        let mut inner = self.lock();
        self.mark_dirty(&mut inner, path)?;
        let old_len = file_entry(&inner.manifest, path)?.len;
        let new_len = old_len.max(offset + data.len() as u64);
        self.resize_and_write(&mut inner, path, old_len, new_len, offset, data)?;
        if let Some(e) = inner.manifest.entries.get_mut(path) {
            e.len = new_len;
            e.mtime_ns = now_ns();
            e.writes += 1;
        }
        inner.changed = true;
        Ok(data.len())
    }

    /// Sets the length of file `path` (growing with zeros).
    pub fn truncate(&self, path: &str, new_len: u64) -> Result<(), FsError> {
        let mut inner = self.lock();
        let old_len = file_entry(&inner.manifest, path)?.len;
        if old_len == new_len {
            return Ok(());
        }
        self.mark_dirty(&mut inner, path)?;
        self.resize_and_write(&mut inner, path, old_len, new_len, new_len, &[])?;
        if let Some(e) = inner.manifest.entries.get_mut(path) {
            e.len = new_len;
            e.mtime_ns = now_ns();
            e.writes += 1;
        }
        inner.changed = true;
        Ok(())
    }

    /// The one place records are rewritten: the file goes from `old_len` to
    /// `new_len` bytes and `data` lands at `offset`.
    ///
    /// Order for crash consistency: when shrinking, records past the new
    /// end are cut first; records past the old end are appended (the new
    /// last one sealed as last); then records inside the old file are
    /// rewritten, highest index first; then the object gets its exact size.
    /// Every state in between is recovered by `recover_file` to a file whose
    /// every byte is authentic.
    fn resize_and_write(
        &self,
        inner: &mut Inner,
        path: &str,
        old_len: u64,
        new_len: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<(), FsError> {
        let chunk = self.keys.chunk_size();
        let cs = chunk.get() as u64;
        let records_for = |len: u64| if len == 0 { 1 } else { len.div_ceil(cs) };
        let (old_n, new_n) = (records_for(old_len), records_for(new_len));
        let end = offset + data.len() as u64;
        let touches = |i: u64| !data.is_empty() && end > i * cs && offset < (i + 1) * cs;
        let rec_len = |i: u64| (new_len - i * cs).min(cs) as usize;
        // Lays `data` over record `i`'s plaintext.
        let overlay = |i: u64, plain: &mut [u8]| {
            let base = i * cs;
            let from = offset.max(base);
            let to = end.min(base + plain.len() as u64);
            if from < to {
                plain[(from - base) as usize..(to - base) as usize]
                    .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
            }
        };
        // Records inside the old file that change: those `data` touches, and
        // the old last one when the length changes (or the new last one when
        // the file shrinks). Read them all before anything is written.
        let mut rewritten: Vec<u64> = Vec::new();
        if !data.is_empty() {
            rewritten.extend((offset / cs)..=((end - 1) / cs).min(old_n - 1));
        }
        if new_len != old_len {
            rewritten.push(old_n.min(new_n) - 1);
        }
        rewritten.retain(|i| *i < old_n.min(new_n));
        rewritten.sort_unstable_by(|a, b| b.cmp(a));
        rewritten.dedup();
        let open = self.open_file(inner, path)?;
        let mut plan = Vec::with_capacity(rewritten.len());
        for &i in &rewritten {
            let mut plain = self.read_record(open, path, i, old_len)?;
            plain.resize(rec_len(i), 0);
            overlay(i, &mut plain);
            plan.push((i, plain));
        }
        if new_n < old_n {
            // Shrinking: cut the records past the new end first, so that a
            // crash leaves a run of authentic records (recovered as such).
            open.obj
                .set_len(RecordLayout::offset(new_n, chunk))
                .map_err(|e| FsError::io(format!("resizing {path}"), &e))?;
            open.seals.truncate(new_n as usize);
        }
        // Appended records, ascending, sealed into one buffer and written
        // with one `pwrite` per batch; holes are sealed from one zero buffer
        // (a write far past the end costs no memory for the hole).
        let zeros = vec![0u8; chunk.bytes()];
        let mut plain = vec![0u8; chunk.bytes()];
        let full = chunk.bytes() + RECORD_OVERHEAD;
        let per_batch = (BATCH / full).max(1) as u64;
        let mut i = old_n;
        while i < new_n {
            let upto = (i + per_batch).min(new_n);
            let mut out = Vec::with_capacity(((upto - i) as usize) * full);
            for j in i..upto {
                let n = rec_len(j);
                let start = out.len();
                if touches(j) {
                    plain[..n].fill(0);
                    overlay(j, &mut plain[..n]);
                    open.cipher.seal(j, j + 1 == new_n, &plain[..n], &mut out)?;
                } else {
                    open.cipher.seal(j, j + 1 == new_n, &zeros[..n], &mut out)?;
                }
                let s = seal_of(&out[start..]);
                if (j as usize) < open.seals.len() {
                    open.seals[j as usize] = s;
                } else {
                    open.seals.push(s);
                }
            }
            open.obj
                .write_all_at(&out, RecordLayout::offset(i, chunk))
                .map_err(|e| FsError::io(format!("writing {path}"), &e))?;
            i = upto;
        }
        // Then the rewrites, highest index first.
        for (i, plain) in &plan {
            self.put_record(open, path, *i, *i + 1 == new_n, plain)?;
        }
        let size = if new_len == 0 {
            FILE_HEADER_LEN as u64 + RECORD_OVERHEAD as u64
        } else {
            RecordLayout::offset(new_n - 1, chunk)
                + (new_len - (new_n - 1) * cs)
                + RECORD_OVERHEAD as u64
        };
        open.obj
            .set_len(size)
            .map_err(|e| FsError::io(format!("resizing {path}"), &e))?;
        Ok(())
    }

    /// Makes file `path` durable and commits the manifest (its root and every
    /// pending change); returns the new freshness tag.
    pub fn fsync(&self, path: &str) -> Result<[u8; 32], FsError> {
        let mut inner = self.lock();
        let id = file_entry(&inner.manifest, path)?.file_id;
        if let Some(open) = inner.files.get(&id) {
            open.obj
                .sync_all()
                .map_err(|e| FsError::io(format!("syncing {path}"), &e))?;
            let root = root_of(&id, &open.seals);
            if let Some(e) = inner.manifest.entries.get_mut(path) {
                e.root = root;
                e.dirty = false;
            }
        }
        self.commit(&mut inner)?;
        Ok(freshness_tag(&self.header_bytes, &inner.sealed))
    }

    /// Makes everything durable: every written file, then the manifest with
    /// no file left dirty. Returns the freshness tag.
    pub fn sync(&self) -> Result<[u8; 32], FsError> {
        let mut inner = self.lock();
        let ids: Vec<(String, FileId)> = inner
            .manifest
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File && e.dirty)
            .map(|(p, e)| (p.clone(), e.file_id))
            .collect();
        if ids.is_empty() && !inner.changed {
            return Ok(freshness_tag(&self.header_bytes, &inner.sealed));
        }
        for (path, id) in ids {
            let open = self.open_file(&mut inner, &path)?;
            open.obj
                .sync_all()
                .map_err(|e| FsError::io(format!("syncing {path}"), &e))?;
            let root = root_of(&id, &open.seals);
            if let Some(e) = inner.manifest.entries.get_mut(&path) {
                e.root = root;
                e.dirty = false;
            }
        }
        self.commit(&mut inner)?;
        Ok(freshness_tag(&self.header_bytes, &inner.sealed))
    }

    /// Writes the manifest as it is now (generation + 1), then deletes
    /// objects no longer referenced.
    fn commit(&self, inner: &mut Inner) -> Result<(), FsError> {
        // Roots of dirty files are whatever their records say now.
        let dirty: Vec<(String, FileId)> = inner
            .manifest
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File && e.dirty)
            .map(|(p, e)| (p.clone(), e.file_id))
            .collect();
        for (path, id) in dirty {
            if let Some(open) = inner.files.get(&id) {
                let root = root_of(&id, &open.seals);
                if let Some(e) = inner.manifest.entries.get_mut(&path) {
                    e.root = root;
                }
            }
        }
        inner.manifest.generation += 1;
        let sealed = inner.manifest.seal(&self.keys)?;
        write_atomic(&self.dir, MANIFEST_FILE, &sealed)?;
        inner.sealed = sealed;
        if let Some(hook) = &inner.hook {
            hook(freshness_tag(&self.header_bytes, &inner.sealed));
        }
        inner.committed_clean = inner
            .manifest
            .entries
            .values()
            .filter(|e| e.kind == EntryKind::File && !e.dirty)
            .map(|e| e.file_id)
            .collect();
        for id in std::mem::take(&mut inner.doomed) {
            let _ = std::fs::remove_file(self.object_path(&id));
        }
        inner.changed = false;
        Ok(())
    }

    /// Creates file `path` from everything `src` yields, sealing records as
    /// they fill (no read-modify-write), in batches of up to `BATCH` bytes
    /// per `pwrite`. `progress` is told the plaintext bytes done so far.
    /// Returns the file's length.
    pub fn import(
        &self,
        path: &str,
        mode: u32,
        src: &mut dyn std::io::Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, FsError> {
        self.create(path, mode)?;
        let mut inner = self.lock();
        let id = file_entry(&inner.manifest, path)?.file_id;
        let open = self.open_file(&mut inner, path)?;
        let cs = self.keys.chunk_size().bytes();
        let per_batch = (BATCH / cs).max(1);
        // Plaintext read ahead by one record, so the last one is known:
        // `pending[..filled]` holds what was read and not yet sealed.
        let cap = cs * (per_batch + 1);
        let mut pending: Vec<u8> = vec![0u8; cap];
        let mut filled = 0usize;
        let out_cap = (cs + RECORD_OVERHEAD) * per_batch;
        let mut seals: Vec<[u8; SEAL_LEN]> = Vec::new();
        let mut total = 0u64;
        let mut eof = false;
        let mut file_off = FILE_HEADER_LEN as u64;
        let read_err = |e: std::io::Error| FsError::io(format!("reading the source of {path}"), &e);
        // Reading and sealing here, writing on a second thread: the two
        // overlap (a 1 GiB import is mostly the kernel's copies).
        let writer_file = open
            .obj
            .try_clone()
            .map_err(|e| FsError::io(format!("opening {path} for writing"), &e))?;
        let (to_writer, from_sealer) = std::sync::mpsc::sync_channel::<(Vec<u8>, u64)>(2);
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        let cipher = &open.cipher;
        let sealed: Result<(), FsError> = std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> Result<(), FsError> {
                for (buf, off) in from_sealer {
                    writer_file
                        .write_all_at(&buf, off)
                        .map_err(|e| FsError::io(format!("writing {path}"), &e))?;
                    let _ = recycle.send(buf);
                }
                Ok(())
            });
            let mut sealing = || -> Result<(), FsError> {
                while !eof {
                    // Fill up to one batch plus one record of plaintext.
                    while filled < cap {
                        let n = loop {
                            match src.read(&mut pending[filled..]) {
                                Ok(n) => break n,
                                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                                Err(e) => return Err(read_err(e)),
                            }
                        };
                        if n == 0 {
                            eof = true;
                            break;
                        }
                        filled += n;
                    }
                    // Seal every full record that is certainly not the last.
                    let sealable = if eof { filled } else { (filled / cs - 1) * cs };
                    if eof && sealable == 0 {
                        // Empty file: its single empty record already exists.
                        break;
                    }
                    let mut out = recycled
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(out_cap));
                    out.clear();
                    let mut consumed = 0;
                    while consumed < sealable {
                        let take = (sealable - consumed).min(cs);
                        let i = seals.len() as u64;
                        let last = eof && consumed + take == sealable;
                        let start = out.len();
                        cipher.seal(i, last, &pending[consumed..consumed + take], &mut out)?;
                        seals.push(seal_of(&out[start..]));
                        consumed += take;
                    }
                    let written = out.len() as u64;
                    if to_writer.send((out, file_off)).is_err() {
                        // The writer stopped: its error is reported below.
                        return Ok(());
                    }
                    file_off += written;
                    total += consumed as u64;
                    pending.copy_within(consumed..filled, 0);
                    filled -= consumed;
                    progress(total);
                }
                Ok(())
            };
            let r = sealing();
            drop(to_writer);
            let w = writer.join().unwrap_or_else(|_| {
                Err(FsError::malformed("import", "the writer thread panicked"))
            });
            r.and(w)
        });
        sealed?;
        if !seals.is_empty() {
            open.obj
                .set_len(file_off)
                .map_err(|e| FsError::io(format!("resizing {path}"), &e))?;
            open.seals = seals;
        }
        let root = root_of(&id, &open.seals);
        if let Some(e) = inner.manifest.entries.get_mut(path) {
            e.len = total;
            e.root = root;
            e.writes = open_writes(total, cs);
        }
        inner.changed = true;
        Ok(total)
    }

    /// Writes the whole content of file `path` to `dst`, reading records in
    /// batches; every byte written was authenticated first.
    pub fn export(
        &self,
        path: &str,
        dst: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, FsError> {
        let len = self.stat(path)?.len;
        let cs = self.keys.chunk_size().bytes();
        let step = ((BATCH / cs).max(1) * cs) as u64;
        // Reading and opening records on a second thread, writing here:
        // the two overlap. Buffers go round between the threads.
        let (to_writer, from_reader) = std::sync::mpsc::sync_channel::<Result<Vec<u8>, FsError>>(2);
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut scratch = Vec::new();
                let mut at = 0u64;
                while at < len {
                    let n = (len - at).min(step) as usize;
                    let mut chunk = recycled.try_recv().unwrap_or_default();
                    let r = self.read_into(path, at, n, &mut scratch, &mut chunk);
                    let stop = r.is_err() || chunk.is_empty();
                    at += chunk.len() as u64;
                    if to_writer.send(r.map(|()| chunk)).is_err() || stop {
                        break;
                    }
                }
            });
            let mut done = 0u64;
            for chunk in from_reader {
                let chunk = chunk?;
                if chunk.is_empty() {
                    break;
                }
                dst.write_all(&chunk)
                    .map_err(|e| FsError::io(format!("writing out {path}"), &e))?;
                done += chunk.len() as u64;
                progress(done);
                let _ = recycle.send(chunk);
            }
            if done != len {
                return Err(FsError::NotCurrent {
                    path: path.to_owned(),
                    detail: format!("{done} of {len} bytes could be read"),
                });
            }
            Ok(len)
        })
    }

    /// Checks the whole volume: every file's object, header, records, root
    /// and length. Returns what is wrong (empty when intact).
    pub fn verify(&self) -> Vec<Problem> {
        let entries: BTreeMap<String, Entry> = self.lock().manifest.entries.clone();
        let mut problems = Vec::new();
        for (path, e) in &entries {
            if e.kind != EntryKind::File {
                continue;
            }
            let r = self.load(path, e).and_then(|open| {
                let records = open.seals.len() as u64;
                for i in 0..records {
                    self.read_record(&open, path, i, e.len)?;
                }
                Ok(())
            });
            if let Err(err) = r {
                problems.push(Problem {
                    path: path.clone(),
                    what: err.to_string(),
                });
            }
        }
        problems
    }
}

/// Opens record `i` of an open file in place, after checking it is the
/// record the file had when it was opened (or last written through us).
fn open_checked<'a>(
    open: &Open,
    path: &str,
    i: u64,
    records: u64,
    rec: &'a mut [u8],
) -> Result<&'a [u8], FsError> {
    if seal_of(rec) != open.seals[i as usize] {
        return Err(FsError::NotCurrent {
            path: path.to_owned(),
            detail: format!("record {i} changed under the mount (host tampering)"),
        });
    }
    open.cipher
        .open(i, i + 1 == records, rec)
        .map_err(|e| FsError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
}

fn seal_of(record: &[u8]) -> [u8; SEAL_LEN] {
    let mut s = [0u8; SEAL_LEN];
    if record.len() >= RECORD_OVERHEAD {
        s[..12].copy_from_slice(&record[..12]);
        s[12..].copy_from_slice(&record[record.len() - 16..]);
    }
    s
}

fn stat_of(e: &Entry) -> Stat {
    Stat {
        kind: e.kind,
        mode: e.mode,
        len: e.len,
        mtime_ns: e.mtime_ns,
    }
}

fn dir_entry<'a>(m: &'a Manifest, path: &str) -> Result<&'a Entry, FsError> {
    match m.entries.get(path) {
        Some(e) if e.kind == EntryKind::Dir => Ok(e),
        Some(_) => Err(FsError::NotADirectory(path.to_owned())),
        None => Err(FsError::NotFound(path.to_owned())),
    }
}

fn file_entry<'a>(m: &'a Manifest, path: &str) -> Result<&'a Entry, FsError> {
    match m.entries.get(path) {
        Some(e) if e.kind == EntryKind::File => Ok(e),
        Some(_) => Err(FsError::IsADirectory(path.to_owned())),
        None => Err(FsError::NotFound(path.to_owned())),
    }
}
