//! Decoding an SEV-SNP attestation report (no verification).

use std::borrow::Cow;
use std::fmt;

use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use veil_attest::{ReportData, SnpClaims, SnpSigner, SnpTcb, Tee, VerifyError};

/// Length of an SEV-SNP attestation report in bytes (0x4A0).
pub const REPORT_LEN: usize = 0x4A0;

/// The report signature covers bytes `0..SIGNED_LEN` (0x2A0).
pub const SIGNED_LEN: usize = 0x2A0;

/// What `VerifyError::Malformed` names for this evidence.
pub(crate) const WHAT: &str = "SNP report";

/// Report versions this crate understands.
pub const SUPPORTED_VERSIONS: [u32; 3] = [2, 3, 5];

// Offsets in the report (AMD SEV-SNP ABI specification, ATTESTATION_REPORT).
const OFF_VERSION: usize = 0x00;
const OFF_POLICY: usize = 0x08;
const OFF_VMPL: usize = 0x30;
const OFF_SIG_ALGO: usize = 0x34;
const OFF_CURRENT_TCB: usize = 0x38;
const OFF_KEY_INFO: usize = 0x48;
const OFF_REPORTED_TCB: usize = 0x180;
const OFF_CPUID: usize = 0x188;
const OFF_CHIP_ID: usize = 0x1A0;
const OFF_COMMITTED_TCB: usize = 0x1E0;
const OFF_LAUNCH_TCB: usize = 0x1F0;
/// Start of the signature: R (72 bytes little-endian), S (72 bytes), reserved.
pub(crate) const OFF_SIGNATURE: usize = SIGNED_LEN;

/// An AMD EPYC product generation that runs SEV-SNP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Generation {
    /// 3rd generation EPYC (Zen 3).
    Milan,
    /// 4th generation EPYC (Zen 4).
    Genoa,
    /// 5th generation EPYC (Zen 5).
    Turin,
    /// 6th generation EPYC. Reports parse; no AMD root is built in, so they
    /// cannot be verified yet.
    Venice,
}

impl Generation {
    /// AMD's name for the generation, as in `ARK-Milan`.
    pub fn name(self) -> &'static str {
        match self {
            Generation::Milan => "Milan",
            Generation::Genoa => "Genoa",
            Generation::Turin => "Turin",
            Generation::Venice => "Venice",
        }
    }

    /// The generation of a CPU with this CPUID family and model (the report's
    /// CPUID_FAM_ID and CPUID_MOD_ID fields), as AMD documents them.
    pub fn from_cpuid(family: u8, model: u8) -> Option<Self> {
        match (family, model) {
            (0x19, 0x00..=0x0F) => Some(Generation::Milan),
            (0x19, 0x10..=0x1F | 0xA0..=0xAF) => Some(Generation::Genoa),
            (0x1A, 0x00..=0x11) => Some(Generation::Turin),
            (0x1A, 0x50..=0x57 | 0x90..=0x9F | 0xA0..=0xAF | 0xC0..=0xC7) => {
                Some(Generation::Venice)
            }
            _ => None,
        }
    }

    /// The generation named at the start of `s` (`Milan`, `Milan-B0`, ...).
    pub(crate) fn from_name_prefix(s: &str) -> Option<Self> {
        let head = s.split(['-', '_', ' ']).next().unwrap_or_default();
        [
            Generation::Milan,
            Generation::Genoa,
            Generation::Turin,
            Generation::Venice,
        ]
        .into_iter()
        .find(|g| g.name().eq_ignore_ascii_case(head))
    }

    /// Turin and later put an FMC SPL first in each TCB_VERSION and move the
    /// other fields; Milan and Genoa use the original layout.
    pub(crate) fn has_fmc(self) -> bool {
        matches!(self, Generation::Turin | Generation::Venice)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An SEV-SNP attestation report, decoded but NOT verified.
///
/// Everything here is what the report says; nothing has been checked against
/// AMD's keys. Use [`crate::SnpVerifier`] to get verified claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReport {
    /// Every field of the report, typed as in verified claims.
    pub snp: SnpClaims,
    /// REPORT_DATA.
    pub report_data: ReportData,
    /// KEY_INFO bit 0 (AUTHOR_KEY_EN): AUTHOR_KEY_DIGEST is present.
    pub author_key_en: bool,
    /// KEY_INFO bit 1 (MASK_CHIP_KEY): the firmware did not sign the report.
    pub mask_chip_key: bool,
    /// The product generation, from the CPUID fields (report version 3 and
    /// later); `None` for version 2, which does not carry them.
    pub generation: Option<Generation>,
    /// CURRENT firmware version (major, minor, build).
    pub current_version: (u8, u8, u8),
    /// COMMITTED firmware version (major, minor, build).
    pub committed_version: (u8, u8, u8),
    /// LAUNCH_MIT_VECTOR (version 5 and later).
    pub launch_mit_vector: Option<u64>,
    /// CURRENT_MIT_VECTOR (version 5 and later).
    pub current_mit_vector: Option<u64>,
    raw: Vec<u8>,
}

