#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! `veil run` end to end through the real binary: a development CAS that
//! trusts this test's simulated TEE key, policies applied with the CLI, and
//! real, unmodified programs (sh, python3, sqlite3, redis-server, memcached)
//! that receive secrets in their environment, arguments and files.
//!
//! Each test has its own temporary directory, `VEIL_HOME` and CAS; every
//! process a test starts is owned by a [`Proc`] that kills it when dropped.
//! Ports are chosen at run time on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

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

/// Regression: the client that commits volume tags presented the launcher's
/// first certificate for the whole run, so once it expired (24 h) every
/// commit failed and the next start was refused as a rollback. With
/// 6-second certificates, a program writing for 9 s ends with its final tag
/// committed (through a renewed certificate), and the next start is
/// accepted and sees everything.
#[test]
fn volume_commits_use_the_renewed_certificate() {
    let w = World::with_cas_args(&["--launcher-cert-validity", "6"]);
    let script = w.path("app/slow-journal.sh");
    let mnt = w.path("mnt/data");
    write_exec(
        &script,
        r#"#!/bin/sh
for i in 1 2 3; do
  echo "entry-$1-$i" >> "$DATA/journal.txt"
  sleep 3
done
echo "entry-$1-last" >> "$DATA/journal.txt"
cat "$DATA/journal.txt"
"#,
    );
    w.apply(&policy(
        "t/renewvol",
        &w.fp,
        &["{ name: dk, kind: aes-256 }"],
        &[svc("j", &w.pin(&script), &[script.to_str().unwrap()])
            .env("DATA", mnt.to_str().unwrap())
            .host_args()
            .volume("data", &mnt, "encrypted", "dk")],
    ));
    let vols = w.path("volumes");
    let run = |arg: &str| {
        let mut c = w.launcher("t/renewvol", "j");
        c.arg("--volumes-dir")
            .arg(&vols)
            .env("RUST_LOG", "warn,veil_launcher=info")
            .args(["--", arg]);
        w.run(c)
    };
    let r1 = run("one");
    assert_eq!(r1.code(), 0, "{}", r1.text());
    assert!(
        r1.err.contains("launcher certificate renewed"),
        "{}",
        r1.text()
    );
    assert!(!r1.err.contains("not committed"), "{}", r1.text());
    let r2 = run("two");
    assert_eq!(r2.code(), 0, "{}", r2.text());
    assert!(
        r2.out.contains("entry-one-last") && r2.out.contains("entry-two-1"),
        "{}",
        r2.text()
    );
}

/// A read-only volume made by its owner with `veil fs encrypt` (key read
/// back from the CAS) and whose tag the owner set with `veil volume accept`:
/// the launcher never creates it (65 while missing), the program reads it
/// and cannot write to it, and its tag is unchanged afterwards.
#[test]
fn read_only_volumes_are_made_by_the_owner_and_never_written() {
    let w = World::new();
    let script = w.path("app/read.sh");
    let mnt = w.path("mnt/in");
    write_exec(
        &script,
        r#"#!/bin/sh
cat "$DATA/input.txt"
if echo x > "$DATA/new.txt" 2>/dev/null; then echo "write allowed"; else echo "write refused"; fi
"#,
    );
    w.apply(&policy(
        "t/ro",
        &w.fp,
        &["{ name: ik, kind: aes-256, export: [{ owner: true }] }"],
        &[svc("r", &w.pin(&script), &[script.to_str().unwrap()])
            .env("DATA", mnt.to_str().unwrap())
            .volume_ro("in", &mnt, "encrypted", "ik")],
    ));
    let vols = w.path("volumes");
    let run = || {
        let mut c = w.launcher("t/ro", "r");
        c.arg("--volumes-dir").arg(&vols);
        w.run(c)
    };
    let r = run();
    assert_eq!(r.code(), 65, "{}", r.text());
    assert!(r.err.contains("read-only"), "{}", r.text());

    let src = w.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("input.txt"), "owner-made input\n").unwrap();
    let vdir = vols.join("t/ro/r/in");
    let vd = vdir.to_str().unwrap();
    w.cli_ok(
        &[
            "fs",
            "encrypt",
            src.to_str().unwrap(),
            vd,
            "--init",
            "--session",
            "t/ro",
            "--volume",
            "in",
        ],
        None,
    );
    let o = w.cli_ok(
        &["fs", "tag", vd, "--session", "t/ro", "--volume", "in"],
        None,
    );
    let tag = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert_eq!(tag.len(), 64, "{tag}");
    w.cli_ok(
        &["volume", "accept", "t/ro", "r", "in", "--tag", &tag],
        None,
    );

    let r = run();
    assert_eq!(r.code(), 0, "{}", r.text());
    assert!(r.out.contains("owner-made input"), "{}", r.text());
    assert!(r.out.contains("write refused"), "{}", r.text());
    let o = w.cli_ok(
        &["fs", "tag", vd, "--session", "t/ro", "--volume", "in"],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), tag);
}
