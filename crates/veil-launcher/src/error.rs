use std::path::PathBuf;

/// Why the launcher could not start the program.
///
/// Every variant means the program was **not** started (or, for
/// [`LaunchError::Supervise`], could no longer be watched). The command line
/// maps each to its own exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The CAS could not be reached (or kept failing) within the retry budget.
    #[error("the CAS at {url} is unreachable: {attempts} attempts over {elapsed_ms} ms failed, the last with: {last}")]
    Unreachable {
        /// The CAS URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long they took.
        elapsed_ms: u128,
        /// The last failure.
        last: String,
    },
    /// The CAS is not the pinned one, or TLS with it failed.
    #[error("{0}")]
    UntrustedCas(String),
    /// The CAS refused: attestation denied, unknown session or service, ...
    #[error("the CAS denied the attestation ({code}): {message}")]
    Denied {
        /// The stable reason code (`measurement_mismatch`, `unknown_session`, ...).
        code: String,
        /// The CAS's explanation.
        message: String,
    },
    /// The CAS answered with something the launcher cannot use.
    #[error("unexpected answer from the CAS: {0}")]
    Protocol(String),
    /// The platform would not give evidence.
    #[error("cannot obtain evidence: {0}")]
    Evidence(#[from] veil_provider::ProviderError),
    /// The program cannot be found or measured.
    #[error("program {path}: {detail}")]
    Program {
        /// The program path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// What the host asked for conflicts with the policy (host arguments
    /// where the policy forbids them, ...).
    #[error("{0}")]
    NotAllowed(String),
    /// The private in-memory mount for the program's files could not be set up.
    #[error("cannot set up the private file mount ({step}): {source}; {hint}")]
    Isolation {
        /// The step that failed.
        step: &'static str,
        /// The OS error.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// `execve` failed.
    #[error("cannot execute {path}: {source}")]
    Exec {
        /// The program.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Some other OS operation failed.
    #[error("{action}: {source}")]
    Os {
        /// What was being done.
        action: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A protected volume cannot be opened, made or mounted.
    #[error("{0}")]
    Volume(String),
    /// The network shield cannot start a tunnel (an address in use, a name
    /// that does not resolve, an unusable certificate).
    #[error("network shield: {0}")]
    Network(String),
    /// Waiting for the program failed.
    #[error("lost track of the program: {0}")]
    Supervise(std::io::Error),
}

impl LaunchError {
    pub(crate) fn os(action: impl Into<String>, source: std::io::Error) -> Self {
        LaunchError::Os {
            action: action.into(),
            source,
        }
    }
}
