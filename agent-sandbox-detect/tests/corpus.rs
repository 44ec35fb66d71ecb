//! Data-driven test: classify every line of `corpus.tsv` and check recall and false positives.

use std::path::Path;

use agent_sandbox_detect::{Action, CommandContext, Detector};

struct Case {
    line: usize,
    destructive: bool,
    command: String,
    argv: Vec<String>,
}

fn load() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cases = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let (label, command) = raw
            .split_once('\t')
            .unwrap_or_else(|| panic!("corpus.tsv:{line}: expected `label<TAB>command`"));
        let destructive = match label {
            "destructive" => true,
            "benign" => false,
            other => panic!("corpus.tsv:{line}: unknown label `{other}`"),
        };
        let argv = shlex::split(command).unwrap_or_else(|| {
            panic!("corpus.tsv:{line}: command does not shell-split: {command}")
        });
        assert!(!argv.is_empty(), "corpus.tsv:{line}: empty command");
        cases.push(Case {
            line,
            destructive,
            command: command.to_string(),
            argv,
        });
    }
    cases
}

#[test]
fn corpus_recall_and_false_positive_rate() {
    let cases = load();
    let det = Detector::builtin();
    let env = vec![
        ("HOME".to_string(), "/home/dev".to_string()),
        ("PWD".to_string(), "/home/dev/repo".to_string()),
    ];
    let (mut tp, mut fneg, mut fp, mut tn) = (0usize, 0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for c in &cases {
        let ctx = CommandContext {
            argv: &c.argv,
            cwd: Path::new("/home/dev/repo"),
            env: &env,
            workspace: Some(Path::new("/home/dev/repo")),
            home: Some(Path::new("/home/dev")),
        };
        let v = det.classify(&ctx);
        let flagged = v.action != Action::Allow;
        match (c.destructive, flagged) {
            (true, true) => tp += 1,
            (true, false) => {
                fneg += 1;
                misses.push(format!("MISSED   line {}: {}", c.line, c.command));
            }
            (false, true) => {
                fp += 1;
                misses.push(format!(
                    "FALSE+   line {}: {}  -> {} {:?}: {}",
                    c.line, c.command, v.action, v.rule_id, v.explanation
                ));
            }
            (false, false) => tn += 1,
        }
    }
    let recall = tp as f64 / (tp + fneg) as f64;
    let fpr = fp as f64 / (fp + tn) as f64;
    println!("corpus: {} destructive, {} benign", tp + fneg, fp + tn);
    println!(
        "recall = {recall:.4} ({tp}/{}), false-positive rate = {fpr:.4} ({fp}/{})",
        tp + fneg,
        fp + tn
    );
    for m in &misses {
        println!("{m}");
    }
    assert!(
        tp + fneg >= 200,
        "corpus needs at least 200 destructive cases"
    );
    assert!(fp + tn >= 200, "corpus needs at least 200 benign cases");
    assert!(recall >= 0.99, "recall {recall:.4} < 0.99");
    assert!(fpr <= 0.01, "false-positive rate {fpr:.4} > 0.01");
}

/// The exec gate classifies without reading the working directory unless a rule needs it: for
/// every corpus line and several directories, that must give exactly the verdict of a plain
/// classification, and the directory must be asked for only when it can matter.
#[test]
fn deferring_the_cwd_never_changes_a_verdict() {
    let cases = load();
    let det = Detector::builtin();
    let env = vec![("HOME".to_string(), "/home/dev".to_string())];
    let dirs = [
        "/home/dev/repo",
        "/home/dev/repo/src",
        "/home/dev",
        "/",
        "/tmp",
        "/etc",
    ];
    let mut asked = 0usize;
    for c in &cases {
        for dir in dirs {
            let ctx = CommandContext {
                argv: &c.argv,
                cwd: Path::new(dir),
                env: &env,
                workspace: Some(Path::new("/home/dev/repo")),
                home: Some(Path::new("/home/dev")),
            };
            let mut calls = 0;
            let deferred = det.classify_deferring_cwd(
                &CommandContext {
                    cwd: Path::new("/nonexistent-placeholder"),
                    ..ctx
                },
                || {
                    calls += 1;
                    dir.into()
                },
            );
            assert!(calls <= 1, "line {}: cwd read {calls} times", c.line);
            asked += calls;
            assert_eq!(
                deferred,
                det.classify(&ctx),
                "line {} in {dir}: {}",
                c.line,
                c.command
            );
        }
    }
    let total = cases.len() * dirs.len();
    println!("the working directory was needed for {asked} of {total} classifications");
    // Plain commands never need it; relative deletions always do.
    let plain = |argv: &[&str]| {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let mut needed = false;
        let ctx = CommandContext {
            argv: &argv,
            cwd: Path::new("/"),
            env: &env,
            workspace: Some(Path::new("/home/dev/repo")),
            home: Some(Path::new("/home/dev")),
        };
        det.classify_deferring_cwd(&ctx, || {
            needed = true;
            "/home/dev/repo".into()
        });
        needed
    };
    assert!(!plain(&["/bin/true"]));
    assert!(!plain(&["git", "status"]));
    assert!(!plain(&["cargo", "build", "--release"]));
    assert!(plain(&["rm", "-rf", "build"]));
    assert!(plain(&["bash", "-c", "cd sub && rm -r x"]));
    assert!(asked > 0 && asked < total);
}
