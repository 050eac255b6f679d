//! Parsing of the attestation document: COSE_Sign1 envelope and payload map.
//!
//! Nothing here checks a signature or a certificate; see `verify.rs`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use ciborium::Value;
use coset::iana::EnumI64 as _;
use coset::{CborSerializable, CoseSign1, RegisteredLabelWithPrivate, TaggedCborSerializable};
use veil_attest::{NitroClaims, VerifyError};

/// What [`VerifyError::Malformed`] names for this crate's parse errors.
pub(crate) const WHAT: &str = "Nitro attestation document";

/// The largest binary document accepted (real ones are about 4.5 KiB).
pub const MAX_DOCUMENT_LEN: usize = 64 * 1024;

/// The only PCR digest AWS documents use.
const DIGEST_SHA384: &str = "SHA384";
/// Length of a SHA-384 PCR value.
const PCR_LEN: usize = 48;
/// PCR indices run from 0 to 31.
const MAX_PCR_INDEX: u64 = 31;
/// Largest `user_data` and `nonce` the NSM accepts.
const MAX_USER_DATA_LEN: usize = 512;
/// Largest `public_key` the NSM accepts.
const MAX_PUBLIC_KEY_LEN: usize = 1024;
/// Largest certificate (leaf or CA bundle entry) AWS's validation rules allow.
const MAX_CERT_LEN: usize = 1024;
/// Most certificates accepted in `cabundle` (AWS sends 4).
const MAX_CABUNDLE_LEN: usize = 16;

/// The COSE algorithm id of ECDSA P-384 with SHA-384.
pub const COSE_ALG_ES384: i64 = -35;

/// A parsed Nitro attestation document whose signature and certificate chain
/// have **not** been checked.
///
/// Use it to show a document or to fuzz the parser; only
/// [`crate::NitroVerifier`] says whether it is genuine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroDocument {
    /// The payload fields, as they will appear in verified claims.
    pub claims: NitroClaims,
    /// The DER certificate whose key signed the document.
    pub certificate: Vec<u8>,
    /// The CA bundle (DER certificates), root first, as the document carries it.
    pub cabundle: Vec<Vec<u8>>,
    /// The COSE algorithm id in the protected header (`-35` for ES384), when
    /// it is an integer.
    pub algorithm: Option<i64>,
    /// The COSE signature value (`r || s` for ES384).
    pub signature: Vec<u8>,
    /// True when the COSE_Sign1 carried CBOR tag 18.
    pub tagged: bool,
    /// The COSE `Sig_structure` the signature covers.
    pub(crate) to_be_signed: Vec<u8>,
}

impl NitroDocument {
    /// The bytes the COSE signature covers: `["Signature1", protected, h'', payload]`.
    pub fn to_be_signed(&self) -> &[u8] {
        &self.to_be_signed
    }
}

/// Parses a Nitro attestation document without verifying it.
///
/// Accepts the COSE_Sign1 CBOR (tagged with 18 or untagged) or base64 text of
/// it (standard or URL-safe alphabet, padding optional, surrounding
/// whitespace ignored). The payload is checked strictly against AWS's
/// syntactic rules: every mandatory field present with its CBOR type,
/// `digest` = `SHA384`, 1 to 32 PCRs with indices 0..=31 and 48-byte values,
/// `user_data` and `nonce` at most 512 bytes, `public_key` 1 to 1024 bytes,
/// certificates 1 to 1024 bytes, no duplicate keys. Optional fields may be
/// absent or `null`; unknown text keys are ignored (they are signed, so
/// they cannot be injected).
///
/// Every failure is [`VerifyError::Malformed`].
pub fn parse_document(bytes: &[u8]) -> Result<NitroDocument, VerifyError> {
    let raw = decode_input(bytes)?;
    let (sign1, tagged) = parse_cose(&raw)?;
    let algorithm = match &sign1.protected.header.alg {
        Some(RegisteredLabelWithPrivate::Assigned(a)) => Some(a.to_i64()),
        Some(RegisteredLabelWithPrivate::PrivateUse(a)) => Some(*a),
        Some(RegisteredLabelWithPrivate::Text(_)) | None => None,
    };
    let payload = sign1
        .payload
        .as_deref()
        .ok_or_else(|| malformed("COSE payload is detached (nil); the document must carry it"))?;
    let fields = parse_payload(payload)?;
    let to_be_signed = sign1.tbs_data(&[]);
    Ok(NitroDocument {
        claims: fields.claims,
        certificate: fields.certificate,
        cabundle: fields.cabundle,
        algorithm,
        signature: sign1.signature,
        tagged,
        to_be_signed,
    })
}

