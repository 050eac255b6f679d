//! The manifest (spec §5): every path, its kind, mode, file id, length and
//! root, sealed as one versioned object; and the volume's freshness tag.

use std::collections::BTreeMap;

use ring::aead;

use crate::keys::{random_array, FileId, VolumeKeys};
use crate::volume::{Mode, VERSION};
use crate::FsError;

const MAGIC: &[u8; 8] = b"VEILMAN\0";
const HEADER_LEN: usize = 32;
const TAG_LEN: usize = 16;
const LABEL: &[u8] = b"veil-fs-v1 manifest";
const TAG_LABEL: &[u8] = b"veil-fs-v1 tag";
/// The most entries a manifest may hold.
pub const MAX_ENTRIES: usize = 4_000_000;
/// The longest path.
pub const MAX_PATH: usize = 4096;
const ENTRY_FIXED: usize = 2 + 1 + 1 + 4 + 16 + 8 + 8 + 8 + 32;

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (an object under `objects/`).
    File,
    /// A directory.
    Dir,
}

/// One path of the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File or directory.
    pub kind: EntryKind,
    /// Written since the last clean commit: after an unclean shutdown its
    /// content is checked for authenticity, and its root recomputed.
    pub dirty: bool,
    /// POSIX permission bits.
    pub mode: u32,
    /// The object's id (zero for directories).
    pub file_id: FileId,
    /// Plaintext length (0 for directories).
    pub len: u64,
    /// Record writes since the file's key was made (re-key before 2^30).
    pub writes: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// SHA-256 over the file id, record count and every record's nonce and
    /// tag (zero for directories).
    pub root: [u8; 32],
}

impl Entry {
    /// A directory entry.
    pub fn dir(mode: u32, mtime_ns: i64) -> Entry {
        Entry {
            kind: EntryKind::Dir,
            dirty: false,
            mode,
            file_id: FileId([0; 16]),
            len: 0,
            writes: 0,
            mtime_ns,
            root: [0; 32],
        }
    }
}

/// The manifest: paths (`/`, `/a`, `/a/b`, ...) in order, and a generation
/// counter incremented by every commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Incremented by every commit.
    pub generation: u64,
    /// Entries by normalized absolute path; `/` is always a directory.
    pub entries: BTreeMap<String, Entry>,
}

/// Checks a path is absolute and normalized: `/` or `/a/b` without empty,
/// `.` or `..` segments or a trailing `/`.
pub fn check_path(p: &str) -> Result<(), FsError> {
    let bad = |why: &str| Err(FsError::malformed("path", format!("{p:?}: {why}")));
    if p == "/" {
        return Ok(());
    }
    if p.len() > MAX_PATH {
        return bad("longer than 4096 bytes");
    }
    let Some(rest) = p.strip_prefix('/') else {
        return bad("not absolute");
    };
    for seg in rest.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') {
            return bad("not normalized");
        }
    }
    Ok(())
}

/// The parent of a normalized path other than `/`.
pub fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

impl Manifest {
    /// An empty volume: only the root directory.
    pub fn new(mtime_ns: i64) -> Manifest {
        let mut entries = BTreeMap::new();
        entries.insert("/".to_owned(), Entry::dir(0o755, mtime_ns));
        Manifest {
            generation: 0,
            entries,
        }
    }

    fn encode_body(&self) -> Vec<u8> {
        let size: usize = self
            .entries
            .keys()
            .map(|p| p.len() + ENTRY_FIXED)
            .sum::<usize>()
            + 4;
        let mut b = Vec::with_capacity(size);
        b.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for (path, e) in &self.entries {
            b.extend_from_slice(&(path.len() as u16).to_be_bytes());
            b.extend_from_slice(path.as_bytes());
            b.push(match e.kind {
                EntryKind::File => 1,
                EntryKind::Dir => 2,
            });
            b.push(u8::from(e.dirty));
            b.extend_from_slice(&e.mode.to_be_bytes());
            b.extend_from_slice(&e.file_id.0);
            b.extend_from_slice(&e.len.to_be_bytes());
            b.extend_from_slice(&e.writes.to_be_bytes());
            b.extend_from_slice(&e.mtime_ns.to_be_bytes());
            b.extend_from_slice(&e.root);
        }
        b
    }

