use std::collections::BTreeMap;
use std::fmt;

use crate::{Claims, Endorsement, ReportData, Tee, Time, VerifyError};

/// Evidence as a TEE produced it: which TEE, and the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The TEE the evidence claims to come from.
    pub tee: Tee,
    /// The raw bytes (quote, report, COSE document, sim statement).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Evidence({}, {} bytes)", self.tee, self.bytes.len())
    }
}

/// Checks evidence of one TEE.
///
/// An implementation is a pure function of its configuration (trust anchors),
/// the evidence, the endorsements and the time: it reads no clock, no file and
/// no network. It returns claims only when the evidence is genuine at `at`;
/// it never decides whether what the claims say is acceptable.
pub trait Verifier: Send + Sync + fmt::Debug {
    /// The TEE this verifier checks.
    fn tee(&self) -> Tee;

    /// Verifies `evidence` with `endorsements` at time `at`.
    fn verify(
        &self,
        evidence: &[u8],
        endorsements: &[Endorsement],
        at: Time,
    ) -> Result<Claims, VerifyError>;
}

/// One verifier value per TEE.
#[derive(Debug, Default)]
pub struct Registry {
    verifiers: BTreeMap<Tee, Box<dyn Verifier>>,
}

impl Registry {
    /// An empty registry: it verifies nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `verifier`, replacing any earlier verifier of the same TEE.
    pub fn with(mut self, verifier: impl Verifier + 'static) -> Self {
        self.insert(Box::new(verifier));
        self
    }

    /// Adds a boxed verifier, replacing any earlier verifier of the same TEE.
    pub fn insert(&mut self, verifier: Box<dyn Verifier>) {
        self.verifiers.insert(verifier.tee(), verifier);
    }

    /// The TEEs this registry can verify.
    pub fn tees(&self) -> impl Iterator<Item = Tee> + '_ {
        self.verifiers.keys().copied()
    }

    /// Verifies `evidence` with the verifier of its TEE.
    ///
    /// The claims returned always have `tee == evidence.tee`.
    pub fn verify(
        &self,
        evidence: &Evidence,
        endorsements: &[Endorsement],
        at: Time,
    ) -> Result<Claims, VerifyError> {
        let verifier = self
            .verifiers
            .get(&evidence.tee)
            .ok_or(VerifyError::NoVerifier(evidence.tee))?;
        let claims = verifier.verify(&evidence.bytes, endorsements, at)?;
        if claims.tee != evidence.tee {
            // A verifier bug must never let one TEE's evidence pass as another's.
            return Err(VerifyError::WrongTee {
                expected: evidence.tee,
                found: claims.tee.to_string(),
            });
        }
        Ok(claims)
    }

    /// Verifies `evidence` and then checks that it carries `expected` report data.
    pub fn verify_with_report_data(
        &self,
        evidence: &Evidence,
        endorsements: &[Endorsement],
        at: Time,
        expected: &ReportData,
    ) -> Result<Claims, VerifyError> {
        let claims = self.verify(evidence, endorsements, at)?;
        check_report_data(&claims, expected)?;
        Ok(claims)
    }
}

/// Fails with [`VerifyError::ReportDataMismatch`] unless the claims carry `expected`.
pub fn check_report_data(claims: &Claims, expected: &ReportData) -> Result<(), VerifyError> {
    // Report data is public; a plain comparison leaks nothing.
    if claims.report_data != *expected {
        return Err(VerifyError::ReportDataMismatch {
            expected: Box::new(*expected),
            found: Box::new(claims.report_data),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimClaims, TcbStatus, TeeClaims};

    #[derive(Debug)]
    struct Lying;

    impl Verifier for Lying {
        fn tee(&self) -> Tee {
            Tee::Tdx
        }
        fn verify(&self, _: &[u8], _: &[Endorsement], at: Time) -> Result<Claims, VerifyError> {
            Ok(Claims {
                tee: Tee::Sim,
                insecure: true,
                measurement: vec![],
                measurements: BTreeMap::new(),
                signer: None,
                product_id: None,
                svn: None,
                debug: false,
                tcb_status: TcbStatus::NotApplicable,
                advisories: vec![],
                report_data: ReportData::ZERO,
                platform_id: None,
                verified_at: at,
                tee_claims: TeeClaims::Sim(SimClaims {
                    version: 1,
                    platform_key: vec![],
                    issued_at: at,
                }),
            })
        }
    }

    #[test]
    fn registry_refuses_unknown_tee_and_tee_confusion() {
        let r = Registry::new();
        let ev = Evidence {
            tee: Tee::Sgx,
            bytes: vec![],
        };
        assert_eq!(
            r.verify(&ev, &[], Time::from_unix(0)),
            Err(VerifyError::NoVerifier(Tee::Sgx))
        );
        let r = Registry::new().with(Lying);
        let ev = Evidence {
            tee: Tee::Tdx,
            bytes: vec![],
        };
        assert!(matches!(
            r.verify(&ev, &[], Time::from_unix(0)),
            Err(VerifyError::WrongTee { .. })
        ));
    }

    #[test]
    fn report_data_is_checked() {
        let claims = Lying.verify(&[], &[], Time::from_unix(0)).unwrap();
        let want = ReportData([1; 64]);
        let err = check_report_data(&claims, &want).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("report data mismatch: expected 0101"));
        assert!(check_report_data(&claims, &ReportData::ZERO).is_ok());
    }
}
