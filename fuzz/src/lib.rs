//! Fuzz harnesses of agent-sandbox: the code that turns a fuzzer's bytes into calls of the
//! policy parser, the command detector and the audit verifier, in-process.
//!
//! The libFuzzer entry points in `fuzz_targets/` are one line each and call the functions here,
//! so the same harnesses also run in this crate's tests over the committed seed corpora
//! (`corpus/<target>/`) without libFuzzer. `cargo xtask fuzz` builds and runs them with
//! `cargo +nightly fuzz run`.
//!
//! # Public API
//! - [`policy`]: `PolicyFile::parse` of the input, every diagnostic rendered; a valid file is
//!   also merged over the embedded default with [`agent_sandbox_policy::load`] (as the
//!   repository policy, then as the user policy) and the merged policy rendered (it must parse
//!   back), hashed and queried.
//! - [`detector`]: [`detector_input`] splits the input into an argv and an optional user-rule
//!   pattern; the argv is classified by the built-in detector and, with the rule, by
//!   `Detector::with_rules`, and the documented precedence of user rules is asserted.
//! - [`audit`]: `verify_bytes` of the input with [`AUDIT_KEY`] (with and without the seed
//!   log's checkpoint), then of the input with every line re-sealed under that key so that the
//!   checks after the MAC (seq, prev, session) see arbitrary content; `Checkpoint::parse` and
//!   `Report::from_reader` of the input.
//! - [`audit_seed_log`]: the valid seed log, written by `AuditWriter` from
//!   [`AUDIT_SEED_EVENTS`] (the seed files are derived from it, see `tests/seeds.rs`).
//!
//! A panic that escapes a harness is a finding: libFuzzer records the input as a crash.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use agent_sandbox_audit::{AuditKey, AuditWriter, Checkpoint, Report, render_text, verify_bytes};
use agent_sandbox_detect::{Action, CommandContext, Detector, UserRule};
use agent_sandbox_policy::{LoadOptions, PolicyFile, Source, load};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

// ---------------------------------------------------------------------------------------------
// policy

/// Where the fuzzed policy claims to live (diagnostics name it; it is never read).
const POLICY_PATH: &str = "/home/fuzz/repo/policy.toml";

/// Paths asked of a merged policy's `read_denied_by`: credentials the default denies, workspace
/// files, and a deep path that makes `**` globs work.
const PROBE_PATHS: &[&str] = &[
    "/home/fuzz/.ssh/id_ed25519",
    "/home/fuzz/.aws/credentials",
    "/home/fuzz/repo/.env",
    "/home/fuzz/repo/.env.example",
    "/home/fuzz/repo/src/main.rs",
    "/etc/passwd",
    "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/.env",
];

/// The directories `load` is pointed at: a home and a repository whose `.git` stops the search
/// for a `policy.toml` above it. Created once per process.
struct LoadDirs {
    // Kept alive so that the directory exists until the process exits.
    _dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

fn load_dirs() -> Option<&'static LoadDirs> {
    static DIRS: OnceLock<Option<LoadDirs>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let dir = tempfile::tempdir().ok()?;
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).ok()?;
        std::fs::create_dir_all(&home).ok()?;
        Some(LoadDirs {
            _dir: dir,
            home,
            repo,
        })
    })
    .as_ref()
}

/// Policy harness: any UTF-8 text (other bytes are refused before parsing, as `load` does).
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let repo_source = Source::Repository(PathBuf::from(POLICY_PATH));
    let parsed = PolicyFile::parse(text, repo_source);
    match &parsed {
        Ok(file) => {
            let _ = file.rules();
        }
        Err(diags) => {
            assert!(
                diags.iter().any(|d| d.is_error()),
                "parse failed without an error diagnostic: {diags:?}"
            );
            for d in diags {
                let _ = d.to_string();
            }
        }
    }
    // Validation does not depend on the source, so one parse tells whether `load` gets past
    // parsing (checked by `tests/seeds.rs`).
    if parsed.is_ok() {
        merge(text);
    }
}

