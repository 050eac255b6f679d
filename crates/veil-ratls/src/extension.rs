//! The CBOR inside the TCG DICE tagged-evidence extension.

use std::collections::BTreeMap;

use ciborium::Value;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use veil_attest::Tee;

use crate::RaTlsError;

/// CBOR tag of an Intel TEE (SGX or TDX) ECDSA quote with its claims
/// buffer: `60000([quote, claims-buffer])`.
pub const INTEL_TEE_QUOTE_TAG: u64 = 60000;

/// Veil-specific tag (not registered; next to the Intel ones): an AMD
/// SEV-SNP attestation report (1184 bytes, binary) with its claims buffer.
pub const VEIL_SNP_REPORT_TAG: u64 = 60010;

/// Veil-specific tag: an AWS Nitro attestation document (COSE_Sign1 CBOR)
/// with its claims buffer.
pub const VEIL_NITRO_DOCUMENT_TAG: u64 = 60011;

/// Veil-specific tag: Veil simulated-TEE evidence (format version 1, 232
/// bytes) with its claims buffer. Never genuine TEE evidence.
pub const VEIL_SIM_EVIDENCE_TAG: u64 = 60012;

/// Every tag [`parse_extension`] accepts.
pub const SUPPORTED_TAGS: [u64; 4] = [
    INTEL_TEE_QUOTE_TAG,
    VEIL_SNP_REPORT_TAG,
    VEIL_NITRO_DOCUMENT_TAG,
    VEIL_SIM_EVIDENCE_TAG,
];

/// The tag under which evidence of `tee` is carried: 60000 for SGX and TDX
/// quotes, the Veil tags for the others; `None` for a TEE this crate does
/// not know.
pub fn tag_for_tee(tee: Tee) -> Option<u64> {
    match tee {
        Tee::Sgx | Tee::Tdx => Some(INTEL_TEE_QUOTE_TAG),
        Tee::Snp => Some(VEIL_SNP_REPORT_TAG),
        Tee::Nitro => Some(VEIL_NITRO_DOCUMENT_TAG),
        Tee::Sim => Some(VEIL_SIM_EVIDENCE_TAG),
        _ => None,
    }
}

/// What a tag's evidence is, in words.
pub fn tag_name(tag: u64) -> &'static str {
    match tag {
        INTEL_TEE_QUOTE_TAG => "Intel TEE quote (SGX, TDX)",
        60001 => "Intel TEE report, not remotely verifiable",
        60002 => "legacy SGX report, not remotely verifiable",
        VEIL_SNP_REPORT_TAG => "SEV-SNP report (Veil tag)",
        VEIL_NITRO_DOCUMENT_TAG => "AWS Nitro attestation document (Veil tag)",
        VEIL_SIM_EVIDENCE_TAG => "Veil simulated-TEE evidence (Veil tag)",
        _ => "unknown",
    }
}

/// The value of a TCG DICE tagged-evidence extension (the OCTET STRING
/// contents): `tag([bstr evidence, bstr claims_buffer])`, which
/// [`parse_extension`] reads back. `claims_buffer` is carried as given (its
/// SHA-256 is what the evidence's report data binds).
pub fn encode_extension(tag: u64, evidence: &[u8], claims_buffer: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(evidence.len() + claims_buffer.len() + 20);
    cbor_head(&mut out, 6, tag);
    cbor_head(&mut out, 4, 2);
    for item in [evidence, claims_buffer] {
        cbor_head(&mut out, 2, item.len() as u64);
        out.extend_from_slice(item);
    }
    out
}

