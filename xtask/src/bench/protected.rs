//! The `protected` leg: the `sandbox` leg plus a repository policy whose one `deny_read` rule
//! marks [`PROTECTED_FILES`] inodes, to measure what a session pays for the files a policy
//! protects (fanotify inode marks set at start, permission events, the glob walk).
//!
//! Everything lives under the bench directory: a workspace of its own (with a `.git`, so it
//! is a repository root) holding `policy.toml` and `protected/f0000..`, and a root-owned,
//! mode 0700 state directory for the trust store, so the bench neither trusts a policy in
//! the machine's real store nor depends on what it holds.

use std::ffi::OsString;
use std::fs::{self, DirBuilder};
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// How many files the bench's `deny_read` rule covers.
pub const PROTECTED_FILES: usize = 1000;
/// The id of that rule.
pub const RULE_ID: &str = "bench-protected";
/// Its one glob, relative to the workspace: a pattern over the files rather than `protected/**`,
/// so the supervisor marks the 1 000 inodes and does not watch the directory as a whole.
pub const RULE_GLOB: &str = "protected/f*";

/// The workspace, policy and state directory of the `protected` leg.
#[derive(Debug, Clone)]
pub struct ProtectedSetup {
    /// The repository the protected sessions start in (its root holds `policy.toml`).
    pub workspace: PathBuf,
    /// `<workspace>/policy.toml`, passed as `--policy`.
    pub policy: PathBuf,
    /// `--state-dir`: the trust store the bench's sessions use, root-owned, mode 0700.
    pub state_dir: PathBuf,
}

impl ProtectedSetup {
    /// The supervisor options shared by every protected session, after `run`.
    pub fn run_options(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["--user", "root", "--trust-policy", "--state-dir"]
            .map(OsString::from)
            .to_vec();
        args.push(self.state_dir.clone().into());
        args.push("--policy".into());
        args.push(self.policy.clone().into());
        args
    }

    /// Writes the bench's policy: with the protecting rule, or (`with_rule` false) the control
    /// policy at the same path, which protects nothing of its own.
    pub fn write_policy(&self, with_rule: bool) -> Result<()> {
        fs::write(&self.policy, policy_text(with_rule))
            .with_context(|| format!("failed to write {}", self.policy.display()))
    }
}

/// Creates (or refreshes) the protected workspace under `bench_dir` and writes the policy with
/// its rule. `state_owner` is the uid the state directory must belong to (root in the bench).
pub fn prepare(bench_dir: &Path, state_owner: u32) -> Result<ProtectedSetup> {
    let workspace = bench_dir.join("protected-workspace");
    let git = workspace.join(".git");
    fs::create_dir_all(&git).with_context(|| format!("failed to create {}", git.display()))?;

    // Recreated every time: a file left by another version of the bench would be protected
    // too and change the count the bench checks.
    let files_dir = workspace.join("protected");
    crate::util::remove_if_present(&files_dir)?;
    fs::create_dir_all(&files_dir)
        .with_context(|| format!("failed to create {}", files_dir.display()))?;
    for i in 0..PROTECTED_FILES {
        let file = files_dir.join(format!("f{i:04}"));
        fs::write(&file, format!("protected file {i} of the bench\n"))
            .with_context(|| format!("failed to write {}", file.display()))?;
    }

    let state_dir = bench_dir.join("state");
    ensure_private_dir(&state_dir, state_owner)?;

    let setup = ProtectedSetup {
        policy: workspace.join("policy.toml"),
        workspace,
        state_dir,
    };
    setup.write_policy(true)?;
    Ok(setup)
}

/// The bench's repository policy, with or without its one rule.
pub fn policy_text(with_rule: bool) -> String {
    let mut text = String::from(
        "# Written by `cargo xtask bench` for its `protected` leg; rewritten on every run.\n",
    );
    if with_rule {
        text.push_str(&format!(
            "\n[[files.deny_read]]\nid = \"{RULE_ID}\"\n\
             why = \"{PROTECTED_FILES} files protected by the benchmark.\"\n\
             paths = [\"{RULE_GLOB}\"]\n"
        ));
    } else {
        text.push_str("# Control policy: no rule of its own.\n");
    }
    text
}

/// Makes `dir` a directory owned by `owner` (uid and gid) with mode 0700, creating it if
/// needed. Refuses a symlink: the supervisor's trust store refuses one too, with a less
/// helpful message.
fn ensure_private_dir(dir: &Path, owner: u32) -> Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(err).with_context(|| format!("failed to create {}", dir.display()));
        }
    }
    let meta = fs::symlink_metadata(dir)
        .with_context(|| format!("failed to inspect {}", dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "{} is not a directory (a symlink?): delete it so the bench can create its state \
             directory",
            dir.display()
        );
    }
    if meta.uid() != owner || meta.gid() != owner {
        std::os::unix::fs::lchown(dir, Some(owner), Some(owner))
            .with_context(|| format!("failed to chown {} to uid {owner}", dir.display()))?;
    }
    if meta.mode() & 0o7777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("failed to chmod 0700 {}", dir.display()))?;
    }
    Ok(())
}

