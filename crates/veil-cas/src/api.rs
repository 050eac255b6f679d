//! The HTTP API: `router(state)`, testable without a socket.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use veil_api::{AttestRequest, CasEvidence, NonceResponse, CAS_EVIDENCE_DOMAIN};
use veil_attest::ReportData;
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::sessions::describe;
use crate::state::Cas;
use crate::tls::Peer;

/// The largest request body (policies, evidence with collateral).
pub const MAX_BODY: usize = 1024 * 1024;

const OPENAPI: &str = include_str!("openapi.json");

/// The `/v1` API and `/metrics`.
pub fn router(cas: Arc<Cas>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/nonce", get(nonce))
        .route("/v1/cas/evidence", get(cas_evidence))
        .route("/v1/attest", post(attest))
        .route("/v1/sessions", post(apply).get(list))
        .route("/v1/sessions/{ns}/{name}", get(get_session))
        .route("/v1/sessions/{ns}/{name}/diff", post(diff))
        .route("/v1/sessions/{ns}/{name}/approve", post(approve))
        .route(
            "/v1/sessions/{ns}/{name}/secrets/{secret}",
            put(put_secret).get(export_secret),
        )
        .route(veil_api::VOLUME_COMMIT_PATH, post(commit_volume))
        .route("/v1/sessions/{ns}/{name}/volumes", get(list_volumes))
        .route(
            "/v1/sessions/{ns}/{name}/volumes/{service}/{volume}/accept",
            post(accept_volume),
        )
        .route("/v1/audit", get(audit))
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_rejections))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ))
        .with_state(cas)
}

type ApiResult<T> = Result<T, ApiError>;

fn caller(peer: Option<Extension<Peer>>) -> ApiResult<String> {
    peer.and_then(|Extension(p)| p.fingerprint)
        .ok_or_else(ApiError::unauthenticated)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /v1/openapi.json")
}

/// axum's own rejections (a path that is not UTF-8, a bad query string, a
/// body over [`MAX_BODY`]) are plain text: give them the JSON error body
/// every other error has.
async fn json_rejections(res: Response) -> Response {
    let status = res.status();
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !status.is_client_error() || !plain {
        return res;
    }
    let (code, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
        (
            "too_large",
            format!("the request body is over {MAX_BODY} bytes"),
        )
    } else {
        let text = axum::body::to_bytes(res.into_body(), 4096)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        ("bad_request", text)
    };
    ApiError {
        code,
        status,
        message,
        reason: None,
    }
    .into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn status(State(cas): State<Arc<Cas>>) -> Json<serde_json::Value> {
    let sessions = cas.sessions.read().map(|m| m.len()).unwrap_or(0);
    Json(serde_json::json!({
        "status": "ok",
        "sealed": false,
        "version": env!("CARGO_PKG_VERSION"),
        "tee": cas.evidence.tee(),
        "fingerprint": cas.fingerprint(),
        "sessions": sessions,
        "audit_public_key": hex::encode(cas.store.audit_public_key()),
    }))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics(State(cas): State<Arc<Cas>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        cas.metrics.render(),
    )
        .into_response()
}

const NONCE_FOR_BOTH: &str =
    "give both `session` and `service` (to learn the service's program), or neither";

/// The optional query of `GET /v1/nonce`. Other parameters are ignored,
/// as they were before these existed.
#[derive(Deserialize)]
struct NonceFor {
    session: Option<String>,
    service: Option<String>,
}

async fn nonce(
    State(cas): State<Arc<Cas>>,
    Query(q): Query<NonceFor>,
) -> ApiResult<Json<NonceResponse>> {
    // Looked up before a nonce is issued: an unknown name gets none.
    let (program, volumes) = match (q.session, q.service) {
        (None, None) => (None, Vec::new()),
        (Some(session), Some(service)) => {
            let (p, v) = cas.launch_info(&session, &service)?;
            (Some(p), v)
        }
        _ => return Err(ApiError::bad_request("bad_request", NONCE_FOR_BOTH)),
    };
    let n = cas
        .nonces
        .issue()
        .map_err(|_| ApiError::internal("making a nonce", &"the random generator failed"))?;
    Ok(Json(NonceResponse {
        nonce: hex::encode(n),
        expires_in: cas.nonces.ttl().as_secs(),
        program,
        volumes,
    }))
}

#[derive(Deserialize)]
struct NonceQuery {
    nonce: String,
}

async fn cas_evidence(
    State(cas): State<Arc<Cas>>,
    Query(q): Query<NonceQuery>,
) -> ApiResult<Json<CasEvidence>> {
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(q.nonce.trim(), &mut nonce).map_err(|_| {
        ApiError::bad_request(
            "bad_request",
            "nonce must be 64 hex digits (32 random bytes)",
        )
    })?;
    let spki = spki_of(&cas.tls.cert_der())
        .ok_or_else(|| ApiError::internal("reading the TLS certificate", &"no SPKI"))?;
    let rd: ReportData = veil_api::report_data(CAS_EVIDENCE_DOMAIN, &nonce, &spki, &[0; 32]);
    let evidence_cas = cas.clone();
    let collected = tokio::task::spawn_blocking(move || evidence_cas.evidence.collect(&rd))
        .await
        .map_err(|e| ApiError::internal("collecting evidence", &e))?
        .map_err(|e| ApiError::internal("collecting evidence", &e))?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let endorsements = collected
        .endorsements
        .iter()
        .flat_map(|e| match e {
            veil_attest::Endorsement::Certificates(c) => c
                .iter()
                .map(|d| veil_api::WireEndorsement::Certificate(b64(d)))
                .collect::<Vec<_>>(),
            veil_attest::Endorsement::DcapCollateral(j) => {
                vec![veil_api::WireEndorsement::DcapCollateral(b64(j))]
            }
            _ => Vec::new(),
        })
        .collect();
    Ok(Json(CasEvidence {
        tee: collected.evidence.tee,
        evidence: b64(&collected.evidence.bytes),
        endorsements,
        certificate: format!("{}{}", cas.tls.cert_pem(), cas.ca.cert_pem()),
        sim_platform_key: cas.sim_key.map(hex::encode),
    }))
}

/// The SubjectPublicKeyInfo DER of a certificate.
pub(crate) fn spki_of(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(c.tbs_certificate.subject_pki.raw.to_vec())
}

async fn attest(
    State(cas): State<Arc<Cas>>,
    body: Bytes,
) -> ApiResult<Json<veil_api::AttestResponse>> {
    let req: AttestRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("bad_request", format!("invalid attestation request: {e}"))
    })?;
    cas.attest(req).await.map(Json)
}

