//! From the strict YAML tree to a validated [`Session`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::str::FromStr;

use veil_attest::{TcbStatus, Tee};

use crate::error::{ErrorKind, Path, PolicyError};
use crate::model::*;
use crate::read::{At, Fields};
use crate::template::{is_identifier, Field, Template};
use crate::yaml::{self, Node, Pos};

/// Most owners a session may list.
pub const MAX_OWNERS: usize = 64;

/// Parses and validates a session document (policy language v1).
///
/// Every check of `docs/spec/policy.md` runs here, including that each
/// template names a declared secret with a field its kind has, so a session
/// that parses can be rendered for any service whose secrets exist.
pub fn parse_session(yaml_text: &str) -> Result<Session, PolicyError> {
    let root = yaml::parse(yaml_text)?;
    let path = Path::root();
    session(At::new(&root, &path))
}

fn value_err(at: At<'_>, msg: impl Into<String>) -> PolicyError {
    at.err(ErrorKind::Value, msg)
}

fn parse_str<T: FromStr>(at: At<'_>) -> Result<T, PolicyError>
where
    T::Err: std::fmt::Display,
{
    at.str()?
        .parse::<T>()
        .map_err(|e| value_err(at, e.to_string()))
}

fn parse_hex_str<T: FromStr>(at: At<'_>) -> Result<T, PolicyError>
where
    T::Err: std::fmt::Display,
{
    at.hex_text()?
        .parse::<T>()
        .map_err(|e| value_err(at, e.to_string()))
}

fn session(at: At<'_>) -> Result<Session, PolicyError> {
    let mut f = at.fields("a session")?;
    let (p, n) = f.req("name")?;
    let name: SessionName = parse_str(At::new(n, &p))?;

    let (p, n) = f.req("version")?;
    let version_at = At::new(n, &p);
    let version = version_at.int_in(1, u64::MAX)?;

    let predecessor = match f.opt("predecessor") {
        Some((p, n)) => Some(parse_hex_str::<SessionHash>(At::new(n, &p))?),
        None => None,
    };
    match (version, predecessor) {
        (1, Some(_)) => {
            return Err(version_at.err(
                ErrorKind::Value,
                "version 1 starts a session and has no predecessor; remove `predecessor` or raise `version`",
            ))
        }
        (v, None) if v > 1 => {
            return Err(version_at.err(
                ErrorKind::MissingField,
                format!("version {v} is an update and needs `predecessor`: the hash of the version it replaces (`veil session get` prints it)"),
            ))
        }
        _ => {}
    }

    let (p, n) = f.req("owners")?;
    let owners_at = At::new(n, &p);
    let mut owners = Vec::new();
    for (ip, item) in owners_at.seq()? {
        let item_at = At::new(item, &ip);
        let fp: Fingerprint = parse_hex_str(item_at)?;
        if owners.contains(&fp) {
            return Err(value_err(item_at, format!("owner {fp} is listed twice")));
        }
        owners.push(fp);
    }
    if owners.is_empty() {
        return Err(value_err(owners_at, "a session needs at least one owner"));
    }
    if owners.len() > MAX_OWNERS {
        return Err(value_err(
            owners_at,
            format!("at most {MAX_OWNERS} owners are allowed"),
        ));
    }

    let approvals = match f.opt("approvals") {
        Some((p, n)) => {
            let a = At::new(n, &p);
            let v = a.u64()?;
            if v == 0 || v > owners.len() as u64 {
                return Err(value_err(
                    a,
                    format!(
                        "approvals is {v}; it must be between 1 and the number of owners ({})",
                        owners.len()
                    ),
                ));
            }
            u32::try_from(v).map_err(|_| value_err(a, "approvals is too large"))?
        }
        None => 1,
    };

    let secrets = match f.opt("secrets") {
        Some((p, n)) => secrets(At::new(n, &p))?,
        None => Vec::new(),
    };
    let table: HashMap<&str, &SecretKind> = secrets
        .iter()
        .map(|(s, _)| (s.name.as_str(), &s.kind))
        .collect();

    let mut services = Vec::new();
    if let Some((p, n)) = f.opt("services") {
        let mut names = BTreeSet::new();
        for (ip, item) in At::new(n, &p).seq()? {
            let svc = service(At::new(item, &ip), &table)?;
            if !names.insert(svc.name.clone()) {
                let np = ip.key("name");
                return Err(PolicyError::new(
                    ErrorKind::Value,
                    &np,
                    item.pos.pair(),
                    format!(
                        "service name {:?} is used twice; service names must be unique",
                        svc.name
                    ),
                ));
            }
            services.push(svc);
        }
    }

    let mut rotate = BTreeSet::new();
    if let Some((p, n)) = f.opt("rotate") {
        let rot_at = At::new(n, &p);
        if version == 1 {
            return Err(value_err(
                rot_at,
                "`rotate` only makes sense in an update (version 2 or later)",
            ));
        }
        for (ip, item) in rot_at.seq()? {
            let a = At::new(item, &ip);
            let s = a.str()?;
            match table.get(s) {
                Some(k) if k.is_generated() => {}
                Some(k) => {
                    return Err(value_err(
                        a,
                        format!("secret {s:?} is of kind {}, which Veil does not generate and so cannot rotate", k.as_str()),
                    ))
                }
                None => return Err(unknown_secret(a, s, &table)),
            }
            if !rotate.insert(s.to_owned()) {
                return Err(value_err(a, format!("{s:?} is listed twice")));
            }
        }
    }
    f.finish()?;

    Ok(Session {
        name,
        version,
        predecessor,
        owners,
        approvals,
        secrets: secrets.into_iter().map(|(s, _)| s).collect(),
        services,
        rotate,
    })
}

fn unknown_secret(at: At<'_>, name: &str, table: &HashMap<&str, &SecretKind>) -> PolicyError {
    let mut known: Vec<&str> = table.keys().copied().collect();
    known.sort_unstable();
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    at.err(
        ErrorKind::Reference,
        format!("no secret named {name:?} is declared under `secrets` (declared: {known})"),
    )
}

/// Where an issuer reference sits, for the cross-checks.
struct IssuerAt {
    path: Path,
    pos: Pos,
}

fn secrets(at: At<'_>) -> Result<Vec<(SecretSpec, Option<IssuerAt>)>, PolicyError> {
    let mut out: Vec<(SecretSpec, Option<IssuerAt>)> = Vec::new();
    for (ip, item) in at.seq()? {
        let spec = secret(At::new(item, &ip))?;
        if out.iter().any(|(s, _)| s.name == spec.0.name) {
            return Err(PolicyError::new(
                ErrorKind::Value,
                &ip.key("name"),
                item.pos.pair(),
                format!(
                    "secret name {:?} is used twice; secret names must be unique",
                    spec.0.name
                ),
            ));
        }
        out.push((spec.0, spec.1));
    }
    // Issuers must be x509-ca secrets of this session, without cycles.
    let kinds: HashMap<&str, &SecretKind> = out
        .iter()
        .map(|(s, _)| (s.name.as_str(), &s.kind))
        .collect();
    let issuer_of = |k: &SecretKind| match k {
        SecretKind::X509 { issuer, .. } | SecretKind::X509Ca { issuer, .. } => Some(issuer.clone()),
        _ => None,
    };
    for (spec, where_) in &out {
        let (Some(Issuer::Secret(first)), Some(w)) = (issuer_of(&spec.kind), where_) else {
            continue;
        };
        let err = |msg: String| PolicyError::new(ErrorKind::Reference, &w.path, w.pos.pair(), msg);
        let mut seen = vec![spec.name.as_str()];
        let mut cur = first;
        loop {
            match kinds.get(cur.as_str()) {
                Some(k @ SecretKind::X509Ca { .. }) => {
                    if seen.contains(&cur.as_str()) {
                        return Err(err(format!(
                            "issuer chain of {:?} loops back to {cur:?}; one CA must be issued by `session-ca`",
                            spec.name
                        )));
                    }
                    seen.push(kinds.get_key_value(cur.as_str()).map(|(n, _)| *n).unwrap_or(""));
                    match issuer_of(k) {
                        Some(Issuer::Secret(next)) => cur = next,
                        _ => break,
                    }
                }
                Some(k) => {
                    return Err(err(format!(
                        "issuer {cur:?} is a {} secret; an issuer must be `session-ca` or an x509-ca secret",
                        k.as_str()
                    )))
                }
                None => {
                    return Err(err(format!(
                        "issuer {cur:?} is neither `session-ca` nor an x509-ca secret of this session"
                    )))
                }
            }
        }
    }
    Ok(out)
}

fn secret(at: At<'_>) -> Result<(SecretSpec, Option<IssuerAt>), PolicyError> {
    let mut f = at.fields("a secret")?;
    let (p, n) = f.req("name")?;
    let name_at = At::new(n, &p);
    let name = name_at.str()?.to_owned();
    if !is_identifier(&name) {
        return Err(value_err(
            name_at,
            format!("{name:?} is not a valid secret name; use 1 to 64 letters, digits and `_`, not starting with a digit"),
        ));
    }
    let (p, n) = f.req("kind")?;
    let kind_at = At::new(n, &p);
    let kind_name = kind_at.str()?;
    let mut issuer_at = None;
    let kind = match kind_name {
        "password" => {
            let length = match f.opt("length") {
                Some((p, n)) => At::new(n, &p).int_in(8, 1024)? as u32,
                None => 32,
            };
            let alphabet = match f.opt("alphabet") {
                Some((p, n)) => {
                    let a = At::new(n, &p);
                    let s = a.str()?;
                    Alphabet::parse(s).ok_or_else(|| {
                        value_err(a, format!("unknown alphabet {s:?}; expected alphanumeric, lowercase, hex or printable"))
                    })?
                }
                None => Alphabet::Alphanumeric,
            };
            SecretKind::Password { length, alphabet }
        }
        "bytes" => {
            let (p, n) = f.req("size")?;
            SecretKind::Bytes {
                size: At::new(n, &p).int_in(1, 65536)? as u32,
            }
        }
        "aes-256" => SecretKind::Aes256,
        "ecdsa-p256" => SecretKind::EcdsaP256,
        "ed25519" => SecretKind::Ed25519,
        "x509" | "x509-ca" => {
            let issuer = match f.opt("issuer") {
                Some((p, n)) => {
                    let a = At::new(n, &p);
                    let s = a.str()?;
                    if s == "session-ca" {
                        Issuer::SessionCa
                    } else if is_identifier(s) {
                        issuer_at = Some(IssuerAt { path: p.clone(), pos: n.pos });
                        Issuer::Secret(s.to_owned())
                    } else {
                        return Err(value_err(a, format!("issuer {s:?} must be `session-ca` or the name of an x509-ca secret")));
                    }
                }
                None => Issuer::SessionCa,
            };
            let common_name = match f.opt("common_name") {
                Some((p, n)) => {
                    let a = At::new(n, &p);
                    let s = a.str()?;
                    if s.is_empty() || s.len() > 64 || s.chars().any(char::is_control) {
                        return Err(value_err(a, "common_name must be 1 to 64 printable characters"));
                    }
                    Some(s.to_owned())
                }
                None => None,
            };
            if kind_name == "x509" {
                let dns = match f.opt("dns") {
                    Some((p, n)) => dns_list(At::new(n, &p))?,
                    None => Vec::new(),
                };
                let ips = match f.opt("ips") {
                    Some((p, n)) => ip_list(At::new(n, &p))?,
                    None => Vec::new(),
                };
                let validity_days = match f.opt("validity_days") {
                    Some((p, n)) => At::new(n, &p).int_in(1, 3650)? as u32,
                    None => 90,
                };
                SecretKind::X509 { issuer, common_name, dns, ips, validity_days }
            } else {
                let validity_days = match f.opt("validity_days") {
                    Some((p, n)) => At::new(n, &p).int_in(1, 3650)? as u32,
                    None => 365,
                };
                SecretKind::X509Ca { issuer, common_name, validity_days }
            }
        }
        "supplied" => SecretKind::Supplied,
        "import" => {
            let (p, n) = f.req("session")?;
            let session: SessionName = parse_str(At::new(n, &p))?;
            let (p, n) = f.req("secret")?;
            let a = At::new(n, &p);
            let secret = a.str()?;
            if !is_identifier(secret) {
                return Err(value_err(a, format!("{secret:?} is not a valid secret name")));
            }
            SecretKind::Import { session, secret: secret.to_owned() }
        }
        other => {
            return Err(value_err(
                kind_at,
                format!("unknown secret kind {other:?}; expected one of password, bytes, aes-256, ecdsa-p256, ed25519, x509, x509-ca, supplied, import"),
            ))
        }
    };
    let mut export = Vec::new();
    if let Some((p, n)) = f.opt("export") {
        let ex_at = At::new(n, &p);
        if matches!(kind, SecretKind::Import { .. }) {
            return Err(value_err(ex_at, "an imported secret cannot be exported again; export it from the session that owns it"));
        }
        for (ip, item) in ex_at.seq()? {
            let e = export_item(At::new(item, &ip))?;
            if e == Export::Owner && kind == SecretKind::Supplied {
                return Err(value_err(
                    At::new(item, &ip),
                    "a supplied secret is never readable back, so it cannot be exported to owners",
                ));
            }
            if export.contains(&e) {
                return Err(value_err(At::new(item, &ip), "this export is listed twice"));
            }
            export.push(e);
        }
    }
    // Fields of other kinds get a message naming this kind.
    f.set_what(format!("a secret of kind {kind_name}"));
    f.finish()?;
    Ok((SecretSpec { name, kind, export }, issuer_at))
}

fn export_item(at: At<'_>) -> Result<Export, PolicyError> {
    let mut f = at.fields("an export (`{ session: ns/name }` or `{ owner: true }`)")?;
    let e = if f.has("session") {
        let (p, n) = f.req("session")?;
        Export::Session(parse_str(At::new(n, &p))?)
    } else if f.has("owner") {
        let (p, n) = f.req("owner")?;
        let a = At::new(n, &p);
        if !a.bool()? {
            return Err(value_err(
                a,
                "`owner: false` exports nothing; remove the entry",
            ));
        }
        Export::Owner
    } else {
        return Err(at.err(
            ErrorKind::MissingField,
            "an export needs `session: ns/name` or `owner: true`",
        ));
    };
    f.finish()?;
    Ok(e)
}

fn is_dns_name(s: &str) -> bool {
    let body = s.strip_prefix("*.").unwrap_or(s);
    !body.is_empty()
        && s.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Checks an absolute, normalized path: `/a/b`, no `.`/`..`/empty segments.
fn check_abs_path(at: At<'_>, s: &str) -> Result<(), PolicyError> {
    let ok = s.len() > 1
        && s.len() <= 4096
        && s.starts_with('/')
        && !s.contains('\0')
        && s.get(1..).is_some_and(|rest| {
            rest.split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        });
    if ok {
        Ok(())
    } else {
        Err(value_err(
            at,
            format!("{s:?} is not an absolute, normalized path; write it like `/etc/app/conf.d/x.cnf` (no `.`, `..`, `//` or trailing `/`)"),
        ))
    }
}

fn check_refs(
    at: At<'_>,
    t: &Template,
    table: &HashMap<&str, &SecretKind>,
) -> Result<(), PolicyError> {
    for r in t.refs() {
        let Some(kind) = table.get(r.secret.as_str()) else {
            return Err(unknown_secret(at, &r.secret, table));
        };
        let ok = match kind {
            SecretKind::Import { .. } => true,
            SecretKind::X509 { .. } | SecretKind::X509Ca { .. } => r.field != Field::Value,
            SecretKind::EcdsaP256 | SecretKind::Ed25519 => {
                matches!(r.field, Field::Value | Field::Key)
            }
            _ => r.field == Field::Value,
        };
        if !ok {
            let hint = match kind {
                SecretKind::X509 { .. } | SecretKind::X509Ca { .. } => format!(
                    "an {} secret has parts: use `{{{{ {n}.cert }}}}`, `{{{{ {n}.key }}}}` or `{{{{ {n}.ca }}}}`",
                    kind.as_str(),
                    n = r.secret
                ),
                SecretKind::EcdsaP256 | SecretKind::Ed25519 => format!(
                    "a {} secret has only `{{{{ {n} }}}}` or `{{{{ {n}.key }}}}`",
                    kind.as_str(),
                    n = r.secret
                ),
                _ => format!("a {} secret has no parts: use `{{{{ {} }}}}`", kind.as_str(), r.secret),
            };
            return Err(at.err(ErrorKind::Reference, format!("`{r}` is not valid: {hint}")));
        }
    }
    Ok(())
}

fn template(at: At<'_>, table: &HashMap<&str, &SecretKind>) -> Result<Template, PolicyError> {
    let s = at.str()?;
    let t = Template::parse(s).map_err(|e| value_err(at, e.to_string()))?;
    check_refs(at, &t, table)?;
    Ok(t)
}

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && s.len() <= 255
}

fn service(at: At<'_>, table: &HashMap<&str, &SecretKind>) -> Result<Service, PolicyError> {
    let mut f = at.fields("a service")?;
    let (p, n) = f.req("name")?;
    let name_at = At::new(n, &p);
    let name = name_at.str()?.to_owned();
    if !is_service_name(&name) {
        return Err(value_err(name_at, format!("{name:?} is not a valid service name; use 1 to 63 of a-z 0-9 - _ . starting with a letter or digit")));
    }

    let (p, n) = f.req("accept")?;
    let acc_at = At::new(n, &p);
    let mut accept = Vec::new();
    for (ip, item) in acc_at.seq()? {
        accept.push(accept_rule(At::new(item, &ip))?);
    }
    if accept.is_empty() {
        return Err(value_err(
            acc_at,
            "a service needs at least one accept rule; nothing is accepted by default",
        ));
    }

    let (p, n) = f.req("command")?;
    let cmd_at = At::new(n, &p);
    let mut command = Vec::new();
    for (ip, item) in cmd_at.seq()? {
        command.push(template(At::new(item, &ip), table)?);
    }
    match command.first() {
        None => {
            return Err(value_err(
                cmd_at,
                "command needs at least the program to run",
            ))
        }
        Some(t) if !t.is_literal() => {
            return Err(value_err(
                cmd_at,
                "the program (command[0]) must be literal text, not a template",
            ))
        }
        _ => {}
    }

    let mut env = BTreeMap::new();
    if let Some((p, n)) = f.opt("env") {
        for (k, v) in At::new(n, &p).map()? {
            let kp = p.key(&k.text);
            if !is_env_name(&k.text) {
                return Err(PolicyError::new(
                    ErrorKind::Value,
                    &kp,
                    k.pos.pair(),
                    format!(
                        "{:?} is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                        k.text
                    ),
                ));
            }
            env.insert(k.text.clone(), template(At::new(v, &kp), table)?);
        }
    }

    let mut files = BTreeMap::new();
    if let Some((p, n)) = f.opt("files") {
        for (k, v) in At::new(n, &p).map()? {
            let kp = p.key(&k.text);
            let key_node = Node {
                value: crate::yaml::Value::Seq(Vec::new()),
                pos: k.pos,
            };
            check_abs_path(At::new(&key_node, &kp), &k.text)?;
            let vat = At::new(v, &kp);
            let spec = if matches!(v.value, crate::yaml::Value::Map(_)) {
                let mut ff = vat.fields("a file (`{ content, mode }`)")?;
                let (cp, cn) = ff.req("content")?;
                let content = template(At::new(cn, &cp), table)?;
                let mode = match ff.opt("mode") {
                    Some((mp, mn)) => file_mode(At::new(mn, &mp))?,
                    None => 0o600,
                };
                ff.finish()?;
                FileSpec { content, mode }
            } else {
                FileSpec {
                    content: template(vat, table)?,
                    mode: 0o600,
                }
            };
            files.insert(k.text.clone(), spec);
        }
    }

    let host_args = match f.opt("host_args") {
        Some((p, n)) => At::new(n, &p).bool()?,
        None => false,
    };
    let host_env = match f.opt("host_env") {
        Some((p, n)) => host_env(At::new(n, &p), &env)?,
        None => BTreeSet::new(),
    };
    let dns = match f.opt("dns") {
        Some((p, n)) => dns_list(At::new(n, &p))?,
        None => Vec::new(),
    };
    let ips = match f.opt("ips") {
        Some((p, n)) => ip_list(At::new(n, &p))?,
        None => Vec::new(),
    };

    let mut volumes: Vec<Volume> = Vec::new();
    if let Some((p, n)) = f.opt("volumes") {
        for (ip, item) in At::new(n, &p).seq()? {
            let v = volume(At::new(item, &ip), table)?;
            if volumes.iter().any(|o| o.name == v.name || o.path == v.path) {
                return Err(value_err(
                    At::new(item, &ip),
                    format!(
                        "volume {:?} repeats the name or path of another volume",
                        v.name
                    ),
                ));
            }
            volumes.push(v);
        }
    }

    let mut network = Vec::new();
    if let Some((p, n)) = f.opt("network") {
        for (ip, item) in At::new(n, &p).seq()? {
            network.push(network_rule(At::new(item, &ip), table)?);
        }
    }
    f.finish()?;
    Ok(Service {
        name,
        accept,
        command,
        env,
        files,
        host_args,
        host_env,
        dns,
        ips,
        volumes,
        network,
    })
}

/// `host_env`: environment variable names the host may pass through; no
/// duplicates, none also set by the policy's `env`.
fn host_env(at: At<'_>, env: &BTreeMap<String, Template>) -> Result<BTreeSet<String>, PolicyError> {
    let mut names = BTreeSet::new();
    for (ip, item) in at.seq()? {
        let a = At::new(item, &ip);
        let s = a.str()?;
        if !is_env_name(s) {
            return Err(value_err(
                a,
                format!("{s:?} is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most 255 characters)"),
            ));
        }
        if env.contains_key(s) {
            let env_path = at.path.sibling("env").key(s);
            return Err(value_err(
                a,
                format!(
                    "{s:?} is both in host_env and set by the policy at {env_path}; a variable comes either from the policy or from the host: remove one of them"
                ),
            ));
        }
        if !names.insert(s.to_owned()) {
            return Err(value_err(a, format!("{s:?} is listed twice")));
        }
    }
    Ok(names)
}

/// A list of DNS names (subject alternative names).
fn dns_list(at: At<'_>) -> Result<Vec<String>, PolicyError> {
    let mut dns = Vec::new();
    for (ip, item) in at.seq()? {
        let a = At::new(item, &ip);
        let s = a.str()?;
        if !is_dns_name(s) {
            return Err(value_err(a, format!("{s:?} is not a DNS name (labels of a-z 0-9 -, `*.` allowed as the first label)")));
        }
        dns.push(s.to_owned());
    }
    Ok(dns)
}

/// ALPN protocol names: 1 to 255 bytes of printable ASCII each, no repeats.
fn alpn_list(at: At<'_>) -> Result<Vec<String>, PolicyError> {
    let mut out: Vec<String> = Vec::new();
    for (ip, item) in at.seq()? {
        let a = At::new(item, &ip);
        let s = a.str()?;
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(value_err(
                a,
                format!("ALPN protocol {s:?} must be 1 to 255 printable ASCII characters, e.g. h2 or http/1.1"),
            ));
        }
        if out.iter().any(|o| o == s) {
            return Err(value_err(a, format!("ALPN protocol {s:?} is listed twice")));
        }
        out.push(s.to_owned());
    }
    Ok(out)
}

/// A list of IP addresses (subject alternative names).
fn ip_list(at: At<'_>) -> Result<Vec<IpAddr>, PolicyError> {
    let mut ips = Vec::new();
    for (ip, item) in at.seq()? {
        let a = At::new(item, &ip);
        let s = a.str()?;
        ips.push(
            s.parse::<IpAddr>()
                .map_err(|_| value_err(a, format!("{s:?} is not an IPv4 or IPv6 address")))?,
        );
    }
    Ok(ips)
}

fn file_mode(at: At<'_>) -> Result<u32, PolicyError> {
    let s = at.str().map_err(|_| {
        value_err(at, "mode must be a quoted octal string like \"0640\" (a plain 0640 is a decimal number in YAML 1.2)")
    })?;
    let digits = s.strip_prefix('0').filter(|d| d.len() == 3).unwrap_or(s);
    if digits.len() == 3 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        if let Ok(m) = u32::from_str_radix(digits, 8) {
            return Ok(m);
        }
    }
    Err(value_err(
        at,
        format!("{s:?} is not a file mode; expected three or four octal digits like \"0640\""),
    ))
}

