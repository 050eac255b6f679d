//! Reading DCAP quotes without verifying them.

use dcap_qvl::quote::{AuthData, Quote, Report};
use serde::Serialize;
use veil_attest::{hexfmt, ReportData, Tee, VerifyError};

/// TEE type of an SGX quote header.
const TEE_TYPE_SGX: u32 = 0x0000_0000;
/// TEE type of a TDX quote header.
const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// Bytes in a quote header.
const HEADER_LEN: usize = 48;
/// Attestation key type ECDSA-256-with-P-256, the only one dcap-qvl verifies.
pub(crate) const ECDSA_P256: u16 = 2;
/// Certification data type of a QE report with its own certification data.
const QE_REPORT_CERTIFICATION_DATA: u16 = 6;
/// Intel's QE vendor id.
pub(crate) const INTEL_QE_VENDOR_ID: [u8; 16] = dcap_qvl::INTEL_QE_VENDOR_ID;

/// A DCAP quote as read, not verified: header, report body and how the
/// signature data is laid out. For `veil evidence show` and for fuzzing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedQuote {
    /// The TEE the header names.
    pub tee: Tee,
    /// Quote format version (3 for SGX; 4 or 5 for TDX).
    pub version: u16,
    /// Attestation key type (2 = ECDSA-256-with-P-256).
    pub attestation_key_type: u16,
    /// QE security version.
    pub qe_svn: u16,
    /// PCE security version.
    pub pce_svn: u16,
    /// QE vendor id (Intel's is `939a7233f79c4ca9940a0db3957f0607`).
    #[serde(with = "hexfmt")]
    pub qe_vendor_id: Vec<u8>,
    /// Header user data (for Intel's QE: the QE id, then 4 zero bytes).
    #[serde(with = "hexfmt")]
    pub user_data: Vec<u8>,
    /// The enclave or TD report the quote signs.
    pub body: ReportBody,
    /// Certification data type of the QE report (5 = PCK certificate chain).
    pub cert_data_type: u16,
    /// FMSPC from the PCK certificate in the quote, when it carries one
    /// (unverified: for finding the right collateral).
    #[serde(with = "hexfmt::option")]
    pub pck_fmspc: Option<Vec<u8>>,
    /// Which Intel PCK CA issued that certificate (`processor` or
    /// `platform`), which tells which PCK CRL the collateral needs.
    pub pck_ca: Option<String>,
    /// Bytes the quote's own length fields cover.
    pub quote_len: usize,
    /// Bytes after the quote (often zero padding from a fixed-size buffer).
    pub trailing_len: usize,
    /// True when some byte after the quote is not zero.
    pub trailing_nonzero: bool,
}

/// The report a quote signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReportBody {
    /// An SGX enclave report.
    Sgx(SgxReportBody),
    /// A TDX TD report (boxed: it is three times the size of an SGX one).
    Td(Box<TdReportBody>),
}

/// The SGX enclave report in a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SgxReportBody {
    /// CPUSVN.
    #[serde(with = "hexfmt")]
    pub cpu_svn: Vec<u8>,
    /// MISCSELECT.
    pub misc_select: u32,
    /// ATTRIBUTES: flags (8 bytes, bit 1 = DEBUG) then XFRM, little-endian.
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
    /// REPORTDATA.
    pub report_data: ReportData,
}

/// The TDX TD report in a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TdReportBody {
    /// "1.0" (quote v4 or v5 body type 2), "1.5" (v5 body type 3) or
    /// "1.5ex" (v5 body type 4).
    pub body: String,
    /// TEE_TCB_SVN.
    #[serde(with = "hexfmt")]
    pub tee_tcb_svn: Vec<u8>,
    /// MRSEAM.
    #[serde(with = "hexfmt")]
    pub mr_seam: Vec<u8>,
    /// MRSIGNER_SEAM.
    #[serde(with = "hexfmt")]
    pub mr_signer_seam: Vec<u8>,
    /// SEAM_ATTRIBUTES.
    #[serde(with = "hexfmt")]
    pub seam_attributes: Vec<u8>,
    /// TD_ATTRIBUTES (byte 0 = TUD flags, bit 0 = DEBUG).
    #[serde(with = "hexfmt")]
    pub td_attributes: Vec<u8>,
    /// XFAM.
    #[serde(with = "hexfmt")]
    pub xfam: Vec<u8>,
    /// MRTD.
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
    pub rt_mr: [RtMr; 4],
    /// REPORTDATA.
    pub report_data: ReportData,
    /// TEE_TCB_SVN_2 (TD 1.5).
    #[serde(with = "hexfmt::option")]
    pub tee_tcb_svn2: Option<Vec<u8>>,
    /// MRSERVICETD (TD 1.5).
    #[serde(with = "hexfmt::option")]
    pub mr_service_td: Option<Vec<u8>>,
}

