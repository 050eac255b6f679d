//! `veil volume accept|list`: the freshness tags the CAS holds for a
//! session's volumes, for its owners (mutual TLS with the client identity).

use crate::cli::{VolumeAcceptArgs, VolumeListArgs};
use crate::cmd::fs::split_session;
use crate::config::{client, runtime};
use crate::failure::Failure;

pub fn accept(a: VolumeAcceptArgs) -> Result<(), Failure> {
    split_session(&a.session)?;
    let tag = match &a.tag {
        Some(t) => {
            let t = t.trim().to_ascii_lowercase();
            if !veil_api::is_volume_tag(&t) {
                return Err(Failure::Usage(format!(
                    "--tag {t:?} is not a volume tag: expected 64 hex digits (from `veil fs tag`)"
                )));
            }
            Some(t)
        }
        None => None,
    };
    let c = client(&a.cas, true)?;
    let rt = runtime()?;
    let r: veil_api::VolumeAccepted = rt.block_on(c.post(
        &veil_api::volume_accept_path(&a.session, &a.service, &a.volume),
        &veil_api::VolumeAccept { tag },
    ))?;
    if a.json {
        let v = serde_json::to_string(&r)
            .map_err(|e| Failure::Usage(format!("cannot encode the answer: {e}")))?;
        println!("{v}");
    } else {
        let shown = |t: &Option<String>| t.clone().unwrap_or_else(|| "no tag".to_owned());
        println!(
            "volume {} of service {} in {}: the CAS holds {} (before: {}); audit record {}",
            r.volume,
            r.service,
            r.session,
            shown(&r.tag),
            shown(&r.previous),
            r.audit_seq
        );
    }
    Ok(())
}

pub fn list(a: VolumeListArgs) -> Result<(), Failure> {
    split_session(&a.session)?;
    let c = client(&a.cas, true)?;
    let rt = runtime()?;
    let r: veil_api::VolumeList = rt.block_on(c.get(&veil_api::volumes_path(&a.session)))?;
    if a.json {
        let v = serde_json::to_string(&r)
            .map_err(|e| Failure::Usage(format!("cannot encode the answer: {e}")))?;
        println!("{v}");
        return Ok(());
    }
    if r.volumes.is_empty() {
        println!("{} declares no volume", a.session);
    }
    for v in &r.volumes {
        println!(
            "{}  {}  {}",
            v.service,
            v.volume,
            v.tag.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
