//! Protected volumes: opened (or made) with the key the CAS released,
//! FUSE-mounted at their policy paths in the launcher's private mount
//! namespace (the program inherits the mounts; the host sees none), and
//! their freshness tags committed back to the CAS after every manifest
//! commit (fsync, checkpoint, unmount).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use veil_api::{VolumeCommit, VolumeCommitted, VOLUME_COMMIT_PATH};
use veil_client::CasClient;
use veil_fs::{ChunkSize, Mode, Volume, VolumeKey};

use crate::{LaunchError, SecretBuf};

/// A volume the CAS released.
#[derive(Debug)]
pub struct ReleasedVolume {
    /// Its name in the policy.
    pub name: String,
    /// Where the program sees it.
    pub path: PathBuf,
    /// Protection.
    pub mode: Mode,
    /// Its key (32 bytes).
    pub key: SecretBuf,
    /// The tag the CAS holds, if any.
    pub tag: Option<String>,
    /// Its directory on the host.
    pub dir: PathBuf,
    /// Mounted read-only; never created by the launcher.
    pub read_only: bool,
}

/// Where volume `name` of `service` in `session` lives under `base`.
pub fn volume_dir(base: &Path, session: &str, service: &str, name: &str) -> PathBuf {
    base.join(session).join(service).join(name)
}

/// The `volume:<name>` claim value for the volume in `dir`: its tag, or
/// `new` when there is none yet.
pub fn volume_claim_value(dir: &Path) -> Result<String, LaunchError> {
    match Volume::tag_on_disk(dir) {
        Ok(Some(t)) => Ok(hex::encode(t)),
        Ok(None) => Ok(veil_api::VOLUME_NEW.to_owned()),
        Err(e) => Err(LaunchError::Volume(format!(
            "cannot read the volume in {}: {e}",
            dir.display()
        ))),
    }
}

/// The CAS client the committer uses, replaceable: when the launcher renews
/// its attested certificate, it swaps in a client presenting the new one.
pub type SharedClient = Arc<Mutex<CasClient>>;

/// One commit to send (volume index and new tag), or `None`: the volumes
/// are unmounted, send what is pending and stop.
type Commit = Option<(usize, [u8; 32])>;

/// The mounted volumes and the thread that keeps the CAS's tags current.
pub struct MountedVolumes {
    mounts: Vec<(String, veil_fuse::Mounted)>,
    sender: Option<mpsc::Sender<Commit>>,
    committer: Option<std::thread::JoinHandle<Vec<String>>>,
    created: Vec<PathBuf>,
}