/// `protected_files` of the `session_start` record, the first line of a supervisor events file.
pub fn session_protected_files(events_file: &Path) -> Result<u64> {
    let file = fs::File::open(events_file)
        .with_context(|| format!("failed to open the events file {}", events_file.display()))?;
    let mut first = String::new();
    BufReader::new(file)
        .read_line(&mut first)
        .with_context(|| format!("failed to read {}", events_file.display()))?;
    if first.trim().is_empty() {
        bail!(
            "{} is empty: the session wrote no session_start record",
            events_file.display()
        );
    }
    let record: Value = serde_json::from_str(&first).with_context(|| {
        format!(
            "the first line of {} is not JSON: {}",
            events_file.display(),
            first.trim()
        )
    })?;
    if record["kind"] != "session_start" {
        bail!(
            "the first record of {} is not session_start: {}",
            events_file.display(),
            first.trim()
        );
    }
    // The files the bench rule marked: the session's total also counts the default policy's
    // credential files and the sandbox's own files (its state directory grows with every
    // session's audit log), which differ between sessions.
    if let Some(n) = record["protected_by_rule"].as_object() {
        return Ok(n.get(RULE_ID).and_then(Value::as_u64).unwrap_or(0));
    }
    record["protected_files"].as_u64().with_context(|| {
        format!(
            "the session_start record of {} has no numeric protected_files (an older \
             supervisor?): {}",
            events_file.display(),
            first.trim()
        )
    })
}

/// Checks that the bench's rule added exactly [`PROTECTED_FILES`] marks. The session's
/// `protected_files` also counts the default policy's credential files and the sandbox's own
/// files (the policy itself, the state directory, the events file), so it is compared with a
/// control session that differs only by the rule.
pub fn check_marked(control: u64, with_rule: u64) -> Result<()> {
    let added = with_rule.checked_sub(control);
    if added != Some(PROTECTED_FILES as u64) {
        bail!(
            "the protected session marked {with_rule} files and the control session (same \
             workspace, state directory and events file, policy without the rule) {control}: \
             the rule `{RULE_ID}` ({RULE_GLOB}) should add exactly {PROTECTED_FILES}; the \
             protected leg would not measure what it claims"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::util::fresh_temp_dir as temp_dir;

    fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn prepare_creates_the_workspace_files_policy_and_state_dir() -> Result<()> {
        let bench = temp_dir("protected-prepare")?;
        // a stray file from an older run must disappear
        fs::create_dir_all(bench.join("protected-workspace/protected"))?;
        fs::write(bench.join("protected-workspace/protected/f9999"), "")?;
        // a state dir with loose permissions gets fixed
        DirBuilder::new().mode(0o755).create(bench.join("state"))?;

        let setup = prepare(&bench, euid())?;
        assert!(setup.workspace.join(".git").is_dir());
        let mut names: Vec<String> = fs::read_dir(setup.workspace.join("protected"))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        assert_eq!(names.len(), PROTECTED_FILES);
        assert_eq!(names.first().map(String::as_str), Some("f0000"));
        assert_eq!(names.last().map(String::as_str), Some("f0999"));

        assert_eq!(fs::read_to_string(&setup.policy)?, policy_text(true));
        let meta = fs::symlink_metadata(&setup.state_dir)?;
        assert_eq!(meta.mode() & 0o7777, 0o700);
        assert_eq!(meta.uid(), euid());

        // a second prepare is idempotent
        let again = prepare(&bench, euid())?;
        assert_eq!(
            fs::read_dir(again.workspace.join("protected"))?.count(),
            PROTECTED_FILES
        );
        fs::remove_dir_all(&bench)?;
        Ok(())
    }

    #[test]
    fn state_dir_symlink_is_refused() -> Result<()> {
        let bench = temp_dir("protected-symlink")?;
        fs::create_dir_all(bench.join("elsewhere"))?;
        std::os::unix::fs::symlink(bench.join("elsewhere"), bench.join("state"))?;
        let err = format!("{:#}", prepare(&bench, euid()).err().context("no error")?);
        assert!(err.contains("not a directory"), "{err}");
        fs::remove_dir_all(&bench)?;
        Ok(())
    }

    #[test]
    fn policy_has_one_rule_with_the_glob() {
        let text = policy_text(true);
        assert_eq!(text.matches("[[files.deny_read]]").count(), 1);
        assert!(text.contains("id = \"bench-protected\""), "{text}");
        assert!(text.contains("paths = [\"protected/f*\"]"), "{text}");
        let control = policy_text(false);
        assert!(!control.contains("[["), "{control}");
    }

    #[test]
    fn run_options_name_the_policy_and_state_dir() {
        let setup = ProtectedSetup {
            workspace: PathBuf::from("/ws"),
            policy: PathBuf::from("/ws/policy.toml"),
            state_dir: PathBuf::from("/b/state"),
        };
        let args: Vec<_> = setup
            .run_options()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--user",
                "root",
                "--trust-policy",
                "--state-dir",
                "/b/state",
                "--policy",
                "/ws/policy.toml"
            ]
        );
    }

    #[test]
    fn session_start_is_parsed() -> Result<()> {
        let dir = temp_dir("protected-events")?;
        let file = dir.join("events.jsonl");
        fs::write(
            &file,
            "{\"kind\":\"session_start\",\"protected_files\":1003}\n{\"kind\":\"exec\"}\n",
        )?;
        assert_eq!(session_protected_files(&file)?, 1003);

        fs::write(&file, "{\"kind\":\"exec\",\"protected_files\":1}\n")?;
        assert!(session_protected_files(&file).is_err());
        fs::write(&file, "{\"kind\":\"session_start\"}\n")?;
        let err = format!("{:#}", session_protected_files(&file).err().context("ok")?);
        assert!(err.contains("no numeric protected_files"), "{err}");
        fs::write(&file, "")?;
        assert!(session_protected_files(&file).is_err());
        fs::write(&file, "not json\n")?;
        assert!(session_protected_files(&file).is_err());
        fs::remove_file(&file)?;
        assert!(session_protected_files(&file).is_err());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn the_rule_must_add_exactly_the_files() {
        assert!(check_marked(3, 1003).is_ok());
        assert!(check_marked(0, 1000).is_ok());
        assert!(check_marked(3, 1002).is_err());
        assert!(check_marked(3, 1004).is_err());
        assert!(check_marked(1003, 3).is_err());
    }
}