fn policy_text(body: &Bytes) -> ApiResult<String> {
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("bad_request", "the policy is not UTF-8 text"))
}

async fn apply(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    body: Bytes,
) -> ApiResult<Response> {
    let who = caller(peer)?;
    let outcome = cas.apply(&who, policy_text(&body)?).await?;
    let status = if outcome.state == "pending" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome)).into_response())
}

async fn list(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
) -> ApiResult<Json<serde_json::Value>> {
    let who = caller(peer)?;
    let sessions: Vec<_> = cas
        .owned(&who)?
        .iter()
        .map(|a| {
            serde_json::json!({
                "name": a.session.name().to_string(),
                "version": a.session.version(),
                "hash": a.hash.to_string(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "sessions": sessions })))
}

async fn get_session(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let who = caller(peer)?;
    let full = format!("{ns}/{name}");
    let active = cas.owned_session(&who, &full)?;
    let secrets = cas.load_secrets(&full)?;
    let pending = cas.pending(&full)?;
    Ok(Json(describe(&active, &secrets, pending.as_ref())))
}

async fn diff(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let who = caller(peer)?;
    let full = format!("{ns}/{name}");
    let new = veil_policy::parse_session(&policy_text(&body)?)
        .map_err(|e| ApiError::unprocessable("policy_invalid", e.to_string()))?;
    let changes = match cas.owned_session(&who, &full) {
        Ok(active) => veil_policy::diff(&active.session, &new)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        Err(_) => return Ok(Json(serde_json::json!({ "new": true, "changes": [] }))),
    };
    Ok(Json(
        serde_json::json!({ "new": false, "changes": changes }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    hash: String,
}

async fn approve(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<crate::sessions::ApplyOutcome>> {
    let who = caller(peer)?;
    let b: ApproveBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("bad_request", format!("expected {{\"hash\": ...}}: {e}"))
    })?;
    cas.approve(&who, &format!("{ns}/{name}"), &b.hash)
        .await
        .map(Json)
}

async fn put_secret(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    Path((ns, name, secret)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let who = caller(peer)?;
    let value = Zeroizing::new(body.to_vec());
    cas.put_secret(&who, &format!("{ns}/{name}"), &secret, value)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn export_secret(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    Path((ns, name, secret)): Path<(String, String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let who = caller(peer)?;
    cas.export_secret(&who, &format!("{ns}/{name}"), &secret)
        .await
        .map(Json)
}

/// `POST /v1/volumes/commit`: authenticated by the attested launcher
/// certificate (the handler checks it, not the TLS layer).
async fn commit_volume(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    body: Bytes,
) -> ApiResult<Json<veil_api::VolumeCommitted>> {
    let peer = peer.map(|Extension(p)| p);
    cas.commit_volume(peer.as_ref(), &body).await.map(Json)
}

async fn accept_volume(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    Path((ns, name, service, volume)): Path<(String, String, String, String)>,
    body: Bytes,
) -> ApiResult<Json<veil_api::VolumeAccepted>> {
    let who = caller(peer)?;
    cas.accept_volume(&who, &format!("{ns}/{name}"), &service, &volume, &body)
        .await
        .map(Json)
}

async fn list_volumes(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<veil_api::VolumeList>> {
    let who = caller(peer)?;
    cas.list_volumes(&who, &format!("{ns}/{name}")).map(Json)
}

/// Records per page of `GET /v1/audit`.
pub const AUDIT_PAGE: usize = 2000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

async fn audit(
    State(cas): State<Arc<Cas>>,
    peer: Option<Extension<Peer>>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    let _who = caller(peer)?;
    let limit = q.limit.unwrap_or(AUDIT_PAGE).clamp(1, AUDIT_PAGE);
    let store = cas.store.clone();
    let text = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        store
            .export_audit_page(q.from, limit, &mut out)
            .map(|()| out)
    })
    .await
    .map_err(|e| ApiError::internal("exporting the audit log", &e))?
    .map_err(|e| ApiError::internal("exporting the audit log", &e))?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    async fn json_of(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The keys a value serializes to, as a sorted list.
    fn keys_of(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    /// The schema's properties, and its required ones, sorted.
    fn schema_keys(spec: &serde_json::Value, name: &str) -> (Vec<String>, Vec<String>) {
        let schema = &spec["components"]["schemas"][name];
        assert_eq!(schema["additionalProperties"], false, "{name}");
        let props = keys_of(&schema["properties"]);
        let mut required: Vec<String> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        required.sort();
        (props, required)
    }

    #[test]
    fn openapi_describes_the_nonce_and_attest_responses() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let nonce = &spec["paths"]["/v1/nonce"]["get"];
        let params: Vec<_> = nonce["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap(),
                    p["in"].as_str().unwrap(),
                    p["required"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            params,
            [("session", "query", false), ("service", "query", false)]
        );
        for status in ["200", "400", "404", "408"] {
            assert!(nonce["responses"].get(status).is_some(), "{status}");
        }

        // Every field the CAS sends is declared; every required one is sent.
        let full = serde_json::to_value(NonceResponse {
            nonce: "00".repeat(32),
            expires_in: 60,
            program: Some("/bin/app".into()),
            volumes: vec!["data".into()],
        })
        .unwrap();
        let bare = serde_json::to_value(NonceResponse {
            nonce: "00".repeat(32),
            expires_in: 60,
            program: None,
            volumes: vec![],
        })
        .unwrap();
        let (props, required) = schema_keys(&spec, "NonceResponse");
        assert_eq!(keys_of(&full), props);
        assert_eq!(keys_of(&bare), required);

        let attest = veil_api::AttestResponse {
            certificate: String::new(),
            ca: String::new(),
            argv: vec![],
            host_args: false,
            host_env: vec!["TZ".into()],
            env: Default::default(),
            files: vec![veil_api::WireFile {
                path: "/x".into(),
                mode: 0o600,
                content: Zeroizing::new(String::new()),
            }],
            volumes: vec![veil_api::WireVolume {
                name: "data".into(),
                path: "/data".into(),
                mode: veil_api::VolumeMode::Encrypted,
                key: Zeroizing::new(String::new()),
                tag: None,
                read_only: true,
            }],
            network: vec![veil_api::WireTunnel::Inbound {
                listen: "0.0.0.0:1".into(),
                to: "127.0.0.1:2".into(),
                tls: None,
                client_auth: None,
                alpn: vec![],
            }],
            audit_seq: 1,
        };
        let full = serde_json::to_value(&attest).unwrap();
        let (props, required) = schema_keys(&spec, "AttestResponse");
        assert_eq!(keys_of(&full), props);
        let volume_schema =
            &spec["components"]["schemas"]["AttestResponse"]["properties"]["volumes"]["items"];
        assert_eq!(
            volume_schema["$ref"], "#/components/schemas/WireVolume",
            "{volume_schema}"
        );
        let (vprops, vrequired) = schema_keys(&spec, "WireVolume");
        assert_eq!(keys_of(&full["volumes"][0]), vprops);
        let mut rw = full["volumes"][0].clone();
        rw.as_object_mut().unwrap().remove("read_only");
        assert_eq!(keys_of(&rw), vrequired);
        let bare = serde_json::to_value(veil_api::AttestResponse {
            host_env: vec![],
            volumes: vec![],
            network: vec![],
            ..attest
        })
        .unwrap();
        assert_eq!(keys_of(&bare), required);
        let file_schema =
            &spec["components"]["schemas"]["AttestResponse"]["properties"]["files"]["items"];
        assert_eq!(
            keys_of(&full["files"][0]),
            keys_of(&file_schema["properties"])
        );
        assert_eq!(
            spec["paths"]["/v1/attest"]["post"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/AttestResponse"
        );
        let reasons = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
            ["reason"]["description"]
            .as_str()
            .unwrap();
        for code in [
            "executable_mismatch",
            "interpreter_mismatch",
            "measurement_mismatch",
            "volume_missing",
            "volume_rollback",
            "unknown_volume",
            "volume_claim_invalid",
        ] {
            assert!(reasons.contains(code), "{code}");
        }
    }

    #[test]
    fn openapi_describes_the_volume_endpoints() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let ops = [
            (
                veil_api::VOLUME_COMMIT_PATH,
                "post",
                &["200", "400", "401", "403", "404", "408", "409", "413"][..],
            ),
            (
                "/v1/sessions/{ns}/{name}/volumes/{service}/{volume}/accept",
                "post",
                &["200", "400", "401", "403", "404", "408", "413"][..],
            ),
            (
                "/v1/sessions/{ns}/{name}/volumes",
                "get",
                &["200", "400", "401", "404", "408"][..],
            ),
        ];
        for (path, method, statuses) in ops {
            let op = &spec["paths"][path][method];
            assert!(op.is_object(), "{path} {method}");
            assert_eq!(op["security"][0]["mutualTLS"], serde_json::json!([]));
            let mut declared = keys_of(&op["responses"]);
            declared.sort();
            let mut want: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
            want.sort();
            assert_eq!(declared, want, "{path}");
        }

        // Request and response bodies: the schema's fields are the wire type's.
        let body_of = |path: &str| {
            let r = &spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"];
            r.as_str().unwrap().rsplit('/').next().unwrap().to_owned()
        };
        let commit = serde_json::to_value(veil_api::VolumeCommit {
            session: "shop/db".into(),
            service: "app".into(),
            volume: "data".into(),
            previous: None,
            tag: "0".repeat(64),
        })
        .unwrap();
        let (props, required) = schema_keys(&spec, &body_of(veil_api::VOLUME_COMMIT_PATH));
        assert_eq!(keys_of(&commit), props);
        assert_eq!(keys_of(&commit), required);
        let accept = serde_json::to_value(veil_api::VolumeAccept { tag: None }).unwrap();
        let (props, required) = schema_keys(
            &spec,
            &body_of("/v1/sessions/{ns}/{name}/volumes/{service}/{volume}/accept"),
        );
        assert_eq!(keys_of(&accept), props);
        assert_eq!(keys_of(&accept), required);
        for (name, value) in [
            (
                "VolumeCommitted",
                serde_json::to_value(veil_api::VolumeCommitted {
                    tag: "0".repeat(64),
                    audit_seq: 1,
                })
                .unwrap(),
            ),
            (
                "VolumeAccepted",
                serde_json::to_value(veil_api::VolumeAccepted {
                    session: "shop/db".into(),
                    service: "app".into(),
                    volume: "data".into(),
                    previous: None,
                    tag: None,
                    audit_seq: 1,
                })
                .unwrap(),
            ),
            (
                "VolumeList",
                serde_json::to_value(veil_api::VolumeList { volumes: vec![] }).unwrap(),
            ),
        ] {
            let (props, required) = schema_keys(&spec, name);
            assert_eq!(keys_of(&value), props, "{name}");
            assert_eq!(keys_of(&value), required, "{name}");
        }
        let state = serde_json::to_value(veil_api::VolumeState {
            service: "app".into(),
            volume: "data".into(),
            tag: None,
        })
        .unwrap();
        let (props, required) = schema_keys(&spec, "VolumeState");
        assert_eq!(keys_of(&state), props);
        assert_eq!(keys_of(&state), required);
    }

    #[tokio::test]
    async fn axum_rejections_become_json_errors() {
        let uri: axum::http::Uri = "/v1/cas/evidence".parse().unwrap();
        let rejection = Query::<NonceQuery>::try_from_uri(&uri).err().unwrap();
        let res = json_rejections(rejection.into_response()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body = json_of(res).await;
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(body["error"]["message"].as_str().unwrap().contains("nonce"));

        let too_big = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let body = json_of(json_rejections(too_big).await).await;
        assert_eq!(body["error"]["code"], "too_large");

        // Successful plain-text responses (/metrics) are left alone.
        let ok = json_rejections((StatusCode::OK, "metric 1").into_response()).await;
        assert_eq!(
            ok.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
