//! Example policies: the valid ones parse to what they say; each invalid one
//! is rejected at the right path with an actionable message.
#![allow(clippy::unwrap_used)]

mod common;

use common::OWNER;
use veil_policy::{
    parse_session, ClientAuth, Export, Field, Issuer, MeasurementRule, NetworkRule, SecretKind,
    VolumeMode,
};

const FULL: &str = include_str!("examples/full.yaml");
const MINIMAL: &str = include_str!("examples/minimal.yaml");

#[test]
fn full_example_parses() {
    let s = parse_session(FULL).unwrap();
    assert_eq!(s.name().to_string(), "shop/db");
    assert_eq!(s.version(), 1);
    assert_eq!(s.owners().len(), 2);
    assert_eq!(s.approvals(), 2);
    assert_eq!(s.secrets().len(), 11);
    assert!(matches!(
        s.secret("db_password").unwrap().kind,
        SecretKind::Password { length: 24, .. }
    ));
    match &s.secret("replica_tls").unwrap().kind {
        SecretKind::X509 {
            issuer,
            validity_days,
            ..
        } => {
            assert_eq!(issuer, &Issuer::Secret("internal_ca".into()));
            assert_eq!(*validity_days, 90);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.secret("report_key").unwrap().export,
        vec![
            Export::Session("shop/reports".parse().unwrap()),
            Export::Owner
        ]
    );
    let db = s.service("mysqld").unwrap();
    assert_eq!(db.accept.len(), 5);
    assert_eq!(db.accept[2].measurement, MeasurementRule::Any);
    assert_eq!(db.accept[3].registers.len(), 1);
    assert!(db.accept[3].registers.contains_key("pcr1"));
    assert!(db.accept[4].debug);
    assert!(!db.accept[0].debug);
    assert_eq!(db.command.len(), 3);
    assert_eq!(db.env["LITERAL"].literal().as_deref(), Some("a {{ b }}"));
    assert_eq!(db.files["/run/veil/tls.key"].mode, 0o400);
    assert_eq!(db.files["/run/veil/tls.crt"].mode, 0o600);
    let refs: Vec<_> = db.files["/run/veil/tls.crt"]
        .content
        .refs()
        .map(|r| r.field)
        .collect();
    assert_eq!(refs, vec![Field::Cert, Field::Ca]);
    assert_eq!(db.volumes[0].mode, VolumeMode::Encrypted);
    assert!(matches!(
        &db.network[1],
        NetworkRule::Inbound { client_auth: ClientAuth::Peer(p), .. } if p.to_string() == "shop/replicas"
    ));
    assert!(matches!(&db.network[2], NetworkRule::Outbound { .. }));
    assert!(!db.host_args);
    assert!(s.service("backup").unwrap().host_args);
    // Additions to v1.
    assert!(db.accept[0]
        .executable
        .is_some_and(|d| d.to_string().starts_with("9f2c6d1e")));
    assert!(db.accept[1..].iter().all(|r| r.executable.is_none()));
    assert!(db.accept.iter().all(|r| r.interpreter.is_none()));
    assert_eq!(
        db.host_env.iter().map(String::as_str).collect::<Vec<_>>(),
        ["LANG", "TZ"]
    );
    assert!(s.service("backup").unwrap().host_env.is_empty());
}

#[test]
fn minimal_example_defaults() {
    let s = parse_session(MINIMAL).unwrap();
    assert_eq!(s.approvals(), 1);
    assert!(s.secrets().is_empty());
    assert_eq!(s.predecessor(), None);
    let svc = &s.services()[0];
    assert!(!svc.host_args && svc.env.is_empty() && svc.files.is_empty());
}

#[test]
fn hash_ignores_layout_comments_order_and_quoting() {
    let a = parse_session(MINIMAL).unwrap();
    let b = parse_session(
        "# same session, other layout\nversion: 1\nname: 'dev/hello'\nowners:\n  - \"0000000000000000000000000000000000000000000000000000000000000001\"\nservices:\n- command: ['/bin/echo', \"hello\"]\n  accept:\n  - measurement: any\n    tee: sim\n  name: hello\n",
    )
    .unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.canonical_json(), b.canonical_json());
    let c = parse_session(&MINIMAL.replace("hello]", "hello!]")).unwrap();
    assert_ne!(a.hash(), c.hash());
    // The hash is pinned: changing the canonical encoding is a breaking change.
    assert_eq!(
        a.canonical_json(),
        r#"{"approvals":1,"name":"dev/hello","owners":["0000000000000000000000000000000000000000000000000000000000000001"],"predecessor":null,"rotate":[],"secrets":[],"services":[{"accept":[{"debug":false,"measurement":"any","registers":{},"tcb_status":[],"tee":"sim"}],"command":["/bin/echo","hello"],"env":{},"files":{},"host_args":false,"name":"hello","network":[],"volumes":[]}],"version":1}"#
    );
}

