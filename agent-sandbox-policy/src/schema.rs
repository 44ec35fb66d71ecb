//! The policy file model and its parser.
//!
//! Parsing is done in three passes so that one run reports every error:
//! 1. `toml`'s recoverable parser gives a spanned document and all syntax errors;
//! 2. a walk over the document checks every key against the schema (the
//!    field lists come from the serde structs themselves) and deserializes
//!    each rule on its own, so a bad rule does not hide the next one;
//! 3. values that serde only sees as strings (CIDRs, ports, hosts, globs,
//!    ids) are validated into their typed forms, with the span of each value.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diag::{Diagnostic, Level, LineIndex, suggest};
use crate::glob::PathGlob;
use crate::types::{
    Action, Cidr, HostPattern, NetworkDefault, PortRange, ProtectAction, Protocol, Severity,
    ValueError,
};

/// Where a policy file comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The default policy compiled into the binary.
    Default,
    /// The machine owner's policy (`~/.config/agent-sandbox/policy.toml`).
    User(PathBuf),
    /// The repository's `policy.toml` (or `--policy FILE`).
    Repository(PathBuf),
}

impl Source {
    /// The name used in diagnostics: the path, or `<embedded default>`.
    pub fn file_name(&self) -> String {
        match self {
            Source::Default => "<embedded default>".to_string(),
            Source::User(p) | Source::Repository(p) => p.display().to_string(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("embedded default"),
            Source::User(p) => write!(f, "user policy {}", p.display()),
            Source::Repository(p) => write!(f, "repository policy {}", p.display()),
        }
    }
}

/// The place a rule or setting was written: source file, line and column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file.
    pub source: Source,
    /// 1-based line (0 for a built-in value no file set).
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
}

impl fmt::Display for Origin {
    /// `repository policy /r/policy.toml:12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{} (built in)", self.source)
        } else {
            write!(f, "{}:{}", self.source, self.line)
        }
    }
}

/// A value together with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub origin: Origin,
}

/// What every rule has: its id, the reason shown when it fires, its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMeta {
    /// Unique id, `[a-z0-9][a-z0-9-]*`.
    pub id: String,
    /// Shown whenever the rule fires.
    pub why: Option<String>,
    /// Where the rule's table starts.
    pub origin: Origin,
}

/// `[[network.deny]]` / `[[network.allow]]`: destinations by name or address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRule {
    /// Id, reason, origin.
    pub meta: RuleMeta,
    /// Host names (re-resolved by the supervisor).
    pub hosts: Vec<HostPattern>,
    /// Address ranges.
    pub cidrs: Vec<Cidr>,
    /// Ports; empty means all ports.
    pub ports: Vec<PortRange>,
    /// Protocols; both when the policy omits them.
    pub protocols: Vec<Protocol>,
}

/// `[[files.deny_read]]`: files no process in the sandbox may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyReadRule {
    /// Id, reason, origin.
    pub meta: RuleMeta,
    /// Globs of denied files.
    pub paths: Vec<PathGlob>,
    /// Globs exempted from `paths` (e.g. `.env.example`).
    pub except: Vec<PathGlob>,
}

/// `[[files.protect]]`: files whose deletion, rename or overwrite is gated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectRule {
    /// Id, reason, origin.
    pub meta: RuleMeta,
    /// Globs of protected files.
    pub paths: Vec<PathGlob>,
    /// Ask (default) or deny.
    pub action: ProtectAction,
}

/// `[[exec.rule]]`: a command pattern and what to do when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRule {
    /// Id, reason, origin.
    pub meta: RuleMeta,
    /// Allow, ask or deny.
    pub action: Action,
    /// Shown in the approval UI.
    pub severity: Option<Severity>,
    /// The command pattern (`match` in the file).
    pub pattern: String,
}

/// `[[sql.rule]]` (reserved: parsed and validated, not enforced yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlRule {
    /// Id, reason, origin.
    pub meta: RuleMeta,
    /// Allow, ask or deny.
    pub action: Action,
    /// The statement pattern (`match` in the file).
    pub pattern: String,
}

/// `[[http.rule]]` (reserved: parsed and validated, not enforced yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    /// Id, reason, origin.
    pub meta: RuleMeta,
    /// Allow, ask or deny.
    pub action: Action,
    /// Upper-case HTTP method, any when absent.
    pub method: Option<String>,
    /// Host, any when absent.
    pub host: Option<HostPattern>,
    /// Path pattern starting with `/`, any when absent.
    pub path: Option<String>,
}

/// `[network]` of one file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkSection {
    /// `default`, if the file sets it.
    pub default: Option<Located<NetworkDefault>>,
    /// `resolve_interval_secs`, if set.
    pub resolve_interval_secs: Option<Located<u64>>,
    /// `[[network.deny]]` rules.
    pub deny: Vec<NetworkRule>,
    /// `[[network.allow]]` rules (used in allow-list mode).
    pub allow: Vec<NetworkRule>,
}

/// `[scan]` of one file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanSection {
    /// `enabled`, if set.
    pub enabled: Option<Located<bool>>,
    /// `max_bytes`, if set.
    pub max_bytes: Option<Located<u64>>,
    /// `max_secs`, if set.
    pub max_secs: Option<Located<u64>>,
    /// `exempt` globs.
    pub exempt: Vec<Located<PathGlob>>,
}

/// One parsed and validated policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// Where it came from.
    pub source: Source,
    /// `disable`: ids of default rules to switch off (user policy only).
    pub disable: Vec<Located<String>>,
    /// `[network]`.
    pub network: NetworkSection,
    /// `[[files.deny_read]]`.
    pub deny_read: Vec<DenyReadRule>,
    /// `[[files.protect]]`.
    pub protect: Vec<ProtectRule>,
    /// `[[exec.rule]]`.
    pub exec: Vec<ExecRule>,
    /// `[[sql.rule]]`.
    pub sql: Vec<SqlRule>,
    /// `[[http.rule]]`.
    pub http: Vec<HttpRule>,
    /// `[approval] timeout_secs`, if set.
    pub approval_timeout_secs: Option<Located<u64>>,
    /// `[approval] mass_delete_files`, if set: deletions that freeze the tree...
    pub mass_delete_files: Option<Located<u64>>,
    /// ...within `[approval] mass_delete_window_secs` seconds.
    pub mass_delete_window_secs: Option<Located<u64>>,
    /// `[scan]`.
    pub scan: ScanSection,
    /// `[env] keep` (user policy only).
    pub env_keep: Vec<Located<String>>,
}

