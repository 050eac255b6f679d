use std::fmt;
use std::path::Path;

use veil_attest::VerifyError;

/// Every way a command can fail, and the exit code of each.
#[derive(Debug)]
pub enum Failure {
    /// The thing checked is not acceptable (exit 1).
    NotAcceptable(String),
    /// The command was used wrongly, or a file could not be read or written (exit 2).
    Usage(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::NotAcceptable(_) => 1,
            Failure::Usage(_) => 2,
        }
    }

    /// An I/O failure on `path`.
    pub fn io(action: &str, path: &Path, e: std::io::Error) -> Self {
        Failure::Usage(format!("{action} {}: {e}", path.display()))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotAcceptable(m) | Failure::Usage(m) => f.write_str(m),
        }
    }
}

impl From<VerifyError> for Failure {
    fn from(e: VerifyError) -> Self {
        if e.is_usage() {
            Failure::Usage(e.to_string())
        } else {
            Failure::NotAcceptable(format!("evidence is not genuine: {e}"))
        }
    }
}

impl From<veil_provider::ProviderError> for Failure {
    fn from(e: veil_provider::ProviderError) -> Self {
        Failure::Usage(e.to_string())
    }
}
