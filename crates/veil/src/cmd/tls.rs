//! `veil tls inspect|proxy`: the network shield by hand.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::Digest;
use veil_attest::{Endorsement, Evidence, ReportData, Time};
use veil_ca::{parse_attested_cert, AttestedCert, CaError};
use veil_netshield::{CertSource, ClientAuth, Limits, PeerRule};
use veil_ratls::{BindingCheck, EvidenceFormat, RaTlsError};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::cli::{TlsInspectArgs, TlsProxyArgs};
use crate::cmd::read_file;
use crate::config::runtime;
use crate::failure::Failure;

/// OID of the Interoperable RA-TLS evidence extension, 2.23.133.5.4.9, as
/// DER content octets.
const RATLS_EXT_OID_DER: &[u8] = &[0x67, 0x81, 0x05, 0x05, 0x04, 0x09];

pub fn inspect(args: TlsInspectArgs) -> Result<(), Failure> {
    let bytes = read_file(&args.cert)?;
    let named = |f| match f {
        Failure::Usage(m) => Failure::Usage(format!("{}: {m}", args.cert.display())),
        Failure::NotAcceptable(m) => {
            Failure::NotAcceptable(format!("{}: {m}", args.cert.display()))
        }
        other => other,
    };
    let mut shown = inspect_bytes(&bytes).map_err(named)?;
    if args.verify {
        let verified = verify_ratls(&bytes, &args).map_err(named)?;
        if let Value::Object(m) = &mut shown {
            m.insert("verified".into(), verified);
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&shown)
            .map_err(|e| Failure::Usage(format!("cannot encode JSON: {e}")))?;
        write_stdout(&format!("{text}\n"))
    } else {
        write_stdout(&text(&shown))
    }
}

/// The certificate's DER: the first `CERTIFICATE` block of PEM text, or the
/// bytes themselves. Returns also "pem" or "der".
fn certificate_der(bytes: &[u8]) -> Result<(Vec<u8>, &'static str), Failure> {
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let blocks =
            pem::parse_many(bytes).map_err(|e| Failure::Usage(format!("not valid PEM: {e}")))?;
        let block = blocks
            .into_iter()
            .find(|p| p.tag() == "CERTIFICATE")
            .ok_or_else(|| Failure::Usage("no CERTIFICATE block in the PEM file".into()))?;
        Ok((block.into_contents(), "pem"))
    } else {
        Ok((bytes.to_vec(), "der"))
    }
}

/// Everything `veil tls inspect --json` prints, as one JSON object.
fn inspect_bytes(bytes: &[u8]) -> Result<Value, Failure> {
    let (der, format) = certificate_der(bytes)?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| Failure::Usage(format!("not an X.509 certificate (PEM or DER): {e}")))?;
    let validity = cert.validity();
    let not_before = to_time(validity.not_before.timestamp());
    let not_after = to_time(validity.not_after.timestamp());
    let now = Time::now();
    let (dns, ips, other) = sans(&cert)?;
    let spki_sha256 = hex::encode(sha2::Sha256::digest(cert.tbs_certificate.subject_pki.raw));

    let veil = match parse_attested_cert(&der) {
        Ok(a) => Some(veil_json(&a)),
        Err(CaError::MissingExtension) => None,
        Err(e) => {
            return Err(Failure::NotAcceptable(format!(
                "the Veil attestation extension is malformed: {e}"
            )))
        }
    };
    let has_ratls_ext = cert
        .extensions()
        .iter()
        .any(|e| e.oid.as_bytes() == RATLS_EXT_OID_DER);
    // The same decoder as `veil evidence show`.
    let ratls = match veil_verifiers::show(&der) {
        Ok(s) if s.kind == "RA-TLS certificate" => Some(json!({
            "kind": s.kind,
            "tee": s.tee,
            "report_data": s.fields.get("report_data").cloned().unwrap_or(Value::Null),
            "binds_key": s.fields.pointer("/binding/holds").cloned().unwrap_or(Value::Null),
            "fields": s.fields,
            "notes": s.notes,
            "evidence_format": ratls_format(&der),
            "binding": ratls_binding(&der),
        })),
        Ok(_) | Err(_) if !has_ratls_ext => None,
        Ok(s) => {
            return Err(Failure::NotAcceptable(format!(
                "the RA-TLS extension could not be read (decoded as {})",
                s.kind
            )))
        }
        Err(e) => {
            return Err(Failure::NotAcceptable(format!(
                "the RA-TLS extension is malformed: {e}"
            )))
        }
    };
    let claims = match (&veil, &ratls) {
        (Some(_), Some(_)) => "veil+ratls",
        (Some(_), None) => "veil",
        (None, Some(_)) => "ratls",
        (None, None) => "none",
    };
    Ok(json!({
        "format": format,
        "subject": cert.subject().to_string(),
        "issuer": cert.issuer().to_string(),
        "serial": hex::encode(cert.tbs_certificate.raw_serial()),
        "self_signed": cert.subject().as_raw() == cert.issuer().as_raw(),
        "not_before": not_before.to_string(),
        "not_after": not_after.to_string(),
        "valid_now": not_before <= now && now <= not_after,
        "sans": { "dns": dns, "ip": ips, "other": other },
        "public_key_sha256": spki_sha256,
        "claims": claims,
        "veil": veil,
        "ratls": ratls,
    }))
}

