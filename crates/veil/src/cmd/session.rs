//! `veil session apply|get|list|diff|approve`, `veil secret put`.

use std::io::Read;

use hyper::Method;

use crate::cli::{
    SecretPutArgs, SessionApproveArgs, SessionFileArgs, SessionGetArgs, SessionListArgs,
};
use crate::cmd::read_file;
use crate::config::{client, runtime};
use crate::failure::Failure;

fn policy(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    read_file(path)
}

fn split_name(name: &str) -> Result<(&str, &str), Failure> {
    name.split_once('/')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('/'))
        .ok_or_else(|| Failure::Usage(format!("session name {name:?} must be namespace/name")))
}

pub fn apply(args: SessionFileArgs) -> Result<(), Failure> {
    let body = policy(&args.file)?;
    let c = client(&args.cas, true)?;
    let rt = runtime()?;
    let bytes = rt.block_on(c.call(
        Method::POST,
        "/v1/sessions",
        Some((body, "application/yaml")),
    ))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::Usage(format!("unexpected answer: {e}")))?;
    if args.json {
        println!("{v}");
    } else if v["state"] == "pending" {
        println!(
            "session {} update {} is pending: {} of {} approvals (owners approve with `veil session approve {} {}`)",
            v["name"].as_str().unwrap_or("?"),
            v["hash"].as_str().unwrap_or("?"),
            v["approvals"],
            v["needed"],
            v["name"].as_str().unwrap_or("?"),
            v["hash"].as_str().unwrap_or("?"),
        );
    } else {
        println!(
            "session {} is active at {}",
            v["name"].as_str().unwrap_or("?"),
            v["hash"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

pub fn get(args: SessionGetArgs) -> Result<(), Failure> {
    let (ns, name) = split_name(&args.name)?;
    let c = client(&args.cas, true)?;
    let rt = runtime()?;
    let v: serde_json::Value = rt.block_on(c.get(&format!("/v1/sessions/{ns}/{name}")))?;
    if args.json {
        println!("{v}");
        return Ok(());
    }
    println!(
        "session {} version {}",
        v["name"].as_str().unwrap_or("?"),
        v["version"]
    );
    println!("  hash      {}", v["hash"].as_str().unwrap_or("?"));
    println!("  owners    {}", v["owners"]);
    println!("  services  {}", v["services"]);
    println!("  secrets   {}", v["secrets"]);
    if !v["pending"].is_null() {
        println!("  pending   {}", v["pending"]);
    }
    Ok(())
}

pub fn list(args: SessionListArgs) -> Result<(), Failure> {
    let c = client(&args.cas, true)?;
    let rt = runtime()?;
    let v: serde_json::Value = rt.block_on(c.get("/v1/sessions"))?;
    if args.json {
        println!("{v}");
        return Ok(());
    }
    for s in v["sessions"].as_array().into_iter().flatten() {
        println!(
            "{}  version {}  {}",
            s["name"].as_str().unwrap_or("?"),
            s["version"],
            s["hash"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

pub fn diff(args: SessionFileArgs) -> Result<(), Failure> {
    let body = policy(&args.file)?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let name = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("name:"))
        .map(|n| n.trim().trim_matches('"').trim_matches('\'').to_owned())
        .ok_or_else(|| Failure::Usage(format!("{}: no `name:` line", args.file.display())))?;
    let (ns, n) = split_name(&name)?;
    let c = client(&args.cas, true)?;
    let rt = runtime()?;
    let bytes = rt.block_on(c.call(
        Method::POST,
        &format!("/v1/sessions/{ns}/{n}/diff"),
        Some((body, "application/yaml")),
    ))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::Usage(format!("unexpected answer: {e}")))?;
    if args.json {
        println!("{v}");
    } else if v["new"] == true {
        println!("{name} does not exist (or you do not own it): applying creates it");
    } else {
        for ch in v["changes"].as_array().into_iter().flatten() {
            println!("  {}", ch.as_str().unwrap_or("?"));
        }
    }
    Ok(())
}

pub fn approve(args: SessionApproveArgs) -> Result<(), Failure> {
    let (ns, name) = split_name(&args.name)?;
    let c = client(&args.cas, true)?;
    let rt = runtime()?;
    let v: serde_json::Value = rt.block_on(c.post(
        &format!("/v1/sessions/{ns}/{name}/approve"),
        &serde_json::json!({ "hash": args.hash }),
    ))?;
    println!(
        "session {}: {} ({} of {} approvals)",
        args.name,
        v["state"].as_str().unwrap_or("?"),
        v["approvals"],
        v["needed"]
    );
    Ok(())
}

pub fn put_secret(args: SecretPutArgs) -> Result<(), Failure> {
    let (ns, name) = split_name(&args.session)?;
    let value = zeroize::Zeroizing::new(match &args.file {
        Some(p) => read_file(p)?,
        None => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .map_err(|e| Failure::Usage(format!("cannot read standard input: {e}")))?;
            v
        }
    });
    let c = client(&args.cas, true)?;
    let rt = runtime()?;
    rt.block_on(c.call(
        Method::PUT,
        &format!("/v1/sessions/{ns}/{name}/secrets/{}", args.secret),
        Some((value.to_vec(), "application/octet-stream")),
    ))?;
    println!(
        "stored {} of {} ({} bytes)",
        args.secret,
        args.session,
        value.len()
    );
    Ok(())
}
