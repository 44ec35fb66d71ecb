//! `cargo xtask bench`: what the sandbox costs, measured against running bare and against
//! strace (the usual user-space alternative for watching a process tree).
//!
//! Every workload runs in interleaved repetitions (rep 1: bare, sandbox, protected, strace;
//! rep 2: …) so that drift in the machine's state (page cache, thermal, other tenants) spreads
//! over all legs instead of favouring whichever leg ran first. Medians, not means, so one
//! hiccup does not move the result.
//!
//! The `protected` leg is the `sandbox` leg with a repository policy protecting 1 000 files
//! (see [`protected`]); the `scan` workload times the supervisor's secret scanner, bare only;
//! the `sigkill` workload times how long the agent's tree outlives a SIGKILLed supervisor,
//! sandbox only (see [`sigkill`]).

mod approval;
mod audit;
mod protected;
mod report;
mod scan;
mod sigkill;
mod workloads;

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::{setup, util};
use protected::ProtectedSetup;
use report::{Machine, RepStats, WorkloadRun};
use workloads::{PrepareOptions, Prepared};

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// (a) 200 000 openat+close of one file, by a small C program
    #[value(alias = "a")]
    Open,
    /// (b) 2 000 fork+exec+wait of /bin/true, by a small C program
    #[value(alias = "b")]
    Forkexec,
    /// (c) `cargo build -j2 --offline` of ripgrep 14.1.1 from a fresh target directory
    #[value(alias = "c")]
    Build,
    /// (d) `true`: the sandbox's fixed start-up and tear-down cost
    #[value(alias = "d")]
    True,
    /// (e) `agent-sandbox scan` of ~200 MB of source code, page cache warm: the secret
    /// scanner's throughput (bare only: it is not a sandboxed workload)
    #[value(alias = "e")]
    Scan,
    /// (f) SIGKILL of the supervisor of a tree with a background child and a setsid daemon:
    /// time until the tree is gone (sandbox only: it measures the watchdog)
    #[value(alias = "f")]
    Sigkill,
    /// (g) held actions answered by an approver on the session's socket: hold → drawn in the
    /// approval UI, and decision → held call returned (sandbox only)
    #[value(alias = "g")]
    Approval,
    /// (h) the audit trail: append cost per record over a 1 M-record synthetic stream, and
    /// `agent-sandbox audit verify` of that log (bare only: no session involved)
    #[value(alias = "h")]
    Audit,
}

impl Workload {
    const ALL: [Workload; 8] = [
        Workload::Open,
        Workload::Forkexec,
        Workload::Build,
        Workload::True,
        Workload::Scan,
        Workload::Sigkill,
        Workload::Approval,
        Workload::Audit,
    ];

    /// The name used on the command line and in results.json.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Open => "open",
            Workload::Forkexec => "forkexec",
            Workload::Build => "build",
            Workload::True => "true",
            Workload::Scan => "scan",
            Workload::Sigkill => "sigkill",
            Workload::Approval => "approval",
            Workload::Audit => "audit",
        }
    }

    /// Whether `leg` makes sense for this workload: `scan` is the supervisor's own command,
    /// so wrapping it in a session or in strace would measure something else; `sigkill`
    /// measures the session itself.
    fn supports(self, leg: Leg) -> bool {
        match self {
            Workload::Scan | Workload::Audit => leg == Leg::Bare,
            Workload::Sigkill | Workload::Approval => leg == Leg::Sandbox,
            _ => true,
        }
    }

    /// The legs this workload runs: `requested` (from --legs) minus those it does not
    /// support, or without --legs its defaults: bare, sandbox and strace, plus protected for
    /// `open` (where a per-open cost of the marks would show most) and observe for `open` and
    /// `forkexec`; bare alone for `scan`.
    fn legs(self, requested: &[Leg]) -> Vec<Leg> {
        let mut legs: Vec<Leg> = if requested.is_empty() {
            let mut defaults = vec![Leg::Bare, Leg::Sandbox, Leg::Strace];
            if self == Workload::Open {
                defaults.push(Leg::Protected);
            }
            // The open bar is on observation alone; the gate's cost per exec is the
            // difference to it.
            if matches!(self, Workload::Open | Workload::Forkexec) {
                defaults.push(Leg::Observe);
            }
            defaults
        } else {
            requested.to_vec()
        };
        legs.retain(|&leg| self.supports(leg));
        legs.sort();
        legs.dedup();
        legs
    }

    /// Timed repetitions per leg when `--reps` is not given. Fast workloads get more, since
    /// their relative noise is larger; `--quick` keeps only one timed rep of everything but
    /// `true`, whose 20 reps take a few seconds.
    fn default_reps(self, quick: bool) -> u32 {
        match (self, quick) {
            (Workload::True, _) => 20,
            (Workload::Sigkill, true) => 3,
            (Workload::Sigkill, false) => 9,
            (Workload::Approval, true) => 1,
            (Workload::Approval, false) => 3,
            (Workload::Audit, true) => 1,
            (Workload::Audit, false) => 3,
            (_, true) => 1,
            (Workload::Build | Workload::Scan, false) => 5,
            (Workload::Open | Workload::Forkexec, false) => 7,
        }
    }
}