/// The RA-TLS evidence's format: its CBOR tag (or legacy OID) and what the
/// evidence is.
fn ratls_format(der: &[u8]) -> Value {
    let Ok(cert) = veil_ratls::parse_ratls_certificate(der) else {
        return Value::Null;
    };
    match cert.format() {
        EvidenceFormat::TaggedEvidence { tag } => json!({
            "extension": veil_ratls::TCG_DICE_TAGGED_EVIDENCE_OID,
            "tag": tag,
            "tag_name": veil_ratls::tag_name(*tag),
            "veil_tag": *tag != veil_ratls::INTEL_TEE_QUOTE_TAG,
            "evidence": cert.evidence_kind().to_string(),
        }),
        EvidenceFormat::LegacyQuote { oid } => json!({
            "extension": oid,
            "tag": Value::Null,
            "evidence": cert.evidence_kind().to_string(),
        }),
        _ => json!({ "evidence": cert.evidence_kind().to_string() }),
    }
}

/// Each binding check of the RA-TLS evidence with its expected and found
/// values (hex), whether or not they match.
fn ratls_binding(der: &[u8]) -> Value {
    let Ok(cert) = veil_ratls::parse_ratls_certificate(der) else {
        return Value::Null;
    };
    let spki_sha256 = sha2::Sha256::digest(cert.spki_der()).to_vec();
    let rd_found = cert.report_data().0.get(..32).unwrap_or_default().to_vec();
    let (rd_what, rd_expected) = match cert.claims_buffer() {
        Some(buffer) => (
            "report data[0..32] = SHA-256(claims buffer)",
            sha2::Sha256::digest(buffer).to_vec(),
        ),
        None => (
            "report data[0..32] = SHA-256(certificate SPKI)",
            spki_sha256,
        ),
    };
    let mut checks = vec![check_json(
        rd_what,
        &cert.binding().report_data,
        Some(&rd_expected),
        Some(&rd_found),
    )];
    if cert.binding().pubkey_hash != BindingCheck::NotApplicable {
        let ph = cert.pubkey_hash();
        let expected = ph.and_then(|p| p.alg.digest(cert.spki_der()));
        checks.push(check_json(
            "claims pubkey-hash = hash(certificate SPKI)",
            &cert.binding().pubkey_hash,
            expected.as_deref(),
            ph.map(|p| p.value.as_slice()),
        ));
    }
    json!({ "holds": cert.binding().holds(), "checks": checks })
}

