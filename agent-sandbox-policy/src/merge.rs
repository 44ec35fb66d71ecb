//! Policy sources and the tighten-only merge into an [`EffectivePolicy`].
//!
//! Order: the embedded default, then the user policy (the machine owner's:
//! it may switch default rules off and set any value), then the repository
//! policy (committed by anyone with write access to the repository, read by
//! the agent: it may only add rules and tighten values).

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Level};
use crate::glob::PathGlob;
use crate::schema::{
    DenyReadRule, ExecRule, HttpRule, Located, NetworkRule, Origin, PolicyFile, ProtectRule,
    RuleMeta, Source, SqlRule, parse_file,
};
use crate::types::{Action, NetworkDefault};

/// The embedded default policy text (`default-policy.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../default-policy.toml");

/// Largest policy file read: a policy is a few kilobytes; this bounds memory
/// and parse time on a hostile file.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Where the user policy lives, relative to the home directory.
pub const USER_POLICY_RELATIVE: &str = ".config/agent-sandbox/policy.toml";

/// Errors of [`load`].
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A policy file could not be read.
    #[error("cannot read policy {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A policy file is larger than [`MAX_POLICY_BYTES`].
    #[error("policy {} is larger than {MAX_POLICY_BYTES} bytes; is it the right file?", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A policy file is not UTF-8 text.
    #[error("policy {} is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// One or more files are invalid, or the repository policy tries to
    /// loosen the user's; every problem is listed.
    #[error("{}", join(.0))]
    Invalid(Vec<Diagnostic>),
}

