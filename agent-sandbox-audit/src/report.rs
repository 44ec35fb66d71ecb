//! A human summary of a session's audit log.
//!
//! The report reads records; it does not authenticate them (run [`crate::verify`] for that),
//! so it works on damaged logs too: lines that do not parse are counted and skipped.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::AuditError;
use crate::verify::{Line, read_line};

/// Bound on every list and every distinct-key table, so a huge or hostile log cannot exhaust
/// memory; what does not fit is counted.
const MAX_ENTRIES: usize = 10_000;
/// Subcommands shown per program; the rest are summed.
const TOP_SUBCOMMANDS: usize = 8;
/// Longest subcommand label kept.
const MAX_LABEL: usize = 40;
/// Rows per section in the text rendering.
const TEXT_ROWS: usize = 50;

/// Who ran what, when: from `session_start` and `session_end`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionInfo {
    /// The session id bound into record 0.
    pub session_id: Option<String>,
    /// `time` of `session_start` (or of the first record).
    pub start: Option<String>,
    /// `time` of `session_end` (or of the last record).
    pub end: Option<String>,
    /// `end - start` in milliseconds, when both parse.
    pub duration_ms: Option<i64>,
    /// The agent's command line.
    pub command: Vec<String>,
    /// The user the agent ran as.
    pub user: Option<String>,
    /// Their uid.
    pub uid: Option<u64>,
    /// The session cgroup.
    pub cgroup: Option<String>,
    /// The supervisor's pid.
    pub supervisor_pid: Option<u64>,
    /// Hash of the policy in force.
    pub policy_hash: Option<String>,
    /// The agent's exit code.
    pub exit_code: Option<i64>,
    /// Events lost in the kernel ring buffer.
    pub lost_total: Option<u64>,
    /// `true` when a `session_end` record was seen.
    pub ended: bool,
}

/// One notable event, in log order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// 1-based line in the log.
    pub line: u64,
    /// The record's `time`.
    pub time: Option<String>,
    /// The record's `kind`.
    pub kind: String,
    /// One line saying what happened.
    pub summary: String,
}

/// A name with how often it occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counted {
    /// The name (a path, a subcommand...).
    pub name: String,
    /// Occurrences.
    pub count: u64,
}

/// The execs of one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandGroup {
    /// Base name of `argv[0]` (or of the filename when argv is empty).
    pub program: String,
    /// Execs of it.
    pub count: u64,
    /// Failed execs among them (`ret` not 0).
    pub failed: u64,
    /// Most frequent first non-option arguments, most frequent first.
    pub subcommands: Vec<Counted>,
    /// Execs whose subcommand is not in `subcommands`.
    pub other_subcommands: u64,
}

/// Connections to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// `inet`, `inet6`, `unix`...
    pub family: String,
    /// Address or unix path.
    pub address: String,
    /// Port for inet families.
    pub port: Option<u64>,
    /// Attempts.
    pub count: u64,
}

/// A refused open or connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// 1-based line in the log.
    pub line: u64,
    /// When.
    pub time: Option<String>,
    /// The process.
    pub pid: Option<u64>,
    /// Its command name.
    pub comm: Option<String>,
    /// The policy rule that refused it.
    pub rule: Option<String>,
    /// Why, as the policy put it.
    pub why: Option<String>,
    /// The path, or `address:port` (with protocol) for a connection.
    pub target: String,
}

/// A held action and what was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldEntry {
    /// The hold's id.
    pub hold_id: String,
    /// 1-based line of the hold (0 when only the decision is in the log).
    pub line: u64,
    /// When it was held.
    pub time: Option<String>,
    /// The rule that asked.
    pub rule: Option<String>,
    /// Why.
    pub why: Option<String>,
    /// The command line or path held.
    pub what: String,
    /// The process.
    pub pid: Option<u64>,
    /// Its command name.
    pub comm: Option<String>,
    /// `allow_once`, `allow_rule`, `deny`, `kill`, `freeze`, `timeout`; `None` if undecided.
    pub decision: Option<String>,
    /// `tui`, `decide` or `timeout`.
    pub by: Option<String>,
    /// Time from hold to decision.
    pub latency_ms: Option<u64>,
    /// When it was decided.
    pub decided_at: Option<String>,
}

/// A freeze or thaw of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freeze {
    /// 1-based line in the log.
    pub line: u64,
    /// When.
    pub time: Option<String>,
    /// `freeze` or `thaw`.
    pub action: String,
    /// Who did it.
    pub by: Option<String>,
}

