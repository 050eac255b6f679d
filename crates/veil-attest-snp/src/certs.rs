//! AMD's SEV-SNP certificates: recognising them, reading their extensions,
//! checking each link of the chain.

use std::fmt;

use ring::signature::{self, UnparsedPublicKey};
use veil_attest::{SnpSigner, Time, VerifyError};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    Oid, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_HASH_SHA384,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS,
};
use x509_parser::prelude::FromDer;
use x509_parser::signature_algorithm::SignatureAlgorithm;

use crate::report::Generation;

/// What a certificate is in AMD's SEV-SNP PKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// AMD Root Key (self-signed, one per generation).
    Ark,
    /// AMD SEV Key: signs VCEKs.
    Ask,
    /// AMD SEV VLEK Key: signs VLEKs.
    Asvk,
    /// Versioned Chip Endorsement Key: signs reports, one per chip and TCB.
    Vcek,
    /// Versioned Loaded Endorsement Key: signs reports, one per cloud provider.
    Vlek,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Ark => "ARK",
            Role::Ask => "ASK",
            Role::Asvk => "ASVK",
            Role::Vcek => "VCEK",
            Role::Vlek => "VLEK",
        }
    }

    pub(crate) fn leaf_for(signer: SnpSigner) -> Role {
        match signer {
            SnpSigner::Vlek => Role::Vlek,
            _ => Role::Vcek,
        }
    }

    pub(crate) fn intermediate_for(signer: SnpSigner) -> Role {
        match signer {
            SnpSigner::Vlek => Role::Asvk,
            _ => Role::Ask,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed certificate with its role.
#[derive(Debug)]
pub(crate) struct AmdCert<'a> {
    pub(crate) der: &'a [u8],
    pub(crate) x509: X509Certificate<'a>,
    pub(crate) role: Role,
    pub(crate) cn: String,
    /// True for the ARK/ASK compiled into the `sev` crate.
    pub(crate) builtin: bool,
}

impl<'a> AmdCert<'a> {
    /// Parses a DER certificate and tells its role from its subject and
    /// issuer common names, falling back to its basic constraints.
    pub(crate) fn parse(der: &'a [u8], builtin: bool) -> Result<Self, VerifyError> {
        let (rest, x509) = X509Certificate::from_der(der)
            .map_err(|e| VerifyError::BadEndorsement(format!("not an X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(VerifyError::BadEndorsement(format!(
                "certificate is followed by {} stray bytes",
                rest.len()
            )));
        }
        let cn = common_name(&x509, true);
        let issuer_cn = common_name(&x509, false);
        let self_issued = x509.subject().as_raw() == x509.issuer().as_raw();
        let role = if cn == "SEV-VCEK" {
            Role::Vcek
        } else if cn == "SEV-VLEK" {
            Role::Vlek
        } else if cn.starts_with("ARK-") && self_issued {
            Role::Ark
        } else if cn.starts_with("SEV-VLEK-") && issuer_cn.starts_with("ARK-") {
            Role::Asvk
        } else if cn.starts_with("SEV-") && issuer_cn.starts_with("ARK-") {
            Role::Ask
        } else {
            return Err(VerifyError::BadEndorsement(format!(
                "certificate {} is not an AMD SEV-SNP certificate (VCEK, VLEK, ASK, ASVK or ARK)",
                x509.subject()
            )));
        };
        // Key usage agrees with the name: CAs sign certificates, leaves do not.
        let is_leaf = matches!(role, Role::Vcek | Role::Vlek);
        if x509.is_ca() == is_leaf {
            return Err(VerifyError::BadEndorsement(format!(
                "{} certificate {cn} has {} basic constraints",
                role,
                if is_leaf { "CA" } else { "no CA" }
            )));
        }
        Ok(AmdCert {
            der,
            x509,
            role,
            cn,
            builtin,
        })
    }

    /// "VCEK certificate", "built-in ASK certificate (SEV-Milan)".
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}{} certificate",
            if self.builtin { "built-in " } else { "" },
            self.role
        )
    }

    /// The product generation of this certificate: from the common name of
    /// a CA (`ARK-Milan`, `SEV-Milan`, `SEV-VLEK-Milan`), or for a VCEK/VLEK
    /// from its issuer's name, else its productName extension.
    pub(crate) fn generation(&self) -> Option<Generation> {
        let from_ca_name = |cn: &str| {
            let g = cn
                .strip_prefix("ARK-")
                .or_else(|| cn.strip_prefix("SEV-VLEK-"))
                .or_else(|| cn.strip_prefix("SEV-"))?;
            Generation::from_name_prefix(g)
        };
        match self.role {
            Role::Vcek | Role::Vlek => {
                from_ca_name(&common_name(&self.x509, false)).or_else(|| {
                    let ext = self.extension(OID_PRODUCT_NAME).ok().flatten()?;
                    let name = der_string(ext)?;
                    Generation::from_name_prefix(&name)
                })
            }
            _ => from_ca_name(&self.cn),
        }
    }

    /// The raw value of the extension `oid`, if present once.
    pub(crate) fn extension(&self, oid: &[u64]) -> Result<Option<&'a [u8]>, VerifyError> {
        let oid = Oid::from(oid).map_err(|_| VerifyError::BadEndorsement("bad OID".into()))?;
        let mut found = self
            .x509
            .extensions()
            .iter()
            .filter(|e| e.oid == oid)
            .map(|e| e.value);
        let first = found.next();
        if found.next().is_some() {
            return Err(VerifyError::BadEndorsement(format!(
                "{} has extension {oid} twice",
                self.describe()
            )));
        }
        Ok(first)
    }

    pub(crate) fn not_before(&self) -> Time {
        to_time(self.x509.validity().not_before.timestamp())
    }

    pub(crate) fn not_after(&self) -> Time {
        to_time(self.x509.validity().not_after.timestamp())
    }

    /// Fails unless `at` lies in the validity window.
    pub(crate) fn check_window(&self, at: Time) -> Result<(), VerifyError> {
        VerifyError::check_window(&self.describe(), self.not_before(), self.not_after(), at)
    }

    /// Checks that `issuer` signed this certificate with RSASSA-PSS SHA-384
    /// (AMD signs every certificate of the SEV-SNP PKI this way), and that
    /// the names chain.
    pub(crate) fn check_signed_by(&self, issuer: &AmdCert<'_>) -> Result<(), VerifyError> {
        if self.x509.issuer().as_raw() != issuer.x509.subject().as_raw() {
            return Err(VerifyError::untrusted(
                self.describe(),
                format!(
                    "issued by {}, not by the {} ({})",
                    self.x509.issuer(),
                    issuer.role,
                    issuer.x509.subject()
                ),
            ));
        }
        self.check_algorithm()?;
        let key = issuer.x509.public_key();
        if key.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION
            && key.algorithm.algorithm != OID_PKCS1_RSASSAPSS
        {
            return Err(VerifyError::untrusted(
                self.describe(),
                format!("the {} key is not an RSA key", issuer.describe()),
            ));
        }
        UnparsedPublicKey::new(
            &signature::RSA_PSS_2048_8192_SHA384,
            key.subject_public_key.data.as_ref(),
        )
        .verify(
            self.x509.tbs_certificate.as_ref(),
            self.x509.signature_value.data.as_ref(),
        )
        .map_err(|_| {
            VerifyError::bad_signature(
                self.describe(),
                if std::ptr::eq(self, issuer) {
                    format!("{} is not self-signed", self.cn)
                } else {
                    format!("not signed by the {} ({})", issuer.describe(), issuer.cn)
                },
            )
        })
    }

    /// RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt, the same in
    /// the signed and the unsigned part of the certificate.
    fn check_algorithm(&self) -> Result<(), VerifyError> {
        let alg = &self.x509.signature_algorithm;
        let unsupported = || {
            VerifyError::untrusted(
                self.describe(),
                format!(
                    "signature algorithm {} is not RSASSA-PSS with SHA-384, which AMD uses",
                    alg.algorithm
                ),
            )
        };
        if *alg != self.x509.tbs_certificate.signature {
            return Err(VerifyError::BadEndorsement(format!(
                "{}: the signed and unsigned signature algorithms differ",
                self.describe()
            )));
        }
        let Ok(SignatureAlgorithm::RSASSA_PSS(params)) = SignatureAlgorithm::try_from(alg) else {
            return Err(unsupported());
        };
        let mgf_ok = params
            .mask_gen_algorithm()
            .is_ok_and(|m| m.hash == OID_NIST_HASH_SHA384);
        if *params.hash_algorithm_oid() != OID_NIST_HASH_SHA384
            || !mgf_ok
            || params.salt_length() != 48
            || params.trailer_field() != 1
        {
            return Err(unsupported());
        }
        Ok(())
    }

    /// The VCEK/VLEK public key as an uncompressed P-384 point.
    pub(crate) fn p384_public_key(&self) -> Result<&[u8], VerifyError> {
        let spki = self.x509.public_key();
        let curve_ok = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|c| c == OID_NIST_EC_P384);
        if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || !curve_ok {
            return Err(VerifyError::BadEndorsement(format!(
                "{} key is not an ECDSA P-384 key",
                self.describe()
            )));
        }
        Ok(spki.subject_public_key.data.as_ref())
    }
}

