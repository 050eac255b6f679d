//! `veil encrypt` and `veil decrypt`: one file or stream in the veil-seal v1
//! format (`docs/spec/seal.md`), with the habits of age.
//!
//! * Input: a file, or standard input when none (or `-`) is given. Output:
//!   `-o FILE`, or standard output. `-o` writes a temporary file (mode 0600)
//!   beside FILE and renames it into place only on success: a failed run
//!   leaves no output file (and an existing FILE as it was; a symbolic link
//!   is followed, and a FILE that is not a regular file, such as /dev/null
//!   or a FIFO, is written directly). On standard output a failed `decrypt`
//!   may already have written the authentic chunks before the failing one;
//!   the message says so.
//! * `encrypt` refuses to write ciphertext to a terminal; `decrypt` refuses
//!   to read ciphertext from one.
//! * The key is a key file (`--key-file`: 64 lower-case hex digits and an
//!   optional newline) or a session secret read back from the CAS by an
//!   owner over mutual TLS (`--session NS/NAME --secret NAME`: a 32-byte
//!   key kind, exported to owners), as `veil fs` reads volume keys. The key
//!   is never printed.
//! * Exit codes: 0 ok; 1 the input is not authentic under this key (wrong
//!   key, a modified, truncated or extended file, not a veil-seal file, an
//!   unsupported version, with the chunk named) or the secret is not
//!   exported to owners; 2 usage or I/O.
//! * A progress bar goes to stderr when it is a terminal and the input is
//!   4 MiB or more (for a stream of unknown size, once 4 MiB have passed).

use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use veil_seal::Key;

use crate::cli::{SealArgs, SealKeyArgs};
use crate::failure::Failure;

/// Below this many bytes of input no progress bar is shown.
const SHOW_PROGRESS_FROM: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encrypt,
    Decrypt,
}

pub fn encrypt(a: SealArgs) -> Result<(), Failure> {
    run(a, Direction::Encrypt)
}

pub fn decrypt(a: SealArgs) -> Result<(), Failure> {
    run(a, Direction::Decrypt)
}

/// A path, or None for `-` and for no path (standard input or output).
fn named(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref().filter(|p| p.as_os_str() != "-")
}

fn run(a: SealArgs, dir: Direction) -> Result<(), Failure> {
    let in_path = named(&a.input);
    let out_path = named(&a.output);
    // Refusals before any key is read or any output made.
    if out_path.is_none() && dir == Direction::Encrypt && std::io::stdout().is_terminal() {
        return Err(Failure::Usage(
            "refusing to write binary ciphertext to a terminal: pass -o FILE, or redirect standard output"
                .into(),
        ));
    }
    if in_path.is_none() && dir == Direction::Decrypt && std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "no input: give the file to decrypt, or pipe it into standard input".into(),
        ));
    }
    let (mut input, shown_in, size) = open_input(in_path)?;
    let target = out_path.map(target_of).transpose()?;
    let key = key_of(&a.key)?;
    let what = match dir {
        Direction::Encrypt => "encrypting",
        Direction::Decrypt => "decrypting",
    };
    let pb = Progress::new(what, size);
    let mut tick = |n: u64| pb.set_position(n);
    let (mut out, shown_out) = match target {
        Some(Target::File(path)) => {
            let tmp = temp_beside(&path)?;
            // A new regular file: written by two threads at offsets.
            let done = match dir {
                Direction::Encrypt => {
                    veil_seal::encrypt_to_file(&key, &mut input, tmp.as_file(), &mut tick)
                }
                Direction::Decrypt => {
                    veil_seal::decrypt_to_file(&key, &mut input, tmp.as_file(), &mut tick)
                }
            };
            return match done {
                Ok(_) => {
                    tmp.as_file()
                        .sync_all()
                        .map_err(|e| Failure::io("cannot write", tmp.path(), e))?;
                    tmp.persist(&path)
                        .map_err(|e| Failure::io("cannot rename the output to", &path, e.error))?;
                    pb.finish();
                    Ok(())
                }
                Err(e) => {
                    pb.abandon();
                    // Dropping the temporary file removes it.
                    drop(tmp);
                    Err(failure(
                        dir,
                        e,
                        &shown_in,
                        &path.display().to_string(),
                        &format!("; nothing was written to {}", path.display()),
                    ))
                }
            };
        }
        Some(Target::Special(path)) => (
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Failure::io("cannot write", &path, e))?,
            path.display().to_string(),
        ),
        None => (
            std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map(File::from)
                .map_err(|e| Failure::Usage(format!("cannot use standard output: {e}")))?,
            "standard output".to_owned(),
        ),
    };
    // A stream: what was written before a failure stays written.
    match pipe(dir, &key, &mut input, &mut out, &mut tick) {
        Ok(_) => {
            pb.finish();
            Ok(())
        }
        Err(e) => {
            pb.abandon();
            let after = match (dir, e.chunk()) {
                (Direction::Decrypt, Some(i)) if i > 0 => format!(
                    "; {shown_out} may already hold chunks before chunk {i} (authentic, but not the whole file): discard it"
                ),
                (Direction::Decrypt, _) => String::new(),
                (Direction::Encrypt, _) => format!("; the ciphertext on {shown_out} is incomplete"),
            };
            Err(failure(dir, e, &shown_in, &shown_out, &after))
        }
    }
}