/// A policy trust decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyTrust {
    /// 1-based line in the log.
    pub line: u64,
    /// When.
    pub time: Option<String>,
    /// The policy file.
    pub path: Option<String>,
    /// Its hash.
    pub hash: Option<String>,
    /// `trusted`, `refused` or `unchanged`.
    pub decision: Option<String>,
    /// `prompt` or `flag`.
    pub by: Option<String>,
}

/// Counts over the whole log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Lines that parsed as JSON objects.
    pub records: u64,
    /// Lines that did not.
    pub unparsable_lines: u64,
    /// Records per kind, known kinds only.
    pub by_kind: BTreeMap<String, u64>,
    /// Records of kinds this report does not know (or without a kind).
    pub unknown_kinds: u64,
    /// Execs whose `ret` was not 0.
    pub failed_execs: u64,
    /// Holds seen.
    pub holds: u64,
    /// Holds denied, killed, frozen or timed out.
    pub holds_refused: u64,
    /// Holds with no decision in the log.
    pub holds_undecided: u64,
    /// Entries left out of lists and tables because of their bound.
    pub omitted_entries: u64,
}

/// The summary of one log: see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Who, what, when.
    pub session: SessionInfo,
    /// Notable events in log order (session start and end, refusals, holds, decisions,
    /// freezes, policy trust).
    pub timeline: Vec<TimelineEntry>,
    /// Commands run, grouped by program, most frequent first.
    pub commands: Vec<CommandGroup>,
    /// Files opened for reading, most frequent first.
    pub files_read: Vec<Counted>,
    /// Files opened for writing (write, read-write, create or truncate), most frequent first.
    pub files_written: Vec<Counted>,
    /// Deletions and renames (`syscall path [-> target]`), most frequent first.
    pub path_ops: Vec<Counted>,
    /// File opens refused by policy.
    pub files_refused: Vec<Refusal>,
    /// Connection attempts, most frequent first.
    pub connections: Vec<Connection>,
    /// Connections refused by policy.
    pub connections_refused: Vec<Refusal>,
    /// What the sandbox refused to protect itself and the machine: execs and path calls the
    /// gate refused (`gate_refused`), signals and ptrace attaches that failed (`signal`),
    /// path calls the kernel refused with EACCES/EPERM (`denied`), and peers from inside the
    /// session at the approval socket (`approval_refused`).
    pub sandbox_refused: Vec<Refusal>,
    /// Every hold with its decision, in order of the holds.
    pub holds: Vec<HoldEntry>,
    /// Freezes and thaws.
    pub freezes: Vec<Freeze>,
    /// Policy trust decisions.
    pub policy_trust: Vec<PolicyTrust>,
    /// Counts.
    pub totals: Totals,
}

/// A bounded table of counts: new keys beyond the bound go to `overflow`.
#[derive(Default)]
struct Tally {
    map: HashMap<String, u64>,
    overflow: u64,
}

impl Tally {
    fn add(&mut self, key: &str) -> bool {
        if let Some(c) = self.map.get_mut(key) {
            *c += 1;
            true
        } else if self.map.len() < MAX_ENTRIES {
            self.map.insert(key.to_string(), 1);
            true
        } else {
            self.overflow += 1;
            false
        }
    }

    fn sorted(self) -> (Vec<Counted>, u64) {
        let mut v: Vec<Counted> = self
            .map
            .into_iter()
            .map(|(name, count)| Counted { name, count })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        (v, self.overflow)
    }
}

#[derive(Default)]
struct ProgramTally {
    count: u64,
    failed: u64,
    subs: Tally,
}

#[derive(Default)]
struct Builder {
    report: Report,
    programs: HashMap<String, ProgramTally>,
    files_read: Tally,
    files_written: Tally,
    path_ops: Tally,
    connections: HashMap<(String, String, Option<u64>), u64>,
    hold_index: HashMap<String, usize>,
    first_time: Option<String>,
    last_time: Option<String>,
    omitted: u64,
}

/// `m` with the keys of its `fields` object added (top-level keys win).
fn with_fields(m: &Map<String, Value>, fields: &Map<String, Value>) -> Map<String, Value> {
    let mut out = m.clone();
    for (k, v) in fields {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    out
}

/// A hold's id: `hold_id`, or the supervisor's `id`.
fn hold_id(m: &Map<String, Value>) -> String {
    scalar_text(m.get("hold_id").or_else(|| m.get("id"))).unwrap_or_else(|| "?".to_string())
}

fn is_empty_array(v: &Value) -> bool {
    v.as_array().is_some_and(Vec::is_empty)
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

fn string_field(m: &Map<String, Value>, key: &str) -> Option<String> {
    str_field(m, key).map(str::to_string)
}

fn u64_field(m: &Map<String, Value>, key: &str) -> Option<u64> {
    m.get(key).and_then(Value::as_u64)
}

/// A scalar as text (ids may be numbers or strings).
fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Joins an argv for display, quoting arguments that need it.
fn join_argv(argv: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let s = a.as_str().map_or_else(|| a.to_string(), str::to_string);
        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || "'\"\\$`;&|<>*?".contains(c)) {
            out.push('\'');
            out.push_str(&s.replace('\'', "'\\''"));
            out.push('\'');
        } else {
            out.push_str(&s);
        }
    }
    out
}

