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

/// A port: a number or a `"low-high"` string.
enum RawPort {
    Num(i64),
    Text(String),
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
        scan: ScanSection::default(),
        env_keep: Vec::new(),
    };

    let (doc, syntax) = DeTable::parse_recoverable(text);
    let mut syntax_diags: Vec<Diagnostic> = Vec::new();
    for e in &syntax {
        let off = e.span().map(|s| s.start).unwrap_or(0);
        syntax_diags.push(p.diag(off, e.message().to_string(), None));
    }
    // Recovery after a syntax error cascades; one error per line is the real one.
    syntax_diags.sort_by_key(|d| (d.line, d.column));
    syntax_diags.dedup_by_key(|d| d.line);
    let first_syntax_line = syntax_diags.first().map(|d| d.line);

    let span = doc.span();
    p.top(DeValue::Table(doc.into_inner()), span, &mut file);

    let mut diags: Vec<Diagnostic> = syntax_diags;
    for (d, needs_whole_table) in p.diags {
        match first_syntax_line {
            // After a syntax error the recovered document is unreliable.
            Some(l) if d.line >= l || needs_whole_table => {}
            _ => diags.push(d),
        }
    }
    diags.sort_by_key(|d| (d.line, d.column));
    (file, diags)
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
        mut table: DeTable<'_>,
        span: &Span,
        ctx: &str,
    ) -> Option<T> {
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
                    let d = self.diag(
                        span.start,
                        format!("missing required key \"{field}\" in {ctx}"),
                        None,
                    );
                    self.diags.push((d, true));
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
                    if let Some(raw) = self.de::<RawApproval>(own, &vspan, &ctx)
                        && let Some(t) = raw.timeout_secs
                    {
                        file.approval_timeout_secs =
                            self.ranged(&t, 1, 86_400, "approval.timeout_secs");
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
            self.error(
                span,
                format!("empty rule in {ctx}: give hosts, cidrs or ports"),
                None,
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
            self.error(
                span,
                format!("empty rule in {ctx}: give at least one path in `paths`"),
                None,
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
        let pattern = self.pattern(&raw.pattern, ctx);
        Some(ExecRule {
            meta: meta?,
            action: raw.action,
            severity: raw.severity,
            pattern: pattern?,
        })
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
            self.error(
                span,
                format!("empty rule in {ctx}: give method, host or path"),
                None,
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
