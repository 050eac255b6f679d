//! `veil fs init|encrypt|decrypt|verify|mount|tag`: protected volumes on the
//! host (`docs/spec/file-shield.md`), and the key options they share.
//!
//! * The key is a key file (`--key-file`, 64 lower-case hex digits and an
//!   optional newline; `init` makes one, mode 0600, when it is missing) or a
//!   policy volume's key secret read back from the CAS by an owner
//!   (`--session NS/NAME --volume NAME [--service SVC]`; the secret must be
//!   exported to owners). The key is never printed.
//! * `encrypt` needs an existing volume; `--init` makes it first when VOL is
//!   missing or empty (as `init` would). Paths the volume already has are
//!   refused unless `--force`, which rewrites a file's content in place (the
//!   file keeps its id) and replaces a file by a directory or the reverse.
//! * `decrypt` writes only authenticated bytes; on a failure it removes the
//!   file being written and stops (exit 1 naming the file and the reason).
//! * Exit codes: 0 ok; 1 the volume is not authentic (tampered, rolled back,
//!   swapped, a wrong key) or not the expected version; 2 usage or I/O.
//! * Progress (bytes done/total, throughput) goes to stderr on a terminal
//!   for trees of 4 MiB or more, or whenever `--progress` is given (a plain
//!   line a second when stderr is not a terminal).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use veil_fs::{ChunkSize, EntryKind, FsError, Mode, Stat, Volume, VolumeKey, HEADER_FILE};
use zeroize::Zeroizing;

use crate::cli::{
    FsDecryptArgs, FsEncryptArgs, FsInitArgs, FsKeyArgs, FsMode, FsMountArgs, FsTagArgs,
    FsVerifyArgs,
};
use crate::failure::{is_tampering, Failure};

/// Below this many bytes a terminal gets no progress bar (unless --progress).
const SHOW_PROGRESS_FROM: u64 = 4 << 20;
/// Bytes per write when a file is rewritten in place (a multiple of every
/// chunk size).
const REWRITE_BATCH: usize = 4 << 20;

// ---------------------------------------------------------------- keys

/// A volume key, and the policy volume it belongs to when it came from one.
struct Keyed {
    key: VolumeKey,
    policy: Option<PolicyVolume>,
}

/// A volume declared by a policy.
struct PolicyVolume {
    session: String,
    service: String,
    volume: String,
    mode: Mode,
}

/// `namespace/name`, split.
pub(crate) fn split_session(name: &str) -> Result<(&str, &str), Failure> {
    name.split_once('/')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('/'))
        .ok_or_else(|| Failure::Usage(format!("session name {name:?} must be namespace/name")))
}

fn has_key(k: &FsKeyArgs) -> bool {
    k.key_file.is_some() || k.session.is_some()
}

fn need_key(k: &FsKeyArgs) -> Result<(), Failure> {
    if has_key(k) {
        Ok(())
    } else {
        Err(Failure::Usage(
            "this needs the volume's key: pass --key-file FILE, or --session NS/NAME --volume NAME \
             (a policy volume whose key secret is exported to owners)"
                .into(),
        ))
    }
}

/// The key named by the options (which must name one).
fn key_of(k: &FsKeyArgs) -> Result<Keyed, Failure> {
    need_key(k)?;
    match &k.key_file {
        Some(path) => Ok(Keyed {
            key: read_key_file(path)?,
            policy: None,
        }),
        None => policy_key(k),
    }
}

fn read_key_file(path: &Path) -> Result<VolumeKey, Failure> {
    let bytes = crate::cmd::owner::read_key_file(path, "volume key file")?;
    Ok(VolumeKey::from_bytes(*bytes))
}

/// Makes key file `path` (create_new, mode 0600) with a random key.
/// `Ok(None)` when it exists already.
fn create_key_file(path: &Path) -> Result<Option<VolumeKey>, Failure> {
    let key = VolumeKey::random()?;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Failure::io("cannot create the key file", path, e)),
    };
    let mut text = Zeroizing::new(hex::encode(key.dangerous_bytes()));
    text.push('\n');
    if let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(Failure::io("cannot write the key file", path, e));
    }
    Ok(Some(key))
}

fn policy_mode(m: veil_policy::VolumeMode) -> Mode {
    match m {
        veil_policy::VolumeMode::Encrypted => Mode::Encrypted,
        veil_policy::VolumeMode::Integrity => Mode::Integrity,
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Encrypted => "encrypted",
        Mode::Integrity => "integrity",
    }
}