fn secret_of_kind(
    at: At<'_>,
    table: &HashMap<&str, &SecretKind>,
    ok: fn(&SecretKind) -> bool,
    wanted: &str,
) -> Result<String, PolicyError> {
    let s = at.str()?;
    match table.get(s) {
        None => Err(unknown_secret(at, s, table)),
        Some(k) if ok(k) || matches!(k, SecretKind::Import { .. }) => Ok(s.to_owned()),
        Some(k) => Err(at.err(
            ErrorKind::Reference,
            format!(
                "secret {s:?} is of kind {}; this field needs {wanted}",
                k.as_str()
            ),
        )),
    }
}

fn volume(at: At<'_>, table: &HashMap<&str, &SecretKind>) -> Result<Volume, PolicyError> {
    let mut f = at.fields("a volume")?;
    let (p, n) = f.req("name")?;
    let na = At::new(n, &p);
    let name = na.str()?.to_owned();
    if !is_service_name(&name) {
        return Err(value_err(
            na,
            format!("{name:?} is not a valid volume name; use a-z 0-9 - _ ."),
        ));
    }
    let (p, n) = f.req("path")?;
    let pa = At::new(n, &p);
    let path = pa.str()?.to_owned();
    check_abs_path(pa, &path)?;
    let (p, n) = f.req("mode")?;
    let ma = At::new(n, &p);
    let mode = match ma.str()? {
        "encrypted" => VolumeMode::Encrypted,
        "integrity" => VolumeMode::Integrity,
        other => {
            return Err(value_err(
                ma,
                format!("unknown volume mode {other:?}; expected encrypted or integrity"),
            ))
        }
    };
    let (p, n) = f.req("key")?;
    let key = secret_of_kind(
        At::new(n, &p),
        table,
        |k| matches!(k, SecretKind::Aes256),
        "an aes-256 secret",
    )?;
    let read_only = match f.opt("read_only") {
        Some((p, n)) => At::new(n, &p).bool()?,
        None => false,
    };
    f.finish()?;
    Ok(Volume {
        name,
        path,
        mode,
        key,
        read_only,
    })
}