/// One runtime measurement register (48 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RtMr(#[serde(with = "hexfmt")] pub Vec<u8>);

impl ParsedQuote {
    /// True when the TEE runs in a mode whose memory the host can read:
    /// SGX ATTRIBUTES.DEBUG (flags bit 1); for TDX any TUD bit of
    /// TD_ATTRIBUTES (bit 0 DEBUG; bits 1..7 also mark the TD untrusted).
    pub fn debug(&self) -> bool {
        self.body.debug()
    }

    /// The report data the attester bound into the quote.
    pub fn report_data(&self) -> ReportData {
        match &self.body {
            ReportBody::Sgx(r) => r.report_data,
            ReportBody::Td(r) => r.report_data,
        }
    }
}

impl ReportBody {
    /// See [`ParsedQuote::debug`].
    pub fn debug(&self) -> bool {
        match self {
            ReportBody::Sgx(r) => r.attributes.first().is_some_and(|f| f & 0x02 != 0),
            ReportBody::Td(r) => r.td_attributes.first().is_some_and(|tud| *tud != 0),
        }
    }
}

/// The quote header fields that decide what the bytes are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) version: u16,
    pub(crate) attestation_key_type: u16,
    pub(crate) tee_type: u32,
}

pub(crate) fn read_header(bytes: &[u8]) -> Option<Header> {
    let h = bytes.get(..HEADER_LEN)?;
    let u16_at = |i: usize| Some(u16::from_le_bytes(h.get(i..i + 2)?.try_into().ok()?));
    Some(Header {
        version: u16_at(0)?,
        attestation_key_type: u16_at(2)?,
        tee_type: u32::from_le_bytes(h.get(4..8)?.try_into().ok()?),
    })
}

impl Header {
    /// The TEE the header names, if it names one this crate knows.
    pub(crate) fn tee(&self) -> Option<Tee> {
        match self.tee_type {
            TEE_TYPE_SGX => Some(Tee::Sgx),
            TEE_TYPE_TDX => Some(Tee::Tdx),
            _ => None,
        }
    }
}

/// Says whether `bytes` look like an SGX or a TDX DCAP quote, from the
/// header alone (version 3..5, a known attestation key type and TEE type,
/// Intel's QE vendor id, and room for the report body). A `Some` is no
/// promise that the quote parses or verifies.
pub fn detect(bytes: &[u8]) -> Option<Tee> {
    let h = read_header(bytes)?;
    if !matches!(h.attestation_key_type, 2 | 3) {
        return None;
    }
    if bytes.get(12..28) != Some(&INTEL_QE_VENDOR_ID[..]) {
        return None;
    }
    let tee = h.tee()?;
    let min_body = match (h.version, tee) {
        (3, Tee::Sgx) | (4, Tee::Sgx) => 384,
        (4, Tee::Tdx) => 584,
        (5, _) => 6 + 384,
        _ => return None,
    };
    (bytes.len() >= HEADER_LEN + min_body + 4).then_some(tee)
}

/// What a quote of `tee` is called in errors.
pub(crate) fn what(tee: Tee) -> &'static str {
    match tee {
        Tee::Tdx => "TDX quote",
        _ => "SGX quote",
    }
}

/// Parses a DCAP quote (header, report body, signature data layout) without
/// verifying anything.
///
/// Fails with [`VerifyError::Malformed`] when the bytes are not a quote
/// dcap-qvl can decode: too short, an unknown version, TEE type or body
/// type, inconsistent lengths. Never panics; meant also as a fuzzing entry
/// point.
pub fn parse_quote(bytes: &[u8]) -> Result<ParsedQuote, VerifyError> {
    decode(bytes, true).map(|(_, parsed)| parsed)
}