/// Where `-o PATH` writes.
enum Target {
    /// A regular file, new or replaced (a symbolic link's target): written
    /// as a temporary file beside it and renamed on success.
    File(PathBuf),
    /// An existing file that is not a regular one (`/dev/null`, a FIFO):
    /// written directly, as a stream.
    Special(PathBuf),
}

fn target_of(path: &Path) -> Result<Target, Failure> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => Err(Failure::Usage(format!(
            "{} is a directory: -o takes a file",
            path.display()
        ))),
        Ok(md) if md.is_file() => Ok(Target::File(
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
        )),
        Ok(_) => Ok(Target::Special(path.to_owned())),
        Err(_) => Ok(Target::File(path.to_owned())),
    }
}

fn pipe(
    dir: Direction,
    key: &Key,
    input: &mut File,
    output: &mut File,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, veil_seal::Error> {
    match dir {
        Direction::Encrypt => veil_seal::encrypt(key, input, output, progress),
        Direction::Decrypt => veil_seal::decrypt(key, input, output, progress),
    }
}

/// The input, its name for messages, and its size when it is a regular
/// file.
fn open_input(path: Option<&Path>) -> Result<(File, String, Option<u64>), Failure> {
    let (f, shown) = match path {
        Some(p) => (
            File::open(p).map_err(|e| Failure::io("cannot read", p, e))?,
            p.display().to_string(),
        ),
        None => (
            std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map(File::from)
                .map_err(|e| Failure::Usage(format!("cannot use standard input: {e}")))?,
            "standard input".to_owned(),
        ),
    };
    let md = f
        .metadata()
        .map_err(|e| Failure::Usage(format!("cannot read {shown}: {e}")))?;
    if md.is_dir() {
        return Err(Failure::Usage(format!(
            "{shown} is a directory (`veil fs encrypt` protects directory trees)"
        )));
    }
    let size = md.is_file().then_some(md.len());
    Ok((f, shown, size))
}

/// A temporary file in `path`'s directory, removed when dropped.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, Failure> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".veil-tmp")
        .tempfile_in(parent)
        .map_err(|e| Failure::io("cannot create a temporary file in", parent, e))
}

/// The failure for a veil-seal error: 1 when the input is not authentic,
/// 2 for I/O (naming the file) and the rest.
fn failure(dir: Direction, e: veil_seal::Error, input: &str, output: &str, after: &str) -> Failure {
    use veil_seal::Error as E;
    match e {
        E::Read(e) => Failure::Usage(format!("cannot read {input}: {e}{after}")),
        E::Write(e) => Failure::Usage(format!("cannot write {output}: {e}{after}")),
        e if e.is_integrity() && dir == Direction::Decrypt => {
            Failure::NotAcceptable(format!("{input}: {e}{after}"))
        }
        e => Failure::Usage(format!("{input}: {e}{after}")),
    }
}

// ---------------------------------------------------------------- keys

