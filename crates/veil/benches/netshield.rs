//! The network shield beside stunnel and direct TCP, in one run.
//!
//! Three paths to the same servers, all on 127.0.0.1 (ports chosen at run
//! time):
//!
//! * **direct**: client -> server;
//! * **Veil**: client -> plaintext -> `veil tls proxy --plain-listen`
//!   (outbound, client certificate, peer rule) -> TLS 1.3, mutual
//!   authentication with attested certificates -> `veil tls proxy --listen`
//!   (inbound, client certificate required, peer rule) -> plaintext ->
//!   server;
//! * **stunnel**: the same topology with two stunnel processes (client mode
//!   and server mode, TLS 1.3 only, `verifyChain` both ways with the session
//!   CA as `CAfile`, the same ECDSA P-256 certificates, the same cipher suite
//!   as Veil negotiates (TLS_AES_256_GCM_SHA384), session resumption off as
//!   in Veil, `TCP_NODELAY` on both sockets).
//!
//! The session CA and the two attested certificates are minted here with
//! `veil_ca` and written as PEM files to a temporary directory.
//!
//! Workloads (every round runs each workload on every path in turn, so that
//! machine noise hits them alike; medians of the rounds are reported):
//! redis-benchmark SET/GET with 50 clients at pipeline 1 and 16; the same
//! with one client at pipeline 1 for the p50 latency at light load;
//! memcslap set and get with 50 threads against memcached; bulk throughput
//! over one connection (this process writes 2 GiB in 256 KiB writes to a
//! sink thread that reads and discards); handshakes per second (many short
//! connections, each one 32-byte request echoed back, from 16 client
//! threads). The CPU time of the proxy processes is read from `/proc`
//! around every run.
//!
//! Run with `env -u RUST_BACKTRACE cargo bench -p veil --bench netshield`;
//! stunnel4, redis-server, redis-tools, memcached and libmemcached-tools
//! (memcslap) are installed with apt-get when missing. The figures replace
//! the `netshield` section of `docs/benchmarks.md`.
//!
//! Knobs (environment): `VEIL_BENCH_ROUNDS` (3), `VEIL_BENCH_REDIS_N`
//! (100000 requests per test at pipeline 1), `VEIL_BENCH_REDIS_P16_N`
//! (500000), `VEIL_BENCH_LAT_N` (20000), `VEIL_BENCH_MEMC_N` (2000 per
//! thread), `VEIL_BENCH_BULK_MIB` (2048), `VEIL_BENCH_HS` (2000
//! connections), `VEIL_BENCH_HS_THREADS` (16), `VEIL_BENCH_NO_DOCS` (set:
//! do not touch the docs). For profiling and before/after comparisons:
//! `VEIL_BENCH_ONLY` (some of `p1,p16,lat,memc,bulk,hs`) and
//! `VEIL_BENCH_VEIL_BASE` (another `veil` binary, run as a fourth path and
//! compared on stdout only).

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use veil_attest::{Tee, Time};
use veil_ca::{issue_attested_cert, AttestedSubject, CaIdentity, Identity};
use x509_parser::prelude::{FromDer, X509Certificate};

mod common;
use common::{cmd, ensure_installed, knob, ok, write_section};

const DAY: u64 = 86_400;
const SESSION: &str = "bench/netshield";
const MEASUREMENT: [u8; 48] = [0x5a; 48];
const KIB: usize = 1024;
const MIB: u64 = 1 << 20;
/// The request and answer of one short connection (handshakes test).
const PING: &[u8; 32] = b"ping ping ping ping ping ping !\n";

/// stdout and stderr of `c`, whatever its exit status ("" if it cannot run).
fn all_output(c: &mut Command) -> String {
    match c.stdin(Stdio::null()).output() {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => String::new(),
    }
}

// ------------------------------------------------------------ processes

/// A server or proxy process, killed when dropped (also on a panic).
struct Guard {
    child: Child,
    what: String,
    log: PathBuf,
}

