//! Accept-rule matching: fixed cases for every denial code, and properties.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{claims, with_accept};
use proptest::prelude::*;
use veil_attest::{Claims, SnpTcb, TcbStatus, Tee, TeeClaims};
use veil_policy::{check_accept, parse_session, Service, Session};

/// No runtime claims: what a launcher that states none sends.
static NO_CLAIMS: BTreeMap<String, String> = BTreeMap::new();

fn session(accept: &str) -> Session {
    parse_session(&with_accept(accept)).unwrap()
}

fn svc(s: &Session) -> &Service {
    &s.services()[0]
}

fn hex_of(b: u8, n: usize) -> String {
    hex::encode(vec![b; n])
}

#[test]
fn sim_claims_need_a_sim_rule() {
    let s = session(&format!("[{{ tee: snp, measurement: {} }}]", hex_of(1, 48)));
    let d = check_accept(svc(&s), &claims(Tee::Sim, 1), &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "sim_not_allowed");
    assert!(d.to_string().contains("rule 0 (tee snp)"), "{d}");
    // Insecure claims that claim another TEE are still sim.
    let mut c = claims(Tee::Snp, 1);
    c.insecure = true;
    assert_eq!(
        check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err().code(),
        "sim_not_allowed"
    );
    let ok = session("[{ tee: sim, measurement: any }]");
    assert_eq!(
        check_accept(svc(&ok), &claims(Tee::Sim, 9), &NO_CLAIMS)
            .unwrap()
            .index,
        0
    );
    // A sim rule does not accept real TEEs.
    assert_eq!(
        check_accept(svc(&ok), &claims(Tee::Snp, 1), &NO_CLAIMS)
            .unwrap_err()
            .code(),
        "tee_not_accepted"
    );
}

#[test]
fn debug_is_denied_unless_allowed() {
    let s = session(&format!("[{{ tee: snp, measurement: {} }}]", hex_of(1, 48)));
    let mut c = claims(Tee::Snp, 1);
    c.debug = true;
    let d = check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "debug_not_allowed");
    let s = session(&format!(
        "[{{ tee: snp, measurement: {}, debug: true }}]",
        hex_of(1, 48)
    ));
    assert!(check_accept(svc(&s), &c, &NO_CLAIMS).is_ok());
}

#[test]
fn tcb_status_defaults_to_up_to_date() {
    let s = session(&format!("[{{ tee: tdx, measurement: {} }}]", hex_of(1, 48)));
    let mut c = claims(Tee::Tdx, 1);
    assert!(check_accept(svc(&s), &c, &NO_CLAIMS).is_ok());
    c.tcb_status = TcbStatus::SWHardeningNeeded;
    let d = check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "tcb_status_not_accepted");
    assert!(d.to_string().contains("found SWHardeningNeeded"), "{d}");
    c.tcb_status = TcbStatus::NotApplicable;
    assert_eq!(
        check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err().code(),
        "tcb_status_not_accepted"
    );
    // SNP has no status: NotApplicable passes.
    let s = session(&format!("[{{ tee: snp, measurement: {} }}]", hex_of(1, 48)));
    assert!(check_accept(svc(&s), &claims(Tee::Snp, 1), &NO_CLAIMS).is_ok());
}

#[test]
fn snp_min_tcb_compares_each_component() {
    let s = session(&format!(
        "[{{ tee: snp, measurement: {}, min_tcb: {{ bootloader: 3, tee: 0, snp: 8, microcode: 115 }} }}]",
        hex_of(1, 48)
    ));
    let mut c = claims(Tee::Snp, 1);
    let set = |c: &mut Claims, t: SnpTcb| {
        if let TeeClaims::Snp(s) = &mut c.tee_claims {
            s.reported_tcb = t;
        }
    };
    set(
        &mut c,
        SnpTcb {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None,
        },
    );
    assert!(check_accept(svc(&s), &c, &NO_CLAIMS).is_ok());
    set(
        &mut c,
        SnpTcb {
            bootloader: 4,
            tee: 1,
            snp: 7,
            microcode: 200,
            fmc: None,
        },
    );
    let d = check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "tcb_too_low");
    assert!(
        d.to_string()
            .contains("min_tcb.snp expected at least 8, found 7"),
        "{d}"
    );
}

