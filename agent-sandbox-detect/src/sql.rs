//! Loose scanners for statements sent to databases: SQL, MongoDB shell JavaScript and Redis
//! commands. Comments and string literals are skipped, so `SELECT 'DROP TABLE x'` is benign.

use crate::analyze::Finding;
use crate::rules::RuleId;

/// One lexical token of SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A keyword, identifier or number, upper-cased.
    Word(String),
    /// A string literal or quoted identifier (content dropped).
    Quoted,
    /// Any other single character.
    Punct(char),
}

/// Splits SQL text into statements of tokens. `backslash` makes `\'` an escaped quote (MySQL);
/// PostgreSQL treats the backslash literally, so callers scan both ways.
fn statements(text: &str, backslash: bool) -> Vec<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut cur: Vec<Tok> = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        // Comments.
        // (`#` is not treated as a comment: it is an operator in PostgreSQL.)
        if c == '-' && at(i + 1) == Some('-') {
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            let mut depth = 1;
            while depth > 0 && at(i).is_some() {
                if at(i) == Some('/') && at(i + 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if at(i) == Some('*') && at(i + 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
            continue;
        }
        // psql meta-commands run to the end of the line.
        if c == '\\' {
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
            continue;
        }
        // Quoted strings and identifiers; a doubled quote is an escaped quote.
        if c == '\'' || c == '"' || c == '`' {
            i += 1;
            while let Some(d) = at(i) {
                if backslash && d == '\\' && c == '\'' {
                    i += 2;
                    continue;
                }
                i += 1;
                if d == c {
                    if at(i) == Some(c) {
                        i += 1;
                        continue;
                    }
                    break;
                }
            }
            cur.push(Tok::Quoted);
            continue;
        }
        // PostgreSQL dollar quoting: $tag$ ... $tag$.
        if c == '$' {
            let mut j = i + 1;
            while at(j).is_some_and(|d| d.is_ascii_alphanumeric() || d == '_') {
                j += 1;
            }
            let tag_is_number = chars
                .get(i + 1..j)
                .is_some_and(|t| !t.is_empty() && t.iter().all(char::is_ascii_digit));
            if at(j) == Some('$') && !tag_is_number {
                let delim: Vec<char> = chars.get(i..=j).unwrap_or(&[]).to_vec();
                let mut k = j + 1;
                loop {
                    if k >= chars.len() {
                        break;
                    }
                    if chars.get(k..k + delim.len()) == Some(delim.as_slice()) {
                        k += delim.len();
                        break;
                    }
                    k += 1;
                }
                i = k;
                cur.push(Tok::Quoted);
                continue;
            }
        }
        if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut w = String::new();
            while let Some(d) =
                at(i).filter(|d| d.is_alphanumeric() || *d == '_' || *d == '$' || *d == '.')
            {
                w.push(d.to_ascii_uppercase());
                i += 1;
            }
            cur.push(Tok::Word(w));
            continue;
        }
        if c == ';' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if !c.is_whitespace() {
            cur.push(Tok::Punct(c));
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn word(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

/// Tokens at parenthesis depth 0, with their index.
fn top_level(toks: &[Tok]) -> Vec<(usize, &Tok)> {
    let mut depth: i32 = 0;
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            _ if depth == 0 => out.push((i, t)),
            _ => {}
        }
    }
    out
}

/// Whether the statement has a WHERE clause that actually filters.
fn filters(toks: &[Tok]) -> bool {
    let top = top_level(toks);
    let Some(pos) = top.iter().position(|(_, t)| word(Some(t)) == Some("WHERE")) else {
        return false;
    };
    let cond: Vec<&Tok> = top.iter().skip(pos + 1).map(|(_, t)| *t).collect();
    let trivial = match cond.as_slice() {
        [Tok::Word(w)] => w == "TRUE" || w == "1",
        [Tok::Word(a), Tok::Punct('='), Tok::Word(b)] => {
            a == b && a.chars().all(|c| c.is_ascii_digit())
        }
        [Tok::Quoted, Tok::Punct('='), Tok::Quoted] => true,
        [] => true,
        _ => false,
    };
    !trivial
}

fn render(toks: &[Tok]) -> String {
    toks.iter()
        .take(6)
        .map(|t| match t {
            Tok::Word(w) => w.clone(),
            Tok::Quoted => "'…'".to_string(),
            Tok::Punct(c) => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Scans SQL text; returns one finding per destructive statement.
pub(crate) fn scan_sql(text: &str) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for f in scan_sql_with(text, false)
        .into_iter()
        .chain(scan_sql_with(text, true))
    {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

fn scan_sql_with(text: &str, backslash: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for st in statements(text, backslash) {
        let mut toks: &[Tok] = &st;
        while let Some(Tok::Punct('(')) = toks.first() {
            toks = toks.get(1..).unwrap_or(&[]);
        }
        let first = word(toks.first());
        // EXPLAIN without ANALYZE only plans.
        if first == Some("EXPLAIN") {
            if !toks.iter().any(|t| word(Some(t)) == Some("ANALYZE")) {
                continue;
            }
            toks = toks.get(1..).unwrap_or(&[]);
            while matches!(word(toks.first()), Some("ANALYZE" | "VERBOSE")) {
                toks = toks.get(1..).unwrap_or(&[]);
            }
        }
        let verb_at = if word(toks.first()) == Some("WITH") {
            top_level(toks)
                .into_iter()
                .find(|(_, t)| {
                    matches!(
                        word(Some(t)),
                        Some("DELETE" | "UPDATE" | "INSERT" | "SELECT" | "MERGE")
                    )
                })
                .map_or(0, |(i, _)| i)
        } else {
            0
        };
        let body = toks.get(verb_at..).unwrap_or(&[]);
        let shown = render(body);
        match word(body.first()) {
            Some("DROP") => {
                let mut kind = body.get(1);
                if matches!(
                    word(kind),
                    Some("TEMPORARY" | "TEMP" | "MATERIALIZED" | "FOREIGN" | "UNLOGGED")
                ) {
                    kind = body.get(2);
                }
                let rule = match word(kind) {
                    Some("DATABASE" | "SCHEMA") => RuleId::SqlDropDatabase,
                    Some("TABLE") => RuleId::SqlDropTable,
                    _ => RuleId::SqlDropOther,
                };
                out.push(Finding::new(rule, shown));
            }
            Some("TRUNCATE") => out.push(Finding::new(RuleId::SqlTruncate, shown)),
            Some("DELETE") if !filters(body) => out.push(Finding::new(RuleId::SqlDeleteAll, shown)),
            Some("UPDATE") if !filters(body) => out.push(Finding::new(RuleId::SqlUpdateAll, shown)),
            Some("ALTER") if word(body.get(1)) == Some("TABLE") => {
                let top = top_level(body);
                let drops = top.iter().enumerate().any(|(k, (_, t))| {
                    word(Some(t)) == Some("DROP")
                        && !matches!(
                            top.get(k + 1).and_then(|(_, n)| word(Some(n))),
                            Some("NOT" | "DEFAULT" | "IDENTITY" | "EXPRESSION")
                        )
                });
                if drops {
                    out.push(Finding::new(RuleId::SqlAlterDrop, shown));
                }
            }
            _ => {}
        }
    }
    out
}

/// Replaces JavaScript string literals by `""` and removes whitespace.
fn strip_js(code: &str) -> String {
    let mut out = String::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '"' || c == '`' {
            while let Some(d) = chars.next() {
                if d == '\\' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
            out.push_str("\"\"");
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Scans MongoDB shell code (`--eval`, stdin).
pub(crate) fn scan_mongo(code: &str) -> Vec<Finding> {
    let s = strip_js(code);
    let mut out = Vec::new();
    if s.contains(".dropDatabase(") {
        out.push(Finding::new(RuleId::MongoDrop, "dropDatabase()"));
    }
    if s.contains(".drop(") || s.contains(".dropCollection(") {
        out.push(Finding::new(RuleId::MongoDrop, "collection drop()"));
    }
    for m in [
        ".deleteMany({})",
        ".deleteMany()",
        ".remove({})",
        ".remove()",
        ".deleteMany({},",
    ] {
        if s.contains(m) {
            out.push(Finding::new(
                RuleId::MongoDeleteAll,
                m.trim_start_matches('.'),
            ));
            break;
        }
    }
    out
}

/// Scans Redis command words (one command).
pub(crate) fn scan_redis<'a>(words: impl IntoIterator<Item = &'a str>) -> Vec<Finding> {
    let mut it = words.into_iter();
    match it.next().map(str::to_ascii_uppercase).as_deref() {
        Some(c @ ("FLUSHALL" | "FLUSHDB")) => vec![Finding::new(RuleId::RedisFlush, c)],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(s: &str) -> Vec<RuleId> {
        scan_sql(s).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn destructive_statements() {
        assert_eq!(sql("DROP TABLE users"), [RuleId::SqlDropTable]);
        assert_eq!(sql("drop database if exists x;"), [RuleId::SqlDropDatabase]);
        assert_eq!(sql("drop schema public cascade"), [RuleId::SqlDropDatabase]);
        assert_eq!(sql("DROP INDEX i"), [RuleId::SqlDropOther]);
        assert_eq!(sql("truncate table t"), [RuleId::SqlTruncate]);
        assert_eq!(sql("DELETE FROM t"), [RuleId::SqlDeleteAll]);
        assert_eq!(sql("DELETE FROM t WHERE 1=1"), [RuleId::SqlDeleteAll]);
        assert_eq!(sql("UPDATE t SET a = 0"), [RuleId::SqlUpdateAll]);
        assert_eq!(sql("ALTER TABLE t DROP COLUMN c"), [RuleId::SqlAlterDrop]);
        assert_eq!(sql("select 1; drop table x"), [RuleId::SqlDropTable]);
        assert_eq!(
            sql("WITH x AS (SELECT 1) DELETE FROM t"),
            [RuleId::SqlDeleteAll]
        );
        assert_eq!(sql("EXPLAIN ANALYZE DELETE FROM t"), [RuleId::SqlDeleteAll]);
    }

    #[test]
    fn lookalikes_are_benign() {
        for s in [
            "SELECT 'DROP TABLE users'",
            "/* DROP TABLE users */ SELECT 1",
            "-- DROP TABLE x\nSELECT 1",
            "DELETE FROM t WHERE id = 1",
            "UPDATE t SET a = 1 WHERE id IN (SELECT id FROM u)",
            "INSERT INTO logs(msg) VALUES ('drop table x')",
            "SELECT * FROM q WHERE s LIKE '%TRUNCATE%'",
            "COMMENT ON TABLE x IS 'do not drop'",
            "ALTER TABLE t ALTER COLUMN c DROP NOT NULL",
            "EXPLAIN DELETE FROM t",
            "CREATE FUNCTION f() RETURNS void AS $$ DELETE FROM t $$ LANGUAGE sql",
            "\\dt",
            "SELECT 'it''s; DROP TABLE x'",
        ] {
            assert_eq!(sql(s), [], "{s}");
        }
    }

    #[test]
    fn backslash_quotes_are_read_both_ways() {
        // PostgreSQL: the string ends at the backslash-quote, then DROP runs.
        assert_eq!(
            sql("SELECT 'a\\'; DROP TABLE x; --'"),
            [RuleId::SqlDropTable]
        );
    }

    #[test]
    fn mongo_and_redis() {
        let m = |s: &str| {
            scan_mongo(s)
                .into_iter()
                .map(|f| f.rule)
                .collect::<Vec<_>>()
        };
        assert_eq!(m("db.dropDatabase()"), [RuleId::MongoDrop]);
        assert_eq!(m("db.users.drop()"), [RuleId::MongoDrop]);
        assert_eq!(m("db.o.deleteMany( { } )"), [RuleId::MongoDeleteAll]);
        assert_eq!(m("db.o.deleteMany({status: 'x'})"), []);
        assert_eq!(m("print('db.dropDatabase()')"), []);
        assert_eq!(scan_redis(["flushall"]).len(), 1);
        assert!(scan_redis(["ECHO", "FLUSHALL"]).is_empty());
    }
}
