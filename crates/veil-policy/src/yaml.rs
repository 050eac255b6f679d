//! A strict YAML reader: saphyr-parser events into a small tree.
//!
//! Only the JSON-like subset of YAML 1.2 is kept: mappings with scalar keys,
//! sequences and scalars. Anchors, aliases, tags, merge keys (`<<`), complex
//! keys, duplicate keys and multi-document streams are rejected while the
//! events stream by, so an alias bomb never expands. Input size, nesting
//! depth and node count are bounded.
//!
//! Scalars keep whether they were written plain: a plain scalar is resolved
//! with the YAML 1.2 core schema (`true`/`false`, integers, floats, null)
//! and only a quoted or block scalar, or a plain one that resolves to no
//! other type, is a string. Nothing is coerced from one type to another.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::{ErrorKind, Path, PolicyError};

/// Largest accepted document, in bytes.
pub const MAX_INPUT_BYTES: usize = 1 << 20;
/// Deepest accepted nesting of mappings and sequences.
pub const MAX_DEPTH: usize = 32;
/// Most nodes (scalars, mappings, sequences) in one document.
pub const MAX_NODES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub(crate) fn pair(self) -> Option<(usize, usize)> {
        Some((self.line, self.col))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar { text: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub text: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// How a plain scalar resolves in the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plain {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

pub(crate) fn classify_plain(s: &str) -> Plain {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Plain::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Plain::Float,
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    if let Some(h) = s.strip_prefix("0x") {
        if digits(h, 16) {
            return Plain::Int;
        }
    }
    if let Some(o) = s.strip_prefix("0o") {
        if digits(o, 8) {
            return Plain::Int;
        }
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits(unsigned, 10) {
        return Plain::Int;
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mantissa, exp) = match unsigned.find(['e', 'E']) {
        Some(i) => (unsigned.get(..i).unwrap_or(""), unsigned.get(i + 1..)),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac, 10),
        Some((int, frac)) => digits(int, 10) && (frac.is_empty() || digits(frac, 10)),
        None => digits(mantissa, 10),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => digits(e.strip_prefix(['-', '+']).unwrap_or(e), 10),
    };
    if mantissa_ok && exp_ok {
        Plain::Float
    } else {
        Plain::Str
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
    },
    Map {
        entries: Vec<(Key, Node)>,
        pending: Option<Key>,
        pos: Pos,
    },
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

fn path_of(stack: &[Frame]) -> Path {
    let mut p = Path::root();
    for f in stack {
        match f {
            Frame::Seq { items, .. } => p = p.index(items.len()),
            Frame::Map {
                pending: Some(k), ..
            } => p = p.key(&k.text),
            Frame::Map { .. } => {}
        }
    }
    p
}

fn err(kind: ErrorKind, stack: &[Frame], pos: Pos, msg: impl Into<String>) -> PolicyError {
    PolicyError::new(kind, &path_of(stack), pos.pair(), msg)
}

/// Parses one YAML document into a strict tree.
pub(crate) fn parse(text: &str) -> Result<Node, PolicyError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(PolicyError::new(
            ErrorKind::Limit,
            &Path::root(),
            None,
            format!(
                "the document is {} bytes; at most {MAX_INPUT_BYTES} bytes (1 MiB) are accepted",
                text.len()
            ),
        ));
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(x) => x,
            Err(e) => {
                let m = e.marker();
                let (kind, msg) = if e.info().contains("recursion limit") {
                    (
                        ErrorKind::Limit,
                        format!("nesting deeper than {MAX_DEPTH} levels is not accepted"),
                    )
                } else {
                    (ErrorKind::Syntax, format!("not valid YAML: {}", e.info()))
                };
                return Err(PolicyError::new(
                    kind,
                    &path_of(&stack),
                    Some((m.line(), m.col() + 1)),
                    msg,
                ));
            }
        };
        let pos = pos_of(&span);
        let finished: Option<Node> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        ErrorKind::Unsupported,
                        &stack,
                        pos,
                        "only one YAML document is allowed; remove the second `---`",
                    ));
                }
                None
            }
            Event::Alias(_) => {
                return Err(err(
                    ErrorKind::Unsupported,
                    &stack,
                    pos,
                    "YAML aliases (`*name`) are not allowed; write the value out",
                ))
            }
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 {
                    return Err(anchor_err(&stack, pos));
                }
                if let Some(t) = tag {
                    return Err(tag_err(&stack, pos, &t.handle, &t.suffix));
                }
                nodes += 1;
                if nodes > MAX_NODES {
                    return Err(nodes_err(&stack, pos));
                }
                let plain = style == ScalarStyle::Plain;
                if let Some(Frame::Map {
                    entries, pending, ..
                }) = stack.last_mut()
                {
                    if pending.is_none() {
                        if plain && value == "<<" {
                            return Err(err(
                                ErrorKind::Unsupported,
                                &stack,
                                pos,
                                "YAML merge keys (`<<`) are not allowed; write the fields out",
                            ));
                        }
                        if entries.iter().any(|(k, _)| k.text == value) {
                            let key = value.into_owned();
                            let mut p = path_of(&stack);
                            p = p.key(&key);
                            return Err(PolicyError::new(
                                ErrorKind::DuplicateKey,
                                &p,
                                pos.pair(),
                                format!(
                                    "key {key:?} appears more than once in this mapping; keep one"
                                ),
                            ));
                        }
                        *pending = Some(Key {
                            text: value.into_owned(),
                            pos,
                        });
                        continue;
                    }
                }
                Some(Node {
                    value: Value::Scalar {
                        text: value.into_owned(),
                        plain,
                    },
                    pos,
                })
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if anchor != 0 {
                    return Err(anchor_err(&stack, pos));
                }
                if let Some(t) = tag {
                    return Err(tag_err(&stack, pos, &t.handle, &t.suffix));
                }
                if let Some(Frame::Map { pending: None, .. }) = stack.last() {
                    return Err(err(
                        ErrorKind::Unsupported,
                        &stack,
                        pos,
                        "mapping keys must be plain strings, not lists or mappings",
                    ));
                }
                nodes += 1;
                if nodes > MAX_NODES {
                    return Err(nodes_err(&stack, pos));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(err(
                        ErrorKind::Limit,
                        &stack,
                        pos,
                        format!("nesting deeper than {MAX_DEPTH} levels is not accepted"),
                    ));
                }
                let is_seq = matches!(event, Event::SequenceStart(..));
                stack.push(if is_seq {
                    Frame::Seq {
                        items: Vec::new(),
                        pos,
                    }
                } else {
                    Frame::Map {
                        entries: Vec::new(),
                        pending: None,
                        pos,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { items, pos }) => Some(Node {
                    value: Value::Seq(items),
                    pos,
                }),
                Some(Frame::Map { entries, pos, .. }) => Some(Node {
                    value: Value::Map(entries),
                    pos,
                }),
                None => None,
            },
        };
        if let Some(node) = finished {
            match stack.last_mut() {
                Some(Frame::Seq { items, .. }) => items.push(node),
                Some(Frame::Map {
                    entries, pending, ..
                }) => {
                    if let Some(k) = pending.take() {
                        entries.push((k, node));
                    }
                }
                None => root = Some(node),
            }
        }
    }
    root.ok_or_else(|| {
        PolicyError::new(
            ErrorKind::Syntax,
            &Path::root(),
            None,
            "the document is empty; a session needs at least `name`, `version` and `owners`",
        )
    })
}

