//! The command line, as clap types. Nothing here does work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use veil_attest::{Tee, Time};

/// Veil: run unmodified programs in trusted execution environments, with
/// secrets, files and traffic never in clear text outside them.
#[derive(Debug, Parser)]
#[command(name = "veil", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify, inspect and collect TEE evidence (quotes, reports, documents).
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Run, attest and query the Configuration and Attestation Service.
    #[command(subcommand)]
    Cas(CasCommand),
    /// Your client identity (key pair and certificate for mutual TLS).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Policies ("sessions") held by the CAS.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Secrets an owner supplies to a session.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// The CAS's tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Attest to the CAS, then start the service's program with the
    /// arguments, environment and files it released (inside the TEE).
    Run(RunArgs),
    /// Print what a policy must pin to accept a program (the sim measurement,
    /// the executable's digest).
    Measure(MeasureArgs),
    /// A short tour: a local CAS, a session, an unmodified program that gets
    /// its secrets, and a changed program that does not.
    Demo(DemoArgs),
    /// Protected volumes (the file shield): make one, encrypt a tree into
    /// it, decrypt it, verify it, mount it, print its freshness tag.
    #[command(subcommand)]
    Fs(FsCommand),
    /// Encrypt a file or a stream (veil-seal v1: AES-256-GCM, 64 KiB
    /// chunks) under a key file or a session secret exported to owners.
    Encrypt(SealArgs),
    /// Decrypt what `veil encrypt` made; fails closed (exit 1 naming the
    /// chunk) on a wrong key or a modified, truncated or extended input.
    Decrypt(SealArgs),
    /// The freshness tags the CAS holds for a session's volumes (owners).
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Secure remote execution: encrypt a script and its input for a host's
    /// TEE, and fetch the encrypted output back.
    #[command(subcommand)]
    Job(JobCommand),
    /// The network shield by hand: inspect certificates, run a TLS proxy.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The session, namespace/name.
    #[arg(long)]
    pub session: String,
    /// The service within the session.
    #[arg(long)]
    pub service: String,
    #[command(flatten)]
    pub cas: CasUrl,
    /// Where evidence comes from (auto never picks the simulated TEE).
    #[arg(long, value_enum, default_value = "auto")]
    pub tee: CollectTee,
    /// The simulated TEE's key directory (default $VEIL_HOME/sim).
    #[arg(long)]
    pub sim_dir: Option<PathBuf>,
    /// Root under which the kernel's TEE interfaces are found.
    #[arg(long, default_value = "/", hide = true)]
    pub provider_root: PathBuf,
    /// Where the service's protected volumes live on the host: each in
    /// DIR/NAMESPACE/NAME/SERVICE/VOLUME (default $VEIL_HOME/volumes).
    #[arg(long)]
    pub volumes_dir: Option<PathBuf>,
    /// Attempts to reach the CAS before giving up (with backoff, about 6 s for 6).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    /// Arguments appended to the policy's command (only if it says `host_args: true`).
    #[arg(last = true)]
    pub host_args: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The program (an executable or a #! script).
    pub program: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's directory (CAS state, policy, logs) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

/// Where the CAS is: `--cas URL`, else `$VEIL_CAS`, else the last verified CAS.
#[derive(Debug, Args, Clone)]
pub struct CasUrl {
    /// CAS URL, https://HOST:PORT (default: $VEIL_CAS, else the last `veil cas verify`).
    #[arg(long = "cas", env = "VEIL_CAS")]
    pub url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CasCommand {
    /// Run a CAS (foreground; Ctrl-C or SIGTERM stops it).
    Serve(CasServeArgs),
    /// Attest a CAS and pin its certificate for later calls.
    Verify(CasVerifyArgs),
    /// Print a CAS's status.
    Status(CasStatusArgs),
    /// Split the CAS's sealing key into recovery shares for its owners.
    Init(CasInitArgs),
    /// Send your recovery share to a sealed CAS (after attesting it).
    Unseal(CasUnsealArgs),
}

#[derive(Debug, Args)]
pub struct CasInitArgs {
    /// The CAS state directory (holding sealing.key).
    #[arg(long)]
    pub state: PathBuf,
    /// How many shares (one per --recipient).
    #[arg(long)]
    pub recovery_shares: u8,
    /// How many shares unseal the CAS.
    #[arg(long)]
    pub threshold: u8,
    /// An owner's identity certificate (`veil identity show --cert`); repeat N times.
    #[arg(long = "recipient")]
    pub recipients: Vec<PathBuf>,
    /// Where to write the encrypted shares (give each owner theirs).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CasUnsealArgs {
    /// CAS URL, https://HOST:PORT.
    pub url: String,
    /// Your encrypted share (from `veil cas init`).
    #[arg(long)]
    pub share: PathBuf,
    /// The measurement the CAS's TEE must have (hex).
    #[arg(long, conflicts_with = "dev", required_unless_present = "dev")]
    pub expect_measurement: Option<String>,
    /// Accept a development CAS attested by the simulated TEE.
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Args)]
pub struct CasServeArgs {
    /// State directory (store, identity, dev keys); created if missing.
    #[arg(long)]
    pub state: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:8443 (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: String,
    /// Development mode: sealing key in a file, sim evidence, sim attestation accepted where policies list it.
    #[arg(long)]
    pub dev: bool,
    /// Also trust this sim platform public key (dev only; repeatable).
    #[arg(long = "trust-sim-key")]
    pub trust_sim_keys: Vec<PathBuf>,
    /// Write "URL FINGERPRINT" to this file once listening (for scripts).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Seconds a launcher's certificate stays valid (launchers renew it by
    /// attesting again when two thirds of it have passed).
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(5..=31_536_000))]
    pub launcher_cert_validity: u64,
}

