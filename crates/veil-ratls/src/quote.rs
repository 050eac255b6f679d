//! Minimal recognition of Intel SGX / TDX quotes: enough to say which TEE
//! produced them and where their report data is. Quote signatures are
//! checked by the DCAP verifier, not here.

use ciborium::Value;
use veil_attest::{ReportData, Tee};

use crate::extension::{
    INTEL_TEE_QUOTE_TAG, VEIL_NITRO_DOCUMENT_TAG, VEIL_SIM_EVIDENCE_TAG, VEIL_SNP_REPORT_TAG,
};
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

/// What kind of evidence it is, from its header alone.
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
    /// An AMD SEV-SNP attestation report (Veil tag 60010).
    SnpReport {
        /// Report format version (2, 3 or 5).
        version: u16,
    },
    /// An AWS Nitro attestation document, COSE_Sign1 (Veil tag 60011).
    NitroDocument,
    /// Veil simulated-TEE evidence (Veil tag 60012).
    SimEvidence {
        /// Sim evidence format version.
        version: u16,
    },
}

impl EvidenceKind {
    /// The TEE that produced the evidence.
    pub fn tee(self) -> Tee {
        match self {
            EvidenceKind::SgxQuote { .. } => Tee::Sgx,
            EvidenceKind::TdxQuote { .. } => Tee::Tdx,
            EvidenceKind::SnpReport { .. } => Tee::Snp,
            EvidenceKind::NitroDocument => Tee::Nitro,
            EvidenceKind::SimEvidence { .. } => Tee::Sim,
        }
    }

    /// The evidence format version (`None` for Nitro documents, which have
    /// none).
    pub fn version(self) -> Option<u16> {
        match self {
            EvidenceKind::SgxQuote { version }
            | EvidenceKind::TdxQuote { version }
            | EvidenceKind::SnpReport { version }
            | EvidenceKind::SimEvidence { version } => Some(version),
            EvidenceKind::NitroDocument => None,
        }
    }
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvidenceKind::SgxQuote { version } => write!(f, "SGX quote v{version}"),
            EvidenceKind::TdxQuote { version } => write!(f, "TDX quote v{version}"),
            EvidenceKind::SnpReport { version } => write!(f, "SEV-SNP report v{version}"),
            EvidenceKind::NitroDocument => f.write_str("AWS Nitro attestation document"),
            EvidenceKind::SimEvidence { version } => write!(f, "Veil sim evidence v{version}"),
        }
    }
}

/// Which evidence `evidence`, carried under CBOR `tag`, is and the 64 bytes
/// of report data it carries (not verified).
///
/// * [`INTEL_TEE_QUOTE_TAG`]: an SGX or TDX quote ([`inspect_quote`]).
/// * [`VEIL_SNP_REPORT_TAG`]: a binary SEV-SNP report, 1184 bytes, version
///   2, 3 or 5 (u32 LE at 0); REPORT_DATA at offset 0x50.
/// * [`VEIL_NITRO_DOCUMENT_TAG`]: a COSE_Sign1 (tag 18 or untagged) whose
///   payload is a CBOR map; the report data is the first of `user_data`,
///   `nonce` present and at most 64 bytes, zero-padded, else zeros (the
///   Nitro verifier's rule, attestation spec 3.4).
/// * [`VEIL_SIM_EVIDENCE_TAG`]: sim evidence version 1 (232 bytes, magic
///   `VEILSIM`); report data at offset 96.
///
/// Other tags fail with [`RaTlsError::UnsupportedTag`].
pub fn inspect_evidence(
    tag: u64,
    evidence: &[u8],
) -> Result<(EvidenceKind, ReportData), RaTlsError> {
    match tag {
        INTEL_TEE_QUOTE_TAG => inspect_quote(evidence),
        VEIL_SNP_REPORT_TAG => inspect_snp(evidence),
        VEIL_NITRO_DOCUMENT_TAG => inspect_nitro(evidence),
        VEIL_SIM_EVIDENCE_TAG => inspect_sim(evidence),
        _ => Err(RaTlsError::UnsupportedTag { tag }),
    }
}

/// Length of an SEV-SNP attestation report.
const SNP_REPORT_LEN: usize = 0x4A0;
/// Offset of REPORT_DATA in an SEV-SNP report.
const SNP_REPORT_DATA_OFFSET: usize = 0x50;
/// SEV-SNP report versions read.
const SNP_VERSIONS: [u32; 3] = [2, 3, 5];

