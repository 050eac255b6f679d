//! argv and environment for the program, from what the CAS released.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::{LaunchError, Released, ReleasedFile, SecretBuf};

/// What to execute: program, argv and envp (NUL-terminated strings in one
/// [`SecretBuf`]) and the files to place.
#[derive(Debug)]
pub struct ExecPlan {
    pub(crate) program: PathBuf,
    pub(crate) strings: SecretBuf,
    pub(crate) argv: Vec<usize>,
    pub(crate) env: Vec<usize>,
    pub(crate) files: Vec<ReleasedFile>,
    env_names: Vec<String>,
}

impl ExecPlan {
    /// Builds the plan: argv from the policy plus `host_args` (only when the
    /// policy allows them); the environment from the policy plus those of
    /// `host_env` whose names the policy lists (the policy's value wins).
    /// Takes the released files out of `released`.
    pub fn new(
        released: &mut Released,
        host_args: &[OsString],
        host_env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<ExecPlan, LaunchError> {
        if !host_args.is_empty() && !released.host_args {
            return Err(LaunchError::NotAllowed(format!(
                "the policy of this service does not allow host arguments, and {} were given after `--`; remove them, or set `host_args: true` in the policy",
                host_args.len()
            )));
        }
        if released.argv.is_empty() {
            return Err(LaunchError::Protocol("the released argv is empty".into()));
        }
        let allowed: BTreeSet<&str> = released.host_env.iter().map(String::as_str).collect();
        let policy_names: BTreeSet<&str> = released.env.iter().map(|(k, _)| k.as_str()).collect();
        let mut passed: Vec<(OsString, OsString)> = host_env
            .into_iter()
            .filter(|(k, _)| {
                k.to_str()
                    .is_some_and(|k| allowed.contains(k) && !policy_names.contains(k))
            })
            .collect();
        passed.sort();
        passed.dedup_by(|a, b| a.0 == b.0);

        for (i, a) in released.argv.iter().enumerate() {
            if a.as_slice().contains(&0) {
                return Err(LaunchError::Protocol(format!(
                    "argument {i} contains a NUL byte and cannot be passed"
                )));
            }
        }
        for (i, a) in host_args.iter().enumerate() {
            if a.as_bytes().contains(&0) {
                return Err(LaunchError::NotAllowed(format!(
                    "host argument {i} contains a NUL byte"
                )));
            }
        }
        for (k, v) in &released.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(LaunchError::Protocol(format!(
                    "environment variable name {k:?} is not valid"
                )));
            }
            if v.as_slice().contains(&0) {
                return Err(LaunchError::Protocol(format!(
                    "the value of environment variable {k} contains a NUL byte"
                )));
            }
        }

        let mut size = 0usize;
        for a in &released.argv {
            size += a.len() + 1;
        }
        for a in host_args {
            size += a.len() + 1;
        }
        for (k, v) in &released.env {
            size += k.len() + 1 + v.len() + 1;
        }
        for (k, v) in &passed {
            size += k.len() + 1 + v.len() + 1;
        }
        let mut strings = SecretBuf::with_capacity(size)
            .map_err(|e| LaunchError::os("allocating secret memory", e))?;
        let push = |s: &mut SecretBuf, parts: &[&[u8]]| -> Result<usize, LaunchError> {
            let at = s.len();
            for p in parts {
                s.push(p)
                    .map_err(|e| LaunchError::os("building the environment", e))?;
            }
            s.push(&[0])
                .map_err(|e| LaunchError::os("building the environment", e))?;
            Ok(at)
        };
        let mut argv = Vec::new();
        for a in &released.argv {
            argv.push(push(&mut strings, &[a.as_slice()])?);
        }
        for a in host_args {
            argv.push(push(&mut strings, &[a.as_bytes()])?);
        }
        let mut env = Vec::new();
        let mut env_names = Vec::new();
        for (k, v) in &released.env {
            env.push(push(&mut strings, &[k.as_bytes(), b"=", v.as_slice()])?);
            env_names.push(k.clone());
        }
        for (k, v) in &passed {
            env.push(push(&mut strings, &[k.as_bytes(), b"=", v.as_bytes()])?);
            env_names.push(k.to_string_lossy().into_owned());
        }
        Ok(ExecPlan {
            program: released.program.path.clone(),
            strings,
            argv,
            env,
            files: std::mem::take(&mut released.files),
            env_names,
        })
    }

    /// The program to execute.
    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// The names (never the values) of the program's environment variables.
    pub fn env_names(&self) -> &[String] {
        &self.env_names
    }

    /// How many arguments (argv[0] included).
    pub fn argc(&self) -> usize {
        self.argv.len()
    }

    /// The declared paths of the files to place.
    pub fn file_paths(&self) -> impl Iterator<Item = &std::path::Path> {
        self.files.iter().map(|f| f.path.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProgramMeasurement;

    fn released(host_args: bool) -> Released {
        let s = |v: &str| SecretBuf::copy_of(v.as_bytes()).unwrap();
        Released {
            program: ProgramMeasurement {
                path: "/bin/sh".into(),
                executable: [0; 48],
                interpreter: None,
            },
            tee: veil_attest::Tee::Sim,
            key_pkcs8: s("k"),
            certificate: String::new(),
            ca: String::new(),
            argv: vec![s("/bin/sh"), s("-c"), s("echo canary")],
            host_args,
            env: vec![
                ("PASSWORD".into(), s("canary-pw")),
                ("PATH".into(), s("/bin")),
            ],
            host_env: vec!["TERM".into(), "PATH".into()],
            files: vec![],
            volumes: vec![],
            network: vec![],
            audit_seq: 1,
        }
    }

    fn strings(p: &ExecPlan, offs: &[usize]) -> Vec<String> {
        offs.iter()
            .map(|&o| {
                let s = &p.strings.as_slice()[o..];
                let end = s.iter().position(|&b| b == 0).unwrap();
                String::from_utf8(s[..end].to_vec()).unwrap()
            })
            .collect()
    }

    #[test]
    fn environment_is_the_policys_plus_allowed_host_names() {
        let mut r = released(false);
        let host = vec![
            ("TERM".into(), "xterm".into()),
            ("PATH".into(), "/evil".into()),
            ("HOME".into(), "/root".into()),
        ];
        let p = ExecPlan::new(&mut r, &[], host).unwrap();
        let env = strings(&p, &p.env);
        assert_eq!(env, ["PASSWORD=canary-pw", "PATH=/bin", "TERM=xterm"]);
        assert_eq!(strings(&p, &p.argv), ["/bin/sh", "-c", "echo canary"]);
        assert_eq!(p.env_names(), ["PASSWORD", "PATH", "TERM"]);
        assert!(!format!("{p:?}").contains("canary"));
    }

    #[test]
    fn host_args_only_where_allowed() {
        let e = ExecPlan::new(&mut released(false), &["x".into()], vec![]).unwrap_err();
        assert!(e.to_string().contains("host_args: true"), "{e}");
        let mut r = released(true);
        let p = ExecPlan::new(&mut r, &["extra".into()], vec![]).unwrap();
        assert_eq!(strings(&p, &p.argv).last().unwrap(), "extra");
    }

    #[test]
    fn nul_bytes_are_refused_without_printing_the_value() {
        let mut r = released(false);
        r.env[0].1 = SecretBuf::copy_of(b"canary\0x").unwrap();
        let e = ExecPlan::new(&mut r, &[], vec![]).unwrap_err().to_string();
        assert!(e.contains("PASSWORD") && !e.contains("canary"), "{e}");
    }
}
