//! Certificates for attested launchers, and the Veil attestation extension.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm, SigningKey,
};
use serde::{Deserialize, Serialize};
use veil_attest::{Tee, Time};
use x509_parser::extensions::GeneralName;

use crate::identity::{base_params, spki_public_key};
use crate::util::{check_label, from_asn1, parse_cert, sans};
use crate::{verify_chain, CaError, CaIdentity, Fingerprint};

/// The UUID (random, version 4, generated once for Veil) under which the
/// attestation extension's OID is registered by ITU-T X.667 / RFC 4122 §4.
pub const VEIL_ATTESTATION_EXT_UUID: &str = "08274b5b-c4a8-4bc5-95c5-d4202d23efb0";

/// OID of the Veil attestation extension: `2.25.<UUID as a decimal integer>`
/// (X.667 "UUID-derived OID"; no registration needed), from
/// [`VEIL_ATTESTATION_EXT_UUID`].
pub const VEIL_ATTESTATION_EXT_OID: &str = "2.25.10837851995107767219045617127733325744";

/// DER content octets of [`VEIL_ATTESTATION_EXT_OID`] (without tag and
/// length), for comparing with a parsed extension's OID bytes: many OID
/// types (rcgen's, `const-oid`'s) cannot hold a 128-bit arc.
pub const VEIL_ATTESTATION_EXT_OID_DER: &[u8] = &[
    0x69, 0x90, 0xa7, 0xa5, 0xd6, 0xf8, 0xca, 0xc2, 0xaf, 0x8b, 0x95, 0xe2, 0xf5, 0x84, 0x82, 0xe9,
    0x8f, 0xdf, 0x30,
];

/// The same UUID as a number: the last arc of [`VEIL_ATTESTATION_EXT_OID`].
#[cfg(test)]
const EXT_UUID_ARC: u128 = 0x0827_4b5b_c4a8_4bc5_95c5_d420_2d23_efb0;

/// rcgen writes OID arcs as `u64`, and a UUID arc needs 128 bits. Certificates
/// are therefore built with this stand-in OID, whose DER encoding has exactly
/// the length of the real one; the signer swaps in the real OID before
/// signing, the same swap is made in the output, and the result is checked
/// with x509-parser (signature and extension) before it is returned.
const PLACEHOLDER_ARCS: [u64; 4] = [2, 25, 0x5645_494c_0000_0001, 0x504c_4143_4548_4f4c];

/// Current version of the extension's content.
pub const EXTENSION_VERSION: u32 = 1;

/// Largest extension value accepted when parsing, in bytes.
pub const MAX_EXTENSION_LEN: usize = 4096;

/// Longest measurement carried, in bytes.
pub const MAX_MEASUREMENT_LEN: usize = 128;

/// Who an attested certificate is for: the launcher of `service` in
/// `session`, running in `tee` with `measurement`, reachable at the SANs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedSubject {
    /// Session (policy) name.
    pub session: String,
    /// Service name within the session.
    pub service: String,
    /// The TEE the evidence came from.
    pub tee: Tee,
    /// The verified measurement (MRENCLAVE, MRTD, SNP measurement, PCR0...).
    #[serde(with = "veil_attest::hexfmt")]
    pub measurement: Vec<u8>,
    /// DNS subject alternative names (from the policy).
    #[serde(default)]
    pub dns: Vec<String>,
    /// IP subject alternative names (from the policy).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
}

/// What [`parse_attested_cert`] reads back from an attested certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttestedCert {
    /// Session, service, TEE and measurement from the extension; SANs from
    /// the certificate.
    pub subject: AttestedSubject,
    /// The certified public key (SubjectPublicKeyInfo DER).
    pub spki: Vec<u8>,
    /// Start of validity.
    pub not_before: Time,
    /// End of validity.
    pub not_after: Time,
    /// The issuing CA's key fingerprint *as written in the extension*. It is
    /// only a claim until the chain is verified against a CA with this
    /// fingerprint ([`verify_attested_cert`] does both).
    pub issuer_fingerprint: Fingerprint,
    /// Serial number (big-endian bytes).
    pub serial: Vec<u8>,
}

