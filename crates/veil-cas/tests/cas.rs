//! The CAS on loopback (port chosen at run time): sessions, attestation
//! grants and every denial of the spec, approvals, restart.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use base64::Engine;
use common::{identity, start, Cas};
use veil_api::{AttestRequest, AttestResponse, NonceResponse, RuntimeClaims, ATTEST_DOMAIN};
use veil_attest::{ReportData, Tee, Time};
use veil_attest_sim::{SimPlatformKey, SimStatement};
use veil_ca::Identity;
use veil_client::{CasClient, ClientError, ClientIdentity, Trust};

const MEASUREMENT: [u8; 48] = [0x11; 48];

fn policy(owners: &[&Identity], extra: &str) -> String {
    let owners: Vec<String> = owners.iter().map(|o| o.fingerprint().to_string()).collect();
    format!(
        r#"name: shop/db
version: 1
owners: [{owners}]
{extra}secrets:
  - {{ name: db_password, kind: password, length: 24 }}
  - {{ name: api_token, kind: supplied }}
  - {{ name: tls, kind: x509, issuer: session-ca, dns: [db.internal] }}
services:
  - name: app
    accept:
      - tee: sim
        measurement: {m}
    dns: [app.shop.internal]
    command: [/bin/app, "--password={{{{ db_password }}}}"]
    env:
      DB_PASSWORD: "{{{{ db_password }}}}"
      TOKEN: "{{{{ api_token | hex }}}}"
    files:
      /run/veil/tls.crt: "{{{{ tls.cert }}}}"
  - name: tdx_only
    accept:
      - tee: tdx
        measurement: {m}
    command: [/bin/app]
"#,
        owners = owners.join(", "),
        m = hex::encode(MEASUREMENT),
    )
}

async fn apply(c: &CasClient, yaml: &str) -> Result<serde_json::Value, ClientError> {
    let b = c
        .call(
            hyper::Method::POST,
            "/v1/sessions",
            Some((yaml.as_bytes().to_vec(), "application/yaml")),
        )
        .await?;
    Ok(serde_json::from_slice(&b).unwrap())
}

/// A launcher: key pair, nonce, sim evidence, attestation request.
struct Launcher {
    key: Identity,
}

impl Launcher {
    fn new() -> Self {
        Launcher { key: identity() }
    }

    fn spki(&self) -> Vec<u8> {
        let der = self.key.certificate().to_vec();
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        c.tbs_certificate.subject_pki.raw.to_vec()
    }

    async fn request(
        &self,
        cas: &Cas,
        service: &str,
        tweak: impl FnOnce(&mut SimStatement, &mut [u8; 32]),
    ) -> AttestRequest {
        self.request_claiming(cas, service, RuntimeClaims::new(), tweak)
            .await
    }

    /// Like `request`, stating (and binding) runtime claims.
    async fn request_claiming(
        &self,
        cas: &Cas,
        service: &str,
        runtime_claims: RuntimeClaims,
        tweak: impl FnOnce(&mut SimStatement, &mut [u8; 32]),
    ) -> AttestRequest {
        let c = cas.client(None);
        let n: NonceResponse = c.get("/v1/nonce").await.unwrap();
        let mut nonce = [0u8; 32];
        hex::decode_to_slice(&n.nonce, &mut nonce).unwrap();
        let mut bound_nonce = nonce;
        let spki = self.spki();
        let mut st = SimStatement {
            measurement: MEASUREMENT,
            report_data: ReportData::ZERO,
            issued_at: Time::now(),
            debug: false,
        };
        tweak(&mut st, &mut bound_nonce);
        if st.report_data == ReportData::ZERO {
            st.report_data = veil_api::report_data(
                ATTEST_DOMAIN,
                &bound_nonce,
                &spki,
                &veil_api::runtime_claims_digest(&runtime_claims),
            );
        }
        let ev = cas.sim_key().sign(&st);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        AttestRequest {
            session: "shop/db".into(),
            service: service.into(),
            nonce: hex::encode(nonce),
            tee: Tee::Sim,
            evidence: b64(&ev),
            endorsements: vec![],
            spki: b64(&spki),
            runtime_claims,
        }
    }
}