fn join(d: &[Diagnostic]) -> String {
    d.iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Inputs of [`load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// The invoking user's home (not root's when run under sudo); absolute.
    pub home: PathBuf,
    /// Where the search for the repository's `policy.toml` starts; absolute.
    pub cwd: PathBuf,
    /// `--policy FILE`: use this repository policy instead of searching.
    pub explicit: Option<PathBuf>,
    /// The user policy; `None` means `~/.config/agent-sandbox/policy.toml`
    /// if it exists. A path given here must exist.
    pub user_policy: Option<PathBuf>,
}

/// The merged policy every enforcement layer reads; every rule and value
/// knows where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    /// The invoking user's home, for `~/` globs.
    pub home: PathBuf,
    /// The workspace root, for relative globs: the directory of the
    /// repository policy, or the cwd without one (canonicalized).
    pub workspace: PathBuf,
    /// The files merged, in order.
    pub sources: Vec<Source>,
    /// Default rule ids the user policy switched off, where it did so.
    pub disabled: Vec<Located<String>>,
    /// Allow-list or deny-list mode.
    pub network_default: Located<NetworkDefault>,
    /// Maximum seconds between re-resolutions of rule host names.
    pub resolve_interval_secs: Located<u64>,
    /// Denied destinations (apply in both modes, and win over allows).
    pub network_deny: Vec<NetworkRule>,
    /// Allowed destinations (used in allow-list mode only).
    pub network_allow: Vec<NetworkRule>,
    /// Files no process may read.
    pub deny_read: Vec<DenyReadRule>,
    /// Files whose deletion/rename/overwrite is held or refused.
    pub protect: Vec<ProtectRule>,
    /// Command rules.
    pub exec: Vec<ExecRule>,
    /// SQL rules (reserved).
    pub sql: Vec<SqlRule>,
    /// HTTP rules (reserved).
    pub http: Vec<HttpRule>,
    /// Seconds an approval waits before it resolves to deny.
    pub approval_timeout_secs: Located<u64>,
    /// Deletions under the workspace or a protected tree that freeze the whole tree...
    pub mass_delete_files: Located<u64>,
    /// ...when they happen within this many seconds.
    pub mass_delete_window_secs: Located<u64>,
    /// Whether the secret scanner runs.
    pub scan_enabled: Located<bool>,
    /// Largest file the scanner reads.
    pub scan_max_bytes: Located<u64>,
    /// Time budget of a scan.
    pub scan_max_secs: Located<u64>,
    /// Globs the scanner skips (user policy only).
    pub scan_exempt: Vec<Located<PathGlob>>,
    /// Environment variables never scrubbed (user policy only).
    pub env_keep: Vec<Located<String>>,
    /// Non-fatal findings (e.g. `disable` naming no default rule).
    pub warnings: Vec<Diagnostic>,
    repository: Option<(PathBuf, Vec<u8>)>,
}

/// Reads a policy file with a size bound.
fn read_bounded(path: &Path) -> Result<Vec<u8>, PolicyError> {
    let file = fs::File::open(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn parse_bytes(bytes: &[u8], source: Source, path: &Path) -> Result<PolicyFile, PolicyError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PolicyError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    PolicyFile::parse(text, source).map_err(PolicyError::Invalid)
}

/// `agent-sandbox policy check FILE`: every syntax, schema and value error of
/// one file, sorted by position (empty when the file is valid). The file is
/// named in the diagnostics as `path` was given.
pub fn check(path: &Path) -> Vec<Diagnostic> {
    let whole = |message: String| {
        vec![Diagnostic {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            level: Level::Error,
            message,
            suggestion: None,
        }]
    };
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(e) => return whole(e.to_string()),
    };
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse_file(text, Source::Repository(path.to_path_buf())).1,
        Err(e) => whole(format!("not UTF-8 text ({e})")),
    }
}

/// The repository policy for a search starting at `cwd`: the first
/// `policy.toml` in `cwd` or its parents, stopping after the first directory
/// that contains `.git` (the repository root) or at `/`.
pub fn find_repository_policy(cwd: &Path) -> Option<PathBuf> {
    for dir in cwd.ancestors() {
        let candidate = dir.join("policy.toml");
        if candidate.is_file() {
            return Some(candidate);
        }
        if dir.join(".git").exists() {
            return None;
        }
    }
    None
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Loads the embedded default, the user policy and the repository policy and
/// merges them. Every invalid file and every loosening attempt of the
/// repository policy is reported in one [`PolicyError::Invalid`].
pub fn load(opts: &LoadOptions) -> Result<EffectivePolicy, PolicyError> {
    let default =
        PolicyFile::parse(DEFAULT_POLICY, Source::Default).map_err(PolicyError::Invalid)?;

    let user = match &opts.user_policy {
        Some(p) => Some(opts.cwd.join(p)),
        None => {
            let p = opts.home.join(USER_POLICY_RELATIVE);
            p.is_file().then_some(p)
        }
    };
    let repo = match &opts.explicit {
        // Relative to the cwd the caller gave, not to this process's.
        Some(p) => Some(opts.cwd.join(p)),
        None => find_repository_policy(&opts.cwd),
    };
    // Relative globs must resolve to absolute, canonical globs: anchor a
    // relative `--policy` at the cwd and resolve `..` and symlinks.
    let workspace = match &repo {
        Some(p) => p
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.cwd.clone()),
        None => opts.cwd.clone(),
    };
    let workspace = fs::canonicalize(&workspace).unwrap_or(workspace);

    // Parse both before failing so that both files' errors are shown.
    let mut errors = Vec::new();
    let user = match user {
        Some(p) => {
            match read_bounded(&p).and_then(|b| parse_bytes(&b, Source::User(p.clone()), &p)) {
                Ok(f) => Some(f),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        }
        None => None,
    };
    let repo = match repo {
        Some(p) => match read_bounded(&p) {
            Ok(bytes) => match parse_bytes(&bytes, Source::Repository(p.clone()), &p) {
                Ok(f) => Some((f, p, bytes)),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None => None,
    };
    if !errors.is_empty() {
        let mut diags = Vec::new();
        for e in errors {
            match e {
                PolicyError::Invalid(d) => diags.extend(d),
                // An unreadable file has no position; the first such error wins.
                other if diags.is_empty() => return Err(other),
                _ => {}
            }
        }
        return Err(PolicyError::Invalid(diags));
    }

    let mut eff = EffectivePolicy::from_default(default, opts.home.clone(), workspace);
    let mut diags = Vec::new();
    if let Some(user) = user {
        eff.apply_user(user, &mut diags);
    }
    if let Some((file, path, bytes)) = repo {
        eff.apply_repository(file, &mut diags);
        eff.repository = Some((path, bytes));
    }
    if diags.iter().any(Diagnostic::is_error) {
        return Err(PolicyError::Invalid(diags));
    }
    eff.warnings.extend(diags);
    Ok(eff)
}

fn builtin<T>(value: T) -> Located<T> {
    Located {
        value,
        origin: Origin {
            source: Source::Default,
            line: 0,
            column: 0,
        },
    }
}

fn at(origin: &Origin, level: Level, message: String) -> Diagnostic {
    Diagnostic {
        file: origin.source.file_name(),
        line: origin.line,
        column: origin.column,
        level,
        message,
        suggestion: None,
    }
}

/// `*` in a command pattern matches any run of characters; a linear-memory
/// match, so patterns from a policy cannot make it blow up.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let mut prev = vec![false; t.len() + 1];
    prev[0] = true;
    for pc in &p {
        let mut cur = vec![false; t.len() + 1];
        if *pc == '*' {
            let mut any = false;
            for j in 0..=t.len() {
                any |= prev[j];
                cur[j] = any;
            }
        } else {
            for j in 1..=t.len() {
                cur[j] = prev[j - 1] && t[j - 1] == *pc;
            }
        }
        prev = cur;
    }
    prev[t.len()]
}

/// Whether two command (or SQL) patterns can match the same text: one
/// matches the other, or they start with the same word.
fn patterns_overlap(a: &str, b: &str) -> bool {
    let first = |s: &str| s.split_whitespace().next().map(str::to_ascii_lowercase);
    wildcard(a, b) || wildcard(b, a) || (first(a).is_some() && first(a) == first(b))
}

impl EffectivePolicy {
    fn from_default(d: PolicyFile, home: PathBuf, workspace: PathBuf) -> Self {
        EffectivePolicy {
            home,
            workspace,
            sources: vec![Source::Default],
            disabled: Vec::new(),
            network_default: d
                .network
                .default
                .unwrap_or_else(|| builtin(NetworkDefault::Allow)),
            resolve_interval_secs: d
                .network
                .resolve_interval_secs
                .unwrap_or_else(|| builtin(300)),
            network_deny: d.network.deny,
            network_allow: d.network.allow,
            deny_read: d.deny_read,
            protect: d.protect,
            exec: d.exec,
            sql: d.sql,
            http: d.http,
            approval_timeout_secs: d.approval_timeout_secs.unwrap_or_else(|| builtin(300)),
            mass_delete_files: d.mass_delete_files.unwrap_or_else(|| builtin(200)),
            mass_delete_window_secs: d.mass_delete_window_secs.unwrap_or_else(|| builtin(2)),
            scan_enabled: d.scan.enabled.unwrap_or_else(|| builtin(true)),
            scan_max_bytes: d.scan.max_bytes.unwrap_or_else(|| builtin(1 << 30)),
            scan_max_secs: d.scan.max_secs.unwrap_or_else(|| builtin(10)),
            scan_exempt: d.scan.exempt,
            env_keep: d.env_keep,
            warnings: Vec::new(),
            repository: None,
        }
    }

    /// Every rule's metadata, in render order.
    pub fn rules(&self) -> Vec<&RuleMeta> {
        let mut out: Vec<&RuleMeta> = Vec::new();
        out.extend(self.network_deny.iter().map(|r| &r.meta));
        out.extend(self.network_allow.iter().map(|r| &r.meta));
        out.extend(self.deny_read.iter().map(|r| &r.meta));
        out.extend(self.protect.iter().map(|r| &r.meta));
        out.extend(self.exec.iter().map(|r| &r.meta));
        out.extend(self.sql.iter().map(|r| &r.meta));
        out.extend(self.http.iter().map(|r| &r.meta));
        out
    }

    /// The rule with this id, if any.
    pub fn rule(&self, id: &str) -> Option<&RuleMeta> {
        self.rules().into_iter().find(|m| m.id == id)
    }

    /// The policy files merged (the user's and the repository's; the embedded default is
    /// not a file).
    pub fn files(&self) -> Vec<PathBuf> {
        self.sources
            .iter()
            .filter_map(|s| match s {
                Source::User(p) | Source::Repository(p) => Some(p.clone()),
                Source::Default => None,
            })
            .collect()
    }

    /// The repository policy file merged, if any.
    pub fn repository_path(&self) -> Option<&Path> {
        self.repository.as_ref().map(|(p, _)| p.as_path())
    }

    /// The exact bytes of the repository policy, for the trust store.
    pub fn repository_bytes(&self) -> Option<&[u8]> {
        self.repository.as_ref().map(|(_, b)| b.as_slice())
    }

    /// SHA-256 (hex) of the repository policy bytes; `None` without one.
    pub fn hash(&self) -> Option<String> {
        self.repository_bytes().map(sha256_hex)
    }

    /// A glob of a rule as an absolute glob for this home and workspace.
    pub fn resolve(&self, glob: &PathGlob) -> String {
        glob.resolve(&self.home, &self.workspace)
    }

    /// The first `[[files.deny_read]]` rule that denies reading `path` (an
    /// absolute, canonical path): one of its globs matches and none of its
    /// `except` globs does.
    pub fn read_denied_by(&self, path: &Path) -> Option<&DenyReadRule> {
        self.deny_read.iter().find(|r| {
            let hit = |g: &PathGlob| g.resolved(&self.home, &self.workspace).matches(path);
            r.paths.iter().any(hit) && !r.except.iter().any(hit)
        })
    }

    fn remove_rule(&mut self, id: &str) -> bool {
        let before = self.rules().len();
        self.network_deny.retain(|r| r.meta.id != id);
        self.network_allow.retain(|r| r.meta.id != id);
        self.deny_read.retain(|r| r.meta.id != id);
        self.protect.retain(|r| r.meta.id != id);
        self.exec.retain(|r| r.meta.id != id);
        self.sql.retain(|r| r.meta.id != id);
        self.http.retain(|r| r.meta.id != id);
        self.rules().len() != before
    }

    /// Reports rules of `file` whose id is already taken.
    fn check_ids(&self, file: &PolicyFile, diags: &mut Vec<Diagnostic>, hint: &str) {
        for meta in file.rules() {
            if let Some(prev) = self.rule(&meta.id) {
                diags.push(at(
                    &meta.origin,
                    Level::Error,
                    format!(
                        "rule \"{}\" reuses the id of rule \"{}\" from {}; ids are unique across the effective policy{hint}",
                        meta.id, prev.id, prev.origin
                    ),
                ));
            }
        }
    }

    fn append_rules(&mut self, file: PolicyFile) {
        self.network_deny.extend(file.network.deny);
        self.network_allow.extend(file.network.allow);
        self.deny_read.extend(file.deny_read);
        self.protect.extend(file.protect);
        self.exec.extend(file.exec);
        self.sql.extend(file.sql);
        self.http.extend(file.http);
    }

    fn apply_user(&mut self, mut user: PolicyFile, diags: &mut Vec<Diagnostic>) {
        self.sources.push(user.source.clone());
        for id in std::mem::take(&mut user.disable) {
            if self.remove_rule(&id.value) {
                self.disabled.push(id);
            } else {
                diags.push(at(
                    &id.origin,
                    Level::Warning,
                    format!(
                        "disable: \"{}\" names no rule of the embedded default",
                        id.value
                    ),
                ));
            }
        }
        self.check_ids(&user, diags, " (disable the default rule to replace it)");
        if let Some(v) = user.network.default.take() {
            self.network_default = v;
        }
        if let Some(v) = user.network.resolve_interval_secs.take() {
            self.resolve_interval_secs = v;
        }
        if let Some(v) = user.approval_timeout_secs.take() {
            self.approval_timeout_secs = v;
        }
        if let Some(v) = user.mass_delete_files.take() {
            self.mass_delete_files = v;
        }
        if let Some(v) = user.mass_delete_window_secs.take() {
            self.mass_delete_window_secs = v;
        }
        if let Some(v) = user.scan.enabled.take() {
            self.scan_enabled = v;
        }
        if let Some(v) = user.scan.max_bytes.take() {
            self.scan_max_bytes = v;
        }
        if let Some(v) = user.scan.max_secs.take() {
            self.scan_max_secs = v;
        }
        self.scan_exempt.append(&mut user.scan.exempt);
        self.env_keep.append(&mut user.env_keep);
        self.append_rules(user);
    }

    fn apply_repository(&mut self, mut repo: PolicyFile, diags: &mut Vec<Diagnostic>) {
        self.sources.push(repo.source.clone());
        let refuse = |diags: &mut Vec<Diagnostic>, origin: &Origin, what: String| {
            diags.push(at(
                origin,
                Level::Error,
                format!("{what}; a repository policy may only tighten"),
            ));
        };

        for id in &repo.disable {
            let target = match self.rule(&id.value) {
                Some(r) => format!("rule \"{}\" from {}", r.id, r.origin),
                None => "a rule (none has this id)".to_string(),
            };
            refuse(
                diags,
                &id.origin,
                format!("disable = [\"{}\"] would switch off {target}", id.value),
            );
        }
        for k in &repo.env_keep {
            refuse(
                diags,
                &k.origin,
                format!(
                    "[env] keep = [\"{}\"] would pass a variable through the sandbox's built-in environment scrubbing (only the user policy may keep variables)",
                    k.value
                ),
            );
        }
        for g in &repo.scan.exempt {
            refuse(
                diags,
                &g.origin,
                format!(
                    "scan.exempt \"{}\" would exempt files from the scan enabled by scan.enabled from {}",
                    g.value, self.scan_enabled.origin
                ),
            );
        }
        if let Some(e) = repo.scan.enabled.take()
            && !e.value
            && self.scan_enabled.value
        {
            refuse(
                diags,
                &e.origin,
                format!(
                    "scan.enabled = false would turn off scan.enabled = true from {}",
                    self.scan_enabled.origin
                ),
            );
        }

        let prior = self.network_default.clone();
        if let Some(d) = repo.network.default.take() {
            match (d.value, prior.value) {
                (NetworkDefault::Allow, NetworkDefault::Deny) => refuse(
                    diags,
                    &d.origin,
                    format!(
                        "network.default = \"allow\" would loosen network.default = \"deny\" from {}",
                        prior.origin
                    ),
                ),
                (NetworkDefault::Deny, NetworkDefault::Allow) => self.network_default = d,
                _ => {}
            }
        }
        if prior.value == NetworkDefault::Deny {
            for r in &repo.network.allow {
                refuse(
                    diags,
                    &r.meta.origin,
                    format!(
                        "[[network.allow]] rule \"{}\" would open a destination closed by network.default = \"deny\" from {}",
                        r.meta.id, prior.origin
                    ),
                );
            }
        }

        let allow_refusals: Vec<(&RuleMeta, &str, &str)> = repo
            .exec
            .iter()
            .filter(|r| r.action == Action::Allow)
            .map(|r| (&r.meta, "exec", r.pattern.as_str()))
            .chain(
                repo.sql
                    .iter()
                    .filter(|r| r.action == Action::Allow)
                    .map(|r| (&r.meta, "sql", r.pattern.as_str())),
            )
            .chain(
                repo.http
                    .iter()
                    .filter(|r| r.action == Action::Allow)
                    .map(|r| (&r.meta, "http", "")),
            )
            .collect();
        for (meta, kind, pattern) in allow_refusals {
            let target = self.loosened_by(kind, pattern);
            refuse(
                diags,
                &meta.origin,
                format!(
                    "[[{kind}.rule]] \"{}\" with action = \"allow\" would loosen {target}",
                    meta.id
                ),
            );
        }

        self.check_ids(&repo, diags, "");

        if let Some(t) = repo.approval_timeout_secs.take()
            && t.value < self.approval_timeout_secs.value
        {
            self.approval_timeout_secs = t;
        }
        // Tighten only: fewer deletions, or a longer window, freeze sooner.
        if let Some(n) = repo.mass_delete_files.take()
            && n.value < self.mass_delete_files.value
        {
            self.mass_delete_files = n;
        }
        if let Some(w) = repo.mass_delete_window_secs.take()
            && w.value > self.mass_delete_window_secs.value
        {
            self.mass_delete_window_secs = w;
        }
        if let Some(t) = repo.network.resolve_interval_secs.take()
            && t.value < self.resolve_interval_secs.value
        {
            self.resolve_interval_secs = t;
        }
        // Scanning more is stricter: the larger budget wins.
        if let Some(b) = repo.scan.max_bytes.take()
            && b.value > self.scan_max_bytes.value
        {
            self.scan_max_bytes = b;
        }
        if let Some(s) = repo.scan.max_secs.take()
            && s.value > self.scan_max_secs.value
        {
            self.scan_max_secs = s;
        }
        self.append_rules(repo);
    }

    /// Names the existing ask/deny rule a repository allow rule would
    /// override, or says what kind of protection it would loosen.
    fn loosened_by(&self, kind: &str, pattern: &str) -> String {
        let hit = match kind {
            "exec" => self
                .exec
                .iter()
                .find(|r| r.action != Action::Allow && patterns_overlap(&r.pattern, pattern))
                .map(|r| &r.meta),
            "sql" => self
                .sql
                .iter()
                .find(|r| r.action != Action::Allow && patterns_overlap(&r.pattern, pattern))
                .map(|r| &r.meta),
            _ => self
                .http
                .iter()
                .find(|r| r.action != Action::Allow)
                .map(|r| &r.meta),
        };
        match hit {
            Some(m) => format!("rule \"{}\" from {}", m.id, m.origin),
            None => format!(
                "the {kind} checks of the user policy, the embedded default and the built-in packs"
            ),
        }
    }

    /// The effective policy as TOML (it parses back as a policy file), with
    /// `# from <source>:<line>` on every rule and value.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# Effective agent-sandbox policy.");
        let _ = writeln!(o, "# Sources, in merge order:");
        for s in &self.sources {
            match (s, self.hash()) {
                (Source::Repository(_), Some(h)) => {
                    let _ = writeln!(o, "#   {s} (sha256 {h})");
                }
                _ => {
                    let _ = writeln!(o, "#   {s}");
                }
            }
        }
        let _ = writeln!(o, "# Home: {}", self.home.display());
        let _ = writeln!(o, "# Workspace: {}", self.workspace.display());
        for d in &self.disabled {
            let _ = writeln!(
                o,
                "# Disabled default rule \"{}\"  # from {}",
                d.value, d.origin
            );
        }

        let _ = writeln!(o, "\n[network]");
        setting(
            &mut o,
            "default",
            &quote(&self.network_default.value.to_string()),
            &self.network_default.origin,
        );
        setting(
            &mut o,
            "resolve_interval_secs",
            &self.resolve_interval_secs.value.to_string(),
            &self.resolve_interval_secs.origin,
        );
        for (name, rules) in [("deny", &self.network_deny), ("allow", &self.network_allow)] {
            for r in rules {
                header(&mut o, &format!("network.{name}"), &r.meta);
                list(
                    &mut o,
                    "hosts",
                    r.hosts.iter().map(|h| quote(&h.to_string())),
                );
                list(
                    &mut o,
                    "cidrs",
                    r.cidrs.iter().map(|c| quote(&c.to_string())),
                );
                list(&mut o, "ports", r.ports.iter().map(|p| p.to_string()));
                list(
                    &mut o,
                    "protocols",
                    r.protocols.iter().map(|p| quote(&p.to_string())),
                );
            }
        }
        for r in &self.deny_read {
            header(&mut o, "files.deny_read", &r.meta);
            list(&mut o, "paths", r.paths.iter().map(|g| quote(g.as_str())));
            list(&mut o, "except", r.except.iter().map(|g| quote(g.as_str())));
        }
        for r in &self.protect {
            header(&mut o, "files.protect", &r.meta);
            list(&mut o, "paths", r.paths.iter().map(|g| quote(g.as_str())));
            let _ = writeln!(o, "action = {}", quote(&r.action.to_string()));
        }
        for r in &self.exec {
            header(&mut o, "exec.rule", &r.meta);
            let _ = writeln!(o, "action = {}", quote(&r.action.to_string()));
            if let Some(s) = r.severity {
                let _ = writeln!(o, "severity = {}", quote(&s.to_string()));
            }
            let _ = writeln!(o, "match = {}", quote(&r.pattern));
        }
        for r in &self.sql {
            header(&mut o, "sql.rule", &r.meta);
            let _ = writeln!(o, "action = {}", quote(&r.action.to_string()));
            let _ = writeln!(o, "match = {}", quote(&r.pattern));
        }
        for r in &self.http {
            header(&mut o, "http.rule", &r.meta);
            let _ = writeln!(o, "action = {}", quote(&r.action.to_string()));
            if let Some(m) = &r.method {
                let _ = writeln!(o, "method = {}", quote(m));
            }
            if let Some(h) = &r.host {
                let _ = writeln!(o, "host = {}", quote(&h.to_string()));
            }
            if let Some(p) = &r.path {
                let _ = writeln!(o, "path = {}", quote(p));
            }
        }

        let _ = writeln!(o, "\n[approval]");
        setting(
            &mut o,
            "timeout_secs",
            &self.approval_timeout_secs.value.to_string(),
            &self.approval_timeout_secs.origin,
        );
        setting(
            &mut o,
            "mass_delete_files",
            &self.mass_delete_files.value.to_string(),
            &self.mass_delete_files.origin,
        );
        setting(
            &mut o,
            "mass_delete_window_secs",
            &self.mass_delete_window_secs.value.to_string(),
            &self.mass_delete_window_secs.origin,
        );
        let _ = writeln!(o, "\n[scan]");
        setting(
            &mut o,
            "enabled",
            &self.scan_enabled.value.to_string(),
            &self.scan_enabled.origin,
        );
        setting(
            &mut o,
            "max_bytes",
            &self.scan_max_bytes.value.to_string(),
            &self.scan_max_bytes.origin,
        );
        setting(
            &mut o,
            "max_secs",
            &self.scan_max_secs.value.to_string(),
            &self.scan_max_secs.origin,
        );
        located_list(
            &mut o,
            "exempt",
            self.scan_exempt
                .iter()
                .map(|g| (quote(g.value.as_str()), &g.origin)),
        );
        let _ = writeln!(o, "\n[env]");
        located_list(
            &mut o,
            "keep",
            self.env_keep.iter().map(|k| (quote(&k.value), &k.origin)),
        );
        o
    }
}

fn setting(o: &mut String, key: &str, value: &str, origin: &Origin) {
    let _ = writeln!(o, "{key} = {value}  # from {origin}");
}

fn header(o: &mut String, table: &str, meta: &RuleMeta) {
    let _ = writeln!(o, "\n[[{table}]]  # from {}", meta.origin);
    let _ = writeln!(o, "id = {}", quote(&meta.id));
    if let Some(w) = &meta.why {
        let _ = writeln!(o, "why = {}", quote(w));
    }
}

fn list(o: &mut String, key: &str, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.collect();
    if !items.is_empty() {
        let _ = writeln!(o, "{key} = [{}]", items.join(", "));
    }
}

fn located_list<'a>(o: &mut String, key: &str, items: impl Iterator<Item = (String, &'a Origin)>) {
    let items: Vec<(String, &Origin)> = items.collect();
    if items.is_empty() {
        let _ = writeln!(o, "{key} = []");
        return;
    }
    let _ = writeln!(o, "{key} = [");
    for (v, origin) in items {
        let _ = writeln!(o, "  {v},  # from {origin}");
    }
    let _ = writeln!(o, "]");
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
