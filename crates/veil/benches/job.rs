//! What a remote job costs: the report script of
//! `docs/tutorials/remote-execution.md` over a large CSV, run directly with
//! python3 (the peer) and as a Veil job (`veil run` of the bundle: attest,
//! mount the encrypted input/code read-only and a new output volume, run,
//! commit), in the same run; plus the owner's `veil job create` (encrypt
//! input and code, apply the session) and `veil job fetch` (check the
//! output's tag, decrypt).
//!
//! Needs root (the launcher mounts the volumes with FUSE). Run with
//! `env -u RUST_BACKTRACE cargo bench -p veil --bench job`
//! (`VEIL_BENCH_ROWS` overrides the 1,000,000 CSV rows). The figures replace
//! the `job` section of `docs/benchmarks.md`.

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::write_section;

const VEIL: &str = env!("CARGO_BIN_EXE_veil");

const SCRIPT: &str = r#"import csv, os, sqlite3
src = os.path.join(os.environ["JOB_INPUT"], "sales.csv")
out = os.environ["JOB_OUTPUT"]
totals = {}
with open(src, newline="") as f:
    for row in csv.DictReader(f):
        amount = int(row["quantity"]) * float(row["unit_price"])
        totals[row["region"]] = totals.get(row["region"], 0.0) + amount
db = sqlite3.connect(os.path.join(out, "report.db"))
db.execute("CREATE TABLE IF NOT EXISTS totals (region TEXT PRIMARY KEY, total REAL)")
db.executemany("INSERT OR REPLACE INTO totals VALUES (?, ?)", sorted(totals.items()))
db.commit()
db.close()
with open(os.path.join(out, "report.txt"), "w") as f:
    for region, total in sorted(totals.items(), key=lambda t: -t[1]):
        f.write("%-20s %10.2f\n" % (region, total))
print("report written: %d regions" % len(totals))
"#;

struct World {
    dir: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("cas.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

impl World {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn sh(&self, script: &str) -> Output {
        let bin = Path::new(VEIL).parent().unwrap();
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(self.dir.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env_remove("RUST_BACKTRACE")
            .env_remove("VEIL_HOME")
            .env_remove("VEIL_CAS")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn timed(&self, script: &str) -> Duration {
        let t = Instant::now();
        let o = self.sh(script);
        let d = t.elapsed();
        assert!(
            o.status.success(),
            "{script}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        d
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false);
    if !root {
        eprintln!("the job bench needs root (the launcher mounts FUSE volumes)");
        std::process::exit(2);
    }
    let rows: u64 = std::env::var("VEIL_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(w.path("owner/data")).unwrap();
    std::fs::create_dir_all(w.path("direct/out")).unwrap();
    std::fs::write(w.path("owner/report.py"), SCRIPT).unwrap();
    w.timed(&format!(
        "python3 - <<'PY'
import random
random.seed(7)
regions = ['Region-%02d' % i for i in range(40)]
products = ['product-%03d' % i for i in range(300)]
with open('owner/data/sales.csv', 'w') as f:
    f.write('region,product,quantity,unit_price\\n')
    for _ in range({rows}):
        f.write('%s,%s,%d,%.2f\\n' % (random.choice(regions), random.choice(products), random.randint(1, 50), random.uniform(1, 500)))
PY"
    ));
    let csv_bytes = std::fs::metadata(w.path("owner/data/sales.csv"))
        .unwrap()
        .len();
    w.timed(
        "mkdir -p owner host
VEIL_HOME=$PWD/host/home veil evidence collect --tee sim --report-data 00 -o /dev/null
veil cas serve --dev --state cas --listen 127.0.0.1:0 --ready-file cas.ready \
    --trust-sim-key host/home/sim/platform.pub > cas.log 2>&1 &
echo $! > cas.pid
while [ ! -s cas.ready ]; do sleep 0.1; done
CAS=$(cut -d' ' -f1 cas.ready)
echo \"$CAS\" > cas.url
VEIL_HOME=$PWD/owner/home veil cas verify --dev \"$CAS\" > /dev/null
VEIL_HOME=$PWD/host/home veil cas verify --dev \"$CAS\" > /dev/null
VEIL_HOME=$PWD/owner/home veil identity create > /dev/null",
    );

    let runs = 3;
    let mut create = Vec::new();
    let mut direct = Vec::new();
    let mut job = Vec::new();
    let mut fetch = Vec::new();
    for i in 0..runs {
        create.push(w.timed(&format!(
            "export VEIL_HOME=$PWD/owner/home
veil job create --session bench/job-{i} --script owner/report.py --input owner/data --bundle job-{i} > host-{i}.txt 2>/dev/null"
        )));
    }
    for i in 0..runs {
        // Interleaved: the direct run and the job, one after the other.
        direct.push(w.timed(
            "rm -rf direct/out/* && JOB_INPUT=$PWD/owner/data JOB_OUTPUT=$PWD/direct/out python3 owner/report.py > /dev/null",
        ));
        job.push(w.timed(&format!(
            "export VEIL_HOME=$PWD/host/home; cd job-{i}; $(cat ../host-{i}.txt) > /dev/null"
        )));
    }
    for i in 0..runs {
        fetch.push(w.timed(&format!(
            "export VEIL_HOME=$PWD/owner/home; veil job fetch job-{i} -o result-{i} 2>/dev/null"
        )));
    }
    let same = w.sh("cmp direct/out/report.txt result-0/report.txt");
    assert!(
        same.status.success(),
        "the job's report differs from the direct run's"
    );

    let (d, j) = (median(direct), median(job));
    let (c, f) = (median(create), median(fetch));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let body = format!(
        "Command: `env -u RUST_BACKTRACE cargo bench -p veil --bench job` (as root; {runs} runs per case, medians; the job's `veil run` and the direct run interleaved; local dev CAS on 127.0.0.1, simulated TEE; {} cores, {cpu}; written by the bench on {}).\n\n\
         Workload: the tutorial's report script (python3 `csv` + `sqlite3`) over a CSV of {rows} rows ({:.1} MiB).\n\n\
         | step | median |\n|---|---|\n\
         | python3 report.py directly (the peer) | {:.0} ms |\n\
         | host: `veil run` of the job (attest, mount 3 encrypted volumes, run, commit the output tag) | {:.0} ms |\n\
         | job overhead | **{:+.0} ms ({:.2}x the direct run)** |\n\
         | owner: `veil job create` (apply the session, encrypt input and code, set their tags) | {:.0} ms |\n\
         | owner: `veil job fetch` (check the output tag, decrypt) | {:.0} ms |\n\n\
         The job's report is byte-identical to the direct run's (checked by the bench).\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        String::from_utf8_lossy(&Command::new("date").arg("+%Y-%m-%d").output().unwrap().stdout).trim(),
        csv_bytes as f64 / (1 << 20) as f64,
        ms(d),
        ms(j),
        ms(j) - ms(d),
        j.as_secs_f64() / d.as_secs_f64(),
        ms(c),
        ms(f),
    );
    print!("{body}");
    write_section("job", &body);
}
