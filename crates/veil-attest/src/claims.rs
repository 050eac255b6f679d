use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{hexfmt, Tee};

/// The 64 bytes of caller-chosen data a TEE signs into its evidence.
///
/// Veil puts a hash of the verifier's nonce and the attester's public key
/// here, so a quote cannot be replayed or moved to another key. SEV-SNP, TDX,
/// SGX and the sim TEE carry exactly 64 bytes; for Nitro it is the document's
/// `user_data` or `nonce`, zero-padded (see `NitroClaims`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReportData(#[serde(with = "hexfmt")] pub [u8; 64]);

impl ReportData {
    /// All-zero report data.
    pub const ZERO: ReportData = ReportData([0; 64]);

    /// Report data from up to 64 bytes, zero-padded on the right, or `None`
    /// when `bytes` is longer than 64.
    pub fn from_prefix(bytes: &[u8]) -> Option<Self> {
        let mut out = [0u8; 64];
        out.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(ReportData(out))
    }

    /// Parses 1 to 128 hex digits (zero-padded on the right to 64 bytes).
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let bytes =
            hex::decode(s.trim()).map_err(|e| format!("report data {s:?} is not hex: {e}"))?;
        Self::from_prefix(&bytes).ok_or_else(|| {
            format!(
                "report data is {} bytes; at most 64 bytes (128 hex digits) fit",
                bytes.len()
            )
        })
    }

    /// The bytes as lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ReportData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportData({})", self.to_hex())
    }
}

impl fmt::Display for ReportData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The TCB status of the platform, as its vendor's endorsements state it.
///
/// The names are Intel's; they are reported exactly as the collateral says.
/// TEEs whose vendor publishes no such status (SEV-SNP, Nitro, sim) report
/// [`TcbStatus::NotApplicable`]; for SEV-SNP a policy compares the reported
/// TCB version instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TcbStatus {
    /// The platform is patched to the latest TCB level.
    UpToDate,
    /// Up to date, but software hardening is needed (see advisories).
    SWHardeningNeeded,
    /// Up to date, but platform configuration is needed.
    ConfigurationNeeded,
    /// Up to date, but both configuration and software hardening are needed.
    ConfigurationAndSWHardeningNeeded,
    /// The platform TCB is out of date.
    OutOfDate,
    /// Out of date, and configuration is needed.
    OutOfDateConfigurationNeeded,
    /// TDX 1.5: the TD was launched on an out-of-date TCB that has since been
    /// updated; Intel advises relaunching it.
    TDRelaunchAdvised,
    /// As `TDRelaunchAdvised`, and configuration is needed.
    TDRelaunchAdvisedConfigurationNeeded,
    /// The platform keys are revoked.
    Revoked,
    /// The TEE has no vendor TCB status.
    NotApplicable,
}

impl TcbStatus {
    /// The status as Intel spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SWHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::TDRelaunchAdvised => "TDRelaunchAdvised",
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded => {
                "TDRelaunchAdvisedConfigurationNeeded"
            }
            TcbStatus::Revoked => "Revoked",
            TcbStatus::NotApplicable => "NotApplicable",
        }
    }

    /// Parses Intel's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            TcbStatus::UpToDate,
            TcbStatus::SWHardeningNeeded,
            TcbStatus::ConfigurationNeeded,
            TcbStatus::ConfigurationAndSWHardeningNeeded,
            TcbStatus::OutOfDate,
            TcbStatus::OutOfDateConfigurationNeeded,
            TcbStatus::TDRelaunchAdvised,
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
            TcbStatus::Revoked,
            TcbStatus::NotApplicable,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What verified evidence says, in a form common to every TEE.
