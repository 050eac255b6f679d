//! Rendering templates with secret values, and template round-trips.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::OWNER;
use proptest::prelude::*;
use veil_policy::{
    parse_session, render, Field, Filter, Part, RenderError, SecretRef, SecretSource, Template,
};
use zeroize::Zeroizing;

struct Map(HashMap<(String, Field), Vec<u8>>);

impl SecretSource for Map {
    fn value(&self, secret: &str, field: Field) -> Option<Zeroizing<Vec<u8>>> {
        self.0
            .get(&(secret.to_owned(), field))
            .map(|v| Zeroizing::new(v.clone()))
    }
}

fn source() -> Map {
    Map(HashMap::from([
        (("pw".into(), Field::Value), b"hunter2-secret".to_vec()),
        (("key".into(), Field::Value), vec![0xff, 0x00, 0x10]),
        (("tls".into(), Field::Cert), b"-----CERT-----\n".to_vec()),
        (("tls".into(), Field::Key), b"-----KEY-----\n".to_vec()),
        (("tls".into(), Field::Ca), b"-----CA-----\n".to_vec()),
    ]))
}

fn session(service_extra: &str) -> veil_policy::Session {
    parse_session(&format!(
        "name: t/s\nversion: 1\nowners: [{OWNER}]\nsecrets:\n  - {{ name: pw, kind: password }}\n  - {{ name: key, kind: aes-256 }}\n  - {{ name: tls, kind: x509 }}\n  - {{ name: up, kind: supplied }}\nservices:\n  - name: svc\n    accept: [{{ tee: sim, measurement: any }}]\n{service_extra}\n"
    ))
    .unwrap()
}

#[test]
fn renders_argv_env_and_files() {
    let s = session(
        "    command: [/bin/app, \"--pw={{ pw }}\", \"{{ key | hex }}\"]\n    env: { B64: \"{{ key | base64 }}\", PLAIN: x }\n    files:\n      /etc/tls.pem: \"{{ tls.cert }}{{ tls.ca }}\"\n      /etc/raw.key: { content: \"{{ key }}\", mode: \"0400\" }",
    );
    let r = render(&s.services()[0], &source()).unwrap();
    let argv: Vec<&str> = r.argv.iter().map(|a| a.as_str()).collect();
    assert_eq!(argv, ["/bin/app", "--pw=hunter2-secret", "ff0010"]);
    assert_eq!(r.env[0].0, "B64");
    assert_eq!(r.env[0].1.as_str(), "/wAQ");
    assert_eq!(r.env[1].1.as_str(), "x");
    assert_eq!(r.files[0].path, "/etc/raw.key");
    assert_eq!(r.files[0].mode, 0o400);
    assert_eq!(r.files[0].content.as_slice(), &[0xff, 0x00, 0x10]);
    assert_eq!(
        r.files[1].content.as_slice(),
        b"-----CERT-----\n-----CA-----\n"
    );
    // Debug never shows values.
    let dbg = format!("{r:?}");
    assert!(
        !dbg.contains("hunter2") && !dbg.contains("CERT") && !dbg.contains("ff0010"),
        "{dbg}"
    );
    assert!(dbg.contains("B64") && dbg.contains("/etc/tls.pem"), "{dbg}");
}

#[test]
fn binary_in_text_needs_a_filter() {
    let s = session("    command: [/bin/app]\n    env: { K: \"{{ key }}\" }");
    let e = render(&s.services()[0], &source()).unwrap_err();
    assert!(matches!(e, RenderError::NotUtf8 { .. }));
    assert!(
        e.to_string().contains("env.K") && e.to_string().contains("| base64"),
        "{e}"
    );
}

#[test]
fn nul_bytes_are_refused_in_argv() {
    let mut src = source();
    src.0.insert(("pw".into(), Field::Value), b"a\0b".to_vec());
    let s = session("    command: [/bin/app, \"{{ pw }}\"]");
    let e = render(&s.services()[0], &src).unwrap_err();
    assert!(matches!(e, RenderError::ContainsNul { .. }), "{e}");
    assert!(e.to_string().contains("command[1]"));
}

#[test]
fn missing_values_name_the_reference_not_the_value() {
    let s = session("    command: [/bin/app]\n    env: { T: \"{{ up }}\" }");
    let e = render(&s.services()[0], &source()).unwrap_err();
    assert_eq!(
        e,
        RenderError::Missing {
            location: "env.T".into(),
            reference: "{{ up }}".into()
        }
    );
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        "[ -~\\n{}]{0,12}".prop_map(Part::Text),
        (
            "[A-Za-z_][A-Za-z0-9_]{0,8}",
            prop::sample::select(vec![Field::Value, Field::Cert, Field::Key, Field::Ca]),
            prop::option::of(prop::sample::select(vec![Filter::Base64, Filter::Hex])),
        )
            .prop_map(|(secret, field, filter)| Part::Ref(SecretRef {
                secret,
                field,
                filter
            })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn templates_round_trip_through_their_text(parts in prop::collection::vec(part(), 0..6)) {
        let t = Template::from_parts(parts);
        let text = t.to_string();
        let back = Template::parse(&text).unwrap();
        prop_assert_eq!(&back, &t, "text: {:?}", text);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn literal_text_without_braces_is_itself(s in "[^{}]{0,40}") {
        let t = Template::parse(&s).unwrap();
        prop_assert_eq!(t.literal(), Some(s));
    }

    #[test]
    fn template_parser_never_panics(s in "[{}a-z. |'\\-_0-9]{0,40}") {
        if let Ok(t) = Template::parse(&s) {
            prop_assert_eq!(Template::parse(&t.to_string()).unwrap(), t);
        }
    }
}