fn endpoint(at: At<'_>) -> Result<String, PolicyError> {
    let s = at.str()?;
    let ok = if s.parse::<std::net::SocketAddr>().is_ok() {
        true
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => {
                is_dns_name(host)
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u16>().is_ok_and(|p| p > 0)
            }
            None => false,
        }
    };
    if ok {
        Ok(s.to_owned())
    } else {
        Err(value_err(
            at,
            format!(
                "{s:?} is not `host:port` (e.g. `0.0.0.0:3306`, `[::1]:443`, `db.internal:5432`)"
            ),
        ))
    }
}

fn is_x509(k: &SecretKind) -> bool {
    matches!(k, SecretKind::X509 { .. })
}

fn network_rule(
    at: At<'_>,
    table: &HashMap<&str, &SecretKind>,
) -> Result<NetworkRule, PolicyError> {
    let mut f = at.fields("a network rule")?;
    let rule = if f.has("listen") {
        let (p, n) = f.req("listen")?;
        let listen = endpoint(At::new(n, &p))?;
        let (p, n) = f.req("to")?;
        let to = endpoint(At::new(n, &p))?;
        let tls = match f.opt("tls") {
            Some((p, n)) => Some(secret_of_kind(
                At::new(n, &p),
                table,
                is_x509,
                "an x509 secret",
            )?),
            None => None,
        };
        let client_auth = match f.opt("client_auth") {
            Some((p, n)) => {
                let a = At::new(n, &p);
                match a.str()? {
                    "none" => ClientAuth::None,
                    "session" => ClientAuth::Session,
                    other => ClientAuth::Peer(other.parse().map_err(|_| {
                        value_err(a, format!("client_auth {other:?} must be none, session or a session name `ns/name`"))
                    })?),
                }
            }
            None => ClientAuth::Session,
        };
        let alpn = match f.opt("alpn") {
            Some((p, n)) => alpn_list(At::new(n, &p))?,
            None => Vec::new(),
        };
        NetworkRule::Inbound {
            listen,
            to,
            tls,
            client_auth,
            alpn,
        }
    } else if f.has("connect") {
        let (p, n) = f.req("connect")?;
        let connect = endpoint(At::new(n, &p))?;
        let (p, n) = f.req("remote")?;
        let remote = endpoint(At::new(n, &p))?;
        let tls = match f.opt("tls") {
            Some((p, n)) => Some(secret_of_kind(
                At::new(n, &p),
                table,
                is_x509,
                "an x509 secret",
            )?),
            None => None,
        };
        let (p, n) = f.req("peer")?;
        let mut pf = At::new(n, &p).fields("a peer")?;
        let (sp, sn) = pf.req("session")?;
        let session: SessionName = parse_str(At::new(sn, &sp))?;
        let service = match pf.opt("service") {
            Some((sp, sn)) => {
                let a = At::new(sn, &sp);
                let s = a.str()?;
                if !is_service_name(s) {
                    return Err(value_err(a, format!("{s:?} is not a valid service name")));
                }
                Some(s.to_owned())
            }
            None => None,
        };
        let measurement = match pf.opt("measurement") {
            Some((mp, mn)) => {
                let a = At::new(mn, &mp);
                Some(hex_digest(a, &[32, 48], "32 or 48")?)
            }
            None => None,
        };
        pf.finish()?;
        let alpn = match f.opt("alpn") {
            Some((p, n)) => alpn_list(At::new(n, &p))?,
            None => Vec::new(),
        };
        let server_name = match f.opt("server_name") {
            Some((p, n)) => {
                let a = At::new(n, &p);
                let s = a.str()?;
                if !is_dns_name(s) || s.starts_with("*.") {
                    return Err(value_err(
                        a,
                        format!("server_name {s:?} is not a DNS name (labels of a-z 0-9 -)"),
                    ));
                }
                Some(s.to_owned())
            }
            None => None,
        };
        NetworkRule::Outbound {
            connect,
            remote,
            tls,
            peer: Peer {
                session,
                service,
                measurement,
            },
            alpn,
            server_name,
        }
    } else {
        return Err(at.err(
            ErrorKind::MissingField,
            "a network rule needs `listen` (inbound: listen, to, tls?, client_auth?, alpn?) or `connect` (outbound: connect, remote, tls?, peer, alpn?, server_name?)",
        ));
    };
    f.finish()?;
    Ok(rule)
}