///
/// Produced only by a [`crate::Verifier`]; a `Claims` value means the evidence
/// was genuine at the time given to the verifier. Nothing here has been judged
/// acceptable: that is the policy's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Which TEE produced the evidence.
    pub tee: Tee,
    /// True for the simulated TEE: no hardware protection at all. Consumers
    /// must refuse these claims unless their policy explicitly accepts `sim`.
    pub insecure: bool,
    /// The primary measurement of the code: MRENCLAVE (SGX), MRTD (TDX),
    /// MEASUREMENT (SNP), PCR0 (Nitro), the launch measurement (sim).
    #[serde(with = "hexfmt")]
    pub measurement: Vec<u8>,
    /// Every measurement register by name (`mrenclave`, `mrtd`, `rtmr0`,
    /// `pcr0`..), the primary one included.
    #[serde(with = "hexfmt::map")]
    pub measurements: BTreeMap<String, Vec<u8>>,
    /// Who signed the code, where the TEE says: MRSIGNER (SGX), MRSIGNER_SEAM
    /// (TDX), the author or ID key digest (SNP), PCR3 role (Nitro: none).
    #[serde(with = "hexfmt::option")]
    pub signer: Option<Vec<u8>>,
    /// ISVPRODID (SGX); absent elsewhere.
    pub product_id: Option<u16>,
    /// Security version of the code: ISVSVN (SGX), GUEST_SVN (SNP).
    pub svn: Option<u32>,
    /// True when the TEE runs in a debug mode whose memory the host can read:
    /// SGX DEBUG attribute, TDX TD debug bit, SNP guest policy debug bit,
    /// Nitro debug mode (all-zero PCRs), sim when asked to.
    pub debug: bool,
    /// The platform TCB status the vendor's endorsements give.
    pub tcb_status: TcbStatus,
    /// Security advisories that apply to the platform TCB, as the
    /// endorsements list them (`INTEL-SA-00615`, ...).
    pub advisories: Vec<String>,
    /// The 64 bytes the attester bound into the evidence.
    pub report_data: ReportData,
    /// Identifies the physical platform, where the TEE says: PPID (SGX/TDX,
    /// when encrypted PPID is absent it is empty), CHIP_ID (SNP), module id
    /// (Nitro), the platform key (sim).
    #[serde(with = "hexfmt::option")]
    pub platform_id: Option<Vec<u8>>,
    /// The time at which the evidence was verified.
    pub verified_at: crate::Time,
    /// Every field of the evidence, typed per TEE.
    pub tee_claims: TeeClaims,
}

/// The TEE-specific fields of verified evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tee", rename_all = "lowercase")]
#[non_exhaustive]
pub enum TeeClaims {
    /// Intel SGX.
    Sgx(SgxClaims),
    /// Intel TDX.
    Tdx(TdxClaims),
    /// AMD SEV-SNP.
    Snp(SnpClaims),
    /// AWS Nitro Enclaves.
    Nitro(NitroClaims),
    /// Veil's simulated TEE.
    Sim(SimClaims),
}

/// Fields of an SGX enclave report inside a DCAP quote v3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgxClaims {
    /// Quote format version (3).
    pub quote_version: u16,
    /// CPUSVN of the enclave report.
    #[serde(with = "hexfmt")]
    pub cpu_svn: Vec<u8>,
    /// MISCSELECT.
    pub misc_select: u32,
    /// ATTRIBUTES (16 bytes: flags then XFRM, little-endian).
    #[serde(with = "hexfmt")]
    pub attributes: Vec<u8>,
    /// MRENCLAVE.
    #[serde(with = "hexfmt")]
    pub mr_enclave: Vec<u8>,
    /// MRSIGNER.
    #[serde(with = "hexfmt")]
    pub mr_signer: Vec<u8>,
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// FMSPC of the platform, from the PCK certificate (absent when not verified).
    #[serde(with = "hexfmt::option")]
    pub fmspc: Option<Vec<u8>>,
    /// Platform TCB status alone, before merging with the QE's.
    pub platform_tcb_status: Option<TcbStatus>,
    /// QE TCB status alone.
    pub qe_tcb_status: Option<TcbStatus>,
}

/// Fields of a TDX TD report inside a quote v4 or v5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxClaims {
    /// Quote format version (4 or 5).
    pub quote_version: u16,
    /// TD report body version: "1.0" or "1.5".
    pub body: String,
    /// TEE_TCB_SVN.
    #[serde(with = "hexfmt")]
    pub tee_tcb_svn: Vec<u8>,
    /// MRSEAM (TDX module measurement).
    #[serde(with = "hexfmt")]
    pub mr_seam: Vec<u8>,
    /// MRSIGNER_SEAM.
    #[serde(with = "hexfmt")]
    pub mr_signer_seam: Vec<u8>,
    /// SEAM_ATTRIBUTES.
    #[serde(with = "hexfmt")]
    pub seam_attributes: Vec<u8>,
    /// TD_ATTRIBUTES (bit 0: TUD debug).
    #[serde(with = "hexfmt")]
    pub td_attributes: Vec<u8>,
    /// XFAM.
    #[serde(with = "hexfmt")]
    pub xfam: Vec<u8>,
    /// MRTD: the initial TD contents.
    #[serde(with = "hexfmt")]
    pub mr_td: Vec<u8>,
    /// MRCONFIGID.
    #[serde(with = "hexfmt")]
    pub mr_config_id: Vec<u8>,
    /// MROWNER.
    #[serde(with = "hexfmt")]
    pub mr_owner: Vec<u8>,
    /// MROWNERCONFIG.
    #[serde(with = "hexfmt")]
    pub mr_owner_config: Vec<u8>,
    /// RTMR0..RTMR3.
    #[serde(with = "hexfmt::map")]
    pub rt_mr: BTreeMap<String, Vec<u8>>,
    /// TEE_TCB_SVN_2 (TD 1.5 only).
    #[serde(with = "hexfmt::option")]
    pub tee_tcb_svn2: Option<Vec<u8>>,
    /// MRSERVICETD (TD 1.5 only).
    #[serde(with = "hexfmt::option")]
    pub mr_service_td: Option<Vec<u8>>,
    /// FMSPC of the platform, from the PCK certificate.
    #[serde(with = "hexfmt::option")]
    pub fmspc: Option<Vec<u8>>,
    /// Platform TCB status alone, before merging with the QE's.
    pub platform_tcb_status: Option<TcbStatus>,
    /// QE TCB status alone.
    pub qe_tcb_status: Option<TcbStatus>,
}