async fn attest(cas: &Cas, req: &AttestRequest) -> Result<AttestResponse, ClientError> {
    cas.client(None).post("/v1/attest", req).await
}

fn denied_reason(r: Result<AttestResponse, ClientError>) -> String {
    match r {
        Err(ClientError::Api {
            status: 403,
            code,
            reason: Some(reason),
            message,
        }) => {
            assert_eq!(code, "attestation_denied");
            assert!(!message.is_empty());
            reason
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_attestation_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let alice = identity();
    let mallory = identity();
    let owner = cas.client(Some(&alice));

    // Nothing is allowed by default: no identity, no session.
    let anon = cas.client(None);
    let err = apply(&anon, &policy(&[&alice], "")).await.unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 401, .. }), "{err}");
    // A creator must be an owner.
    let err = apply(&cas.client(Some(&mallory)), &policy(&[&alice], ""))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 403, .. }), "{err}");

    let created = apply(&owner, &policy(&[&alice], "")).await.unwrap();
    assert_eq!(created["state"], "active");
    let hash = created["hash"].as_str().unwrap().to_owned();

    // The supplied secret is stored, and never returned.
    owner
        .call(
            hyper::Method::PUT,
            "/v1/sessions/shop/db/secrets/api_token",
            Some((b"canary-token-4242".to_vec(), "application/octet-stream")),
        )
        .await
        .unwrap();
    let got: serde_json::Value = owner.get("/v1/sessions/shop/db").await.unwrap();
    assert_eq!(got["hash"], hash.as_str());
    assert!(!got.to_string().contains("canary-token-4242"));
    assert!(!got.to_string().contains(&hex::encode("canary-token-4242")));
    // A non-owner cannot see it.
    let err = cas
        .client(Some(&mallory))
        .get::<serde_json::Value>("/v1/sessions/shop/db")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 404, .. }), "{err}");

    // Granted: env, argv and files rendered, certificate for the launcher key.
    let launcher = Launcher::new();
    let req = launcher.request(&cas, "app", |_, _| {}).await;
    let resp = attest(&cas, &req).await.unwrap();
    let password = resp.env.get("DB_PASSWORD").unwrap().to_string();
    assert_eq!(password.len(), 24);
    assert_eq!(
        resp.env.get("TOKEN").unwrap().as_str(),
        hex::encode("canary-token-4242")
    );
    assert_eq!(resp.argv[1].as_str(), format!("--password={password}"));
    let file = &resp.files[0];
    assert_eq!(file.path, "/run/veil/tls.crt");
    let cert_der = pem::parse(&resp.certificate).unwrap().into_contents();
    let ca_der = pem::parse(&resp.ca).unwrap().into_contents();
    let attested = veil_ca::verify_attested_cert(&cert_der, &ca_der, Time::now()).unwrap();
    assert_eq!(attested.subject.session, "shop/db");
    assert_eq!(attested.subject.service, "app");
    assert_eq!(attested.subject.tee, Tee::Sim);
    assert_eq!(attested.subject.measurement, MEASUREMENT.to_vec());
    assert_eq!(attested.spki, launcher.spki());
    // SANs from the policy's service.
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let sans = parsed.subject_alternative_name().unwrap().unwrap();
    assert!(
        format!("{:?}", sans.value.general_names).contains("app.shop.internal"),
        "{:?}",
        sans.value.general_names
    );

    // Replayed nonce.
    assert_eq!(denied_reason(attest(&cas, &req).await), "nonce_unknown");
    // Relayed evidence: bound to another key.
    let other = Launcher::new();
    let mut relayed = launcher.request(&cas, "app", |_, _| {}).await;
    relayed.spki = base64::engine::general_purpose::STANDARD.encode(other.spki());
    assert_eq!(
        denied_reason(attest(&cas, &relayed).await),
        "report_data_mismatch"
    );
    // Evidence bound to another nonce.
    let wrong_nonce = launcher
        .request(&cas, "app", |_, n| n.copy_from_slice(&[9; 32]))
        .await;
    assert_eq!(
        denied_reason(attest(&cas, &wrong_nonce).await),
        "report_data_mismatch"
    );
    // Sim evidence where the rule does not list sim.
    let tdx_only = launcher.request(&cas, "tdx_only", |_, _| {}).await;
    let reason = denied_reason(attest(&cas, &tdx_only).await);
    assert!(
        reason == "sim_not_allowed" || reason == "tee_not_accepted",
        "{reason}"
    );
    // Debug evidence where debug is not allowed.
    let debug = launcher.request(&cas, "app", |st, _| st.debug = true).await;
    assert_eq!(
        denied_reason(attest(&cas, &debug).await),
        "debug_not_allowed"
    );
    // Another measurement.
    let changed = launcher
        .request(&cas, "app", |st, _| st.measurement = [0x22; 48])
        .await;
    assert_eq!(
        denied_reason(attest(&cas, &changed).await),
        "measurement_mismatch"
    );
    // Evidence from a sim platform the CAS does not trust.
    let mut foreign = launcher.request(&cas, "app", |_, _| {}).await;
    let stranger = SimPlatformKey::generate().unwrap();
    let spki = launcher.spki();
    let nonce: [u8; 32] = hex::decode(&foreign.nonce).unwrap().try_into().unwrap();
    foreign.evidence =
        base64::engine::general_purpose::STANDARD.encode(stranger.sign(&SimStatement {
            measurement: MEASUREMENT,
            report_data: veil_api::report_data(ATTEST_DOMAIN, &nonce, &spki, &[0; 32]),
            issued_at: Time::now(),
            debug: false,
        }));
    assert_eq!(
        denied_reason(attest(&cas, &foreign).await),
        "evidence_not_genuine"
    );

    // Updates: without a predecessor, with a stale one, by a non-owner.
    let v2 = policy(&[&alice], "").replace("version: 1", "version: 2");
    let err = apply(&owner, &v2).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 409 | 422, message, .. } if message.contains("predecessor")),
        "{err}"
    );
    let stale = v2.replace(
        "version: 2",
        &format!("version: 2\npredecessor: {}", "0".repeat(64)),
    );
    let err = apply(&owner, &stale).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 409, .. }),
        "{err}"
    );
    let good = v2.replace("version: 2", &format!("version: 2\npredecessor: {hash}"));
    let err = apply(&cas.client(Some(&mallory)), &good).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 403, .. }),
        "{err}"
    );
    let updated = apply(&owner, &good).await.unwrap();
    assert_eq!(updated["state"], "active");

    // The generated password survives the update.
    let resp2 = attest(&cas, &launcher.request(&cas, "app", |_, _| {}).await)
        .await
        .unwrap();
    assert_eq!(resp2.env.get("DB_PASSWORD").unwrap().as_str(), password);

    // The audit log verifies and never holds secret values.
    let text = owner.audit_export().await.unwrap();
    // Pages: records from..from+limit, then the signed head.
    let page = owner
        .call(hyper::Method::GET, "/v1/audit?from=2&limit=3", None)
        .await
        .unwrap();
    let page = String::from_utf8(page.to_vec()).unwrap();
    let lines: Vec<serde_json::Value> = page
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{page}");
    assert_eq!(lines[0]["seq"], 2, "{page}");
    assert!(lines[3].get("head").is_some(), "{page}");
    let status: serde_json::Value = owner.get("/v1/status").await.unwrap();
    let key = hex::decode(status["audit_public_key"].as_str().unwrap()).unwrap();
    let chain = veil_store::audit::verify_export(&text, &key).unwrap();
    assert!(chain.len() >= 10, "{}", chain.len());
    assert!(!text.contains(&password));
    assert!(!text.contains("canary-token-4242"));
    assert!(text.contains("attest.grant") && text.contains("attest.deny"));

    // Restart: sessions, secrets and identity survive.
    let pin = cas.pin;
    cas.stop().await;
    let cas = start(dir.path()).await;
    assert_eq!(cas.pin, pin, "the CAS identity must survive a restart");
    let resp3 = attest(&cas, &launcher.request(&cas, "app", |_, _| {}).await)
        .await
        .unwrap();
    assert_eq!(resp3.env.get("DB_PASSWORD").unwrap().as_str(), password);
    // The store never holds the secrets in clear.
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            for needle in [password.as_bytes(), b"canary-token-4242".as_slice()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds a secret in clear",
                    entry.path().display()
                );
            }
        }
    }
    cas.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_of_n_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let (alice, bob, carol) = (identity(), identity(), identity());
    let a = cas.client(Some(&alice));
    let created = apply(&a, &policy(&[&alice, &bob, &carol], "approvals: 2\n"))
        .await
        .unwrap();
    let hash = created["hash"].as_str().unwrap();
    let v2 = policy(&[&alice, &bob, &carol], "approvals: 2\n")
        .replace("version: 1", &format!("version: 2\npredecessor: {hash}"));
    let pending = apply(&a, &v2).await.unwrap();
    assert_eq!(pending["state"], "pending");
    let new_hash = pending["hash"].as_str().unwrap().to_owned();
    let got: serde_json::Value = a.get("/v1/sessions/shop/db").await.unwrap();
    assert_eq!(got["version"], 1, "a pending update is not active");
    assert_eq!(got["pending"]["hash"], new_hash.as_str());
    // An outsider cannot approve.
    let err = cas
        .client(Some(&identity()))
        .post::<_, serde_json::Value>(
            "/v1/sessions/shop/db/approve",
            &serde_json::json!({ "hash": new_hash }),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 403, .. }), "{err}");
    // The proposer approving again does not count twice.
    let again: serde_json::Value = a
        .post(
            "/v1/sessions/shop/db/approve",
            &serde_json::json!({ "hash": new_hash }),
        )
        .await
        .unwrap();
    assert_eq!(again["state"], "pending");
    let done: serde_json::Value = cas
        .client(Some(&bob))
        .post(
            "/v1/sessions/shop/db/approve",
            &serde_json::json!({ "hash": new_hash }),
        )
        .await
        .unwrap();
    assert_eq!(done["state"], "active");
    let got: serde_json::Value = a.get("/v1/sessions/shop/db").await.unwrap();
    assert_eq!(got["version"], 2);
    cas.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let alice = identity();
    let a = cas.client(Some(&alice));
    let bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n";
    for body in [
        bomb.to_owned(),
        "name: [".to_owned(),
        "\u{0}".to_owned(),
        "name: shop/db\nname: shop/db\n".to_owned(),
    ] {
        let err = apply(&a, &body).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Api {
                    status: 400..=499,
                    ..
                }
            ),
            "{err}"
        );
    }
    // Over the body limit: refused with 413, or the connection is closed
    // before the whole body was sent; either way nothing is stored and the
    // CAS keeps serving.
    match apply(&a, &"x".repeat(2 * 1024 * 1024)).await {
        Err(ClientError::Api { status: 413, .. }) | Err(ClientError::Unreachable { .. }) => {}
        other => panic!("an oversized policy was not refused: {other:?}"),
    }
    let health: serde_json::Value = a.get("/v1/health").await.unwrap();
    assert_eq!(health["status"], "ok");
    for body in [&b"{"[..], b"[]", b"{\"session\": 1}", b"null"] {
        let err = a
            .call(
                hyper::Method::POST,
                "/v1/attest",
                Some((body.to_vec(), "application/json")),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Api { status: 400, .. }), "{err}");
    }
    let err = a
        .get::<serde_json::Value>("/v1/cas/evidence?nonce=zz")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 400, .. }), "{err}");
    let spec: serde_json::Value = a.get("/v1/openapi.json").await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let metrics = a.call(hyper::Method::GET, "/metrics", None).await.unwrap();
    assert!(String::from_utf8_lossy(&metrics).contains("veil_cas_sessions"));
    cas.stop().await;
}

