//! # veil-attest-snp: AMD SEV-SNP attestation report verifier
//!
//! [`SnpVerifier`] implements [`veil_attest::Verifier`] for [`Tee::Snp`]. It
//! is sans-IO: it reads no file, clock or network. The caller passes the
//! report, the certificates and the time.
//!
//! ## Evidence and endorsements
//!
//! * **Evidence** is an SEV-SNP `ATTESTATION_REPORT`: 1184 (0x4A0) bytes,
//!   binary or hex text (whitespace is ignored). Versions 2, 3 and 5 are
//!   accepted. [`parse_report`] decodes one without verifying it (for display
//!   and fuzzing), and [`looks_like_snp_report`] recognises one cheaply.
//! * **Endorsements** are [`Endorsement::Certificates`]: the VCEK or VLEK that
//!   signed the report (from AMD's KDS or the cloud provider), optionally
//!   with its CA chain: ASK and ARK for a VCEK, ASVK and ARK for a VLEK. Each
//!   certificate is identified by its subject and issuer names (`SEV-VCEK`,
//!   `SEV-VLEK`, `SEV-<gen>`, `SEV-VLEK-<gen>`, `ARK-<gen>`) and its basic
//!   constraints, so the order does not matter. Without an ASK the one built
//!   into the `sev` crate for the product generation is used. No ASVK is
//!   built in, so a VLEK report needs its ASVK given.
//!
//! ## What is checked
//!
//! 1. The report decodes: length, version 2/3/5, SIGNING_KEY (KEY_INFO bits
//!    4:2 at offset 0x48) is VCEK (0) or VLEK (1), signature algorithm 1
//!    (ECDSA P-384 with SHA-384), and for version 3 and later a known CPUID
//!    family/model, which also selects the TCB layout (Turin adds an FMC SPL).
//! 2. The certificate that signs is of the kind the report names (a VLEK
//!    report needs a VLEK, a VCEK report a VCEK).
//! 3. The product generation (Milan, Genoa, Turin) is read from the VCEK's or
//!    VLEK's issuer name (or its productName extension) and must agree with
//!    the report's CPUID fields when the report has them.
//! 4. The root is AMD's ARK for that generation as built into the `sev`
//!    crate. A supplied ARK is only accepted if it is byte for byte that
//!    certificate; any other ARK is [`VerifyError::Untrusted`], however well
//!    formed. The ARK must be self-signed.
//! 5. ARK signs the ASK (or ASVK), which signs the VCEK (or VLEK); names
//!    chain, and every link is RSASSA-PSS with SHA-384, MGF1-SHA-384 and a
//!    48-byte salt, as AMD signs them.
//! 6. Every certificate of the chain (built-in ones too) is valid at the time
//!    given: [`VerifyError::NotYetValid`] ("VCEK certificate issued in the
//!    future") or [`VerifyError::Expired`] ("VLEK certificate expired at ...").
//! 7. The VCEK/VLEK TCB extensions (blSPL, teeSPL, snpSPL, ucodeSPL and, when
//!    present or on Turin, fmcSPL) equal the report's REPORTED_TCB.
//! 8. For a VCEK, its hwID extension equals the report's CHIP_ID.
//! 9. The report signature: R and S are read as 72-byte little-endian numbers
//!    whose top 24 bytes must be zero, the rest of the signature field must be
//!    zero, and ECDSA P-384/SHA-384 (ring) must verify over the bytes
//!    `0..0x2A0` exactly as received, with the VCEK/VLEK key (P-384).
//!
//! ## What is not checked
//!
//! * Revocation: AMD's CRLs for the ASK/ASVK are not consulted.
//! * Whether the TCB is recent enough, the guest policy is acceptable, the
//!   guest is not in debug mode, the VMPL or the measurement is right: these
//!   are policy decisions. The claims report them (`debug` is policy bit 19;
//!   `tcb_status` is always [`TcbStatus::NotApplicable`]: compare
//!   `reported_tcb` in [`SnpClaims`] instead).
//! * Fields the signature covers but no endorsement vouches for (CURRENT,
//!   COMMITTED and LAUNCH TCBs, PLATFORM_INFO, ...) are reported as given.
//! * A VCEK-signed report whose CHIP_ID the guest policy masked cannot be
//!   matched to the VCEK's hwID, and is rejected with a chip id mismatch.
//! * The VLEK's cloud-provider (CSP ID) extension is not interpreted.
//! * Venice reports parse, but no Venice ARK is built in, so they do not verify.
//!
//! [`Tee::Snp`]: veil_attest::Tee::Snp
//! [`TcbStatus::NotApplicable`]: veil_attest::TcbStatus::NotApplicable
//! [`SnpClaims`]: veil_attest::SnpClaims

mod certs;
mod report;
mod verify;

use veil_attest::{Claims, Endorsement, Tee, Time, VerifyError};

pub use report::{
    looks_like_snp_report, parse_report, Generation, ParsedReport, REPORT_LEN, SIGNED_LEN,
    SUPPORTED_VERSIONS,
};

/// Verifies AMD SEV-SNP attestation reports against AMD's built-in roots.
///
/// ```no_run
/// use veil_attest::{Endorsement, Time, Verifier};
/// use veil_attest_snp::SnpVerifier;
///
/// # fn run(report: &[u8], vcek_der: Vec<u8>) -> Result<(), veil_attest::VerifyError> {
/// let claims = SnpVerifier::new().verify(
///     report,
///     &[Endorsement::Certificates(vec![vcek_der])],
///     Time::from_unix(1_735_689_600),
/// )?;
/// println!("measurement {}", hex::encode(&claims.measurement));
/// # Ok(()) }
/// ```
#[derive(Debug, Default, Clone)]
pub struct SnpVerifier {
    _private: (),
}

impl SnpVerifier {
    /// A verifier that trusts AMD's ARKs for Milan, Genoa and Turin as built
    /// into the `sev` crate, and nothing else.
    pub fn new() -> Self {
        Self::default()
    }
}

impl veil_attest::Verifier for SnpVerifier {
    fn tee(&self) -> Tee {
        Tee::Snp
    }

    fn verify(
        &self,
        evidence: &[u8],
        endorsements: &[Endorsement],
        at: Time,
    ) -> Result<Claims, VerifyError> {
        verify::verify(evidence, endorsements, at)
    }
}
