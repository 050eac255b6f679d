//! The sealed CAS's side: collecting shares until the sealing key is back.

use std::collections::BTreeSet;
use std::fmt;

use subtle::ConstantTimeEq as _;
use veil_ca::Fingerprint;
use vsss_rs::Gf256;
use zeroize::{Zeroize as _, Zeroizing};

use crate::format::matches_check;
use crate::{PlainShare, RecoveryError, RecoveryRecord, SetId};

/// At most this many combinations of `threshold` shares are combined by one
/// [`Combiner::add`] call.
pub const MAX_COMBINATIONS: usize = 10_000;
/// At most this many different shares are kept for one index (an honest
/// owner's share can still be added after a forged one took its index).
pub const MAX_CANDIDATES_PER_INDEX: usize = 4;
/// Bound on the steps of one subset search, combinations or not.
const MAX_SEARCH_STEPS: usize = 1_000_000;

/// The result of a successful [`Combiner::add`].
#[non_exhaustive]
pub enum AddOutcome {
    /// The share was kept; `need - have` more distinct shares are needed.
    NeedMore {
        /// Distinct share indices held.
        have: usize,
        /// Shares needed (the threshold).
        need: usize,
    },
    /// The sealing key, checked against the set's check value.
    Recovered(Zeroizing<[u8; 32]>),
}

impl fmt::Debug for AddOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddOutcome::NeedMore { have, need } => f
                .debug_struct("NeedMore")
                .field("have", have)
                .field("need", need)
                .finish(),
            AddOutcome::Recovered(_) => f.write_str("Recovered(..)"),
        }
    }
}

/// Collects decrypted shares for a sealed CAS and returns the sealing key
/// once `threshold` shares of the set reconstruct a key matching the check.
///
/// * Shares of another set (set id or check) are refused: [`RecoveryError::Foreign`].
/// * A share already held (same index, same value) is refused and not counted:
///   [`RecoveryError::Duplicate`].
/// * A share claiming another threshold is refused: [`RecoveryError::ThresholdMismatch`].
/// * When `threshold` distinct indices are held, combinations of them are
///   combined and checked; none matching gives [`RecoveryError::Corrupt`], but
///   every share is **kept**, and each later share triggers a new search (of
///   at most [`MAX_COMBINATIONS`] combinations, those with the new share
///   first), so one bad share cannot block recovery once enough good shares
///   arrive. A key that fails the check is never returned.
pub struct Combiner {
    set_id: SetId,
    threshold: u8,
    check: [u8; 32],
    /// The owners in index order, when known: [`Combiner::add_from`] checks
    /// that share *i* comes from owner *i*.
    owners: Option<Vec<Fingerprint>>,
    candidates: Vec<PlainShare>,
    /// An earlier search stopped at its bound: subsets without the newest
    /// share may not all have been tried.
    incomplete: bool,
    recovered: bool,
}

impl fmt::Debug for Combiner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Combiner")
            .field("set_id", &self.set_id)
            .field("threshold", &self.threshold)
            .field("have", &self.have())
            .field("recovered", &self.recovered)
            .finish_non_exhaustive()
    }
}

impl Combiner {
    /// A combiner for the set `set_id` with check value `check` (see
    /// [`crate::RecoverySet::check`]) and `threshold` K (1..=255).
    pub fn new(check: [u8; 32], set_id: SetId, threshold: u8) -> Result<Self, RecoveryError> {
        if threshold == 0 {
            return Err(RecoveryError::InvalidParameters {
                reason: "threshold 0; a recovery set needs at least one share".into(),
            });
        }
        Ok(Combiner {
            set_id,
            threshold,
            check,
            owners: None,
            candidates: Vec::new(),
            incomplete: false,
            recovered: false,
        })
    }

    /// A combiner for the set a CAS recorded.
    pub fn from_record(record: &RecoveryRecord) -> Result<Self, RecoveryError> {
        if record.version != crate::FORMAT_VERSION {
            return Err(RecoveryError::UnsupportedVersion {
                found: record.version,
                supported: crate::FORMAT_VERSION,
            });
        }
        let mut c = Combiner::new(record.check, record.set_id, record.threshold)?;
        if !record.recipients.is_empty() {
            c.owners = Some(record.recipients.clone());
        }
        Ok(c)
    }

    /// Adds a share sent by the authenticated owner `sender` (for example the
    /// client certificate of the mutual-TLS connection it came on): refused
    /// with [`RecoveryError::NotSharesOwner`] unless the set's record names
    /// `sender` as the owner of the share's index. Anyone who has seen a
    /// share file knows the set id and check, so this is what keeps
    /// non-owners from flooding the combiner with forged shares.
    ///
    /// A combiner made with [`Combiner::new`] knows no owners and refuses
    /// every share here; use [`Combiner::from_record`].
    pub fn add_from(
        &mut self,
        sender: &Fingerprint,
        share: PlainShare,
    ) -> Result<AddOutcome, RecoveryError> {
        let expected = self
            .owners
            .as_ref()
            .and_then(|o| o.get(usize::from(share.index).wrapping_sub(1)));
        if expected != Some(sender) {
            return Err(RecoveryError::NotSharesOwner {
                index: share.index,
                sender: *sender,
            });
        }
        self.add(share)
    }

    /// The set this combiner recovers.
    pub fn set_id(&self) -> SetId {
        self.set_id
    }

