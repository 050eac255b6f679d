//! DCAP collateral: parsing the JSON and checking its validity windows.

use std::fmt;

use dcap_qvl::{QeIdentity, QuoteCollateralV3, TcbInfo};
use sha2::{Digest, Sha256};
use veil_attest::{Tee, Time, VerifyError};

/// The validity dates of a CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlDates {
    /// `thisUpdate`.
    pub this_update: Time,
    /// `nextUpdate`, when the CRL has one.
    pub next_update: Option<Time>,
}

/// The dates and identity of a signed collateral structure (TCB info or QE
/// identity), as its JSON states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedJsonDates {
    /// `id` (`SGX`, `TDX`, `QE`, `TD_QE`).
    pub id: String,
    /// `version`.
    pub version: u8,
    /// `issueDate`.
    pub issue_date: Time,
    /// `nextUpdate`.
    pub next_update: Time,
}

/// DCAP collateral (dcap-qvl's `QuoteCollateralV3`), parsed, with the dates
/// every verification must check.
///
/// Parsing checks only the form (JSON layout, TCB info and QE identity JSON,
/// CRL DER, dates); signatures and chains are checked when a quote is
/// verified with it.
#[derive(Clone)]
pub struct Collateral {
    pub(crate) inner: QuoteCollateralV3,
    digest: [u8; 32],
    tee: Tee,
    fmspc: [u8; 6],
    tcb_info: SignedJsonDates,
    qe_identity: SignedJsonDates,
    root_ca_crl: CrlDates,
    pck_crl: CrlDates,
    pck_crl_issuer: String,
}

impl fmt::Debug for Collateral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collateral")
            .field("tee", &self.tee)
            .field("fmspc", &hex::encode_upper(self.fmspc))
            .field("sha256", &hex::encode(self.digest))
            .field("tcb_info", &self.tcb_info)
            .field("qe_identity", &self.qe_identity)
            .field("root_ca_crl", &self.root_ca_crl)
            .field("pck_crl", &self.pck_crl)
            .field("pck_crl_issuer", &self.pck_crl_issuer)
            .finish()
    }
}

/// SHA-256 of the collateral bytes, the identity of collateral in the cache.
pub(crate) fn digest(json: &[u8]) -> [u8; 32] {
    Sha256::digest(json).into()
}

/// Parses DCAP collateral JSON (dcap-qvl's `QuoteCollateralV3` layout: byte
/// fields as hex, chains as PEM, TCB info and QE identity as JSON text).
///
/// Fails with [`VerifyError::BadEndorsement`] when the JSON, the embedded TCB
/// info or QE identity, a date or a CRL cannot be read. Never panics; meant
/// also as a fuzzing entry point.
pub fn parse_collateral(json: &[u8]) -> Result<Collateral, VerifyError> {
    let inner: QuoteCollateralV3 = serde_json::from_slice(json)
        .map_err(|e| bad(format!("DCAP collateral is not valid collateral JSON: {e}")))?;
    Collateral::from_inner(inner, digest(json))
}

fn bad(msg: impl Into<String>) -> VerifyError {
    VerifyError::BadEndorsement(msg.into())
}

fn rfc3339(what: &str, field: &str, s: &str) -> Result<Time, VerifyError> {
    Time::parse_rfc3339(s).map_err(|_| bad(format!("{what} {field} {s:?} is not an RFC 3339 date")))
}

fn crl_dates(what: &str, der: &[u8]) -> Result<(CrlDates, String), VerifyError> {
    let (rest, crl) = x509_parser::parse_x509_crl(der)
        .map_err(|e| bad(format!("{what} is not a DER CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(bad(format!(
            "{what} has {} bytes after the CRL",
            rest.len()
        )));
    }
    let to_time = |t: x509_parser::time::ASN1Time, field: &str| {
        u64::try_from(t.timestamp())
            .map(Time::from_unix)
            .map_err(|_| bad(format!("{what} {field} is before 1970")))
    };
    let dates = CrlDates {
        this_update: to_time(crl.last_update(), "thisUpdate")?,
        next_update: crl
            .next_update()
            .map(|t| to_time(t, "nextUpdate"))
            .transpose()?,
    };
    let issuer = crl
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((dates, issuer))
}