/// The extension's content, version 1, as JSON.
///
/// `{"version":1,"session":"shop/db","service":"mysqld","tee":"snp",
///   "measurement":"<hex>","issuer":"<CA key fingerprint hex>"}`
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtensionV1 {
    version: u32,
    session: String,
    service: String,
    tee: Tee,
    #[serde(with = "veil_attest::hexfmt")]
    measurement: Vec<u8>,
    issuer: Fingerprint,
}

/// Issues a certificate for an attested launcher's key `spki_der` (DER
/// SubjectPublicKeyInfo, ECDSA P-256/P-384 or Ed25519) from `ca`.
///
/// Subject `CN=<service>, OU=<session>`; SANs from `subject`; key usage
/// digitalSignature; extended key usage serverAuth and clientAuth; random
/// 128-bit serial; `not_after` cut to the CA's expiry; and the non-critical
/// extension [`VEIL_ATTESTATION_EXT_OID`] holding the JSON
/// `{version, session, service, tee, measurement, issuer}` where `issuer` is
/// the CA's key fingerprint.
pub fn issue_attested_cert(
    ca: &CaIdentity,
    spki_der: &[u8],
    subject: &AttestedSubject,
    not_before: Time,
    not_after: Time,
) -> Result<Vec<u8>, CaError> {
    issue_attested_cert_with_evidence(ca, spki_der, subject, not_before, not_after, None)
}

/// OID of the TCG DICE tagged-evidence extension, which carries evidence in
/// the Interoperable RA-TLS form.
pub const RATLS_EXT_OID: &str = "2.23.133.5.4.9";

/// Arcs of [`RATLS_EXT_OID`].
const RATLS_EXT_ARCS: [u64; 6] = [2, 23, 133, 5, 4, 9];

/// Largest RA-TLS extension value written (the RA-TLS parser's limit).
pub const MAX_RATLS_EXTENSION_LEN: usize = 64 * 1024;

/// [`issue_attested_cert`], and when `ratls` is given, also the
/// non-critical extension [`RATLS_EXT_OID`] (2.23.133.5.4.9) with `ratls`
/// as its value: the evidence the launcher attested with, in the
/// Interoperable RA-TLS form (`veil_ratls::encode_extension`), so that a
/// peer that does not trust the CA can verify the evidence itself. The
/// value is written as given (at most [`MAX_RATLS_EXTENSION_LEN`] bytes,
/// else [`CaError::Build`]); this function does not look inside it.
pub fn issue_attested_cert_with_evidence(
    ca: &CaIdentity,
    spki_der: &[u8],
    subject: &AttestedSubject,
    not_before: Time,
    not_after: Time,
    ratls: Option<&[u8]>,
) -> Result<Vec<u8>, CaError> {
    check_subject(subject)?;
    if let Some(value) = ratls {
        if value.is_empty() || value.len() > MAX_RATLS_EXTENSION_LEN {
            return Err(CaError::Build(format!(
                "RA-TLS extension value of {} bytes; expected 1..={MAX_RATLS_EXTENSION_LEN}",
                value.len()
            )));
        }
    }
    let public_key = spki_public_key(spki_der)?;
    let mut params = base_params(&subject.service, not_before, not_after)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject.service.as_str());
    dn.push(DnType::OrganizationalUnitName, subject.session.as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = sans(&subject.dns, &subject.ips)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let content = encode_extension(subject, ca.fingerprint())?;
    let mut ext = CustomExtension::from_oid_content(&PLACEHOLDER_ARCS, content);
    ext.set_criticality(false);
    params.custom_extensions = vec![ext];
    if let Some(value) = ratls {
        let mut ratls_ext = CustomExtension::from_oid_content(&RATLS_EXT_ARCS, value.to_vec());
        ratls_ext.set_criticality(false);
        params.custom_extensions.push(ratls_ext);
    }

    let placeholder = oid_tlv(&PLACEHOLDER_ARCS.map(u128::from));
    let real = ext_oid_tlv();
    if placeholder.len() != real.len() {
        return Err(CaError::Build("OID stand-in has the wrong length".into()));
    }
    let key = ca.key_pair()?;
    let signer = OidSwapSigner {
        key: &key,
        from: &placeholder,
        to: &real,
    };
    let der = ca.sign_with(&mut params, &public_key, &signer)?;
    let der = replace_once(&der, &placeholder, &real)
        .ok_or_else(|| CaError::Build("OID stand-in not found exactly once".into()))?;

    // Self-check: the swapped certificate must verify and read back.
    let cert = parse_cert(&der, "issued certificate")?;
    let ca_cert = parse_cert(ca.cert_der(), "CA certificate")?;
    cert.verify_signature(Some(ca_cert.public_key()))
        .map_err(|e| CaError::Build(format!("issued certificate does not verify: {e}")))?;
    let back = parse_attested_cert(&der)?;
    if back.subject != *subject || back.spki != spki_der {
        return Err(CaError::Build(
            "issued certificate does not read back as written".into(),
        ));
    }
    let ratls_back: Vec<&[u8]> = cert
        .extensions()
        .iter()
        .filter(|e| e.oid.to_id_string() == RATLS_EXT_OID)
        .map(|e| e.value)
        .collect();
    if ratls_back != ratls.into_iter().collect::<Vec<_>>() {
        return Err(CaError::Build(
            "issued certificate's RA-TLS extension does not read back as written".into(),
        ));
    }
    Ok(der)
}