/// The key of a policy volume, read back from the CAS (owner, mutual TLS).
fn policy_key(k: &FsKeyArgs) -> Result<Keyed, Failure> {
    let (Some(session), Some(volume)) = (k.session.as_deref(), k.volume.as_deref()) else {
        return Err(Failure::Usage(
            "--session needs --volume NAME (the volume's name in the policy)".into(),
        ));
    };
    let owned = crate::cmd::owner::owned_session(&k.cas, session)?;
    let policy = &owned.policy;
    let (service, vol) = find_volume(policy, session, volume, k.service.as_deref())?;
    let secret = vol.key.clone();
    let spec = policy.secret(&secret).ok_or_else(|| {
        Failure::Usage(format!(
            "volume {volume} of service {service} in {session} names key {secret}, which the policy does not declare"
        ))
    })?;
    if let veil_policy::SecretKind::Import {
        session: from,
        secret: there,
    } = &spec.kind
    {
        return Err(Failure::Usage(format!(
            "volume {volume} of service {service} in {session} is keyed by {secret}, imported from secret {there} of {from}: owners read it there (export it to owners in {from}), then use a key file"
        )));
    }
    let bytes = owned.key_bytes(&secret, &format!("the key of volume {volume}"))?;
    let key = VolumeKey::from_bytes(*bytes);
    Ok(Keyed {
        key,
        policy: Some(PolicyVolume {
            session: session.to_owned(),
            service: service.to_owned(),
            volume: volume.to_owned(),
            mode: policy_mode(vol.mode),
        }),
    })
}

/// The service and volume `volume` names, in `--service` or the only
/// service declaring a volume of that name.
fn find_volume<'a>(
    policy: &'a veil_policy::Session,
    session: &str,
    volume: &str,
    service: Option<&str>,
) -> Result<(&'a str, &'a veil_policy::Volume), Failure> {
    let all = || {
        let names: Vec<String> = policy
            .services()
            .iter()
            .flat_map(|s| {
                s.volumes
                    .iter()
                    .map(move |v| format!("{}/{}", s.name, v.name))
            })
            .collect();
        if names.is_empty() {
            "it declares no volume".to_owned()
        } else {
            format!("its volumes (service/volume): {}", names.join(", "))
        }
    };
    if let Some(svc) = service {
        let s = policy
            .service(svc)
            .ok_or_else(|| Failure::Usage(format!("{session} has no service {svc}; {}", all())))?;
        let v = s.volumes.iter().find(|v| v.name == volume).ok_or_else(|| {
            Failure::Usage(format!(
                "service {svc} of {session} declares no volume {volume}; {}",
                all()
            ))
        })?;
        return Ok((s.name.as_str(), v));
    }
    let found: Vec<(&str, &veil_policy::Volume)> = policy
        .services()
        .iter()
        .filter_map(|s| {
            s.volumes
                .iter()
                .find(|v| v.name == volume)
                .map(|v| (s.name.as_str(), v))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Failure::Usage(format!(
            "no service of {session} declares a volume {volume}; {}",
            all()
        ))),
        many => Err(Failure::Usage(format!(
            "services {} of {session} each declare a volume {volume}: pass --service",
            many.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", ")
        ))),
    }
}

// ---------------------------------------------------------------- volumes

fn hex_tag(t: &[u8; 32]) -> String {
    hex::encode(t)
}

/// Fails unless `dir` holds a volume header.
fn require_volume(dir: &Path) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{}: no such directory (not a volume)",
            dir.display()
        )));
    }
    if !dir.join(HEADER_FILE).exists() {
        return Err(Failure::Usage(format!(
            "{} is not a Veil volume (it has no {HEADER_FILE}): make one with `veil fs init`",
            dir.display()
        )));
    }
    Ok(())
}

/// A failure of `dir`'s volume, its message naming the host file or the
/// volume path concerned.
fn volume_failure(dir: &Path, e: FsError) -> Failure {
    let (file, what) = problem_of(&e);
    let msg = match file {
        Some(f) => format!("{}/{f}: {what}", dir.display()),
        None => format!("{}: {what}", dir.display()),
    };
    if is_tampering(&e) {
        Failure::NotAcceptable(msg)
    } else {
        Failure::Usage(msg)
    }
}

/// The host file (header or manifest) an error of opening a volume is
/// about, if it is about one, and what is wrong.
fn problem_of(e: &FsError) -> (Option<&'static str>, String) {
    match e {
        FsError::WrongKeyOrTamperedHeader => (
            Some(HEADER_FILE),
            "wrong key or tampered header: its MAC does not verify under this key (another \
             volume's key, or a header changed or copied from another volume)"
                .to_owned(),
        ),
        FsError::Malformed {
            what: "volume header",
            ..
        } => (Some(HEADER_FILE), e.to_string()),
        FsError::BadManifest => (
            Some(veil_fs::MANIFEST_FILE),
            "does not authenticate under this volume's header and key: the manifest or the \
             header was tampered with, or one of them comes from another volume"
                .to_owned(),
        ),
        _ => (None, e.to_string()),
    }
}