impl PolicyFile {
    /// Parses and validates a policy text. On failure returns every
    /// diagnostic found (all of them errors or warnings, at least one error).
    pub fn parse(text: &str, source: Source) -> Result<PolicyFile, Vec<Diagnostic>> {
        let (file, diags) = parse_file(text, source);
        if diags.iter().any(Diagnostic::is_error) {
            Err(diags)
        } else {
            Ok(file)
        }
    }

    /// The metadata of every rule of the file, in schema order.
    pub fn rules(&self) -> Vec<&RuleMeta> {
        let mut out: Vec<&RuleMeta> = Vec::new();
        out.extend(self.network.deny.iter().map(|r| &r.meta));
        out.extend(self.network.allow.iter().map(|r| &r.meta));
        out.extend(self.deny_read.iter().map(|r| &r.meta));
        out.extend(self.protect.iter().map(|r| &r.meta));
        out.extend(self.exec.iter().map(|r| &r.meta));
        out.extend(self.sql.iter().map(|r| &r.meta));
        out.extend(self.http.iter().map(|r| &r.meta));
        out
    }
}

// ---------------------------------------------------------------------------
// Raw serde forms. Strings that need validation stay `Spanned<String>` so the
// validation pass can point at them.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    #[serde(default)]
    disable: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    default: Option<Spanned<NetworkDefault>>,
    resolve_interval_secs: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetRule {
    id: Spanned<String>,
    why: Option<String>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
    #[serde(default)]
    cidrs: Vec<Spanned<String>>,
    #[serde(default)]
    ports: Vec<Spanned<RawPort>>,
    protocols: Option<Spanned<Vec<Protocol>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDenyRead {
    id: Spanned<String>,
    why: Option<String>,
    #[serde(default)]
    paths: Vec<Spanned<String>>,
    #[serde(default)]
    except: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtect {
    id: Spanned<String>,
    why: Option<String>,
    #[serde(default)]
    paths: Vec<Spanned<String>>,
    #[serde(default)]
    action: ProtectAction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    id: Spanned<String>,
    why: Option<String>,
    action: Action,
    severity: Option<Severity>,
    #[serde(rename = "match")]
    pattern: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    id: Spanned<String>,
    why: Option<String>,
    action: Action,
    #[serde(rename = "match")]
    pattern: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    id: Spanned<String>,
    why: Option<String>,
    action: Action,
    method: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    timeout_secs: Option<Spanned<i64>>,
    mass_delete_files: Option<Spanned<i64>>,
    mass_delete_window_secs: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScan {
    enabled: Option<Spanned<bool>>,
    max_bytes: Option<Spanned<i64>>,
    max_secs: Option<Spanned<i64>>,
    #[serde(default)]
    exempt: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    #[serde(default)]
    keep: Vec<Spanned<String>>,
}

/// A port: a number or a `"low-high"` string. Other types are kept as
/// `Invalid` so each bad item of a list is reported, not just the first.
enum RawPort {
    Num(i64),
    Text(String),
    Invalid(&'static str),
}

impl<'de> Deserialize<'de> for RawPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawPort;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a \"low-high\" range string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPort, E> {
                Ok(RawPort::Num(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPort, E> {
                Ok(RawPort::Num(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPort, E> {
                Ok(RawPort::Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawPort, E> {
                Ok(RawPort::Invalid("a boolean"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawPort, E> {
                Ok(RawPort::Invalid("a float"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The field names serde expects for `T`, read from its derived
/// `Deserialize` by a deserializer that only records them: the schema's key
/// lists then cannot drift from the structs.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field probe")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

// ---------------------------------------------------------------------------

const SECTIONS: &[&str] = &[
    "network", "files", "exec", "sql", "http", "approval", "scan", "env",
];

struct Parser<'a> {
    text: &'a str,
    source: Source,
    file: String,
    idx: LineIndex,
    /// Diagnostics, each flagged when it depends on seeing a whole table
    /// (a missing field), which a syntax error can make untrue.
    diags: Vec<(Diagnostic, bool)>,
    ids: HashMap<String, usize>,
}

type Span = Range<usize>;

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::Table(_) => "a table",
        DeValue::Array(_) => "an array",
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
    }
}

/// Parses `text`, returning the (possibly partial) file and every diagnostic.
pub(crate) fn parse_file(text: &str, source: Source) -> (PolicyFile, Vec<Diagnostic>) {
    let mut p = Parser {
        text,
        file: source.file_name(),
        source: source.clone(),
        idx: LineIndex::new(text),
        diags: Vec::new(),
        ids: HashMap::new(),
    };
    let mut file = PolicyFile {
        source,
        disable: Vec::new(),
        network: NetworkSection::default(),
        deny_read: Vec::new(),
        protect: Vec::new(),
        exec: Vec::new(),
        sql: Vec::new(),
        http: Vec::new(),
        approval_timeout_secs: None,
        mass_delete_files: None,
        mass_delete_window_secs: None,
        scan: ScanSection::default(),
        env_keep: Vec::new(),
    };

    let (clean, syntax, blanked) = syntax_pass(text);
    let syntax_diags: Vec<Diagnostic> = syntax
        .into_iter()
        .map(|(off, msg)| p.diag(off, msg, None))
        .collect();

    let (doc, _) = DeTable::parse_recoverable(&clean);
    let span = doc.span();
    p.top(DeValue::Table(doc.into_inner()), span, &mut file);

    // A whole-table finding (missing key, empty rule) is unreliable when a
    // line of that table was blanked out after a syntax error.
    let headers = header_lines(&clean);
    let table_touched = |line: usize| {
        let next = headers
            .iter()
            .copied()
            .find(|&h| h > line)
            .unwrap_or(usize::MAX);
        blanked.iter().any(|&b| b >= line && b < next)
    };
    let mut diags: Vec<Diagnostic> = syntax_diags;
    for (d, whole_table) in p.diags {
        if !(whole_table && table_touched(d.line)) {
            diags.push(d);
        }
    }
    diags.sort_by_key(|d| (d.line, d.column));
    (file, diags)
}

/// 1-based numbers of the lines that start a table header.
fn header_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with('['))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Syntax errors without the cascade `toml`'s recovery produces: report the
/// earliest error, blank out the statement it is in (a broken table header
/// takes its table's lines with it), parse again. Returns the cleaned text
/// (same byte offsets as `text`), the errors as (offset, message), and the
/// 1-based numbers of the blanked lines.
fn syntax_pass(text: &str) -> (String, Vec<(usize, String)>, Vec<usize>) {
    let mut clean: Vec<u8> = text.as_bytes().to_vec();
    let mut errors = Vec::new();
    let mut blanked = Vec::new();
    let idx = LineIndex::new(text);
    // Each round blanks at least one non-blank line, so this bound is only a
    // guard on the number of errors reported.
    for _ in 0..64 {
        let Ok(cur) = std::str::from_utf8(&clean) else {
            break;
        };
        let (doc, errs) = DeTable::parse_recoverable(cur);
        let Some(first) = errs
            .iter()
            .min_by_key(|e| e.span().map(|s| s.start).unwrap_or(0))
        else {
            break;
        };
        let off = first.span().map(|s| s.start).unwrap_or(0).min(cur.len());
        let (err_line, _) = idx.locate(text, off);
        let found = statement_at(doc.get_ref(), off);
        let unclosed = errs.iter().any(|e| e.message().starts_with("unclosed"));
        let (report_off, message) = match &found {
            // An unclosed bracket makes the parser complain about whatever
            // follows; the opening bracket is the error.
            Some((_, value, true)) if unclosed && idx.locate(text, value.start).0 < err_line => (
                value.start,
                "this array or inline table is not closed (or an element is malformed)".to_string(),
            ),
            _ => (off, first.message().to_string()),
        };
        let start_line = match &found {
            Some((key_start, _, _)) => idx.locate(text, *key_start).0.min(err_line),
            None => err_line,
        };
        let lines: Vec<&str> = cur.split('\n').collect();
        let err_is_header = lines
            .get(err_line - 1)
            .is_some_and(|l| l.trim_start().starts_with('['));
        // A header swallowed by an unclosed bracket above it stays: only the
        // broken statement goes.
        let mut end_line = if err_is_header && err_line > start_line {
            err_line - 1
        } else {
            err_line
        };
        let is_header = lines
            .get(start_line - 1)
            .is_some_and(|l| l.trim_start().starts_with('['));
        if is_header {
            // The keys of a broken table would land in the previous one.
            end_line = (start_line + 1..=lines.len())
                .take_while(|&n| {
                    lines
                        .get(n - 1)
                        .is_some_and(|l| !l.trim_start().starts_with('['))
                })
                .last()
                .unwrap_or(start_line)
                .max(end_line);
        }
        let mut changed = false;
        let mut line_no = 1;
        for b in clean.iter_mut() {
            if *b == b'\n' {
                line_no += 1;
                continue;
            }
            if (start_line..=end_line).contains(&line_no) && *b != b' ' {
                *b = b' ';
                changed = true;
            }
        }
        errors.push((report_off, message));
        blanked.extend(start_line..=end_line);
        if !changed {
            break;
        }
    }
    let clean = String::from_utf8(clean).unwrap_or_default();
    (clean, errors, blanked)
}

/// The statement holding byte `off`: the offset of its key, the span of the
/// value and whether that value is an array or inline table.
fn statement_at(table: &DeTable<'_>, off: usize) -> Option<(usize, Span, bool)> {
    for (k, v) in table.iter() {
        let vs = v.span();
        let contains = vs.start <= off && off <= vs.end;
        match v.get_ref() {
            DeValue::Table(t) => {
                if contains && vs.end > vs.start {
                    return Some((k.span().start, vs, true));
                }
                if let Some(hit) = statement_at(t, off) {
                    return Some(hit);
                }
            }
            DeValue::Array(a) => {
                let of_tables = a.iter().all(|e| matches!(e.get_ref(), DeValue::Table(_)));
                if of_tables && !a.is_empty() {
                    for e in a.iter() {
                        if let DeValue::Table(t) = e.get_ref()
                            && let Some(hit) = statement_at(t, off)
                        {
                            return Some(hit);
                        }
                    }
                }
                if contains {
                    return Some((k.span().start, vs, true));
                }
            }
            _ if contains => return Some((k.span().start, vs, false)),
            _ => {}
        }
    }
    None
}

impl Parser<'_> {
    fn diag(&self, offset: usize, message: String, suggestion: Option<String>) -> Diagnostic {
        let (line, column) = self.idx.locate(self.text, offset);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            level: Level::Error,
            message,
            suggestion,
        }
    }

    fn error(&mut self, span: &Span, message: String, suggestion: Option<String>) {
        let d = self.diag(span.start, message, suggestion);
        self.diags.push((d, false));
    }

    /// An error about a whole table (a missing key, an empty rule): dropped
    /// if a syntax error took some of the table's lines away.
    fn table_error(&mut self, span: &Span, message: String) {
        let d = self.diag(span.start, message, None);
        self.diags.push((d, true));
    }

    fn origin(&self, span: &Span) -> Origin {
        let (line, column) = self.idx.locate(self.text, span.start);
        Origin {
            source: self.source.clone(),
            line,
            column,
        }
    }

    fn located<T>(&self, v: T, span: &Span) -> Located<T> {
        Located {
            value: v,
            origin: self.origin(span),
        }
    }

    /// Splits a table into the keys serde deserializes (`fields`), and the
    /// child tables/arrays the walker handles (`children`); reports the rest.
    fn split<'i>(
        &mut self,
        table: DeTable<'i>,
        ctx: &str,
        fields: &[&str],
        children: &[&str],
    ) -> (DeTable<'i>, Vec<(String, Span, Spanned<DeValue<'i>>)>) {
        let mut own = DeTable::default();
        let mut kids = Vec::new();
        for (k, v) in table {
            let name: &str = k.get_ref();
            if fields.contains(&name) {
                own.insert(k, v);
            } else if children.contains(&name) {
                kids.push((name.to_string(), k.span(), v));
            } else {
                let all: Vec<&str> = fields.iter().chain(children).copied().collect();
                let s = suggest(name, &all).map(str::to_string);
                self.error(&k.span(), format!("unknown key \"{name}\" in {ctx}"), s);
            }
        }
        (own, kids)
    }

    /// Deserializes `T` from a table whose keys are all known. On a type
    /// error the offending key is reported and dropped and the rest retried,
    /// so every bad value of the table is reported.
    fn de<T: for<'d> Deserialize<'d>>(
        &mut self,
        table: DeTable<'_>,
        span: &Span,
        ctx: &str,
    ) -> Option<T> {
        let fields = fields_of::<T>();
        let (mut table, _) = self.split(table, ctx, fields, &[]);
        let mut dropped: Vec<String> = Vec::new();
        for _ in 0..=table.len() + 1 {
            let value = Spanned::new(span.clone(), DeValue::Table(table.clone()));
            let err = match T::deserialize(ValueDeserializer::from(value)) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let at = err.span().unwrap_or_else(|| span.clone());
            let msg = err.message().to_string();
            if let Some(field) = missing_field(&msg) {
                if !dropped.iter().any(|d| d == field) {
                    self.table_error(span, format!("missing required key \"{field}\" in {ctx}"));
                }
                return None;
            }
            let key = table
                .iter()
                .find(|(k, v)| {
                    let (ks, vs) = (k.span(), v.span());
                    (vs.start <= at.start && at.start < vs.end.max(vs.start + 1))
                        || (ks.start <= at.start && at.start < ks.end)
                })
                .map(|(k, _)| k.get_ref().to_string());
            match key {
                Some(key) => {
                    let s = enum_suggestion(&msg);
                    self.error(
                        &at,
                        format!("invalid value for \"{key}\" in {ctx}: {msg}"),
                        s,
                    );
                    table = table
                        .into_iter()
                        .filter(|(k, _)| *k.get_ref() != key)
                        .collect();
                    dropped.push(key);
                }
                None => {
                    self.error(&at, format!("in {ctx}: {msg}"), None);
                    return None;
                }
            }
        }
        None
    }

    fn top(&mut self, doc: DeValue<'_>, span: Span, file: &mut PolicyFile) {
        let DeValue::Table(table) = doc else {
            return;
        };
        let (own, kids) = self.split(table, "the top level", fields_of::<RawTop>(), SECTIONS);
        if let Some(raw) = self.de::<RawTop>(own, &span, "the top level") {
            for id in raw.disable {
                if self.check_id(&id) {
                    file.disable
                        .push(self.located(id.get_ref().clone(), &id.span()));
                }
            }
        }
        for (name, key_span, value) in kids {
            let vspan = value.span();
            let DeValue::Table(t) = value.into_inner() else {
                self.error(
                    &key_span,
                    format!("\"{name}\" must be a table ([{name}])"),
                    None,
                );
                continue;
            };
            let ctx = format!("[{name}]");
            match name.as_str() {
                "network" => self.network(t, &vspan, &ctx, file),
                "files" => {
                    let (_, kids) = self.split(t, &ctx, &[], &["deny_read", "protect"]);
                    for (n, ks, v) in kids {
                        let rctx = format!("[[files.{n}]]");
                        for (rt, rs) in self.rule_tables(v, &ks, &rctx) {
                            if n == "deny_read" {
                                if let Some(r) = self.de::<RawDenyRead>(rt, &rs, &rctx)
                                    && let Some(r) = self.deny_read(r, &rs, &rctx)
                                {
                                    file.deny_read.push(r);
                                }
                            } else if let Some(r) = self.de::<RawProtect>(rt, &rs, &rctx)
                                && let Some(r) = self.protect(r, &rs, &rctx)
                            {
                                file.protect.push(r);
                            }
                        }
                    }
                }
                "exec" | "sql" | "http" => {
                    let (_, kids) = self.split(t, &ctx, &[], &["rule"]);
                    for (_, ks, v) in kids {
                        let rctx = format!("[[{name}.rule]]");
                        for (rt, rs) in self.rule_tables(v, &ks, &rctx) {
                            match name.as_str() {
                                "exec" => {
                                    if let Some(r) = self.de::<RawExec>(rt, &rs, &rctx)
                                        && let Some(r) = self.exec(r, &rs, &rctx)
                                    {
                                        file.exec.push(r);
                                    }
                                }
                                "sql" => {
                                    if let Some(r) = self.de::<RawSql>(rt, &rs, &rctx)
                                        && let Some(r) = self.sql(r, &rs, &rctx)
                                    {
                                        file.sql.push(r);
                                    }
                                }
                                _ => {
                                    if let Some(r) = self.de::<RawHttp>(rt, &rs, &rctx)
                                        && let Some(r) = self.http(r, &rs, &rctx)
                                    {
                                        file.http.push(r);
                                    }
                                }
                            }
                        }
                    }
                }
                "approval" => {
                    let (own, _) = self.split(t, &ctx, fields_of::<RawApproval>(), &[]);
                    if let Some(raw) = self.de::<RawApproval>(own, &vspan, &ctx) {
                        if let Some(t) = raw.timeout_secs {
                            file.approval_timeout_secs =
                                self.ranged(&t, 1, 86_400, "approval.timeout_secs");
                        }
                        if let Some(n) = raw.mass_delete_files {
                            file.mass_delete_files =
                                self.ranged(&n, 1, 1_000_000, "approval.mass_delete_files");
                        }
                        if let Some(w) = raw.mass_delete_window_secs {
                            file.mass_delete_window_secs =
                                self.ranged(&w, 1, 3600, "approval.mass_delete_window_secs");
                        }
                    }
                }
                "scan" => {
                    let (own, _) = self.split(t, &ctx, fields_of::<RawScan>(), &[]);
                    if let Some(raw) = self.de::<RawScan>(own, &vspan, &ctx) {
                        file.scan.enabled =
                            raw.enabled.map(|e| self.located(*e.get_ref(), &e.span()));
                        if let Some(b) = raw.max_bytes {
                            file.scan.max_bytes = self.ranged(&b, 1, i64::MAX, "scan.max_bytes");
                        }
                        if let Some(s) = raw.max_secs {
                            file.scan.max_secs = self.ranged(&s, 1, 3600, "scan.max_secs");
                        }
                        file.scan.exempt = self.globs(&raw.exempt);
                    }
                }
                "env" => {
                    let (own, _) = self.split(t, &ctx, fields_of::<RawEnv>(), &[]);
                    if let Some(raw) = self.de::<RawEnv>(own, &vspan, &ctx) {
                        for k in raw.keep {
                            if valid_env_name(k.get_ref()) {
                                file.env_keep
                                    .push(self.located(k.get_ref().clone(), &k.span()));
                            } else {
                                self.error(
                                    &k.span(),
                                    format!(
                                        "\"{}\" is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                                        k.get_ref()
                                    ),
                                    None,
                                );
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn network(&mut self, t: DeTable<'_>, span: &Span, ctx: &str, file: &mut PolicyFile) {
        let (own, kids) = self.split(t, ctx, fields_of::<RawNetwork>(), &["deny", "allow"]);
        if let Some(raw) = self.de::<RawNetwork>(own, span, ctx) {
            file.network.default = raw.default.map(|d| self.located(*d.get_ref(), &d.span()));
            if let Some(r) = raw.resolve_interval_secs {
                file.network.resolve_interval_secs =
                    self.ranged(&r, 5, 86_400, "network.resolve_interval_secs");
            }
        }
        for (n, ks, v) in kids {
            let rctx = format!("[[network.{n}]]");
            for (rt, rs) in self.rule_tables(v, &ks, &rctx) {
                if let Some(raw) = self.de::<RawNetRule>(rt, &rs, &rctx)
                    && let Some(rule) = self.net_rule(raw, &rs, &rctx)
                {
                    if n == "deny" {
                        file.network.deny.push(rule);
                    } else {
                        file.network.allow.push(rule);
                    }
                }
            }
        }
    }

    /// The tables of an array of rules (`[[x.y]]` or `y = [{...}]`).
    fn rule_tables<'i>(
        &mut self,
        v: Spanned<DeValue<'i>>,
        key_span: &Span,
        ctx: &str,
    ) -> Vec<(DeTable<'i>, Span)> {
        let inner = ctx.trim_start_matches('[').trim_end_matches(']');
        let arr = match v.into_inner() {
            DeValue::Array(a) => a,
            DeValue::Table(_) => {
                self.error(
                    key_span,
                    format!("{inner} is a list of rules: write [[{inner}]], not [{inner}]"),
                    None,
                );
                return Vec::new();
            }
            other => {
                self.error(
                    key_span,
                    format!(
                        "{inner} must be a list of rule tables ([[{inner}]] with an id), found {}",
                        type_name(&other)
                    ),
                    None,
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in arr.iter() {
            let span = item.span();
            match item.get_ref() {
                DeValue::Table(t) => out.push((t.clone(), span)),
                other => self.error(
                    &span,
                    format!(
                        "each entry of {inner} must be a rule table with an id, found {}",
                        type_name(other)
                    ),
                    None,
                ),
            }
        }
        out
    }

    fn ranged(&mut self, v: &Spanned<i64>, lo: i64, hi: i64, what: &str) -> Option<Located<u64>> {
        let n = *v.get_ref();
        if n < lo || n > hi {
            self.error(
                &v.span(),
                format!("{what} must be between {lo} and {hi} (got {n})"),
                None,
            );
            return None;
        }
        u64::try_from(n).ok().map(|n| self.located(n, &v.span()))
    }

    /// Validates an id's syntax and its uniqueness within the file.
    fn rule_id(&mut self, id: &Spanned<String>) -> bool {
        if !self.check_id(id) {
            return false;
        }
        let line = self.idx.locate(self.text, id.span().start).0;
        if let Some(first) = self.ids.get(id.get_ref()) {
            let first = *first;
            self.error(
                &id.span(),
                format!(
                    "duplicate rule id \"{}\" (first defined at line {first})",
                    id.get_ref()
                ),
                None,
            );
            return false;
        }
        self.ids.insert(id.get_ref().clone(), line);
        true
    }

    fn check_id(&mut self, id: &Spanned<String>) -> bool {
        let s = id.get_ref();
        if valid_id(s) {
            return true;
        }
        let fixed: String = s
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .trim_matches('-')
            .to_string();
        let suggestion = valid_id(&fixed).then_some(fixed);
        self.error(
            &id.span(),
            format!("invalid rule id \"{s}\": use lower-case letters, digits and '-' (at most 64)"),
            suggestion,
        );
        false
    }

    fn meta(&mut self, id: &Spanned<String>, why: Option<String>, span: &Span) -> Option<RuleMeta> {
        self.rule_id(id).then(|| RuleMeta {
            id: id.get_ref().clone(),
            why,
            origin: self.origin(span),
        })
    }

    /// Parses every item; `None` if any is invalid (all are reported).
    fn values<T: FromStr<Err = ValueError>>(
        &mut self,
        items: &[Spanned<String>],
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            match item.get_ref().parse::<T>() {
                Ok(v) => out.push(v),
                Err(e) => {
                    self.error(&item.span(), e.message, e.suggestion);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn globs(&mut self, items: &[Spanned<String>]) -> Vec<Located<PathGlob>> {
        let mut out = Vec::new();
        for item in items {
            match item.get_ref().parse::<PathGlob>() {
                Ok(g) => out.push(self.located(g, &item.span())),
                Err(e) => self.error(&item.span(), e.message, e.suggestion),
            }
        }
        out
    }

    fn net_rule(&mut self, raw: RawNetRule, span: &Span, ctx: &str) -> Option<NetworkRule> {
        let meta = self.meta(&raw.id, raw.why, span);
        let hosts = self.values::<HostPattern>(&raw.hosts);
        let cidrs = self.values::<Cidr>(&raw.cidrs);
        let mut ports = Some(Vec::new());
        for p in &raw.ports {
            let r = match p.get_ref() {
                RawPort::Num(n) => PortRange::new(*n, *n),
                RawPort::Text(t) => t.parse(),
                RawPort::Invalid(what) => Err(ValueError {
                    message: format!(
                        "a port must be a number or a \"low-high\" string, found {what}"
                    ),
                    suggestion: None,
                }),
            };
            match (r, ports.as_mut()) {
                (Ok(r), Some(v)) => v.push(r),
                (Ok(_), None) => {}
                (Err(e), _) => {
                    self.error(&p.span(), e.message, e.suggestion);
                    ports = None;
                }
            }
        }
        let protocols = match raw.protocols {
            None => Some(vec![Protocol::Tcp, Protocol::Udp]),
            Some(p) if p.get_ref().is_empty() => {
                self.error(
                    &p.span(),
                    "protocols cannot be empty: omit it for both tcp and udp".into(),
                    None,
                );
                None
            }
            Some(p) => {
                let mut v = p.into_inner();
                v.dedup();
                Some(v)
            }
        };
        if raw.hosts.is_empty() && raw.cidrs.is_empty() && raw.ports.is_empty() {
            self.table_error(
                span,
                format!("empty rule in {ctx}: give hosts, cidrs or ports"),
            );
            return None;
        }
        Some(NetworkRule {
            meta: meta?,
            hosts: hosts?,
            cidrs: cidrs?,
            ports: ports?,
            protocols: protocols?,
        })
    }

    fn paths(
        &mut self,
        items: &[Spanned<String>],
        span: &Span,
        ctx: &str,
    ) -> Option<Vec<PathGlob>> {
        if items.is_empty() {
            self.table_error(
                span,
                format!("empty rule in {ctx}: give at least one path in `paths`"),
            );
            return None;
        }
        self.values::<PathGlob>(items)
    }

    fn deny_read(&mut self, raw: RawDenyRead, span: &Span, ctx: &str) -> Option<DenyReadRule> {
        let meta = self.meta(&raw.id, raw.why, span);
        let paths = self.paths(&raw.paths, span, ctx);
        let except = self.values::<PathGlob>(&raw.except);
        Some(DenyReadRule {
            meta: meta?,
            paths: paths?,
            except: except?,
        })
    }

    fn protect(&mut self, raw: RawProtect, span: &Span, ctx: &str) -> Option<ProtectRule> {
        let meta = self.meta(&raw.id, raw.why, span);
        let paths = self.paths(&raw.paths, span, ctx);
        Some(ProtectRule {
            meta: meta?,
            paths: paths?,
            action: raw.action,
        })
    }

    fn pattern(&mut self, p: &Spanned<String>, ctx: &str) -> Option<String> {
        if p.get_ref().trim().is_empty() {
            self.error(
                &p.span(),
                format!("empty rule in {ctx}: `match` is empty"),
                None,
            );
            return None;
        }
        Some(p.get_ref().clone())
    }

    fn exec(&mut self, raw: RawExec, span: &Span, ctx: &str) -> Option<ExecRule> {
        let meta = self.meta(&raw.id, raw.why, span);
        let pattern = self
            .pattern(&raw.pattern, ctx)
            .and_then(|p| self.command_pattern(&raw.pattern, p, ctx));
        Some(ExecRule {
            meta: meta?,
            action: raw.action,
            severity: raw.severity,
            pattern: pattern?,
        })
    }

    /// A command pattern is shell-split into words (each a glob); `...` may only end it.
    fn command_pattern(&mut self, at: &Spanned<String>, p: String, ctx: &str) -> Option<String> {
        let Some(words) = shlex::split(&p) else {
            self.error(
                &at.span(),
                format!("`match` in {ctx} has an unbalanced quote: close every ' and \""),
                None,
            );
            return None;
        };
        if let Some(i) = words.iter().position(|w| w == "...")
            && i + 1 != words.len()
        {
            self.error(
                &at.span(),
                format!(
                    "`match` in {ctx}: `...` (any further arguments) may only be the last word"
                ),
                Some(format!("match = \"{}\"", words[..i].join(" ") + " ...")),
            );
            return None;
        }
        Some(p)
    }

    fn sql(&mut self, raw: RawSql, span: &Span, ctx: &str) -> Option<SqlRule> {
        let meta = self.meta(&raw.id, raw.why, span);
        let pattern = self.pattern(&raw.pattern, ctx);
        Some(SqlRule {
            meta: meta?,
            action: raw.action,
            pattern: pattern?,
        })
    }

    fn http(&mut self, raw: RawHttp, span: &Span, ctx: &str) -> Option<HttpRule> {
        let meta = self.meta(&raw.id, raw.why, span);
        let mut ok = true;
        let method = raw.method.as_ref().and_then(|m| {
            let up = m.get_ref().to_ascii_uppercase();
            if !up.is_empty() && up.len() <= 32 && up.bytes().all(|b| b.is_ascii_uppercase()) {
                Some(up)
            } else {
                self.error(
                    &m.span(),
                    format!("\"{}\" is not an HTTP method", m.get_ref()),
                    None,
                );
                ok = false;
                None
            }
        });
        let host = raw
            .host
            .as_ref()
            .and_then(|h| match h.get_ref().parse::<HostPattern>() {
                Ok(h) => Some(h),
                Err(e) => {
                    self.error(&h.span(), e.message, e.suggestion);
                    ok = false;
                    None
                }
            });
        let path = raw.path.as_ref().and_then(|p| {
            if p.get_ref().starts_with('/') {
                Some(p.get_ref().clone())
            } else {
                self.error(
                    &p.span(),
                    format!("HTTP path \"{}\" must start with '/'", p.get_ref()),
                    None,
                );
                ok = false;
                None
            }
        });
        if raw.method.is_none() && raw.host.is_none() && raw.path.is_none() {
            self.table_error(
                span,
                format!("empty rule in {ctx}: give method, host or path"),
            );
            return None;
        }
        if !ok {
            return None;
        }
        Some(HttpRule {
            meta: meta?,
            action: raw.action,
            method,
            host,
            path,
        })
    }
}

fn missing_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")?.split('`').next()
}

/// From serde's "unknown variant `alow`, expected one of `allow`, `ask`": the
/// closest expected variant.
fn enum_suggestion(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown variant `")?;
    let (got, expected) = rest.split_once('`')?;
    let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    suggest(got, &options).map(str::to_string)
}

/// `[a-z0-9][a-z0-9-]*`, at most 64 characters.
pub(crate) fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() <= 64
        && b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn valid_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every diagnostic of `src` as printed by `policy check p.toml`.
    fn check(src: &str) -> Vec<String> {
        let (_, d) = parse_file(src, Source::Repository(PathBuf::from("p.toml")));
        d.iter().map(ToString::to_string).collect()
    }

    fn one(src: &str, expected: &str) {
        assert_eq!(check(src), vec![expected.to_string()], "source:\n{src}");
    }

    #[test]
    fn syntax_error_has_position() {
        one(
            "[network]\ndefault = allow\n",
            "p.toml:2:11: error: string values must be quoted, expected literal string",
        );
    }

    #[test]
    fn unclosed_array_is_one_error_at_its_bracket() {
        one(
            "[[network.deny]]\nid = \"a\"\ncidrs = [\"10.0.0.1\",\n[approval]\ntimeout_secs = 5\n",
            "p.toml:3:9: error: this array or inline table is not closed (or an element is malformed)",
        );
    }

    #[test]
    fn unknown_keys_with_suggestions() {
        assert_eq!(
            check(
                "netwrok = 1\n[files]\n[[files.deny_reed]]\nid = \"x\"\n[[files.protect]]\nid = \"p\"\npaths = [\"a\"]\nacton = \"ask\"\n"
            ),
            vec![
                "p.toml:1:1: error: unknown key \"netwrok\" in the top level; did you mean \"network\"?",
                "p.toml:3:9: error: unknown key \"deny_reed\" in [files]; did you mean \"deny_read\"?",
                "p.toml:8:1: error: unknown key \"acton\" in [[files.protect]]; did you mean \"action\"?",
            ]
        );
    }

    #[test]
    fn wrong_types_every_one_reported() {
        assert_eq!(
            check("[[exec.rule]]\nid = 5\nwhy = true\naction = \"alow\"\nmatch = \"rm -rf /\"\n"),
            vec![
                "p.toml:2:6: error: invalid value for \"id\" in [[exec.rule]]: invalid type: integer `5`, expected a string",
                "p.toml:3:7: error: invalid value for \"why\" in [[exec.rule]]: invalid type: boolean `true`, expected a string",
                "p.toml:4:10: error: invalid value for \"action\" in [[exec.rule]]: unknown variant `alow`, expected one of `allow`, `ask`, `deny`; did you mean \"allow\"?",
            ]
        );
    }

    #[test]
    fn missing_id() {
        one(
            "[[files.deny_read]]\npaths = [\"~/.aws/**\"]\n",
            "p.toml:1:1: error: missing required key \"id\" in [[files.deny_read]]",
        );
    }

    #[test]
    fn bad_and_duplicate_ids() {
        assert_eq!(
            check(
                "[[exec.rule]]\nid = \"Rm_All\"\naction = \"ask\"\nmatch = \"rm\"\n[[files.deny_read]]\nid = \"x\"\npaths = [\"a\"]\n[[network.deny]]\nid = \"x\"\nports = [25]\n"
            ),
            vec![
                "p.toml:2:6: error: invalid rule id \"Rm_All\": use lower-case letters, digits and '-' (at most 64); did you mean \"rm-all\"?",
                "p.toml:9:6: error: duplicate rule id \"x\" (first defined at line 6)",
            ]
        );
    }

    #[test]
    fn bad_cidrs_ports_hosts_all_reported() {
        assert_eq!(
            check(
                "[[network.deny]]\nid = \"db\"\nhosts = [\"db..prod\", \"10.0.0.1\"]\ncidrs = [\"10.1.2.3/16\", \"fd00::/200\", \"nope\"]\nports = [0, \"6010-6000\", \"x\", 1.5]\nprotocols = []\n"
            ),
            vec![
                "p.toml:3:10: error: \"db..prod\" is not a valid host name (label \"\")",
                "p.toml:3:22: error: \"10.0.0.1\" is an IP address: put it in `cidrs`, not `hosts`",
                "p.toml:4:10: error: 10.1.2.3/16 has host bits set; did you mean \"10.1.0.0/16\"?",
                "p.toml:4:25: error: prefix /200 is longer than 128 bits for fd00::",
                "p.toml:4:39: error: \"nope\" is not an IPv4 or IPv6 address or CIDR",
                "p.toml:5:10: error: port 0 is out of range (1-65535)",
                "p.toml:5:13: error: port range 6010-6000 is reversed; did you mean \"6000-6010\"?",
                "p.toml:5:26: error: \"x\" is not a port or a \"low-high\" port range",
                "p.toml:5:31: error: a port must be a number or a \"low-high\" string, found a float",
                "p.toml:6:13: error: protocols cannot be empty: omit it for both tcp and udp",
            ]
        );
    }

    #[test]
    fn bad_globs() {
        assert_eq!(
            check(
                "[[files.protect]]\nid = \"p\"\npaths = [\"a//b\", \"~bob/x\", \"a/**b\", \"[ab\"]\n[scan]\nexempt = [\"../x\"]\n"
            ),
            vec![
                "p.toml:3:10: error: \"a//b\": empty path component (`//`)",
                "p.toml:3:18: error: \"~bob/x\": only the invoking user's home `~/` is supported; did you mean \"~/x\"?",
                "p.toml:3:28: error: \"a/**b\": `**` must be a whole path component",
                "p.toml:3:37: error: \"[ab\": unclosed `[` in a path component",
                "p.toml:5:11: error: \"../x\": `.` and `..` components are not allowed",
            ]
        );
    }

    #[test]
    fn empty_rules() {
        assert_eq!(
            check(
                "[[network.allow]]\nid = \"a\"\n[[files.deny_read]]\nid = \"b\"\n[[exec.rule]]\nid = \"c\"\naction = \"deny\"\nmatch = \"  \"\n[[http.rule]]\nid = \"d\"\naction = \"ask\"\n"
            ),
            vec![
                "p.toml:1:1: error: empty rule in [[network.allow]]: give hosts, cidrs or ports",
                "p.toml:3:1: error: empty rule in [[files.deny_read]]: give at least one path in `paths`",
                "p.toml:8:9: error: empty rule in [[exec.rule]]: `match` is empty",
                "p.toml:9:1: error: empty rule in [[http.rule]]: give method, host or path",
            ]
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            check(
                "[approval]\ntimeout_secs = 0\n[network]\nresolve_interval_secs = 1\n[scan]\nmax_secs = 99999\nmax_bytes = -1\n"
            ),
            vec![
                "p.toml:2:16: error: approval.timeout_secs must be between 1 and 86400 (got 0)",
                "p.toml:4:25: error: network.resolve_interval_secs must be between 5 and 86400 (got 1)",
                "p.toml:6:12: error: scan.max_secs must be between 1 and 3600 (got 99999)",
                "p.toml:7:13: error: scan.max_bytes must be between 1 and 9223372036854775807 (got -1)",
            ]
        );
        assert!(check("[approval]\ntimeout_secs = 86400\n").is_empty());
    }

    #[test]
    fn draft_shapes_are_explained() {
        assert_eq!(
            check("[files]\ndeny_read = [\"~/.aws/**\"]\nprotect = \"x\"\n[files.x]\n"),
            vec![
                "p.toml:2:14: error: each entry of files.deny_read must be a rule table with an id, found a string",
                "p.toml:3:1: error: files.protect must be a list of rule tables ([[files.protect]] with an id), found a string",
                "p.toml:4:8: error: unknown key \"x\" in [files]",
            ]
        );
        one(
            "[files.deny_read]\nid = \"a\"\npaths = [\"b\"]\n",
            "p.toml:1:8: error: files.deny_read is a list of rules: write [[files.deny_read]], not [files.deny_read]",
        );
        one(
            "network = 3\n",
            "p.toml:1:1: error: \"network\" must be a table ([network])",
        );
    }

    #[test]
    fn env_and_http_values() {
        assert_eq!(
            check(
                "[env]\nkeep = [\"OK_1\", \"1BAD\"]\n[[http.rule]]\nid = \"h\"\naction = \"deny\"\nmethod = \"DEL ETE\"\nhost = \"*\"\npath = \"v1\"\n"
            ),
            vec![
                "p.toml:2:17: error: \"1BAD\" is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                "p.toml:6:10: error: \"DEL ETE\" is not an HTTP method",
                "p.toml:7:8: error: \"*\": a wildcard is only allowed as a leading \"*.\"",
                "p.toml:8:8: error: HTTP path \"v1\" must start with '/'",
            ]
        );
    }

    #[test]
    fn valid_file_parses_to_typed_rules() {
        let src = "disable = [\"netrc\"]\n[network]\ndefault = \"deny\"\n[[network.allow]]\nid = \"crates\"\nhosts = [\"*.crates.io\"]\nports = [443, \"8000-8080\"]\nprotocols = [\"tcp\"]\n[[files.protect]]\nid = \"git\"\npaths = [\".git/**\"]\naction = \"deny\"\n[[exec.rule]]\nid = \"tf\"\nwhy = \"destroys infra\"\naction = \"ask\"\nseverity = \"critical\"\nmatch = \"terraform destroy*\"\n[env]\nkeep = [\"MY_TOKEN\"]\n";
        let f = PolicyFile::parse(src, Source::User(PathBuf::from("u.toml"))).unwrap();
        assert_eq!(f.disable[0].value, "netrc");
        assert_eq!(f.disable[0].origin.line, 1);
        assert_eq!(
            f.network.default.as_ref().unwrap().value,
            NetworkDefault::Deny
        );
        let r = &f.network.allow[0];
        assert_eq!(r.meta.id, "crates");
        assert_eq!(r.meta.origin.line, 4);
        assert_eq!(r.hosts, vec![HostPattern::Suffix("crates.io".into())]);
        assert_eq!(
            r.ports,
            vec![
                PortRange {
                    start: 443,
                    end: 443
                },
                PortRange {
                    start: 8000,
                    end: 8080
                }
            ]
        );
        assert_eq!(r.protocols, vec![Protocol::Tcp]);
        assert_eq!(f.protect[0].action, ProtectAction::Deny);
        assert_eq!(f.exec[0].severity, Some(Severity::Critical));
        assert_eq!(f.exec[0].pattern, "terraform destroy*");
        for (bad, what) in [
            ("rm 'oops", "unbalanced quote"),
            ("rm ... -rf", "may only be the last word"),
        ] {
            let text = format!("[[exec.rule]]\nid = \"x\"\naction = \"ask\"\nmatch = \"{bad}\"\n");
            let diags =
                PolicyFile::parse(&text, Source::Repository("p.toml".into())).expect_err(bad);
            let d = diags.iter().find(|d| d.is_error()).expect("an error");
            let shown = d.to_string();
            assert!(shown.contains(what) && shown.contains(":4:9"), "{shown}");
        }
        assert_eq!(f.exec[0].meta.why.as_deref(), Some("destroys infra"));
        assert_eq!(f.env_keep[0].value, "MY_TOKEN");
        assert_eq!(f.rules().len(), 3);
    }

    #[test]
    fn inline_rule_arrays_work_too() {
        let f = PolicyFile::parse(
            "[network]\ndeny = [{ id = \"a\", cidrs = [\"10.0.0.0/8\"] }]\n",
            Source::Default,
        )
        .unwrap();
        assert_eq!(f.network.deny[0].meta.origin.line, 2);
        assert_eq!(
            f.network.deny[0].protocols,
            vec![Protocol::Tcp, Protocol::Udp]
        );
    }

    #[test]
    fn field_probe_matches_schema() {
        assert_eq!(
            fields_of::<RawApproval>(),
            &[
                "timeout_secs",
                "mass_delete_files",
                "mass_delete_window_secs"
            ]
        );
        assert_eq!(
            fields_of::<RawExec>(),
            &["id", "why", "action", "severity", "match"]
        );
    }

    #[test]
    fn garbage_never_panics() {
        for src in [
            "",
            "\u{0}",
            "[",
            "[[",
            "]]",
            "a = [",
            "a = {",
            "\"",
            "'''",
            "[a.b.c]\nd = 1",
            "[[network.deny]]\n[[network.deny]]\nid = []",
            "x = 1\nx = 2",
            "[network]\n[network]",
            "ports = [99999999999999999999]",
            "[[network.deny]]\nid = \"a\"\nports = [18446744073709551615]",
        ] {
            let _ = check(src);
        }
    }
}