/// Posts a decrypted share to a sealed CAS (trusting whatever certificate
/// it shows: the CLI attests it first, see `veil cas unseal`).
async fn post_share(
    url: &str,
    owner: &Identity,
    share: &veil_recovery::PlainShare,
) -> Result<serde_json::Value, ClientError> {
    let first = CasClient::first_contact(url, veil_client::danger::FirstContact).unwrap();
    let _: serde_json::Value = first.get("/v1/health").await?;
    let leaf = first.seen_certificates()[0].clone();
    let c = CasClient::new(
        url,
        Trust::Pinned(veil_client::cert_sha256(&leaf)),
        Some(ClientIdentity {
            chain: vec![owner.cert_der()],
            key: owner.key_der(),
        }),
    )
    .unwrap();
    c.post(
        "/v1/recovery/share",
        &serde_json::json!({ "share": share.to_transport().as_str() }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cas_without_its_key_starts_sealed_and_k_shares_unseal_it() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let (alice, bob, carol) = (identity(), identity(), identity());
    let a = cas.client(Some(&alice));
    let created = apply(&a, &policy(&[&alice], "")).await.unwrap();
    let pin = cas.pin;
    cas.stop().await;

    // `veil cas init --recovery-shares 3 --threshold 2`.
    let key_path = dir.path().join("sealing.key");
    let key = veil_store::SealingKey::load_key_file(&key_path).unwrap();
    let recipients: Vec<_> = [&alice, &bob, &carol]
        .iter()
        .map(|id| veil_recovery::RecipientKey::from_cert_der(id.certificate()).unwrap())
        .collect();
    let set = veil_recovery::split(&key.dangerous_raw_bytes(), 2, &recipients).unwrap();
    std::fs::write(
        dir.path().join(veil_cas::sealed::RECOVERY_FILE),
        serde_json::to_vec(&set.record()).unwrap(),
    )
    .unwrap();
    let plain: Vec<_> = set
        .shares()
        .iter()
        .zip([&alice, &bob, &carol])
        .map(|(s, id)| veil_recovery::decrypt_share(s, id.key_der().secret_der()).unwrap())
        .collect();
    // A share of another split of another key.
    let other_key = veil_store::SealingKey::generate().unwrap();
    let foreign_set =
        veil_recovery::split(&other_key.dangerous_raw_bytes(), 2, &recipients).unwrap();
    let foreign =
        veil_recovery::decrypt_share(&foreign_set.shares()[0], alice.key_der().secret_der())
            .unwrap();

    // The key file is lost: the CAS starts sealed.
    std::fs::remove_file(&key_path).unwrap();
    let config = veil_cas::ServeConfig {
        state_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        dev: true,
        trust_sim_keys: vec![],
        nonce_ttl: Duration::from_secs(60),
        launcher_cert_validity: veil_cas::LAUNCHER_CERT_VALIDITY,
    };
    let bound = veil_cas::bind(&config).await.unwrap();
    assert!(bound.is_sealed());
    assert_eq!(bound.fingerprint, None);
    let url = format!("https://{}", bound.addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        bound
            .serve(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    let first = CasClient::first_contact(&url, veil_client::danger::FirstContact).unwrap();
    let status: serde_json::Value = first.get("/v1/status").await.unwrap();
    assert_eq!(status["sealed"], true);
    // Nothing but status and recovery is served.
    let err = first
        .get::<serde_json::Value>("/v1/nonce")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 503, .. }), "{err}");

    // K-1 shares, a duplicate and a foreign share leave it sealed.
    let r = post_share(&url, &alice, &plain[0]).await.unwrap();
    assert_eq!(r["state"], "sealed");
    let err = post_share(&url, &alice, &plain[0]).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 422, message, .. } if message.contains("already")),
        "{err}"
    );
    let status: serde_json::Value = first.get("/v1/status").await.unwrap();
    assert_eq!(status["recovery"]["have"], 1);
    let err = post_share(&url, &alice, &foreign).await.unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 422, .. }), "{err}");
    // Carol's share sent by someone else is refused.
    let err = post_share(&url, &identity(), &plain[2]).await.unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 422, .. }), "{err}");
    let err = first
        .post::<_, serde_json::Value>(
            "/v1/recovery/share",
            &serde_json::json!({ "share": "garbage" }),
        )
        .await
        .unwrap_err();
    // Without a client identity nobody may send a share.
    assert!(matches!(err, ClientError::Api { status: 401, .. }), "{err}");
    // The K-th share unseals; the same socket then serves the whole API
    // with the CAS's own identity and its sessions.
    let r = post_share(&url, &carol, &plain[2]).await.unwrap();
    assert_eq!(r["state"], "unsealed");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let pinned = loop {
        let c = CasClient::new(
            &url,
            Trust::Pinned(pin),
            Some(ClientIdentity {
                chain: vec![alice.cert_der()],
                key: alice.key_der(),
            }),
        )
        .unwrap();
        match c.get::<serde_json::Value>("/v1/sessions/shop/db").await {
            Ok(v) => {
                assert_eq!(v["hash"], created["hash"]);
                break c;
            }
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "never unsealed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let status: serde_json::Value = pinned.get("/v1/status").await.unwrap();
    assert_eq!(status["sealed"], false);
    assert!(key_path.exists(), "the recovered key is stored again");
    let _ = tx.send(());
    let _ = task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secret_kind_rotation_import_and_owner_export() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let alice = identity();
    let a = cas.client(Some(&alice));
    let fp = alice.fingerprint().to_string();
    let m = hex::encode(MEASUREMENT);
    // The exporting session: one secret exported to shop/db, one to owners.
    let keys = format!(
        "name: shop/keys\nversion: 1\nowners: [{fp}]\nsecrets:\n  - {{ name: shared, kind: bytes, size: 16, export: [{{ session: shop/db }}] }}\n  - {{ name: mine, kind: aes-256, export: [{{ owner: true }}] }}\n  - {{ name: private, kind: aes-256 }}\nservices: []\n"
    );
    apply(&a, &keys).await.unwrap();
    let db = |version: u32, predecessor: Option<&str>, rotate: &str| {
        let pred = predecessor.map_or(String::new(), |p| format!("predecessor: {p}\n"));
        format!(
            r#"name: shop/db
version: {version}
{pred}owners: [{fp}]
{rotate}secrets:
  - {{ name: pw, kind: password, length: 32, alphabet: hex }}
  - {{ name: raw, kind: bytes, size: 48 }}
  - {{ name: aes, kind: aes-256 }}
  - {{ name: ec, kind: ecdsa-p256 }}
  - {{ name: ed, kind: ed25519 }}
  - {{ name: ca, kind: x509-ca }}
  - {{ name: leaf, kind: x509, issuer: ca, dns: [db.internal] }}
  - {{ name: shared, kind: import, session: shop/keys, secret: shared }}
services:
  - name: app
    accept:
      - tee: sim
        measurement: {m}
    command: [/bin/app]
    env:
      PW: "{{{{ pw }}}}"
      RAW: "{{{{ raw | hex }}}}"
      AES: "{{{{ aes | base64 }}}}"
      EC: "{{{{ ec }}}}"
      ED: "{{{{ ed }}}}"
      LEAF: "{{{{ leaf.cert }}}}"
      LEAF_KEY: "{{{{ leaf.key }}}}"
      LEAF_CA: "{{{{ leaf.ca }}}}"
      SHARED: "{{{{ shared | hex }}}}"
"#
        )
    };
    let created = apply(&a, &db(1, None, "")).await.unwrap();
    let launcher = Launcher::new();
    let resp = attest(&cas, &launcher.request(&cas, "app", |_, _| {}).await)
        .await
        .unwrap();
    let env = |k: &str| resp.env.get(k).unwrap().to_string();
    let pw = env("PW");
    assert_eq!(pw.len(), 32);
    assert!(pw.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(hex::decode(env("RAW")).unwrap().len(), 48);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(env("AES"))
            .unwrap()
            .len(),
        32
    );
    assert!(env("EC").contains("PRIVATE KEY"));
    assert!(env("ED").contains("PRIVATE KEY"));
    // The leaf certificate chains to the x509-ca secret.
    let leaf = pem::parse(env("LEAF")).unwrap().into_contents();
    let ca = pem::parse(env("LEAF_CA")).unwrap().into_contents();
    veil_ca::verify_chain(&leaf, &ca, Time::now()).unwrap();
    assert!(env("LEAF_KEY").contains("PRIVATE KEY"));
    assert_eq!(hex::decode(env("SHARED")).unwrap().len(), 16);

    // Owners read only what is exported to them.
    let mine: serde_json::Value = a.get("/v1/sessions/shop/keys/secrets/mine").await.unwrap();
    assert_eq!(mine["kind"], "aes-256");
    let err = a
        .get::<serde_json::Value>("/v1/sessions/shop/keys/secrets/private")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 403, .. }), "{err}");
    let err = a
        .get::<serde_json::Value>("/v1/sessions/shop/db/secrets/pw")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 403, .. }), "{err}");
    let err = cas
        .client(Some(&identity()))
        .get::<serde_json::Value>("/v1/sessions/shop/keys/secrets/mine")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 404, .. }), "{err}");

    // An update keeps generated secrets, except those it rotates.
    let v2 = db(2, created["hash"].as_str(), "rotate: [pw]\n");
    apply(&a, &v2).await.unwrap();
    let resp2 = attest(&cas, &launcher.request(&cas, "app", |_, _| {}).await)
        .await
        .unwrap();
    assert_ne!(resp2.env.get("PW").unwrap().as_str(), pw, "pw was rotated");
    assert_eq!(
        resp2.env.get("RAW").unwrap().as_str(),
        env("RAW"),
        "raw was kept"
    );
    assert_eq!(
        resp2.env.get("LEAF").unwrap().as_str(),
        env("LEAF"),
        "leaf was kept"
    );
    cas.stop().await;
}

