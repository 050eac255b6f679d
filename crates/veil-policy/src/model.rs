//! The validated session model. Values of these types only come out of
//! [`crate::parse_session`], so holding one means it passed every check.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use veil_attest::{TcbStatus, Tee};

use crate::template::Template;

macro_rules! display_serialize {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

/// Why a name, fingerprint or hash string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseValueError(pub(crate) String);

fn is_name_part(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(&c))
        && s.len() <= 63
}

/// Whether `s` is a valid service name (`[a-z0-9][a-z0-9-_.]{0,62}`).
pub fn is_service_name(s: &str) -> bool {
    is_name_part(s)
}

/// A session's name: `namespace/name`, each part `[a-z0-9][a-z0-9-_.]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionName {
    namespace: String,
    name: String,
}

impl SessionName {
    /// The part before the slash.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The part after the slash.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for SessionName {
    type Err = ParseValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, n)) if is_name_part(ns) && is_name_part(n) => Ok(SessionName {
                namespace: ns.to_owned(),
                name: n.to_owned(),
            }),
            _ => Err(ParseValueError(format!(
                "{s:?} is not a session name; expected `namespace/name`, each part 1 to 63 of \
                 a-z 0-9 - _ . starting with a letter or digit (e.g. `shop/db`)"
            ))),
        }
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
display_serialize!(SessionName);

fn parse_hex32(s: &str, what: &str) -> Result<[u8; 32], ParseValueError> {
    let ok = s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let mut out = [0u8; 32];
    if ok && hex::decode_to_slice(s, &mut out).is_ok() {
        return Ok(out);
    }
    Err(ParseValueError(format!(
        "{s:?} is not a {what}; expected 64 lower-case hex digits (a SHA-256 digest)"
    )))
}

/// The SHA-256 fingerprint of an owner's client identity (64 lower-case hex).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl FromStr for Fingerprint {
    type Err = ParseValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s, "fingerprint").map(Fingerprint)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}
display_serialize!(Fingerprint);

/// The hash of a validated session (see [`Session::hash`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionHash(pub [u8; 32]);

impl FromStr for SessionHash {
    type Err = ParseValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s, "session hash").map(SessionHash)
    }
}

impl fmt::Display for SessionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHash({self})")
    }
}
display_serialize!(SessionHash);

/// A digest pinned by a policy (measurement, signer, register), with its
/// length already checked against the TEE.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub(crate) Vec<u8>);

impl Digest {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}
display_serialize!(Digest);

/// The SHA-384 digest of a file, as a policy pins it for the program a
/// launcher starts (`executable`) or its `#!` interpreter (`interpreter`):
/// 96 lower-case hex digits, compared with the launcher's runtime claims.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileDigest(pub [u8; 48]);

impl FileDigest {
    /// The number of hex digits of the text form.
    pub const HEX_LEN: usize = 96;

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 48] {
        &self.0
    }
}

impl FromStr for FileDigest {
    type Err = ParseValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        let lower = s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut out = [0u8; 48];
        if hex && lower && s.len() == Self::HEX_LEN && hex::decode_to_slice(s, &mut out).is_ok() {
            return Ok(FileDigest(out));
        }
        let why = if !hex {
            "it is not hex".to_owned()
        } else if !lower {
            "it has upper-case digits; write it in lower case".to_owned()
        } else {
            format!("it has {} hex digits", s.len())
        };
        let shown: String = s.chars().take(100).collect();
        let more = if shown.len() < s.len() { "..." } else { "" };
        Err(ParseValueError(format!(
            "{shown:?}{more} is not a SHA-384 digest: {why}; expected {} lower-case hex digits \
             (e.g. the output of `sha384sum FILE`)",
            Self::HEX_LEN
        )))
    }
}

impl fmt::Display for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileDigest({self})")
    }
}
display_serialize!(FileDigest);

/// A validated session (policy), version v1 of the language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub(crate) name: SessionName,
    pub(crate) version: u64,
    pub(crate) predecessor: Option<SessionHash>,
    pub(crate) owners: Vec<Fingerprint>,
    pub(crate) approvals: u32,
    pub(crate) secrets: Vec<SecretSpec>,
    pub(crate) services: Vec<Service>,
    pub(crate) rotate: BTreeSet<String>,
}

/// Domain-separation prefix of [`Session::hash`].
pub const HASH_DOMAIN: &[u8] = b"veil-session-v1\n";

