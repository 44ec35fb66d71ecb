//! User rules: command-line patterns of glob words matched against unwrapped argv.

use std::collections::HashSet;

use crate::rules::{RuleId, RuleInfo};
use crate::words::{Arg, basename};
use crate::{Action, DetectError, Severity, UserRule};

/// A validated user rule.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    /// The rule id.
    pub id: String,
    /// Its action.
    pub action: Action,
    severity: Option<Severity>,
    why: Option<String>,
    pattern: String,
    words: Vec<String>,
    /// The pattern ended with `...`.
    open: bool,
}

/// Validates and compiles user rules.
pub(crate) fn compile(rules: Vec<UserRule>) -> Result<Vec<CompiledRule>, DetectError> {
    let mut seen: HashSet<String> = RuleId::ALL.iter().map(|r| r.id().to_string()).collect();
    let mut out = Vec::new();
    for (index, r) in rules.into_iter().enumerate() {
        if r.id.trim().is_empty() {
            return Err(DetectError::EmptyRuleId { index });
        }
        if !seen.insert(r.id.clone()) {
            return Err(DetectError::DuplicateRuleId { id: r.id });
        }
        let Some(mut words) = shlex::split(&r.pattern) else {
            return Err(DetectError::BadQuoting {
                id: r.id,
                pattern: r.pattern,
            });
        };
        if words.is_empty() {
            return Err(DetectError::EmptyPattern { id: r.id });
        }
        let open = words.last().is_some_and(|w| w == "...");
        if open {
            words.pop();
        }
        if words.iter().any(|w| w == "...") {
            return Err(DetectError::MisplacedEllipsis {
                id: r.id,
                pattern: r.pattern,
            });
        }
        if words.is_empty() {
            return Err(DetectError::EmptyPattern { id: r.id });
        }
        out.push(CompiledRule {
            id: r.id,
            action: r.action,
            severity: r.severity,
            why: r.why,
            pattern: r.pattern,
            words,
            open,
        });
    }
    Ok(out)
}

impl CompiledRule {
    /// Whether the pattern matches an unwrapped argv.
    pub fn matches(&self, args: &[Arg]) -> bool {
        if args.len() < self.words.len() || (!self.open && args.len() != self.words.len()) {
            return false;
        }
        self.words
            .iter()
            .zip(args)
            .enumerate()
            .all(|(i, (pat, arg))| {
                if !arg.known {
                    return false;
                }
                if i == 0 && !pat.contains('/') {
                    return glob(pat, basename(&arg.text));
                }
                glob(pat, &arg.text)
            })
    }

    /// Severity reported when a deny/ask rule matches.
    pub fn severity(&self) -> Severity {
        self.severity.unwrap_or(match self.action {
            Action::Deny => Severity::High,
            _ => Severity::Medium,
        })
    }

    /// Explanation shown in verdicts.
    pub fn explanation(&self) -> String {
        match &self.why {
            Some(w) => format!("user rule `{}` ({}): {w}", self.id, self.pattern),
            None => format!("user rule `{}` matched `{}`", self.id, self.pattern),
        }
    }

    /// Listing entry.
    pub fn info(&self) -> RuleInfo {
        RuleInfo {
            id: self.id.clone(),
            severity: (self.action != Action::Allow).then(|| self.severity()),
            action: self.action,
            explanation: self.explanation(),
        }
    }
}