impl std::fmt::Debug for MountedVolumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountedVolumes")
            .field(
                "volumes",
                &self.mounts.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Opens (or, the first time, makes) each volume and mounts it at its path.
/// Call with the forwarded signals already blocked (the FUSE threads inherit
/// the mask) and in a single-threaded launcher: this moves the launcher into
/// a private mount namespace first.
///
/// `client` is a CAS client presenting the launcher's attested certificate;
/// tags are committed through it on a thread of its own (each batch takes
/// the client current then, so a renewed certificate is used).
pub fn mount_volumes(
    volumes: Vec<ReleasedVolume>,
    session: &str,
    service: &str,
    client: SharedClient,
) -> Result<MountedVolumes, LaunchError> {
    // The FUSE threads must not take the signals meant for the program:
    // block them first (threads inherit the mask); `supervise` waits for them.
    crate::spawn::watched_signals()
        .block()
        .map_err(|e| LaunchError::os("blocking signals", e))?;
    crate::sys::private_mount_namespace().map_err(|e| LaunchError::Isolation {
        step: "creating the launcher's private mount namespace for volumes",
        source: e,
        hint: "protected volumes need the launcher to run as root (CAP_SYS_ADMIN) in the TEE",
    })?;
    let (tx, rx) = mpsc::channel::<Commit>();
    let mut mounts = Vec::new();
    let mut created = Vec::new();
    let mut previous = Vec::new();
    let mut names = Vec::new();
    for (i, v) in volumes.into_iter().enumerate() {
        let key_bytes: [u8; 32] = v.key.as_slice().try_into().map_err(|_| {
            LaunchError::Protocol(format!("the key of volume {} is not 32 bytes", v.name))
        })?;
        let key = VolumeKey::from_bytes(key_bytes);
        let fresh = Volume::tag_on_disk(&v.dir)
            .map_err(|e| LaunchError::Volume(format!("volume {}: {e}", v.name)))?
            .is_none();
        if fresh && v.read_only {
            return Err(LaunchError::Volume(format!(
                "volume {} is read-only but there is none in {}: it must be made by its owner (e.g. `veil fs encrypt`) and placed there",
                v.name,
                v.dir.display()
            )));
        }
        let volume = if fresh {
            std::fs::create_dir_all(&v.dir)
                .map_err(|e| LaunchError::os(format!("creating {}", v.dir.display()), e))?;
            Volume::init(&v.dir, &key, v.mode, ChunkSize::DEFAULT)
        } else {
            Volume::open(&v.dir, &key)
        }
        .map_err(|e| {
            LaunchError::Volume(format!("volume {} in {}: {e}", v.name, v.dir.display()))
        })?;
        if volume.mode() != v.mode {
            return Err(LaunchError::Volume(format!(
                "volume {} in {} is {:?} but the policy says {:?}",
                v.name,
                v.dir.display(),
                volume.mode(),
                v.mode
            )));
        }
        let volume = Arc::new(volume);
        let sender = tx.clone();
        volume.on_commit(Box::new(move |tag| {
            let _ = sender.send(Some((i, tag)));
        }));
        if fresh {
            // The new volume's first tag, so the CAS holds one from now on.
            let _ = tx.send(Some((i, volume.tag())));
        }
        if !v.path.exists() {
            std::fs::create_dir_all(&v.path).map_err(|e| {
                LaunchError::os(format!("creating the mount point {}", v.path.display()), e)
            })?;
            created.push(v.path.clone());
        } else if !v.path.is_dir() {
            return Err(LaunchError::NotAllowed(format!(
                "the policy mounts volume {} at {}, which is not a directory on this host",
                v.name,
                v.path.display()
            )));
        }
        let mut options = veil_fuse::MountOptions::default();
        options.read_only = v.read_only;
        let mounted = veil_fuse::mount(volume, &v.path, &options).map_err(|e| {
            LaunchError::Volume(format!(
                "mounting volume {} at {}: {e}",
                v.name,
                v.path.display()
            ))
        })?;
        tracing::info!(volume = %v.name, path = %v.path.display(), "volume mounted");
        previous.push(v.tag.clone());
        names.push(v.name.clone());
        mounts.push((v.name, mounted));
    }
    let (session, service) = (session.to_owned(), service.to_owned());
    let committer = std::thread::Builder::new()
        .name("veil-tags".into())
        .spawn(move || commit_loop(client, rx, session, service, names, previous))
        .map_err(|e| LaunchError::os("starting the tag committer", e))?;
    Ok(MountedVolumes {
        mounts,
        sender: Some(tx),
        committer: Some(committer),
        created,
    })
}

/// Sends each volume's newest tag to the CAS, coalescing bursts; returns
/// the failures it could not resolve.
fn commit_loop(
    shared: SharedClient,
    rx: mpsc::Receiver<Commit>,
    session: String,
    service: String,
    names: Vec<String>,
    mut previous: Vec<Option<String>>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![format!("cannot start the tag committer: {e}")],
    };
    let mut done = false;
    while !done {
        let Ok(first) = rx.recv() else { break };
        let mut latest: Vec<Option<[u8; 32]>> = vec![None; names.len()];
        let mut take = |m: Commit, done: &mut bool| match m {
            Some((i, t)) => {
                if let Some(slot) = latest.get_mut(i) {
                    *slot = Some(t);
                }
            }
            None => *done = true,
        };
        take(first, &mut done);
        while let Ok(m) = rx.try_recv() {
            take(m, &mut done);
        }
        let client = shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (i, tag) in latest.into_iter().enumerate() {
            let Some(tag) = tag else { continue };
            let tag = hex::encode(tag);
            if previous[i].as_deref() == Some(tag.as_str()) {
                continue;
            }
            let body = VolumeCommit {
                session: session.clone(),
                service: service.clone(),
                volume: names[i].clone(),
                previous: previous[i].clone(),
                tag: tag.clone(),
            };
            match rt.block_on(client.post::<_, VolumeCommitted>(VOLUME_COMMIT_PATH, &body)) {
                Ok(_) => {
                    tracing::debug!(volume = %names[i], %tag, "freshness tag committed to the CAS");
                    previous[i] = Some(tag);
                    failures.retain(|f: &String| !f.starts_with(&format!("volume {}:", names[i])));
                }
                Err(e) => {
                    tracing::error!(volume = %names[i], error = %e, "cannot commit the volume's freshness tag to the CAS");
                    failures.push(format!(
                        "volume {}: tag {tag} not committed to the CAS ({e}); the next start is refused until it is, or an owner runs `veil volume accept`",
                        names[i]
                    ));
                }
            }
        }
    }
    failures
}

impl MountedVolumes {
    /// Unmounts every volume (each commits its final state), waits for the
    /// CAS to hold the final tags, removes mount points it created. Returns
    /// what went wrong (nothing on a clean shutdown).
    pub fn close(mut self) -> Vec<String> {
        self.shut_down()
    }

    /// The one shutdown path, for [`MountedVolumes::close`] and `Drop`
    /// (which only logs); a second call finds nothing left to do.
    fn shut_down(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, m) in self.mounts.drain(..) {
            if let Err(e) = m.unmount() {
                problems.push(format!("volume {name}: {e}"));
            }
        }
        // Every final commit was sent before this: tell the committer to
        // send what is pending and stop.
        if let Some(tx) = self.sender.take() {
            let _ = tx.send(None);
        }
        if let Some(h) = self.committer.take() {
            match h.join() {
                Ok(f) => problems.extend(f),
                Err(_) => problems.push("the tag committer panicked".into()),
            }
        }
        for p in self.created.drain(..).rev() {
            let _ = std::fs::remove_dir(p);
        }
        problems
    }
}

impl Drop for MountedVolumes {
    fn drop(&mut self) {
        for problem in self.shut_down() {
            tracing::error!(%problem, "closing the volumes");
        }
    }
}
