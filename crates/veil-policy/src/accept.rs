//! Matching verified claims against a service's accept rules.

use std::collections::BTreeMap;
use std::fmt;

use veil_attest::{Claims, TcbStatus, Tee, TeeClaims};

use crate::model::{AcceptRule, MeasurementRule, Service, CLAIM_EXECUTABLE};

/// The stable code of a denial; see `docs/spec/policy.md` for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenialCode {
    /// The evidence comes from a TEE no rule accepts.
    TeeNotAccepted,
    /// Simulated (insecure) evidence, and the rule does not say `tee: sim`.
    SimNotAllowed,
    /// Debug-mode evidence, and the rule does not say `debug: true`.
    DebugNotAllowed,
    /// The primary measurement is not one the rule lists.
    MeasurementMismatch,
    /// A pinned secondary register (RTMR, PCR) differs.
    RegisterMismatch,
    /// The signer differs or is absent.
    SignerMismatch,
    /// The product id differs or is absent.
    ProductMismatch,
    /// The security version is below the minimum or absent.
    SvnTooLow,
    /// The platform's TCB status is not in the accepted list.
    TcbStatusNotAccepted,
    /// A component of the SEV-SNP reported TCB is below the minimum.
    TcbTooLow,
    /// The launcher's `executable` runtime claim differs from the rule's
    /// `executable`, or is absent.
    ExecutableMismatch,
    /// The launcher's `interpreter` runtime claim differs from the rule's
    /// `interpreter`, or is absent.
    InterpreterMismatch,
}

impl DenialCode {
    /// The code as it appears in API responses and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialCode::TeeNotAccepted => "tee_not_accepted",
            DenialCode::SimNotAllowed => "sim_not_allowed",
            DenialCode::DebugNotAllowed => "debug_not_allowed",
            DenialCode::MeasurementMismatch => "measurement_mismatch",
            DenialCode::RegisterMismatch => "register_mismatch",
            DenialCode::SignerMismatch => "signer_mismatch",
            DenialCode::ProductMismatch => "product_mismatch",
            DenialCode::SvnTooLow => "svn_too_low",
            DenialCode::TcbStatusNotAccepted => "tcb_status_not_accepted",
            DenialCode::TcbTooLow => "tcb_too_low",
            DenialCode::ExecutableMismatch => "executable_mismatch",
            DenialCode::InterpreterMismatch => "interpreter_mismatch",
        }
    }
}

impl fmt::Display for DenialCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field of one rule that the claims do not satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Its code.
    pub code: DenialCode,
    /// The rule field (`measurement`, `rtmrs.rtmr1`, `min_tcb.snp`...).
    pub field: String,
    /// What the rule asks for.
    pub expected: String,
    /// What the claims say.
    pub found: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} expected {}, found {}",
            self.code, self.field, self.expected, self.found
        )
    }
}

/// The rule that accepted the claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedRule {
    /// Its index in the service's `accept` list.
    pub index: usize,
    /// Its TEE.
    pub tee: Tee,
}

/// Why no accept rule of a service matched.
///
/// [`Denial::code`] is the code of the closest rule's first failed check;
/// the message names that rule, expected and found values, and summarises
/// the other rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    service: String,
    rule: Option<(usize, Tee)>,
    mismatches: Vec<Mismatch>,
    others: Vec<(usize, Tee, DenialCode)>,
}

