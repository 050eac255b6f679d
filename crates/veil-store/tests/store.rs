//! Behaviour of the sealed store: transactions, restart, wrong key, swaps, group commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde_json::json;
use veil_store::{audit, AuditEntry, SealingKey, Store, StoreError, Table};

const RAW_SESSIONS: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("sessions");
const RAW_SECRETS: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("secrets");

fn entry(kind: &str, subject: &str) -> AuditEntry {
    AuditEntry::new(kind, subject, "launcher", json!({"reason": "test"}))
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, SealingKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cas.redb");
    (dir, path, SealingKey::generate().unwrap())
}

#[test]
fn put_get_list_delete_and_restart() {
    let (_d, path, key) = setup();
    {
        let s = Store::open(&path, &key).unwrap();
        s.write(|tx| {
            tx.put(Table::SESSIONS, b"shop/db", b"v1")?;
            tx.put(Table::SESSIONS, b"shop/web", b"v2")?;
            tx.put(Table::SESSIONS, b"other", b"v3")?;
            tx.put(Table::SECRETS, b"shop/db/pw", b"hunter2")?;
            assert_eq!(
                tx.get(Table::SESSIONS, b"shop/db")?.unwrap().as_slice(),
                b"v1"
            );
            tx.audit(entry("session.apply", "shop/db"))
        })
        .unwrap();
        let listed = s.read(|tx| tx.list(Table::SESSIONS, b"shop/")).unwrap();
        let keys: Vec<&[u8]> = listed.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, vec![&b"shop/db"[..], b"shop/web"]);
        assert!(s.write(|tx| tx.delete(Table::SESSIONS, b"other")).unwrap());
        assert!(!s.write(|tx| tx.delete(Table::SESSIONS, b"other")).unwrap());
    }
    let s = Store::open(&path, &key).unwrap();
    let (db, other, pw, all) = s
        .read(|tx| {
            Ok::<_, StoreError>((
                tx.get(Table::SESSIONS, b"shop/db")?,
                tx.get(Table::SESSIONS, b"other")?,
                tx.get(Table::SECRETS, b"shop/db/pw")?,
                tx.list(Table::SESSIONS, b"")?,
            ))
        })
        .unwrap();
    assert_eq!(db.unwrap().as_slice(), b"v1");
    assert!(other.is_none());
    assert_eq!(pw.unwrap().as_slice(), b"hunter2");
    assert_eq!(all.len(), 2);
    assert_eq!(s.read(|tx| tx.get(Table::NONCES, b"x")).unwrap(), None);
    let chain = s.verify_audit().unwrap();
    assert_eq!(chain.len(), 1);
}

#[test]
fn failed_closure_writes_nothing_and_list_sees_staged() {
    let (_d, path, key) = setup();
    let s = Store::open(&path, &key).unwrap();
    s.write(|tx| tx.put(Table::NONCES, b"n1", b"1")).unwrap();
    let r: Result<(), StoreError> = s.write(|tx| {
        tx.put(Table::NONCES, b"n2", b"2")?;
        tx.delete(Table::NONCES, b"n1")?;
        let l = tx.list(Table::NONCES, b"n")?;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].0, b"n2");
        tx.audit(entry("attest.grant", "x"))?;
        Err(StoreError::Panicked) // any error aborts
    });
    assert!(r.is_err());
    let l = s.read(|tx| tx.list(Table::NONCES, b"")).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, b"n1");
    assert_eq!(s.audit_head().unwrap().next_seq, 0);
}

#[test]
fn invalid_names_and_sizes_are_refused() {
    let (_d, path, key) = setup();
    let s = Store::open(&path, &key).unwrap();
    let e = s
        .write(|tx| tx.put(Table::new("veil.meta"), b"k", b"v"))
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidTable { .. }), "{e}");
    let e = s
        .write(|tx| tx.put(Table::SESSIONS, &[0u8; 2000], b"v"))
        .unwrap_err();
    assert!(matches!(e, StoreError::TooLarge { what: "key", .. }), "{e}");
    let e = s
        .write(|tx| tx.audit(AuditEntry::new("Bad Kind", "s", "a", json!(null))))
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidAuditEntry { .. }), "{e}");
}