    /// Distinct share indices held.
    pub fn have(&self) -> usize {
        self.candidates
            .iter()
            .map(|s| s.index)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Shares needed, K.
    pub fn need(&self) -> usize {
        usize::from(self.threshold)
    }

    /// Adds one decrypted share; see the type's documentation.
    pub fn add(&mut self, share: PlainShare) -> Result<AddOutcome, RecoveryError> {
        if self.recovered {
            return Err(RecoveryError::AlreadyRecovered);
        }
        if share.set_id != self.set_id || !bool::from(share.check.ct_eq(&self.check)) {
            return Err(RecoveryError::Foreign {
                expected: self.set_id,
                found: share.set_id,
            });
        }
        if share.threshold != self.threshold {
            return Err(RecoveryError::ThresholdMismatch {
                expected: self.threshold,
                found: share.threshold,
            });
        }
        let same_index = self
            .candidates
            .iter()
            .filter(|c| c.index == share.index)
            .collect::<Vec<_>>();
        if same_index
            .iter()
            .any(|c| bool::from(c.value[..].ct_eq(&share.value[..])))
        {
            return Err(RecoveryError::Duplicate { index: share.index });
        }
        if same_index.len() >= MAX_CANDIDATES_PER_INDEX {
            return Err(RecoveryError::ConflictingShares {
                index: share.index,
                max: MAX_CANDIDATES_PER_INDEX,
            });
        }
        self.candidates.push(share);
        let have = self.have();
        let need = self.need();
        if have < need {
            return Ok(AddOutcome::NeedMore { have, need });
        }
        let newest = self.candidates.len() - 1;
        let mut search = Search {
            shares: &self.candidates,
            k: need,
            check: &self.check,
            tries: 0,
            steps: 0,
            exhausted: false,
        };
        // Subsets with the new share: the only new ones if earlier searches
        // were complete.
        let newest_index = search.shares[newest].index;
        // Newest first: forged shares sent early do not hide later good ones.
        let pool: Vec<usize> = (0..newest)
            .rev()
            .filter(|&i| search.shares[i].index != newest_index)
            .collect();
        let mut prefix = vec![newest];
        let mut found = search.run(&pool, &mut prefix, 0);
        let mut incomplete = search.exhausted;
        if found.is_none() && !search.exhausted && self.incomplete {
            let pool: Vec<usize> = (0..newest).rev().collect();
            let mut prefix = Vec::new();
            found = search.run(&pool, &mut prefix, 0);
            incomplete = search.exhausted;
        }
        let tried = search.tries;
        self.incomplete = incomplete;
        match found {
            Some(secret) => {
                self.recovered = true;
                self.candidates.clear();
                Ok(AddOutcome::Recovered(secret))
            }
            None => Err(RecoveryError::Corrupt {
                have,
                need,
                tried,
                more: if incomplete {
                    "; the search stopped at its bound"
                } else {
                    ""
                },
            }),
        }
    }
}

/// A bounded search over subsets of `k` shares with distinct indices.
struct Search<'a> {
    shares: &'a [PlainShare],
    k: usize,
    check: &'a [u8; 32],
    tries: usize,
    steps: usize,
    exhausted: bool,
}

impl Search<'_> {
    /// Extends `prefix` with shares from `pool[start..]` to `k` shares and
    /// returns the first combination that matches the check.
    fn run(
        &mut self,
        pool: &[usize],
        prefix: &mut Vec<usize>,
        start: usize,
    ) -> Option<Zeroizing<[u8; 32]>> {
        if prefix.len() == self.k {
            if self.tries >= MAX_COMBINATIONS {
                self.exhausted = true;
                return None;
            }
            self.tries += 1;
            return combine_checked(self.shares, prefix, self.check);
        }
        let missing = self.k - prefix.len();
        for i in start..pool.len() {
            if self.exhausted {
                return None;
            }
            if pool.len() - i < missing {
                break;
            }
            self.steps += 1;
            if self.steps > MAX_SEARCH_STEPS {
                self.exhausted = true;
                return None;
            }
            let c = pool[i];
            let index = self.shares[c].index;
            if prefix.iter().any(|&p| self.shares[p].index == index) {
                continue;
            }
            prefix.push(c);
            let found = self.run(pool, prefix, i + 1);
            prefix.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// Combines the shares at `picked` (distinct indices) and returns the secret
/// if it matches `check`.
fn combine_checked(
    shares: &[PlainShare],
    picked: &[usize],
    check: &[u8; 32],
) -> Option<Zeroizing<[u8; 32]>> {
    let secret = combine(shares, picked)?;
    matches_check(&secret, check).then_some(secret)
}

/// Lagrange interpolation at 0 over GF(256) (vsss-rs). One share is the
/// secret itself (threshold 1).
fn combine(shares: &[PlainShare], picked: &[usize]) -> Option<Zeroizing<[u8; 32]>> {
    let mut secret = Zeroizing::new([0u8; 32]);
    if let [only] = picked {
        secret.copy_from_slice(&shares.get(*only)?.value[..]);
        return Some(secret);
    }
    let mut raw: Zeroizing<Vec<Vec<u8>>> = Zeroizing::new(Vec::with_capacity(picked.len()));
    for &p in picked {
        let s = shares.get(p)?;
        let mut v = Vec::with_capacity(33);
        v.push(s.index);
        v.extend_from_slice(&s.value[..]);
        raw.push(v);
    }
    let mut out = Gf256::combine_bytes(&raw[..]).ok()?;
    let ok = out.len() == 32;
    if ok {
        secret.copy_from_slice(&out);
    }
    out.zeroize();
    ok.then_some(secret)
}
