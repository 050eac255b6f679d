//! The attestation exchange, from the launcher's side (attestation spec §5).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use veil_api::{AttestRequest, AttestResponse, NonceResponse, WireEndorsement, ATTEST_DOMAIN};
use veil_attest::{Endorsement, Tee};
use veil_client::{CasClient, ClientError};
use veil_provider::{EvidenceProvider, ProviderChoice, ProviderConfig};
use zeroize::{Zeroize, Zeroizing};

use crate::measure::{
    launcher_measurement, measure_program, resolve_program, sim_launch_measurement,
    ProgramMeasurement,
};
use crate::network::ReleasedTunnel;
use crate::volumes::{volume_claim_value, volume_dir, ReleasedVolume};
use crate::{LaunchError, SecretBuf};

/// How long to keep trying an unreachable CAS.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The wait after the first failure; it doubles each time.
    pub first_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
}

impl Default for Retry {
    /// 6 attempts, waiting 0.2, 0.4, 0.8, 1.6 and 3.2 s between them.
    fn default() -> Self {
        Retry {
            attempts: 6,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// What to attest as.
#[derive(Debug, Clone)]
pub struct AttestOptions {
    /// The session, `namespace/name`.
    pub session: String,
    /// The service in it.
    pub service: String,
    /// Which evidence provider.
    pub tee: ProviderChoice,
    /// Where providers find kernel interfaces (`/` on a real machine).
    pub provider_root: PathBuf,
    /// The simulated TEE's key directory.
    pub sim_dir: PathBuf,
    /// Retries when the CAS is unreachable.
    pub retry: Retry,
    /// Where protected volumes live on the host (each in
    /// `DIR/NAMESPACE/NAME/SERVICE/VOLUME`).
    pub volumes_dir: PathBuf,
}

/// A file the CAS released.
#[derive(Debug)]
pub struct ReleasedFile {
    /// Its declared absolute path.
    pub path: PathBuf,
    /// Its mode.
    pub mode: u32,
    /// Its content.
    pub content: SecretBuf,
}

/// What an attested launcher received. Secrets sit in [`SecretBuf`]s.
#[derive(Debug)]
pub struct Released {
    /// The program that was measured (and is to be executed).
    pub program: ProgramMeasurement,
    /// The TEE the evidence came from.
    pub tee: Tee,
    /// The launcher's private key (PKCS#8 DER) for `certificate`.
    pub key_pkcs8: SecretBuf,
    /// The launcher's certificate (PEM), issued by the session CA.
    pub certificate: String,
    /// The session CA (PEM).
    pub ca: String,
    /// argv from the policy, templates filled.
    pub argv: Vec<SecretBuf>,
    /// Whether the host may append arguments.
    pub host_args: bool,
    /// Environment from the policy, templates filled.
    pub env: Vec<(String, SecretBuf)>,
    /// Names the host may pass through from its own environment.
    pub host_env: Vec<String>,
    /// Files to place.
    pub files: Vec<ReleasedFile>,
    /// Protected volumes to mount.
    pub volumes: Vec<ReleasedVolume>,
    /// The network shield's tunnels.
    pub network: Vec<ReleasedTunnel>,
    /// The audit sequence number of the grant.
    pub audit_seq: u64,
}

impl Released {
    /// A CAS client identity made of the attested certificate and its key:
    /// how the launcher commits volume tags (mutual TLS).
    pub fn identity(&self) -> Result<veil_client::ClientIdentity, LaunchError> {
        let cert = pem::parse(&self.certificate).map_err(|e| {
            LaunchError::Protocol(format!("the issued certificate is not PEM: {e}"))
        })?;
        Ok(veil_client::ClientIdentity {
            chain: vec![rustls_pki_types::CertificateDer::from(
                cert.contents().to_vec(),
            )],
            key: rustls_pki_types::PrivateKeyDer::Pkcs8(
                rustls_pki_types::PrivatePkcs8KeyDer::from(self.key_pkcs8.as_slice().to_vec()),
            ),
        })
    }
}

/// What stays the same across attempts: the program and the provider.
struct Prepared {
    program_name: String,
    program: ProgramMeasurement,
    provider: Box<dyn EvidenceProvider>,
}

enum Failure {
    Transient(String),
    Fatal(LaunchError),
}

impl From<LaunchError> for Failure {
    fn from(e: LaunchError) -> Self {
        Failure::Fatal(e)
    }
}

fn classify(e: ClientError) -> Failure {
    if e.is_transient() {
        return Failure::Transient(e.to_string());
    }
    match e {
        ClientError::Api {
            code,
            message,
            reason,
            ..
        } => {
            let code = reason.unwrap_or(code);
            // The CAS's message often starts with the code; say it once.
            let message = message
                .strip_prefix(&format!("{code}: "))
                .map(str::to_owned)
                .unwrap_or(message);
            Failure::Fatal(LaunchError::Denied { code, message })
        }
        e @ ClientError::Tls { .. } => Failure::Fatal(LaunchError::UntrustedCas(e.to_string())),
        other => Failure::Fatal(LaunchError::Protocol(other.to_string())),
    }
}

/// Attests to the CAS and returns what it released; retries (with backoff)
/// while the CAS is unreachable, never when it denies.
pub async fn attest(client: &CasClient, opts: &AttestOptions) -> Result<Released, LaunchError> {
    let started = Instant::now();
    let attempts = opts.retry.attempts.max(1);
    let mut delay = opts.retry.first_delay;
    let mut prepared: Option<Prepared> = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attempt_once(client, opts, &mut prepared).await {
            Ok(r) => return Ok(r),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient(last)) => {
                if attempt >= attempts {
                    return Err(LaunchError::Unreachable {
                        url: client.url().to_owned(),
                        attempts: attempt,
                        elapsed_ms: started.elapsed().as_millis(),
                        last,
                    });
                }
                tracing::warn!(attempt, error = %last, retry_in_ms = delay.as_millis() as u64, "the CAS is unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(opts.retry.max_delay);
            }
        }
    }
}

async fn attempt_once(
    client: &CasClient,
    opts: &AttestOptions,
    prepared: &mut Option<Prepared>,
) -> Result<Released, Failure> {
    let nonce: NonceResponse = client
        .get(&veil_api::nonce_path(&opts.session, &opts.service))
        .await
        .map_err(classify)?;
    let nonce_bytes = hex::decode(&nonce.nonce)
        .map_err(|e| LaunchError::Protocol(format!("the nonce is not hex: {e}")))?;
    let program_name = nonce.program.ok_or_else(|| {
        LaunchError::Protocol(
            "the CAS did not name the service's program (is it older than this launcher?)".into(),
        )
    })?;
    if prepared
        .as_ref()
        .is_none_or(|p| p.program_name != program_name)
    {
        *prepared = Some(prepare(opts, program_name)?);
    }
    let Some(p) = prepared.as_ref() else {
        return Err(Failure::Fatal(LaunchError::Protocol(
            "no program prepared".into(),
        )));
    };

    // The ephemeral key whose certificate the CAS issues.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| LaunchError::os("generating the launcher key", std::io::Error::other(e)))?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let mut pkcs8 = key.serialize_der();
    let key_pkcs8 = SecretBuf::copy_of(&pkcs8);
    pkcs8.zeroize();
    drop(key);
    let key_pkcs8 = key_pkcs8.map_err(|e| LaunchError::os("allocating key memory", e))?;

    let mut claims = p.program.runtime_claims();
    for name in &nonce.volumes {
        let dir = volume_dir(&opts.volumes_dir, &opts.session, &opts.service, name);
        claims.insert(veil_api::volume_claim(name), volume_claim_value(&dir)?);
    }
    let report_data = veil_api::report_data(
        ATTEST_DOMAIN,
        &nonce_bytes,
        &spki,
        &veil_api::runtime_claims_digest(&claims),
    );
    let collected = p
        .provider
        .collect(&report_data)
        .map_err(LaunchError::from)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut endorsements = Vec::new();
    for e in &collected.endorsements {
        match e {
            Endorsement::DcapCollateral(d) => {
                endorsements.push(WireEndorsement::DcapCollateral(b64.encode(d)))
            }
            Endorsement::Certificates(certs) => {
                for c in certs {
                    endorsements.push(WireEndorsement::Certificate(b64.encode(c)));
                }
            }
            _ => {}
        }
    }
    let request = AttestRequest {
        session: opts.session.clone(),
        service: opts.service.clone(),
        nonce: nonce.nonce.clone(),
        tee: collected.evidence.tee,
        evidence: b64.encode(&collected.evidence.bytes),
        endorsements,
        spki: b64.encode(&spki),
        runtime_claims: claims,
    };
    let response: AttestResponse = client
        .post("/v1/attest", &request)
        .await
        .map_err(classify)?;
    tracing::info!(
        session = %opts.session,
        service = %opts.service,
        tee = %collected.evidence.tee,
        audit_seq = response.audit_seq,
        "attestation granted"
    );
    Ok(into_released(
        response,
        opts,
        p.program.clone(),
        collected.evidence.tee,
        key_pkcs8,
    )?)
}

fn prepare(opts: &AttestOptions, program_name: String) -> Result<Prepared, LaunchError> {
    let path = resolve_program(&program_name)?;
    let program = measure_program(&path)?;
    let sim_measurement = if opts.tee == ProviderChoice::Tee(Tee::Sim) {
        let launcher = launcher_measurement(Some(&opts.sim_dir))
            .map_err(|e| LaunchError::os("measuring the launcher", e))?;
        sim_launch_measurement(&launcher, &program)
    } else {
        [0; 48]
    };
    let provider = veil_provider::provider(
        opts.tee,
        &ProviderConfig {
            root: opts.provider_root.clone(),
            sim_dir: opts.sim_dir.clone(),
            sim_measurement,
        },
    )?;
    Ok(Prepared {
        program_name,
        program,
        provider,
    })
}

fn secret(bytes: &[u8]) -> Result<SecretBuf, LaunchError> {
    SecretBuf::copy_of(bytes).map_err(|e| LaunchError::os("allocating secret memory", e))
}

fn into_released(
    r: AttestResponse,
    opts: &AttestOptions,
    program: ProgramMeasurement,
    tee: Tee,
    key_pkcs8: SecretBuf,
) -> Result<Released, LaunchError> {
    let argv = r
        .argv
        .iter()
        .map(|a| secret(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let env = r
        .env
        .iter()
        .map(|(k, v)| Ok((k.clone(), secret(v.as_bytes())?)))
        .collect::<Result<Vec<_>, LaunchError>>()?;
    let mut files = Vec::with_capacity(r.files.len());
    for f in &r.files {
        let path = PathBuf::from(&f.path);
        if !path.is_absolute() || f.mode > 0o7777 {
            return Err(LaunchError::Protocol(format!(
                "the CAS released a file with a bad path or mode: {:?} mode {:o}",
                f.path, f.mode
            )));
        }
        let content = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(f.content.as_bytes())
                .map_err(|e| {
                    LaunchError::Protocol(format!("file {} is not base64: {e}", f.path))
                })?,
        );
        files.push(ReleasedFile {
            path,
            mode: f.mode,
            content: secret(&content)?,
        });
    }
    let mut volumes = Vec::with_capacity(r.volumes.len());
    for v in &r.volumes {
        let key = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(v.key.as_bytes())
                .map_err(|e| {
                    LaunchError::Protocol(format!("volume {} key is not base64: {e}", v.name))
                })?,
        );
        volumes.push(ReleasedVolume {
            name: v.name.clone(),
            path: PathBuf::from(&v.path),
            mode: match v.mode {
                veil_api::VolumeMode::Encrypted => veil_fs::Mode::Encrypted,
                veil_api::VolumeMode::Integrity => veil_fs::Mode::Integrity,
            },
            key: secret(&key)?,
            tag: v.tag.clone(),
            dir: volume_dir(&opts.volumes_dir, &opts.session, &opts.service, &v.name),
            read_only: v.read_only,
        });
    }
    let network = r
        .network
        .iter()
        .enumerate()
        .map(|(i, t)| ReleasedTunnel::from_wire(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Released {
        program,
        tee,
        key_pkcs8,
        certificate: r.certificate.clone(),
        ca: r.ca.clone(),
        argv,
        host_args: r.host_args,
        env,
        host_env: r.host_env.clone(),
        files,
        volumes,
        network,
        audit_seq: r.audit_seq,
    })
}