#[test]
fn closest_rule_is_reported_with_expected_and_found() {
    let s = session(&format!(
        "[{{ tee: sgx, measurement: {} }}, {{ tee: snp, measurement: {} }}, {{ tee: sim, measurement: any }}]",
        hex_of(1, 32),
        hex_of(2, 48)
    ));
    let d = check_accept(svc(&s), &claims(Tee::Snp, 3), &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "measurement_mismatch");
    assert_eq!(d.rule(), Some(1));
    let text = d.to_string();
    assert!(
        text.contains(&format!(
            "measurement expected {}, found {}",
            hex_of(2, 48),
            hex_of(3, 48)
        )),
        "{text}"
    );
    assert!(text.contains("rule 0 (tee sgx) tee_not_accepted"), "{text}");
    assert!(text.contains("rule 2 (tee sim) tee_not_accepted"), "{text}");
    // No rule for the TEE at all.
    let d = check_accept(svc(&s), &claims(Tee::Nitro, 3), &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "tee_not_accepted");
}

#[test]
fn sgx_signer_product_svn() {
    let s = session(&format!(
        "[{{ tee: sgx, measurement: any, signer: {}, product: 7, min_svn: 2 }}]",
        hex_of(5, 32)
    ));
    let mut c = claims(Tee::Sgx, 1);
    c.signer = Some(vec![5; 32]);
    c.product_id = Some(7);
    c.svn = Some(2);
    assert!(check_accept(svc(&s), &c, &NO_CLAIMS).is_ok());
    c.svn = Some(1);
    assert_eq!(
        check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err().code(),
        "svn_too_low"
    );
    c.svn = None;
    assert_eq!(
        check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err().code(),
        "svn_too_low"
    );
    c.svn = Some(3);
    c.product_id = Some(8);
    assert_eq!(
        check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err().code(),
        "product_mismatch"
    );
    c.product_id = Some(7);
    c.signer = Some(vec![6; 32]);
    assert_eq!(
        check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err().code(),
        "signer_mismatch"
    );
}

#[test]
fn measurement_lists_and_registers() {
    let s = session(&format!(
        "[{{ tee: tdx, measurement: [{}, {}], rtmrs: {{ rtmr2: {} }} }}]",
        hex_of(1, 48),
        hex_of(2, 48),
        hex_of(9, 48)
    ));
    let mut c = claims(Tee::Tdx, 2);
    c.measurements.insert("rtmr2".into(), vec![9; 48]);
    assert!(check_accept(svc(&s), &c, &NO_CLAIMS).is_ok());
    c.measurements.insert("rtmr2".into(), vec![8; 48]);
    let d = check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "register_mismatch");
    assert!(d.to_string().contains("rtmrs.rtmr2"), "{d}");
}

// ---- runtime claims: executable, interpreter ----

fn runtime(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn executable_must_be_claimed_and_equal() {
    let exe = hex_of(0xab, 48);
    let s = session(&format!(
        "[{{ tee: snp, measurement: {}, executable: {exe} }}]",
        hex_of(1, 48)
    ));
    let c = claims(Tee::Snp, 1);
    // Match.
    let ok = check_accept(svc(&s), &c, &runtime(&[("executable", &exe)])).unwrap();
    assert_eq!(ok.index, 0);
    // Mismatch: expected vs found.
    let other = hex_of(0xcd, 48);
    let d = check_accept(svc(&s), &c, &runtime(&[("executable", &other)])).unwrap_err();
    assert_eq!(d.code(), "executable_mismatch");
    assert_eq!(d.denial_code(), veil_policy::DenialCode::ExecutableMismatch);
    assert_eq!(d.mismatches().len(), 1);
    assert_eq!(d.mismatches()[0].field, "executable");
    assert!(
        d.to_string()
            .contains(&format!("executable expected {exe}, found {other}")),
        "{d}"
    );
    // Missing claim: found none.
    let d = check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "executable_mismatch");
    assert!(
        d.to_string()
            .contains(&format!("executable expected {exe}, found none")),
        "{d}"
    );
    // Only the exact lower-case text matches.
    let d = check_accept(
        svc(&s),
        &c,
        &runtime(&[("executable", &exe.to_uppercase())]),
    )
    .unwrap_err();
    assert_eq!(d.code(), "executable_mismatch");
    // The interpreter claim is not looked at when the rule does not pin it.
    assert!(check_accept(
        svc(&s),
        &c,
        &runtime(&[("executable", &exe), ("interpreter", "anything")])
    )
    .is_ok());
}

