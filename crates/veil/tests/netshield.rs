#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! The network shield inside `veil run`, end to end through the real
//! binary: memcached and redis-server started by one launcher with an
//! inbound tunnel, clients (python3, redis-cli, redis-benchmark) started by
//! another with an outbound tunnel, the loopback wire captured and searched
//! for what the clients stored, peers from another session or with the
//! wrong service or measurement refused, plaintext refused on the TLS port,
//! and the attested certificate renewed under open connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// A python3 memcached client for the text protocol: `set` then `get` of
/// KEY=VALUE through 127.0.0.1:PORT; with PAUSE > 0 it then waits PAUSE
/// seconds, `get`s again on the same connection and once more on a new one.
/// Prints each reply; exits 3 when the connection closes early.
const MC_CLIENT: &str = r#"#!/usr/bin/python3
import socket, sys, time
port, key, value, pause = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])

def call(s, req, until):
    s.sendall(req)
    got = b""
    while not got.endswith(until):
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            print("connection closed after %r" % got, flush=True)
            sys.exit(3)
        got += d
    return got.decode()

def connect():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
    except OSError as e:
        print("cannot connect: %s" % e, flush=True)
        sys.exit(3)
    return s

s = connect()
print("set:", call(s, ("set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value)).encode(), b"\r\n").strip(), flush=True)
print("get:", call(s, ("get %s\r\n" % key).encode(), b"END\r\n").replace("\r\n", " ").strip(), flush=True)
if pause > 0:
    time.sleep(pause)
    print("again:", call(s, ("get %s\r\n" % key).encode(), b"END\r\n").replace("\r\n", " ").strip(), flush=True)
    t = connect()
    print("new:", call(t, ("get %s\r\n" % key).encode(), b"END\r\n").replace("\r\n", " ").strip(), flush=True)
"#;

fn memcached(port: u16) -> Vec<String> {
    [
        "/usr/bin/memcached",
        "-p",
        &port.to_string(),
        "-l",
        "127.0.0.1",
        "-U",
        "0",
        "-u",
        "root",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn addr(port: u16) -> String {
    format!("\"127.0.0.1:{port}\"")
}

/// Whether this process may capture packets on the loopback interface.
fn can_capture() -> bool {
    is_root() && Path::new("/usr/bin/tcpdump").exists()
}

/// tcpdump on `lo` for one TCP port, written to a pcap file.
struct Capture {
    proc: Proc,
    file: PathBuf,
    log: PathBuf,
}

impl Capture {
    fn start(w: &World, name: &str, port: u16) -> Capture {
        let file = w.path(&format!("{name}.pcap"));
        let log = w.path(&format!("{name}.tcpdump.log"));
        let mut cmd = Command::new("/usr/bin/tcpdump");
        cmd.args(["-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0", "-w"])
            .arg(&file)
            .args(["tcp", "port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut proc = Proc::start(&mut cmd, "tcpdump");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(
                proc.exited().is_none(),
                "tcpdump exited: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "tcpdump did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture { proc, file, log }
    }

    /// Stops the capture (SIGINT flushes it) and returns the packets.
    fn finish(mut self) -> Vec<u8> {
        signal(self.proc.pid(), "INT");
        self.proc.wait(Duration::from_secs(20));
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(text.contains("packets captured"), "{text}");
        std::fs::read(&self.file).unwrap()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// memcached behind an inbound shield, a python3 client behind an outbound
/// shield of another launcher (same session, server pinned by service and
/// measurement): the value comes back, and on the captured TLS port neither
/// key nor value appears (while the capture of the plaintext port, inside
/// the TEE in a real deployment, shows both: the capture works). Then the
/// refusals: a plaintext client on the TLS port, a client launcher of
/// another session, a client pinning another service or measurement.
#[test]
fn memcached_and_a_python_client_talk_only_tls_on_the_wire() {
    let w = World::new();
    let app = free_port();
    let tls = free_port();
    let out_ok = free_port();
    let out_service = free_port();
    let out_measurement = free_port();
    let out_other = free_port();
    let mc_measurement = w.measure(Path::new("/usr/bin/memcached"))["sim_measurement"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = w.path("app/mc-client.py");
    write_exec(&client, MC_CLIENT);
    let key = format!("canary-key-{}", random_hex(6));
    let value = format!("canary-value-{}", random_hex(12));
    let client_cmd = |port: u16| {
        vec![
            client.to_str().unwrap().to_owned(),
            port.to_string(),
            key.clone(),
            value.clone(),
            "0".to_owned(),
        ]
    };
    let outbound = |port: u16, service: &str, measurement: &str| {
        format!(
            "{{ connect: {}, remote: {}, peer: {{ session: t/cache, service: {service}, measurement: {measurement} }} }}",
            addr(port),
            addr(tls)
        )
    };
    let pin = w.pin(&client);
    w.apply(&policy(
        "t/cache",
        &w.fp,
        &[],
        &[
            svc(
                "cache",
                &w.pin(Path::new("/usr/bin/memcached")),
                &strs(&memcached(app)),
            )
            .network(&format!("{{ listen: {}, to: {} }}", addr(tls), addr(app))),
            svc("client", &pin, &strs(&client_cmd(out_ok))).network(&outbound(
                out_ok,
                "cache",
                &mc_measurement,
            )),
            svc("wrong-service", &pin, &strs(&client_cmd(out_service))).network(&outbound(
                out_service,
                "db",
                &mc_measurement,
            )),
            svc(
                "wrong-measurement",
                &pin,
                &strs(&client_cmd(out_measurement)),
            )
            .network(&outbound(out_measurement, "cache", &"ab".repeat(48))),
        ],
    ));
    w.apply(&policy(
        "t/other",
        &w.fp,
        &[],
        &[
            svc("client", &pin, &strs(&client_cmd(out_other))).network(&format!(
                "{{ connect: {}, remote: {}, peer: {{ session: t/cache, service: cache }} }}",
                addr(out_other),
                addr(tls)
            )),
        ],
    ));

    let mut server = w.start(w.launcher("t/cache", "cache"));
    server.wait_for_port(tls);
    // memcached itself listens only on its loopback port, reached by the
    // shield; the host reaches the service only through TLS.
    let captures = can_capture().then(|| {
        (
            Capture::start(&w, "tls", tls),
            Capture::start(&w, "plain", app),
        )
    });

    let ran = w.run(w.launcher("t/cache", "client"));
    assert_eq!(ran.code(), 0, "{}", ran.text());
    assert!(ran.out.contains("set: STORED"), "{}", ran.text());
    assert!(
        ran.out
            .contains(&format!("get: VALUE {key} 0 {} {value} END", value.len())),
        "{}",
        ran.text()
    );

    match captures {
        Some((tls_cap, plain_cap)) => {
            let wire = tls_cap.finish();
            let inside = plain_cap.finish();
            assert!(
                contains(&inside, key.as_bytes()) && contains(&inside, value.as_bytes()),
                "the capture of the plaintext port shows the key and value: {} bytes, {} bytes on the TLS port",
                inside.len(),
                wire.len()
            );
            // TLS records (handshake 0x16 and application data 0x17, version
            // 0x0303) went over the TLS port, and nothing in clear.
            assert!(contains(&wire, &[0x17, 0x03, 0x03]), "no TLS records");
            assert!(wire.len() > 2000, "capture too small: {}", wire.len());
            assert!(!contains(&wire, key.as_bytes()), "key in clear on the wire");
            assert!(
                !contains(&wire, value.as_bytes()),
                "value in clear on the wire"
            );
            assert!(!contains(&wire, b"STORED"), "reply in clear on the wire");
        }
        None => eprintln!("not root or no tcpdump: the wire capture part is skipped"),
    }

    // A plaintext client on the TLS port gets no memcached reply: its bytes
    // are not a ClientHello, the handshake fails and the connection closes.
    let mut s = TcpStream::connect(("127.0.0.1", tls)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("get {key}\r\n").as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !contains(&got, b"VALUE") && !contains(&got, b"END"),
        "{got:?}"
    );
    assert!(
        got.is_empty() || got[0] == 0x15,
        "only a TLS alert, if anything: {got:?}"
    );

    // Peers that do not fit are refused: the client sees its connection
    // closed without a reply, and its launcher says why (at info level).
    for (session, service, why) in [
        ("t/other", "client", "server"),
        ("t/cache", "wrong-service", "service"),
        ("t/cache", "wrong-measurement", "measurement"),
    ] {
        let mut cmd = w.launcher(session, service);
        cmd.env("RUST_LOG", "veil_netshield=info");
        let ran = w.run(cmd);
        assert_eq!(ran.code(), 3, "{session} {service}: {}", ran.text());
        assert!(ran.out.contains("connection closed"), "{}", ran.text());
        assert!(!ran.out.contains(&value), "{}", ran.text());
        if why != "server" {
            assert!(
                ran.err.contains("outbound connection failed") && ran.err.contains(why),
                "{service}: {}",
                ran.text()
            );
        }
    }
    // The server refused the client of the other session (its certificate
    // is from another session CA) and said so.
    let log = server.stderr();
    assert!(log.contains("peer refused"), "{log}");
    assert!(!log.contains(&value), "{log}");
}

/// redis-server behind an inbound shield; a script run by a second launcher
/// uses redis-cli and redis-benchmark through an outbound shield.
#[test]
fn redis_cli_and_redis_benchmark_go_through_the_shields() {
    let w = World::new();
    let app = free_port();
    let tls = free_port();
    let out = free_port();
    let script = w.path("app/redis-client.sh");
    write_exec(
        &script,
        &format!(
            "#!/bin/sh\nset -e\nP={out}\nredis-cli -p $P SET shielded-key shielded-value\nredis-cli -p $P GET shielded-key\nredis-benchmark -p $P -n 2000 -c 10 -P 4 -t set,get -q\n"
        ),
    );
    let app_s = app.to_string();
    w.apply(&policy(
        "t/redis",
        &w.fp,
        &[],
        &[
            svc(
                "redis",
                &w.pin(Path::new("/usr/bin/redis-server")),
                &[
                    "/usr/bin/redis-server",
                    "--port",
                    &app_s,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
            )
            .network(&format!("{{ listen: {}, to: {} }}", addr(tls), addr(app))),
            svc("client", &w.pin(&script), &[script.to_str().unwrap()]).network(&format!(
                "{{ connect: {}, remote: {}, peer: {{ session: t/redis, service: redis }} }}",
                addr(out),
                addr(tls)
            )),
        ],
    ));
    let mut server = w.start(w.launcher("t/redis", "redis"));
    server.wait_for_port(tls);
    let ran = w.run(w.launcher("t/redis", "client"));
    assert_eq!(ran.code(), 0, "{}", ran.text());
    let lines: Vec<&str> = ran.out.lines().collect();
    assert_eq!(lines.first(), Some(&"OK"), "{}", ran.text());
    assert_eq!(lines.get(1), Some(&"shielded-value"), "{}", ran.text());
    for t in ["SET:", "GET:"] {
        assert!(
            ran.out
                .split(['\r', '\n'])
                .any(|l| l.trim_start().starts_with(t) && l.contains("requests per second")),
            "{t} {}",
            ran.text()
        );
    }
    // The same port refuses a client without a certificate.
    let mut cmd = Command::new("/usr/bin/redis-cli");
    cmd.args(["-p", &tls.to_string(), "PING"]);
    let o = cmd.output().unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("PONG"),
        "{o:?}"
    );
}

/// A world whose CAS issues 6-second launcher certificates, with session
/// `session`: service `cache` (memcached behind an inbound shield) and
/// service `client` (the python3 client storing KEY=value, pausing 9 s,
/// then reading on the same and on a new connection through an outbound
/// shield). Returns the world and the TLS port.
fn short_lived_certificates(session: &str, key: &str) -> (World, u16) {
    let w = World::with_cas_args(&["--launcher-cert-validity", "6"]);
    let app = free_port();
    let tls = free_port();
    let out = free_port();
    let client = w.path("app/mc-client.py");
    write_exec(&client, MC_CLIENT);
    let out_s = out.to_string();
    w.apply(&policy(
        session,
        &w.fp,
        &[],
        &[
            svc(
                "cache",
                &w.pin(Path::new("/usr/bin/memcached")),
                &strs(&memcached(app)),
            )
            .network(&format!("{{ listen: {}, to: {} }}", addr(tls), addr(app))),
            svc(
                "client",
                &w.pin(&client),
                &[client.to_str().unwrap(), &out_s, key, "value", "9"],
            )
            .network(&format!(
                "{{ connect: {}, remote: {}, peer: {{ session: {session}, service: cache }} }}",
                addr(out),
                addr(tls)
            )),
        ],
    ));
    (w, tls)
}

/// With launcher certificates valid for 6 s, the launchers renew theirs by
/// attesting again (after 4 s): a connection opened before the renewal keeps
/// working after the first certificates expired, and a new connection made
/// then succeeds, which needs the renewed certificates on both sides.
#[test]
fn renewal_keeps_open_connections_and_new_handshakes_succeed_after_expiry() {
    let (w, tls) = short_lived_certificates("t/renew", "renewed");
    let mut cmd = w.launcher("t/renew", "cache");
    cmd.env("RUST_LOG", "veil_launcher=info");
    let mut server = w.start(cmd);
    server.wait_for_port(tls);
    let mut cmd = w.launcher("t/renew", "client");
    cmd.env("RUST_LOG", "veil_launcher=info");
    let ran = w.run(cmd);
    assert_eq!(ran.code(), 0, "{}", ran.text());
    for line in [
        "get: VALUE renewed 0 5 value END",
        "again: VALUE renewed 0 5 value END",
        "new: VALUE renewed 0 5 value END",
    ] {
        assert!(ran.out.contains(line), "{line}: {}", ran.text());
    }
    assert!(
        ran.err.contains("launcher certificate renewed"),
        "{}",
        ran.text()
    );
    assert!(
        server.stderr().contains("launcher certificate renewed"),
        "{}",
        server.stderr()
    );
}

/// A policy naming a peer session the CAS does not hold is denied before
/// the program starts (77, `network_peer_unknown`); a tunnel address already
/// in use stops the launcher before the program starts (76).
#[test]
fn unknown_peer_sessions_and_busy_ports_stop_the_launch() {
    let w = World::new();
    let marker = w.path("ran");
    let script = w.path("app/touch.sh");
    write_exec(
        &script,
        &format!("#!/bin/sh\ntouch {}\n", marker.to_str().unwrap()),
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let pin = w.pin(&script);
    w.apply(&policy(
        "t/net",
        &w.fp,
        &[],
        &[
            svc("unknown-peer", &pin, &[script.to_str().unwrap()]).network(&format!(
                "{{ connect: {}, remote: {}, peer: {{ session: t/nowhere }} }}",
                addr(free_port()),
                addr(free_port())
            )),
            svc("busy", &pin, &[script.to_str().unwrap()]).network(&format!(
                "{{ listen: {}, to: {} }}",
                addr(busy_port),
                addr(free_port())
            )),
        ],
    ));
    let ran = w.run(w.launcher("t/net", "unknown-peer"));
    assert_eq!(ran.code(), 77, "{}", ran.text());
    assert!(ran.err.contains("network_peer_unknown"), "{}", ran.text());
    assert!(ran.err.contains("t/nowhere"), "{}", ran.text());
    let ran = w.run(w.launcher("t/net", "busy"));
    assert_eq!(ran.code(), 76, "{}", ran.text());
    assert!(
        ran.err
            .contains(&format!("cannot listen on 127.0.0.1:{busy_port}")),
        "{}",
        ran.text()
    );
    assert!(!marker.exists(), "the program ran");
    drop(busy);
}

/// The same set-up, but the CAS stops right after the client's first
/// exchange, so neither launcher can renew: the open connection keeps
/// working, and once the 6-second certificates have expired a new
/// connection is refused (the client's shield finds the server's
/// certificate expired), never carried in clear.
#[test]
fn expired_certificates_are_refused_when_renewal_is_impossible() {
    let (mut w, tls) = short_lived_certificates("t/expire", "expiring");
    let mut server = w.start(w.launcher("t/expire", "cache"));
    server.wait_for_port(tls);
    let mut cmd = w.launcher("t/expire", "client");
    cmd.env("RUST_LOG", "warn,veil_netshield=info");
    let mut client_run = w.start(cmd);
    let out_file = client_run.out.clone();
    client_run.wait_until("the first exchange", || {
        std::fs::read_to_string(&out_file)
            .unwrap_or_default()
            .contains("get:")
    });
    w.stop_cas();
    let ran = client_run.finish();
    assert_eq!(ran.code(), 3, "{}", ran.text());
    assert!(
        ran.out.contains("again: VALUE expiring 0 5 value END"),
        "{}",
        ran.text()
    );
    assert!(!ran.out.contains("new:"), "{}", ran.text());
    assert!(ran.out.contains("connection closed"), "{}", ran.text());
    assert!(
        ran.err.contains("outbound connection failed") && ran.err.contains("xpired"),
        "{}",
        ran.text()
    );
    assert!(
        // The launcher tried to renew (and is still retrying).
        ran.err.contains("the CAS is unreachable; retrying"),
        "{}",
        ran.text()
    );
}

/// An inbound rule naming an x509 secret of the policy and `client_auth:
/// none` serves ordinary TLS clients that have no Veil certificate: a
/// python3 `ssl` client gets TLS 1.3, the ALPN protocol of the policy, the
/// secret's certificate (by its common name) and memcached's answer.
#[test]
fn an_x509_secret_with_client_auth_none_serves_ordinary_tls_clients() {
    let w = World::new();
    let app = free_port();
    let tls = free_port();
    w.apply(&policy(
        "t/public",
        &w.fp,
        &["{ name: web_tls, kind: x509, issuer: session-ca, common_name: cache.example.test, dns: [cache.example.test] }"],
        &[svc(
            "cache",
            &w.pin(Path::new("/usr/bin/memcached")),
            &strs(&memcached(app)),
        )
        .network(&format!(
            "{{ listen: {}, to: {}, tls: web_tls, client_auth: none, alpn: [memcache, other/1] }}",
            addr(tls),
            addr(app)
        ))],
    ));
    let mut server = w.start(w.launcher("t/public", "cache"));
    server.wait_for_port(tls);
    let probe = format!(
        r#"
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["memcache"])
with socket.create_connection(("127.0.0.1", {tls}), timeout=20) as raw:
    with ctx.wrap_socket(raw, server_hostname="cache.example.test") as s:
        print(s.version())
        print("alpn", s.selected_alpn_protocol())
        der = s.getpeercert(binary_form=True)
        print("cn-in-cert", b"cache.example.test" in der)
        s.sendall(b"version\r\n")
        print(s.recv(100).decode().strip())
"#
    );
    let o = Command::new("/usr/bin/python3")
        .args(["-c", &probe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "TLSv1.3", "{text}");
    assert_eq!(lines[1], "alpn memcache", "{text}");
    assert_eq!(lines[2], "cn-in-cert True", "{text}");
    assert!(lines[3].starts_with("VERSION "), "{text}");
}
