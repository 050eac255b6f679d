//! The X.509 side: find the evidence extension, parse it, check the binding.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};
use veil_attest::{ReportData, Tee};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use crate::extension::{parse_extension, ClaimValue, PubkeyHash, NONCE_CLAIM};
use crate::quote::{inspect_evidence, inspect_quote, EvidenceKind};
use crate::RaTlsError;

/// OID of the TCG DICE tagged-evidence extension (`tcg-dice-tagged-evidence`),
/// used by interoperable RA-TLS.
pub const TCG_DICE_TAGGED_EVIDENCE_OID: &str = "2.23.133.5.4.9";

/// DER contents of 2.23.133.5.4.9.
const OID_TAGGED_EVIDENCE: &[u8] = &[0x67, 0x81, 0x05, 0x05, 0x04, 0x09];

/// Legacy extensions that hold a raw SGX/TDX quote, and how they are named.
const LEGACY_QUOTE_OIDS: &[(&[u8], &str)] = &[
    // 1.2.840.113741.1337.6: Gramine and rats-tls ECDSA quote.
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x8a, 0x39, 0x06],
        "1.2.840.113741.1337.6",
    ),
    // Gramine writes the OID above with its DER tag and length inside the
    // OID contents, which decodes as 0.6.9.42.840.113741.1337.6.
    (
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x8a, 0x39, 0x06,
        ],
        "1.2.840.113741.1337.6 (Gramine encoding)",
    ),
    // 1.2.840.113741.1.13.1: Intel SGX SDK attested TLS puts the quote there.
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01],
        "1.2.840.113741.1.13.1",
    ),
];

/// Where the evidence came from in the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvidenceFormat {
    /// Interoperable RA-TLS: the TCG DICE tagged-evidence extension
    /// (2.23.133.5.4.9) with this CBOR tag over `[evidence, claims]`.
    TaggedEvidence {
        /// The CBOR tag.
        tag: u64,
    },
    /// A legacy extension holding the raw quote, whose report data binds
    /// SHA-256 of the certificate's SubjectPublicKeyInfo directly.
    LegacyQuote {
        /// The extension OID.
        oid: &'static str,
    },
}

/// The outcome of one binding check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingCheck {
    /// The values are equal.
    Match,
    /// The values differ.
    Mismatch {
        /// The value the certificate requires (computed from it).
        expected: Vec<u8>,
        /// The value the evidence or claims carry.
        found: Vec<u8>,
    },
    /// The check could not be made (a claim is missing, an algorithm is
    /// unsupported); it does not hold.
    Unavailable(String),
    /// The format has no such binding (legacy certificates have no claims).
    NotApplicable,
}

impl BindingCheck {
    fn compare(expected: Vec<u8>, found: &[u8]) -> Self {
        if expected == found {
            BindingCheck::Match
        } else {
            BindingCheck::Mismatch {
                expected,
                found: found.to_vec(),
            }
        }
    }
}

/// How the evidence is bound to the certificate's key.
///
/// For interoperable RA-TLS both checks must match: the quote's report
/// data starts with SHA-256 of the claims buffer, and the claims'
/// `pubkey-hash` is the hash of the certificate's SubjectPublicKeyInfo DER.
/// For a legacy certificate the report data starts with SHA-256 of the
/// SubjectPublicKeyInfo DER, and `pubkey_hash` is
/// [`BindingCheck::NotApplicable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Interop: `report_data[0..32]` = SHA-256(claims buffer). Legacy:
    /// `report_data[0..32]` = SHA-256(SPKI DER).
    pub report_data: BindingCheck,
    /// Interop: claims `pubkey-hash` = hash(SPKI DER).
    pub pubkey_hash: BindingCheck,
}

impl Binding {
    /// True when the evidence is bound to the certificate key.
    pub fn holds(&self) -> bool {
        self.report_data == BindingCheck::Match
            && matches!(
                self.pubkey_hash,
                BindingCheck::Match | BindingCheck::NotApplicable
            )
    }
}