fn check_json(
    what: &str,
    check: &BindingCheck,
    expected: Option<&[u8]>,
    found: Option<&[u8]>,
) -> Value {
    let result = match check {
        BindingCheck::Match => "match".to_owned(),
        BindingCheck::Mismatch { .. } => "MISMATCH".to_owned(),
        BindingCheck::Unavailable(why) => format!("cannot be checked: {why}"),
        _ => "not applicable".to_owned(),
    };
    json!({
        "check": what,
        "result": result,
        "holds": *check == BindingCheck::Match,
        "expected": expected.map(hex::encode),
        "found": found.map(hex::encode),
    })
}

/// `--verify`: the RA-TLS evidence is bound to the certificate's key,
/// genuine (the `veil evidence verify` registry and endorsements), and its
/// verified report data is SHA-256(claims buffer) followed by zeros (for a
/// legacy certificate: SHA-256(SPKI) followed by zeros); a Veil attestation
/// extension, when present, names the verified TEE and measurement.
fn verify_ratls(bytes: &[u8], args: &TlsInspectArgs) -> Result<Value, Failure> {
    let (der, _) = certificate_der(bytes)?;
    let cert = match veil_ratls::parse_ratls_certificate(&der) {
        Ok(c) => c,
        Err(RaTlsError::NotRaTls) => return Err(Failure::NotAcceptable(
            "--verify: the certificate carries no RA-TLS evidence (OID 2.23.133.5.4.9) to verify"
                .into(),
        )),
        Err(e) => {
            return Err(Failure::NotAcceptable(format!(
                "the RA-TLS evidence cannot be read: {e}"
            )))
        }
    };
    cert.check_binding().map_err(|e| {
        Failure::NotAcceptable(format!(
            "the RA-TLS evidence is not bound to this certificate's key: {e}"
        ))
    })?;
    let mut endorsements = Vec::new();
    for path in &args.endorsements {
        let e = Endorsement::from_file_bytes(&read_file(path)?)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
        endorsements.push(e);
    }
    // As `veil evidence verify`: the operator names the sim keys to trust.
    let sim_keys = endorsements
        .iter()
        .filter_map(|e| match e {
            Endorsement::SimPlatformKey(k) => Some(*k),
            _ => None,
        })
        .collect();
    let registry = veil_verifiers::registry(&veil_verifiers::Options { sim_keys });
    let at = args.at.unwrap_or_else(Time::now);
    let evidence = Evidence {
        tee: cert.tee(),
        bytes: cert.evidence().to_vec(),
    };
    let claims = registry.verify(&evidence, &endorsements, at).map_err(|e| {
        if e.is_usage() {
            Failure::Usage(e.to_string())
        } else {
            Failure::NotAcceptable(format!("the RA-TLS evidence is not genuine: {e}"))
        }
    })?;
    let (bound, what) = match cert.claims_buffer() {
        Some(buffer) => (buffer, "SHA-256(claims buffer) || 32 zero bytes"),
        None => (
            cert.spki_der(),
            "SHA-256(certificate SPKI) || 32 zero bytes",
        ),
    };
    let mut expected = [0u8; 64];
    expected[..32].copy_from_slice(&sha2::Sha256::digest(bound));
    let expected = ReportData(expected);
    if claims.report_data != expected {
        return Err(Failure::NotAcceptable(format!(
            "the verified RA-TLS evidence does not bind this certificate: report data must be {what}: expected {expected}, found {}",
            claims.report_data
        )));
    }
    let veil_ext = match parse_attested_cert(&der) {
        Ok(a) => {
            if a.subject.tee != claims.tee || a.subject.measurement != claims.measurement {
                return Err(Failure::NotAcceptable(format!(
                    "the Veil attestation extension does not match the verified evidence: expected {} {}, found {} {}",
                    claims.tee,
                    hex::encode(&claims.measurement),
                    a.subject.tee,
                    hex::encode(&a.subject.measurement)
                )));
            }
            "match"
        }
        Err(_) => "absent",
    };
    Ok(json!({
        "genuine": true,
        "tee": claims.tee,
        "insecure": claims.insecure,
        "debug": claims.debug,
        "tcb_status": claims.tcb_status,
        "advisories": claims.advisories,
        "verified_at": claims.verified_at.unix(),
        "measurement": hex::encode(&claims.measurement),
        "report_data": claims.report_data.to_hex(),
        "report_data_check": format!("{what}: match"),
        "veil_extension": veil_ext,
        "claims": claims,
    }))
}

