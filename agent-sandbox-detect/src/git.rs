//! git: force pushes, remote deletions, hard resets, cleans, discarded work, history rewrites.

use crate::analyze::Finding;
use crate::rules::RuleId;
use crate::words::{Arg, has_flag, positionals};

/// git global options that take a separate value.
fn global_takes_value(o: &str) -> bool {
    matches!(
        o,
        "-C" | "-c"
            | "--git-dir"
            | "--work-tree"
            | "--namespace"
            | "--exec-path"
            | "--config-env"
            | "--super-prefix"
    )
}

/// Classifies git commands.
pub(crate) fn check(name: &str, rest: &[Arg], out: &mut Vec<Finding>) {
    if name != "git" {
        return;
    }
    // Skip global options to the subcommand.
    let mut i = 0;
    while let Some(a) = rest.get(i) {
        if !a.is_option() {
            break;
        }
        i += if !a.text.contains('=') && global_takes_value(&a.text) {
            2
        } else {
            1
        };
    }
    let Some(sub) = rest.get(i).and_then(Arg::known_text) else {
        return;
    };
    let args = rest.get(i + 1..).unwrap_or(&[]);
    if has_flag(args, &[], &["--help"]) {
        return;
    }
    match sub {
        "push" => push(args, out),
        "reset" if has_flag(args, &[], &["--hard"]) => {
            out.push(Finding::new(RuleId::GitResetHard, "git reset --hard"));
        }
        "clean" => {
            let dry = has_flag(args, &['n'], &["--dry-run"]);
            if !dry && has_flag(args, &['f', 'i'], &["--force", "--interactive"]) {
                out.push(Finding::new(RuleId::GitClean, render("clean", args)));
            }
        }
        "branch" => {
            let force_delete = has_flag(args, &['D'], &[])
                || (has_flag(args, &['d'], &["--delete"]) && has_flag(args, &['f'], &["--force"]));
            if force_delete {
                out.push(Finding::new(
                    RuleId::GitBranchForceDelete,
                    render("branch", args),
                ));
            }
        }
        "checkout" => checkout(args, out),
        "restore" => restore(args, out),
        "switch" if has_flag(args, &['f'], &["--force", "--discard-changes"]) => {
            out.push(Finding::new(RuleId::GitDiscardAll, render("switch", args)));
        }
        "stash" => {
            let pos = positionals(args, &|o| o == "-m" || o == "--message");
            if pos
                .first()
                .is_some_and(|p| matches!(p.text.as_str(), "drop" | "clear"))
            {
                out.push(Finding::new(RuleId::GitStashDrop, render("stash", args)));
            }
        }
        "filter-branch" | "filter-repo" => out.push(Finding::new(
            RuleId::GitHistoryRewrite,
            format!("git {sub}"),
        )),
        "update-ref" if has_flag(args, &['d'], &[]) => {
            out.push(Finding::new(
                RuleId::GitRefDelete,
                render("update-ref", args),
            ));
        }
        "reflog" => {
            let pos = positionals(args, &|_| false);
            match pos.first().map(|p| p.text.as_str()) {
                Some("delete") => {
                    out.push(Finding::new(RuleId::GitReflogExpire, "git reflog delete"))
                }
                Some("expire") => {
                    let now = args.iter().any(|a| {
                        a.text.split_once('=').is_some_and(|(k, v)| {
                            k.starts_with("--expire") && matches!(v, "now" | "all" | "0")
                        })
                    });
                    if now {
                        out.push(Finding::new(
                            RuleId::GitReflogExpire,
                            render("reflog", args),
                        ));
                    }
                }
                _ => {}
            }
        }
        "gc" if args
            .iter()
            .any(|a| matches!(a.text.as_str(), "--prune=now" | "--prune=all")) =>
        {
            out.push(Finding::new(RuleId::GitPruneNow, render("gc", args)));
        }
        "prune" if !has_flag(args, &['n'], &["--dry-run"]) => {
            out.push(Finding::new(RuleId::GitPruneNow, render("prune", args)));
        }
        "worktree" => {
            let pos = positionals(args, &|_| false);
            if pos.first().is_some_and(|p| p.text == "remove")
                && has_flag(args, &['f'], &["--force"])
            {
                out.push(Finding::new(
                    RuleId::GitWorktreeForceRemove,
                    render("worktree", args),
                ));
            }
        }
        _ => {}
    }
}

fn render(sub: &str, args: &[Arg]) -> String {
    let mut s = format!("git {sub}");
    for a in args {
        s.push(' ');
        s.push_str(&a.text);
    }
    s
}

