//! Recovery of a CAS sealing key by a quorum of owners.
//!
//! `veil cas init --recovery-shares N --threshold K` splits the CAS sealing
//! key into N shares, any K of which recover it, and encrypts each share to
//! one owner identity. A CAS whose sealing key is gone (another machine, a
//! wiped key file) starts sealed, serves only status and recovery, and
//! unseals when K valid shares arrive; K−1, duplicated, foreign or corrupt
//! shares leave it sealed.
//!
//! The crate is sans-IO apart from randomness (the operating system's CSPRNG):
//! callers read and write the files and carry shares over the network.
//!
//! # Flow
//!
//! 1. **Split** (CAS, at init): [`split`]`(&key, K, &recipients)` gives a
//!    [`RecoverySet`]: N [`EncryptedShare`]s (one JSON file per owner) and a
//!    [`RecoveryRecord`] (set id, K, N, check value, owners) that the CAS keeps.
//! 2. **Decrypt** (each owner, on their own machine): [`decrypt_share`] with
//!    the owner's identity key (PKCS#8) gives a [`PlainShare`], sent to the
//!    sealed CAS as [`PlainShare::to_transport`] (over an attested channel).
//! 3. **Combine** (sealed CAS): [`Combiner::add`] each share until it returns
//!    [`AddOutcome::Recovered`] with the key.
//!
//! # Cryptography
//!
//! * **Secret sharing**: Shamir over GF(256), byte-wise, from
//!   [`vsss-rs`](https://docs.rs/vsss-rs) 6 (`Gf256::split_bytes_*` /
//!   `combine_bytes`). Chosen over `sharks` 0.5 (last released 2021, rand 0.8,
//!   no audit) because vsss-rs is maintained, audited (funded by LIT Protocol
//!   and Turnkey), `no_std`-clean, rejects zero and duplicate x-coordinates,
//!   and shares our `rand_core` 0.10 with `hpke`. Share *i* has x = *i*
//!   (1..=N); its 32-byte y is what is encrypted. vsss-rs needs K ≥ 2; the one
//!   allowed K = 1 set (N = 1) uses the constant polynomial: the share is the key.
//! * **Check value**: `check = SHA-256("veil-recovery-v1 check\0" ‖ key)`,
//!   in every share and in the record. Not secret for a 256-bit random key. The
//!   combiner returns a key only if it matches, in constant time.
//! * **Encryption**: HPKE (RFC 9180), base mode, DHKEM(P-256, HKDF-SHA256),
//!   HKDF-SHA256, AES-256-GCM, from [`hpke`](https://docs.rs/hpke) 0.15. The
//!   recipient key is the P-256 key of the owner's identity certificate
//!   (`veil identity create`); the owner decrypts with the same PKCS#8 key
//!   (the scalar is read with `p256`). `info` = `"veil-recovery-v1 share"`;
//!   the associated data binds the header: version (1) ‖ set id (16) ‖ index ‖
//!   threshold ‖ total ‖ recipient fingerprint (32) ‖ check (32). Any changed
//!   byte of a share file makes decryption fail.
//!
//! # Share file (`EncryptedShare`, JSON, version 1)
//!
//! Unknown fields are refused; so are other versions, and numbers or lengths
//! that do not fit ([`EncryptedShare::from_json`]).
//!
//! | field        | type            | meaning |
//! |--------------|-----------------|---------|
//! | `version`    | number          | `1` |
//! | `set_id`     | 32 hex digits   | random id of this split; all its shares carry it |
//! | `index`      | number 1..=N    | this share's index (Shamir x-coordinate) |
//! | `threshold`  | number 1..=N    | K, shares needed; ≥ 2 unless N = 1 |
//! | `total`      | number 1..=255  | N, shares made |
//! | `recipient`  | 64 hex digits   | owner fingerprint: SHA-256 of the SPKI (DER) |
//! | `check`      | 64 hex digits   | `SHA-256("veil-recovery-v1 check\0" ‖ key)` |
//! | `enc`        | base64 (88 chars) | HPKE encapsulated key, 65-byte uncompressed P-256 point |
//! | `ciphertext` | base64 (64 chars) | HPKE ciphertext: 32-byte share ‖ 16-byte GCM tag |
//!
//! # Share in transport (`PlainShare`)
//!
//! `veil-share-v1:` then base64url without padding of 88 bytes:
//! version (1) ‖ set id (16) ‖ index ‖ threshold ‖ total ‖ check (32) ‖
//! share y (32) ‖ checksum (4 = first bytes of
//! `SHA-256("veil-recovery-v1 transport\0" ‖ the 84 bytes before)`). The
//! checksum catches copy mistakes; forgeries are caught by the combiner.
//!
//! # Combining
//!
//! See [`Combiner`]: foreign (other set id or check), duplicate and
//! threshold-mismatch shares are refused and not counted. With K distinct
//! indices the shares are combined and checked; a mismatch is
//! [`RecoveryError::Corrupt`], but shares are kept and each later share starts
//! a bounded search ([`MAX_COMBINATIONS`]) over K-subsets, so a bad share does
//! not block recovery once K good shares are present. A key that fails the
//! check is never returned.
//!
//! The set id and check are in every share file, so anyone who saw one can
//! forge well-formed shares. A CAS should take shares with
//! [`Combiner::add_from`], naming the owner authenticated on the connection
//! (mutual TLS): share *i* is accepted only from owner *i* of the record.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use veil_recovery::{decrypt_share, split, AddOutcome, Combiner, PlainShare, RecipientKey};
//! # let now = veil_attest::Time::from_unix(1_700_000_000);
//! # let owners: Vec<_> = (0..3)
//! #     .map(|i| veil_ca::Identity::generate(&format!("owner {i}"), now))
//! #     .collect::<Result<_, _>>()?;
//! let recipients = owners
//!     .iter()
//!     .map(|o| RecipientKey::from_cert_der(o.certificate()))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let key = [7u8; 32];
//! let set = split(&key, 2, &recipients)?;
//! let record = set.record(); // the CAS keeps this
//!
//! let mut combiner = Combiner::from_record(&record)?;
//! for (share, owner) in set.shares().iter().zip(&owners).take(2) {
//!     let pkcs8 = owner.key_der();
//!     let plain = decrypt_share(share, pkcs8.secret_der())?;
//!     let line = plain.to_transport(); // sent to the CAS
//!     match combiner.add(PlainShare::from_transport(&line)?)? {
//!         AddOutcome::NeedMore { have, need } => println!("{have} of {need}"),
//!         AddOutcome::Recovered(k) => assert_eq!(*k, key),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod combine;
mod error;
mod format;
mod recipient;
mod rng;
mod seal;

pub use combine::{AddOutcome, Combiner, MAX_CANDIDATES_PER_INDEX, MAX_COMBINATIONS};
pub use error::RecoveryError;
pub use format::{
    check_value, EncryptedShare, PlainShare, RecoveryRecord, SetId, FORMAT_VERSION,
    TRANSPORT_PREFIX,
};
pub use recipient::RecipientKey;
pub use seal::{decrypt_share, split, RecoverySet};
pub use veil_ca::Fingerprint;

#[cfg(test)]
mod tests;
