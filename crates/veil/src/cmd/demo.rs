//! `veil demo`: the quickstart. It runs the same commands a user would type
//! (a local development CAS, `cas verify`, `identity create`, `session apply`,
//! `secret put`, `veil run`), prints each one and what it teaches, and cleans
//! up. Every step is a real `veil` process: nothing is faked.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::cli::DemoArgs;
use crate::failure::Failure;

/// The program the demo runs: an ordinary shell script that knows nothing
/// about Veil and shows what it received.
const APP: &str = r#"#!/bin/sh
# An ordinary program: it reads an environment variable, an argument and a
# config file, like any service does. It knows nothing about Veil.
echo "app: environment  DB_PASSWORD=$DB_PASSWORD"
echo "app: argument     $1"
echo "app: config file  $(cat "$APP_CONFIG")"
"#;

const SESSION: &str = "demo/hello";

struct Cas {
    child: Child,
    url: String,
}

impl Drop for Cas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Demo {
    exe: PathBuf,
    home: PathBuf,
    dir: PathBuf,
}

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Usage(format!("demo: {what}: {e}"))
}

impl Demo {
    fn veil(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.env("VEIL_HOME", &self.home)
            .env_remove("VEIL_CAS")
            .env_remove("RUST_LOG")
            .current_dir(&self.dir);
        c
    }

    /// Shows `$ veil ARGS`, runs it, indents its output; fails unless it exits 0.
    fn step(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Output, Failure> {
        let out = self.show_and_run(args, stdin)?;
        if !out.status.success() {
            return Err(Failure::Usage(format!(
                "demo: `veil {}` failed with {}",
                args.join(" "),
                out.status
            )));
        }
        Ok(out)
    }

    fn show_and_run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Output, Failure> {
        println!("  $ veil {}", args.join(" "));
        let mut child = self
            .veil()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail("cannot start veil", e))?;
        if let Some(mut input) = child.stdin.take() {
            if let Some(bytes) = stdin {
                input
                    .write_all(bytes)
                    .map_err(|e| fail("cannot write to veil", e))?;
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail("cannot wait for veil", e))?;
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            println!("    {line}");
        }
        Ok(out)
    }

    fn start_cas(&self, trust: &Path) -> Result<Cas, Failure> {
        let state = self.dir.join("cas");
        let ready = self.dir.join("cas.ready");
        let log = std::fs::File::create(self.dir.join("cas.log"))
            .map_err(|e| fail("cannot create the CAS log", e))?;
        let log2 = log.try_clone().map_err(|e| fail("cas log", e))?;
        println!(
            "  $ veil cas serve --dev --listen 127.0.0.1:0 --state {} --trust-sim-key {}",
            state.display(),
            trust.display()
        );
        let child = self
            .veil()
            .args([
                "cas",
                "serve",
                "--dev",
                "--listen",
                "127.0.0.1:0",
                "--state",
            ])
            .arg(&state)
            .arg("--trust-sim-key")
            .arg(trust)
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| fail("cannot start the CAS", e))?;
        let mut cas = Cas {
            child,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Some(url) = text.split_whitespace().next() {
                    cas.url = url.to_owned();
                    println!(
                        "    CAS listening on {url} (log: {})",
                        self.dir.join("cas.log").display()
                    );
                    return Ok(cas);
                }
            }
            if let Ok(Some(status)) = cas.child.try_wait() {
                return Err(Failure::Usage(format!(
                    "demo: the CAS exited ({status}); see {}",
                    self.dir.join("cas.log").display()
                )));
            }
            if Instant::now() > deadline {
                return Err(Failure::Usage(
                    "demo: the CAS did not start within 60 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn random_hex(n: usize) -> Result<String, Failure> {
    let mut b = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Failure::Usage("demo: no randomness".into()))?;
    Ok(hex::encode(b))
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8], found: &mut Vec<PathBuf>, searched: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files_containing(&p, needle, found, searched),
            Ok(t) if t.is_file() => {
                *searched += 1;
                if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                    found.push(p);
                }
            }
            _ => {}
        }
    }
}

pub fn demo(args: DemoArgs) -> Result<u8, Failure> {
    let exe = std::env::current_exe().map_err(|e| fail("cannot find the veil binary", e))?;
    let tmp = tempfile::Builder::new()
        .prefix("veil-demo-")
        .tempdir()
        .map_err(|e| fail("cannot make a temporary directory", e))?;
    let dir = tmp.path().to_owned();
    let demo = Demo {
        exe,
        home: dir.join("home"),
        dir: dir.clone(),
    };
    let result = run_demo(&demo);
    if args.keep {
        let kept = tmp.keep();
        println!("\nKept {} (CAS state, policy, logs).", kept.display());
    }
    result
}

