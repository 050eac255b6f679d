//! Typed, path-aware access to the strict YAML tree. Every accessor refuses
//! a value of another type instead of converting it.

use crate::error::{ErrorKind, Path, PolicyError};
use crate::yaml::{classify_plain, Key, Node, Plain, Value};

/// A node together with its path, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub node: &'a Node,
    pub path: &'a Path,
}

pub(crate) fn error(
    node: &Node,
    path: &Path,
    kind: ErrorKind,
    msg: impl Into<String>,
) -> PolicyError {
    PolicyError::new(kind, path, node.pos.pair(), msg)
}

/// Describes what a node is, for "expected X, found Y" messages.
pub(crate) fn describe(node: &Node) -> String {
    match &node.value {
        Value::Seq(_) => "a list".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
        Value::Scalar { text, plain: false } => format!("the string {}", shorten(text)),
        Value::Scalar { text, plain: true } => match classify_plain(text) {
            Plain::Null => "nothing (null)".to_owned(),
            Plain::Bool => format!("the boolean {text}"),
            Plain::Int => format!("the integer {text}"),
            Plain::Float => format!("the number {text}"),
            Plain::Str => format!("the string {}", shorten(text)),
        },
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    format!("{out:?}")
}

impl<'a> At<'a> {
    pub(crate) fn new(node: &'a Node, path: &'a Path) -> Self {
        At { node, path }
    }

    pub(crate) fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> PolicyError {
        error(self.node, self.path, kind, msg)
    }

    fn type_err(&self, expected: &str, hint: &str) -> PolicyError {
        let mut m = format!("expected {expected}, found {}", describe(self.node));
        if !hint.is_empty() {
            m.push_str("; ");
            m.push_str(hint);
        }
        self.err(ErrorKind::Type, m)
    }

    /// A string: quoted, a block scalar, or a plain scalar that the core
    /// schema does not read as null, a boolean or a number.
    pub(crate) fn str(&self) -> Result<&'a str, PolicyError> {
        match &self.node.value {
            Value::Scalar { text, plain: false } => Ok(text),
            Value::Scalar { text, plain: true } if classify_plain(text) == Plain::Str => Ok(text),
            Value::Scalar { plain: true, .. } => {
                Err(self.type_err("a string", "put it in quotes if you mean the text"))
            }
            _ => Err(self.type_err("a string", "")),
        }
    }

    /// The text of a hex field (digest, fingerprint, hash). Besides strings,
    /// a plain scalar that the core schema reads as a number is taken as its
    /// text: a digest can consist of digits only (`0123...`) and is never
    /// used as a number, so nothing is converted. Null and booleans are
    /// still refused.
    pub(crate) fn hex_text(&self) -> Result<&'a str, PolicyError> {
        match &self.node.value {
            Value::Scalar { text, plain: true }
                if matches!(classify_plain(text), Plain::Int | Plain::Float) =>
            {
                Ok(text)
            }
            _ => self.str(),
        }
    }

    /// A non-negative decimal integer written plain (`24`, not `"24"` or `24.0`).
    pub(crate) fn u64(&self) -> Result<u64, PolicyError> {
        if let Value::Scalar { text, plain: true } = &self.node.value {
            if classify_plain(text) == Plain::Int {
                let digits = text.strip_prefix('+').unwrap_or(text);
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    return digits
                        .parse::<u64>()
                        .map_err(|_| self.err(ErrorKind::Value, format!("{text} is too large")));
                }
                return Err(self.type_err(
                    "a non-negative decimal integer",
                    "write it in decimal without a sign",
                ));
            }
        }
        let hint = match &self.node.value {
            Value::Scalar { plain: false, .. } => "remove the quotes",
            _ => "",
        };
        Err(self.type_err("a non-negative integer", hint))
    }

    /// An integer in `min..=max`.
    pub(crate) fn int_in(&self, min: u64, max: u64) -> Result<u64, PolicyError> {
        let v = self.u64()?;
        if v < min || v > max {
            return Err(self.err(
                ErrorKind::Value,
                format!("{v} is out of range; expected {min} to {max}"),
            ));
        }
        Ok(v)
    }

    /// `true` or `false`, written plain and lower-case.
    pub(crate) fn bool(&self) -> Result<bool, PolicyError> {
        match &self.node.value {
            Value::Scalar { text, plain: true } if text == "true" => Ok(true),
            Value::Scalar { text, plain: true } if text == "false" => Ok(false),
            Value::Scalar { plain: false, .. } => {
                Err(self.type_err("a boolean (true or false)", "remove the quotes"))
            }
            _ => Err(self.type_err(
                "a boolean (true or false)",
                "only lower-case true and false are booleans",
            )),
        }
    }

    /// A list; each item comes with its path.
    pub(crate) fn seq(&self) -> Result<Vec<(Path, &'a Node)>, PolicyError> {
        match &self.node.value {
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, n)| (self.path.index(i), n))
                .collect()),
            _ => Err(self.type_err("a list", "")),
        }
    }

    /// A mapping with free-form keys (env, files...).
    pub(crate) fn map(&self) -> Result<&'a [(Key, Node)], PolicyError> {
        match &self.node.value {
            Value::Map(entries) => Ok(entries),
            _ => Err(self.type_err("a mapping", "")),
        }
    }

    /// A mapping read as a struct (see [`Fields`]).
    pub(crate) fn fields(&self, what: &str) -> Result<Fields<'a>, PolicyError> {
        match &self.node.value {
            Value::Map(entries) => Ok(Fields {
                node: self.node,
                path: self.path.clone(),
                what: what.to_owned(),
                entries,
                used: vec![false; entries.len()],
                known: Vec::new(),
            }),
            _ => Err(self.type_err(&format!("{what} (a mapping)"), "")),
        }
    }
}

