//! [`SgxVerifier`] and [`TdxVerifier`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use dcap_qvl::configs::DefaultConfig;
use dcap_qvl::verify::{QuoteVerifier, VerifiedReport};
use veil_attest::{
    Claims, Endorsement, SgxClaims, TcbStatus, TdxClaims, Tee, TeeClaims, Time, Verifier,
    VerifyError,
};

use crate::cache::CollateralCache;
use crate::collateral;
use crate::errors::map_qvl_error;
use crate::memo::{self, MemoConfig};
use crate::quote::{self, what, ParsedQuote, ReportBody, ECDSA_P256, INTEL_QE_VENDOR_ID};

/// The message of [`VerifyError::MissingEndorsement`] for DCAP quotes.
pub const MISSING_COLLATERAL: &str =
    "SGX/TDX quotes need the DCAP collateral JSON (--endorsement collateral.json)";

/// What the two verifiers share: the TEE, dcap-qvl's verifier in two
/// configurations, and the optional cache.
struct Core {
    tee: Tee,
    cache: Option<Arc<CollateralCache>>,
    /// dcap-qvl with Intel's root, debug allowed, memoizing signatures.
    memo_qvl: QuoteVerifier<MemoConfig>,
    /// dcap-qvl with Intel's root, debug allowed, exactly as shipped.
    plain_qvl: QuoteVerifier<DefaultConfig>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DcapVerifier")
            .field("tee", &self.tee)
            .field("root", &"Intel SGX Root CA (dcap-qvl built-in)")
            .field("cache", &self.cache)
            .finish()
    }
}

impl Core {
    fn new(tee: Tee, cache: Option<Arc<CollateralCache>>) -> Self {
        // Veil reports debug enclaves and TDs in `Claims::debug` and leaves
        // the decision to policy, so dcap-qvl must not reject them.
        let plain_qvl = QuoteVerifier::new_prod().allow_debug(true);
        let memo_qvl = QuoteVerifier::new_prod()
            .allow_debug(true)
            .with_config::<MemoConfig>();
        Core {
            tee,
            cache,
            memo_qvl,
            plain_qvl,
        }
    }

    /// The checks on the quote bytes that need no collateral. Also returns
    /// the two messages the quote itself signs (header and report body; QE
    /// report), whose signatures the memo must never answer.
    fn check_quote(&self, evidence: &[u8]) -> Result<(ParsedQuote, Vec<Vec<u8>>), VerifyError> {
        let what = what(self.tee);
        let header = quote::read_header(evidence).ok_or_else(|| {
            VerifyError::malformed(
                what,
                format!(
                    "{} bytes is too short for a quote header (48)",
                    evidence.len()
                ),
            )
        })?;
        match header.tee() {
            Some(found) if found != self.tee => {
                return Err(VerifyError::WrongTee {
                    expected: self.tee,
                    found: found.to_string(),
                })
            }
            _ => {}
        }
        let (decoded, parsed) = quote::decode(evidence, false)?;
        let versions: &[u16] = match self.tee {
            Tee::Tdx => &[4, 5],
            _ => &[3],
        };
        if !versions.contains(&parsed.version) {
            return Err(VerifyError::malformed(
                what,
                format!(
                    "quote version {} is not supported for {} (expected {versions:?})",
                    parsed.version, self.tee
                ),
            ));
        }
        if parsed.attestation_key_type != ECDSA_P256 {
            return Err(VerifyError::malformed(
                what,
                format!(
                    "attestation key type {} is not supported (only 2, ECDSA-256-with-P-256)",
                    parsed.attestation_key_type
                ),
            ));
        }
        if parsed.qe_vendor_id != INTEL_QE_VENDOR_ID {
            return Err(VerifyError::untrusted(
                "quoting enclave vendor",
                format!(
                    "QE vendor id {} is not Intel's {}",
                    hex::encode(&parsed.qe_vendor_id),
                    hex::encode(INTEL_QE_VENDOR_ID)
                ),
            ));
        }
        quote::check_pck_chain(&decoded, what)?;
        let signed = evidence
            .get(..decoded.signed_length())
            .ok_or_else(|| VerifyError::malformed(what, "shorter than its signed part"))?;
        let fresh = vec![signed.to_vec(), decoded.qe_report().to_vec()];
        if parsed.trailing_nonzero {
            // Zero padding after a quote is common (fixed-size buffers) and
            // carries nothing; anything else is unauthenticated data that a
            // reader of the raw bytes could mistake for part of the quote.
            return Err(VerifyError::malformed(
                what,
                format!(
                    "{} bytes after the {}-byte quote are not zero padding",
                    parsed.trailing_len, parsed.quote_len
                ),
            ));
        }
        Ok((parsed, fresh))
    }