fn to_time(unix: i64) -> Time {
    Time::from_unix(u64::try_from(unix).unwrap_or(0))
}

type Sans = (Vec<String>, Vec<String>, Vec<String>);

fn sans(cert: &X509Certificate<'_>) -> Result<Sans, Failure> {
    let (mut dns, mut ips, mut other) = (Vec::new(), Vec::new(), Vec::new());
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Failure::Usage(format!("malformed subjectAltName: {e}")))?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(b) => ips.push(ip_text(b)),
                GeneralName::RFC822Name(m) => other.push(format!("email:{m}")),
                GeneralName::URI(u) => other.push(format!("uri:{u}")),
                n => other.push(n.to_string()),
            }
        }
    }
    Ok((dns, ips, other))
}

fn ip_text(b: &[u8]) -> String {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        IpAddr::from(a).to_string()
    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
        IpAddr::from(a).to_string()
    } else {
        format!("<{}>", hex::encode(b))
    }
}

fn veil_json(a: &AttestedCert) -> Value {
    json!({
        "session": a.subject.session,
        "service": a.subject.service,
        "tee": a.subject.tee,
        "measurement": hex::encode(&a.subject.measurement),
        "ca_fingerprint": a.issuer_fingerprint.to_string(),
    })
}

fn text(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    let list = |k: &str| -> Vec<String> {
        v["sans"][k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = String::new();
    out.push_str(&format!("subject       {}\n", s("subject")));
    out.push_str(&format!("issuer        {}\n", s("issuer")));
    out.push_str(&format!("serial        {}\n", s("serial")));
    let valid = if v["valid_now"].as_bool() == Some(true) {
        "valid now"
    } else {
        "NOT valid now"
    };
    out.push_str(&format!("not before    {}\n", s("not_before")));
    out.push_str(&format!("not after     {}  ({valid})\n", s("not_after")));
    let mut names = list("dns");
    names.extend(list("ip"));
    names.extend(list("other"));
    let names = if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    };
    out.push_str(&format!("SANs          {names}\n"));
    out.push_str(&format!(
        "public key    sha256:{}\n",
        s("public_key_sha256")
    ));
    if let Some(veil) = v["veil"].as_object() {
        let f = |k: &str| veil.get(k).and_then(Value::as_str).unwrap_or("");
        out.push_str("Veil attestation extension (not verified against a CA):\n");
        out.push_str(&format!("  session       {}\n", f("session")));
        out.push_str(&format!("  service       {}\n", f("service")));
        out.push_str(&format!("  tee           {}\n", f("tee")));
        out.push_str(&format!("  measurement   {}\n", f("measurement")));
        out.push_str(&format!("  issuing CA    sha256:{}\n", f("ca_fingerprint")));
    }
    if let Some(r) = v["ratls"].as_object() {
        let f = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("?");
        let binds = match r.get("binds_key").and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "unknown",
        };
        out.push_str(&format!("{} (not verified):\n", f("kind")));
        out.push_str(&format!("  tee           {}\n", f("tee")));
        if let Some(len) = r.get("fields").and_then(|f| f.get("evidence_len")) {
            out.push_str(&format!("  evidence      {len} bytes\n"));
        }
        if let Some(fmt) = r.get("evidence_format").and_then(Value::as_object) {
            let g = |k: &str| fmt.get(k).and_then(Value::as_str).unwrap_or("?");
            match fmt.get("tag").and_then(Value::as_u64) {
                Some(tag) => out.push_str(&format!(
                    "  format        {}, CBOR tag {tag} ({}) in {}\n",
                    g("evidence"),
                    g("tag_name"),
                    g("extension")
                )),
                None => out.push_str(&format!(
                    "  format        {}, legacy extension {}\n",
                    g("evidence"),
                    g("extension")
                )),
            }
        }
        out.push_str(&format!("  report data   {}\n", f("report_data")));
        out.push_str(&format!("  binds key     {binds}\n"));
        let checks = r
            .get("binding")
            .and_then(|b| b.get("checks"))
            .and_then(Value::as_array);
        for c in checks.into_iter().flatten() {
            let g = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("-");
            out.push_str(&format!(
                "  binding       {}: {}\n",
                g("check"),
                g("result")
            ));
            out.push_str(&format!("    expected    {}\n", g("expected")));
            out.push_str(&format!("    found       {}\n", g("found")));
        }
        if let Some(notes) = r.get("notes").and_then(Value::as_array) {
            for n in notes.iter().filter_map(Value::as_str) {
                out.push_str(&format!("note: {n}\n"));
            }
        }
    }
    if let Some(c) = v["verified"].as_object() {
        let g = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("?");
        let tee = c.get("tee").and_then(Value::as_str).unwrap_or("?");
        out.push_str(&format!(
            "RA-TLS evidence verified: genuine {tee} evidence\n"
        ));
        if c.get("insecure").and_then(Value::as_bool) == Some(true) {
            out.push_str("  WARNING: simulated TEE: no hardware protection; only development policies accept it\n");
        }
        out.push_str(&format!("  tee           {tee}\n"));
        out.push_str(&format!("  measurement   {}\n", g("measurement")));
        out.push_str(&format!(
            "  debug         {}\n",
            c.get("debug").and_then(Value::as_bool).unwrap_or(false)
        ));
        out.push_str(&format!("  tcb status    {}\n", g("tcb_status")));
        out.push_str(&format!("  report data   {}\n", g("report_data_check")));
        out.push_str(&format!("  Veil extension {}\n", g("veil_extension")));
    }
    if v["veil"].is_null() && v["ratls"].is_null() {
        out.push_str("no Veil or RA-TLS claims: a plain certificate\n");
    }
    out
}

