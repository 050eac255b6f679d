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
use sha2::{Digest, Sha256};
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

/// Prefix of the runtime claim a launcher states for each volume of its
/// service: `volume:<name>` = the volume's freshness tag
/// ([`is_volume_tag`]), or [`VOLUME_NEW`] when no volume exists yet in its
/// backing directory (see [`volume_claim`]).
pub const CLAIM_VOLUME_PREFIX: &str = "volume:";

/// The value of a `volume:<name>` runtime claim when the launcher found no
/// volume in the backing directory.
pub const VOLUME_NEW: &str = "new";

/// The runtime claim name of volume `name`: `volume:<name>`.
pub fn volume_claim(name: &str) -> String {
    format!("{CLAIM_VOLUME_PREFIX}{name}")
}

/// Whether `s` is a freshness tag as the CAS stores it: exactly 64
/// lower-case hex digits (32 bytes, e.g. an HMAC-SHA256).
pub fn is_volume_tag(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

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

/// Claims-buffer key: the CAS's nonce (byte string).
pub const RATLS_CLAIM_NONCE: &str = "nonce";
/// Claims-buffer key: `[1 (sha-256), SHA-256(SPKI DER)]`, CBOR in a byte
/// string (Interoperable RA-TLS `pubkey-hash`).
pub const RATLS_CLAIM_PUBKEY_HASH: &str = "pubkey-hash";
/// Claims-buffer key: the digest of the runtime claims (byte string, 32).
pub const RATLS_CLAIM_VEIL_CLAIMS: &str = "veil-claims";
/// Claims-buffer key: the domain separator (text string).
pub const RATLS_CLAIM_VEIL_DOMAIN: &str = "veil-domain";

/// The claims buffer the report data binds (attestation spec §4.1, binding
/// version 2): the deterministically encoded (RFC 8949 §4.2.1) CBOR map
///
/// ```text
/// { "nonce":       bstr(nonce),
///   "pubkey-hash": bstr(CBOR [1, bstr(SHA-256(spki_der))]),
///   "veil-claims": bstr(claims_digest),
///   "veil-domain": tstr(domain) }
/// ```
///
/// (keys in that order: shorter encodings first, then bytewise). It is an
/// Interoperable RA-TLS claims buffer: a certificate for `spki_der` that
/// carries the evidence and this buffer under OID 2.23.133.5.4.9 is valid
/// RA-TLS. The domains are ASCII; a domain that is not UTF-8 would be
/// encoded as a byte string (still injective: a different CBOR type).
pub fn ratls_claims_buffer(
    domain: &[u8],
    nonce: &[u8],
    spki_der: &[u8],
    claims_digest: &[u8; 32],
) -> Vec<u8> {
    use ciborium::Value;
    let pubkey_hash = cbor(&Value::Array(vec![
        Value::Integer(1.into()),
        Value::Bytes(Sha256::digest(spki_der).to_vec()),
    ]));
    let domain = match std::str::from_utf8(domain) {
        Ok(text) => Value::Text(text.to_owned()),
        Err(_) => Value::Bytes(domain.to_vec()),
    };
    // RFC 8949 §4.2.1: keys sorted by their encoding; "nonce" (5 bytes)
    // first, then the three 11-byte keys in byte order.
    cbor(&Value::Map(vec![
        (
            Value::Text(RATLS_CLAIM_NONCE.into()),
            Value::Bytes(nonce.to_vec()),
        ),
        (
            Value::Text(RATLS_CLAIM_PUBKEY_HASH.into()),
            Value::Bytes(pubkey_hash),
        ),
        (
            Value::Text(RATLS_CLAIM_VEIL_CLAIMS.into()),
            Value::Bytes(claims_digest.to_vec()),
        ),
        (Value::Text(RATLS_CLAIM_VEIL_DOMAIN.into()), domain),
    ]))
}

/// CBOR of `v`; ciborium writes heads in their shortest form, as
/// deterministic encoding requires.
fn cbor(v: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing integers, byte and text strings, arrays and maps into a Vec
    // cannot fail (the writer is infallible; no serde custom errors).
    #[allow(clippy::expect_used)]
    ciborium::ser::into_writer(v, &mut out).expect("CBOR encoding into a Vec");
    out
}

/// Report data, binding version 2 (attestation spec §4.1):
/// SHA-256([`ratls_claims_buffer`]) followed by 32 zero bytes, so the same
/// evidence also binds the key the Interoperable RA-TLS way.
pub fn report_data(
    domain: &[u8],
    nonce: &[u8],
    spki_der: &[u8],
    claims_digest: &[u8; 32],
) -> ReportData {
    report_data_of(&ratls_claims_buffer(domain, nonce, spki_der, claims_digest))
}

/// The report data that binds `claims_buffer` (from [`ratls_claims_buffer`]):
/// its SHA-256, then 32 zero bytes.
pub fn report_data_of(claims_buffer: &[u8]) -> ReportData {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(claims_buffer));
    ReportData(out)
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
    /// Likewise: the names of the service's volumes, whose freshness tags
    /// the launcher states as `volume:<name>` runtime claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
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

/// How a volume is protected (policy `volumes[].mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeMode {
    /// Confidentiality and integrity.
    Encrypted,
    /// Integrity only (plaintext with tags).
    Integrity,
}

