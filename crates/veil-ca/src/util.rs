//! Small helpers shared by the modules: time conversion, serials, PEM, names.

use std::net::IpAddr;

use pem::{EncodeConfig, LineEnding, Pem};
use rcgen::string::Ia5String;
use rcgen::{SanType, SerialNumber};
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;
use veil_attest::Time;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;
use zeroize::Zeroizing;

use crate::CaError;

/// Seconds in a day.
pub(crate) const DAY: u64 = 86_400;

/// How far before "now" generated certificates start, to tolerate clock skew.
pub(crate) const BACKDATE_SECS: u64 = 300;

/// Longest validity Veil issues, in days (100 years).
pub const MAX_VALIDITY_DAYS: u32 = 36_500;

pub(crate) fn to_offset(t: Time) -> Result<OffsetDateTime, CaError> {
    i64::try_from(t.unix())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| CaError::spec("time", format!("{} is out of range", t.unix())))
}

pub(crate) fn from_asn1(t: ASN1Time) -> Time {
    Time::from_unix(u64::try_from(t.timestamp()).unwrap_or(0))
}

/// `[now - BACKDATE_SECS, now + days]`, checking the range of `days`.
pub(crate) fn validity_window(now: Time, days: u32) -> Result<(Time, Time), CaError> {
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(CaError::spec(
            "validity_days",
            format!("{days} is outside 1..={MAX_VALIDITY_DAYS}"),
        ));
    }
    let start = Time::from_unix(now.unix().saturating_sub(BACKDATE_SECS));
    let end = now
        .unix()
        .checked_add(u64::from(days) * DAY)
        .map(Time::from_unix)
        .ok_or_else(|| CaError::spec("validity_days", "end of validity overflows"))?;
    Ok((start, end))
}

pub(crate) fn check_window(not_before: Time, not_after: Time) -> Result<(), CaError> {
    if not_after <= not_before {
        return Err(CaError::spec(
            "validity",
            format!("not_after {not_after} is not after not_before {not_before}"),
        ));
    }
    Ok(())
}

pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), CaError> {
    SystemRandom::new().fill(buf).map_err(|_| CaError::Rng)
}

pub(crate) fn random_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>, CaError> {
    let mut v = Zeroizing::new(vec![0u8; len]);
    fill_random(&mut v)?;
    Ok(v)
}

/// A random positive 128-bit serial number with a minimal DER encoding.
pub(crate) fn random_serial() -> Result<SerialNumber, CaError> {
    let mut b = [0u8; 16];
    fill_random(&mut b)?;
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&b))
}

pub(crate) fn parse_cert<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, CaError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CaError::malformed(what, e))?;
    if !rest.is_empty() {
        return Err(CaError::malformed(
            what,
            "trailing bytes after the certificate",
        ));
    }
    Ok(cert)
}

pub(crate) fn pem_encode(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &Pem::new(tag, der.to_vec()),
        EncodeConfig::new().set_line_ending(LineEnding::LF),
    )
}

pub(crate) fn pem_encode_secret(tag: &str, der: &[u8]) -> Zeroizing<String> {
    let p = Pem::new(tag, der.to_vec());
    let s = Zeroizing::new(pem::encode_config(
        &p,
        EncodeConfig::new().set_line_ending(LineEnding::LF),
    ));
    let mut contents = p.into_contents();
    zeroize::Zeroize::zeroize(&mut contents);
    s
}

/// Checks a common name: 1..=64 characters, no control characters.
pub(crate) fn check_common_name(cn: &str) -> Result<(), CaError> {
    let n = cn.chars().count();
    if n == 0 || n > 64 {
        return Err(CaError::spec(
            "common name",
            format!("{cn:?} must have 1..=64 characters"),
        ));
    }
    if cn.chars().any(char::is_control) {
        return Err(CaError::spec(
            "common name",
            format!("{cn:?} has a control character"),
        ));
    }
    Ok(())
}

/// Checks a DNS name for a SAN: ASCII labels of letters, digits, `-` and `_`,
/// 1..=63 characters each, at most 253 in all; the first label may be `*`.
pub(crate) fn check_dns_name(name: &str) -> Result<(), CaError> {
    let bad = |why: &str| CaError::spec("DNS name", format!("{name:?}: {why}"));
    if name.is_empty() || name.len() > 253 {
        return Err(bad("must have 1..=253 characters"));
    }
    for (i, label) in name.split('.').enumerate() {
        if i == 0 && label == "*" {
            continue;
        }
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label must have 1..=63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("labels may hold only letters, digits, '-' and '_'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label may not start or end with '-'"));
        }
    }
    Ok(())
}

pub(crate) fn sans(dns: &[String], ips: &[IpAddr]) -> Result<Vec<SanType>, CaError> {
    let mut out = Vec::with_capacity(dns.len() + ips.len());
    for d in dns {
        check_dns_name(d)?;
        let s = Ia5String::try_from(d.as_str())
            .map_err(|e| CaError::spec("DNS name", format!("{d:?}: {e}")))?;
        out.push(SanType::DnsName(s));
    }
    out.extend(ips.iter().copied().map(SanType::IpAddress));
    Ok(out)
}

/// Checks an identifier carried in a certificate (session, service): 1..=256
/// bytes, no control characters.
pub(crate) fn check_label(what: &'static str, s: &str) -> Result<(), CaError> {
    if s.is_empty() || s.len() > 256 {
        return Err(CaError::spec(
            what,
            format!("{s:?} must have 1..=256 bytes"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(CaError::spec(
            what,
            format!("{s:?} has a control character"),
        ));
    }
    Ok(())
}
