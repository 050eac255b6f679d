#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING, ED25519,
};
use sha2::{Digest, Sha256};
use veil_attest::{Tee, Time};
use veil_ca::*;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const NOW: Time = Time::from_unix(1_751_624_924); // 2025-07-04
const DAY: u64 = 86_400;

fn pem_der(text: &str, tag: &str) -> Vec<u8> {
    let blocks = pem::parse_many(text).unwrap();
    let b = blocks.iter().find(|b| b.tag() == tag).unwrap();
    b.contents().to_vec()
}

fn session_ca() -> CaIdentity {
    CaIdentity::generate("shop/db session CA", 365, NOW).unwrap()
}

fn lookup(ca: CaIdentity) -> impl Fn(&str) -> Option<CaIdentity> {
    move |name| (name == "session-ca").then(|| ca.clone())
}

#[test]
fn password_default_and_custom_alphabet() {
    let s = generate(&SecretKindSpec::password(24), &NoCa, NOW).unwrap();
    assert_eq!(s.kind, SecretKind::Password);
    let pw = std::str::from_utf8(&s.value).unwrap();
    assert_eq!(pw.chars().count(), 24);
    assert!(pw.chars().all(|c| DEFAULT_PASSWORD_ALPHABET.contains(c)));

    let spec = SecretKindSpec::Password {
        length: 100,
        alphabet: "äb€".into(),
    };
    let s = generate(&spec, &NoCa, NOW).unwrap();
    let pw = std::str::from_utf8(&s.value).unwrap();
    assert_eq!(pw.chars().count(), 100);
    assert!(pw.chars().all(|c| "äb€".contains(c)));
}

#[test]
fn password_rejects_bad_specs() {
    for (length, alphabet) in [
        (7, "ab"),
        (1025, "ab"),
        (8, "a"),
        (8, ""),
        (8, "abca"),
        (8, "ab\n"),
    ] {
        let spec = SecretKindSpec::Password {
            length,
            alphabet: alphabet.into(),
        };
        assert!(
            matches!(
                generate(&spec, &NoCa, NOW),
                Err(CaError::InvalidSpec { .. })
            ),
            "accepted {length} {alphabet:?}"
        );
    }
    assert!(generate_password(8, "ab").is_ok());
    assert!(generate_password(1024, DEFAULT_PASSWORD_ALPHABET).is_ok());
}

#[test]
fn password_draw_is_roughly_uniform() {
    // 3 symbols: a biased (modulo) draw would not show at this size, but a
    // broken index (always 0, never the last) would.
    let pw = generate_password(1024, "abc").unwrap();
    for c in ['a', 'b', 'c'] {
        let n = pw.chars().filter(|x| *x == c).count();
        assert!((200..=480).contains(&n), "{c}: {n}");
    }
}

#[test]
fn bytes_and_aes() {
    let s = generate(&SecretKindSpec::Bytes { size: 48 }, &NoCa, NOW).unwrap();
    assert_eq!((s.kind, s.value.len()), (SecretKind::Bytes, 48));
    let t = generate(&SecretKindSpec::Bytes { size: 48 }, &NoCa, NOW).unwrap();
    assert_ne!(s.value, t.value);
    assert!(generate(&SecretKindSpec::Bytes { size: 0 }, &NoCa, NOW).is_err());
    assert!(generate(&SecretKindSpec::Bytes { size: 65_537 }, &NoCa, NOW).is_err());
    let k = generate(&SecretKindSpec::Aes256, &NoCa, NOW).unwrap();
    assert_eq!((k.kind, k.value.len()), (SecretKind::Aes256, 32));
    assert!(k.key_pem.is_none() && k.cert_pem.is_none());
}

