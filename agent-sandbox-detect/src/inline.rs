//! Inline interpreter code (`python -c`, `node -e`, `ruby -e`, `perl -e`, `php -r`): tree
//! deletions (`shutil.rmtree`, `fs.rmSync(..., {recursive})`, `FileUtils.rm_rf`) and shell
//! commands passed to `os.system`, `subprocess`, `execSync`, `system`.

use crate::analyze::Finding;
use crate::fs::judge_delete;
use crate::paths::Scope;
use crate::rules::RuleId;
use crate::words::{Arg, option_values};

/// The inline code given to an interpreter, if any.
fn code(name: &str, rest: &[Arg]) -> Vec<String> {
    let vals = if name.starts_with("python") || name == "py" {
        option_values(rest, Some('c'), &[])
    } else if matches!(name, "node" | "nodejs" | "bun" | "deno") {
        let mut v = option_values(rest, Some('e'), &["--eval"]);
        v.extend(option_values(rest, Some('p'), &["--print"]));
        if name == "deno" && rest.first().is_some_and(|a| a.text == "eval") {
            v.extend(
                rest.get(1..)
                    .unwrap_or(&[])
                    .iter()
                    .filter(|a| !a.is_option())
                    .cloned(),
            );
        }
        v
    } else if matches!(name, "ruby" | "perl" | "irb") {
        let mut v = option_values(rest, Some('e'), &[]);
        v.extend(option_values(rest, Some('E'), &[]));
        v
    } else if name == "php" {
        option_values(rest, Some('r'), &[])
    } else {
        Vec::new()
    };
    vals.into_iter()
        .filter(|a| a.known)
        .map(|a| a.text)
        .collect()
}

/// Functions that delete a directory tree; the first string argument is the target.
const TREE_DELETE: &[&str] = &[
    "rmtree(",
    "rmSync(",
    "rmdirSync(",
    "rm_rf(",
    "rm_r(",
    "remove_tree(",
    "rimraf(",
    "fs.rm(",
    "promises.rm(",
    "remove_dir_all(",
    "removeSync(",
    "emptyDirSync(",
];

/// Functions that hand a string to a shell.
const SHELL_CALLS: &[&str] = &[
    "os.system(",
    "subprocess.run(",
    "subprocess.call(",
    "subprocess.check_call(",
    "subprocess.check_output(",
    "subprocess.Popen(",
    "os.popen(",
    "execSync(",
    "child_process.exec(",
    "spawnSync(",
    "system(",
    "shell_exec(",
    "passthru(",
    "%x(",
];

/// A command handed to the system by inline code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// A string run by a shell (`os.system("...")`).
    Script(String),
    /// An argument vector (`subprocess.run(["rm", "-rf", "x"])`).
    Argv(Vec<String>),
}

/// Every string literal in the list that starts at `from` (`["rm", "-rf", "x"]`).
fn string_list(code: &str, from: usize) -> Option<Vec<String>> {
    let tail = code.get(from..)?.trim_start();
    if !tail.starts_with('[') {
        return None;
    }
    let end = tail.find(']')?;
    let list = tail.get(..end)?;
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some(s) = first_string(list, offset) {
        // Advance past this literal: find it again from offset.
        let quoted_len = s.len() + 2;
        let pos = list.get(offset..)?.find(['\'', '"'])?;
        offset += pos + quoted_len;
        out.push(s);
    }
    Some(out)
}

/// First string literal after position `from` in `code`, within the call's parentheses.
fn first_string(code: &str, from: usize) -> Option<String> {
    let tail = code.get(from..)?;
    let mut depth = 0i32;
    let mut chars = tail.char_indices();
    while let Some((_, c)) = chars.next() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            '\'' | '"' | '`' => {
                let mut s = String::new();
                while let Some((_, d)) = chars.next() {
                    if d == '\\' {
                        if let Some((_, e)) = chars.next() {
                            s.push(e);
                        }
                    } else if d == c {
                        return Some(s);
                    } else {
                        s.push(d);
                    }
                }
                return None;
            }
            _ => {}
        }
    }
    None
}