impl Session {
    /// `namespace/name`.
    pub fn name(&self) -> &SessionName {
        &self.name
    }
    /// The version number (1 for a new session, +1 on every update).
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The hash of the version this one replaces (`None` for version 1).
    pub fn predecessor(&self) -> Option<SessionHash> {
        self.predecessor
    }
    /// Owner fingerprints, in document order.
    pub fn owners(&self) -> &[Fingerprint] {
        &self.owners
    }
    /// How many owners must approve an update of this session.
    pub fn approvals(&self) -> u32 {
        self.approvals
    }
    /// Secret specifications, in document order.
    pub fn secrets(&self) -> &[SecretSpec] {
        &self.secrets
    }
    /// The secret called `name`.
    pub fn secret(&self, name: &str) -> Option<&SecretSpec> {
        self.secrets.iter().find(|s| s.name == name)
    }
    /// Services, in document order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }
    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
    /// Generated secrets this update asks to regenerate.
    pub fn rotate(&self) -> &BTreeSet<String> {
        &self.rotate
    }

    /// The canonical JSON encoding: the validated session serialized with
    /// object keys sorted by byte value, no whitespace, integers in decimal,
    /// strings escaped as serde_json does. Templates appear as their
    /// canonical text, digests as lower-case hex.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// SHA-256 of [`HASH_DOMAIN`] followed by [`Self::canonical_json`].
    ///
    /// Two documents that differ only in layout, comments, key order or
    /// quoting have the same hash.
    pub fn hash(&self) -> SessionHash {
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN);
        h.update(self.canonical_json().as_bytes());
        SessionHash(h.finalize().into())
    }
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(k) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A secret the session declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SecretSpec {
    /// Its name (`[A-Za-z_][A-Za-z0-9_]{0,63}`).
    pub name: String,
    /// What it is and how it is made.
    #[serde(flatten)]
    pub kind: SecretKind,
    /// Who else may obtain it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub export: Vec<Export>,
}

/// Characters a generated password is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alphabet {
    /// `A-Z a-z 0-9` (the default).
    Alphanumeric,
    /// `a-z 0-9`.
    Lowercase,
    /// `0-9 a-f`.
    Hex,
    /// Printable ASCII without space (`!` to `~`).
    Printable,
}

impl Alphabet {
    /// The characters, in ascending order.
    pub fn chars(self) -> &'static str {
        match self {
            Alphabet::Alphanumeric => "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            Alphabet::Lowercase => "0123456789abcdefghijklmnopqrstuvwxyz",
            Alphabet::Hex => "0123456789abcdef",
            Alphabet::Printable => "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "alphanumeric" => Alphabet::Alphanumeric,
            "lowercase" => Alphabet::Lowercase,
            "hex" => Alphabet::Hex,
            "printable" => Alphabet::Printable,
            _ => return None,
        })
    }
}

/// Which CA issues an x509 or x509-ca secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    /// The session's own CA, kept by the CAS.
    SessionCa,
    /// An `x509-ca` secret of this session.
    Secret(String),
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issuer::SessionCa => f.write_str("session-ca"),
            Issuer::Secret(s) => f.write_str(s),
        }
    }
}
display_serialize!(Issuer);

/// What a secret is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum SecretKind {
    /// A random password.
    #[serde(rename = "password")]
    Password {
        /// Characters (8 to 1024, default 32).
        length: u32,
        /// The alphabet (default alphanumeric).
        alphabet: Alphabet,
    },
    /// Random bytes.
    #[serde(rename = "bytes")]
    Bytes {
        /// How many (1 to 65536).
        size: u32,
    },
    /// A random 256-bit AES key.
    #[serde(rename = "aes-256")]
    Aes256,
    /// An ECDSA P-256 private key.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// An Ed25519 private key.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// A certificate and its private key.
    #[serde(rename = "x509")]
    X509 {
        /// Who issues it.
        issuer: Issuer,
        /// Subject common name, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        common_name: Option<String>,
        /// DNS subject alternative names.
        dns: Vec<String>,
        /// IP subject alternative names.
        ips: Vec<IpAddr>,
        /// Validity in days (1 to 3650, default 90).
        validity_days: u32,
    },
    /// A CA certificate and key that can issue x509 secrets of this session.
    #[serde(rename = "x509-ca")]
    X509Ca {
        /// Who issues it.
        issuer: Issuer,
        /// Subject common name, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        common_name: Option<String>,
        /// Validity in days (1 to 3650, default 365).
        validity_days: u32,
    },
    /// Uploaded by an owner with `veil secret put`; never readable back.
    #[serde(rename = "supplied")]
    Supplied,
    /// A secret of another session that exports it to this one.
    #[serde(rename = "import")]
    Import {
        /// The exporting session.
        session: SessionName,
        /// The secret's name there.
        secret: String,
    },
}

