//! `veil audit show|verify`.

use crate::cli::{AuditShowArgs, AuditVerifyArgs};
use crate::config::{client, runtime};
use crate::failure::Failure;

fn fetch(cas: &crate::cli::CasUrl) -> Result<(String, Vec<u8>), Failure> {
    let c = client(cas, true)?;
    let rt = runtime()?;
    let (text, status) = rt.block_on(async {
        let text = c.audit_export().await?;
        let status: serde_json::Value = c.get("/v1/status").await?;
        Ok::<_, veil_client::ClientError>((text, status))
    })?;
    let key = status["audit_public_key"]
        .as_str()
        .and_then(|k| hex::decode(k).ok())
        .ok_or_else(|| Failure::Usage("the CAS status has no audit public key".into()))?;
    Ok((text, key))
}

pub fn show(args: AuditShowArgs) -> Result<(), Failure> {
    let (text, key) = fetch(&args.cas)?;
    let chain = veil_store::audit::verify_export(&text, &key)
        .map_err(|e| Failure::NotAcceptable(format!("the audit log does not verify: {e}")))?;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let rec = if v.get("record").is_some() {
            &v["record"]
        } else {
            &v
        };
        if rec.get("seq").is_none() {
            continue;
        }
        if let Some(s) = &args.session {
            if rec["subject"].as_str() != Some(s.as_str()) {
                continue;
            }
        }
        if args.json {
            println!("{rec}");
        } else {
            println!(
                "#{} t={}ms {} {} by {} {}",
                rec["seq"],
                rec["time_ms"],
                rec["kind"].as_str().unwrap_or("?"),
                rec["subject"].as_str().unwrap_or("?"),
                rec["actor"].as_str().unwrap_or("?"),
                rec["detail"]
            );
        }
    }
    if !args.json {
        eprintln!("({} records, chain verified)", chain.len());
    }
    Ok(())
}

pub fn verify(args: AuditVerifyArgs) -> Result<(), Failure> {
    let (text, key) = fetch(&args.cas)?;
    let chain = veil_store::audit::verify_export(&text, &key)
        .map_err(|e| Failure::NotAcceptable(format!("the audit log does not verify: {e}")))?;
    println!(
        "audit log verified: {} records, hash chain and signatures intact",
        chain.len()
    );
    Ok(())
}