fn anchor_err(stack: &[Frame], pos: Pos) -> PolicyError {
    err(
        ErrorKind::Unsupported,
        stack,
        pos,
        "YAML anchors (`&name`) are not allowed; write each value out",
    )
}

fn tag_err(stack: &[Frame], pos: Pos, handle: &str, suffix: &str) -> PolicyError {
    err(
        ErrorKind::Unsupported,
        stack,
        pos,
        format!("YAML tags (`{handle}{suffix}`) are not allowed; remove the tag and quote the value if it is a string"),
    )
}

fn nodes_err(stack: &[Frame], pos: Pos) -> PolicyError {
    err(
        ErrorKind::Limit,
        stack,
        pos,
        format!("the document has more than {MAX_NODES} values"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_classification() {
        for s in ["", "~", "null"] {
            assert_eq!(classify_plain(s), Plain::Null, "{s}");
        }
        for s in ["true", "False"] {
            assert_eq!(classify_plain(s), Plain::Bool, "{s}");
        }
        for s in ["0", "-3", "+7", "0x1f", "0o17"] {
            assert_eq!(classify_plain(s), Plain::Int, "{s}");
        }
        for s in ["1.5", "24.0", ".5", "1e3", "-2.5E-3", ".inf", ".nan", "3."] {
            assert_eq!(classify_plain(s), Plain::Float, "{s}");
        }
        for s in [
            "yes", "no", "on", "abc", "3c9a", "0x", "1e", "1.2.3", "e3", ".",
        ] {
            assert_eq!(classify_plain(s), Plain::Str, "{s}");
        }
    }

    #[test]
    fn builds_tree() {
        let n = parse("a: [1, 'x']\nb: {c: d}\n").unwrap();
        let Value::Map(entries) = n.value else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0.text, "a");
    }

    #[test]
    fn rejects_hostile_features() {
        let cases = [
            ("a: &x 1\nb: *x\n", ErrorKind::Unsupported),
            ("a: !!str 1\n", ErrorKind::Unsupported),
            ("a: 1\na: 2\n", ErrorKind::DuplicateKey),
            ("<<: {a: 1}\n", ErrorKind::Unsupported),
            ("? [a]\n: 1\n", ErrorKind::Unsupported),
            ("a: 1\n---\nb: 2\n", ErrorKind::Unsupported),
            ("a: [\n", ErrorKind::Syntax),
            ("", ErrorKind::Syntax),
        ];
        for (text, kind) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.kind(), kind, "{text:?}: {e}");
        }
    }

    #[test]
    fn quoted_merge_key_is_a_plain_string_key() {
        assert!(parse("'<<': 1\n").is_ok());
    }
}