impl SecretKind {
    /// The kind as written in a policy (`password`, `x509-ca`...).
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretKind::Password { .. } => "password",
            SecretKind::Bytes { .. } => "bytes",
            SecretKind::Aes256 => "aes-256",
            SecretKind::EcdsaP256 => "ecdsa-p256",
            SecretKind::Ed25519 => "ed25519",
            SecretKind::X509 { .. } => "x509",
            SecretKind::X509Ca { .. } => "x509-ca",
            SecretKind::Supplied => "supplied",
            SecretKind::Import { .. } => "import",
        }
    }

    /// True for kinds the CAS generates (everything but supplied and import).
    pub fn is_generated(&self) -> bool {
        !matches!(self, SecretKind::Supplied | SecretKind::Import { .. })
    }
}

/// Who a secret is exported to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Export {
    /// Another session may import it by name.
    Session(SessionName),
    /// The session's owners may read it (e.g. to decrypt a job's output).
    Owner,
}

/// A service: what may run, and what it gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Service {
    /// Its name (`[a-z0-9][a-z0-9-_.]{0,62}`).
    pub name: String,
    /// Accept rules, OR'ed.
    pub accept: Vec<AcceptRule>,
    /// argv, program first.
    pub command: Vec<Template>,
    /// Environment variables.
    pub env: BTreeMap<String, Template>,
    /// Files by absolute path.
    pub files: BTreeMap<String, FileSpec>,
    /// Whether the host may append arguments to `command`.
    pub host_args: bool,
    /// Names of environment variables the untrusted host may pass through
    /// to the program (none by default). Disjoint from the keys of `env`.
    /// Omitted from the canonical JSON when empty, so sessions that do not
    /// use it keep their hash.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub host_env: BTreeSet<String>,
    /// DNS subject alternative names of the certificate an attested
    /// launcher of this service receives.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// IP subject alternative names of that certificate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// Protected volumes (used by the file shield).
    pub volumes: Vec<Volume>,
    /// TLS tunnels (used by the network shield).
    pub network: Vec<NetworkRule>,
}

/// A file the launcher writes for the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FileSpec {
    /// Its content.
    pub content: Template,
    /// Unix permission bits (default 0o600).
    pub mode: u32,
}

/// Minimum SEV-SNP TCB: each component of the reported TCB must be at least this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MinTcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin and later); when set, reports without it are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

/// Which measurements a rule accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasurementRule {
    /// Any measurement (only for `tee: sim`, or SGX with signer and product).
    Any,
    /// One of these.
    OneOf(Vec<Digest>),
}

impl Serialize for MeasurementRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MeasurementRule::Any => s.serialize_str("any"),
            MeasurementRule::OneOf(v) => v.serialize(s),
        }
    }
}

/// One accept rule: evidence matches when every field holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AcceptRule {
    /// The TEE.
    pub tee: Tee,
    /// The primary measurement.
    pub measurement: MeasurementRule,
    /// Other registers by claim name (`rtmr0`..`rtmr3` for TDX, `pcr1`.. for Nitro).
    pub registers: BTreeMap<String, Digest>,
    /// MRSIGNER (SGX) or author/ID key digest (SNP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<Digest>,
    /// ISVPRODID (SGX).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<u16>,
    /// Minimum ISVSVN (SGX) or GUEST_SVN (SNP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_svn: Option<u32>,
    /// Minimum reported TCB (SNP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tcb: Option<MinTcb>,
    /// Accepted TCB statuses (SGX, TDX; default UpToDate). Empty for TEEs
    /// without a vendor TCB status.
    pub tcb_status: BTreeSet<TcbStatus>,
    /// Whether debug-mode evidence is accepted.
    pub debug: bool,
    /// SHA-384 of the program the launcher starts, compared with its
    /// `executable` runtime claim. Omitted from the canonical JSON when
    /// absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<FileDigest>,
    /// SHA-384 of the program's `#!` interpreter, compared with the
    /// launcher's `interpreter` runtime claim. Omitted from the canonical
    /// JSON when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<FileDigest>,
}