impl Guard {
    /// Starts `c` with stdout and stderr going to `dir/what.log`.
    fn spawn(mut c: Command, dir: &Path, what: &str) -> Guard {
        let log = dir.join(format!("{what}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = c
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Guard {
            child,
            what: what.to_owned(),
            log,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the log) when the process has exited.
    fn check_alive(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("{} exited ({st}):\n{}", self.what, self.log_text());
        }
    }

    /// User + system CPU time so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After "pid (comm) ": state is field 3; utime and stime are 14, 15.
        let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        get(11) + get(12)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU clock ticks so far of this process (all its threads) and of its
/// waited-for children (and theirs).
fn self_cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (get(11) + get(12), get(13) + get(14))
}

/// A port free now on 127.0.0.1 (for programs that cannot report theirs).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits (up to 15 s) until `addr` accepts connections.
fn wait_port(addr: SocketAddr, g: &mut Guard) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        g.check_alive();
        assert!(
            Instant::now() < deadline,
            "{} does not accept on {addr}:\n{}",
            g.what,
            g.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------ certificates

/// The session CA and the attested certificates of both ends, as PEM files.
struct Pki {
    ca: PathBuf,
    /// The server side ("db"): certificate, key.
    server: (PathBuf, PathBuf),
    /// The client side ("app"): certificate, key.
    client: (PathBuf, PathBuf),
}

fn make_pki(dir: &Path) -> Pki {
    let now = Time::now().unix();
    let ca =
        CaIdentity::generate("netshield bench session CA", 30, Time::from_unix(now - DAY)).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let issue = |service: &str| {
        let id = Identity::generate(service, Time::from_unix(now)).unwrap();
        let (_, parsed) = X509Certificate::from_der(id.certificate()).unwrap();
        let spki = parsed.tbs_certificate.subject_pki.raw.to_vec();
        let subject = AttestedSubject {
            session: SESSION.into(),
            service: service.into(),
            tee: Tee::Sim,
            measurement: MEASUREMENT.to_vec(),
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        let der = issue_attested_cert(
            &ca,
            &spki,
            &subject,
            Time::from_unix(now - 60),
            Time::from_unix(now + DAY),
        )
        .unwrap();
        let cert = dir.join(format!("{service}.crt"));
        let key = dir.join(format!("{service}.key"));
        std::fs::write(&cert, pem::encode(&pem::Pem::new("CERTIFICATE", der))).unwrap();
        std::fs::write(&key, id.key_pem().as_bytes()).unwrap();
        (cert, key)
    };
    Pki {
        ca: ca_file,
        server: issue("db"),
        client: issue("app"),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ------------------------------------------------------------ the paths

/// Where a client connects for one server on one path, and the proxies on
/// the way.
struct Route {
    addr: SocketAddr,
    proxies: Vec<Guard>,
}

impl Route {
    fn cpu_ticks(&self) -> u64 {
        self.proxies.iter().map(Guard::cpu_ticks).sum()
    }
}

/// Starts `veil tls proxy ARGS` and returns it with the address it reports.
fn start_veil(bin: &Path, dir: &Path, what: &str, args: &[&str]) -> (Guard, SocketAddr) {
    let mut c = cmd(p(bin));
    c.env_remove("VEIL_CAS")
        .env_remove("VEIL_HOME")
        .args(["tls", "proxy"])
        .args(args);
    let mut g = Guard::spawn(c, dir, what);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = g.log_text();
        if let Some(line) = log.lines().find_map(|l| l.strip_prefix("listening on ")) {
            return (g, line.trim().parse().unwrap());
        }
        g.check_alive();
        assert!(Instant::now() < deadline, "{what} did not start:\n{log}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Veil outbound (client side) -> Veil inbound (server side) -> `backend`.
fn veil_route(bin: &Path, pki: &Pki, dir: &Path, name: &str, backend: SocketAddr) -> Route {
    let m = hex::encode(MEASUREMENT);
    let to = backend.to_string();
    let (inb, inb_addr) = start_veil(
        bin,
        dir,
        &format!("veil-inbound-{name}"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--to",
            &to,
            "--cert",
            p(&pki.server.0),
            "--key",
            p(&pki.server.1),
            "--ca",
            p(&pki.ca),
            "--peer-session",
            SESSION,
            "--peer-service",
            "app",
            "--peer-measurement",
            &m,
        ],
    );
    let remote = inb_addr.to_string();
    let (out, out_addr) = start_veil(
        bin,
        dir,
        &format!("veil-outbound-{name}"),
        &[
            "--plain-listen",
            "127.0.0.1:0",
            "--remote",
            &remote,
            "--server-name",
            "localhost",
            "--cert",
            p(&pki.client.0),
            "--key",
            p(&pki.client.1),
            "--ca",
            p(&pki.ca),
            "--peer-session",
            SESSION,
            "--peer-service",
            "db",
            "--peer-measurement",
            &m,
        ],
    );
    Route {
        addr: out_addr,
        proxies: vec![out, inb],
    }
}

/// The service section common to both stunnel ends.
fn stunnel_common(cert: &Path, key: &Path, ca: &Path) -> String {
    format!(
        "cert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\nsslVersionMin = TLSv1.3\n\
         ciphersuites = TLS_AES_256_GCM_SHA384\nsessionResume = no\n\
         socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n",
        p(cert),
        p(key),
        p(ca)
    )
}

fn start_stunnel(dir: &Path, what: &str, conf: &str, accept: SocketAddr) -> Guard {
    let file = dir.join(format!("{what}.conf"));
    std::fs::write(&file, conf).unwrap();
    let mut c = cmd("stunnel");
    c.arg(&file);
    let mut g = Guard::spawn(c, dir, what);
    wait_port(accept, &mut g);
    g
}

/// stunnel client mode -> stunnel server mode -> `backend`.
fn stunnel_route(pki: &Pki, dir: &Path, name: &str, backend: SocketAddr) -> Route {
    let global = "foreground = yes\npid =\ndebug = 3\n";
    let server_port = free_port();
    let server_conf = format!(
        "{global}[{name}]\naccept = 127.0.0.1:{server_port}\nconnect = {backend}\nrequireCert = yes\n{}",
        stunnel_common(&pki.server.0, &pki.server.1, &pki.ca)
    );
    let server = start_stunnel(
        dir,
        &format!("stunnel-server-{name}"),
        &server_conf,
        local(server_port),
    );
    let client_port = free_port();
    let client_conf = format!(
        "{global}[{name}]\nclient = yes\naccept = 127.0.0.1:{client_port}\nconnect = 127.0.0.1:{server_port}\n{}",
        stunnel_common(&pki.client.0, &pki.client.1, &pki.ca)
    );
    let client = start_stunnel(
        dir,
        &format!("stunnel-client-{name}"),
        &client_conf,
        local(client_port),
    );
    Route {
        addr: local(client_port),
        proxies: vec![client, server],
    }
}

// ------------------------------------------------------------ servers

fn start_redis(dir: &Path) -> (Guard, SocketAddr) {
    let port = free_port();
    let mut c = cmd("redis-server");
    c.args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--protected-mode", "no", "--daemonize", "no"]);
    let mut g = Guard::spawn(c, dir, "redis-server");
    wait_port(local(port), &mut g);
    (g, local(port))
}

fn start_memcached(dir: &Path) -> (Guard, SocketAddr) {
    let port = free_port();
    let mut c = cmd("memcached");
    c.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]);
    let root = ok(cmd("id").arg("-u")).trim() == "0";
    if root {
        c.args(["-u", "root"]);
    }
    let mut g = Guard::spawn(c, dir, "memcached");
    wait_port(local(port), &mut g);
    (g, local(port))
}

/// A server that reads every connection to its end, discarding, then
/// reports the byte count and closes.
fn sink_server() -> (SocketAddr, mpsc::Receiver<u64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * KIB];
                let mut total = 0u64;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                let _ = tx.send(total);
            });
        }
    });
    (addr, rx)
}

