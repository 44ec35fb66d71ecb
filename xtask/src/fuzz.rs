//! `cargo xtask fuzz`: a bounded libFuzzer run (`cargo +nightly fuzz run`) of the targets in
//! `fuzz/`: the policy parser, the command detector and the audit verifier.
//!
//! Each target starts from its committed seeds (`fuzz/corpus/<target>/`, never written to) and
//! a working corpus in `target/fuzz-corpus/<target>/` that persists between runs, so repeated
//! runs build on the coverage already reached. libFuzzer's output goes to
//! `target/fuzz-logs/<target>.log`; a crash (any panic), a hang (an input running over
//! [`INPUT_TIMEOUT_SECS`]) or an out-of-memory is saved under `target/fuzz-findings/<target>/`.

use std::fmt;
use std::fs;
use std::io::{BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{setup, util};

/// An input running longer than this is reported as a hang (libFuzzer's `-timeout`).
pub const INPUT_TIMEOUT_SECS: u64 = 5;
/// libFuzzer's `-rss_limit_mb`: more is reported as out-of-memory.
const RSS_LIMIT_MB: u64 = 2048;
/// How long after its time budget a libFuzzer process may still run (start-up, loading the
/// corpus, a last slow input) before it is killed and reported.
const GRACE: Duration = Duration::from_secs(120);
/// Lines of libFuzzer's log shown when a target fails.
const TAIL_LINES: usize = 40;

/// A fuzz target of `fuzz/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// `PolicyFile::parse` on UTF-8 text, then the merge over the embedded default.
    Policy,
    /// `Detector::classify` on a NUL-separated argv, with and without a user rule.
    Detector,
    /// `verify_bytes` on mutated audit logs (raw and re-sealed), `Report`, `Checkpoint::parse`.
    Audit,
}

impl Target {
    const ALL: [Target; 3] = [Target::Policy, Target::Detector, Target::Audit];

    fn name(self) -> &'static str {
        match self {
            Target::Policy => "policy",
            Target::Detector => "detector",
            Target::Audit => "audit",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Command-line options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds of fuzzing per target (after the build).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub secs: u64,
    /// Fuzz only these targets (comma-separated or repeated); default: all three.
    #[arg(long = "target", value_enum, value_delimiter = ',')]
    pub targets: Vec<Target>,
    /// libFuzzer's random seed, for a reproducible sequence of inputs (given the same working
    /// corpus: remove target/fuzz-corpus/ to start from the seeds alone).
    #[arg(long)]
    pub seed: Option<u32>,
    /// Skip the tests of the fuzz crate (the seed corpora run through each harness, without
    /// libFuzzer) that otherwise run first.
    #[arg(long)]
    pub no_seed_tests: bool,
}

impl FuzzArgs {
    fn targets(&self) -> Vec<Target> {
        if self.targets.is_empty() {
            Target::ALL.to_vec()
        } else {
            let mut out = Vec::new();
            for t in &self.targets {
                if !out.contains(t) {
                    out.push(*t);
                }
            }
            out
        }
    }
}

/// What went wrong in a target, when something did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// A panic (libFuzzer sees the abort) or another fatal signal.
    Crash,
    /// An input ran longer than [`INPUT_TIMEOUT_SECS`].
    Hang,
    /// The process went over [`RSS_LIMIT_MB`] or an allocation was too large.
    OutOfMemory,
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FindingKind::Crash => "crash (panic)",
            FindingKind::Hang => "hang",
            FindingKind::OutOfMemory => "out of memory",
        })
    }
}

/// What libFuzzer's output says about one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Inputs executed (`Done N runs`, or the last `#N` progress line after a finding).
    pub execs: u64,
    /// Seconds libFuzzer reported (`Done N runs in S second(s)`), when it finished normally.
    pub reported_secs: Option<u64>,
    /// Inputs in the corpus at the end (`corp: N/...`).
    pub corpus: Option<u64>,
    /// Edge coverage at the end (`cov: N`).
    pub coverage: Option<u64>,
    /// The kind of finding, if any.
    pub finding: Option<FindingKind>,
    /// Where libFuzzer wrote the input (`Test unit written to PATH`).
    pub artifact: Option<PathBuf>,
    /// The first panic message (`panicked at ...` and the line after it).
    pub panic: Option<String>,
}