fn truncate_label(s: &str) -> String {
    if s.chars().count() <= MAX_LABEL {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_LABEL).collect();
    t.push('…');
    t
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().filter(|b| !b.is_empty()).unwrap_or(s)
}

fn is_write_open(fields: &Map<String, Value>) -> bool {
    match fields.get("flags") {
        Some(Value::String(f)) => f
            .split('|')
            .any(|x| matches!(x.trim(), "O_WRONLY" | "O_RDWR" | "O_CREAT" | "O_TRUNC")),
        _ => u64_field(fields, "flags_raw")
            .or_else(|| u64_field(fields, "flags"))
            // O_ACCMODE bits, O_CREAT (0o100), O_TRUNC (0o1000).
            .is_some_and(|f| f & 0o3 != 0 || f & 0o100 != 0 || f & 0o1000 != 0),
    }
}

fn endpoint(family: Option<&str>, address: Option<&str>, port: Option<u64>) -> String {
    let addr = address.unwrap_or("?");
    match (family, port) {
        (Some("inet6"), Some(p)) => format!("[{addr}]:{p}"),
        (_, Some(p)) => format!("{addr}:{p}"),
        _ => addr.to_string(),
    }
}

impl Builder {
    fn timeline(&mut self, line: u64, time: Option<String>, kind: &str, summary: String) {
        if self.report.timeline.len() < MAX_ENTRIES {
            self.report.timeline.push(TimelineEntry {
                line,
                time,
                kind: kind.to_string(),
                summary,
            });
        } else {
            self.omitted += 1;
        }
    }

    fn push_bounded<T>(list: &mut Vec<T>, omitted: &mut u64, item: T) {
        if list.len() < MAX_ENTRIES {
            list.push(item);
        } else {
            *omitted += 1;
        }
    }