#[test]
fn wrong_key_is_refused_clearly() {
    let (_d, path, key) = setup();
    drop(Store::open(&path, &key).unwrap());
    let e = Store::open(&path, &SealingKey::generate().unwrap()).unwrap_err();
    assert!(matches!(e, StoreError::WrongKey { .. }), "{e}");
    assert!(e.to_string().contains("sealed with another key"));
    // The right key still works.
    drop(Store::open(&path, &key).unwrap());
}

#[test]
fn second_open_is_refused() {
    let (_d, path, key) = setup();
    let _s = Store::open(&path, &key).unwrap();
    let e = Store::open(&path, &key).unwrap_err();
    assert!(matches!(e, StoreError::AlreadyOpen), "{e}");
}

#[test]
fn swapped_values_between_keys_and_tables_are_tampered() {
    let (_d, path, key) = setup();
    {
        let s = Store::open(&path, &key).unwrap();
        s.write(|tx| {
            tx.put(Table::SESSIONS, b"a", b"policy A")?;
            tx.put(Table::SESSIONS, b"b", b"policy B")?;
            tx.put(Table::SECRETS, b"a", b"secret A")
        })
        .unwrap();
    }
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(RAW_SESSIONS).unwrap();
            let a = t.get(&b"a"[..]).unwrap().unwrap().value().to_vec();
            let b = t.get(&b"b"[..]).unwrap().unwrap().value().to_vec();
            t.insert(&b"a"[..], b.as_slice()).unwrap();
            t.insert(&b"b"[..], a.as_slice()).unwrap();
            let mut sec = tx.open_table(RAW_SECRETS).unwrap();
            let sa = sec.get(&b"a"[..]).unwrap().unwrap().value().to_vec();
            t.insert(&b"c"[..], sa.as_slice()).unwrap();
            // and flip one ciphertext byte, with redb's checksums kept valid
            let mut x = sa.clone();
            x[25] ^= 1;
            sec.insert(&b"a"[..], x.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let s = Store::open(&path, &key).unwrap();
    for (table, k) in [
        (Table::SESSIONS, &b"a"[..]),
        (Table::SESSIONS, b"b"),
        (Table::SESSIONS, b"c"),
        (Table::SECRETS, b"a"),
    ] {
        let e = s.read(|tx| tx.get(table, k)).unwrap_err();
        match &e {
            StoreError::Tampered { table: t, key: kk } => {
                assert_eq!(t, table.name());
                assert_eq!(kk.as_bytes(), k);
            }
            other => panic!("expected Tampered, got {other}"),
        }
    }
    let e = s.read(|tx| tx.list(Table::SESSIONS, b"")).unwrap_err();
    assert!(matches!(e, StoreError::Tampered { .. }));
}

#[test]
fn audit_records_in_the_same_transaction_and_export() {
    let (_d, path, key) = setup();
    let s = Store::open(&path, &key).unwrap();
    s.write(|tx| tx.put(Table::NONCES, b"n1", b"")).unwrap();
    // Consume the nonce and record the grant atomically.
    let granted = s
        .write(|tx| {
            if !tx.delete(Table::NONCES, b"n1")? {
                return Ok(false);
            }
            tx.audit(entry("attest.grant", "shop/db/mysqld"))?;
            Ok::<_, StoreError>(true)
        })
        .unwrap();
    assert!(granted);
    let again = s
        .write(|tx| {
            if !tx.delete(Table::NONCES, b"n1")? {
                tx.audit(AuditEntry::new(
                    "attest.deny",
                    "shop/db/mysqld",
                    "launcher",
                    json!({"reason": "nonce already used"}),
                ))?;
                return Ok(false);
            }
            Ok::<_, StoreError>(true)
        })
        .unwrap();
    assert!(!again);
    let recs = s.append_audit(vec![entry("session.apply", "a")]).unwrap();
    assert_eq!(recs[0].record.seq, 2);
    let head = s.audit_head().unwrap();
    assert_eq!(head.next_seq, 3);
    let mut buf = Vec::new();
    s.export_audit(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let v = audit::verify_export(&text, &s.audit_public_key()).unwrap();
    assert_eq!(v.head, head);
    assert!(text.contains("nonce already used"));
}

#[test]
fn audit_record_deleted_from_file_is_detected() {
    let (_d, path, key) = setup();
    {
        let s = Store::open(&path, &key).unwrap();
        for i in 0..4 {
            s.append_audit(vec![entry("session.apply", &format!("s{i}"))])
                .unwrap();
        }
    }
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx
                .open_table(TableDefinition::<u64, &[u8]>::new("veil.audit"))
                .unwrap();
            t.remove(3).unwrap(); // the last one: only the sealed head notices
        }
        tx.commit().unwrap();
    }
    let s = Store::open(&path, &key).unwrap();
    let e = s.verify_audit().unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::AuditChain(veil_store::AuditError::Truncated {
                expected_next: 4,
                found_next: 3
            })
        ),
        "{e}"
    );
}

