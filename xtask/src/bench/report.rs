//! Benchmark results: the raw timings and supervisor statistics of each workload, their
//! medians and ratios, the target bars, the printed table and `results.json`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::{Leg, Workload};

/// Largest acceptable sandbox overhead on the ripgrep build, in percent.
const BUILD_OVERHEAD_BAR_PCT: f64 = 3.0;
/// Largest acceptable sandbox overhead on the open loop, in percent.
const OPEN_OVERHEAD_BAR_PCT: f64 = 25.0;
/// `agent-sandbox run -- true` must take less than this, end to end.
const TRUE_MEDIAN_BAR_MS: f64 = 150.0;
/// The supervisor's peak RSS during the build must stay below this (40 MiB).
const RSS_BAR_KB: u64 = 40 * 1024;
/// Largest acceptable cost of 1 000 protected files on the open loop, in percent over the
/// plain sandbox leg.
const PROTECTED_OVER_SANDBOX_BAR_PCT: f64 = 5.0;
/// The secret scanner must read at least this many MB (10^6 bytes) per second.
const SCAN_BAR_MB_PER_S: f64 = 200.0;
/// The agent's tree is gone within this long after a SIGKILL of its supervisor (median).
const SIGKILL_BAR_MS: f64 = 100.0;
/// Issue 4: time the gate adds to one non-destructive exec, over observation alone.
const GATE_PER_EXEC_BAR_US: f64 = 50.0;
/// Issue 4: a held action is shown in the approval UI within this long (median).
const HOLD_TO_UI_BAR_MS: f64 = 50.0;
/// Issue 4: a decision resumes or fails the held call within this long (median).
const RESUME_BAR_MS: f64 = 10.0;
/// Issue 5: appending one record to the audit log costs at most this (median).
const AUDIT_APPEND_BAR_US: f64 = 5.0;
/// Issue 5: `audit verify` of the 1 M-record log takes less than this.
const AUDIT_VERIFY_BAR_MS: f64 = 2000.0;

/// The machine the numbers were taken on.
#[derive(Debug, Serialize)]
pub struct Machine {
    nproc: usize,
    kernel: String,
    cpu_model: Option<String>,
    mem_total_mib: Option<u64>,
}

impl Machine {
    /// Reads what is cheap to know from /proc.
    pub fn detect() -> Machine {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = proc_field(&cpuinfo, "model name").map(str::to_owned);
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_mib = proc_field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb / 1024);
        Machine {
            nproc,
            kernel,
            cpu_model,
            mem_total_mib,
        }
    }

    /// The header line printed before the first workload.
    pub fn summary(&self) -> String {
        let mut line = format!("machine: nproc {}, kernel {}", self.nproc, self.kernel);
        if let Some(cpu) = &self.cpu_model {
            line.push_str(&format!(", {cpu}"));
        }
        if let Some(mib) = self.mem_total_mib {
            line.push_str(&format!(", {mib} MiB RAM"));
        }
        line
    }
}

/// The value of the first `key : value` line of a /proc file.
fn proc_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The statistics the supervisor wrote (`--stats-json`) after one sandboxed rep.
#[derive(Debug, Serialize)]
pub struct RepStats {
    rep: u32,
    /// The leg (sandbox or protected) of the session.
    leg: Leg,
    file: PathBuf,
    /// The object as written, kept whole so results.json loses nothing the supervisor reported.
    stats: Option<Value>,
    /// Why there are no statistics for this rep.
    pub error: Option<String>,
}

impl RepStats {
    /// Reads and parses the statistics file of `rep` of `leg`.
    pub fn read(rep: u32, leg: Leg, file: &Path) -> RepStats {
        let parsed = fs::read_to_string(file)
            .map_err(|err| format!("cannot read {}: {err}", file.display()))
            .and_then(|text| {
                serde_json::from_str::<Value>(&text)
                    .map_err(|err| format!("cannot parse {}: {err}", file.display()))
            })
            .and_then(|value| {
                if value.is_object() {
                    Ok(value)
                } else {
                    Err(format!("{} is not a JSON object", file.display()))
                }
            });
        let (stats, error) = match parsed {
            Ok(value) => (Some(value), None),
            Err(err) => (None, Some(err)),
        };
        RepStats {
            rep,
            leg,
            file: file.to_path_buf(),
            stats,
            error,
        }
    }

    /// Events the supervisor lost: `lost_total`, or the sum of the `lost` counters.
    fn lost_total(&self) -> Option<u64> {
        let stats = self.stats.as_ref()?;
        stats["lost_total"].as_u64().or_else(|| {
            stats["lost"]
                .as_object()
                .map(|lost| lost.values().filter_map(Value::as_u64).sum())
        })
    }

