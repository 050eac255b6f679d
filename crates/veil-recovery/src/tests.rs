//! Unit tests: round trips, refusals, corrupt-share recovery, formats.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use veil_attest::Time;
use veil_ca::Identity;
use zeroize::Zeroizing;

use crate::format::check_value;
use crate::seal::shamir_split;
use crate::*;

fn now() -> Time {
    Time::from_unix(1_700_000_000)
}

fn owners(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|i| Identity::generate(&format!("owner {i}"), now()).unwrap())
        .collect()
}

fn recipients(ids: &[Identity]) -> Vec<RecipientKey> {
    ids.iter()
        .map(|o| RecipientKey::from_cert_der(o.certificate()).unwrap())
        .collect()
}

fn pkcs8(id: &Identity) -> Vec<u8> {
    id.key_der().secret_der().to_vec()
}

const KEY: [u8; 32] = [0xA5; 32];

/// Splits KEY to `n` fresh owners with threshold `k` and decrypts every share.
fn split_and_decrypt(n: usize, k: u8) -> (RecoverySet, Vec<Identity>, Vec<PlainShare>) {
    let ids = owners(n);
    let set = split(&KEY, k, &recipients(&ids)).unwrap();
    let plain = set
        .shares()
        .iter()
        .zip(&ids)
        .map(|(s, o)| decrypt_share(s, &pkcs8(o)).unwrap())
        .collect();
    (set, ids, plain)
}

/// Plain shares without HPKE (for the combiner and proptests).
fn plain_set(secret: &[u8; 32], k: u8, n: u8) -> (SetId, [u8; 32], Vec<PlainShare>) {
    let set_id = SetId::from_bytes([n; 16]);
    let check = check_value(secret);
    let shares = shamir_split(secret, k, n)
        .unwrap()
        .into_iter()
        .map(|(index, value)| PlainShare {
            set_id,
            index,
            threshold: k,
            total: n,
            check,
            value,
        })
        .collect();
    (set_id, check, shares)
}

fn recovered(outcome: AddOutcome) -> Zeroizing<[u8; 32]> {
    match outcome {
        AddOutcome::Recovered(k) => k,
        other => panic!("expected Recovered, got {other:?}"),
    }
}

#[test]
fn round_trip() {
    for (n, k) in [(1usize, 1u8), (3, 2), (5, 3)] {
        let (set, _ids, plain) = split_and_decrypt(n, k);
        assert_eq!(set.total() as usize, n);
        assert_eq!(set.threshold(), k);
        assert_eq!(set.check(), check_value(&KEY));
        for (i, s) in set.shares().iter().enumerate() {
            assert_eq!(s.index as usize, i + 1);
            let json = s.to_json();
            assert_eq!(&EncryptedShare::from_json(&json).unwrap(), s);
        }
        // The first K and the last K, through the transport form.
        for subset in [&plain[..k as usize], &plain[n - k as usize..]] {
            let mut c = Combiner::from_record(&set.record()).unwrap();
            let mut out = None;
            for (j, p) in subset.iter().enumerate() {
                let line = p.to_transport();
                assert!(line.starts_with(TRANSPORT_PREFIX));
                let p = PlainShare::from_transport(&line).unwrap();
                match c.add(p).unwrap() {
                    AddOutcome::NeedMore { have, need } => {
                        assert_eq!((have, need), (j + 1, k as usize));
                    }
                    AddOutcome::Recovered(key) => out = Some(key),
                }
            }
            assert_eq!(*out.unwrap(), KEY, "n={n} k={k}");
        }
    }
}

#[test]
fn k_minus_one_shares_need_more() {
    let (set, _ids, plain) = split_and_decrypt(5, 3);
    let mut c = Combiner::new(set.check(), set.set_id(), 3).unwrap();
    assert!(matches!(
        c.add(plain[4].clone()).unwrap(),
        AddOutcome::NeedMore { have: 1, need: 3 }
    ));
    assert!(matches!(
        c.add(plain[1].clone()).unwrap(),
        AddOutcome::NeedMore { have: 2, need: 3 }
    ));
    assert_eq!(c.have(), 2);
}

#[test]
fn duplicate_share_not_counted() {
    let (_, check, plain) = plain_set(&KEY, 2, 3);
    let mut c = Combiner::new(check, plain[0].set_id(), 2).unwrap();
    c.add(plain[0].clone()).unwrap();
    assert_eq!(
        c.add(plain[0].clone()).unwrap_err(),
        RecoveryError::Duplicate { index: 1 }
    );
    assert_eq!(c.have(), 1);
    assert_eq!(*recovered(c.add(plain[2].clone()).unwrap()), KEY);
    assert_eq!(
        c.add(plain[1].clone()).unwrap_err(),
        RecoveryError::AlreadyRecovered
    );
}

