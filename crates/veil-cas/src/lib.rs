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
//! (apply, approve, secrets), `attest` (the exchange), [`api`] (the axum
//! router, testable without a socket), [`tls`] (rustls and the accept loop),
//! `error` (every error to an HTTP response in one place).

pub mod api;
mod attest;
mod error;
pub mod metrics;
pub mod nonce;
mod sessions;
pub mod state;
pub mod tls;

use std::sync::Arc;

pub use error::ApiError;
pub use sessions::ApplyOutcome;
pub use state::{Cas, ServeConfig, StartError};

/// A CAS listening on a socket.
#[derive(Debug)]
pub struct Bound {
    /// The address actually bound (port 0 resolved).
    pub addr: std::net::SocketAddr,
    /// SHA-256 of the CAS CA certificate: what clients pin.
    pub fingerprint: String,
    listener: tokio::net::TcpListener,
    cas: Arc<Cas>,
}

/// Opens the state and binds the listener.
pub async fn bind(config: &ServeConfig) -> Result<Bound, StartError> {
    let cas = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Cas::open(&config))
            .await
            .map_err(|e| StartError::Other(e.to_string()))??
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Other(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    Ok(Bound {
        addr,
        fingerprint: cas.fingerprint(),
        listener,
        cas: Arc::new(cas),
    })
}

impl Bound {
    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (chain, key) = self.cas.tls_parts();
        let config = tls::server_config(chain, key)
            .map_err(|e| StartError::Other(format!("TLS configuration: {e}")))?;
        let router = api::router(self.cas.clone());
        tls::serve(
            self.listener,
            Arc::new(config),
            router,
            tls::Limits::default(),
            shutdown,
        )
        .await;
        Ok(())
    }
}
