//! CAS issue §8: a `kill -9` loop during applies and attestations loses no
//! acknowledged write, and the store always reopens.
//!
//! Runs the real `veil cas serve --dev` binary. Each cycle, session creates,
//! chained session updates (each naming its predecessor) and attestations
//! (grants, and denials of relayed evidence) run concurrently against the
//! CAS; every request answered with success (or, for the denials, with the
//! denial) is recorded as acknowledged. A random 0–50 ms after the first
//! answer (one cycle in five: after the clients started) the CAS is killed
//! with SIGKILL while requests are in flight, and started again on the same
//! state (it must come up: the store reopens). Then every acknowledged
//! session apply must be there with its acknowledged hash, the audit log
//! must verify, keep every record seen before, and hold an `attest.grant`
//! for every acknowledged grant and an `attest.deny` for every acknowledged
//! denial.
//!
//! `VEIL_CAS_CRASH_CYCLES` sets the number of cycles (default 100; the soak
//! script `scripts/soak-cas.sh` runs 1,000); `VEIL_CAS_CRASH_SEED` replays the
//! kill delays of an earlier run (the seed is printed at the start and in
//! every failure).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::Digest;
use tokio::sync::Notify;
use veil_api::{AttestRequest, AttestResponse, NonceResponse, ATTEST_DOMAIN};
use veil_attest::{Tee, Time};
use veil_attest_sim::{SimPlatformKey, SimStatement};
use veil_ca::Identity;
use veil_client::{CasClient, ClientError, ClientIdentity, Trust};
use veil_store::audit::{
    parse_export, verify_export, verify_from, SignedAuditHead, SignedAuditRecord,
};
use veil_store::AuditHead;

const MEASUREMENT: [u8; 48] = [0x5a; 48];
/// How long a (re)start may take before the test gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Every this many cycles (and at the last) the whole audit export goes
/// through `verify_export`; in between only new records' signatures are checked.
const FULL_AUDIT_EVERY: usize = 25;
/// How long to wait for the first answer of a cycle before killing anyway.
const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the workers may take to notice that their server is gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(45);
/// The session attestations run against.
const ATTEST_SESSION: &str = "crash/base";
/// Sessions updated with predecessor chaining, each one version at a time
/// (two, so that two applies are in flight at once).
const CHAINS: [&str; 2] = ["crash/chain0", "crash/chain1"];

/// splitmix64: small, seedable, good enough for delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A running `veil cas serve`; SIGKILLed when dropped.
struct Server {
    child: Child,
    url: String,
    pin: [u8; 32],
}