#[test]
fn group_commit_many_threads() {
    let (_d, path, key) = setup();
    let s = Store::open(&path, &key).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..20u32 {
                    let k = format!("t{t:02}/{i:03}");
                    s.write_grouped(move |tx| {
                        tx.put(Table::NONCES, k.as_bytes(), b"x")?;
                        tx.audit(AuditEntry::new("attest.grant", k, "launcher", json!({})))
                    })
                    .unwrap();
                }
                // a failing closure in a batch does not hurt the others
                let r: Result<(), StoreError> = s.write_grouped(move |tx| {
                    tx.put(Table::NONCES, format!("fail{t}").as_bytes(), b"x")?;
                    Err(StoreError::Panicked)
                });
                assert!(r.is_err());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n = s.read(|tx| tx.list(Table::NONCES, b"")).unwrap();
    assert_eq!(n.len(), 16 * 20);
    let chain = s.verify_audit().unwrap();
    assert_eq!(chain.len(), 16 * 20);
}

#[test]
fn group_commit_survives_a_panicking_closure() {
    let (_d, path, key) = setup();
    let s = Store::open(&path, &key).unwrap();
    let r: Result<(), StoreError> = s.write_grouped(|tx| {
        tx.put(Table::NONCES, b"p", b"x")?;
        panic!("closure bug");
    });
    assert!(matches!(r, Err(StoreError::Panicked)));
    s.write_grouped(|tx| tx.put(Table::NONCES, b"ok", b"x"))
        .unwrap();
    let n = s.read(|tx| tx.list(Table::NONCES, b"")).unwrap();
    assert_eq!(n.len(), 1);
}

#[test]
fn custom_audit_signer_is_pinned() {
    let (_d, path, key) = setup();
    let signer = Arc::new(veil_store::Ed25519AuditSigner::from_seed(&[5; 32]).unwrap());
    {
        let s = Store::open_with(
            &path,
            &key,
            veil_store::StoreOptions::new().audit_signer(signer.clone()),
        )
        .unwrap();
        s.append_audit(vec![entry("session.apply", "a")]).unwrap();
    }
    let e = Store::open(&path, &key).unwrap_err();
    assert!(matches!(e, StoreError::AuditKeyChanged), "{e}");
    let s = Store::open_with(
        &path,
        &key,
        veil_store::StoreOptions::new().audit_signer(signer),
    )
    .unwrap();
    s.verify_audit().unwrap();
}

#[test]
fn read_sees_a_consistent_snapshot_of_generation() {
    let (_d, path, key) = setup();
    let s = Store::open(&path, &key).unwrap();
    let g0 = s.read(|tx| Ok::<_, StoreError>(tx.generation())).unwrap();
    s.write(|tx| tx.put(Table::META, b"k", b"v")).unwrap();
    let g1 = s.read(|tx| Ok::<_, StoreError>(tx.generation())).unwrap();
    assert_eq!(g1, g0 + 1);
    // The raw bytes on disk do not contain the plaintext.
    drop(s);
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows(3).any(|w| w == b"\x00v\x00"));
    let db = redb::Database::create(&path).unwrap();
    let tx = db.begin_read().unwrap();
    let t = tx
        .open_table(TableDefinition::<&[u8], &[u8]>::new("meta"))
        .unwrap();
    let v = t.get(&b"k"[..]).unwrap().unwrap();
    assert_eq!(v.value().len(), 1 + 8 + 12 + 1 + 16);
}
