//! The network shield's part of a grant (docs/spec/attestation.md 4.6):
//! each `network` rule of the service, with the CA certificate of every
//! peer session it names and, where the policy names an x509 secret, that
//! certificate and key.

use veil_api::{WirePeer, WireTlsIdentity, WireTunnel};
use veil_policy::{ClientAuth, Field, NetworkRule, SecretSource, Service};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::state::{Active, Cas};

/// Why a grant cannot carry the service's tunnels: a peer session the
/// policy names is not in this CAS (`network_peer_unknown`).
pub(crate) struct UnknownPeer(pub(crate) String);

/// Renders the service's tunnels. `Ok(Err(_))` is a denial.
pub(crate) fn release(
    cas: &Cas,
    active: &Active,
    service: &Service,
    secrets: &dyn SecretSource,
) -> Result<Result<Vec<WireTunnel>, UnknownPeer>, ApiError> {
    let own = active.session.name().to_string();
    let mut out = Vec::with_capacity(service.network.len());
    for (i, rule) in service.network.iter().enumerate() {
        let ca_of = |session: &str| -> Result<String, UnknownPeer> {
            if session == own {
                return Ok(active.ca.cert_pem());
            }
            cas.session(session)
                .map(|a| a.ca.cert_pem())
                .ok_or_else(|| {
                    UnknownPeer(format!(
                        "network rule {i} of service {} names peer session {session}, which this CAS does not hold: apply that session first",
                        service.name
                    ))
                })
        };
        let tunnel = match rule {
            NetworkRule::Inbound {
                listen,
                to,
                tls,
                client_auth,
                alpn,
            } => {
                let peer_session = match client_auth {
                    ClientAuth::None => None,
                    ClientAuth::Session => Some(own.clone()),
                    ClientAuth::Peer(s) => Some(s.to_string()),
                };
                let client_auth = match peer_session {
                    Some(session) => match ca_of(&session) {
                        Ok(ca) => Some(WirePeer {
                            ca,
                            session,
                            service: None,
                            measurement: None,
                        }),
                        Err(d) => return Ok(Err(d)),
                    },
                    None => None,
                };
                WireTunnel::Inbound {
                    listen: listen.clone(),
                    to: to.clone(),
                    tls: identity(service, i, tls.as_deref(), secrets)?,
                    client_auth,
                    alpn: alpn.clone(),
                }
            }
            NetworkRule::Outbound {
                connect,
                remote,
                tls,
                peer,
                alpn,
                server_name,
            } => {
                let session = peer.session.to_string();
                let ca = match ca_of(&session) {
                    Ok(ca) => ca,
                    Err(d) => return Ok(Err(d)),
                };
                WireTunnel::Outbound {
                    connect: connect.clone(),
                    remote: remote.clone(),
                    tls: identity(service, i, tls.as_deref(), secrets)?,
                    peer: WirePeer {
                        ca,
                        session,
                        service: peer.service.clone(),
                        measurement: peer.measurement.as_ref().map(|m| m.to_string()),
                    },
                    alpn: alpn.clone(),
                    server_name: server_name.clone(),
                }
            }
            // A rule this CAS does not know: refuse rather than release a
            // grant without it.
            _ => {
                return Err(ApiError::unprocessable(
                    "render_failed",
                    format!("network rule {i}: unsupported rule"),
                ))
            }
        };
        out.push(tunnel);
    }
    Ok(Ok(out))
}

/// The certificate chain (leaf, then issuer) and key of x509 secret `name`.
fn identity(
    service: &Service,
    rule: usize,
    name: Option<&str>,
    secrets: &dyn SecretSource,
) -> Result<Option<WireTlsIdentity>, ApiError> {
    let Some(name) = name else {
        return Ok(None);
    };
    let failed = |what: &str| {
        ApiError::unprocessable(
            "render_failed",
            format!(
                "network rule {rule} of service {}: x509 secret {name} has no {what}",
                service.name
            ),
        )
    };
    let cert = secrets
        .value(name, Field::Cert)
        .ok_or_else(|| failed("certificate"))?;
    let key = secrets
        .value(name, Field::Key)
        .ok_or_else(|| failed("key"))?;
    let ca = secrets.value(name, Field::Ca);
    let mut chain = String::from_utf8_lossy(&cert).into_owned();
    if let Some(ca) = ca {
        if !chain.ends_with('\n') {
            chain.push('\n');
        }
        chain.push_str(&String::from_utf8_lossy(&ca));
    }
    let key = std::str::from_utf8(&key)
        .map_err(|_| failed("PEM key"))?
        .to_owned();
    Ok(Some(WireTlsIdentity {
        certificate: chain,
        key: Zeroizing::new(key),
    }))
}
