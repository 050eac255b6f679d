//! The world of a `veil run` test, shared by the integration tests that run
//! the real launcher: a development CAS that trusts this test's simulated
//! TEE key, policies applied with the CLI, launchers in the background, and
//! processes owned by guards that kill them when dropped.

#![allow(dead_code)] // each test crate uses part of it
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const VEIL: &str = env!("CARGO_BIN_EXE_veil");
/// The longest any single launcher run may take.
pub const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Processes

/// A process this test started: killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn start(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        // Owned at once, so a failed assertion below still kills it (Drop).
        Proc {
            child,
            what: what.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
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
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -{sig} {pid}"))
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Whether this process runs as root (volumes, packet capture).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A YAML double-quoted scalar (JSON strings are valid ones).
pub fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

pub fn sha384sum(path: &Path) -> String {
    let o = Command::new("sha384sum").arg(path).output().unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

pub fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Where `path` is mounted in the mount table `mountinfo`, its fs type.
pub fn mount_fstype(mountinfo: &str, path: &Path) -> Option<String> {
    let want = path.to_str().unwrap();
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        (point == want).then(|| right.split(' ').next().unwrap_or("").to_owned())
    })
}

/// Every regular file under `dir`.
pub fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Whether `pid` is gone or a zombie (its parent died; pid 1 may be slow to
/// reap it).
pub fn dead_or_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Pids of processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
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

/// A development CAS (`veil cas serve --dev`) on a free loopback port,
/// owned by its [`Proc`] (killed when dropped).
pub struct DevCas {
    pub proc: Proc,
    pub url: String,
}

/// Starts a development CAS with `cmd` (this build's `veil`, carrying the
/// caller's environment), its state in `state`, its output in `log`, and
/// `extra` arguments; returns once it listens (it writes "URL FINGERPRINT"
/// to `STATE.ready`).
pub fn start_dev_cas(mut cmd: Command, state: &Path, log: &Path, extra: &[&str]) -> DevCas {
    let ready = state.with_extension("ready");
    let out = std::fs::File::create(log).unwrap();
    cmd.args([
        "cas",
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--state",
    ])
    .arg(state)
    .arg("--ready-file")
    .arg(&ready)
    .args(extra)
    .stdin(Stdio::null())
    .stdout(out.try_clone().unwrap())
    .stderr(out);
    let mut proc = Proc::start(&mut cmd, "the CAS");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            if let Some(url) = text.split_whitespace().next() {
                return DevCas {
                    proc,
                    url: url.to_owned(),
                };
            }
        }
        assert!(
            proc.exited().is_none(),
            "the CAS exited: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "the CAS did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Policies

/// One service of a policy, written in YAML by [`policy`].
pub struct Svc {
    pub name: String,
    pub accept: Vec<String>,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub files: Vec<(PathBuf, String, Option<&'static str>)>,
    pub host_args: bool,
    pub host_env: Vec<String>,
    pub volumes: Vec<String>,
    pub network: Vec<String>,
}

pub fn svc(name: &str, accept: &str, command: &[&str]) -> Svc {
    Svc {
        name: name.to_owned(),
        accept: vec![accept.to_owned()],
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: Vec::new(),
        files: Vec::new(),
        host_args: false,
        host_env: Vec::new(),
        volumes: Vec::new(),
        network: Vec::new(),
    }
}

impl Svc {
    pub fn env(mut self, k: &str, v: &str) -> Svc {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn file(mut self, path: &Path, content: &str, mode: Option<&'static str>) -> Svc {
        self.files.push((path.to_owned(), content.to_owned(), mode));
        self
    }

    pub fn host_args(mut self) -> Svc {
        self.host_args = true;
        self
    }

    pub fn volume(mut self, name: &str, path: &Path, mode: &str, key: &str) -> Svc {
        self.volumes.push(format!(
            "{{ name: {name}, path: {}, mode: {mode}, key: {key} }}",
            q(path.to_str().unwrap())
        ));
        self
    }

    /// A read-only volume (`read_only: true`).
    pub fn volume_ro(mut self, name: &str, path: &Path, mode: &str, key: &str) -> Svc {
        self.volumes.push(format!(
            "{{ name: {name}, path: {}, mode: {mode}, key: {key}, read_only: true }}",
            q(path.to_str().unwrap())
        ));
        self
    }

    /// A `network` rule, as a YAML flow mapping.
    pub fn network(mut self, rule: &str) -> Svc {
        self.network.push(rule.to_owned());
        self
    }

    pub fn host_env(mut self, names: &[&str]) -> Svc {
        self.host_env = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn yaml(&self) -> String {
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
        if !self.network.is_empty() {
            y.push_str("    network:\n");
            for n in &self.network {
                y.push_str(&format!("      - {n}\n"));
            }
        }
        y
    }
}

/// A session `name` owned by `owner`; `secrets` are YAML flow mappings.
pub fn policy(name: &str, owner: &str, secrets: &[&str], services: &[Svc]) -> String {
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

pub fn sim_rule(measurement: &str) -> String {
    format!("{{ tee: sim, measurement: {measurement} }}")
}

// ---------------------------------------------------------------------------
// One test's world: directory, VEIL_HOME, CAS, owner identity

pub struct World {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub cas: Option<Proc>,
    pub url: String,
    pub fp: String,
    /// Everything the veil CLI printed (not `veil run`).
    pub seen: RefCell<String>,
    pub runs: Cell<u32>,
}

/// How a `veil run` ended.
pub struct Ran {
    pub status: ExitStatus,
    pub out: String,
    pub err: String,
}

impl Ran {
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    pub fn text(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code(),
            self.out,
            self.err
        )
    }
}

/// A `veil run` in the background, its output going to files in the test dir.
pub struct Launch {
    pub proc: Proc,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Launch {
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until `ready` holds; fails if the launcher exits first.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
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

    pub fn wait_for_file(&mut self, path: &Path) {
        self.wait_until(&format!("{} to exist", path.display()), || path.exists());
    }

    pub fn wait_for_port(&mut self, port: u16) {
        self.wait_until(&format!("port {port} to accept connections"), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    pub fn finish(mut self) -> Ran {
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
    pub fn new() -> World {
        World::with_cas_args(&[])
    }

    /// The same, with further arguments to `veil cas serve`.
    pub fn with_cas_args(cas_args: &[&str]) -> World {
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

        let mut cmd = w.veil();
        cmd.env("RUST_LOG", "debug");
        let platform = platform_pub.to_str().unwrap();
        let mut extra = vec!["--trust-sim-key", platform];
        extra.extend_from_slice(cas_args);
        let cas = start_dev_cas(cmd, &w.path("cas"), &w.path("cas.log"), &extra);
        w.url = cas.url.clone();
        let cas = cas.proc;
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

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// veil with this world's VEIL_HOME; staging directories of the launcher
    /// go to `tmp/` in the test directory.
    pub fn veil(&self) -> Command {
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
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
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

    pub fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> Output {
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
    pub fn measure(&self, program: &Path) -> serde_json::Value {
        let o = self.cli_ok(&["measure", "--json", program.to_str().unwrap()], None);
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// The accept rule that pins `program` by its sim measurement.
    pub fn pin(&self, program: &Path) -> String {
        sim_rule(self.measure(program)["sim_measurement"].as_str().unwrap())
    }

    pub fn apply(&self, policy: &str) {
        let n = self.runs.get();
        self.runs.set(n + 1);
        let p = self.path(&format!("policy-{n}.yaml"));
        std::fs::write(&p, policy).unwrap();
        self.cli_ok(&["session", "apply", p.to_str().unwrap()], None);
    }

    pub fn put(&self, session: &str, secret: &str, value: &str) {
        self.cli_ok(&["secret", "put", session, secret], Some(value));
    }

    /// `veil run --session SESSION --service SERVICE --tee sim --cas URL`.
    pub fn launcher(&self, session: &str, service: &str) -> Command {
        self.launcher_at(session, service, &self.url)
    }

    /// The same with another CAS URL.
    pub fn launcher_at(&self, session: &str, service: &str, url: &str) -> Command {
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
    pub fn start(&self, mut cmd: Command) -> Launch {
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
    pub fn run(&self, cmd: Command) -> Ran {
        let ran = self.start(cmd).finish();
        assert!(!ran.err.contains("panicked"), "{}", ran.text());
        ran
    }

    /// Stops the CAS; returns its log.
    pub fn stop_cas(&mut self) -> String {
        drop(self.cas.take());
        std::fs::read_to_string(self.path("cas.log")).unwrap()
    }

    /// Nothing of the launcher's staging directories is left in `tmp/`.
    pub fn assert_no_staging_left(&self) {
        let left: Vec<_> = std::fs::read_dir(self.path("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

pub fn line_value<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no line {key}= in:\n{text}"))
}
