//! # veil-launcher: `veil run`, inside the TEE
//!
//! The launcher turns an attested configuration into a running, unmodified
//! program:
//!
//! 1. [`attest`]: measure the program the policy names, make an ephemeral key
//!    pair, fetch a nonce, collect evidence whose report data binds the nonce,
//!    the key and the program's measurement, and attest to the (pinned) CAS.
//! 2. [`ExecPlan::new`]: build argv and environment from what the CAS released
//!    (host arguments and host environment only where the policy allows).
//! 3. [`spawn`]: start the program in a private mount namespace in which the
//!    released files sit on a tmpfs (noswap), bind-mounted over their declared
//!    paths; nothing is written to disk in clear.
//! 4. [`start_network`]: the policy's TLS tunnels (network shield), bound
//!    before the program starts, presenting the attested certificate and
//!    renewing it by attesting again before it expires.
//! 5. [`supervise`]: forward signals, wait, report how the program ended.
//!
//! Secrets are held in [`SecretBuf`]s (anonymous memory marked
//! `MADV_DONTDUMP`, locked where allowed, zeroized on drop) and never logged.
//! [`harden`] makes the launcher non-dumpable.
//!
//! This crate runs inside the TEE: it depends on the wire types and the client,
//! never on the CAS server.

mod attest;
mod error;
mod measure;
mod network;
mod plan;
mod secret;
mod spawn;
mod supervise;
mod sys;
mod volumes;

pub use attest::{attest, AttestOptions, Released, ReleasedFile, Retry};
pub use error::LaunchError;
pub use measure::{
    interpreter_of, launcher_measurement, measure_program, resolve_program, sim_launch_measurement,
    ProgramMeasurement,
};
pub use network::{
    attested_source, start_network, NetworkShield, ReleasedTunnel, Renewal, TunnelIdentity,
};
pub use plan::ExecPlan;
pub use secret::SecretBuf;
pub use spawn::{spawn, Running};
pub use supervise::{supervise, Outcome};
pub use sys::harden;
pub use volumes::{mount_volumes, volume_dir, MountedVolumes, ReleasedVolume, SharedClient};
