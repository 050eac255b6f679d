//! The verification pipeline: certificates, chain, TCB, chip id, signature.

use std::collections::BTreeMap;

use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use veil_attest::{
    Claims, Endorsement, SnpSigner, SnpTcb, TcbStatus, Tee, TeeClaims, Time, VerifyError,
};

use crate::certs::{
    builtin_ders, der_small_uint, hw_id, AmdCert, Role, OID_BL_SPL, OID_FMC_SPL, OID_HW_ID,
    OID_SNP_SPL, OID_TEE_SPL, OID_UCODE_SPL,
};
use crate::report::{parse_report, ParsedReport, OFF_SIGNATURE, WHAT};

/// Verifies `evidence` (see [`crate::SnpVerifier`]).
pub(crate) fn verify(
    evidence: &[u8],
    endorsements: &[Endorsement],
    at: Time,
) -> Result<Claims, VerifyError> {
    let report = parse_report(evidence)?;
    if report.snp.signature_algo != 1 {
        return Err(VerifyError::malformed(
            WHAT,
            format!(
                "signature algorithm {} is not 1 (ECDSA P-384 with SHA-384)",
                report.snp.signature_algo
            ),
        ));
    }
    let (r, s) = split_signature(&report)?;

    let signer = report.signer();
    let leaf_role = Role::leaf_for(signer);
    let mid_role = Role::intermediate_for(signer);

    // Every supplied certificate, deduplicated, each with its role.
    let ders = supplied_certificates(endorsements)?;
    let supplied = ders
        .iter()
        .map(|d| AmdCert::parse(d, false))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = only_one(&supplied, leaf_role)?.ok_or_else(|| {
        VerifyError::MissingEndorsement(format!(
            "{leaf_role} certificate: the report is signed with a {leaf_role} ({})",
            if signer == SnpSigner::Vlek {
                "get it from the cloud provider, or AMD KDS /vlek/v1"
            } else {
                "get it from AMD KDS /vcek/v1 for this chip id and reported TCB"
            }
        ))
    })?;

    // The generation decides which AMD root is trusted.
    let generation = leaf.generation().ok_or_else(|| {
        VerifyError::BadEndorsement(format!(
            "cannot tell the product generation of the {} (issuer {})",
            leaf.describe(),
            leaf.x509.issuer()
        ))
    })?;
    match report.generation {
        Some(g) if g != generation => {
            return Err(VerifyError::mismatch(
                "product generation",
                format!("{generation} ({leaf_role})"),
                format!("{g} (report CPUID)"),
            ))
        }
        None if generation.has_fmc() => {
            return Err(VerifyError::mismatch(
                "product generation",
                format!("{generation} ({leaf_role})"),
                "Milan or Genoa (report version 2)",
            ))
        }
        _ => {}
    }

    // The root is always AMD's built-in ARK; a supplied ARK must be that one.
    let (ark_der, ask_der) = builtin_ders(generation)?;
    for ark in supplied.iter().filter(|c| c.role == Role::Ark) {
        if ark.der != ark_der.as_slice() {
            return Err(VerifyError::untrusted(
                "ARK",
                format!(
                    "the supplied ARK ({}) is not AMD's ARK-{generation}: it differs from the built-in one",
                    ark.cn
                ),
            ));
        }
    }
    let ark = AmdCert::parse(&ark_der, true)?;
    let builtin_ask;
    let mid = match only_one(&supplied, mid_role)? {
        Some(c) => c,
        None if mid_role == Role::Ask => {
            builtin_ask = AmdCert::parse(&ask_der, true)?;
            &builtin_ask
        }
        None => {
            let what = format!("ASVK certificate (SEV-VLEK-{generation})");
            return Err(VerifyError::MissingEndorsement(format!(
                "{what}: a VLEK chain needs it, and none is built in"
            )));
        }
    };

    // Chain: ARK self-signed, ARK -> ASK/ASVK -> VCEK/VLEK, all valid at `at`.
    ark.check_signed_by(&ark)?;
    mid.check_signed_by(&ark)?;
    leaf.check_signed_by(mid)?;
    for cert in [&ark, mid, leaf] {
        cert.check_window(at)?;
    }

    // The VCEK/VLEK is derived for one TCB (and a VCEK for one chip).
    check_tcb(leaf, &report.snp.reported_tcb)?;
    if leaf_role == Role::Vcek {
        check_chip_id(leaf, &report.snp.chip_id)?;
    }

    // The report signature, over the bytes as received.
    check_report_signature(&report, leaf, (&r, &s))?;

    Ok(claims(report, at))
}

