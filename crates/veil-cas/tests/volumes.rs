//! Volume freshness tags on a CAS on loopback: the launcher's `volume:`
//! claims, the volumes released with a grant, commits over mutual TLS with
//! the attested certificate, owner accept and list, audit, and a canary for
//! the volume key (docs/spec/attestation.md 4.5).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use common::{identity, start, Cas};
use veil_api::{
    AttestRequest, AttestResponse, NonceResponse, RuntimeClaims, VolumeAccepted, VolumeCommit,
    VolumeCommitted, VolumeList, ATTEST_DOMAIN, VOLUME_COMMIT_PATH,
};
use veil_attest::{ReportData, Tee, Time};
use veil_attest_sim::SimStatement;
use veil_ca::Identity;
use veil_client::{CasClient, ClientError, ClientIdentity, Trust};

/// Everything the CAS logs in this test binary, at every level.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const MEASUREMENT: [u8; 48] = [0x11; 48];

async fn apply(c: &CasClient, yaml: &str) -> serde_json::Value {
    let b = c
        .call(
            hyper::Method::POST,
            "/v1/sessions",
            Some((yaml.as_bytes().to_vec(), "application/yaml")),
        )
        .await
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

/// A launcher: its key pair (attested), and after a grant its certificate.
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

    /// An attestation request for `session`/`service` stating `claims`.
    async fn request(
        &self,
        cas: &Cas,
        session: &str,
        service: &str,
        claims: &[(&str, &str)],
    ) -> AttestRequest {
        let runtime_claims: RuntimeClaims = claims
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let n: NonceResponse = cas.client(None).get("/v1/nonce").await.unwrap();
        let mut nonce = [0u8; 32];
        hex::decode_to_slice(&n.nonce, &mut nonce).unwrap();
        let spki = self.spki();
        let st = SimStatement {
            measurement: MEASUREMENT,
            report_data: veil_api::report_data(
                ATTEST_DOMAIN,
                &nonce,
                &spki,
                &veil_api::runtime_claims_digest(&runtime_claims),
            ),
            issued_at: Time::now(),
            debug: false,
        };
        assert_ne!(st.report_data, ReportData::ZERO);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        AttestRequest {
            session: session.into(),
            service: service.into(),
            nonce: n.nonce,
            tee: Tee::Sim,
            evidence: b64(&cas.sim_key().sign(&st)),
            endorsements: vec![],
            spki: b64(&spki),
            runtime_claims,
        }
    }

    async fn attest(
        &self,
        cas: &Cas,
        session: &str,
        service: &str,
        claims: &[(&str, &str)],
    ) -> Result<AttestResponse, ClientError> {
        let req = self.request(cas, session, service, claims).await;
        cas.client(None).post("/v1/attest", &req).await
    }

    /// A client authenticated with the certificate of `grant` and this
    /// launcher's key: what the launcher commits with.
    fn client(&self, cas: &Cas, grant: &AttestResponse) -> CasClient {
        let cert = pem::parse(&grant.certificate).unwrap().into_contents();
        let identity = ClientIdentity {
            chain: vec![cert.into()],
            key: self.key.key_der(),
        };
        CasClient::new(&cas.url, Trust::Pinned(cas.pin), Some(identity)).unwrap()
    }
}

fn commit(volume: &str, previous: Option<&str>, tag: &str) -> VolumeCommit {
    commit_for("shop/db", "app", volume, previous, tag)
}

fn commit_for(
    session: &str,
    service: &str,
    volume: &str,
    previous: Option<&str>,
    tag: &str,
) -> VolumeCommit {
    VolumeCommit {
        session: session.into(),
        service: service.into(),
        volume: volume.into(),
        previous: previous.map(str::to_owned),
        tag: tag.into(),
    }
}

async fn post_commit(c: &CasClient, body: &VolumeCommit) -> Result<VolumeCommitted, ClientError> {
    c.post(VOLUME_COMMIT_PATH, body).await
}

async fn accept(
    c: &CasClient,
    service: &str,
    volume: &str,
    tag: Option<&str>,
) -> Result<VolumeAccepted, ClientError> {
    c.post(
        &veil_api::volume_accept_path("shop/db", service, volume),
        &serde_json::json!({ "tag": tag }),
    )
    .await
}

