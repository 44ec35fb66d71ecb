//! Destructive-command detector for agent-sandbox.
//!
//! The sandbox holds every `execve` of an agent's process tree (seccomp user notification) and
//! asks this pure library whether the command about to run is destructive. The answer is a
//! [`Verdict`]: [`Action::Allow`] (run it), [`Action::Ask`] (hold it until a human decides) or
//! [`Action::Deny`] (refuse it: never legitimate, such as `rm -rf /` or `dd of=/dev/sda`).
//!
//! The library does no I/O: it looks only at the argv, the working directory, the environment
//! and the workspace/home paths given in a [`CommandContext`]. It is a string-level layer that
//! gives a human a friendly, explained pause; the kernel layers of the sandbox gate the effects.
//!
//! # Public API
//! - [`CommandContext`]: what is about to run (argv, cwd, env, workspace, home).
//! - [`Detector::builtin`] / [`Detector::with_rules`]: build a detector, optionally with
//!   [`UserRule`]s; [`Detector::classify`] returns a [`Verdict`]
//!   ([`Detector::classify_deferring_cwd`] learns the working directory only when a rule
//!   needs it); [`Detector::rules`] lists every rule as [`RuleInfo`].
//! - [`Verdict::exit_code`]: 0 allow, 10 ask, 20 deny (for a CLI or hook wrapper).
//! - [`DetectError`]: why a set of user rules was refused.
//!
//! # What it sees through
//! Wrappers are peeled before classification: `sudo`, `doas`, `su -c`, `runuser`, `env`, `nice`,
//! `timeout`, `nohup`, `setsid`, `time`, `command`, `exec`, `stdbuf`, `ionice`, `chrt`,
//! `taskset`, `flock`, `chroot` (paths are then resolved under the new root), `watch`, `xargs`
//! (the command it runs gets an unknown extra target), `find -exec/-execdir/-ok`, `busybox`,
//! package runners (`npx`, `bunx`, `pnpm exec|dlx`, `npm exec`, `yarn dlx|exec`, `bundle exec`,
//! `poetry run`, `uv run`, `uvx`, `pipx run`, `pipenv run`, `pdm run`), secret injectors
//! (`railway run`, `doppler run`, `op run`, `dotenv`, `infisical run`, `aws-vault exec`) and
//! remote runners (`ssh host cmd`, `kubectl exec`, `docker exec`, `heroku run`,
//! `fly ssh console -C`), where paths are judged without a workspace. Shell scripts given to
//! `bash|sh|zsh|dash|ksh -c` (any option cluster holding `c`), `eval`, here-strings and
//! here-documents fed to a shell are parsed with `brush-parser` (a bash grammar); every simple
//! command in pipelines, lists, subshells, loops, conditionals, functions and command
//! substitutions is classified, `cd`, plain variable assignments and the positional parameters
//! of `sh -c SCRIPT $0 $1...` (including `"$@"`) are tracked, and text fed to a database CLI by
//! `<<<`, `<<EOF` or `echo ... |` is scanned as SQL/JS/Redis commands. Inline interpreter code
//! (`python -c`, `node -e`, `ruby -e`, `perl -e`, `php -r`) is searched for tree deletions and for
//! strings handed to `os.system`/`subprocess`/`execSync`/`system`.
//!
//! # Decisions (documented precedence and judgement calls)
//! - The worst verdict of all simple commands wins; verdicts order by action
//!   (`Allow < Ask < Deny`) then severity.
//! - `rm`: severity follows the target. `/`, `/*`, top-level system directories and the home
//!   directory are denied (Critical). The workspace root (or `*` in it), directories containing
//!   the workspace and unknown targets under those are asked (Critical); paths outside the
//!   workspace are asked (High when recursive, Medium otherwise); `.git` is asked (High);
//!   recursive deletion inside the workspace is asked (Medium) and in `/tmp` (Low). A
//!   non-recursive `rm` of named files inside the workspace or a temp directory is allowed: `-f`
//!   alone only silences prompts. `rmdir` is allowed (it removes only empty directories).
//!   Targets that are not statically known (`$VAR`, `$(...)`, xargs input) are asked.
//! - Build-tool cleans (`cargo clean`, `make clean`) are allowed: we cannot see into them and
//!   they remove regenerable output.
//! - `terraform|tofu apply` is asked even without `-auto-approve` (Medium; High with it) because
//!   the agent controls the prompt's stdin; `plan -destroy` is allowed; `destroy` is Critical.
//!   `pulumi up` and `cdk deploy` follow the same reasoning.
//! - SQL run from a file (`psql -f x.sql`) is allowed: the library does no I/O. SQL given as an
//!   argument or on stdin is scanned with comments and string literals skipped.
//! - `docker rm -f` of a container is allowed (containers are recreated from images; data lives
//!   in volumes); removing volumes is asked. `redis-cli DEL key` is allowed; `FLUSHALL` is asked.
//! - `git checkout -- <file>` and `git restore <file>` discard uncommitted work: asked (Low for
//!   named files, Medium for `.`/directories).
//! - Fork bombs, writes to block devices (`dd of=/dev/sda`, `> /dev/sda`, `mkfs /dev/...`,
//!   `wipefs -a /dev/...`) and recursive `chmod`/`chown` of `/`, system directories or home are
//!   denied.
//! - A script that cannot be parsed (or is too large or too deeply nested to parse safely) fails
//!   closed: it is asked (Low), and a crude fallback split still catches obvious commands.
//! - Symlinks are not resolved and script files (`bash deploy.sh`, `psql -f x.sql`, `make clean`)
//!   are not read (pure library); the kernel layers cover those gaps.
//! - Commands inside `docker run` containers are not analysed (ephemeral); `docker exec`,
//!   `kubectl exec`, `ssh` and `heroku run` commands are, judged without a workspace.
//!
//! # User rules and precedence
//! A [`UserRule::pattern`] is shell-split into words and matched against the unwrapped argv of
//! each simple command: each word is a glob (`*` and `?` do not cross `/`, `**` does), and a
//! trailing `...` word matches any rest (including nothing). The first word also matches the
//! basename of an absolute program path. Arguments whose value is not statically known match
//! only `...`. Precedence, per simple command:
//! 1. A built-in `Deny` always stands: user rules cannot allow `rm -rf /`.
//! 2. A user `deny` or `ask` rule that matches adds its verdict (and wins over a user `allow`).
//! 3. Otherwise a user `allow` rule that matches replaces built-in `Ask` verdicts with `Allow`.
//!
//! # Panics
//! The library never panics on its own. `brush-parser` contains `unwrap`s, so its calls are
//! wrapped in `catch_unwind` (effective when the binary is built with `panic = "unwind"`, the
//! default) and input is bounded in size and nesting depth before it reaches the parser.