#[derive(Debug, Args)]
pub struct CasVerifyArgs {
    /// CAS URL, https://HOST:PORT.
    pub url: String,
    /// The measurement the CAS's TEE must have (hex).
    #[arg(long, conflicts_with = "dev", required_unless_present = "dev")]
    pub expect_measurement: Option<String>,
    /// Accept a development CAS attested by the simulated TEE (no protection).
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Args)]
pub struct CasStatusArgs {
    #[command(flatten)]
    pub cas: CasUrl,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Make a client key pair and certificate under $VEIL_HOME.
    Create(IdentityCreateArgs),
    /// Print your identity's fingerprint (what policies list as owners).
    Show(IdentityShowArgs),
}

#[derive(Debug, Args)]
pub struct IdentityCreateArgs {
    /// A name for the certificate (informational).
    #[arg(long, default_value = "veil client")]
    pub name: String,
    /// Replace an existing identity (the old one is lost).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct IdentityShowArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the identity certificate (PEM), e.g. for `veil cas init --recipient`.
    #[arg(long, conflicts_with = "json")]
    pub cert: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create or update a session from a policy file.
    Apply(SessionFileArgs),
    /// Show a session (secret values are never shown).
    Get(SessionGetArgs),
    /// List the sessions you own.
    List(SessionListArgs),
    /// Show what applying a policy file would change.
    Diff(SessionFileArgs),
    /// Approve a pending update (k-of-n owners).
    Approve(SessionApproveArgs),
}