    fn decode_body(b: &[u8]) -> Result<BTreeMap<String, Entry>, FsError> {
        const WHAT: &str = "manifest";
        let mut r = Reader(b);
        let n = r.u32()? as usize;
        if n == 0 || n > MAX_ENTRIES {
            return Err(FsError::malformed(WHAT, format!("{n} entries")));
        }
        let mut entries = BTreeMap::new();
        let mut ids = std::collections::BTreeSet::new();
        let mut last: Option<String> = None;
        for _ in 0..n {
            let plen = r.u16()? as usize;
            let path = std::str::from_utf8(r.take(plen)?)
                .map_err(|_| FsError::malformed(WHAT, "a path is not UTF-8"))?
                .to_owned();
            check_path(&path)?;
            if last.as_ref().is_some_and(|l| *l >= path) {
                return Err(FsError::malformed(WHAT, "paths are not strictly sorted"));
            }
            let kind = match r.u8()? {
                1 => EntryKind::File,
                2 => EntryKind::Dir,
                k => return Err(FsError::malformed(WHAT, format!("entry kind {k}"))),
            };
            let dirty = match r.u8()? {
                0 => false,
                1 => true,
                d => return Err(FsError::malformed(WHAT, format!("dirty flag {d}"))),
            };
            let mode = r.u32()?;
            let mut id = [0u8; 16];
            id.copy_from_slice(r.take(16)?);
            let e = Entry {
                kind,
                dirty,
                mode,
                file_id: FileId(id),
                len: r.u64()?,
                writes: r.u64()?,
                mtime_ns: r.u64()? as i64,
                root: {
                    let mut root = [0u8; 32];
                    root.copy_from_slice(r.take(32)?);
                    root
                },
            };
            if path != "/" {
                match entries.get(parent(&path)) {
                    Some(Entry {
                        kind: EntryKind::Dir,
                        ..
                    }) => {}
                    _ => {
                        return Err(FsError::malformed(
                            WHAT,
                            format!("{path:?} has no parent directory"),
                        ))
                    }
                }
            } else if kind != EntryKind::Dir {
                return Err(FsError::malformed(WHAT, "/ is not a directory"));
            }
            if kind == EntryKind::File && !ids.insert(e.file_id) {
                return Err(FsError::malformed(WHAT, "two paths share a file id"));
            }
            last = Some(path.clone());
            entries.insert(path, e);
        }
        if !r.0.is_empty() {
            return Err(FsError::malformed(WHAT, "trailing bytes"));
        }
        if !entries.contains_key("/") {
            return Err(FsError::malformed(WHAT, "no root directory"));
        }
        Ok(entries)
    }