/// A parsed RA-TLS certificate: its key, its evidence and how they are bound.
///
/// Parsing checks the format and computes the [`Binding`]; it does not
/// verify the evidence (hand [`RaTlsCert::evidence`] to the verifier of
/// [`RaTlsCert::tee`] and compare its report data with
/// [`RaTlsCert::report_data`]) nor the certificate's own signature (the TLS
/// handshake proves possession of the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaTlsCert {
    spki_der: Vec<u8>,
    format: EvidenceFormat,
    evidence: Vec<u8>,
    evidence_kind: EvidenceKind,
    claims_buffer: Option<Vec<u8>>,
    claims: BTreeMap<String, ClaimValue>,
    pubkey_hash: Option<PubkeyHash>,
    report_data: ReportData,
    binding: Binding,
}

impl RaTlsCert {
    /// The certificate's SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Which extension carried the evidence.
    pub fn format(&self) -> &EvidenceFormat {
        &self.format
    }

    /// The evidence bytes (an SGX or TDX quote; with a Veil tag, an SEV-SNP
    /// report, a Nitro document or sim evidence).
    pub fn evidence(&self) -> &[u8] {
        &self.evidence
    }

    /// What the evidence is, from its header.
    pub fn evidence_kind(&self) -> EvidenceKind {
        self.evidence_kind
    }

    /// The TEE that produced the evidence.
    pub fn tee(&self) -> Tee {
        self.evidence_kind.tee()
    }

    /// The claims buffer exactly as carried (absent for legacy certificates).
    pub fn claims_buffer(&self) -> Option<&[u8]> {
        self.claims_buffer.as_deref()
    }

    /// The claims by name (empty for legacy certificates).
    pub fn claims(&self) -> &BTreeMap<String, ClaimValue> {
        &self.claims
    }

    /// The decoded `pubkey-hash` claim.
    pub fn pubkey_hash(&self) -> Option<&PubkeyHash> {
        self.pubkey_hash.as_ref()
    }

    /// The `nonce` claim, when present as a byte string.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.claims.get(NONCE_CLAIM).and_then(ClaimValue::as_bytes)
    }

    /// The report data inside the quote (not yet verified).
    pub fn report_data(&self) -> ReportData {
        self.report_data
    }

    /// The binding checks, each with expected and found values.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// `Ok` when the evidence is bound to the certificate key; otherwise the
    /// first failing check, with expected and found values in hex.
    pub fn check_binding(&self) -> Result<(), RaTlsError> {
        let (rd_what, pk_what) = match self.format {
            EvidenceFormat::TaggedEvidence { .. } => (
                "report data[0..32] = SHA-256(claims buffer)",
                "claims pubkey-hash = hash(certificate SPKI)",
            ),
            EvidenceFormat::LegacyQuote { .. } => (
                "report data[0..32] = SHA-256(certificate SPKI)",
                "claims pubkey-hash = hash(certificate SPKI)",
            ),
        };
        for (what, check, optional) in [
            (rd_what, &self.binding.report_data, false),
            (pk_what, &self.binding.pubkey_hash, true),
        ] {
            match check {
                BindingCheck::Match => {}
                BindingCheck::NotApplicable if optional => {}
                BindingCheck::NotApplicable => {
                    return Err(RaTlsError::BindingUnavailable {
                        what,
                        reason: "the format has no such binding".into(),
                    })
                }
                BindingCheck::Mismatch { expected, found } => {
                    return Err(RaTlsError::BindingMismatch {
                        what,
                        expected: hex::encode(expected),
                        found: hex::encode(found),
                    })
                }
                BindingCheck::Unavailable(reason) => {
                    return Err(RaTlsError::BindingUnavailable {
                        what,
                        reason: reason.clone(),
                    })
                }
            }
        }
        Ok(())
    }
}