#[test]
fn full_example_hash_is_stable_across_parses() {
    let a = parse_session(FULL).unwrap();
    let b = parse_session(FULL).unwrap();
    assert_eq!(a.hash(), b.hash());
    let h = a.hash().to_string();
    assert_eq!(h.parse::<veil_policy::SessionHash>().unwrap(), a.hash());
}

fn doc(secrets: &str, services: &str) -> String {
    format!(
        "name: t/s\nversion: 1\nowners: [{OWNER}]\nsecrets:\n{secrets}\nservices:\n{services}\n"
    )
}

const SVC: &str =
    "  - name: svc\n    accept: [{ tee: sim, measurement: any }]\n    command: [/bin/app]";
const M48: &str = "3c9a5f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100ffeeddccbbaa9988776655443322";

/// (document, expected path, expected code, substring of the message)
fn invalid_cases() -> Vec<(String, &'static str, &'static str, &'static str)> {
    let top = |body: &str| format!("{body}\n");
    let svc = |extra: &str| {
        doc("  - { name: pw, kind: password }\n  - { name: tls, kind: x509 }\n  - { name: k, kind: aes-256 }\n  - { name: bin, kind: bytes, size: 8 }", &format!("{SVC}\n{extra}"))
    };
    let rule = |r: &str| {
        format!("name: t/s\nversion: 1\nowners: [{OWNER}]\nservices:\n  - name: svc\n    command: [/bin/app]\n    accept:\n      - {r}\n")
    };
    let secret = |s: &str| doc(&format!("  - {s}"), SVC);
    vec![
        // Top level.
        (top(&format!("version: 1\nowners: [{OWNER}]")), "", "missing_field", "needs the field `name`"),
        (top(&format!("name: shop\nversion: 1\nowners: [{OWNER}]")), "name", "invalid_value", "namespace/name"),
        (top(&format!("name: Shop/DB\nversion: 1\nowners: [{OWNER}]")), "name", "invalid_value", "namespace/name"),
        (top(&format!("name: a/b\nversion: \"3\"\nowners: [{OWNER}]")), "version", "wrong_type", "remove the quotes"),
        (top(&format!("name: a/b\nversion: 0\nowners: [{OWNER}]")), "version", "invalid_value", "out of range"),
        (top(&format!("name: a/b\nversion: 1.0\nowners: [{OWNER}]")), "version", "wrong_type", "found the number 1.0"),
        (top(&format!("name: a/b\nversion: 2\nowners: [{OWNER}]")), "version", "missing_field", "needs `predecessor`"),
        (top(&format!("name: a/b\nversion: 1\npredecessor: {OWNER}\nowners: [{OWNER}]")), "version", "invalid_value", "no predecessor"),
        (top(&format!("name: a/b\nversion: 2\npredecessor: abc\nowners: [{OWNER}]")), "predecessor", "invalid_value", "64 lower-case hex"),
        (top("name: a/b\nversion: 1\nowners: []"), "owners", "invalid_value", "at least one owner"),
        (top("name: a/b\nversion: 1\nowners: [ABCD]"), "owners[0]", "invalid_value", "fingerprint"),
        (top(&format!("name: a/b\nversion: 1\nowners: [{}]", OWNER.to_uppercase().replace('0', "A"))), "owners[0]", "invalid_value", "lower-case"),
        (top(&format!("name: a/b\nversion: 1\nowners: [{OWNER}, {OWNER}]")), "owners[1]", "invalid_value", "listed twice"),
        (top(&format!("name: a/b\nversion: 1\nowners: [{OWNER}]\napprovals: 2")), "approvals", "invalid_value", "between 1 and the number of owners (1)"),
        (top(&format!("name: a/b\nversion: 1\nowners: [{OWNER}]\napprovals: 0")), "approvals", "invalid_value", "between 1"),
        (top(&format!("name: a/b\nversion: 1\nowners: [{OWNER}]\nextra: 1")), "extra", "unknown_field", "allowed fields: approvals, name"),
        (top(&format!("name: a/b\nversion: 1\nowners: [{OWNER}]\nrotate: [x]")), "rotate", "invalid_value", "only makes sense in an update"),
        (top("- a\n- b"), "", "wrong_type", "expected a session (a mapping)"),
        // Secrets.
        (secret("{ name: 1pw, kind: password }"), "secrets[0].name", "invalid_value", "not a valid secret name"),
        (secret("{ name: pw, kind: pasword }"), "secrets[0].kind", "invalid_value", "unknown secret kind \"pasword\""),
        (secret("{ name: pw, kind: password, length: 24.0 }"), "secrets[0].length", "wrong_type", "found the number 24.0"),
        (secret("{ name: pw, kind: password, length: \"24\" }"), "secrets[0].length", "wrong_type", "remove the quotes"),
        (secret("{ name: pw, kind: password, length: 4 }"), "secrets[0].length", "invalid_value", "expected 8 to 1024"),
        (secret("{ name: pw, kind: password, alphabet: emoji }"), "secrets[0].alphabet", "invalid_value", "unknown alphabet"),
        (secret("{ name: pw, kind: aes-256, length: 3 }"), "secrets[0].length", "unknown_field", "a secret of kind aes-256"),
        (secret("{ name: b, kind: bytes }"), "secrets[0]", "missing_field", "needs the field `size`"),
        (secret("{ name: c, kind: x509, issuer: nope }"), "secrets[0].issuer", "unknown_reference", "neither `session-ca` nor an x509-ca"),
        (doc("  - { name: k, kind: aes-256 }\n  - { name: c, kind: x509, issuer: k }", SVC), "secrets[1].issuer", "unknown_reference", "is a aes-256 secret"),
        (doc("  - { name: a, kind: x509-ca, issuer: b }\n  - { name: b, kind: x509-ca, issuer: a }", SVC), "secrets[0].issuer", "unknown_reference", "loops back"),
        (secret("{ name: c, kind: x509, dns: [Bad_Name] }"), "secrets[0].dns[0]", "invalid_value", "not a DNS name"),
        (secret("{ name: c, kind: x509, ips: [300.1.1.1] }"), "secrets[0].ips[0]", "invalid_value", "not an IPv4 or IPv6"),
        (secret("{ name: c, kind: x509, validity_days: 0 }"), "secrets[0].validity_days", "invalid_value", "out of range"),
        (secret("{ name: i, kind: import, session: a/b }"), "secrets[0]", "missing_field", "`secret`"),
        (secret("{ name: i, kind: import, session: a/b, secret: x, export: [{ owner: true }] }"), "secrets[0].export", "invalid_value", "cannot be exported again"),
        (secret("{ name: s, kind: supplied, export: [{ owner: true }] }"), "secrets[0].export[0]", "invalid_value", "never readable back"),
        (secret("{ name: s, kind: aes-256, export: [{ owner: false }] }"), "secrets[0].export[0].owner", "invalid_value", "exports nothing"),
        (secret("{ name: s, kind: aes-256, export: [{ everyone: true }] }"), "secrets[0].export[0]", "missing_field", "owner: true"),
        (doc("  - { name: a, kind: aes-256 }\n  - { name: a, kind: ed25519 }", SVC), "secrets[1].name", "invalid_value", "used twice"),
        // Services.
        (doc("  - { name: a, kind: aes-256 }", &format!("{SVC}\n{SVC}")), "services[1].name", "invalid_value", "used twice"),
        (doc("  - { name: a, kind: aes-256 }", "  - name: Svc\n    accept: [{ tee: sim, measurement: any }]\n    command: [/bin/app]"), "services[0].name", "invalid_value", "not a valid service name"),
        (doc("  - { name: a, kind: aes-256 }", "  - name: svc\n    accept: []\n    command: [/bin/app]"), "services[0].accept", "invalid_value", "nothing is accepted by default"),
        (doc("  - { name: a, kind: aes-256 }", "  - name: svc\n    accept: [{ tee: sim, measurement: any }]\n    command: []"), "services[0].command", "invalid_value", "at least the program"),
        (doc("  - { name: a, kind: aes-256 }", "  - name: svc\n    accept: [{ tee: sim, measurement: any }]"), "services[0]", "missing_field", "`command`"),
        (svc("    env: { X: \"{{ nope }}\" }"), "services[0].env.X", "unknown_reference", "no secret named \"nope\""),
        (svc("    env: { X: \"{{ tls }}\" }"), "services[0].env.X", "unknown_reference", "{{ tls.cert }}"),
        (svc("    env: { X: \"{{ pw.cert }}\" }"), "services[0].env.X", "unknown_reference", "has no parts"),
        (svc("    env: { X: \"{{ pw | gzip }}\" }"), "services[0].env.X", "invalid_value", "unknown filter"),
        (svc("    env: { X: \"{{ pw\" }"), "services[0].env.X", "invalid_value", "never closed"),
        (svc("    env: { 1X: a }"), "services[0].env.1X", "invalid_value", "environment variable name"),
        (svc("    env: { PORT: 3306 }"), "services[0].env.PORT", "wrong_type", "put it in quotes"),
        (svc("    env: { ON: true }"), "services[0].env.ON", "wrong_type", "found the boolean true"),
        (svc("    env: { E: }"), "services[0].env.E", "wrong_type", "null"),
        (svc("    command: [x]"), "services[0].command", "duplicate_key", "more than once"),
        (svc("    files: { etc/x: a }"), "services[0].files[\"etc/x\"]", "invalid_value", "absolute, normalized"),
        (svc("    files: { /etc/../x: a }"), "services[0].files[\"/etc/../x\"]", "invalid_value", "no `.`, `..`"),
        (svc("    files: { /etc/x: { content: a, mode: 0600 } }"), "services[0].files[\"/etc/x\"].mode", "invalid_value", "quoted octal"),
        (svc("    files: { /etc/x: { content: a, mode: \"0999\" } }"), "services[0].files[\"/etc/x\"].mode", "invalid_value", "not a file mode"),
        (svc("    files: { /etc/x: { text: a } }"), "services[0].files[\"/etc/x\"]", "missing_field", "`content`"),
        (svc("    host_args: yes"), "services[0].host_args", "wrong_type", "boolean"),
        (svc("    host_args: \"false\""), "services[0].host_args", "wrong_type", "remove the quotes"),
        (svc("    host_args: True"), "services[0].host_args", "wrong_type", "only lower-case"),
        (svc("    volumes: [{ name: d, path: /data, mode: encrypted, key: pw }]"), "services[0].volumes[0].key", "unknown_reference", "needs an aes-256 secret"),
        (svc("    volumes: [{ name: d, path: /data, mode: fast, key: k }]"), "services[0].volumes[0].mode", "invalid_value", "encrypted or integrity"),
        (svc("    volumes: [{ name: d, path: /data, mode: encrypted, key: k }, { name: d, path: /x, mode: encrypted, key: k }]"), "services[0].volumes[1]", "invalid_value", "repeats"),
        (svc("    network: [{ listen: \"0.0.0.0:99999\", to: \"127.0.0.1:1\", tls: tls }]"), "services[0].network[0].listen", "invalid_value", "host:port"),
        (svc("    network: [{ listen: \"0.0.0.0:1\", to: \"127.0.0.1:2\", tls: k }]"), "services[0].network[0].tls", "unknown_reference", "x509"),
        (svc("    network: [{ listen: \"0.0.0.0:1\", to: \"127.0.0.1:2\", tls: tls, client_auth: all }]"), "services[0].network[0].client_auth", "invalid_value", "none, session"),
        (svc("    network: [{ connect: \"127.0.0.1:1\", remote: \"a.b:2\" }]"), "services[0].network[0]", "missing_field", "`peer`"),
        (svc("    network: [{ to: \"127.0.0.1:1\" }]"), "services[0].network[0]", "missing_field", "`listen`"),
        // Accept rules.
        (rule("{ tee: sev, measurement: any }"), "services[0].accept[0].tee", "invalid_value", "unknown TEE \"sev\""),
        (rule("{ tee: snp, measurement: any }"), "services[0].accept[0].measurement", "invalid_value", "only allowed for tee sim"),
        (rule("{ tee: sgx, measurement: any, signer: 83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e }"), "services[0].accept[0].measurement", "invalid_value", "signer and product"),
        (rule("{ tee: snp, measurement: abcd }"), "services[0].accept[0].measurement", "invalid_value", "expected 48 bytes (96 hex digits), found 2 bytes"),
        (rule(&format!("{{ tee: sgx, measurement: {M48} }}")), "services[0].accept[0].measurement", "invalid_value", "expected 32 bytes"),
        (rule(&format!("{{ tee: snp, measurement: {} }}", M48.to_uppercase())), "services[0].accept[0].measurement", "invalid_value", "lower-case hex"),
        (rule(&format!("{{ tee: snp, measurement: [{M48}, zz] }}")), "services[0].accept[0].measurement[1]", "invalid_value", "hex"),
        (rule("{ tee: snp, measurement: [] }"), "services[0].accept[0].measurement", "invalid_value", "empty"),
        (rule("{ tee: snp }"), "services[0].accept[0]", "missing_field", "`measurement`"),
        (rule(&format!("{{ tee: tdx, measurement: {M48}, product: 1 }}")), "services[0].accept[0].product", "unknown_field", "does not apply to tee tdx"),
        (rule(&format!("{{ tee: snp, measurement: {M48}, tcb_status: [UpToDate] }}")), "services[0].accept[0].tcb_status", "unknown_field", "only to sgx, tdx"),
        (rule(&format!("{{ tee: tdx, measurement: {M48}, tcb_status: [Revoked] }}")), "services[0].accept[0].tcb_status[0]", "invalid_value", "never accepted"),
        (rule(&format!("{{ tee: tdx, measurement: {M48}, tcb_status: [uptodate] }}")), "services[0].accept[0].tcb_status[0]", "invalid_value", "unknown TCB status"),
        (rule(&format!("{{ tee: snp, measurement: {M48}, min_tcb: {{ bootloader: 1, tee: 0, snp: 300, microcode: 1 }} }}")), "services[0].accept[0].min_tcb.snp", "invalid_value", "0 to 255"),
        (rule(&format!("{{ tee: snp, measurement: {M48}, min_tcb: {{ bootloader: 1, tee: 0, snp: 3 }} }}")), "services[0].accept[0].min_tcb", "missing_field", "`microcode`"),
        (rule(&format!("{{ tee: snp, measurement: {M48}, debug: \"false\" }}")), "services[0].accept[0].debug", "wrong_type", "remove the quotes"),
        (rule(&format!("{{ tee: snp, measurement: {M48}, debug: no }}")), "services[0].accept[0].debug", "wrong_type", "boolean"),
        (rule(&format!("{{ tee: snp, measurement: {M48}, sim: true }}")), "services[0].accept[0].sim", "unknown_field", "allowed fields"),
        (rule(&format!("{{ tee: tdx, measurement: {M48}, rtmrs: {{ rtmr4: {M48} }} }}")), "services[0].accept[0].rtmrs.rtmr4", "invalid_value", "rtmr0 to rtmr3"),
        (rule(&format!("{{ tee: nitro, measurement: {M48}, pcrs: {{ 0: {M48} }} }}")), "services[0].accept[0].pcrs.0", "invalid_value", "PCR0 is `measurement`"),
        (rule(&format!("{{ tee: sim, measurement: {M48}, signer: {M48} }}")), "services[0].accept[0].signer", "unknown_field", "does not apply to tee sim"),
        // Accept rules: runtime claims (v1 additions).
        (rule("{ tee: sim, measurement: any, executable: abcd }"), "services[0].accept[0].executable", "invalid_value", "it has 4 hex digits; expected 96 lower-case hex digits"),
        (rule(&format!("{{ tee: sim, measurement: any, executable: {} }}", &M48[..64])), "services[0].accept[0].executable", "invalid_value", "it has 64 hex digits"),
        (rule(&format!("{{ tee: sim, measurement: any, executable: {}00 }}", M48)), "services[0].accept[0].executable", "invalid_value", "it has 98 hex digits"),
        (rule(&format!("{{ tee: sim, measurement: any, executable: {} }}", M48.to_uppercase())), "services[0].accept[0].executable", "invalid_value", "write it in lower case"),
        (rule(&format!("{{ tee: sim, measurement: any, executable: sha384:{} }}", M48)), "services[0].accept[0].executable", "invalid_value", "it is not hex"),
        (rule("{ tee: sim, measurement: any, executable: [] }"), "services[0].accept[0].executable", "wrong_type", "expected a string, found a list"),
        (rule("{ tee: sim, measurement: any, executable: true }"), "services[0].accept[0].executable", "wrong_type", "found the boolean true"),
        (rule("{ tee: sim, measurement: any, executable: }"), "services[0].accept[0].executable", "wrong_type", "null"),
        (rule(&format!("{{ tee: snp, measurement: {M48}, interpreter: {} }}", &M48[..95])), "services[0].accept[0].interpreter", "invalid_value", "it has 95 hex digits"),
        (rule(&format!("{{ tee: snp, measurement: {M48}, interpreter: {M48}, interpeter: {M48} }}")), "services[0].accept[0].interpeter", "unknown_field", "executable, interpreter"),
        // host_env (v1 addition).
        (svc("    host_env: PATH"), "services[0].host_env", "wrong_type", "expected a list"),
        (svc("    host_env: [1X]"), "services[0].host_env[0]", "invalid_value", "not a valid environment variable name"),
        (svc("    host_env: [A-B]"), "services[0].host_env[0]", "invalid_value", "not a valid environment variable name"),
        (svc("    host_env: [\"\"]"), "services[0].host_env[0]", "invalid_value", "not a valid environment variable name"),
        (svc("    host_env: [123]"), "services[0].host_env[0]", "wrong_type", "put it in quotes"),
        (svc("    host_env: [{ name: X }]"), "services[0].host_env[0]", "wrong_type", "expected a string"),
        (svc("    host_env: [TZ, LANG, TZ]"), "services[0].host_env[2]", "invalid_value", "\"TZ\" is listed twice"),
        (svc("    env: { TZ: UTC }\n    host_env: [LANG, TZ]"), "services[0].host_env[1]", "invalid_value", "\"TZ\" is both in host_env and set by the policy at services[0].env.TZ"),
    ]
}

