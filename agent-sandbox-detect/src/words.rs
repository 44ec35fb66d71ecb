//! Arguments as the classifiers see them, and small option-parsing helpers.

use std::path::PathBuf;

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arg {
    /// The value, or a best-effort rendering (`$VAR`, `$(...)`) when not known.
    pub text: String,
    /// False when the value depends on something we cannot evaluate.
    pub known: bool,
    /// For unknown values: a directory the value is known to lie under (`/tmp/$X` -> `/tmp`).
    pub under: Option<PathBuf>,
    /// Stands for many paths at once (xargs input, find's `{}`): deletion is a mass deletion.
    pub mass: bool,
}

impl Arg {
    /// A literal argument.
    pub fn lit(s: impl Into<String>) -> Self {
        Arg {
            text: s.into(),
            known: true,
            under: None,
            mass: false,
        }
    }

    /// An argument whose value is unknown.
    pub fn unknown(render: impl Into<String>, under: Option<PathBuf>, mass: bool) -> Self {
        Arg {
            text: render.into(),
            known: false,
            under,
            mass,
        }
    }

    /// The text, only if the value is known.
    pub fn known_text(&self) -> Option<&str> {
        self.known.then_some(self.text.as_str())
    }

    /// True for an option-looking known argument (`-x`, `--xyz`), not `-` alone.
    pub fn is_option(&self) -> bool {
        self.known && self.text.starts_with('-') && self.text.len() > 1
    }
}

/// Renders args for display and matching.
pub(crate) fn texts(args: &[Arg]) -> Vec<String> {
    args.iter().map(|a| a.text.clone()).collect()
}

/// The basename of a program path (`/usr/bin/rm` -> `rm`).
pub(crate) fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Positional (non-option) arguments, honouring `--` and options that take a separate value.
///
/// `takes_value(opt)` says whether option `opt` (exactly as written, e.g. `-n` or `--context`)
/// consumes the next argument. `--opt=value` never consumes the next argument.
pub(crate) fn positionals<'a>(args: &'a [Arg], takes_value: &dyn Fn(&str) -> bool) -> Vec<&'a Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while let Some(a) = args.get(i) {
        i += 1;
        if ended || !a.is_option() {
            out.push(a);
            continue;
        }
        if a.text == "--" {
            ended = true;
            continue;
        }
        if !a.text.contains('=') && takes_value(&a.text) {
            i += 1;
        }
    }
    out
}

/// Whether any argument (before `--`) is one of the long options or contains a short flag.
///
/// `shorts` are single letters looked up in short clusters (`-rf`); `longs` are full words
/// (`--force`), also matched as `--force=...`.
pub(crate) fn has_flag(args: &[Arg], shorts: &[char], longs: &[&str]) -> bool {
    for a in args {
        let Some(t) = a.known_text() else { continue };
        if t == "--" {
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            if longs.iter().any(|l| l.trim_start_matches('-') == name) {
                return true;
            }
        } else if let Some(cluster) = t.strip_prefix('-')
            && cluster.chars().any(|c| shorts.contains(&c))
        {
            return true;
        }
    }
    false
}

/// Value of an option given as `--name=value`, `--name value`, `-x value` or `-xvalue`.
/// Returns every occurrence, in order.
pub(crate) fn option_values(args: &[Arg], short: Option<char>, longs: &[&str]) -> Vec<Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        let Some(t) = a.known_text() else { continue };
        if t == "--" {
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            for l in longs {
                let l = l.trim_start_matches('-');
                if long == l {
                    if let Some(v) = args.get(i) {
                        out.push(v.clone());
                        i += 1;
                    }
                } else if let Some(v) = long.strip_prefix(l).and_then(|r| r.strip_prefix('=')) {
                    out.push(Arg::lit(v));
                }
            }
        } else if let (Some(s), Some(rest)) = (short, t.strip_prefix('-')) {
            let mut chars = rest.chars();
            if chars.next() == Some(s) {
                let attached = chars.as_str();
                if attached.is_empty() {
                    if let Some(v) = args.get(i) {
                        out.push(v.clone());
                        i += 1;
                    }
                } else {
                    out.push(Arg::lit(attached.trim_start_matches('=')));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&str]) -> Vec<Arg> {
        v.iter().map(|s| Arg::lit(*s)).collect()
    }

    #[test]
    fn positionals_skip_option_values_and_honour_double_dash() {
        let args = a(&["-n", "prod", "delete", "--context=x", "pod", "--", "-weird"]);
        let p = positionals(&args, &|o| o == "-n");
        let t: Vec<_> = p.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(t, ["delete", "pod", "-weird"]);
    }

    #[test]
    fn flags_in_clusters_and_long_forms() {
        assert!(has_flag(&a(&["-rf", "x"]), &['r'], &[]));
        assert!(has_flag(&a(&["--force=yes"]), &[], &["--force"]));
        assert!(!has_flag(&a(&["--", "-rf"]), &['r'], &[]));
        assert!(!has_flag(&a(&["--force-with-lease"]), &['f'], &["--force"]));
    }

    #[test]
    fn option_values_in_all_spellings() {
        let args = a(&["-eDROP", "-e", "X", "--execute=Y", "--execute", "Z"]);
        let v: Vec<_> = option_values(&args, Some('e'), &["--execute"])
            .into_iter()
            .map(|x| x.text)
            .collect();
        assert_eq!(v, ["DROP", "X", "Y", "Z"]);
    }
}