    fn verify(
        &self,
        evidence: &[u8],
        endorsements: &[Endorsement],
        at: Time,
    ) -> Result<Claims, VerifyError> {
        let (parsed, fresh) = self.check_quote(evidence)?;
        let json = endorsements
            .iter()
            .find_map(|e| match e {
                Endorsement::DcapCollateral(json) => Some(json.as_slice()),
                _ => None,
            })
            .ok_or_else(|| VerifyError::MissingEndorsement(MISSING_COLLATERAL.to_owned()))?;
        let (report, fmspc) = match &self.cache {
            Some(cache) => {
                let entry = cache.get(json, at, self.tee)?;
                let fmspc = entry.collateral.fmspc();
                let _active = memo::activate(entry.memo.clone(), fresh);
                let report = self
                    .memo_qvl
                    .verify(evidence, entry.collateral.as_dcap_qvl(), at.unix())
                    .map_err(|e| map_qvl_error(&*e, self.tee, evidence, fmspc, at))?;
                (report, fmspc)
            }
            None => {
                let c = collateral::parse_collateral(json)?;
                c.check_tee(self.tee)?;
                c.check_at(at)?;
                let fmspc = c.fmspc();
                let report = self
                    .plain_qvl
                    .verify(evidence, c.as_dcap_qvl(), at.unix())
                    .map_err(|e| map_qvl_error(&*e, self.tee, evidence, fmspc, at))?;
                (report, fmspc)
            }
        };
        claims(self.tee, &parsed, &report, fmspc, at)
    }
}

/// Claims from a report dcap-qvl verified.
fn claims(
    tee: Tee,
    parsed: &ParsedQuote,
    report: &VerifiedReport,
    fmspc: [u8; 6],
    at: Time,
) -> Result<Claims, VerifyError> {
    let status = TcbStatus::parse(&report.status).ok_or_else(|| {
        VerifyError::Collateral(format!(
            "dcap-qvl returned TCB status {:?}, which Veil does not know",
            report.status
        ))
    })?;
    let platform_tcb_status = TcbStatus::parse(&report.platform_status.status.to_string());
    let qe_tcb_status = TcbStatus::parse(&report.qe_status.status.to_string());
    // Claims come from the report dcap-qvl verified, not from our own parse.
    let body = quote::body_of(&report.report, what(tee))?;
    let platform_id = (!report.ppid.is_empty()).then(|| report.ppid.clone());
    let fmspc = Some(fmspc.to_vec());
    let claims = match body {
        ReportBody::Sgx(r) => {
            if tee != Tee::Sgx {
                return Err(VerifyError::WrongTee {
                    expected: tee,
                    found: Tee::Sgx.to_string(),
                });
            }
            let debug = r.attributes.first().is_some_and(|f| f & 0x02 != 0);
            Claims {
                tee,
                insecure: false,
                measurement: r.mr_enclave.clone(),
                measurements: BTreeMap::from([
                    ("mrenclave".to_owned(), r.mr_enclave.clone()),
                    ("mrsigner".to_owned(), r.mr_signer.clone()),
                ]),
                signer: Some(r.mr_signer.clone()),
                product_id: Some(r.isv_prod_id),
                svn: Some(u32::from(r.isv_svn)),
                debug,
                tcb_status: status,
                advisories: report.advisory_ids.clone(),
                report_data: r.report_data,
                platform_id,
                verified_at: at,
                tee_claims: TeeClaims::Sgx(SgxClaims {
                    quote_version: parsed.version,
                    cpu_svn: r.cpu_svn,
                    misc_select: r.misc_select,
                    attributes: r.attributes,
                    mr_enclave: r.mr_enclave,
                    mr_signer: r.mr_signer,
                    isv_prod_id: r.isv_prod_id,
                    isv_svn: r.isv_svn,
                    fmspc,
                    platform_tcb_status,
                    qe_tcb_status,
                }),
            }
        }
        ReportBody::Td(r) => {
            let r = *r;
            if tee != Tee::Tdx {
                return Err(VerifyError::WrongTee {
                    expected: tee,
                    found: Tee::Tdx.to_string(),
                });
            }
            // Any TUD bit (byte 0) makes the TD untrusted; bit 0 is DEBUG.
            let debug = r.td_attributes.first().is_some_and(|tud| *tud != 0);
            let rt_mr: BTreeMap<String, Vec<u8>> = r
                .rt_mr
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("rtmr{i}"), m.0.clone()))
                .collect();
            let mut measurements = rt_mr.clone();
            measurements.insert("mrtd".to_owned(), r.mr_td.clone());
            measurements.insert("mrseam".to_owned(), r.mr_seam.clone());
            measurements.insert("mrconfigid".to_owned(), r.mr_config_id.clone());
            measurements.insert("mrowner".to_owned(), r.mr_owner.clone());
            measurements.insert("mrownerconfig".to_owned(), r.mr_owner_config.clone());
            Claims {
                tee,
                insecure: false,
                measurement: r.mr_td.clone(),
                measurements,
                // MRSIGNER_SEAM names the signer of the TDX module (zero for
                // Intel's), not of the TD's code, so it is no `signer`: a
                // policy pinning it would accept every TD on that module. It
                // is in `tee_claims` and dcap-qvl checks it against the TCB info.
                signer: None,
                product_id: None,
                svn: None,
                debug,
                tcb_status: status,
                advisories: report.advisory_ids.clone(),
                report_data: r.report_data,
                platform_id,
                verified_at: at,
                tee_claims: TeeClaims::Tdx(TdxClaims {
                    quote_version: parsed.version,
                    body: if r.body == "1.0" { "1.0" } else { "1.5" }.to_owned(),
                    tee_tcb_svn: r.tee_tcb_svn,
                    mr_seam: r.mr_seam,
                    mr_signer_seam: r.mr_signer_seam,
                    seam_attributes: r.seam_attributes,
                    td_attributes: r.td_attributes,
                    xfam: r.xfam,
                    mr_td: r.mr_td,
                    mr_config_id: r.mr_config_id,
                    mr_owner: r.mr_owner,
                    mr_owner_config: r.mr_owner_config,
                    rt_mr,
                    tee_tcb_svn2: r.tee_tcb_svn2,
                    mr_service_td: r.mr_service_td,
                    fmspc,
                    platform_tcb_status,
                    qe_tcb_status,
                }),
            }
        }
    };
    Ok(claims)
}