/// Merges `text` over the embedded default, as the repository policy and as the user policy,
/// through the same `load` the supervisor uses (it reads files, so the text is written out).
fn merge(text: &str) {
    let Some(dirs) = load_dirs() else {
        return;
    };
    let policy_file = dirs.repo.join("policy.toml");
    let user_file = dirs.home.join("user-policy.toml");
    if std::fs::write(&policy_file, text).is_err() || std::fs::write(&user_file, text).is_err() {
        return;
    }
    let as_repository = LoadOptions {
        home: dirs.home.clone(),
        cwd: dirs.repo.clone(),
        explicit: Some(policy_file.clone()),
        user_policy: None,
    };
    let as_user = LoadOptions {
        home: dirs.home.clone(),
        cwd: dirs.home.clone(),
        explicit: None,
        user_policy: Some(user_file),
    };
    for opts in [as_repository, as_user] {
        match load(&opts) {
            Ok(eff) => {
                let rendered = eff.render();
                let _ = eff.hash();
                for rule in &eff.deny_read {
                    for glob in rule.paths.iter().chain(&rule.except) {
                        let _ = eff.resolve(glob);
                    }
                }
                for p in PROBE_PATHS {
                    let _ = eff.read_denied_by(Path::new(p));
                }
                // A few lookups: each lists every rule, so one per rule would be quadratic.
                for meta in eff.rules().iter().take(4) {
                    assert!(eff.rule(&meta.id).is_some(), "rule {} not found", meta.id);
                }
                // `render` promises text that parses back as a policy file.
                if let Err(diags) = PolicyFile::parse(&rendered, Source::Default) {
                    panic!(
                        "EffectivePolicy::render() does not parse back: {}\n---\n{rendered}",
                        diags
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let _ = agent_sandbox_policy::diff(agent_sandbox_policy::DEFAULT_POLICY, text);
}

// ---------------------------------------------------------------------------------------------
// detector

/// Separates the argv from the user-rule pattern in a detector input (ASCII record separator:
/// absent from shell text, so seeds stay readable).
pub const RULE_SEPARATOR: u8 = 0x1e;

/// The workspace every detector input runs in.
const WORKSPACE: &str = "/home/dev/repo";
/// The home directory of the user every detector input runs as.
const HOME: &str = "/home/dev";

/// A detector input, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorInput {
    /// The argv: the bytes before [`RULE_SEPARATOR`], split on NUL, each word lossily UTF-8.
    pub argv: Vec<String>,
    /// A user rule, when the input holds a [`RULE_SEPARATOR`]: its action is the byte after the
    /// separator modulo 3 (`0` allow, `1` ask, `2` deny, in ASCII digits too), its pattern the
    /// bytes after that, lossily UTF-8.
    pub rule: Option<(Action, String)>,
}

/// Decodes a detector input: `arg0 NUL arg1 NUL ... [RS action pattern]`. An empty argv part is an
/// empty argv (the kernel can exec with `argc == 0`).
pub fn detector_input(data: &[u8]) -> DetectorInput {
    let (argv_bytes, rule_bytes) = match data.iter().position(|&b| b == RULE_SEPARATOR) {
        Some(i) => (
            data.get(..i).unwrap_or_default(),
            Some(data.get(i + 1..).unwrap_or_default()),
        ),
        None => (data, None),
    };
    let argv = if argv_bytes.is_empty() {
        Vec::new()
    } else {
        argv_bytes
            .split(|&b| b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    };
    let rule = rule_bytes.map(|b| {
        let (action, pattern) = match b.split_first() {
            Some((first, rest)) => (
                match first % 3 {
                    0 => Action::Allow,
                    1 => Action::Ask,
                    _ => Action::Deny,
                },
                rest,
            ),
            None => (Action::Allow, b),
        };
        (action, String::from_utf8_lossy(pattern).into_owned())
    });
    DetectorInput { argv, rule }
}

fn detector_env() -> &'static [(String, String)] {
    static ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ENV.get_or_init(|| {
        [
            ("HOME", HOME),
            ("PWD", WORKSPACE),
            ("USER", "dev"),
            ("TMPDIR", "/tmp"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
    })
}

/// Detector harness: classifies the argv with the built-in rules and, when the input carries a
/// user rule, with that rule too; asserts the precedence the crate documents.
pub fn detector(data: &[u8]) {
    let input = detector_input(data);
    let ctx = CommandContext {
        argv: &input.argv,
        cwd: Path::new(WORKSPACE),
        env: detector_env(),
        workspace: Some(Path::new(WORKSPACE)),
        home: Some(Path::new(HOME)),
    };
    let builtin = Detector::builtin().classify(&ctx);
    let _ = builtin.exit_code();

    let Some((action, pattern)) = input.rule else {
        return;
    };
    let rule = UserRule {
        id: "fuzz-rule".to_string(),
        why: Some("fuzz".to_string()),
        action,
        severity: None,
        pattern,
    };
    let Ok(det) = Detector::with_rules(vec![rule]) else {
        return;
    };
    let _ = det.rules().count();
    let with_rule = det.classify(&ctx);
    // The crate's documented precedence: a built-in deny always stands; a user ask/deny rule
    // only adds (the worst verdict wins); a user allow rule only relaxes built-in asks.
    if builtin.action == Action::Deny {
        assert_eq!(
            with_rule.action,
            Action::Deny,
            "a user {action} rule overrode the built-in deny {builtin:?}: {with_rule:?}"
        );
    }
    match action {
        Action::Allow => assert!(
            with_rule.action <= builtin.action,
            "a user allow rule made {builtin:?} stricter: {with_rule:?}"
        ),
        Action::Ask | Action::Deny => assert!(
            with_rule.action >= builtin.action,
            "a user {action} rule loosened {builtin:?}: {with_rule:?}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// audit

/// The key of every seed log and of the audit harness.
pub const AUDIT_KEY: [u8; 32] = *b"agent-sandbox fuzz audit key 32B";

/// The session id of the seed logs.
pub const AUDIT_SESSION: &str = "fuzz-session-0001";

/// The records of the valid seed log: one of each kind the supervisor writes.
pub const AUDIT_SEED_EVENTS: &str = include_str!("../seeds/audit-events.jsonl");

/// The valid seed log and the final checkpoint its writer returned.
pub fn audit_seed_log() -> Result<(Vec<u8>, Checkpoint), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("creating a temp dir: {e}"))?;
    let path = dir.path().join("audit.jsonl");
    let key = AuditKey::from_bytes(AUDIT_KEY);
    let mut w = AuditWriter::create_with_checkpoint(
        &path,
        &dir.path().join("audit.checkpoint"),
        &key,
        AUDIT_SESSION,
    )
    .map_err(|e| e.to_string())?;
    for (i, line) in AUDIT_SEED_EVENTS.lines().enumerate() {
        let record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| format!("seeds/audit-events.jsonl:{}: {e}", i + 1))?;
        w.append(&record).map_err(|e| e.to_string())?;
    }
    let checkpoint = w.finish().map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok((bytes, checkpoint))
}

fn seed_checkpoint() -> Option<&'static Checkpoint> {
    static CP: OnceLock<Option<Checkpoint>> = OnceLock::new();
    CP.get_or_init(|| audit_seed_log().ok().map(|(_, cp)| cp))
        .as_ref()
}

/// `,"mac":"` and the length of a seal, as the audit crate writes them (`chain.rs`).
const MAC_INFIX: &[u8] = b",\"mac\":\"";
const SEAL_LEN: usize = MAC_INFIX.len() + 64 + 2;

/// The input with every line re-sealed under [`AUDIT_KEY`]: an existing seal is replaced, and a
/// line without one gets one when it looks like an unterminated object would (ends with `}`).
/// Lines then pass the MAC check and reach the verifier's structural checks.
pub fn reseal(data: &[u8]) -> Vec<u8> {
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(&AUDIT_KEY) else {
        return data.to_vec();
    };
    let mut out = Vec::with_capacity(data.len() + 64);
    for line in data.split_inclusive(|&b| b == b'\n') {
        let (body, newline) = match line.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (line, false),
        };
        let unsealed = match body.len().checked_sub(SEAL_LEN) {
            Some(n) if body.get(n..n + MAC_INFIX.len()) == Some(MAC_INFIX) => body.get(..n),
            _ => body.strip_suffix(b"}"),
        };
        match unsealed {
            Some(prefix) => {
                let mut m = mac.clone();
                m.update(prefix);
                out.extend_from_slice(prefix);
                out.extend_from_slice(MAC_INFIX);
                for b in m.finalize().into_bytes() {
                    let _ = write!(out, "{b:02x}");
                }
                out.extend_from_slice(b"\"}");
            }
            None => out.extend_from_slice(body),
        }
        if newline {
            out.push(b'\n');
        }
    }
    out
}

/// Audit harness: the verifier (raw and re-sealed, with and without a checkpoint), the
/// checkpoint parser and the report builder on the input.
pub fn audit(data: &[u8]) {
    let key = AuditKey::from_bytes(AUDIT_KEY);
    let checkpoint = seed_checkpoint();
    let resealed = reseal(data);
    for bytes in [data, resealed.as_slice()] {
        for cp in [None, checkpoint] {
            let report = verify_bytes(bytes, &key, cp);
            assert!(
                report.problems.len() <= agent_sandbox_audit::MAX_PROBLEMS,
                "{} problems kept, more than MAX_PROBLEMS",
                report.problems.len()
            );
            assert!(
                report.records <= report.lines,
                "more records than lines: {report:?}"
            );
            for p in &report.problems {
                let _ = p.to_string();
            }
        }
    }
    let _ = Checkpoint::parse(data, &key);
    if let Ok(report) = Report::from_reader(data) {
        let _ = render_text(&report);
    }
}

/// xorshift64: a tiny deterministic generator for the line mutator.
fn next(rng: &mut u64) -> u64 {
    let mut x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    x
}

fn below(rng: &mut u64, n: usize) -> usize {
    let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
    usize::try_from(next(rng) % n).unwrap_or(0)
}

/// One line-level mutation of a log (the audit target's custom mutator): move, duplicate,
/// delete or swap a line, or cut the log at a line boundary or inside a line.
pub fn mutate_lines(data: &[u8], rng: &mut u64) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    if lines.is_empty() {
        return data.to_vec();
    }
    let n = lines.len();
    match below(rng, 6) {
        0 => {
            let l = lines.remove(below(rng, n));
            lines.insert(below(rng, n), l);
        }
        1 => {
            let l = lines.get(below(rng, n)).copied().unwrap_or_default();
            lines.insert(below(rng, n + 1), l);
        }
        2 if n > 1 => {
            lines.remove(below(rng, n));
        }
        3 => lines.swap(below(rng, n), below(rng, n)),
        4 => lines.truncate(below(rng, n) + 1),
        _ => {
            let mut out = data.to_vec();
            out.truncate(below(rng, data.len() + 1));
            return out;
        }
    }
    lines.concat()
}