#[test]
fn foreign_share_refused() {
    let ids = owners(3);
    let r = recipients(&ids);
    let a = split(&KEY, 2, &r).unwrap();
    let b = split(&KEY, 2, &r).unwrap();
    assert_ne!(a.set_id(), b.set_id());
    let b0 = decrypt_share(&b.shares()[0], &pkcs8(&ids[0])).unwrap();
    let mut c = Combiner::from_record(&a.record()).unwrap();
    assert_eq!(
        c.add(b0).unwrap_err(),
        RecoveryError::Foreign {
            expected: a.set_id(),
            found: b.set_id()
        }
    );
    // Same set id, other check (a forged share): also foreign.
    let mut a1 = decrypt_share(&a.shares()[1], &pkcs8(&ids[1])).unwrap();
    a1.check[0] ^= 1;
    assert!(matches!(
        c.add(a1).unwrap_err(),
        RecoveryError::Foreign { .. }
    ));
    assert_eq!(c.have(), 0);
}

#[test]
fn threshold_mismatch_refused() {
    let (set_id, check, plain) = plain_set(&KEY, 2, 3);
    let mut c = Combiner::new(check, set_id, 2).unwrap();
    let mut s = plain[0].clone();
    s.threshold = 3;
    assert_eq!(
        c.add(s).unwrap_err(),
        RecoveryError::ThresholdMismatch {
            expected: 2,
            found: 3
        }
    );
    assert_eq!(c.have(), 0);
}

#[test]
fn altered_share_file_does_not_decrypt() {
    let (set, ids, _) = split_and_decrypt(3, 2);
    let key = pkcs8(&ids[0]);
    let good = &set.shares()[0];
    let mut s = good.clone();
    s.ciphertext[5] ^= 0x01;
    assert_eq!(
        decrypt_share(&s, &key).unwrap_err(),
        RecoveryError::DecryptFailed
    );
    let mut s = good.clone();
    s.ciphertext[40] ^= 0x80; // the tag
    assert_eq!(
        decrypt_share(&s, &key).unwrap_err(),
        RecoveryError::DecryptFailed
    );
    let mut s = good.clone();
    s.enc[10] ^= 0x01;
    assert_eq!(
        decrypt_share(&s, &key).unwrap_err(),
        RecoveryError::DecryptFailed
    );
    // Header fields are bound by the associated data.
    let mut s = good.clone();
    s.index = 2;
    assert_eq!(
        decrypt_share(&s, &key).unwrap_err(),
        RecoveryError::DecryptFailed
    );
    let mut s = good.clone();
    s.threshold = 3;
    assert_eq!(
        decrypt_share(&s, &key).unwrap_err(),
        RecoveryError::DecryptFailed
    );
    let mut s = good.clone();
    s.set_id = SetId::from_bytes([0; 16]);
    assert_eq!(
        decrypt_share(&s, &key).unwrap_err(),
        RecoveryError::DecryptFailed
    );
    let mut s = good.clone();
    s.check[3] ^= 1;
    assert_eq!(
        decrypt_share(&s, &key).unwrap_err(),
        RecoveryError::DecryptFailed
    );
    assert!(decrypt_share(good, &key).is_ok());
}

#[test]
fn corrupt_plaintext_share_then_recovery() {
    // (3,2): a bad share and a good one give Corrupt; one more good share recovers.
    let (set, _ids, plain) = split_and_decrypt(3, 2);
    let mut bad = plain[0].clone();
    bad.value[7] ^= 0x40;
    let mut c = Combiner::from_record(&set.record()).unwrap();
    assert!(matches!(
        c.add(bad).unwrap(),
        AddOutcome::NeedMore { have: 1, need: 2 }
    ));
    assert!(matches!(
        c.add(plain[1].clone()).unwrap_err(),
        RecoveryError::Corrupt {
            have: 2,
            need: 2,
            ..
        }
    ));
    assert_eq!(*recovered(c.add(plain[2].clone()).unwrap()), KEY);

    // (5,3), bad share first and in the middle.
    let (set_id, check, plain) = plain_set(&KEY, 3, 5);
    let mut c = Combiner::new(check, set_id, 3).unwrap();
    let mut bad = plain[2].clone();
    bad.value[0] ^= 1;
    c.add(plain[0].clone()).unwrap();
    c.add(bad).unwrap();
    assert!(matches!(
        c.add(plain[4].clone()).unwrap_err(),
        RecoveryError::Corrupt { .. }
    ));
    assert_eq!(*recovered(c.add(plain[1].clone()).unwrap()), KEY);
}

