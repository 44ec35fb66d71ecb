//! Helpers shared by the subcommands: workspace paths, privilege checks, running commands with
//! their output streamed, and the environment clean-up `cargo run` makes necessary.

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context as _, Result, bail};

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .with_context(|| format!("{} has no parent directory", manifest_dir.display()))
}

/// Cargo's target directory for the workspace, honouring `CARGO_TARGET_DIR` like cargo does
/// (a relative value is relative to the directory cargo runs in, which for us is the root).
pub fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// The release supervisor binary that `cargo build --release -p agent-sandbox` produces.
pub fn supervisor_bin(root: &Path) -> PathBuf {
    target_dir(root).join("release").join("agent-sandbox")
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Cargo's home (`$CARGO_HOME`, by default `~/.cargo`).
pub fn cargo_home() -> Option<PathBuf> {
    if let Some(home) = env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home));
    }
    env::home_dir().map(|home| home.join(".cargo"))
}

/// Cargo's binary directory (`$CARGO_HOME/bin`, by default `~/.cargo/bin`), where rustup's
/// proxies and `cargo install`ed tools such as bpf-linker live.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    cargo_home().map(|home| home.join("bin"))
}

/// Looks `program` up in `PATH` the way a shell would; returns the first executable match.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Prepares this process's environment before anything else runs.
///
/// * Appends `~/.cargo/bin` to `PATH` when it is missing: `sudo` resets `PATH`, and a fresh
///   root shell may not have sourced rustup's profile, yet cargo, rustup and bpf-linker live there.
/// * Removes what `cargo run` and the rustup proxy injected into our environment (`CARGO_PKG_*`,
///   `RUSTUP_TOOLCHAIN`, `LD_LIBRARY_PATH` entries pointing into `target/` and the toolchain…).
///   Everything we start inherits it otherwise: an agent started by `cargo xtask run` would be
///   pinned to the toolchain that built xtask, and every exec in a benchmark would search
///   cargo's library directories.
///
/// Must be called first in `main`, while the process has a single thread.
pub fn prepare_process_env(root: &Path) {
    let mut updates: Vec<(OsString, Option<OsString>)> = Vec::new();

    if let Some(bin) = cargo_bin_dir() {
        let path = env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = env::split_paths(&path).collect();
        if !dirs.iter().any(|d| d == &bin) {
            dirs.push(bin);
            if let Ok(joined) = env::join_paths(dirs) {
                updates.push(("PATH".into(), Some(joined)));
            }
        }
    }

    for (key, _) in env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        let injected_by_cargo_run = name == "CARGO"
            || name == "RUST_RECURSION_COUNT"
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name == "CARGO_CRATE_NAME"
            || name == "CARGO_BIN_NAME"
            || name == "CARGO_PRIMARY_PACKAGE";
        if injected_by_cargo_run {
            updates.push((key, None));
        }
    }

    // The proxy records where RUSTUP_TOOLCHAIN came from; only a value the user set ("env")
    // is worth keeping.
    if env::var_os("RUSTUP_TOOLCHAIN_SOURCE").as_deref() != Some(OsStr::new("env")) {
        updates.push(("RUSTUP_TOOLCHAIN".into(), None));
    }
    updates.push(("RUSTUP_TOOLCHAIN_SOURCE".into(), None));

    if let Some(value) = env::var_os("LD_LIBRARY_PATH") {
        let toolchains = env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .or_else(|| env::home_dir().map(|h| h.join(".rustup")))
            .map(|h| h.join("toolchains"));
        let target = target_dir(root);
        let kept: Vec<PathBuf> = env::split_paths(&value)
            .filter(|dir| {
                !dir.starts_with(&target)
                    && !toolchains.as_ref().is_some_and(|t| dir.starts_with(t))
            })
            .collect();
        let new_value = if kept.is_empty() {
            None
        } else {
            env::join_paths(kept).ok()
        };
        updates.push(("LD_LIBRARY_PATH".into(), new_value));
    }

    for (key, value) in updates {
        // SAFETY: called at the start of main, before any other thread exists, so nothing can
        // read the environment concurrently.
        unsafe {
            match value {
                Some(v) => env::set_var(&key, v),
                None => env::remove_var(&key),
            }
        }
    }
}

/// A shell-like rendering of a command line for progress and error messages.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![quote(cmd.get_program())];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` with inherited stdio (its output streams to ours) and fails unless it succeeds.
pub fn run_streaming(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({})", describe_status(status));
    }
    Ok(())
}

/// Runs `cmd` with captured output and returns its stdout; on failure the error carries stderr.
pub fn run_captured(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    let output = cmd
        .output()
        .with_context(|| format!("failed to start `{line}`"))?;
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            describe_status(output.status),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// "exit status 3" / "killed by signal 9", for messages.
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// A `cargo` command running in the workspace root. Uses the rustup proxy on `PATH`, so the
/// toolchain is resolved the same way it is for a developer typing the command.
pub fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root);
    cmd
}

/// A command that needs root: run directly when we are root, through `sudo` otherwise.
/// `env` carries variables through sudo, whose policy may drop them otherwise.
pub fn privileged(program: &str, envs: &[(&str, &str)]) -> Result<Command> {
    if is_root() {
        let mut cmd = Command::new(program);
        cmd.envs(envs.iter().copied());
        return Ok(cmd);
    }
    if find_in_path("sudo").is_none() {
        bail!("`{program}` needs root: run this command as root (sudo is not installed)");
    }
    let mut cmd = Command::new("sudo");
    cmd.arg("env");
    cmd.args(envs.iter().map(|(k, v)| format!("{k}={v}")));
    cmd.arg(program);
    Ok(cmd)
}

/// How to re-run an xtask command as root while keeping cargo on `PATH` (sudo resets it).
pub fn sudo_hint(subcommand: &str) -> String {
    format!("sudo -E env \"PATH=$PATH\" cargo xtask {subcommand}")
}

/// Deletes `path` (a directory with everything in it, or a file), doing nothing when it does
/// not exist.
pub fn remove_if_present(path: &Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("failed to delete {}", path.display())),
    }
}

/// An empty directory under the system's temp directory for a test, named after `tag` and
/// this process.
#[cfg(test)]
pub fn fresh_temp_dir(tag: &str) -> Result<PathBuf> {
    let dir = env::temp_dir().join(format!("xtask-{tag}-{}", std::process::id()));
    remove_if_present(&dir)?;
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(quote(OsStr::new("--release")), "--release");
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(quote(OsStr::new("")), "''");
    }

    #[test]
    fn find_in_path_finds_sh() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("definitely-not-a-program-xtask").is_none());
    }
}