fn open_volume(dir: &Path, k: &FsKeyArgs) -> Result<(Volume, Keyed), Failure> {
    require_volume(dir)?;
    let keyed = key_of(k)?;
    let vol = Volume::open(dir, &keyed.key).map_err(|e| volume_failure(dir, e))?;
    check_policy_mode(&vol, keyed.policy.as_ref());
    Ok((vol, keyed))
}

fn check_policy_mode(vol: &Volume, policy: Option<&PolicyVolume>) {
    if let Some(p) = policy {
        if p.mode != vol.mode() {
            eprintln!(
                "veil: warning: {} is an {} volume, but volume {} of service {} in {} is {} in the policy",
                vol.dir().display(),
                mode_name(vol.mode()),
                p.volume,
                p.service,
                p.session,
                mode_name(p.mode)
            );
        }
    }
}

pub(crate) fn is_new_or_empty(dir: &Path) -> Result<bool, Failure> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Failure::io("cannot read", dir, e)),
    }
}

/// Makes a volume in `dir` (new or empty), making the key file first when
/// one is named and missing (removed again if the volume is not made).
fn init_volume(
    dir: &Path,
    mode: Option<FsMode>,
    chunk: u32,
    k: &FsKeyArgs,
) -> Result<(Volume, Keyed), Failure> {
    let chunk = ChunkSize::new(chunk).map_err(|_| {
        Failure::Usage(format!(
            "--chunk-size {chunk}: not a power of two from 4096 to 1048576"
        ))
    })?;
    if dir.exists() && !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{} exists and is not a directory",
            dir.display()
        )));
    }
    if !is_new_or_empty(dir)? {
        return Err(Failure::Usage(format!(
            "{} is not empty: a volume is made in a new or empty directory",
            dir.display()
        )));
    }
    need_key(k)?;
    let asked = mode.map(|m| match m {
        FsMode::Encrypted => Mode::Encrypted,
        FsMode::Integrity => Mode::Integrity,
    });
    let mut created: Option<&Path> = None;
    let keyed = match &k.key_file {
        Some(path) => {
            if asked.is_none() {
                return Err(Failure::Usage(
                    "--mode encrypted|integrity is needed (with a key file)".into(),
                ));
            }
            match create_key_file(path)? {
                Some(key) => {
                    eprintln!("made a new key file {} (mode 0600): keep it safe, the volume cannot be read without it", path.display());
                    created = Some(path);
                    Keyed { key, policy: None }
                }
                None => Keyed {
                    key: read_key_file(path)?,
                    policy: None,
                },
            }
        }
        None => policy_key(k)?,
    };
    let mode = match (asked, &keyed.policy) {
        (Some(m), Some(p)) if m != p.mode => {
            return Err(Failure::Usage(format!(
                "--mode {} conflicts with the policy: volume {} of service {} in {} is {}",
                mode_name(m),
                p.volume,
                p.service,
                p.session,
                mode_name(p.mode)
            )))
        }
        (_, Some(p)) => p.mode,
        (Some(m), None) => m,
        (None, None) => {
            return Err(Failure::Usage(
                "--mode encrypted|integrity is needed".into(),
            ));
        }
    };
    match Volume::init(dir, &keyed.key, mode, chunk) {
        Ok(vol) => {
            eprintln!(
                "made an {} volume in {} (chunk size {} bytes)",
                mode_name(mode),
                dir.display(),
                chunk.get()
            );
            Ok((vol, keyed))
        }
        Err(e) => {
            if let Some(path) = created {
                let _ = std::fs::remove_file(path);
            }
            Err(volume_failure(dir, e))
        }
    }
}

fn accept_hint(policy: Option<&PolicyVolume>, tag: &str) {
    if let Some(p) = policy {
        eprintln!(
            "to make the CAS expect this version: veil volume accept {} {} {} --tag {tag}",
            p.session, p.service, p.volume
        );
    }
}

pub fn init(a: FsInitArgs) -> Result<(), Failure> {
    let (vol, keyed) = init_volume(&a.vol, a.mode, a.chunk_size, &a.key)?;
    let tag = hex_tag(&vol.tag());
    println!("{tag}");
    accept_hint(keyed.policy.as_ref(), &tag);
    Ok(())
}

pub fn tag(a: FsTagArgs) -> Result<(), Failure> {
    let tag = if has_key(&a.key) {
        let (vol, _) = open_volume(&a.vol, &a.key)?;
        vol.tag()
    } else {
        require_volume(&a.vol)?;
        Volume::tag_on_disk(&a.vol)
            .map_err(|e| volume_failure(&a.vol, e))?
            .ok_or_else(|| Failure::Usage(format!("{} is not a Veil volume", a.vol.display())))?
    };
    println!("{}", hex_tag(&tag));
    Ok(())
}