impl ParsedReport {
    /// The 1184 bytes of the report (hex text already decoded).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The bytes the signature covers (`0..0x2A0`), exactly as received.
    pub fn signed_bytes(&self) -> &[u8] {
        self.raw.get(..SIGNED_LEN).unwrap_or_default()
    }

    /// The signature field (`0x2A0..0x4A0`): R and S as 72-byte little-endian
    /// numbers, then reserved bytes.
    pub fn signature_bytes(&self) -> &[u8] {
        self.raw.get(OFF_SIGNATURE..).unwrap_or_default()
    }

    /// Which AMD key the report says signed it.
    pub fn signer(&self) -> SnpSigner {
        self.snp.signer
    }

    /// True when the guest policy allows debugging (bit 19): the host can read
    /// and change the guest's memory.
    pub fn debug(&self) -> bool {
        self.snp.policy & (1 << 19) != 0
    }

    /// Who signed the guest image: the author key digest when AUTHOR_KEY_EN
    /// is set, else the ID key digest when an ID block was given, else none.
    pub fn signer_digest(&self) -> Option<&[u8]> {
        if self.author_key_en {
            Some(&self.snp.author_key_digest)
        } else if self.snp.id_key_digest.iter().any(|b| *b != 0) {
            Some(&self.snp.id_key_digest)
        } else {
            None
        }
    }

    /// CHIP_ID, or `None` when it is all zero (masked by policy, or a VLEK report).
    pub fn platform_id(&self) -> Option<&[u8]> {
        self.snp
            .chip_id
            .iter()
            .any(|b| *b != 0)
            .then_some(self.snp.chip_id.as_slice())
    }
}

/// Decodes an SEV-SNP attestation report without verifying it.
///
/// `bytes` is the binary report (exactly 1184 bytes) or the same as hex text
/// (upper or lower case; whitespace anywhere is ignored). Fails with
/// [`VerifyError::WrongTee`] when the bytes are recognisably another TEE's
/// evidence (a DCAP quote, a Nitro document), else [`VerifyError::Malformed`].
/// Never panics.
pub fn parse_report(bytes: &[u8]) -> Result<ParsedReport, VerifyError> {
    let raw = decode_evidence(bytes)?;
    parse_raw(raw.into_owned())
}

/// True when `bytes` look like an SEV-SNP report (binary or hex text): the
/// right length, a supported version, ECDSA P-384 signature algorithm, a VCEK
/// or VLEK signing key and a valid VMPL. Cheap; checks no signature.
pub fn looks_like_snp_report(bytes: &[u8]) -> bool {
    let Ok(raw) = decode_evidence(bytes) else {
        return false;
    };
    let raw = raw.as_ref();
    let (Some(version), Some(algo), Some(vmpl), Some(key_info)) = (
        le_u32(raw, OFF_VERSION),
        le_u32(raw, OFF_SIG_ALGO),
        le_u32(raw, OFF_VMPL),
        le_u32(raw, OFF_KEY_INFO),
    ) else {
        return false;
    };
    SUPPORTED_VERSIONS.contains(&version)
        && algo == 1
        && vmpl <= 3
        && matches!((key_info >> 2) & 0x7, 0 | 1)
        && key_info >> 5 == 0
}

/// Binary or hex text to the 1184 report bytes.
fn decode_evidence(bytes: &[u8]) -> Result<Cow<'_, [u8]>, VerifyError> {
    if is_hex_text(bytes) {
        let digits: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let raw = hex::decode(&digits)
            .map_err(|e| VerifyError::malformed(WHAT, format!("hex text does not decode: {e}")))?;
        if raw.len() != REPORT_LEN {
            return Err(VerifyError::malformed(
                WHAT,
                format!(
                    "hex text decodes to {} bytes; a report is {REPORT_LEN} bytes (0x4A0)",
                    raw.len()
                ),
            ));
        }
        return Ok(Cow::Owned(raw));
    }
    if bytes.len() != REPORT_LEN {
        if let Some(other) = sniff_other_tee(bytes) {
            return Err(VerifyError::WrongTee {
                expected: Tee::Snp,
                found: other.to_owned(),
            });
        }
        return Err(VerifyError::malformed(
            WHAT,
            format!(
                "{} bytes; a report is {REPORT_LEN} bytes (0x4A0), binary or hex",
                bytes.len()
            ),
        ));
    }
    Ok(Cow::Borrowed(bytes))
}

