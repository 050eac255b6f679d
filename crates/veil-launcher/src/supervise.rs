//! Waiting for the program, forwarding signals to it.

use std::os::unix::process::ExitStatusExt;

use crate::sys;
use crate::{LaunchError, Running};

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl Outcome {
    /// The launcher's exit status: the program's own, or 128 + the signal.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Exited(c) => (c & 0xff) as u8,
            Outcome::Signaled { signal, .. } => 128u8.saturating_add((signal & 0x7f) as u8),
        }
    }

    /// A line for the operator when the program did not exit by itself.
    pub fn report(self) -> Option<String> {
        let Outcome::Signaled {
            signal,
            core_dumped,
        } = self
        else {
            return None;
        };
        let name = signal_name(signal);
        let crashed = matches!(
            signal,
            libc::SIGSEGV
                | libc::SIGBUS
                | libc::SIGILL
                | libc::SIGFPE
                | libc::SIGABRT
                | libc::SIGSYS
        );
        Some(format!(
            "the program {} by signal {signal} ({name}){}",
            if crashed {
                "crashed: killed"
            } else {
                "was terminated"
            },
            if core_dumped { ", core dumped" } else { "" }
        ))
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSYS => "SIGSYS",
        _ => "signal",
    }
}

/// Forwards TERM, INT, HUP, QUIT, USR1 and USR2 to the program until it ends,
/// then removes what the launcher created and restores the signal mask.
///
/// Signals the kernel sent to the whole foreground process group (Ctrl-C at
/// a terminal) already reached the program and are not sent twice.
pub fn supervise(mut running: Running) -> Result<Outcome, LaunchError> {
    let pid = running.child.id();
    let outcome = loop {
        let (signal, code) = running.watched.wait().map_err(LaunchError::Supervise)?;
        if signal == libc::SIGCHLD {
            match running.child.try_wait() {
                Ok(Some(status)) => {
                    break match (status.code(), status.signal()) {
                        (Some(c), _) => Outcome::Exited(c),
                        (None, Some(s)) => Outcome::Signaled {
                            signal: s,
                            core_dumped: status.core_dumped(),
                        },
                        (None, None) => Outcome::Exited(255),
                    }
                }
                Ok(None) => continue,
                Err(e) => return Err(LaunchError::Supervise(e)),
            }
        }
        if code == libc::SI_KERNEL {
            tracing::debug!(
                signal,
                "signal from the terminal reached the program directly"
            );
            continue;
        }
        tracing::debug!(signal, pid, "forwarding a signal to the program");
        if let Err(e) = sys::kill(pid, signal) {
            tracing::debug!(signal, error = %e, "could not forward a signal");
        }
    };
    running.old_mask.set_as_mask();
    drop(running.cleanup);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(Outcome::Exited(0).exit_code(), 0);
        assert_eq!(Outcome::Exited(3).exit_code(), 3);
        let killed = Outcome::Signaled {
            signal: libc::SIGTERM,
            core_dumped: false,
        };
        assert_eq!(killed.exit_code(), 143);
        assert!(killed.report().unwrap().contains("SIGTERM"));
        let crash = Outcome::Signaled {
            signal: libc::SIGSEGV,
            core_dumped: true,
        };
        assert_eq!(crash.exit_code(), 139);
        assert!(crash.report().unwrap().contains("crashed"));
        assert!(Outcome::Exited(1).report().is_none());
    }
}