impl RunSummary {
    /// Folds one line of libFuzzer's output into the summary.
    pub fn observe(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix('#') {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = n.parse::<u64>() {
                self.execs = self.execs.max(n);
            }
            if let Some(v) = field_after(line, "cov: ") {
                self.coverage = Some(v);
            }
            if let Some(v) = field_after(line, "corp: ") {
                self.corpus = Some(v);
            }
        } else if let Some(rest) = line.strip_prefix("Done ") {
            // "Done 61332 runs in 46 second(s)"
            let mut words = rest.split_whitespace();
            if let Some(n) = words.next().and_then(|w| w.parse().ok()) {
                self.execs = n;
            }
            self.reported_secs = words.nth(2).and_then(|w| w.parse().ok());
        } else if let Some(path) = line.split("Test unit written to ").nth(1) {
            self.artifact = Some(PathBuf::from(path.trim()));
        } else if line.contains("ERROR: libFuzzer: timeout") || line.starts_with("ALARM: working") {
            self.finding = Some(FindingKind::Hang);
        } else if line.contains("ERROR: libFuzzer: out-of-memory")
            || line.contains("ERROR: libFuzzer: malloc limit")
        {
            self.finding = Some(FindingKind::OutOfMemory);
        } else if line.contains("ERROR: libFuzzer: deadly signal")
            || line.contains("ERROR: libFuzzer: fuzz target exited")
            || line.contains("ERROR: libFuzzer: fuzz target overwrites")
        {
            self.finding.get_or_insert(FindingKind::Crash);
        } else if line.contains(" panicked at ") && self.panic.is_none() {
            self.panic = Some(line.trim().to_string());
        } else if let Some(p) = &mut self.panic
            && !p.contains('\n')
        {
            // The message follows the location on the next line.
            p.push('\n');
            p.push_str(line.trim());
        }
    }
}