/// One volume of the service, released with a grant: where to mount it,
/// its key, and the freshness tag the CAS holds for it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireVolume {
    /// The volume's name in the policy.
    pub name: String,
    /// Mount point inside the TEE (absolute, normalized).
    pub path: String,
    /// Protection.
    pub mode: VolumeMode,
    /// The volume key: standard base64 of the 32-byte value of the policy's
    /// `key` secret (aes-256, or an import). Secret.
    pub key: Zeroizing<String>,
    /// The freshness tag the CAS holds for this volume (64 lower-case hex
    /// digits), or `null` when it holds none (first start, or an owner
    /// cleared it). The launcher's `volume:<name>` claim was checked
    /// against it.
    pub tag: Option<String>,
    /// Mount read-only (policy `read_only: true`); absent: read-write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

impl fmt::Debug for WireVolume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireVolume")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("key", &format_args!("<redacted>"))
            .field("tag", &self.tag)
            .field("read_only", &self.read_only)
            .finish()
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
    /// The service's volumes (policy `volumes`), with their keys and the
    /// freshness tags the CAS holds. Absent from the JSON when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<WireVolume>,
    /// The service's TLS tunnels (policy `network`), with the CA
    /// certificates of the peer sessions they name. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<WireTunnel>,
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
            .field("volumes", &self.volumes)
            .field("network", &self.network)
            .field("audit_seq", &self.audit_seq)
            .finish_non_exhaustive()
    }
}

/// One TLS tunnel of the network shield, released with a grant
/// (`docs/spec/attestation.md` 4.6).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "direction", rename_all = "lowercase")]
pub enum WireTunnel {
    /// Terminate TLS on `listen`, forward plaintext to the program at `to`.
    Inbound {
        /// `host:port` to listen on.
        listen: String,
        /// `host:port` of the program.
        to: String,
        /// The certificate to present, when the policy names an x509
        /// secret; absent: the launcher's attested certificate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<WireTlsIdentity>,
        /// Who may connect; absent: anyone (policy `client_auth: none`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_auth: Option<WirePeer>,
        /// ALPN protocols offered; absent: none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        alpn: Vec<String>,
    },
    /// Accept plaintext from the program on `connect`, forward it over TLS
    /// to `remote`.
    Outbound {
        /// `host:port` the program connects to.
        connect: String,
        /// `host:port` of the peer.
        remote: String,
        /// The client certificate to present, when the policy names an x509
        /// secret; absent: the launcher's attested certificate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls: Option<WireTlsIdentity>,
        /// What the peer must be.
        peer: WirePeer,
        /// ALPN protocols asked for; absent: none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        alpn: Vec<String>,
        /// SNI to send; absent: the host of `remote`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_name: Option<String>,
    },
}

/// What the other end of a tunnel must be.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WirePeer {
    /// The CA certificate (PEM) of the peer's session: the peer's attested
    /// certificate must chain to it.
    pub ca: String,
    /// The session the peer's certificate must name.
    pub session: String,
    /// The service it must name, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The measurement it must carry (lower-case hex), if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<String>,
}

/// A certificate chain and its private key from an x509 policy secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTlsIdentity {
    /// The certificate, then its issuer (PEM).
    pub certificate: String,
    /// The private key (PKCS#8 PEM). Secret.
    pub key: Zeroizing<String>,
}