/// A mapping read field by field; [`Fields::finish`] rejects every key that
/// was not asked for, naming the keys that are allowed.
pub(crate) struct Fields<'a> {
    node: &'a Node,
    pub path: Path,
    what: String,
    entries: &'a [(Key, Node)],
    used: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// The field `name`, if present.
    pub(crate) fn opt(&mut self, name: &'static str) -> Option<(Path, &'a Node)> {
        self.known.push(name);
        let i = self.entries.iter().position(|(k, _)| k.text == name)?;
        if let Some(u) = self.used.get_mut(i) {
            *u = true;
        }
        self.entries.get(i).map(|(_, n)| (self.path.key(name), n))
    }

    /// The field `name`, or a "missing field" error.
    pub(crate) fn req(&mut self, name: &'static str) -> Result<(Path, &'a Node), PolicyError> {
        self.opt(name).ok_or_else(|| {
            error(
                self.node,
                &self.path,
                ErrorKind::MissingField,
                format!("{} needs the field `{name}`", self.what),
            )
        })
    }

    /// The field `name` without marking it as known (for fields that are
    /// rejected when present).
    pub(crate) fn peek(&self, name: &str) -> Option<(Path, &'a Node)> {
        self.entries
            .iter()
            .find(|(k, _)| k.text == name)
            .map(|(_, n)| (self.path.key(name), n))
    }

    /// Changes how the mapping is named in messages.
    pub(crate) fn set_what(&mut self, what: String) {
        self.what = what;
    }

    /// Whether the mapping has the key (does not mark it as read).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.text == name)
    }

    /// Rejects any key not read so far.
    pub(crate) fn finish(self) -> Result<(), PolicyError> {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                let mut known = self.known.clone();
                known.sort_unstable();
                known.dedup();
                return Err(PolicyError::new(
                    ErrorKind::UnknownField,
                    &self.path.key(&key.text),
                    key.pos.pair(),
                    format!(
                        "unknown field `{}` in {}; allowed fields: {}",
                        key.text,
                        self.what,
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
