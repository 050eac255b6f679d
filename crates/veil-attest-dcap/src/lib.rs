//! # veil-attest-dcap: Intel SGX and TDX quote verification
//!
//! [`SgxVerifier`] (SGX quote v3) and [`TdxVerifier`] (TDX quote v4 and v5)
//! implement [`veil_attest::Verifier`] on top of [dcap-qvl] 0.7.1, with Intel's
//! SGX Root CA (built into dcap-qvl) as the only trust anchor. The endorsement
//! is the DCAP collateral JSON ([`veil_attest::Endorsement::DcapCollateral`],
//! dcap-qvl's `QuoteCollateralV3` layout). Like every Veil verifier this crate
//! is sans-IO: it reads no file, no clock and no network; the caller passes
//! the quote, the collateral and the time.
//!
//! [`parse_quote`] and [`detect`] read a quote without verifying it (for
//! `veil evidence show` and fuzzing); [`parse_collateral`] reads collateral.
//!
//! [dcap-qvl]: https://github.com/Phala-Network/dcap-qvl
//!
//! ## What is checked, in order
//!
//! 1. **The quote's form** (Veil): a 48-byte header whose TEE type is the
//!    verifier's (else [`VerifyError::WrongTee`](veil_attest::VerifyError::WrongTee));
//!    dcap-qvl decodes it (else `Malformed`); version 3 for SGX, 4 or 5 for
//!    TDX; attestation key type 2 (ECDSA P-256); Intel's QE vendor id
//!    (else `Untrusted`); the PCK certificate chain is exactly the canonical
//!    PEM of the PCK leaf and PCK CA, optionally followed by Intel's root byte
//!    for byte and NUL bytes, and a v4/v5 quote's outer certification data is
//!    of type 6; any bytes after the quote are zero padding. dcap-qvl
//!    authenticates neither the root's copy in the quote, nor the PEM line
//!    breaks, nor the outer certification data type, nor trailing bytes; with
//!    these checks no single-byte change of a published quote verifies
//!    (checked exhaustively for the SGX and TDX v4 vectors while building
//!    this crate; the tests sample it).
//! 2. **The collateral**: present (else `MissingEndorsement`, "SGX/TDX quotes
//!    need the DCAP collateral JSON (--endorsement collateral.json)"),
//!    parsable JSON with parsable TCB info, QE identity, dates and CRLs (else
//!    `BadEndorsement`), for the quote's TEE (TCB info id `SGX`/`TDX`, QE
//!    identity id `QE`/`TD_QE`; else `Mismatch`).
//! 3. **Its dates**, in the order dcap-qvl uses the parts: root CA CRL
//!    thisUpdate/nextUpdate, TCB info issueDate/nextUpdate, QE identity
//!    issueDate/nextUpdate, PCK CRL thisUpdate/nextUpdate. The first part
//!    that is not valid at T is named: "TCB info expired at ...", "root CA
//!    CRL expired at ...", "PCK CRL (Intel SGX PCK Processor CA) expired at
//!    ...", "TCB info issued in the future ...".
//! 4. **dcap-qvl** (`QuoteVerifier::new_prod().allow_debug(true)`): the root
//!    CA CRL's signature and that the root is not revoked; the TCB info
//!    signing chain (issued directly by the root, CRLs, validity) and the
//!    TCB info signature; the QE identity chain, signature, id and version;
//!    the PCK chain to the root with both CRLs (unknown revocation status and
//!    expired CRLs refused); the QE report signature by the PCK key; the QE
//!    report data binding the attestation key and QE authentication data;
//!    the QE identity policy (MRSIGNER, ISVPRODID, masked MISCSELECT and
//!    ATTRIBUTES, no debug QE, ISVSVN level); the quote signature by the
//!    attestation key over header and body; FMSPC of the PCK certificate
//!    equal to the TCB info's; TCB level matching (CPUSVN, PCESVN and, for
//!    TDX, TEE_TCB_SVN, the TDX module identity's MRSIGNER_SEAM and
//!    SEAM_ATTRIBUTES, the module TCB level, and a TD 1.5's current TCB);
//!    a `Revoked` platform or QE status is refused.
//!
//! dcap-qvl refuses debug enclaves and TDs by default; Veil turns that off
//! because it *reports* debug ([`veil_attest::Claims::debug`]: SGX
//! ATTRIBUTES.DEBUG, flags bit 1; TDX any TUD bit of TD_ATTRIBUTES, bit 0
//! being DEBUG) and leaves the decision to policy. What dcap-qvl's attribute
//! check still refuses whatever the policy: for TDX, TD_ATTRIBUTES with
//! reserved bits set, MIGRATABLE set, SERVTD_EXT set, or SEPT_VE_DISABLE
//! clear, and a TD 1.5 report with a non-zero MRSERVICETD (service TDs are
//! not allowed); a debug quoting enclave. For SGX only the debug bit is
//! checked, and that is now reported instead.
//!
//! dcap-qvl's errors (anyhow chains) are mapped to the
//! [`VerifyError`](veil_attest::VerifyError) that names the check, with
//! dcap-qvl's text kept in the detail: bad signatures to `BadSignature`
//! ("TCB info", "QE report", "SGX quote (header and report body, by the
//! attestation key)", ...), no TCB level to `Collateral("no matching TCB
//! level: ...")`, revoked TCB or certificates to `Revoked`, certificate
//! problems to `Expired`/`NotYetValid`/`Untrusted`, mismatched values to
//! `Mismatch`, undecodable quotes to `Malformed`.
//!
//! ## Claims
//!
//! SGX: `measurement` = MRENCLAVE, `measurements` {mrenclave, mrsigner},
//! `signer` = MRSIGNER, `product_id` = ISVPRODID, `svn` = ISVSVN. TDX:
//! `measurement` = MRTD, `measurements` {mrtd, rtmr0..rtmr3, mrseam,
//! mrconfigid, mrowner, mrownerconfig}, `signer` = None (MRSIGNER_SEAM signs
//! the TDX module, not the TD's code; pinning it would accept every TD on that
//! module; it is in `tee_claims`), `svn` = None. Both: `tcb_status` and
//! `advisories` exactly as dcap-qvl reports them (including TD 1.5's
//! `TDRelaunchAdvised[ConfigurationNeeded]`), `report_data`, `platform_id` =
//! the PPID when the PCK certificate carries one, and every report field in
//! `tee_claims` with the FMSPC and the separate platform and QE statuses.
//!
//! ## Caching
//!
//! A verifier made with [`SgxVerifier::new`] or [`SgxVerifier::with_cache`]
//! (likewise for TDX) keeps a [`CollateralCache`]: each collateral JSON
//! (keyed by TEE, FMSPC and SHA-256 of its bytes) is parsed and date-checked
//! once, and its entry lives until the earliest nextUpdate of its TCB info,
//! QE identity and CRLs, when it is dropped.
//!
//! Each entry also carries a memo of the ECDSA signatures that verified
//! under it. dcap-qvl's verification is one private function, so rather than
//! re-assembling it from its public pieces (its TCB level ordering, for one,
//! is private), Veil runs it whole, unchanged, through dcap-qvl's pluggable
//! [`Config`](dcap_qvl::config::Config): the same X.509 parser, encoder and
//! ECDSA implementation as dcap-qvl's default, except that the signature
//! algorithm answers a `(public key, message, signature)` triple that already
//! verified under this collateral from the memo. ECDSA verification is a pure
//! function of that triple, so no outcome can change; failures are never
//! remembered, and the quote's own two signatures (header and body by the
//! attestation key, QE report by the PCK key) are always verified afresh.
//! Every other check (parsing, paths, dates, CRLs, TCB matching, QE policy)
//! runs on every call. What is saved is re-verifying the collateral's
//! signatures (root CA CRL, TCB signing certificate, TCB info, QE identity)
//! and each platform's PCK chain and PCK CRL for every quote.
//!
//! `tests/equivalence.rs` checks that the cached path and dcap-qvl alone
//! give identical status and advisories on every vector and that both
//! reject every mutation tried. The benchmark (`benches/verify.rs`, figures
//! in `benches/README.md`) measured 3.6x to 4.1x the quotes per second of
//! calling `dcap_qvl::verify::verify` per quote (SGX about 1480/s vs 386/s,
//! TDX about 1410/s vs 383/s; one thread, on the project's 2-core
//! machine). [`SgxVerifier::without_cache`] runs dcap-qvl exactly as shipped.
//!
//! ## Not covered
//!
//! Only the collateral versions dcap-qvl accepts (TCB info v2+ for SGX and
//! v3 for TDX; QE identity v2, or v2 and v3 for TD_QE); only
//! PCK chains carried in the quote (certification data type 5): quotes with
//! an encrypted PPID (types 2/3) need their PCK chain from a PCCS, which this
//! crate does not take yet; no attestation key types other than ECDSA P-256.

mod cache;
mod collateral;
mod errors;
mod memo;
mod quote;
mod verifier;

pub use cache::{CacheKey, CacheStats, CollateralCache, DEFAULT_CAPACITY};
pub use collateral::{parse_collateral, Collateral, CrlDates, SignedJsonDates};
pub use quote::{detect, parse_quote, ParsedQuote, ReportBody, RtMr, SgxReportBody, TdReportBody};
pub use verifier::{SgxVerifier, TdxVerifier, MISSING_COLLATERAL};
