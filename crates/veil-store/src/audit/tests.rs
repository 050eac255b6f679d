use super::*;
use serde_json::json;

fn signer() -> Ed25519AuditSigner {
    Ed25519AuditSigner::from_seed(&[9; 32]).unwrap()
}

fn chain(n: u64, s: &Ed25519AuditSigner) -> Vec<SignedAuditRecord> {
    let mut out: Vec<SignedAuditRecord> = Vec::new();
    let mut prev = [0u8; 32];
    for seq in 0..n {
        let r = AuditRecord {
            seq,
            time_ms: 1_700_000_000_000 + seq,
            prev_hash: prev,
            kind: "attest.grant".into(),
            subject: "shop/db/mysqld".into(),
            actor: "launcher".into(),
            detail: json!({"b": 1, "a": [true, null, "x"], "seq": seq}),
        };
        let signed = sign_record(r, s);
        prev = signed.hash;
        out.push(signed);
    }
    out
}

#[test]
fn valid_chain_verifies() {
    let s = signer();
    let c = chain(5, &s);
    let v = verify(&c, &s.public_key()).unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!(v.head.next_seq, 5);
    assert_eq!(v.head.hash, c[4].hash);
    v.check_head(&v.head).unwrap();
    v.check_head(&AuditHead::EMPTY).unwrap();
    v.check_head(&AuditHead {
        next_seq: 3,
        hash: c[2].hash,
    })
    .unwrap();
    assert!(verify(&[], &s.public_key()).unwrap().is_empty());
}

#[test]
fn edit_is_detected() {
    let s = signer();
    let mut c = chain(5, &s);
    c[2].record.detail = json!({"reason": "changed"});
    assert_eq!(
        verify(&c, &s.public_key()),
        Err(AuditError::Edited { seq: 2 })
    );
}

#[test]
fn edit_with_rehash_breaks_signature_or_link() {
    let s = signer();
    let mut c = chain(5, &s);
    c[2].record.kind = "attest.deny".into();
    c[2].hash = c[2].record.hash();
    assert_eq!(
        verify(&c, &s.public_key()),
        Err(AuditError::BadSignature { seq: 2 })
    );
    // Re-signed by someone else:
    let mallory = Ed25519AuditSigner::from_seed(&[1; 32]).unwrap();
    let mut c = chain(5, &s);
    c[2] = sign_record(c[2].record.clone(), &mallory);
    assert_eq!(
        verify(&c, &s.public_key()),
        Err(AuditError::BadSignature { seq: 2 })
    );
}

#[test]
fn reorder_gap_and_start_are_detected() {
    let s = signer();
    let pk = s.public_key();
    let c = chain(5, &s);
    let mut r = c.clone();
    r.swap(1, 2);
    assert_eq!(
        verify(&r, &pk),
        Err(AuditError::SeqGap {
            expected: 1,
            found: 2,
            position: 1
        })
    );
    let mut g = c.clone();
    g.remove(3);
    assert_eq!(
        verify(&g, &pk),
        Err(AuditError::SeqGap {
            expected: 3,
            found: 4,
            position: 3
        })
    );
    assert_eq!(
        verify(&c[1..], &pk),
        Err(AuditError::MissingStart { seq: 1 })
    );
    // A record renumbered to fill a gap does not link.
    let mut h = c.clone();
    h.remove(3);
    h[3].record.seq = 3;
    h[3].hash = h[3].record.hash();
    assert_eq!(verify(&h, &pk), Err(AuditError::BrokenLink { seq: 3 }));
}

#[test]
fn truncation_detected_against_head() {
    let s = signer();
    let c = chain(5, &s);
    let full = verify(&c, &s.public_key()).unwrap();
    let cut = verify(&c[..3], &s.public_key()).unwrap();
    assert_eq!(
        cut.check_head(&full.head),
        Err(AuditError::Truncated {
            expected_next: 5,
            found_next: 3
        })
    );
    assert_eq!(
        full.check_head(&AuditHead {
            next_seq: 2,
            hash: [7; 32]
        }),
        Err(AuditError::HeadMismatch { seq: 1 })
    );
}