/// Cheaply tells whether `bytes` look like a Nitro attestation document: a
/// COSE_Sign1 (binary or base64, tagged or not) whose payload is a CBOR map
/// with a `module_id` key. It does not check the other fields; use
/// [`parse_document`] for that.
pub fn looks_like_nitro_document(bytes: &[u8]) -> bool {
    let Ok(raw) = decode_input(bytes) else {
        return false;
    };
    let Ok((sign1, _)) = parse_cose(&raw) else {
        return false;
    };
    let Some(payload) = sign1.payload.as_deref() else {
        return false;
    };
    match read_value(payload) {
        Ok(Value::Map(entries)) => entries
            .iter()
            .any(|(k, _)| matches!(k, Value::Text(t) if t == "module_id")),
        _ => false,
    }
}

fn malformed(detail: impl Into<String>) -> VerifyError {
    VerifyError::malformed(WHAT, detail)
}

/// Binary CBOR as is, or base64 text decoded.
fn decode_input(bytes: &[u8]) -> Result<Cow<'_, [u8]>, VerifyError> {
    let first = *bytes.first().ok_or_else(|| malformed("empty input"))?;
    // 0x84: array of 4 items (untagged COSE_Sign1); 0xd2: tag 18.
    if first == 0x84 || first == 0xd2 {
        if bytes.len() > MAX_DOCUMENT_LEN {
            return Err(malformed(format!(
                "{} bytes; at most {MAX_DOCUMENT_LEN} accepted",
                bytes.len()
            )));
        }
        return Ok(Cow::Borrowed(bytes));
    }
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let is_base64 = !text.is_empty()
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'='));
    if !is_base64 {
        return Err(malformed(
            "not a COSE_Sign1 (expected a CBOR array of 4 items, optionally tagged 18, or base64 of it)",
        ));
    }
    if text.len() > MAX_DOCUMENT_LEN / 3 * 4 + 4 {
        return Err(malformed(format!(
            "{} base64 characters; at most {MAX_DOCUMENT_LEN} decoded bytes accepted",
            text.len()
        )));
    }
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&alphabet::STANDARD, config);
    let url_safe = GeneralPurpose::new(&alphabet::URL_SAFE, config);
    let decoded = standard
        .decode(&text)
        .or_else(|_| url_safe.decode(&text))
        .map_err(|e| malformed(format!("input looks like base64 but does not decode: {e}")))?;
    match decoded.first() {
        Some(0x84 | 0xd2) => Ok(Cow::Owned(decoded)),
        _ => Err(malformed(
            "base64 input does not decode to a COSE_Sign1 (CBOR array of 4 items)",
        )),
    }
}

fn parse_cose(raw: &[u8]) -> Result<(CoseSign1, bool), VerifyError> {
    let tagged = raw.first() == Some(&0xd2);
    let parsed = if tagged {
        CoseSign1::from_tagged_slice(raw)
    } else {
        CoseSign1::from_slice(raw)
    };
    parsed
        .map(|s| (s, tagged))
        .map_err(|e| malformed(format!("not a valid COSE_Sign1: {e}")))
}

/// Reads exactly one CBOR item from `bytes`, refusing trailing data.
fn read_value(bytes: &[u8]) -> Result<Value, VerifyError> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader(&mut rest)
        .map_err(|e| malformed(format!("payload is not valid CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} bytes of trailing data after the payload map",
            rest.len()
        )));
    }
    Ok(value)
}

struct Fields {
    claims: NitroClaims,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
}