/// How a workload is run. The order is the order within a rep: `protected` right after
/// `sandbox`, so the two legs it is compared with run back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    /// the command alone
    Bare,
    /// observation alone, without the exec/deletion gate:
    /// `agent-sandbox run --stats-json FILE --user root --no-gate -- CMD`
    Observe,
    /// `agent-sandbox run --stats-json FILE --user root -- CMD`
    Sandbox,
    /// the sandbox leg with a repository policy protecting 1 000 files:
    /// `agent-sandbox run --stats-json FILE --user root --trust-policy --state-dir DIR
    /// --policy FILE -- CMD`, started in that policy's workspace
    Protected,
    /// `strace -f -e trace=execve,openat,connect -o /dev/null CMD`
    Strace,
}

impl Leg {
    /// The name used on the command line and in results.json.
    pub fn name(self) -> &'static str {
        match self {
            Leg::Bare => "bare",
            Leg::Observe => "observe",
            Leg::Sandbox => "sandbox",
            Leg::Protected => "protected",
            Leg::Strace => "strace",
        }
    }

    /// Whether the leg runs an `agent-sandbox run` session (root, statistics file).
    pub fn is_sandboxed(self) -> bool {
        matches!(self, Leg::Observe | Leg::Sandbox | Leg::Protected)
    }
}

/// Command-line options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fewer repetitions for a fast smoke run: 1 timed rep of open, forkexec, build and scan
    /// (instead of 7, 7, 5 and 5), and a 20 MB scan tree instead of 200 MB; `true` keeps its
    /// 20. Medians of one rep are noisy: do not quote them.
    #[arg(long)]
    pub quick: bool,

    /// Run only these workloads, comma-separated: open, forkexec, build, true, scan, sigkill,
    /// approval, audit (or a, b, c, d, e, f, g, h).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WORKLOADS")]
    pub only: Vec<Workload>,

    /// Timed repetitions per workload and leg (overrides the defaults and --quick).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: Option<u32>,

    /// Legs to run, comma-separated: bare, sandbox, protected, strace. `bare` is always
    /// needed: ratios are relative to it. Default: bare,sandbox,strace, plus protected for the
    /// open workload. A workload skips the legs it does not support (scan runs bare only).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LEGS")]
    pub legs: Vec<Leg>,

    /// Benchmark this supervisor binary instead of building target/release/agent-sandbox.
    #[arg(long, value_name = "PATH")]
    pub supervisor: Option<PathBuf>,
}

/// Everything the legs need to build their command lines and store their by-products.
struct Context {
    supervisor: PathBuf,
    strace: PathBuf,
    logs_dir: PathBuf,
    stats_dir: PathBuf,
    /// The protected leg's workspace and policy, when some workload runs that leg.
    protected: Option<ProtectedSetup>,
}