#[test]
fn interpreter_must_be_claimed_and_equal() {
    let exe = hex_of(0x01, 48);
    let interp = hex_of(0x02, 48);
    let s = session(&format!(
        "[{{ tee: sim, measurement: any, executable: {exe}, interpreter: {interp} }}]"
    ));
    let c = claims(Tee::Sim, 1);
    assert!(check_accept(
        svc(&s),
        &c,
        &runtime(&[("executable", &exe), ("interpreter", &interp)])
    )
    .is_ok());
    let d = check_accept(svc(&s), &c, &runtime(&[("executable", &exe)])).unwrap_err();
    assert_eq!(d.code(), "interpreter_mismatch");
    assert!(
        d.to_string()
            .contains(&format!("interpreter expected {interp}, found none")),
        "{d}"
    );
    // Both wrong: executable is reported first, both are listed.
    let d = check_accept(
        svc(&s),
        &c,
        &runtime(&[("executable", &interp), ("interpreter", &exe)]),
    )
    .unwrap_err();
    assert_eq!(d.code(), "executable_mismatch");
    let codes: Vec<_> = d.mismatches().iter().map(|m| m.code.as_str()).collect();
    assert_eq!(codes, ["executable_mismatch", "interpreter_mismatch"]);
}

#[test]
fn runtime_claims_come_after_the_tee_checks() {
    let exe = hex_of(0xab, 48);
    let s = session(&format!(
        "[{{ tee: snp, measurement: {}, executable: {exe} }}]",
        hex_of(1, 48)
    ));
    // A wrong measurement is the reason, the executable a further mismatch.
    let d = check_accept(svc(&s), &claims(Tee::Snp, 2), &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "measurement_mismatch");
    assert_eq!(d.mismatches().len(), 2);
    // Another TEE: only the TEE is reported.
    let d = check_accept(svc(&s), &claims(Tee::Tdx, 1), &NO_CLAIMS).unwrap_err();
    assert_eq!(d.code(), "tee_not_accepted");
    assert_eq!(d.mismatches().len(), 1);
}

#[test]
fn rules_pinning_programs_are_ored_and_the_closest_is_reported() {
    let (a, b) = (hex_of(0xa1, 48), hex_of(0xb2, 48));
    let m = hex_of(1, 48);
    let s = session(&format!(
        "[{{ tee: snp, measurement: {m}, executable: {a} }}, {{ tee: snp, measurement: {m}, executable: {b} }}, {{ tee: snp, measurement: {}, executable: {b} }}]",
        hex_of(2, 48)
    ));
    let c = claims(Tee::Snp, 1);
    // Either program is accepted (rolling upgrade).
    assert_eq!(
        check_accept(svc(&s), &c, &runtime(&[("executable", &a)]))
            .unwrap()
            .index,
        0
    );
    assert_eq!(
        check_accept(svc(&s), &c, &runtime(&[("executable", &b)]))
            .unwrap()
            .index,
        1
    );
    // A third program: rules 0 and 1 fail once, rule 2 twice; rule 0 is closest.
    let other = hex_of(0xcc, 48);
    let d = check_accept(svc(&s), &c, &runtime(&[("executable", &other)])).unwrap_err();
    assert_eq!(d.code(), "executable_mismatch");
    assert_eq!(d.rule(), Some(0));
    let text = d.to_string();
    assert!(
        text.contains("rule 1 (tee snp) executable_mismatch"),
        "{text}"
    );
    assert!(
        text.contains("rule 2 (tee snp) measurement_mismatch"),
        "{text}"
    );
}

