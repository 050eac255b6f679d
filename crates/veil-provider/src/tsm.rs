use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veil_attest::{Endorsement, Evidence, ReportData, Tee};

use crate::{Collected, EvidenceProvider, ProviderError};

/// TDX and SEV-SNP evidence through Linux configfs-tsm.
///
/// Protocol (Documentation/ABI/testing/configfs-tsm): make a new directory
/// under `/sys/kernel/config/tsm/report`, write the 64 report-data bytes to
/// its `inblob`, read `outblob` (the quote or report), `auxblob` (SNP: the
/// certificate table) and `provider` (`tdx_guest`, `sev_guest`), and check
/// that `generation` did not move while reading, which would mean another
/// writer raced with us. The directory is removed afterwards.
#[derive(Debug, Clone)]
pub struct TsmProvider {
    dir: PathBuf,
    expected: Option<Tee>,
}

/// How long to wait for the kernel to populate a new report directory.
const ATTRIBUTE_WAIT: Duration = Duration::from_secs(2);

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TsmProvider {
    /// The configfs-tsm report directory under `root`.
    pub fn dir(root: &Path) -> PathBuf {
        root.join("sys/kernel/config/tsm/report")
    }

    /// A provider using `root`'s configfs-tsm; `expected` is the TEE the
    /// caller wants (`None`: whichever the platform is).
    pub fn new(root: &Path, expected: Option<Tee>) -> Result<Self, ProviderError> {
        let dir = Self::dir(root);
        if !dir.is_dir() {
            return Err(ProviderError::NoTee {
                looked_for: format!(
                    "{} (is configfs mounted and the tdx_guest or sev_guest module loaded?)",
                    dir.display()
                ),
            });
        }
        Ok(TsmProvider { dir, expected })
    }

    fn request(&self, report_data: &ReportData) -> Result<(Tee, Collected), ProviderError> {
        let entry = self.dir.join(format!(
            "veil-{}-{}",
            std::process::id(),
            ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&entry).map_err(|e| ProviderError::io("creating", &entry, e))?;
        let result = read_report(&entry, report_data, self.expected);
        if let Err(e) = fs::remove_dir(&entry) {
            tracing::debug!(entry = %entry.display(), error = %e, "could not remove configfs-tsm entry");
        }
        result
    }
}

fn read_report(
    entry: &Path,
    report_data: &ReportData,
    expected: Option<Tee>,
) -> Result<(Tee, Collected), ProviderError> {
    let inblob = entry.join("inblob");
    let deadline = Instant::now() + ATTRIBUTE_WAIT;
    while !inblob.exists() {
        if Instant::now() > deadline {
            return Err(ProviderError::Platform(format!(
                "{} has no inblob attribute: not a configfs-tsm report directory",
                entry.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let provider_path = entry.join("provider");
    let provider = fs::read_to_string(&provider_path)
        .map_err(|e| ProviderError::io("reading", &provider_path, e))?;
    let provider = provider.trim();
    let tee = match provider {
        "tdx_guest" => Tee::Tdx,
        "sev_guest" => Tee::Snp,
        other => {
            return Err(ProviderError::Platform(format!(
                "configfs-tsm provider {other:?} is not supported (expected tdx_guest or sev_guest)"
            )))
        }
    };
    if let Some(want) = expected {
        if want != tee {
            return Err(ProviderError::WrongProvider {
                expected: want,
                found: provider.to_owned(),
            });
        }
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&inblob)
        .map_err(|e| ProviderError::io("opening", &inblob, e))?;
    f.write_all(&report_data.0)
        .map_err(|e| ProviderError::io("writing", &inblob, e))?;
    drop(f);
    let generation = read_generation(entry)?;
    let outblob_path = entry.join("outblob");
    let outblob =
        fs::read(&outblob_path).map_err(|e| ProviderError::io("reading", &outblob_path, e))?;
    if outblob.is_empty() {
        return Err(ProviderError::Platform(format!(
            "{} is empty: the platform produced no evidence",
            outblob_path.display()
        )));
    }
    let auxblob_path = entry.join("auxblob");
    let auxblob = match fs::read(&auxblob_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ProviderError::io("reading", &auxblob_path, e)),
    };
    let after = read_generation(entry)?;
    if after != generation {
        return Err(ProviderError::Platform(format!(
            "configfs-tsm generation moved from {generation} to {after} while reading: another writer raced with this request; retry"
        )));
    }
    let endorsements = if tee == Tee::Snp && !auxblob.is_empty() {
        let certs = parse_snp_cert_table(&auxblob)?;
        if certs.is_empty() {
            Vec::new()
        } else {
            vec![Endorsement::Certificates(certs)]
        }
    } else {
        Vec::new()
    };
    Ok((
        tee,
        Collected {
            evidence: Evidence {
                tee,
                bytes: outblob,
            },
            endorsements,
        },
    ))
}

fn read_generation(entry: &Path) -> Result<u64, ProviderError> {
    let path = entry.join("generation");
    let text = fs::read_to_string(&path).map_err(|e| ProviderError::io("reading", &path, e))?;
    text.trim().parse().map_err(|_| {
        ProviderError::Platform(format!(
            "{} holds {:?}, not a number",
            path.display(),
            text.trim()
        ))
    })
}

impl EvidenceProvider for TsmProvider {
    fn tee(&self) -> Tee {
        // Before the first request an `auto` provider does not know which
        // TEE it is; TDX is the common case and `collect` reports the truth.
        self.expected.unwrap_or(Tee::Tdx)
    }

    fn collect(&self, report_data: &ReportData) -> Result<Collected, ProviderError> {
        self.request(report_data).map(|(_, c)| c)
    }
}

/// GUIDs of the SEV-SNP certificate table (GHCB spec), in their string form.
const SNP_CERT_GUIDS: [(&str, &str); 4] = [
    ("63da758d-e664-4564-adc5-f4b93be8accd", "VCEK"),
    ("a8074bc2-a25a-483e-aae6-39c045a0b8a1", "VLEK"),
    ("4ab7b379-bbac-4fe4-a02f-05aef327c782", "ASK"),
    ("c0b406a4-a803-4952-9743-3fb6014cd0ae", "ARK"),
];

fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    let hexdigits: String = s.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hexdigits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The same GUID in the mixed-endian layout EFI and the GHCB use on the wire.
fn guid_le(be: [u8; 16]) -> [u8; 16] {
    let mut le = be;
    le[0..4].reverse();
    le[4..6].reverse();
    le[6..8].reverse();
    le
}

/// Parses the SEV-SNP certificate table that configfs-tsm returns in
/// `auxblob`: entries of (GUID, offset u32 LE, length u32 LE) ended by an
/// all-zero entry, offsets relative to the table start. Returns the DER
/// certificates of the known GUIDs (VCEK, VLEK, ASK, ARK); unknown entries
/// are skipped.
pub fn parse_snp_cert_table(table: &[u8]) -> Result<Vec<Vec<u8>>, ProviderError> {
    let bad = |why: String| ProviderError::Platform(format!("SNP certificate table: {why}"));
    let known: Vec<([u8; 16], [u8; 16])> = SNP_CERT_GUIDS
        .iter()
        .filter_map(|(g, _)| guid_bytes(g).map(|b| (b, guid_le(b))))
        .collect();
    let mut certs = Vec::new();
    for (i, entry) in table.chunks(24).enumerate() {
        let entry: &[u8; 24] = entry
            .try_into()
            .map_err(|_| bad(format!("entry {i} is truncated")))?;
        if entry.iter().all(|b| *b == 0) {
            return Ok(certs);
        }
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&entry[..16]);
        let offset = u32::from_le_bytes([entry[16], entry[17], entry[18], entry[19]]) as usize;
        let len = u32::from_le_bytes([entry[20], entry[21], entry[22], entry[23]]) as usize;
        if !known.iter().any(|(be, le)| *be == guid || *le == guid) {
            continue;
        }
        let cert = offset
            .checked_add(len)
            .and_then(|end| table.get(offset..end))
            .ok_or_else(|| bad(format!("entry {i} points outside the table")))?;
        certs.push(cert.to_vec());
    }
    Err(bad("no terminating all-zero entry".into()))
}
