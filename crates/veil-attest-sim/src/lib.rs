//! # veil-attest-sim: a simulated TEE for development and CI
//!
//! The simulated TEE gives **no protection at all**. It exists so the whole
//! Veil flow (evidence, CAS, launcher, shields) runs on machines without TEE
//! hardware. A *sim platform key* (Ed25519) kept in a file plays the part of
//! the hardware's attestation key; sim evidence is a statement of a
//! measurement and 64 bytes of report data signed with that key.
//!
//! The [`SimVerifier`] trusts only the platform public keys it is constructed
//! with (never a key carried by the evidence itself), and every [`Claims`] it
//! returns has `insecure: true`, so a consumer must opt in to accept them.
//!
//! ## Evidence format, version 1 (232 bytes, big-endian integers)
//!
//! ```text
//! offset  size  field
//!      0     7  magic "VEILSIM"
//!      7     1  version = 1
//!      8     4  flags: bit 0 = debug; every other bit must be 0
//!     12     4  reserved, must be 0
//!     16    32  platform public key (Ed25519)
//!     48    48  measurement
//!     96    64  report data
//!    160     8  issued at, Unix seconds
//!    168    64  Ed25519 signature over "veil-sim-evidence-v1\0" || bytes[0..168]
//! ```
//!
//! The verifier rejects any other length, magic, version, unknown flag,
//! non-zero reserved field, untrusted key, bad signature, or an issue time
//! more than [`MAX_CLOCK_SKEW_SECS`] after the verification time. Freshness
//! beyond that comes from the verifier's nonce in the report data.

use std::collections::BTreeMap;
use std::fmt;

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use veil_attest::{
    Claims, Endorsement, ReportData, SimClaims, TcbStatus, Tee, TeeClaims, Time, Verifier,
    VerifyError,
};
use zeroize::Zeroizing;

/// Magic bytes at the start of sim evidence.
pub const MAGIC: &[u8; 7] = b"VEILSIM";
/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Length of version-1 sim evidence.
pub const EVIDENCE_LEN: usize = 232;
/// How far in the future (relative to the verification time) an issue time may lie.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// PEM tag of a sim platform public key file.
pub const PUBLIC_KEY_PEM_TAG: &str = "VEIL SIM PLATFORM PUBLIC KEY";
/// PEM tag of a sim platform private key file (PKCS#8 v2 inside).
pub const PRIVATE_KEY_PEM_TAG: &str = "VEIL SIM PLATFORM PRIVATE KEY";

const SIGNED_LEN: usize = 168;
const DOMAIN: &[u8] = b"veil-sim-evidence-v1\0";
const FLAG_DEBUG: u32 = 1;

/// Errors of sim key handling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimKeyError {
    /// The key file is not a sim platform private key.
    BadKey(String),
    /// The system random generator failed.
    Random,
}

impl fmt::Display for SimKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimKeyError::BadKey(d) => write!(f, "invalid sim platform key: {d}"),
            SimKeyError::Random => f.write_str("the system random generator failed"),
        }
    }
}

impl std::error::Error for SimKeyError {}

/// The "hardware" key of a simulated TEE platform.
///
/// `Debug` prints only the public key; the PKCS#8 bytes are zeroized on drop.
pub struct SimPlatformKey {
    pkcs8: Zeroizing<Vec<u8>>,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SimPlatformKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimPlatformKey(public {})", hex(&self.public_key()))
    }
}

