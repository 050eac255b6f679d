//! Templates: text with `{{ secret }}`, `{{ secret.field }}` and
//! `{{ secret.field | filter }}` references, parsed once when a session is
//! applied.

use std::fmt;

use serde::{Serialize, Serializer};

/// Which part of a secret a template inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `{{ name }}`: the value itself (password text, raw bytes, the private
    /// key PEM of a key kind, the supplied or imported bytes).
    Value,
    /// `{{ name.cert }}`: the certificate (PEM) of an x509 or x509-ca secret.
    Cert,
    /// `{{ name.key }}`: the private key (PKCS#8 PEM) of a key, x509 or
    /// x509-ca secret.
    Key,
    /// `{{ name.ca }}`: the certificate (PEM) of the CA that issued an x509
    /// or x509-ca secret.
    Ca,
}

impl Field {
    /// The suffix as written after the dot (`""` for [`Field::Value`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Value => "",
            Field::Cert => "cert",
            Field::Key => "key",
            Field::Ca => "ca",
        }
    }
}

/// An encoding applied to the inserted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filter {
    /// `| base64`: standard alphabet, with padding (RFC 4648 section 4).
    Base64,
    /// `| hex`: lower-case hex.
    Hex,
}

impl Filter {
    /// The filter's name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Filter::Base64 => "base64",
            Filter::Hex => "hex",
        }
    }
}

/// One `{{ ... }}` reference to a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// The secret's name in the session.
    pub secret: String,
    /// Which part of it.
    pub field: Field,
    /// How to encode it.
    pub filter: Option<Filter>,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{{ ")?;
        f.write_str(&self.secret)?;
        if self.field != Field::Value {
            write!(f, ".{}", self.field.as_str())?;
        }
        if let Some(filter) = self.filter {
            write!(f, " | {}", filter.as_str())?;
        }
        f.write_str(" }}")
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// Literal text, inserted as is.
    Text(String),
    /// A secret reference.
    Ref(SecretRef),
}

/// A parsed template. `Display` writes its canonical source text, which
/// parses back to an equal template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    message: String,
}

fn terr(message: impl Into<String>) -> TemplateError {
    TemplateError {
        message: message.into(),
    }
}

/// Whether `s` is a valid secret name: `[A-Za-z_][A-Za-z0-9_]{0,63}`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

const ESCAPE_HINT: &str = "to write a literal `{{`, use `{{ '{{' }}`";

fn parse_ref(expr: &str) -> Result<Part, TemplateError> {
    let expr = expr.trim();
    if expr == "'{{'" {
        return Ok(Part::Text("{{".to_owned()));
    }
    let (target, filter) = match expr.split_once('|') {
        Some((t, f)) => (t.trim(), Some(f.trim())),
        None => (expr, None),
    };
    let filter = match filter {
        None => None,
        Some("base64") => Some(Filter::Base64),
        Some("hex") => Some(Filter::Hex),
        Some(other) => {
            return Err(terr(format!(
                "unknown filter {other:?} in `{{{{ {expr} }}}}`; the filters are `base64` and `hex` (one at most)"
            )))
        }
    };
    let (name, field) = match target.split_once('.') {
        Some((n, f)) => (n, f),
        None => (target, ""),
    };
    if !is_identifier(name) {
        let hint = if target.is_empty() {
            "the braces are empty".to_owned()
        } else {
            format!("{name:?} is not a secret name (letters, digits and `_`, not starting with a digit)")
        };
        return Err(terr(format!(
            "invalid reference `{{{{ {expr} }}}}`: {hint}; {ESCAPE_HINT}"
        )));
    }
    let field = match field {
        "" if !target.contains('.') => Field::Value,
        "cert" => Field::Cert,
        "key" => Field::Key,
        "ca" => Field::Ca,
        other => {
            return Err(terr(format!(
            "unknown field {other:?} in `{{{{ {expr} }}}}`; the fields are `cert`, `key` and `ca`"
        )))
        }
    };
    Ok(Part::Ref(SecretRef {
        secret: name.to_owned(),
        field,
        filter,
    }))
}

