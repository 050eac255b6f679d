//! # veil-api: what crosses the wire between the CAS and its clients
//!
//! Request and response bodies of the CAS's `/v1` API, and the one
//! computation both ends of an attestation must agree on: the report data
//! that binds evidence to the CAS's nonce, the attester's public key and its
//! runtime claims ([`report_data`]). The launcher and the command line
//! depend on this crate, never on the CAS server.
//!
//! Binary fields travel as standard base64 (with padding); digests and
//! nonces as lower-case hex.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use veil_attest::{ReportData, Tee};
use zeroize::Zeroizing;

/// Domain separator of the launcher's report data (attestation spec §4).
pub const ATTEST_DOMAIN: &[u8] = b"veil-attest-v1";
/// Domain separator of the CAS's own evidence (`GET /v1/cas/evidence`).
pub const CAS_EVIDENCE_DOMAIN: &[u8] = b"veil-cas-evidence-v1";

/// What a launcher states about what it runs, beside the hardware
/// measurement: e.g. `executable` → SHA-384 hex of the program it starts.
pub type RuntimeClaims = BTreeMap<String, String>;

/// Runtime claim: the lower-case hex SHA-384 of the program file the
/// launcher starts (96 digits). Accept rules pin it with `executable`.
pub const CLAIM_EXECUTABLE: &str = "executable";

/// Runtime claim, only when the program is a `#!` script: the lower-case
/// hex SHA-384 of its interpreter file. Accept rules pin it with
/// `interpreter`.
pub const CLAIM_INTERPRETER: &str = "interpreter";

/// SHA-256 of the canonical JSON of the runtime claims (keys sorted, no
/// whitespace); 32 zero bytes when there are none.
pub fn runtime_claims_digest(claims: &RuntimeClaims) -> [u8; 32] {
    if claims.is_empty() {
        return [0; 32];
    }
    // A BTreeMap<String, String> serializes with sorted keys and cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    Sha256::digest(json).into()
}

/// Report data = SHA-512(domain || nonce || SPKI(K) || digest(runtime claims)),
/// each field length-prefixed (u32 big-endian) so no two inputs collide.
pub fn report_data(
    domain: &[u8],
    nonce: &[u8],
    spki_der: &[u8],
    claims_digest: &[u8; 32],
) -> ReportData {
    let mut h = Sha512::new();
    for part in [domain, nonce, spki_der, &claims_digest[..]] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    ReportData(h.finalize().into())
}

/// `GET /v1/nonce`, or `GET /v1/nonce?session=NS/NAME&service=SVC` (see
/// [`nonce_path`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceResponse {
    /// 32 random bytes, hex.
    pub nonce: String,
    /// Seconds the nonce stays valid.
    pub expires_in: u64,
    /// When the request named a session and service: the service's program
    /// (`command[0]` of the policy, always literal text), so that a
    /// launcher can measure it before it attests. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

/// The path and query of `GET /v1/nonce` asking also for the program of
/// `service` in `session` ([`NonceResponse::program`]), with both values
/// percent-encoded.
pub fn nonce_path(session: &str, service: &str) -> String {
    format!(
        "/v1/nonce?session={}&service={}",
        query_escape(session),
        query_escape(service)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One endorsement sent with evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(
    tag = "kind",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum WireEndorsement {
    /// DCAP collateral JSON, base64.
    DcapCollateral(String),
    /// One DER certificate (VCEK, VLEK, ASK, ARK, ASVK), base64.
    Certificate(String),
}

/// `POST /v1/attest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// The session (`namespace/name`).
    pub session: String,
    /// The service within the session.
    pub service: String,
    /// The nonce from `GET /v1/nonce`, hex.
    pub nonce: String,
    /// The TEE the evidence comes from.
    pub tee: Tee,
    /// The evidence, base64.
    pub evidence: String,
    /// Endorsements the platform handed out with the evidence.
    #[serde(default)]
    pub endorsements: Vec<WireEndorsement>,
    /// The launcher's public key (SubjectPublicKeyInfo DER), base64.
    pub spki: String,
    /// What the launcher states about the program it starts.
    #[serde(default)]
    pub runtime_claims: RuntimeClaims,
}

/// One file to place for the program.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireFile {
    /// Absolute path.
    pub path: String,
    /// Unix mode, e.g. 0o600.
    pub mode: u32,
    /// Content, base64 (may carry secrets).
    pub content: Zeroizing<String>,
}

impl fmt::Debug for WireFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WireFile({}, mode {:o}, <redacted>)",
            self.path, self.mode
        )
    }
}

/// The answer to a granted attestation: what the launcher needs to start
/// the service. Carries secrets: `Debug` redacts them and they are zeroized
/// on drop.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestResponse {
    /// The launcher's certificate (PEM), issued by the session CA for the key it attested.
    pub certificate: String,
    /// The session CA certificate (PEM).
    pub ca: String,
    /// The program's argv, templates filled.
    pub argv: Vec<Zeroizing<String>>,
    /// Whether the host may append arguments.
    pub host_args: bool,
    /// Names of environment variables the (untrusted) host may pass
    /// through to the program, from the policy's `host_env`; none of them
    /// is in `env`. Absent from the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_env: Vec<String>,
    /// The program's environment, templates filled.
    pub env: BTreeMap<String, Zeroizing<String>>,
    /// Files to place.
    pub files: Vec<WireFile>,
    /// The audit sequence number of the grant.
    pub audit_seq: u64,
}