/// Reads an attested certificate: the extension (exactly one, version 1,
/// well-formed), the SANs, validity, public key and serial. Does **not**
/// check the signature; see [`verify_attested_cert`].
pub fn parse_attested_cert(der: &[u8]) -> Result<AttestedCert, CaError> {
    let cert = parse_cert(der, "attested certificate")?;
    let mut value = None;
    for ext in cert.extensions() {
        if ext.oid.as_bytes() == VEIL_ATTESTATION_EXT_OID_DER {
            if value.is_some() {
                return Err(CaError::MalformedExtension(
                    "the extension appears more than once".into(),
                ));
            }
            value = Some(ext.value);
        }
    }
    let value = value.ok_or(CaError::MissingExtension)?;
    let ext = decode_extension(value)?;

    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CaError::malformed("subjectAltName", e))?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(b) => ips.push(ip_from_bytes(b)?),
                _ => {}
            }
        }
    }
    let v = cert.validity();
    Ok(AttestedCert {
        subject: AttestedSubject {
            session: ext.session,
            service: ext.service,
            tee: ext.tee,
            measurement: ext.measurement,
            dns,
            ips,
        },
        spki: cert.tbs_certificate.subject_pki.raw.to_vec(),
        not_before: from_asn1(v.not_before),
        not_after: from_asn1(v.not_after),
        issuer_fingerprint: ext.issuer,
        serial: cert.tbs_certificate.raw_serial().to_vec(),
    })
}