    fn record(&mut self, line: u64, m: &Map<String, Value>) {
        self.report.totals.records += 1;
        let time = string_field(m, "time");
        if time.is_some() {
            if self.first_time.is_none() {
                self.first_time.clone_from(&time);
            }
            self.last_time.clone_from(&time);
        }
        if self.report.session.session_id.is_none()
            && let Some(s) = str_field(m, "session")
        {
            self.report.session.session_id = Some(s.to_string());
        }
        let empty = Map::new();
        let fields = m.get("fields").and_then(Value::as_object).unwrap_or(&empty);
        let kind = str_field(m, "kind").unwrap_or("");
        let known = match kind {
            "session_start" => {
                self.session_start(line, time, m);
                true
            }
            "session_end" => {
                self.session_end(line, time, m);
                true
            }
            "exec" => {
                self.exec(fields);
                true
            }
            "open" => {
                let path = str_field(fields, "path").unwrap_or("?");
                let tally = if is_write_open(fields) {
                    &mut self.files_written
                } else {
                    &mut self.files_read
                };
                tally.add(path);
                true
            }
            "path_op" => {
                let syscall = str_field(fields, "syscall").unwrap_or("path_op");
                let path = str_field(fields, "path").unwrap_or("?");
                let label = match str_field(fields, "target") {
                    Some(t) => format!("{syscall} {path} -> {t}"),
                    None => format!("{syscall} {path}"),
                };
                self.path_ops.add(&label);
                true
            }
            "connect" => {
                let key = (
                    str_field(fields, "family")
                        .map(str::to_string)
                        .or_else(|| scalar_text(fields.get("family")))
                        .unwrap_or_else(|| "?".to_string()),
                    string_field(fields, "address").unwrap_or_else(|| "?".to_string()),
                    u64_field(fields, "port"),
                );
                if let Some(c) = self.connections.get_mut(&key) {
                    *c += 1;
                } else if self.connections.len() < MAX_ENTRIES {
                    self.connections.insert(key, 1);
                } else {
                    self.omitted += 1;
                }
                true
            }
            "net_refused" => {
                // The supervisor nests the event's details under `fields`, like every event.
                let merged = with_fields(m, fields);
                let m = &merged;
                let target = format!(
                    "{}{}",
                    endpoint(
                        str_field(m, "family"),
                        str_field(m, "address"),
                        u64_field(m, "port")
                    ),
                    str_field(m, "proto")
                        .or_else(|| str_field(m, "protocol"))
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default()
                );
                let r = self.refusal(line, time.clone(), m, target);
                self.timeline(
                    line,
                    time,
                    kind,
                    format!(
                        "connection to {} refused by rule {}",
                        r.target,
                        r.rule.as_deref().unwrap_or("?")
                    ),
                );
                Self::push_bounded(&mut self.report.connections_refused, &mut self.omitted, r);
                true
            }
            "file_refused" => {
                let merged = with_fields(m, fields);
                let m = &merged;
                let target = string_field(m, "path").unwrap_or_else(|| "?".to_string());
                let r = self.refusal(line, time.clone(), m, target);
                self.timeline(
                    line,
                    time,
                    kind,
                    format!(
                        "open of {} refused by rule {}",
                        r.target,
                        r.rule.as_deref().unwrap_or("?")
                    ),
                );
                Self::push_bounded(&mut self.report.files_refused, &mut self.omitted, r);
                true
            }
            // The supervisor writes `held` with its details under `fields`.
            "hold" | "held" => {
                self.hold(line, time, &with_fields(m, fields));
                true
            }
            "decision" => {
                self.decision(line, time, &with_fields(m, fields));
                true
            }
            "freeze" | "thaw" => {
                let by = string_field(m, "by");
                self.timeline(
                    line,
                    time.clone(),
                    kind,
                    format!("tree {kind} by {}", by.as_deref().unwrap_or("?")),
                );
                let f = Freeze {
                    line,
                    time,
                    action: kind.to_string(),
                    by,
                };
                Self::push_bounded(&mut self.report.freezes, &mut self.omitted, f);
                true
            }
            "policy_trust" => {
                let p = PolicyTrust {
                    line,
                    time: time.clone(),
                    path: string_field(m, "path"),
                    hash: string_field(m, "hash"),
                    decision: string_field(m, "decision"),
                    by: string_field(m, "by"),
                };
                self.timeline(
                    line,
                    time,
                    kind,
                    format!(
                        "policy {} {} by {}",
                        p.path.as_deref().unwrap_or("?"),
                        p.decision.as_deref().unwrap_or("?"),
                        p.by.as_deref().unwrap_or("?")
                    ),
                );
                Self::push_bounded(&mut self.report.policy_trust, &mut self.omitted, p);
                true
            }
            "gate_refused" | "approval_refused" | "denied" => {
                let merged = with_fields(m, fields);
                let m = &merged;
                let target = match kind {
                    "gate_refused" => {
                        let action = str_field(m, "action").unwrap_or("call");
                        let what = m
                            .get("command")
                            .and_then(Value::as_array)
                            .filter(|a| !a.is_empty())
                            .or_else(|| m.get("paths").and_then(Value::as_array))
                            .map_or_else(|| "?".to_string(), |a| join_argv(a));
                        format!("{action} {what}")
                    }
                    "approval_refused" => "the approval socket".to_string(),
                    _ => format!(
                        "{} {} ({})",
                        str_field(m, "syscall").unwrap_or("call"),
                        str_field(m, "path").unwrap_or("?"),
                        str_field(m, "errno").unwrap_or("refused")
                    ),
                };
                self.sandbox_refusal(line, time, kind, m, target);
                true
            }
            "signal" => {
                let merged = with_fields(m, fields);
                let m = &merged;
                // Only failed attempts are refusals; a delivered signal is just counted.
                if let Some(errno) = str_field(m, "errno") {
                    let what = str_field(m, "signal")
                        .or_else(|| str_field(m, "request"))
                        .unwrap_or("?");
                    let to = u64_field(m, "target_pid")
                        .map(|p| format!("pid {p}"))
                        .or_else(|| u64_field(m, "pidfd").map(|f| format!("pidfd {f}")))
                        .unwrap_or_else(|| "?".to_string());
                    let target = format!(
                        "{} {what} to {to} ({errno})",
                        str_field(m, "syscall").unwrap_or("kill")
                    );
                    self.sandbox_refusal(line, time, kind, m, target);
                }
                true
            }
            // Recorded by the event stream; nothing to summarise beyond the count.
            "fork" | "exit" | "exec_result" => true,
            _ => false,
        };
        if known {
            let by_kind = &mut self.report.totals.by_kind;
            if let Some(c) = by_kind.get_mut(kind) {
                *c += 1;
            } else {
                by_kind.insert(kind.to_string(), 1);
            }
        } else {
            self.report.totals.unknown_kinds += 1;
        }
    }

