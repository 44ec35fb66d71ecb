//! `cargo xtask`: the project's chores as a Rust program, so they need nothing installed
//! beyond cargo: set up a machine, run the test suite, start an agent in the sandbox, and
//! benchmark the sandbox's overhead.

mod bench;
mod fuzz;
mod run;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Setup, test, run and benchmark tasks of agent-sandbox.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Setup, test, run and benchmark tasks of agent-sandbox",
    after_help = "Run as root on a fresh Debian 12 machine:\n  \
                  cargo xtask test              set the machine up and run every check\n  \
                  cargo xtask run -- claude     set it up and run an agent in the sandbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install what the build and the tests need (apt packages, the nightly rust-src
    /// component, bpf-linker, cargo-fuzz), mount tracefs, build the release supervisor and print
    /// `agent-sandbox doctor`'s kernel capability table.
    ///
    /// Idempotent: every step checks first, so a second run installs nothing. Needs root (or
    /// sudo) only when something must be installed or mounted. Supports Debian and Ubuntu.
    Setup(setup::SetupArgs),

    /// Run setup, then `cargo fmt --check`, `cargo clippy -D warnings` and
    /// `cargo test --workspace`, as root. The project's test command.
    ///
    /// All three checks run even when one fails; the exit status is non-zero if any failed.
    /// Arguments after `--` go to `cargo test`.
    Test(test::TestArgs),

    /// Run setup, build the release supervisor and start CMD under it:
    /// `agent-sandbox run -- CMD` (through `sudo -E` when not root).
    ///
    /// Exits with the supervisor's exit status.
    Run(run::RunArgs),

    /// Measure the sandbox's overhead against bare runs and strace.
    ///
    /// Workloads: open (200 000 openat+close), forkexec (2 000 fork+exec of /bin/true), build
    /// (cargo build of ripgrep 14.1.1, downloaded from crates.io), true (start-up cost) and
    /// scan (`agent-sandbox scan` of ~200 MB of source code, bare only: MB/s).
    /// Each runs bare, under `agent-sandbox run`, and under `strace -f`, interleaved rep by
    /// rep, after one untimed warm-up; open also runs `protected` (the sandbox with a policy
    /// protecting 1 000 files). Prints medians, ratios, the supervisor's lost events
    /// and peak RSS against the project's bars, and writes everything, per-rep timings
    /// included, to target/bench/results.json. Needs root for the sandboxed legs. Exits
    /// non-zero only when a workload fails to run; the bars are informational.
    Bench(bench::BenchArgs),

    /// Fuzz the policy parser, the command detector and the audit verifier for a bounded time
    /// with cargo-fuzz (libFuzzer, nightly toolchain; installed like setup does if missing).
    ///
    /// First runs the fuzz crate's tests (every committed seed through its harness), then
    /// builds the targets and fuzzes each for --secs seconds from its seeds
    /// (fuzz/corpus/<target>/, left untouched) and the working corpus of earlier runs
    /// (target/fuzz-corpus/<target>/). Prints per target the executions, their rate and the
    /// outcome. A panic, an input running over 5 s or over 2 GB of memory is saved under
    /// target/fuzz-findings/<target>/ and the command exits non-zero naming the file.
    /// libFuzzer's full output: target/fuzz-logs/<target>.log.
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> ExitCode {
    let root = match util::workspace_root() {
        Ok(root) => root,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // First, while we have one thread: it edits the process environment.
    util::prepare_process_env(&root);
    let cli = Cli::parse();
    match dispatch(&root, cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(root: &std::path::Path, command: Cmd) -> Result<ExitCode> {
    match command {
        Cmd::Setup(args) => setup::run(root, args.options())?,
        Cmd::Test(args) => test::run(root, &args)?,
        Cmd::Run(args) => run::run(root, &args)?,
        Cmd::Fuzz(args) => {
            if !fuzz::run(root, &args)? {
                eprintln!("xtask: error: fuzzing found a crash or a hang (see above)");
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Bench(args) => {
            if !bench::run(root, &args)? {
                eprintln!("xtask: error: some workloads failed to run (see above)");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn trailing_arguments_are_passed_through() -> Result<()> {
        let cli = Cli::try_parse_from(["xtask", "test", "--", "policy", "--", "--nocapture"])?;
        let Cmd::Test(args) = cli.command else {
            anyhow::bail!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.cargo_test_args, ["policy", "--", "--nocapture"]);

        let cli = Cli::try_parse_from(["xtask", "run", "--", "bash", "-l"])?;
        let Cmd::Run(args) = cli.command else {
            anyhow::bail!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.command, ["bash", "-l"]);
        Ok(())
    }

    #[test]
    fn fuzz_options_are_parsed() -> Result<()> {
        let cli = Cli::try_parse_from(["xtask", "fuzz"])?;
        let Cmd::Fuzz(args) = cli.command else {
            anyhow::bail!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.secs, 60);
        assert!(args.targets.is_empty(), "no --target means all three");
        assert_eq!(args.seed, None);

        let cli = Cli::try_parse_from([
            "xtask",
            "fuzz",
            "--secs",
            "5",
            "--target",
            "audit,policy",
            "--target",
            "audit",
            "--seed",
            "7",
        ])?;
        let Cmd::Fuzz(args) = cli.command else {
            anyhow::bail!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.secs, 5);
        assert_eq!(
            args.targets,
            [
                fuzz::Target::Audit,
                fuzz::Target::Policy,
                fuzz::Target::Audit
            ]
        );
        assert_eq!(args.seed, Some(7));
        assert!(Cli::try_parse_from(["xtask", "fuzz", "--secs", "0"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "--target", "kernel"]).is_err());
        Ok(())
    }

    #[test]
    fn bench_workloads_accept_names_and_letters() -> Result<()> {
        let cli = Cli::try_parse_from(["xtask", "bench", "--only", "a,forkexec,d", "--reps", "2"])?;
        let Cmd::Bench(args) = cli.command else {
            anyhow::bail!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            args.only,
            [
                bench::Workload::Open,
                bench::Workload::Forkexec,
                bench::Workload::True
            ]
        );
        assert_eq!(args.reps, Some(2));
        assert!(
            args.legs.is_empty(),
            "no --legs means each workload's defaults"
        );
        assert!(Cli::try_parse_from(["xtask", "bench", "--reps", "0"]).is_err());

        let cli = Cli::try_parse_from([
            "xtask",
            "bench",
            "--only",
            "e,open",
            "--legs",
            "bare,protected",
        ])?;
        let Cmd::Bench(args) = cli.command else {
            anyhow::bail!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.only, [bench::Workload::Scan, bench::Workload::Open]);
        assert_eq!(args.legs, [bench::Leg::Bare, bench::Leg::Protected]);
        assert!(Cli::try_parse_from(["xtask", "bench", "--legs", "nope"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "bench", "--only", "nope"]).is_err());
        Ok(())
    }
}
