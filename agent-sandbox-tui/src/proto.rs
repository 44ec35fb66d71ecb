//! The approval protocol: JSON Lines over a unix stream socket.
//!
//! Each client message is one [`Request`] on one line; the supervisor answers each with one
//! [`Reply`] line. After [`Request::Subscribe`] the connection becomes a stream of [`Update`]
//! lines (first a [`Update::Snapshot`]), and the client may still send [`Request::Decide`]
//! on it; those are answered by an [`Update::Answer`] in the stream.
//!
//! The socket lives in a root-owned 0700 directory and the supervisor refuses peers inside the
//! session's cgroup, so only a person outside the sandbox (or root) can approve.

use serde::{Deserialize, Serialize};

/// What a human (or the timeout) decided for a held action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Let this one action proceed.
    Allow,
    /// Let it proceed, and every later action held by the same rule in this session.
    AllowSession,
    /// Refuse it: the held call fails with EPERM.
    Deny,
    /// Kill the whole process tree of the session.
    Kill,
    /// Freeze the whole tree (`cgroup.freeze`); the action stays held until decided.
    Freeze,
    /// Thaw a frozen tree.
    Thaw,
}

impl Decision {
    /// The word used on the command line and in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::AllowSession => "allow-session",
            Decision::Deny => "deny",
            Decision::Kill => "kill",
            Decision::Freeze => "freeze",
            Decision::Thaw => "thaw",
        }
    }

    /// Parses the command-line word (`allow`, `allow-session`, `deny`, `kill`, `freeze`,
    /// `thaw`).
    pub fn parse(s: &str) -> Option<Decision> {
        Some(match s {
            "allow" => Decision::Allow,
            "allow-session" => Decision::AllowSession,
            "deny" => Decision::Deny,
            "kill" => Decision::Kill,
            "freeze" => Decision::Freeze,
            "thaw" => Decision::Thaw,
            _ => return None,
        })
    }

    /// Whether this decision ends the hold (freeze and thaw do not).
    pub fn resolves(self) -> bool {
        !matches!(self, Decision::Freeze | Decision::Thaw)
    }
}

/// Who made a decision: recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approver {
    /// The terminal UI (`run --tui` or `attach`).
    Tui,
    /// `agent-sandbox decide` or another script.
    Decide,
    /// Nobody answered in time.
    Timeout,
    /// The supervisor itself (the session ended while the action was held).
    Supervisor,
}

/// What kind of action is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeldKind {
    /// An `execve`/`execveat` the detector or an exec rule flagged.
    Exec,
    /// `unlink`/`unlinkat`/`rmdir` of a protected path.
    Delete,
    /// `rename`/`renameat`/`renameat2` of (or onto) a protected path.
    Rename,
    /// A truncating open (`O_TRUNC`, `creat`) or `truncate` of a protected path.
    Truncate,
    /// A burst of deletions: the whole tree is frozen.
    MassDelete,
}

/// One process of a held action's ancestry, the held process first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ancestor {
    /// Process id.
    pub pid: u32,
    /// Its command line (or `comm` when the command line cannot be read).
    pub cmdline: String,
}

/// A held action as approvers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Id within the session (what `agent-sandbox decide ID` takes).
    pub id: u64,
    /// What is held.
    pub kind: HeldKind,
    /// The held process (for a mass deletion: the process that deleted most).
    pub pid: u32,
    /// The full command: the argv of the exec, or of the process making the call.
    pub command: Vec<String>,
    /// Its working directory.
    pub cwd: String,
    /// Paths the call touches (the deleted/renamed/truncated ones; the program for an exec).
    pub paths: Vec<String>,
    /// The process and its ancestors, up to the agent.
    pub ancestry: Vec<Ancestor>,
    /// The rule that held it.
    pub rule: String,
    /// The rule's explanation.
    pub why: String,
    /// Severity when the rule has one (`low`, `medium`, `high`, `critical`).
    pub severity: Option<String>,
    /// Where the rule comes from: `builtin`, or a policy file and line.
    pub origin: String,
    /// When it was held (RFC 3339).
    pub since: String,
    /// Seconds left before the timeout denies it.
    pub timeout_secs: u64,
}

