//! The network shield inside `veil run`: the policy's `network` tunnels,
//! started before the program and stopped after it, presenting the
//! certificate the CAS issued to this attested launcher (renewed by
//! attesting again before it expires) and checking each peer's attested
//! certificate against its session CA.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use veil_api::{WirePeer, WireTlsIdentity, WireTunnel};
use veil_client::CasClient;
use veil_netshield::{CertSource, ClientAuth, Limits, PeerRule, Tunnel};

use crate::{AttestOptions, LaunchError, SecretBuf};

/// What a tunnel presents: its own chain and key (an x509 policy secret),
/// or the launcher's attested certificate.
#[derive(Debug)]
pub enum TunnelIdentity {
    /// The launcher's attested certificate (renewed while the program runs).
    Attested,
    /// A policy secret: chain (end entity first) and PKCS#8 key.
    Secret {
        /// The chain, DER.
        chain: Vec<Vec<u8>>,
        /// The key, PKCS#8 DER.
        key: SecretBuf,
    },
}

/// A tunnel the CAS released.
#[derive(Debug)]
pub enum ReleasedTunnel {
    /// TLS in on `listen`, plaintext out to the program on `to`.
    Inbound {
        /// `host:port` to listen on.
        listen: String,
        /// `host:port` of the program.
        to: String,
        /// What to present.
        identity: TunnelIdentity,
        /// Who may connect; `None`: anyone (policy `client_auth: none`).
        client_auth: Option<PeerRule>,
        /// ALPN protocols offered.
        alpn: Vec<Vec<u8>>,
    },
    /// Plaintext in from the program on `connect`, TLS out to `remote`.
    Outbound {
        /// `host:port` the program connects to.
        connect: String,
        /// `host:port` of the peer.
        remote: String,
        /// What to present.
        identity: TunnelIdentity,
        /// What the peer must be.
        peer: PeerRule,
        /// ALPN protocols asked for.
        alpn: Vec<Vec<u8>>,
        /// SNI; default the host of `remote`.
        server_name: Option<String>,
    },
}

impl ReleasedTunnel {
    /// Checks and converts what the CAS sent.
    pub(crate) fn from_wire(i: usize, w: &WireTunnel) -> Result<ReleasedTunnel, LaunchError> {
        let bad = |what: String| LaunchError::Protocol(format!("network rule {i}: {what}"));
        Ok(match w {
            WireTunnel::Inbound {
                listen,
                to,
                tls,
                client_auth,
                alpn,
            } => ReleasedTunnel::Inbound {
                listen: listen.clone(),
                to: to.clone(),
                identity: identity(tls.as_ref()).map_err(bad)?,
                client_auth: client_auth
                    .as_ref()
                    .map(peer_rule)
                    .transpose()
                    .map_err(bad)?,
                alpn: alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
            },
            WireTunnel::Outbound {
                connect,
                remote,
                tls,
                peer,
                alpn,
                server_name,
            } => ReleasedTunnel::Outbound {
                connect: connect.clone(),
                remote: remote.clone(),
                identity: identity(tls.as_ref()).map_err(bad)?,
                peer: peer_rule(peer).map_err(bad)?,
                alpn: alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
                server_name: server_name.clone(),
            },
        })
    }

    fn describe(&self) -> String {
        match self {
            ReleasedTunnel::Inbound { listen, to, .. } => format!("inbound {listen} -> {to}"),
            ReleasedTunnel::Outbound {
                connect, remote, ..
            } => format!("outbound {connect} -> {remote}"),
        }
    }
}

fn pem_der(text: &str, what: &str) -> Result<Vec<u8>, String> {
    pem::parse(text)
        .map(|p| p.contents().to_vec())
        .map_err(|e| format!("{what} is not PEM: {e}"))
}

fn peer_rule(p: &WirePeer) -> Result<PeerRule, String> {
    let ca = pem_der(&p.ca, "the peer session's CA certificate")?;
    let mut rule = PeerRule::new(ca)
        .map_err(|e| e.to_string())?
        .session(p.session.clone());
    if let Some(s) = &p.service {
        rule = rule.service(s.clone());
    }
    if let Some(m) = &p.measurement {
        rule = rule.measurement_hex(m).map_err(|e| e.to_string())?;
    }
    Ok(rule)
}