fn parse_payload(payload: &[u8]) -> Result<Fields, VerifyError> {
    let Value::Map(entries) = read_value(payload)? else {
        return Err(malformed("payload is not a CBOR map"));
    };
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(malformed("payload map has a key that is not text"));
        };
        if map.contains_key(&key) {
            return Err(malformed(format!("payload field {key:?} appears twice")));
        }
        map.insert(key, value);
    }

    let module_id = match map.remove("module_id") {
        Some(Value::Text(t)) if !t.is_empty() => t,
        Some(Value::Text(_)) => return Err(malformed("module_id is empty")),
        Some(_) => return Err(malformed("module_id is not text")),
        None => return Err(missing("module_id")),
    };
    let digest = match map.remove("digest") {
        Some(Value::Text(t)) if t == DIGEST_SHA384 => t,
        Some(Value::Text(t)) => {
            return Err(malformed(format!(
                "digest is {t:?}; only {DIGEST_SHA384:?} is defined"
            )))
        }
        Some(_) => return Err(malformed("digest is not text")),
        None => return Err(missing("digest")),
    };
    let timestamp_ms = match map.remove("timestamp") {
        Some(Value::Integer(i)) => match u64::try_from(i) {
            Ok(t) if t > 0 => t,
            _ => return Err(malformed("timestamp is not a positive integer")),
        },
        Some(_) => return Err(malformed("timestamp is not an integer")),
        None => return Err(missing("timestamp")),
    };
    let pcrs = match map.remove("pcrs") {
        Some(Value::Map(entries)) => parse_pcrs(entries)?,
        Some(_) => return Err(malformed("pcrs is not a map")),
        None => return Err(missing("pcrs")),
    };
    let certificate = match map.remove("certificate") {
        Some(v) => bytes_field("certificate", v, 1, MAX_CERT_LEN)?,
        None => return Err(missing("certificate")),
    };
    let cabundle = match map.remove("cabundle") {
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(malformed("cabundle is empty"));
            }
            if items.len() > MAX_CABUNDLE_LEN {
                return Err(malformed(format!(
                    "cabundle has {} certificates; at most {MAX_CABUNDLE_LEN} accepted",
                    items.len()
                )));
            }
            items
                .into_iter()
                .map(|v| bytes_field("cabundle entry", v, 1, MAX_CERT_LEN))
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(malformed("cabundle is not an array")),
        None => return Err(missing("cabundle")),
    };
    let public_key = optional_bytes(&mut map, "public_key", 1, MAX_PUBLIC_KEY_LEN)?;
    let user_data = optional_bytes(&mut map, "user_data", 0, MAX_USER_DATA_LEN)?;
    let nonce = optional_bytes(&mut map, "nonce", 0, MAX_USER_DATA_LEN)?;

    Ok(Fields {
        claims: NitroClaims {
            module_id,
            digest,
            timestamp_ms,
            pcrs,
            public_key,
            user_data,
            nonce,
        },
        certificate,
        cabundle,
    })
}

fn missing(field: &str) -> VerifyError {
    malformed(format!("mandatory field {field} is missing"))
}

fn parse_pcrs(entries: Vec<(Value, Value)>) -> Result<BTreeMap<u8, Vec<u8>>, VerifyError> {
    if entries.is_empty() {
        return Err(malformed("pcrs is empty"));
    }
    let mut pcrs = BTreeMap::new();
    for (key, value) in entries {
        let index = match key {
            Value::Integer(i) => u64::try_from(i).ok(),
            _ => None,
        }
        .ok_or_else(|| malformed("a PCR index is not an unsigned integer"))?;
        if index > MAX_PCR_INDEX {
            return Err(malformed(format!(
                "PCR index {index} is out of range 0..={MAX_PCR_INDEX}"
            )));
        }
        let index = u8::try_from(index).map_err(|_| malformed("PCR index out of range"))?;
        let Value::Bytes(bytes) = value else {
            return Err(malformed(format!("PCR{index} is not a byte string")));
        };
        if bytes.len() != PCR_LEN {
            return Err(malformed(format!(
                "PCR{index} is {} bytes; SHA384 PCRs are {PCR_LEN}",
                bytes.len()
            )));
        }
        if pcrs.insert(index, bytes).is_some() {
            return Err(malformed(format!("PCR{index} appears twice")));
        }
    }
    Ok(pcrs)
}