/// [`verify_chain`] against `ca_der` at `at`, then [`parse_attested_cert`],
/// then checks that the extension names that CA's key fingerprint.
pub fn verify_attested_cert(der: &[u8], ca_der: &[u8], at: Time) -> Result<AttestedCert, CaError> {
    verify_chain(der, ca_der, at)?;
    let parsed = parse_attested_cert(der)?;
    let actual = Fingerprint::of_cert_der(ca_der)?;
    if parsed.issuer_fingerprint != actual {
        return Err(CaError::IssuerFingerprintMismatch {
            claimed: parsed.issuer_fingerprint.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(parsed)
}

/// The extension's value for `subject` issued by the CA `issuer`.
pub fn encode_extension(
    subject: &AttestedSubject,
    issuer: Fingerprint,
) -> Result<Vec<u8>, CaError> {
    check_subject(subject)?;
    let ext = ExtensionV1 {
        version: EXTENSION_VERSION,
        session: subject.session.clone(),
        service: subject.service.clone(),
        tee: subject.tee,
        measurement: subject.measurement.clone(),
        issuer,
    };
    serde_json::to_vec(&ext).map_err(|e| CaError::Build(e.to_string()))
}

/// Parses an extension value (the part inside the OCTET STRING); for fuzzing
/// and for [`parse_attested_cert`]. Returns `(subject without SANs, issuer)`.
pub fn parse_extension(value: &[u8]) -> Result<(AttestedSubject, Fingerprint), CaError> {
    let ext = decode_extension(value)?;
    Ok((
        AttestedSubject {
            session: ext.session,
            service: ext.service,
            tee: ext.tee,
            measurement: ext.measurement,
            dns: Vec::new(),
            ips: Vec::new(),
        },
        ext.issuer,
    ))
}

fn decode_extension(value: &[u8]) -> Result<ExtensionV1, CaError> {
    let bad = |d: String| CaError::MalformedExtension(d);
    if value.len() > MAX_EXTENSION_LEN {
        return Err(bad(format!(
            "{} bytes, more than {MAX_EXTENSION_LEN}",
            value.len()
        )));
    }
    let json: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| bad(format!("not JSON: {e}")))?;
    match json.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(EXTENSION_VERSION) => {}
        Some(v) => return Err(bad(format!("unsupported version {v}"))),
        None => return Err(bad("no version".into())),
    }
    let ext: ExtensionV1 = serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
    let subject = AttestedSubject {
        session: ext.session.clone(),
        service: ext.service.clone(),
        tee: ext.tee,
        measurement: ext.measurement.clone(),
        dns: Vec::new(),
        ips: Vec::new(),
    };
    check_subject(&subject).map_err(|e| bad(e.to_string()))?;
    Ok(ext)
}

fn check_subject(s: &AttestedSubject) -> Result<(), CaError> {
    check_label("session", &s.session)?;
    check_label("service", &s.service)?;
    if s.measurement.is_empty() || s.measurement.len() > MAX_MEASUREMENT_LEN {
        return Err(CaError::spec(
            "measurement",
            format!(
                "{} bytes, expected 1..={MAX_MEASUREMENT_LEN}",
                s.measurement.len()
            ),
        ));
    }
    Ok(())
}

fn ip_from_bytes(b: &[u8]) -> Result<IpAddr, CaError> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Ok(IpAddr::V4(Ipv4Addr::from(a)));
    }
    if let Ok(a) = <[u8; 16]>::try_from(b) {
        return Ok(IpAddr::V6(Ipv6Addr::from(a)));
    }
    Err(CaError::malformed(
        "subjectAltName",
        format!("IP address of {} bytes", b.len()),
    ))
}

/// DER content octets of an OID (arcs as `u128`, first arc 0..=2).
fn oid_content(arcs: &[u128]) -> Vec<u8> {
    let mut out = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        _ => return out,
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut septets = Vec::new();
        let mut v = arc;
        loop {
            // Truncation is the point: the low 7 bits of `v`.
            septets.push((v & 0x7f) as u8);
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        let last = septets.len() - 1;
        for (i, s) in septets.iter().rev().enumerate() {
            out.push(if i < last { s | 0x80 } else { *s });
        }
    }
    out
}

fn oid_tlv(arcs: &[u128]) -> Vec<u8> {
    let content = oid_content(arcs);
    let mut out = Vec::with_capacity(content.len() + 2);
    out.push(0x06);
    // Veil's OIDs are far shorter than 128 bytes: short-form length.
    out.push(content.len() as u8);
    out.extend_from_slice(&content);
    out
}

fn ext_oid_tlv() -> Vec<u8> {
    let mut out = vec![0x06, VEIL_ATTESTATION_EXT_OID_DER.len() as u8];
    out.extend_from_slice(VEIL_ATTESTATION_EXT_OID_DER);
    out
}