fn push(args: &[Arg], out: &mut Vec<Finding>) {
    if has_flag(args, &['n'], &["--dry-run"]) {
        return;
    }
    let takes_value = |o: &str| {
        matches!(
            o,
            "-o" | "--push-option" | "--repo" | "--receive-pack" | "--exec"
        )
    };
    let forced = has_flag(args, &['f'], &["--force", "--mirror"]);
    let pos = positionals(args, &takes_value);
    // The first positional is the remote; the rest are refspecs.
    let refspecs: Vec<&Arg> = pos.iter().skip(1).copied().collect();
    let plus = refspecs.iter().find(|r| r.text.starts_with('+'));
    if forced || plus.is_some() {
        let what = plus.map_or_else(|| render("push", args), |p| format!("refspec {}", p.text));
        out.push(Finding::new(RuleId::GitPushForce, what));
    }
    let colon = refspecs
        .iter()
        .find(|r| r.text.starts_with(':') && r.text.len() > 1);
    if has_flag(args, &['d'], &["--delete", "--prune"]) || colon.is_some() {
        let what = colon.map_or_else(|| render("push", args), |c| format!("refspec {}", c.text));
        out.push(Finding::new(RuleId::GitPushDelete, what));
    }
}

/// Pathspecs naming the whole tree or a directory.
fn is_broad_pathspec(p: &str) -> bool {
    matches!(p, "." | "./" | ":/" | ":" | "*" | "-A") || p.ends_with('/') || p.contains('*')
}

fn checkout(args: &[Arg], out: &mut Vec<Finding>) {
    if has_flag(args, &['b', 'B'], &["--orphan"]) && !args.iter().any(|a| a.text == "--") {
        return;
    }
    if has_flag(args, &['f'], &["--force"]) {
        out.push(Finding::new(
            RuleId::GitDiscardAll,
            render("checkout", args),
        ));
        return;
    }
    let pathspecs: Vec<&Arg> = match args.iter().position(|a| a.known && a.text == "--") {
        Some(i) => args.get(i + 1..).unwrap_or(&[]).iter().collect(),
        // Without `--` only unmistakable paths count (`git checkout .`).
        None => args
            .iter()
            .filter(|a| matches!(a.text.as_str(), "." | "./" | ":/") || a.text.starts_with("./"))
            .collect(),
    };
    discard(&pathspecs, "checkout", args, out);
}

fn restore(args: &[Arg], out: &mut Vec<Finding>) {
    let staged = has_flag(args, &['S'], &["--staged"]);
    let worktree = has_flag(args, &['W'], &["--worktree"]);
    if staged && !worktree {
        return; // Only unstages: the working tree is untouched.
    }
    let pos = positionals(args, &|o| o == "-s" || o == "--source");
    discard(&pos, "restore", args, out);
}

fn discard(pathspecs: &[&Arg], sub: &str, args: &[Arg], out: &mut Vec<Finding>) {
    if pathspecs.is_empty() {
        return;
    }
    let rule = if pathspecs
        .iter()
        .any(|p| !p.known || is_broad_pathspec(&p.text))
    {
        RuleId::GitDiscardAll
    } else {
        RuleId::GitDiscardFiles
    };
    out.push(Finding::new(rule, render(sub, args)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(line: &str) -> Vec<RuleId> {
        let args: Vec<Arg> = line.split_whitespace().map(Arg::lit).collect();
        let mut out = Vec::new();
        check("git", &args, &mut out);
        out.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn push_spellings() {
        for l in [
            "push -f",
            "push --force origin main",
            "push origin +main",
            "push --mirror",
            "push -uf origin x",
        ] {
            assert_eq!(rules(l), [RuleId::GitPushForce], "{l}");
        }
        for l in [
            "push origin :old",
            "push -d origin x",
            "push --delete origin x",
            "push --prune origin",
        ] {
            assert_eq!(rules(l), [RuleId::GitPushDelete], "{l}");
        }
        for l in [
            "push",
            "push --force-with-lease",
            "push -u origin main",
            "push --dry-run -f",
            "push -o ci.skip origin main",
        ] {
            assert_eq!(rules(l), [], "{l}");
        }
    }

    #[test]
    fn global_options_are_skipped() {
        assert_eq!(rules("-C /x -c a=b push --force"), [RuleId::GitPushForce]);
        assert_eq!(rules("--git-dir=/x reset --hard"), [RuleId::GitResetHard]);
    }

    #[test]
    fn discards() {
        assert_eq!(rules("checkout -- ."), [RuleId::GitDiscardAll]);
        assert_eq!(rules("checkout -- a.rs"), [RuleId::GitDiscardFiles]);
        assert_eq!(rules("checkout main"), []);
        assert_eq!(rules("checkout -b x"), []);
        assert_eq!(rules("restore --staged a.rs"), []);
        assert_eq!(
            rules("restore --staged --worktree ."),
            [RuleId::GitDiscardAll]
        );
        assert_eq!(rules("restore a.rs"), [RuleId::GitDiscardFiles]);
        assert_eq!(rules("clean -n -f"), []);
        assert_eq!(rules("clean -fdx"), [RuleId::GitClean]);
        assert_eq!(rules("branch -d x"), []);
        assert_eq!(rules("branch -D x"), [RuleId::GitBranchForceDelete]);
        assert_eq!(
            rules("reflog expire --expire=now --all"),
            [RuleId::GitReflogExpire]
        );
        assert_eq!(rules("reflog"), []);
    }
}
