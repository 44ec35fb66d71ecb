//! `cargo xtask test`: the project's one test command (the README's, and `.ci/run`'s).
//! Sets the machine up, then runs the format check, clippy and the whole test suite.

use std::path::Path;

use anyhow::{Result, bail};

use crate::{setup, util};

/// Command-line options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Extra arguments for `cargo test --workspace`, after `--`
    /// (e.g. `cargo xtask test -- policy -- --nocapture`).
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    pub cargo_test_args: Vec<String>,
}

/// Runs setup, then every check; all checks run even when one fails, so a formatting slip
/// does not hide a test failure. Fails if any check failed.
pub fn run(root: &Path, args: &TestArgs) -> Result<()> {
    // Checked before setup: setup itself needs root to install packages, and the end-to-end
    // tests would otherwise be skipped or fail in confusing ways. Never pass silently.
    if !util::is_root() {
        bail!(
            "`cargo xtask test` must run as root: the end-to-end tests load eBPF programs, create \
             cgroups and mark files with fanotify. Run it as root, e.g. `{}`",
            util::sudo_hint("test")
        );
    }
    setup::run(
        root,
        setup::Options {
            build: true,
            doctor: true,
            reinstall_bpf_linker: false,
        },
    )?;

    let mut test_args = vec!["test".to_owned(), "--workspace".to_owned()];
    test_args.extend(args.cargo_test_args.iter().cloned());
    let steps: [(&str, Vec<String>); 3] = [
        ("fmt", strings(&["fmt", "--all", "--", "--check"])),
        (
            "clippy",
            strings(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        ("test", test_args),
    ];

    let mut failed = Vec::new();
    for (name, cargo_args) in &steps {
        let mut cmd = util::cargo(root);
        cmd.args(cargo_args);
        println!("[test] {}", util::describe(&cmd));
        match util::run_streaming(&mut cmd) {
            Ok(()) => println!("[test] {name}: ok"),
            Err(err) => {
                println!("[test] {name}: FAILED: {err:#}");
                failed.push(*name);
            }
        }
    }

    if failed.is_empty() {
        println!("[test] all checks passed (fmt, clippy, test)");
        Ok(())
    } else {
        bail!(
            "{} of {} checks failed: {}",
            failed.len(),
            steps.len(),
            failed.join(", ")
        )
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}