/// AMD's extension OIDs (VCEK/VLEK specification).
pub(crate) const OID_PRODUCT_NAME: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1, 2];
pub(crate) const OID_BL_SPL: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 1];
pub(crate) const OID_TEE_SPL: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 2];
pub(crate) const OID_SNP_SPL: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 3];
pub(crate) const OID_UCODE_SPL: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 8];
pub(crate) const OID_FMC_SPL: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1, 3, 9];
pub(crate) const OID_HW_ID: &[u64] = &[1, 3, 6, 1, 4, 1, 3704, 1, 4];

/// An SPL extension value: a DER INTEGER from 0 to 255.
pub(crate) fn der_small_uint(v: &[u8]) -> Option<u8> {
    match v {
        [0x02, 0x01, b] if *b < 0x80 => Some(*b),
        [0x02, 0x02, 0x00, b] if *b >= 0x80 => Some(*b),
        _ => None,
    }
}

/// An IA5String / UTF8String / PrintableString extension value.
fn der_string(v: &[u8]) -> Option<String> {
    match v {
        [0x16 | 0x0c | 0x13, len, rest @ ..] if usize::from(*len) == rest.len() => {
            std::str::from_utf8(rest).ok().map(str::to_owned)
        }
        _ => None,
    }
}

/// The hwID extension value: the chip id, raw (as AMD encodes it) or, to be
/// lenient, wrapped in an OCTET STRING.
pub(crate) fn hw_id(v: &[u8]) -> &[u8] {
    match v {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && matches!(*len, 8 | 64) => rest,
        _ => v,
    }
}