/// ECDSA P-384/SHA-384 over bytes `0..0x2A0` of the report as received,
/// with the VCEK/VLEK public key.
pub(crate) fn check_report_signature(
    report: &ParsedReport,
    leaf: &AmdCert<'_>,
    (r, s): (&[u8; 48], &[u8; 48]),
) -> Result<(), VerifyError> {
    let key = leaf.p384_public_key()?;
    let mut rs = [0u8; 96];
    rs[..48].copy_from_slice(r);
    rs[48..].copy_from_slice(s);
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, key)
        .verify(report.signed_bytes(), &rs)
        .map_err(|_| {
            VerifyError::bad_signature_with(
                "report",
                leaf.role.to_string(),
                "the report was altered, or another key signed it",
            )
        })
}

/// R and S as 48-byte big-endian numbers. The report stores each as a 72-byte
/// little-endian number; the top 24 bytes and the rest of the signature
/// field are reserved and must be zero.
pub(crate) fn split_signature(report: &ParsedReport) -> Result<([u8; 48], [u8; 48]), VerifyError> {
    let sig = report.signature_bytes();
    let (Some(r_le), Some(s_le), Some(reserved)) =
        (sig.get(..72), sig.get(72..144), sig.get(144..))
    else {
        return Err(VerifyError::malformed(WHAT, "signature field is truncated"));
    };
    let mut out = [[0u8; 48]; 2];
    for (i, (le, be)) in [r_le, s_le].into_iter().zip(out.iter_mut()).enumerate() {
        let (low, high) = le.split_at(48);
        if high.iter().any(|b| *b != 0) {
            return Err(VerifyError::bad_signature(
                "report",
                format!(
                    "{} is wider than 384 bits (non-zero bytes at {:#x})",
                    if i == 0 { "R" } else { "S" },
                    OFF_SIGNATURE + 72 * i + 48
                ),
            ));
        }
        for (dst, src) in be.iter_mut().zip(low.iter().rev()) {
            *dst = *src;
        }
    }
    if reserved.iter().any(|b| *b != 0) {
        return Err(VerifyError::malformed(
            WHAT,
            format!(
                "reserved bytes {:#x}..{:#x} of the signature field are not zero",
                OFF_SIGNATURE + 144,
                OFF_SIGNATURE + sig.len()
            ),
        ));
    }
    let [r, s] = out;
    Ok((r, s))
}

