//! # veil-attest-nitro: AWS Nitro Enclaves attestation documents
//!
//! [`NitroVerifier`] implements [`veil_attest::Verifier`] for [`Tee::Nitro`].
//! It is sans-IO: it takes the document bytes and a time, reads no clock, no
//! file and no network, and needs no endorsement (any endorsements passed in
//! are ignored: the document carries its own certificate chain).
//!
//! ## What a document is
//!
//! The Nitro Security Module signs a COSE_Sign1 structure (CBOR, tagged 18
//! or untagged; base64 text of it is accepted too) whose payload is a CBOR
//! map: `module_id`, `digest` (`SHA384`), `timestamp` (ms), `pcrs`
//! (index → 48-byte value), `certificate` (the signing leaf, DER),
//! `cabundle` (DER, root first), and optional `public_key`, `user_data`,
//! `nonce`. [`parse_document`] reads it strictly (see its docs) without
//! verifying anything; [`looks_like_nitro_document`] is a cheap sniff.
//!
//! ## What is checked, in order
//!
//! 1. The protected header algorithm is ES384 (`-35`).
//! 2. `cabundle[0]` is the pinned root: the SHA-256 of its DER must equal
//!    [`AWS_NITRO_ROOT_G1_SHA256`] (or the hash given to
//!    [`NitroVerifier::with_root_sha256`]). A root is never trusted because
//!    the document carries it. Failure: [`VerifyError::Untrusted`].
//! 3. The chain root → intermediates → leaf: every certificate parses, its
//!    issuer name equals its predecessor's subject name, its signature
//!    verifies with its predecessor's key, and every issuer is a CA
//!    (basicConstraints `cA`, path length respected, `keyCertSign` when
//!    keyUsage is present). The root's self-signature is checked too.
//! 4. The COSE signature (`r || s`, 96 bytes) over the `Sig_structure`
//!    `["Signature1", protected, h'', payload]` verifies with the leaf's
//!    P-384 key (ECDSA P-384 SHA-384).
//! 5. Every certificate is valid at T, the leaf first, so an expired leaf
//!    is reported as `Nitro leaf certificate expired at ...` and a T before
//!    its start as `... issued in the future ...`.
//!
//! The document's own `timestamp` is reported, not compared with T: the leaf
//! certificate (valid for about three hours from the document's creation)
//! already bounds it, and a policy can judge freshness from
//! [`NitroClaims::timestamp_ms`].
//!
//! ## Claims
//!
//! * `measurement` = PCR0; `measurements` = `pcr0`, `pcr1`, ... for every PCR
//!   present.
//! * `signer` = none (PCR3, the IAM role, and PCR8, the signing certificate,
//!   are in `measurements`).
//! * `debug` = true when PCR0, PCR1 and PCR2 are all zero: AWS zeroes them
//!   for enclaves started in debug mode, whose memory the parent instance
//!   can read.
//! * `tcb_status` = [`TcbStatus::NotApplicable`](veil_attest::TcbStatus::NotApplicable), no advisories.
//! * `platform_id` = the UTF-8 bytes of `module_id`.
//! * `report_data`: the **first** of `user_data`, `nonce` that is present
//!   and at most 64 bytes long, zero-padded on the right to 64 bytes; all
//!   zero when neither fits (for example a 256-byte nonce). Nothing is
//!   hashed: an attester that wants to bind 64 bytes puts them in
//!   `user_data`. Both raw fields stay in [`NitroClaims`] for policies that
//!   need more.
//! * `tee_claims` = [`TeeClaims::Nitro`](veil_attest::TeeClaims::Nitro) with
//!   every payload field.

mod document;
mod verify;

pub use document::{
    looks_like_nitro_document, parse_document, NitroDocument, COSE_ALG_ES384, MAX_DOCUMENT_LEN,
};

use veil_attest::{Claims, Endorsement, NitroClaims, ReportData, Tee, Time, Verifier, VerifyError};

/// SHA-256 of the DER of the AWS Nitro Enclaves root certificate G1
/// (`CN=aws.nitro-enclaves`, valid 2019-10-28 to 2049-10-28), the
/// fingerprint AWS publishes.
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// Verifies AWS Nitro Enclaves attestation documents against a pinned root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroVerifier {
    root_sha256: [u8; 32],
}

impl Default for NitroVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl NitroVerifier {
    /// A verifier that trusts only the AWS Nitro Enclaves root G1.
    pub const fn new() -> Self {
        Self::with_root_sha256(AWS_NITRO_ROOT_G1_SHA256)
    }

    /// A verifier that trusts only the root whose DER has this SHA-256.
    ///
    /// For tests and private deployments; production uses [`NitroVerifier::new`].
    pub const fn with_root_sha256(root_sha256: [u8; 32]) -> Self {
        NitroVerifier { root_sha256 }
    }

    /// The SHA-256 of the pinned root certificate.
    pub const fn root_sha256(&self) -> [u8; 32] {
        self.root_sha256
    }

    /// Verifies an already parsed document at time `at`.
    pub fn verify_document(&self, doc: &NitroDocument, at: Time) -> Result<Claims, VerifyError> {
        verify::verify_document(doc, &self.root_sha256, at)
    }
}

impl Verifier for NitroVerifier {
    fn tee(&self) -> Tee {
        Tee::Nitro
    }

    /// Parses (binary or base64) and verifies a document; endorsements are
    /// not needed and are ignored.
    fn verify(
        &self,
        evidence: &[u8],
        _endorsements: &[Endorsement],
        at: Time,
    ) -> Result<Claims, VerifyError> {
        let doc = parse_document(evidence)?;
        self.verify_document(&doc, at)
    }
}

/// The report data Veil derives from a document's fields (see the crate
/// docs): the first of `user_data`, `nonce` that fits in 64 bytes, zero-padded.
pub fn report_data_of(claims: &NitroClaims) -> ReportData {
    verify::report_data(claims)
}

/// True when the PCRs say the enclave runs in debug mode (PCR0..PCR2 all zero).
pub fn is_debug_mode(claims: &NitroClaims) -> bool {
    verify::is_debug(&claims.pcrs)
}
