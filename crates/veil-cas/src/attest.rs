//! The attestation exchange (docs/spec/attestation.md §4).

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine;
use veil_api::{AttestRequest, AttestResponse, WireEndorsement, WireFile, ATTEST_DOMAIN};
use veil_attest::{Claims, Endorsement, Evidence, Time};
use veil_ca::AttestedSubject;
use veil_policy::{Field, SecretKind, SecretSource};
use veil_store::{AuditEntry, Table};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::nonce::NonceError;
use crate::sessions::{secret_key, StoredSecret};
use crate::state::{Active, Cas};

fn b64(what: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| ApiError::bad_request("bad_request", format!("{what} is not base64: {e}")))
}

/// A denial on its way out: audited, counted, then returned.
struct Deny {
    reason: &'static str,
    message: String,
}

fn deny(reason: &'static str, message: impl Into<String>) -> Deny {
    Deny {
        reason,
        message: message.into(),
    }
}

impl Cas {
    /// The program (`command[0]`, literal text) of `service` in `session`,
    /// for `GET /v1/nonce?session=&service=`: a launcher measures it before
    /// it attests. 404 `unknown_session` / `unknown_service`, the codes a
    /// denial of `POST /v1/attest` would carry.
    /// What a launcher must know before it attests: the service's program
    /// and the names of its volumes.
    pub(crate) fn launch_info(
        &self,
        session: &str,
        service: &str,
    ) -> Result<(String, Vec<String>), ApiError> {
        let active = self.session(session).ok_or_else(|| {
            ApiError::not_found_as("unknown_session", format!("no session {session:?}"))
        })?;
        let svc = active.session.service(service).ok_or_else(|| {
            ApiError::not_found_as(
                "unknown_service",
                format!("session {session} has no service {service:?}"),
            )
        })?;
        // The policy language requires command[0] to be literal text.
        let program = svc
            .command
            .first()
            .and_then(veil_policy::Template::literal)
            .ok_or_else(|| {
                ApiError::internal(
                    "reading a service's program",
                    &format!("{session}/{service}: command[0] is not literal text"),
                )
            })?;
        Ok((
            program,
            svc.volumes.iter().map(|v| v.name.clone()).collect(),
        ))
    }

    /// `POST /v1/attest`.
    pub(crate) async fn attest(&self, req: AttestRequest) -> Result<AttestResponse, ApiError> {
        let started = Instant::now();
        let subject = format!("{}/{}", req.session, req.service);
        match self.attest_inner(&req).await {
            Ok(Ok(resp)) => {
                self.metrics
                    .attestation(true, "ok", started.elapsed().as_secs_f64());
                Ok(resp)
            }
            Ok(Err(d)) => {
                self.metrics
                    .attestation(false, d.reason, started.elapsed().as_secs_f64());
                let entry = AuditEntry::new(
                    "attest.deny",
                    req.session.clone(),
                    "launcher",
                    serde_json::json!({
                        "service": req.service,
                        "tee": req.tee,
                        "reason": d.reason,
                        "message": d.message,
                    }),
                );
                let store = self.store.clone();
                let audited = tokio::task::spawn_blocking(move || {
                    store.write_grouped(move |tx| tx.audit(entry))
                })
                .await;
                if !matches!(audited, Ok(Ok(()))) {
                    tracing::error!(%subject, "could not audit a denial");
                }
                Err(ApiError::denied(d.reason, d.message))
            }
            Err(e) => {
                self.metrics
                    .attestation(false, e.code, started.elapsed().as_secs_f64());
                Err(e)
            }
        }
    }

