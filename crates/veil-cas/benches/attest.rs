//! Full attestations per second against an in-process dev CAS, with 1, 16
//! and 64 concurrent launchers, and their p50/p99 latency.
//!
//! Run: `env -u RUST_BACKTRACE cargo bench -p veil-cas --bench attest`
//!
//! One attestation is what a launcher does: `GET /v1/nonce`, sim evidence
//! over `report_data(ATTEST_DOMAIN, nonce, spki, 0)` signed with the CAS's dev
//! sim platform key, `POST /v1/attest` (evidence verification, policy,
//! secrets, certificate issuance, durable audit record). Each attestation is
//! a new launcher with a `veil_client::CasClient` of its own, and each call
//! opens a new TCP + TLS connection, as `veil_client` does (the attest call
//! may resume the nonce call's TLS session if the CAS issues tickets). The
//! launcher key pairs
//! are made before the timed loop. The CAS (its own 2-worker runtime) and the
//! load generator (another 2-worker runtime) share the machine's cores.
//!
//! The figures replace the `cas-attest` section of `docs/benchmarks.md`
//! (set `VEIL_BENCH_NO_WRITE=1` to only print them). `VEIL_BENCH_SECS`
//! overrides the timed seconds per level (default 5), `VEIL_BENCH_CLIENTS`
//! the concurrency levels (e.g. `64`, for profiling).

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use veil_api::{AttestRequest, AttestResponse, NonceResponse, ATTEST_DOMAIN};
use veil_attest::{Tee, Time};
use veil_attest_sim::{SimPlatformKey, SimStatement};
use veil_ca::Identity;
use veil_client::{CasClient, ClientError, ClientIdentity, Trust};

const WARM_UP: Duration = Duration::from_secs(1);
const LEVELS: [usize; 3] = [1, 16, 64];
const KEYS: usize = 64;
const MEASUREMENT: [u8; 48] = [0x11; 48];

fn policy(owner: &Identity) -> String {
    format!(
        r#"name: bench/app
version: 1
owners: [{owner}]
secrets:
  - {{ name: db_password, kind: password, length: 24 }}
services:
  - name: app
    accept:
      - tee: sim
        measurement: {m}
    command: [/bin/app, "--password={{{{ db_password }}}}"]
    env:
      DB_PASSWORD: "{{{{ db_password }}}}"
"#,
        owner = owner.fingerprint(),
        m = hex::encode(MEASUREMENT),
    )
}

fn spki_of(id: &Identity) -> Vec<u8> {
    let (_, c) = x509_parser::parse_x509_certificate(id.certificate()).unwrap();
    c.tbs_certificate.subject_pki.raw.to_vec()
}

/// What one launcher needs, shared by all workers.
struct Launch {
    url: String,
    pin: [u8; 32],
    sim: SimPlatformKey,
    spkis: Vec<Vec<u8>>,
}

#[derive(Default)]
struct Tally {
    denied: AtomicU64,
    errors: AtomicU64,
}

async fn attest_once(l: &Launch, spki: &[u8]) -> Result<AttestResponse, ClientError> {
    // A new launcher each time: a client of its own, so the nonce call is a
    // full TLS handshake and only the attest call can resume its session.
    let client = CasClient::new(&l.url, Trust::Pinned(l.pin), None)?;
    let n: NonceResponse = client.get("/v1/nonce").await?;
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(&n.nonce, &mut nonce).unwrap();
    let evidence = l.sim.sign(&SimStatement {
        measurement: MEASUREMENT,
        report_data: veil_api::report_data(ATTEST_DOMAIN, &nonce, spki, &[0; 32]),
        issued_at: Time::now(),
        debug: false,
    });
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let req = AttestRequest {
        session: "bench/app".into(),
        service: "app".into(),
        nonce: n.nonce,
        tee: Tee::Sim,
        evidence: b64(&evidence),
        endorsements: vec![],
        spki: b64(spki),
        runtime_claims: Default::default(),
    };
    client.post("/v1/attest", &req).await
}

/// CPU seconds used so far by the CAS's threads (its runtime and the store's
/// committer) and by the load generator's, from `/proc/self/task`.
fn cpu_split() -> (f64, f64) {
    let (mut cas, mut load) = (0u64, 0u64);
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after comm.
        let ticks = fields
            .get(11)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        if comm.starts_with("cas") || comm.starts_with("veil-store") {
            cas += ticks;
        } else if comm.starts_with("launchers") {
            load += ticks;
        }
    }
    (cas as f64 / 100.0, load as f64 / 100.0)
}

struct Level {
    clients: usize,
    cas_cpu_ms: f64,
    load_cpu_ms: f64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    denied: u64,
    errors: u64,
}