#[test]
fn ecdsa_key_parses_and_signs() {
    let s = generate(&SecretKindSpec::EcdsaP256, &NoCa, NOW).unwrap();
    assert_eq!(s.kind, SecretKind::EcdsaP256);
    let key_pem = s.key_pem.as_deref().unwrap();
    assert_eq!(s.value.as_slice(), key_pem.as_bytes());
    let der = pem_der(key_pem, "PRIVATE KEY");
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &SystemRandom::new())
        .unwrap();
    let sig = kp.sign(&SystemRandom::new(), b"hello").unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, kp.public_key().as_ref())
        .verify(b"hello", sig.as_ref())
        .unwrap();
}

#[test]
fn ed25519_key_parses_and_signs() {
    let s = generate(&SecretKindSpec::Ed25519, &NoCa, NOW).unwrap();
    assert_eq!(s.kind, SecretKind::Ed25519);
    let der = pem_der(s.key_pem.as_deref().unwrap(), "PRIVATE KEY");
    let kp = Ed25519KeyPair::from_pkcs8(&der).unwrap();
    let sig = kp.sign(b"hello");
    UnparsedPublicKey::new(&ED25519, kp.public_key().as_ref())
        .verify(b"hello", sig.as_ref())
        .unwrap();
}

#[test]
fn x509_secret_chains_to_its_ca_with_sans() {
    let ca = session_ca();
    let spec = SecretKindSpec::X509 {
        issuer: "session-ca".into(),
        common_name: "db.internal".into(),
        dns: vec!["db.internal".into(), "*.db.internal".into()],
        ips: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))],
        validity_days: 30,
    };
    let s = generate(&spec, &lookup(ca.clone()), NOW).unwrap();
    assert_eq!(s.kind, SecretKind::X509);
    let cert_pem = s.cert_pem.as_deref().unwrap();
    assert_eq!(s.value.as_slice(), cert_pem.as_bytes());
    assert_eq!(s.ca_pem.as_deref().unwrap(), ca.cert_pem());
    let der = pem_der(cert_pem, "CERTIFICATE");
    verify_chain(&der, ca.cert_der(), NOW).unwrap();
    verify_chain(&der, ca.cert_der(), Time::from_unix(NOW.unix() + 29 * DAY)).unwrap();
    assert!(matches!(
        verify_chain(&der, ca.cert_der(), Time::from_unix(NOW.unix() + 31 * DAY)),
        Err(CaError::Expired { .. })
    ));
    assert!(matches!(
        verify_chain(&der, ca.cert_der(), Time::from_unix(NOW.unix() - 3600)),
        Err(CaError::NotYetValid { .. })
    ));

    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|g| match g {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) => format!("{b:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["db.internal", "*.db.internal", "[10, 0, 0, 7]"]);
    assert!(!cert.is_ca());

    // The key in key_pem belongs to the certificate.
    let mut both = cert_pem.to_owned();
    both.push_str(s.key_pem.as_deref().unwrap());
    Identity::from_pem(&both).unwrap();

    // Unknown issuer and bad SANs are refused.
    let mut bad = spec.clone();
    if let SecretKindSpec::X509 { issuer, .. } = &mut bad {
        *issuer = "other".into();
    }
    assert!(matches!(
        generate(&bad, &lookup(ca.clone()), NOW),
        Err(CaError::UnknownIssuer(_))
    ));
    let mut bad = spec;
    if let SecretKindSpec::X509 { dns, .. } = &mut bad {
        dns.push("bad name".into());
    }
    assert!(matches!(
        generate(&bad, &lookup(ca), NOW),
        Err(CaError::InvalidSpec { .. })
    ));
}

#[test]
fn x509_validity_is_cut_to_the_ca() {
    let ca = CaIdentity::generate("short CA", 10, NOW).unwrap();
    let spec = SecretKindSpec::X509 {
        issuer: "session-ca".into(),
        common_name: "svc".into(),
        dns: vec!["svc".into()],
        ips: vec![],
        validity_days: 365,
    };
    let s = generate(&spec, &lookup(ca.clone()), NOW).unwrap();
    let der = pem_der(s.cert_pem.as_deref().unwrap(), "CERTIFICATE");
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.validity().not_after.timestamp() as u64,
        ca.not_after().unix()
    );
}