fn inspect_snp(report: &[u8]) -> Result<(EvidenceKind, ReportData), RaTlsError> {
    if report.len() != SNP_REPORT_LEN {
        return Err(RaTlsError::MalformedEvidence(format!(
            "SEV-SNP report is {} bytes; expected {SNP_REPORT_LEN} (binary)",
            report.len()
        )));
    }
    let version = read_u32(report, 0)?;
    let version16 = u16::try_from(version)
        .ok()
        .filter(|_| SNP_VERSIONS.contains(&version));
    let Some(version) = version16 else {
        return Err(RaTlsError::MalformedEvidence(format!(
            "SEV-SNP report version {version}; supported: 2, 3, 5"
        )));
    };
    Ok((
        EvidenceKind::SnpReport { version },
        report_data_at(report, SNP_REPORT_DATA_OFFSET, "SEV-SNP report")?,
    ))
}

/// Sim evidence: magic, version, length and report data offset
/// (attestation spec 3.5).
const SIM_MAGIC: &[u8; 7] = b"VEILSIM";
const SIM_VERSION: u8 = 1;
const SIM_EVIDENCE_LEN: usize = 232;
const SIM_REPORT_DATA_OFFSET: usize = 96;

fn inspect_sim(evidence: &[u8]) -> Result<(EvidenceKind, ReportData), RaTlsError> {
    if !evidence.starts_with(SIM_MAGIC) {
        return Err(RaTlsError::MalformedEvidence(
            "sim evidence does not start with \"VEILSIM\"".into(),
        ));
    }
    let version = evidence.get(7).copied().unwrap_or_default();
    if version != SIM_VERSION || evidence.len() != SIM_EVIDENCE_LEN {
        return Err(RaTlsError::MalformedEvidence(format!(
            "sim evidence version {version}, {} bytes; expected version {SIM_VERSION}, {SIM_EVIDENCE_LEN} bytes",
            evidence.len()
        )));
    }
    Ok((
        EvidenceKind::SimEvidence {
            version: u16::from(version),
        },
        report_data_at(evidence, SIM_REPORT_DATA_OFFSET, "sim evidence")?,
    ))
}

fn inspect_nitro(document: &[u8]) -> Result<(EvidenceKind, ReportData), RaTlsError> {
    let bad = |why: String| RaTlsError::MalformedEvidence(format!("Nitro document: {why}"));
    let value = crate::extension::read_one(document).map_err(bad)?;
    let value = match value {
        Value::Tag(18, inner) => *inner,
        other => other,
    };
    let Value::Array(items) = value else {
        return Err(bad("not a COSE_Sign1 array".into()));
    };
    let [_, _, Value::Bytes(payload), _] = <[Value; 4]>::try_from(items)
        .map_err(|items| bad(format!("COSE_Sign1 has {} items; expected 4", items.len())))?
    else {
        return Err(bad("the COSE_Sign1 payload is not a byte string".into()));
    };
    let Value::Map(entries) = crate::extension::read_one(&payload).map_err(bad)? else {
        return Err(bad("the payload is not a CBOR map".into()));
    };
    let field = |name: &str| -> Result<Option<Vec<u8>>, RaTlsError> {
        match entries.iter().find(|(k, _)| k.as_text() == Some(name)) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::Bytes(b))) => Ok(Some(b.clone())),
            Some(_) => Err(bad(format!("{name} is not a byte string"))),
        }
    };
    let report_data = [field("user_data")?, field("nonce")?]
        .into_iter()
        .flatten()
        .find_map(|v| ReportData::from_prefix(&v))
        .unwrap_or(ReportData::ZERO);
    Ok((EvidenceKind::NitroDocument, report_data))
}

