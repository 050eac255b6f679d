use std::fmt;

/// Data a verifier needs besides the evidence, supplied by the caller.
///
/// Endorsements are never fetched by a verifier: a CAS or a command line
/// collects them (from a cache, a PCCS, the evidence provider's aux blob) and
/// passes them in, so verification stays a pure function.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endorsement {
    /// Intel DCAP collateral, as the JSON of dcap-qvl's `QuoteCollateralV3`.
    DcapCollateral(Vec<u8>),
    /// One or more X.509 certificates in DER (a VCEK or VLEK, an ASK/ARK/ASVK
    /// chain), in the order they were given.
    Certificates(Vec<Vec<u8>>),
    /// An Ed25519 public key of a simulated-TEE platform the caller trusts.
    SimPlatformKey([u8; 32]),
}

impl fmt::Debug for Endorsement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endorsement::DcapCollateral(b) => write!(f, "DcapCollateral({} bytes)", b.len()),
            Endorsement::Certificates(c) => write!(f, "Certificates({} certs)", c.len()),
            Endorsement::SimPlatformKey(k) => write!(f, "SimPlatformKey({})", hex::encode(k)),
        }
    }
}

impl Endorsement {
    /// Recognises an endorsement file by its content: JSON collateral, PEM
    /// certificates, a DER certificate, or a sim platform public key (PEM
    /// `VEIL SIM PLATFORM PUBLIC KEY` or 64 hex digits).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, String> {
        let trimmed = trim_ascii(bytes);
        if trimmed.first() == Some(&b'{') {
            return Ok(Endorsement::DcapCollateral(bytes.to_vec()));
        }
        if trimmed.starts_with(b"-----BEGIN") {
            let blocks = pem::parse_many(trimmed)
                .map_err(|e| format!("endorsement is not valid PEM: {e}"))?;
            if let [one] = blocks.as_slice() {
                if one.tag() == "VEIL SIM PLATFORM PUBLIC KEY" {
                    let key: [u8; 32] = one.contents().try_into().map_err(|_| {
                        "sim platform public key must be 32 bytes (Ed25519)".to_owned()
                    })?;
                    return Ok(Endorsement::SimPlatformKey(key));
                }
            }
            let certs: Vec<Vec<u8>> = blocks
                .into_iter()
                .filter(|b| b.tag() == "CERTIFICATE")
                .map(|b| b.into_contents())
                .collect();
            if certs.is_empty() {
                return Err("endorsement PEM holds no CERTIFICATE block".into());
            }
            return Ok(Endorsement::Certificates(certs));
        }
        if trimmed.len() == 64 && trimmed.iter().all(u8::is_ascii_hexdigit) {
            let mut key = [0u8; 32];
            hex::decode_to_slice(trimmed, &mut key).map_err(|e| e.to_string())?;
            return Ok(Endorsement::SimPlatformKey(key));
        }
        if bytes.first() == Some(&0x30) {
            return Ok(Endorsement::Certificates(parse_certificates(bytes)?));
        }
        Err("unrecognised endorsement: expected DCAP collateral JSON, certificates (PEM or DER) or a sim platform public key".into())
    }
}

/// Splits PEM text or a DER certificate into DER certificates.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let trimmed = trim_ascii(bytes);
    if trimmed.starts_with(b"-----BEGIN") {
        let certs: Vec<Vec<u8>> = pem::parse_many(trimmed)
            .map_err(|e| format!("not valid PEM: {e}"))?
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.into_contents())
            .collect();
        if certs.is_empty() {
            return Err("PEM holds no CERTIFICATE block".into());
        }
        return Ok(certs);
    }
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    Err("not a certificate: expected PEM or DER".into())
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_kind() {
        assert!(matches!(
            Endorsement::from_file_bytes(b" {\"tcb_info\": 1}"),
            Ok(Endorsement::DcapCollateral(_))
        ));
        let hexkey = "ab".repeat(32);
        assert_eq!(
            Endorsement::from_file_bytes(hexkey.as_bytes()),
            Ok(Endorsement::SimPlatformKey([0xab; 32]))
        );
        assert!(matches!(
            Endorsement::from_file_bytes(&[0x30, 0x82, 0, 0]),
            Ok(Endorsement::Certificates(c)) if c.len() == 1
        ));
        assert!(Endorsement::from_file_bytes(b"hello").is_err());
        assert!(Endorsement::from_file_bytes(b"-----BEGIN FOO-----\n").is_err());
    }
}