#[test]
fn corrupt_share_cannot_take_an_honest_index() {
    // N = K = 2: a forged share for index 1 arrives first; the honest share
    // for index 1 is still accepted and recovery succeeds.
    let (set_id, check, plain) = plain_set(&KEY, 2, 2);
    let mut c = Combiner::new(check, set_id, 2).unwrap();
    let mut forged = plain[0].clone();
    forged.value[31] ^= 0xff;
    c.add(forged).unwrap();
    assert!(matches!(
        c.add(plain[1].clone()).unwrap_err(),
        RecoveryError::Corrupt { .. }
    ));
    assert_eq!(*recovered(c.add(plain[0].clone()).unwrap()), KEY);
}

#[test]
fn conflicting_candidates_bounded() {
    let (set_id, check, plain) = plain_set(&KEY, 2, 3);
    let mut c = Combiner::new(check, set_id, 2).unwrap();
    for i in 0..MAX_CANDIDATES_PER_INDEX {
        let mut s = plain[0].clone();
        s.value[0] ^= (i + 1) as u8;
        c.add(s).unwrap();
    }
    let mut s = plain[0].clone();
    s.value[0] ^= 0x80;
    assert!(matches!(
        c.add(s).unwrap_err(),
        RecoveryError::ConflictingShares { index: 1, .. }
    ));
    // Two good shares still recover.
    assert!(matches!(
        c.add(plain[1].clone()).unwrap_err(),
        RecoveryError::Corrupt { .. }
    ));
    assert_eq!(*recovered(c.add(plain[2].clone()).unwrap()), KEY);
}

#[test]
fn several_corrupt_shares_then_recovery() {
    let (set_id, check, plain) = plain_set(&KEY, 3, 7);
    let mut c = Combiner::new(check, set_id, 3).unwrap();
    let bad = |i: usize| {
        let mut s: PlainShare = plain[i].clone();
        s.value[i] ^= 0x11;
        s
    };
    c.add(bad(0)).unwrap();
    c.add(plain[1].clone()).unwrap();
    assert!(c.add(bad(2)).is_err());
    assert!(c.add(plain[3].clone()).is_err());
    assert!(c.add(bad(4)).is_err());
    assert_eq!(*recovered(c.add(plain[5].clone()).unwrap()), KEY);
}

#[test]
fn flood_of_forged_shares_bounded_and_recoverable() {
    // 30 forged shares, then 5 good ones, K = 5: the searches hit their
    // bound, yet the good shares, sent last, are found.
    let (set_id, check, plain) = plain_set(&KEY, 5, 40);
    let mut c = Combiner::new(check, set_id, 5).unwrap();
    let mut bounded = false;
    for (i, s) in plain.iter().take(30).enumerate() {
        let mut s = s.clone();
        s.value[i] ^= 0x5a;
        if let Err(RecoveryError::Corrupt { tried, more, .. }) = c.add(s) {
            assert!(tried <= MAX_COMBINATIONS);
            bounded |= !more.is_empty();
        }
    }
    assert!(bounded);
    for s in &plain[30..34] {
        assert!(c.add(s.clone()).is_err());
    }
    assert_eq!(*recovered(c.add(plain[34].clone()).unwrap()), KEY);
}

#[test]
fn add_from_checks_the_sender() {
    let (set, ids, plain) = split_and_decrypt(3, 2);
    let mut c = Combiner::from_record(&set.record()).unwrap();
    assert_eq!(
        c.add_from(&ids[1].fingerprint(), plain[0].clone())
            .unwrap_err(),
        RecoveryError::NotSharesOwner {
            index: 1,
            sender: ids[1].fingerprint()
        }
    );
    c.add_from(&ids[0].fingerprint(), plain[0].clone()).unwrap();
    let key = recovered(c.add_from(&ids[2].fingerprint(), plain[2].clone()).unwrap());
    assert_eq!(*key, KEY);
    let mut bare = Combiner::new(set.check(), set.set_id(), 2).unwrap();
    assert!(bare
        .add_from(&ids[0].fingerprint(), plain[0].clone())
        .is_err());
}