fn hex_digest(at: At<'_>, lens: &[usize], what: &str) -> Result<Digest, PolicyError> {
    let s = at.hex_text()?;
    let hexok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match hex::decode(s) {
        Ok(b) if hexok && lens.contains(&b.len()) => Ok(Digest(b)),
        Ok(b) if hexok => Err(value_err(
            at,
            format!(
                "expected {what} bytes ({} hex digits), found {} bytes",
                what_digits(lens),
                b.len()
            ),
        )),
        _ => Err(value_err(
            at,
            format!(
                "expected lower-case hex ({} hex digits), found {s:?}",
                what_digits(lens)
            ),
        )),
    }
}

fn what_digits(lens: &[usize]) -> String {
    lens.iter()
        .map(|l| (l * 2).to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

fn measurement_len(tee: Tee) -> usize {
    match tee {
        Tee::Sgx => 32,
        _ => 48,
    }
}

fn accept_rule(at: At<'_>) -> Result<AcceptRule, PolicyError> {
    let mut f = at.fields("an accept rule")?;
    let (p, n) = f.req("tee")?;
    let ta = At::new(n, &p);
    let tee = match ta.str()? {
        "sgx" => Tee::Sgx,
        "tdx" => Tee::Tdx,
        "snp" => Tee::Snp,
        "nitro" => Tee::Nitro,
        "sim" => Tee::Sim,
        other => {
            return Err(value_err(
                ta,
                format!("unknown TEE {other:?}; expected sgx, tdx, snp, nitro or sim"),
            ))
        }
    };
    let tee_s = tee.as_str();
    let not_for = |f: &mut Fields<'_>,
                   field: &'static str,
                   allowed: &str|
     -> Result<(), PolicyError> {
        if let Some((p, n)) = f.peek(field) {
            return Err(PolicyError::new(
                ErrorKind::UnknownField,
                &p,
                n.pos.pair(),
                format!("`{field}` does not apply to tee {tee_s} (only to {allowed}); remove it"),
            ));
        }
        Ok(())
    };
    let mlen = measurement_len(tee);

    let signer = if matches!(tee, Tee::Sgx | Tee::Snp) {
        match f.opt("signer") {
            Some((p, n)) => Some(hex_digest(At::new(n, &p), &[mlen], &mlen.to_string())?),
            None => None,
        }
    } else {
        not_for(&mut f, "signer", "sgx, snp")?;
        None
    };
    let product = if tee == Tee::Sgx {
        match f.opt("product") {
            Some((p, n)) => Some(At::new(n, &p).int_in(0, u16::MAX.into())? as u16),
            None => None,
        }
    } else {
        not_for(&mut f, "product", "sgx")?;
        None
    };
    let min_svn = if matches!(tee, Tee::Sgx | Tee::Snp) {
        match f.opt("min_svn") {
            Some((p, n)) => {
                let max = if tee == Tee::Sgx {
                    u16::MAX.into()
                } else {
                    u32::MAX.into()
                };
                Some(At::new(n, &p).int_in(0, max)? as u32)
            }
            None => None,
        }
    } else {
        not_for(&mut f, "min_svn", "sgx, snp")?;
        None
    };

    let (p, n) = f.req("measurement")?;
    let ma = At::new(n, &p);
    let measurement = match &n.value {
        crate::yaml::Value::Seq(_) => {
            let mut v = Vec::new();
            for (ip, item) in ma.seq()? {
                let d = hex_digest(At::new(item, &ip), &[mlen], &mlen.to_string())?;
                if !v.contains(&d) {
                    v.push(d);
                }
            }
            if v.is_empty() {
                return Err(value_err(
                    ma,
                    "the measurement list is empty; list at least one",
                ));
            }
            MeasurementRule::OneOf(v)
        }
        _ if ma.str().ok() == Some("any") => {
            let sgx_by_signer = tee == Tee::Sgx && signer.is_some() && product.is_some();
            if tee != Tee::Sim && !sgx_by_signer {
                return Err(value_err(
                    ma,
                    format!("`measurement: any` is only allowed for tee sim (or sgx with both signer and product); pin the {tee_s} measurement"),
                ));
            }
            MeasurementRule::Any
        }
        _ => MeasurementRule::OneOf(vec![hex_digest(ma, &[mlen], &mlen.to_string())?]),
    };

    let mut registers = BTreeMap::new();
    if tee == Tee::Tdx {
        if let Some((p, n)) = f.opt("rtmrs") {
            for (k, v) in At::new(n, &p).map()? {
                let kp = p.key(&k.text);
                if !matches!(k.text.as_str(), "rtmr0" | "rtmr1" | "rtmr2" | "rtmr3") {
                    return Err(PolicyError::new(
                        ErrorKind::Value,
                        &kp,
                        k.pos.pair(),
                        format!(
                            "{:?} is not a TDX runtime register; expected rtmr0 to rtmr3",
                            k.text
                        ),
                    ));
                }
                registers.insert(k.text.clone(), hex_digest(At::new(v, &kp), &[48], "48")?);
            }
        }
    } else {
        not_for(&mut f, "rtmrs", "tdx")?;
    }
    if tee == Tee::Nitro {
        if let Some((p, n)) = f.opt("pcrs") {
            for (k, v) in At::new(n, &p).map()? {
                let kp = p.key(&k.text);
                let idx = k
                    .text
                    .parse::<u8>()
                    .ok()
                    .filter(|i| (1..32).contains(i) && !k.text.starts_with(['0', '+']));
                let Some(idx) = idx else {
                    return Err(PolicyError::new(
                        ErrorKind::Value,
                        &kp,
                        k.pos.pair(),
                        format!(
                            "{:?} is not a PCR index; expected 1 to 31 (PCR0 is `measurement`)",
                            k.text
                        ),
                    ));
                };
                registers.insert(
                    format!("pcr{idx}"),
                    hex_digest(At::new(v, &kp), &[48], "48")?,
                );
            }
        }
    } else {
        not_for(&mut f, "pcrs", "nitro")?;
    }

    let min_tcb = if tee == Tee::Snp {
        match f.opt("min_tcb") {
            Some((p, n)) => {
                let mut tf = At::new(n, &p).fields("min_tcb")?;
                let comp = |tf: &mut Fields<'_>, name: &'static str| -> Result<u8, PolicyError> {
                    let (cp, cn) = tf.req(name)?;
                    Ok(At::new(cn, &cp).int_in(0, 255)? as u8)
                };
                let bootloader = comp(&mut tf, "bootloader")?;
                let tee_c = comp(&mut tf, "tee")?;
                let snp = comp(&mut tf, "snp")?;
                let microcode = comp(&mut tf, "microcode")?;
                let fmc = match tf.opt("fmc") {
                    Some((cp, cn)) => Some(At::new(cn, &cp).int_in(0, 255)? as u8),
                    None => None,
                };
                tf.finish()?;
                Some(MinTcb {
                    bootloader,
                    tee: tee_c,
                    snp,
                    microcode,
                    fmc,
                })
            }
            None => None,
        }
    } else {
        not_for(&mut f, "min_tcb", "snp")?;
        None
    };

    let tcb_status = if matches!(tee, Tee::Sgx | Tee::Tdx) {
        match f.opt("tcb_status") {
            Some((p, n)) => {
                let sa = At::new(n, &p);
                let mut set = BTreeSet::new();
                for (ip, item) in sa.seq()? {
                    let a = At::new(item, &ip);
                    let s = a.str()?;
                    let st = TcbStatus::parse(s).ok_or_else(|| {
                        value_err(a, format!("unknown TCB status {s:?}; expected UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, TDRelaunchAdvised or TDRelaunchAdvisedConfigurationNeeded"))
                    })?;
                    match st {
                        TcbStatus::Revoked => {
                            return Err(value_err(
                                a,
                                "Revoked platforms are never accepted; remove it",
                            ))
                        }
                        TcbStatus::NotApplicable => {
                            return Err(value_err(
                                a,
                                format!("NotApplicable is not a status {tee_s} reports; remove it"),
                            ))
                        }
                        _ => {}
                    }
                    set.insert(st);
                }
                if set.is_empty() {
                    return Err(value_err(
                        sa,
                        "the list is empty; omit tcb_status to accept UpToDate only",
                    ));
                }
                set
            }
            None => BTreeSet::from([TcbStatus::UpToDate]),
        }
    } else {
        not_for(&mut f, "tcb_status", "sgx, tdx")?;
        BTreeSet::new()
    };

    let debug = match f.opt("debug") {
        Some((p, n)) => At::new(n, &p).bool()?,
        None => false,
    };
    let executable = match f.opt("executable") {
        Some((p, n)) => Some(parse_hex_str::<FileDigest>(At::new(n, &p))?),
        None => None,
    };
    let interpreter = match f.opt("interpreter") {
        Some((p, n)) => Some(parse_hex_str::<FileDigest>(At::new(n, &p))?),
        None => None,
    };
    f.finish()?;
    Ok(AcceptRule {
        tee,
        measurement,
        registers,
        signer,
        product,
        min_svn,
        min_tcb,
        tcb_status,
        debug,
        executable,
        interpreter,
    })
}
