//! # veil-cas: the Configuration and Attestation Service
//!
//! The CAS holds sessions (policies, `veil-policy`) and their secrets in a
//! sealed store (`veil-store`), attests launchers with the verifiers of
//! `veil-verifiers`, and releases each service's configuration (argv, env,
//! files, an X.509 certificate for the launcher's key) only to a launcher
//! whose evidence matches the service's accept rules. Every change and every
//! grant or denial is in a hash-chained, signed audit log, and a grant is
//! answered only after its audit record is durable.
//!
//! Layout: [`state`] (startup, identity, compiled sessions), `sessions`
//! (apply, approve, secrets), `attest` (the exchange), `volumes` (volume
//! freshness tags: checked at attestation, committed by attested launchers,
//! accepted by owners), [`api`] (the axum
//! router, testable without a socket), [`tls`] (rustls and the accept loop),
//! `error` (every error to an HTTP response in one place).

pub mod api;
mod attest;
mod error;
pub mod metrics;
mod network;
pub mod nonce;
pub mod sealed;
mod sessions;
pub mod state;
pub mod tls;
mod volumes;

use std::sync::Arc;

pub use error::ApiError;
pub use sessions::ApplyOutcome;
pub use state::{Cas, Opened, ServeConfig, StartError, LAUNCHER_CERT_VALIDITY};

/// A CAS listening on a socket.
#[derive(Debug)]
pub struct Bound {
    /// The address actually bound (port 0 resolved).
    pub addr: std::net::SocketAddr,
    /// SHA-256 of the CAS CA certificate (what clients pin); `None` while sealed.
    pub fingerprint: Option<String>,
    listener: tokio::net::TcpListener,
    config: ServeConfig,
    opened: Opened,
}

/// Opens the state and binds the listener.
pub async fn bind(config: &ServeConfig) -> Result<Bound, StartError> {
    let opened = open(config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Other(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    Ok(Bound {
        addr,
        fingerprint: match &opened {
            Opened::Open(cas) => Some(cas.fingerprint()),
            Opened::Sealed(_) => None,
        },
        listener,
        config: config.clone(),
        opened,
    })
}

async fn open(config: &ServeConfig) -> Result<Opened, StartError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || Cas::open(&config))
        .await
        .map_err(|e| StartError::Other(e.to_string()))?
}

impl Bound {
    /// True while the CAS waits for recovery shares.
    pub fn is_sealed(&self) -> bool {
        matches!(self.opened, Opened::Sealed(_))
    }

    /// Serves until `shutdown` resolves. A sealed CAS serves the recovery
    /// endpoints until the shares arrive, then opens its store and serves
    /// the whole API on the same socket.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut opened = self.opened;
        loop {
            match opened {
                Opened::Sealed(sealed) => {
                    let sealed = Arc::new(sealed);
                    let (chain, key) = sealed.tls_parts();
                    let config = tls::server_config(chain, key)
                        .map_err(|e| StartError::Other(format!("TLS configuration: {e}")))?;
                    let mut unsealed = sealed.unsealed.subscribe();
                    let stop = stopped(stop_rx.clone());
                    let until = async move {
                        tokio::select! {
                            () = stop => {}
                            _ = unsealed.wait_for(|u| *u) => {}
                        }
                    };
                    tls::serve(
                        &self.listener,
                        Arc::new(config),
                        sealed::router(sealed.clone()),
                        tls::Limits::default(),
                        until,
                    )
                    .await;
                    if *stop_rx.borrow() {
                        return Ok(());
                    }
                    opened = open(&self.config).await?;
                    if let Opened::Open(cas) = &opened {
                        tracing::info!(fingerprint = %cas.fingerprint(), "unsealed");
                    }
                }
                Opened::Open(cas) => {
                    let cas = Arc::new(cas);
                    let (chain, key) = cas.tls_parts();
                    let config = tls::server_config(chain, key)
                        .map_err(|e| StartError::Other(format!("TLS configuration: {e}")))?;
                    tls::serve(
                        &self.listener,
                        Arc::new(config),
                        api::router(cas),
                        tls::Limits::default(),
                        stopped(stop_rx.clone()),
                    )
                    .await;
                    return Ok(());
                }
            }
        }
    }
}
