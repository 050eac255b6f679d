//! Key pairs with certificates: client and owner identities, and CAs.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SigningKey, SubjectPublicKeyInfo,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use veil_attest::Time;
use zeroize::Zeroizing;

use crate::util::{
    check_common_name, check_window, from_asn1, parse_cert, pem_encode, pem_encode_secret,
    random_serial, sans, to_offset, validity_window,
};
use crate::{CaError, Fingerprint};

/// Validity of a generated [`Identity`], in days (10 years).
pub const IDENTITY_VALIDITY_DAYS: u32 = 3650;

/// PEM label of a certificate.
const CERT_TAG: &str = "CERTIFICATE";
/// PEM label of a PKCS#8 private key.
const KEY_TAG: &str = "PRIVATE KEY";

/// A private key (PKCS#8) and its certificate: a client's or owner's identity
/// for mutual TLS, or a TLS server's leaf.
///
/// `Debug` shows the fingerprint only; the key bytes are zeroized on drop.
#[derive(Clone)]
pub struct Identity {
    key_pkcs8: Zeroizing<Vec<u8>>,
    cert_der: Vec<u8>,
    fingerprint: Fingerprint,
}

impl Identity {
    /// A new client identity: ECDSA P-256 key, self-signed certificate with
    /// subject `CN=common_name`, valid from `now` minus 5 minutes for 10 years,
    /// key usage digitalSignature, extended key usage clientAuth.
    ///
    /// This is what `veil identity create` makes; policies name it by
    /// [`Identity::fingerprint`].
    pub fn generate(common_name: &str, now: Time) -> Result<Identity, CaError> {
        check_common_name(common_name)?;
        let (not_before, not_after) = validity_window(now, IDENTITY_VALIDITY_DAYS)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = base_params(common_name, not_before, not_after)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key)?;
        Identity::from_parts(cert.der().to_vec(), Zeroizing::new(key.serialize_der()))
    }

    /// An identity from a certificate (DER) and its PKCS#8 private key (DER);
    /// fails unless the key belongs to the certificate.
    pub fn from_parts(cert_der: Vec<u8>, key_pkcs8: Zeroizing<Vec<u8>>) -> Result<Self, CaError> {
        let fingerprint = check_key_matches(&cert_der, &key_pkcs8)?;
        Ok(Identity {
            key_pkcs8,
            cert_der,
            fingerprint,
        })
    }

    /// Reads PEM text holding one `CERTIFICATE` and one `PRIVATE KEY` (PKCS#8)
    /// block, in any order (the form [`Identity::to_pem`] writes).
    pub fn from_pem(pem_text: &str) -> Result<Self, CaError> {
        let (cert, key) = split_pem(pem_text)?;
        Identity::from_parts(cert, key)
    }

    /// The certificate then the private key, as PEM text.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(self.cert_pem());
        s.push_str(&self.key_pem());
        s
    }

    /// The certificate as PEM.
    pub fn cert_pem(&self) -> String {
        pem_encode(CERT_TAG, &self.cert_der)
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> Zeroizing<String> {
        pem_encode_secret(KEY_TAG, &self.key_pkcs8)
    }

    /// SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate (DER) for rustls.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.cert_der.clone())
    }

    /// The private key (PKCS#8 DER) for rustls.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.to_vec()))
    }

    /// The certificate's DER bytes.
    pub fn certificate(&self) -> &[u8] {
        &self.cert_der
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint.to_string())
            .finish_non_exhaustive()
    }
}

/// A certificate authority: the CAS's own identity, a session CA, or an
/// `x509-ca` secret.
///
/// The certificate is self-signed, ECDSA P-256, with basicConstraints CA and
/// path length 0 (it signs leaves only) and key usage keyCertSign and cRLSign.
/// Clients pin it by [`CaIdentity::fingerprint`].
///
/// The CAS does **not** serve TLS with the CA certificate itself: webpki
/// (rustls) refuses a CA certificate as an end-entity certificate, and a CA key
/// that also signs handshakes mixes two purposes. The CAS gets a TLS leaf from
/// [`CaIdentity::issue_server_identity`] and serves the chain
/// `[leaf, ca]`; clients trust the CA certificate (or its fingerprint).
#[derive(Clone)]
pub struct CaIdentity {
    key_pkcs8: Zeroizing<Vec<u8>>,
    cert_der: Vec<u8>,
    fingerprint: Fingerprint,
    not_after: Time,
}

