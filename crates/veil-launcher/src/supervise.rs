//! Waiting for the program, forwarding signals to it.

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
/// ends whatever it left running, then removes what the launcher created and
/// restores the signal mask.
///
/// Signals the kernel sent to the whole foreground process group (Ctrl-C at
/// a terminal) already reached the program and are not sent twice.
pub fn supervise(running: Running) -> Result<Outcome, LaunchError> {
    let pid = running.child.id();
    let outcome = loop {
        let (signal, code) = running.watched.wait().map_err(LaunchError::Supervise)?;
        if signal == libc::SIGCHLD {
            // Reap whatever ended: the program, or orphans it left to us.
            let mut ended = None;
            loop {
                match sys::reap().map_err(LaunchError::Supervise)? {
                    sys::Reaped::Ended(p, status) if p == pid => ended = Some(decode(status)),
                    sys::Reaped::Ended(..) => {}
                    sys::Reaped::Running | sys::Reaped::NoChildren => break,
                }
            }
            match ended {
                Some(o) => break o,
                None => continue,
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
    end_leftovers();
    running.old_mask.set_as_mask();
    drop(running.cleanup);
    Ok(outcome)
}

fn decode(status: libc::c_int) -> Outcome {
    if libc::WIFEXITED(status) {
        Outcome::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Outcome::Signaled {
            signal: libc::WTERMSIG(status),
            core_dumped: libc::WCOREDUMP(status),
        }
    } else {
        Outcome::Exited(255)
    }
}

/// The launcher's remaining children: processes the program left behind
/// (reparented to the launcher, its subreaper).
fn children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_to_string(format!("/proc/self/task/{me}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Ends what the program left running: SIGTERM, up to 2 s, then SIGKILL.
/// The program's service is over when its main process ends; its background
/// processes must not keep its secrets alive unsupervised.
fn end_leftovers() {
    let left = children();
    if left.is_empty() {
        return;
    }
    tracing::warn!(
        count = left.len(),
        "the program left processes running; terminating them"
    );
    for p in &left {
        let _ = sys::kill(*p, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        while let Ok(sys::Reaped::Ended(..)) = sys::reap() {}
        if children().is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for p in children() {
        let _ = sys::kill(p, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        match sys::reap() {
            Ok(sys::Reaped::NoChildren) | Err(_) => return,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
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