    /// A refusal of the sandbox's own (see [`Report::sandbox_refused`]): listed and put on
    /// the timeline.
    fn sandbox_refusal(
        &mut self,
        line: u64,
        time: Option<String>,
        kind: &str,
        m: &Map<String, Value>,
        target: String,
    ) {
        let r = self.refusal(line, time.clone(), m, target);
        let rule = r
            .rule
            .as_deref()
            .map(|rule| format!(" by rule {rule}"))
            .unwrap_or_default();
        self.timeline(line, time, kind, format!("{} refused{rule}", r.target));
        Self::push_bounded(&mut self.report.sandbox_refused, &mut self.omitted, r);
    }

    fn refusal(
        &self,
        line: u64,
        time: Option<String>,
        m: &Map<String, Value>,
        target: String,
    ) -> Refusal {
        Refusal {
            line,
            time,
            pid: u64_field(m, "pid"),
            comm: string_field(m, "comm"),
            rule: string_field(m, "rule"),
            why: string_field(m, "why"),
            target,
        }
    }

    fn session_start(&mut self, line: u64, time: Option<String>, m: &Map<String, Value>) {
        let s = &mut self.report.session;
        s.start.clone_from(&time);
        s.command = m
            .get("command")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        s.user = string_field(m, "user");
        s.uid = u64_field(m, "uid");
        s.cgroup = string_field(m, "cgroup");
        s.supervisor_pid = u64_field(m, "supervisor_pid");
        s.policy_hash = string_field(m, "policy_hash");
        let summary = format!(
            "session started: {} as {}",
            m.get("command")
                .and_then(Value::as_array)
                .map_or_else(|| "?".to_string(), |a| join_argv(a)),
            s.user.as_deref().unwrap_or("?")
        );
        self.timeline(line, time, "session_start", summary);
    }

    fn session_end(&mut self, line: u64, time: Option<String>, m: &Map<String, Value>) {
        let s = &mut self.report.session;
        s.end.clone_from(&time);
        s.ended = true;
        s.exit_code = m.get("exit_code").and_then(Value::as_i64);
        s.lost_total = u64_field(m, "lost_total");
        let summary = format!(
            "session ended: exit code {}, {} event(s) lost",
            s.exit_code
                .map_or_else(|| "?".to_string(), |c| c.to_string()),
            s.lost_total
                .map_or_else(|| "?".to_string(), |c| c.to_string())
        );
        self.timeline(line, time, "session_end", summary);
    }

    fn exec(&mut self, fields: &Map<String, Value>) {
        let argv: &[Value] = fields
            .get("argv")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let program = argv
            .first()
            .and_then(Value::as_str)
            .or_else(|| str_field(fields, "filename"))
            .map_or("?", basename)
            .to_string();
        let sub = argv
            .iter()
            .skip(1)
            .filter_map(Value::as_str)
            .find(|a| !a.starts_with('-'))
            .map_or_else(|| "(no subcommand)".to_string(), truncate_label);
        let failed = match fields.get("ret") {
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            _ => false,
        };
        if failed {
            self.report.totals.failed_execs += 1;
        }
        let entry = if self.programs.contains_key(&program) || self.programs.len() < MAX_ENTRIES {
            self.programs.entry(program).or_default()
        } else {
            self.omitted += 1;
            self.programs
                .entry("(other programs)".to_string())
                .or_default()
        };
        entry.count += 1;
        entry.failed += u64::from(failed);
        entry.subs.add(&sub);
    }

    fn hold(&mut self, line: u64, time: Option<String>, m: &Map<String, Value>) {
        self.report.totals.holds += 1;
        let hold_id = hold_id(m);
        // An exec's command line; a deletion's paths (a mass deletion has no single command).
        let what = match m
            .get("what")
            .or_else(|| m.get("command").filter(|c| !is_empty_array(c)))
            .or_else(|| m.get("paths"))
        {
            Some(Value::Array(a)) => join_argv(a),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "?".to_string(),
        };
        let entry = HoldEntry {
            hold_id: hold_id.clone(),
            line,
            time: time.clone(),
            rule: string_field(m, "rule"),
            why: string_field(m, "why"),
            what,
            pid: u64_field(m, "pid"),
            comm: string_field(m, "comm"),
            decision: None,
            by: None,
            latency_ms: None,
            decided_at: None,
        };
        self.timeline(
            line,
            time,
            "hold",
            format!(
                "hold #{hold_id}: `{}` held by rule {}",
                entry.what,
                entry.rule.as_deref().unwrap_or("?")
            ),
        );
        if self.report.holds.len() < MAX_ENTRIES {
            self.hold_index.insert(hold_id, self.report.holds.len());
            self.report.holds.push(entry);
        } else {
            self.omitted += 1;
        }
    }