// ---------------------------------------------------------------- progress

/// Progress on stderr: a bar on a terminal (for SHOW_PROGRESS_FROM bytes or
/// more, or with --progress); with --progress elsewhere, a plain line at
/// most every second and one at the end; hidden otherwise.
struct Progress {
    bar: ProgressBar,
    log: Option<Arc<LineLog>>,
}

impl Progress {
    fn new(what: &'static str, total: u64, forced: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let mut log = None;
        let (target, template) = if tty && (forced || total >= SHOW_PROGRESS_FROM) {
            (
                ProgressDrawTarget::stderr(),
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
        } else if forced {
            let l = Arc::new(LineLog::default());
            log = Some(l.clone());
            (
                ProgressDrawTarget::term_like_with_hz(Box::new(SharedLog(l)), 1),
                "{msg}: {bytes}/{total_bytes} ({binary_bytes_per_sec}, {elapsed} elapsed)",
            )
        } else {
            return Progress {
                bar: ProgressBar::hidden(),
                log: None,
            };
        };
        let style = ProgressStyle::with_template(template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(Some(total), target);
        bar.set_style(style);
        bar.set_message(what);
        Progress { bar, log }
    }

    fn set_position(&self, n: u64) {
        self.bar.set_position(n);
    }

    /// Done: the final state is shown.
    fn finish(&self) {
        self.bar.finish();
        if let Some(l) = &self.log {
            l.emit_held();
        }
    }

    /// Failed: the bar stays as it is.
    fn abandon(&self) {
        self.bar.abandon();
        if let Some(l) = &self.log {
            l.emit_held();
        }
    }

    /// Prints a warning without breaking the bar.
    fn warn(&self, msg: &str) {
        self.bar.suspend(|| eprintln!("veil: warning: {msg}"));
    }
}

/// A "terminal" for progress on a pipe or a file: redraws become plain
/// lines on stderr, at most one a second (the latest one held back is
/// printed at the end).
#[derive(Debug, Default)]
struct LineLog(Mutex<LineState>);

#[derive(Debug, Default)]
struct LineState {
    line: String,
    held: Option<String>,
    last: Option<std::time::Instant>,
}

impl LineLog {
    fn emit(line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }

    fn emit_held(&self) {
        if let Ok(mut st) = self.0.lock() {
            if let Some(line) = st.held.take() {
                Self::emit(&line);
            }
        }
    }
}

#[derive(Debug)]
struct SharedLog(Arc<LineLog>);

impl TermLike for SharedLog {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)?;
        self.flush()
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        if let Ok(mut st) = self.0 .0.lock() {
            st.line.push_str(s.trim_start_matches('\r'));
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        let Ok(mut st) = self.0 .0.lock() else {
            return Ok(());
        };
        let line = std::mem::take(&mut st.line).trim_end().to_owned();
        if line.is_empty() {
            return Ok(());
        }
        let now = std::time::Instant::now();
        if st
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            st.last = Some(now);
            st.held = None;
            LineLog::emit(&line);
        } else {
            st.held = Some(line);
        }
        Ok(())
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

// ---------------------------------------------------------------- encrypt

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

/// One directory or regular file of the source tree.
struct SrcEntry {
    /// On the host.
    host: PathBuf,
    /// In the volume.
    vpath: String,
    kind: Kind,
    mode: u32,
    mtime_ns: i64,
    len: u64,
}

fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    }
}