impl CaIdentity {
    /// A new self-signed CA with subject `CN=common_name`, valid from `now`
    /// minus 5 minutes for `validity_days` (1..=36500) days.
    pub fn generate(common_name: &str, validity_days: u32, now: Time) -> Result<Self, CaError> {
        check_common_name(common_name)?;
        let (not_before, not_after) = validity_window(now, validity_days)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = base_params(common_name, not_before, not_after)?;
        // One level of intermediates below a root (`x509-ca` secrets issued
        // by a session CA); those issue only leaves.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        CaIdentity::from_parts(cert.der().to_vec(), Zeroizing::new(key.serialize_der()))
    }

    /// A new intermediate CA issued by this CA (path length 0: it issues
    /// leaves only), valid from `now` minus 5 minutes for `validity_days`
    /// days, cut to this CA's own expiry.
    pub fn issue_ca(
        &self,
        common_name: &str,
        validity_days: u32,
        now: Time,
    ) -> Result<CaIdentity, CaError> {
        check_common_name(common_name)?;
        let (not_before, not_after) = validity_window(now, validity_days)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = base_params(common_name, not_before, not_after)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = self.sign(&mut params, &key)?;
        CaIdentity::from_parts(cert, Zeroizing::new(key.serialize_der()))
    }

    /// A CA from its certificate (DER) and PKCS#8 private key (DER); fails
    /// unless the key matches and the certificate is a CA with keyCertSign.
    pub fn from_parts(cert_der: Vec<u8>, key_pkcs8: Zeroizing<Vec<u8>>) -> Result<Self, CaError> {
        let fingerprint = check_key_matches(&cert_der, &key_pkcs8)?;
        let cert = parse_cert(&cert_der, "CA certificate")?;
        crate::verify::check_is_ca(&cert)?;
        let not_after = from_asn1(cert.validity().not_after);
        Ok(CaIdentity {
            key_pkcs8,
            cert_der,
            fingerprint,
            not_after,
        })
    }

    /// Reads PEM text with one `CERTIFICATE` and one `PRIVATE KEY` block.
    pub fn from_pem(pem_text: &str) -> Result<Self, CaError> {
        let (cert, key) = split_pem(pem_text)?;
        CaIdentity::from_parts(cert, key)
    }

    /// The certificate then the private key, as PEM text.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(self.cert_pem());
        s.push_str(&self.key_pem());
        s
    }

    /// The CA certificate as PEM (what clients and peers trust).
    pub fn cert_pem(&self) -> String {
        pem_encode(CERT_TAG, &self.cert_der)
    }

    /// The CA private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> Zeroizing<String> {
        pem_encode_secret(KEY_TAG, &self.key_pkcs8)
    }

    /// The CA certificate's DER bytes.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 of the CA certificate's SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// End of the CA certificate's validity. Certificates it issues never
    /// outlive it: a later `not_after` is cut to this time.
    pub fn not_after(&self) -> Time {
        self.not_after
    }

    /// A TLS server certificate (DER) for the public key `spki_der`, with
    /// subject `CN=<first DNS name or "veil">`, the given SANs, key usage
    /// digitalSignature and extended key usage serverAuth.
    pub fn issue_server_cert(
        &self,
        spki_der: &[u8],
        dns_names: &[String],
        ip_addrs: &[IpAddr],
        not_before: Time,
        not_after: Time,
    ) -> Result<Vec<u8>, CaError> {
        let public_key = spki_public_key(spki_der)?;
        let cn = dns_names.first().map(String::as_str).unwrap_or("veil");
        let mut params = leaf_params(cn, dns_names, ip_addrs, not_before, not_after)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(&mut params, &public_key)
    }

    /// A new P-256 key and a TLS server certificate for it, issued by this CA
    /// and valid from `now` minus 5 minutes for `validity_days` days. The CAS
    /// serves `[identity.cert_der(), ca.cert_der()]`.
    pub fn issue_server_identity(
        &self,
        dns_names: &[String],
        ip_addrs: &[IpAddr],
        now: Time,
        validity_days: u32,
    ) -> Result<Identity, CaError> {
        let (not_before, not_after) = validity_window(now, validity_days)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = self.issue_server_cert(
            &key.subject_public_key_info(),
            dns_names,
            ip_addrs,
            not_before,
            not_after,
        )?;
        Identity::from_parts(cert, Zeroizing::new(key.serialize_der()))
    }

    pub(crate) fn key_pair(&self) -> Result<KeyPair, CaError> {
        load_key(&self.key_pkcs8)
    }

    /// Signs `params` for `public_key` with this CA's key, cutting `not_after`
    /// to the CA's own and setting the authority key identifier.
    pub(crate) fn sign(
        &self,
        params: &mut CertificateParams,
        public_key: &impl PublicKeyData,
    ) -> Result<Vec<u8>, CaError> {
        let key = self.key_pair()?;
        self.sign_with(params, public_key, &key)
    }

    pub(crate) fn sign_with(
        &self,
        params: &mut CertificateParams,
        public_key: &impl PublicKeyData,
        signer: &impl SigningKey,
    ) -> Result<Vec<u8>, CaError> {
        let ca_end = to_offset(self.not_after)?;
        if params.not_after > ca_end {
            params.not_after = ca_end;
        }
        if params.not_after <= params.not_before {
            return Err(CaError::spec(
                "validity",
                "the certificate would start after its CA expires",
            ));
        }
        params.use_authority_key_identifier_extension = true;
        let issuer =
            Issuer::from_ca_cert_der(&CertificateDer::from(self.cert_der.as_slice()), signer)?;
        let cert = params.signed_by(public_key, &issuer)?;
        Ok(cert.der().to_vec())
    }
}