#[test]
fn x509_ca_secret_is_a_ca_and_can_issue() {
    let spec = SecretKindSpec::X509Ca {
        issuer: None,
        common_name: "tenant CA".into(),
        validity_days: 3650,
    };
    let s = generate(&spec, &NoCa, NOW).unwrap();
    assert_eq!(s.kind, SecretKind::X509Ca);
    let der = pem_der(s.cert_pem.as_deref().unwrap(), "CERTIFICATE");
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(cert.is_ca());
    assert!(cert.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert_eq!(s.ca_pem, s.cert_pem);
    // Self-signed: verifies against itself.
    verify_chain(&der, &der, NOW).unwrap();

    let ca = CaIdentity::from_secret(&s).unwrap();
    let leaf = generate(
        &SecretKindSpec::X509 {
            issuer: "session-ca".into(),
            common_name: "api".into(),
            dns: vec!["api.example".into()],
            ips: vec![],
            validity_days: 1,
        },
        &lookup(ca),
        NOW,
    )
    .unwrap();
    let leaf_der = pem_der(leaf.cert_pem.as_deref().unwrap(), "CERTIFICATE");
    verify_chain(&leaf_der, &der, NOW).unwrap();
    // A non-CA secret cannot become a CA.
    assert!(CaIdentity::from_secret(&leaf).is_err());
}

#[test]
fn secret_material_serde_round_trip_and_debug() {
    let ca = session_ca();
    let specs = [
        SecretKindSpec::password(16),
        SecretKindSpec::Bytes { size: 16 },
        SecretKindSpec::Aes256,
        SecretKindSpec::EcdsaP256,
        SecretKindSpec::Ed25519,
        SecretKindSpec::X509 {
            issuer: "session-ca".into(),
            common_name: "x".into(),
            dns: vec!["x.internal".into()],
            ips: vec![],
            validity_days: 5,
        },
        SecretKindSpec::X509Ca {
            issuer: None,
            common_name: "c".into(),
            validity_days: 5,
        },
    ];
    for spec in specs {
        let s = generate(&spec, &lookup(ca.clone()), NOW).unwrap();
        assert_eq!(s.kind, spec.kind());
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(&format!("\"kind\":\"{}\"", s.kind)));
        let back: SecretMaterial = serde_json::from_str(&json).unwrap();
        assert_eq!(back.value, s.value);
        assert_eq!(back.cert_pem, s.cert_pem);
        assert_eq!(
            back.key_pem.as_deref().map(String::as_str),
            s.key_pem.as_deref().map(String::as_str)
        );
        assert_eq!(back.ca_pem, s.ca_pem);

        // Debug shows no material: not the value, its hex, or any PEM.
        let dbg = format!("{s:?} {s:#?}");
        let value_hex = hex::encode(s.value.as_slice());
        assert!(!dbg.contains(&value_hex), "{dbg}");
        assert!(!dbg.contains("BEGIN"), "{dbg}");
        if let Ok(text) = std::str::from_utf8(&s.value) {
            assert!(!dbg.contains(text), "{dbg}");
        }
    }
}

#[test]
fn identity_pem_round_trip_and_fingerprint() {
    let id = Identity::generate("alice", NOW).unwrap();
    let pem = id.to_pem();
    let back = Identity::from_pem(&pem).unwrap();
    assert_eq!(back.fingerprint(), id.fingerprint());
    assert_eq!(back.certificate(), id.certificate());
    assert_eq!(back.key_der().secret_der(), id.key_der().secret_der());

    let (_, cert) = X509Certificate::from_der(id.certificate()).unwrap();
    let spki = cert.tbs_certificate.subject_pki.raw;
    let expect = hex::encode(Sha256::digest(spki));
    assert_eq!(id.fingerprint().to_string(), expect);
    assert_eq!(Fingerprint::of_spki(spki).unwrap(), id.fingerprint());
    assert_eq!(
        Fingerprint::of_cert_der(id.certificate()).unwrap(),
        id.fingerprint()
    );

    // Self-signed, clientAuth, 10 years, not a CA.
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
    let v = cert.validity();
    assert!(v.not_after.timestamp() - v.not_before.timestamp() >= 3650 * 86_400);
    cert.verify_signature(None).unwrap();

    // The key parses with ring and signs for the certificate's key.
    let kp = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        id.key_der().secret_der(),
        &SystemRandom::new(),
    )
    .unwrap();
    assert_eq!(
        kp.public_key().as_ref(),
        cert.public_key().subject_public_key.data.as_ref()
    );

    // Files on disk round-trip too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.pem");
    std::fs::write(&path, pem.as_bytes()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        Identity::from_pem(&text).unwrap().fingerprint(),
        id.fingerprint()
    );
}