/// Runs the benchmark. Returns whether every selected workload ran to completion; the
/// PASS/FAIL bars are informational and do not affect it.
pub fn run(root: &Path, args: &BenchArgs) -> Result<bool> {
    if !args.legs.is_empty() && !args.legs.contains(&Leg::Bare) {
        bail!("--legs must include `bare`: every ratio is relative to it");
    }
    let mut selected = if args.only.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.only.clone()
    };
    selected.sort();
    selected.dedup();
    let plan: Vec<(Workload, Vec<Leg>)> = selected
        .into_iter()
        .map(|w| (w, w.legs(&args.legs)))
        .collect();
    let runs_leg = |leg: Leg| plan.iter().any(|(_, legs)| legs.contains(&leg));
    let sandboxed = runs_leg(Leg::Sandbox) || runs_leg(Leg::Protected);
    if sandboxed && !util::is_root() {
        bail!(
            "the sandboxed legs need root (the supervisor loads eBPF programs and creates a \
             cgroup): run `{}`, or pass --legs bare,strace",
            util::sudo_hint("bench")
        );
    }

    setup::run(
        root,
        setup::Options {
            build: args.supervisor.is_none(),
            doctor: false,
            reinstall_bpf_linker: false,
        },
    )?;

    let supervisor = match &args.supervisor {
        Some(path) => fs::canonicalize(path)
            .with_context(|| format!("--supervisor {}: no such file", path.display()))?,
        None => util::supervisor_bin(root),
    };
    let scans = plan.iter().any(|(w, _)| *w == Workload::Scan);
    if (sandboxed || scans) && !supervisor.exists() {
        bail!("{} does not exist after the build", supervisor.display());
    }
    let strace = util::find_in_path("strace").unwrap_or_else(|| PathBuf::from("strace"));
    if runs_leg(Leg::Strace) && !strace.is_absolute() {
        bail!("strace not found on PATH: run `cargo xtask setup`");
    }

    let bench_dir = util::target_dir(root).join("bench");
    let logs_dir = bench_dir.join("logs");
    let stats_dir = bench_dir.join("stats");
    for dir in [&bench_dir, &logs_dir, &stats_dir] {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let protected = if runs_leg(Leg::Protected) {
        println!(
            "[bench] protected leg: preparing a workspace with {} protected files",
            protected::PROTECTED_FILES
        );
        // root-owned: the supervisor refuses a trust store that is not its own
        Some(protected::prepare(&bench_dir, 0)?)
    } else {
        None
    };
    let ctx = Context {
        supervisor,
        strace,
        logs_dir,
        stats_dir,
        protected,
    };

    let machine = Machine::detect();
    println!("[bench] {}", machine.summary());

    let mut runs = Vec::new();
    for (workload, legs) in plan.iter().cloned() {
        let reps = args.reps.unwrap_or(workload.default_reps(args.quick));
        let skipped: Vec<&str> = args
            .legs
            .iter()
            .filter(|leg| !legs.contains(leg))
            .map(|leg| leg.name())
            .collect();
        if !skipped.is_empty() {
            println!(
                "[bench] {}: skipping the {} leg(s), which it does not support",
                workload.name(),
                skipped.join(", ")
            );
        }
        println!("[bench] {}: preparing", workload.name());
        let options = PrepareOptions {
            supervisor: &ctx.supervisor,
            quick: args.quick,
        };
        let run = match workloads::prepare(workload, &bench_dir, &options) {
            Ok(prepared) if workload == Workload::Sigkill => {
                measure_sigkill(&prepared, &legs, reps, &ctx)
            }
            Ok(prepared) if workload == Workload::Approval => {
                measure_approval(&prepared, &legs, reps, &ctx)
            }
            Ok(prepared) if workload == Workload::Audit => {
                measure_audit(&prepared, &legs, reps, &ctx)
            }
            Ok(prepared) => {
                let run = measure(workload, &prepared, &legs, reps, &ctx);
                // the build's target directory is a few hundred MB nobody will look at
                if let Err(err) = prepared.reset() {
                    println!("[bench] {}: warning: cleaning up: {err:#}", workload.name());
                }
                run
            }
            Err(err) => {
                println!("[bench] {}: FAILED to prepare: {err:#}", workload.name());
                WorkloadRun::new(workload, String::new(), reps, legs).failed(format!("{err:#}"))
            }
        };
        runs.push(run);
    }

    let mut all_legs: Vec<Leg> = plan.iter().flat_map(|(_, legs)| legs.clone()).collect();
    all_legs.sort();
    all_legs.dedup();
    let report = report::Report::new(machine, args.quick, &all_legs, &ctx.supervisor, runs);
    report.print();
    let json_path = bench_dir.join("results.json");
    let json = serde_json::to_string_pretty(&report).context("failed to serialize the results")?;
    fs::write(&json_path, json + "\n")
        .with_context(|| format!("failed to write {}", json_path.display()))?;
    println!("[bench] results written to {}", json_path.display());
    Ok(report.all_ran())
}