#![deny(missing_docs)]

mod analyze;
mod cloud;
mod db;
mod docker;
mod fs;
mod git;
mod infra;
mod inline;
mod paths;
mod rules;
mod shell;
mod sql;
mod user;
mod words;

use std::fmt;
use std::path::Path;

pub use rules::RuleInfo;

/// What is about to run: the argv of the held `execve` and the context it runs in.
#[derive(Debug, Clone, Copy)]
pub struct CommandContext<'a> {
    /// The argv as `execve` sees it (`argv[0]` may be a path such as `/usr/bin/rm`).
    pub argv: &'a [String],
    /// The working directory of the process.
    pub cwd: &'a Path,
    /// The environment of the `execve`, used to expand `$VAR` in shell scripts. A variable that
    /// is absent is treated as unknown (not as empty), which errs towards asking.
    pub env: &'a [(String, String)],
    /// The workspace (repository) root, if any. Without one every path is "outside".
    pub workspace: Option<&'a Path>,
    /// The home directory of the user the agent runs as.
    pub home: Option<&'a Path>,
}

/// What the sandbox should do with a command. Ordered: `Allow < Ask < Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Let it run.
    Allow,
    /// Hold it until a human approves.
    Ask,
    /// Refuse it.
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Ask => "ask",
            Action::Deny => "deny",
        })
    }
}

/// How bad the effect would be. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Recoverable or narrow (a temp directory, one discarded file).
    Low,
    /// Inside the workspace or otherwise contained.
    Medium,
    /// Outside the workspace, remote resources, history rewrites.
    High,
    /// The system, the home directory, whole databases or infrastructure.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// The detector's answer for one `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What to do.
    pub action: Action,
    /// The rule that decided (built-in id such as `git.push-force`, or a user rule id).
    pub rule_id: Option<String>,
    /// How bad the effect would be (absent for a plain allow).
    pub severity: Option<Severity>,
    /// One human-readable sentence: what was found and why it matters.
    pub explanation: String,
    /// The unwrapped inner command that matched (for `sudo bash -c 'rm -rf x'`: `rm -rf x`).
    pub matched: Vec<String>,
}