macro_rules! dcap_verifier {
    ($name:ident, $tee:expr, $doc:literal) => {
        #[doc = $doc]
        ///
        /// Verification runs dcap-qvl 0.7.1 against Intel's SGX root CA (built
        /// into dcap-qvl) with debug enclaves allowed, after Veil's own checks
        /// of the quote's form and the collateral's dates; see the crate docs
        /// for every check and for what dcap-qvl rejects regardless of policy.
        ///
        /// The endorsement is [`Endorsement::DcapCollateral`]. Safe to share
        /// between threads: verification takes `&self`, and the cache locks
        /// internally.
        #[derive(Debug)]
        pub struct $name {
            core: Core,
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $name {
            /// A verifier with its own [`CollateralCache`] of default capacity.
            pub fn new() -> Self {
                Self::with_cache(Arc::new(CollateralCache::default()))
            }

            /// A verifier that uses `cache`, which other verifiers (SGX and
            /// TDX alike) may share.
            pub fn with_cache(cache: Arc<CollateralCache>) -> Self {
                $name {
                    core: Core::new($tee, Some(cache)),
                }
            }

            /// A verifier without a cache: every call parses and date-checks
            /// the collateral and runs dcap-qvl exactly as shipped.
            pub fn without_cache() -> Self {
                $name {
                    core: Core::new($tee, None),
                }
            }

            /// The cache, when the verifier has one.
            pub fn cache(&self) -> Option<&Arc<CollateralCache>> {
                self.core.cache.as_ref()
            }

            /// Checks the quote's form without collateral: the TEE, version,
            /// attestation key type, QE vendor and trailing bytes that
            /// [`Verifier::verify`] checks first.
            pub fn check_form(&self, quote: &[u8]) -> Result<ParsedQuote, VerifyError> {
                self.core.check_quote(quote).map(|(parsed, _)| parsed)
            }
        }

        impl Verifier for $name {
            fn tee(&self) -> Tee {
                $tee
            }

            fn verify(
                &self,
                evidence: &[u8],
                endorsements: &[Endorsement],
                at: Time,
            ) -> Result<Claims, VerifyError> {
                self.core.verify(evidence, endorsements, at)
            }
        }
    };
}

dcap_verifier!(
    SgxVerifier,
    Tee::Sgx,
    "Verifies Intel SGX DCAP quotes (version 3, ECDSA P-256)."
);
dcap_verifier!(
    TdxVerifier,
    Tee::Tdx,
    "Verifies Intel TDX DCAP quotes (version 4 and 5, TD report 1.0 and 1.5)."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_reported_as_intel_spells_them() {
        assert_eq!(TcbStatus::parse("UpToDate"), Some(TcbStatus::UpToDate));
        assert_eq!(
            TcbStatus::parse("TDRelaunchAdvised"),
            Some(TcbStatus::TDRelaunchAdvised)
        );
        assert_eq!(
            TcbStatus::parse("TDRelaunchAdvisedConfigurationNeeded"),
            Some(TcbStatus::TDRelaunchAdvisedConfigurationNeeded)
        );
        assert_eq!(TcbStatus::parse("Bogus"), None);
    }

    #[test]
    fn verifiers_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SgxVerifier>();
        check::<TdxVerifier>();
        check::<CollateralCache>();
    }
}
