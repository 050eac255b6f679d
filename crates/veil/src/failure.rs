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
    /// `veil run`: the CAS could not be reached, or is not the pinned one (exit 69).
    Unavailable(String),
    /// `veil run`: the CAS denied the attestation; the program was not started (exit 77).
    Denied(String),
    /// `veil run`: the private in-memory mount could not be set up (exit 71).
    Isolation(String),
    /// `veil run`: the program could not be executed (exit 126) or was not found (127).
    Exec(String, u8),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::NotAcceptable(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unavailable(_) => 69,
            Failure::Denied(_) => 77,
            Failure::Isolation(_) => 71,
            Failure::Exec(_, code) => *code,
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
            Failure::NotAcceptable(m)
            | Failure::Usage(m)
            | Failure::Unavailable(m)
            | Failure::Denied(m)
            | Failure::Isolation(m)
            | Failure::Exec(m, _) => f.write_str(m),
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

impl From<veil_launcher::LaunchError> for Failure {
    fn from(e: veil_launcher::LaunchError) -> Self {
        use veil_launcher::LaunchError as L;
        let m = e.to_string();
        match &e {
            L::Unreachable { .. } | L::UntrustedCas(_) => Failure::Unavailable(m),
            L::Denied { .. } => Failure::Denied(m),
            L::Isolation { .. } => Failure::Isolation(m),
            L::Volume(_) => Failure::Exec(m, 65),
            L::Network(_) => Failure::Exec(m, 76),
            L::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Failure::Exec(m, 127)
            }
            L::Exec { .. } => Failure::Exec(m, 126),
            L::Program { .. } => Failure::Exec(m, 127),
            _ => Failure::Usage(m),
        }
    }
}

/// Whether a file shield error means the volume is not authentic (tampered,
/// rolled back, swapped, or a wrong key): exit 1. The rest (a missing path,
/// an I/O error) is exit 2.
pub fn is_tampering(e: &veil_fs::FsError) -> bool {
    use veil_fs::FsError as F;
    match e {
        F::WrongKeyOrTamperedHeader
        | F::Malformed { .. }
        | F::FileIdMismatch { .. }
        | F::BadRecord { .. }
        | F::BadManifest
        | F::NotCurrent { .. } => true,
        // An object shorter than its records say: cut by the host.
        F::InFile { source, .. } => {
            is_tampering(source)
                || matches!(**source, F::Io { kind, .. } if kind == std::io::ErrorKind::UnexpectedEof)
        }
        _ => false,
    }
}

impl From<veil_fs::FsError> for Failure {
    fn from(e: veil_fs::FsError) -> Self {
        if is_tampering(&e) {
            Failure::NotAcceptable(e.to_string())
        } else {
            Failure::Usage(e.to_string())
        }
    }
}