/// Intel SGX Root CA certificate (DER), the trust anchor dcap-qvl has built
/// in (copied from dcap-qvl 0.7.1 `src/TrustedRootCA.der`; SHA-256
/// 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3).
pub(crate) const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("intel_sgx_root_ca.der");

/// Checks that the PCK certificate chain in the quote holds nothing that
/// verification does not cover.
///
/// dcap-qvl verifies the PCK leaf and the PCK CA against its built-in root,
/// so the copy of the root in the quote, line breaks and bytes outside the
/// PEM blocks are never authenticated: about a fifth of the quote's bytes
/// could change without changing the result. Veil requires instead that the
/// chain be exactly the canonical PEM (64-column base64, LF or CRLF line
/// ends, no headers) of the PCK leaf and PCK CA, optionally followed by
/// Intel's root byte for byte, optionally followed by NUL bytes. Quotes from
/// Intel's QE (all the published vectors: dcap-qvl, Occlum, Gramine,
/// go-tdx-guest) are in that form.
pub(crate) fn check_pck_chain(quote: &Quote, what: &'static str) -> Result<(), VerifyError> {
    let bad =
        |detail: String| VerifyError::malformed(what, format!("PCK certificate chain: {detail}"));
    // Quote v4/v5 wrap the QE report and the chain in certification data of
    // type 6, whose type dcap-qvl reads past without checking.
    if let AuthData::V4(a) = &quote.auth_data {
        if a.certification_data.cert_type != QE_REPORT_CERTIFICATION_DATA {
            return Err(bad(format!(
                "outer certification data type {} is not QE report certification data (6)",
                a.certification_data.cert_type
            )));
        }
    }
    let data = quote.raw_cert_chain().map_err(|e| {
        bad(format!(
            "certification data type {} is not a PCK certificate chain (5): {e}",
            quote.inner_cert_type()
        ))
    })?;
    let end = data.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let text = data.get(..end).unwrap_or_default();
    let blocks = pem::parse_many(text).map_err(|e| bad(format!("not PEM: {e}")))?;
    if let Some(b) = blocks.iter().find(|b| b.tag() != "CERTIFICATE") {
        return Err(bad(format!("holds a {:?} PEM block", b.tag())));
    }
    if blocks.iter().any(|b| b.headers().iter().next().is_some()) {
        return Err(bad("a PEM block has headers".to_owned()));
    }
    let canonical = |ending: pem::LineEnding| -> String {
        let config = pem::EncodeConfig::new().set_line_ending(ending);
        blocks
            .iter()
            .map(|b| pem::encode_config(b, config))
            .collect()
    };
    if text != canonical(pem::LineEnding::LF).as_bytes()
        && text != canonical(pem::LineEnding::CRLF).as_bytes()
    {
        return Err(bad(
            "not in canonical PEM form (64-column base64 lines, nothing between blocks)".to_owned(),
        ));
    }
    match blocks.as_slice() {
        [_leaf, _ca] => Ok(()),
        [_leaf, _ca, root] if root.contents() == INTEL_SGX_ROOT_CA_DER => Ok(()),
        [_leaf, _ca, _] => Err(bad(
            "its third certificate is not the Intel SGX Root CA".to_owned(),
        )),
        other => Err(bad(format!(
            "{} certificates; expected the PCK leaf, the PCK CA and optionally the Intel SGX Root CA",
            other.len()
        ))),
    }
}