#[derive(Debug, Args)]
pub struct SessionFileArgs {
    /// The policy (YAML).
    pub file: PathBuf,
    #[command(flatten)]
    pub cas: CasUrl,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SessionGetArgs {
    /// namespace/name
    pub name: String,
    #[command(flatten)]
    pub cas: CasUrl,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SessionListArgs {
    #[command(flatten)]
    pub cas: CasUrl,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SessionApproveArgs {
    /// namespace/name
    pub name: String,
    /// The hash of the pending update to approve.
    pub hash: String,
    #[command(flatten)]
    pub cas: CasUrl,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Upload a `supplied` secret's value (it can never be read back).
    Put(SecretPutArgs),
}

#[derive(Debug, Args)]
pub struct SecretPutArgs {
    /// namespace/name
    pub session: String,
    /// The secret's name in the policy.
    pub secret: String,
    /// Read the value from this file (default: standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub cas: CasUrl,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit records.
    Show(AuditShowArgs),
    /// Check the whole log: hash chain, signatures, no truncation.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditShowArgs {
    /// Only records about this session.
    #[arg(long)]
    pub session: Option<String>,
    #[command(flatten)]
    pub cas: CasUrl,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub cas: CasUrl,
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Check that evidence is genuine at a time, and print what it says.
    Verify(VerifyArgs),
    /// Detect what a file is and print its fields, without verifying it.
    Show(ShowArgs),
    /// Ask this machine's TEE for evidence binding the given report data.
    Collect(CollectArgs),
}

/// The TEEs whose evidence `veil evidence verify` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyTee {
    Sgx,
    Tdx,
    Snp,
    Nitro,
    Sim,
}

impl From<VerifyTee> for Tee {
    fn from(t: VerifyTee) -> Tee {
        match t {
            VerifyTee::Sgx => Tee::Sgx,
            VerifyTee::Tdx => Tee::Tdx,
            VerifyTee::Snp => Tee::Snp,
            VerifyTee::Nitro => Tee::Nitro,
            VerifyTee::Sim => Tee::Sim,
        }
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Which TEE the evidence must come from.
    #[arg(long, value_enum)]
    pub tee: VerifyTee,
    /// The evidence file (quote, report as binary or hex, COSE document, sim evidence).
    #[arg(long)]
    pub evidence: PathBuf,
    /// Endorsements: DCAP collateral JSON (sgx, tdx); VCEK or VLEK and CA
    /// chain, DER or PEM (snp); the sim platform public key (sim).
    #[arg(long = "endorsement")]
    pub endorsements: Vec<PathBuf>,
    /// Verify as of this time: Unix seconds or RFC 3339 (default: now).
    #[arg(long, value_parser = parse_time)]
    pub at: Option<Time>,
    /// Fail unless the evidence carries this report data (hex, up to 64 bytes,
    /// zero-padded).
    #[arg(long)]
    pub expect_report_data: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A quote, SNP report, Nitro document, sim evidence or RA-TLS certificate.
    pub file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where `veil evidence collect` gets evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CollectTee {
    /// Whatever TEE interface this machine has (never the simulated TEE).
    Auto,
    Sim,
    Snp,
    Tdx,
    Sgx,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Which TEE interface to use.
    #[arg(long, value_enum, default_value = "auto")]
    pub tee: CollectTee,
    /// Report data to bind, hex (up to 64 bytes, zero-padded).
    #[arg(long)]
    pub report_data: String,
    /// Root under which the kernel interfaces are found (default /); for
    /// --tee sim, the directory of the sim platform key (default
    /// $VEIL_HOME/sim).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Measurement the simulated TEE states, hex (default: SHA-384 of the
    /// veil executable).
    #[arg(long)]
    pub sim_measurement: Option<String>,
    /// Where to write the evidence.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Where to write certificates the platform handed out (SNP), as PEM.
    #[arg(long)]
    pub endorsement_out: Option<PathBuf>,
}

fn parse_time(s: &str) -> Result<Time, String> {
    s.parse::<Time>().map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum FsCommand {
    /// Make a new, empty volume in a new or empty directory.
    Init(FsInitArgs),
    /// Copy a directory tree into a volume (directories and regular files,
    /// with their modes and mtimes); prints the volume's new freshness tag.
    Encrypt(FsEncryptArgs),
    /// Copy a volume's tree out into a new or empty directory; every byte
    /// written was authenticated first.
    Decrypt(FsDecryptArgs),
    /// Check every file of a volume (exit 1 naming what is wrong), and
    /// optionally that it is the expected version.
    Verify(FsVerifyArgs),
    /// Mount a volume (foreground; Ctrl-C or SIGTERM commits and unmounts).
    Mount(FsMountArgs),
    /// Print a volume's freshness tag (64 hex digits). No key is needed;
    /// with one, the volume is also opened (header and manifest
    /// authenticated) first.
    Tag(FsTagArgs),
}

/// How a volume protects its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsMode {
    /// Confidentiality and integrity: the host sees neither content nor names.
    Encrypted,
    /// Integrity only: content readable on the host, every byte authenticated.
    Integrity,
}

/// Where a volume's key comes from: a key file, or a policy volume's key
/// secret read back from the CAS by an owner.
#[derive(Debug, Args, Clone)]
pub struct FsKeyArgs {
    /// A key file: 64 lower-case hex digits and an optional newline (`veil fs
    /// init --key-file` makes one, mode 0600, when it does not exist).
    #[arg(long, value_name = "FILE", conflicts_with = "session")]
    pub key_file: Option<PathBuf>,
    /// Take the key of a policy volume instead: the session (namespace/name).
    /// Needs --volume; the key secret must be exported to owners
    /// (`export: [{ owner: true }]`).
    #[arg(long, value_name = "NS/NAME", requires = "volume")]
    pub session: Option<String>,
    /// The volume's name in the policy (with --session).
    #[arg(long, value_name = "NAME", requires = "session")]
    pub volume: Option<String>,
    /// The service declaring the volume (with --session; needed only when
    /// several services declare a volume of that name).
    #[arg(long, value_name = "SERVICE", requires = "session")]
    pub service: Option<String>,
    #[command(flatten)]
    pub cas: CasUrl,
}

#[derive(Debug, Args)]
pub struct FsInitArgs {
    /// The volume's directory (created; must be new or empty).
    pub vol: PathBuf,
    /// Protection (with --session, default: the policy volume's; a
    /// different one is refused).
    #[arg(long, value_enum)]
    pub mode: Option<FsMode>,
    /// Chunk size in bytes: a power of two from 4096 to 1048576.
    #[arg(long, default_value_t = 16384)]
    pub chunk_size: u32,
    #[command(flatten)]
    pub key: FsKeyArgs,
}

#[derive(Debug, Args)]
pub struct FsEncryptArgs {
    /// The directory tree to protect.
    pub src: PathBuf,
    /// The volume (made with `veil fs init`, or pass --init).
    pub vol: PathBuf,
    /// Make the volume first when VOL is not one yet (missing or empty
    /// directory), as `veil fs init` would (with --mode, --chunk-size).
    #[arg(long)]
    pub init: bool,
    /// With --init: protection (see `veil fs init`).
    #[arg(long, value_enum, requires = "init")]
    pub mode: Option<FsMode>,
    /// With --init: chunk size in bytes.
    #[arg(long, requires = "init", default_value_t = 16384)]
    pub chunk_size: u32,
    /// Replace paths the volume already has: a file's content is rewritten
    /// in place, a file where a directory is (or the reverse) is removed first.
    /// Paths of the volume not in SRC are kept.
    #[arg(long)]
    pub force: bool,
    /// Skip symbolic links, sockets, FIFOs and devices (with a warning)
    /// instead of refusing the tree.
    #[arg(long)]
    pub skip_special: bool,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub key: FsKeyArgs,
}

#[derive(Debug, Args)]
pub struct FsDecryptArgs {
    /// The volume.
    pub vol: PathBuf,
    /// Where to write the tree (created; must be new or empty).
    pub dst: PathBuf,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub key: FsKeyArgs,
}

#[derive(Debug, Args)]
pub struct FsVerifyArgs {
    /// The volume.
    pub vol: PathBuf,
    /// Also require this freshness tag (from `veil fs tag`, `encrypt` or
    /// `veil volume list`): exit 1 when the volume is another version.
    #[arg(long, value_name = "TAG")]
    pub expect_tag: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub key: FsKeyArgs,
}

#[derive(Debug, Args)]
pub struct FsMountArgs {
    /// The volume.
    pub vol: PathBuf,
    /// An existing directory to mount it on.
    pub mountpoint: PathBuf,
    /// Mount read-only.
    #[arg(long)]
    pub read_only: bool,
    #[command(flatten)]
    pub key: FsKeyArgs,
}

#[derive(Debug, Args)]
pub struct FsTagArgs {
    /// The volume.
    pub vol: PathBuf,
    #[command(flatten)]
    pub key: FsKeyArgs,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Encrypt a script and its input directory into volumes, and apply a
    /// session that releases their keys (and the output's) only to the
    /// attested interpreter; writes a job bundle for the host.
    Create(JobCreateArgs),
    /// Decrypt a job's output from its bundle, after checking it is the
    /// version the CAS holds.
    Fetch(JobFetchArgs),
}

/// Which TEE the host runs the job in.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum JobTee {
    /// The simulated TEE: the measurement is computed here, as `veil
    /// measure` does (development; the host uses the same veil binary).
    Sim,
    Snp,
    Tdx,
    Sgx,
}

#[derive(Debug, Args)]
pub struct JobCreateArgs {
    /// The session to create for the job, namespace/name.
    #[arg(long, value_name = "NS/NAME")]
    pub session: String,
    /// The script to run.
    #[arg(long, value_name = "FILE")]
    pub script: PathBuf,
    /// The input directory (encrypted into a read-only volume).
    #[arg(long, value_name = "DIR")]
    pub input: PathBuf,
    /// The interpreter (a path, or a name looked up in PATH); its
    /// measurement is pinned.
    #[arg(long, default_value = "python3")]
    pub interpreter: String,
    /// An argument for the script (repeatable).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// The TEE the host runs.
    #[arg(long, value_enum, default_value = "sim")]
    pub tee: JobTee,
    /// The TEE measurement to pin (hex; required unless --tee sim).
    #[arg(long)]
    pub measurement: Option<String>,
    /// The job bundle to write (a new or empty directory).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub bundle: PathBuf,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub cas: CasUrl,
}

#[derive(Debug, Args)]
pub struct JobFetchArgs {
    /// The job bundle the host ran.
    pub bundle: PathBuf,
    /// Where to write the output tree (a new or empty directory).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub cas: CasUrl,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Make the CAS hold this tag for a volume (e.g. accept a restored
    /// copy), or hold none (--clear: the next start is accepted as found).
    Accept(VolumeAcceptArgs),
    /// List a session's volumes and the tags the CAS holds for them.
    List(VolumeListArgs),
}

#[derive(Debug, Args)]
pub struct VolumeAcceptArgs {
    /// The session, namespace/name.
    pub session: String,
    /// The service declaring the volume.
    pub service: String,
    /// The volume's name in the policy.
    pub volume: String,
    /// The tag to hold (64 hex digits, from `veil fs tag`).
    #[arg(
        long,
        value_name = "TAG",
        conflicts_with = "clear",
        required_unless_present = "clear"
    )]
    pub tag: Option<String>,
    /// Hold no tag.
    #[arg(long)]
    pub clear: bool,
    #[command(flatten)]
    pub cas: CasUrl,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VolumeListArgs {
    /// The session, namespace/name.
    pub session: String,
    #[command(flatten)]
    pub cas: CasUrl,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Print a certificate's basics and its Veil or RA-TLS claims (not
    /// verified unless --verify: then the RA-TLS evidence is verified too).
    Inspect(TlsInspectArgs),
    /// Run a network shield tunnel (foreground; Ctrl-C or SIGTERM stops it
    /// gracefully).
    ///
    /// Inbound (--listen, --to): accepts TLS on --listen, checks the client's
    /// certificate, and forwards plaintext to --to. Outbound (--plain-listen,
    /// --remote): accepts plaintext on --plain-listen, opens TLS to --remote,
    /// checks the server's certificate, and forwards. Peers must present an
    /// attested certificate issued by the session CA --ca, and match
    /// --peer-session, --peer-service and --peer-measurement when given.
    /// There is never a plaintext fallback. Prints "listening on ADDR" to
    /// stderr once bound.
    Proxy(Box<TlsProxyArgs>),
}

#[derive(Debug, Args)]
pub struct TlsInspectArgs {
    /// The certificate, PEM or DER (the first certificate of a PEM file).
    pub cert: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Verify the RA-TLS evidence the certificate carries, as `veil evidence
    /// verify` does, and check that its report data is SHA-256(claims
    /// buffer) followed by zeros. Exit 1 when it is not genuine or not bound.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: endorsements, as for `veil evidence verify` (DCAP
    /// collateral JSON; VCEK or VLEK and CA chain; the sim platform public
    /// key to trust).
    #[arg(long = "endorsement", requires = "verify")]
    pub endorsements: Vec<PathBuf>,
    /// With --verify: verify as of this time, Unix seconds or RFC 3339
    /// (default: now).
    #[arg(long, value_parser = parse_time, requires = "verify")]
    pub at: Option<Time>,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("direction")
        .required(true)
        .args(["listen", "plain_listen"])
))]
pub struct TlsProxyArgs {
    /// Inbound: accept TLS on this address, e.g. 0.0.0.0:6380 (port 0 picks one).
    #[arg(long, value_name = "ADDR", requires = "to")]
    pub listen: Option<String>,
    /// Inbound: the plaintext service to forward to, e.g. 127.0.0.1:6379.
    #[arg(long, value_name = "ADDR", requires = "listen")]
    pub to: Option<String>,
    /// Outbound: accept plaintext on this local address, e.g. 127.0.0.1:7000.
    #[arg(
        long,
        value_name = "ADDR",
        requires = "remote",
        conflicts_with_all = ["listen", "to", "danger_no_client_auth"]
    )]
    pub plain_listen: Option<String>,
    /// Outbound: the TLS server to connect to (HOST:PORT).
    #[arg(long, value_name = "ADDR", requires = "plain_listen")]
    pub remote: Option<String>,
    /// Outbound: the name sent as SNI (default: the host of --remote). The
    /// server is identified by its attested certificate, not by this name.
    #[arg(long, value_name = "NAME", requires = "remote")]
    pub server_name: Option<String>,
    /// Our certificate chain (PEM, end entity first).
    #[arg(long, value_name = "PEM")]
    pub cert: PathBuf,
    /// Our private key (PKCS#8 PEM, `PRIVATE KEY`).
    #[arg(long, value_name = "PEM")]
    pub key: PathBuf,
    /// The session CA certificate (PEM) the peer's certificate must be issued by.
    #[arg(long, value_name = "PEM")]
    pub ca: PathBuf,
    /// Require the peer's certificate to name this session.
    #[arg(long, value_name = "NS/NAME")]
    pub peer_session: Option<String>,
    /// Require the peer's certificate to name this service.
    #[arg(long, value_name = "SVC")]
    pub peer_service: Option<String>,
    /// Require the peer's certificate to carry this measurement (hex).
    #[arg(long, value_name = "HEX")]
    pub peer_measurement: Option<String>,
    /// Inbound only: do not ask clients for a certificate; anyone who can
    /// reach --listen talks to the service.
    #[arg(long, requires = "listen")]
    pub danger_no_client_auth: bool,
    /// Seconds a TLS handshake (outbound: connect and handshake) may take.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub handshake_timeout: u64,
    /// Most connections at once; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// On SIGINT/SIGTERM, seconds established connections may take to finish.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub shutdown_grace: u64,
}