fn run_demo(demo: &Demo) -> Result<u8, Failure> {
    let dir = &demo.dir;
    println!("Veil demo: an unmodified program receives a password, an argument and a");
    println!("config file that exist nowhere on this host in clear text.");
    println!("Working in {} (removed at the end).", dir.display());
    println!("The TEE here is SIMULATED: it shows the flow and protects nothing.\n");

    // The launcher's simulated platform key; the CAS is told to trust it.
    let sim = demo.home.join("sim");
    let sim_key = veil_provider::SimProvider::open_or_create(&sim, [0; 48])
        .map_err(|e| fail("cannot create the sim platform key", e))?;
    drop(sim_key);

    println!("1. Start a CAS (development mode: simulated TEE, redb store in a directory).");
    let cas = demo.start_cas(&sim.join(veil_provider::PLATFORM_PUB_FILE))?;
    let url = cas.url.clone();

    println!("\n2. Attest the CAS and pin its certificate; every later call checks the pin.");
    demo.step(&["cas", "verify", "--dev", &url], None)?;

    println!("\n3. Create your owner identity (a key pair for mutual TLS).");
    demo.step(&["identity", "create"], None)?;
    let fp_out = demo
        .veil()
        .args(["identity", "show"])
        .output()
        .map_err(|e| fail("identity show", e))?;
    let fingerprint = String::from_utf8_lossy(&fp_out.stdout).trim().to_owned();

    let app_dir = dir.join("app");
    std::fs::create_dir_all(&app_dir).map_err(|e| fail("cannot create the app dir", e))?;
    let app = app_dir.join("hello.sh");
    write_exec(&app, APP)?;
    println!(
        "\n4. The program: {} (an ordinary sh script).",
        app.display()
    );
    println!("   Measure it: the simulated TEE states this measurement when it launches it.");
    let measured = demo.step(&["measure", &app.to_string_lossy()], None)?;
    let measurement = String::from_utf8_lossy(&measured.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("sim measurement")
                .map(|m| m.trim().to_owned())
        })
        .ok_or_else(|| Failure::Usage("demo: `veil measure` printed no sim measurement".into()))?;

    let config = app_dir.join("conf/db.conf");
    let policy = format!(
        r#"name: {SESSION}
version: 1
owners: [{fingerprint}]
secrets:
  - {{ name: db_password, kind: supplied }}
  - {{ name: api_key, kind: password, length: 20 }}
services:
  - name: hello
    accept:
      - tee: sim
        measurement: {measurement}
    command: [{app}, "--api-key={{{{ api_key }}}}"]
    env:
      DB_PASSWORD: "{{{{ db_password }}}}"
      APP_CONFIG: {config}
    files:
      {config}:
        content: "password = {{{{ db_password }}}}"
        mode: "0400"
"#,
        app = app.display(),
        config = config.display(),
    );
    let policy_path = dir.join("policy.yaml");
    std::fs::write(&policy_path, &policy).map_err(|e| fail("cannot write the policy", e))?;
    println!("\n5. Apply a policy (a \"session\"): which measurement may run, and what it gets.");
    for line in policy.lines() {
        println!("    | {line}");
    }
    demo.step(&["session", "apply", &policy_path.to_string_lossy()], None)?;
    let password = format!("demo-{}", random_hex(8)?);
    println!("   Upload the database password (write-only: nobody can read it back).");
    demo.step(
        &["secret", "put", SESSION, "db_password"],
        Some(password.as_bytes()),
    )?;

    println!("\n6. Run the program with `veil run`: attest, receive, start.");
    let run = [
        "run",
        "--session",
        SESSION,
        "--service",
        "hello",
        "--tee",
        "sim",
    ];
    demo.step(&run, None)?;
    let mut found = Vec::new();
    let mut searched = 0;
    files_containing(dir, password.as_bytes(), &mut found, &mut searched);
    if found.is_empty() {
        println!(
            "   The password is in none of the {searched} files under {} (CAS store included: it is sealed),",
            dir.display()
        );
        println!(
            "   and {} is {} on the host: the file lived on a private in-memory mount.",
            config.display(),
            if config.exists() {
                "still there"
            } else {
                "gone"
            }
        );
    } else {
        return Err(Failure::Usage(format!(
            "demo: the password was found on disk in {found:?}; this is a bug"
        )));
    }

    println!("\n7. Change the program by one line and run it again: the CAS refuses it.");
    let mut changed = APP.to_owned();
    changed.push_str("echo \"app: exfiltrating $DB_PASSWORD\"\n");
    write_exec(&app, &changed)?;
    let out = demo.show_and_run(&run, None)?;
    let code = out.status.code().unwrap_or(-1);
    if code != 77 {
        return Err(Failure::Usage(format!(
            "demo: the changed program was not refused as expected (exit {code})"
        )));
    }
    println!("   Exit code 77: attestation denied; the changed program never started.");

    drop(cas);
    println!("\nDone: the CAS is stopped.");
    println!("Next: write a policy for your own service (docs/spec/policy.md), and run");
    println!("`veil run` on a real TEE (SEV-SNP, TDX, SGX) with `tee: snp` accept rules");
    println!("pinning its measurement (README: \"Next steps\").");
    Ok(0)
}

fn write_exec(path: &Path, text: &str) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| fail("cannot write the program", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| fail("cannot make the program executable", e))
}