/// The launcher's side of runtime claims: it learns the program from the
/// nonce call, measures it, and the policy pins the measurement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_are_named_pinned_and_host_env_is_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let alice = identity();
    let owner = cas.client(Some(&alice));
    let exe = "ab".repeat(48);
    let interp = "cd".repeat(48);
    let m = hex::encode(MEASUREMENT);
    let yaml = format!(
        r#"name: shop/db
version: 1
owners: [{fp}]
services:
  - name: runner
    accept:
      - {{ tee: sim, measurement: {m}, executable: {exe} }}
    command: [/opt/app/run, --serve]
    env: {{ MODE: prod }}
    host_env: [TZ, LANG]
  - name: script
    accept:
      - {{ tee: sim, measurement: {m}, executable: {exe}, interpreter: {interp} }}
    command: ["/opt/app/job.py"]
"#,
        fp = alice.fingerprint(),
    );
    apply(&owner, &yaml).await.unwrap();
    let anon = cas.client(None);

    // (a) The nonce names the program when asked for a session and service.
    let n: NonceResponse = anon
        .get(&veil_api::nonce_path("shop/db", "runner"))
        .await
        .unwrap();
    assert_eq!(n.program.as_deref(), Some("/opt/app/run"));
    assert_eq!(n.nonce.len(), 64);
    let n: NonceResponse = anon
        .get("/v1/nonce?session=shop/db&service=script")
        .await
        .unwrap();
    assert_eq!(n.program.as_deref(), Some("/opt/app/job.py"));
    // Without them, as before: no program.
    let n: NonceResponse = anon.get("/v1/nonce").await.unwrap();
    assert_eq!(n.program, None);
    let raw = anon
        .call(hyper::Method::GET, "/v1/nonce", None)
        .await
        .unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert!(raw.get("program").is_none(), "{raw}");
    // Unknown names: 404 with a precise code, and no nonce.
    for (path, code) in [
        (
            veil_api::nonce_path("shop/nope", "runner"),
            "unknown_session",
        ),
        (veil_api::nonce_path("shop/db", "nope"), "unknown_service"),
    ] {
        match anon.get::<serde_json::Value>(&path).await {
            Err(ClientError::Api {
                status: 404,
                code: c,
                message,
                ..
            }) => {
                assert_eq!(c, code, "{message}");
                assert!(message.contains("nope"), "{message}");
            }
            other => panic!("{path}: expected a 404, got {other:?}"),
        }
    }
    // One without the other is a malformed request.
    let err = anon
        .get::<serde_json::Value>("/v1/nonce?session=shop/db")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 400, code, .. } if code == "bad_request"),
        "{err}"
    );

    // (b) A rule pinning the executable grants the measured program ...
    let launcher = Launcher::new();
    let claims = |pairs: &[(&str, &str)]| -> RuntimeClaims {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let req = launcher
        .request_claiming(
            &cas,
            "runner",
            claims(&[(veil_api::CLAIM_EXECUTABLE, &exe)]),
            |_, _| {},
        )
        .await;
    let granted = attest(&cas, &req).await.unwrap();
    assert_eq!(granted.argv[0].as_str(), "/opt/app/run");
    // (c) ... and passes the policy's host_env on.
    assert_eq!(granted.host_env, ["LANG", "TZ"]);
    assert_eq!(granted.env.get("MODE").unwrap().as_str(), "prod");
    // ... and denies another program, or none.
    let other = "ee".repeat(48);
    let req = launcher
        .request_claiming(
            &cas,
            "runner",
            claims(&[(veil_api::CLAIM_EXECUTABLE, &other)]),
            |_, _| {},
        )
        .await;
    match attest(&cas, &req).await {
        Err(ClientError::Api {
            status: 403,
            reason: Some(reason),
            message,
            ..
        }) => {
            assert_eq!(reason, "executable_mismatch");
            assert!(
                message.contains(&format!("executable expected {exe}, found {other}")),
                "{message}"
            );
        }
        other => panic!("expected executable_mismatch, got {other:?}"),
    }
    let req = launcher.request(&cas, "runner", |_, _| {}).await;
    assert_eq!(
        denied_reason(attest(&cas, &req).await),
        "executable_mismatch"
    );
    // Claims are bound: changing them after the evidence was made is caught
    // before the policy is consulted.
    let mut req = launcher
        .request_claiming(
            &cas,
            "runner",
            claims(&[(veil_api::CLAIM_EXECUTABLE, &other)]),
            |_, _| {},
        )
        .await;
    req.runtime_claims = claims(&[(veil_api::CLAIM_EXECUTABLE, &exe)]);
    assert_eq!(
        denied_reason(attest(&cas, &req).await),
        "report_data_mismatch"
    );

    // A script: the interpreter must be claimed too.
    let req = launcher
        .request_claiming(
            &cas,
            "script",
            claims(&[(veil_api::CLAIM_EXECUTABLE, &exe)]),
            |_, _| {},
        )
        .await;
    assert_eq!(
        denied_reason(attest(&cas, &req).await),
        "interpreter_mismatch"
    );
    let req = launcher
        .request_claiming(
            &cas,
            "script",
            claims(&[
                (veil_api::CLAIM_EXECUTABLE, &exe),
                (veil_api::CLAIM_INTERPRETER, &interp),
            ]),
            |_, _| {},
        )
        .await;
    let granted = attest(&cas, &req).await.unwrap();
    assert!(granted.host_env.is_empty());

    // The grant's audit record holds the runtime claims it was granted on.
    let text = owner.audit_export().await.unwrap();
    let grants: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r.to_string().contains("attest.grant"))
        .collect();
    assert_eq!(grants.len(), 2, "{text}");
    let last = grants[1].to_string();
    assert!(
        last.contains(&format!(
            r#""runtime_claims":{{"executable":"{exe}","interpreter":"{interp}"}}"#
        )),
        "{last}"
    );
    cas.stop().await;
}