/// Runs one workload: an untimed bare warm-up, then `reps` interleaved rounds of `legs`.
/// Stops at the first failing run; what was measured until then is kept.
fn measure(
    workload: Workload,
    prepared: &Prepared,
    legs: &[Leg],
    reps: u32,
    ctx: &Context,
) -> WorkloadRun {
    let name = workload.name();
    let mut run = WorkloadRun::new(workload, prepared.description.clone(), reps, legs.to_vec());
    run.input_bytes = prepared.input_bytes;

    // The warm-up fills the page cache (and, for build, extracts the fetched crates into
    // cargo's registry) so the first timed bare run is not charged for it, and proves the
    // workload itself works before any sandbox or strace numbers are blamed for a failure.
    println!("[bench] {name}: warm-up (bare, untimed)");
    if let Err(err) = run_leg(Leg::Bare, prepared, ctx, name, None) {
        println!("[bench] {name}: FAILED in the warm-up: {err:#}");
        return run.failed(format!("warm-up: {err:#}"));
    }

    if legs.contains(&Leg::Protected) {
        match check_protected(ctx, name) {
            Ok(marked) => println!(
                "[bench] {name}: protected sessions mark {marked} files, {} of them by the \
                 rule {} (checked against a control session)",
                protected::PROTECTED_FILES,
                protected::RULE_ID
            ),
            Err(err) => {
                println!("[bench] {name}: FAILED checking the protected leg: {err:#}");
                return run.failed(format!("protected leg check: {err:#}"));
            }
        }
    }

    for rep in 1..=reps {
        let mut line = format!("[bench] {name} rep {rep}/{reps}:");
        for &leg in legs {
            let stats_file = leg.is_sandboxed().then(|| {
                ctx.stats_dir
                    .join(format!("{name}-{}-rep{rep}.json", leg.name()))
            });
            match run_leg(leg, prepared, ctx, name, stats_file.as_deref()) {
                Ok((ms, inner)) => {
                    run.raw_ms.entry(leg).or_default().push(ms);
                    line.push_str(&format!(" {} {ms:.1} ms", leg.name()));
                    if let Some(inner) = inner {
                        run.inner_ms.entry(leg).or_default().push(inner);
                        line.push_str(&format!(" (inner {inner:.1})"));
                    }
                }
                Err(err) => {
                    println!("{line}");
                    println!(
                        "[bench] {name}: FAILED ({} leg, rep {rep}): {err:#}",
                        leg.name()
                    );
                    return run.failed(format!("{} leg, rep {rep}: {err:#}", leg.name()));
                }
            }
            if let Some(file) = stats_file {
                let stats = RepStats::read(rep, leg, &file);
                if let Some(err) = &stats.error {
                    line.push_str(&format!(" [stats: {err}]"));
                }
                run.supervisor_stats.push(stats);
            }
        }
        println!("{line}");
        run.reps_completed = rep;
    }
    run
}

/// Runs a workload measured by its own code, one rep at a time (`one_rep(rep)` returns the
/// line to print and the samples to keep), unless `leg` was deselected. Stops at the first
/// failing rep.
fn measure_reps(
    workload: Workload,
    prepared: &Prepared,
    legs: &[Leg],
    reps: u32,
    leg: Leg,
    mut one_rep: impl FnMut(&Path) -> Result<(String, Vec<f64>, Vec<f64>)>,
) -> WorkloadRun {
    let name = workload.name();
    let mut run = WorkloadRun::new(workload, prepared.description.clone(), reps, legs.to_vec());
    if !legs.contains(&leg) {
        return run;
    }
    let Some(dir) = prepared.cwd.as_deref() else {
        return run.failed("no workspace was prepared".to_owned());
    };
    for rep in 1..=reps {
        match one_rep(dir) {
            Ok((line, raw, second)) => {
                println!("[bench] {name} rep {rep}/{reps}: {line}");
                run.raw_ms.entry(leg).or_default().extend(raw);
                run.second_ms.extend(second);
                run.reps_completed = rep;
            }
            Err(err) => {
                println!("[bench] {name}: FAILED (rep {rep}): {err:#}");
                return run.failed(format!("rep {rep}: {err:#}"));
            }
        }
    }
    run
}