    async fn attest_inner(
        &self,
        req: &AttestRequest,
    ) -> Result<Result<AttestResponse, Deny>, ApiError> {
        let mut nonce = [0u8; 32];
        if hex::decode_to_slice(req.nonce.trim(), &mut nonce).is_err() {
            return Err(ApiError::bad_request(
                "bad_request",
                "nonce must be 64 hex digits from GET /v1/nonce",
            ));
        }
        let evidence = b64("evidence", &req.evidence)?;
        let spki = b64("spki", &req.spki)?;
        let mut endorsements = Vec::new();
        for e in &req.endorsements {
            endorsements.push(match e {
                WireEndorsement::DcapCollateral(d) => {
                    Endorsement::DcapCollateral(b64("collateral", d)?)
                }
                WireEndorsement::Certificate(d) => {
                    Endorsement::Certificates(vec![b64("certificate", d)?])
                }
            });
        }
        match self.nonces.consume(&nonce) {
            Ok(()) => {}
            Err(NonceError::Unknown) => {
                return Ok(Err(deny(
                    "nonce_unknown",
                    "the nonce was never issued, was already used, or the CAS restarted: get a new one from GET /v1/nonce",
                )))
            }
            Err(NonceError::Expired) => {
                return Ok(Err(deny(
                    "nonce_expired",
                    format!("the nonce expired ({} s lifetime): get a new one and attest at once", self.nonces.ttl().as_secs()),
                )))
            }
        }
        let Some(active) = self.session(&req.session) else {
            return Ok(Err(deny(
                "unknown_session",
                format!("no session {}", req.session),
            )));
        };
        let Some(service) = active.session.service(&req.service) else {
            return Ok(Err(deny(
                "unknown_service",
                format!("session {} has no service {}", req.session, req.service),
            )));
        };
        let now = Time::now();
        let evidence = Evidence {
            tee: req.tee,
            bytes: evidence,
        };
        let claims: Claims = match self.registry.verify(&evidence, &endorsements, now) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(deny(
                    "evidence_not_genuine",
                    format!("{} evidence is not genuine: {e}", req.tee),
                )))
            }
        };
        // The claims buffer the report data binds (spec 4.1); it also goes
        // into the certificate's RA-TLS extension below.
        let claims_buffer = veil_api::ratls_claims_buffer(
            ATTEST_DOMAIN,
            &nonce,
            &spki,
            &veil_api::runtime_claims_digest(&req.runtime_claims),
        );
        let expected = veil_api::report_data_of(&claims_buffer);
        if claims.report_data != expected {
            return Ok(Err(deny(
                "report_data_mismatch",
                format!(
                    "the evidence does not bind this nonce, key and runtime claims (relayed or replayed evidence): expected report data {}, found {}",
                    expected, claims.report_data
                ),
            )));
        }
        if let Err(d) = veil_policy::check_accept(service, &claims, &req.runtime_claims) {
            return Ok(Err(Deny {
                reason: d.code(),
                message: d.to_string(),
            }));
        }
        // Volume freshness (docs/spec/attestation.md 4.5): the launcher's
        // `volume:<name>` claims against the tags the CAS holds.
        let held = self.held_tags(&req.session, &req.service)?;
        if let Err((reason, message)) =
            crate::volumes::check_claims(service, &req.runtime_claims, &held)
        {
            return Ok(Err(Deny { reason, message }));
        }
        let source = SessionSecrets::load(self, &active)?;
        let rendered = veil_policy::render(service, &source).map_err(|e| {
            ApiError::unprocessable(
                "render_failed",
                format!("cannot render service {}: {e}", req.service),
            )
        })?;
        let volumes = crate::volumes::release(service, &source, &held)?;
        let network = match crate::network::release(self, &active, service, &source)? {
            Ok(n) => n,
            Err(crate::network::UnknownPeer(message)) => {
                return Ok(Err(deny("network_peer_unknown", message)))
            }
        };
        let subject = AttestedSubject {
            session: req.session.clone(),
            service: req.service.clone(),
            tee: claims.tee,
            measurement: claims.measurement.clone(),
            dns: service.dns.clone(),
            ips: service.ips.clone(),
        };
        // The same evidence in the Interoperable RA-TLS form (attestation
        // spec 3.6), with the claims buffer its report data binds (4.1), for
        // peers that verify the evidence themselves. Written only when it
        // reads back binding what was verified (e.g. not for an SNP report
        // sent as hex text, which the extension does not carry).
        let ratls = veil_ratls::tag_for_tee(claims.tee).and_then(|tag| {
            let value = veil_ratls::encode_extension(tag, &evidence.bytes, &claims_buffer);
            let binds = veil_ratls::parse_extension(&value)
                .and_then(|p| veil_ratls::inspect_evidence(tag, &p.evidence))
                .is_ok_and(|(_, found)| found == claims.report_data);
            if !binds || value.len() > veil_ca::MAX_RATLS_EXTENSION_LEN {
                tracing::warn!(
                    tee = %claims.tee,
                    "launcher certificate issued without the RA-TLS evidence extension: the evidence as sent does not read back in its RA-TLS form"
                );
                return None;
            }
            Some(value)
        });
        let cert = veil_ca::issue_attested_cert_with_evidence(
            &active.ca,
            &spki,
            &subject,
            Time::from_unix(now.unix().saturating_sub(300)),
            Time::from_unix(
                now.unix()
                    .saturating_add(self.launcher_cert_validity.as_secs()),
            ),
            ratls.as_deref(),
        )
        .map_err(|e| {
            ApiError::bad_request(
                "bad_key",
                format!("cannot issue a certificate for this key: {e}"),
            )
        })?;
        let entry = AuditEntry::new(
            "attest.grant",
            req.session.clone(),
            "launcher",
            serde_json::json!({
                "service": req.service,
                "tee": claims.tee,
                "measurement": hex::encode(&claims.measurement),
                "debug": claims.debug,
                "insecure": claims.insecure,
                "tcb_status": claims.tcb_status,
                "spki_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&spki)),
                "runtime_claims": req.runtime_claims,
            }),
        );
        // The reply leaves only after its audit record is durable.
        let store = self.store.clone();
        let seq = tokio::task::spawn_blocking(move || {
            store.write_grouped(move |tx| {
                tx.audit(entry)?;
                Ok::<_, veil_store::StoreError>(tx.audit_head().next_seq)
            })
        })
        .await
        .map_err(|e| ApiError::internal("auditing a grant", &e))?
        .map_err(|e| ApiError::internal("auditing a grant", &e))?;
        Ok(Ok(AttestResponse {
            certificate: pem::encode(&pem::Pem::new("CERTIFICATE", cert)),
            ca: active.ca.cert_pem(),
            argv: rendered.argv,
            host_args: service.host_args,
            host_env: service.host_env.iter().cloned().collect(),
            env: rendered.env.into_iter().collect::<BTreeMap<_, _>>(),
            files: rendered
                .files
                .into_iter()
                .map(|f| WireFile {
                    path: f.path.clone(),
                    mode: f.mode,
                    content: Zeroizing::new(
                        base64::engine::general_purpose::STANDARD.encode(&*f.content),
                    ),
                })
                .collect(),
            volumes,
            network,
            audit_seq: seq,
        }))
    }
}

