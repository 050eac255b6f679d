//! The core of Veil's network shield (issue 6): TLS 1.3 tunnels between
//! attested services.
//!
//! - [`PeerRule`]: what the other end must be. Its certificate chains to a
//!   session CA, and its Veil attestation extension names an expected
//!   session, service and measurement.
//! - [`CertSource`]: our certificate and key, swappable at run time so a
//!   certificate renewed by the CAS is used for new handshakes while
//!   established connections keep going.
//! - [`server_config`] / [`client_config`]: rustls configurations (ring
//!   provider, TLS 1.3 only) whose certificate verifiers enforce a
//!   [`PeerRule`].
//! - [`inbound`] / [`outbound`]: tokio accept loops that terminate or
//!   originate TLS and copy bytes to and from a plaintext socket, with a
//!   handshake timeout, a connection limit, half-close and graceful shutdown.
//!   There is never a plaintext fallback: a connection whose handshake fails
//!   is closed before any byte reaches the plaintext side.

mod error;
mod rule;
mod tls;
mod tunnel;

pub use error::{Denial, NetError};
pub use rule::PeerRule;
pub use tls::{client_config, provider, server_config, CertSource, ClientAuth};
pub use tunnel::{inbound, outbound, Limits, Tunnel};