fn report_data_at(b: &[u8], offset: usize, what: &str) -> Result<ReportData, RaTlsError> {
    b.get(offset..offset + 64)
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
        .map(ReportData)
        .ok_or_else(|| {
            RaTlsError::MalformedEvidence(format!(
                "{what} is {} bytes, too short for its report data at offset {offset}",
                b.len()
            ))
        })
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
        + if matches!(kind, EvidenceKind::TdxQuote { .. }) {
            TDX_REPORT_DATA_OFFSET
        } else {
            SGX_REPORT_DATA_OFFSET
        };
    let report_data: [u8; 64] = quote
        .get(offset..offset + 64)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| {
            RaTlsError::MalformedEvidence(format!(
                "{} is {} bytes, too short for its report data at offset {offset}",
                kind,
                quote.len()
            ))
        })?;
    Ok((kind, ReportData(report_data)))
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
        assert_eq!(k.version(), Some(5));
        assert_eq!(rd.0[0], 0xcc);

        let mut q = quote(5, 0, 800);
        q[48] = 1;
        q[374] = 0xdd;
        assert_eq!(inspect_quote(&q).unwrap().1 .0[0], 0xdd);
    }

    #[test]
    fn veil_tagged_evidence_report_data() {
        // SEV-SNP: 1184 bytes, version at 0, report data at 0x50.
        let mut r = vec![0u8; 0x4A0];
        r[0] = 3;
        r[0x50] = 0xee;
        r[0x8f] = 0xef;
        let (k, rd) = inspect_evidence(VEIL_SNP_REPORT_TAG, &r).unwrap();
        assert_eq!(k, EvidenceKind::SnpReport { version: 3 });
        assert_eq!(k.tee(), Tee::Snp);
        assert_eq!((rd.0[0], rd.0[63]), (0xee, 0xef));
        r[0] = 4;
        assert!(inspect_evidence(VEIL_SNP_REPORT_TAG, &r).is_err());
        r[0] = 2;
        assert!(inspect_evidence(VEIL_SNP_REPORT_TAG, &r[..0x49f]).is_err());

        // Sim: "VEILSIM", version 1, 232 bytes, report data at 96.
        let mut e = vec![0u8; 232];
        e[..7].copy_from_slice(b"VEILSIM");
        e[7] = 1;
        e[96] = 0x5a;
        let (k, rd) = inspect_evidence(VEIL_SIM_EVIDENCE_TAG, &e).unwrap();
        assert_eq!(k, EvidenceKind::SimEvidence { version: 1 });
        assert_eq!((k.tee(), rd.0[0]), (Tee::Sim, 0x5a));
        assert!(inspect_evidence(VEIL_SIM_EVIDENCE_TAG, &e[..231]).is_err());
        e[7] = 2;
        assert!(inspect_evidence(VEIL_SIM_EVIDENCE_TAG, &e).is_err());
        // Evidence under the wrong tag is refused.
        assert!(inspect_evidence(INTEL_TEE_QUOTE_TAG, &e).is_err());
        assert!(inspect_evidence(VEIL_SNP_REPORT_TAG, &e).is_err());
        assert!(matches!(
            inspect_evidence(60001, &e),
            Err(RaTlsError::UnsupportedTag { tag: 60001 })
        ));
    }

    fn nitro_doc(tagged: bool, payload: Vec<(Value, Value)>) -> Vec<u8> {
        let mut p = Vec::new();
        ciborium::ser::into_writer(&Value::Map(payload), &mut p).unwrap();
        let sign1 = Value::Array(vec![
            Value::Bytes(vec![0xa1, 0x01, 0x38, 0x22]),
            Value::Map(vec![]),
            Value::Bytes(p),
            Value::Bytes(vec![0; 96]),
        ]);
        let v = if tagged {
            Value::Tag(18, Box::new(sign1))
        } else {
            sign1
        };
        let mut out = Vec::new();
        ciborium::ser::into_writer(&v, &mut out).unwrap();
        out
    }

    #[test]
    fn nitro_report_data_is_user_data_then_nonce() {
        let t = |k: &str| Value::Text(k.into());
        for tagged in [true, false] {
            let doc = nitro_doc(
                tagged,
                vec![
                    (t("module_id"), t("i-1")),
                    (t("user_data"), Value::Bytes(vec![1; 64])),
                    (t("nonce"), Value::Bytes(vec![2; 8])),
                ],
            );
            let (k, rd) = inspect_evidence(VEIL_NITRO_DOCUMENT_TAG, &doc).unwrap();
            assert_eq!(
                (k, k.tee(), k.version()),
                (EvidenceKind::NitroDocument, Tee::Nitro, None)
            );
            assert_eq!(rd, ReportData([1; 64]));
        }
        let doc = nitro_doc(
            true,
            vec![
                (t("user_data"), Value::Bytes(vec![1; 65])),
                (t("nonce"), Value::Bytes(vec![2; 8])),
            ],
        );
        let (_, rd) = inspect_evidence(VEIL_NITRO_DOCUMENT_TAG, &doc).unwrap();
        assert_eq!(rd, ReportData::from_prefix(&[2; 8]).unwrap());
        let doc = nitro_doc(true, vec![(t("user_data"), Value::Null)]);
        let (_, rd) = inspect_evidence(VEIL_NITRO_DOCUMENT_TAG, &doc).unwrap();
        assert_eq!(rd, ReportData::ZERO);
        let doc = nitro_doc(true, vec![(t("nonce"), t("text"))]);
        assert!(inspect_evidence(VEIL_NITRO_DOCUMENT_TAG, &doc).is_err());
        for junk in [
            &[][..],
            &[0x84, 0x40, 0xa0, 0x40][..],
            &[0x80][..],
            &[0xd2, 0x80][..],
        ] {
            assert!(inspect_evidence(VEIL_NITRO_DOCUMENT_TAG, junk).is_err());
        }
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
