//! # veil-policy: Veil's session language, v1
//!
//! A *session* is the policy a group of owners applies to the CAS: which
//! secrets exist, which services may run, what evidence each service must
//! present, and what argv, env and files it receives. The language is
//! specified in `docs/spec/policy.md`; this crate is its only implementation.
//!
//! The crate does no I/O (no files, clock or network):
//!
//! * [`parse_session`] turns YAML text into a validated [`Session`], or a
//!   [`PolicyError`] that names the path of the offending value, says what
//!   was expected and what to do. The YAML is read strictly: one document,
//!   no anchors, aliases, tags, merge keys or duplicate keys, no type
//!   coercion (`"3"` is not a number, `yes` is not a boolean), at most
//!   [`MAX_INPUT_BYTES`] and [`MAX_DEPTH`] levels.
//! * [`Session::hash`] is the SHA-256 of a canonical JSON encoding; an
//!   update names the hash of the version it replaces in `predecessor`, and
//!   [`check_update`] enforces it. [`diff`] lists what an update changes.
//! * [`check_accept`] matches verified [`veil_attest::Claims`] and the
//!   launcher's runtime claims (`executable`, `interpreter`) against a
//!   service's accept rules and explains a [`Denial`] with a stable code.
//! * [`render`] fills a service's [`Template`]s from a [`SecretSource`];
//!   the [`Rendered`] output is zeroized on drop and never printed.
//!
//! ```
//! let yaml = r#"
//! name: shop/db
//! version: 1
//! owners: [7d1e0000000000000000000000000000000000000000000000000000000000aa]
//! secrets:
//!   - { name: db_password, kind: password, length: 24 }
//! services:
//!   - name: mysqld
//!     accept:
//!       - { tee: sim, measurement: any }
//!     command: [/usr/sbin/mysqld]
//!     env: { MYSQL_ROOT_PASSWORD: "{{ db_password }}" }
//! "#;
//! let session = veil_policy::parse_session(yaml).unwrap();
//! assert_eq!(session.name().to_string(), "shop/db");
//! assert_eq!(session.hash().to_string().len(), 64);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod accept;
mod diff;
mod error;
mod model;
mod parse;
mod read;
mod render;
mod template;
mod yaml;

pub use accept::{check_accept, rule_mismatches, Denial, DenialCode, MatchedRule, Mismatch};
pub use diff::{check_update, diff, Change};
pub use error::{ErrorKind, PolicyError};
pub use model::{
    is_service_name, AcceptRule, Alphabet, ClientAuth, Digest, Export, FileDigest, FileSpec,
    Fingerprint, Issuer, MeasurementRule, MinTcb, NetworkRule, ParseValueError, Peer, SecretKind,
    SecretSpec, Service, Session, SessionHash, SessionName, Volume, VolumeMode, CLAIM_EXECUTABLE,
    CLAIM_INTERPRETER, HASH_DOMAIN,
};
pub use parse::{parse_session, MAX_OWNERS};
pub use render::{render, RenderError, Rendered, RenderedFile, SecretSource};
pub use template::{is_identifier, Field, Filter, Part, SecretRef, Template, TemplateError};
pub use yaml::{MAX_DEPTH, MAX_INPUT_BYTES, MAX_NODES};