impl SimPlatformKey {
    /// Makes a new random platform key.
    pub fn generate() -> Result<Self, SimKeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| SimKeyError::Random)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Loads a key from PKCS#8 v2 bytes.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, SimKeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| SimKeyError::BadKey(format!("not an Ed25519 PKCS#8 v2 key: {e}")))?;
        Ok(SimPlatformKey {
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            pair,
        })
    }

    /// Loads a key from the PEM text written by [`SimPlatformKey::to_pem`].
    pub fn from_pem(text: &[u8]) -> Result<Self, SimKeyError> {
        let block = pem::parse(text).map_err(|e| SimKeyError::BadKey(e.to_string()))?;
        if block.tag() != PRIVATE_KEY_PEM_TAG {
            return Err(SimKeyError::BadKey(format!(
                "PEM block is {:?}, expected {PRIVATE_KEY_PEM_TAG:?}",
                block.tag()
            )));
        }
        let der = Zeroizing::new(block.into_contents());
        Self::from_pkcs8(&der)
    }

    /// The private key as PEM text. The caller must store it with care
    /// (mode 0600); it is what makes sim evidence "genuine".
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(&pem::Pem::new(
            PRIVATE_KEY_PEM_TAG,
            self.pkcs8.to_vec(),
        )))
    }

    /// The Ed25519 public key a verifier must be given to trust this platform.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let pk = self.pair.public_key().as_ref();
        if pk.len() == 32 {
            out.copy_from_slice(pk);
        }
        out
    }

    /// The public key as PEM text, for `--endorsement` and policies.
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.public_key())
    }

    /// Signs a sim evidence statement.
    pub fn sign(&self, statement: &SimStatement) -> Vec<u8> {
        let mut out = Vec::with_capacity(EVIDENCE_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        let flags = if statement.debug { FLAG_DEBUG } else { 0 };
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&self.public_key());
        out.extend_from_slice(&statement.measurement);
        out.extend_from_slice(&statement.report_data.0);
        out.extend_from_slice(&statement.issued_at.unix().to_be_bytes());
        let sig = self.pair.sign(&signed_message(&out));
        out.extend_from_slice(sig.as_ref());
        out
    }
}

/// PEM text of a sim platform public key.
pub fn public_key_pem(key: &[u8; 32]) -> String {
    pem::encode(&pem::Pem::new(PUBLIC_KEY_PEM_TAG, key.to_vec()))
}

/// What sim evidence states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimStatement {
    /// The measurement of what runs in the simulated TEE.
    pub measurement: [u8; 48],
    /// The 64 bytes the attester binds (nonce, key).
    pub report_data: ReportData,
    /// When the statement was made.
    pub issued_at: Time,
    /// Whether to claim a debug TEE (for testing policies).
    pub debug: bool,
}

/// Sim evidence parsed but not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSimEvidence {
    /// The statement.
    pub statement: SimStatement,
    /// The platform key the evidence names.
    pub platform_key: [u8; 32],
    /// The signature.
    pub signature: [u8; 64],
}

/// True when `bytes` start like sim evidence.
pub fn looks_like_sim_evidence(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Parses sim evidence without checking its signature or key.
pub fn parse_evidence(bytes: &[u8]) -> Result<ParsedSimEvidence, VerifyError> {
    const WHAT: &str = "sim evidence";
    if !looks_like_sim_evidence(bytes) {
        return Err(VerifyError::malformed(
            WHAT,
            "does not start with \"VEILSIM\"",
        ));
    }
    if bytes.len() != EVIDENCE_LEN {
        return Err(VerifyError::malformed(
            WHAT,
            format!("{} bytes, expected {EVIDENCE_LEN}", bytes.len()),
        ));
    }
    let field = |start: usize, len: usize| -> &[u8] { &bytes[start..start + len] };
    let version = bytes[7];
    if version != VERSION {
        return Err(VerifyError::malformed(
            WHAT,
            format!("version {version}, this build reads version {VERSION}"),
        ));
    }
    let flags = u32::from_be_bytes(array(field(8, 4)));
    if flags & !FLAG_DEBUG != 0 {
        return Err(VerifyError::malformed(
            WHAT,
            format!("unknown flags {flags:#x}"),
        ));
    }
    if field(12, 4) != [0u8; 4] {
        return Err(VerifyError::malformed(WHAT, "reserved bytes are not zero"));
    }
    Ok(ParsedSimEvidence {
        platform_key: array(field(16, 32)),
        statement: SimStatement {
            measurement: array(field(48, 48)),
            report_data: ReportData(array(field(96, 64))),
            issued_at: Time::from_unix(u64::from_be_bytes(array(field(160, 8)))),
            debug: flags & FLAG_DEBUG != 0,
        },
        signature: array(field(168, 64)),
    })
}

/// Copies a slice whose length the caller has fixed into an array.
fn array<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    out
}