#[test]
fn wrong_owner_key_refused() {
    let (set, ids, _) = split_and_decrypt(3, 2);
    // Owner 1's key on owner 0's share.
    let err = decrypt_share(&set.shares()[0], &pkcs8(&ids[1])).unwrap_err();
    assert_eq!(
        err,
        RecoveryError::WrongRecipient {
            share_for: ids[0].fingerprint(),
            key_is: ids[1].fingerprint()
        }
    );
    // A stranger's key.
    let stranger = owners(1);
    assert!(matches!(
        decrypt_share(&set.shares()[0], &pkcs8(&stranger[0])).unwrap_err(),
        RecoveryError::WrongRecipient { .. }
    ));
    // Relabelling the share for another recipient does not help: the
    // recipient is in the associated data and the HPKE key differs.
    let mut s = set.shares()[0].clone();
    s.recipient = ids[1].fingerprint();
    assert_eq!(
        decrypt_share(&s, &pkcs8(&ids[1])).unwrap_err(),
        RecoveryError::DecryptFailed
    );
    // Not a key at all.
    assert!(matches!(
        decrypt_share(&set.shares()[0], b"not a key").unwrap_err(),
        RecoveryError::InvalidIdentityKey { .. }
    ));
}

#[test]
fn split_parameters_checked() {
    let ids = owners(3);
    let r = recipients(&ids);
    let invalid = |e: RecoveryError| matches!(e, RecoveryError::InvalidParameters { .. });
    assert!(invalid(split(&KEY, 1, &[]).unwrap_err()));
    assert!(invalid(split(&KEY, 0, &r).unwrap_err()));
    assert!(invalid(split(&KEY, 4, &r).unwrap_err()));
    assert!(invalid(split(&KEY, 1, &r).unwrap_err()));
    let twice = vec![r[0].clone(), r[1].clone(), r[0].clone()];
    assert!(invalid(split(&KEY, 2, &twice).unwrap_err()));
    let many = vec![r[0].clone(); 256];
    let e = split(&KEY, 2, &many).unwrap_err();
    assert!(e.to_string().contains("at most 255"), "{e}");
    assert!(split(&KEY, 3, &r).is_ok());
    assert!(split(&KEY, 1, &r[..1]).is_ok());
}

#[test]
fn recipient_key_must_be_p256() {
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&ed)
        .unwrap();
    let e = RecipientKey::from_cert_der(cert.der()).unwrap_err();
    assert!(
        matches!(e, RecoveryError::UnsupportedRecipientKey { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("not an elliptic-curve key"), "{e}");

    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&p384)
        .unwrap();
    let e = RecipientKey::from_cert_der(cert.der()).unwrap_err();
    assert!(e.to_string().contains("not P-256"), "{e}");

    assert!(RecipientKey::from_cert_der(b"junk").is_err());

    let id = &owners(1)[0];
    let r = RecipientKey::from_cert_der(id.certificate()).unwrap();
    assert_eq!(r.fingerprint(), id.fingerprint());
    let spki = p256_spki(id);
    assert_eq!(
        RecipientKey::from_spki_der(&spki).unwrap().fingerprint(),
        id.fingerprint()
    );
}

fn p256_spki(id: &Identity) -> Vec<u8> {
    use x509_parser::prelude::*;
    let (_, cert) = parse_x509_certificate(id.certificate()).unwrap();
    cert.tbs_certificate.subject_pki.raw.to_vec()
}

#[test]
fn share_file_format() {
    let (set, _, _) = split_and_decrypt(3, 2);
    let s = &set.shares()[1];
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<_> = obj.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "check",
            "ciphertext",
            "enc",
            "index",
            "recipient",
            "set_id",
            "threshold",
            "total",
            "version"
        ]
    );
    assert_eq!(v["version"], 1);
    assert_eq!(v["index"], 2);
    assert_eq!(v["set_id"].as_str().unwrap().len(), 32);
    assert_eq!(v["recipient"].as_str().unwrap().len(), 64);

    let mut extra = v.clone();
    extra["note"] = "hi".into();
    assert!(matches!(
        EncryptedShare::from_json(&extra.to_string()).unwrap_err(),
        RecoveryError::Malformed { .. }
    ));
    let mut v2 = v.clone();
    v2["version"] = 2.into();
    assert_eq!(
        EncryptedShare::from_json(&v2.to_string()).unwrap_err(),
        RecoveryError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    let mut bad = v.clone();
    bad["index"] = 4.into();
    assert!(EncryptedShare::from_json(&bad.to_string()).is_err());
    let mut bad = v.clone();
    bad["threshold"] = 1.into();
    assert!(EncryptedShare::from_json(&bad.to_string()).is_err());
    let mut bad = v.clone();
    bad["ciphertext"] = "AAAA".into();
    assert!(EncryptedShare::from_json(&bad.to_string()).is_err());
    let mut bad = v;
    bad["set_id"] = "zz".into();
    assert!(EncryptedShare::from_json(&bad.to_string()).is_err());

    let rec = set.record();
    let json = serde_json::to_string(&rec).unwrap();
    assert_eq!(serde_json::from_str::<RecoveryRecord>(&json).unwrap(), rec);
    assert_eq!(rec.recipients.len(), 3);
}