fn write_stdout(s: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Usage(format!("cannot write to stdout: {e}")))
}

pub fn proxy(args: Box<TlsProxyArgs>) -> Result<(), Failure> {
    let cert = cert_source(&args.cert, &args.key)?;
    let rule = peer_rule(&args)?;
    let limits = Limits::new(
        Duration::from_secs(args.handshake_timeout),
        usize::try_from(args.max_connections).unwrap_or(usize::MAX),
    );
    let grace = Duration::from_secs(args.shutdown_grace);
    let net = |e: veil_netshield::NetError| Failure::Usage(e.to_string());
    let rt = runtime()?;
    rt.block_on(async {
        let tunnel = match (&args.listen, &args.to, &args.plain_listen, &args.remote) {
            (Some(listen), Some(to), None, None) => {
                let to = resolve(to, "--to")?;
                let auth = if args.danger_no_client_auth {
                    eprintln!(
                        "veil: WARNING: --danger-no-client-auth: clients are not authenticated"
                    );
                    ClientAuth::DangerNone
                } else {
                    ClientAuth::Required(rule)
                };
                let config = veil_netshield::server_config(cert, auth, Vec::new()).map_err(net)?;
                let listener = bind(listen, "--listen").await?;
                veil_netshield::inbound(listener, to, config, limits).map_err(net)?
            }
            (None, None, Some(listen), Some(remote)) => {
                let remote_addr = resolve(remote, "--remote")?;
                let name = match &args.server_name {
                    Some(n) => n.clone(),
                    None => host_of(remote),
                };
                let config = veil_netshield::client_config(cert, rule, Vec::new()).map_err(net)?;
                let listener = bind(listen, "--plain-listen").await?;
                veil_netshield::outbound(listener, remote_addr, &name, config, limits)
                    .map_err(net)?
            }
            _ => return Err(Failure::Usage(
                "give either --listen and --to (inbound) or --plain-listen and --remote (outbound)"
                    .into(),
            )),
        };
        eprintln!("listening on {}", tunnel.local_addr());
        shutdown_signal().await;
        eprintln!(
            "veil: stopping (up to {}s for open connections)",
            grace.as_secs()
        );
        tunnel.shutdown(grace).await;
        Ok(())
    })
}