/// A CBOR head (RFC 8949 §3) in its shortest form.
fn cbor_head(out: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    match value {
        0..=23 => out.push(major | value as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, value as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

/// Largest extension value accepted (the vectors are under 5 KiB).
pub const MAX_EXTENSION_LEN: usize = 64 * 1024;

/// The name of the claim that binds the certificate key.
pub const PUBKEY_HASH_CLAIM: &str = "pubkey-hash";
/// The name of the optional freshness claim.
pub const NONCE_CLAIM: &str = "nonce";

/// A hash algorithm, by its IANA "Named Information Hash Algorithm" id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlg {
    /// sha-256 (id 1).
    Sha256,
    /// sha-384 (id 7).
    Sha384,
    /// sha-512 (id 8).
    Sha512,
    /// Any other id: recorded, but a binding with it cannot be checked.
    Other(u64),
}

impl HashAlg {
    /// The algorithm for an IANA id.
    pub fn from_id(id: u64) -> Self {
        match id {
            1 => HashAlg::Sha256,
            7 => HashAlg::Sha384,
            8 => HashAlg::Sha512,
            other => HashAlg::Other(other),
        }
    }

    /// The IANA id.
    pub fn id(self) -> u64 {
        match self {
            HashAlg::Sha256 => 1,
            HashAlg::Sha384 => 7,
            HashAlg::Sha512 => 8,
            HashAlg::Other(id) => id,
        }
    }

    /// The digest of `data`, or `None` for an unsupported algorithm.
    pub fn digest(self, data: &[u8]) -> Option<Vec<u8>> {
        match self {
            HashAlg::Sha256 => Some(Sha256::digest(data).to_vec()),
            HashAlg::Sha384 => Some(Sha384::digest(data).to_vec()),
            HashAlg::Sha512 => Some(Sha512::digest(data).to_vec()),
            HashAlg::Other(_) => None,
        }
    }
}

/// The decoded `pubkey-hash` claim: a CoSWID `hash-entry` `[alg-id, hash]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PubkeyHash {
    /// The hash algorithm.
    pub alg: HashAlg,
    /// The hash of the certificate's SubjectPublicKeyInfo DER.
    pub value: Vec<u8>,
}

/// One claim value from the claims buffer.
///
/// The interoperable RA-TLS format puts byte strings in every claim; other
/// CBOR types are kept for display.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimValue {
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// An integer.
    Integer(i128),
    /// A boolean.
    Bool(bool),
    /// CBOR null.
    Null,
    /// Any other CBOR item (array, map, float, tag), by its type name.
    Other(&'static str),
}

impl ClaimValue {
    /// The bytes, when the value is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            ClaimValue::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// The parsed value of a TCG DICE tagged-evidence extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedEvidence {
    /// The CBOR tag: the evidence format (one of [`SUPPORTED_TAGS`]).
    pub tag: u64,
    /// The evidence (a quote, an SNP report, a Nitro document, sim evidence).
    pub evidence: Vec<u8>,
    /// The claims buffer exactly as carried: its SHA-256 is what the quote's
    /// report data binds.
    pub claims_buffer: Vec<u8>,
    /// The claims by name.
    pub claims: BTreeMap<String, ClaimValue>,
    /// The decoded `pubkey-hash` claim, when present.
    pub pubkey_hash: Option<PubkeyHash>,
}

/// Parses the value (the OCTET STRING contents) of a TCG DICE
/// tagged-evidence extension.
///
/// Expects exactly one CBOR item: a tag of [`SUPPORTED_TAGS`]
/// ([`INTEL_TEE_QUOTE_TAG`] or a Veil tag) over an array of two byte
/// strings `[evidence, claims-buffer]`; the claims buffer must be a CBOR map
/// with text keys (no duplicates). The `pubkey-hash` claim, when present,
/// must be a byte string holding the CBOR array `[hash-alg-id, hash]`.
/// Other tags fail with [`RaTlsError::UnsupportedTag`]; a missing
/// `pubkey-hash` is not an error here (the binding check reports it). The
/// evidence itself is not looked at (see [`crate::inspect_evidence`]).
pub fn parse_extension(bytes: &[u8]) -> Result<TaggedEvidence, RaTlsError> {
    if bytes.len() > MAX_EXTENSION_LEN {
        return Err(RaTlsError::MalformedExtension(format!(
            "{} bytes; at most {MAX_EXTENSION_LEN} accepted",
            bytes.len()
        )));
    }
    let value = read_one(bytes).map_err(RaTlsError::MalformedExtension)?;
    let Value::Tag(tag, inner) = value else {
        return Err(RaTlsError::MalformedExtension(
            "not a tagged CBOR item".into(),
        ));
    };
    if !SUPPORTED_TAGS.contains(&tag) {
        return Err(RaTlsError::UnsupportedTag { tag });
    }
    let Value::Array(items) = *inner else {
        return Err(RaTlsError::MalformedExtension(format!(
            "tag {tag} does not wrap an array"
        )));
    };
    let [Value::Bytes(evidence), Value::Bytes(claims_buffer)] = <[Value; 2]>::try_from(items)
        .map_err(|items| {
            RaTlsError::MalformedExtension(format!(
                "tag {tag} wraps an array of {} items; expected [evidence, claims]",
                items.len()
            ))
        })?
    else {
        return Err(RaTlsError::MalformedExtension(
            "evidence and claims must both be byte strings".into(),
        ));
    };
    let claims = parse_claims(&claims_buffer)?;
    let pubkey_hash = claims
        .get(PUBKEY_HASH_CLAIM)
        .map(parse_pubkey_hash)
        .transpose()?;
    Ok(TaggedEvidence {
        tag,
        evidence,
        claims_buffer,
        claims,
        pubkey_hash,
    })
}

/// Reads exactly one CBOR item, refusing trailing bytes.
pub(crate) fn read_one(bytes: &[u8]) -> Result<Value, String> {
    let mut rest = bytes;
    let value: Value =
        ciborium::de::from_reader(&mut rest).map_err(|e| format!("not valid CBOR: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes of trailing data", rest.len()));
    }
    Ok(value)
}