fn common_name(x509: &X509Certificate<'_>, subject: bool) -> String {
    let name = if subject {
        x509.subject()
    } else {
        x509.issuer()
    };
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn to_time(unix: i64) -> Time {
    Time::from_unix(u64::try_from(unix).unwrap_or(0))
}

/// The AMD ARK and ASK of a generation, as built into the `sev` crate (PEM).
pub(crate) fn builtin_pems(generation: Generation) -> Option<(&'static [u8], &'static [u8])> {
    use sev::certs::snp::builtin;
    match generation {
        Generation::Milan => Some((builtin::milan::ARK, builtin::milan::ASK)),
        Generation::Genoa => Some((builtin::genoa::ARK, builtin::genoa::ASK)),
        Generation::Turin => Some((builtin::turin::ARK, builtin::turin::ASK)),
        Generation::Venice => None,
    }
}

/// The DER of the built-in ARK and ASK of a generation.
pub(crate) fn builtin_ders(generation: Generation) -> Result<(Vec<u8>, Vec<u8>), VerifyError> {
    let (ark, ask) = builtin_pems(generation).ok_or_else(|| {
        VerifyError::untrusted(
            "certificate chain",
            format!("no AMD root (ARK) for {generation} is built in"),
        )
    })?;
    let der = |p: &[u8]| {
        pem::parse(p)
            .map(pem::Pem::into_contents)
            .map_err(|e| VerifyError::untrusted("built-in AMD certificate", e.to_string()))
    };
    Ok((der(ark)?, der(ask)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_chains_verify() {
        for g in [Generation::Milan, Generation::Genoa, Generation::Turin] {
            let (ark, ask) = builtin_ders(g).unwrap();
            let ark = AmdCert::parse(&ark, true).unwrap();
            let ask = AmdCert::parse(&ask, true).unwrap();
            assert_eq!(ark.role, Role::Ark);
            assert_eq!(ask.role, Role::Ask);
            assert_eq!(ark.generation(), Some(g));
            assert_eq!(ask.generation(), Some(g));
            ark.check_signed_by(&ark).unwrap();
            ask.check_signed_by(&ark).unwrap();
            // The ARK did not sign itself with the ASK.
            assert!(ark.check_signed_by(&ask).is_err());
        }
        assert!(builtin_ders(Generation::Venice).is_err());
    }

    #[test]
    fn der_helpers() {
        assert_eq!(der_small_uint(&[2, 1, 0x73]), Some(115));
        assert_eq!(der_small_uint(&[2, 2, 0, 0xC8]), Some(200));
        assert_eq!(der_small_uint(&[2, 1, 0x80]), None);
        assert_eq!(der_small_uint(&[2, 2, 1, 0]), None);
        assert_eq!(der_small_uint(&[4, 1, 1]), None);
        assert_eq!(der_small_uint(&[]), None);
        assert_eq!(der_string(b"\x16\x08Milan-B0").as_deref(), Some("Milan-B0"));
        assert_eq!(der_string(b"\x16\x09Milan-B0"), None);
        assert_eq!(hw_id(&[1; 64]), &[1; 64]);
        let mut wrapped = vec![4, 8];
        wrapped.extend_from_slice(&[7; 8]);
        assert_eq!(hw_id(&wrapped), &[7; 8]);
    }

    #[test]
    fn classifies_real_certificates() {
        let vcek = include_bytes!("../testdata/trustee_vcek.der");
        let c = AmdCert::parse(vcek, false).unwrap();
        assert_eq!(c.role, Role::Vcek);
        assert_eq!(c.generation(), Some(Generation::Milan));
        let vlek = include_bytes!("../testdata/trustee_vlek.der");
        let c = AmdCert::parse(vlek, false).unwrap();
        assert_eq!(c.role, Role::Vlek);
        assert_eq!(c.generation(), Some(Generation::Milan));
        let turin = include_bytes!("../testdata/virtee_vcek_turin.der");
        let c = AmdCert::parse(turin, false).unwrap();
        assert_eq!(c.generation(), Some(Generation::Turin));
        assert!(c.extension(OID_FMC_SPL).unwrap().is_some());
        assert_eq!(hw_id(c.extension(OID_HW_ID).unwrap().unwrap()).len(), 8);
        assert!(AmdCert::parse(b"\x30\x03\x02\x01\x00", false).is_err());
        let mut trailing = vcek.to_vec();
        trailing.push(0);
        assert!(AmdCert::parse(&trailing, false).is_err());
    }
}