fn identity(tls: Option<&WireTlsIdentity>) -> Result<TunnelIdentity, String> {
    let Some(tls) = tls else {
        return Ok(TunnelIdentity::Attested);
    };
    let chain = pem::parse_many(&tls.certificate)
        .map_err(|e| format!("the x509 secret's certificate is not PEM: {e}"))?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.contents().to_vec())
        .collect::<Vec<_>>();
    if chain.is_empty() {
        return Err("the x509 secret has no certificate".into());
    }
    let key = pem::parse(tls.key.as_bytes())
        .map_err(|_| "the x509 secret's key is not PEM".to_owned())?;
    let key = SecretBuf::copy_of(key.contents()).map_err(|e| e.to_string())?;
    Ok(TunnelIdentity::Secret { chain, key })
}

/// How the launcher renews its attested certificate: by attesting again
/// with a fresh key, with these options, through this client.
pub struct Renewal {
    /// A client for the (pinned) CAS.
    pub client: CasClient,
    /// The same options as the first attestation.
    pub options: AttestOptions,
    /// Called with the renewed certificate and key after each renewal
    /// (e.g. to swap the client that commits volume tags).
    pub on_renew: Vec<Box<dyn Fn(veil_client::ClientIdentity) + Send + Sync>>,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewal")
            .field("cas", &self.client.url())
            .finish_non_exhaustive()
    }
}

/// The running tunnels.
pub struct NetworkShield {
    runtime: tokio::runtime::Runtime,
    tunnels: Vec<(String, Tunnel)>,
    attested: Arc<CertSource>,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for NetworkShield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkShield")
            .field(
                "tunnels",
                &self.tunnels.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("certificate", &self.attested)
            .finish_non_exhaustive()
    }
}

/// A rustls chain and key from DER.
fn cert_source(chain: &[Vec<u8>], key_pkcs8: &[u8]) -> Result<Arc<CertSource>, String> {
    CertSource::new(
        chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8.to_vec())),
    )
    .map_err(|e| e.to_string())
}

/// The launcher's attested certificate (PEM) and key as a certificate
/// source.
pub fn attested_source(
    certificate_pem: &str,
    key_pkcs8: &SecretBuf,
) -> Result<Arc<CertSource>, LaunchError> {
    let der = pem_der(certificate_pem, "the issued certificate").map_err(LaunchError::Protocol)?;
    cert_source(&[der], key_pkcs8.as_slice()).map_err(|e| {
        LaunchError::Protocol(format!("the issued certificate does not fit our key: {e}"))
    })
}