/// The tree under `src`, parents before children, names in order; and the
/// special files (symlinks, FIFOs, sockets, devices) met.
fn scan(src: &Path) -> Result<(Vec<SrcEntry>, Vec<String>), Failure> {
    let md = std::fs::metadata(src).map_err(|e| Failure::io("cannot read", src, e))?;
    if !md.is_dir() {
        return Err(Failure::Usage(format!(
            "{} is not a directory",
            src.display()
        )));
    }
    let mut out = vec![SrcEntry {
        host: src.to_owned(),
        vpath: "/".to_owned(),
        kind: Kind::Dir,
        mode: md.mode() & 0o7777,
        mtime_ns: mtime_ns(&md),
        len: 0,
    }];
    let mut specials = Vec::new();
    // Depth first: every directory comes before what it holds.
    fn walk(
        dir: &Path,
        vdir: &str,
        out: &mut Vec<SrcEntry>,
        specials: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let base = if vdir == "/" { "" } else { vdir };
        let mut children: Vec<(String, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Failure::io("cannot read", dir, e))? {
            let e = e.map_err(|e| Failure::io("cannot read", dir, e))?;
            let host = e.path();
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                return Err(Failure::Usage(format!(
                    "{}: the name is not UTF-8, and volume paths are",
                    host.display()
                )));
            };
            children.push((format!("{base}/{name}"), host));
        }
        children.sort();
        for (vpath, host) in children {
            veil_fs::check_path(&vpath)
                .map_err(|e| Failure::Usage(format!("{}: {e}", host.display())))?;
            let md = std::fs::symlink_metadata(&host)
                .map_err(|e| Failure::io("cannot read", &host, e))?;
            let ft = md.file_type();
            if ft.is_dir() {
                out.push(SrcEntry {
                    host: host.clone(),
                    vpath: vpath.clone(),
                    kind: Kind::Dir,
                    mode: md.mode() & 0o7777,
                    mtime_ns: mtime_ns(&md),
                    len: 0,
                });
                walk(&host, &vpath, out, specials)?;
            } else if ft.is_file() {
                out.push(SrcEntry {
                    host,
                    vpath,
                    kind: Kind::File,
                    mode: md.mode() & 0o7777,
                    mtime_ns: mtime_ns(&md),
                    len: md.len(),
                });
            } else {
                specials.push(format!("{} ({})", host.display(), special_kind(&ft)));
            }
        }
        Ok(())
    }
    walk(src, "/", &mut out, &mut specials)?;
    Ok((out, specials))
}

/// Removes `path` from the volume, with everything under it.
fn remove_tree(vol: &Volume, path: &str) -> Result<(), FsError> {
    if vol.stat(path)?.kind == EntryKind::File {
        return vol.unlink(path);
    }
    let prefix = format!("{path}/");
    let mut under: Vec<(String, Stat)> = vol
        .walk()
        .into_iter()
        .filter(|(p, _)| p.starts_with(&prefix))
        .collect();
    // Children sort after their parents: reversed, they go first.
    under.reverse();
    for (p, s) in under {
        if s.kind == EntryKind::File {
            vol.unlink(&p)?;
        } else {
            vol.rmdir(&p)?;
        }
    }
    vol.rmdir(path)
}

