//! The one place a [`FsError`] becomes an errno.
//!
//! Namespace errors map to their POSIX twins. Every failure of
//! authentication or freshness (a record that does not verify, a file rolled
//! back or swapped, a manifest that does not open, a malformed structure)
//! becomes `EIO` and is logged with the path and the reason: the program sees
//! an I/O error, never bytes that were not authenticated.

use std::io::ErrorKind;

use fuser::Errno;
use veil_fs::FsError;

/// The errno for `err`, raised by `op` on volume path `path`.
pub(crate) fn errno(op: &'static str, path: &str, err: &FsError) -> Errno {
    match err {
        FsError::NotFound(_) => Errno::ENOENT,
        FsError::AlreadyExists(_) => Errno::EEXIST,
        FsError::NotADirectory(_) => Errno::ENOTDIR,
        FsError::IsADirectory(_) => Errno::EISDIR,
        FsError::NotEmpty(_) => Errno::ENOTEMPTY,
        FsError::Invalid(_) => Errno::EINVAL,
        FsError::Io { kind, .. } => {
            let e = io_errno(*kind);
            tracing::warn!(op, path, error = %err, errno = e.code(), "host I/O failed");
            e
        }
        FsError::NotCurrent { .. }
        | FsError::InFile { .. }
        | FsError::BadRecord { .. }
        | FsError::BadManifest
        | FsError::FileIdMismatch { .. }
        | FsError::WrongKeyOrTamperedHeader
        | FsError::Malformed { .. } => {
            tracing::error!(
                op,
                path,
                reason = %err,
                "integrity check failed: refusing with EIO"
            );
            Errno::EIO
        }
        other => {
            tracing::error!(op, path, reason = %other, "volume error: refusing with EIO");
            Errno::EIO
        }
    }
}

/// An OS error kind from the host side, as the program should see it. Kinds
/// that would read as a statement about the volume's namespace (`NotFound`,
/// `AlreadyExists` on a host object) are host trouble: `EIO`.
fn io_errno(kind: ErrorKind) -> Errno {
    let code = match kind {
        ErrorKind::StorageFull => libc::ENOSPC,
        ErrorKind::QuotaExceeded => libc::EDQUOT,
        ErrorKind::FileTooLarge => libc::EFBIG,
        ErrorKind::ReadOnlyFilesystem => libc::EROFS,
        ErrorKind::PermissionDenied => libc::EACCES,
        ErrorKind::OutOfMemory => libc::ENOMEM,
        ErrorKind::Interrupted => libc::EINTR,
        _ => libc::EIO,
    };
    Errno::from_i32(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_errors_keep_their_meaning() {
        let p = "/a".to_owned();
        assert_eq!(
            errno("t", "/a", &FsError::NotFound(p.clone())),
            Errno::ENOENT
        );
        assert_eq!(
            errno("t", "/a", &FsError::AlreadyExists(p.clone())),
            Errno::EEXIST
        );
        assert_eq!(
            errno("t", "/a", &FsError::NotADirectory(p.clone())),
            Errno::ENOTDIR
        );
        assert_eq!(
            errno("t", "/a", &FsError::IsADirectory(p.clone())),
            Errno::EISDIR
        );
        assert_eq!(errno("t", "/a", &FsError::NotEmpty(p)), Errno::ENOTEMPTY);
    }

    #[test]
    fn integrity_failures_are_eio() {
        let bad = FsError::BadRecord {
            index: 3,
            reason: "tag",
        };
        for e in [
            FsError::NotCurrent {
                path: "/a".into(),
                detail: "rolled back".into(),
            },
            FsError::InFile {
                path: "/a".into(),
                source: Box::new(bad.clone()),
            },
            bad,
            FsError::BadManifest,
            FsError::Malformed {
                what: "manifest",
                detail: "x".into(),
            },
        ] {
            assert_eq!(errno("read", "/a", &e), Errno::EIO, "{e}");
        }
    }

    #[test]
    fn host_io_kinds() {
        let io = |kind| FsError::Io {
            action: "writing".into(),
            kind,
            message: "m".into(),
        };
        assert_eq!(
            errno("w", "/a", &io(ErrorKind::StorageFull)).code(),
            libc::ENOSPC
        );
        assert_eq!(errno("w", "/a", &io(ErrorKind::NotFound)), Errno::EIO);
        assert_eq!(errno("w", "/a", &io(ErrorKind::Other)), Errno::EIO);
    }
}