#[test]
fn odd_claim_values_are_quoted_and_shortened_in_denials() {
    let exe = hex_of(0xab, 48);
    let s = session(&format!(
        "[{{ tee: sim, measurement: any, executable: {exe} }}]"
    ));
    let c = claims(Tee::Sim, 1);
    let d = check_accept(
        svc(&s),
        &c,
        &runtime(&[("executable", "evil\n\u{1b}[31mtext")]),
    )
    .unwrap_err();
    let text = d.to_string();
    assert!(text.contains(r#"found "evil\n\u{1b}[31mtext""#), "{text}");
    assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
    let long = "x".repeat(10_000);
    let d = check_accept(svc(&s), &c, &runtime(&[("executable", &long)])).unwrap_err();
    let text = d.to_string();
    assert!(text.contains("... (10000 bytes)"), "{text}");
    assert!(text.len() < 1000, "{}", text.len());
}

// ---- properties ----

#[derive(Debug, Clone)]
struct Gen {
    tee: Tee,
    measurement: Vec<u8>,
    signer: Vec<u8>,
    product: u16,
    svn: u32,
    status: TcbStatus,
    debug: bool,
    tcb: [u8; 4],
    register: Vec<u8>,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        prop::sample::select(vec![Tee::Sgx, Tee::Tdx, Tee::Snp, Tee::Nitro, Tee::Sim]),
        prop::collection::vec(any::<u8>(), 48),
        prop::collection::vec(any::<u8>(), 48),
        any::<u16>(),
        0u32..65535,
        prop::sample::select(vec![
            TcbStatus::UpToDate,
            TcbStatus::SWHardeningNeeded,
            TcbStatus::ConfigurationNeeded,
            TcbStatus::OutOfDate,
            TcbStatus::TDRelaunchAdvised,
        ]),
        any::<bool>(),
        any::<[u8; 4]>(),
        prop::collection::vec(any::<u8>(), 48),
    )
        .prop_map(
            |(tee, mut measurement, mut signer, product, svn, status, debug, tcb, register)| {
                if tee == Tee::Sgx {
                    measurement.truncate(32);
                    signer.truncate(32);
                }
                Gen {
                    tee,
                    measurement,
                    signer,
                    product,
                    svn,
                    status,
                    debug,
                    tcb,
                    register,
                }
            },
        )
}

fn claims_of(g: &Gen) -> Claims {
    let mut c = claims(g.tee, 0);
    c.measurement = g.measurement.clone();
    c.debug = g.debug;
    match g.tee {
        Tee::Sgx => {
            c.signer = Some(g.signer.clone());
            c.product_id = Some(g.product);
            c.svn = Some(g.svn);
            c.tcb_status = g.status;
        }
        Tee::Tdx => {
            c.tcb_status = g.status;
            c.measurements.insert("rtmr1".into(), g.register.clone());
        }
        Tee::Snp => {
            c.signer = Some(g.signer.clone());
            c.svn = Some(g.svn);
            if let TeeClaims::Snp(s) = &mut c.tee_claims {
                s.reported_tcb = SnpTcb {
                    bootloader: g.tcb[0],
                    tee: g.tcb[1],
                    snp: g.tcb[2],
                    microcode: g.tcb[3],
                    fmc: None,
                };
            }
        }
        Tee::Nitro => {
            c.measurements.insert("pcr1".into(), g.register.clone());
        }
        _ => {}
    }
    c
}

/// The tightest rule that `g`'s claims satisfy: every field pinned.
fn rule_of(g: &Gen) -> String {
    let m = hex::encode(&g.measurement);
    let sig = hex::encode(&g.signer);
    let reg = hex::encode(&g.register);
    let extra = match g.tee {
        Tee::Sgx => format!("signer: {sig}, product: {}, min_svn: {}, tcb_status: [{}]", g.product, g.svn, g.status),
        Tee::Tdx => format!("rtmrs: {{ rtmr1: {reg} }}, tcb_status: [{}]", g.status),
        Tee::Snp => format!(
            "signer: {sig}, min_svn: {}, min_tcb: {{ bootloader: {}, tee: {}, snp: {}, microcode: {} }}",
            g.svn, g.tcb[0], g.tcb[1], g.tcb[2], g.tcb[3]
        ),
        Tee::Nitro => format!("pcrs: {{ 1: {reg} }}"),
        _ => String::new(),
    };
    let sep = if extra.is_empty() { "" } else { ", " };
    format!(
        "[{{ tee: {}, measurement: {m}, debug: {}{sep}{extra} }}]",
        g.tee, g.debug
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn a_rule_built_from_claims_matches_them(g in gen()) {
        let s = parse_session(&with_accept(&rule_of(&g))).unwrap();
        let c = claims_of(&g);
        prop_assert_eq!(check_accept(svc(&s), &c, &NO_CLAIMS).map(|m| m.index), Ok(0));
    }

    #[test]
    fn changing_a_pinned_field_breaks_the_match(g in gen(), which in 0usize..8, flip in 0usize..32) {
        let s = parse_session(&with_accept(&rule_of(&g))).unwrap();
        let mut c = claims_of(&g);
        let expect = match (which, g.tee) {
            (0, _) => { let n = c.measurement.len(); c.measurement[flip % n] ^= 1; "measurement_mismatch" }
            (1, _) => {
                let other = if g.tee == Tee::Snp { Tee::Tdx } else { Tee::Snp };
                c.tee = other;
                c.insecure = false;
                "tee_not_accepted"
            }
            (2, _) if !g.debug => { c.debug = true; "debug_not_allowed" }
            (3, Tee::Sgx | Tee::Snp) => { c.signer.as_mut().unwrap()[flip % 32] ^= 0x80; "signer_mismatch" }
            (4, Tee::Sgx) => { c.product_id = Some(g.product.wrapping_add(1)); "product_mismatch" }
            (5, Tee::Sgx | Tee::Snp) if g.svn > 0 => { c.svn = Some(g.svn - 1); "svn_too_low" }
            (6, Tee::Sgx | Tee::Tdx) => {
                c.tcb_status = if g.status == TcbStatus::Revoked { TcbStatus::UpToDate } else { TcbStatus::Revoked };
                "tcb_status_not_accepted"
            }
            (6, Tee::Snp) if g.tcb[flip % 4] > 0 => {
                if let TeeClaims::Snp(s) = &mut c.tee_claims {
                    match flip % 4 {
                        0 => s.reported_tcb.bootloader -= 1,
                        1 => s.reported_tcb.tee -= 1,
                        2 => s.reported_tcb.snp -= 1,
                        _ => s.reported_tcb.microcode -= 1,
                    }
                }
                "tcb_too_low"
            }
            (7, Tee::Tdx) => { c.measurements.insert("rtmr1".into(), vec![0xee; 47]); "register_mismatch" }
            (7, Tee::Nitro) => { c.measurements.remove("pcr1"); "register_mismatch" }
            _ => return Ok(()),
        };
        let d = check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err();
        prop_assert_eq!(d.code(), expect, "{}", d);
    }

    #[test]
    fn sim_claims_never_match_a_real_tee_rule(g in gen()) {
        prop_assume!(g.tee != Tee::Sim);
        let s = parse_session(&with_accept(&rule_of(&g))).unwrap();
        let mut c = claims_of(&g);
        c.insecure = true;
        prop_assert_eq!(check_accept(svc(&s), &c, &NO_CLAIMS).unwrap_err().code(), "sim_not_allowed");
    }
}
