//! # veil-client: talking to a CAS
//!
//! A small HTTPS client for the CAS's `/v1` API. Every connection pins the
//! CAS's certificate by the SHA-256 of its DER encoding ([`Trust::Pinned`]):
//! the end-entity certificate itself, or the CAS's CA certificate in the
//! chain that issued it;
//! the only exception is the first contact of `veil cas verify`, which uses
//! [`danger::FirstContact`] and then checks that the CAS's attested evidence
//! binds the very TLS key it saw before pinning it.
//!
//! Owners authenticate with mutual TLS ([`ClientIdentity`]); launchers call
//! without a client certificate.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The most a CAS answer may be.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// How long one call may take, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `https://HOST:PORT`.
    #[error("invalid CAS URL {0:?}: expected https://HOST:PORT")]
    BadUrl(String),
    /// The CAS could not be reached.
    #[error("cannot reach the CAS at {url}: {detail}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// TLS failed (a pin mismatch shows here).
    #[error("TLS with the CAS at {url} failed: {detail}")]
    Tls {
        /// The URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The CAS answered with an error.
    #[error("the CAS refused ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// The CAS's message.
        message: String,
        /// Attestation denials: the policy's reason code.
        reason: Option<String>,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the CAS: {0}")]
    Protocol(String),
    /// The call took longer than [`CALL_TIMEOUT`].
    #[error("the CAS at {0} did not answer in time")]
    Timeout(String),
}

impl ClientError {
    /// True when retrying later may help (unreachable, timeout, 503).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::Timeout(_)
        ) || matches!(self, ClientError::Api { status: 503, .. })
    }
}

/// How the client decides that it talks to the right CAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The CAS's certificate must have this SHA-256 (of its DER).
    Pinned([u8; 32]),
}

/// A client key and certificate for mutual TLS.
pub struct ClientIdentity {
    /// The certificate chain, end entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientIdentity({} certs, key redacted)",
            self.chain.len()
        )
    }
}

/// What a connection learned about the server: its certificate chain.
#[derive(Debug, Clone, Default)]
pub struct SeenCertificate(Arc<Mutex<Vec<Vec<u8>>>>);

impl SeenCertificate {
    /// The DER certificates the server presented last, end entity first.
    pub fn get(&self) -> Vec<Vec<u8>> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Checks that `leaf` was issued by `ca`: its signature verifies with the
/// CA's key, its issuer is the CA's subject, and it is valid at `now`.
fn issued_by(leaf: &[u8], ca: &[u8], now: UnixTime) -> Result<(), String> {
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca).map_err(|e| e.to_string())?;
    if leaf.issuer() != ca.subject() {
        return Err("the certificate was not issued by the pinned CAS certificate".into());
    }
    leaf.verify_signature(Some(ca.public_key())).map_err(|e| {
        format!("the certificate's signature does not verify with the pinned CAS key: {e}")
    })?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let (from, to) = (
        leaf.validity().not_before.timestamp(),
        leaf.validity().not_after.timestamp(),
    );
    if now < from || now > to {
        return Err(format!(
            "the CAS's TLS certificate is outside its validity ({from}..{to}, now {now})"
        ));
    }
    Ok(())
}