/// The DER certificates of every `Certificates` endorsement, without repeats.
fn supplied_certificates(endorsements: &[Endorsement]) -> Result<Vec<&[u8]>, VerifyError> {
    let mut out: Vec<&[u8]> = Vec::new();
    for e in endorsements {
        match e {
            Endorsement::Certificates(certs) => {
                for c in certs {
                    if !out.contains(&c.as_slice()) {
                        out.push(c);
                    }
                }
            }
            other => {
                return Err(VerifyError::BadEndorsement(format!(
                    "SEV-SNP verification takes certificates (VCEK or VLEK, ASK/ASVK, ARK), not {other:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// The one supplied certificate with `role`, if any; two are ambiguous.
fn only_one<'c, 'a>(
    certs: &'c [AmdCert<'a>],
    role: Role,
) -> Result<Option<&'c AmdCert<'a>>, VerifyError> {
    let mut it = certs.iter().filter(|c| c.role == role);
    let first = it.next();
    if it.next().is_some() {
        return Err(VerifyError::BadEndorsement(format!(
            "more than one {role} certificate given; give only the one for this report"
        )));
    }
    Ok(first)
}

/// The VCEK/VLEK TCB extensions must equal the report's REPORTED_TCB.
fn check_tcb(leaf: &AmdCert<'_>, reported: &SnpTcb) -> Result<(), VerifyError> {
    let spl = |oid: &[u64], name: &str| -> Result<Option<u8>, VerifyError> {
        match leaf.extension(oid)? {
            None => Ok(None),
            Some(v) => der_small_uint(v).map(Some).ok_or_else(|| {
                VerifyError::BadEndorsement(format!(
                    "{} has a malformed {name} extension",
                    leaf.describe()
                ))
            }),
        }
    };
    let required = |oid: &[u64], name: &str| -> Result<u8, VerifyError> {
        spl(oid, name)?.ok_or_else(|| {
            VerifyError::BadEndorsement(format!("{} has no {name} extension", leaf.describe()))
        })
    };
    let role = leaf.role;
    let fields = [
        (
            "bootloader",
            required(OID_BL_SPL, "blSPL")?,
            reported.bootloader,
        ),
        ("TEE", required(OID_TEE_SPL, "teeSPL")?, reported.tee),
        ("SNP", required(OID_SNP_SPL, "snpSPL")?, reported.snp),
        (
            "microcode",
            required(OID_UCODE_SPL, "ucodeSPL")?,
            reported.microcode,
        ),
    ];
    for (name, cert, report) in fields {
        if cert != report {
            return Err(VerifyError::mismatch(
                format!("reported TCB {name} SPL"),
                format!("{cert} ({role})"),
                format!("{report} (report)"),
            ));
        }
    }
    // Present on Turin and later VCEKs, where the report's TCB has it too.
    let fmc = spl(OID_FMC_SPL, "fmcSPL")?;
    if fmc != reported.fmc {
        let show = |v: Option<u8>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        return Err(VerifyError::mismatch(
            "reported TCB FMC SPL",
            format!("{} ({role})", show(fmc)),
            format!("{} (report)", show(reported.fmc)),
        ));
    }
    Ok(())
}

/// The VCEK's hwID extension must equal the report's CHIP_ID (Turin hwIDs
/// are 8 bytes; the rest of CHIP_ID is then zero).
fn check_chip_id(leaf: &AmdCert<'_>, chip_id: &[u8]) -> Result<(), VerifyError> {
    let hw = leaf.extension(OID_HW_ID)?.map(hw_id).ok_or_else(|| {
        VerifyError::BadEndorsement(format!("{} has no hwID extension", leaf.describe()))
    })?;
    let matches = !hw.is_empty()
        && hw.len() <= chip_id.len()
        && chip_id.get(..hw.len()) == Some(hw)
        && chip_id
            .get(hw.len()..)
            .is_some_and(|rest| rest.iter().all(|b| *b == 0));
    if !matches {
        let found = if chip_id.iter().all(|b| *b == 0) {
            "all zero (CHIP_ID masked by the guest policy)".to_owned()
        } else {
            hex::encode(chip_id)
        };
        return Err(VerifyError::mismatch(
            "chip id",
            format!("{} (VCEK hwID)", hex::encode(hw)),
            found,
        ));
    }
    Ok(())
}

/// The claims of a verified report.
fn claims(report: ParsedReport, at: Time) -> Claims {
    let measurement = report.snp.measurement.clone();
    Claims {
        tee: Tee::Snp,
        insecure: false,
        measurements: BTreeMap::from([("measurement".to_owned(), measurement.clone())]),
        measurement,
        signer: report.signer_digest().map(<[u8]>::to_vec),
        product_id: None,
        svn: Some(report.snp.guest_svn),
        debug: report.debug(),
        tcb_status: TcbStatus::NotApplicable,
        advisories: Vec::new(),
        report_data: report.report_data,
        platform_id: report.platform_id().map(<[u8]>::to_vec),
        verified_at: at,
        tee_claims: TeeClaims::Snp(report.snp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};

    /// The trustee report re-signed with the forged VCEK's key.
    pub(crate) fn forged_report() -> Vec<u8> {
        let mut raw = include_bytes!("../testdata/trustee_report_v2.bin").to_vec();
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            include_bytes!("../testdata/fake_vcek_key.pk8"),
            &rng,
        )
        .unwrap();
        let sig = key.sign(&rng, &raw[..0x2A0]).unwrap();
        let (r, s) = sig.as_ref().split_at(48);
        raw[0x2A0..0x4A0].fill(0);
        for (i, b) in r.iter().rev().enumerate() {
            raw[0x2A0 + i] = *b;
        }
        for (i, b) in s.iter().rev().enumerate() {
            raw[0x2A0 + 72 + i] = *b;
        }
        raw
    }

    fn pem_der(p: &[u8]) -> Vec<u8> {
        pem::parse(p).unwrap().into_contents()
    }

    #[test]
    fn forged_chain_is_consistent_except_for_its_root() {
        // Every check but the ARK pin passes on the forged chain, so the pin
        // is what rejects it.
        let ark_der = pem_der(include_bytes!("../testdata/fake_ark_milan.pem"));
        let ask_der = pem_der(include_bytes!("../testdata/fake_ask_milan.pem"));
        let vcek_der = include_bytes!("../testdata/fake_vcek.der");
        let ark = AmdCert::parse(&ark_der, false).unwrap();
        let ask = AmdCert::parse(&ask_der, false).unwrap();
        let vcek = AmdCert::parse(vcek_der, false).unwrap();
        assert_eq!(
            (ark.role, ask.role, vcek.role),
            (Role::Ark, Role::Ask, Role::Vcek)
        );
        ark.check_signed_by(&ark).unwrap();
        ask.check_signed_by(&ark).unwrap();
        vcek.check_signed_by(&ask).unwrap();
        let at = Time::from_unix(1_735_689_600);
        for c in [&ark, &ask, &vcek] {
            c.check_window(at).unwrap();
        }
        let report = parse_report(&forged_report()).unwrap();
        check_tcb(&vcek, &report.snp.reported_tcb).unwrap();
        check_chip_id(&vcek, &report.snp.chip_id).unwrap();
        let (r, s) = split_signature(&report).unwrap();
        check_report_signature(&report, &vcek, (&r, &s)).unwrap();

        // And the verifier refuses it, whichever part of the chain is given.
        let e = verify(
            &forged_report(),
            &[Endorsement::Certificates(vec![
                vcek_der.to_vec(),
                ask_der.clone(),
                ark_der.clone(),
            ])],
            at,
        )
        .unwrap_err();
        assert!(matches!(e, VerifyError::Untrusted { .. }), "{e}");
        assert!(e.to_string().contains("not AMD's ARK-Milan"), "{e}");
        let e = verify(
            &forged_report(),
            &[Endorsement::Certificates(vec![vcek_der.to_vec(), ask_der])],
            at,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "ASK certificate signature does not verify: not signed by the built-in ARK"
            ),
            "{e}"
        );
        let e = verify(
            &forged_report(),
            &[Endorsement::Certificates(vec![vcek_der.to_vec()])],
            at,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "VCEK certificate signature does not verify: not signed by the built-in ASK"
            ),
            "{e}"
        );
    }

    #[test]
    fn signature_conversion() {
        let mut raw = include_bytes!("../testdata/trustee_report_v2.bin").to_vec();
        for (i, b) in raw[OFF_SIGNATURE..OFF_SIGNATURE + 48]
            .iter_mut()
            .enumerate()
        {
            *b = i as u8;
        }
        let report = parse_report(&raw).unwrap();
        let (r, _) = split_signature(&report).unwrap();
        assert_eq!(r[0], 47);
        assert_eq!(r[47], 0);
        raw[OFF_SIGNATURE + 71] = 1;
        let report = parse_report(&raw).unwrap();
        let e = split_signature(&report).unwrap_err();
        assert!(e.to_string().contains("wider than 384 bits"), "{e}");
        raw[OFF_SIGNATURE + 71] = 0;
        raw[0x4A0 - 1] = 1;
        let report = parse_report(&raw).unwrap();
        let e = split_signature(&report).unwrap_err();
        assert!(e.to_string().contains("reserved bytes"), "{e}");
    }
}