#[test]
fn segment_verifies_from_anchor() {
    let s = signer();
    let c = chain(6, &s);
    let anchor = AuditHead {
        next_seq: 2,
        hash: c[1].hash,
    };
    let v = verify_from(&c[2..], &s.public_key(), &anchor).unwrap();
    assert_eq!(v.head.next_seq, 6);
    v.check_head(&AuditHead {
        next_seq: 4,
        hash: c[3].hash,
    })
    .unwrap();
}

#[test]
fn export_roundtrip_and_truncation() {
    let s = signer();
    let c = chain(4, &s);
    let head = AuditHead {
        next_seq: 4,
        hash: c[3].hash,
    }
    .sign(&s);
    let mut buf = Vec::new();
    write_export(&c, &head, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert_eq!(text.lines().count(), 5);
    let v = verify_export(&text, &s.public_key()).unwrap();
    assert_eq!(v.len(), 4);

    // Cut the head line: missing head.
    let lines: Vec<&str> = text.lines().collect();
    let no_head = lines[..4].join("\n");
    assert_eq!(
        verify_export(&no_head, &s.public_key()),
        Err(AuditError::MissingHead)
    );
    // Cut a record but keep the head: truncated.
    let cut = [lines[..3].join("\n"), lines[4].to_string()].join("\n");
    assert_eq!(
        verify_export(&cut, &s.public_key()),
        Err(AuditError::Truncated {
            expected_next: 4,
            found_next: 3
        })
    );
    // Edit a reason in the JSON text.
    let edited = text.replace("shop/db/mysqld", "shop/db/other");
    assert!(matches!(
        verify_export(&edited, &s.public_key()),
        Err(AuditError::Edited { seq: 0 })
    ));
    // Wrong key.
    let other = Ed25519AuditSigner::from_seed(&[4; 32]).unwrap();
    assert_eq!(
        verify_export(&text, &other.public_key()),
        Err(AuditError::BadHeadSignature)
    );
    assert_eq!(
        verify_export(&text, b"short"),
        Err(AuditError::BadPublicKey)
    );
    assert!(matches!(
        verify_export("{not json", &s.public_key()),
        Err(AuditError::Malformed { line: 1, .. })
    ));
}

#[test]
fn canonical_json_sorts_keys() {
    let mut a = Vec::new();
    canonical_json(
        &json!({"b": {"z": 1, "y": [2, {"d": 1, "c": 2}]}, "a": "é\n"}),
        &mut a,
    );
    assert_eq!(
        String::from_utf8(a).unwrap(),
        r#"{"a":"é\n","b":{"y":[2,{"c":2,"d":1}],"z":1}}"#
    );
}

#[test]
fn entry_validation() {
    assert!(AuditEntry::new("attest.grant", "s", "a", json!({}))
        .validate()
        .is_ok());
    assert!(AuditEntry::new("", "s", "a", json!({})).validate().is_err());
    assert!(AuditEntry::new("Attest Grant", "s", "a", json!({}))
        .validate()
        .is_err());
    let big = "x".repeat(MAX_DETAIL_LEN);
    assert!(AuditEntry::new("k", "s", "a", json!({ "x": big }))
        .validate()
        .is_err());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any single-byte change to any record's JSON export is detected, or leaves the
        /// record's meaning unchanged (e.g. it only reformats).
        #[test]
        fn any_edit_of_a_record_field_is_detected(idx in 0usize..4, field in 0usize..5, val in "[a-z]{1,8}") {
            let s = signer();
            let mut c = chain(4, &s);
            let r = &mut c[idx].record;
            match field {
                0 => r.kind = format!("k.{val}"),
                1 => r.subject = format!("{}{val}", r.subject),
                2 => r.actor = format!("{}{val}", r.actor),
                3 => r.detail = json!({"v": val}),
                _ => r.time_ms += 1,
            }
            prop_assert_eq!(verify(&c, &s.public_key()), Err(AuditError::Edited { seq: idx as u64 }));
        }
    }
}