/// The text of a call's arguments (up to the matching parenthesis).
fn call_args(code: &str, from: usize) -> &str {
    let tail = code.get(from..).unwrap_or("");
    let mut depth = 0i32;
    for (i, c) in tail.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                if depth == 0 {
                    return tail.get(..i).unwrap_or(tail);
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    tail
}

/// Classifies tree deletions in inline code.
pub(crate) fn check(name: &str, rest: &[Arg], scope: &Scope, out: &mut Vec<Finding>) {
    for code in code(name, rest) {
        for f in TREE_DELETE {
            let mut start = 0;
            while let Some(pos) = code.get(start..).and_then(|t| t.find(f)) {
                let at = start + pos + f.len();
                start = at;
                let args = call_args(&code, at);
                // fs.rmSync / fs.rm delete trees only with {recursive: true}.
                let needs_flag = matches!(*f, "rmSync(" | "fs.rm(" | "promises.rm(");
                if needs_flag && !args.contains("recursive") {
                    continue;
                }
                let target = match first_string(&code, at) {
                    Some(t) => Arg::lit(t),
                    None => Arg::unknown(args.to_string(), None, false),
                };
                if let Some(found) = judge_delete(&target, scope, true) {
                    let rule = if found.rule.action() == crate::Action::Ask
                        && found.rule.severity() <= crate::Severity::Medium
                    {
                        RuleId::InlineDelete
                    } else {
                        found.rule
                    };
                    out.push(Finding::new(
                        rule,
                        format!("{}{}) in {name} code", f, target.text),
                    ));
                }
            }
        }
    }
}

/// Commands handed to the system by inline code (`os.system`, `subprocess`, `execSync`...).
pub(crate) fn shell_calls(name: &str, rest: &[Arg]) -> Vec<Call> {
    let mut out = Vec::new();
    for code in code(name, rest) {
        for f in SHELL_CALLS {
            let mut start = 0;
            while let Some(pos) = code.get(start..).and_then(|t| t.find(f)) {
                let at = start + pos + f.len();
                start = at;
                if let Some(list) = string_list(&code, at) {
                    out.push(Call::Argv(list));
                } else if let Some(s) = first_string(&code, at) {
                    out.push(Call::Script(s));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            cwd: crate::paths::Cwd::Known("/home/dev/repo".into()),
            workspace: Some("/home/dev/repo".into()),
            home: Some("/home/dev".into()),
            root: None,
        }
    }

    fn rules(name: &str, args: &[&str]) -> Vec<RuleId> {
        let args: Vec<Arg> = args.iter().map(|s| Arg::lit(*s)).collect();
        let mut out = Vec::new();
        check(name, &args, &scope(), &mut out);
        out.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn tree_deletions() {
        assert_eq!(
            rules(
                "python3",
                &["-c", "import shutil; shutil.rmtree('/home/dev')"]
            ),
            [RuleId::RmCatastrophic]
        );
        assert_eq!(
            rules("python3", &["-c", "import shutil; shutil.rmtree('/srv/x')"]),
            [RuleId::RmRecursiveOutside]
        );
        assert_eq!(
            rules("node", &["-e", "fs.rmSync('dist', {recursive: true})"]),
            [RuleId::InlineDelete]
        );
        assert_eq!(rules("node", &["-e", "fs.rmSync('a.txt')"]), []);
        assert_eq!(rules("python3", &["-c", "print(shutil.which('rm'))"]), []);
    }

    #[test]
    fn shell_calls_are_found() {
        let args: Vec<Arg> = ["-c", "import os; os.system(\"rm -rf /\")"]
            .iter()
            .map(|s| Arg::lit(*s))
            .collect();
        assert!(shell_calls("python3", &args).contains(&Call::Script("rm -rf /".into())));
        let args: Vec<Arg> = [
            "-c",
            "import subprocess; subprocess.run(['rm', '-rf', 'x'])",
        ]
        .iter()
        .map(|s| Arg::lit(*s))
        .collect();
        assert_eq!(
            shell_calls("python3", &args),
            [Call::Argv(vec!["rm".into(), "-rf".into(), "x".into()])]
        );
    }
}