/// The report body in Veil's form.
pub(crate) fn body_of(report: &Report, what: &'static str) -> Result<ReportBody, VerifyError> {
    if let Some(r) = report.as_sgx() {
        return Ok(ReportBody::Sgx(SgxReportBody {
            cpu_svn: r.cpu_svn.to_vec(),
            misc_select: r.misc_select,
            attributes: r.attributes.to_vec(),
            mr_enclave: r.mr_enclave.to_vec(),
            mr_signer: r.mr_signer.to_vec(),
            isv_prod_id: r.isv_prod_id,
            isv_svn: r.isv_svn,
            report_data: ReportData(r.report_data),
        }));
    }
    let Some(r) = report.as_td10() else {
        return Err(VerifyError::malformed(what, "unknown report body"));
    };
    let td15 = report.as_td15();
    let body = if report.as_td15_ex().is_some() {
        "1.5ex"
    } else if td15.is_some() {
        "1.5"
    } else {
        "1.0"
    };
    Ok(ReportBody::Td(Box::new(TdReportBody {
        body: body.to_owned(),
        tee_tcb_svn: r.tee_tcb_svn.to_vec(),
        mr_seam: r.mr_seam.to_vec(),
        mr_signer_seam: r.mr_signer_seam.to_vec(),
        seam_attributes: r.seam_attributes.to_vec(),
        td_attributes: r.td_attributes.to_vec(),
        xfam: r.xfam.to_vec(),
        mr_td: r.mr_td.to_vec(),
        mr_config_id: r.mr_config_id.to_vec(),
        mr_owner: r.mr_owner.to_vec(),
        mr_owner_config: r.mr_owner_config.to_vec(),
        rt_mr: [
            RtMr(r.rt_mr0.to_vec()),
            RtMr(r.rt_mr1.to_vec()),
            RtMr(r.rt_mr2.to_vec()),
            RtMr(r.rt_mr3.to_vec()),
        ],
        report_data: ReportData(r.report_data),
        tee_tcb_svn2: td15.map(|t| t.tee_tcb_svn2.to_vec()),
        mr_service_td: td15.map(|t| t.mr_service_td.to_vec()),
    })))
}

/// Decodes with dcap-qvl and builds the parsed view; `with_pck` also reads
/// the FMSPC and CA of the PCK certificate (two X.509 parses).
pub(crate) fn decode(bytes: &[u8], with_pck: bool) -> Result<(Quote, ParsedQuote), VerifyError> {
    let header = read_header(bytes).ok_or_else(|| {
        VerifyError::malformed(
            "DCAP quote",
            format!("{} bytes is too short for a quote header (48)", bytes.len()),
        )
    })?;
    let tee = header.tee().ok_or_else(|| {
        VerifyError::malformed(
            "DCAP quote",
            format!(
                "TEE type {:#010x} is neither SGX (0) nor TDX (0x81)",
                header.tee_type
            ),
        )
    })?;
    let what = what(tee);
    let quote = Quote::parse(bytes)
        .map_err(|e| VerifyError::malformed(what, format!("cannot decode: {e:#}")))?;
    // dcap-qvl ignores bytes after the quote; find where it ends: the signed
    // header and body, then a 4-byte length and the signature data.
    let signed_len = quote.signed_length();
    let quote_len = bytes
        .get(signed_len..signed_len.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .and_then(|auth_len| usize::try_from(auth_len).ok())
        .and_then(|auth_len| signed_len.checked_add(4)?.checked_add(auth_len))
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| VerifyError::malformed(what, "signature data length out of range"))?;
    let trailing = bytes.get(quote_len..).unwrap_or_default();
    let body = body_of(&quote.report, what)?;
    let body_tee = match body {
        ReportBody::Sgx(_) => Tee::Sgx,
        ReportBody::Td(_) => Tee::Tdx,
    };
    if body_tee != tee {
        return Err(VerifyError::malformed(
            what,
            format!("header says {tee} but the body is a {body_tee} report"),
        ));
    }
    let (pck_fmspc, pck_ca) = if with_pck {
        (
            dcap_qvl::intel::quote_fmspc(&quote)
                .ok()
                .map(|f| f.to_vec()),
            dcap_qvl::intel::quote_ca(&quote)
                .ok()
                .map(|ca| ca.as_id_str().to_owned()),
        )
    } else {
        (None, None)
    };
    let parsed = ParsedQuote {
        tee,
        version: quote.header.version,
        attestation_key_type: quote.header.attestation_key_type,
        qe_svn: quote.header.qe_svn,
        pce_svn: quote.header.pce_svn,
        qe_vendor_id: quote.header.qe_vendor_id.to_vec(),
        user_data: quote.header.user_data.to_vec(),
        body,
        cert_data_type: quote.inner_cert_type(),
        pck_fmspc,
        pck_ca,
        quote_len,
        trailing_len: trailing.len(),
        trailing_nonzero: trailing.iter().any(|b| *b != 0),
    };
    Ok((quote, parsed))
}