/// A plaintext echo server, a thread per connection.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut w = s.try_clone().unwrap();
                let _ = std::io::copy(&mut s, &mut w);
                let _ = w.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

// ------------------------------------------------------------ workloads

/// One request/answer exchange over a TCP connection, with a timeout.
fn exchange(addr: SocketAddr, req: &[u8], answer_prefix: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).map_err(|e| e.to_string())?;
    let mut got = vec![0u8; answer_prefix.len()];
    s.read_exact(&mut got).map_err(|e| e.to_string())?;
    if got != answer_prefix {
        return Err(format!("answer {:?}", String::from_utf8_lossy(&got)));
    }
    Ok(())
}

struct RedisRow {
    test: String,
    rps: f64,
    p50_ms: f64,
}

/// `redis-benchmark -c CLIENTS -P PIPELINE -t set,get -n N --csv`.
fn redis_benchmark(addr: SocketAddr, clients: u32, pipeline: u32, n: u64) -> Vec<RedisRow> {
    let out = ok(cmd("timeout").args([
        "900",
        "redis-benchmark",
        "-h",
        "127.0.0.1",
        "-p",
        &addr.port().to_string(),
        "-c",
        &clients.to_string(),
        "-P",
        &pipeline.to_string(),
        "-t",
        "set,get",
        "-n",
        &n.to_string(),
        "--csv",
    ]));
    let rows: Vec<RedisRow> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(|x| x.trim_matches('"')).collect();
            let rps = f.get(1)?.parse().ok()?;
            let p50_ms = f.get(4)?.parse().ok()?;
            Some(RedisRow {
                test: f[0].to_owned(),
                rps,
                p50_ms,
            })
        })
        .collect();
    assert!(rows.len() == 2, "unexpected redis-benchmark output:\n{out}");
    rows
}

