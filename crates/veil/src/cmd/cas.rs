//! `veil cas serve|verify|status`.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use veil_attest::{Endorsement, Evidence, Tee, Time};
use veil_client::{danger, CasClient};

use crate::cli::{CasInitArgs, CasServeArgs, CasStatusArgs, CasUnsealArgs, CasVerifyArgs};
use crate::config::{client, runtime, PinnedCas, Pins};
use crate::failure::Failure;

pub fn serve(args: CasServeArgs) -> Result<(), Failure> {
    let listen: SocketAddr = args.listen.parse().map_err(|e| {
        Failure::Usage(format!(
            "--listen {:?}: {e} (expected IP:PORT)",
            args.listen
        ))
    })?;
    if !args.dev && !args.trust_sim_keys.is_empty() {
        return Err(Failure::Usage("--trust-sim-key needs --dev".into()));
    }
    let mut trust_sim_keys = Vec::new();
    for path in &args.trust_sim_keys {
        let bytes = crate::cmd::read_file(path)?;
        match Endorsement::from_file_bytes(&bytes) {
            Ok(Endorsement::SimPlatformKey(k)) => trust_sim_keys.push(k),
            _ => {
                return Err(Failure::Usage(format!(
                    "{} is not a sim platform public key",
                    path.display()
                )))
            }
        }
    }
    let config = veil_cas::ServeConfig {
        state_dir: args.state.clone(),
        listen,
        dev: args.dev,
        trust_sim_keys,
        nonce_ttl: Duration::from_secs(60),
        launcher_cert_validity: Duration::from_secs(args.launcher_cert_validity),
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let bound = veil_cas::bind(&config)
            .await
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let url = format!("https://{}", bound.addr);
        if args.dev {
            eprintln!(
                "WARNING: development mode: sim TEE, sealing key in {}; nothing here is protected",
                args.state.display()
            );
        }
        println!("CAS listening on {url}");
        let fingerprint = match &bound.fingerprint {
            Some(fp) => {
                println!("certificate fingerprint (SHA-256) {fp}");
                fp.clone()
            }
            None => {
                println!("the CAS is SEALED: its sealing key is gone; owners unseal it with `veil cas unseal {url} --share FILE`");
                "sealed".to_owned()
            }
        };
        if let Some(path) = &args.ready_file {
            std::fs::write(path, format!("{url} {fingerprint}\n"))
                .map_err(|e| Failure::io("cannot write", path, e))?;
        }
        bound
            .serve(shutdown_signal())
            .await
            .map_err(|e| Failure::Usage(e.to_string()))
    })
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

pub fn verify(args: CasVerifyArgs) -> Result<(), Failure> {
    let url = args.url.trim_end_matches('/').to_owned();
    let expected = args
        .expect_measurement
        .as_deref()
        .map(|h| {
            hex::decode(h.trim()).map_err(|e| Failure::Usage(format!("--expect-measurement: {e}")))
        })
        .transpose()?;
    let rt = runtime()?;
    let pinned = rt.block_on(async {
        let c = CasClient::first_contact(&url, danger::FirstContact)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let nonce: [u8; 32] = {
            let mut n = [0u8; 32];
            ring_fill(&mut n)?;
            n
        };
        let ev: veil_api::CasEvidence = c
            .get(&format!("/v1/cas/evidence?nonce={}", hex::encode(nonce)))
            .await?;
        let seen = c.seen_certificates();
        let (leaf, ca) = match seen.as_slice() {
            [leaf, ca, ..] => (leaf.clone(), ca.clone()),
            _ => {
                return Err(Failure::NotAcceptable(
                    "the CAS presented no certificate chain (leaf and CA)".into(),
                ))
            }
        };
        check_cas_evidence(&ev, &nonce, &leaf, args.dev, expected.as_deref()).map(
            |(tee, measurement)| PinnedCas {
                certificate_sha256: hex::encode(veil_client::cert_sha256(&ca)),
                tee: tee.to_string(),
                measurement: hex::encode(measurement),
                verified_at: Time::now().unix(),
            },
        )
    })?;
    let mut pins = Pins::load()?;
    println!(
        "CAS at {url} is genuine: {} measurement {}",
        pinned.tee, pinned.measurement
    );
    println!(
        "pinned certificate fingerprint (SHA-256) {}",
        pinned.certificate_sha256
    );
    pins.cas.insert(url.clone(), pinned);
    pins.default = Some(url);
    pins.save()
}

