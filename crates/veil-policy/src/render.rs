//! Filling a service's templates with secret values.

use std::fmt;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::model::Service;
use crate::template::{Field, Filter, Part, SecretRef, Template};

/// Where rendering gets secret values from (the CAS's store, a test map).
///
/// `value` returns `None` when the secret or that part of it does not exist
/// (a supplied secret not uploaded yet, an import whose exporter is gone).
pub trait SecretSource {
    /// The bytes of `field` of the secret called `secret`.
    fn value(&self, secret: &str, field: Field) -> Option<Zeroizing<Vec<u8>>>;
}

/// A file to write for the service.
pub struct RenderedFile {
    /// Absolute path.
    pub path: String,
    /// Unix permission bits.
    pub mode: u32,
    /// Content; zeroized on drop.
    pub content: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field(
                "content",
                &format_args!("<{} bytes redacted>", self.content.len()),
            )
            .finish()
    }
}

/// A service's configuration with secrets filled in. Every value is zeroized
/// on drop, and `Debug` prints names and sizes, never values.
#[derive(Default)]
pub struct Rendered {
    /// argv, program first (without host arguments).
    pub argv: Vec<Zeroizing<String>>,
    /// Environment, sorted by name.
    pub env: Vec<(String, Zeroizing<String>)>,
    /// Files, sorted by path.
    pub files: Vec<RenderedFile>,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field(
                "argv",
                &format_args!("<{} arguments redacted>", self.argv.len()),
            )
            .field(
                "env",
                &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .field("files", &self.files)
            .finish()
    }
}

/// Why rendering failed. Never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The source has no value for a reference.
    #[error("{location}: `{reference}` has no value (a supplied secret not uploaded yet, or an import whose exporter does not share it)")]
    Missing {
        /// `argv[1]`, `env.NAME`, `files["/path"]`.
        location: String,
        /// The reference as written canonically.
        reference: String,
    },
    /// Binary bytes inserted into argv or env without a filter.
    #[error("{location}: `{reference}` is not valid UTF-8 text; use `| base64` or `| hex`")]
    NotUtf8 {
        /// Where.
        location: String,
        /// The reference.
        reference: String,
    },
    /// argv and env values cannot hold NUL bytes.
    #[error("{location}: the rendered value contains a NUL byte, which argv and env cannot hold; use `| base64` or `| hex`")]
    ContainsNul {
        /// Where.
        location: String,
    },
}

fn encode(r: &SecretRef, raw: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    match r.filter {
        None => raw,
        Some(Filter::Base64) => Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .encode(raw.as_slice())
                .into_bytes(),
        ),
        Some(Filter::Hex) => Zeroizing::new(hex::encode(raw.as_slice()).into_bytes()),
    }
}

fn render_bytes(
    t: &Template,
    location: &str,
    text: bool,
    secrets: &dyn SecretSource,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    // Fetch every piece first so the output is allocated once at its final
    // size and no partial copy is left behind by a reallocation.
    let mut pieces: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for part in t.parts() {
        if let Part::Ref(r) = part {
            let raw = secrets
                .value(&r.secret, r.field)
                .ok_or_else(|| RenderError::Missing {
                    location: location.to_owned(),
                    reference: r.to_string(),
                })?;
            let v = encode(r, raw);
            if text && std::str::from_utf8(&v).is_err() {
                return Err(RenderError::NotUtf8 {
                    location: location.to_owned(),
                    reference: r.to_string(),
                });
            }
            pieces.push(v);
        }
    }
    let len: usize = t
        .parts()
        .iter()
        .map(|p| match p {
            Part::Text(s) => s.len(),
            Part::Ref(_) => 0,
        })
        .sum::<usize>()
        + pieces.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let mut pieces = pieces.into_iter();
    for part in t.parts() {
        match part {
            Part::Text(s) => out.extend_from_slice(s.as_bytes()),
            Part::Ref(_) => {
                if let Some(p) = pieces.next() {
                    out.extend_from_slice(&p);
                }
            }
        }
    }
    if text && out.contains(&0) {
        return Err(RenderError::ContainsNul {
            location: location.to_owned(),
        });
    }
    Ok(out)
}

fn render_text(
    t: &Template,
    location: &str,
    secrets: &dyn SecretSource,
) -> Result<Zeroizing<String>, RenderError> {
    let mut bytes = render_bytes(t, location, true, secrets)?;
    let v = std::mem::take(&mut *bytes);
    match String::from_utf8(v) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            // Unreachable in practice (every piece was checked); wipe anyway.
            drop(Zeroizing::new(e.into_bytes()));
            Err(RenderError::NotUtf8 {
                location: location.to_owned(),
                reference: String::new(),
            })
        }
    }
}

/// Renders a service's argv, env and files with values from `secrets`.
///
/// argv and env must be UTF-8 without NUL bytes: a binary value inserted
/// without `| base64` or `| hex` is an error. Files take raw bytes.
pub fn render(service: &Service, secrets: &dyn SecretSource) -> Result<Rendered, RenderError> {
    let mut out = Rendered::default();
    for (i, t) in service.command.iter().enumerate() {
        out.argv
            .push(render_text(t, &format!("command[{i}]"), secrets)?);
    }
    for (k, t) in &service.env {
        out.env
            .push((k.clone(), render_text(t, &format!("env.{k}"), secrets)?));
    }
    for (path, spec) in &service.files {
        let content = render_bytes(&spec.content, &format!("files[{path:?}]"), false, secrets)?;
        out.files.push(RenderedFile {
            path: path.clone(),
            mode: spec.mode,
            content,
        });
    }
    Ok(out)
}
