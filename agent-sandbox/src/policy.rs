//! The effective policy of a session, and what each enforcement layer gets from it.
//!
//! Parsing, merging and the trust store live in the `agent-sandbox-policy` crate (re-exported
//! here); this module loads the policy for a run, makes the human approve a new or changed
//! repository policy, and turns the rules into the inputs of [`crate::network`] and
//! [`crate::fanotify`].

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

pub use agent_sandbox_policy::*;

use crate::fanotify::{DenyGlob, FileRuleInfo};
use crate::network::{Host, NetPlan, NetRule};

/// Root-owned state of agent-sandbox: trusted policy hashes, audit keys. The session cannot
/// read or write it (mode 0700, and a fanotify mark for agents that run as root).
pub const STATE_DIR: &str = "/var/lib/agent-sandbox";

/// Id of the rule that keeps the session away from the sandbox's own files.
pub const SELF_PROTECT_RULE: &str = "agent-sandbox-self";

/// Errors of preparing a policy for a run.
#[derive(Debug, thiserror::Error)]
pub enum RunPolicyError {
    /// The policy did not load.
    #[error("{0}")]
    Load(#[from] PolicyError),
    /// The trust store failed.
    #[error("trust store: {0}")]
    Trust(#[from] TrustError),
    /// The human said no, or could not be asked.
    #[error("{0}")]
    NotTrusted(String),
    /// A network rule cannot be enforced.
    #[error("{0}")]
    Network(#[from] crate::network::NetError),
}

/// How the repository policy came to be trusted (for the session record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustDecision {
    /// No repository policy: nothing to trust.
    NoRepositoryPolicy,
    /// These bytes were trusted before.
    Unchanged,
    /// Trusted now, at the prompt.
    Prompt,
    /// Trusted now, by `--trust-policy`.
    Flag,
}

impl TrustDecision {
    /// Name used in records.
    pub fn name(&self) -> &'static str {
        match self {
            TrustDecision::NoRepositoryPolicy => "none",
            TrustDecision::Unchanged => "unchanged",
            TrustDecision::Prompt => "prompt",
            TrustDecision::Flag => "flag",
        }
    }
}

/// Makes sure the repository policy (if any) is one a human approved: unchanged since it was
/// trusted, or approved now on the terminal (showing it whole, or its diff against the trusted
/// version), or accepted by `trust_flag`. Without a terminal and without the flag, refuses.
pub fn ensure_trusted(
    policy: &EffectivePolicy,
    state_dir: &Path,
    trust_flag: bool,
) -> Result<TrustDecision, RunPolicyError> {
    let (Some(path), Some(bytes)) = (policy.repository_path(), policy.repository_bytes()) else {
        return Ok(TrustDecision::NoRepositoryPolicy);
    };
    let store = TrustStore::open(state_dir)?;
    let status = store.status(path, bytes)?;
    if status == TrustStatus::Trusted {
        return Ok(TrustDecision::Unchanged);
    }
    if trust_flag {
        store.trust(path, bytes)?;
        return Ok(TrustDecision::Flag);
    }
    let text = String::from_utf8_lossy(bytes);
    let shown = match &status {
        TrustStatus::Changed { previous } => format!(
            "The repository policy {} changed since it was last trusted:\n\n{}",
            path.display(),
            diff(previous, &text)
        ),
        _ => format!(
            "This repository has a policy that was never trusted on this machine: {}\n\n{}",
            path.display(),
            text
        ),
    };
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return Err(RunPolicyError::NotTrusted(format!(
            "the repository policy {} is {} and there is no terminal to ask whether to trust \
             it: review it, then run again from a terminal or pass --trust-policy",
            path.display(),
            if matches!(status, TrustStatus::New) {
                "new"
            } else {
                "changed since it was trusted"
            }
        )));
    };
    let mut out = &tty;
    let _ = write!(
        out,
        "{shown}\n\nTrust this policy for runs in this repository? [y/N] "
    );
    let _ = out.flush();
    let mut answer = String::new();
    let _ = std::io::BufReader::new(&tty).read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        store.trust(path, bytes)?;
        Ok(TrustDecision::Prompt)
    } else {
        Err(RunPolicyError::NotTrusted(format!(
            "the repository policy {} was not trusted; nothing was run",
            path.display()
        )))
    }
}

/// The network rules: deny rules always, allow rules in allow-list mode (deny wins).
pub fn network_plan(policy: &EffectivePolicy) -> Result<NetPlan, RunPolicyError> {
    let default_deny = policy.network_default.value == NetworkDefault::Deny;
    let convert = |r: &NetworkRule, allow: bool| NetRule {
        id: r.meta.id.clone(),
        why: r.meta.why.clone(),
        allow,
        hosts: r
            .hosts
            .iter()
            .map(|h| match h {
                HostPattern::Exact(n) => Host::Exact(n.clone()),
                HostPattern::Suffix(s) => Host::Wildcard(s.clone()),
            })
            .collect(),
        cidrs: r.cidrs.iter().map(|c| (c.addr(), c.prefix())).collect(),
        ports: r.ports.iter().map(|p| (p.start, p.end)).collect(),
        tcp: r.protocols.is_empty() || r.protocols.contains(&Protocol::Tcp),
        udp: r.protocols.is_empty() || r.protocols.contains(&Protocol::Udp),
    };
    let mut rules: Vec<NetRule> = policy
        .network_deny
        .iter()
        .map(|r| convert(r, false))
        .collect();
    if default_deny {
        rules.extend(policy.network_allow.iter().map(|r| convert(r, true)));
    }
    Ok(NetPlan::new(rules, default_deny)?)
}

/// The `deny_read` rules as absolute globs, plus the sandbox's own files (`protect_self`: the
/// policy files, the state directory, the events file), which the session may neither read
/// nor write.
pub fn deny_globs(
    policy: &EffectivePolicy,
    protect_self: &[PathBuf],
) -> (Vec<FileRuleInfo>, Vec<DenyGlob>) {
    let mut rules = Vec::new();
    let mut globs = Vec::new();
    for r in &policy.deny_read {
        let index = rules.len();
        rules.push(FileRuleInfo {
            id: r.meta.id.clone(),
            why: r.meta.why.clone(),
        });
        let except: Vec<String> = r.except.iter().map(|g| policy.resolve(g)).collect();
        for g in &r.paths {
            globs.push(DenyGlob {
                rule: index,
                glob: policy.resolve(g),
                except: except.clone(),
            });
        }
    }
    if !protect_self.is_empty() {
        let index = rules.len();
        rules.push(FileRuleInfo {
            id: SELF_PROTECT_RULE.into(),
            why: Some(
                "the sandbox's own policy, state and logs are out of the agent's reach".into(),
            ),
        });
        for p in protect_self {
            // Globs are matched against the kernel's names for files, which are canonical.
            let p = &std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            let mut glob = escape_glob(&p.to_string_lossy());
            if p.is_dir() {
                glob.push_str("/**");
            }
            globs.push(DenyGlob {
                rule: index,
                glob,
                except: Vec::new(),
            });
        }
    }
    (rules, globs)
}

/// A literal path as a glob.
pub fn escape_glob(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_paths_are_escaped() {
        assert_eq!(escape_glob("/a/b[1]/c*"), "/a/b[[]1[]]/c[*]");
    }
}
