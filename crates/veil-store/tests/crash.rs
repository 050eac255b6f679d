//! Crash consistency: a child process writes and acknowledges records in a loop and is killed
//! with SIGKILL at random points; after every kill the store must reopen, hold every
//! acknowledged write, and its audit chain must verify.
//!
//! Cycles: `VEIL_STORE_SOAK_CYCLES` (default 100). Soak run:
//! `VEIL_STORE_SOAK_CYCLES=1000 cargo test -p veil-store --release --test crash -- --nocapture`.
//! Reproduce a run with `VEIL_STORE_CRASH_SEED=<seed printed by the test>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use veil_store::{AuditEntry, SealingKey, Store, StoreError, Table};

const CHILD_ENV: &str = "VEIL_STORE_CRASH_CHILD";

fn value_of(i: u64) -> Vec<u8> {
    format!("acknowledged value {i} {}", "v".repeat((i % 50) as usize)).into_bytes()
}

fn key_of(i: u64) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

/// The child: only does something when started by the parent test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let start: u64 = std::env::var("VEIL_STORE_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let grouped = std::env::var("VEIL_STORE_CRASH_GROUPED").is_ok();
    let key = SealingKey::load_key_file(dir.join("sealing.key")).unwrap();
    let store = Store::open(dir.join("cas.redb"), &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let write = |i: u64| -> Result<(), StoreError> {
        let f = move |tx: &mut veil_store::WriteTx<'_>| {
            tx.put(Table::SECRETS, &key_of(i), &value_of(i))?;
            tx.audit(AuditEntry::new(
                "attest.grant",
                format!("s/{i}"),
                "launcher",
                json!({"i": i}),
            ))
        };
        if grouped {
            store.write_grouped(f)
        } else {
            store.write(f)
        }
    };
    let threads = if grouped { 4 } else { 1 };
    std::thread::scope(|s| {
        for t in 0..threads {
            let write = &write;
            s.spawn(move || {
                let mut i = start + t;
                while Instant::now() < deadline {
                    write(i).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {i}").unwrap();
                    out.flush().unwrap();
                    i += threads;
                }
            });
        }
    });
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn parse_ack(line: &str) -> Option<u64> {
    let at = line.rfind("ACK ")?;
    line[at + 4..].trim().parse().ok()
}

#[test]
fn kill9_loop_loses_no_acknowledged_write() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let cycles: u64 = std::env::var("VEIL_STORE_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("VEIL_STORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {cycles} cycles, VEIL_STORE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::load_or_create_key_file(dir.path().join("sealing.key")).unwrap();
    let db_path = dir.path().join("cas.redb");
    drop(Store::open(&db_path, &key).unwrap());
    let exe = std::env::current_exe().unwrap();

    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut next: u64 = 0;
    let started = Instant::now();
    let mut killed_before_ack = 0;
    for cycle in 0..cycles {
        let grouped = cycle % 2 == 1;
        let mut cmd = Command::new(&exe);
        cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("VEIL_STORE_CRASH_START", next.to_string())
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if grouped {
            cmd.env("VEIL_STORE_CRASH_GROUPED", "1");
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let want = rng.below(7);
        if want == 0 {
            // Kill at a random moment, possibly during open or recovery.
            std::thread::sleep(Duration::from_micros(rng.below(40_000)));
            killed_before_ack += 1;
        } else {
            let mut seen = 0;
            for line in lines.by_ref() {
                let line = line.unwrap();
                if let Some(i) = parse_ack(&line) {
                    acked.insert(i);
                    seen += 1;
                    if seen >= want {
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        }
        child.kill().unwrap(); // SIGKILL
                               // Every line already printed was acknowledged before the kill.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(i) = parse_ack(&line) {
                acked.insert(i);
            }
        }
        child.wait().unwrap();

        let store = Store::open(&db_path, &key)
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): store did not reopen: {e}"));
        let present = store
            .read(|tx| tx.list(Table::SECRETS, b""))
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): {e}"));
        let present: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            present.into_iter().map(|(k, v)| (k, v.to_vec())).collect();
        for &i in &acked {
            assert_eq!(
                present.get(&key_of(i)).map(Vec::as_slice),
                Some(value_of(i).as_slice()),
                "cycle {cycle} (seed {seed}): acknowledged write {i} lost"
            );
        }
        let chain = store
            .verify_audit()
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): audit chain: {e}"));
        assert!(
            chain.len() >= present.len(),
            "cycle {cycle}: fewer audit records than writes"
        );
        if (cycle + 1) % 100 == 0 {
            println!(
                "crash test: {} cycles, {} acknowledged writes checked, {:.1?}",
                cycle + 1,
                acked.len(),
                started.elapsed()
            );
        }
        next = present
            .keys()
            .filter_map(|k| std::str::from_utf8(&k[1..]).ok()?.parse::<u64>().ok())
            .max()
            .map_or(0, |m| m + 1);
    }
    println!(
        "crash test: {cycles} kills ({killed_before_ack} at random moments), {} acknowledged writes all present, {:.1?}",
        acked.len(),
        started.elapsed()
    );
}