/// `hay` with the one occurrence of `from` replaced by `to` (same length);
/// `None` unless `from` occurs exactly once.
fn replace_once(hay: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    if from.is_empty() || from.len() != to.len() {
        return None;
    }
    let mut hits = hay
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i);
    let at = hits.next()?;
    if hits.next().is_some() {
        return None;
    }
    let mut out = hay.to_vec();
    out.get_mut(at..at + to.len())?.copy_from_slice(to);
    Some(out)
}

/// Signs the to-be-signed certificate with the stand-in OID swapped for the
/// real one (see [`PLACEHOLDER_ARCS`]).
struct OidSwapSigner<'a> {
    key: &'a KeyPair,
    from: &'a [u8],
    to: &'a [u8],
}

impl PublicKeyData for OidSwapSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.key.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.algorithm()
    }
}

impl SigningKey for OidSwapSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let patched = replace_once(msg, self.from, self.to).ok_or(rcgen::Error::RemoteKeyError)?;
        self.key.sign(&patched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_matches_uuid() {
        let hex: String = VEIL_ATTESTATION_EXT_UUID.replace('-', "");
        assert_eq!(u128::from_str_radix(&hex, 16).unwrap(), EXT_UUID_ARC);
        assert_eq!(VEIL_ATTESTATION_EXT_OID, format!("2.25.{EXT_UUID_ARC}"));
        // Version 4, RFC 4122 variant.
        assert_eq!((EXT_UUID_ARC >> 76) & 0xf, 4);
        assert_eq!((EXT_UUID_ARC >> 62) & 0x3, 2);
    }

    #[test]
    fn oid_encoding() {
        // 1.2.840.113549 (RSA Data Security).
        assert_eq!(
            oid_content(&[1, 2, 840, 113549]),
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]
        );
        // The hard-coded bytes are the encoding of 2.25.<UUID>.
        assert_eq!(
            oid_content(&[2, 25, EXT_UUID_ARC]),
            VEIL_ATTESTATION_EXT_OID_DER
        );
        assert_eq!(
            decode_arcs(VEIL_ATTESTATION_EXT_OID_DER),
            [2, 25, EXT_UUID_ARC]
        );
        assert_eq!(
            oid_tlv(&PLACEHOLDER_ARCS.map(u128::from)).len(),
            ext_oid_tlv().len()
        );
    }

    /// Independent decoder for the test (first arc 2).
    fn decode_arcs(content: &[u8]) -> Vec<u128> {
        let mut arcs = Vec::new();
        let mut v: u128 = 0;
        for b in content {
            v = (v << 7) | u128::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    arcs.extend([2, v - 80]);
                } else {
                    arcs.push(v);
                }
                v = 0;
            }
        }
        arcs
    }

    #[test]
    fn replace_once_needs_exactly_one() {
        assert_eq!(replace_once(b"abcabc", b"abc", b"xyz"), None);
        assert_eq!(replace_once(b"abcdef", b"cd", b"XY").unwrap(), b"abXYef");
        assert_eq!(replace_once(b"abcdef", b"zz", b"XY"), None);
        assert_eq!(replace_once(b"abcdef", b"cd", b"X"), None);
    }

    #[test]
    fn extension_rejects_bad_content() {
        let f = Fingerprint::from_bytes([1; 32]);
        let good = format!(
            r#"{{"version":1,"session":"s","service":"a","tee":"sim","measurement":"00ff","issuer":"{f}"}}"#
        );
        let (s, i) = parse_extension(good.as_bytes()).unwrap();
        assert_eq!((s.session.as_str(), s.tee, i), ("s", Tee::Sim, f));
        for bad in [
            good.replace("\"version\":1", "\"version\":2"),
            good.replace("\"version\":1,", ""),
            good.replace("sim", "sev"),
            good.replace("00ff", "zz"),
            good.replace("00ff", ""),
            good.replace("\"s\"", "\"\""),
            good.replace("}", ",\"extra\":1}"),
            good.replace(&f.to_string(), "abcd"),
            "[]".to_owned(),
            "not json".to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(
                    parse_extension(bad.as_bytes()),
                    Err(CaError::MalformedExtension(_))
                ),
                "accepted {bad}"
            );
        }
    }
}