    /// The sealed manifest file (`veil.manifest`).
    pub fn seal(&self, keys: &VolumeKeys) -> Result<Vec<u8>, FsError> {
        let body = self.encode_body();
        let nonce: [u8; 12] = random_array()?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut aad = aad(keys, self.generation);
        let n = aead::Nonce::assume_unique_for_key(nonce);
        let tag = match keys.mode {
            Mode::Encrypted => {
                out.extend_from_slice(&body);
                let sealed = out.get_mut(HEADER_LEN..).unwrap_or_default();
                keys.manifest
                    .seal_in_place_separate_tag(n, aead::Aad::from(&aad[..]), sealed)
            }
            Mode::Integrity => {
                aad.extend_from_slice(&body);
                out.extend_from_slice(&body);
                keys.manifest
                    .seal_in_place_separate_tag(n, aead::Aad::from(&aad[..]), &mut [])
            }
        }
        .map_err(|_| FsError::malformed("manifest", "sealing failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens and checks a sealed manifest.
    pub fn open(bytes: &[u8], keys: &VolumeKeys) -> Result<Manifest, FsError> {
        const WHAT: &str = "manifest";
        if bytes.len() < HEADER_LEN + TAG_LEN + 4 {
            return Err(FsError::malformed(WHAT, "too short (truncated)"));
        }
        if &bytes[..8] != MAGIC {
            return Err(FsError::malformed(WHAT, "no VEILMAN magic"));
        }
        if bytes[8] != VERSION || bytes[9..12] != [0, 0, 0] {
            return Err(FsError::malformed(
                WHAT,
                "unknown version or reserved bytes",
            ));
        }
        let mut g = [0u8; 8];
        g.copy_from_slice(&bytes[12..20]);
        let generation = u64::from_be_bytes(g);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&bytes[20..32]);
        let n = aead::Nonce::assume_unique_for_key(nonce);
        let mut aad = aad(keys, generation);
        let bad = || FsError::BadManifest;
        let body = match keys.mode {
            Mode::Encrypted => {
                let mut sealed = bytes[HEADER_LEN..].to_vec();
                let plain = keys
                    .manifest
                    .open_in_place(n, aead::Aad::from(&aad[..]), &mut sealed)
                    .map_err(|_| bad())?;
                plain.to_vec()
            }
            Mode::Integrity => {
                let body = &bytes[HEADER_LEN..bytes.len() - TAG_LEN];
                aad.extend_from_slice(body);
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(&bytes[bytes.len() - TAG_LEN..]);
                keys.manifest
                    .open_in_place(n, aead::Aad::from(&aad[..]), &mut t)
                    .map_err(|_| bad())?;
                body.to_vec()
            }
        };
        Ok(Manifest {
            generation,
            entries: Manifest::decode_body(&body)?,
        })
    }
}

fn aad(keys: &VolumeKeys, generation: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(LABEL.len() + 24);
    a.extend_from_slice(LABEL);
    a.extend_from_slice(&keys.volume_id.0);
    a.extend_from_slice(&generation.to_be_bytes());
    a
}

/// The volume's freshness tag: SHA-256 over the label, the volume header
/// and the sealed manifest, as stored. Computable without the key (the
/// launcher states it before it attests); unforgeable because the manifest
/// is authenticated under the volume key.
pub fn freshness_tag(volume_header: &[u8], sealed_manifest: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(TAG_LABEL);
    ctx.update(volume_header);
    ctx.update(sealed_manifest);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FsError> {
        if self.0.len() < n {
            return Err(FsError::malformed("manifest", "truncated body"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FsError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, FsError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, FsError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChunkSize, VolumeHeader, VolumeKey};

    fn sample(keys_mode: Mode) -> (VolumeKeys, Manifest) {
        let key = VolumeKey::random().unwrap();
        let h = VolumeHeader::new(keys_mode, ChunkSize::new(4096).unwrap()).unwrap();
        let keys = h.keys(&key).unwrap();
        let mut m = Manifest::new(1);
        m.entries.insert("/a".into(), Entry::dir(0o700, 2));
        m.entries.insert(
            "/a/f".into(),
            Entry {
                kind: EntryKind::File,
                dirty: true,
                mode: 0o600,
                file_id: FileId([9; 16]),
                len: 12345,
                writes: 7,
                mtime_ns: -5,
                root: [3; 32],
            },
        );
        m.generation = 42;
        (keys, m)
    }

    #[test]
    fn manifests_round_trip_and_fail_closed() {
        for mode in [Mode::Encrypted, Mode::Integrity] {
            let (keys, m) = sample(mode);
            let sealed = m.seal(&keys).unwrap();
            assert_eq!(Manifest::open(&sealed, &keys).unwrap(), m);
            assert_eq!(
                sealed.windows(4).any(|w| w == b"/a/f"),
                mode == Mode::Integrity,
                "names are hidden only in encrypted mode"
            );
            for i in 0..sealed.len() {
                let mut t = sealed.clone();
                t[i] ^= 0x10;
                assert!(Manifest::open(&t, &keys).is_err(), "{mode:?} byte {i}");
            }
            assert!(Manifest::open(&sealed[..sealed.len() - 1], &keys).is_err());
        }
    }

    #[test]
    fn tags_change_with_every_commit() {
        let (keys, mut m) = sample(Mode::Encrypted);
        let a = m.seal(&keys).unwrap();
        m.generation += 1;
        let b = m.seal(&keys).unwrap();
        assert_ne!(freshness_tag(&[0; 64], &a), freshness_tag(&[0; 64], &b));
    }

    #[test]
    fn paths_are_checked() {
        for ok in ["/", "/a", "/a/b.c"] {
            check_path(ok).unwrap();
        }
        for bad in ["", "a", "/a/", "//a", "/a/./b", "/a/../b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
    }
}