impl fmt::Debug for CaIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaIdentity")
            .field("fingerprint", &self.fingerprint.to_string())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Subject `CN=cn`, validity, random serial; nothing else.
pub(crate) fn base_params(
    cn: &str,
    not_before: Time,
    not_after: Time,
) -> Result<CertificateParams, CaError> {
    check_window(not_before, not_after)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// An end-entity certificate: `CN=cn`, SANs, digitalSignature, serverAuth and
/// clientAuth (callers narrow the EKUs).
pub(crate) fn leaf_params(
    cn: &str,
    dns: &[String],
    ips: &[IpAddr],
    not_before: Time,
    not_after: Time,
) -> Result<CertificateParams, CaError> {
    check_common_name(cn)?;
    let mut params = base_params(cn, not_before, not_after)?;
    params.subject_alt_names = sans(dns, ips)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

/// A public key given as SubjectPublicKeyInfo DER, checked to re-encode to
/// exactly the same bytes (so the certificate carries the caller's SPKI).
pub(crate) fn spki_public_key(spki_der: &[u8]) -> Result<SubjectPublicKeyInfo, CaError> {
    let pk = SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| match e {
        rcgen::Error::UnsupportedSignatureAlgorithm => CaError::UnsupportedKey(
            "the public key is not ECDSA P-256/P-384, Ed25519 or RSA".into(),
        ),
        other => CaError::malformed("SubjectPublicKeyInfo", other),
    })?;
    if pk.subject_public_key_info() != spki_der {
        return Err(CaError::malformed(
            "SubjectPublicKeyInfo",
            "not in canonical DER form",
        ));
    }
    Ok(pk)
}

pub(crate) fn load_key(pkcs8: &[u8]) -> Result<KeyPair, CaError> {
    KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8)).map_err(|_| {
        CaError::malformed(
            "private key",
            "not a supported PKCS#8 key (ECDSA P-256/P-384, Ed25519)",
        )
    })
}

/// Checks that the key belongs to the certificate; returns the fingerprint.
fn check_key_matches(cert_der: &[u8], key_pkcs8: &[u8]) -> Result<Fingerprint, CaError> {
    let cert = parse_cert(cert_der, "certificate")?;
    let key = load_key(key_pkcs8)?;
    let cert_spki = cert.tbs_certificate.subject_pki.raw;
    if key.subject_public_key_info() != cert_spki {
        return Err(CaError::KeyMismatch);
    }
    Ok(Fingerprint::digest(cert_spki))
}

/// One certificate and one PKCS#8 key from PEM text.
fn split_pem(text: &str) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), CaError> {
    let blocks = pem::parse_many(text).map_err(|e| CaError::malformed("PEM", e))?;
    let mut cert = None;
    let mut key: Option<Zeroizing<Vec<u8>>> = None;
    for block in blocks {
        let tag = block.tag().to_owned();
        let contents = Zeroizing::new(block.into_contents());
        match tag.as_str() {
            CERT_TAG if cert.is_none() => cert = Some(contents.to_vec()),
            KEY_TAG if key.is_none() => key = Some(contents),
            CERT_TAG | KEY_TAG => {
                return Err(CaError::malformed(
                    "PEM",
                    format!("more than one {tag} block"),
                ))
            }
            "EC PRIVATE KEY" | "RSA PRIVATE KEY" => {
                return Err(CaError::malformed(
                    "PEM",
                    format!("{tag} is not PKCS#8; convert with `openssl pkcs8 -topk8 -nocrypt`"),
                ))
            }
            other => {
                return Err(CaError::malformed(
                    "PEM",
                    format!("unexpected {other} block"),
                ))
            }
        }
    }
    match (cert, key) {
        (Some(c), Some(k)) => Ok((c, k)),
        (None, _) => Err(CaError::malformed("PEM", "no CERTIFICATE block")),
        (_, None) => Err(CaError::malformed("PEM", "no PRIVATE KEY block")),
    }
}