fn parse_claims(buffer: &[u8]) -> Result<BTreeMap<String, ClaimValue>, RaTlsError> {
    let Value::Map(entries) = read_one(buffer).map_err(RaTlsError::MalformedClaims)? else {
        return Err(RaTlsError::MalformedClaims(
            "claims buffer is not a CBOR map".into(),
        ));
    };
    let mut claims = BTreeMap::new();
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(RaTlsError::MalformedClaims(
                "a claim name is not a text string".into(),
            ));
        };
        let value = match value {
            Value::Bytes(b) => ClaimValue::Bytes(b),
            Value::Text(t) => ClaimValue::Text(t),
            Value::Integer(i) => ClaimValue::Integer(i.into()),
            Value::Bool(b) => ClaimValue::Bool(b),
            Value::Null => ClaimValue::Null,
            other => ClaimValue::Other(type_name(&other)),
        };
        if claims.insert(key.clone(), value).is_some() {
            return Err(RaTlsError::MalformedClaims(format!(
                "claim {key:?} appears twice"
            )));
        }
    }
    Ok(claims)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Float(_) => "float",
        Value::Tag(..) => "tag",
        _ => "other",
    }
}

fn parse_pubkey_hash(value: &ClaimValue) -> Result<PubkeyHash, RaTlsError> {
    let bad = |why: String| RaTlsError::MalformedClaims(format!("pubkey-hash {why}"));
    let ClaimValue::Bytes(bytes) = value else {
        return Err(bad("is not a byte string".into()));
    };
    let entry = read_one(bytes).map_err(|e| bad(format!("does not hold CBOR: {e}")))?;
    let Value::Array(items) = entry else {
        return Err(bad("does not hold a [hash-alg-id, hash] array".into()));
    };
    let [Value::Integer(alg), Value::Bytes(hash)] = <[Value; 2]>::try_from(items)
        .map_err(|items| bad(format!("array has {} items; expected 2", items.len())))?
    else {
        return Err(bad("is not [unsigned integer, byte string]".into()));
    };
    let alg = u64::try_from(alg).map_err(|_| bad("hash-alg-id is negative".into()))?;
    Ok(PubkeyHash {
        alg: HashAlg::from_id(alg),
        value: hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    fn claims_buffer(entries: Vec<(Value, Value)>) -> Vec<u8> {
        encode(&Value::Map(entries))
    }

    fn hash_entry(alg: u64, hash: &[u8]) -> Value {
        Value::Bytes(encode(&Value::Array(vec![
            Value::Integer(alg.into()),
            Value::Bytes(hash.to_vec()),
        ])))
    }

    fn ext(tag: u64, items: Vec<Value>) -> Vec<u8> {
        encode(&Value::Tag(tag, Box::new(Value::Array(items))))
    }

    #[test]
    fn parses_a_well_formed_extension() {
        let claims = claims_buffer(vec![
            (Value::Text("pubkey-hash".into()), hash_entry(7, &[9; 48])),
            (Value::Text("nonce".into()), Value::Bytes(vec![1, 2, 3])),
        ]);
        let bytes = ext(
            60000,
            vec![Value::Bytes(vec![3, 0]), Value::Bytes(claims.clone())],
        );
        let t = parse_extension(&bytes).unwrap();
        assert_eq!(t.tag, 60000);
        assert_eq!(t.evidence, vec![3, 0]);
        assert_eq!(t.claims_buffer, claims);
        assert_eq!(
            t.pubkey_hash,
            Some(PubkeyHash {
                alg: HashAlg::Sha384,
                value: vec![9; 48]
            })
        );
        assert_eq!(t.claims["nonce"].as_bytes(), Some(&[1u8, 2, 3][..]));
    }

    #[test]
    fn refuses_other_shapes() {
        let good_claims = claims_buffer(vec![]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "not valid CBOR"),
            (encode(&Value::Bytes(vec![1])), "not a tagged"),
            (ext(60001, vec![]), "60001"),
            (
                ext(1234, vec![]),
                "unsupported RA-TLS evidence CBOR tag 1234",
            ),
            (
                encode(&Value::Tag(60000, Box::new(Value::Bytes(vec![])))),
                "does not wrap an array",
            ),
            (ext(60000, vec![Value::Bytes(vec![])]), "array of 1 items"),
            (
                ext(
                    60000,
                    vec![Value::Text("q".into()), Value::Bytes(good_claims.clone())],
                ),
                "both be byte strings",
            ),
            (
                ext(60000, vec![Value::Bytes(vec![]), Value::Bytes(vec![0x80])]),
                "not a CBOR map",
            ),
            (
                ext(
                    60000,
                    vec![
                        Value::Bytes(vec![]),
                        Value::Bytes(claims_buffer(vec![(Value::Integer(1.into()), Value::Null)])),
                    ],
                ),
                "not a text string",
            ),
            (
                ext(
                    60000,
                    vec![
                        Value::Bytes(vec![]),
                        Value::Bytes(claims_buffer(vec![
                            (Value::Text("a".into()), Value::Null),
                            (Value::Text("a".into()), Value::Null),
                        ])),
                    ],
                ),
                "appears twice",
            ),
            (
                ext(
                    60000,
                    vec![
                        Value::Bytes(vec![]),
                        Value::Bytes(claims_buffer(vec![(
                            Value::Text("pubkey-hash".into()),
                            Value::Bytes(vec![0x01]),
                        )])),
                    ],
                ),
                "pubkey-hash does not hold a [hash-alg-id, hash] array",
            ),
        ];
        for (bytes, needle) in cases {
            let err = parse_extension(&bytes).unwrap_err();
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        }
        let mut trailing = ext(60000, vec![Value::Bytes(vec![]), Value::Bytes(good_claims)]);
        trailing.push(0);
        assert!(parse_extension(&trailing)
            .unwrap_err()
            .to_string()
            .contains("trailing"));
    }

    #[test]
    fn huge_declared_lengths_fail_without_allocating() {
        for bytes in [
            &[
                0xd9, 0xea, 0x60, 0x82, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
            &[
                0xd9, 0xea, 0x60, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
            &[
                0xd9, 0xea, 0x60, 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
        ] {
            assert!(parse_extension(bytes).is_err());
        }
    }

    #[test]
    fn deep_nesting_fails_without_overflowing_the_stack() {
        let mut bytes = vec![0xd9, 0xea, 0x60];
        bytes.extend(std::iter::repeat_n(0x81, 100_000));
        bytes.push(0x00);
        assert!(parse_extension(&bytes).is_err());
    }

    #[test]
    fn veil_tags_are_accepted_and_unknown_ones_refused() {
        let claims = claims_buffer(vec![]);
        for tag in SUPPORTED_TAGS {
            let bytes = ext(
                tag,
                vec![Value::Bytes(vec![7]), Value::Bytes(claims.clone())],
            );
            assert_eq!(parse_extension(&bytes).unwrap().tag, tag);
        }
        for tag in [0, 59999, 60001, 60002, 60003, 60009, 60013, u64::MAX] {
            let bytes = ext(
                tag,
                vec![Value::Bytes(vec![7]), Value::Bytes(claims.clone())],
            );
            assert_eq!(
                parse_extension(&bytes),
                Err(RaTlsError::UnsupportedTag { tag })
            );
        }
        assert_eq!(tag_for_tee(Tee::Sgx), Some(INTEL_TEE_QUOTE_TAG));
        assert_eq!(tag_for_tee(Tee::Tdx), Some(INTEL_TEE_QUOTE_TAG));
        assert_eq!(tag_for_tee(Tee::Snp), Some(VEIL_SNP_REPORT_TAG));
        assert_eq!(tag_for_tee(Tee::Nitro), Some(VEIL_NITRO_DOCUMENT_TAG));
        assert_eq!(tag_for_tee(Tee::Sim), Some(VEIL_SIM_EVIDENCE_TAG));
        assert!(tag_name(VEIL_SIM_EVIDENCE_TAG).contains("sim"));
    }

    #[test]
    fn encoding_is_the_shortest_form_ciborium_writes() {
        for len in [0usize, 23, 24, 255, 256, 65535, 65536] {
            let evidence = vec![0xab; len];
            let claims = claims_buffer(vec![(Value::Text("nonce".into()), Value::Bytes(vec![1]))]);
            for tag in [0, 23, 24, 255, 256, 60000, 70000, u64::from(u32::MAX) + 1] {
                let expected = ext(
                    tag,
                    vec![Value::Bytes(evidence.clone()), Value::Bytes(claims.clone())],
                );
                assert_eq!(
                    encode_extension(tag, &evidence, &claims),
                    expected,
                    "{tag} {len}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn encode_then_parse_round_trips(
            tag in proptest::sample::select(SUPPORTED_TAGS.to_vec()),
            evidence in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            nonce in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
            alg in proptest::sample::select(vec![1u64, 7, 8, 42]),
            hash in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70),
        ) {
            let claims = claims_buffer(vec![
                (Value::Text("nonce".into()), Value::Bytes(nonce.clone())),
                (Value::Text("pubkey-hash".into()), hash_entry(alg, &hash)),
            ]);
            let parsed = parse_extension(&encode_extension(tag, &evidence, &claims)).unwrap();
            proptest::prop_assert_eq!(parsed.tag, tag);
            proptest::prop_assert_eq!(&parsed.evidence, &evidence);
            proptest::prop_assert_eq!(&parsed.claims_buffer, &claims);
            proptest::prop_assert_eq!(parsed.claims["nonce"].as_bytes(), Some(&nonce[..]));
            proptest::prop_assert_eq!(
                parsed.pubkey_hash,
                Some(PubkeyHash { alg: HashAlg::from_id(alg), value: hash })
            );
        }
    }

    #[test]
    fn hash_alg_ids() {
        for (id, alg, len) in [
            (1, HashAlg::Sha256, 32),
            (7, HashAlg::Sha384, 48),
            (8, HashAlg::Sha512, 64),
        ] {
            assert_eq!(HashAlg::from_id(id), alg);
            assert_eq!(alg.id(), id);
            assert_eq!(alg.digest(b"x").map(|d| d.len()), Some(len));
        }
        assert_eq!(HashAlg::from_id(2), HashAlg::Other(2));
        assert_eq!(HashAlg::Other(2).digest(b"x"), None);
    }
}