/// Reads until `buf` is full or the end.
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Rewrites file `path` in place (it keeps its file id) from `src`.
fn rewrite(
    vol: &Volume,
    path: &str,
    mode: u32,
    src: &mut dyn Read,
    host: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, Failure> {
    vol.truncate(path, 0)?;
    vol.chmod(path, mode)?;
    let mut buf = vec![0u8; REWRITE_BATCH];
    let mut off = 0u64;
    loop {
        let n = read_full(src, &mut buf).map_err(|e| Failure::io("cannot read", host, e))?;
        if n == 0 {
            break;
        }
        vol.write(path, off, &buf[..n])?;
        off += n as u64;
        progress(off);
        if n < buf.len() {
            break;
        }
    }
    Ok(off)
}

fn is_within(inner: &Path, outer: &Path) -> bool {
    match (inner.canonicalize(), outer.canonicalize()) {
        (Ok(i), Ok(o)) => i.starts_with(o),
        _ => false,
    }
}

pub fn encrypt(a: FsEncryptArgs) -> Result<(), Failure> {
    let (tag, policy) = encrypt_tree(&a)?;
    println!("{tag}");
    accept_hint(policy.as_ref(), &tag);
    Ok(())
}

/// Encrypts the tree `a.src` into the volume `a.vol`; returns the new
/// freshness tag (hex) and the policy volume the key came from, if any.
fn encrypt_tree(a: &FsEncryptArgs) -> Result<(String, Option<PolicyVolume>), Failure> {
    if is_within(&a.vol, &a.src) {
        return Err(Failure::Usage(format!(
            "the volume {} is inside the source tree {}",
            a.vol.display(),
            a.src.display()
        )));
    }
    let (entries, specials) = scan(&a.src)?;
    if !specials.is_empty() && !a.skip_special {
        let shown: Vec<&str> = specials.iter().take(10).map(String::as_str).collect();
        let more = specials.len().saturating_sub(shown.len());
        return Err(Failure::Usage(format!(
            "{} holds {} file(s) that are neither regular files nor directories, which a volume cannot hold: {}{}; pass --skip-special to leave them out",
            a.src.display(),
            specials.len(),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        )));
    }
    let (vol, keyed) = if a.vol.join(HEADER_FILE).exists() {
        let (vol, keyed) = open_volume(&a.vol, &a.key)?;
        if let Some(m) = a.mode {
            let m = match m {
                FsMode::Encrypted => Mode::Encrypted,
                FsMode::Integrity => Mode::Integrity,
            };
            if m != vol.mode() {
                return Err(Failure::Usage(format!(
                    "{} is already an {} volume (--mode {})",
                    a.vol.display(),
                    mode_name(vol.mode()),
                    mode_name(m)
                )));
            }
        }
        (vol, keyed)
    } else if a.init {
        init_volume(&a.vol, a.mode, a.chunk_size, &a.key)?
    } else {
        return Err(Failure::Usage(format!(
            "{} is not a volume: make it with `veil fs init`, or pass --init",
            a.vol.display()
        )));
    };

    // Refuse before changing anything.
    let existing: BTreeMap<String, Stat> = vol.walk().into_iter().collect();
    let conflicts: Vec<&str> = entries
        .iter()
        .filter(|e| e.vpath != "/")
        .filter(|e| match existing.get(&e.vpath) {
            Some(st) => !(st.kind == EntryKind::Dir && e.kind == Kind::Dir),
            None => false,
        })
        .map(|e| e.vpath.as_str())
        .collect();
    if !conflicts.is_empty() && !a.force {
        return Err(Failure::Usage(format!(
            "the volume {} already has {}{}: pass --force to replace",
            a.vol.display(),
            conflicts[0],
            match conflicts.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more path(s) of the tree)"),
            }
        )));
    }

    let mut total: u64 = entries.iter().map(|e| e.len).sum();
    let pb = Progress::new("encrypting", total, a.progress);
    for s in &specials {
        pb.warn(&format!("skipped {s}"));
    }
    let mut done = 0u64;
    let (mut files, mut dirs) = (0u64, 0u64);
    for e in entries.iter().filter(|e| e.vpath != "/") {
        let present = match vol.stat(&e.vpath) {
            Ok(st) => Some(st.kind),
            Err(FsError::NotFound(_)) => None,
            Err(err) => return Err(volume_failure(&a.vol, err)),
        };
        match e.kind {
            Kind::Dir => {
                dirs += 1;
                match present {
                    Some(EntryKind::Dir) => vol.chmod(&e.vpath, e.mode)?,
                    Some(_) => {
                        remove_tree(&vol, &e.vpath)?;
                        vol.mkdir(&e.vpath, e.mode)?;
                    }
                    None => vol.mkdir(&e.vpath, e.mode)?,
                }
            }
            Kind::File => {
                files += 1;
                let mut src =
                    File::open(&e.host).map_err(|err| Failure::io("cannot read", &e.host, err))?;
                let base = done;
                let mut tell = |n: u64| pb.set_position(base + n);
                let len = match present {
                    Some(EntryKind::File) => {
                        rewrite(&vol, &e.vpath, e.mode, &mut src, &e.host, &mut tell)?
                    }
                    other => {
                        if other.is_some() {
                            remove_tree(&vol, &e.vpath)?;
                        }
                        vol.import(&e.vpath, e.mode, &mut src, &mut tell)
                            .map_err(|err| volume_failure(&a.vol, err))?
                    }
                };
                if len != e.len {
                    // Changed since the scan.
                    total = total - e.len + len;
                    pb.bar.set_length(total);
                }
                done += len;
                pb.set_position(done);
                vol.set_mtime(&e.vpath, e.mtime_ns)?;
            }
        }
    }
    // Directory times last, deepest first (the root is the first entry).
    for e in entries.iter().rev().filter(|e| e.kind == Kind::Dir) {
        vol.chmod(&e.vpath, e.mode)?;
        vol.set_mtime(&e.vpath, e.mtime_ns)?;
    }
    let tag = vol.sync().map_err(|e| volume_failure(&a.vol, e))?;
    pb.finish();
    let tag = hex_tag(&tag);
    eprintln!(
        "encrypted {} ({done} bytes) and {} from {} into {}",
        plural(files, "file", "files"),
        plural(dirs, "directory", "directories"),
        a.src.display(),
        a.vol.display()
    );
    Ok((tag, keyed.policy))
}

/// `encrypt` for other commands: the tag only.
pub(crate) fn encrypt_into(a: &FsEncryptArgs) -> Result<String, Failure> {
    encrypt_tree(a).map(|(tag, _)| tag)
}

// ---------------------------------------------------------------- decrypt

fn system_time(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

fn set_mtime(path: &Path, ns: i64) -> Result<(), Failure> {
    let f = File::open(path).map_err(|e| Failure::io("cannot open", path, e))?;
    f.set_times(std::fs::FileTimes::new().set_modified(system_time(ns)))
        .map_err(|e| Failure::io("cannot set the time of", path, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Failure> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Failure::io("cannot set the mode of", path, e))
}

/// Where volume path `vpath` goes under `dst` (only plain names).
fn host_path(dst: &Path, vpath: &str) -> Result<PathBuf, Failure> {
    let rel = Path::new(vpath.trim_start_matches('/'));
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Failure::NotAcceptable(format!(
            "{vpath}: not a plain path in the volume"
        )));
    }
    Ok(dst.join(rel))
}

