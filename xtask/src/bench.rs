//! `cargo xtask bench`: what the sandbox costs, measured against running bare and against
//! strace (the usual user-space alternative for watching a process tree).
//!
//! Every workload runs in interleaved repetitions (rep 1: bare, sandbox, strace; rep 2: …) so
//! that drift in the machine's state (page cache, thermal, other tenants) spreads over all legs
//! instead of favouring whichever leg ran first. Medians, not means, so one hiccup does not
//! move the result.

mod report;
mod workloads;

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::{setup, util};
use report::{Machine, RepStats, WorkloadRun};
use workloads::Prepared;

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
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::Open,
        Workload::Forkexec,
        Workload::Build,
        Workload::True,
    ];

    /// The name used on the command line and in results.json.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Open => "open",
            Workload::Forkexec => "forkexec",
            Workload::Build => "build",
            Workload::True => "true",
        }
    }

    /// Timed repetitions per leg when `--reps` is not given. Fast workloads get more, since
    /// their relative noise is larger; `--quick` keeps only one timed rep of everything but
    /// `true`, whose 20 reps take a few seconds.
    fn default_reps(self, quick: bool) -> u32 {
        match (self, quick) {
            (Workload::True, _) => 20,
            (_, true) => 1,
            (Workload::Build, false) => 5,
            (Workload::Open | Workload::Forkexec, false) => 7,
        }
    }
}

/// How a workload is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    /// the command alone
    Bare,
    /// `agent-sandbox run --stats-json FILE --user root -- CMD`
    Sandbox,
    /// `strace -f -e trace=execve,openat,connect -o /dev/null CMD`
    Strace,
}

impl Leg {
    /// The name used on the command line and in results.json.
    pub fn name(self) -> &'static str {
        match self {
            Leg::Bare => "bare",
            Leg::Sandbox => "sandbox",
            Leg::Strace => "strace",
        }
    }
}

/// Command-line options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fewer repetitions for a fast smoke run: 1 timed rep of open, forkexec and build (instead
    /// of 7, 7 and 5); `true` keeps its 20. Medians of one rep are noisy: do not quote them.
    #[arg(long)]
    pub quick: bool,

    /// Run only these workloads, comma-separated: open, forkexec, build, true
    /// (or a, b, c, d).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WORKLOADS")]
    pub only: Vec<Workload>,

    /// Timed repetitions per workload and leg (overrides the defaults and --quick).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: Option<u32>,

    /// Legs to run, comma-separated. `bare` is always needed: ratios are relative to it.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LEGS",
        default_value = "bare,sandbox,strace"
    )]
    pub legs: Vec<Leg>,

    /// Benchmark this supervisor binary instead of building target/release/agent-sandbox.
    #[arg(long, value_name = "PATH")]
    pub supervisor: Option<PathBuf>,
}

/// Everything the legs need to build their command lines and store their by-products.
struct Context {
    legs: Vec<Leg>,
    supervisor: PathBuf,
    strace: PathBuf,
    logs_dir: PathBuf,
    stats_dir: PathBuf,
}

