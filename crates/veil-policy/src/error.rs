//! The error returned when a session document is rejected.

use std::fmt;

/// Where in the document a value sits: `services[0].accept[1].measurement`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Path(Vec<Seg>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Path {
    pub(crate) fn root() -> Self {
        Path(Vec::new())
    }

    pub(crate) fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_owned()));
        Path(v)
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Path(v)
    }

    /// The field `k` of the mapping this path is in: `a.b` -> `a.k`.
    pub(crate) fn sibling(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.pop();
        v.push(Seg::Key(k.to_owned()));
        Path(v)
    }
}

fn plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) if plain_key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// What kind of problem a [`PolicyError`] reports. Each kind has a stable
/// [`code`](ErrorKind::code) for APIs and scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text is not well-formed YAML.
    Syntax,
    /// The input is too large or too deeply nested.
    Limit,
    /// A YAML feature Veil refuses: anchors, aliases, tags, merge keys,
    /// complex keys, several documents.
    Unsupported,
    /// A key appears twice in one mapping.
    DuplicateKey,
    /// A field that v1 does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A value has the wrong YAML type (a number where a string is needed...).
    Type,
    /// A value has the right type but is not allowed.
    Value,
    /// A name refers to something the session does not declare.
    Reference,
    /// An update is not a valid successor of the session it replaces.
    Update,
}

impl ErrorKind {
    /// The stable, machine-readable code of this kind.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "yaml_syntax",
            ErrorKind::Limit => "limit_exceeded",
            ErrorKind::Unsupported => "yaml_feature_not_allowed",
            ErrorKind::DuplicateKey => "duplicate_key",
            ErrorKind::UnknownField => "unknown_field",
            ErrorKind::MissingField => "missing_field",
            ErrorKind::Type => "wrong_type",
            ErrorKind::Value => "invalid_value",
            ErrorKind::Reference => "unknown_reference",
            ErrorKind::Update => "invalid_update",
        }
    }
}

/// A session document was rejected.
///
/// Carries the path of the offending value (`services[0].accept[1].measurement`),
/// its position in the text when known, and a message that says what was
/// expected and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    kind: ErrorKind,
    path: String,
    position: Option<(usize, usize)>,
    message: String,
}

impl PolicyError {
    pub(crate) fn new(
        kind: ErrorKind,
        path: &Path,
        position: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> Self {
        PolicyError {
            kind,
            path: path.to_string(),
            position,
            message: message.into(),
        }
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable code of [`Self::kind`].
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The path of the offending value; empty for the document itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Line and column (both 1-based) in the YAML text, when known.
    pub fn position(&self) -> Option<(usize, usize)> {
        self.position
    }

    /// The human-readable explanation, without path or position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        match self.position {
            Some((l, c)) => write!(f, "{path} (line {l}, column {c}): {}", self.message),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_accessors() {
        let p = Path::root()
            .key("services")
            .index(0)
            .key("accept")
            .index(1)
            .key("measurement");
        assert_eq!(p.to_string(), "services[0].accept[1].measurement");
        let f = Path::root().key("files").key("/etc/x.conf");
        assert_eq!(f.to_string(), "files[\"/etc/x.conf\"]");
        let s = Path::root()
            .key("services")
            .index(0)
            .key("host_env")
            .sibling("env")
            .key("PATH");
        assert_eq!(s.to_string(), "services[0].env.PATH");
    }

    #[test]
    fn display_has_path_position_and_message() {
        let e = PolicyError::new(
            ErrorKind::Value,
            &Path::root().key("version"),
            Some((2, 10)),
            "must be at least 1",
        );
        assert_eq!(
            e.to_string(),
            "version (line 2, column 10): must be at least 1"
        );
        assert_eq!(e.code(), "invalid_value");
    }
}