pub fn decrypt(a: FsDecryptArgs) -> Result<(), Failure> {
    if a.dst.exists() && !a.dst.is_dir() {
        return Err(Failure::Usage(format!(
            "{} exists and is not a directory",
            a.dst.display()
        )));
    }
    if !is_new_or_empty(&a.dst)? {
        return Err(Failure::Usage(format!(
            "{} is not empty: decrypt into a new or empty directory",
            a.dst.display()
        )));
    }
    let (vol, _) = open_volume(&a.vol, &a.key)?;
    let entries = vol.walk();
    let total: u64 = entries
        .iter()
        .filter(|(_, s)| s.kind == EntryKind::File)
        .map(|(_, s)| s.len)
        .sum();
    std::fs::create_dir_all(&a.dst).map_err(|e| Failure::io("cannot create", &a.dst, e))?;
    let pb = Progress::new("decrypting", total, a.progress);
    let mut done = 0u64;
    let (mut files, mut dirs) = (0u64, 0u64);
    for (vpath, st) in entries.iter().filter(|(p, _)| p != "/") {
        let out = host_path(&a.dst, vpath)?;
        if st.kind == EntryKind::Dir {
            dirs += 1;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&out)
                .map_err(|e| Failure::io("cannot create", &out, e))?;
            continue;
        }
        files += 1;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&out)
            .map_err(|e| Failure::io("cannot create", &out, e))?;
        let base = done;
        let r = vol.export(vpath, &mut f, &mut |n| pb.set_position(base + n));
        let r = r
            .map_err(|e| (true, e.to_string(), is_tampering(&e)))
            .and_then(|len| {
                f.sync_all()
                    .map(|()| len)
                    .map_err(|e| (false, format!("writing {}: {e}", out.display()), false))
            });
        drop(f);
        match r {
            Ok(len) => done += len,
            Err((from_volume, msg, tampered)) => {
                pb.abandon();
                let _ = std::fs::remove_file(&out);
                let msg = format!(
                    "{msg}; stopped: {} was removed (already decrypted into {}: {})",
                    out.display(),
                    a.dst.display(),
                    plural(files - 1, "file", "files")
                );
                return Err(if from_volume && tampered {
                    Failure::NotAcceptable(msg)
                } else {
                    Failure::Usage(msg)
                });
            }
        }
        set_mode(&out, st.mode)?;
        set_mtime(&out, st.mtime_ns)?;
    }
    // Directories last, deepest first: times, then modes (which may take
    // away the write permission).
    for (vpath, st) in entries
        .iter()
        .rev()
        .filter(|(_, s)| s.kind == EntryKind::Dir)
    {
        let out = if vpath == "/" {
            a.dst.clone()
        } else {
            host_path(&a.dst, vpath)?
        };
        set_mtime(&out, st.mtime_ns)?;
        set_mode(&out, st.mode)?;
    }
    pb.finish();
    eprintln!(
        "decrypted {} ({done} bytes) and {} from {} into {}",
        plural(files, "file", "files"),
        plural(dirs, "directory", "directories"),
        a.vol.display(),
        a.dst.display()
    );
    Ok(())
}

// ---------------------------------------------------------------- verify

/// Bytes this process has read so far (Linux `/proc/self/io`, `rchar`).
fn bytes_read() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `Volume::verify`, with progress measured as the bytes this process reads
/// (verify reads every record once, and each record's nonce and tag once
/// more; `total` is that estimate).
fn verify_with_progress(vol: &Volume, total: u64, forced: bool) -> Vec<veil_fs::Problem> {
    let pb = Progress::new("verifying", total, forced);
    let start = bytes_read();
    let problems = match start {
        Some(start) if !pb.bar.is_hidden() => {
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(now) = bytes_read() {
                            pb.set_position(now.saturating_sub(start).min(total));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                });
                let problems = vol.verify();
                stop.store(true, Ordering::Relaxed);
                problems
            })
        }
        _ => vol.verify(),
    };
    pb.set_position(total);
    pb.finish();
    problems
}

fn normalize_tag(t: &str) -> Result<String, Failure> {
    let t = t.trim().to_ascii_lowercase();
    if veil_api::is_volume_tag(&t) {
        Ok(t)
    } else {
        Err(Failure::Usage(format!(
            "{t:?} is not a volume tag: expected 64 hex digits"
        )))
    }
}

