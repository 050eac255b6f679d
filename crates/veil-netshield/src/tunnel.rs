//! The accept loops: inbound (TLS in, plaintext out) and outbound
//! (plaintext in, TLS out).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::NetError;

/// Buffer size of each copy direction.
const COPY_BUFFER: usize = 64 * 1024;

/// Limits of a tunnel.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Limits {
    /// A TLS handshake (outbound: TCP connect and handshake) not finished
    /// by then is abandoned and the connection closed.
    pub handshake_timeout: Duration,
    /// At most this many connections at once; a connection accepted beyond
    /// that is closed at once.
    pub max_connections: usize,
}

impl Limits {
    /// Limits with the given handshake timeout and connection cap.
    pub fn new(handshake_timeout: Duration, max_connections: usize) -> Limits {
        Limits {
            handshake_timeout,
            max_connections,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// A running tunnel: an accept loop and its connections.
///
/// Dropping a `Tunnel` without [`Tunnel::shutdown`] stops it at once and
/// closes its connections.
#[derive(Debug)]
pub struct Tunnel {
    local_addr: SocketAddr,
    stop: watch::Sender<Option<Duration>>,
    task: Option<JoinHandle<()>>,
    permits: Arc<Semaphore>,
    max_connections: usize,
}

impl Tunnel {
    /// The address the tunnel accepts on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections open now (including those in their handshake).
    pub fn active_connections(&self) -> usize {
        self.max_connections
            .saturating_sub(self.permits.available_permits())
    }

    /// Stops accepting (the listening socket is closed), lets established
    /// connections finish for up to `grace`, then closes the rest.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An inbound tunnel: accepts TLS on `listen`, and for each connection
/// whose handshake succeeds (within the limits), opens a plaintext TCP
/// connection to `to` and copies bytes both ways, half-close included.
///
/// Must be called within a Tokio runtime.
pub fn inbound(
    listen: TcpListener,
    to: SocketAddr,
    config: Arc<ServerConfig>,
    limits: Limits,
) -> Result<Tunnel, NetError> {
    let acceptor = TlsAcceptor::from(config);
    let timeout = limits.handshake_timeout;
    start(listen, limits, move |tcp, peer| {
        let acceptor = acceptor.clone();
        async move {
            let _ = tcp.set_nodelay(true);
            let mut tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "inbound handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "inbound handshake timed out");
                    return;
                }
            };
            let mut backend = match TcpStream::connect(to).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(%to, error = %e, "cannot reach the protected service");
                    return;
                }
            };
            let _ = backend.set_nodelay(true);
            relay(&mut tls, &mut backend, peer).await;
        }
    })
}

/// An outbound tunnel: accepts plaintext on `listen` (the program's
/// loopback port), and for each connection opens TLS to `remote`, sending
/// `server_name` as SNI and checking the server with the configuration's
/// peer rule, then copies bytes both ways. When the TLS connection cannot
/// be made, the plaintext connection is closed without a byte.
///
/// Must be called within a Tokio runtime.
pub fn outbound(
    listen: TcpListener,
    remote: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
    limits: Limits,
) -> Result<Tunnel, NetError> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| NetError::InvalidServerName(format!("{server_name:?}: {e}")))?;
    let connector = TlsConnector::from(config);
    let timeout = limits.handshake_timeout;
    start(listen, limits, move |mut plain, peer| {
        let connector = connector.clone();
        let name = name.clone();
        async move {
            let _ = plain.set_nodelay(true);
            let connect = async {
                let tcp = TcpStream::connect(remote).await?;
                let _ = tcp.set_nodelay(true);
                connector.connect(name, tcp).await
            };
            let mut tls = match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "outbound connection failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "outbound handshake timed out");
                    return;
                }
            };
            relay(&mut plain, &mut tls, peer).await;
        }
    })
}

async fn relay<A, B>(a: &mut A, b: &mut B, peer: SocketAddr)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional_with_sizes(a, b, COPY_BUFFER, COPY_BUFFER).await {
        Ok((up, down)) => tracing::debug!(%peer, up, down, "connection closed"),
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
    }
}

fn start<F, Fut>(listener: TcpListener, limits: Limits, handle: F) -> Result<Tunnel, NetError>
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let local_addr = listener.local_addr()?;
    let max_connections = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop, stop_rx) = watch::channel(None);
    let task = tokio::spawn(accept_loop(listener, permits.clone(), stop_rx, handle));
    Ok(Tunnel {
        local_addr,
        stop,
        task: Some(task),
        permits,
        max_connections,
    })
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<Option<Duration>>,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let grace = loop {
        tokio::select! {
            changed = stop.changed() => match changed {
                Ok(()) => {
                    if let Some(grace) = *stop.borrow() {
                        break grace;
                    }
                }
                Err(_) => break Duration::ZERO,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let conn = handle(stream, peer);
                        connections.spawn(async move {
                            conn.await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "connection limit reached, closing");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // Out of descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    };
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            remaining = connections.len(),
            "shutdown deadline reached, closing connections"
        );
        connections.shutdown().await;
    }
}