/// Our chain (every `CERTIFICATE` block of `cert`, end entity first) and
/// key (the `PRIVATE KEY` block of `key`), checked to belong together.
fn cert_source(cert: &Path, key: &Path) -> Result<Arc<CertSource>, Failure> {
    let certs = pem_blocks(cert, "CERTIFICATE")?;
    let keys = pem_blocks(key, "PRIVATE KEY")?;
    let mut certs = certs.into_iter();
    let (Some(leaf), Some(key_der)) = (certs.next(), keys.into_iter().next()) else {
        return Err(Failure::Usage("unreachable: empty PEM blocks".into()));
    };
    let id = veil_ca::Identity::from_parts(leaf, Zeroizing::new(key_der)).map_err(|e| {
        Failure::Usage(format!(
            "{} and {} do not make an identity: {e}",
            cert.display(),
            key.display()
        ))
    })?;
    let first = id.cert_der();
    let mut chain = Vec::new();
    for c in certs {
        chain.push(same_type(&first, c));
    }
    chain.insert(0, first);
    CertSource::new(chain, id.key_der())
        .map_err(|e| Failure::Usage(format!("{}: {e}", cert.display())))
}

/// `T::from(v)` for the type of `_like`: the rustls certificate type without
/// naming its crate.
fn same_type<T: From<Vec<u8>>>(_like: &T, v: Vec<u8>) -> T {
    T::from(v)
}

/// The contents of every `tag` block of the PEM file at `path` (at least one).
fn pem_blocks(path: &Path, tag: &str) -> Result<Vec<Vec<u8>>, Failure> {
    let bytes = Zeroizing::new(read_file(path)?);
    let blocks = pem::parse_many(&*bytes)
        .map_err(|e| Failure::Usage(format!("{}: not valid PEM: {e}", path.display())))?;
    let found: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|p| p.tag() == tag)
        .map(pem::Pem::into_contents)
        .collect();
    if found.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: no {tag} block",
            path.display()
        )));
    }
    Ok(found)
}

fn peer_rule(args: &TlsProxyArgs) -> Result<PeerRule, Failure> {
    let ca = pem_blocks(&args.ca, "CERTIFICATE")?;
    let ca = ca.into_iter().next().unwrap_or_default();
    let mut rule =
        PeerRule::new(ca).map_err(|e| Failure::Usage(format!("{}: {e}", args.ca.display())))?;
    if let Some(s) = &args.peer_session {
        rule = rule.session(s.as_str());
    }
    if let Some(s) = &args.peer_service {
        rule = rule.service(s.as_str());
    }
    if let Some(m) = &args.peer_measurement {
        rule = rule
            .measurement_hex(m)
            .map_err(|e| Failure::Usage(format!("--peer-measurement: {e}")))?;
    }
    Ok(rule)
}

fn resolve(addr: &str, flag: &str) -> Result<SocketAddr, Failure> {
    addr.to_socket_addrs()
        .map_err(|e| Failure::Usage(format!("{flag} {addr}: {e}")))?
        .next()
        .ok_or_else(|| Failure::Usage(format!("{flag} {addr}: no address")))
}

async fn bind(addr: &str, flag: &str) -> Result<tokio::net::TcpListener, Failure> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Usage(format!("{flag} {addr}: cannot listen: {e}")))
}

/// The host part of HOST:PORT (brackets of an IPv6 literal removed).
fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("db.example:443"), "db.example");
        assert_eq!(host_of("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host_of("[::1]:80"), "::1");
    }
}
