//! Prints durable writes per second, one transaction per write vs group commit with 64 threads.
//! Each write consumes a nonce, stores a record and appends one signed audit record, like an
//! attestation grant. No timing is asserted.
//!
//! Figures worth quoting come from a release build:
//! `VEIL_STORE_BENCH_WRITES=5000 cargo test -p veil-store --release --test throughput -- --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use serde_json::json;
use veil_store::{AuditEntry, SealingKey, Store, StoreError, Table, WriteTx};

fn grant(i: u64) -> impl FnOnce(&mut WriteTx<'_>) -> Result<(), StoreError> + Send + 'static {
    move |tx| {
        let nonce = format!("n{i:010}");
        tx.put(Table::NONCES, nonce.as_bytes(), b"issued")?;
        tx.delete(Table::NONCES, nonce.as_bytes())?;
        tx.put(
            Table::new("grants"),
            nonce.as_bytes(),
            b"certificate serial and claims",
        )?;
        tx.audit(AuditEntry::new(
            "attest.grant",
            "shop/db/mysqld",
            "launcher",
            json!({"nonce": nonce, "tee": "sim", "measurement": "3c9a"}),
        ))
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

#[test]
fn single_vs_grouped_writes_per_second() {
    let total: u64 = std::env::var("VEIL_STORE_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(640);
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::generate().unwrap();
    let store = Store::open(dir.path().join("bench.redb"), &key).unwrap();

    let single_n = (total / 4).max(16);
    let t = Instant::now();
    for i in 0..single_n {
        store.write(grant(i)).unwrap();
    }
    let single = single_n as f64 / t.elapsed().as_secs_f64();

    let threads = 64u64;
    let per = (total / threads).max(1);
    let t = Instant::now();
    let lat: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|th| {
                let store = store.clone();
                s.spawn(move || {
                    let mut l = Vec::new();
                    for j in 0..per {
                        let t0 = Instant::now();
                        store
                            .write_grouped(grant(1_000_000 + th * per + j))
                            .unwrap();
                        l.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    l
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = t.elapsed().as_secs_f64();
    let mut lat = lat;
    lat.sort_by(|a, b| a.total_cmp(b));
    let grouped = lat.len() as f64 / elapsed;
    let chain = store.verify_audit().unwrap();
    println!(
        "durable writes/s (1 put+delete+put+signed audit record each): single {single:.0}/s ({single_n} writes); \
         grouped, {threads} threads: {grouped:.0}/s ({} writes), latency p50 {:.1} ms p99 {:.1} ms; audit chain {} records verified",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        chain.len()
    );
}
