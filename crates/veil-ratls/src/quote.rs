//! Minimal recognition of Intel SGX / TDX quotes: enough to say which TEE
//! produced them and where their report data is. Quote signatures are
//! checked by the DCAP verifier, not here.

use veil_attest::{ReportData, Tee};

use crate::RaTlsError;

/// Length of the quote header (all versions).
const HEADER_LEN: usize = 48;
/// Offset of REPORT_DATA inside an SGX enclave report body.
const SGX_REPORT_DATA_OFFSET: usize = 320;
/// Offset of REPORT_DATA inside a TDX TD report body (1.0 and 1.5).
const TDX_REPORT_DATA_OFFSET: usize = 520;
/// Header `tee_type` of SGX.
const TEE_TYPE_SGX: u32 = 0x0000_0000;
/// Header `tee_type` of TDX.
const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// Quote v5 body descriptor: type (u16) and size (u32).
const V5_BODY_DESCRIPTOR_LEN: usize = 6;

/// What kind of quote the evidence is, from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvidenceKind {
    /// An SGX ECDSA quote (v3, or v4/v5 with `tee_type` 0).
    SgxQuote {
        /// Quote format version.
        version: u16,
    },
    /// A TDX ECDSA quote (v4 or v5 with `tee_type` 0x81).
    TdxQuote {
        /// Quote format version.
        version: u16,
    },
}

impl EvidenceKind {
    /// The TEE that produced the quote.
    pub fn tee(self) -> Tee {
        match self {
            EvidenceKind::SgxQuote { .. } => Tee::Sgx,
            EvidenceKind::TdxQuote { .. } => Tee::Tdx,
        }
    }

    /// The quote format version.
    pub fn version(self) -> u16 {
        match self {
            EvidenceKind::SgxQuote { version } | EvidenceKind::TdxQuote { version } => version,
        }
    }
}

/// Which quote `quote` is and the 64 bytes of report data it carries.
///
/// Recognised headers: version 3 with `tee_type` (bytes 4..8) zero (SGX);
/// version 4 with `tee_type` 0 (SGX, report body at 48) or 0x81 (TDX, TD
/// report body at 48); version 5 with a body descriptor at 48 (type 1 SGX,
/// 2 TD 1.0, 3 TD 1.5) and the body at 54. REPORT_DATA is at offset 320 of
/// an SGX report body and 520 of a TD report body, so at quote offset 368
/// (SGX v3/v4), 568 (TDX v4), 374 (SGX v5) or 574 (TDX v5).
pub fn inspect_quote(quote: &[u8]) -> Result<(EvidenceKind, ReportData), RaTlsError> {
    let version = read_u16(quote, 0)?;
    let tee_type = read_u32(quote, 4)?;
    let (kind, body) = match (version, tee_type) {
        (3, TEE_TYPE_SGX) => (EvidenceKind::SgxQuote { version }, HEADER_LEN),
        (4, TEE_TYPE_SGX) => (EvidenceKind::SgxQuote { version }, HEADER_LEN),
        (4, TEE_TYPE_TDX) => (EvidenceKind::TdxQuote { version }, HEADER_LEN),
        (5, TEE_TYPE_SGX | TEE_TYPE_TDX) => {
            let body_type = read_u16(quote, HEADER_LEN)?;
            let kind = match (tee_type, body_type) {
                (TEE_TYPE_SGX, 1) => EvidenceKind::SgxQuote { version },
                (TEE_TYPE_TDX, 2 | 3) => EvidenceKind::TdxQuote { version },
                _ => {
                    return Err(RaTlsError::MalformedEvidence(format!(
                        "quote v5 with tee_type {tee_type:#x} has unknown body type {body_type}"
                    )))
                }
            };
            (kind, HEADER_LEN + V5_BODY_DESCRIPTOR_LEN)
        }
        _ => {
            return Err(RaTlsError::MalformedEvidence(format!(
                "not an SGX or TDX quote: header version {version}, tee_type {tee_type:#x}"
            )))
        }
    };
    let offset = body
        + match kind {
            EvidenceKind::SgxQuote { .. } => SGX_REPORT_DATA_OFFSET,
            EvidenceKind::TdxQuote { .. } => TDX_REPORT_DATA_OFFSET,
        };
    let report_data: [u8; 64] = quote
        .get(offset..offset + 64)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| {
            RaTlsError::MalformedEvidence(format!(
                "{} is {} bytes, too short for its report data at offset {offset}",
                describe(kind),
                quote.len()
            ))
        })?;
    Ok((kind, ReportData(report_data)))
}

fn describe(kind: EvidenceKind) -> String {
    match kind {
        EvidenceKind::SgxQuote { version } => format!("SGX quote v{version}"),
        EvidenceKind::TdxQuote { version } => format!("TDX quote v{version}"),
    }
}

fn read_u16(b: &[u8], at: usize) -> Result<u16, RaTlsError> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or_else(|| too_short(b.len()))
}

fn read_u32(b: &[u8], at: usize) -> Result<u32, RaTlsError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| too_short(b.len()))
}

fn too_short(len: usize) -> RaTlsError {
    RaTlsError::MalformedEvidence(format!("{len} bytes is too short for a quote header"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(version: u16, tee_type: u32, len: usize) -> Vec<u8> {
        let mut q = vec![0u8; len];
        q[0..2].copy_from_slice(&version.to_le_bytes());
        q[4..8].copy_from_slice(&tee_type.to_le_bytes());
        q
    }

    #[test]
    fn offsets_per_version() {
        let mut q = quote(3, 0, 436);
        q[368] = 0xaa;
        let (k, rd) = inspect_quote(&q).unwrap();
        assert_eq!(k, EvidenceKind::SgxQuote { version: 3 });
        assert_eq!(k.tee(), Tee::Sgx);
        assert_eq!(rd.0[0], 0xaa);

        let mut q = quote(4, 0x81, 700);
        q[568] = 0xbb;
        let (k, rd) = inspect_quote(&q).unwrap();
        assert_eq!(k, EvidenceKind::TdxQuote { version: 4 });
        assert_eq!(k.tee(), Tee::Tdx);
        assert_eq!(rd.0[0], 0xbb);

        let mut q = quote(5, 0x81, 800);
        q[48] = 3;
        q[574] = 0xcc;
        let (k, rd) = inspect_quote(&q).unwrap();
        assert_eq!(k.version(), 5);
        assert_eq!(rd.0[0], 0xcc);

        let mut q = quote(5, 0, 800);
        q[48] = 1;
        q[374] = 0xdd;
        assert_eq!(inspect_quote(&q).unwrap().1 .0[0], 0xdd);
    }

    #[test]
    fn unknown_or_short_headers_are_refused() {
        assert!(inspect_quote(&[]).is_err());
        assert!(inspect_quote(&quote(3, 0, 431)).is_err());
        assert!(inspect_quote(&quote(3, 0x81, 600)).is_err());
        assert!(inspect_quote(&quote(4, 0x81, 631)).is_err());
        assert!(inspect_quote(&quote(2, 0, 600)).is_err());
        assert!(inspect_quote(&quote(5, 0x81, 600)).is_err()); // body type 0
    }
}