impl Collateral {
    fn from_inner(inner: QuoteCollateralV3, digest: [u8; 32]) -> Result<Self, VerifyError> {
        let tcb: TcbInfo = serde_json::from_str(&inner.tcb_info)
            .map_err(|e| bad(format!("TCB info in the collateral is not valid: {e}")))?;
        let qe: QeIdentity = serde_json::from_str(&inner.qe_identity)
            .map_err(|e| bad(format!("QE identity in the collateral is not valid: {e}")))?;
        let tee = match tcb.id.as_str() {
            "SGX" => Tee::Sgx,
            "TDX" => Tee::Tdx,
            other => {
                return Err(bad(format!(
                    "TCB info id {other:?} is neither \"SGX\" nor \"TDX\""
                )))
            }
        };
        let mut fmspc = [0u8; 6];
        hex::decode_to_slice(tcb.fmspc.trim(), &mut fmspc)
            .map_err(|_| bad(format!("TCB info fmspc {:?} is not 6 hex bytes", tcb.fmspc)))?;
        let tcb_info = SignedJsonDates {
            issue_date: rfc3339("TCB info", "issueDate", &tcb.issue_date)?,
            next_update: rfc3339("TCB info", "nextUpdate", &tcb.next_update)?,
            id: tcb.id,
            version: tcb.version,
        };
        let qe_identity = SignedJsonDates {
            issue_date: rfc3339("QE identity", "issueDate", &qe.issue_date)?,
            next_update: rfc3339("QE identity", "nextUpdate", &qe.next_update)?,
            id: qe.id,
            version: qe.version,
        };
        let (root_ca_crl, _) = crl_dates("root CA CRL", &inner.root_ca_crl)?;
        let (pck_crl, pck_crl_issuer) = crl_dates("PCK CRL", &inner.pck_crl)?;
        Ok(Collateral {
            inner,
            digest,
            tee,
            fmspc,
            tcb_info,
            qe_identity,
            root_ca_crl,
            pck_crl,
            pck_crl_issuer,
        })
    }

    /// The TEE the TCB info is for (its `id`).
    pub fn tee(&self) -> Tee {
        self.tee
    }

    /// The FMSPC the TCB info is for.
    pub fn fmspc(&self) -> [u8; 6] {
        self.fmspc
    }

    /// SHA-256 of the collateral JSON bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.digest
    }

    /// TCB info id, version and dates.
    pub fn tcb_info(&self) -> &SignedJsonDates {
        &self.tcb_info
    }

    /// QE identity id, version and dates.
    pub fn qe_identity(&self) -> &SignedJsonDates {
        &self.qe_identity
    }

    /// Dates of the Intel root CA CRL.
    pub fn root_ca_crl(&self) -> CrlDates {
        self.root_ca_crl
    }

    /// Dates of the PCK CRL.
    pub fn pck_crl(&self) -> CrlDates {
        self.pck_crl
    }

    /// Common name of the PCK CRL issuer (`Intel SGX PCK Processor CA` or
    /// `Intel SGX PCK Platform CA`).
    pub fn pck_crl_issuer(&self) -> &str {
        &self.pck_crl_issuer
    }

    /// The collateral in dcap-qvl's form.
    pub fn as_dcap_qvl(&self) -> &QuoteCollateralV3 {
        &self.inner
    }

    /// The span in which every dated part is valid: from the latest
    /// issueDate/thisUpdate to the earliest nextUpdate of the TCB info, the
    /// QE identity and both CRLs. Empty (start after end) when they do not
    /// overlap.
    pub fn validity(&self) -> (Time, Time) {
        let starts = [
            self.root_ca_crl.this_update,
            self.tcb_info.issue_date,
            self.qe_identity.issue_date,
            self.pck_crl.this_update,
        ];
        let ends = [
            self.root_ca_crl.next_update,
            Some(self.tcb_info.next_update),
            Some(self.qe_identity.next_update),
            self.pck_crl.next_update,
        ];
        let start = starts.into_iter().max().unwrap_or(Time::from_unix(0));
        let end = ends
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Time::from_unix(u64::MAX));
        (start, end)
    }

    /// Checks every dated part at `at`, in the order dcap-qvl uses them
    /// (root CA CRL, TCB info, QE identity, PCK CRL), and names the first
    /// that is not valid: "TCB info expired at ...", "root CA CRL issued in
    /// the future ...".
    pub fn check_at(&self, at: Time) -> Result<(), VerifyError> {
        let never = Time::from_unix(u64::MAX);
        VerifyError::check_window(
            "root CA CRL",
            self.root_ca_crl.this_update,
            self.root_ca_crl.next_update.unwrap_or(never),
            at,
        )?;
        VerifyError::check_window(
            "TCB info",
            self.tcb_info.issue_date,
            self.tcb_info.next_update,
            at,
        )?;
        VerifyError::check_window(
            "QE identity",
            self.qe_identity.issue_date,
            self.qe_identity.next_update,
            at,
        )?;
        let pck = if self.pck_crl_issuer.is_empty() {
            "PCK CRL".to_owned()
        } else {
            format!("PCK CRL ({})", self.pck_crl_issuer)
        };
        VerifyError::check_window(
            &pck,
            self.pck_crl.this_update,
            self.pck_crl.next_update.unwrap_or(never),
            at,
        )
    }

    /// Fails with [`VerifyError::Mismatch`] unless this collateral is for
    /// `tee`: its TCB info id and QE identity id must name that TEE.
    pub fn check_tee(&self, tee: Tee) -> Result<(), VerifyError> {
        let (tcb_id, qe_id) = match tee {
            Tee::Tdx => ("TDX", "TD_QE"),
            _ => ("SGX", "QE"),
        };
        if self.tcb_info.id != tcb_id {
            return Err(VerifyError::mismatch(
                "collateral TEE (TCB info id)",
                tcb_id,
                self.tcb_info.id.clone(),
            ));
        }
        if self.qe_identity.id != qe_id {
            return Err(VerifyError::mismatch(
                "collateral TEE (QE identity id)",
                qe_id,
                self.qe_identity.id.clone(),
            ));
        }
        Ok(())
    }
}