/// `memcslap -c THREADS -t TEST -e PER_THREAD`: operations per second.
fn memcslap(addr: SocketAddr, test: &str, threads: u32, per_thread: u64) -> f64 {
    let out = ok(cmd("timeout").args([
        "900",
        "memcslap",
        "-s",
        &addr.to_string(),
        "-c",
        &threads.to_string(),
        "-t",
        test,
        "-e",
        &per_thread.to_string(),
    ]));
    // "Time to get          984383 keys by   50 threads:    19.548 seconds."
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("Time to {test} ")) && l.contains(" threads:"))
        .unwrap_or_else(|| panic!("unexpected memcslap output:\n{out}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let keys: f64 = w[3].parse().unwrap();
    let secs: f64 = w[w.len() - 2].parse().unwrap();
    keys / secs
}

/// Writes `bytes` in 256 KiB writes over one connection to the sink, then
/// waits for the sink to have read it all and closed: bytes per second.
fn bulk(addr: SocketAddr, bytes: u64, sink: &mpsc::Receiver<u64>) -> f64 {
    let buf: Vec<u8> = (0..256 * KIB)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        s.write_all(&buf[..n]).unwrap();
        sent += n as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let secs = t.elapsed().as_secs_f64();
    // Connections with nothing sent (the start-up probes of a path) report
    // zero: skip them.
    let got = loop {
        let got = sink.recv_timeout(Duration::from_secs(30)).unwrap();
        if got != 0 {
            break got;
        }
    };
    assert_eq!(got, bytes, "the sink received {got} of {bytes} bytes");
    bytes as f64 / secs
}

/// `count` short connections (connect, 32 bytes each way, close) from
/// `threads` threads: connections per second, and the failed ones.
fn handshakes(addr: SocketAddr, count: u64, threads: u64) -> (f64, u64) {
    let next = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    if exchange(addr, PING, PING).is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (
        count as f64 / t.elapsed().as_secs_f64(),
        failed.into_inner(),
    )
}

// ------------------------------------------------------------ figures

/// Samples per (figure, path).
#[derive(Default)]
struct Samples(HashMap<(String, usize), Vec<f64>>);

impl Samples {
    fn push(&mut self, key: &str, sys: usize, v: f64) {
        self.0.entry((key.to_owned(), sys)).or_default().push(v);
    }

    fn sorted(&self, key: &str, sys: usize) -> Vec<f64> {
        let mut v = self
            .0
            .get(&(key.to_owned(), sys))
            .cloned()
            .unwrap_or_default();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(&self, key: &str, sys: usize) -> f64 {
        let v = self.sorted(key, sys);
        if v.is_empty() {
            return f64::NAN;
        }
        v[v.len() / 2]
    }

    /// "median (min-max)" with `prec` decimals.
    fn show(&self, key: &str, sys: usize, prec: usize) -> String {
        let v = self.sorted(key, sys);
        match v.len() {
            0 => "-".into(),
            1 => format!("{:.prec$}", v[0]),
            n => format!("{:.prec$} ({:.prec$}-{:.prec$})", v[n / 2], v[0], v[n - 1]),
        }
    }
}

/// The CPU time between two snapshots ([proxies, the rest] in seconds),
/// scaled to a unit of work.
fn record(s: &mut Samples, w: &str, i: usize, before: [f64; 2], after: [f64; 2], per_unit: f64) {
    s.push(&format!("cpu-{w}"), i, (after[0] - before[0]) * per_unit);
    s.push(&format!("cpuo-{w}"), i, (after[1] - before[1]) * per_unit);
}

const DIRECT: usize = 0;
const STUNNEL: usize = 1;
const VEIL: usize = 2;

/// The routes of one path to the four servers.
struct Path3 {
    redis: Route,
    memc: Route,
    sink: Route,
    echo: Route,
}

fn clk_tck() -> f64 {
    ok(cmd("getconf").arg("CLK_TCK"))
        .trim()
        .parse()
        .unwrap_or(100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let started = Instant::now();
    let rounds = knob("VEIL_BENCH_ROUNDS", 3).max(1);
    let redis_n = knob("VEIL_BENCH_REDIS_N", 100_000);
    let redis_p16_n = knob("VEIL_BENCH_REDIS_P16_N", 500_000);
    let lat_n = knob("VEIL_BENCH_LAT_N", 20_000);
    let memc_n = knob("VEIL_BENCH_MEMC_N", 2_000);
    let bulk_bytes = knob("VEIL_BENCH_BULK_MIB", 2048) * MIB;
    let hs_n = knob("VEIL_BENCH_HS", 2_000);
    let hs_threads = knob("VEIL_BENCH_HS_THREADS", 16).max(1);
    // For profiling: only these workloads (comma-separated: p1, p16, lat,
    // memc, bulk, hs).
    let only = std::env::var("VEIL_BENCH_ONLY").ok();
    let on = |w: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == w));

    ensure_installed(&[
        ("stunnel", "stunnel4"),
        ("redis-server", "redis-server"),
        ("redis-benchmark", "redis-tools"),
        ("memcached", "memcached"),
        ("memcslap", "libmemcached-tools"),
        ("timeout", "coreutils"),
    ]);
    let load_start = load_average();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = make_pki(dir);
    let tck = clk_tck();

    // Servers, then the three paths to each.
    let (redis_guard, redis_addr) = start_redis(dir);
    let (memcached_guard, memc_addr) = start_memcached(dir);
    let (sink_addr, sink_rx) = sink_server();
    let echo_addr = echo_server();
    let direct = |addr| Route {
        addr,
        proxies: Vec::new(),
    };
    let veil_bin = PathBuf::from(env!("CARGO_BIN_EXE_veil"));
    let veil_path = |bin: &Path, tag: &str| Path3 {
        redis: veil_route(bin, &pki, dir, &format!("{tag}redis"), redis_addr),
        memc: veil_route(bin, &pki, dir, &format!("{tag}memcached"), memc_addr),
        sink: veil_route(bin, &pki, dir, &format!("{tag}sink"), sink_addr),
        echo: veil_route(bin, &pki, dir, &format!("{tag}echo"), echo_addr),
    };
    let mut paths: Vec<Path3> = vec![
        Path3 {
            redis: direct(redis_addr),
            memc: direct(memc_addr),
            sink: direct(sink_addr),
            echo: direct(echo_addr),
        },
        Path3 {
            redis: stunnel_route(&pki, dir, "redis", redis_addr),
            memc: stunnel_route(&pki, dir, "memcached", memc_addr),
            sink: stunnel_route(&pki, dir, "sink", sink_addr),
            echo: stunnel_route(&pki, dir, "echo", echo_addr),
        },
        veil_path(&veil_bin, ""),
    ];
    let mut labels = vec!["direct TCP", "stunnel 5.68", "Veil"];
    // For before/after comparisons of a change: another veil binary as a
    // fourth path, printed on stdout only.
    let base = std::env::var_os("VEIL_BENCH_VEIL_BASE").map(PathBuf::from);
    if let Some(bin) = &base {
        paths.push(veil_path(bin, "base-"));
        labels.push("Veil (VEIL_BENCH_VEIL_BASE)");
    }
    let n_paths = paths.len();

    // Every route works (and the proxies are warm) before anything is timed.
    for (i, path) in paths.iter().enumerate() {
        exchange(path.redis.addr, b"PING\r\n", b"+PONG\r\n")
            .unwrap_or_else(|e| panic!("{}: redis: {e}", labels[i]));
        exchange(path.memc.addr, b"version\r\n", b"VERSION ")
            .unwrap_or_else(|e| panic!("{}: memcached: {e}", labels[i]));
        exchange(path.echo.addr, PING, PING).unwrap_or_else(|e| panic!("{}: echo: {e}", labels[i]));
        bulk(path.sink.addr, 16 * MIB, &sink_rx);
        let (_, failed) = handshakes(path.echo.addr, 100, hs_threads);
        assert_eq!(failed, 0, "{}: short connections failed", labels[i]);
        redis_benchmark(path.redis.addr, 50, 1, 10_000);
    }
    println!("== all routes work; {rounds} rounds");

    let mut hs_failed = vec![0u64; n_paths];
    // CPU seconds so far: [the route's proxies, everything else of the
    // workload (the server process, this process: in-process clients and
    // servers, and the waited-for children: redis-benchmark, memcslap)].
    let snap = |r: &Route, server: Option<&Guard>| {
        let (own, children) = self_cpu_ticks();
        let server = server.map_or(0, Guard::cpu_ticks);
        [
            r.cpu_ticks() as f64 / tck,
            (server + own + children) as f64 / tck,
        ]
    };
    let mut s = Samples::default();
    for round in 0..rounds {
        // Rotate the order of the paths from round to round.
        let order: Vec<usize> = (0..n_paths)
            .map(|i| (i + round as usize) % n_paths)
            .collect();
        for &i in order.iter().filter(|_| on("p1")) {
            let r = &paths[i].redis;
            let c0 = snap(r, Some(&redis_guard));
            for row in redis_benchmark(r.addr, 50, 1, redis_n) {
                s.push(&format!("p1-{}", row.test), i, row.rps);
            }
            let c1 = snap(r, Some(&redis_guard));
            record(&mut s, "p1", i, c0, c1, 1e6 / (2 * redis_n) as f64);
            println!("round {round} {}: redis 50 clients P1 done", labels[i]);
        }
        for &i in order.iter().filter(|_| on("p16")) {
            let r = &paths[i].redis;
            let c0 = snap(r, Some(&redis_guard));
            for row in redis_benchmark(r.addr, 50, 16, redis_p16_n) {
                s.push(&format!("p16-{}", row.test), i, row.rps);
            }
            let c1 = snap(r, Some(&redis_guard));
            record(&mut s, "p16", i, c0, c1, 1e6 / (2 * redis_p16_n) as f64);
            println!("round {round} {}: redis 50 clients P16 done", labels[i]);
        }
        for &i in order.iter().filter(|_| on("lat")) {
            for row in redis_benchmark(paths[i].redis.addr, 1, 1, lat_n) {
                s.push(&format!("lat-{}", row.test), i, row.p50_ms);
                s.push(&format!("lat-rps-{}", row.test), i, row.rps);
            }
            println!("round {round} {}: redis 1 client done", labels[i]);
        }
        for &i in order.iter().filter(|_| on("memc")) {
            let r = &paths[i].memc;
            let c0 = snap(r, Some(&memcached_guard));
            let set = memcslap(r.addr, "set", 50, memc_n);
            let get = memcslap(r.addr, "get", 50, memc_n);
            let c1 = snap(r, Some(&memcached_guard));
            s.push("memc-set", i, set);
            s.push("memc-get", i, get);
            record(&mut s, "memc", i, c0, c1, 1e6 / (2 * 50 * memc_n) as f64);
            println!("round {round} {}: memcslap done", labels[i]);
        }
        for &i in order.iter().filter(|_| on("bulk")) {
            let r = &paths[i].sink;
            let c0 = snap(r, None);
            let bps = bulk(r.addr, bulk_bytes, &sink_rx);
            let c1 = snap(r, None);
            s.push("bulk", i, bps / 1e6);
            record(
                &mut s,
                "bulk",
                i,
                c0,
                c1,
                (1u64 << 30) as f64 / bulk_bytes as f64,
            );
            println!("round {round} {}: bulk {:.0} MB/s", labels[i], bps / 1e6);
        }
        for &i in order.iter().filter(|_| on("hs")) {
            let r = &paths[i].echo;
            let c0 = snap(r, None);
            let (cps, failed) = handshakes(r.addr, hs_n, hs_threads);
            let c1 = snap(r, None);
            hs_failed[i] += failed;
            s.push("hs", i, cps);
            record(&mut s, "hs", i, c0, c1, 1e6 / hs_n as f64);
            println!("round {round} {}: {cps:.0} connections/s", labels[i]);
        }
    }
    let load_end = load_average();
    let elapsed = started.elapsed().as_secs();

    // ---------------------------------------------------------- report
    let ratio = |key: &str, over: usize| s.median(key, VEIL) / s.median(key, over);
    let mut body = String::new();
    let machine = machine();
    let versions = versions();
    let date = ok(cmd("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .trim()
        .to_owned();
    let commit = all_output(cmd("git").args([
        "-C",
        env!("CARGO_MANIFEST_DIR"),
        "rev-parse",
        "--short",
        "HEAD",
    ]))
    .trim()
    .to_owned();
    let _ = writeln!(
        body,
        "Command: `env -u RUST_BACKTRACE cargo bench -p veil --bench netshield` (written by the bench; {date}, build of commit {commit} plus the working tree; the whole run took {elapsed} s). \
Machine: {machine}; load average {load_start} at the start, {load_end} at the end. Versions: {versions}.\n"
    );
    let _ = writeln!(
        body,
        "Everything on 127.0.0.1 and the machine's {} cores: client, the two proxies of a path, and the server. \
Veil = `veil tls proxy --plain-listen` (outbound, client certificate, peer rule: session, service, measurement) -> TLS 1.3 with mutual authentication -> `veil tls proxy --listen` (inbound, client certificate required, peer rule) -> server; \
stunnel = the same topology with two stunnel processes (`client = yes` and server mode; TLS 1.3 only, `verifyChain = yes` both ways with the session CA as `CAfile`, `requireCert = yes`, `ciphersuites = TLS_AES_256_GCM_SHA384` (stunnel's default would put ChaCha20 first; Veil's rustls client negotiates AES-256-GCM), `sessionResume = no` (Veil never resumes), `TCP_NODELAY` on both sockets, `debug = 3`); \
direct = the client straight to the server. Both proxies use the same ECDSA P-256 attested certificates from a session CA minted by the bench, X25519 key exchange. \
{rounds} rounds, each workload on every path in turn (the order rotating); median with the range in brackets.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        body,
        "| workload | direct TCP | stunnel 5.68 | Veil | Veil / stunnel | Veil / direct |\n|---|---|---|---|---|---|"
    );
    let rows: [(&str, &str, usize); 11] = [
        (
            "p1-SET",
            "redis-benchmark SET, 50 clients, pipeline 1, req/s",
            0,
        ),
        (
            "p1-GET",
            "redis-benchmark GET, 50 clients, pipeline 1, req/s",
            0,
        ),
        (
            "p16-SET",
            "redis-benchmark SET, 50 clients, pipeline 16, req/s",
            0,
        ),
        (
            "p16-GET",
            "redis-benchmark GET, 50 clients, pipeline 16, req/s",
            0,
        ),
        ("memc-set", "memcslap set, 50 threads, ops/s", 0),
        ("memc-get", "memcslap get, 50 threads, ops/s", 0),
        (
            "lat-rps-SET",
            "redis-benchmark SET, 1 client, pipeline 1, req/s",
            0,
        ),
        (
            "lat-rps-GET",
            "redis-benchmark GET, 1 client, pipeline 1, req/s",
            0,
        ),
        (
            "lat-SET",
            "SET p50 latency, 1 client, ms (lower is better)",
            3,
        ),
        (
            "lat-GET",
            "GET p50 latency, 1 client, ms (lower is better)",
            3,
        ),
        ("bulk", "bulk, one connection, MB/s", 0),
    ];
    for (key, label, prec) in rows {
        let _ = writeln!(
            body,
            "| {label} | {} | {} | {} | {:.2}x | {:.2}x |",
            s.show(key, DIRECT, prec),
            s.show(key, STUNNEL, prec),
            s.show(key, VEIL, prec),
            ratio(key, STUNNEL),
            ratio(key, DIRECT),
        );
    }
    let _ = writeln!(
        body,
        "| short connections (handshakes), {hs_threads} threads, conn/s | {} | {} | {} | {:.2}x | {:.2}x |",
        s.show("hs", DIRECT, 0),
        s.show("hs", STUNNEL, 0),
        s.show("hs", VEIL, 0),
        ratio("hs", STUNNEL),
        ratio("hs", DIRECT),
    );
    let _ = writeln!(
        body,
        "\nWorkloads: `redis-benchmark -h 127.0.0.1 -p PORT -c 50 -P 1 -t set,get -n {redis_n} --csv`, the same with `-P 16 -n {redis_p16_n}`, and with `-c 1 -P 1 -n {lat_n}` for the light-load figures (redis-server {}, no persistence); \
`memcslap -s 127.0.0.1:PORT -c 50 -t set|get -e {memc_n}` ({} operations per run; memcached with its defaults); \
bulk: the bench writes {} MiB in 256 KiB writes over one connection to a sink thread that reads it with 256 KiB reads and discards it, timed until the sink has closed the connection; \
short connections: {hs_n} connections from {hs_threads} threads, each connecting, sending 32 bytes, reading the 32 bytes echoed back by a thread-per-connection echo server, and closing (every connection is a full TLS handshake on each proxied path: a new TCP connection on both sides, X25519, two ECDSA P-256 signatures and certificate checks); failed connections: direct {}, stunnel {}, Veil {}.\n",
        redis_version_short(),
        memc_n * 50,
        bulk_bytes / MIB,
        hs_failed[DIRECT],
        hs_failed[STUNNEL],
        hs_failed[VEIL],
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let _ = writeln!(
        body,
        "CPU time per unit of work (user + system from `/proc`, medians): *rest* is everything but the proxies (the server process; redis-benchmark or memcslap; for bulk and short connections, the bench's own client and server threads), *proxies* the path's two proxy processes together. *Ceiling* = {cores} cores / (rest + proxies): the rate at which the path alone would use all of this machine's cores.\n\n\
| workload, unit | direct: rest | stunnel: rest + proxies | Veil: rest + proxies | proxies, Veil / stunnel | ceiling: direct, stunnel, Veil |\n|---|---|---|---|---|---|"
    );
    // (key, label, decimals, units of work per second per CPU-second of one unit)
    let cpu_rows: [(&str, &str, usize, f64, &str); 5] = [
        ("p1", "redis 50 clients P1, us/request", 1, 1e6, "req/s"),
        ("p16", "redis 50 clients P16, us/request", 2, 1e6, "req/s"),
        ("memc", "memcslap 50 threads, us/operation", 1, 1e6, "ops/s"),
        ("bulk", "bulk, s/GiB", 2, (1u64 << 30) as f64 / 1e6, "MB/s"),
        ("hs", "short connections, us/connection", 0, 1e6, "conn/s"),
    ];
    for (w, label, prec, rate, unit) in cpu_rows {
        let (p, o) = (format!("cpu-{w}"), format!("cpuo-{w}"));
        let total = |i: usize| s.median(&o, i) + if i == DIRECT { 0.0 } else { s.median(&p, i) };
        let cell = |i: usize| {
            format!(
                "{:.prec$} + {:.prec$} = {:.prec$}",
                s.median(&o, i),
                s.median(&p, i),
                total(i)
            )
        };
        let _ = writeln!(
            body,
            "| {label} | {:.prec$} | {} | {} | {:.2}x | {:.0}, {:.0}, {:.0} {unit} |",
            s.median(&o, DIRECT),
            cell(STUNNEL),
            cell(VEIL),
            ratio(&p, STUNNEL),
            cores * rate / total(DIRECT),
            cores * rate / total(STUNNEL),
            cores * rate / total(VEIL),
        );
    }

    // Goals.
    let mut goals = String::new();
    let rps_keys = [
        "p1-SET", "p1-GET", "p16-SET", "p16-GET", "memc-set", "memc-get",
    ];
    let vs_stunnel: Vec<(String, f64)> = rps_keys
        .iter()
        .map(|k| (k.to_string(), ratio(k, STUNNEL)))
        .collect();
    let met = |b: bool| if b { "met" } else { "NOT met" };
    let list = |v: &[(String, f64)]| {
        v.iter()
            .map(|(k, r)| format!("{k} {r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Total CPU per unit of work of a path, and the ratio of Veil's ceiling
    // to another path's.
    let cpu_total = |w: &str, i: usize| {
        s.median(&format!("cpuo-{w}"), i)
            + if i == DIRECT {
                0.0
            } else {
                s.median(&format!("cpu-{w}"), i)
            }
    };
    let ceiling_ratio = |w: &str, over: usize| cpu_total(w, over) / cpu_total(w, VEIL);
    let all2 = vs_stunnel.iter().all(|(_, r)| *r >= 2.0);
    let _ = writeln!(
        goals,
        "- At least 2x stunnel's requests per second: {} (reached on {} of {}: {}; the CPU-bound ceilings above give Veil / stunnel {:.2}x at P1, {:.2}x at P16, {:.2}x for memcslap).",
        met(all2),
        vs_stunnel.iter().filter(|(_, r)| *r >= 2.0).count(),
        vs_stunnel.len(),
        list(&vs_stunnel),
        ceiling_ratio("p1", STUNNEL),
        ceiling_ratio("p16", STUNNEL),
        ceiling_ratio("memc", STUNNEL),
    );
    let p1: Vec<(String, f64)> = ["p1-SET", "p1-GET"]
        .iter()
        .map(|k| (k.to_string(), ratio(k, DIRECT)))
        .collect();
    let _ = writeln!(
        goals,
        "- At least 0.6x direct at pipeline 1 (50 clients): {} ({}; CPU-bound ceilings: Veil / direct {:.2}x).",
        met(p1.iter().all(|(_, r)| *r >= 0.6)),
        list(&p1),
        ceiling_ratio("p1", DIRECT),
    );
    let added: Vec<(String, f64)> = ["lat-SET", "lat-GET"]
        .iter()
        .map(|k| (k.to_string(), s.median(k, VEIL) - s.median(k, DIRECT)))
        .collect();
    let _ = writeln!(
        goals,
        "- At most 0.1 ms added p50 latency at light load (1 client): {} ({}; stunnel adds {:.3} / {:.3} ms).",
        met(added.iter().all(|(_, a)| *a <= 0.1)),
        added
            .iter()
            .map(|(k, a)| format!("{k} +{a:.3} ms"))
            .collect::<Vec<_>>()
            .join(", "),
        s.median("lat-SET", STUNNEL) - s.median("lat-SET", DIRECT),
        s.median("lat-GET", STUNNEL) - s.median("lat-GET", DIRECT),
    );
    let bulk_v = s.median("bulk", VEIL);
    let _ = writeln!(
        goals,
        "- At least 2 GB/s over one connection: {} ({bulk_v:.0} MB/s; stunnel {:.0} MB/s, direct {:.0} MB/s; CPU-bound ceiling of the Veil path on this machine {:.0} MB/s).",
        met(bulk_v >= 2000.0),
        s.median("bulk", STUNNEL),
        s.median("bulk", DIRECT),
        cores * (1u64 << 30) as f64 / 1e6 / cpu_total("bulk", VEIL),
    );
    let _ = writeln!(body, "\nGoals in this run (Veil):\n\n{goals}");
    println!("{body}");
    if base.is_some() {
        println!("Veil (this build) beside Veil (VEIL_BENCH_VEIL_BASE), medians:");
        for key in [
            "p1-SET", "p1-GET", "p16-SET", "p16-GET", "memc-set", "memc-get", "lat-SET", "lat-GET",
            "bulk", "hs", "cpu-p1", "cpu-p16", "cpu-memc", "cpu-bulk", "cpu-hs",
        ] {
            println!(
                "  {key}: {:.3} vs base {:.3} ({:.2}x)",
                s.median(key, VEIL),
                s.median(key, 3),
                s.median(key, VEIL) / s.median(key, 3)
            );
        }
    }
    if std::env::var_os("VEIL_BENCH_NO_DOCS").is_none() {
        write_section("netshield", &body);
    }
    drop(paths);
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let interesting: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            [
                "aes",
                "vaes",
                "vpclmulqdq",
                "avx2",
                "avx512f",
                "adx",
                "bmi2",
            ]
            .contains(f)
        })
        .collect();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / (1 << 20));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} ({}), nproc {}, {mem_gib} GiB, Linux {}",
        field("model name"),
        interesting.join(" "),
        ok(&mut cmd("nproc")).trim(),
        kernel.trim()
    )
}

fn redis_version_short() -> String {
    let v = all_output(cmd("redis-server").arg("--version"));
    v.split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .unwrap_or("?")
        .to_owned()
}

fn versions() -> String {
    let st = all_output(cmd("stunnel").arg("-version"));
    let keep: Vec<&str> = st
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("stunnel ") || l.contains("OpenSSL"))
        .collect();
    let redis = all_output(cmd("redis-server").arg("--version"));
    let memc = all_output(cmd("memcached").arg("-V"));
    let slap = all_output(cmd("memcslap").arg("--version"));
    format!(
        "`stunnel -version`: {}; `redis-server --version`: {}; {}; memcslap: {}",
        keep.join(", ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        redis.trim(),
        memc.trim(),
        slap.lines().next().unwrap_or("?").trim()
    )
}