fn key_of(k: &SealKeyArgs) -> Result<Key, Failure> {
    match (&k.key_file, &k.session) {
        (Some(path), _) => read_key_file(path),
        (None, Some(_)) => secret_key(k),
        (None, None) => Err(Failure::Usage(
            "this needs a key: pass --key-file FILE, or --session NS/NAME --secret NAME (a 32-byte secret exported to owners)"
                .into(),
        )),
    }
}

fn read_key_file(path: &Path) -> Result<Key, Failure> {
    let bytes = crate::cmd::owner::read_key_file(path, "key file")?;
    Ok(Key::from_bytes(*bytes))
}

/// A session secret, read back from the CAS by an owner (mutual TLS): the
/// same path as `veil fs --session --volume` takes for a volume key.
fn secret_key(k: &SealKeyArgs) -> Result<Key, Failure> {
    let (Some(session), Some(secret)) = (k.session.as_deref(), k.secret.as_deref()) else {
        return Err(Failure::Usage(
            "--session needs --secret NAME (the secret's name in the policy)".into(),
        ));
    };
    let owned = crate::cmd::owner::owned_session(&k.cas, session)?;
    let policy = &owned.policy;
    let spec = policy.secret(secret).ok_or_else(|| {
        let usable: Vec<&str> = policy
            .secrets()
            .iter()
            .filter(|s| is_key_kind(&s.kind))
            .map(|s| s.name.as_str())
            .collect();
        Failure::Usage(format!(
            "{session} declares no secret {secret}; {}",
            if usable.is_empty() {
                "it has no 32-byte key secret (add one: `{ name: NAME, kind: aes-256, export: [{ owner: true }] }`)".to_owned()
            } else {
                format!("its 32-byte key secrets: {}", usable.join(", "))
            }
        ))
    })?;
    match &spec.kind {
        veil_policy::SecretKind::Import {
            session: from,
            secret: there,
        } => {
            return Err(Failure::Usage(format!(
                "secret {secret} of {session} is imported from secret {there} of {from}: owners read it there (export it to owners in {from} and pass --session {from} --secret {there})"
            )));
        }
        kind if !is_key_kind(kind) => {
            return Err(Failure::Usage(format!(
                "secret {secret} of {session} is a {} secret, not a 32-byte key: use an aes-256 secret (or bytes of size 32)",
                kind.as_str()
            )));
        }
        _ => {}
    }
    let bytes = owned.key_bytes(secret, "the key")?;
    Ok(Key::from_bytes(*bytes))
}

/// Kinds whose value may be a 32-byte key (a supplied secret's length is
/// checked when it is read).
fn is_key_kind(kind: &veil_policy::SecretKind) -> bool {
    use veil_policy::SecretKind as K;
    matches!(kind, K::Aes256 | K::Bytes { size: 32 } | K::Supplied)
}

// ---------------------------------------------------------------- progress

/// A progress bar on stderr when it is a terminal: from the start for a
/// file of SHOW_PROGRESS_FROM bytes or more, once that many have passed for
/// a stream of unknown size; hidden otherwise.
struct Progress {
    bar: ProgressBar,
    /// Unknown size, not drawn yet.
    pending: std::cell::Cell<bool>,
}

impl Progress {
    fn new(what: &'static str, size: Option<u64>) -> Progress {
        let hidden = Progress {
            bar: ProgressBar::hidden(),
            pending: std::cell::Cell::new(false),
        };
        if !std::io::stderr().is_terminal() {
            return hidden;
        }
        let template = match size {
            Some(n) if n >= SHOW_PROGRESS_FROM => {
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
            }
            Some(_) => return hidden,
            None => "{msg} {bytes} {binary_bytes_per_sec} {elapsed}",
        };
        let style = ProgressStyle::with_template(template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = match size {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
        };
        bar.set_style(style);
        bar.set_message(what);
        Progress {
            bar,
            pending: std::cell::Cell::new(size.is_none()),
        }
    }

    fn set_position(&self, n: u64) {
        if self.pending.get() && n >= SHOW_PROGRESS_FROM {
            self.pending.set(false);
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_position(n);
    }

    fn finish(&self) {
        self.bar.finish();
    }

    fn abandon(&self) {
        self.bar.abandon();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}
