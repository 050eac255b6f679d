use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of trusted execution environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Tee {
    /// Intel SGX enclave, DCAP (ECDSA) quote v3.
    Sgx,
    /// Intel TDX trust domain, quote v4 or v5.
    Tdx,
    /// AMD SEV-SNP guest, attestation report signed by a VCEK or VLEK.
    Snp,
    /// AWS Nitro Enclaves attestation document (COSE_Sign1).
    Nitro,
    /// Veil's simulated TEE: no protection at all, for development only.
    Sim,
}

impl Tee {
    /// Every TEE kind Veil knows, in a stable order.
    pub const ALL: [Tee; 5] = [Tee::Sgx, Tee::Tdx, Tee::Snp, Tee::Nitro, Tee::Sim];

    /// The lower-case name used on the command line, in JSON and in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Tee::Sgx => "sgx",
            Tee::Tdx => "tdx",
            Tee::Snp => "snp",
            Tee::Nitro => "nitro",
            Tee::Sim => "sim",
        }
    }
}

impl fmt::Display for Tee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a TEE name that Veil does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TEE {0:?}: expected one of sgx, tdx, snp, nitro, sim")]
pub struct UnknownTee(pub String);

impl FromStr for Tee {
    type Err = UnknownTee;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tee::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTee(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for tee in Tee::ALL {
            assert_eq!(tee.as_str().parse::<Tee>(), Ok(tee));
            assert_eq!(tee.to_string(), tee.as_str());
        }
        assert!("sev".parse::<Tee>().is_err());
    }
}