fn ring_fill(buf: &mut [u8]) -> Result<(), Failure> {
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
        .map_err(|_| Failure::Usage("the system random generator failed".into()))
}

/// Checks the CAS's evidence: genuine, binding our nonce and the TLS key we
/// saw, and of the expected measurement (or, with `dev`, sim evidence).
fn check_cas_evidence(
    ev: &veil_api::CasEvidence,
    nonce: &[u8; 32],
    leaf: &[u8],
    dev: bool,
    expected: Option<&[u8]>,
) -> Result<(Tee, Vec<u8>), Failure> {
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| Failure::NotAcceptable(format!("the CAS sent invalid base64: {e}")))
    };
    if ev.tee == Tee::Sim && !dev {
        return Err(Failure::NotAcceptable(
            "the CAS runs in the simulated TEE (no protection); pass --dev to accept it for development".into(),
        ));
    }
    let mut sim_keys = Vec::new();
    if ev.tee == Tee::Sim {
        let key = ev.sim_platform_key.as_deref().ok_or_else(|| {
            Failure::NotAcceptable("sim CAS evidence without its platform key".into())
        })?;
        let mut k = [0u8; 32];
        hex::decode_to_slice(key, &mut k).map_err(|_| {
            Failure::NotAcceptable("the sim platform key is not 64 hex digits".into())
        })?;
        sim_keys.push(k);
    }
    let mut endorsements = Vec::new();
    for e in &ev.endorsements {
        endorsements.push(match e {
            veil_api::WireEndorsement::DcapCollateral(d) => Endorsement::DcapCollateral(b64(d)?),
            veil_api::WireEndorsement::Certificate(d) => Endorsement::Certificates(vec![b64(d)?]),
        });
    }
    let registry = veil_verifiers::registry(&veil_verifiers::Options { sim_keys });
    let claims = registry.verify(
        &Evidence {
            tee: ev.tee,
            bytes: b64(&ev.evidence)?,
        },
        &endorsements,
        Time::now(),
    )?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
        Failure::NotAcceptable(format!("the CAS TLS certificate does not parse: {e}"))
    })?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    let want = veil_api::report_data(veil_api::CAS_EVIDENCE_DOMAIN, nonce, spki, &[0; 32]);
    veil_attest::check_report_data(&claims, &want).map_err(|e| {
        Failure::NotAcceptable(format!(
            "the CAS evidence does not bind this TLS connection's key and our nonce: {e}"
        ))
    })?;
    if let Some(m) = expected {
        if claims.measurement != m {
            return Err(Failure::NotAcceptable(format!(
                "CAS measurement mismatch: expected {}, found {}",
                hex::encode(m),
                hex::encode(&claims.measurement)
            )));
        }
    }
    if claims.debug {
        return Err(Failure::NotAcceptable("the CAS runs in a debug TEE".into()));
    }
    Ok((claims.tee, claims.measurement))
}

pub fn init(args: CasInitArgs) -> Result<(), Failure> {
    let key_path = args.state.join("sealing.key");
    let key = veil_store::SealingKey::load_key_file(&key_path)
        .map_err(|e| Failure::Usage(format!("{}: {e}", key_path.display())))?;
    if args.recipients.len() != usize::from(args.recovery_shares) {
        return Err(Failure::Usage(format!(
            "--recovery-shares {} needs exactly that many --recipient certificates, got {}",
            args.recovery_shares,
            args.recipients.len()
        )));
    }
    let mut recipients = Vec::new();
    for path in &args.recipients {
        let text = crate::cmd::read_file(path)?;
        let der = pem::parse_many(&text)
            .ok()
            .and_then(|blocks| blocks.into_iter().find(|b| b.tag() == "CERTIFICATE"))
            .map(|b| b.into_contents())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "{}: no CERTIFICATE in it (use `veil identity show --cert`)",
                    path.display()
                ))
            })?;
        recipients.push(
            veil_recovery::RecipientKey::from_cert_der(&der)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
        );
    }
    let set = veil_recovery::split(&key.dangerous_raw_bytes(), args.threshold, &recipients)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let record =
        serde_json::to_vec_pretty(&set.record()).map_err(|e| Failure::Usage(e.to_string()))?;
    let record_path = args.state.join(veil_cas::sealed::RECOVERY_FILE);
    std::fs::write(&record_path, record)
        .map_err(|e| Failure::io("cannot write", &record_path, e))?;
    std::fs::create_dir_all(&args.out).map_err(|e| Failure::io("cannot create", &args.out, e))?;
    for share in set.shares() {
        let path = args.out.join(format!("share-{}.json", share.index));
        std::fs::write(&path, share.to_json())
            .map_err(|e| Failure::io("cannot write", &path, e))?;
        println!("wrote {} for {}", path.display(), share.recipient);
    }
    println!(
        "any {} of the {} owners can unseal this CAS with `veil cas unseal URL --share FILE` if its sealing key is lost",
        args.threshold, args.recovery_shares
    );
    Ok(())
}