impl Held {
    /// A hold of `kind` by `rule` as its detector describes it, before anything else is known:
    /// the command, cwd, paths and severity are filled in by the caller (struct update), the
    /// process and its ancestry by the gate, the id, time and timeout by the broker.
    pub fn pending(
        kind: HeldKind,
        rule: impl Into<String>,
        why: impl Into<String>,
        origin: impl Into<String>,
    ) -> Held {
        Held {
            id: 0,
            kind,
            pid: 0,
            command: Vec::new(),
            cwd: String::new(),
            paths: Vec::new(),
            ancestry: Vec::new(),
            rule: rule.into(),
            why: why.into(),
            severity: None,
            origin: origin.into(),
            since: String::new(),
            timeout_secs: 0,
        }
    }
}

/// Totals of the session so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Actions held so far (pending ones included).
    pub held: u64,
    /// Held actions allowed.
    pub allowed: u64,
    /// Held actions denied (timeouts included) and actions refused by a deny rule.
    pub denied: u64,
    /// Connections refused by network rules.
    pub connections_refused: u64,
    /// Opens refused by file rules.
    pub files_refused: u64,
    /// Events observed.
    pub events: u64,
    /// Whether the tree is frozen now.
    pub frozen: bool,
}

/// A message from an approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// The pending held actions (answered by [`Reply::Held`]).
    List,
    /// Decide a held action; `id` 0 with `freeze`/`thaw` applies to the tree without an action.
    Decide {
        /// The held action's id.
        id: u64,
        /// The decision.
        decision: Decision,
        /// Who decides (`tui` or `decide`).
        by: Approver,
    },
    /// Turn this connection into a stream of [`Update`]s.
    Subscribe,
}

/// The supervisor's answer to a [`Request`] outside a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// The pending held actions and the session's totals.
    Held {
        /// Session name (the cgroup's name).
        session: String,
        /// Pending actions, oldest first.
        held: Vec<Held>,
        /// Totals.
        summary: Summary,
    },
    /// The decision was applied.
    Done {
        /// What happened, in a sentence.
        message: String,
    },
    /// The request failed (unknown id, malformed request...).
    Error {
        /// What went wrong and what to do.
        message: String,
    },
}

/// One line of a subscription stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "update", rename_all = "kebab-case")]
pub enum Update {
    /// The state when the subscription starts.
    Snapshot {
        /// Session name.
        session: String,
        /// The agent's command line.
        command: Vec<String>,
        /// Pending actions, oldest first.
        held: Vec<Held>,
        /// Totals.
        summary: Summary,
    },
    /// A new held action.
    Held {
        /// The action.
        held: Held,
    },
    /// A held action was decided.
    Resolved {
        /// Its id.
        id: u64,
        /// The decision.
        decision: Decision,
        /// Who decided.
        by: Approver,
    },
    /// One observed event, as in the `--events` stream (a JSON object).
    Event {
        /// The event record.
        event: serde_json::Value,
    },
    /// New totals.
    Summary {
        /// Totals.
        summary: Summary,
    },
    /// The answer to a [`Request::Decide`] sent on the subscription.
    Answer {
        /// The reply.
        reply: Reply,
    },
    /// The session ended; the stream closes after this.
    Ended {
        /// The agent's exit code.
        exit_code: i32,
    },
}

/// A protocol line that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("malformed approval protocol line: {0}")]
pub struct ProtoError(#[from] serde_json::Error);

/// Encodes one message as a line (with its `\n`).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these types cannot fail: every map key is a string.
    let mut v = serde_json::to_vec(msg).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Decodes one line (with or without its `\n`).
pub fn decode<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, ProtoError> {
    Ok(serde_json::from_slice(line.trim_ascii_end())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_in_their_documented_form() {
        let r = Request::Decide {
            id: 7,
            decision: Decision::AllowSession,
            by: Approver::Decide,
        };
        let line = encode(&r);
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"op\":\"decide\",\"id\":7,\"decision\":\"allow-session\",\"by\":\"decide\"}\n"
        );
        assert_eq!(decode::<Request>(&line).unwrap(), r);
        assert_eq!(
            decode::<Request>(b"{\"op\":\"list\"}").unwrap(),
            Request::List
        );
        assert!(decode::<Request>(b"{\"op\":\"launch\"}").is_err());
    }

    #[test]
    fn decision_words_parse_back() {
        for d in [
            Decision::Allow,
            Decision::AllowSession,
            Decision::Deny,
            Decision::Kill,
            Decision::Freeze,
            Decision::Thaw,
        ] {
            assert_eq!(Decision::parse(d.as_str()), Some(d));
        }
        assert_eq!(Decision::parse("yes"), None);
        assert!(!Decision::Freeze.resolves() && Decision::Deny.resolves());
    }
}