impl Denial {
    /// The stable code (`measurement_mismatch`, ...).
    pub fn code(&self) -> &'static str {
        self.denial_code().as_str()
    }

    /// The code as an enum.
    pub fn denial_code(&self) -> DenialCode {
        self.mismatches
            .first()
            .map_or(DenialCode::TeeNotAccepted, |m| m.code)
    }

    /// The index of the closest rule, if the service has rules.
    pub fn rule(&self) -> Option<usize> {
        self.rule.map(|(i, _)| i)
    }

    /// Every failed check of the closest rule, most important first.
    pub fn mismatches(&self) -> &[Mismatch] {
        &self.mismatches
    }

    /// The other rules, with the code of their first failed check.
    pub fn others(&self) -> &[(usize, Tee, DenialCode)] {
        &self.others
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: service {:?} denied", self.code(), self.service)?;
        match self.rule {
            Some((i, tee)) => write!(f, "; closest is accept rule {i} (tee {tee})")?,
            None => write!(f, "; it has no accept rules")?,
        }
        for (n, m) in self.mismatches.iter().enumerate() {
            let sep = if n == 0 { ": " } else { "; and " };
            write!(f, "{sep}{m}")?;
        }
        if !self.others.is_empty() {
            f.write_str(". Other rules:")?;
            for (n, (i, tee, code)) in self.others.iter().enumerate() {
                let sep = if n == 0 { " " } else { ", " };
                write!(f, "{sep}rule {i} (tee {tee}) {code}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Denial {}

fn list(ds: &[crate::model::Digest]) -> String {
    match ds {
        [one] => one.to_string(),
        many => format!(
            "one of [{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn opt_hex(v: Option<&Vec<u8>>) -> String {
    v.map_or_else(|| "none".to_owned(), hex::encode)
}

/// The most characters of a runtime claim a denial message quotes.
const MAX_SHOWN_CLAIM: usize = 128;

/// A runtime claim as a denial shows it: lower-case hex as is, anything
/// else (it comes from the launcher, unchecked) quoted and shortened.
fn shown_claim(v: Option<&String>) -> String {
    let Some(v) = v else {
        return "none".to_owned();
    };
    let plain_hex = !v.is_empty()
        && v.len() <= MAX_SHOWN_CLAIM
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if plain_hex {
        return v.clone();
    }
    let head: String = v.chars().take(MAX_SHOWN_CLAIM).collect();
    if head.len() < v.len() {
        format!("{head:?}... ({} bytes)", v.len())
    } else {
        format!("{head:?}")
    }
}

fn mm(code: DenialCode, field: &str, expected: String, found: String) -> Mismatch {
    Mismatch {
        code,
        field: field.to_owned(),
        expected,
        found,
    }
}

/// Every check of `rule` that `claims` and `runtime_claims` fail, in a
/// fixed order: the TEE's checks first, then the runtime claims the rule
/// pins (`executable`, `interpreter`).
///
/// `runtime_claims` are what the launcher stated and bound into its
/// evidence's report data (the CAS checks that binding before calling
/// this): claim name to value, e.g. `executable` to the lower-case hex
/// SHA-384 of the program.
pub fn rule_mismatches(
    rule: &AcceptRule,
    claims: &Claims,
    runtime_claims: &BTreeMap<String, String>,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let claims_sim = claims.insecure || claims.tee == Tee::Sim;
    if claims_sim && rule.tee != Tee::Sim {
        out.push(mm(
            DenialCode::SimNotAllowed,
            "tee",
            rule.tee.to_string(),
            "sim (insecure, simulated evidence)".to_owned(),
        ));
        return out;
    }
    if claims.tee != rule.tee || (rule.tee == Tee::Sim && !claims_sim) {
        out.push(mm(
            DenialCode::TeeNotAccepted,
            "tee",
            rule.tee.to_string(),
            claims.tee.to_string(),
        ));
        return out;
    }
    if claims.debug && !rule.debug {
        out.push(mm(
            DenialCode::DebugNotAllowed,
            "debug",
            "a production (non-debug) TEE".to_owned(),
            "debug mode; set `debug: true` on the rule only for development".to_owned(),
        ));
    }
    if let MeasurementRule::OneOf(ds) = &rule.measurement {
        if !ds
            .iter()
            .any(|d| d.as_bytes() == claims.measurement.as_slice())
        {
            out.push(mm(
                DenialCode::MeasurementMismatch,
                "measurement",
                list(ds),
                hex::encode(&claims.measurement),
            ));
        }
    }
    for (name, d) in &rule.registers {
        let found = claims.measurements.get(name);
        if found.map(Vec::as_slice) != Some(d.as_bytes()) {
            let field = match name.strip_prefix("pcr") {
                Some(i) => format!("pcrs.{i}"),
                None => format!("rtmrs.{name}"),
            };
            out.push(mm(
                DenialCode::RegisterMismatch,
                &field,
                d.to_string(),
                opt_hex(found),
            ));
        }
    }
    if let Some(s) = &rule.signer {
        if claims.signer.as_deref() != Some(s.as_bytes()) {
            out.push(mm(
                DenialCode::SignerMismatch,
                "signer",
                s.to_string(),
                opt_hex(claims.signer.as_ref()),
            ));
        }
    }
    if let Some(p) = rule.product {
        if claims.product_id != Some(p) {
            out.push(mm(
                DenialCode::ProductMismatch,
                "product",
                p.to_string(),
                claims
                    .product_id
                    .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            ));
        }
    }
    if let Some(min) = rule.min_svn {
        if claims.svn.is_none_or(|v| v < min) {
            out.push(mm(
                DenialCode::SvnTooLow,
                "min_svn",
                format!("at least {min}"),
                claims
                    .svn
                    .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            ));
        }
    }
    let status_ok = if matches!(rule.tee, Tee::Sgx | Tee::Tdx) {
        rule.tcb_status.contains(&claims.tcb_status)
    } else {
        matches!(
            claims.tcb_status,
            TcbStatus::NotApplicable | TcbStatus::UpToDate
        )
    };
    if !status_ok {
        let expected = if rule.tcb_status.is_empty() {
            "NotApplicable".to_owned()
        } else {
            format!(
                "one of [{}] (add the status to `tcb_status` to accept it)",
                rule.tcb_status
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push(mm(
            DenialCode::TcbStatusNotAccepted,
            "tcb_status",
            expected,
            claims.tcb_status.to_string(),
        ));
    }
    if let Some(min) = &rule.min_tcb {
        match &claims.tee_claims {
            TeeClaims::Snp(snp) => {
                let r = snp.reported_tcb;
                let comps = [
                    ("bootloader", min.bootloader, Some(r.bootloader)),
                    ("tee", min.tee, Some(r.tee)),
                    ("snp", min.snp, Some(r.snp)),
                    ("microcode", min.microcode, Some(r.microcode)),
                ];
                let fmc = min.fmc.map(|m| ("fmc", m, r.fmc));
                for (name, want, have) in comps.into_iter().chain(fmc) {
                    if have.is_none_or(|h| h < want) {
                        out.push(mm(
                            DenialCode::TcbTooLow,
                            &format!("min_tcb.{name}"),
                            format!("at least {want}"),
                            have.map_or_else(|| "none".to_owned(), |h| h.to_string()),
                        ));
                    }
                }
            }
            _ => out.push(mm(
                DenialCode::TcbTooLow,
                "min_tcb",
                "an SEV-SNP reported TCB".to_owned(),
                "claims without SEV-SNP fields".to_owned(),
            )),
        }
    }
    for (name, want) in rule.pinned_runtime_claims() {
        let found = runtime_claims.get(name);
        if found.map(String::as_str) != Some(want.to_string().as_str()) {
            let code = if name == CLAIM_EXECUTABLE {
                DenialCode::ExecutableMismatch
            } else {
                DenialCode::InterpreterMismatch
            };
            out.push(mm(code, name, want.to_string(), shown_claim(found)));
        }
    }
    out
}

/// Checks verified claims, and the runtime claims the launcher bound into
/// its evidence, against a service's accept rules.
///
/// Rules are OR'ed: the first rule whose every field holds is returned. A
/// rule that pins `executable` (or `interpreter`) holds only when
/// `runtime_claims` has that claim with exactly the pinned value (lower-case
/// hex); runtime claims a rule does not pin are not looked at. A denial
/// reports the closest rule: among rules for the claims' TEE, the one with
/// the fewest failed checks (the lowest index on a tie); when no rule is for
/// that TEE, the first rule.
pub fn check_accept(
    service: &Service,
    claims: &Claims,
    runtime_claims: &BTreeMap<String, String>,
) -> Result<MatchedRule, Denial> {
    let mut results = Vec::with_capacity(service.accept.len());
    for (index, rule) in service.accept.iter().enumerate() {
        let m = rule_mismatches(rule, claims, runtime_claims);
        if m.is_empty() {
            return Ok(MatchedRule {
                index,
                tee: rule.tee,
            });
        }
        results.push((index, rule.tee, m));
    }
    let tee_level = |m: &[Mismatch]| {
        m.first().is_some_and(|x| {
            matches!(
                x.code,
                DenialCode::TeeNotAccepted | DenialCode::SimNotAllowed
            )
        })
    };
    let closest = results
        .iter()
        .filter(|(_, _, m)| !tee_level(m))
        .min_by_key(|(i, _, m)| (m.len(), *i))
        .or_else(|| results.first())
        .map(|(i, _, _)| *i);
    let mut rule = None;
    let mut mismatches = Vec::new();
    let mut others = Vec::new();
    for (i, tee, m) in results {
        if Some(i) == closest {
            rule = Some((i, tee));
            mismatches = m;
        } else if let Some(first) = m.first() {
            others.push((i, tee, first.code));
        }
    }
    Err(Denial {
        service: service.name.clone(),
        rule,
        mismatches,
        others,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_shown_safely() {
        assert_eq!(shown_claim(None), "none");
        let hex = "ab".repeat(48);
        assert_eq!(shown_claim(Some(&hex)), hex);
        assert_eq!(shown_claim(Some(&"AB".repeat(2))), "\"ABAB\"");
        assert_eq!(shown_claim(Some(&String::new())), "\"\"");
        assert_eq!(shown_claim(Some(&"a\nb".to_owned())), "\"a\\nb\"");
        let long = "é".repeat(200);
        let shown = shown_claim(Some(&long));
        assert!(shown.ends_with("... (400 bytes)"), "{shown}");
        assert_eq!(shown.chars().filter(|c| *c == 'é').count(), MAX_SHOWN_CLAIM);
    }

    #[test]
    fn new_codes_are_stable() {
        assert_eq!(
            DenialCode::ExecutableMismatch.as_str(),
            "executable_mismatch"
        );
        assert_eq!(
            DenialCode::InterpreterMismatch.to_string(),
            "interpreter_mismatch"
        );
    }
}