#[test]
fn identity_rejects_mismatched_or_incomplete_pem() {
    let a = Identity::generate("a", NOW).unwrap();
    let b = Identity::generate("b", NOW).unwrap();
    let mut mixed = a.cert_pem();
    mixed.push_str(&b.key_pem());
    assert!(matches!(
        Identity::from_pem(&mixed),
        Err(CaError::KeyMismatch)
    ));
    assert!(Identity::from_pem(&a.cert_pem()).is_err());
    assert!(Identity::from_pem(&a.key_pem()).is_err());
    assert!(Identity::from_pem("garbage").is_err());
    let mut two = a.to_pem().to_string();
    two.push_str(&a.cert_pem());
    assert!(Identity::from_pem(&two).is_err());
    // A client identity is not a CA.
    assert!(matches!(
        CaIdentity::from_pem(&a.to_pem()),
        Err(CaError::NotACa(_))
    ));
    assert!(Identity::generate("", NOW).is_err());
}

#[test]
fn ca_identity_round_trip_and_server_leaf() {
    let ca = CaIdentity::generate("Veil CAS", 3650, NOW).unwrap();
    let back = CaIdentity::from_pem(&ca.to_pem()).unwrap();
    assert_eq!(back.fingerprint(), ca.fingerprint());
    assert_eq!(back.cert_der(), ca.cert_der());
    assert_eq!(
        Fingerprint::of_cert_der(ca.cert_der()).unwrap(),
        ca.fingerprint()
    );
    let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    assert!(cert.is_ca());
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());

    let leaf = ca
        .issue_server_identity(
            &["cas.example".into()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            NOW,
            90,
        )
        .unwrap();
    verify_chain(leaf.certificate(), ca.cert_der(), NOW).unwrap();
    let (_, lc) = X509Certificate::from_der(leaf.certificate()).unwrap();
    let eku = lc.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);
    assert!(!lc.is_ca());
    assert!(issue_server_cert_rejects_bad_spki(&ca));
}

fn issue_server_cert_rejects_bad_spki(ca: &CaIdentity) -> bool {
    matches!(
        ca.issue_server_cert(
            b"nope",
            &["a".into()],
            &[],
            NOW,
            Time::from_unix(NOW.unix() + DAY)
        ),
        Err(CaError::Malformed { .. })
    )
}

fn subject() -> AttestedSubject {
    AttestedSubject {
        session: "shop/db".into(),
        service: "mysqld".into(),
        tee: Tee::Snp,
        measurement: vec![0x3c; 48],
        dns: vec!["db.internal".into()],
        ips: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))],
    }
}

fn launcher_key() -> (EcdsaKeyPair, Vec<u8>) {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng).unwrap();
    // SPKI via rcgen, as the launcher would send it.
    let rk = rcgen::KeyPair::try_from(doc.as_ref()).unwrap();
    use rcgen::PublicKeyData;
    let spki = rk.subject_public_key_info();
    (kp, spki)
}

