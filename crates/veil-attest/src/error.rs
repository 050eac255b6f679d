use crate::{ReportData, Tee, Time};

/// Why evidence is not genuine at the time asked, or cannot be checked.
///
/// Every variant names the check that failed so an operator can act on it;
/// where a value was compared, both the expected and the found value are given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The evidence bytes are not well-formed evidence of the claimed TEE.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being parsed ("SGX quote", "SNP report", ...).
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The evidence belongs to another TEE than the one it was presented as.
    #[error("evidence is {found} evidence, not {expected}")]
    WrongTee {
        /// The TEE the caller said it was.
        expected: Tee,
        /// What the bytes actually are.
        found: String,
    },
    /// A signature does not verify.
    #[error(
        "{what} signature does not verify{}{}",
        with_key(key),
        with_detail(detail)
    )]
    BadSignature {
        /// Whose signature ("report", "quote", ...).
        what: String,
        /// The key it was checked with ("VCEK", ...), when that helps.
        key: Option<String>,
        /// More detail, when there is any.
        detail: String,
    },
    /// A certificate, CRL or signed structure is not yet valid at T.
    #[error("{what} issued in the future: valid from {not_before}, verified at {at}")]
    NotYetValid {
        /// What is not yet valid ("TCB info", "VCEK certificate", ...).
        what: String,
        /// Start of its validity.
        not_before: Time,
        /// The time of verification.
        at: Time,
    },
    /// A certificate, CRL or signed structure has expired at T.
    #[error("{what} expired at {not_after}, verified at {at}")]
    Expired {
        /// What has expired.
        what: String,
        /// End of its validity.
        not_after: Time,
        /// The time of verification.
        at: Time,
    },
    /// A certificate chain does not lead to a trusted root.
    #[error("untrusted {what}: {detail}")]
    Untrusted {
        /// Which chain or key.
        what: String,
        /// Why it is not trusted.
        detail: String,
    },
    /// A certificate has been revoked.
    #[error("{what} is revoked")]
    Revoked {
        /// Which certificate or platform.
        what: String,
    },
    /// A value in the evidence does not match the endorsement that vouches for it.
    #[error("{what} mismatch: expected {expected}, found {found}")]
    Mismatch {
        /// Which value.
        what: String,
        /// What the endorsement (or the caller) requires.
        expected: String,
        /// What the evidence says.
        found: String,
    },
    /// The report data is not what the caller expected (replay or key swap).
    #[error("report data mismatch: expected {expected}, found {found}")]
    ReportDataMismatch {
        /// The report data the caller required.
        expected: Box<ReportData>,
        /// The report data in the evidence.
        found: Box<ReportData>,
    },
    /// The vendor collateral rejects the platform (no matching TCB level, ...).
    #[error("collateral check failed: {0}")]
    Collateral(String),
    /// An endorsement the verifier needs was not given.
    #[error("missing endorsement: {0}")]
    MissingEndorsement(String),
    /// An endorsement was given but cannot be used.
    #[error("bad endorsement: {0}")]
    BadEndorsement(String),
    /// No verifier is registered for this TEE.
    #[error("no verifier for TEE {0} in this registry")]
    NoVerifier(Tee),
}

fn with_key(key: &Option<String>) -> String {
    key.as_ref()
        .map_or_else(String::new, |k| format!(" with {k}"))
}

fn with_detail(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl VerifyError {
    /// A shorthand for [`VerifyError::Malformed`].
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        VerifyError::Malformed {
            what,
            detail: detail.into(),
        }
    }

    /// A shorthand for [`VerifyError::BadSignature`].
    pub fn bad_signature(what: impl Into<String>, detail: impl Into<String>) -> Self {
        VerifyError::BadSignature {
            what: what.into(),
            key: None,
            detail: detail.into(),
        }
    }

    /// [`VerifyError::BadSignature`] naming the key it was checked with:
    /// "report signature does not verify with VCEK: ...".
    pub fn bad_signature_with(
        what: impl Into<String>,
        key: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        VerifyError::BadSignature {
            what: what.into(),
            key: Some(key.into()),
            detail: detail.into(),
        }
    }

    /// A shorthand for [`VerifyError::Untrusted`].
    pub fn untrusted(what: impl Into<String>, detail: impl Into<String>) -> Self {
        VerifyError::Untrusted {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// A shorthand for [`VerifyError::Mismatch`].
    pub fn mismatch(
        what: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        VerifyError::Mismatch {
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Checks that `at` lies within `[not_before, not_after]` for `what`.
    pub fn check_window(
        what: &str,
        not_before: Time,
        not_after: Time,
        at: Time,
    ) -> Result<(), VerifyError> {
        if at < not_before {
            return Err(VerifyError::NotYetValid {
                what: what.to_owned(),
                not_before,
                at,
            });
        }
        if at > not_after {
            return Err(VerifyError::Expired {
                what: what.to_owned(),
                not_after,
                at,
            });
        }
        Ok(())
    }

    /// True when the caller, not the evidence, is at fault: an endorsement
    /// is missing or unusable, or no verifier is registered. A command line
    /// maps these to a usage error rather than "not genuine".
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            VerifyError::MissingEndorsement(_)
                | VerifyError::BadEndorsement(_)
                | VerifyError::NoVerifier(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_messages_name_the_check() {
        let e = VerifyError::check_window(
            "TCB info",
            Time::from_unix(100),
            Time::from_unix(200),
            Time::from_unix(300),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("TCB info expired at "), "{e}");
        let e = VerifyError::check_window(
            "TCB info",
            Time::from_unix(100),
            Time::from_unix(200),
            Time::from_unix(50),
        )
        .unwrap_err();
        assert!(e.to_string().contains("issued in the future"), "{e}");
        assert!(VerifyError::check_window(
            "x",
            Time::from_unix(100),
            Time::from_unix(200),
            Time::from_unix(200)
        )
        .is_ok());
    }
}