impl Template {
    /// Parses template text.
    ///
    /// `{{` opens a reference that the next `}}` closes. In a run of three
    /// or more `{`, only the last two open it, so `{{{ a }}` is `{` followed
    /// by a reference. The literal text `{{` is written `{{ '{{' }}`; `}}`
    /// outside a reference needs no escape.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            let mut open = i;
            // In `{{{`, the reference starts at the last pair of braces.
            while rest.get(open + 2..open + 3) == Some("{") {
                open += 1;
            }
            text.push_str(rest.get(..open).unwrap_or(""));
            let after = rest.get(open + 2..).unwrap_or("");
            let Some(close) = after.find("}}") else {
                return Err(terr(format!(
                    "`{{{{` is never closed by `}}}}`; {ESCAPE_HINT}"
                )));
            };
            match parse_ref(after.get(..close).unwrap_or(""))? {
                Part::Text(t) => text.push_str(&t),
                r @ Part::Ref(_) => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(r);
                }
            }
            rest = after.get(close + 2..).unwrap_or("");
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// Builds a template from parts, merging adjacent text and dropping
    /// empty text, so that it equals what [`Template::parse`] gives for its
    /// canonical text.
    pub fn from_parts(parts: impl IntoIterator<Item = Part>) -> Self {
        let mut out: Vec<Part> = Vec::new();
        for p in parts {
            match p {
                Part::Text(t) if t.is_empty() => {}
                Part::Text(t) => {
                    if let Some(Part::Text(prev)) = out.last_mut() {
                        prev.push_str(&t);
                    } else {
                        out.push(Part::Text(t));
                    }
                }
                r => out.push(r),
            }
        }
        Template { parts: out }
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Every secret reference, in order.
    pub fn refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
    }

    /// True when the template has no secret reference.
    pub fn is_literal(&self) -> bool {
        self.refs().next().is_none()
    }

    /// The text of a template without references (`None` otherwise).
    pub fn literal(&self) -> Option<String> {
        if !self.is_literal() {
            return None;
        }
        Some(
            self.parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.as_str(),
                    Part::Ref(_) => "",
                })
                .collect(),
        )
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                Part::Text(t) => f.write_str(&t.replace("{{", "{{ '{{' }}"))?,
                Part::Ref(r) => write!(f, "{r}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(secret: &str, field: Field, filter: Option<Filter>) -> Part {
        Part::Ref(SecretRef {
            secret: secret.to_owned(),
            field,
            filter,
        })
    }

    #[test]
    fn parses_references_and_filters() {
        let t = Template::parse("a={{db}} b={{ tls.cert | base64 }} c={{k.key|hex}}").unwrap();
        assert_eq!(
            t.parts(),
            &[
                Part::Text("a=".into()),
                r("db", Field::Value, None),
                Part::Text(" b=".into()),
                r("tls", Field::Cert, Some(Filter::Base64)),
                Part::Text(" c=".into()),
                r("k", Field::Key, Some(Filter::Hex)),
            ]
        );
        assert_eq!(
            t.to_string(),
            "a={{ db }} b={{ tls.cert | base64 }} c={{ k.key | hex }}"
        );
    }

    #[test]
    fn escapes() {
        let t = Template::parse("x {{ '{{' }} y }} z").unwrap();
        assert_eq!(t.literal().as_deref(), Some("x {{ y }} z"));
        assert_eq!(Template::parse(&t.to_string()).unwrap(), t);
        let t = Template::parse("{{{ a }}").unwrap();
        assert_eq!(
            t.parts(),
            &[Part::Text("{".into()), r("a", Field::Value, None)]
        );
        assert_eq!(Template::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "{{ }}",
            "{{ a b }}",
            "{{ a.pub }}",
            "{{ a | gzip }}",
            "{{ a | hex | base64 }}",
            "{{ 1a }}",
            "{{ a. }}",
            "open {{ a",
            "{{ a.cert.key }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
