//! Path globs of file rules: `~/` is the invoking user's home, a relative
//! glob is relative to the workspace root, `**` is any number of directories,
//! and `*`, `?` and `[...]` match within one path component.
//!
//! `*` and `?` also match a leading dot: a credential rule must not miss
//! `.env` because of a shell convention.

use std::fmt;
use std::path::{Component, Path};
use std::str::FromStr;

use crate::types::ValueError;

/// Where a glob is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// Starts with `/`.
    Root,
    /// Starts with `~/` (or is `~`): the invoking user's home.
    Home,
    /// Anything else: relative to the workspace root.
    Workspace,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Tok {
    Lit(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Comp {
    /// `**`: zero or more components.
    AnyDepth,
    Pattern(Vec<Tok>),
}

/// A validated path glob, kept as written; [`PathGlob::resolve`] anchors it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathGlob {
    raw: String,
    anchor: Anchor,
    comps: Vec<Comp>,
}

impl PathGlob {
    /// The glob as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Where the glob is anchored.
    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    /// The absolute glob: `~/` replaced by `home`, a relative glob prefixed
    /// with `workspace`. Glob metacharacters in `home` and `workspace` are
    /// escaped as one-character classes (`[*]`) so they match literally.
    pub fn resolve(&self, home: &Path, workspace: &Path) -> String {
        let base = match self.anchor {
            Anchor::Root => return self.raw.clone(),
            Anchor::Home => home,
            Anchor::Workspace => workspace,
        };
        let mut out = escape(&base.to_string_lossy());
        while out.ends_with('/') {
            out.pop();
        }
        let rest = match self.anchor {
            Anchor::Home => self.raw.strip_prefix('~').unwrap_or(&self.raw),
            _ => &self.raw,
        };
        let rest = rest.trim_start_matches('/');
        if !rest.is_empty() {
            out.push('/');
            out.push_str(rest);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// [`PathGlob::resolve`] as a glob anchored at `/`.
    pub fn resolved(&self, home: &Path, workspace: &Path) -> PathGlob {
        let text = self.resolve(home, workspace);
        // The escaped base and an already valid glob always parse again; fall
        // back to a glob that matches nothing rather than panic.
        PathGlob::from_str(&text).unwrap_or(PathGlob {
            raw: text,
            anchor: Anchor::Root,
            comps: vec![Comp::Pattern(Vec::new())],
        })
    }

    /// True if `path` matches the glob as written: an absolute path for a
    /// glob anchored at `/`, a path starting with `~` for a home glob, a
    /// relative path for a workspace glob. Use [`PathGlob::resolved`] first to
    /// match absolute paths. `.` components are ignored; `..` is not
    /// resolved (pass canonical paths).
    pub fn matches(&self, path: &Path) -> bool {
        let mut comps = path.components().peekable();
        let absolute = matches!(comps.peek(), Some(Component::RootDir));
        let names: Vec<String> = comps
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                Component::ParentDir => Some("..".to_string()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
            })
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let rest = match self.anchor {
            Anchor::Root if absolute => &names[..],
            Anchor::Workspace if !absolute => &names[..],
            Anchor::Home if !absolute && names.first() == Some(&"~") => {
                names.get(1..).unwrap_or(&[])
            }
            _ => return false,
        };
        match_comps(&self.comps, rest)
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Dynamic programming over (pattern component, path component): linear
/// memory, no backtracking blow-up on `**/**/**`.
fn match_comps(pat: &[Comp], path: &[&str]) -> bool {
    // prev[j]: pat[..i] matches path[..j].
    let mut prev = vec![false; path.len() + 1];
    prev[0] = true;
    for p in pat {
        let mut cur = vec![false; path.len() + 1];
        match p {
            Comp::AnyDepth => {
                let mut any = false;
                for j in 0..=path.len() {
                    any |= prev[j];
                    cur[j] = any;
                }
            }
            Comp::Pattern(toks) => {
                for j in 1..=path.len() {
                    cur[j] = prev[j - 1] && match_comp(toks, path[j - 1]);
                }
            }
        }
        prev = cur;
    }
    prev[path.len()]
}

fn match_comp(toks: &[Tok], name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    let mut prev = vec![false; chars.len() + 1];
    prev[0] = true;
    for t in toks {
        let mut cur = vec![false; chars.len() + 1];
        match t {
            Tok::Star => {
                let mut any = false;
                for j in 0..=chars.len() {
                    any |= prev[j];
                    cur[j] = any;
                }
            }
            _ => {
                for j in 1..=chars.len() {
                    cur[j] = prev[j - 1] && tok_matches(t, chars[j - 1]);
                }
            }
        }
        prev = cur;
    }
    prev[chars.len()]
}

fn tok_matches(t: &Tok, c: char) -> bool {
    match t {
        Tok::Lit(l) => *l == c,
        Tok::Any => true,
        Tok::Star => true,
        Tok::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
    }
}

fn parse_comp(comp: &str, whole: &str) -> Result<Comp, ValueError> {
    if comp == "**" {
        return Ok(Comp::AnyDepth);
    }
    if comp.contains("**") {
        return Err(ValueError {
            message: format!("\"{whole}\": `**` must be a whole path component"),
            suggestion: None,
        });
    }
    let mut toks = Vec::new();
    let mut it = comp.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '[' => {
                let negated = matches!(it.peek(), Some('!') | Some('^'));
                if negated {
                    it.next();
                }
                let mut ranges = Vec::new();
                let mut first = true;
                let mut closed = false;
                while let Some(c) = it.next() {
                    if c == ']' && !first {
                        closed = true;
                        break;
                    }
                    first = false;
                    if it.peek() == Some(&'-') {
                        let mut look = it.clone();
                        look.next();
                        match look.peek() {
                            Some(&hi) if hi != ']' => {
                                it.next();
                                it.next();
                                if hi < c {
                                    return Err(ValueError {
                                        message: format!(
                                            "\"{whole}\": reversed character range {c}-{hi}"
                                        ),
                                        suggestion: None,
                                    });
                                }
                                ranges.push((c, hi));
                                continue;
                            }
                            _ => {}
                        }
                    }
                    ranges.push((c, c));
                }
                if !closed {
                    return Err(ValueError {
                        message: format!("\"{whole}\": unclosed `[` in a path component"),
                        suggestion: None,
                    });
                }
                toks.push(Tok::Class { negated, ranges });
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(Comp::Pattern(toks))
}

impl FromStr for PathGlob {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let err = |m: &str| ValueError {
            message: format!("\"{s}\": {m}"),
            suggestion: None,
        };
        if s.is_empty() {
            return Err(err("a path glob cannot be empty"));
        }
        if s.contains('\0') {
            return Err(err("a path glob cannot contain NUL"));
        }
        let (anchor, rest) = if let Some(r) = s.strip_prefix('/') {
            (Anchor::Root, r)
        } else if s == "~" {
            (Anchor::Home, "")
        } else if let Some(r) = s.strip_prefix("~/") {
            (Anchor::Home, r)
        } else if s.starts_with('~') {
            return Err(ValueError {
                message: format!("\"{s}\": only the invoking user's home `~/` is supported"),
                suggestion: s.find('/').map(|i| format!("~{}", &s[i..])),
            });
        } else {
            (Anchor::Workspace, s)
        };
        // A trailing slash names the directory itself.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut comps = Vec::new();
        if !rest.is_empty() {
            for comp in rest.split('/') {
                match comp {
                    "" => return Err(err("empty path component (`//`)")),
                    "." | ".." => {
                        return Err(err("`.` and `..` components are not allowed"));
                    }
                    c => comps.push(parse_comp(c, s)?),
                }
            }
        }
        if comps.is_empty() && anchor == Anchor::Workspace {
            return Err(err("a path glob cannot be empty"));
        }
        Ok(PathGlob {
            raw: s.to_string(),
            anchor,
            comps,
        })
    }
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> PathGlob {
        s.parse().unwrap()
    }

    fn m(glob: &str, path: &str) -> bool {
        g(glob).matches(Path::new(path))
    }

    #[test]
    fn anchors() {
        assert_eq!(g("/etc/shadow").anchor(), Anchor::Root);
        assert_eq!(g("~/.aws/**").anchor(), Anchor::Home);
        assert_eq!(g("~").anchor(), Anchor::Home);
        assert_eq!(g("**/.env").anchor(), Anchor::Workspace);
    }

    #[test]
    fn resolve_anchors_and_escapes() {
        let home = Path::new("/home/u");
        let ws = Path::new("/src/re[po]*/");
        assert_eq!(g("~/.aws/**").resolve(home, ws), "/home/u/.aws/**");
        assert_eq!(g("~").resolve(home, ws), "/home/u");
        assert_eq!(g("/etc/x").resolve(home, ws), "/etc/x");
        assert_eq!(g("**/.env").resolve(home, ws), "/src/re[[]po][*]/**/.env");
        let r = g("**/.env").resolved(home, ws);
        assert!(r.matches(Path::new("/src/re[po]*/a/b/.env")));
        assert!(!r.matches(Path::new("/src/rexpo]z/a/.env")));
        assert_eq!(g("~/x").resolve(Path::new("/"), ws), "/x");
    }

    #[test]
    fn matching() {
        assert!(m("/home/u/.aws/**", "/home/u/.aws/credentials"));
        assert!(m("/home/u/.aws/**", "/home/u/.aws/sso/cache/x.json"));
        assert!(m("/home/u/.aws/**", "/home/u/.aws"));
        assert!(!m("/home/u/.aws/**", "/home/u/.awsx/credentials"));
        assert!(m("**/.env", ".env"));
        assert!(m("**/.env", "a/b/.env"));
        assert!(!m("**/.env", "a/b/.env.example"));
        assert!(m("**/.env.*", "a/.env.local"));
        assert!(m("/h/.ssh/id_*", "/h/.ssh/id_ed25519"));
        assert!(!m("/h/.ssh/id_*", "/h/.ssh/sub/id_rsa"));
        assert!(m("/a/?.txt", "/a/b.txt"));
        assert!(!m("/a/?.txt", "/a/bb.txt"));
        assert!(m("/a/[a-c]x", "/a/bx"));
        assert!(!m("/a/[!a-c]x", "/a/bx"));
        assert!(m("/a/[!a-c]x", "/a/dx"));
        assert!(m("/a/[]]", "/a/]"));
        assert!(m("/a/*", "/a/.hidden"));
        assert!(m("/a/é?", "/a/éz"));
        // Anchors must agree with the path's form.
        assert!(!m("/a/*", "a/b"));
        assert!(!m("a/*", "/a/b"));
        assert!(m("~/.netrc", "~/.netrc"));
        assert!(!m("~/.netrc", "/home/u/.netrc"));
        assert!(m("backups/", "backups"));
    }

    #[test]
    fn pathological_patterns_finish() {
        let glob = format!("/{}", vec!["**"; 60].join("/"));
        let path = format!("/{}", vec!["a"; 200].join("/"));
        assert!(m(&glob, &path));
        let star = format!("/{}b", "*a".repeat(100));
        assert!(!m(&star, &format!("/{}", "a".repeat(500))));
    }

    #[test]
    fn invalid_globs() {
        for bad in [
            "",
            "a//b",
            "a/../b",
            "./a",
            "~root/.ssh",
            "a**/b",
            "/a/[abc",
            "/a/[z-a]",
        ] {
            assert!(bad.parse::<PathGlob>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "~root/.ssh"
                .parse::<PathGlob>()
                .unwrap_err()
                .suggestion
                .as_deref(),
            Some("~/.ssh")
        );
    }
}