#[test]
fn transport_format() {
    let (_, _, plain) = plain_set(&KEY, 2, 3);
    let line = plain[1].to_transport();
    let back = PlainShare::from_transport(&format!("  {}\n", &*line)).unwrap();
    assert_eq!(back.index(), 2);
    assert_eq!(back.threshold(), 2);
    assert_eq!(back.total(), 3);
    assert_eq!(back.set_id(), plain[1].set_id());
    assert_eq!(back.check(), plain[1].check());
    assert_eq!(*back.value, *plain[1].value);

    // One changed character is caught by the checksum.
    let mut chars: Vec<char> = line.chars().collect();
    let i = TRANSPORT_PREFIX.len() + 30;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let typo: String = chars.into_iter().collect();
    assert!(matches!(
        PlainShare::from_transport(&typo).unwrap_err(),
        RecoveryError::Malformed { .. }
    ));
    assert!(PlainShare::from_transport(&line[..line.len() - 2]).is_err());
    assert!(PlainShare::from_transport("veil-share-v2:AAAA").is_err());
    assert!(PlainShare::from_transport("").is_err());
}

#[test]
fn debug_shows_no_key_material() {
    let (set, ids, plain) = split_and_decrypt(3, 2);
    let key_hex = hex::encode(KEY);
    let canaries = |s: &str| {
        assert!(!s.contains(&key_hex), "{s}");
        assert!(!s.contains("165, 165"), "{s}");
        for p in &plain {
            assert!(!s.contains(&hex::encode(*p.value)), "{s}");
            let bytes = format!("{:?}", &p.value[..4]);
            assert!(
                !s.contains(bytes.trim_matches(|c| c == '[' || c == ']')),
                "{s}"
            );
        }
    };
    for p in &plain {
        canaries(&format!("{p:?}"));
        canaries(&format!("{p:#?}"));
    }
    canaries(&format!("{set:?}"));
    canaries(&format!("{:?}", recipients(&ids)));
    let mut c = Combiner::from_record(&set.record()).unwrap();
    c.add(plain[0].clone()).unwrap();
    canaries(&format!("{c:?}"));
    let out = c.add(plain[1].clone()).unwrap();
    let dbg = format!("{out:?}");
    assert_eq!(dbg, "Recovered(..)");
    canaries(&dbg);
    let err = RecoveryError::DecryptFailed.to_string();
    canaries(&err);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_k_of_n_recover_and_k_minus_1_do_not(
        secret in any::<[u8; 32]>(),
        n in 2u8..=8,
        k_seed in any::<u8>(),
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..8).collect();
            for i in (1..v.len()).rev() {
                let j = (rng.next_u32() as usize) % (i + 1);
                v.swap(i, j);
            }
            v
        }),
    ) {
        let k = 2 + k_seed % (n - 1);
        let (set_id, check, plain) = plain_set(&secret, k, n);
        let picked: Vec<usize> = order.into_iter().filter(|&i| i < n as usize).collect();
        let mut c = Combiner::new(check, set_id, k).unwrap();
        for (j, &i) in picked.iter().take(k as usize - 1).enumerate() {
            match c.add(plain[i].clone()).unwrap() {
                AddOutcome::NeedMore { have, need } => {
                    prop_assert_eq!((have, need), (j + 1, k as usize));
                }
                AddOutcome::Recovered(_) => prop_assert!(false, "recovered with K-1 shares"),
            }
        }
        let last = picked[k as usize - 1];
        match c.add(plain[last].clone()).unwrap() {
            AddOutcome::Recovered(key) => prop_assert_eq!(*key, secret),
            other => prop_assert!(false, "expected Recovered, got {:?}", other),
        }
    }
}
