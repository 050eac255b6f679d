#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! `veil run` end to end through the real binary: a development CAS that
//! trusts this test's simulated TEE key, policies applied with the CLI, and
//! real, unmodified programs (sh, python3, sqlite3, redis-server, memcached)
//! that receive secrets in their environment, arguments and files.
//!
//! Each test has its own temporary directory, `VEIL_HOME` and CAS; every
//! process a test starts is owned by a [`Proc`] that kills it when dropped.
//! Ports are chosen at run time on 127.0.0.1.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const VEIL: &str = env!("CARGO_BIN_EXE_veil");
/// The longest any single launcher run may take.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Processes

/// A process this test started: killed and reaped when dropped.
struct Proc {
    child: Child,
    what: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        // Owned at once, so a failed assertion below still kills it (Drop).
        Proc {
            child,
            what: what.to_owned(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not end within {limit:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends `sig` (a name such as `TERM`) to `pid`, with the shell's `kill`.
fn signal(pid: u32, sig: &str) {
    let st = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -{sig} {pid}"))
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A YAML double-quoted scalar (JSON strings are valid ones).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn sha384sum(path: &Path) -> String {
    let o = Command::new("sha384sum").arg(path).output().unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Where `path` is mounted in the mount table `mountinfo`, its fs type.
fn mount_fstype(mountinfo: &str, path: &Path) -> Option<String> {
    let want = path.to_str().unwrap();
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        (point == want).then(|| right.split(' ').next().unwrap_or("").to_owned())
    })
}

/// Every regular file under `dir`.
fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            all_files(&p, out);
        } else if t.is_file() {
            out.push(p);
        }
    }
}

/// The pids of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Whether `pid` is gone or a zombie (its parent died; pid 1 may be slow to
/// reap it).
fn dead_or_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Pids of processes whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Policies

/// One service of a policy, written in YAML by [`policy`].
struct Svc {
    name: String,
    accept: Vec<String>,
    command: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<(PathBuf, String, Option<&'static str>)>,
    host_args: bool,
    host_env: Vec<String>,
    volumes: Vec<String>,
}

fn svc(name: &str, accept: &str, command: &[&str]) -> Svc {
    Svc {
        name: name.to_owned(),
        accept: vec![accept.to_owned()],
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: Vec::new(),
        files: Vec::new(),
        host_args: false,
        host_env: Vec::new(),
        volumes: Vec::new(),
    }
}

impl Svc {
    fn env(mut self, k: &str, v: &str) -> Svc {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    fn file(mut self, path: &Path, content: &str, mode: Option<&'static str>) -> Svc {
        self.files.push((path.to_owned(), content.to_owned(), mode));
        self
    }

    fn host_args(mut self) -> Svc {
        self.host_args = true;
        self
    }

    fn volume(mut self, name: &str, path: &Path, mode: &str, key: &str) -> Svc {
        self.volumes.push(format!(
            "{{ name: {name}, path: {}, mode: {mode}, key: {key} }}",
            q(path.to_str().unwrap())
        ));
        self
    }

    fn host_env(mut self, names: &[&str]) -> Svc {
        self.host_env = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn yaml(&self) -> String {
        let mut y = format!("  - name: {}\n    accept:\n", self.name);
        for a in &self.accept {
            y.push_str(&format!("      - {a}\n"));
        }
        let cmd: Vec<String> = self.command.iter().map(|c| q(c)).collect();
        y.push_str(&format!("    command: [{}]\n", cmd.join(", ")));
        if !self.env.is_empty() {
            y.push_str("    env:\n");
            for (k, v) in &self.env {
                y.push_str(&format!("      {k}: {}\n", q(v)));
            }
        }
        if !self.files.is_empty() {
            y.push_str("    files:\n");
            for (p, content, mode) in &self.files {
                y.push_str(&format!(
                    "      {}:\n        content: {}\n",
                    q(p.to_str().unwrap()),
                    q(content)
                ));
                if let Some(m) = mode {
                    y.push_str(&format!("        mode: \"{m}\"\n"));
                }
            }
        }
        if self.host_args {
            y.push_str("    host_args: true\n");
        }
        if !self.host_env.is_empty() {
            y.push_str(&format!("    host_env: [{}]\n", self.host_env.join(", ")));
        }
        if !self.volumes.is_empty() {
            y.push_str("    volumes:\n");
            for v in &self.volumes {
                y.push_str(&format!("      - {v}\n"));
            }
        }
        y
    }
}

/// A session `name` owned by `owner`; `secrets` are YAML flow mappings.
fn policy(name: &str, owner: &str, secrets: &[&str], services: &[Svc]) -> String {
    let mut y = format!("name: {name}\nversion: 1\nowners: [{owner}]\n");
    if !secrets.is_empty() {
        y.push_str("secrets:\n");
        for s in secrets {
            y.push_str(&format!("  - {s}\n"));
        }
    }
    y.push_str("services:\n");
    for s in services {
        y.push_str(&s.yaml());
    }
    y
}

fn sim_rule(measurement: &str) -> String {
    format!("{{ tee: sim, measurement: {measurement} }}")
}

// ---------------------------------------------------------------------------
// One test's world: directory, VEIL_HOME, CAS, owner identity

struct World {
    dir: tempfile::TempDir,
    home: PathBuf,
    cas: Option<Proc>,
    url: String,
    fp: String,
    /// Everything the veil CLI printed (not `veil run`).
    seen: RefCell<String>,
    runs: Cell<u32>,
}

/// How a `veil run` ended.
struct Ran {
    status: ExitStatus,
    out: String,
    err: String,
}

impl Ran {
    fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    fn text(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code(),
            self.out,
            self.err
        )
    }
}

/// A `veil run` in the background, its output going to files in the test dir.
struct Launch {
    proc: Proc,
    out: PathBuf,
    err: PathBuf,
}

impl Launch {
    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until `ready` holds; fails if the launcher exits first.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if ready() {
                return;
            }
            if let Some(st) = self.proc.exited() {
                panic!(
                    "the launcher exited ({st}) before {what}\n--- stdout\n{}--- stderr\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- stdout\n{}--- stderr\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for_file(&mut self, path: &Path) {
        self.wait_until(&format!("{} to exist", path.display()), || path.exists());
    }

    fn wait_for_port(&mut self, port: u16) {
        self.wait_until(&format!("port {port} to accept connections"), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn finish(mut self) -> Ran {
        let status = self.proc.wait(WAIT);
        Ran {
            status,
            out: self.stdout(),
            err: self.stderr(),
        }
    }
}

impl World {
    /// A fresh directory and VEIL_HOME with a sim platform key, a dev CAS
    /// (RUST_LOG=debug, log in `cas.log`) that trusts it, pinned with
    /// `cas verify --dev`, and an owner identity.
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        for d in ["tmp", "logs", "app"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let mut w = World {
            dir,
            home,
            cas: None,
            url: String::new(),
            fp: String::new(),
            seen: RefCell::new(String::new()),
            runs: Cell::new(0),
        };
        // The launcher's sim platform key: created on first use.
        let ev = w.path("sim-evidence.bin");
        w.cli_ok(
            &[
                "evidence",
                "collect",
                "--tee",
                "sim",
                "--report-data",
                "00",
                "-o",
                ev.to_str().unwrap(),
            ],
            None,
        );
        let platform_pub = w.home.join("sim/platform.pub");
        assert!(platform_pub.exists());

        let ready = w.path("cas.ready");
        let log = std::fs::File::create(w.path("cas.log")).unwrap();
        let mut cmd = w.veil();
        cmd.args([
            "cas",
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--state",
        ])
        .arg(w.path("cas"))
        .arg("--trust-sim-key")
        .arg(&platform_pub)
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        let mut cas = Proc::start(&mut cmd, "the CAS");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Some(url) = text.split_whitespace().next() {
                    w.url = url.to_owned();
                    break;
                }
            }
            assert!(
                cas.exited().is_none(),
                "the CAS exited: {}",
                std::fs::read_to_string(w.path("cas.log")).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "the CAS did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        w.cas = Some(cas);
        let url = w.url.clone();
        w.cli_ok(&["cas", "verify", "--dev", &url], None);
        w.cli_ok(&["identity", "create"], None);
        let o = w.cli_ok(&["identity", "show", "--json"], None);
        w.fp = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["fingerprint"]
            .as_str()
            .unwrap()
            .to_owned();
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// veil with this world's VEIL_HOME; staging directories of the launcher
    /// go to `tmp/` in the test directory.
    fn veil(&self) -> Command {
        let mut c = Command::new(VEIL);
        c.env("VEIL_HOME", &self.home)
            .env("TMPDIR", self.path("tmp"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("VEIL_CAS")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
        c
    }

    /// Runs a veil CLI command to its end; records its output.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.veil();
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            let mut input = input;
            input.write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let mut seen = self.seen.borrow_mut();
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let o = self.cli(args, stdin);
        assert!(
            o.status.success(),
            "veil {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// `veil measure --json PROGRAM`.
    fn measure(&self, program: &Path) -> serde_json::Value {
        let o = self.cli_ok(&["measure", "--json", program.to_str().unwrap()], None);
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// The accept rule that pins `program` by its sim measurement.
    fn pin(&self, program: &Path) -> String {
        sim_rule(self.measure(program)["sim_measurement"].as_str().unwrap())
    }

    fn apply(&self, policy: &str) {
        let n = self.runs.get();
        self.runs.set(n + 1);
        let p = self.path(&format!("policy-{n}.yaml"));
        std::fs::write(&p, policy).unwrap();
        self.cli_ok(&["session", "apply", p.to_str().unwrap()], None);
    }

    fn put(&self, session: &str, secret: &str, value: &str) {
        self.cli_ok(&["secret", "put", session, secret], Some(value));
    }

    /// `veil run --session SESSION --service SERVICE --tee sim --cas URL`.
    fn launcher(&self, session: &str, service: &str) -> Command {
        self.launcher_at(session, service, &self.url)
    }

    /// The same with another CAS URL.
    fn launcher_at(&self, session: &str, service: &str, url: &str) -> Command {
        let mut c = self.veil();
        c.args([
            "run",
            "--session",
            session,
            "--service",
            service,
            "--tee",
            "sim",
            "--cas",
            url,
        ]);
        c
    }

    /// Starts a launcher in the background.
    fn start(&self, mut cmd: Command) -> Launch {
        let n = self.runs.get();
        self.runs.set(n + 1);
        let out = self.path(&format!("logs/run-{n}.out"));
        let err = self.path(&format!("logs/run-{n}.err"));
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let proc = Proc::start(&mut cmd, "veil run");
        Launch { proc, out, err }
    }

    /// Runs a launcher to its end.
    fn run(&self, cmd: Command) -> Ran {
        let ran = self.start(cmd).finish();
        assert!(!ran.err.contains("panicked"), "{}", ran.text());
        ran
    }

    /// Stops the CAS; returns its log.
    fn stop_cas(&mut self) -> String {
        drop(self.cas.take());
        std::fs::read_to_string(self.path("cas.log")).unwrap()
    }

    /// Nothing of the launcher's staging directories is left in `tmp/`.
    fn assert_no_staging_left(&self) {
        let left: Vec<_> = std::fs::read_dir(self.path("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

fn line_value<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no line {key}= in:\n{text}"))
}

// ---------------------------------------------------------------------------
// Tests

/// An sh script gets an env var (supplied secret), an argument (template of a
/// generated secret) and two files with their policy modes on a private
/// tmpfs; the host sees only an empty placeholder (removed afterwards) and
/// the original content of a file that existed before.
#[test]
fn sh_gets_env_argv_and_files_on_a_private_tmpfs() {
    let w = World::new();
    let app = w.path("app/show.sh");
    write_exec(
        &app,
        r#"#!/bin/sh
# An ordinary program: it shows what it got, then waits for the test.
echo "env=$DB_PASSWORD"
echo "arg=$1"
echo "argc=$#"
echo "conf_mode=$(stat -c %a "$CONF")"
echo "conf_fs=$(stat -f -c %T "$CONF")"
echo "over_mode=$(stat -c %a "$OVER")"
echo "over_fs=$(stat -f -c %T "$OVER")"
echo "over=$(cat "$OVER")"
echo "conf_begin"
cat "$CONF"
echo "conf_end"
echo $$ > "$PIDFILE.tmp" && mv "$PIDFILE.tmp" "$PIDFILE"
while [ ! -e "$GO" ]; do sleep 0.02; done
echo "finished"
"#,
    );
    // A declared path whose directory does not exist on the host, and one
    // that exists with host content.
    let conf = w.path("app/conf/db/secret.conf");
    let over = w.path("app/existing.conf");
    std::fs::write(&over, "host-original\n").unwrap();
    let pidfile = w.path("app.pid");
    let go = w.path("go");
    let password = format!("pw-{}", random_hex(8));

    let service = svc(
        "show",
        &w.pin(&app),
        &[app.to_str().unwrap(), "--api-key={{ api_key }}"],
    )
    .env("DB_PASSWORD", "{{ db_password }}")
    .env("CONF", conf.to_str().unwrap())
    .env("OVER", over.to_str().unwrap())
    .env("PIDFILE", pidfile.to_str().unwrap())
    .env("GO", go.to_str().unwrap())
    .file(
        &conf,
        "password = {{ db_password }}\napi_key = {{ api_key }}\n",
        Some("0400"),
    )
    .file(&over, "override={{ db_password }}", None);
    w.apply(&policy(
        "t/sh",
        &w.fp,
        &[
            "{ name: db_password, kind: supplied }",
            "{ name: api_key, kind: password, length: 20 }",
        ],
        &[service],
    ));
    w.put("t/sh", "db_password", &password);

    let mut run = w.start(w.launcher("t/sh", "show"));
    run.wait_for_file(&pidfile);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out_path = run.out.clone();
    run.wait_until("the program's output", || {
        run_out_has(&out_path, "conf_end")
    });

    // What the program saw.
    let out = run.stdout();
    assert_eq!(line_value(&out, "env"), password, "{out}");
    assert_eq!(line_value(&out, "argc"), "1", "{out}");
    let key = line_value(&out, "arg").strip_prefix("--api-key=").unwrap();
    assert_eq!(key.len(), 20, "{out}");
    assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{out}");
    assert_eq!(line_value(&out, "conf_mode"), "400", "{out}");
    assert_eq!(line_value(&out, "conf_fs"), "tmpfs", "{out}");
    assert_eq!(line_value(&out, "over_mode"), "600", "{out}");
    assert_eq!(line_value(&out, "over_fs"), "tmpfs", "{out}");
    assert_eq!(
        line_value(&out, "over"),
        format!("override={password}"),
        "{out}"
    );
    let conf_text = out
        .split("conf_begin\n")
        .nth(1)
        .unwrap()
        .split("conf_end")
        .next()
        .unwrap();
    assert_eq!(
        conf_text,
        format!("password = {password}\napi_key = {key}\n"),
        "the file's template and the argument share the generated secret"
    );

    // In the program's mount namespace both paths are tmpfs mounts; in the
    // host's (ours) neither is.
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let ours = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mount_fstype(&theirs, &conf).as_deref(), Some("tmpfs"));
    assert_eq!(mount_fstype(&theirs, &over).as_deref(), Some("tmpfs"));
    assert_eq!(mount_fstype(&ours, &conf), None);
    assert_eq!(mount_fstype(&ours, &over), None);

    // The host's view while it runs: an empty placeholder, the original file.
    assert_eq!(std::fs::metadata(&conf).unwrap().len(), 0);
    assert_eq!(std::fs::read_to_string(&over).unwrap(), "host-original\n");
    // The staging directory is empty on the host.
    for e in std::fs::read_dir(w.path("tmp")).unwrap().flatten() {
        assert_eq!(std::fs::read_dir(e.path()).unwrap().count(), 0, "{e:?}");
    }

    std::fs::write(&go, "").unwrap();
    let ran = run.finish();
    assert_eq!(ran.code(), 0, "{}", ran.text());
    assert!(ran.out.contains("finished"), "{}", ran.text());

    // Afterwards: placeholder and the directories made for it are gone, the
    // existing file is untouched, the staging directory is removed.
    assert!(!conf.exists());
    assert!(!w.path("app/conf").exists());
    assert_eq!(std::fs::read_to_string(&over).unwrap(), "host-original\n");
    w.assert_no_staging_left();
}

fn run_out_has(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

/// python3 (an ELF: the measured executable is the interpreter itself, the
/// script is an argument) reads env, argv and a file.
#[test]
fn python3_gets_env_argv_and_a_file() {
    let w = World::new();
    let script = w.path("app/app.py");
    std::fs::write(
        &script,
        r#"import os, stat, sys
conf = os.environ["CONF"]
with open(conf) as f:
    content = f.read()
print("env=" + os.environ["TOKEN"])
print("argv=" + "|".join(sys.argv[1:]))
print("file=" + content)
print("mode=%o" % stat.S_IMODE(os.stat(conf).st_mode))
"#,
    )
    .unwrap();
    let python = Path::new("/usr/bin/python3");
    let m = w.measure(python);
    assert_eq!(m["program"], "/usr/bin/python3");
    assert!(m.get("interpreter").is_none(), "{m}");
    assert_eq!(m["executable"].as_str().unwrap(), sha384sum(python));

    let conf = w.path("app/py/settings.ini");
    let token = format!("tok-{}", random_hex(8));
    let service = svc(
        "py",
        &sim_rule(m["sim_measurement"].as_str().unwrap()),
        &[
            "/usr/bin/python3",
            script.to_str().unwrap(),
            "--token={{ token }}",
            "plain",
        ],
    )
    .env("TOKEN", "{{ token }}")
    .env("CONF", conf.to_str().unwrap())
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .file(&conf, "token: {{ token }}", Some("0440"));
    w.apply(&policy(
        "t/py",
        &w.fp,
        &["{ name: token, kind: supplied }"],
        &[service],
    ));
    w.put("t/py", "token", &token);
    let ran = w.run(w.launcher("t/py", "py"));
    assert_eq!(ran.code(), 0, "{}", ran.text());
    assert_eq!(line_value(&ran.out, "env"), token, "{}", ran.text());
    assert_eq!(
        line_value(&ran.out, "argv"),
        format!("--token={token}|plain"),
        "{}",
        ran.text()
    );
    assert_eq!(line_value(&ran.out, "file"), format!("token: {token}"));
    assert_eq!(line_value(&ran.out, "mode"), "440");
    assert!(!conf.exists() && !w.path("app/py").exists());
    w.assert_no_staging_left();
}

/// sqlite3 runs an injected SQL file (`.read`) that stores secrets in a
/// database on the host disk.
#[test]
fn sqlite3_runs_an_injected_sql_file() {
    let w = World::new();
    let db = w.path("app/app.db");
    let sql = w.path("app/sql/init.sql");
    let tag = format!("tag-{}", random_hex(8));
    let service = svc(
        "sql",
        &w.pin(Path::new("/usr/bin/sqlite3")),
        &[
            "/usr/bin/sqlite3",
            "-bail",
            db.to_str().unwrap(),
            &format!(".read {}", sql.display()),
        ],
    )
    .file(
        &sql,
        "CREATE TABLE creds(name TEXT PRIMARY KEY, value TEXT NOT NULL);\n\
         INSERT INTO creds VALUES('tag', '{{ tag }}');\n\
         INSERT INTO creds VALUES('api_key', '{{ api_key }}');\n\
         SELECT 'rows=' || count(*) FROM creds;\n\
         SELECT 'api_key_len=' || length(value) FROM creds WHERE name = 'api_key';\n",
        Some("0400"),
    );
    w.apply(&policy(
        "t/sql",
        &w.fp,
        &[
            "{ name: tag, kind: supplied }",
            "{ name: api_key, kind: password, length: 24, alphabet: hex }",
        ],
        &[service],
    ));
    w.put("t/sql", "tag", &tag);
    let ran = w.run(w.launcher("t/sql", "sql"));
    assert_eq!(ran.code(), 0, "{}", ran.text());
    assert_eq!(line_value(&ran.out, "rows"), "2", "{}", ran.text());
    assert_eq!(line_value(&ran.out, "api_key_len"), "24", "{}", ran.text());
    assert!(!sql.exists() && !w.path("app/sql").exists());

    // The database on the host holds what the injected SQL inserted.
    let read = |query: &str| {
        let o = Command::new("/usr/bin/sqlite3")
            .arg(&db)
            .arg(query)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(read("SELECT value FROM creds WHERE name = 'tag'"), tag);
    let key = read("SELECT value FROM creds WHERE name = 'api_key'");
    assert_eq!(key.len(), 24);
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let o = Command::new("/usr/bin/redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// redis-server reads `requirepass` from an injected config file; it refuses
/// a wrong password, answers the right one, and ends on SIGTERM sent to the
/// launcher, whose exit status is redis's (0).
#[test]
fn redis_requires_the_injected_password_and_stops_on_sigterm() {
    let w = World::new();
    let port = free_port();
    let data = w.path("redis-data");
    std::fs::create_dir_all(&data).unwrap();
    let conf = w.path("app/redis/redis.conf");
    let pidfile = data.join("redis.pid");
    let password = format!("redis-{}", random_hex(12));
    let config = format!(
        "port {port}\nbind 127.0.0.1\nprotected-mode yes\ndaemonize no\ndir {}\npidfile {}\nsave \"\"\nappendonly no\nlogfile \"\"\nrequirepass {{{{ redis_pw }}}}\n",
        data.display(),
        pidfile.display()
    );
    let service = svc(
        "redis",
        &w.pin(Path::new("/usr/bin/redis-server")),
        &["/usr/bin/redis-server", conf.to_str().unwrap()],
    )
    .file(&conf, &config, Some("0400"));
    w.apply(&policy(
        "t/redis",
        &w.fp,
        &["{ name: redis_pw, kind: supplied }"],
        &[service],
    ));
    w.put("t/redis", "redis_pw", &password);

    let mut run = w.start(w.launcher("t/redis", "redis"));
    run.wait_for_port(port);
    run.wait_for_file(&pidfile);
    let redis_pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let o = redis_cli(port, &["PING"]);
    assert!(o.contains("NOAUTH"), "{o}");
    let o = redis_cli(port, &["--no-auth-warning", "-a", "wrong-password", "PING"]);
    assert!(o.contains("WRONGPASS"), "{o}");
    assert!(!o.contains("PONG"), "{o}");
    let o = redis_cli(port, &["--no-auth-warning", "-a", &password, "PING"]);
    assert_eq!(o.trim(), "PONG");
    // The config the server runs with is the injected file.
    let o = redis_cli(
        port,
        &[
            "--no-auth-warning",
            "-a",
            &password,
            "CONFIG",
            "GET",
            "port",
        ],
    );
    assert!(o.contains(&port.to_string()), "{o}");
    assert_eq!(
        std::fs::metadata(&conf).unwrap().len(),
        0,
        "host placeholder"
    );

    signal(run.proc.pid(), "TERM");
    let ran = run.finish();
    assert_eq!(ran.code(), 0, "redis exits 0 on SIGTERM: {}", ran.text());
    assert!(ran.out.contains("Received SIGTERM"), "{}", ran.text());
    assert!(!Path::new(&format!("/proc/{redis_pid}")).exists());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!conf.exists() && !w.path("app/redis").exists());
    w.assert_no_staging_left();
}

/// memcached takes its arguments from the policy (`-m 37`, the port); the
/// running server reports them; SIGTERM to the launcher ends it.
#[test]
fn memcached_runs_with_the_policys_arguments_and_stops_on_sigterm() {
    let w = World::new();
    let port = free_port();
    let port_s = port.to_string();
    let service = svc(
        "cache",
        &w.pin(Path::new("/usr/bin/memcached")),
        &[
            "/usr/bin/memcached",
            "-p",
            &port_s,
            "-l",
            "127.0.0.1",
            "-U",
            "0",
            "-m",
            "37",
            "-c",
            "64",
            "-u",
            "root",
        ],
    );
    w.apply(&policy("t/memcached", &w.fp, &[], &[service]));

    let mut run = w.start(w.launcher("t/memcached", "cache"));
    run.wait_for_port(port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"stats settings\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"END\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    drop(s);
    let stats = String::from_utf8_lossy(&got);
    assert!(
        stats.contains(&format!("STAT maxbytes {}\r\n", 37 * 1024 * 1024)),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("STAT tcpport {port}\r\n")),
        "{stats}"
    );
    assert!(stats.contains("STAT udpport 0\r\n"), "{stats}");
    assert!(stats.contains("STAT maxconns 64\r\n"), "{stats}");

    let launcher = run.proc.pid();
    let program = children(launcher);
    assert_eq!(program.len(), 1, "{program:?}");
    signal(launcher, "TERM");
    let ran = run.finish();
    // memcached handles SIGTERM and exits 0; the launcher exits with that
    // status (had the signal killed the launcher instead, it would be 143).
    assert_eq!(ran.code(), 0, "{}", ran.text());
    assert!(!Path::new(&format!("/proc/{}", program[0])).exists());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// The launcher's exit status is the program's; a crash is 128+N with a line
/// on stderr; USR1 and TERM sent to the launcher reach the program's traps;
/// programs that cannot be executed are 126/127.
#[test]
fn exit_statuses_crashes_and_forwarded_signals() {
    let w = World::new();
    let sh = w.pin(Path::new("/bin/sh"));
    let traps = w.path("app/traps.sh");
    write_exec(
        &traps,
        r#"#!/bin/sh
trap 'echo usr1 >> "$OUT"' USR1
trap 'echo term >> "$OUT"; exit 42' TERM
echo $$ > "$PIDFILE.tmp" && mv "$PIDFILE.tmp" "$PIDFILE"
while :; do sleep 0.02; done
"#,
    );
    let plain = w.path("app/plain.sh");
    write_exec(
        &plain,
        "#!/bin/sh\necho $$ > \"$PIDFILE.tmp\" && mv \"$PIDFILE.tmp\" \"$PIDFILE\"\nwhile :; do sleep 0.02; done\n",
    );
    // Executable, no #! line, not ELF: execve fails with ENOEXEC.
    let noexec = w.path("app/noexec");
    write_exec(&noexec, "echo not a program\n");
    let out = w.path("trap.out");
    let pidfile = w.path("traps.pid");
    let plain_pid = w.path("plain.pid");
    let missing = w.path("app/missing-program");
    let any = sim_rule("any");
    // A declared file whose directory is missing on the host, and one that
    // is a directory on the host.
    let placeholder = w.path("app/made/for.conf");
    let a_dir = w.path("app/zdir");
    std::fs::create_dir_all(&a_dir).unwrap();
    w.apply(&policy(
        "t/exit",
        &w.fp,
        &[],
        &[
            svc("three", &sh, &["/bin/sh", "-c", "exit 3"]),
            svc(
                "segv",
                &sh,
                &["/bin/sh", "-c", "ulimit -c 0; kill -SEGV $$; exit 0"],
            ),
            svc("traps", &w.pin(&traps), &[traps.to_str().unwrap()])
                .env("OUT", out.to_str().unwrap())
                .env("PIDFILE", pidfile.to_str().unwrap()),
            svc("plain", &w.pin(&plain), &[plain.to_str().unwrap()])
                .env("PIDFILE", plain_pid.to_str().unwrap()),
            svc("noexec", &w.pin(&noexec), &[noexec.to_str().unwrap()]).file(
                &placeholder,
                "x",
                None,
            ),
            svc("missing", &any, &[missing.to_str().unwrap()]),
            svc("onto-dir", &any, &["/bin/true"])
                .file(&placeholder, "x", None)
                .file(&a_dir, "x", None),
        ],
    ));

    let ran = w.run(w.launcher("t/exit", "three"));
    assert_eq!(ran.code(), 3, "{}", ran.text());
    assert!(!ran.err.contains("signal"), "{}", ran.text());

    let ran = w.run(w.launcher("t/exit", "segv"));
    assert_eq!(ran.code(), 139, "{}", ran.text());
    assert!(
        ran.err.contains("crashed") && ran.err.contains("SIGSEGV"),
        "{}",
        ran.text()
    );

    // Signals sent to the launcher reach the program.
    let mut run = w.start(w.launcher("t/exit", "traps"));
    run.wait_for_file(&pidfile);
    let launcher = run.proc.pid();
    signal(launcher, "USR1");
    run.wait_until("the USR1 trap", || run_out_has(&out, "usr1"));
    signal(launcher, "TERM");
    let ran = run.finish();
    assert_eq!(ran.code(), 42, "the TERM trap's status: {}", ran.text());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "usr1\nterm\n");

    // An untrapped HUP ends the program: 128 + 1, reported as terminated.
    let mut run = w.start(w.launcher("t/exit", "plain"));
    run.wait_for_file(&plain_pid);
    let program: u32 = std::fs::read_to_string(&plain_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(run.proc.pid(), "HUP");
    let ran = run.finish();
    assert_eq!(ran.code(), 129, "{}", ran.text());
    assert!(
        ran.err.contains("terminated") && ran.err.contains("SIGHUP"),
        "{}",
        ran.text()
    );
    assert!(!Path::new(&format!("/proc/{program}")).exists());

    // If the launcher dies, so does the program (PR_SET_PDEATHSIG).
    let mut run = w.start(w.launcher("t/exit", "plain"));
    std::fs::remove_file(&plain_pid).unwrap();
    run.wait_for_file(&plain_pid);
    let program: u32 = std::fs::read_to_string(&plain_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(run.proc.pid(), "KILL");
    let ran = run.finish();
    assert_eq!(ran.code(), 137);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dead_or_zombie(program) {
        assert!(
            Instant::now() < deadline,
            "the program outlived its launcher"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Failures before the program starts leave nothing behind.
    let ran = w.run(w.launcher("t/exit", "noexec"));
    assert_eq!(ran.code(), 126, "{}", ran.text());
    assert!(ran.err.contains(noexec.to_str().unwrap()), "{}", ran.text());
    assert!(!placeholder.exists() && !w.path("app/made").exists());
    let ran = w.run(w.launcher("t/exit", "onto-dir"));
    assert_eq!(ran.code(), 2, "{}", ran.text());
    assert!(
        ran.err.contains(a_dir.to_str().unwrap()) && ran.err.contains("directory"),
        "{}",
        ran.text()
    );
    assert!(!placeholder.exists() && !w.path("app/made").exists());
    assert!(a_dir.is_dir());
    w.assert_no_staging_left();

    let ran = w.run(w.launcher("t/exit", "missing"));
    assert_eq!(ran.code(), 127, "{}", ran.text());
    assert!(
        ran.err.contains(missing.to_str().unwrap()),
        "{}",
        ran.text()
    );
}

/// A changed script is refused (77, measurement_mismatch with expected and
/// found); it never starts, leaves no process and no placeholder behind.
#[test]
fn a_changed_program_is_denied_and_never_starts() {
    let w = World::new();
    let app = w.path("app/guarded.sh");
    let marker = w.path("ran.marker");
    let conf = w.path("app/conf/guarded.conf");
    let original = "#!/bin/sh\ntouch \"$MARKER\"\nsleep 5\n";
    write_exec(&app, original);
    let pinned = w.measure(&app)["sim_measurement"]
        .as_str()
        .unwrap()
        .to_owned();
    w.apply(&policy(
        "t/deny",
        &w.fp,
        &["{ name: k, kind: password }"],
        &[svc("guarded", &sim_rule(&pinned), &[app.to_str().unwrap()])
            .env("MARKER", marker.to_str().unwrap())
            .file(&conf, "{{ k }}", None)],
    ));

    // One changed byte.
    write_exec(&app, &original.replace("sleep 5", "sleep 6"));
    let changed = w.measure(&app)["sim_measurement"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(pinned, changed);
    let ran = w.run(w.launcher("t/deny", "guarded"));
    assert_eq!(ran.code(), 77, "{}", ran.text());
    assert!(ran.err.contains("measurement_mismatch"), "{}", ran.text());
    assert!(
        ran.err.contains(&format!("expected {pinned}")),
        "{}",
        ran.text()
    );
    assert!(
        ran.err.contains(&format!("found {changed}")),
        "{}",
        ran.text()
    );
    assert!(!marker.exists(), "the denied program ran");
    assert!(!conf.exists() && !w.path("app/conf").exists());
    let left = processes_mentioning(app.to_str().unwrap());
    assert!(left.is_empty(), "processes left: {left:?}");
    w.assert_no_staging_left();
}

/// An unreachable or untrusted CAS: 69 with a clear message, quickly, and
/// the program never starts.
#[test]
fn an_unreachable_or_untrusted_cas_is_69() {
    let mut w = World::new();
    let marker = w.path("ran.marker");
    let sh = w.pin(Path::new("/bin/sh"));
    w.apply(&policy(
        "t/down",
        &w.fp,
        &[],
        &[svc("app", &sh, &["/bin/sh", "-c", "touch \"$MARKER\""])
            .env("MARKER", marker.to_str().unwrap())],
    ));
    let pins_path = w.home.join("cas.json");
    let pins: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&pins_path).unwrap()).unwrap();
    let pin = pins["cas"][w.url.as_str()].clone();
    assert!(pin.is_object(), "{pins}");

    // A pinned URL on which nothing listens.
    let dead = format!("https://127.0.0.1:{}", free_port());
    let mut with_dead = pins.clone();
    with_dead["cas"][dead.as_str()] = pin.clone();
    std::fs::write(&pins_path, serde_json::to_vec(&with_dead).unwrap()).unwrap();
    let mut cmd = w.launcher_at("t/down", "app", &dead);
    cmd.args(["--attempts", "2"]);
    let ran = w.run(cmd);
    assert_eq!(ran.code(), 69, "{}", ran.text());
    assert!(
        ran.err.contains("unreachable")
            && ran.err.contains("2 attempts")
            && ran.err.contains(&dead),
        "{}",
        ran.text()
    );
    assert!(!marker.exists(), "the program ran without a grant");

    // The live CAS under a wrong pin is not trusted.
    let mut wrong = pins.clone();
    wrong["cas"][w.url.as_str()]["certificate_sha256"] = "ab".repeat(32).into();
    std::fs::write(&pins_path, serde_json::to_vec(&wrong).unwrap()).unwrap();
    let mut cmd = w.launcher("t/down", "app");
    cmd.args(["--attempts", "2"]);
    let ran = w.run(cmd);
    assert_eq!(ran.code(), 69, "{}", ran.text());
    assert!(ran.err.contains("certificate"), "{}", ran.text());
    // A pin mismatch is not retried: only unreachability is.
    assert!(!ran.err.contains("attempts"), "{}", ran.text());

    // With the right pin it runs...
    std::fs::write(&pins_path, serde_json::to_vec(&pins).unwrap()).unwrap();
    let ran = w.run(w.launcher("t/down", "app"));
    assert_eq!(ran.code(), 0, "{}", ran.text());
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();

    // ...and once the CAS is stopped, it does not.
    w.stop_cas();
    let mut cmd = w.launcher("t/down", "app");
    cmd.args(["--attempts", "2"]);
    let ran = w.run(cmd);
    assert_eq!(ran.code(), 69, "{}", ran.text());
    assert!(
        ran.err.contains("unreachable") && ran.err.contains("2 attempts"),
        "{}",
        ran.text()
    );
    assert!(!marker.exists(), "the program ran without a grant");
}

/// Host arguments only where the policy says `host_args: true` (else exit 2,
/// program not started); host environment variables only when listed in
/// `host_env`.
#[test]
fn host_args_and_host_env_only_where_the_policy_allows() {
    let w = World::new();
    let sh = w.pin(Path::new("/bin/sh"));
    let marker = w.path("strict.marker");
    let show = r#"for a in "$@"; do echo "arg=[$a]"; done; /usr/bin/env"#;
    w.apply(&policy(
        "t/host",
        &w.fp,
        &[],
        &[
            svc("strict", &sh, &["/bin/sh", "-c", "touch \"$MARKER\"", "sh"])
                .env("MARKER", marker.to_str().unwrap()),
            svc("open", &sh, &["/bin/sh", "-c", show, "sh", "policy-arg"])
                .env("POLICY_VAR", "from-policy")
                .host_args()
                .host_env(&["VEIL_TEST_ALLOWED", "VEIL_TEST_UNSET"]),
        ],
    ));
    let host_env = |mut c: Command| {
        c.env("VEIL_TEST_ALLOWED", "yes-allowed")
            .env("VEIL_TEST_DENIED", "no-denied");
        c
    };

    let mut cmd = host_env(w.launcher("t/host", "strict"));
    cmd.args(["--", "extra"]);
    let ran = w.run(cmd);
    assert_eq!(ran.code(), 2, "{}", ran.text());
    assert!(ran.err.contains("host_args: true"), "{}", ran.text());
    assert!(!marker.exists(), "the program ran");
    // Without host arguments the same service runs.
    let ran = w.run(host_env(w.launcher("t/host", "strict")));
    assert_eq!(ran.code(), 0, "{}", ran.text());
    assert!(marker.exists());

    let mut cmd = host_env(w.launcher("t/host", "open"));
    cmd.args(["--", "a b", "c"]);
    let ran = w.run(cmd);
    assert_eq!(ran.code(), 0, "{}", ran.text());
    let args: Vec<&str> = ran.out.lines().filter(|l| l.starts_with("arg=")).collect();
    assert_eq!(
        args,
        ["arg=[policy-arg]", "arg=[a b]", "arg=[c]"],
        "{}",
        ran.text()
    );
    let env: Vec<&str> = ran.out.lines().filter(|l| !l.starts_with("arg=")).collect();
    assert!(env.contains(&"POLICY_VAR=from-policy"), "{env:?}");
    assert!(env.contains(&"VEIL_TEST_ALLOWED=yes-allowed"), "{env:?}");
    // Nothing else of the host's environment (PATH, HOME, VEIL_HOME,
    // VEIL_TEST_DENIED, ...); only what the shell itself sets.
    for line in &env {
        let name = line.split('=').next().unwrap();
        assert!(
            [
                "POLICY_VAR",
                "VEIL_TEST_ALLOWED",
                "PWD",
                "OLDPWD",
                "SHLVL",
                "_"
            ]
            .contains(&name),
            "unexpected variable {line:?} in {env:?}"
        );
    }
}

/// A canary supplied secret used in env, argv and a file is nowhere on the
/// host: not in the launcher's environ or cmdline while the program runs, not
/// in any file under the test directory (CAS state and debug logs included),
/// not in any output.
#[test]
fn the_secret_never_reaches_the_host() {
    let mut w = World::new();
    let canary = format!("canary-{}-never-print-me", random_hex(12));
    let app = w.path("app/quiet.sh");
    write_exec(
        &app,
        r#"#!/bin/sh
# Proves it got the secret without printing it.
content=$(cat "$CONF")
echo "env_len=${#TOKEN}"
echo "arg_len=${#1}"
echo "file_len=${#content}"
if [ "$TOKEN" = "$1" ] && [ "$content" = "token=$TOKEN" ]; then echo "same=yes"; fi
echo $$ > "$PIDFILE.tmp" && mv "$PIDFILE.tmp" "$PIDFILE"
while [ ! -e "$GO" ]; do sleep 0.02; done
"#,
    );
    let conf = w.path("app/conf/token.conf");
    let pidfile = w.path("quiet.pid");
    let go = w.path("go");
    w.apply(&policy(
        "t/canary",
        &w.fp,
        &["{ name: canary, kind: supplied }"],
        &[svc(
            "quiet",
            &w.pin(&app),
            &[app.to_str().unwrap(), "{{ canary }}"],
        )
        .env("TOKEN", "{{ canary }}")
        .env("CONF", conf.to_str().unwrap())
        .env("PIDFILE", pidfile.to_str().unwrap())
        .env("GO", go.to_str().unwrap())
        .file(&conf, "token={{ canary }}", Some("0400"))],
    ));
    w.put("t/canary", "canary", &canary);

    let mut cmd = w.launcher("t/canary", "quiet");
    cmd.env("RUST_LOG", "debug");
    let mut run = w.start(cmd);
    run.wait_for_file(&pidfile);
    let program: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let launcher = run.proc.pid();
    let has = |bytes: &[u8]| bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
    // Positive control: the program's own environment and argv hold it, so
    // reading /proc this way would find it.
    assert!(has(
        &std::fs::read(format!("/proc/{program}/environ")).unwrap()
    ));
    assert!(has(
        &std::fs::read(format!("/proc/{program}/cmdline")).unwrap()
    ));
    // The launcher's do not. (It is non-dumpable: its environ is readable
    // only with CAP_SYS_PTRACE; unreadable is fine too.)
    if let Ok(environ) = std::fs::read(format!("/proc/{launcher}/environ")) {
        assert!(
            !has(&environ),
            "the launcher's environment holds the secret"
        );
    }
    let cmdline = std::fs::read(format!("/proc/{launcher}/cmdline")).unwrap();
    assert!(!cmdline.is_empty() && !has(&cmdline));
    // The host's view of the file is an empty placeholder.
    assert_eq!(std::fs::read(&conf).unwrap(), b"");

    std::fs::write(&go, "").unwrap();
    let ran = run.finish();
    assert_eq!(ran.code(), 0, "{}", ran.text());
    let n = canary.len().to_string();
    assert_eq!(line_value(&ran.out, "env_len"), n);
    assert_eq!(line_value(&ran.out, "arg_len"), n);
    assert_eq!(
        line_value(&ran.out, "file_len"),
        (canary.len() + "token=".len()).to_string()
    );
    assert_eq!(line_value(&ran.out, "same"), "yes");
    // The launcher logged at debug level (so the check below means something).
    assert!(ran.err.contains("starting the program"), "{}", ran.text());
    assert!(!has(ran.out.as_bytes()) && !has(ran.err.as_bytes()));

    let log = w.stop_cas();
    assert!(log.contains("DEBUG"), "the CAS did not log at debug level");
    assert!(!has(log.as_bytes()), "the CAS logged the secret");
    assert!(
        !has(w.seen.borrow().as_bytes()),
        "a veil command printed it"
    );
    let mut files = Vec::new();
    all_files(w.dir.path(), &mut files);
    assert!(files.len() > 5, "{files:?}");
    for f in files {
        assert!(
            !has(&std::fs::read(&f).unwrap()),
            "{} holds the secret in clear",
            f.display()
        );
    }
    assert!(!conf.exists());
    w.assert_no_staging_left();
}

/// `veil measure --json` states what the launcher claims: a policy pinning
/// its `executable`/`interpreter` (with `measurement: any`) or its
/// `sim_measurement` grants; other digests are denied with the right code.
#[test]
fn measure_json_agrees_with_what_the_cas_accepts() {
    let w = World::new();
    let tool = w.path("app/tool.sh");
    write_exec(&tool, "#!/bin/sh\necho \"tool ran\"\n");
    let m = w.measure(&tool);
    let exe = m["executable"].as_str().unwrap().to_owned();
    let interp = m["interpreter"]["sha384"].as_str().unwrap().to_owned();
    let sim = m["sim_measurement"].as_str().unwrap().to_owned();
    assert_eq!(m["program"], tool.to_str().unwrap());
    assert_eq!(exe, sha384sum(&tool));
    assert_eq!(m["interpreter"]["path"], "/bin/sh");
    assert_eq!(interp, sha384sum(Path::new("/bin/sh")));
    assert_eq!(m["launcher"].as_str().unwrap(), sha384sum(Path::new(VEIL)));
    assert_eq!(sim.len(), 96);
    assert!(![exe.as_str(), interp.as_str()].contains(&sim.as_str()));
    // The text form states the same sim measurement.
    let text = w.cli_ok(&["measure", tool.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("sim measurement") && l.ends_with(&sim)),
        "{text}"
    );

    let t = tool.to_str().unwrap();
    let rule = |extra: &str| format!("{{ tee: sim, measurement: any{extra} }}");
    w.apply(&policy(
        "t/measure",
        &w.fp,
        &[],
        &[
            svc("by-measurement", &sim_rule(&sim), &[t]),
            svc(
                "by-executable",
                &rule(&format!(", executable: {exe}, interpreter: {interp}")),
                &[t],
            ),
            svc(
                "other-executable",
                &rule(&format!(", executable: {interp}")),
                &[t],
            ),
            svc(
                "other-interpreter",
                &rule(&format!(", executable: {exe}, interpreter: {exe}")),
                &[t],
            ),
        ],
    ));
    for service in ["by-measurement", "by-executable"] {
        let ran = w.run(w.launcher("t/measure", service));
        assert_eq!(ran.code(), 0, "{service}: {}", ran.text());
        assert_eq!(ran.out, "tool ran\n");
    }
    let ran = w.run(w.launcher("t/measure", "other-executable"));
    assert_eq!(ran.code(), 77, "{}", ran.text());
    assert!(ran.err.contains("executable_mismatch"), "{}", ran.text());
    assert!(
        ran.err.contains(&format!("expected {interp}"))
            && ran.err.contains(&format!("found {exe}")),
        "{}",
        ran.text()
    );
    let ran = w.run(w.launcher("t/measure", "other-interpreter"));
    assert_eq!(ran.code(), 77, "{}", ran.text());
    assert!(ran.err.contains("interpreter_mismatch"), "{}", ran.text());
    assert!(
        ran.err.contains(&format!("expected {exe}"))
            && ran.err.contains(&format!("found {interp}")),
        "{}",
        ran.text()
    );
}

/// Regression: two launchers placing a file at the same missing path (two
/// replicas, an overlapping restart). The first to exit used to remove the
/// placeholder (and with it the second program's bind mount); now each holds
/// a shared lock and only the last one out removes it.
#[test]
fn two_launchers_share_a_placeholder_and_the_last_one_removes_it() {
    let w = World::new();
    let script = w.path("app/wait-then-read.sh");
    write_exec(
        &script,
        r#"#!/bin/sh
echo $$ > "$DIR/pid-$1.tmp" && mv "$DIR/pid-$1.tmp" "$DIR/pid-$1"
while [ ! -e "$DIR/go-$1" ]; do sleep 0.02; done
echo "content=$(cat "$CONF")"
"#,
    );
    let conf = w.path("app/shared/conf/x.conf");
    w.apply(&policy(
        "t/replicas",
        &w.fp,
        &["{ name: k, kind: password, length: 16 }"],
        &[svc("r", &w.pin(&script), &[script.to_str().unwrap()])
            .env("DIR", w.path("").to_str().unwrap())
            .env("CONF", conf.to_str().unwrap())
            .file(&conf, "secret-{{ k }}", None)
            .host_args()],
    ));
    let with_arg = |arg: &str| {
        let mut c = w.launcher("t/replicas", "r");
        c.args(["--", arg]);
        c
    };
    let mut a = w.start(with_arg("a"));
    a.wait_for_file(&w.path("pid-a"));
    let mut b = w.start(with_arg("b"));
    b.wait_for_file(&w.path("pid-b"));

    std::fs::write(w.path("go-a"), "").unwrap();
    let ran_a = a.finish();
    assert_eq!(ran_a.code(), 0, "{}", ran_a.text());
    assert!(ran_a.out.contains("content=secret-"), "{}", ran_a.text());
    // B still runs: its mount point must still be there.
    assert!(
        conf.exists(),
        "the first launcher removed the shared placeholder"
    );

    std::fs::write(w.path("go-b"), "").unwrap();
    let ran_b = b.finish();
    assert_eq!(ran_b.code(), 0, "{}", ran_b.text());
    assert_eq!(
        line_value(&ran_b.out, "content"),
        line_value(&ran_a.out, "content"),
        "{}",
        ran_b.text()
    );
    // The last one out removed the placeholder and the directories made for it.
    assert!(!conf.exists());
    assert!(!w.path("app/shared").exists());
    w.assert_no_staging_left();
}

/// Regression: a background process the program leaves behind used to keep
/// running (with the program's secrets in its environment) after the
/// program and the launcher had exited. The launcher is the subreaper of the
/// program's orphans and ends them when the program exits.
#[test]
fn background_processes_end_with_the_program() {
    let w = World::new();
    let script = w.path("app/leaves-a-child.sh");
    write_exec(
        &script,
        r#"#!/bin/sh
( trap '' HUP; sleep 2; echo "$SECRET" > "$DIR/late-marker" ) &
echo $! > "$DIR/bg.pid"
exit 0
"#,
    );
    w.apply(&policy(
        "t/orphans",
        &w.fp,
        &["{ name: s, kind: password, length: 16 }"],
        &[svc("o", &w.pin(&script), &[script.to_str().unwrap()])
            .env("DIR", w.path("").to_str().unwrap())
            .env("SECRET", "{{ s }}")],
    ));
    let ran = w.run(w.launcher("t/orphans", "o"));
    assert_eq!(ran.code(), 0, "{}", ran.text());
    assert!(
        ran.err.contains("terminating them"),
        "the launcher should say it ended leftovers: {}",
        ran.text()
    );
    let bg: u32 = std::fs::read_to_string(w.path("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{bg}")).exists() || dead_or_zombie(bg),
        "the background process {bg} outlived the launcher"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!w.path("late-marker").exists());
}

/// A protected volume through `veil run`: made on first start with the key
/// the CAS released, mounted where the policy says (only the program sees
/// it), persistent across runs, ciphertext on the host; a host that rolls it
/// back to an older copy, or deletes it, is refused by the CAS.
#[test]
fn volumes_persist_encrypted_and_rollback_is_refused() {
    let w = World::new();
    let script = w.path("app/journal.sh");
    let mnt = w.path("mnt/data");
    write_exec(
        &script,
        r#"#!/bin/sh
echo "entry-$1 plaintext-marker" >> "$DATA/journal.txt"
cat "$DATA/journal.txt"
"#,
    );
    w.apply(&policy(
        "t/vol",
        &w.fp,
        &["{ name: dk, kind: aes-256 }"],
        &[svc("j", &w.pin(&script), &[script.to_str().unwrap()])
            .env("DATA", mnt.to_str().unwrap())
            .host_args()
            .volume("data", &mnt, "encrypted", "dk")],
    ));
    let vols = w.path("volumes");
    let run = |arg: &str| {
        let mut c = w.launcher("t/vol", "j");
        c.arg("--volumes-dir").arg(&vols).args(["--", arg]);
        w.run(c)
    };
    let r1 = run("one");
    assert_eq!(r1.code(), 0, "{}", r1.text());
    let r2 = run("two");
    assert_eq!(r2.code(), 0, "{}", r2.text());
    assert!(
        r2.out.contains("entry-one") && r2.out.contains("entry-two"),
        "{}",
        r2.text()
    );
    // The mount point is gone, the host holds only ciphertext.
    assert!(!mnt.exists(), "the mount point was left behind");
    let vdir = vols.join("t/vol/j/data");
    assert!(vdir.join("veil.volume").exists());
    let mut files = Vec::new();
    all_files(&vols, &mut files);
    for f in &files {
        let b = std::fs::read(f).unwrap();
        assert!(
            !b.windows(15).any(|x| x == b"plaintext-marke"),
            "plaintext in {}",
            f.display()
        );
        assert!(
            !b.windows(7).any(|x| x == b"journal"),
            "a name in {}",
            f.display()
        );
    }

    // Roll back: keep a copy, run once more, put the old copy back.
    let old = w.path("old-volume");
    copy_tree(&vdir, &old);
    assert_eq!(run("three").code(), 0);
    std::fs::remove_dir_all(&vdir).unwrap();
    copy_tree(&old, &vdir);
    let r = run("four");
    assert_eq!(r.code(), 77, "{}", r.text());
    assert!(r.err.contains("volume_rollback"), "{}", r.text());
    assert!(!r.out.contains("entry-four"), "{}", r.text());

    // Deleted: refused as missing, not silently made anew.
    std::fs::remove_dir_all(&vdir).unwrap();
    let r = run("five");
    assert_eq!(r.code(), 77, "{}", r.text());
    assert!(r.err.contains("volume_missing"), "{}", r.text());
    assert!(
        !vdir.exists(),
        "a refused launcher must not create the volume"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