impl Verdict {
    /// Process exit code for wrappers and hooks: 0 allow, 10 ask, 20 deny.
    pub fn exit_code(&self) -> i32 {
        match self.action {
            Action::Allow => 0,
            Action::Ask => 10,
            Action::Deny => 20,
        }
    }
}

/// A rule added by the user (policy file) on top of the built-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRule {
    /// Unique id, shown in verdicts; must not collide with a built-in id.
    pub id: String,
    /// Why the rule exists (shown as the explanation).
    pub why: Option<String>,
    /// The action when the pattern matches (see the crate docs for precedence).
    pub action: Action,
    /// Severity reported when it matches (default: High for deny, Medium for ask).
    pub severity: Option<Severity>,
    /// A command-line pattern: shell-split words, each a glob; a trailing `...` matches any rest.
    pub pattern: String,
}

/// Why a set of user rules was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DetectError {
    /// A rule has an empty id.
    #[error("user rule #{index} has an empty id: give every rule a short unique id")]
    EmptyRuleId {
        /// Position of the rule in the list (0-based).
        index: usize,
    },
    /// Two rules (or a rule and a built-in) share an id.
    #[error("user rule id `{id}` is used twice (or is a built-in rule id): rename one of them")]
    DuplicateRuleId {
        /// The id.
        id: String,
    },
    /// The pattern has no words.
    #[error(
        "user rule `{id}` has an empty pattern: write the command it should match, e.g. `rm -rf ./target`"
    )]
    EmptyPattern {
        /// The rule id.
        id: String,
    },
    /// The pattern cannot be shell-split (unbalanced quotes).
    #[error("user rule `{id}`: pattern `{pattern}` has unbalanced quotes: close every quote")]
    BadQuoting {
        /// The rule id.
        id: String,
        /// The pattern as given.
        pattern: String,
    },
    /// `...` appears somewhere other than the last word.
    #[error("user rule `{id}`: `...` may only be the last word of the pattern `{pattern}`")]
    MisplacedEllipsis {
        /// The rule id.
        id: String,
        /// The pattern as given.
        pattern: String,
    },
}

/// The classifier: built-in rules plus optional user rules.
#[derive(Debug, Clone)]
pub struct Detector {
    user: Vec<user::CompiledRule>,
}

impl Detector {
    /// A detector with only the built-in rules.
    pub fn builtin() -> Self {
        Detector { user: Vec::new() }
    }

    /// A detector with the built-in rules plus `rules` (see the crate docs for precedence).
    pub fn with_rules(rules: Vec<UserRule>) -> Result<Self, DetectError> {
        Ok(Detector {
            user: user::compile(rules)?,
        })
    }

    /// Classifies one command. Never panics; unparseable input is asked, not allowed.
    pub fn classify(&self, cmd: &CommandContext) -> Verdict {
        analyze::classify(self, cmd)
    }

    /// Classifies one command without reading its working directory unless a rule needs it:
    /// `cwd` is called at most once, only when the verdict could depend on the directory
    /// (a relative deletion target, `cd`, `$PWD`...). The verdict is the one
    /// [`Detector::classify`] gives with `cmd.cwd` set to what `cwd` returns; `cmd.cwd` itself
    /// is not used. For callers that pay for learning the directory (the sandbox's exec gate
    /// reads it from `/proc`), most commands never need it.
    pub fn classify_deferring_cwd(
        &self,
        cmd: &CommandContext,
        cwd: impl FnOnce() -> std::path::PathBuf,
    ) -> Verdict {
        if let Some(v) = analyze::classify_without_cwd(self, cmd) {
            return v;
        }
        let dir = cwd();
        analyze::classify(self, &CommandContext { cwd: &dir, ..*cmd })
    }

    /// Every rule, built-in first, then user rules.
    pub fn rules(&self) -> impl Iterator<Item = RuleInfo> + '_ {
        rules::RuleId::ALL
            .iter()
            .map(|r| r.info())
            .chain(self.user.iter().map(|u| u.info()))
    }

    pub(crate) fn user_rules(&self) -> &[user::CompiledRule] {
        &self.user
    }
}