/// SHA-256 of a certificate's DER: what [`Trust::Pinned`] compares.
pub fn cert_sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug)]
struct PinVerifier {
    pin: Option<[u8; 32]>,
    seen: SeenCertificate,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.0.lock() {
            *g = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.to_vec())
                .collect();
        }
        let Some(pin) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        if cert_sha256(end_entity) == pin {
            return Ok(ServerCertVerified::assertion());
        }
        match intermediates.iter().find(|c| cert_sha256(c) == pin) {
            Some(ca) => issued_by(end_entity, ca, now)
                .map(|()| ServerCertVerified::assertion())
                .map_err(rustls::Error::General),
            None => Err(rustls::Error::General(format!(
                "the CAS certificate is not the pinned one (expected SHA-256 {}); if the CAS was re-created, run `veil cas verify` again",
                hex::encode(pin)
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Ways to weaken the client that must be chosen by name.
pub mod danger {
    /// Accept whatever certificate the CAS presents, for the first contact
    /// of `veil cas verify` only: the caller must then check attested
    /// evidence that binds the certificate seen
    /// ([`super::CasClient::seen_certificates`]) before trusting anything.
    #[derive(Debug, Clone, Copy)]
    pub struct FirstContact;
}

/// A client of one CAS.
#[derive(Debug, Clone)]
pub struct CasClient {
    url: String,
    host: String,
    authority: String,
    port: u16,
    tls: Arc<ClientConfig>,
    seen: SeenCertificate,
    conn: Arc<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>>,
}

impl CasClient {
    /// A client that trusts the CAS as `trust` says, optionally with a client identity.
    pub fn new(
        url: &str,
        trust: Trust,
        identity: Option<ClientIdentity>,
    ) -> Result<Self, ClientError> {
        let Trust::Pinned(pin) = trust;
        Self::build(url, Some(pin), identity)
    }

    /// A client for the first contact of `veil cas verify`; see [`danger::FirstContact`].
    pub fn first_contact(url: &str, _: danger::FirstContact) -> Result<Self, ClientError> {
        Self::build(url, None, None)
    }

    fn build(
        url: &str,
        pin: Option<[u8; 32]>,
        identity: Option<ClientIdentity>,
    ) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("https://").ok_or_else(bad)?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(bad());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_owned(), p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (authority.to_owned(), 443),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad());
        }
        let seen = SeenCertificate::default();
        let provider = provider();
        let verifier = Arc::new(PinVerifier {
            pin,
            seen: seen.clone(),
            provider: provider.clone(),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut tls = match identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain, id.key)
                .map_err(|e| ClientError::Protocol(format!("client identity: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(CasClient {
            url: url.trim_end_matches('/').to_owned(),
            authority: authority.to_owned(),
            host,
            port,
            tls: Arc::new(tls),
            seen,
            conn: Arc::default(),
        })
    }

    /// The CAS URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The certificates the CAS presented on the last connection, end entity first.
    pub fn seen_certificates(&self) -> Vec<Vec<u8>> {
        self.seen.get()
    }

    /// `GET path`, decoding a JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.call(Method::GET, path, None).await?;
        decode(&body)
    }

    /// `POST path` with a JSON body, decoding a JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let answer = self
            .call(Method::POST, path, Some((bytes, "application/json")))
            .await?;
        decode(&answer)
    }

    /// Any call with a raw body; returns the raw answer of a 2xx response.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Bytes, ClientError> {
        tokio::time::timeout(CALL_TIMEOUT, self.call_inner(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout(self.url.clone()))?
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Bytes, ClientError> {
        let unreachable = |e: &dyn fmt::Display| ClientError::Unreachable {
            url: self.url.clone(),
            detail: e.to_string(),
        };
        // One kept-alive connection per client: a launcher's nonce and
        // attest calls share a TLS session. A connection the server closed
        // is replaced; calls on one client are serialized.
        let mut slot = self.conn.lock().await;
        let mut reused = match slot.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        let (content_type, payload) = match body {
            Some((bytes, content_type)) => (Some(content_type), Bytes::from(bytes)),
            None => (None, Bytes::new()),
        };
        let resp = loop {
            if !reused {
                *slot = Some(self.connect().await?);
            }
            let Some(sender) = slot.as_mut() else {
                return Err(ClientError::Protocol("no connection".into()));
            };
            let mut req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(HOST, &self.authority);
            if let Some(ct) = content_type {
                req = req.header(CONTENT_TYPE, ct);
            }
            let req = req
                .body(Full::new(payload.clone()))
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            match sender.send_request(req).await {
                Ok(r) => break r,
                Err(e) => {
                    *slot = None;
                    // A kept-alive connection the server closed meanwhile:
                    // a GET is safe to send again on a fresh one; anything
                    // else may have taken effect, so the caller decides.
                    if reused && method == Method::GET {
                        reused = false;
                        continue;
                    }
                    return Err(unreachable(&e));
                }
            }
        };
        // The server will close this connection: do not reuse it.
        if resp
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        {
            *slot = None;
        }
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(format!("reading the answer: {e}")))?
            .to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(api_error(status, &bytes))
    }
}

/// Records per page the client asks `GET /v1/audit` for.
pub const AUDIT_PAGE: usize = 2000;

impl CasClient {
    /// The whole audit log as one export (JSON lines of records, then the
    /// signed head line), fetched page by page from `GET /v1/audit`. Needs a
    /// client identity. Verify it with `veil_store::audit::verify_export`.
    pub async fn audit_export(&self) -> Result<String, ClientError> {
        let mut records = String::new();
        let mut from = 0u64;
        loop {
            let page = self
                .call(
                    Method::GET,
                    &format!("/v1/audit?from={from}&limit={AUDIT_PAGE}"),
                    None,
                )
                .await?;
            let page = String::from_utf8(page.to_vec())
                .map_err(|_| ClientError::Protocol("the audit export is not UTF-8".into()))?;
            let mut head = None;
            let mut count = 0u64;
            for line in page.lines().filter(|l| !l.trim().is_empty()) {
                let is_head = serde_json::from_str::<serde_json::Value>(line)
                    .map(|v| v.get("head").is_some())
                    .unwrap_or(false);
                if is_head {
                    head = Some(line.to_owned());
                } else {
                    records.push_str(line);
                    records.push('\n');
                    count += 1;
                }
            }
            let head = head.ok_or_else(|| {
                ClientError::Protocol("an audit page without its signed head".into())
            })?;
            if count < AUDIT_PAGE as u64 {
                records.push_str(&head);
                records.push('\n');
                return Ok(records);
            }
            from += count;
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let unreachable = |e: &dyn fmt::Display| ClientError::Unreachable {
            url: self.url.clone(),
            detail: e.to_string(),
        };
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| ClientError::BadUrl(self.url.clone()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Tls {
                url: self.url.clone(),
                detail: e.to_string(),
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol(format!("bad JSON: {e}")))
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<veil_api::ErrorBody>(bytes) {
        Ok(b) => ClientError::Api {
            status: status.as_u16(),
            code: b.error.code,
            message: b.error.message,
            reason: b.error.reason,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "http".into(),
            message: String::from_utf8_lossy(bytes).chars().take(300).collect(),
            reason: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        for bad in [
            "http://x:1",
            "https://",
            "https://x:notaport",
            "x:1",
            "https://x:1/path",
        ] {
            assert!(
                matches!(
                    CasClient::new(bad, Trust::Pinned([0; 32]), None),
                    Err(ClientError::BadUrl(_))
                ),
                "{bad}"
            );
        }
        let c = CasClient::new("https://127.0.0.1:8443/", Trust::Pinned([0; 32]), None).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8443));
        let c = CasClient::new("https://[::1]:9", Trust::Pinned([0; 32]), None).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 9));
    }
}
