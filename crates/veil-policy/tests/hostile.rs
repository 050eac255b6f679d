//! Hostile YAML: every trick is refused quickly with a clear error.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use veil_policy::{parse_session, ErrorKind, MAX_DEPTH, MAX_INPUT_BYTES};

fn rejected(yaml: &str) -> veil_policy::PolicyError {
    parse_session(yaml).unwrap_err()
}

#[test]
fn billion_laughs_is_refused_at_the_first_anchor() {
    let mut doc = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        doc.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    let e = rejected(&doc);
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("anchors"), "{e}");
    assert_eq!(e.path(), "a");
}

#[test]
fn aliases_are_refused() {
    let e = rejected("name: *x\n");
    assert_eq!(e.kind(), ErrorKind::Syntax, "{e}"); // undefined alias: the parser refuses it
    let e = rejected("name: &x a/b\nversion: 1\nowners: [*x]\n");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let e = rejected(&deep);
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert!(e.message().contains(&MAX_DEPTH.to_string()));
    let deep_maps = (0..200)
        .map(|i| format!("{}k:", "  ".repeat(i)))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(rejected(&deep_maps).kind(), ErrorKind::Limit);
    // Unclosed deep nesting too.
    assert_eq!(rejected(&"{a: ".repeat(5_000)).kind(), ErrorKind::Limit);
}

#[test]
fn duplicate_keys_are_refused_with_their_path() {
    let e = rejected("name: a/b\nversion: 1\nname: c/d\n");
    assert_eq!(e.kind(), ErrorKind::DuplicateKey);
    assert_eq!(e.path(), "name");
    assert_eq!(e.position().map(|p| p.0), Some(3));
    let e = rejected("name: a/b\nservices:\n  - {name: x, name: y}\n");
    assert_eq!(e.path(), "services[0].name");
}

#[test]
fn huge_input_is_refused_before_parsing() {
    let big = format!("name: a/b\n# {}\n", "x".repeat(MAX_INPUT_BYTES));
    let e = rejected(&big);
    assert_eq!(e.kind(), ErrorKind::Limit);
    assert!(e.message().contains("1 MiB"));
}

#[test]
fn many_nodes_are_refused() {
    let doc = format!("name: [{}]\n", "1,".repeat(150_000));
    assert_eq!(rejected(&doc).kind(), ErrorKind::Limit);
}

#[test]
fn tags_are_refused() {
    for doc in [
        "version: !!int \"3\"\n",
        "name: !custom a/b\n",
        "owners: !!seq []\n",
        "name: !!binary aGVsbG8=\n",
        "--- !!map\nname: a/b\n",
    ] {
        let e = rejected(doc);
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{doc}: {e}");
        assert!(e.message().contains("tags"), "{e}");
    }
}

#[test]
fn merge_keys_are_refused() {
    let e = rejected("services:\n  - <<: {name: x}\n    command: [/x]\n");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("merge"));
}

#[test]
fn other_hostile_shapes() {
    for (doc, kind) in [
        ("name: a/b\n---\nname: c/d\n", ErrorKind::Unsupported),
        ("? [a, b]\n: c\n", ErrorKind::Unsupported),
        ("? {a: b}\n: c\n", ErrorKind::Unsupported),
        ("name: \"unterminated\n", ErrorKind::Syntax),
        ("", ErrorKind::Syntax),
        ("# only a comment\n", ErrorKind::Syntax),
        ("~\n", ErrorKind::Type),
        ("just a string\n", ErrorKind::Type),
    ] {
        let e = rejected(doc);
        assert_eq!(e.kind(), kind, "{doc:?}: {e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_random_text(s in "\\PC{0,200}") {
        let _ = parse_session(&s);
    }

    #[test]
    fn parser_never_panics_on_yamlish_text(s in "[-:{}\\[\\],&*!|>'\"#?<% \n\ta-z0-9.~@`]{0,300}") {
        let _ = parse_session(&s);
    }

    #[test]
    fn parser_never_panics_on_mutated_policies(pos in 0usize..2000, byte in 0u8..128, del in 0usize..4) {
        let base = include_str!("examples/full.yaml");
        let mut bytes = base.as_bytes().to_vec();
        let at = pos % bytes.len();
        bytes.drain(at..(at + del).min(bytes.len()));
        bytes.insert(at.min(bytes.len()), byte);
        if let Ok(s) = String::from_utf8(bytes) {
            let _ = parse_session(&s);
        }
    }
}