    fn peak_rss_kb(&self) -> Option<u64> {
        self.stats.as_ref()?["peak_rss_kb"].as_u64()
    }

    /// `exec=12 open=3400 …`, for the printed table.
    fn events_summary(&self) -> Option<String> {
        let events = self.stats.as_ref()?["events"].as_object()?;
        Some(
            events
                .iter()
                .map(|(kind, n)| format!("{kind}={}", n.as_u64().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}

/// What measuring one workload produced, before any summarizing.
#[derive(Debug)]
pub struct WorkloadRun {
    workload: Workload,
    description: String,
    reps_planned: u32,
    /// The legs selected for this workload.
    legs: Vec<Leg>,
    /// Rounds in which every leg ran.
    pub reps_completed: u32,
    /// Wall-clock milliseconds per leg, in rep order.
    pub raw_ms: BTreeMap<Leg, Vec<f64>>,
    /// The time the workload measured itself, per leg, in rep order (forkexec: its loop,
    /// without the session's start and end).
    pub inner_ms: BTreeMap<Leg, Vec<f64>>,
    /// One entry per rep of a sandboxed leg (sandbox, protected).
    pub supervisor_stats: Vec<RepStats>,
    /// Bytes one run reads (the scan tree), for a throughput.
    pub input_bytes: Option<u64>,
    /// A workload's second measure: approval, decision → resume in ms, one per hold (its
    /// `raw_ms` are the hold → UI times); audit, the append median in µs, one per rep (its
    /// `raw_ms` are the verify times).
    pub second_ms: Vec<f64>,
    error: Option<String>,
}

impl WorkloadRun {
    /// An empty run of `workload`: `reps_planned` timed reps of each of `legs`.
    pub fn new(
        workload: Workload,
        description: String,
        reps_planned: u32,
        legs: Vec<Leg>,
    ) -> WorkloadRun {
        WorkloadRun {
            workload,
            description,
            reps_planned,
            legs,
            reps_completed: 0,
            raw_ms: BTreeMap::new(),
            inner_ms: BTreeMap::new(),
            supervisor_stats: Vec::new(),
            input_bytes: None,
            second_ms: Vec::new(),
            error: None,
        }
    }

    /// Marks the run as failed, keeping what it measured.
    pub fn failed(mut self, error: String) -> WorkloadRun {
        self.error = Some(error);
        self
    }
}

/// Timings of one leg of one workload.
#[derive(Debug, Serialize)]
struct LegSummary {
    /// Every timed rep, in order (interleaved with the other legs).
    raw_ms: Vec<f64>,
    median_ms: Option<f64>,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
}

impl LegSummary {
    fn new(raw_ms: Vec<f64>) -> LegSummary {
        let min_ms = raw_ms.iter().copied().reduce(f64::min);
        let max_ms = raw_ms.iter().copied().reduce(f64::max);
        LegSummary {
            median_ms: median(&raw_ms),
            min_ms,
            max_ms,
            raw_ms,
        }
    }
}

/// A percentage for a bar's measured text, `-` when missing.
fn pct_text(pct: Option<f64>) -> String {
    pct.map_or_else(|| "-".to_owned(), |p| format!("{p:+.1}%"))
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// One target the results are held against.
#[derive(Debug, Serialize)]
struct Bar {
    what: String,
    measured: Option<String>,
    /// `None` when it was not measured (a leg it needs was not selected).
    pass: Option<bool>,
}

impl Bar {
    fn verdict(&self) -> &'static str {
        match (self.pass, &self.measured) {
            (Some(true), _) => "PASS",
            (Some(false), _) => "FAIL",
            (None, Some(_)) => "shown, no bar",
            (None, None) => "not measured",
        }
    }
}

/// The summary of one workload, as printed and as written to results.json.
#[derive(Debug, Serialize)]
struct WorkloadReport {
    workload: Workload,
    description: String,
    reps_planned: u32,
    reps_completed: u32,
    /// The legs selected for this workload.
    legs_selected: Vec<Leg>,
    legs: BTreeMap<Leg, LegSummary>,
    /// The workload's own timing per leg (see [`WorkloadRun::inner_ms`]).
    inner: BTreeMap<Leg, LegSummary>,
    sandbox_over_bare: Option<f64>,
    strace_over_bare: Option<f64>,
    protected_over_bare: Option<f64>,
    sandbox_overhead_pct: Option<f64>,
    strace_overhead_pct: Option<f64>,
    /// Median of the protected leg over the median of the sandbox leg: what the protected
    /// files cost on top of the session.
    protected_over_sandbox: Option<f64>,
    protected_over_sandbox_pct: Option<f64>,
    /// The same two percentages on the workload's own timing (the open loop without the
    /// session's start and end): what the open bars are judged on.
    inner_sandbox_overhead_pct: Option<f64>,
    inner_protected_over_sandbox_pct: Option<f64>,
    /// Observation alone (`run --no-gate`) over bare, on the loop's own time.
    inner_observe_overhead_pct: Option<f64>,
    /// Bytes one run reads (the scan tree).
    input_bytes: Option<u64>,
    /// `input_bytes` over the bare median, in MB (10^6 bytes) per second.
    mb_per_s: Option<f64>,
    /// The workload's second measure (approval: decision → resume ms; audit: append µs per
    /// record), every sample and their median.
    second: Option<LegSummary>,
    /// Largest `lost_total` over the sandboxed reps (sandbox and protected legs).
    lost_total_max: Option<u64>,
    /// Largest supervisor peak RSS over the sandboxed reps.
    peak_rss_kb_max: Option<u64>,
    /// Sandboxed reps after which no readable statistics file was found.
    stats_missing: usize,
    supervisor_stats: Vec<RepStats>,
    bars: Vec<Bar>,
    error: Option<String>,
}

impl WorkloadReport {
    fn new(run: WorkloadRun) -> WorkloadReport {
        let legs: BTreeMap<Leg, LegSummary> = run
            .raw_ms
            .into_iter()
            .map(|(leg, raw)| (leg, LegSummary::new(raw)))
            .collect();
        let inner: BTreeMap<Leg, LegSummary> = run
            .inner_ms
            .into_iter()
            .map(|(leg, raw)| (leg, LegSummary::new(raw)))
            .collect();
        let inner_pct = |leg: Leg, base: Leg| match (
            inner.get(&leg).and_then(|s| s.median_ms),
            inner.get(&base).and_then(|s| s.median_ms),
        ) {
            (Some(m), Some(b)) if b > 0.0 => Some((m / b - 1.0) * 100.0),
            _ => None,
        };
        let inner_sandbox_overhead_pct = inner_pct(Leg::Sandbox, Leg::Bare);
        let inner_observe_overhead_pct = inner_pct(Leg::Observe, Leg::Bare);
        let inner_protected_over_sandbox_pct = inner_pct(Leg::Protected, Leg::Sandbox);
        let median_of = |leg: Leg| legs.get(&leg).and_then(|s| s.median_ms);
        let ratio = |leg: Leg, base: Leg| match (median_of(leg), median_of(base)) {
            (Some(m), Some(b)) if b > 0.0 => Some(m / b),
            _ => None,
        };
        let sandbox_over_bare = ratio(Leg::Sandbox, Leg::Bare);
        let strace_over_bare = ratio(Leg::Strace, Leg::Bare);
        let protected_over_sandbox = ratio(Leg::Protected, Leg::Sandbox);
        let mb_per_s = match (run.input_bytes, median_of(Leg::Bare)) {
            (Some(bytes), Some(ms)) if ms > 0.0 => Some(bytes as f64 / 1e6 / (ms / 1000.0)),
            _ => None,
        };
        let lost_total_max = run
            .supervisor_stats
            .iter()
            .filter_map(RepStats::lost_total)
            .max();
        let peak_rss_kb_max = run
            .supervisor_stats
            .iter()
            .filter_map(RepStats::peak_rss_kb)
            .max();
        let stats_missing = run
            .supervisor_stats
            .iter()
            .filter(|s| s.stats.is_none())
            .count();

        let mut report = WorkloadReport {
            workload: run.workload,
            description: run.description,
            reps_planned: run.reps_planned,
            reps_completed: run.reps_completed,
            legs_selected: run.legs,
            sandbox_over_bare,
            strace_over_bare,
            protected_over_bare: ratio(Leg::Protected, Leg::Bare),
            sandbox_overhead_pct: sandbox_over_bare.map(|r| (r - 1.0) * 100.0),
            strace_overhead_pct: strace_over_bare.map(|r| (r - 1.0) * 100.0),
            protected_over_sandbox,
            protected_over_sandbox_pct: protected_over_sandbox.map(|r| (r - 1.0) * 100.0),
            input_bytes: run.input_bytes,
            mb_per_s,
            second: (!run.second_ms.is_empty()).then(|| LegSummary::new(run.second_ms)),
            lost_total_max,
            peak_rss_kb_max,
            stats_missing,
            supervisor_stats: run.supervisor_stats,
            bars: Vec::new(),
            error: run.error,
            inner,
            inner_sandbox_overhead_pct,
            inner_observe_overhead_pct,
            inner_protected_over_sandbox_pct,
            legs,
        };
        report.bars = report.bars();
        report
    }

    /// The targets of this workload. A bar whose measurement is missing although the legs it
    /// needs were selected fails: a crash or a missing statistics file is no pass.
    fn bars(&self) -> Vec<Bar> {
        let selected = |leg: Leg| self.legs_selected.contains(&leg);
        let judge_if = |needed: bool, what: String, measured: Option<(String, bool)>| Bar {
            what,
            pass: needed.then(|| measured.as_ref().is_some_and(|(_, ok)| *ok)),
            measured: measured.map(|(m, _)| m),
        };
        let judge = |what: String, measured: Option<(String, bool)>| {
            judge_if(selected(Leg::Sandbox), what, measured)
        };
        let overhead = |limit: f64| {
            judge(
                format!("sandbox overhead <= {limit}%"),
                self.sandbox_overhead_pct
                    .map(|pct| (format!("{pct:+.1}%"), pct <= limit)),
            )
        };
        // Every sandboxed rep must have reported, or a lossy rep could hide behind a silent one.
        let complete_stats = self.stats_missing == 0 && self.reps_completed > 0;
        match self.workload {
            // Judged on the loop's own time: the session's start and end (~100 ms, with the
            // protected leg's walk of its 1 000 files) are not a cost of opening files. The
            // session's wall-clock percentage is shown next to it.
            // The bar is the issue's "observation overhead": the probes alone, the `observe`
            // leg. The whole sandbox adds the gate's seccomp filter, whose cost has its own
            // bar (per exec, `forkexec`); its open-loop overhead is shown beside, not judged.
            Workload::Open => vec![
                judge_if(
                    selected(Leg::Observe),
                    format!("observation overhead <= {OPEN_OVERHEAD_BAR_PCT}% (loop, --no-gate)"),
                    self.inner_observe_overhead_pct
                        .map(|pct| (format!("{pct:+.1}%"), pct <= OPEN_OVERHEAD_BAR_PCT)),
                ),
                Bar {
                    what: "whole sandbox overhead (loop, the gate's filter included)".into(),
                    measured: self.inner_sandbox_overhead_pct.map(|pct| {
                        format!(
                            "{pct:+.1}% (session {})",
                            pct_text(self.sandbox_overhead_pct)
                        )
                    }),
                    pass: None,
                },
                judge_if(
                    selected(Leg::Sandbox) && selected(Leg::Protected),
                    format!("protected over sandbox <= {PROTECTED_OVER_SANDBOX_BAR_PCT}% (loop)"),
                    self.inner_protected_over_sandbox_pct.map(|pct| {
                        (
                            format!(
                                "{pct:+.1}% (session {})",
                                pct_text(self.protected_over_sandbox_pct)
                            ),
                            pct <= PROTECTED_OVER_SANDBOX_BAR_PCT,
                        )
                    }),
                ),
            ],
            Workload::Forkexec => vec![judge_if(
                selected(Leg::Sandbox) && selected(Leg::Observe),
                format!("gate adds <= {GATE_PER_EXEC_BAR_US} µs per exec over observe"),
                // The loop's own time: the session's start and end are not per exec, and
                // their noise would swamp 2 000 × 50 µs.
                match (
                    self.inner.get(&Leg::Sandbox).and_then(|s| s.median_ms),
                    self.inner.get(&Leg::Observe).and_then(|s| s.median_ms),
                ) {
                    (Some(gated), Some(observed)) => {
                        let us = (gated - observed) * 1000.0
                            / f64::from(super::workloads::FORKEXEC_ITERATIONS);
                        Some((format!("{us:+.1} µs"), us <= GATE_PER_EXEC_BAR_US))
                    }
                    _ => None,
                },
            )],
            Workload::Build => vec![
                overhead(BUILD_OVERHEAD_BAR_PCT),
                judge(
                    "events lost = 0".to_owned(),
                    self.lost_total_max
                        .filter(|_| complete_stats)
                        .map(|lost| (lost.to_string(), lost == 0)),
                ),
                judge(
                    format!("supervisor peak RSS < {} MiB", RSS_BAR_KB / 1024),
                    self.peak_rss_kb_max
                        .filter(|_| complete_stats)
                        .map(|kb| (mib(kb), kb < RSS_BAR_KB)),
                ),
            ],
            Workload::True => vec![judge(
                format!("sandbox median < {TRUE_MEDIAN_BAR_MS} ms"),
                self.legs
                    .get(&Leg::Sandbox)
                    .and_then(|s| s.median_ms)
                    .map(|ms| (format!("{ms:.1} ms"), ms < TRUE_MEDIAN_BAR_MS)),
            )],
            Workload::Sigkill => vec![judge(
                format!("tree gone < {SIGKILL_BAR_MS} ms"),
                self.legs
                    .get(&Leg::Sandbox)
                    .and_then(|s| s.median_ms)
                    .map(|ms| (format!("{ms:.1} ms"), ms < SIGKILL_BAR_MS)),
            )],
            Workload::Approval => vec![
                judge(
                    format!("hold -> UI <= {HOLD_TO_UI_BAR_MS} ms (median)"),
                    self.legs
                        .get(&Leg::Sandbox)
                        .and_then(|s| s.median_ms)
                        .map(|ms| (format!("{ms:.2} ms"), ms <= HOLD_TO_UI_BAR_MS)),
                ),
                judge(
                    format!("decision -> resume <= {RESUME_BAR_MS} ms (median)"),
                    self.second
                        .as_ref()
                        .and_then(|s| s.median_ms)
                        .map(|ms| (format!("{ms:.2} ms"), ms <= RESUME_BAR_MS)),
                ),
            ],
            Workload::Audit => vec![
                judge_if(
                    selected(Leg::Bare),
                    format!("append <= {AUDIT_APPEND_BAR_US} µs per record (median)"),
                    self.second
                        .as_ref()
                        .and_then(|s| s.median_ms)
                        .map(|us| (format!("{us:.2} µs"), us <= AUDIT_APPEND_BAR_US)),
                ),
                judge_if(
                    selected(Leg::Bare),
                    format!("audit verify of 1 M records < {AUDIT_VERIFY_BAR_MS} ms"),
                    self.legs
                        .get(&Leg::Bare)
                        .and_then(|s| s.median_ms)
                        .map(|ms| (format!("{ms:.0} ms"), ms < AUDIT_VERIFY_BAR_MS)),
                ),
            ],
            Workload::Scan => vec![judge_if(
                selected(Leg::Bare),
                format!("throughput >= {SCAN_BAR_MB_PER_S} MB/s"),
                self.mb_per_s
                    .map(|rate| (format!("{rate:.0} MB/s"), rate >= SCAN_BAR_MB_PER_S)),
            )],
        }
    }
}

fn mib(kb: u64) -> String {
    let mib = kb as f64 / 1024.0;
    format!("{mib:.1} MiB")
}

/// Everything one `cargo xtask bench` measured; serialized as target/bench/results.json.
#[derive(Debug, Serialize)]
pub struct Report {
    generated_unix_secs: u64,
    machine: Machine,
    quick: bool,
    legs: Vec<Leg>,
    supervisor: PathBuf,
    workloads: Vec<WorkloadReport>,
}

impl Report {
    /// Summarizes the runs.
    pub fn new(
        machine: Machine,
        quick: bool,
        legs: &[Leg],
        supervisor: &Path,
        runs: Vec<WorkloadRun>,
    ) -> Report {
        Report {
            generated_unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine,
            quick,
            legs: legs.to_vec(),
            supervisor: supervisor.to_path_buf(),
            workloads: runs.into_iter().map(WorkloadReport::new).collect(),
        }
    }

    /// Whether every workload ran all its reps.
    pub fn all_ran(&self) -> bool {
        self.workloads.iter().all(|w| w.error.is_none())
    }

    /// Prints the timing table, the supervisor statistics and the bars.
    pub fn print(&self) {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        let ratio = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}x"));
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:+.1}%"));

        println!();
        println!("[bench] medians of the timed reps, wall-clock ms (legs interleaved per rep)");
        println!(
            "{:<9} {:>5} {:>10} {:>10} {:>10} {:>10} {:>13} {:>12} {:>13} {:>9}",
            "workload",
            "reps",
            "bare",
            "sandbox",
            "protected",
            "strace",
            "sandbox/bare",
            "strace/bare",
            "prot/sandbox",
            "overhead"
        );
        for w in &self.workloads {
            let median_of = |leg: Leg| w.legs.get(&leg).and_then(|s| s.median_ms);
            println!(
                "{:<9} {:>5} {:>10} {:>10} {:>10} {:>10} {:>13} {:>12} {:>13} {:>9}",
                w.workload.name(),
                format!("{}/{}", w.reps_completed, w.reps_planned),
                ms(median_of(Leg::Bare)),
                ms(median_of(Leg::Sandbox)),
                ms(median_of(Leg::Protected)),
                ms(median_of(Leg::Strace)),
                ratio(w.sandbox_over_bare),
                ratio(w.strace_over_bare),
                ratio(w.protected_over_sandbox),
                pct(w.sandbox_overhead_pct),
            );
        }
        for w in self.workloads.iter().filter(|w| !w.inner.is_empty()) {
            let legs: Vec<String> = w
                .inner
                .iter()
                .map(|(leg, s)| format!("{} {}", leg.name(), ms(s.median_ms)))
                .collect();
            println!(
                "[bench] {}: the loop's own time (medians, ms): {}",
                w.workload.name(),
                legs.join(", ")
            );
        }
        for w in &self.workloads {
            if let (Some(bytes), Some(rate)) = (w.input_bytes, w.mb_per_s) {
                println!(
                    "[bench] {}: {:.1} MB per run, {rate:.0} MB/s (bare median)",
                    w.workload.name(),
                    bytes as f64 / 1e6
                );
            }
        }

        if self.legs.iter().any(|leg| leg.is_sandboxed()) {
            println!();
            println!("[bench] supervisor statistics (worst sandboxed rep; events of the last rep)");
            println!(
                "{:<9} {:>12} {:>14}  events",
                "workload", "lost events", "peak RSS"
            );
            let sandboxed = |w: &&WorkloadReport| w.legs_selected.iter().any(|l| l.is_sandboxed());
            for w in self.workloads.iter().filter(sandboxed) {
                let events = w
                    .supervisor_stats
                    .iter()
                    .rev()
                    .find_map(RepStats::events_summary)
                    .unwrap_or_else(|| "-".to_owned());
                let mut missing = String::new();
                if w.stats_missing > 0 {
                    missing = format!(
                        "  (no statistics from {} of {} reps)",
                        w.stats_missing,
                        w.supervisor_stats.len()
                    );
                }
                println!(
                    "{:<9} {:>12} {:>14}  {events}{missing}",
                    w.workload.name(),
                    w.lost_total_max.map_or("-".to_owned(), |n| n.to_string()),
                    w.peak_rss_kb_max.map_or("-".to_owned(), mib),
                );
            }
        }

        println!();
        println!("[bench] bars (informational: they do not change the exit status)");
        for w in &self.workloads {
            for bar in &w.bars {
                println!(
                    "  {:<9} {:<32} {:>12}  {}",
                    w.workload.name(),
                    bar.what,
                    bar.measured.as_deref().unwrap_or("-"),
                    bar.verdict()
                );
            }
        }
        if self.workloads.iter().any(|w| w.reps_planned < 3) {
            println!(
                "  (a median of fewer than 3 reps is noise-prone: treat those verdicts as a smoke test)"
            );
        }

        for w in &self.workloads {
            if let Some(err) = &w.error {
                println!();
                println!("[bench] {} FAILED: {err}", w.workload.name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn proc_fields() {
        let meminfo = "MemTotal:        4028440 kB\nMemFree:  1 kB\n";
        assert_eq!(proc_field(meminfo, "MemTotal"), Some("4028440 kB"));
        let cpuinfo = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n";
        assert_eq!(proc_field(cpuinfo, "model name"), Some("Some CPU @ 2.0GHz"));
        assert_eq!(proc_field(cpuinfo, "flags"), None);
    }

    fn stats(rep: u32, value: Option<Value>) -> RepStats {
        RepStats {
            rep,
            leg: Leg::Sandbox,
            file: PathBuf::from("/x.json"),
            error: value.is_none().then(|| "missing".to_owned()),
            stats: value,
        }
    }

    #[test]
    fn stats_fields() {
        let full = stats(
            1,
            Some(
                json!({"events": {"exec": 2, "open": 5}, "lost": {"exec": 0, "open": 3},
                        "lost_total": 3, "peak_rss_kb": 2048}),
            ),
        );
        assert_eq!(full.lost_total(), Some(3));
        assert_eq!(full.peak_rss_kb(), Some(2048));
        assert_eq!(full.events_summary().as_deref(), Some("exec=2 open=5"));
        let no_total = stats(2, Some(json!({"lost": {"exec": 1, "open": 3}})));
        assert_eq!(no_total.lost_total(), Some(4));
        assert_eq!(no_total.peak_rss_kb(), None);
        assert_eq!(stats(3, None).lost_total(), None);
    }

    #[test]
    fn stats_file_is_read() -> anyhow::Result<()> {
        let path = std::env::temp_dir().join(format!("xtask-stats-{}.json", std::process::id()));
        fs::write(&path, r#"{"lost_total": 0, "peak_rss_kb": 100}"#)?;
        let ok = RepStats::read(1, Leg::Protected, &path);
        assert!(ok.error.is_none());
        assert_eq!(ok.lost_total(), Some(0));
        assert_eq!(ok.leg, Leg::Protected);
        fs::write(&path, "[1]")?;
        assert!(RepStats::read(1, Leg::Sandbox, &path).error.is_some());
        fs::remove_file(&path)?;
        assert!(RepStats::read(1, Leg::Sandbox, &path).error.is_some());
        Ok(())
    }

    fn build_run(bare: &[f64], sandbox: &[f64], stats: Vec<RepStats>) -> WorkloadRun {
        let legs = if sandbox.is_empty() {
            vec![Leg::Bare]
        } else {
            vec![Leg::Bare, Leg::Sandbox]
        };
        let mut run = WorkloadRun::new(Workload::Build, String::new(), 3, legs);
        run.reps_completed = 3;
        run.raw_ms.insert(Leg::Bare, bare.to_vec());
        run.raw_ms.insert(Leg::Sandbox, sandbox.to_vec());
        run.supervisor_stats = stats;
        run
    }

    #[test]
    fn build_bars() {
        let good = |rep| stats(rep, Some(json!({"lost_total": 0, "peak_rss_kb": 30000})));
        let run = build_run(
            &[100.0, 100.0, 100.0],
            &[102.0, 101.0, 150.0],
            vec![good(1), good(2), good(3)],
        );
        let report = WorkloadReport::new(run);
        assert_eq!(report.sandbox_over_bare, Some(1.02));
        let verdicts: Vec<_> = report.bars.iter().map(|b| b.pass).collect();
        assert_eq!(verdicts, [Some(true), Some(true), Some(true)]);

        // a rep without statistics fails the loss and RSS bars
        let run = build_run(
            &[100.0, 100.0, 100.0],
            &[110.0, 110.0, 110.0],
            vec![good(1), stats(2, None), good(3)],
        );
        let report = WorkloadReport::new(run);
        let verdicts: Vec<_> = report.bars.iter().map(|b| b.pass).collect();
        assert_eq!(verdicts, [Some(false), Some(false), Some(false)]);

        // without the sandbox leg nothing is judged
        let run = build_run(&[100.0], &[], Vec::new());
        let report = WorkloadReport::new(run);
        assert!(report.bars.iter().all(|b| b.pass.is_none()));
    }

    #[test]
    fn forkexec_gate_bar_uses_the_loops_own_time() {
        let legs = vec![Leg::Bare, Leg::Observe, Leg::Sandbox];
        let mut run = WorkloadRun::new(Workload::Forkexec, String::new(), 1, legs.clone());
        run.reps_completed = 1;
        // Session wall times 400 ms apart: start-up noise that must not count per exec.
        run.raw_ms.insert(Leg::Bare, vec![1000.0]);
        run.raw_ms.insert(Leg::Observe, vec![1200.0]);
        run.raw_ms.insert(Leg::Sandbox, vec![1600.0]);
        run.inner_ms.insert(Leg::Observe, vec![1100.0]);
        run.inner_ms.insert(Leg::Sandbox, vec![1160.0]);
        let report = WorkloadReport::new(run);
        let us = 60.0 * 1000.0 / f64::from(super::super::workloads::FORKEXEC_ITERATIONS);
        assert_eq!(report.bars[0].measured, Some(format!("{us:+.1} µs")));
        assert_eq!(report.bars[0].pass, Some(us <= GATE_PER_EXEC_BAR_US));

        // Without the loop's own timing the bar is not passed on wall times.
        let mut run = WorkloadRun::new(Workload::Forkexec, String::new(), 1, legs);
        run.reps_completed = 1;
        run.raw_ms.insert(Leg::Observe, vec![1200.0]);
        run.raw_ms.insert(Leg::Sandbox, vec![1200.0]);
        assert_eq!(WorkloadReport::new(run).bars[0].pass, Some(false));
    }

    fn open_run(legs: &[Leg], medians: &[(Leg, f64)]) -> WorkloadRun {
        let mut run = WorkloadRun::new(Workload::Open, String::new(), 1, legs.to_vec());
        run.reps_completed = 1;
        for &(leg, ms) in medians {
            // the loop's own time, and a session 100 ms longer (its start and end)
            run.inner_ms.insert(leg, vec![ms]);
            run.raw_ms.insert(leg, vec![ms + 100.0]);
        }
        run
    }

    fn verdicts(report: &WorkloadReport) -> Vec<(&str, Option<bool>)> {
        report
            .bars
            .iter()
            .map(|b| (b.what.as_str(), b.pass))
            .collect()
    }

    #[test]
    fn open_bars_judge_protected_over_sandbox() {
        let all = [Leg::Bare, Leg::Observe, Leg::Sandbox, Leg::Protected];
        let run = open_run(
            &all,
            &[
                (Leg::Bare, 100.0),
                (Leg::Observe, 115.0),
                (Leg::Sandbox, 120.0),
                (Leg::Protected, 125.0),
            ],
        );
        let report = WorkloadReport::new(run);
        assert_eq!(report.protected_over_sandbox, Some(225.0 / 220.0));
        assert_eq!(report.protected_over_bare, Some(225.0 / 200.0));
        assert_eq!(
            report.bars[2].measured.as_deref(),
            Some("+4.2% (session +2.3%)")
        );
        assert_eq!(
            verdicts(&report),
            [
                ("observation overhead <= 25% (loop, --no-gate)", Some(true)),
                (
                    "whole sandbox overhead (loop, the gate's filter included)",
                    None
                ),
                ("protected over sandbox <= 5% (loop)", Some(true)),
            ]
        );
        assert_eq!(report.bars[0].measured.as_deref(), Some("+15.0%"));
        assert_eq!(
            report.bars[1].measured.as_deref(),
            Some("+20.0% (session +10.0%)")
        );
        assert_eq!(report.bars[1].verdict(), "shown, no bar");

        // Observation over the bar fails, whatever the whole sandbox does.
        let run = open_run(
            &all,
            &[
                (Leg::Bare, 100.0),
                (Leg::Observe, 126.0),
                (Leg::Sandbox, 120.0),
                (Leg::Protected, 125.0),
            ],
        );
        assert_eq!(WorkloadReport::new(run).bars[0].pass, Some(false));

        let run = open_run(
            &all,
            &[
                (Leg::Bare, 100.0),
                (Leg::Sandbox, 120.0),
                (Leg::Protected, 130.0),
            ],
        );
        let report = WorkloadReport::new(run);
        assert_eq!(report.bars[2].pass, Some(false));
        assert_eq!(
            report.bars[2].measured.as_deref(),
            Some("+8.3% (session +4.5%)")
        );

        // selected but never measured (the check failed before the reps): a failure
        let run = open_run(&all, &[(Leg::Bare, 100.0), (Leg::Sandbox, 120.0)]);
        let report = WorkloadReport::new(run);
        assert_eq!(report.bars[0].pass, Some(false));
        assert_eq!(report.bars[2].pass, Some(false));

        // not selected: not judged
        let run = open_run(
            &[Leg::Bare, Leg::Sandbox],
            &[(Leg::Bare, 100.0), (Leg::Sandbox, 120.0)],
        );
        let report = WorkloadReport::new(run);
        assert_eq!(report.bars[0].pass, None);
        assert_eq!(report.bars[2].pass, None);
        assert_eq!(report.protected_over_sandbox, None);
    }

    #[test]
    fn scan_throughput_and_bar() {
        let scan = |ms: &[f64], bytes: Option<u64>| {
            let mut run = WorkloadRun::new(Workload::Scan, String::new(), 3, vec![Leg::Bare]);
            run.reps_completed = 3;
            if !ms.is_empty() {
                run.raw_ms.insert(Leg::Bare, ms.to_vec());
            }
            run.input_bytes = bytes;
            WorkloadReport::new(run)
        };
        // 200 MB in a median of 800 ms: 250 MB/s
        let fast = scan(&[900.0, 800.0, 700.0], Some(200_000_000));
        assert_eq!(fast.mb_per_s, Some(250.0));
        assert_eq!(verdicts(&fast), [("throughput >= 200 MB/s", Some(true))]);
        assert_eq!(fast.bars[0].measured.as_deref(), Some("250 MB/s"));
        let slow = scan(&[1000.0, 1100.0, 1200.0], Some(200_000_000));
        assert_eq!(slow.bars[0].pass, Some(false));
        // the subcommand is missing: nothing measured, which is no pass
        let missing = scan(&[], None);
        assert_eq!(missing.mb_per_s, None);
        assert_eq!(missing.bars[0].pass, Some(false));
    }

    #[test]
    fn report_serializes_leg_keys_as_names() -> anyhow::Result<()> {
        let run = build_run(&[1.0], &[2.0], Vec::new());
        let report = Report::new(
            Machine::detect(),
            true,
            &[Leg::Bare, Leg::Sandbox],
            Path::new("/sup"),
            vec![run],
        );
        let json: Value = serde_json::to_value(&report)?;
        assert_eq!(
            json["workloads"][0]["legs"]["sandbox"]["median_ms"],
            json!(2.0)
        );
        assert_eq!(json["workloads"][0]["workload"], json!("build"));
        assert_eq!(
            json["workloads"][0]["legs_selected"],
            json!(["bare", "sandbox"])
        );
        assert_eq!(json["workloads"][0]["protected_over_sandbox"], Value::Null);
        assert_eq!(json["workloads"][0]["mb_per_s"], Value::Null);
        Ok(())
    }
}