fn bytes_field(name: &str, value: Value, min: usize, max: usize) -> Result<Vec<u8>, VerifyError> {
    let Value::Bytes(bytes) = value else {
        return Err(malformed(format!("{name} is not a byte string")));
    };
    if bytes.len() < min || bytes.len() > max {
        return Err(malformed(format!(
            "{name} is {} bytes; {min} to {max} allowed",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn optional_bytes(
    map: &mut BTreeMap<String, Value>,
    name: &str,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, VerifyError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => bytes_field(name, v, min, max).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[u8] = include_bytes!("../testdata/evervault_valid_doc.cbor");

    /// The valid document with its payload map edited (signature left stale).
    fn with_payload(edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
        let Value::Array(mut items) = read_value_any(VALID) else {
            panic!("not an array")
        };
        let Value::Bytes(payload) = &items[2] else {
            panic!("no payload")
        };
        let Value::Map(mut map) = read_value(payload).unwrap() else {
            panic!("payload not a map")
        };
        edit(&mut map);
        let mut encoded = Vec::new();
        ciborium::ser::into_writer(&Value::Map(map), &mut encoded).unwrap();
        items[2] = Value::Bytes(encoded);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Array(items), &mut out).unwrap();
        out
    }

    fn read_value_any(bytes: &[u8]) -> Value {
        ciborium::de::from_reader(bytes).unwrap()
    }

    fn set(map: &mut [(Value, Value)], key: &str, value: Value) {
        let entry = map
            .iter_mut()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
            .unwrap();
        entry.1 = value;
    }

    fn remove(map: &mut Vec<(Value, Value)>, key: &str) {
        map.retain(|(k, _)| !matches!(k, Value::Text(t) if t == key));
    }

    fn pcrs(map: &mut [(Value, Value)]) -> &mut Vec<(Value, Value)> {
        let entry = map
            .iter_mut()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == "pcrs"))
            .unwrap();
        let Value::Map(p) = &mut entry.1 else {
            panic!("pcrs not a map")
        };
        p
    }

    fn assert_malformed(bytes: &[u8], needle: &str) {
        match parse_document(bytes) {
            Err(VerifyError::Malformed { what, detail }) => {
                assert_eq!(what, WHAT);
                assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
            }
            other => panic!("expected Malformed containing {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn unedited_reencoding_parses() {
        let doc = parse_document(&with_payload(|_| {})).unwrap();
        assert_eq!(doc.claims.pcrs.len(), 16);
    }

    #[test]
    fn mandatory_fields_must_be_present() {
        for field in [
            "module_id",
            "digest",
            "timestamp",
            "pcrs",
            "certificate",
            "cabundle",
        ] {
            assert_malformed(&with_payload(|m| remove(m, field)), field);
        }
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let doc = parse_document(&with_payload(|m| {
            remove(m, "nonce");
            remove(m, "public_key");
            set(m, "user_data", Value::Null);
        }))
        .unwrap();
        assert_eq!(doc.claims.nonce, None);
        assert_eq!(doc.claims.public_key, None);
        assert_eq!(doc.claims.user_data, None);
    }

    #[test]
    fn wrong_types_are_malformed() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "module_id",
                Value::Bytes(b"x".to_vec()),
                "module_id is not text",
            ),
            (
                "module_id",
                Value::Text(String::new()),
                "module_id is empty",
            ),
            ("digest", Value::Text("SHA256".into()), "only \"SHA384\""),
            ("digest", Value::Integer(1.into()), "digest is not text"),
            (
                "timestamp",
                Value::Text("now".into()),
                "timestamp is not an integer",
            ),
            ("timestamp", Value::Integer((-5).into()), "positive"),
            ("timestamp", Value::Integer(0.into()), "positive"),
            ("pcrs", Value::Array(vec![]), "pcrs is not a map"),
            ("pcrs", Value::Map(vec![]), "pcrs is empty"),
            (
                "certificate",
                Value::Text("x".into()),
                "certificate is not a byte string",
            ),
            (
                "certificate",
                Value::Bytes(vec![]),
                "certificate is 0 bytes",
            ),
            ("certificate", Value::Bytes(vec![0; 1025]), "1 to 1024"),
            ("cabundle", Value::Array(vec![]), "cabundle is empty"),
            (
                "cabundle",
                Value::Bytes(vec![1]),
                "cabundle is not an array",
            ),
            (
                "cabundle",
                Value::Array(vec![Value::Text("x".into())]),
                "cabundle entry",
            ),
            (
                "cabundle",
                Value::Array(vec![Value::Bytes(vec![0x30]); 17]),
                "at most 16",
            ),
            ("public_key", Value::Bytes(vec![]), "public_key is 0 bytes"),
            (
                "public_key",
                Value::Bytes(vec![1; 1025]),
                "public_key is 1025 bytes",
            ),
            ("nonce", Value::Bytes(vec![1; 513]), "nonce is 513 bytes"),
            (
                "nonce",
                Value::Text("n".into()),
                "nonce is not a byte string",
            ),
        ];
        for (field, value, needle) in cases {
            assert_malformed(&with_payload(|m| set(m, field, value)), needle);
        }
        assert_malformed(
            &with_payload(|m| {
                m.push((Value::Text("user_data".into()), Value::Bytes(vec![1; 513])))
            }),
            "appears twice",
        );
        let doc = with_payload(|m| {
            remove(m, "user_data");
            m.push((Value::Text("user_data".into()), Value::Bytes(vec![1; 513])));
        });
        assert_malformed(&doc, "user_data is 513 bytes");
        let doc = with_payload(|m| {
            remove(m, "user_data");
            m.push((Value::Text("user_data".into()), Value::Bytes(vec![1; 512])));
        });
        assert_eq!(
            parse_document(&doc)
                .unwrap()
                .claims
                .user_data
                .map(|u| u.len()),
            Some(512)
        );
    }

    #[test]
    fn bad_pcrs_are_malformed() {
        assert_malformed(
            &with_payload(|m| pcrs(m).push((Value::Integer(32.into()), Value::Bytes(vec![0; 48])))),
            "PCR index 32 is out of range",
        );
        assert_malformed(
            &with_payload(|m| {
                pcrs(m).push((Value::Integer((-1).into()), Value::Bytes(vec![0; 48])))
            }),
            "not an unsigned integer",
        );
        assert_malformed(
            &with_payload(|m| pcrs(m).push((Value::Text("16".into()), Value::Bytes(vec![0; 48])))),
            "not an unsigned integer",
        );
        assert_malformed(
            &with_payload(|m| pcrs(m)[3].1 = Value::Bytes(vec![0; 32])),
            "PCR3 is 32 bytes",
        );
        assert_malformed(
            &with_payload(|m| pcrs(m)[3].1 = Value::Text("x".into())),
            "PCR3 is not a byte string",
        );
        assert_malformed(
            &with_payload(|m| pcrs(m).push((Value::Integer(3.into()), Value::Bytes(vec![0; 48])))),
            "PCR3 appears twice",
        );
        let doc =
            with_payload(|m| pcrs(m).push((Value::Integer(31.into()), Value::Bytes(vec![7; 48]))));
        assert_eq!(parse_document(&doc).unwrap().claims.pcrs.len(), 17);
    }

    #[test]
    fn non_text_keys_and_non_map_payloads_are_malformed() {
        assert_malformed(
            &with_payload(|m| m.push((Value::Integer(1.into()), Value::Null))),
            "not text",
        );
        let Value::Array(mut items) = read_value_any(VALID) else {
            panic!()
        };
        items[2] = Value::Bytes(vec![0x80]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Array(items.clone()), &mut out).unwrap();
        assert_malformed(&out, "not a CBOR map");
        items[2] = Value::Null;
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Array(items), &mut out).unwrap();
        assert_malformed(&out, "detached");
    }

    #[test]
    fn trailing_bytes_in_the_payload_are_malformed() {
        let Value::Array(mut items) = read_value_any(VALID) else {
            panic!()
        };
        if let Value::Bytes(p) = &mut items[2] {
            p.push(0);
        }
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Array(items), &mut out).unwrap();
        assert_malformed(&out, "trailing data");
    }

    #[test]
    fn unknown_text_keys_are_ignored() {
        let doc = with_payload(|m| m.push((Value::Text("future".into()), Value::Bool(true))));
        assert!(parse_document(&doc).is_ok());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let mut big = VALID.to_vec();
        big.resize(MAX_DOCUMENT_LEN + 1, 0);
        assert_malformed(&big, "at most");
    }

    #[test]
    fn hostile_cbor_fails_cleanly() {
        // Huge declared lengths, deep nesting.
        assert!(
            parse_document(&[0x84, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        assert!(parse_document(&[0x84, 0x40, 0xa0, 0x5a, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut deep = vec![0x84, 0x40, 0xa0];
        deep.extend(std::iter::repeat_n(0x81, 100_000));
        assert!(parse_document(&deep).is_err());
        let mut payload = vec![0xa1, 0x69];
        payload.extend_from_slice(b"module_id");
        payload.extend(std::iter::repeat_n(0x81, 100_000));
        payload.push(0);
        let mut doc = vec![0x84, 0x40, 0xa0, 0x5a];
        doc.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        doc.extend_from_slice(&payload);
        doc.push(0x40);
        assert!(parse_document(&doc).is_err());
        assert!(!looks_like_nitro_document(&doc));
    }
}