impl fmt::Debug for WireTlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireTlsIdentity")
            .field(
                "certificate",
                &format_args!("<{} bytes>", self.certificate.len()),
            )
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

/// The path of `POST /v1/volumes/commit`.
pub const VOLUME_COMMIT_PATH: &str = "/v1/volumes/commit";

/// `POST /v1/volumes/commit`: an attested launcher commits a volume's new
/// freshness tag. Called over mutual TLS with the certificate the CAS
/// issued at attestation (and its key); compare-and-swap on `previous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCommit {
    /// The session (`namespace/name`); must be the certificate's.
    pub session: String,
    /// The service; must be the certificate's.
    pub service: String,
    /// The volume, one of the service's.
    pub volume: String,
    /// The tag the launcher believes the CAS holds (the one it was granted
    /// with, or its last commit), or `None` (JSON `null`) for none. The CAS
    /// requires the field on the wire.
    pub previous: Option<String>,
    /// The new tag, 64 lower-case hex digits.
    pub tag: String,
}

/// The answer to a [`VolumeCommit`] that was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCommitted {
    /// The tag the CAS now holds.
    pub tag: String,
    /// The audit sequence number of the `volume.commit` record.
    pub audit_seq: u64,
}

/// `POST /v1/sessions/{ns}/{name}/volumes/{service}/{volume}/accept`: an
/// owner sets (a tag) or clears (`None`, JSON `null`) the freshness tag the
/// CAS holds, e.g. to accept a restored volume. The CAS requires the field
/// on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeAccept {
    /// The tag to hold from now on, or `None` to hold none (the next start
    /// is then accepted whatever the launcher finds).
    pub tag: Option<String>,
}

/// The answer to a [`VolumeAccept`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeAccepted {
    /// The session.
    pub session: String,
    /// The service.
    pub service: String,
    /// The volume.
    pub volume: String,
    /// The tag the CAS held before, or `None`.
    pub previous: Option<String>,
    /// The tag the CAS holds now, or `None`.
    pub tag: Option<String>,
    /// The audit sequence number of the `volume.accept` record.
    pub audit_seq: u64,
}

/// One volume in `GET /v1/sessions/{ns}/{name}/volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeState {
    /// The service declaring it.
    pub service: String,
    /// The volume.
    pub volume: String,
    /// The tag the CAS holds, or `None`.
    pub tag: Option<String>,
}

/// `GET /v1/sessions/{ns}/{name}/volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeList {
    /// Every volume the session's services declare, by service then
    /// volume (policy order).
    pub volumes: Vec<VolumeState>,
}

/// The path of `GET /v1/sessions/{ns}/{name}/volumes` for `session`
/// (`namespace/name`), each part percent-encoded.
pub fn volumes_path(session: &str) -> String {
    format!("/v1/sessions/{}/volumes", session_path(session))
}

/// The path of the owner's accept call for `volume` of `service` in
/// `session` (`namespace/name`), each part percent-encoded.
pub fn volume_accept_path(session: &str, service: &str, volume: &str) -> String {
    format!(
        "/v1/sessions/{}/volumes/{}/{}/accept",
        session_path(session),
        query_escape(service),
        query_escape(volume)
    )
}