pub fn unseal(args: CasUnsealArgs) -> Result<(), Failure> {
    let url = args.url.trim_end_matches('/').to_owned();
    let text = String::from_utf8(crate::cmd::read_file(&args.share)?)
        .map_err(|_| Failure::Usage(format!("{} is not text", args.share.display())))?;
    let share = veil_recovery::EncryptedShare::from_json(&text)
        .map_err(|e| Failure::Usage(format!("{}: {e}", args.share.display())))?;
    let id = crate::config::load_identity()?.ok_or_else(|| {
        Failure::Usage("unsealing needs your identity: the share is encrypted to it".into())
    })?;
    let plain = veil_recovery::decrypt_share(&share, id.key_der().secret_der()).map_err(|e| {
        Failure::NotAcceptable(format!("cannot decrypt {}: {e}", args.share.display()))
    })?;
    let expected = args
        .expect_measurement
        .as_deref()
        .map(|h| {
            hex::decode(h.trim()).map_err(|e| Failure::Usage(format!("--expect-measurement: {e}")))
        })
        .transpose()?;
    let rt = runtime()?;
    let answer: serde_json::Value = rt.block_on(async {
        // Shares go only to a CAS whose evidence binds the TLS key we talk to.
        let c = CasClient::first_contact(&url, danger::FirstContact)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let mut nonce = [0u8; 32];
        ring_fill(&mut nonce)?;
        let ev: veil_api::CasEvidence = c
            .get(&format!("/v1/cas/evidence?nonce={}", hex::encode(nonce)))
            .await?;
        let leaf = c
            .seen_certificates()
            .first()
            .cloned()
            .ok_or_else(|| Failure::NotAcceptable("the CAS presented no certificate".into()))?;
        check_cas_evidence(&ev, &nonce, &leaf, args.dev, expected.as_deref())?;
        // The share goes with our identity: the CAS takes each owner's
        // share only from that owner.
        let me = veil_client::ClientIdentity {
            chain: vec![id.cert_der()],
            key: id.key_der(),
        };
        let pinned = CasClient::new(
            &url,
            veil_client::Trust::Pinned(veil_client::cert_sha256(&leaf)),
            Some(me),
        )
        .map_err(|e| Failure::Usage(e.to_string()))?;
        let body = serde_json::json!({ "share": plain.to_transport().as_str() });
        pinned
            .post("/v1/recovery/share", &body)
            .await
            .map_err(Failure::from)
    })?;
    match answer["state"].as_str() {
        Some("unsealed") => println!(
            "the CAS at {url} is unsealed; run `veil cas verify {url}` again to pin its identity"
        ),
        _ => println!(
            "share accepted: {} of {} shares",
            answer["have"], answer["need"]
        ),
    }
    Ok(())
}

pub fn status(args: CasStatusArgs) -> Result<(), Failure> {
    let c = client(&args.cas, false)?;
    let rt = runtime()?;
    let v: serde_json::Value = rt.block_on(c.get("/v1/status"))?;
    if args.json {
        println!("{v}");
    } else {
        println!("CAS {}: {}", c.url(), v["status"].as_str().unwrap_or("?"));
        println!("  tee          {}", v["tee"].as_str().unwrap_or("?"));
        println!("  sessions     {}", v["sessions"]);
        println!(
            "  fingerprint  {}",
            v["fingerprint"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
