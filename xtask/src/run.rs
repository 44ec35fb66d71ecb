//! `cargo xtask run`: set the machine up, build, and start an agent under the sandbox.

use std::env;
use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::{setup, util};

/// Command-line options of `cargo xtask run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run the agent as this user (passed to `agent-sandbox run --user`). Needed when this runs
    /// as root without sudo, since there is no SUDO_UID to drop to; `root` keeps the agent
    /// root, which removes most of the protection.
    #[arg(long, value_name = "NAME")]
    pub user: Option<OsString>,
    /// The agent command and its arguments, after `--` (default: $SHELL, or /bin/bash).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Runs setup (which builds the release supervisor), then replaces this process with
/// `agent-sandbox run -- CMD…`, through `sudo -E` when not root. Only returns on failure.
pub fn run(root: &Path, args: &RunArgs) -> Result<()> {
    setup::run(
        root,
        setup::Options {
            build: true,
            // the capability table is `cargo xtask setup`'s business; here it would only push
            // the agent's first screen away
            doctor: false,
            reinstall_bpf_linker: false,
        },
    )?;

    let bin = util::supervisor_bin(root);
    if !bin.exists() {
        bail!("{} does not exist after the build", bin.display());
    }
    let agent = if args.command.is_empty() {
        vec![
            env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| OsString::from("/bin/bash")),
        ]
    } else {
        args.command.clone()
    };

    let mut cmd = if util::is_root() {
        Command::new(&bin)
    } else if util::find_in_path("sudo").is_none() {
        bail!("the supervisor needs root and sudo is not installed: run this command as root");
    } else {
        // -E: the supervisor drops back to the invoking user (SUDO_UID) and gives the agent
        // this environment, not root's
        let mut sudo = Command::new("sudo");
        sudo.arg("-E").arg(&bin);
        sudo
    };
    // The agent starts in a workspace of its own, under the embedded default policy: from this
    // repository's root the search would find the example policy.toml (which a run would then
    // ask to trust). A `.git` marks the workspace root, where that search stops.
    let workspace = root.join("target/demo-workspace");
    std::fs::create_dir_all(workspace.join(".git"))?;
    println!(
        "[run] the agent starts in {} under the embedded default policy",
        workspace.display()
    );
    cmd.current_dir(&workspace);
    cmd.arg("run");
    if let Some(user) = &args.user {
        cmd.arg("--user").arg(user);
    }
    cmd.arg("--").args(&agent);
    println!("[run] {}", util::describe(&cmd));

    // exec rather than wait: the supervisor then owns the terminal alone, so Ctrl-C and job
    // control reach it and the agent instead of an xtask process in the same process group,
    // and its exit status becomes ours (`cargo run` execs us the same way).
    let err = cmd.exec();
    bail!("failed to execute `{}`: {err}", util::describe(&cmd))
}