async fn run_level(l: Arc<Launch>, clients: usize, measure: Duration) -> Level {
    let begin = Instant::now() + WARM_UP;
    let end = begin + measure;
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for w in 0..clients {
        let l = l.clone();
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = w;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let spki = &l.spkis[i % l.spkis.len()];
                i += clients;
                let r = attest_once(&l, spki).await;
                let t1 = Instant::now();
                let counted = t0 >= begin && t1 <= end;
                match r {
                    Ok(resp) => {
                        assert!(!resp.certificate.is_empty());
                        if counted {
                            lat.push(t1 - t0);
                        }
                    }
                    Err(ClientError::Api { status: 403, .. }) => {
                        tally.denied.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if tally.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("attestation failed: {e}");
                        }
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep_until(begin.into()).await;
    let cpu0 = cpu_split();
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = cpu_split();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[idx].as_secs_f64() * 1e3
    };
    let n = lat.len().max(1) as f64;
    Level {
        clients,
        cas_cpu_ms: (cpu1.0 - cpu0.0) * 1e3 / n,
        load_cpu_ms: (cpu1.1 - cpu0.1) * 1e3 / n,
        rate: lat.len() as f64 / measure.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        denied: tally.denied.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
    }
}

/// The concurrency levels: `VEIL_BENCH_CLIENTS=64` (comma-separated) for
/// a profiling run, else 1, 16 and 64.
fn levels_wanted() -> Vec<usize> {
    match std::env::var("VEIL_BENCH_CLIENTS") {
        Ok(s) => s.split(',').filter_map(|c| c.trim().parse().ok()).collect(),
        Err(_) => LEVELS.to_vec(),
    }
}

fn main() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        eprintln!(
            "warning: RUST_BACKTRACE is set; run with `env -u RUST_BACKTRACE` for comparable figures"
        );
    }
    let measure = Duration::from_secs(
        std::env::var("VEIL_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = veil_cas::ServeConfig {
        state_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        dev: true,
        trust_sim_keys: vec![],
        nonce_ttl: Duration::from_secs(60),
        launcher_cert_validity: veil_cas::LAUNCHER_CERT_VALIDITY,
    };

    // The CAS, on its own runtime (as in its own process).
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cas")
        .enable_all()
        .build()
        .unwrap();
    let bound = server_rt.block_on(veil_cas::bind(&config)).unwrap();
    let url = format!("https://{}", bound.addr);
    let mut pin = [0u8; 32];
    hex::decode_to_slice(bound.fingerprint.as_ref().unwrap(), &mut pin).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(bound.serve(async move {
        let _ = stopped.await;
    }));

    // The launchers' key pairs and the owner, made before any timing.
    let owner = Identity::generate("bench owner", Time::now()).unwrap();
    let spkis: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| spki_of(&Identity::generate(&format!("launcher {i}"), Time::now()).unwrap()))
        .collect();
    let sim =
        SimPlatformKey::from_pem(&std::fs::read(dir.path().join("sim/platform.key")).unwrap())
            .unwrap();

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("launchers")
        .enable_all()
        .build()
        .unwrap();
    let levels = client_rt.block_on(async {
        let owner_client = CasClient::new(
            &url,
            Trust::Pinned(pin),
            Some(ClientIdentity {
                chain: vec![owner.cert_der()],
                key: owner.key_der(),
            }),
        )
        .unwrap();
        let applied = owner_client
            .call(
                hyper::Method::POST,
                "/v1/sessions",
                Some((policy(&owner).into_bytes(), "application/yaml")),
            )
            .await
            .unwrap();
        let applied: serde_json::Value = serde_json::from_slice(&applied).unwrap();
        assert_eq!(applied["state"], "active", "{applied}");
        let launch = Arc::new(Launch {
            url: url.clone(),
            pin,
            sim,
            spkis,
        });
        // A sanity check outside the timing: one grant, with a certificate.
        let first = attest_once(&launch, &launch.spkis[0]).await.unwrap();
        assert!(first.certificate.contains("BEGIN CERTIFICATE"));
        let mut levels = Vec::new();
        for clients in levels_wanted() {
            let level = run_level(launch.clone(), clients, measure).await;
            println!(
                "{:>3} clients: {:>7.0} attestations/s  p50 {:>6.2} ms  p99 {:>6.2} ms  denied {} errors {}  CPU/attestation: CAS {:.2} ms, launchers {:.2} ms",
                level.clients, level.rate, level.p50_ms, level.p99_ms, level.denied, level.errors,
                level.cas_cpu_ms, level.load_cpu_ms
            );
            levels.push(level);
        }
        levels
    });
    let _ = stop.send(());
    server_rt.block_on(server).unwrap().unwrap();
    drop(client_rt);
    drop(server_rt);

    let mut md = String::new();
    md.push_str("Command: `env -u RUST_BACKTRACE cargo bench -p veil-cas --bench attest` ");
    md.push_str(&format!(
        "({} s warm-up, {} s timed per level; written by the bench).\n\n",
        WARM_UP.as_secs(),
        measure.as_secs()
    ));
    md.push_str("| clients | attestations/s | p50 ms | p99 ms | denials/errors | CPU ms/attestation, CAS | CPU ms/attestation, launchers |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for l in &levels {
        md.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {}/{} | {:.2} | {:.2} |\n",
            l.clients, l.rate, l.p50_ms, l.p99_ms, l.denied, l.errors, l.cas_cpu_ms, l.load_cpu_ms
        ));
    }
    print!("\n{md}");
    if levels.iter().any(|l| l.denied + l.errors > 0) {
        eprintln!("warning: some attestations were denied or failed; see above");
    }
    if std::env::var_os("VEIL_BENCH_NO_WRITE").is_none() {
        write_section("cas-attest", &md);
    }
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn write_section(name: &str, body: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/benchmarks.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{begin}\n{body}{}", &text[..b], &text[e..])
        }
        _ => format!("{text}\n{begin}\n{body}{end}\n"),
    };
    if let Err(e) = std::fs::write(path, new) {
        eprintln!("cannot write {path}: {e}");
    } else {
        println!("figures written to docs/benchmarks.md");
    }
}