impl AcceptRule {
    /// The runtime claims this rule pins: `(claim name, expected value)`,
    /// `executable` first. The claim names are [`CLAIM_EXECUTABLE`] and
    /// [`CLAIM_INTERPRETER`].
    pub fn pinned_runtime_claims(&self) -> impl Iterator<Item = (&'static str, &FileDigest)> {
        [
            (CLAIM_EXECUTABLE, self.executable.as_ref()),
            (CLAIM_INTERPRETER, self.interpreter.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|d| (k, d)))
    }
}

/// The runtime claim a launcher states for the program it starts: the
/// lower-case hex SHA-384 of the program file. An accept rule's
/// `executable` is compared with it.
pub const CLAIM_EXECUTABLE: &str = "executable";

/// The runtime claim a launcher states when the program is a `#!` script:
/// the lower-case hex SHA-384 of the interpreter file. An accept rule's
/// `interpreter` is compared with it.
pub const CLAIM_INTERPRETER: &str = "interpreter";

/// How a volume is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeMode {
    /// Confidentiality and integrity.
    Encrypted,
    /// Integrity only.
    Integrity,
}

/// A protected volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Volume {
    /// Its name, unique in the service.
    pub name: String,
    /// Mount point (absolute, normalized).
    pub path: String,
    /// Protection.
    pub mode: VolumeMode,
    /// The aes-256 (or imported) secret that keys it.
    pub key: String,
    /// Mounted read-only: the program cannot change it, and the launcher
    /// never creates it (it must exist, e.g. made by a data owner).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Who may connect to an inbound TLS tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// Anyone (server-only TLS).
    None,
    /// Services of this session.
    Session,
    /// Services of another session.
    Peer(SessionName),
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::None => f.write_str("none"),
            ClientAuth::Session => f.write_str("session"),
            ClientAuth::Peer(s) => write!(f, "{s}"),
        }
    }
}
display_serialize!(ClientAuth);

/// The expected peer of an outbound tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Peer {
    /// The peer's session.
    pub session: SessionName,
    /// The peer's service, if pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The peer's measurement, if pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<Digest>,
}

/// A TLS tunnel of the network shield.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "direction")]
#[non_exhaustive]
pub enum NetworkRule {
    /// Terminate TLS on `listen` and forward plain TCP to `to`.
    Inbound {
        /// `host:port` to listen on.
        listen: String,
        /// `host:port` of the app.
        to: String,
        /// x509 secret presented to clients; when absent, the certificate
        /// the CAS issued to the attested launcher (with the attestation
        /// extension, so Veil peers can check what runs).
        #[serde(skip_serializing_if = "Option::is_none")]
        tls: Option<String>,
        /// Client authentication.
        client_auth: ClientAuth,
        /// ALPN protocols offered, in order of preference (empty: no ALPN).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        alpn: Vec<String>,
    },
    /// Accept plain TCP on `connect` and forward it over TLS to `remote`.
    Outbound {
        /// `host:port` the app connects to.
        connect: String,
        /// `host:port` of the peer.
        remote: String,
        /// x509 secret presented to the peer; when absent, the launcher's
        /// attested certificate.
        #[serde(skip_serializing_if = "Option::is_none")]
        tls: Option<String>,
        /// What the peer must be.
        peer: Peer,
        /// ALPN protocols asked for (empty: no ALPN).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        alpn: Vec<String>,
        /// The name sent as SNI; default: the host of `remote`.
        #[serde(skip_serializing_if = "Option::is_none")]
        server_name: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn file_digests_are_96_lower_case_hex_digits() {
        let text = "0a".repeat(48);
        let d: FileDigest = text.parse().unwrap();
        assert_eq!(d.as_bytes(), &[0x0a; 48]);
        assert_eq!(d.to_string(), text);
        assert_eq!(format!("{d:?}"), format!("FileDigest({text})"));
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{text}\""));
        for (bad, why) in [
            (String::new(), "it is not hex"),
            ("0a".repeat(32), "it has 64 hex digits"),
            ("0A".repeat(48), "upper-case"),
            (format!("{} ", "0a".repeat(48)), "it is not hex"),
            (format!("sha384:{}", "0a".repeat(48)), "it is not hex"),
            ("é".repeat(48), "it is not hex"),
        ] {
            let e = bad.parse::<FileDigest>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains("96 lower-case hex digits"), "{bad:?}: {e}");
        }
        // A huge value is not repeated in full.
        let e = "z".repeat(100_000).parse::<FileDigest>().unwrap_err();
        assert!(e.to_string().len() < 400, "{}", e.to_string().len());
    }
}
