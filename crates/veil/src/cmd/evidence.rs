//! `veil evidence verify|show|collect`.

use std::io::Write;
use std::path::Path;

use veil_attest::{check_report_data, Claims, Endorsement, Evidence, ReportData, Tee, Time};
use veil_provider::{ProviderChoice, ProviderConfig};

use crate::cli::{CollectArgs, CollectTee, ShowArgs, VerifyArgs};
use crate::cmd::{read_file, veil_home};
use crate::failure::Failure;

pub fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let tee: Tee = args.tee.into();
    let bytes = read_file(&args.evidence)?;
    let mut endorsements = Vec::new();
    for path in &args.endorsements {
        let e = Endorsement::from_file_bytes(&read_file(path)?)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
        endorsements.push(e);
    }
    let expected = args
        .expect_report_data
        .as_deref()
        .map(ReportData::from_hex)
        .transpose()
        .map_err(|e| Failure::Usage(format!("--expect-report-data: {e}")))?;
    let at = args.at.unwrap_or_else(Time::now);
    // The operator names the sim platform keys to trust on the command line.
    let sim_keys = endorsements
        .iter()
        .filter_map(|e| match e {
            Endorsement::SimPlatformKey(k) => Some(*k),
            _ => None,
        })
        .collect();
    let registry = veil_verifiers::registry(&veil_verifiers::Options { sim_keys });
    let evidence = Evidence { tee, bytes };
    let claims = registry.verify(&evidence, &endorsements, at)?;
    if let Some(expected) = &expected {
        check_report_data(&claims, expected)
            .map_err(|e| Failure::NotAcceptable(format!("evidence is not acceptable: {e}")))?;
    }
    if args.json {
        print_json(&verify_json(&claims))
    } else {
        print_text(&claims)
    }
}

fn verify_json(c: &Claims) -> serde_json::Value {
    serde_json::json!({
        "genuine": true,
        "tee": c.tee,
        "insecure": c.insecure,
        "verified_at": c.verified_at.unix(),
        "tcb_status": c.tcb_status,
        "advisories": c.advisories,
        "debug": c.debug,
        "measurement": hex::encode(&c.measurement),
        "report_data": c.report_data.to_hex(),
        "claims": c,
    })
}

fn print_json(v: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Failure::Usage(format!("cannot encode JSON: {e}")))?;
    write_stdout(&format!("{text}\n"))
}

fn write_stdout(s: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Usage(format!("cannot write to stdout: {e}")))
}

fn print_text(c: &Claims) -> Result<(), Failure> {
    let mut s = format!("genuine {} evidence at {}\n", c.tee, c.verified_at);
    if c.insecure {
        s.push_str("  WARNING: simulated TEE: no hardware protection; only development policies accept it\n");
    }
    s.push_str(&format!(
        "  measurement   {}\n",
        hex::encode(&c.measurement)
    ));
    if let Some(signer) = &c.signer {
        s.push_str(&format!("  signer        {}\n", hex::encode(signer)));
    }
    if let Some(p) = c.product_id {
        s.push_str(&format!("  product id    {p}\n"));
    }
    if let Some(v) = c.svn {
        s.push_str(&format!("  svn           {v}\n"));
    }
    s.push_str(&format!("  debug         {}\n", c.debug));
    s.push_str(&format!("  tcb status    {}\n", c.tcb_status));
    if !c.advisories.is_empty() {
        s.push_str(&format!("  advisories    {}\n", c.advisories.join(", ")));
    }
    s.push_str(&format!("  report data   {}\n", c.report_data));
    if let Some(id) = &c.platform_id {
        s.push_str(&format!("  platform id   {}\n", hex::encode(id)));
    }
    write_stdout(&s)
}

pub fn show(args: ShowArgs) -> Result<(), Failure> {
    let bytes = read_file(&args.file)?;
    let shown = veil_verifiers::show(&bytes)
        .map_err(|e| Failure::NotAcceptable(format!("{}: {e}", args.file.display())))?;
    if args.json {
        return print_json(
            &serde_json::to_value(&shown)
                .map_err(|e| Failure::Usage(format!("cannot encode JSON: {e}")))?,
        );
    }
    let mut s = format!("{} (not verified)\n", shown.kind);
    flatten(&shown.fields, "", &mut s);
    for note in &shown.notes {
        s.push_str(&format!("note: {note}\n"));
    }
    write_stdout(&s)
}

/// Writes a JSON value as `path: value` lines.
fn flatten(v: &serde_json::Value, prefix: &str, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, &p, out);
            }
        }
        serde_json::Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, v) in a.iter().enumerate() {
                flatten(v, &format!("{prefix}[{i}]"), out);
            }
        }
        other => out.push_str(&format!("  {prefix}: {other}\n")),
    }
}

pub fn collect(args: CollectArgs) -> Result<(), Failure> {
    let report_data = ReportData::from_hex(&args.report_data)
        .map_err(|e| Failure::Usage(format!("--report-data: {e}")))?;
    let sim_measurement = match &args.sim_measurement {
        Some(h) => {
            let b = hex::decode(h.trim())
                .map_err(|e| Failure::Usage(format!("--sim-measurement is not hex: {e}")))?;
            <[u8; 48]>::try_from(b.as_slice()).map_err(|_| {
                Failure::Usage(format!(
                    "--sim-measurement must be 48 bytes (96 hex digits), got {}",
                    b.len()
                ))
            })?
        }
        None => own_measurement()?,
    };
    let (choice, root, sim_dir) = match args.tee {
        CollectTee::Sim => (
            ProviderChoice::Tee(Tee::Sim),
            "/".into(),
            args.root.unwrap_or_else(|| veil_home().join("sim")),
        ),
        other => {
            let choice = match other {
                CollectTee::Snp => ProviderChoice::Tee(Tee::Snp),
                CollectTee::Tdx => ProviderChoice::Tee(Tee::Tdx),
                CollectTee::Sgx => ProviderChoice::Tee(Tee::Sgx),
                _ => ProviderChoice::Auto,
            };
            (
                choice,
                args.root.unwrap_or_else(|| "/".into()),
                veil_home().join("sim"),
            )
        }
    };
    let config = ProviderConfig {
        root,
        sim_dir,
        sim_measurement,
    };
    let provider = veil_provider::provider(choice, &config)?;
    let collected = provider.collect(&report_data)?;
    write_file(&args.output, &collected.evidence.bytes)?;
    eprintln!(
        "wrote {} evidence ({} bytes) to {}",
        collected.evidence.tee,
        collected.evidence.bytes.len(),
        args.output.display()
    );
    if let Some(path) = &args.endorsement_out {
        let mut pem_text = String::new();
        for e in &collected.endorsements {
            if let Endorsement::Certificates(certs) = e {
                for c in certs {
                    pem_text.push_str(&pem_encode_cert(c));
                }
            }
        }
        write_file(path, pem_text.as_bytes())?;
    }
    Ok(())
}

fn pem_encode_cert(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| Failure::io("cannot write", path, e))
}

/// SHA-384 of the running veil executable: what the sim TEE "launched".
fn own_measurement() -> Result<[u8; 48], Failure> {
    veil_provider::own_measurement()
        .map_err(|e| Failure::Usage(format!("cannot measure the veil executable: {e}")))
}