impl Server {
    fn kill(&mut self) {
        // `Child::kill` sends SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn client(&self, id: Option<&Identity>) -> CasClient {
        let identity = id.map(|id| ClientIdentity {
            chain: vec![id.cert_der()],
            key: id.key_der(),
        });
        CasClient::new(&self.url, Trust::Pinned(self.pin), identity).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The test's fixed context: where things are, and how to name a failure.
struct Ctx {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    state: PathBuf,
    seed: u64,
}

impl Ctx {
    fn log(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn ready(&self) -> PathBuf {
        self.root.join("ready")
    }

    /// Fails the test, keeping the state directory for inspection.
    fn fail(&mut self, cycle: &str, msg: &str) -> ! {
        let kept = self
            .dir
            .take()
            .map(|d| d.keep().display().to_string())
            .unwrap_or_default();
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "CAS crash test failed at {cycle} (seed {seed}; replay with VEIL_CAS_CRASH_SEED={seed}): {msg}\n\
             state kept in {kept}\nlast server log lines:\n{}",
            tail.join("\n"),
            seed = self.seed,
        );
    }
}

/// Starts `veil cas serve` on `ctx.state` and waits (bounded) for its ready file.
async fn start(ctx: &Ctx) -> Result<Server, String> {
    let ready = ctx.ready();
    let _ = std::fs::remove_file(&ready);
    let log = std::fs::File::create(ctx.log()).map_err(|e| format!("server log: {e}"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["cas", "serve", "--dev", "--listen", "127.0.0.1:0"])
        .arg("--state")
        .arg(&ctx.state)
        .arg("--ready-file")
        .arg(&ready)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot run veil: {e}"))?;
    let mut server = Server {
        child,
        url: String::new(),
        pin: [0; 32],
    };
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            // Complete once the line is: the file is written in one call, but
            // read it only when it ends with its newline.
            if let Some(line) = text.strip_suffix('\n') {
                let (url, fp) = line
                    .split_once(' ')
                    .ok_or_else(|| format!("ready file holds {text:?}"))?;
                if fp == "sealed" {
                    return Err("the CAS restarted SEALED: it lost its sealing key".into());
                }
                hex::decode_to_slice(fp, &mut server.pin)
                    .map_err(|e| format!("ready file fingerprint {fp:?}: {e}"))?;
                server.url = url.to_owned();
                return Ok(server);
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "the CAS did not reopen its state: `veil cas serve` exited with {status} before it was ready"
            ));
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!(
                "the CAS was not ready within {} s",
                START_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn policy(owner: &Identity, name: &str, version: u64, predecessor: Option<&str>) -> String {
    let predecessor = predecessor
        .map(|p| format!("predecessor: {p}\n"))
        .unwrap_or_default();
    format!(
        r#"name: {name}
version: {version}
{predecessor}owners: [{owner}]
secrets:
  - {{ name: pw, kind: password, length: 16 }}
services:
  - name: app
    accept:
      - tee: sim
        measurement: {m}
    command: [/bin/app]
    env:
      PW: "{{{{ pw }}}}"
"#,
        owner = owner.fingerprint(),
        m = hex::encode(MEASUREMENT),
    )
}

async fn apply(c: &CasClient, yaml: &str) -> Result<serde_json::Value, ClientError> {
    let b = c
        .call(
            hyper::Method::POST,
            "/v1/sessions",
            Some((yaml.as_bytes().to_vec(), "application/yaml")),
        )
        .await?;
    serde_json::from_slice(&b).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn spki_of(id: &Identity) -> Vec<u8> {
    let (_, c) = x509_parser::parse_x509_certificate(id.certificate()).unwrap();
    c.tbs_certificate.subject_pki.raw.to_vec()
}

/// What an attestation was answered.
enum Attested {
    /// Granted: the hex SHA-256 of the launcher key (what the grant's audit
    /// record names), and the `audit_seq` of the answer.
    Grant(String, u64),
    /// Denied as relayed evidence: the report data the CAS expected (what the
    /// denial's audit record names).
    Deny(String),
    /// An answer that is wrong whether or not the CAS dies.
    Wrong(String),
}

/// One attestation of `crash/base/app` with a fresh launcher key; with
/// `relayed`, evidence bound to another nonce, which the CAS must deny.
async fn attest_once(
    c: &CasClient,
    sim: &SimPlatformKey,
    relayed: bool,
) -> Result<Attested, ClientError> {
    let launcher = Identity::generate("launcher", Time::now()).unwrap();
    let spki = spki_of(&launcher);
    let n: NonceResponse = c.get("/v1/nonce").await?;
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(&n.nonce, &mut nonce).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let expected = veil_api::report_data(ATTEST_DOMAIN, &nonce, &spki, &[0; 32]);
    let bound = if relayed {
        veil_api::report_data(ATTEST_DOMAIN, &[0; 32], &spki, &[0; 32])
    } else {
        expected
    };
    let ev = sim.sign(&SimStatement {
        measurement: MEASUREMENT,
        report_data: bound,
        issued_at: Time::now(),
        debug: false,
    });
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let req = AttestRequest {
        session: ATTEST_SESSION.into(),
        service: "app".into(),
        nonce: n.nonce,
        tee: Tee::Sim,
        evidence: b64(&ev),
        endorsements: vec![],
        spki: b64(&spki),
        runtime_claims: Default::default(),
    };
    match c.post::<_, AttestResponse>("/v1/attest", &req).await {
        Ok(resp) if !relayed => Ok(Attested::Grant(
            hex::encode(sha2::Sha256::digest(&spki)),
            resp.audit_seq,
        )),
        Ok(_) => Ok(Attested::Wrong("relayed evidence was granted".into())),
        Err(ClientError::Api {
            status: 403,
            reason: Some(reason),
            ..
        }) if relayed && reason == "report_data_mismatch" => {
            Ok(Attested::Deny(expected.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// What the server acknowledged during one cycle (a success response was received).
#[derive(Default)]
struct Acks {
    /// Sessions created: name, hash.
    created: Vec<(String, String)>,
    /// Chain updates acknowledged, by session: last version, hash.
    chained: BTreeMap<String, (u64, String)>,
    /// Chain updates sent and not (yet) acknowledged, by session: version, YAML.
    chain_in_flight: BTreeMap<String, (u64, String)>,
    /// Grants: SHA-256 of the launcher key, audit_seq.
    granted: Vec<(String, u64)>,
    /// Denials: the report data the CAS expected.
    denied: Vec<String>,
    /// Answers that are wrong whether or not the server dies.
    unexpected: Vec<String>,
}

/// Everything acknowledged so far, and what has been verified.
struct Ledger {
    /// Sessions acknowledged and already seen once after a restart: name, hash.
    sessions: BTreeMap<String, String>,
    /// The chained sessions: last version and hash known to be durable.
    chains: BTreeMap<String, (u64, String)>,
    /// Hashes of the audit records verified so far, by seq: the log must keep them.
    audit: Vec<[u8; 32]>,
    grants_confirmed: usize,
    denials_confirmed: usize,
    audit_time: Duration,
    audit_bytes: usize,
}

/// Verifies an audit export. Records verified at an earlier check must be
/// there unchanged (their hashes, recomputed, are the ones verified then);
/// the rest must continue the chain with valid signatures up to the signed
/// head. With `full`, the whole export goes through `verify_export` again;
/// otherwise only the new records' signatures are checked (`verify_from`),
/// which keeps the check linear in the log over a run instead of quadratic.
fn verify_audit(
    text: &str,
    records: &[SignedAuditRecord],
    signed: Option<&SignedAuditHead>,
    key: &[u8],
    seen: &mut Vec<[u8; 32]>,
    full: bool,
) -> Result<(), String> {
    let known = seen.len();
    if records.len() < known {
        return Err(format!(
            "the audit log lost records: it has {} records, {known} were there before the kill",
            records.len()
        ));
    }
    for (i, (r, h)) in records.iter().zip(seen.iter()).enumerate() {
        if r.record.seq != i as u64 || r.hash != *h || r.record.hash() != *h {
            return Err(format!(
                "audit record {i}, verified before the kill, was lost or changed (now seq {}, kind {})",
                r.record.seq, r.record.kind
            ));
        }
    }
    if full {
        verify_export(text, key).map_err(|e| format!("the audit log does not verify: {e}"))?;
    } else {
        let signed = signed.ok_or("the audit export has no signed head")?;
        signed
            .verify(key)
            .map_err(|e| format!("the audit export's head does not verify: {e}"))?;
        let anchor = match seen.last() {
            Some(hash) => AuditHead {
                next_seq: known as u64,
                hash: *hash,
            },
            None => AuditHead::EMPTY,
        };
        let chain = verify_from(&records[known..], key, &anchor)
            .map_err(|e| format!("the audit log does not verify: {e}"))?;
        if chain.head != signed.head {
            return Err(format!(
                "the audit log does not end at its signed head (records end at seq {}, head says {})",
                chain.head.next_seq, signed.head.next_seq
            ));
        }
    }
    seen.extend(records[known..].iter().map(|r| r.hash));
    Ok(())
}

/// Checks a freshly (re)started CAS against everything acknowledged before.
async fn check(
    owner: &CasClient,
    ledger: &mut Ledger,
    acks: Acks,
    full: bool,
) -> Result<(), String> {
    let status: serde_json::Value = owner
        .get("/v1/status")
        .await
        .map_err(|e| format!("GET /v1/status after restart: {e}"))?;
    if status["status"] != "ok" {
        return Err(format!("status after restart: {status}"));
    }
    let key = hex::decode(status["audit_public_key"].as_str().unwrap_or_default())
        .map_err(|e| format!("audit_public_key: {e}"))?;

    // Sessions created in the cycle just killed: each one by GET.
    for (name, hash) in acks.created {
        let got: serde_json::Value = owner
            .get(&format!("/v1/sessions/{name}"))
            .await
            .map_err(|e| format!("acknowledged session {name} (hash {hash}) lost: {e}"))?;
        if got["hash"] != hash.as_str() {
            return Err(format!(
                "acknowledged session {name} has hash {} after restart, not the acknowledged {hash}",
                got["hash"]
            ));
        }
        ledger.sessions.insert(name, hash);
    }
    // Every session acknowledged before: in the list with its hash.
    let list: serde_json::Value = owner
        .get("/v1/sessions")
        .await
        .map_err(|e| format!("GET /v1/sessions: {e}"))?;
    let listed: BTreeMap<&str, &str> = list["sessions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default(),
                        s["hash"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, hash) in &ledger.sessions {
        match listed.get(name.as_str()) {
            Some(h) if h == hash => {}
            Some(h) => {
                return Err(format!(
                    "acknowledged session {name} changed from {hash} to {h} without an apply"
                ))
            }
            None => return Err(format!("acknowledged session {name} (hash {hash}) lost")),
        }
    }

    // The chained sessions: at the last acknowledged version, or one past
    // it when the update in flight at the kill committed without its answer.
    for (name, known) in ledger.chains.iter_mut() {
        let acked = acks.chained.get(name).unwrap_or(known).clone();
        let in_flight = acks.chain_in_flight.get(name);
        let got: serde_json::Value = owner
            .get(&format!("/v1/sessions/{name}"))
            .await
            .map_err(|e| format!("session {name} lost: {e}"))?;
        let version = got["version"].as_u64().unwrap_or_default();
        let hash = got["hash"].as_str().unwrap_or_default().to_owned();
        let ok = if version == acked.0 {
            hash == acked.1
        } else {
            matches!(in_flight, Some((v, yaml)) if *v == version && got["policy"] == yaml.as_str())
        };
        if !ok {
            return Err(format!(
                "acknowledged update of {name} to version {} (hash {}) lost: the CAS has version {version} (hash {hash}); in flight at the kill: {:?}",
                acked.0,
                acked.1,
                in_flight.map(|(v, _)| v),
            ));
        }
        *known = (version, hash);
    }

    // The audit log verifies, still holds every record seen before the
    // kill, and has a record for every acknowledged grant and denial.
    let audit_started = Instant::now();
    let text = owner
        .audit_export()
        .await
        .map_err(|e| format!("GET /v1/audit (paged): {e}"))?;
    ledger.audit_bytes = text.len();
    let (records, signed) =
        parse_export(&text).map_err(|e| format!("the audit export does not parse: {e}"))?;
    verify_audit(
        &text,
        &records,
        signed.as_ref(),
        &key,
        &mut ledger.audit,
        full,
    )?;
    ledger.audit_time += audit_started.elapsed();
    let grants: BTreeMap<&str, u64> = records
        .iter()
        .filter(|r| r.record.kind == "attest.grant")
        .filter_map(|r| Some((r.record.detail["spki_sha256"].as_str()?, r.record.seq)))
        .collect();
    for (spki, audit_seq) in &acks.granted {
        let Some(seq) = grants.get(spki.as_str()) else {
            let at = records
                .iter()
                .find(|r| r.record.seq == *audit_seq)
                .map(|r| r.record.kind.as_str());
            return Err(format!(
                "acknowledged attestation (audit_seq {audit_seq}, launcher key sha256 {spki}) has no attest.grant record in the audit log (record {audit_seq} is {at:?})"
            ));
        };
        if seq != audit_seq {
            return Err(format!(
                "acknowledged attestation answered audit_seq {audit_seq}, but its attest.grant record is seq {seq}"
            ));
        }
        ledger.grants_confirmed += 1;
    }
    let denials: Vec<&str> = records
        .iter()
        .filter(|r| r.record.kind == "attest.deny")
        .filter_map(|r| r.record.detail["message"].as_str())
        .collect();
    for expected in &acks.denied {
        if !denials.iter().any(|m| m.contains(expected.as_str())) {
            return Err(format!(
                "acknowledged denial (expected report data {expected}) has no attest.deny record in the audit log"
            ));
        }
        ledger.denials_confirmed += 1;
    }
    Ok(())
}

/// A client's pause before each request: 0-10 ms, so requests interleave
/// with the kill at varied points.
async fn think(rng: &mut Rng) {
    tokio::time::sleep(Duration::from_micros(rng.below(10_001))).await;
}

/// What the load of one cycle shares with the test.
#[derive(Default)]
struct Load {
    /// Set once the server was killed: the clients stop.
    stop: Arc<AtomicBool>,
    /// What the server acknowledged.
    acks: Arc<Mutex<Acks>>,
    /// Notified at every acknowledgement.
    first: Arc<Notify>,
    /// Seeds the clients' think times.
    seed: u64,
}

/// Runs the load of one cycle against `server` until `stop`; returns what was acknowledged.
fn spawn_load(
    server: &Server,
    owner: &Arc<Identity>,
    sim: &Arc<SimPlatformKey>,
    cycle: usize,
    chains: BTreeMap<String, (u64, String)>,
    load: &Load,
) -> Vec<tokio::task::JoinHandle<()>> {
    let Load {
        stop,
        acks,
        first,
        seed,
    } = load;
    let seed = *seed;
    let mut tasks = Vec::new();
    let unexpected = |acks: &Mutex<Acks>, what: String| {
        acks.lock().unwrap().unexpected.push(what);
    };

    // A new session.
    {
        let (c, stop, acks, owner, first) = (
            server.client(Some(owner)),
            stop.clone(),
            acks.clone(),
            owner.clone(),
            first.clone(),
        );
        tasks.push(tokio::spawn(async move {
            if !stop.load(Ordering::Relaxed) {
                let name = format!("crash/s{cycle}");
                match apply(&c, &policy(&owner, &name, 1, None)).await {
                    Ok(v) => {
                        let hash = v["hash"].as_str().unwrap_or_default().to_owned();
                        if v["state"] != "active" || hash.is_empty() {
                            unexpected(&acks, format!("create {name} answered {v}"));
                        }
                        acks.lock().unwrap().created.push((name, hash));
                        first.notify_one();
                    }
                    Err(e @ ClientError::Api { .. }) => {
                        unexpected(&acks, format!("create {name}: {e}"));
                    }
                    Err(_) => {}
                }
            }
        }));
    }

    // Updates of each chained session, each naming its predecessor.
    for (k, (name, (version, hash))) in (1u64..).zip(chains) {
        let (c, stop, acks, owner, first) = (
            server.client(Some(owner)),
            stop.clone(),
            acks.clone(),
            owner.clone(),
            first.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut version, mut hash) = (version, hash);
            let mut rng = Rng(seed ^ k);
            while !stop.load(Ordering::Relaxed) {
                think(&mut rng).await;
                let yaml = policy(&owner, &name, version + 1, Some(&hash));
                acks.lock()
                    .unwrap()
                    .chain_in_flight
                    .insert(name.clone(), (version + 1, yaml.clone()));
                match apply(&c, &yaml).await {
                    Ok(v) => {
                        let new = v["hash"].as_str().unwrap_or_default().to_owned();
                        if v["state"] != "active" || new.is_empty() {
                            unexpected(&acks, format!("update of {name} answered {v}"));
                        }
                        version += 1;
                        hash = new;
                        let mut a = acks.lock().unwrap();
                        a.chained.insert(name.clone(), (version, hash.clone()));
                        a.chain_in_flight.remove(&name);
                        first.notify_one();
                    }
                    Err(e @ ClientError::Api { .. }) => {
                        unexpected(&acks, format!("update of {name}: {e}"));
                        break;
                    }
                    Err(_) => break,
                }
            }
        }));
    }

    // Attestations against the earlier session, two at a time (grouped
    // commits): one launcher is always granted, the other alternates
    // relayed evidence (denied, and audited before the answer) and grants.
    for worker in 0..2u32 {
        let (c, stop, acks, sim, first) = (
            server.client(None),
            stop.clone(),
            acks.clone(),
            sim.clone(),
            first.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u32;
            let mut rng = Rng(seed ^ (0x100 + u64::from(worker)));
            while !stop.load(Ordering::Relaxed) {
                think(&mut rng).await;
                i += 1;
                let relayed = worker == 1 && i % 2 == 1;
                match attest_once(&c, &sim, relayed).await {
                    Ok(Attested::Grant(spki, seq)) => {
                        acks.lock().unwrap().granted.push((spki, seq));
                        first.notify_one();
                    }
                    Ok(Attested::Deny(expected)) => {
                        acks.lock().unwrap().denied.push(expected);
                        first.notify_one();
                    }
                    Ok(Attested::Wrong(what)) => {
                        unexpected(&acks, what);
                        break;
                    }
                    Err(e @ ClientError::Api { .. }) => {
                        unexpected(&acks, format!("attestation: {e}"));
                        break;
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loop_loses_no_acknowledged_write() {
    let cycles: usize = std::env::var("VEIL_CAS_CRASH_CYCLES")
        .ok()
        .map(|s| s.parse().expect("VEIL_CAS_CRASH_CYCLES must be a number"))
        .unwrap_or(100);
    let seed: u64 = std::env::var("VEIL_CAS_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("VEIL_CAS_CRASH_SEED must be a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let mut rng = Rng(seed);
    let dir = tempfile::Builder::new()
        .prefix("veil-cas-crash")
        .tempdir()
        .unwrap();
    let root = dir.path().to_owned();
    let mut ctx = Ctx {
        state: root.join("state"),
        root,
        dir: Some(dir),
        seed,
    };
    eprintln!("cas_crash: {cycles} cycles, seed {seed} (VEIL_CAS_CRASH_SEED={seed} replays the kill delays)");
    let began = Instant::now();
    let owner = Arc::new(Identity::generate("crash owner", Time::now()).unwrap());

    // Set up: the session to attest against, and the session to update.
    let mut server = match start(&ctx).await {
        Ok(s) => s,
        Err(e) => ctx.fail("the first start", &e),
    };
    let sim = {
        let pem = std::fs::read(ctx.state.join("sim/platform.key")).unwrap();
        Arc::new(SimPlatformKey::from_pem(&pem).unwrap())
    };
    let c = server.client(Some(&owner));
    let base = apply(&c, &policy(&owner, ATTEST_SESSION, 1, None))
        .await
        .unwrap();
    let mut chains = BTreeMap::new();
    for name in CHAINS {
        let v = apply(&c, &policy(&owner, name, 1, None)).await.unwrap();
        chains.insert(name.to_owned(), (1, v["hash"].as_str().unwrap().to_owned()));
    }
    let mut ledger = Ledger {
        sessions: BTreeMap::from([(
            ATTEST_SESSION.to_owned(),
            base["hash"].as_str().unwrap().to_owned(),
        )]),
        chains,
        audit: Vec::new(),
        grants_confirmed: 0,
        denials_confirmed: 0,
        audit_time: Duration::ZERO,
        audit_bytes: 0,
    };
    let (mut created, mut updates, mut idle) = (0usize, 0u64, 0usize);
    let mut slowest_start = Duration::ZERO;
    let mut stalls = 0usize;
    let (mut in_start, mut in_check) = (Duration::ZERO, Duration::ZERO);

    for cycle in 1..=cycles {
        // Most kills land 0-50 ms into steady traffic (after the first
        // answer); one in five 0-50 ms after the clients started, when the
        // first requests are still connecting or committing.
        let delay = rng.below(51);
        let early = rng.below(5) == 0;
        let label = format!(
            "cycle {cycle}/{cycles} (kill {delay} ms after {})",
            if early {
                "the load started"
            } else {
                "the first answer"
            }
        );
        let load = Load {
            seed: rng.next(),
            ..Load::default()
        };
        let tasks = spawn_load(&server, &owner, &sim, cycle, ledger.chains.clone(), &load);
        if !early
            && tokio::time::timeout(FIRST_ANSWER_TIMEOUT, load.first.notified())
                .await
                .is_err()
        {
            stalls += 1;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if let Ok(Some(status)) = server.child.try_wait() {
            ctx.fail(
                &label,
                &format!("the CAS died on its own under load ({status}) before it was killed"),
            );
        }
        server.kill();
        load.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            if tokio::time::timeout(DRAIN_TIMEOUT, t).await.is_err() {
                ctx.fail(
                    &label,
                    "a client call did not end after the server was killed",
                );
            }
        }
        let acks = std::mem::take(&mut *load.acks.lock().unwrap());
        if !acks.unexpected.is_empty() {
            ctx.fail(
                &label,
                &format!(
                    "unexpected answers while the CAS ran: {:?}",
                    acks.unexpected
                ),
            );
        }
        created += acks.created.len();
        let before: u64 = ledger.chains.values().map(|c| c.0).sum();
        if acks.created.is_empty()
            && acks.granted.is_empty()
            && acks.denied.is_empty()
            && acks.chained.is_empty()
        {
            idle += 1;
        }

        let t = Instant::now();
        server = match start(&ctx).await {
            Ok(s) => s,
            Err(e) => ctx.fail(&label, &e),
        };
        slowest_start = slowest_start.max(t.elapsed());
        in_start += t.elapsed();
        let t = Instant::now();
        let c = server.client(Some(&owner));
        let full = cycle % FULL_AUDIT_EVERY == 0 || cycle == cycles;
        if let Err(e) = check(&c, &mut ledger, acks, full).await {
            ctx.fail(&label, &e);
        }
        in_check += t.elapsed();
        updates += ledger.chains.values().map(|c| c.0).sum::<u64>() - before;
    }
    drop(server);
    eprintln!(
        "cas_crash: {cycles} cycles in {:.1} s ({:.1} s restarting, slowest {} ms; {:.1} s checking, {:.1} s of it the audit log, {} records, {} KiB): {created} sessions created, \
         {updates} chained updates, {} grants and {} denials acknowledged and found in the audit log, {idle} cycles killed before any acknowledgement, \
         {stalls} cycles without an answer in {} s, no loss",
        began.elapsed().as_secs_f64(),
        in_start.as_secs_f64(),
        slowest_start.as_millis(),
        in_check.as_secs_f64(),
        ledger.audit_time.as_secs_f64(),
        ledger.audit.len(),
        ledger.audit_bytes >> 10,
        ledger.grants_confirmed,
        ledger.denials_confirmed,
        FIRST_ANSWER_TIMEOUT.as_secs(),
    );
}

/// Regression (found by the crash loop): `AttestResponse::audit_seq` must be
/// the seq of the grant's own audit record, not of the record before it
/// (`WriteTx::audit_head` is the head before the closure's records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_audit_seq_names_its_own_record() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let mut ctx = Ctx {
        state: root.join("state"),
        root,
        dir: Some(dir),
        seed: 0,
    };
    let server = match start(&ctx).await {
        Ok(s) => s,
        Err(e) => ctx.fail("start", &e),
    };
    let owner = Identity::generate("owner", Time::now()).unwrap();
    let c = server.client(Some(&owner));
    apply(&c, &policy(&owner, ATTEST_SESSION, 1, None))
        .await
        .unwrap();
    let pem = std::fs::read(ctx.state.join("sim/platform.key")).unwrap();
    let sim = SimPlatformKey::from_pem(&pem).unwrap();
    let Attested::Grant(spki, audit_seq) = attest_once(&server.client(None), &sim, false)
        .await
        .unwrap()
    else {
        panic!("the attestation was not granted");
    };
    let text = c.audit_export().await.unwrap();
    let (records, _) = parse_export(&text).unwrap();
    let at = records.iter().find(|r| r.record.seq == audit_seq).unwrap();
    let own = records
        .iter()
        .find(|r| r.record.detail["spki_sha256"] == spki.as_str())
        .map(|r| r.record.seq);
    assert_eq!(
        (
            at.record.kind.as_str(),
            at.record.detail["spki_sha256"].as_str()
        ),
        ("attest.grant", Some(spki.as_str())),
        "audit_seq {audit_seq} names a {} record; the grant's own record is seq {own:?}",
        at.record.kind
    );
}