/// Hex digits and whitespace only, with at least one digit. A binary report
/// never qualifies: its version field holds zero bytes.
fn is_hex_text(bytes: &[u8]) -> bool {
    bytes.iter().any(u8::is_ascii_hexdigit)
        && bytes
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace())
}

/// Recognises the evidence of other TEEs by their headers.
pub(crate) fn sniff_other_tee(bytes: &[u8]) -> Option<&'static str> {
    const INTEL_QE_VENDOR: [u8; 16] = [
        0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06,
        0x07,
    ];
    let version = le_u16(bytes, 0);
    let tee_type = le_u32(bytes, 4);
    if bytes.get(12..28) == Some(&INTEL_QE_VENDOR[..]) {
        match (version, tee_type) {
            (Some(4 | 5), Some(0x81)) => return Some("tdx"),
            (Some(3..=5), Some(0)) => return Some("sgx"),
            _ => {}
        }
    }
    // COSE_Sign1: a CBOR array of 4, possibly behind tag 18.
    match bytes {
        [0x84, 0x40..=0x5b, ..] | [0xd2, 0x84, ..] => Some("nitro"),
        _ => None,
    }
}

fn parse_raw(raw: Vec<u8>) -> Result<ParsedReport, VerifyError> {
    let field = |off: usize| le_u32(&raw, off).ok_or_else(short);
    let version = field(OFF_VERSION)?;
    if !SUPPORTED_VERSIONS.contains(&version) {
        if let Some(other) = sniff_other_tee(&raw) {
            return Err(VerifyError::WrongTee {
                expected: Tee::Snp,
                found: other.to_owned(),
            });
        }
        return Err(VerifyError::malformed(
            WHAT,
            format!("unsupported report version {version} (supported: 2, 3, 5)"),
        ));
    }
    let key_info = field(OFF_KEY_INFO)?;
    let signer = match (key_info >> 2) & 0x7 {
        0 => SnpSigner::Vcek,
        1 => SnpSigner::Vlek,
        7 => {
            return Err(VerifyError::malformed(
                WHAT,
                "SIGNING_KEY is 7 (none): the firmware did not sign this report",
            ))
        }
        n => {
            return Err(VerifyError::malformed(
                WHAT,
                format!("SIGNING_KEY is {n}, a reserved value (0 = VCEK, 1 = VLEK)"),
            ))
        }
    };

    // The CPUID fields exist from version 3 on; they decide the TCB layout.
    let cpuid = if version >= 3 {
        let b: [u8; 3] = raw
            .get(OFF_CPUID..OFF_CPUID + 3)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(short)?;
        Some(b)
    } else {
        None
    };
    let generation = match cpuid {
        Some([family, model, _]) => Some(Generation::from_cpuid(family, model).ok_or_else(|| {
            VerifyError::malformed(
                WHAT,
                format!("CPUID family {family:#x} model {model:#x} is not a known SEV-SNP processor"),
            )
        })?),
        None => None,
    };
    // Version 2 predates Turin: always the Milan/Genoa TCB layout.
    let has_fmc = generation.is_some_and(Generation::has_fmc);

    // The sev crate decodes the rest. For a version 2 report it guesses the
    // TCB layout from CHIP_ID and refuses an all-zero (masked) CHIP_ID; we
    // decode TCBs, CHIP_ID and POLICY ourselves, so hand it a copy whose
    // CHIP_ID selects the Milan/Genoa layout in that one case.
    let mut for_sev = raw.clone();
    let chip_id = raw
        .get(OFF_CHIP_ID..OFF_CHIP_ID + 64)
        .ok_or_else(short)?
        .to_vec();
    if version == 2 && chip_id.iter().all(|b| *b == 0) {
        if let Some(b) = for_sev.get_mut(OFF_CHIP_ID + 8) {
            *b = 1;
        }
    }
    let rep = AttestationReport::from_bytes(&for_sev)
        .map_err(|e| VerifyError::malformed(WHAT, format!("does not decode: {e}")))?;

    let tcb = |off: usize| -> Result<SnpTcb, VerifyError> {
        let b: [u8; 8] = raw
            .get(off..off + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(short)?;
        Ok(decode_tcb(b, has_fmc))
    };
    let policy = raw
        .get(OFF_POLICY..OFF_POLICY + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(short)?;

    let snp = SnpClaims {
        version: rep.version,
        guest_svn: rep.guest_svn,
        policy,
        family_id: rep.family_id.to_vec(),
        image_id: rep.image_id.to_vec(),
        vmpl: rep.vmpl,
        signature_algo: rep.sig_algo,
        current_tcb: tcb(OFF_CURRENT_TCB)?,
        reported_tcb: tcb(OFF_REPORTED_TCB)?,
        committed_tcb: tcb(OFF_COMMITTED_TCB)?,
        launch_tcb: tcb(OFF_LAUNCH_TCB)?,
        platform_info: u64::from(rep.plat_info),
        measurement: rep.measurement.to_vec(),
        host_data: rep.host_data.to_vec(),
        id_key_digest: rep.id_key_digest.to_vec(),
        author_key_digest: rep.author_key_digest.to_vec(),
        report_id: rep.report_id.to_vec(),
        report_id_ma: rep.report_id_ma.to_vec(),
        chip_id,
        signer,
        cpuid,
    };
    Ok(ParsedReport {
        snp,
        report_data: ReportData(rep.report_data),
        author_key_en: key_info & 1 != 0,
        mask_chip_key: key_info & 2 != 0,
        generation,
        current_version: (rep.current.major, rep.current.minor, rep.current.build),
        committed_version: (
            rep.committed.major,
            rep.committed.minor,
            rep.committed.build,
        ),
        launch_mit_vector: rep.launch_mit_vector,
        current_mit_vector: rep.current_mit_vector,
        raw,
    })
}

/// A TCB_VERSION: Milan/Genoa `[bl, tee, 0, 0, 0, 0, snp, ucode]`,
/// Turin and later `[fmc, bl, tee, snp, 0, 0, 0, ucode]`.
fn decode_tcb(b: [u8; 8], has_fmc: bool) -> SnpTcb {
    if has_fmc {
        SnpTcb {
            fmc: Some(b[0]),
            bootloader: b[1],
            tee: b[2],
            snp: b[3],
            microcode: b[7],
        }
    } else {
        SnpTcb {
            fmc: None,
            bootloader: b[0],
            tee: b[1],
            snp: b[6],
            microcode: b[7],
        }
    }
}

fn short() -> VerifyError {
    VerifyError::malformed(WHAT, "report is too short")
}

fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
}

pub(crate) fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &[u8] = include_bytes!("../testdata/trustee_report_v2.bin");
    const VLEK: &[u8] = include_bytes!("../testdata/trustee_vlek_report.bin");
    const HEX: &[u8] = include_bytes!("../testdata/virtee_report_milan.hex");

    #[test]
    fn parses_v2_report() {
        let r = parse_report(V2).unwrap();
        assert_eq!(r.snp.version, 2);
        assert_eq!(r.snp.signer, SnpSigner::Vcek);
        assert_eq!(r.generation, None);
        assert_eq!(r.snp.cpuid, None);
        assert_eq!(
            r.snp.reported_tcb,
            SnpTcb {
                bootloader: 3,
                tee: 0,
                snp: 8,
                microcode: 115,
                fmc: None
            }
        );
        assert_eq!(r.snp.signature_algo, 1);
        assert_eq!(r.snp.measurement.len(), 48);
        assert_eq!(r.raw(), V2);
        assert_eq!(r.signed_bytes().len(), SIGNED_LEN);
        assert_eq!(r.signature_bytes().len(), REPORT_LEN - SIGNED_LEN);
        assert_eq!(r.snp.policy, 0x3001f);
        assert!(!r.debug());
        assert!(r.platform_id().is_some());
        assert_eq!(r.snp.measurement, V2[0x90..0xC0].to_vec());
        assert_eq!(r.report_data.0.to_vec(), V2[0x50..0x90].to_vec());
    }

    #[test]
    fn parses_vlek_v3_report() {
        let r = parse_report(VLEK).unwrap();
        assert_eq!(r.snp.version, 3);
        assert_eq!(r.snp.signer, SnpSigner::Vlek);
        assert_eq!(r.generation, Some(Generation::Milan));
        assert_eq!(r.snp.cpuid, Some([0x19, 0x01, 0x01]));
        assert_eq!(r.platform_id(), None);
        assert_eq!(r.snp.vmpl, 1);
    }

    #[test]
    fn parses_hex_with_whitespace() {
        let r = parse_report(HEX).unwrap();
        let mut spaced = Vec::new();
        for (i, c) in HEX.iter().enumerate() {
            spaced.push(*c);
            if i % 64 == 63 {
                spaced.extend_from_slice(b"\r\n ");
            }
        }
        spaced.push(b'\n');
        assert_eq!(parse_report(&spaced).unwrap(), r);
        let lower = HEX.to_ascii_lowercase();
        assert_eq!(parse_report(&lower).unwrap(), r);
        assert!(looks_like_snp_report(HEX));
        assert!(looks_like_snp_report(&spaced));
    }

    #[test]
    fn v2_with_masked_chip_id_parses() {
        let mut b = V2.to_vec();
        b[OFF_CHIP_ID..OFF_CHIP_ID + 64].fill(0);
        let r = parse_report(&b).unwrap();
        assert_eq!(r.snp.chip_id, vec![0; 64]);
        assert_eq!(r.platform_id(), None);
        assert_eq!(r.snp.reported_tcb.microcode, 115);
    }

    #[test]
    fn turin_tcb_layout() {
        let t = decode_tcb([1, 2, 3, 4, 0, 0, 0, 9], true);
        assert_eq!(
            t,
            SnpTcb {
                fmc: Some(1),
                bootloader: 2,
                tee: 3,
                snp: 4,
                microcode: 9
            }
        );
        assert_eq!(Generation::from_cpuid(0x1A, 0x02), Some(Generation::Turin));
        assert_eq!(Generation::from_cpuid(0x19, 0x11), Some(Generation::Genoa));
        assert_eq!(Generation::from_cpuid(0x17, 0x31), None);
        assert_eq!(
            Generation::from_name_prefix("Milan-B0"),
            Some(Generation::Milan)
        );
        assert_eq!(Generation::from_name_prefix("Bergamo"), None);
    }

    #[test]
    fn rejects_bad_lengths_versions_and_keys() {
        for len in [0, 1, 0x2A0, REPORT_LEN - 1, REPORT_LEN + 1] {
            let mut b = V2.to_vec();
            b.resize(len, 0);
            assert!(
                matches!(parse_report(&b), Err(VerifyError::Malformed { .. })),
                "{len}"
            );
            assert!(!looks_like_snp_report(&b));
        }
        for v in [0u32, 1, 4, 6, 0xFFFF_FFFF] {
            let mut b = V2.to_vec();
            b[..4].copy_from_slice(&v.to_le_bytes());
            let e = parse_report(&b).unwrap_err();
            assert!(e.to_string().contains("unsupported report version"), "{e}");
            assert!(!looks_like_snp_report(&b));
        }
        let mut b = V2.to_vec();
        b[OFF_KEY_INFO] = 7 << 2;
        assert!(parse_report(&b)
            .unwrap_err()
            .to_string()
            .contains("did not sign"));
        b[OFF_KEY_INFO] = 3 << 2;
        assert!(parse_report(&b)
            .unwrap_err()
            .to_string()
            .contains("reserved"));
        // Unknown CPU in a v3 report.
        let mut b = VLEK.to_vec();
        b[OFF_CPUID] = 0x17;
        assert!(parse_report(&b)
            .unwrap_err()
            .to_string()
            .contains("not a known SEV-SNP processor"));
        assert!(parse_report(b"xyz not hex").is_err());
        assert!(parse_report(b"abc").is_err());
    }

    #[test]
    fn other_tees_are_named() {
        let mut tdx = vec![0u8; 5000];
        tdx[..8].copy_from_slice(&[4, 0, 2, 0, 0x81, 0, 0, 0]);
        tdx[12..28].copy_from_slice(&[
            0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f,
            0x06, 0x07,
        ]);
        assert_eq!(
            parse_report(&tdx),
            Err(VerifyError::WrongTee {
                expected: Tee::Snp,
                found: "tdx".into()
            })
        );
        tdx[0] = 3;
        tdx[4] = 0;
        assert!(matches!(
            parse_report(&tdx),
            Err(VerifyError::WrongTee { found, .. }) if found == "sgx"
        ));
        assert!(matches!(
            parse_report(&[0x84, 0x44, 0xa1, 0x01]),
            Err(VerifyError::WrongTee { found, .. }) if found == "nitro"
        ));
    }
}