/// The secrets a service's templates may name, read from the sealed store.
struct SessionSecrets {
    own: BTreeMap<String, StoredSecret>,
    imported: BTreeMap<String, StoredSecret>,
}

impl SessionSecrets {
    fn load(cas: &Cas, active: &Active) -> Result<SessionSecrets, ApiError> {
        let own = cas.load_secrets(&active.session.name().to_string())?;
        let mut imported = BTreeMap::new();
        for spec in active.session.secrets() {
            let SecretKind::Import { session, secret } = &spec.kind else {
                continue;
            };
            let from = session.to_string();
            let exported = cas.session(&from).is_some_and(|other| {
                other.session.secret(secret).is_some_and(|s| {
                    s.export.iter().any(|e| {
                        matches!(e, veil_policy::Export::Session(to) if *to == *active.session.name())
                    })
                })
            });
            if !exported {
                return Err(ApiError::unprocessable(
                    "import_unavailable",
                    format!("secret {} imports {from}/{secret}, which {from} does not export to this session", spec.name),
                ));
            }
            let raw = cas
                .store
                .read(|tx| tx.get(Table::SECRETS, &secret_key(&from, secret)))
                .map_err(|e| ApiError::internal("reading an imported secret", &e))?;
            if let Some(raw) = raw {
                let s: StoredSecret = serde_json::from_slice(&raw)
                    .map_err(|e| ApiError::internal("reading an imported secret", &e))?;
                imported.insert(spec.name.clone(), s);
            }
        }
        Ok(SessionSecrets { own, imported })
    }
}

impl SecretSource for SessionSecrets {
    fn value(&self, secret: &str, field: Field) -> Option<Zeroizing<Vec<u8>>> {
        let s = self.own.get(secret).or_else(|| self.imported.get(secret))?;
        match s {
            StoredSecret::Supplied { value } => match field {
                Field::Value => base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .ok()
                    .map(Zeroizing::new),
                _ => None,
            },
            StoredSecret::Generated(m) => match field {
                Field::Value => Some(m.value.clone()),
                Field::Cert => m
                    .cert_pem
                    .as_ref()
                    .map(|c| Zeroizing::new(c.clone().into_bytes())),
                Field::Key => m
                    .key_pem
                    .as_ref()
                    .map(|k| Zeroizing::new(k.as_bytes().to_vec()))
                    .or_else(|| Some(m.value.clone())),
                Field::Ca => m
                    .ca_pem
                    .as_ref()
                    .map(|c| Zeroizing::new(c.clone().into_bytes())),
            },
        }
    }
}