pub fn verify(a: FsVerifyArgs) -> Result<(), Failure> {
    require_volume(&a.vol)?;
    let expected = a.expect_tag.as_deref().map(normalize_tag).transpose()?;
    let keyed = key_of(&a.key)?;
    let found = Volume::tag_on_disk(&a.vol)
        .map_err(|e| volume_failure(&a.vol, e))?
        .map(|t| hex_tag(&t))
        .ok_or_else(|| Failure::Usage(format!("{} is not a Veil volume", a.vol.display())))?;
    let shown = a.vol.display().to_string();
    let mut report = serde_json::json!({
        "volume": shown,
        "tag": found,
        "expected_tag": expected,
        "expected": expected.as_ref().map(|e| *e == found),
        "intact": null,
        "files": null,
        "bytes": null,
        "problems": [],
    });
    if let Some(exp) = &expected {
        if *exp != found {
            if a.json {
                println!("{report}");
            }
            return Err(Failure::NotAcceptable(format!(
                "{shown} is not the expected version: expected {exp}, found {found}"
            )));
        }
    }
    let mut problems: Vec<(String, String)> = Vec::new();
    match Volume::open(&a.vol, &keyed.key) {
        Err(e) if is_tampering(&e) => {
            let (file, what) = problem_of(&e);
            match (file, &e) {
                (Some(f), _) => problems.push((f.to_owned(), what)),
                (None, FsError::InFile { path, .. } | FsError::NotCurrent { path, .. }) => {
                    let what = what
                        .strip_prefix(&format!("{path}: "))
                        .map(str::to_owned)
                        .unwrap_or(what);
                    problems.push((path.clone(), what));
                }
                (None, _) => problems.push((".".to_owned(), what)),
            }
        }
        Err(e) => return Err(volume_failure(&a.vol, e)),
        Ok(vol) => {
            check_policy_mode(&vol, keyed.policy.as_ref());
            let cs = u64::from(vol.chunk_size().get());
            let files: Vec<Stat> = vol
                .walk()
                .into_iter()
                .map(|(_, s)| s)
                .filter(|s| s.kind == EntryKind::File)
                .collect();
            let bytes: u64 = files.iter().map(|s| s.len).sum();
            let reads: u64 = files
                .iter()
                .map(|s| {
                    let records = s.len.div_ceil(cs).max(1);
                    veil_fs::FILE_HEADER_LEN as u64
                        + s.len
                        + 2 * records * veil_fs::RECORD_OVERHEAD as u64
                })
                .sum();
            report["files"] = files.len().into();
            report["bytes"] = bytes.into();
            for p in verify_with_progress(&vol, reads, a.progress) {
                let what = p
                    .what
                    .strip_prefix(&format!("{}: ", p.path))
                    .map(str::to_owned)
                    .unwrap_or(p.what);
                problems.push((p.path, what));
            }
        }
    }
    report["intact"] = problems.is_empty().into();
    report["problems"] = problems
        .iter()
        .map(|(path, what)| serde_json::json!({ "path": path, "what": what }))
        .collect::<Vec<_>>()
        .into();
    if a.json {
        println!("{report}");
    } else {
        for (path, what) in &problems {
            println!("{path}: {what}");
        }
    }
    if !problems.is_empty() {
        return Err(Failure::NotAcceptable(format!(
            "{shown} is not intact: {}{}",
            plural(problems.len() as u64, "problem", "problems"),
            match problems.as_slice() {
                [(path, what)] => format!(": {path}: {what}"),
                _ => " (listed above)".to_owned(),
            }
        )));
    }
    if !a.json {
        println!(
            "{shown} is intact: {}, {} bytes; tag {found}",
            plural(report["files"].as_u64().unwrap_or(0), "file", "files"),
            report["bytes"]
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- mount

fn mount_failure(vol: &Path, e: veil_fuse::MountError) -> Failure {
    match e {
        veil_fuse::MountError::Volume(e) => volume_failure(vol, e),
        e => Failure::Usage(e.to_string()),
    }
}

pub fn mount(a: FsMountArgs) -> Result<(), Failure> {
    let (vol, _) = open_volume(&a.vol, &a.key)?;
    let vol = Arc::new(vol);
    let mut options = veil_fuse::MountOptions::default();
    options.volume_dir = Some(a.vol.clone());
    options.read_only = a.read_only;
    // Signals are caught from before the mount exists: a SIGTERM while
    // mounting still ends in a clean unmount.
    let ended = veil_fuse::mount_foreground(vol.clone(), &a.mountpoint, &options, &mut |m| {
        eprintln!(
            "mounted {} at {}; Ctrl-C to unmount",
            a.vol.display(),
            m.mountpoint().display()
        );
    })
    .map_err(|e| mount_failure(&a.vol, e))?;
    let why = match ended {
        veil_fuse::Ended::Signal(_) => "on a signal",
        veil_fuse::Ended::Unmounted => "from outside",
    };
    let tag = hex_tag(&vol.tag());
    eprintln!(
        "unmounted {} {why}; the volume is committed",
        a.mountpoint.display()
    );
    println!("{tag}");
    Ok(())
}