    fn decision(&mut self, line: u64, time: Option<String>, m: &Map<String, Value>) {
        let hold_id = hold_id(m);
        let decision = string_field(m, "decision");
        let by = string_field(m, "by");
        // Written with fractions of a millisecond; reported in whole ones.
        let latency_ms = m
            .get("latency_ms")
            .and_then(Value::as_f64)
            .map(|l| l.round().max(0.0) as u64);
        self.timeline(
            line,
            time.clone(),
            "decision",
            format!(
                "hold #{hold_id}: {} by {}{}",
                decision.as_deref().unwrap_or("?"),
                by.as_deref().unwrap_or("?"),
                latency_ms
                    .map(|l| format!(" after {l} ms"))
                    .unwrap_or_default()
            ),
        );
        let idx = self.hold_index.get(&hold_id).copied();
        let slot = idx.and_then(|i| self.report.holds.get_mut(i));
        let target = match slot {
            Some(h) if h.decision.is_none() => h,
            // A decision without its hold in the log (or a second decision): keep it visible.
            _ => {
                if self.report.holds.len() >= MAX_ENTRIES {
                    self.omitted += 1;
                    return;
                }
                self.report.holds.push(HoldEntry {
                    hold_id,
                    line: 0,
                    time: None,
                    rule: None,
                    why: None,
                    what: "(hold not in the log)".to_string(),
                    pid: None,
                    comm: None,
                    decision: None,
                    by: None,
                    latency_ms: None,
                    decided_at: None,
                });
                match self.report.holds.last_mut() {
                    Some(h) => h,
                    None => return,
                }
            }
        };
        target.decision = decision;
        target.by = by;
        target.latency_ms = latency_ms;
        target.decided_at = time;
    }

    fn finish(mut self) -> Report {
        let mut commands: Vec<CommandGroup> = self
            .programs
            .into_iter()
            .map(|(program, t)| {
                let (mut subs, overflow) = t.subs.sorted();
                let shown: u64 = subs.iter().take(TOP_SUBCOMMANDS).map(|c| c.count).sum();
                subs.truncate(TOP_SUBCOMMANDS);
                CommandGroup {
                    program,
                    count: t.count,
                    failed: t.failed,
                    subcommands: subs,
                    other_subcommands: t.count.saturating_sub(shown).max(overflow),
                }
            })
            .collect();
        commands.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.program.cmp(&b.program))
        });
        self.report.commands = commands;

        let (files_read, o1) = self.files_read.sorted();
        let (files_written, o2) = self.files_written.sorted();
        let (path_ops, o3) = self.path_ops.sorted();
        self.report.files_read = files_read;
        self.report.files_written = files_written;
        self.report.path_ops = path_ops;
        self.omitted += o1 + o2 + o3;

        let mut conns: Vec<Connection> = self
            .connections
            .into_iter()
            .map(|((family, address, port), count)| Connection {
                family,
                address,
                port,
                count,
            })
            .collect();
        conns.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.address.cmp(&b.address))
                .then_with(|| a.port.cmp(&b.port))
        });
        self.report.connections = conns;

        let t = &mut self.report.totals;
        for h in &self.report.holds {
            match h.decision.as_deref() {
                None => t.holds_undecided += 1,
                Some("deny" | "kill" | "freeze" | "timeout") => t.holds_refused += 1,
                Some(_) => {}
            }
        }
        t.omitted_entries = self.omitted;

        let s = &mut self.report.session;
        if s.start.is_none() {
            s.start = self.first_time;
        }
        if s.end.is_none() {
            s.end = self.last_time;
        }
        s.duration_ms = match (
            s.start.as_deref().and_then(parse_rfc3339_micros),
            s.end.as_deref().and_then(parse_rfc3339_micros),
        ) {
            (Some(a), Some(b)) => Some((b - a) / 1000),
            _ => None,
        };
        self.report
    }
}

impl Report {
    /// Reads the log at `path` (verified or not) and summarises it. Lines that are not JSON
    /// objects are counted in [`Totals::unparsable_lines`]; unknown kinds in
    /// [`Totals::unknown_kinds`]. Errors only when the file cannot be read.
    pub fn from_log(path: &Path) -> Result<Report, AuditError> {
        let reader = crate::open_log(path)?;
        Report::from_reader(reader).map_err(|e| AuditError::io("reading audit log", path, e))
    }