impl fmt::Debug for AttestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestResponse")
            .field("argv", &format_args!("<{} redacted>", self.argv.len()))
            .field("host_args", &self.host_args)
            .field("host_env", &self.host_env)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("files", &self.files)
            .field("audit_seq", &self.audit_seq)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/cas/evidence?nonce=HEX`: the CAS attesting itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasEvidence {
    /// The TEE the CAS runs in (`sim` in development).
    pub tee: Tee,
    /// The evidence, base64; report data = [`report_data`] with
    /// [`CAS_EVIDENCE_DOMAIN`], the client's nonce and the SPKI of the CAS's
    /// TLS certificate, no runtime claims.
    pub evidence: String,
    /// Endorsements for the evidence.
    #[serde(default)]
    pub endorsements: Vec<WireEndorsement>,
    /// The CAS's TLS certificate chain, PEM.
    pub certificate: String,
    /// For `sim`: the platform public key, hex (a client must choose to trust it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_platform_key: Option<String>,
}

/// An error body: `{"error": {"code", "message", "reason"?}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// Attestation denials: the policy's reason code.
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_data_binds_every_input() {
        let d = [1u8; 32];
        let base = report_data(ATTEST_DOMAIN, b"nonce", b"key", &d);
        assert_ne!(base, report_data(CAS_EVIDENCE_DOMAIN, b"nonce", b"key", &d));
        assert_ne!(base, report_data(ATTEST_DOMAIN, b"nonc", b"ekey", &d));
        assert_ne!(base, report_data(ATTEST_DOMAIN, b"nonce", b"key", &[2; 32]));
        assert_eq!(base, report_data(ATTEST_DOMAIN, b"nonce", b"key", &d));
    }

    #[test]
    fn runtime_claims_digest_is_order_independent_and_zero_when_empty() {
        assert_eq!(runtime_claims_digest(&RuntimeClaims::new()), [0; 32]);
        let mut a = RuntimeClaims::new();
        a.insert("b".into(), "2".into());
        a.insert("a".into(), "1".into());
        let mut b = RuntimeClaims::new();
        b.insert("a".into(), "1".into());
        b.insert("b".into(), "2".into());
        assert_eq!(runtime_claims_digest(&a), runtime_claims_digest(&b));
        assert_ne!(runtime_claims_digest(&a), [0; 32]);
    }

    #[test]
    fn responses_redact_secrets_in_debug() {
        let mut env = BTreeMap::new();
        env.insert(
            "DB_PASSWORD".to_owned(),
            Zeroizing::new("canary-s3cret".to_owned()),
        );
        let r = AttestResponse {
            certificate: String::new(),
            ca: String::new(),
            argv: vec![Zeroizing::new("--password=canary-s3cret".into())],
            host_args: false,
            host_env: vec!["TZ".into()],
            env,
            files: vec![WireFile {
                path: "/etc/x".into(),
                mode: 0o600,
                content: Zeroizing::new("canary-s3cret".into()),
            }],
            audit_seq: 1,
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("canary"));
        assert!(shown.contains("TZ"), "{shown}");
    }

    #[test]
    fn nonce_response_program_is_optional_on_the_wire() {
        let plain: NonceResponse =
            serde_json::from_str(r#"{"nonce":"00","expires_in":60}"#).unwrap();
        assert_eq!(plain.program, None);
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"nonce":"00","expires_in":60}"#
        );
        let with: NonceResponse =
            serde_json::from_str(r#"{"nonce":"00","expires_in":60,"program":"/bin/app"}"#).unwrap();
        assert_eq!(with.program.as_deref(), Some("/bin/app"));
        assert!(serde_json::to_string(&with)
            .unwrap()
            .contains(r#""program":"/bin/app""#));
    }

    #[test]
    fn attest_response_host_env_defaults_to_empty() {
        let json = r#"{"certificate":"","ca":"","argv":["/bin/app"],"host_args":false,"env":{},"files":[],"audit_seq":3}"#;
        let r: AttestResponse = serde_json::from_str(json).unwrap();
        assert!(r.host_env.is_empty());
        // Empty: not sent, so the body is what it was before the field existed.
        assert_eq!(serde_json::to_string(&r).unwrap(), json);
        let mut r2 = r.clone();
        r2.host_env = vec!["LANG".into(), "TZ".into()];
        let text = serde_json::to_string(&r2).unwrap();
        assert!(text.contains(r#""host_env":["LANG","TZ"]"#), "{text}");
        let back: AttestResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(back.host_env, r2.host_env);
    }

    #[test]
    fn nonce_path_escapes_its_values() {
        assert_eq!(
            nonce_path("shop/db", "app"),
            "/v1/nonce?session=shop%2Fdb&service=app"
        );
        assert_eq!(
            nonce_path("a b&c=d", "x.y-z_~"),
            "/v1/nonce?session=a%20b%26c%3Dd&service=x.y-z_~"
        );
        assert_eq!(nonce_path("é", ""), "/v1/nonce?session=%C3%A9&service=");
    }
}