/// Runs the benchmark. Returns whether every selected workload ran to completion; the
/// PASS/FAIL bars are informational and do not affect it.
pub fn run(root: &Path, args: &BenchArgs) -> Result<bool> {
    let mut legs = args.legs.clone();
    legs.sort();
    legs.dedup();
    if !legs.contains(&Leg::Bare) {
        bail!("--legs must include `bare`: every ratio is relative to it");
    }
    if legs.contains(&Leg::Sandbox) && !util::is_root() {
        bail!(
            "the sandboxed leg needs root (the supervisor loads eBPF programs and creates a \
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
    if legs.contains(&Leg::Sandbox) && !supervisor.exists() {
        bail!("{} does not exist after the build", supervisor.display());
    }
    let strace = util::find_in_path("strace").unwrap_or_else(|| PathBuf::from("strace"));
    if legs.contains(&Leg::Strace) && !strace.is_absolute() {
        bail!("strace not found on PATH: run `cargo xtask setup`");
    }

    let bench_dir = util::target_dir(root).join("bench");
    let ctx = Context {
        legs,
        supervisor,
        strace,
        logs_dir: bench_dir.join("logs"),
        stats_dir: bench_dir.join("stats"),
    };
    for dir in [&bench_dir, &ctx.logs_dir, &ctx.stats_dir] {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }

    let machine = Machine::detect();
    println!("[bench] {}", machine.summary());

    let mut selected = if args.only.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.only.clone()
    };
    selected.sort();
    selected.dedup();

    let mut runs = Vec::new();
    for workload in selected {
        let reps = args.reps.unwrap_or(workload.default_reps(args.quick));
        println!("[bench] {}: preparing", workload.name());
        let run = match workloads::prepare(workload, &bench_dir) {
            Ok(prepared) => {
                let run = measure(workload, &prepared, reps, &ctx);
                // the build's target directory is a few hundred MB nobody will look at
                if let Err(err) = prepared.reset() {
                    println!("[bench] {}: warning: cleaning up: {err:#}", workload.name());
                }
                run
            }
            Err(err) => {
                println!("[bench] {}: FAILED to prepare: {err:#}", workload.name());
                WorkloadRun::new(workload, String::new(), reps).failed(format!("{err:#}"))
            }
        };
        runs.push(run);
    }

    let report = report::Report::new(machine, args.quick, &ctx.legs, &ctx.supervisor, runs);
    report.print();
    let json_path = bench_dir.join("results.json");
    let json = serde_json::to_string_pretty(&report).context("failed to serialize the results")?;
    fs::write(&json_path, json + "\n")
        .with_context(|| format!("failed to write {}", json_path.display()))?;
    println!("[bench] results written to {}", json_path.display());
    Ok(report.all_ran())
}

/// Runs one workload: an untimed bare warm-up, then `reps` interleaved rounds of every leg.
/// Stops at the first failing run; what was measured until then is kept.
fn measure(workload: Workload, prepared: &Prepared, reps: u32, ctx: &Context) -> WorkloadRun {
    let name = workload.name();
    let mut run = WorkloadRun::new(workload, prepared.description.clone(), reps);

    // The warm-up fills the page cache (and, for build, extracts the fetched crates into
    // cargo's registry) so the first timed bare run is not charged for it, and proves the
    // workload itself works before any sandbox or strace numbers are blamed for a failure.
    println!("[bench] {name}: warm-up (bare, untimed)");
    if let Err(err) = run_leg(Leg::Bare, prepared, ctx, name, None) {
        println!("[bench] {name}: FAILED in the warm-up: {err:#}");
        return run.failed(format!("warm-up: {err:#}"));
    }

    for rep in 1..=reps {
        let mut line = format!("[bench] {name} rep {rep}/{reps}:");
        for &leg in &ctx.legs {
            let stats_file =
                (leg == Leg::Sandbox).then(|| ctx.stats_dir.join(format!("{name}-rep{rep}.json")));
            match run_leg(leg, prepared, ctx, name, stats_file.as_deref()) {
                Ok(ms) => {
                    run.raw_ms.entry(leg).or_default().push(ms);
                    line.push_str(&format!(" {} {ms:.1} ms", leg.name()));
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
                let stats = RepStats::read(rep, &file);
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

/// Runs one leg once and returns its wall-clock time in milliseconds.
fn run_leg(
    leg: Leg,
    prepared: &Prepared,
    ctx: &Context,
    name: &str,
    stats_file: Option<&Path>,
) -> Result<f64> {
    prepared.reset()?;
    if let Some(file) = stats_file {
        // a file left by an earlier run must not pass for this one's statistics
        match fs::remove_file(file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("failed to remove {}", file.display()));
            }
        }
    }
    let argv = leg_argv(leg, &prepared.argv, ctx, stats_file)?;
    let stderr_log = ctx.logs_dir.join(format!("{name}-{}.stderr", leg.name()));
    timed_run(&argv, prepared, &stderr_log)
}

/// The command line of `leg` around the workload's own `argv`.
fn leg_argv(
    leg: Leg,
    argv: &[OsString],
    ctx: &Context,
    stats_file: Option<&Path>,
) -> Result<Vec<OsString>> {
    let mut full: Vec<OsString> = Vec::new();
    match leg {
        Leg::Bare => {}
        Leg::Sandbox => {
            let stats = stats_file.context("the sandbox leg needs a statistics file")?;
            full.push(ctx.supervisor.clone().into());
            full.extend(["run", "--stats-json"].map(OsString::from));
            full.push(stats.into());
            // the bench runs as root and may have no SUDO_UID to drop to; say who runs it
            full.extend(["--user", "root", "--"].map(OsString::from));
        }
        Leg::Strace => {
            full.push(ctx.strace.clone().into());
            full.extend(
                ["-f", "-e", "trace=execve,openat,connect", "-o", "/dev/null"].map(OsString::from),
            );
        }
    }
    full.extend(argv.iter().cloned());
    Ok(full)
}

/// Runs `argv` with stdout to /dev/null and stderr to `stderr_log` (shown if it fails), and
/// times it from spawn to exit.
fn timed_run(argv: &[OsString], prepared: &Prepared, stderr_log: &Path) -> Result<f64> {
    let (program, args) = argv.split_first().context("empty command line")?;
    let stderr = File::create(stderr_log)
        .with_context(|| format!("failed to create {}", stderr_log.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .envs(prepared.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &prepared.cwd {
        cmd.current_dir(cwd);
    }

    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{}`", util::describe(&cmd)))?;
    let elapsed = start.elapsed();

    if !status.success() {
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
            legs: vec![Leg::Bare, Leg::Sandbox, Leg::Strace],
            supervisor: PathBuf::from("/sup"),
            strace: PathBuf::from("/usr/bin/strace"),
            logs_dir: PathBuf::from("/logs"),
            stats_dir: PathBuf::from("/stats"),
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
        Ok(())
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
        let prepared = Prepared {
            description: String::new(),
            argv: Vec::new(),
            cwd: None,
            env: Vec::new(),
            fresh_dir: None,
        };
        let ok = ["/bin/sh", "-c", "exit 0"].map(OsString::from);
        assert!(timed_run(&ok, &prepared, &log)? >= 0.0);
        let bad = ["/bin/sh", "-c", "echo boom >&2; exit 3"].map(OsString::from);
        let err = format!(
            "{:#}",
            timed_run(&bad, &prepared, &log).err().context("no error")?
        );
        assert!(err.contains("exit status 3"), "{err}");
        assert!(err.contains("boom"), "{err}");
        fs::remove_file(&log)?;
        Ok(())
    }
}