/// The `sigkill` workload: `reps` sessions whose supervisor is killed (see [`sigkill`]).
fn measure_sigkill(prepared: &Prepared, legs: &[Leg], reps: u32, ctx: &Context) -> WorkloadRun {
    let log = ctx.logs_dir.join("sigkill-sandbox.stderr");
    measure_reps(
        Workload::Sigkill,
        prepared,
        legs,
        reps,
        Leg::Sandbox,
        |ws| {
            let r = sigkill::rep(&ctx.supervisor, ws, &log)?;
            Ok((
                format!(
                    "tree gone {:.1} ms, cgroup removed {:.1} ms",
                    r.tree_gone_ms, r.cgroup_removed_ms
                ),
                vec![r.tree_gone_ms],
                Vec::new(),
            ))
        },
    )
}

/// The `approval` workload: `reps` sessions of [`approval::HOLDS`] held actions each (see
/// [`approval`]); every hold is one sample (hold → UI; decision → resume as the second
/// measure).
fn measure_approval(prepared: &Prepared, legs: &[Leg], reps: u32, ctx: &Context) -> WorkloadRun {
    let log = ctx.logs_dir.join("approval-sandbox.stderr");
    measure_reps(
        Workload::Approval,
        prepared,
        legs,
        reps,
        Leg::Sandbox,
        |ws| {
            let r = approval::rep(&ctx.supervisor, ws, &log)?;
            let line = format!(
                "{} holds, hold -> UI median {:.2} ms, decision -> resume median {:.2} ms",
                r.hold_to_ui_ms.len(),
                report::median(&r.hold_to_ui_ms).unwrap_or(f64::NAN),
                report::median(&r.resume_ms).unwrap_or(f64::NAN),
            );
            Ok((line, r.hold_to_ui_ms, r.resume_ms))
        },
    )
}

/// The `audit` workload (see [`audit`]): per rep, the real `audit verify` of a 1 M-record log
/// (the sample) and the writer's median append cost (the second measure).
fn measure_audit(prepared: &Prepared, legs: &[Leg], reps: u32, ctx: &Context) -> WorkloadRun {
    let Some(writer) = prepared.argv.first() else {
        return WorkloadRun::new(Workload::Audit, String::new(), reps, legs.to_vec())
            .failed("the audit benchmark was not prepared".to_owned());
    };
    let run = measure_reps(Workload::Audit, prepared, legs, reps, Leg::Bare, |dir| {
        let r = audit::rep(Path::new(writer), &ctx.supervisor, dir)?;
        let line = format!(
            "{} records ({:.0} MB): append median {:.2} µs, audit verify {:.0} ms",
            audit::RECORDS,
            r.bytes as f64 / 1e6,
            r.append_median_us,
            r.verify_ms
        );
        Ok((line, vec![r.verify_ms], vec![r.append_median_us]))
    });
    // Nobody will look at a gigabyte of synthetic log.
    if let Some(dir) = prepared.cwd.as_deref() {
        let _ = fs::remove_dir_all(dir);
    }
    run
}

