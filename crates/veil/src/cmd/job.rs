//! `veil job create|fetch`: secure remote execution. A data owner encrypts a
//! script and its input into volumes (file-shield format) on their own
//! machine and writes a session that releases the keys only to the attested
//! interpreter; the host runs the job with `veil run`; the owner decrypts the
//! output, after checking it is the version the CAS holds.

use std::path::{Path, PathBuf};

use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::cli::{
    CasUrl, FsDecryptArgs, FsEncryptArgs, FsKeyArgs, JobCreateArgs, JobFetchArgs, JobTee,
};
use crate::cmd::fs::{self, split_session};
use crate::config::{client, load_identity, runtime, veil_home};
use crate::failure::Failure;

/// The service a job runs as.
const SERVICE: &str = "job";
/// Where the program sees its volumes.
const MOUNT_ROOT: &str = "/veil/job";
/// The bundle's description, beside its `volumes/` directory.
const JOB_FILE: &str = "job.json";

/// `job.json`: what the host and `veil job fetch` need to know.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    /// Format version (1).
    version: u32,
    session: String,
    service: String,
    /// The CAS the session lives in.
    cas: String,
    /// The TEE the accept rule names.
    tee: String,
    /// Tags of the read-only volumes as made (the CAS holds them).
    input_tag: String,
    code_tag: String,
    /// The host's command line, relative to the bundle directory.
    run: Vec<String>,
}

fn tee_name(t: JobTee) -> &'static str {
    match t {
        JobTee::Sim => "sim",
        JobTee::Snp => "snp",
        JobTee::Tdx => "tdx",
        JobTee::Sgx => "sgx",
    }
}

fn volume_dir(bundle: &Path, session: &str, name: &str) -> PathBuf {
    bundle
        .join("volumes")
        .join(session)
        .join(SERVICE)
        .join(name)
}

fn key_args(session: &str, volume: &str, cas: &CasUrl) -> FsKeyArgs {
    FsKeyArgs {
        key_file: None,
        session: Some(session.to_owned()),
        volume: Some(volume.to_owned()),
        service: Some(SERVICE.to_owned()),
        cas: cas.clone(),
    }
}

/// A YAML double-quoted scalar.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The accept rule: the interpreter pinned by the TEE measurement (for the
/// simulated TEE computed here, as `veil measure` would) and by its file
/// digest (`executable`).
fn accept_rule(a: &JobCreateArgs, interpreter: &Path) -> Result<String, Failure> {
    let m = veil_launcher::measure_program(interpreter)?;
    let executable = hex::encode(m.executable);
    let measurement = match (a.tee, &a.measurement) {
        (JobTee::Sim, None) => {
            let launcher = veil_launcher::launcher_measurement(Some(&veil_home().join("sim")))
                .map_err(|e| Failure::Usage(format!("cannot measure the launcher: {e}")))?;
            hex::encode(veil_launcher::sim_launch_measurement(&launcher, &m))
        }
        (_, Some(hexm)) => {
            let h = hexm.trim().to_ascii_lowercase();
            if !(h.len() == 64 || h.len() == 96) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Failure::Usage(format!(
                    "--measurement {hexm:?} must be 64 or 96 hex digits"
                )));
            }
            h
        }
        (t, None) => {
            return Err(Failure::Usage(format!(
            "--tee {} needs --measurement HEX (the TEE measurement of the host's launcher image)",
            tee_name(t)
        )))
        }
    };
    Ok(format!(
        "{{ tee: {}, measurement: {measurement}, executable: {executable} }}",
        tee_name(a.tee)
    ))
}