    /// Like [`Report::from_log`], from any buffered reader.
    pub fn from_reader<R: std::io::BufRead>(mut reader: R) -> std::io::Result<Report> {
        let mut b = Builder::default();
        let mut line = Line::default();
        let mut n = 0u64;
        while read_line(&mut reader, &mut line)? {
            n += 1;
            if line.oversized {
                b.report.totals.unparsable_lines += 1;
                continue;
            }
            match serde_json::from_slice::<Map<String, Value>>(&line.bytes) {
                Ok(m) => b.record(n, &m),
                Err(_) => b.report.totals.unparsable_lines += 1,
            }
        }
        Ok(b.finish())
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into microseconds since the Unix epoch.
pub(crate) fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, min, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if sep(i, b".") {
        i += 1;
        let mut digits = 0;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if digits < 6 {
                micros = micros * 10 + i64::from(d - b'0');
            }
            digits += 1;
            i += 1;
        }
        if digits == 0 {
            return None;
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
            let off = num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60;
            if c == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    Some(secs * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("?")
}

fn fmt_duration(ms: i64) -> String {
    if ms.abs() < 1000 {
        format!("{ms} ms")
    } else if ms.abs() < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms.abs() < 3_600_000 {
        let total = ms / 1000;
        format!("{}m{:02}s", total / 60, total % 60)
    } else {
        let total = ms / 1000;
        format!(
            "{}h{:02}m{:02}s",
            total / 3600,
            (total / 60) % 60,
            total % 60
        )
    }
}

/// Writes at most [`TEXT_ROWS`] rows and says how many were left out.
fn rows<T>(out: &mut String, items: &[T], row: impl Fn(&T) -> String) {
    for item in items.iter().take(TEXT_ROWS) {
        let _ = writeln!(out, "  {}", row(item));
    }
    if items.len() > TEXT_ROWS {
        let _ = writeln!(out, "  … and {} more", items.len() - TEXT_ROWS);
    }
}

/// Renders a report as plain text for a terminal.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let s = &report.session;
    let _ = writeln!(
        out,
        "Session {}: {} as {} (uid {})",
        opt(&s.session_id),
        if s.command.is_empty() {
            "?".to_string()
        } else {
            join_argv(
                &s.command
                    .iter()
                    .map(|c| Value::from(c.as_str()))
                    .collect::<Vec<_>>(),
            )
        },
        opt(&s.user),
        s.uid.map_or_else(|| "?".to_string(), |u| u.to_string())
    );
    let _ = writeln!(
        out,
        "  start {}, end {}{}, duration {}",
        opt(&s.start),
        opt(&s.end),
        if s.ended { "" } else { " (no session_end)" },
        s.duration_ms.map_or_else(|| "?".to_string(), fmt_duration)
    );
    let _ = writeln!(
        out,
        "  exit code {}, lost events {}, policy {}",
        s.exit_code
            .map_or_else(|| "?".to_string(), |c| c.to_string()),
        s.lost_total
            .map_or_else(|| "?".to_string(), |c| c.to_string()),
        opt(&s.policy_hash)
    );

    let _ = writeln!(out, "\nTimeline ({} notable events)", report.timeline.len());
    rows(&mut out, &report.timeline, |e| {
        format!("{}  {}", e.time.as_deref().unwrap_or("-"), e.summary)
    });

    let execs: u64 = report.commands.iter().map(|c| c.count).sum();
    let _ = writeln!(
        out,
        "\nCommands ({execs} execs of {} programs)",
        report.commands.len()
    );
    rows(&mut out, &report.commands, |c| {
        let mut parts: Vec<String> = c
            .subcommands
            .iter()
            .map(|s| format!("{} x{}", s.name, s.count))
            .collect();
        if c.other_subcommands > 0 {
            parts.push(format!("others x{}", c.other_subcommands));
        }
        let failed = if c.failed > 0 {
            format!(" [{} failed]", c.failed)
        } else {
            String::new()
        };
        format!("{} ({}){failed}: {}", c.program, c.count, parts.join(", "))
    });

    for (title, list) in [
        ("Files read", &report.files_read),
        ("Files written", &report.files_written),
        ("Deletions and renames", &report.path_ops),
    ] {
        let _ = writeln!(out, "\n{title} ({} distinct)", list.len());
        rows(&mut out, list, |c| format!("{} x{}", c.name, c.count));
    }

    let refusal = |r: &Refusal| {
        format!(
            "{}  {} by {}[{}]: rule {}{}",
            r.time.as_deref().unwrap_or("-"),
            r.target,
            opt(&r.comm),
            r.pid.map_or_else(|| "?".to_string(), |p| p.to_string()),
            opt(&r.rule),
            r.why
                .as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        )
    };
    let _ = writeln!(out, "\nFiles refused ({})", report.files_refused.len());
    rows(&mut out, &report.files_refused, refusal);

    let _ = writeln!(out, "\nConnections ({} distinct)", report.connections.len());
    rows(&mut out, &report.connections, |c| {
        format!(
            "{} {} x{}",
            c.family,
            endpoint(Some(&c.family), Some(&c.address), c.port),
            c.count
        )
    });
    let _ = writeln!(
        out,
        "\nConnections refused ({})",
        report.connections_refused.len()
    );
    rows(&mut out, &report.connections_refused, refusal);

    let _ = writeln!(
        out,
        "\nRefused by the sandbox (gate, signals, path calls, approval socket) ({})",
        report.sandbox_refused.len()
    );
    rows(&mut out, &report.sandbox_refused, refusal);

    let _ = writeln!(out, "\nHolds ({})", report.holds.len());
    rows(&mut out, &report.holds, |h| {
        let decided = match &h.decision {
            Some(d) => format!(
                "{d} by {}{}",
                opt(&h.by),
                h.latency_ms
                    .map(|l| format!(" after {l} ms"))
                    .unwrap_or_default()
            ),
            None => "UNDECIDED (no decision in the log)".to_string(),
        };
        format!(
            "#{} {}  `{}` by {}[{}], rule {}: {decided}",
            h.hold_id,
            h.time.as_deref().unwrap_or("-"),
            h.what,
            opt(&h.comm),
            h.pid.map_or_else(|| "?".to_string(), |p| p.to_string()),
            opt(&h.rule),
        )
    });

    let _ = writeln!(out, "\nFreezes ({})", report.freezes.len());
    rows(&mut out, &report.freezes, |f| {
        format!(
            "{}  {} by {}",
            f.time.as_deref().unwrap_or("-"),
            f.action,
            opt(&f.by)
        )
    });

    if !report.policy_trust.is_empty() {
        let _ = writeln!(out, "\nPolicy trust ({})", report.policy_trust.len());
        rows(&mut out, &report.policy_trust, |p| {
            format!(
                "{}  {} {} by {} (hash {})",
                p.time.as_deref().unwrap_or("-"),
                opt(&p.path),
                opt(&p.decision),
                opt(&p.by),
                opt(&p.hash)
            )
        });
    }

    let t = &report.totals;
    let _ = writeln!(
        out,
        "\nTotals: {} records ({} unparsable lines, {} of unknown kinds); {} holds ({} refused, \
         {} undecided); {} failed execs",
        t.records,
        t.unparsable_lines,
        t.unknown_kinds,
        t.holds,
        t.holds_refused,
        t.holds_undecided,
        t.failed_execs
    );
    let kinds: Vec<String> = t.by_kind.iter().map(|(k, c)| format!("{k} {c}")).collect();
    let _ = writeln!(out, "  by kind: {}", kinds.join(", "));
    if t.omitted_entries > 0 {
        let _ = writeln!(
            out,
            "  {} entries left out of the lists above (bounded at {MAX_ENTRIES} each)",
            t.omitted_entries
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_micros("1970-01-01T00:00:01.5Z"),
            Some(1_500_000)
        );
        // 2026-11-21 is day 20_778 after the epoch.
        assert_eq!(days_from_civil(2026, 11, 21), 20_778);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let a = parse_rfc3339_micros("2026-11-21T06:26:00.240941Z").unwrap();
        let b = parse_rfc3339_micros("2026-11-21T07:26:00.240941+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a % 1_000_000, 240_941);
        for bad in [
            "",
            "2026-11-21",
            "2026-13-21T06:26:00Z",
            "2026-11-21T06:26:00",
            "2026-11-21T06:26:00.Z",
            "2026-11-21T06:26:00Zjunk",
            "２026-11-21T06:26:00Z",
        ] {
            assert_eq!(parse_rfc3339_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn argv_quoting() {
        let argv = vec![
            Value::from("bash"),
            Value::from("-c"),
            Value::from("rm -rf x; echo 'hi'"),
        ];
        assert_eq!(join_argv(&argv), r#"bash -c 'rm -rf x; echo '\''hi'\'''"#);
    }

    #[test]
    fn write_flags() {
        let f = |v: Value| is_write_open(v.as_object().unwrap());
        assert!(f(serde_json::json!({"flags": "O_WRONLY|O_CREAT"})));
        assert!(f(serde_json::json!({"flags": "O_RDWR"})));
        assert!(!f(serde_json::json!({"flags": "O_RDONLY|O_CLOEXEC"})));
        assert!(f(serde_json::json!({"flags_raw": 577})));
        assert!(!f(serde_json::json!({"flags_raw": 524288})));
    }
}
