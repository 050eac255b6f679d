//! Shared helpers: claims of each TEE kind.
#![allow(dead_code)]

use std::collections::BTreeMap;

use veil_attest::{
    Claims, NitroClaims, ReportData, SgxClaims, SimClaims, SnpClaims, SnpSigner, SnpTcb, TcbStatus,
    TdxClaims, Tee, TeeClaims, Time,
};

pub fn tee_claims(tee: Tee, measurement: Vec<u8>) -> TeeClaims {
    match tee {
        Tee::Sgx => TeeClaims::Sgx(SgxClaims {
            quote_version: 3,
            cpu_svn: vec![0; 16],
            misc_select: 0,
            attributes: vec![0; 16],
            mr_enclave: measurement,
            mr_signer: vec![0; 32],
            isv_prod_id: 0,
            isv_svn: 0,
            fmspc: None,
            platform_tcb_status: None,
            qe_tcb_status: None,
        }),
        Tee::Tdx => TeeClaims::Tdx(TdxClaims {
            quote_version: 4,
            body: "1.0".into(),
            tee_tcb_svn: vec![0; 16],
            mr_seam: vec![0; 48],
            mr_signer_seam: vec![0; 48],
            seam_attributes: vec![0; 8],
            td_attributes: vec![0; 8],
            xfam: vec![0; 8],
            mr_td: measurement,
            mr_config_id: vec![0; 48],
            mr_owner: vec![0; 48],
            mr_owner_config: vec![0; 48],
            rt_mr: BTreeMap::new(),
            tee_tcb_svn2: None,
            mr_service_td: None,
            fmspc: None,
            platform_tcb_status: None,
            qe_tcb_status: None,
        }),
        Tee::Snp => TeeClaims::Snp(SnpClaims {
            version: 3,
            guest_svn: 0,
            policy: 0x30000,
            family_id: vec![0; 16],
            image_id: vec![0; 16],
            vmpl: 0,
            signature_algo: 1,
            current_tcb: SnpTcb::default(),
            reported_tcb: SnpTcb::default(),
            committed_tcb: SnpTcb::default(),
            launch_tcb: SnpTcb::default(),
            platform_info: 0,
            measurement,
            host_data: vec![0; 32],
            id_key_digest: vec![0; 48],
            author_key_digest: vec![0; 48],
            report_id: vec![0; 32],
            report_id_ma: vec![0; 32],
            chip_id: vec![0; 64],
            signer: SnpSigner::Vcek,
            cpuid: None,
        }),
        Tee::Nitro => TeeClaims::Nitro(NitroClaims {
            module_id: "i-0-enc0".into(),
            digest: "SHA384".into(),
            timestamp_ms: 0,
            pcrs: BTreeMap::from([(0u8, measurement)]),
            public_key: None,
            user_data: None,
            nonce: None,
        }),
        _ => TeeClaims::Sim(SimClaims {
            version: 1,
            platform_key: vec![0; 32],
            issued_at: Time::from_unix(1_700_000_000),
        }),
    }
}

/// Plausible claims of `tee` with an all-`fill` measurement.
pub fn claims(tee: Tee, fill: u8) -> Claims {
    let len = if tee == Tee::Sgx { 32 } else { 48 };
    let measurement = vec![fill; len];
    let primary = match tee {
        Tee::Sgx => "mrenclave",
        Tee::Tdx => "mrtd",
        Tee::Snp => "measurement",
        Tee::Nitro => "pcr0",
        _ => "measurement",
    };
    let tcb_status = match tee {
        Tee::Sgx | Tee::Tdx => TcbStatus::UpToDate,
        _ => TcbStatus::NotApplicable,
    };
    Claims {
        tee,
        insecure: tee == Tee::Sim,
        measurement: measurement.clone(),
        measurements: BTreeMap::from([(primary.to_owned(), measurement.clone())]),
        signer: None,
        product_id: None,
        svn: None,
        debug: false,
        tcb_status,
        advisories: Vec::new(),
        report_data: ReportData::ZERO,
        platform_id: None,
        verified_at: Time::from_unix(1_700_000_000),
        tee_claims: tee_claims(tee, measurement),
    }
}

pub const OWNER: &str = "0000000000000000000000000000000000000000000000000000000000000001";

/// A session with one service `svc` whose `accept` list is `accept_yaml`
/// (a YAML flow or block list, indented for the `accept:` key).
pub fn with_accept(accept_yaml: &str) -> String {
    format!(
        "name: t/s\nversion: 1\nowners: [{OWNER}]\nservices:\n  - name: svc\n    command: [/bin/app]\n    accept: {accept_yaml}\n"
    )
}