fn resolve(endpoint: &str, what: &str) -> Result<SocketAddr, LaunchError> {
    endpoint
        .to_socket_addrs()
        .map_err(|e| LaunchError::Network(format!("{what} {endpoint}: cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| LaunchError::Network(format!("{what} {endpoint}: no address")))
}

fn host_of(endpoint: &str) -> String {
    let host = match endpoint.rsplit_once(':') {
        Some((h, _)) => h,
        None => endpoint,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// Starts every tunnel (their sockets are bound when this returns, so the
/// program can connect at once) and, with `renewal`, a task that renews the
/// attested certificate when two thirds of its remaining validity have
/// passed (also with no tunnels: volume tag commits need a valid
/// certificate too). Call with the forwarded signals blocked, like
/// [`crate::mount_volumes`]: the runtime's threads inherit the mask.
pub fn start_network(
    tunnels: Vec<ReleasedTunnel>,
    attested: Arc<CertSource>,
    renewal: Option<Renewal>,
    limits: Limits,
) -> Result<NetworkShield, LaunchError> {
    crate::spawn::watched_signals()
        .block()
        .map_err(|e| LaunchError::os("blocking signals", e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("veil-net")
        .enable_all()
        .build()
        .map_err(|e| LaunchError::os("starting the network shield's runtime", e))?;
    let mut running = Vec::with_capacity(tunnels.len());
    for t in tunnels {
        let name = t.describe();
        let tunnel = runtime
            .block_on(start_one(t, &attested, limits))
            .map_err(|e| LaunchError::Network(format!("{name}: {e}")))?;
        tracing::info!(tunnel = %name, addr = %tunnel.local_addr(), "network shield tunnel up");
        running.push((name, tunnel));
    }
    let renewal = renewal.map(|r| runtime.spawn(renew_forever(r, attested.clone())));
    Ok(NetworkShield {
        runtime,
        tunnels: running,
        attested,
        renewal,
    })
}

async fn start_one(
    t: ReleasedTunnel,
    attested: &Arc<CertSource>,
    limits: Limits,
) -> Result<Tunnel, String> {
    let source = |id: &TunnelIdentity| match id {
        TunnelIdentity::Attested => Ok(attested.clone()),
        TunnelIdentity::Secret { chain, key } => cert_source(chain, key.as_slice()),
    };
    match t {
        ReleasedTunnel::Inbound {
            listen,
            to,
            identity,
            client_auth,
            alpn,
        } => {
            let to = resolve(&to, "to").map_err(|e| e.to_string())?;
            let auth = match client_auth {
                Some(rule) => ClientAuth::Required(rule),
                None => ClientAuth::DangerNone,
            };
            let config = veil_netshield::server_config(source(&identity)?, auth, alpn)
                .map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            veil_netshield::inbound(listener, to, config, limits).map_err(|e| e.to_string())
        }
        ReleasedTunnel::Outbound {
            connect,
            remote,
            identity,
            peer,
            alpn,
            server_name,
        } => {
            let remote_addr = resolve(&remote, "remote").map_err(|e| e.to_string())?;
            let config = veil_netshield::client_config(source(&identity)?, peer, alpn)
                .map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(&connect)
                .await
                .map_err(|e| format!("cannot listen on {connect}: {e}"))?;
            let sni = server_name.unwrap_or_else(|| host_of(&remote));
            veil_netshield::outbound(listener, remote_addr, &sni, config, limits)
                .map_err(|e| e.to_string())
        }
    }
}

/// When to renew a certificate valid until `not_after`: after two thirds of
/// the time left, and not sooner than in one second.
fn renew_in(not_after: veil_attest::Time, now: veil_attest::Time) -> Duration {
    let left = not_after.unix().saturating_sub(now.unix());
    Duration::from_secs((left * 2 / 3).max(1))
}

fn not_after_of(cert_der: &[u8]) -> Option<veil_attest::Time> {
    veil_ca::parse_attested_cert(cert_der)
        .ok()
        .map(|c| c.not_after)
}

async fn renew_forever(r: Renewal, attested: Arc<CertSource>) {
    let mut wait = not_after_of(&attested.current_cert())
        .map(|t| renew_in(t, veil_attest::Time::now()))
        .unwrap_or(Duration::from_secs(3600));
    loop {
        tokio::time::sleep(wait).await;
        match renew_once(&r, &attested).await {
            Ok(next) => wait = next,
            Err(e) => {
                // Keep the current certificate; try again well before it
                // expires (a denial is worth retrying: an owner may fix the
                // policy, a volume tag may settle).
                let left = not_after_of(&attested.current_cert())
                    .map(|t| renew_in(t, veil_attest::Time::now()))
                    .unwrap_or(Duration::from_secs(60));
                wait = (left / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "renewing the launcher certificate failed; the current one stays in use");
            }
        }
    }
}

async fn renew_once(r: &Renewal, attested: &CertSource) -> Result<Duration, LaunchError> {
    let released = crate::attest(&r.client, &r.options).await?;
    let der =
        pem_der(&released.certificate, "the issued certificate").map_err(LaunchError::Protocol)?;
    for f in &r.on_renew {
        f(released.identity()?);
    }
    attested
        .replace(
            vec![CertificateDer::from(der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                released.key_pkcs8.as_slice().to_vec(),
            )),
        )
        .map_err(|e| LaunchError::Protocol(format!("the renewed certificate: {e}")))?;
    let next = not_after_of(&der)
        .map(|t| renew_in(t, veil_attest::Time::now()))
        .unwrap_or(Duration::from_secs(3600));
    tracing::info!(
        audit_seq = released.audit_seq,
        next_in_s = next.as_secs(),
        "launcher certificate renewed"
    );
    Ok(next)
}

impl NetworkShield {
    /// The address each tunnel listens on, in policy order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tunnels.iter().map(|(_, t)| t.local_addr()).collect()
    }

    /// Stops renewing, stops accepting, gives open connections up to
    /// `grace`, then closes them.
    pub fn close(mut self, grace: Duration) {
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
        let tunnels = std::mem::take(&mut self.tunnels);
        self.runtime.block_on(async move {
            let mut stops = Vec::new();
            for (_, t) in tunnels {
                stops.push(tokio::spawn(t.shutdown(grace)));
            }
            for s in stops {
                let _ = s.await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;
    use veil_attest::Time;

    #[test]
    fn renewal_comes_after_two_thirds_of_the_time_left() {
        let now = Time::from_unix(1_000_000);
        assert_eq!(
            renew_in(Time::from_unix(1_000_000 + 86_400), now),
            Duration::from_secs(57_600)
        );
        assert_eq!(
            renew_in(Time::from_unix(1_000_006), now),
            Duration::from_secs(4)
        );
        // Expired or about to: try again soon, never in a busy loop.
        assert_eq!(
            renew_in(Time::from_unix(999_000), now),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn sni_is_the_host_of_the_remote() {
        assert_eq!(host_of("cache.internal:11211"), "cache.internal");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:6380"), "::1");
    }

    fn peer(ca: &str) -> WirePeer {
        WirePeer {
            ca: ca.to_owned(),
            session: "shop/db".into(),
            service: Some("db".into()),
            measurement: None,
        }
    }

    #[test]
    fn what_the_cas_sends_is_checked() {
        let ca = veil_ca::CaIdentity::generate("session CA", 30, Time::now()).unwrap();
        let good = WireTunnel::Outbound {
            connect: "127.0.0.1:1".into(),
            remote: "127.0.0.1:2".into(),
            tls: None,
            peer: peer(&ca.cert_pem()),
            alpn: vec!["h2".into()],
            server_name: None,
        };
        assert!(matches!(
            ReleasedTunnel::from_wire(0, &good).unwrap(),
            ReleasedTunnel::Outbound {
                identity: TunnelIdentity::Attested,
                ref alpn,
                ..
            } if alpn == &[b"h2".to_vec()]
        ));
        let bad_ca = WireTunnel::Inbound {
            listen: "127.0.0.1:1".into(),
            to: "127.0.0.1:2".into(),
            tls: None,
            client_auth: Some(peer("not a certificate")),
            alpn: vec![],
        };
        let e = ReleasedTunnel::from_wire(3, &bad_ca)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network rule 3") && e.contains("CA certificate"),
            "{e}"
        );
        let mut bad_measurement = peer(&ca.cert_pem());
        bad_measurement.measurement = Some("xyz".into());
        let e = ReleasedTunnel::from_wire(
            1,
            &WireTunnel::Outbound {
                connect: "127.0.0.1:1".into(),
                remote: "127.0.0.1:2".into(),
                tls: None,
                peer: bad_measurement,
                alpn: vec![],
                server_name: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("measurement"), "{e}");
        let no_cert = WireTunnel::Inbound {
            listen: "127.0.0.1:1".into(),
            to: "127.0.0.1:2".into(),
            tls: Some(WireTlsIdentity {
                certificate: String::new(),
                key: zeroize::Zeroizing::new(String::new()),
            }),
            client_auth: None,
            alpn: vec![],
        };
        let e = ReleasedTunnel::from_wire(0, &no_cert)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x509 secret"), "{e}");
    }
}
