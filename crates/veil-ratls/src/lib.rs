//! # veil-ratls: interoperable RA-TLS certificates
//!
//! An RA-TLS certificate is an X.509 certificate (usually self-signed) whose
//! extension carries TEE evidence bound to the certificate's key, so a TLS
//! peer can check *what code holds this key* during the handshake. This
//! crate reads such certificates, as written by Gramine, rats-tls and the
//! Intel SGX SDK following the CCC "Interoperable RA-TLS" formats, and
//! checks the binding. It is sans-IO and does not verify the evidence
//! itself: hand [`RaTlsCert::evidence`] to the verifier for
//! [`RaTlsCert::tee`] (and check that the verified report data equals
//! [`RaTlsCert::report_data`]). [`encode_extension`] writes the extension
//! value (the CAS puts it into the certificates it issues).
//!
//! ## Format
//!
//! * Extension OID `2.23.133.5.4.9` (`tcg-dice-tagged-evidence`), value: one
//!   CBOR item, tag 60000 (Intel TEE quote) over the array
//!   `[quote (bstr), claims-buffer (bstr)]`. Veil carries the evidence of
//!   the other TEEs the same way under its own tags (attestation spec 3.6):
//!   60010 SEV-SNP report, 60011 Nitro document, 60012 Veil sim evidence.
//!   Other tags (60001 TEE report, 60002 legacy SGX report, anything else)
//!   are refused with [`RaTlsError::UnsupportedTag`].
//! * The claims buffer is a CBOR map of text names to values: `pubkey-hash`
//!   (required) is a byte string holding the CBOR array
//!   `[hash-alg-id, hash]` (IANA ids 1 sha-256, 7 sha-384, 8 sha-512) of the
//!   certificate's SubjectPublicKeyInfo DER; `nonce` (optional) is a byte
//!   string; other claims are kept as they are.
//! * The quote header says which TEE: version 3 with `tee_type` 0 is SGX;
//!   version 4 or 5 with `tee_type` 0 is SGX and with 0x81 is TDX (see
//!   [`inspect_quote`] for the report data offsets).
//! * Legacy certificates without the interoperable extension are read when
//!   they carry the raw quote under `1.2.840.113741.1337.6` (Gramine,
//!   rats-tls; Gramine's mis-encoded form of that OID too) or
//!   `1.2.840.113741.1.13.1` (Intel SGX SDK); their report data binds
//!   SHA-256 of the SubjectPublicKeyInfo directly.
//!
//! ## Binding
//!
//! [`RaTlsCert::binding`] reports each check with the expected and the found
//! value: `report_data[0..32] == SHA-256(claims buffer)` and
//! `pubkey-hash == hash(SPKI DER)`. [`RaTlsCert::check_binding`] turns the
//! first failure into an error. A certificate whose binding does not hold
//! still parses, so tools can show why.
//!
//! ## Entry points
//!
//! * [`parse_ratls_certificate`] (DER) and [`parse_ratls_pem`] (PEM).
//! * [`parse_extension`]: the CBOR parser alone, for fuzzing.
//! * [`inspect_quote`]: which TEE a quote is from and its report data;
//!   [`inspect_evidence`] likewise for every supported tag.
//! * [`encode_extension`] and [`tag_for_tee`]: the writer's side.

mod cert;
mod error;
mod extension;
mod quote;

pub use cert::{
    parse_ratls_certificate, parse_ratls_pem, Binding, BindingCheck, EvidenceFormat, RaTlsCert,
    TCG_DICE_TAGGED_EVIDENCE_OID,
};
pub use error::RaTlsError;
pub use extension::{
    encode_extension, parse_extension, tag_for_tee, tag_name, ClaimValue, HashAlg, PubkeyHash,
    TaggedEvidence, INTEL_TEE_QUOTE_TAG, MAX_EXTENSION_LEN, NONCE_CLAIM, PUBKEY_HASH_CLAIM,
    SUPPORTED_TAGS, VEIL_NITRO_DOCUMENT_TAG, VEIL_SIM_EVIDENCE_TAG, VEIL_SNP_REPORT_TAG,
};
pub use quote::{inspect_evidence, inspect_quote, EvidenceKind};