#[test]
fn invalid_examples_are_rejected_with_path_and_reason() {
    let mut failures = Vec::new();
    for (yaml, path, code, needle) in invalid_cases() {
        match parse_session(&yaml) {
            Ok(_) => failures.push(format!("accepted:\n{yaml}")),
            Err(e) => {
                if e.path() != path || e.code() != code || !e.message().contains(needle) {
                    failures.push(format!(
                        "want {path} / {code} / {needle:?}\n got {} / {} / {}\n{yaml}",
                        e.path(),
                        e.code(),
                        e.message()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn errors_carry_line_and_column() {
    let e = parse_session(&format!("name: a/b\nversion: 1\nowners: [{OWNER}]\nservices:\n  - name: svc\n    accept: [{{ tee: snp, measurement: abcd }}]\n    command: [/x]\n")).unwrap_err();
    assert_eq!(e.position().map(|p| p.0), Some(6));
    let shown = e.to_string();
    assert!(
        shown.starts_with("services[0].accept[0].measurement (line 6, column "),
        "{shown}"
    );
}

#[test]
fn runtime_claim_pins_and_host_env_parse() {
    let exe = "ab".repeat(48);
    // A digest of digits only is a plain YAML integer; it is taken as text.
    let digits = "01".repeat(48);
    let yaml = format!(
        "name: t/s\nversion: 1\nowners: [{OWNER}]\nservices:\n  - name: svc\n    accept:\n      - {{ tee: sim, measurement: any, executable: {exe}, interpreter: {digits} }}\n      - {{ tee: snp, measurement: {M48}, executable: \"{exe}\" }}\n    command: [/usr/bin/python3, /app/main.py]\n    env: {{ MODE: prod }}\n    host_env: [TZ, LANG, _X1]\n"
    );
    let s = parse_session(&yaml).unwrap();
    let svc = s.service("svc").unwrap();
    let r0 = &svc.accept[0];
    assert_eq!(r0.executable.unwrap().to_string(), exe);
    assert_eq!(r0.interpreter.unwrap().to_string(), digits);
    assert_eq!(
        r0.pinned_runtime_claims()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        [
            veil_policy::CLAIM_EXECUTABLE,
            veil_policy::CLAIM_INTERPRETER
        ]
    );
    assert_eq!(svc.accept[1].executable, r0.executable);
    assert_eq!(svc.accept[1].interpreter, None);
    // host_env is a set: sorted, whatever the document order.
    assert_eq!(
        svc.host_env.iter().map(String::as_str).collect::<Vec<_>>(),
        ["LANG", "TZ", "_X1"]
    );
    // Both are part of the canonical JSON, hence of the hash.
    let json = s.canonical_json();
    assert!(
        json.contains(&format!(
            r#""executable":"{exe}","interpreter":"{digits}","measurement":"any""#
        )),
        "{json}"
    );
    assert!(json.contains(r#""host_env":["LANG","TZ","_X1"]"#), "{json}");
    let reordered = parse_session(&yaml.replace("[TZ, LANG, _X1]", "[_X1, LANG, TZ]")).unwrap();
    assert_eq!(reordered.hash(), s.hash());
    let fewer = parse_session(&yaml.replace("[TZ, LANG, _X1]", "[TZ, LANG]")).unwrap();
    assert_ne!(fewer.hash(), s.hash());
    let other_exe = parse_session(&yaml.replacen(&exe, &"cd".repeat(48), 1)).unwrap();
    assert_ne!(other_exe.hash(), s.hash());
}

#[test]
fn absent_additions_leave_the_canonical_json_unchanged() {
    // `host_env: []` is the default and, like absent pins, is not encoded:
    // sessions written before these fields existed keep their hash.
    let a = parse_session(MINIMAL).unwrap();
    let b = parse_session(&format!("{MINIMAL}    host_env: []\n")).unwrap();
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert!(!a.canonical_json().contains("host_env"));
    assert!(!a.canonical_json().contains("executable"));
}

/// An inbound rule without `tls` presents the launcher's attested
/// certificate, and `client_auth` defaults to this session.
#[test]
fn inbound_rules_default_to_the_attested_certificate_and_this_session() {
    let yaml = format!(
        "name: t/s\nversion: 1\nowners: [{OWNER}]\nservices:\n  - name: svc\n    accept: [{{ tee: sim, measurement: any }}]\n    command: [/bin/app]\n    network:\n      - {{ listen: \"0.0.0.0:11211\", to: \"127.0.0.1:11212\" }}\n      - {{ connect: \"127.0.0.1:1\", remote: \"db.internal:2\", peer: {{ session: t/db }} }}\n"
    );
    let s = parse_session(&yaml).unwrap();
    let svc = s.service("svc").unwrap();
    assert!(matches!(
        &svc.network[0],
        NetworkRule::Inbound { tls: None, client_auth: ClientAuth::Session, listen, .. } if listen == "0.0.0.0:11211"
    ));
    assert!(matches!(
        &svc.network[1],
        NetworkRule::Outbound { tls: None, peer, .. } if peer.session.to_string() == "t/db" && peer.service.is_none()
    ));
}

#[test]
fn alpn_and_server_name_parse_and_bad_ones_are_named() {
    let rule = |r: &str| {
        format!(
            "name: t/s\nversion: 1\nowners: [{OWNER}]\nservices:\n  - name: svc\n    accept: [{{ tee: sim, measurement: any }}]\n    command: [/bin/app]\n    network:\n      - {r}\n"
        )
    };
    let s = parse_session(&rule(
        "{ connect: \"127.0.0.1:1\", remote: \"10.0.0.1:2\", peer: { session: t/db }, alpn: [h2, http/1.1], server_name: db.internal }",
    ))
    .unwrap();
    assert!(matches!(
        &s.service("svc").unwrap().network[0],
        NetworkRule::Outbound { alpn, server_name: Some(n), .. } if alpn == &["h2", "http/1.1"] && n == "db.internal"
    ));
    for (r, path, why) in [
        ("{ listen: \"0.0.0.0:1\", to: \"127.0.0.1:2\", alpn: [\"\"] }", "services[0].network[0].alpn[0]", "1 to 255 printable"),
        ("{ listen: \"0.0.0.0:1\", to: \"127.0.0.1:2\", alpn: [h2, h2] }", "services[0].network[0].alpn[1]", "listed twice"),
        ("{ connect: \"127.0.0.1:1\", remote: \"a.b:2\", peer: { session: t/db }, server_name: \"*.db\" }", "services[0].network[0].server_name", "not a DNS name"),
        ("{ listen: \"0.0.0.0:1\", to: \"127.0.0.1:2\", server_name: db }", "services[0].network[0].server_name", "allowed fields"),
    ] {
        let e = parse_session(&rule(r)).unwrap_err();
        assert_eq!(e.path().to_string(), path, "{r}: {e}");
        assert!(e.to_string().contains(why), "{r}: {e}");
    }
}