/// Glob match: `*` and `?` do not cross `/`; `**` matches anything. Iterative (no blow-up).
pub(crate) fn glob(pat: &str, text: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Dynamic programming over (pattern index, text index): O(|p| * |t|), no recursion.
    let mut cur = vec![false; t.len() + 1];
    if let Some(start) = cur.first_mut() {
        *start = true;
    }
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; t.len() + 1];
        let double = p.get(i) == Some(&'*') && p.get(i + 1) == Some(&'*');
        match p.get(i) {
            Some('*') => {
                let mut reach = false;
                for j in 0..=t.len() {
                    let cur_j = cur.get(j).copied().unwrap_or(false);
                    if cur_j {
                        reach = true;
                    }
                    if let Some(slot) = next.get_mut(j) {
                        *slot = reach;
                    }
                    // A single `*` stops at `/`.
                    if !double && t.get(j) == Some(&'/') {
                        reach = false;
                    }
                }
                i += if double { 2 } else { 1 };
            }
            Some(&c) => {
                for j in 0..t.len() {
                    let ok = cur.get(j).copied().unwrap_or(false)
                        && t.get(j)
                            .is_some_and(|&x| if c == '?' { x != '/' } else { x == c });
                    if ok && let Some(slot) = next.get_mut(j + 1) {
                        *slot = true;
                    }
                }
                i += 1;
            }
            None => break,
        }
        cur = next;
    }
    cur.get(t.len()).copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str) -> CompiledRule {
        let r = UserRule {
            id: "r".into(),
            why: None,
            action: Action::Allow,
            severity: None,
            pattern: pattern.into(),
        };
        compile(vec![r])
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| panic!("pattern {pattern} did not compile"))
    }

    fn args(v: &[&str]) -> Vec<Arg> {
        v.iter().map(|s| Arg::lit(*s)).collect()
    }

    #[test]
    fn globs() {
        assert!(glob("*.rs", "main.rs"));
        assert!(!glob("*.rs", "src/main.rs"));
        assert!(glob("**.rs", "src/main.rs"));
        assert!(glob("./target*", "./target"));
        assert!(!glob("./target*", "./target/../src"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "a/c"));
        assert!(glob("", ""));
        assert!(!glob("x", ""));
        assert!(glob(&"*".repeat(50), &"a".repeat(5000)));
    }

    #[test]
    fn exact_and_open_patterns() {
        let r = rule("rm -rf ./target");
        assert!(r.matches(&args(&["rm", "-rf", "./target"])));
        assert!(r.matches(&args(&["/usr/bin/rm", "-rf", "./target"])));
        assert!(!r.matches(&args(&["rm", "-rf", "./target", "/"])));
        assert!(!r.matches(&args(&["rm", "-rf", "./target/../src"])));
        let open = rule("terraform plan ...");
        assert!(open.matches(&args(&["terraform", "plan"])));
        assert!(open.matches(&args(&["terraform", "plan", "-out=x"])));
        let mut unknown = args(&["rm", "-rf"]);
        unknown.push(Arg::unknown("$X", None, false));
        assert!(!rule("rm -rf *").matches(&unknown));
        assert!(rule("rm -rf ...").matches(&unknown));
    }

    #[test]
    fn invalid_rules_are_refused_with_context() {
        let mk = |id: &str, p: &str| UserRule {
            id: id.into(),
            why: None,
            action: Action::Deny,
            severity: None,
            pattern: p.into(),
        };
        assert_eq!(
            compile(vec![mk("", "x")]).err(),
            Some(DetectError::EmptyRuleId { index: 0 })
        );
        assert_eq!(
            compile(vec![mk("a", "")]).err(),
            Some(DetectError::EmptyPattern { id: "a".into() })
        );
        assert_eq!(
            compile(vec![mk("a", "...")]).err(),
            Some(DetectError::EmptyPattern { id: "a".into() })
        );
        assert!(matches!(
            compile(vec![mk("a", "rm 'x")]),
            Err(DetectError::BadQuoting { .. })
        ));
        assert!(matches!(
            compile(vec![mk("a", "rm ... x")]),
            Err(DetectError::MisplacedEllipsis { .. })
        ));
        assert!(matches!(
            compile(vec![mk("a", "x"), mk("a", "y")]),
            Err(DetectError::DuplicateRuleId { .. })
        ));
        assert!(matches!(
            compile(vec![mk("git.push-force", "x")]),
            Err(DetectError::DuplicateRuleId { .. })
        ));
    }
}