/// Proves that the protected leg's sessions mark the rule's files: an untimed session of
/// `true` with the policy's rule and one with the control policy (same path, same state
/// directory, same events file, so everything else they protect is the same), both with
/// `--events`; their `protected_files` must differ by exactly the rule's files. Runs before
/// the timed reps so that none of them pays for writing the events. Leaves the policy with
/// its rule in place and trusted, and returns the protected session's `protected_files`.
fn check_protected(ctx: &Context, name: &str) -> Result<u64> {
    let setup = ctx
        .protected
        .as_ref()
        .context("the protected leg was not prepared")?;
    let true_bin = util::find_in_path("true").context("`true` not found on PATH")?;
    let events = ctx.stats_dir.join(format!("{name}-protected-check.jsonl"));
    let stderr_log = ctx.logs_dir.join(format!("{name}-protected-check.stderr"));
    let mut marked = [0u64; 2];
    for (count, with_rule) in marked.iter_mut().zip([false, true]) {
        setup.write_policy(with_rule)?;
        let mut argv: Vec<OsString> = vec![ctx.supervisor.clone().into(), "run".into()];
        argv.push("--events".into());
        argv.push(events.clone().into());
        argv.extend(setup.run_options());
        argv.push("--".into());
        argv.push(true_bin.clone().into());
        timed_run(
            &argv,
            Some(&setup.workspace),
            &Prepared::default(),
            &stderr_log,
        )
        .with_context(|| {
            format!(
                "the {} session failed",
                if with_rule { "protected" } else { "control" }
            )
        })?;
        *count = protected::session_protected_files(&events)?;
    }
    let [control, with_rule] = marked;
    protected::check_marked(control, with_rule)?;
    Ok(with_rule)
}

/// Runs one leg once and returns its wall-clock time in milliseconds, and the time the
/// workload measured itself when it does ([`Prepared::inner_timing`]).
fn run_leg(
    leg: Leg,
    prepared: &Prepared,
    ctx: &Context,
    name: &str,
    stats_file: Option<&Path>,
) -> Result<(f64, Option<f64>)> {
    prepared.reset()?;
    if let Some(file) = stats_file {
        // a file left by an earlier run must not pass for this one's statistics
        util::remove_if_present(file)?;
    }
    let argv = leg_argv(leg, &prepared.argv, ctx, stats_file)?;
    let stderr_log = ctx.logs_dir.join(format!("{name}-{}.stderr", leg.name()));
    let wall = timed_run(&argv, leg_cwd(leg, prepared, ctx), prepared, &stderr_log)?;
    let inner = match &prepared.inner_timing {
        Some(file) => {
            let text = fs::read_to_string(file).with_context(|| {
                format!(
                    "the workload did not leave its own timing in {}",
                    file.display()
                )
            })?;
            Some(text.trim().parse::<f64>().with_context(|| {
                format!("{}: `{}` is not a time in ms", file.display(), text.trim())
            })?)
        }
        None => None,
    };
    Ok((wall, inner))
}

/// Where `leg` starts the workload: the protected leg in its policy's workspace (unless the
/// workload needs its own directory, like the build), every other leg in the workload's.
fn leg_cwd<'a>(leg: Leg, prepared: &'a Prepared, ctx: &'a Context) -> Option<&'a Path> {
    match (&ctx.protected, leg) {
        (Some(setup), Leg::Protected) if !prepared.cwd_matters => Some(&setup.workspace),
        _ => prepared.cwd.as_deref(),
    }
}

/// The command line of `leg` around the workload's own `argv`.
fn leg_argv(
    leg: Leg,
    argv: &[OsString],
    ctx: &Context,
    stats_file: Option<&Path>,
) -> Result<Vec<OsString>> {
    let mut full: Vec<OsString> = Vec::new();
    if leg.is_sandboxed() {
        let stats = stats_file
            .with_context(|| format!("the {} leg needs a statistics file", leg.name()))?;
        full.push(ctx.supervisor.clone().into());
        full.extend(["run", "--stats-json"].map(OsString::from));
        full.push(stats.into());
    }
    match leg {
        Leg::Bare => {}
        Leg::Sandbox => {
            // the bench runs as root and may have no SUDO_UID to drop to; say who runs it
            full.extend(["--user", "root"].map(OsString::from));
        }
        Leg::Observe => {
            full.extend(["--user", "root", "--no-gate"].map(OsString::from));
        }
        Leg::Protected => {
            let setup = ctx
                .protected
                .as_ref()
                .context("the protected leg was not prepared")?;
            full.extend(setup.run_options());
        }
        Leg::Strace => {
            full.push(ctx.strace.clone().into());
            full.extend(
                ["-f", "-e", "trace=execve,openat,connect", "-o", "/dev/null"].map(OsString::from),
            );
        }
    }
    if leg.is_sandboxed() {
        full.push("--".into());
    }
    full.extend(argv.iter().cloned());
    Ok(full)
}