/// `veil encrypt` and `veil decrypt`: input, output and key.
#[derive(Debug, Args)]
pub struct SealArgs {
    /// The input file (default, or `-`: standard input).
    pub input: Option<PathBuf>,
    /// Write to this file (default, or `-`: standard output). It is
    /// written as a temporary file beside it (mode 0600) and renamed into
    /// place only on success.
    #[arg(short = 'o', long = "output", value_name = "OUTPUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub key: SealKeyArgs,
}

/// Where the key of `veil encrypt`/`decrypt` comes from: a key file, or a
/// session secret the policy exports to owners, read back from the CAS.
#[derive(Debug, Args, Clone)]
#[command(group(
    clap::ArgGroup::new("seal_key")
        .required(true)
        .args(["key_file", "session"])
))]
pub struct SealKeyArgs {
    /// A key file: 64 lower-case hex digits (32 bytes) and an optional
    /// newline, e.g. made with `openssl rand -hex 32 > FILE`.
    #[arg(long, value_name = "FILE", conflicts_with = "session")]
    pub key_file: Option<PathBuf>,
    /// Take the key from a session secret instead: the session
    /// (namespace/name). Needs --secret.
    #[arg(long, value_name = "NS/NAME", requires = "secret")]
    pub session: Option<String>,
    /// The secret's name in the policy: a 32-byte key (`aes-256`, or
    /// `bytes` of size 32) exported to owners (`export: [{ owner: true }]`).
    #[arg(long, value_name = "NAME", requires = "session")]
    pub secret: Option<String>,
    #[command(flatten)]
    pub cas: CasUrl,
}
