//! # veil-attest: what a piece of TEE evidence is, and what it says
//!
//! This crate is the vocabulary shared by every verifier and every consumer of
//! attestation results in Veil. It does no I/O: callers hand it bytes and a
//! time, and get back typed [`Claims`] or a typed [`VerifyError`].
//!
//! * [`Tee`] names a kind of trusted execution environment.
//! * [`Evidence`] is the bytes a TEE produced (a quote, a report, a document).
//! * [`Endorsement`] is what the verifier needs besides the evidence to check
//!   it: DCAP collateral, certificates (VCEK, VLEK, CA chains), sim platform
//!   keys. Endorsements are data, never fetched here.
//! * [`Claims`] is the common view of verified evidence (measurement, signer,
//!   svn, debug, TCB status and advisories, report data, platform id), with
//!   the TEE-specific fields in [`TeeClaims`].
//! * [`Verifier`] is implemented once per TEE (in the `veil-attest-*` crates);
//!   a [`Registry`] holds one verifier value per TEE.
//!
//! Verification answers exactly one question: *is this evidence genuine at
//! time T, and what does it say?* Whether a TCB status, a debug enclave or a
//! simulated TEE is acceptable is a policy decision and is reported, never
//! decided, here. In particular, claims from the simulated TEE carry
//! [`Claims::insecure`] so every consumer must opt in to accept them.

mod claims;
mod endorsement;
mod error;
pub mod hexfmt;
mod registry;
mod tee;
mod time_point;

pub use claims::{
    Claims, NitroClaims, ReportData, SgxClaims, SimClaims, SnpClaims, SnpSigner, SnpTcb, TcbStatus,
    TdxClaims, TeeClaims,
};
pub use endorsement::{parse_certificates, Endorsement};
pub use error::VerifyError;
pub use registry::{check_report_data, Evidence, Registry, Verifier};
pub use tee::Tee;
pub use time_point::{Time, TimeParseError};