/// Parses a DER X.509 RA-TLS certificate.
///
/// The interoperable extension (OID 2.23.133.5.4.9) is used when present,
/// even if a legacy one is there too; otherwise a legacy raw-quote
/// extension (1.2.840.113741.1337.6, Gramine's mis-encoding of it, or
/// 1.2.840.113741.1.13.1 holding a quote) is used. Errors: not a
/// certificate, [`RaTlsError::NotRaTls`], a duplicated evidence extension,
/// malformed CBOR or claims, an unsupported tag, evidence that is not what
/// its tag says (see [`crate::inspect_evidence`]). A binding that does not hold is **not** an error here: see
/// [`RaTlsCert::binding`] and [`RaTlsCert::check_binding`].
pub fn parse_ratls_certificate(der: &[u8]) -> Result<RaTlsCert, RaTlsError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| RaTlsError::Certificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RaTlsError::Certificate(format!(
            "{} bytes of trailing data after the certificate",
            rest.len()
        )));
    }
    let spki_der = cert.tbs_certificate.subject_pki.raw.to_vec();
    let spki_sha256 = Sha256::digest(&spki_der).to_vec();

    let interop = unique_extension(&cert, OID_TAGGED_EVIDENCE, TCG_DICE_TAGGED_EVIDENCE_OID)?;
    if let Some(value) = interop {
        let tagged = parse_extension(value)?;
        let (evidence_kind, report_data) = inspect_evidence(tagged.tag, &tagged.evidence)?;
        let claims_sha256 = Sha256::digest(&tagged.claims_buffer).to_vec();
        let binding = Binding {
            report_data: BindingCheck::compare(
                claims_sha256,
                report_data.0.get(..32).unwrap_or_default(),
            ),
            pubkey_hash: match &tagged.pubkey_hash {
                None => BindingCheck::Unavailable("the claims have no pubkey-hash".into()),
                Some(ph) => match ph.alg.digest(&spki_der) {
                    Some(expected) => BindingCheck::compare(expected, &ph.value),
                    None => BindingCheck::Unavailable(format!(
                        "pubkey-hash uses unsupported hash algorithm id {}",
                        ph.alg.id()
                    )),
                },
            },
        };
        return Ok(RaTlsCert {
            spki_der,
            format: EvidenceFormat::TaggedEvidence { tag: tagged.tag },
            evidence: tagged.evidence,
            evidence_kind,
            claims_buffer: Some(tagged.claims_buffer),
            claims: tagged.claims,
            pubkey_hash: tagged.pubkey_hash,
            report_data,
            binding,
        });
    }

    for (oid, name) in LEGACY_QUOTE_OIDS {
        let Some(quote) = unique_extension(&cert, oid, name)? else {
            continue;
        };
        let (evidence_kind, report_data) = inspect_quote(quote)?;
        let binding = Binding {
            report_data: BindingCheck::compare(
                spki_sha256,
                report_data.0.get(..32).unwrap_or_default(),
            ),
            pubkey_hash: BindingCheck::NotApplicable,
        };
        return Ok(RaTlsCert {
            spki_der,
            format: EvidenceFormat::LegacyQuote { oid: name },
            evidence: quote.to_vec(),
            evidence_kind,
            claims_buffer: None,
            claims: BTreeMap::new(),
            pubkey_hash: None,
            report_data,
            binding,
        });
    }
    Err(RaTlsError::NotRaTls)
}

/// Parses the first `CERTIFICATE` block of PEM text (the leaf, when a chain
/// is given) as an RA-TLS certificate.
pub fn parse_ratls_pem(pem_text: &[u8]) -> Result<RaTlsCert, RaTlsError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| RaTlsError::Pem(e.to_string()))?;
    let block = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or_else(|| RaTlsError::Pem("no CERTIFICATE block".into()))?;
    parse_ratls_certificate(block.contents())
}

/// The value of the extension whose OID has DER contents `oid`, refusing
/// duplicates.
fn unique_extension<'a>(
    cert: &X509Certificate<'a>,
    oid: &[u8],
    name: &str,
) -> Result<Option<&'a [u8]>, RaTlsError> {
    let mut found = cert
        .extensions()
        .iter()
        .filter(|e| e.oid.as_bytes() == oid)
        .map(|e| e.value);
    let first = found.next();
    let more = found.count();
    if more > 0 {
        return Err(RaTlsError::DuplicateExtension {
            oid: name.to_owned(),
            count: more + 1,
        });
    }
    Ok(first)
}
