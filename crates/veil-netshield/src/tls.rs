//! rustls configurations whose verifiers enforce a [`PeerRule`], and a
//! swappable certificate source.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use veil_attest::Time;

use crate::rule::to_rustls;
use crate::{NetError, PeerRule};

/// The ring provider, which Veil uses everywhere.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Our certificate chain and private key, replaceable while tunnels run.
///
/// Every handshake takes the current pair; [`CertSource::replace`] affects
/// only handshakes that start after it, so established connections are
/// never dropped by a renewal.
pub struct CertSource {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl CertSource {
    /// A source holding `chain` (end entity first) and its private `key`.
    /// Fails when the key cannot be loaded or does not match the
    /// certificate.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<CertSource>, NetError> {
        let provider = provider();
        let current = certified(chain, key, &provider)?;
        Ok(Arc::new(CertSource {
            current: RwLock::new(current),
            provider,
        }))
    }

    /// Replaces the certificate and key for future handshakes (renewal).
    /// On error the previous pair stays in use.
    pub fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), NetError> {
        let next = certified(chain, key, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// The end-entity certificate in use now (DER).
    pub fn current_cert(&self) -> Vec<u8> {
        self.current()
            .cert
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, NetError> {
    if chain.is_empty() {
        return Err(NetError::InvalidIdentity("empty certificate chain".into()));
    }
    let ck = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| NetError::InvalidIdentity(e.to_string()))?;
    // from_der lets an unknown consistency through; we want a definite
    // answer for the keys Veil uses (ECDSA, Ed25519).
    ck.keys_match()
        .map_err(|e| NetError::InvalidIdentity(e.to_string()))?;
    Ok(Arc::new(ck))
}

impl fmt::Debug for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fp = veil_ca::Fingerprint::of_cert_der(&self.current_cert())
            .map(|f| f.to_string())
            .unwrap_or_else(|_| "?".into());
        write!(f, "CertSource({fp})")
    }
}

impl ResolvesServerCert for CertSource {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CertSource {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let ck = self.current();
        ck.key.choose_scheme(sigschemes).is_some().then_some(ck)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Whether an inbound tunnel asks clients for a certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Clients must present a certificate satisfying the rule (the default
    /// of the policy's `client_auth: session` or `ns/name`).
    Required(PeerRule),
    /// No client certificate is asked for: anyone who can reach the port
    /// talks to the service (the policy's explicit `client_auth: none`).
    DangerNone,
}

/// The server configuration of an inbound tunnel: TLS 1.3 only, ring,
/// our certificate from `cert`, client authentication per `client_auth`,
/// and the ALPN protocols offered (empty: no ALPN). Session resumption is
/// off: each connection checks the peer's current certificate.
pub fn server_config(
    cert: Arc<CertSource>,
    client_auth: ClientAuth,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, NetError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match client_auth {
        ClientAuth::Required(rule) => builder.with_client_cert_verifier(Arc::new(PeerVerifier {
            rule,
            provider,
            hints: Vec::new(),
        })),
        ClientAuth::DangerNone => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = alpn;
    // No resumption: every connection is a full handshake, so every peer is
    // checked against the rule with its current certificate, and a renewed
    // certificate is seen at once.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client configuration of an outbound tunnel: TLS 1.3 only, ring, our
/// certificate from `cert` as client certificate, the server checked
/// against `peer`, and the ALPN protocols asked for (empty: no ALPN).
///
/// The server is identified by its attested certificate, not by DNS name:
/// the name given to [`crate::outbound`] is sent as SNI but not matched
/// against the certificate's SANs.
pub fn client_config(
    cert: Arc<CertSource>,
    peer: PeerRule,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ClientConfig>, NetError> {
    let provider = provider();
    let verifier = Arc::new(PeerVerifier {
        rule: peer,
        provider: provider.clone(),
        hints: Vec::new(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(cert);
    config.alpn_protocols = alpn;
    config.enable_sni = true;
    // No resumption (see `server_config`).
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// A certificate verifier for both directions enforcing a [`PeerRule`];
/// rustls checks that the peer holds the certificate's key.
#[derive(Debug)]
struct PeerVerifier {
    rule: PeerRule,
    provider: Arc<CryptoProvider>,
    hints: Vec<DistinguishedName>,
}

impl PeerVerifier {
    fn check(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        match self
            .rule
            .check(end_entity.as_ref(), Time::from_unix(now.as_secs()))
        {
            Ok(cert) => {
                tracing::debug!(
                    session = %cert.subject.session,
                    service = %cert.subject.service,
                    "peer accepted"
                );
                Ok(())
            }
            Err(denial) => {
                tracing::warn!(%denial, "peer refused");
                Err(to_rustls(denial))
            }
        }
    }

    fn tls13(
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
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.3 only: never reached.
        Err(tls12_disabled())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_disabled())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls12_disabled() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not enabled".into())
}