/// `ns/name` with both parts percent-encoded and the slash kept.
fn session_path(session: &str) -> String {
    match session.split_once('/') {
        Some((ns, name)) => format!("{}/{}", query_escape(ns), query_escape(name)),
        None => query_escape(session),
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
        assert_ne!(base, report_data(ATTEST_DOMAIN, b"nonce", b"kez", &d));
        assert_ne!(base, report_data(ATTEST_DOMAIN, b"", b"noncekey", &d));
        // Binding version 2: SHA-256 of the claims buffer, then zeros.
        let buffer = ratls_claims_buffer(ATTEST_DOMAIN, b"nonce", b"key", &d);
        assert_eq!(base.0[..32], Sha256::digest(&buffer)[..]);
        assert_eq!(base.0[32..], [0u8; 32]);
    }

    /// Fixed inputs, fixed claims buffer and report data (attestation spec
    /// §4.1, binding version 2). A change here breaks every launcher and
    /// CAS of the other version: bump the binding's version instead.
    #[test]
    fn report_data_v2_test_vector() {
        let nonce = [0x11u8; 32];
        let spki = b"spki";
        let digest = [0x22u8; 32];
        let buffer = ratls_claims_buffer(ATTEST_DOMAIN, &nonce, spki, &digest);
        let spki_sha256 = hex::encode(Sha256::digest(spki));
        let expected_buffer = format!(
            "a4\
             656e6f6e6365 5820{nonce}\
             6b7075626b65792d68617368 5824 8201 5820{spki_sha256}\
             6b7665696c2d636c61696d73 5820{digest}\
             6b7665696c2d646f6d61696e 6e{domain}",
            nonce = "11".repeat(32),
            digest = "22".repeat(32),
            domain = hex::encode(ATTEST_DOMAIN),
        )
        .replace(' ', "");
        assert_eq!(hex::encode(&buffer), expected_buffer);
        assert_eq!(
            report_data(ATTEST_DOMAIN, &nonce, spki, &digest).to_hex(),
            REPORT_DATA_V2_VECTOR
        );
    }

    const REPORT_DATA_V2_VECTOR: &str = concat!(
        "62b6e5c0ac99a6230c0b6557e87f1431155a40bce6cfe00ab39951d9f95f28dc",
        "0000000000000000000000000000000000000000000000000000000000000000"
    );

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
            volumes: vec![WireVolume {
                name: "data".into(),
                path: "/data".into(),
                mode: VolumeMode::Encrypted,
                key: Zeroizing::new("canary-key-b64".into()),
                tag: Some("ab".repeat(32)),
                read_only: false,
            }],
            network: vec![],
            audit_seq: 1,
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("TZ"), "{shown}");
        assert!(shown.contains("/data") && shown.contains(&"ab".repeat(32)));
    }

    #[test]
    fn volumes_on_the_wire() {
        // Absent when none, as before the field existed (see below).
        let v = WireVolume {
            name: "data".into(),
            path: "/var/lib/app".into(),
            mode: VolumeMode::Integrity,
            key: Zeroizing::new("AAAA".into()),
            tag: None,
            read_only: false,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"name":"data","path":"/var/lib/app","mode":"integrity","key":"AAAA","tag":null}"#
        );
        let back: WireVolume = serde_json::from_str(
            r#"{"name":"d","path":"/d","mode":"encrypted","key":"AAAA","tag":"00"}"#,
        )
        .unwrap();
        assert_eq!(back.mode, VolumeMode::Encrypted);
        assert_eq!(back.tag.as_deref(), Some("00"));
        assert!(serde_json::from_str::<WireVolume>(
            r#"{"name":"d","path":"/d","mode":"plain","key":"","tag":null}"#
        )
        .is_err());

        let commit = VolumeCommit {
            session: "shop/db".into(),
            service: "app".into(),
            volume: "data".into(),
            previous: None,
            tag: "0".repeat(64),
        };
        let text = serde_json::to_string(&commit).unwrap();
        assert!(text.contains(r#""previous":null"#), "{text}");
        assert_eq!(serde_json::from_str::<VolumeCommit>(&text).unwrap(), commit);
        assert_eq!(
            serde_json::to_string(&VolumeAccept { tag: None }).unwrap(),
            r#"{"tag":null}"#
        );
    }

    #[test]
    fn volume_tags_claims_and_paths() {
        assert!(is_volume_tag(&"0123456789abcdef".repeat(4)));
        assert!(!is_volume_tag(&"0123456789ABCDEF".repeat(4)));
        assert!(!is_volume_tag(&"a".repeat(63)));
        assert!(!is_volume_tag(&"a".repeat(65)));
        assert!(!is_volume_tag(VOLUME_NEW));
        assert!(!is_volume_tag(&format!("{}g", "a".repeat(63))));
        assert_eq!(volume_claim("data"), "volume:data");
        assert_eq!(volumes_path("shop/db"), "/v1/sessions/shop/db/volumes");
        assert_eq!(
            volume_accept_path("shop/db", "app", "data.v1"),
            "/v1/sessions/shop/db/volumes/app/data.v1/accept"
        );
        assert_eq!(
            volume_accept_path("a b/c", "x/y", "z"),
            "/v1/sessions/a%20b/c/volumes/x%2Fy/z/accept"
        );
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
        assert!(r.volumes.is_empty());
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
