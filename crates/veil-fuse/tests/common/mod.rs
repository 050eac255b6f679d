//! A mounted fresh volume that always unmounts, even when a test fails.

#![allow(dead_code)] // each test binary uses part of this

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;
use veil_fs::{ChunkSize, Mode, Volume, VolumeKey};
use veil_fuse::{mount, MountOptions, Mounted};

pub const CHUNK: u32 = 65536;

/// Whether `path` is a mount point in this process's mount table.
pub fn is_mount_point(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy().replace(' ', "\\040");
    table
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == want))
}

pub struct Fixture {
    pub mounted: Option<Mounted>,
    pub key: VolumeKey,
    pub vol: PathBuf,
    pub mnt: PathBuf,
    pub options: MountOptions,
    // Dropped last (after the unmount in Drop::drop).
    _dirs: TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Self::with_options(MountOptions::default())
    }

    pub fn with_options(mut options: MountOptions) -> Fixture {
        let dirs = tempfile::tempdir().unwrap();
        let vol = dirs.path().join("vol");
        let mnt = dirs.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mnt = mnt.canonicalize().unwrap();
        let key = VolumeKey::random().unwrap();
        let v = Volume::init(&vol, &key, Mode::Encrypted, ChunkSize::new(CHUNK).unwrap()).unwrap();
        options.volume_dir = Some(vol.clone());
        let mounted = mount(Arc::new(v), &mnt, &options).unwrap();
        assert!(is_mount_point(&mnt));
        Fixture {
            mounted: Some(mounted),
            key,
            vol,
            mnt,
            options,
            _dirs: dirs,
        }
    }

    /// A path inside the mount.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn mounted(&self) -> &Mounted {
        self.mounted.as_ref().unwrap()
    }

    /// Unmounts (asserting it went cleanly) and checks the mountpoint is an
    /// ordinary empty directory again.
    pub fn unmount(&mut self) {
        if let Some(m) = self.mounted.take() {
            m.unmount().unwrap();
        }
        assert!(!is_mount_point(&self.mnt), "still mounted");
        let left: Vec<_> = std::fs::read_dir(&self.mnt).unwrap().collect();
        assert!(left.is_empty(), "mountpoint not empty: {left:?}");
    }

    /// Mounts the volume again (after `unmount`).
    pub fn remount(&mut self) {
        assert!(self.mounted.is_none());
        let v = Volume::open(&self.vol, &self.key).unwrap();
        self.mounted = Some(mount(Arc::new(v), &self.mnt, &self.options).unwrap());
    }

    /// Unmounts and opens the volume directly.
    pub fn reopen(&mut self) -> Volume {
        self.unmount();
        Volume::open(&self.vol, &self.key).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            if let Err(e) = m.unmount() {
                eprintln!("unmount in Drop: {e}");
            }
        }
        if is_mount_point(&self.mnt) {
            // Last resort, so no test leaves a mount behind.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mnt)
                .status();
            if !std::thread::panicking() {
                panic!("{} was still mounted after unmount", self.mnt.display());
            }
        }
    }
}

/// The whole content of `path` in `v`.
pub fn whole(v: &Volume, path: &str) -> Vec<u8> {
    let len = v.stat(path).unwrap().len;
    v.read(path, 0, len as usize).unwrap()
}

/// Deterministic bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}