fn signed_message(first: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + SIGNED_LEN);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&first[..SIGNED_LEN.min(first.len())]);
    m
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Verifies sim evidence against the platform keys it is configured to trust.
#[derive(Debug, Clone, Default)]
pub struct SimVerifier {
    trusted: Vec<[u8; 32]>,
}

impl SimVerifier {
    /// A verifier that trusts exactly `keys`. With no keys it accepts nothing.
    pub fn new(keys: impl IntoIterator<Item = [u8; 32]>) -> Self {
        SimVerifier {
            trusted: keys.into_iter().collect(),
        }
    }

    /// A verifier trusting the sim platform keys among `endorsements`.
    ///
    /// For command lines where the operator names the key file. A service
    /// that takes endorsements from attesters must never do this: it would
    /// let an attester vouch for itself.
    pub fn trusting_endorsed_keys(endorsements: &[Endorsement]) -> Self {
        Self::new(endorsements.iter().filter_map(|e| match e {
            Endorsement::SimPlatformKey(k) => Some(*k),
            _ => None,
        }))
    }
}

impl Verifier for SimVerifier {
    fn tee(&self) -> Tee {
        Tee::Sim
    }

    fn verify(
        &self,
        evidence: &[u8],
        _endorsements: &[Endorsement],
        at: Time,
    ) -> Result<Claims, VerifyError> {
        let parsed = parse_evidence(evidence)?;
        if !self.trusted.contains(&parsed.platform_key) {
            return Err(VerifyError::untrusted(
                "sim platform key",
                format!(
                    "{} is not one of the {} sim platform key(s) this verifier trusts",
                    hex(&parsed.platform_key),
                    self.trusted.len()
                ),
            ));
        }
        UnparsedPublicKey::new(&ED25519, parsed.platform_key)
            .verify(&signed_message(evidence), &parsed.signature)
            .map_err(|_| VerifyError::bad_signature("sim evidence", "Ed25519 signature"))?;
        let st = &parsed.statement;
        if st.issued_at.unix() > at.unix().saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(VerifyError::NotYetValid {
                what: "sim evidence".into(),
                not_before: st.issued_at,
                at,
            });
        }
        let mut measurements = BTreeMap::new();
        measurements.insert("measurement".to_owned(), st.measurement.to_vec());
        Ok(Claims {
            tee: Tee::Sim,
            insecure: true,
            measurement: st.measurement.to_vec(),
            measurements,
            signer: None,
            product_id: None,
            svn: None,
            debug: st.debug,
            tcb_status: TcbStatus::NotApplicable,
            advisories: Vec::new(),
            report_data: st.report_data,
            platform_id: Some(parsed.platform_key.to_vec()),
            verified_at: at,
            tee_claims: TeeClaims::Sim(SimClaims {
                version: VERSION,
                platform_key: parsed.platform_key.to_vec(),
                issued_at: st.issued_at,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn statement() -> SimStatement {
        SimStatement {
            measurement: [7; 48],
            report_data: ReportData([9; 64]),
            issued_at: Time::from_unix(1_700_000_000),
            debug: false,
        }
    }

    #[test]
    fn sign_and_verify() {
        let key = SimPlatformKey::generate().unwrap();
        let ev = key.sign(&statement());
        assert_eq!(ev.len(), EVIDENCE_LEN);
        let v = SimVerifier::new([key.public_key()]);
        let c = v.verify(&ev, &[], Time::from_unix(1_700_000_100)).unwrap();
        assert!(c.insecure);
        assert_eq!(c.tee, Tee::Sim);
        assert_eq!(c.measurement, vec![7; 48]);
        assert_eq!(c.report_data, ReportData([9; 64]));
        assert!(!c.debug);
    }

    #[test]
    fn debug_flag_is_reported() {
        let key = SimPlatformKey::generate().unwrap();
        let ev = key.sign(&SimStatement {
            debug: true,
            ..statement()
        });
        let c = SimVerifier::new([key.public_key()])
            .verify(&ev, &[], Time::from_unix(1_700_000_000))
            .unwrap();
        assert!(c.debug);
    }

    #[test]
    fn untrusted_key_is_refused_even_when_carried_in_endorsements() {
        let key = SimPlatformKey::generate().unwrap();
        let other = SimPlatformKey::generate().unwrap();
        let ev = key.sign(&statement());
        let v = SimVerifier::new([other.public_key()]);
        let e = v
            .verify(
                &ev,
                &[Endorsement::SimPlatformKey(key.public_key())],
                Time::from_unix(1_700_000_000),
            )
            .unwrap_err();
        assert!(matches!(e, VerifyError::Untrusted { .. }), "{e}");
        let e = SimVerifier::default()
            .verify(&ev, &[], Time::from_unix(1_700_000_000))
            .unwrap_err();
        assert!(matches!(e, VerifyError::Untrusted { .. }), "{e}");
    }

    #[test]
    fn future_evidence_is_refused() {
        let key = SimPlatformKey::generate().unwrap();
        let ev = key.sign(&statement());
        let v = SimVerifier::new([key.public_key()]);
        let e = v
            .verify(&ev, &[], Time::from_unix(1_699_999_000))
            .unwrap_err();
        assert!(e.to_string().contains("issued in the future"), "{e}");
    }

    #[test]
    fn pem_round_trip() {
        let key = SimPlatformKey::generate().unwrap();
        let again = SimPlatformKey::from_pem(key.to_pem().as_bytes()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        assert!(!format!("{key:?}").contains("PRIVATE"));
        assert!(SimPlatformKey::from_pem(key.public_key_pem().as_bytes()).is_err());
        match Endorsement::from_file_bytes(key.public_key_pem().as_bytes()) {
            Ok(Endorsement::SimPlatformKey(k)) => assert_eq!(k, key.public_key()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_inputs_are_named() {
        for bad in [&b""[..], b"VEILSIM", b"NOTSIM"] {
            assert!(matches!(
                parse_evidence(bad),
                Err(VerifyError::Malformed { .. })
            ));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn mutations_never_verify(pos in 0usize..EVIDENCE_LEN, xor in 1u8..=255, cut in 0usize..EVIDENCE_LEN + 8) {
            let key = SimPlatformKey::from_pem(FIXED_KEY.as_bytes()).unwrap();
            let v = SimVerifier::new([key.public_key()]);
            let at = Time::from_unix(1_700_000_000);
            let mut ev = key.sign(&statement());
            ev[pos] ^= xor;
            prop_assert!(v.verify(&ev, &[], at).is_err());
            let mut ev = key.sign(&statement());
            ev.resize(cut, 0);
            if cut != EVIDENCE_LEN {
                prop_assert!(v.verify(&ev, &[], at).is_err());
            }
        }
    }

    /// A fixed test key, so property-test failures reproduce.
    const FIXED_KEY: &str = "-----BEGIN VEIL SIM PLATFORM PRIVATE KEY-----
MFECAQEwBQYDK2VwBCIEIESHoO1IlheZv7D7OMQ5/UQG+R+nHHxKlJEWwJHF3lab
gSEAA5147dKFKg60VfkDCDqTQ3LbNLl0Xnr7CV+TV66S2M0=
-----END VEIL SIM PLATFORM PRIVATE KEY-----
";
}