#[test]
fn attested_cert_round_trip() {
    let ca = session_ca();
    let (_kp, spki) = launcher_key();
    let nb = NOW;
    let na = Time::from_unix(NOW.unix() + DAY);
    let der = issue_attested_cert(&ca, &spki, &subject(), nb, na).unwrap();

    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.tbs_certificate.subject_pki.raw, spki.as_slice());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.as_bytes() == VEIL_ATTESTATION_EXT_OID_DER)
        .expect("extension present under the UUID OID");
    assert!(!ext.critical);

    let parsed = parse_attested_cert(&der).unwrap();
    assert_eq!(parsed.subject, subject());
    assert_eq!(parsed.spki, spki);
    assert_eq!((parsed.not_before, parsed.not_after), (nb, na));
    assert_eq!(parsed.issuer_fingerprint, ca.fingerprint());

    verify_chain(&der, ca.cert_der(), NOW).unwrap();
    let verified = verify_attested_cert(&der, ca.cert_der(), NOW).unwrap();
    assert_eq!(verified, parsed);

    // Ed25519 launcher keys work as well.
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let rk = rcgen::KeyPair::try_from(doc.as_ref()).unwrap();
    use rcgen::PublicKeyData;
    let ed_spki = rk.subject_public_key_info();
    let der = issue_attested_cert(&ca, &ed_spki, &subject(), nb, na).unwrap();
    assert_eq!(parse_attested_cert(&der).unwrap().spki, ed_spki);
}

#[test]
fn attested_cert_from_another_ca_fails() {
    let ca = session_ca();
    let other = session_ca(); // same name, different key
    let (_kp, spki) = launcher_key();
    let der = issue_attested_cert(
        &other,
        &spki,
        &subject(),
        NOW,
        Time::from_unix(NOW.unix() + DAY),
    )
    .unwrap();
    assert!(matches!(
        verify_chain(&der, ca.cert_der(), NOW),
        Err(CaError::BadSignature(_))
    ));
    assert!(verify_attested_cert(&der, ca.cert_der(), NOW).is_err());

    let named_other = CaIdentity::generate("another CA", 30, NOW).unwrap();
    assert!(matches!(
        verify_chain(&der, named_other.cert_der(), NOW),
        Err(CaError::IssuerMismatch { .. })
    ));
    // A leaf is not a CA.
    assert!(matches!(
        verify_chain(&der, &der, NOW),
        Err(CaError::NotACa(_))
    ));
}

#[test]
fn attested_cert_rejects_bad_input() {
    let ca = session_ca();
    let (_kp, spki) = launcher_key();
    let na = Time::from_unix(NOW.unix() + DAY);
    let mut s = subject();
    s.measurement.clear();
    assert!(issue_attested_cert(&ca, &spki, &s, NOW, na).is_err());
    let mut s = subject();
    s.session = String::new();
    assert!(issue_attested_cert(&ca, &spki, &s, NOW, na).is_err());
    assert!(issue_attested_cert(&ca, b"junk", &subject(), NOW, na).is_err());
    assert!(issue_attested_cert(&ca, &spki, &subject(), na, NOW).is_err());

    // A certificate without the extension.
    let plain = Identity::generate("x", NOW).unwrap();
    assert!(matches!(
        parse_attested_cert(plain.certificate()),
        Err(CaError::MissingExtension)
    ));
    assert!(parse_attested_cert(b"junk").is_err());

    // Tampering with the extension breaks the signature.
    let der = issue_attested_cert(&ca, &spki, &subject(), NOW, na).unwrap();
    let needle = b"mysqld";
    let pos = der
        .windows(needle.len())
        .rposition(|w| w == needle)
        .unwrap();
    let mut bad = der.clone();
    bad[pos] = b'n';
    assert!(verify_chain(&bad, ca.cert_der(), NOW).is_err());
}