/// The number after `key` in a libFuzzer status line (`cov: 1234 ft: ...`).
fn field_after(line: &str, key: &str) -> Option<u64> {
    let rest = line.split(key).nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The outcome of one target.
struct Outcome {
    target: Target,
    summary: RunSummary,
    wall: Duration,
    /// The saved input, for a finding.
    finding_file: Option<PathBuf>,
    log: PathBuf,
}

/// Where `cargo fuzz` builds: a directory of its own, since its RUSTFLAGS (coverage
/// instrumentation) differ from the workspace's.
fn fuzz_target_dir(root: &Path) -> PathBuf {
    util::target_dir(root).join("fuzz")
}

/// Runs the fuzz targets; `Ok(false)` when any found a crash, hang or out-of-memory.
pub fn run(root: &Path, args: &FuzzArgs) -> Result<bool> {
    setup::cargo_fuzz().context("installing cargo-fuzz")?;
    let fuzz_dir = root.join("fuzz");
    let target_dir = fuzz_target_dir(root);
    if !args.no_seed_tests {
        let mut cmd = util::cargo(root);
        cmd.arg("test")
            .arg("--manifest-path")
            .arg(fuzz_dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        println!(
            "[fuzz] seed corpora through the harnesses: {}",
            util::describe(&cmd)
        );
        util::run_streaming(&mut cmd).context("the fuzz crate's tests failed")?;
    }

    let targets = args.targets();
    let mut build = fuzz_command(root, "build");
    // `cargo fuzz build` takes one target or none (all of them).
    if let [only] = targets.as_slice() {
        build.arg(only.name());
    }
    println!("[fuzz] building: {}", util::describe(&build));
    util::run_streaming(&mut build).context("building the fuzz targets failed")?;

    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_target(root, target, args)?);
    }

    println!("[fuzz] summary ({} s per target):", args.secs);
    let mut clean = true;
    for o in &outcomes {
        // libFuzzer's own count of seconds excludes cargo's start-up (and a rebuild);
        // the wall time stands in when it stopped early.
        let secs = o
            .summary
            .reported_secs
            .map_or_else(|| o.wall.as_secs_f64(), |s| s as f64)
            .max(1e-3);
        let rate = o.summary.execs as f64 / secs;
        let verdict = match (&o.summary.finding, &o.finding_file) {
            (None, _) => "no crash, no hang".to_string(),
            (Some(kind), Some(file)) => format!("{kind}: {}", file.display()),
            (Some(kind), None) => format!("{kind} (no input saved; see {})", o.log.display()),
        };
        clean &= o.summary.finding.is_none();
        println!(
            "[fuzz]   {:<8} {:>10} execs in {:>5.1} s ({:>7.0}/s), corpus {:>5}, cov {:>5}: {verdict}",
            o.target.name(),
            o.summary.execs,
            secs,
            rate,
            opt(o.summary.corpus),
            opt(o.summary.coverage),
        );
    }
    if !clean {
        println!(
            "[fuzz] reproduce a finding with: cargo +nightly fuzz run --fuzz-dir fuzz -s none \
             --target-dir {} <target> <file>",
            target_dir.display()
        );
    }
    Ok(clean)
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

/// `cargo +nightly fuzz <sub> --fuzz-dir fuzz -s none --target-dir ...`. No sanitizer: the
/// code under test is safe Rust, and AddressSanitizer would halve the executions.
fn fuzz_command(root: &Path, sub: &str) -> Command {
    let mut cmd = util::cargo(root);
    cmd.args(["+nightly", "fuzz", sub, "--fuzz-dir"])
        .arg(root.join("fuzz"))
        .args(["--sanitizer", "none", "--target-dir"])
        .arg(fuzz_target_dir(root));
    cmd
}

fn run_target(root: &Path, target: Target, args: &FuzzArgs) -> Result<Outcome> {
    let name = target.name();
    let target_dir = util::target_dir(root);
    let work_corpus = target_dir.join("fuzz-corpus").join(name);
    let findings = target_dir.join("fuzz-findings").join(name);
    let logs = target_dir.join("fuzz-logs");
    let log_path = logs.join(format!("{name}.log"));
    // libFuzzer writes its artifacts here first; a finding is then moved to `findings`.
    let scratch = target_dir.join("fuzz-artifacts").join(name);
    for dir in [&work_corpus, &findings, &logs, &scratch] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    let mut cmd = fuzz_command(root, "run");
    cmd.arg(name)
        .arg(&work_corpus)
        .arg(root.join("fuzz").join("corpus").join(name))
        .arg("--")
        .arg(format!("-max_total_time={}", args.secs))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-artifact_prefix={}/", scratch.display()))
        .arg(format!(
            "-dict={}",
            root.join("fuzz")
                .join("dict")
                .join(format!("{name}.dict"))
                .display()
        ))
        .arg("-print_final_stats=1");
    if let Some(seed) = args.seed {
        cmd.arg(format!("-seed={seed}"));
    }
    println!(
        "[fuzz] {name}: fuzzing for {} s (log: {})",
        args.secs,
        log_path.display()
    );

    let started = Instant::now();
    let (summary, status) =
        run_logged(&mut cmd, &log_path, Duration::from_secs(args.secs) + GRACE)?;
    let wall = started.elapsed();

    let mut summary = summary;
    let finding_file = match &summary.artifact {
        Some(artifact) => Some(save_finding(artifact, &findings)?),
        None => None,
    };
    if summary.finding.is_none() && summary.artifact.is_some() {
        summary.finding = Some(FindingKind::Crash);
    }
    match status {
        RunStatus::Exited(true) => {}
        RunStatus::Exited(false) if summary.finding.is_some() => {}
        RunStatus::Exited(false) => {
            print_tail(&log_path);
            bail!(
                "{name}: libFuzzer failed without reporting a finding; see {}",
                log_path.display()
            );
        }
        RunStatus::Killed => {
            // libFuzzer's own -timeout did not fire (e.g. a hang before the first input).
            summary.finding = Some(FindingKind::Hang);
        }
    }
    if let Some(kind) = summary.finding {
        print_tail(&log_path);
        println!("[fuzz] {name}: FOUND: {kind}");
        if let Some(panic) = &summary.panic {
            println!("[fuzz] {name}: {}", panic.replace('\n', ": "));
        }
    }
    Ok(Outcome {
        target,
        summary,
        wall,
        finding_file,
        log: log_path,
    })
}

/// How a libFuzzer process ended.
enum RunStatus {
    /// It exited; `true` for success.
    Exited(bool),
    /// It overran its time budget and was killed.
    Killed,
}

/// Runs `cmd` with its output (stdout and stderr) written to `log_path` and parsed, killing it
/// if it runs longer than `budget`.
fn run_logged(
    cmd: &mut Command,
    log_path: &Path,
    budget: Duration,
) -> Result<(RunSummary, RunStatus)> {
    let line = util::describe(cmd);
    let mut log =
        fs::File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    writeln!(log, "$ {line}").with_context(|| format!("writing {}", log_path.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{line}`"))?;

    // Both pipes feed one channel from their own threads, so neither can fill up and block.
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            forward_lines(BufReader::new(out), &tx)
        }));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            forward_lines(BufReader::new(err), &tx)
        }));
    }
    drop(tx);

    let deadline = Instant::now() + budget;
    let mut summary = RunSummary::default();
    let mut killed = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                summary.observe(&l);
                // A full disk must not stop the run; the summary is kept in memory.
                let _ = writeln!(log, "{l}");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !killed && Instant::now() > deadline {
            println!(
                "[fuzz] still running {} s after its budget: killing it",
                GRACE.as_secs()
            );
            let _ = child.kill();
            killed = true;
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    let status = if killed {
        RunStatus::Killed
    } else {
        RunStatus::Exited(status.success())
    };
    Ok((summary, status))
}

fn forward_lines(reader: impl std::io::BufRead, tx: &mpsc::Sender<String>) {
    for line in reader.split(b'\n') {
        let Ok(bytes) = line else { break };
        if tx
            .send(String::from_utf8_lossy(&bytes).into_owned())
            .is_err()
        {
            break;
        }
    }
}

/// Moves libFuzzer's artifact into `findings` (keeping its name: `crash-<sha1>`,
/// `timeout-<sha1>`, `oom-<sha1>`) and returns the new path.
fn save_finding(artifact: &Path, findings: &Path) -> Result<PathBuf> {
    let name = artifact
        .file_name()
        .with_context(|| format!("libFuzzer named no file: {}", artifact.display()))?;
    let dest = findings.join(name);
    fs::copy(artifact, &dest)
        .with_context(|| format!("saving {} to {}", artifact.display(), dest.display()))?;
    let _ = fs::remove_file(artifact);
    Ok(dest)
}

fn print_tail(log: &Path) {
    let Ok(text) = fs::read_to_string(log) else {
        return;
    };
    println!("[fuzz] last lines of {}:", log.display());
    for l in tail(&text) {
        println!("    {l}");
    }
}

/// The last [`TAIL_LINES`] lines of libFuzzer's output, without what cargo-fuzz prints after
/// it (a separator, the failing input again and its own backtrace).
fn tail(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("\u{2500}\u{2500}\u{2500}"))
        .collect();
    lines
        .get(lines.len().saturating_sub(TAIL_LINES)..)
        .unwrap_or_default()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summarize(output: &str) -> RunSummary {
        let mut s = RunSummary::default();
        for l in output.lines() {
            s.observe(l);
        }
        s
    }

    #[test]
    fn clean_run_is_summarized() {
        let s = summarize(
            "INFO: Seed: 1234\n\
             #2\tINITED cov: 900 ft: 1200 corp: 30/12Kb exec/s: 0 rss: 51Mb\n\
             #65536\tpulse  cov: 1500 ft: 3000 corp: 400/90Kb lim: 4096 exec/s: 1400 rss: 60Mb\n\
             #61332\tDONE   cov: 1523 ft: 3100 corp: 412/95Kb lim: 4096 exec/s: 1333 rss: 61Mb\n\
             Done 61332 runs in 46 second(s)\n\
             stat::number_of_executed_units: 61332\n",
        );
        assert_eq!(s.execs, 61332);
        assert_eq!(s.reported_secs, Some(46));
        assert_eq!(s.corpus, Some(412));
        assert_eq!(s.coverage, Some(1523));
        assert_eq!(s.finding, None);
        assert_eq!(s.artifact, None);
    }

    #[test]
    fn crash_is_summarized_with_its_panic_and_file() {
        let s = summarize(
            "#5000\tNEW    cov: 100 ft: 200 corp: 10/1Kb exec/s: 0 rss: 51Mb\n\
             \n\
             thread '<unnamed>' (29391) panicked at /x/peg.rs:695:27:\n\
             called `Result::unwrap()` on an `Err` value: ParseIntError { kind: PosOverflow }\n\
             stack backtrace:\n\
             ==29391== ERROR: libFuzzer: deadly signal\n\
             MS: 2 CopyPart-InsertRepeatedBytes-; base unit: abc\n\
             artifact_prefix='/t/fuzz-artifacts/detector/'; Test unit written to /t/fuzz-artifacts/detector/crash-17bc\n",
        );
        assert_eq!(s.finding, Some(FindingKind::Crash));
        assert_eq!(s.execs, 5000);
        assert_eq!(
            s.artifact.as_deref(),
            Some(Path::new("/t/fuzz-artifacts/detector/crash-17bc"))
        );
        assert_eq!(
            s.panic.as_deref(),
            Some(
                "thread '<unnamed>' (29391) panicked at /x/peg.rs:695:27:\n\
                 called `Result::unwrap()` on an `Err` value: ParseIntError { kind: PosOverflow }"
            )
        );
    }

    #[test]
    fn hang_and_oom_are_recognized() {
        let hang = summarize(
            "ALARM: working on the last Unit for 6 seconds\n\
             ==1== ERROR: libFuzzer: timeout after 6 seconds\n\
             artifact_prefix='/a/'; Test unit written to /a/timeout-00ff\n",
        );
        assert_eq!(hang.finding, Some(FindingKind::Hang));
        assert_eq!(hang.artifact.as_deref(), Some(Path::new("/a/timeout-00ff")));
        let oom = summarize(
            "==1== ERROR: libFuzzer: out-of-memory (used: 2100Mb; exceeds: 2048Mb)\n\
             Test unit written to /a/oom-01\n",
        );
        assert_eq!(oom.finding, Some(FindingKind::OutOfMemory));
    }

    #[test]
    fn tail_stops_before_cargo_fuzz_output() {
        let log = "#1 INITED\n==1== ERROR: libFuzzer: deadly signal\n\
                   \u{2500}\u{2500}\u{2500}\u{2500}\u{2500}\n\nFailing input:\n\nError: Fuzz target exited\n";
        assert_eq!(
            tail(log),
            ["#1 INITED", "==1== ERROR: libFuzzer: deadly signal"]
        );
        let long: String = (0..100).map(|i| format!("#{i}\n")).collect();
        let t = tail(&long);
        assert_eq!(t.len(), TAIL_LINES);
        assert_eq!(t.last(), Some(&"#99"));
    }

    #[test]
    fn findings_are_moved_out_of_the_scratch_directory() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-test-{}", std::process::id()));
        let scratch = dir.join("scratch");
        let findings = dir.join("findings");
        fs::create_dir_all(&scratch)?;
        fs::create_dir_all(&findings)?;
        let artifact = scratch.join("crash-abc");
        fs::write(&artifact, b"input")?;
        let saved = save_finding(&artifact, &findings)?;
        assert_eq!(saved, findings.join("crash-abc"));
        assert_eq!(fs::read(&saved)?, b"input");
        assert!(!artifact.exists());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn dictionaries_are_well_formed() -> Result<()> {
        let root = util::workspace_root()?;
        for target in Target::ALL {
            let path = root
                .join("fuzz/dict")
                .join(format!("{}.dict", target.name()));
            let text = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            let mut entries = 0;
            for (i, line) in text.lines().enumerate() {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                // libFuzzer's format: one double-quoted token per line, `\\`, `\"`, `\xAB`.
                let inner = line
                    .strip_prefix('"')
                    .and_then(|l| l.strip_suffix('"'))
                    .with_context(|| format!("{}:{}: not quoted", path.display(), i + 1))?;
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => bail!("{}:{}: unescaped quote", path.display(), i + 1),
                        '\\' => match chars.next() {
                            Some('\\' | '"') => {}
                            Some('x') => {
                                let hex: String = chars.by_ref().take(2).collect();
                                if hex.len() != 2 || u8::from_str_radix(&hex, 16).is_err() {
                                    bail!("{}:{}: bad \\x escape", path.display(), i + 1);
                                }
                            }
                            _ => bail!("{}:{}: bad escape", path.display(), i + 1),
                        },
                        c if !(' '..='~').contains(&c) => {
                            bail!("{}:{}: raw non-ASCII byte", path.display(), i + 1)
                        }
                        _ => {}
                    }
                }
                entries += 1;
            }
            assert!(entries >= 40, "{}: only {entries} tokens", path.display());
        }
        Ok(())
    }

    #[test]
    fn every_target_has_seeds_and_an_entry_point() -> Result<()> {
        let root = util::workspace_root()?;
        let manifest = fs::read_to_string(root.join("fuzz/Cargo.toml"))?;
        for target in Target::ALL {
            let name = target.name();
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "fuzz/Cargo.toml has no [[bin]] {name}"
            );
            assert!(root.join(format!("fuzz/fuzz_targets/{name}.rs")).is_file());
            let seeds = fs::read_dir(root.join("fuzz/corpus").join(name))?.count();
            assert!(seeds >= 8, "{name}: {seeds} seeds");
        }
        Ok(())
    }
}
