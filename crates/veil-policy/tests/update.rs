//! Updates: predecessor chaining, rotation, and diffs.
#![allow(clippy::unwrap_used)]

use veil_policy::{check_update, diff, parse_session, Change, ErrorKind};

const V1: &str = include_str!("examples/minimal.yaml");
const V2: &str = include_str!("examples/update.yaml");

#[test]
fn update_names_its_predecessor() {
    let v1 = parse_session(V1).unwrap();
    let v2 = parse_session(&V2.replace("PREDECESSOR", &v1.hash().to_string())).unwrap();
    assert_eq!(v2.predecessor(), Some(v1.hash()));
    check_update(&v1, &v2).unwrap();
    let changes = diff(&v1, &v2);
    assert_eq!(
        changes,
        vec![
            Change::Version { from: 1, to: 2 },
            Change::SecretAdded {
                name: "pw".into(),
                kind: "password"
            },
            Change::ServiceChanged {
                name: "hello".into(),
                fields: vec!["command"]
            },
        ]
    );
    assert_eq!(changes[2].to_string(), "~ service hello: command");
}

#[test]
fn a_stale_predecessor_loses() {
    let v1 = parse_session(V1).unwrap();
    let other = "ab".repeat(32);
    let v2 = parse_session(&V2.replace("PREDECESSOR", &other)).unwrap();
    let e = check_update(&v1, &v2).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Update);
    assert_eq!(e.path(), "predecessor");
    assert!(e.message().contains(&v1.hash().to_string()));
}

#[test]
fn two_concurrent_updates_cannot_both_win() {
    let v1 = parse_session(V1).unwrap();
    let a = parse_session(&V2.replace("PREDECESSOR", &v1.hash().to_string())).unwrap();
    let b = parse_session(
        &V2.replace("PREDECESSOR", &v1.hash().to_string())
            .replace("kind: password", "kind: password, length: 40"),
    )
    .unwrap();
    check_update(&v1, &a).unwrap();
    check_update(&v1, &b).unwrap();
    // a landed; b still names v1 and is refused against a.
    assert!(check_update(&a, &b).is_err());
}

#[test]
fn changed_generated_secret_needs_rotate() {
    let v2 = parse_session(&V2.replace("PREDECESSOR", &"00".repeat(32))).unwrap();
    let v3_text = V2
        .replace("version: 2", "version: 3")
        .replace("PREDECESSOR", &v2.hash().to_string())
        .replace("kind: password }", "kind: bytes, size: 8 }");
    let v3 = parse_session(&v3_text).unwrap();
    let e = check_update(&v2, &v3).unwrap_err();
    assert!(e.message().contains("rotate"), "{e}");
    let v3 = parse_session(&format!("{v3_text}rotate: [pw]\n")).unwrap();
    check_update(&v2, &v3).unwrap();
    assert!(diff(&v2, &v3).contains(&Change::SecretRotated { name: "pw".into() }));
}

#[test]
fn rotate_must_name_generated_secrets() {
    let base = V2.replace("PREDECESSOR", &"00".repeat(32));
    let e = parse_session(&format!("{base}rotate: [nope]\n")).unwrap_err();
    assert_eq!((e.path(), e.code()), ("rotate[0]", "unknown_reference"));
    let e = parse_session(&format!(
        "{}rotate: [tok]\n",
        base.replace(
            "- { name: pw, kind: password }",
            "- { name: pw, kind: password }\n  - { name: tok, kind: supplied }"
        )
    ))
    .unwrap_err();
    assert!(e.message().contains("cannot rotate"), "{e}");
}

#[test]
fn version_must_be_the_next_one() {
    let v1 = parse_session(V1).unwrap();
    let v3 = parse_session(
        &V2.replace("version: 2", "version: 3")
            .replace("PREDECESSOR", &v1.hash().to_string()),
    )
    .unwrap();
    let e = check_update(&v1, &v3).unwrap_err();
    assert_eq!(e.path(), "version");
}

#[test]
fn diff_names_host_env_and_program_pins() {
    let v1 = parse_session(V1).unwrap();
    let v2_text = V1
        .replace(
            "version: 1",
            &format!("version: 2\npredecessor: {}", v1.hash()),
        )
        .replace(
            "measurement: any }",
            &format!("measurement: any, executable: {} }}", "ab".repeat(48)),
        );
    let v2 = parse_session(&format!("{v2_text}    host_env: [TZ]\n")).unwrap();
    check_update(&v1, &v2).unwrap();
    let changes = diff(&v1, &v2);
    assert_eq!(
        changes.last(),
        Some(&Change::ServiceChanged {
            name: "hello".into(),
            fields: vec!["accept", "host_env"]
        }),
        "{changes:?}"
    );
}
