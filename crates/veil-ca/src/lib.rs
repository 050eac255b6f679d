//! # veil-ca: keys, certificates and generated secrets
//!
//! Everything in Veil that makes a key or signs a certificate goes through
//! this crate. It is sans-IO except for randomness (ring's `SystemRandom`):
//! no files, no sockets, and no clock — callers pass the time (`now`,
//! `not_before`, `not_after`, `at`) as a [`veil_attest::Time`].
//!
//! * [`Fingerprint`]: SHA-256 of a SubjectPublicKeyInfo, the name of a key in
//!   policies (owners), in `veil identity show` and `veil cas status`.
//! * [`Identity`]: a client's (owner's) key pair and self-signed certificate
//!   for mutual TLS, as `veil identity create` makes it; also the CAS's TLS
//!   leaf.
//! * [`CaIdentity`]: a self-signed CA — the CAS's own identity, a session CA,
//!   or an `x509-ca` secret. The CAS serves TLS with a leaf from
//!   [`CaIdentity::issue_server_identity`], never with the CA certificate.
//! * [`generate`] makes one secret of a [`SecretKindSpec`] (password, bytes,
//!   aes-256, ecdsa-p256, ed25519, x509, x509-ca) as [`SecretMaterial`].
//! * [`issue_attested_cert`] certifies an attested launcher's key, with the
//!   Veil attestation extension ([`VEIL_ATTESTATION_EXT_OID`]) naming
//!   session, service, TEE and measurement; [`parse_attested_cert`] and
//!   [`verify_attested_cert`] read it back for peer checks.
//!   [`issue_attested_cert_with_evidence`] adds the launcher's evidence in
//!   the Interoperable RA-TLS form ([`RATLS_EXT_OID`], value built by
//!   `veil-ratls`).
//! * [`verify_chain`]: one-level check that a leaf was issued by a CA and
//!   both are valid at a time.
//!
//! ## Keys and algorithms
//!
//! Every key this crate makes for a certificate is ECDSA P-256 with
//! SHA-256 signatures (rcgen over ring); `ed25519` secrets are made by ring
//! as PKCS#8 v2. Private keys are PKCS#8 (PEM label `PRIVATE KEY`), held in
//! [`zeroize::Zeroizing`] buffers, and never shown by `Debug`. Serial
//! numbers are 128-bit random. Generated certificates start 5 minutes before
//! `now` to tolerate clock skew, and a certificate never outlives its CA.
//!
//! ## The attestation extension
//!
//! Non-critical, OID `2.25.10837851995107767219045617127733325744` (the
//! UUID-derived arc of `08274b5b-c4a8-4bc5-95c5-d4202d23efb0`, ITU-T X.667),
//! value: the UTF-8 JSON object
//! `{"version":1,"session":…,"service":…,"tee":"snp","measurement":"<hex>","issuer":"<CA fingerprint>"}`
//! with no other fields. Readers refuse unknown versions, unknown fields,
//! duplicates and values over 4 KiB. Veil certificates may later also carry
//! the Interoperable RA-TLS evidence extension (see `veil-ratls`); the two are
//! independent.

mod attested;
mod error;
mod fingerprint;
mod identity;
mod secret;
mod util;
mod verify;

pub use attested::{
    encode_extension, issue_attested_cert, issue_attested_cert_with_evidence, parse_attested_cert,
    parse_extension, verify_attested_cert, AttestedCert, AttestedSubject, EXTENSION_VERSION,
    MAX_EXTENSION_LEN, MAX_MEASUREMENT_LEN, MAX_RATLS_EXTENSION_LEN, RATLS_EXT_OID,
    VEIL_ATTESTATION_EXT_OID, VEIL_ATTESTATION_EXT_OID_DER, VEIL_ATTESTATION_EXT_UUID,
};
pub use error::CaError;
pub use fingerprint::{Fingerprint, FingerprintParseError};
pub use identity::{CaIdentity, Identity, IDENTITY_VALIDITY_DAYS};
pub use secret::{
    generate, generate_password, CaLookup, NoCa, SecretKind, SecretKindSpec, SecretMaterial,
    DEFAULT_PASSWORD_ALPHABET, MAX_ALPHABET_LEN, MAX_BYTES_SIZE, MAX_PASSWORD_LEN,
    MIN_PASSWORD_LEN,
};
pub use util::MAX_VALIDITY_DAYS;
pub use verify::verify_chain;