/// An SEV-SNP TCB version (the four security patch levels AMD signs into a VCEK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnpTcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin and later), when present.
    pub fmc: Option<u8>,
}

/// Which AMD key signed an SEV-SNP report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SnpSigner {
    /// Versioned Chip Endorsement Key (per chip and TCB).
    Vcek,
    /// Versioned Loaded Endorsement Key (per cloud provider and TCB).
    Vlek,
}

/// Fields of an SEV-SNP attestation report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpClaims {
    /// Report format version.
    pub version: u32,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// Guest POLICY (bit 19: debug allowed).
    pub policy: u64,
    /// FAMILY_ID.
    #[serde(with = "hexfmt")]
    pub family_id: Vec<u8>,
    /// IMAGE_ID.
    #[serde(with = "hexfmt")]
    pub image_id: Vec<u8>,
    /// VMPL of the requesting guest.
    pub vmpl: u32,
    /// Signature algorithm (1 = ECDSA P-384 with SHA-384).
    pub signature_algo: u32,
    /// CURRENT_TCB.
    pub current_tcb: SnpTcb,
    /// REPORTED_TCB: the TCB the VCEK must be derived for.
    pub reported_tcb: SnpTcb,
    /// COMMITTED_TCB.
    pub committed_tcb: SnpTcb,
    /// LAUNCH_TCB.
    pub launch_tcb: SnpTcb,
    /// PLATFORM_INFO flags.
    pub platform_info: u64,
    /// MEASUREMENT (launch digest).
    #[serde(with = "hexfmt")]
    pub measurement: Vec<u8>,
    /// HOST_DATA.
    #[serde(with = "hexfmt")]
    pub host_data: Vec<u8>,
    /// ID_KEY_DIGEST.
    #[serde(with = "hexfmt")]
    pub id_key_digest: Vec<u8>,
    /// AUTHOR_KEY_DIGEST.
    #[serde(with = "hexfmt")]
    pub author_key_digest: Vec<u8>,
    /// REPORT_ID.
    #[serde(with = "hexfmt")]
    pub report_id: Vec<u8>,
    /// REPORT_ID_MA.
    #[serde(with = "hexfmt")]
    pub report_id_ma: Vec<u8>,
    /// CHIP_ID (all zero when the guest policy masks it, or for VLEK reports).
    #[serde(with = "hexfmt")]
    pub chip_id: Vec<u8>,
    /// Which key signed the report.
    pub signer: SnpSigner,
    /// CPUID family/model/stepping, when the report version carries them.
    pub cpuid: Option<[u8; 3]>,
}

/// Fields of an AWS Nitro Enclaves attestation document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NitroClaims {
    /// The enclave's module id (`i-...-enc...`).
    pub module_id: String,
    /// Digest algorithm of the PCRs (`SHA384`).
    pub digest: String,
    /// Document time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// PCR index to value.
    #[serde(with = "hexfmt::map")]
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// The optional public key the enclave put in the document.
    #[serde(with = "hexfmt::option")]
    pub public_key: Option<Vec<u8>>,
    /// The optional user data.
    #[serde(with = "hexfmt::option")]
    pub user_data: Option<Vec<u8>>,
    /// The optional nonce.
    #[serde(with = "hexfmt::option")]
    pub nonce: Option<Vec<u8>>,
}

/// Fields of Veil simulated-TEE evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimClaims {
    /// Format version of the sim evidence.
    pub version: u8,
    /// The sim platform's Ed25519 public key that signed the evidence.
    #[serde(with = "hexfmt")]
    pub platform_key: Vec<u8>,
    /// When the sim platform signed the evidence.
    pub issued_at: crate::Time,
}
