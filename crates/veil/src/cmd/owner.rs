//! Key material an owner holds: a key file (64 lower-case hex digits), or
//! what they read back from the CAS (mutual TLS with the client identity):
//! a session's policy, and the 32-byte value of a key secret the policy
//! exports to owners. Shared by `veil fs`, `veil encrypt|decrypt` and
//! `veil job`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use hyper::Method;
use serde::Deserialize;
use veil_client::CasClient;
use zeroize::Zeroizing;

use super::fs::split_session;
use crate::cli::CasUrl;
use crate::config::{client, runtime};
use crate::failure::Failure;

/// A session as the CAS holds it, and a client to read more of it.
pub(crate) struct OwnedSession {
    client: CasClient,
    rt: tokio::runtime::Runtime,
    /// `namespace/name`.
    pub name: String,
    /// The policy, parsed here.
    pub policy: veil_policy::Session,
}

/// Reads session `session` (`namespace/name`) as its owner.
pub(crate) fn owned_session(cas: &CasUrl, session: &str) -> Result<OwnedSession, Failure> {
    let (ns, name) = split_session(session)?;
    let c = client(cas, true)?;
    let rt = runtime()?;
    let v: serde_json::Value = rt.block_on(c.get(&format!("/v1/sessions/{ns}/{name}")))?;
    let yaml = v["policy"].as_str().ok_or_else(|| {
        Failure::Usage(format!(
            "the CAS's answer for {session} holds no policy text"
        ))
    })?;
    let policy = veil_policy::parse_session(yaml).map_err(|e| {
        Failure::Usage(format!(
            "the policy of {session} that the CAS holds does not parse here: {e}"
        ))
    })?;
    Ok(OwnedSession {
        client: c,
        rt,
        name: session.to_owned(),
        policy,
    })
}

impl OwnedSession {
    /// The 32-byte value of secret `secret`, which the policy must export to
    /// owners; `what` says what it is for in errors ("the key of volume
    /// data").
    pub(crate) fn key_bytes(
        &self,
        secret: &str,
        what: &str,
    ) -> Result<Zeroizing<[u8; 32]>, Failure> {
        let session = &self.name;
        let hint = format!(
            "the CAS gives a secret to owners only when the policy exports it to them: add `export: [{{ owner: true }}]` to secret {secret} of {session}"
        );
        let exported = self.policy.secret(secret).is_some_and(|spec| {
            spec.export
                .iter()
                .any(|e| matches!(e, veil_policy::Export::Owner))
        });
        if !exported {
            return Err(Failure::NotAcceptable(format!(
                "{what} ({secret} of {session}) is not exported to owners: {hint}"
            )));
        }
        let (ns, name) = split_session(session)?;
        let body = self
            .rt
            .block_on(self.client.call(
                Method::GET,
                &format!("/v1/sessions/{ns}/{name}/secrets/{secret}"),
                None,
            ))
            .map_err(|e| match e {
                veil_client::ClientError::Api { status: 403, .. } => {
                    Failure::NotAcceptable(format!("{e}; {hint}"))
                }
                e => Failure::from(e),
            })?;
        // (The client's buffer cannot be zeroized; the decoded value is.)
        #[derive(Deserialize)]
        struct Exported {
            value: Zeroizing<String>,
        }
        let exported: Exported = serde_json::from_slice(&body)
            .map_err(|e| Failure::Usage(format!("unexpected answer for secret {secret}: {e}")))?;
        use base64::Engine;
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(exported.value.as_bytes())
                .map_err(|_| {
                    Failure::Usage(format!("secret {secret}'s value is not base64 as expected"))
                })?,
        );
        let mut bytes = Zeroizing::new([0u8; 32]);
        if raw.len() != 32 {
            return Err(Failure::Usage(format!(
                "secret {secret} is {} bytes; {what} is 32 (an aes-256 secret)",
                raw.len()
            )));
        }
        bytes.copy_from_slice(&raw);
        Ok(bytes)
    }
}

/// The 32 bytes of key file `path`: 64 lower-case hex digits and an
/// optional newline. `what` names the kind of file in errors ("volume key
/// file"). Warns when others may read the file.
pub(crate) fn read_key_file(path: &Path, what: &str) -> Result<Zeroizing<[u8; 32]>, Failure> {
    let text = Zeroizing::new(std::fs::read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                " (make one with `openssl rand -hex 32 > {0} && chmod 600 {0}`)",
                path.display()
            )
        } else {
            String::new()
        };
        Failure::Usage(format!(
            "cannot read the {what} {}: {e}{hint}",
            path.display()
        ))
    })?);
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let problem = if body.len() != 64 {
        Some(format!("it holds {} bytes", text.len()))
    } else if !body.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Some("it holds other characters".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(Failure::Usage(format!(
            "{} is not a {what}: expected 64 lower-case hex digits (32 bytes) and an optional newline; {problem}",
            path.display()
        )));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(body, &mut bytes[..])
        .map_err(|_| Failure::Usage(format!("{} is not a {what}", path.display())))?;
    if let Ok(md) = std::fs::metadata(path) {
        if md.mode() & 0o077 != 0 {
            eprintln!(
                "veil: warning: the key file {} can be read by other users (mode {:04o}): chmod 600 it",
                path.display(),
                md.mode() & 0o7777
            );
        }
    }
    Ok(bytes)
}