/// The session of a job.
fn policy_text(
    a: &JobCreateArgs,
    owner: &str,
    interpreter: &Path,
    script_name: &str,
    rule: &str,
) -> String {
    let mut command = vec![
        q(&interpreter.to_string_lossy()),
        q(&format!("{MOUNT_ROOT}/code/{script_name}")),
    ];
    command.extend(a.args.iter().map(|s| q(s)));
    format!(
        "# Written by `veil job create`: the input, code and output keys are\n\
         # released only to the attested interpreter below.\n\
         name: {session}\n\
         version: 1\n\
         owners: [{owner}]\n\
         secrets:\n\
         \x20 - {{ name: input_key, kind: aes-256, export: [{{ owner: true }}] }}\n\
         \x20 - {{ name: code_key, kind: aes-256, export: [{{ owner: true }}] }}\n\
         \x20 - {{ name: output_key, kind: aes-256, export: [{{ owner: true }}] }}\n\
         services:\n\
         \x20 - name: {SERVICE}\n\
         \x20   accept: [{rule}]\n\
         \x20   command: [{command}]\n\
         \x20   env: {{ JOB_INPUT: {MOUNT_ROOT}/input, JOB_OUTPUT: {MOUNT_ROOT}/output, HOME: {MOUNT_ROOT}/output, PATH: /usr/local/bin:/usr/bin:/bin }}\n\
         \x20   volumes:\n\
         \x20     - {{ name: input, path: {MOUNT_ROOT}/input, mode: encrypted, key: input_key, read_only: true }}\n\
         \x20     - {{ name: code, path: {MOUNT_ROOT}/code, mode: encrypted, key: code_key, read_only: true }}\n\
         \x20     - {{ name: output, path: {MOUNT_ROOT}/output, mode: encrypted, key: output_key }}\n",
        session = a.session,
        command = command.join(", "),
    )
}

pub fn create(a: JobCreateArgs) -> Result<(), Failure> {
    split_session(&a.session)?;
    if !a.input.is_dir() {
        return Err(Failure::Usage(format!(
            "--input {} is not a directory",
            a.input.display()
        )));
    }
    if !a.script.is_file() {
        return Err(Failure::Usage(format!(
            "--script {} is not a file",
            a.script.display()
        )));
    }
    if !fs::is_new_or_empty(&a.bundle)? {
        return Err(Failure::Usage(format!(
            "{} is not empty: a job bundle is written to a new or empty directory",
            a.bundle.display()
        )));
    }
    let script_name = a
        .script
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && !n.contains('"'))
        .ok_or_else(|| {
            Failure::Usage(format!(
                "--script {}: the file name must be UTF-8",
                a.script.display()
            ))
        })?
        .to_owned();
    let owner = load_identity()?
        .ok_or_else(|| {
            Failure::Usage(
                "this needs your client identity: run `veil identity create` first".into(),
            )
        })?
        .fingerprint()
        .to_string();
    let interpreter = veil_launcher::resolve_program(&a.interpreter)?;
    let rule = accept_rule(&a, &interpreter)?;
    let policy = policy_text(&a, &owner, &interpreter, &script_name, &rule);

    // 1. The session: its keys are generated by the CAS.
    let c = client(&a.cas, true)?;
    let cas_url = c.url().to_owned();
    let rt = runtime()?;
    std::fs::create_dir_all(&a.bundle).map_err(|e| Failure::io("cannot create", &a.bundle, e))?;
    let applied = rt.block_on(c.call(
        Method::POST,
        "/v1/sessions",
        Some((policy.clone().into_bytes(), "application/yaml")),
    ))?;
    let applied: serde_json::Value = serde_json::from_slice(&applied)
        .map_err(|e| Failure::Usage(format!("unexpected answer to the session: {e}")))?;
    if applied["state"] == "pending" {
        return Err(Failure::NotAcceptable(format!(
            "session {} is pending approval by its other owners; approve it, then create the job again",
            a.session
        )));
    }
    eprintln!(
        "session {} applied ({} {})",
        a.session,
        tee_name(a.tee),
        rule
    );

    // 2. Input and code into read-only volumes, with keys read back from
    // the CAS (owner, mutual TLS); the CAS is told their tags.
    let staging = tempfile::Builder::new()
        .prefix("veil-job-code")
        .tempdir()
        .map_err(|e| Failure::Usage(format!("cannot make a temporary directory: {e}")))?;
    let code_src = staging.path().join("code");
    std::fs::create_dir(&code_src).map_err(|e| Failure::io("cannot create", &code_src, e))?;
    std::fs::copy(&a.script, code_src.join(&script_name))
        .map_err(|e| Failure::io("cannot read", &a.script, e))?;
    let mut tags = Vec::new();
    for (name, src) in [("input", a.input.clone()), ("code", code_src)] {
        let vol = volume_dir(&a.bundle, &a.session, name);
        let tag = fs::encrypt_into(&FsEncryptArgs {
            src,
            vol,
            init: true,
            mode: None,
            chunk_size: 16384,
            force: false,
            skip_special: false,
            progress: a.progress,
            key: key_args(&a.session, name, &a.cas),
        })?;
        let _: veil_api::VolumeAccepted = rt.block_on(c.post(
            &veil_api::volume_accept_path(&a.session, SERVICE, name),
            &veil_api::VolumeAccept {
                tag: Some(tag.clone()),
            },
        ))?;
        tags.push(tag);
    }
    drop(staging);

    // 3. The bundle's description and the host's command.
    let run = vec![
        "veil".to_owned(),
        "run".to_owned(),
        "--session".to_owned(),
        a.session.clone(),
        "--service".to_owned(),
        SERVICE.to_owned(),
        "--tee".to_owned(),
        tee_name(a.tee).to_owned(),
        "--cas".to_owned(),
        cas_url.clone(),
        "--volumes-dir".to_owned(),
        "volumes".to_owned(),
    ];
    let job = JobFile {
        version: 1,
        session: a.session.clone(),
        service: SERVICE.to_owned(),
        cas: cas_url,
        tee: tee_name(a.tee).to_owned(),
        input_tag: tags[0].clone(),
        code_tag: tags[1].clone(),
        run: run.clone(),
    };
    let text = serde_json::to_string_pretty(&job)
        .map_err(|e| Failure::Usage(format!("cannot encode {JOB_FILE}: {e}")))?;
    let job_path = a.bundle.join(JOB_FILE);
    std::fs::write(&job_path, text + "\n")
        .map_err(|e| Failure::io("cannot write", &job_path, e))?;
    eprintln!(
        "job bundle {} ready: hand it to the host, who runs (in the bundle directory):",
        a.bundle.display()
    );
    println!("{}", run.join(" "));
    Ok(())
}