/// The status and code of an API error (panics on anything else).
fn status_code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The reason and message of an attestation denial.
fn denial(r: Result<AttestResponse, ClientError>) -> (String, String) {
    match r {
        Err(ClientError::Api {
            status: 403,
            code,
            reason: Some(reason),
            message,
        }) => {
            assert_eq!(code, "attestation_denied");
            (reason, message)
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn policy(owner: &Identity) -> String {
    format!(
        r#"name: shop/db
version: 1
owners: [{fp}]
secrets:
  - {{ name: vk, kind: aes-256, export: [{{ owner: true }}] }}
  - {{ name: lk, kind: aes-256 }}
services:
  - name: app
    accept:
      - {{ tee: sim, measurement: {m} }}
    command: [/bin/app]
    volumes:
      - {{ name: data, path: /var/lib/app, mode: encrypted, key: vk }}
      - {{ name: logs, path: /var/log/app, mode: integrity, key: lk }}
  - name: worker
    accept:
      - {{ tee: sim, measurement: {m} }}
    command: [/bin/worker]
    volumes:
      - {{ name: data, path: /data, mode: encrypted, key: vk }}
  - name: plain
    accept:
      - {{ tee: sim, measurement: {m} }}
    command: [/bin/plain]
"#,
        fp = owner.fingerprint(),
        m = hex::encode(MEASUREMENT),
    )
}

fn other_session(owner: &Identity) -> String {
    format!(
        r#"name: shop/other
version: 1
owners: [{fp}]
secrets:
  - {{ name: vk, kind: aes-256 }}
services:
  - name: app
    accept:
      - {{ tee: sim, measurement: {m} }}
    command: [/bin/app]
    volumes:
      - {{ name: data, path: /var/lib/app, mode: encrypted, key: vk }}
"#,
        fp = owner.fingerprint(),
        m = hex::encode(MEASUREMENT),
    )
}

/// The whole cycle: first start, commits, a rollback and a missing volume
/// refused, owner accept, list, audit and the key canary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_tags_catch_rollback_and_owners_accept_restores() {
    let log = log();
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let alice = identity();
    let owner = cas.client(Some(&alice));
    apply(&owner, &policy(&alice)).await;
    apply(&owner, &other_session(&alice)).await;
    let (t1, t2, t3) = ("a1".repeat(32), "b2".repeat(32), "c3".repeat(32));

    // First start: no tag held, the volume is new. The grant carries both
    // volumes with their keys (the 32 bytes of the aes-256 secrets).
    let launcher = Launcher::new();
    let grant = launcher
        .attest(&cas, "shop/db", "app", &[("volume:data", "new")])
        .await
        .unwrap();
    assert_eq!(grant.volumes.len(), 2, "{grant:?}");
    let data = &grant.volumes[0];
    assert_eq!(
        (data.name.as_str(), data.path.as_str(), data.mode, &data.tag),
        (
            "data",
            "/var/lib/app",
            veil_api::VolumeMode::Encrypted,
            &None
        )
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(data.key.as_str())
        .unwrap();
    assert_eq!(key.len(), 32);
    let exported: serde_json::Value = owner.get("/v1/sessions/shop/db/secrets/vk").await.unwrap();
    assert_eq!(exported["value"], data.key.as_str());
    let logs = &grant.volumes[1];
    assert_eq!(logs.mode, veil_api::VolumeMode::Integrity);
    assert_ne!(logs.key.as_str(), data.key.as_str());
    // A service without volumes gets none (and the field is not sent).
    let plain = Launcher::new()
        .attest(&cas, "shop/db", "plain", &[])
        .await
        .unwrap();
    assert!(plain.volumes.is_empty());

    // The launcher commits over mutual TLS with its attested certificate.
    let lc = launcher.client(&cas, &grant);
    let done = post_commit(&lc, &commit("data", None, &t1)).await.unwrap();
    assert_eq!(done.tag, t1);
    assert!(done.audit_seq > grant.audit_seq);
    let done = post_commit(&lc, &commit("data", Some(&t1), &t2))
        .await
        .unwrap();
    assert_eq!(done.tag, t2);
    // Compare-and-swap: a stale or absent `previous` is 409, naming the tag held.
    for stale in [None, Some(t1.as_str())] {
        let (status, code, message) =
            status_code(post_commit(&lc, &commit("data", stale, &t3)).await);
        assert_eq!((status, code.as_str()), (409, "tag_conflict"), "{message}");
        assert!(message.contains(&t2), "{message}");
    }

    // The next start with the committed tag is granted and told the tag.
    let again = Launcher::new()
        .attest(&cas, "shop/db", "app", &[("volume:data", &t2)])
        .await
        .unwrap();
    assert_eq!(again.volumes[0].tag.as_deref(), Some(t2.as_str()));
    assert_eq!(again.volumes[0].key.as_str(), data.key.as_str());
    assert_eq!(again.volumes[1].tag, None);

    // An older copy: refused, naming the volume, the expected and found tags.
    let (reason, message) = denial(
        Launcher::new()
            .attest(&cas, "shop/db", "app", &[("volume:data", &t1)])
            .await,
    );
    assert_eq!(reason, "volume_rollback", "{message}");
    assert!(
        message.contains("volume data") && message.contains(&format!("expected {t2}, found {t1}")),
        "{message}"
    );
    // No volume where the CAS holds a tag: refused, and told how to recover.
    for claims in [&[("volume:data", "new")][..], &[]] {
        let (reason, message) =
            denial(Launcher::new().attest(&cas, "shop/db", "app", claims).await);
        assert_eq!(reason, "volume_missing", "{message}");
        assert!(
            message.contains(&t2) && message.contains("veil volume accept"),
            "{message}"
        );
    }
    // Claims the policy does not know, and malformed ones.
    let (reason, _) = denial(
        Launcher::new()
            .attest(&cas, "shop/db", "app", &[("volume:elsewhere", "new")])
            .await,
    );
    assert_eq!(reason, "unknown_volume");
    let (reason, _) = denial(
        Launcher::new()
            .attest(
                &cas,
                "shop/db",
                "app",
                &[("volume:data", &t2.to_uppercase())],
            )
            .await,
    );
    assert_eq!(reason, "volume_claim_invalid");
    // The same volume name in another service is another volume.
    Launcher::new()
        .attest(&cas, "shop/db", "worker", &[("volume:data", "new")])
        .await
        .unwrap();

    // Owners list the volumes and the tags held.
    let list: VolumeList = owner.get(&veil_api::volumes_path("shop/db")).await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>)> = list
        .volumes
        .iter()
        .map(|v| (v.service.as_str(), v.volume.as_str(), v.tag.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("app", "data", Some(t2.as_str())),
            ("app", "logs", None),
            ("worker", "data", None)
        ]
    );
    let mallory = identity();
    let (status, _, _) = status_code(
        cas.client(Some(&mallory))
            .get::<VolumeList>(&veil_api::volumes_path("shop/db"))
            .await,
    );
    assert_eq!(status, 404, "a non-owner does not learn the session");
    let (status, code, _) = status_code(
        cas.client(None)
            .get::<VolumeList>(&veil_api::volumes_path("shop/db"))
            .await,
    );
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));

    // An owner accepts the restored (older) copy; it then starts.
    let (status, code, _) =
        status_code(accept(&cas.client(Some(&mallory)), "app", "data", Some(&t1)).await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let (status, code, _) = status_code(accept(&owner, "app", "nope", Some(&t1)).await);
    assert_eq!((status, code.as_str()), (404, "unknown_volume"));
    let (status, code, _) = status_code(accept(&owner, "nope", "data", Some(&t1)).await);
    assert_eq!((status, code.as_str()), (404, "unknown_service"));
    let (status, code, _) = status_code(accept(&owner, "app", "data", Some("xyz")).await);
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let (status, _, message) = status_code(
        owner
            .post::<_, VolumeAccepted>(
                &veil_api::volume_accept_path("shop/db", "app", "data"),
                &serde_json::json!({}),
            )
            .await,
    );
    assert_eq!(status, 400, "the tag field is required: {message}");
    let accepted = accept(&owner, "app", "data", Some(&t1)).await.unwrap();
    assert_eq!(accepted.previous.as_deref(), Some(t2.as_str()));
    assert_eq!(accepted.tag.as_deref(), Some(t1.as_str()));
    let restored = Launcher::new();
    let grant = restored
        .attest(&cas, "shop/db", "app", &[("volume:data", &t1)])
        .await
        .unwrap();
    assert_eq!(grant.volumes[0].tag.as_deref(), Some(t1.as_str()));
    // ... and commits from there.
    post_commit(
        &restored.client(&cas, &grant),
        &commit("data", Some(&t1), &t3),
    )
    .await
    .unwrap();
    // Clearing the tag accepts a new volume.
    let cleared = accept(&owner, "app", "data", None).await.unwrap();
    assert_eq!(
        (cleared.previous.as_deref(), cleared.tag),
        (Some(t3.as_str()), None)
    );
    let fresh = Launcher::new()
        .attest(&cas, "shop/db", "app", &[("volume:data", "new")])
        .await
        .unwrap();
    assert_eq!(fresh.volumes[0].tag, None);

    // The audit log holds every commit and accept, and the denials.
    let text = owner.audit_export().await.unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_kind = |kind: &str| -> Vec<&serde_json::Value> {
        records
            .iter()
            .map(|r| r.get("record").unwrap_or(r))
            .filter(|r| r["kind"] == kind)
            .collect()
    };
    let commits = of_kind("volume.commit");
    assert_eq!(commits.len(), 3, "{text}");
    assert_eq!(commits[0]["subject"], "shop/db");
    assert_eq!(commits[0]["actor"], "launcher");
    assert_eq!(
        commits[1]["detail"],
        serde_json::json!({
            "service": "app",
            "volume": "data",
            "previous": t1,
            "tag": t2,
            "spki_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(launcher.spki())),
        })
    );
    assert_eq!(commits[1]["seq"], done.audit_seq);
    let accepts = of_kind("volume.accept");
    assert_eq!(accepts.len(), 2, "{text}");
    assert_eq!(accepts[0]["actor"], alice.fingerprint().to_string());
    assert_eq!(accepts[0]["detail"]["previous"], t2.as_str());
    assert_eq!(accepts[0]["detail"]["tag"], t1.as_str());
    assert_eq!(accepts[1]["detail"]["tag"], serde_json::Value::Null);
    let denials: Vec<String> = of_kind("attest.deny")
        .iter()
        .map(|r| r["detail"]["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        denials.contains(&"volume_rollback".to_owned())
            && denials.contains(&"volume_missing".to_owned()),
        "{denials:?}"
    );

    // Canary: the volume keys are in no audit record, log line or file.
    cas.stop().await;
    let logged = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(!logged.is_empty(), "the log was not captured");
    for k in [&grant.volumes[0].key, &grant.volumes[1].key] {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(k.as_str())
            .unwrap();
        for needle in [k.to_string(), hex::encode(&raw)] {
            assert!(!text.contains(&needle), "the audit log holds a volume key");
            assert!(!logged.contains(&needle), "the log holds a volume key");
        }
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if entry.path().is_file() {
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(
                    !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
                    "{} holds a volume key in clear",
                    entry.path().display()
                );
            }
        }
    }
}

/// Only the attested launcher of the volume's own service may commit its
/// tag: not an owner, not a launcher of another service or session, not a
/// certificate from another CA naming the service, and not anyone without a
/// client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_services_attested_launcher_commits_its_tags() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let alice = identity();
    let owner = cas.client(Some(&alice));
    apply(&owner, &policy(&alice)).await;
    apply(&owner, &other_session(&alice)).await;
    let t1 = "d4".repeat(32);
    let body = commit("data", None, &t1);

    // No client certificate: 401.
    let (status, code, message) = status_code(post_commit(&cas.client(None), &body).await);
    assert_eq!(
        (status, code.as_str()),
        (401, "unauthenticated"),
        "{message}"
    );
    // An owner's identity is not an attested launcher: 403.
    let (status, code, message) = status_code(post_commit(&owner, &body).await);
    assert_eq!((status, code.as_str()), (403, "not_attested"), "{message}");

    // A launcher of another session (its CA is not this session's): 403.
    let foreign = Launcher::new();
    let grant = foreign
        .attest(&cas, "shop/other", "app", &[])
        .await
        .unwrap();
    let fc = foreign.client(&cas, &grant);
    let (status, code, message) = status_code(post_commit(&fc, &body).await);
    assert_eq!((status, code.as_str()), (403, "not_attested"), "{message}");
    // ... which commits its own session's volume.
    post_commit(&fc, &commit_for("shop/other", "app", "data", None, &t1))
        .await
        .unwrap();

    // A launcher of another service of the session: 403, even for a volume
    // of the same name.
    let worker = Launcher::new();
    let grant = worker.attest(&cas, "shop/db", "worker", &[]).await.unwrap();
    let wc = worker.client(&cas, &grant);
    let (status, code, message) = status_code(post_commit(&wc, &body).await);
    assert_eq!((status, code.as_str()), (403, "not_attested"), "{message}");
    assert!(message.contains("worker"), "{message}");

    // A forged certificate: the host's own CA, naming shop/db and app, for
    // a key the host holds.
    let host_ca = veil_ca::CaIdentity::generate("shop/db session CA", 30, Time::now()).unwrap();
    let host_key = Launcher::new();
    let forged = veil_ca::issue_attested_cert(
        &host_ca,
        &host_key.spki(),
        &veil_ca::AttestedSubject {
            session: "shop/db".into(),
            service: "app".into(),
            tee: Tee::Sim,
            measurement: MEASUREMENT.to_vec(),
            dns: vec![],
            ips: vec![],
        },
        Time::from_unix(Time::now().unix() - 60),
        Time::from_unix(Time::now().unix() + 3600),
    )
    .unwrap();
    let forger = CasClient::new(
        &cas.url,
        Trust::Pinned(cas.pin),
        Some(ClientIdentity {
            chain: vec![forged.into(), host_ca.cert_der().to_vec().into()],
            key: host_key.key.key_der(),
        }),
    )
    .unwrap();
    let (status, code, message) = status_code(post_commit(&forger, &body).await);
    assert_eq!((status, code.as_str()), (403, "not_attested"), "{message}");

    // The service's own launcher: unknown names are 404, bad bodies 400.
    let launcher = Launcher::new();
    let grant = launcher.attest(&cas, "shop/db", "app", &[]).await.unwrap();
    let lc = launcher.client(&cas, &grant);
    for (req, want) in [
        (commit("nope", None, &t1), "unknown_volume"),
        (
            commit_for("shop/nope", "app", "data", None, &t1),
            "unknown_session",
        ),
    ] {
        let (status, code, message) = status_code(post_commit(&lc, &req).await);
        assert_eq!((status, code.as_str()), (404, want), "{message}");
    }
    for tag in ["", "new", &t1.to_uppercase(), &t1[2..]] {
        let (status, code, message) =
            status_code(post_commit(&lc, &commit("data", None, tag)).await);
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{message}");
    }
    let (status, _, _) = status_code(post_commit(&lc, &commit("data", Some("0"), &t1)).await);
    assert_eq!(status, 400);
    let missing_previous = serde_json::json!({
        "session": "shop/db", "service": "app", "volume": "data", "tag": t1,
    });
    let (status, _, message) = status_code(
        lc.post::<_, VolumeCommitted>(VOLUME_COMMIT_PATH, &missing_previous)
            .await,
    );
    assert!(
        status == 400 && message.contains("previous"),
        "{status} {message}"
    );
    // None of the refused commits changed anything.
    let list: VolumeList = owner.get(&veil_api::volumes_path("shop/db")).await.unwrap();
    assert!(list.volumes.iter().all(|v| v.tag.is_none()), "{list:?}");
    // Then the right one.
    post_commit(&lc, &body).await.unwrap();
    let (reason, _) = denial(
        Launcher::new()
            .attest(&cas, "shop/db", "app", &[("volume:data", "new")])
            .await,
    );
    assert_eq!(reason, "volume_missing");
    cas.stop().await;
}