/// Runs `argv` in `cwd` with the workload's environment, stdout to /dev/null and stderr to
/// `stderr_log` (shown if it fails), and times it from spawn to exit. An exit code outside
/// the workload's success codes fails it.
fn timed_run(
    argv: &[OsString],
    cwd: Option<&Path>,
    prepared: &Prepared,
    stderr_log: &Path,
) -> Result<f64> {
    let (program, args) = argv.split_first().context("empty command line")?;
    let stderr = File::create(stderr_log)
        .with_context(|| format!("failed to create {}", stderr_log.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .envs(prepared.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }

    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{}`", util::describe(&cmd)))?;
    let elapsed = start.elapsed();

    let succeeded = status
        .code()
        .is_some_and(|code| prepared.success_codes.contains(&code));
    if !succeeded {
        bail!(
            "`{}` failed ({}); end of its stderr ({}):\n{}",
            util::describe(&cmd),
            util::describe_status(status),
            stderr_log.display(),
            tail(stderr_log, 30)
        );
    }
    // microsecond resolution: finer digits would only be noise in results.json
    Ok(elapsed.as_micros() as f64 / 1000.0)
}

/// The last `lines` lines of a file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            let shown = all[start..].join("\n");
            if shown.is_empty() {
                "(empty)".to_owned()
            } else {
                shown
            }
        }
        Err(err) => format!("(could not read it: {err})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            supervisor: PathBuf::from("/sup"),
            strace: PathBuf::from("/usr/bin/strace"),
            logs_dir: PathBuf::from("/logs"),
            stats_dir: PathBuf::from("/stats"),
            protected: Some(ProtectedSetup {
                workspace: PathBuf::from("/ws"),
                policy: PathBuf::from("/ws/policy.toml"),
                state_dir: PathBuf::from("/b/state"),
            }),
        }
    }

    fn strs(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|s| s.to_str().unwrap_or("?")).collect()
    }

    #[test]
    fn legs_wrap_the_workload() -> Result<()> {
        let argv = vec![OsString::from("/bin/true")];
        let bare = leg_argv(Leg::Bare, &argv, &ctx(), None)?;
        assert_eq!(strs(&bare), ["/bin/true"]);
        let sandbox = leg_argv(Leg::Sandbox, &argv, &ctx(), Some(Path::new("/s.json")))?;
        assert_eq!(
            strs(&sandbox),
            [
                "/sup",
                "run",
                "--stats-json",
                "/s.json",
                "--user",
                "root",
                "--",
                "/bin/true"
            ]
        );
        let protected = leg_argv(Leg::Protected, &argv, &ctx(), Some(Path::new("/p.json")))?;
        assert_eq!(
            strs(&protected),
            [
                "/sup",
                "run",
                "--stats-json",
                "/p.json",
                "--user",
                "root",
                "--trust-policy",
                "--state-dir",
                "/b/state",
                "--policy",
                "/ws/policy.toml",
                "--",
                "/bin/true"
            ]
        );
        let strace = leg_argv(Leg::Strace, &argv, &ctx(), None)?;
        assert_eq!(
            strs(&strace),
            [
                "/usr/bin/strace",
                "-f",
                "-e",
                "trace=execve,openat,connect",
                "-o",
                "/dev/null",
                "/bin/true"
            ]
        );
        assert!(leg_argv(Leg::Sandbox, &argv, &ctx(), None).is_err());
        assert!(leg_argv(Leg::Protected, &argv, &ctx(), None).is_err());
        let unprepared = Context {
            protected: None,
            ..ctx()
        };
        let err = leg_argv(Leg::Protected, &argv, &unprepared, Some(Path::new("/p")));
        assert!(err.is_err());
        Ok(())
    }

    #[test]
    fn protected_leg_starts_in_its_workspace_unless_the_cwd_matters() {
        let ctx = ctx();
        let mut prepared = Prepared {
            cwd: Some(PathBuf::from("/bench/workspace")),
            ..Prepared::default()
        };
        let cwd = |leg, p: &Prepared| leg_cwd(leg, p, &ctx).map(Path::to_path_buf);
        assert_eq!(cwd(Leg::Protected, &prepared), Some(PathBuf::from("/ws")));
        assert_eq!(
            cwd(Leg::Sandbox, &prepared),
            Some(PathBuf::from("/bench/workspace"))
        );
        prepared.cwd_matters = true;
        assert_eq!(
            cwd(Leg::Protected, &prepared),
            Some(PathBuf::from("/bench/workspace"))
        );
    }

    #[test]
    fn workloads_choose_their_legs() {
        use Leg::*;
        // defaults: protected only for open, observe for open and forkexec, scan bare only
        assert_eq!(
            Workload::Open.legs(&[]),
            [Bare, Observe, Sandbox, Protected, Strace]
        );
        assert_eq!(
            Workload::Forkexec.legs(&[]),
            [Bare, Observe, Sandbox, Strace]
        );
        for w in [Workload::Build, Workload::True] {
            assert_eq!(w.legs(&[]), [Bare, Sandbox, Strace], "{}", w.name());
        }
        assert_eq!(Workload::Scan.legs(&[]), [Bare]);
        assert_eq!(Workload::Sigkill.legs(&[]), [Sandbox]);
        assert_eq!(Workload::Sigkill.legs(&[Bare, Strace]), []);
        // explicit legs apply to every workload that supports them, in rep order
        assert_eq!(
            Workload::Forkexec.legs(&[Protected, Bare, Protected]),
            [Bare, Protected]
        );
        assert_eq!(Workload::Open.legs(&[Strace, Bare]), [Bare, Strace]);
        assert_eq!(Workload::Scan.legs(&[Bare, Sandbox, Protected]), [Bare]);
        assert!(Protected.is_sandboxed() && Sandbox.is_sandboxed());
        assert!(!Bare.is_sandboxed() && !Strace.is_sandboxed());
    }

    #[test]
    fn tail_keeps_the_last_lines() -> Result<()> {
        let path = std::env::temp_dir().join(format!("xtask-tail-{}", std::process::id()));
        fs::write(&path, "1\n2\n3\n")?;
        assert_eq!(tail(&path, 2), "2\n3");
        fs::write(&path, "")?;
        assert_eq!(tail(&path, 2), "(empty)");
        fs::remove_file(&path)?;
        Ok(())
    }

    #[test]
    fn timed_run_reports_failures_with_stderr() -> Result<()> {
        let log = std::env::temp_dir().join(format!("xtask-timed-{}", std::process::id()));
        let prepared = Prepared::default();
        let ok = ["/bin/sh", "-c", "exit 0"].map(OsString::from);
        assert!(timed_run(&ok, None, &prepared, &log)? >= 0.0);
        let bad = ["/bin/sh", "-c", "echo boom >&2; exit 3"].map(OsString::from);
        let err = format!(
            "{:#}",
            timed_run(&bad, None, &prepared, &log)
                .err()
                .context("no error")?
        );
        assert!(err.contains("exit status 3"), "{err}");
        assert!(err.contains("boom"), "{err}");

        // exit 1 is success only where the workload says so (scan: secrets found)
        let one = ["/bin/sh", "-c", "exit 1"].map(OsString::from);
        assert!(timed_run(&one, None, &prepared, &log).is_err());
        let scan_like = Prepared {
            success_codes: vec![0, 1],
            ..Prepared::default()
        };
        assert!(timed_run(&one, None, &scan_like, &log).is_ok());
        assert!(timed_run(&bad, None, &scan_like, &log).is_err());
        let killed = ["/bin/sh", "-c", "kill -9 $$"].map(OsString::from);
        assert!(timed_run(&killed, None, &scan_like, &log).is_err());
        fs::remove_file(&log)?;
        Ok(())
    }

    #[test]
    fn timed_run_uses_the_cwd() -> Result<()> {
        let log = std::env::temp_dir().join(format!("xtask-cwd-{}", std::process::id()));
        let in_tmp = ["/bin/sh", "-c", "test \"$(pwd)\" = /"].map(OsString::from);
        assert!(timed_run(&in_tmp, Some(Path::new("/")), &Prepared::default(), &log).is_ok());
        let dir = std::env::temp_dir();
        assert!(timed_run(&in_tmp, Some(&dir), &Prepared::default(), &log).is_err());
        fs::remove_file(&log)?;
        Ok(())
    }
}