fn read_job(bundle: &Path) -> Result<JobFile, Failure> {
    let p = bundle.join(JOB_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| Failure::io("cannot read", &p, e))?;
    let job: JobFile = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{} is not a job description: {e}", p.display())))?;
    if job.version != 1 {
        return Err(Failure::Usage(format!(
            "{} is job format version {}; this veil reads version 1",
            p.display(),
            job.version
        )));
    }
    split_session(&job.session)?;
    Ok(job)
}

pub fn fetch(a: JobFetchArgs) -> Result<(), Failure> {
    let job = read_job(&a.bundle)?;
    let cas = CasUrl {
        url: Some(a.cas.url.clone().unwrap_or(job.cas.clone())),
    };
    let vol = volume_dir(&a.bundle, &job.session, "output");
    if !vol.join(veil_fs::HEADER_FILE).exists() {
        return Err(Failure::NotAcceptable(format!(
            "the bundle holds no output volume ({}): has the host run the job?",
            vol.display()
        )));
    }
    // The output must be the version the CAS holds: the launcher committed
    // its tag; an older copy (a host replaying a previous run) is refused.
    let c = client(&cas, true)?;
    let rt = runtime()?;
    let list: veil_api::VolumeList = rt.block_on(c.get(&veil_api::volumes_path(&job.session)))?;
    let held = list
        .volumes
        .iter()
        .find(|v| v.service == job.service && v.volume == "output")
        .and_then(|v| v.tag.clone())
        .ok_or_else(|| {
            Failure::NotAcceptable(format!(
                "the CAS holds no output tag for {}: the job has not run to completion",
                job.session
            ))
        })?;
    let found = veil_fs::Volume::tag_on_disk(&vol)
        .map_err(|e| Failure::NotAcceptable(format!("output volume {}: {e}", vol.display())))?
        .map(hex::encode)
        .unwrap_or_default();
    if found != held {
        return Err(Failure::NotAcceptable(format!(
            "the output volume in {} is not the version the CAS holds (expected tag {held}, found {found}): the host gave an older or another output",
            vol.display()
        )));
    }
    fs::decrypt(FsDecryptArgs {
        vol,
        dst: a.out.clone(),
        progress: a.progress,
        key: key_args(&job.session, "output", &cas),
    })
}