#[test]
fn debug_prints_no_key_material() {
    let id = Identity::generate("canary", NOW).unwrap();
    let ca = session_ca();
    for (dbg, key) in [
        (
            format!("{id:?} {id:#?}"),
            id.key_der().secret_der().to_vec(),
        ),
        (
            format!("{ca:?} {ca:#?}"),
            pem_der(&ca.key_pem(), "PRIVATE KEY"),
        ),
    ] {
        assert!(!dbg.contains(&hex::encode(&key)), "{dbg}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        assert!(!dbg.contains("BEGIN"), "{dbg}");
        // No run of 16 hex digits of the key appears either.
        let kh = hex::encode(&key);
        for i in (0..kh.len().saturating_sub(16)).step_by(8) {
            assert!(!dbg.contains(&kh[i..i + 16]), "{dbg}");
        }
    }
    // Canary secret value.
    let mut s = generate(&SecretKindSpec::Bytes { size: 8 }, &NoCa, NOW).unwrap();
    s.value = zeroize::Zeroizing::new(b"CANARY-7f3a".to_vec());
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("CANARY"), "{dbg}");
    assert!(!dbg.contains(&hex::encode("CANARY-7f3a")), "{dbg}");
}

#[test]
fn x509_ca_secret_issued_by_another_ca_is_an_intermediate() {
    let root = CaIdentity::generate("session CA", 3650, NOW).unwrap();
    let spec = SecretKindSpec::X509Ca {
        issuer: Some("session-ca".into()),
        common_name: "tenant CA".into(),
        validity_days: 365,
    };
    let s = generate(&spec, &lookup(root.clone()), NOW).unwrap();
    let der = pem_der(s.cert_pem.as_deref().unwrap(), "CERTIFICATE");
    verify_chain(&der, root.cert_der(), NOW).unwrap();
    assert_eq!(s.ca_pem.as_deref(), Some(root.cert_pem().as_str()));
    // It issues leaves that chain to it.
    let mid = CaIdentity::from_secret(&s).unwrap();
    let leaf = SecretKindSpec::X509 {
        issuer: "session-ca".into(),
        common_name: "leaf".into(),
        dns: vec!["leaf.internal".into()],
        ips: vec![],
        validity_days: 30,
    };
    let l = generate(&leaf, &lookup(mid.clone()), NOW).unwrap();
    let leaf_der = pem_der(l.cert_pem.as_deref().unwrap(), "CERTIFICATE");
    verify_chain(&leaf_der, mid.cert_der(), NOW).unwrap();
    // An unknown issuer is refused.
    let bad = SecretKindSpec::X509Ca {
        issuer: Some("nope".into()),
        common_name: "x".into(),
        validity_days: 1,
    };
    assert!(generate(&bad, &NoCa, NOW).is_err());
}

#[test]
fn attested_cert_carries_the_ratls_extension_when_given() {
    let ca = session_ca();
    let (_kp, spki) = launcher_key();
    let na = Time::from_unix(NOW.unix() + DAY);
    // Large values (an SGX quote with its certificates is ~5 KB) fit.
    for value in [vec![0xd9, 0xea, 0x6c, 0x82, 0x40, 0x40], vec![0x5a; 9000]] {
        let der = issue_attested_cert_with_evidence(&ca, &spki, &subject(), NOW, na, Some(&value))
            .unwrap();
        verify_attested_cert(&der, ca.cert_der(), NOW).unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let ratls: Vec<_> = cert
            .extensions()
            .iter()
            .filter(|e| e.oid.to_id_string() == RATLS_EXT_OID)
            .collect();
        assert_eq!(ratls.len(), 1);
        assert!(!ratls[0].critical);
        assert_eq!(ratls[0].value, value.as_slice());
        // Still a Veil attested certificate.
        assert_eq!(parse_attested_cert(&der).unwrap().subject, subject());
    }
    // Without: no such extension, exactly as issue_attested_cert.
    for der in [
        issue_attested_cert_with_evidence(&ca, &spki, &subject(), NOW, na, None).unwrap(),
        issue_attested_cert(&ca, &spki, &subject(), NOW, na).unwrap(),
    ] {
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert!(cert
            .extensions()
            .iter()
            .all(|e| e.oid.to_id_string() != RATLS_EXT_OID));
    }
    for bad in [vec![], vec![0; MAX_RATLS_EXTENSION_LEN + 1]] {
        assert!(matches!(
            issue_attested_cert_with_evidence(&ca, &spki, &subject(), NOW, na, Some(&bad)),
            Err(CaError::Build(_))
        ));
    }
}
