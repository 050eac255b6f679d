//! # veil-store: the CAS's sealed store and audit log
//!
//! The CAS keeps sessions, pending updates, secrets, nonces and volume freshness tags in a
//! [redb](https://docs.rs/redb) database on a host it does not trust. This crate makes that
//! safe:
//!
//! - **Sealed values.** Every value is sealed with AES-256-GCM under a key derived (HKDF-SHA256,
//!   label `"veil-store-v1 record seal"`) from the 32-byte [`SealingKey`]. The associated data
//!   binds the table, the key and the commit generation, so a flipped byte, or a value copied to
//!   another key or table, is refused with [`StoreError::Tampered`] naming the record; nothing
//!   unauthenticated is ever returned. A store opened with another key fails with
//!   [`StoreError::WrongKey`]. Keys (record names) are stored in clear, for ordering and
//!   prefix listing: never put a secret in a key.
//! - **Transactions.** [`Store::read`] gives a snapshot of every table; [`Store::write`] runs a
//!   closure in one redb write transaction across tables and returns only after it committed
//!   durably (fsync). Writes are staged in the [`WriteTx`] and dropped if the closure fails.
//! - **Audit log** ([`audit`]). [`WriteTx::audit`] appends a signed, hash-chained record in the
//!   same transaction as the change it records, so a secret is never released without its
//!   record being durable. [`audit::verify`] and [`audit::verify_export`] are sans-IO and detect
//!   edits, reordering, gaps, bad signatures and (against a head) truncation.
//! - **Group commit.** [`Store::write_grouped`] batches closures from many threads into one
//!   transaction and one fsync; each caller returns only after its batch is durable.
//!
//! The sealing key comes from the TEE (SEV-SNP/TDX/SGX key derivation) through
//! [`SealingKey::from_bytes`]; with `--dev`, [`SealingKey::load_or_create_key_file`] keeps it in
//! a 0600 file in the state directory, which protects nothing against the host.
//!
//! What is and is not detected (rollback in particular) is written down in `docs/design.md`,
//! section "veil-store".
//!
//! ```
//! use veil_store::{audit::AuditEntry, SealingKey, Store, StoreError, Table};
//! # fn main() -> Result<(), StoreError> {
//! let dir = tempfile::tempdir().map_err(StoreError::Io)?;
//! let key = SealingKey::generate()?;
//! let store = Store::open(dir.path().join("cas.redb"), &key)?;
//! store.write(|tx| {
//!     tx.put(Table::SESSIONS, b"shop/db", b"{\"version\":3}")?;
//!     tx.audit(AuditEntry::new("session.apply", "shop/db", "7d1e", serde_json::json!({"version": 3})))
//! })?;
//! let v = store.read(|tx| tx.get(Table::SESSIONS, b"shop/db"))?;
//! assert_eq!(v.as_deref().map(Vec::as_slice), Some(&b"{\"version\":3}"[..]));
//! assert_eq!(store.verify_audit()?.len(), 1);
//! # Ok(()) }
//! ```

pub mod audit;
mod error;
mod key;
mod seal;
mod store;

pub use crate::audit::{AuditEntry, AuditHead, AuditSigner, Ed25519AuditSigner};
pub use crate::error::{AuditError, StoreError};
pub use crate::key::SealingKey;
pub use crate::store::{
    Plain, ReadTx, Store, StoreOptions, Table, WriteTx, MAX_BATCH, MAX_KEY_LEN, MAX_VALUE_LEN,
};
