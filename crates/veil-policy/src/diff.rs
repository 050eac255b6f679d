//! What an update changes, and whether it may replace the current version.

use std::fmt;

use crate::error::{ErrorKind, Path, PolicyError};
use crate::model::{Fingerprint, Service, Session};

/// One difference between two versions of a session. Secret values are
/// never involved: only specifications are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// `version` changed.
    Version {
        /// Old.
        from: u64,
        /// New.
        to: u64,
    },
    /// Owners were added.
    OwnerAdded(Fingerprint),
    /// Owners were removed.
    OwnerRemoved(Fingerprint),
    /// `approvals` changed.
    Approvals {
        /// Old.
        from: u32,
        /// New.
        to: u32,
    },
    /// A secret was declared.
    SecretAdded {
        /// Its name.
        name: String,
        /// Its kind.
        kind: &'static str,
    },
    /// A secret was removed (its value is dropped).
    SecretRemoved {
        /// Its name.
        name: String,
    },
    /// A secret's specification changed (kind, parameters or exports).
    SecretChanged {
        /// Its name.
        name: String,
    },
    /// A generated secret will be regenerated.
    SecretRotated {
        /// Its name.
        name: String,
    },
    /// A service was added.
    ServiceAdded {
        /// Its name.
        name: String,
    },
    /// A service was removed.
    ServiceRemoved {
        /// Its name.
        name: String,
    },
    /// A service changed; `fields` names the parts that differ.
    ServiceChanged {
        /// Its name.
        name: String,
        /// `accept`, `command`, `env`, `files`, `certificate names (dns, ips)`,
        /// `host_args`, `host_env`, `volumes`, `network`.
        fields: Vec<&'static str>,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Version { from, to } => write!(f, "version {from} -> {to}"),
            Change::OwnerAdded(o) => write!(f, "+ owner {o}"),
            Change::OwnerRemoved(o) => write!(f, "- owner {o}"),
            Change::Approvals { from, to } => write!(f, "approvals {from} -> {to}"),
            Change::SecretAdded { name, kind } => write!(f, "+ secret {name} ({kind})"),
            Change::SecretRemoved { name } => write!(f, "- secret {name} (its value is dropped)"),
            Change::SecretChanged { name } => write!(f, "~ secret {name}"),
            Change::SecretRotated { name } => write!(f, "! secret {name} is rotated"),
            Change::ServiceAdded { name } => write!(f, "+ service {name}"),
            Change::ServiceRemoved { name } => write!(f, "- service {name}"),
            Change::ServiceChanged { name, fields } => {
                write!(f, "~ service {name}: {}", fields.join(", "))
            }
        }
    }
}

fn service_fields(a: &Service, b: &Service) -> Vec<&'static str> {
    let mut v = Vec::new();
    if a.accept != b.accept {
        v.push("accept");
    }
    if a.command != b.command {
        v.push("command");
    }
    if a.env != b.env {
        v.push("env");
    }
    if a.files != b.files {
        v.push("files");
    }
    if a.dns != b.dns || a.ips != b.ips {
        v.push("certificate names (dns, ips)");
    }
    if a.host_args != b.host_args {
        v.push("host_args");
    }
    if a.host_env != b.host_env {
        v.push("host_env");
    }
    if a.volumes != b.volumes {
        v.push("volumes");
    }
    if a.network != b.network {
        v.push("network");
    }
    v
}

/// Lists what replacing `old` by `new` changes, for `veil session diff`.
pub fn diff(old: &Session, new: &Session) -> Vec<Change> {
    let mut out = Vec::new();
    if old.version != new.version {
        out.push(Change::Version {
            from: old.version,
            to: new.version,
        });
    }
    for o in &new.owners {
        if !old.owners.contains(o) {
            out.push(Change::OwnerAdded(*o));
        }
    }
    for o in &old.owners {
        if !new.owners.contains(o) {
            out.push(Change::OwnerRemoved(*o));
        }
    }
    if old.approvals != new.approvals {
        out.push(Change::Approvals {
            from: old.approvals,
            to: new.approvals,
        });
    }
    for s in &new.secrets {
        match old.secret(&s.name) {
            None => out.push(Change::SecretAdded {
                name: s.name.clone(),
                kind: s.kind.as_str(),
            }),
            Some(o) if o != s => out.push(Change::SecretChanged {
                name: s.name.clone(),
            }),
            Some(_) => {}
        }
        if new.rotate.contains(&s.name) {
            out.push(Change::SecretRotated {
                name: s.name.clone(),
            });
        }
    }
    for s in &old.secrets {
        if new.secret(&s.name).is_none() {
            out.push(Change::SecretRemoved {
                name: s.name.clone(),
            });
        }
    }
    for s in &new.services {
        match old.service(&s.name) {
            None => out.push(Change::ServiceAdded {
                name: s.name.clone(),
            }),
            Some(o) => {
                let fields = service_fields(o, s);
                if !fields.is_empty() {
                    out.push(Change::ServiceChanged {
                        name: s.name.clone(),
                        fields,
                    });
                }
            }
        }
    }
    for s in &old.services {
        if new.service(&s.name).is_none() {
            out.push(Change::ServiceRemoved {
                name: s.name.clone(),
            });
        }
    }
    out
}

fn update_err(field: &str, msg: String) -> PolicyError {
    PolicyError::new(ErrorKind::Update, &Path::root().key(field), None, msg)
}

/// Checks that `new` may replace `current`: same name, the next version,
/// `predecessor` equal to `current.hash()` (so of two concurrent updates
/// only the first to land can win), and no generated secret silently
/// changes kind or parameters unless it is listed under `rotate`.
///
/// Approval signatures are checked by the CAS, not here.
pub fn check_update(current: &Session, new: &Session) -> Result<(), PolicyError> {
    if new.name != current.name {
        return Err(update_err(
            "name",
            format!(
                "the update is for session {}, not {}",
                new.name, current.name
            ),
        ));
    }
    let next = current.version.saturating_add(1);
    if new.version != next {
        return Err(update_err(
            "version",
            format!(
                "the current version is {}; the update must have version {next}, not {}",
                current.version, new.version
            ),
        ));
    }
    let want = current.hash();
    if new.predecessor != Some(want) {
        return Err(update_err(
            "predecessor",
            format!(
                "predecessor must be the current version's hash {want}; the session changed since this update was written, so rebase it on the current version"
            ),
        ));
    }
    for s in &new.secrets {
        if let Some(o) = current.secret(&s.name) {
            let generated = o.kind.is_generated() || s.kind.is_generated();
            let kind_changed = o.kind != s.kind;
            if generated && kind_changed && !new.rotate.contains(&s.name) {
                return Err(update_err(
                    "secrets",
                    format!(
                        "secret {:?} changes its specification ({} -> {}); list it under `rotate` to regenerate it, or rename it",
                        s.name,
                        o.kind.as_str(),
                        s.kind.as_str()
                    ),
                ));
            }
        }
    }
    for r in &new.rotate {
        if current.secret(r).is_none() {
            return Err(update_err(
                "rotate",
                format!("secret {r:?} is new in this update; there is nothing to rotate"),
            ));
        }
    }
    Ok(())
}
