//! Public API behaviour: verdict shape, user-rule precedence, robustness on odd input.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use agent_sandbox_detect::{
    Action, CommandContext, DetectError, Detector, Severity, UserRule, Verdict,
};

const WS: &str = "/home/dev/repo";
const HOME: &str = "/home/dev";

fn words(line: &str) -> Vec<String> {
    shlex::split(line).unwrap_or_else(|| panic!("test line does not split: {line}"))
}

fn classify_with(
    det: &Detector,
    argv: &[String],
    env: &[(String, String)],
    workspace: Option<&Path>,
) -> Verdict {
    let ctx = CommandContext {
        argv,
        cwd: Path::new(WS),
        env,
        workspace,
        home: Some(Path::new(HOME)),
    };
    det.classify(&ctx)
}

fn classify(det: &Detector, line: &str) -> Verdict {
    classify_with(det, &words(line), &[], Some(Path::new(WS)))
}

fn action(line: &str) -> Action {
    classify(&Detector::builtin(), line).action
}

fn rule(id: &str, action: Action, pattern: &str) -> UserRule {
    UserRule {
        id: id.into(),
        why: None,
        action,
        severity: None,
        pattern: pattern.into(),
    }
}

#[test]
fn verdict_fields_and_exit_codes() {
    let det = Detector::builtin();
    let v = classify(&det, "sudo bash -c 'cd /tmp && rm -rf build'");
    assert_eq!(v.action, Action::Ask);
    assert_eq!(v.rule_id.as_deref(), Some("fs.rm-recursive-temp"));
    assert_eq!(v.severity, Some(Severity::Low));
    assert_eq!(
        v.matched,
        ["rm", "-rf", "build"],
        "matched is the unwrapped inner command"
    );
    assert!(v.explanation.contains("/tmp/build"), "{}", v.explanation);
    assert_eq!(v.exit_code(), 10);

    let allow = classify(&det, "ls -la");
    assert_eq!(
        (
            allow.action,
            allow.rule_id.as_deref(),
            allow.severity,
            allow.exit_code()
        ),
        (Action::Allow, None, None, 0)
    );
    assert_eq!(classify(&det, "rm -rf /").exit_code(), 20);
}

#[test]
fn worst_simple_command_wins() {
    let det = Detector::builtin();
    let v = classify(&det, "bash -c 'rm -rf target; git push -f; rm -rf ~'");
    assert_eq!(v.action, Action::Deny);
    assert_eq!(v.rule_id.as_deref(), Some("fs.rm-catastrophic"));
    let v = classify(&det, "bash -c 'rm -rf target && git push --force'");
    assert_eq!((v.action, v.severity), (Action::Ask, Some(Severity::High)));
    assert_eq!(v.rule_id.as_deref(), Some("git.push-force"));
}

#[test]
fn every_reported_rule_is_listed() {
    let det = Detector::with_rules(vec![rule("no-curl", Action::Deny, "curl ...")])
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: HashSet<String> = det.rules().map(|r| r.id).collect();
    assert!(ids.contains("no-curl"));
    assert!(ids.contains("git.push-force"));
    for line in [
        "rm -rf /",
        "git push -f",
        "psql -c 'DROP TABLE x'",
        "curl x",
        "bash -c 'echo \"unterminated'",
    ] {
        let v = classify(&det, line);
        let id = v.rule_id.unwrap_or_else(|| panic!("{line}: no rule id"));
        assert!(ids.contains(&id), "{line}: rule {id} is not listed");
    }
}

#[test]
fn user_allow_overrides_an_exact_builtin_ask_only() {
    let det = Detector::with_rules(vec![rule("allow-target", Action::Allow, "rm -rf ./target")])
        .unwrap_or_else(|e| panic!("{e}"));
    let v = classify(&det, "rm -rf ./target");
    assert_eq!(v.action, Action::Allow);
    assert_eq!(v.rule_id.as_deref(), Some("allow-target"));
    assert_eq!(
        classify(&det, "sudo rm -rf ./target").action,
        Action::Allow,
        "wrappers are peeled first"
    );
    assert_eq!(
        classify(&det, "bash -c 'rm -rf ./target'").action,
        Action::Allow
    );
    assert_eq!(classify(&det, "rm -rf ./target/../src").action, Action::Ask);
    assert_eq!(classify(&det, "rm -rf ./target /").action, Action::Deny);
    assert_eq!(
        classify(&det, "bash -c 'rm -rf ./target && rm -rf dist'").action,
        Action::Ask
    );
    // Without the rule the same command is asked.
    assert_eq!(action("rm -rf ./target"), Action::Ask);
}

#[test]
fn user_allow_cannot_lift_a_builtin_deny() {
    let det = Detector::with_rules(vec![rule("yolo", Action::Allow, "rm ...")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(classify(&det, "rm -rf /").action, Action::Deny);
    assert_eq!(classify(&det, "rm -rf target").action, Action::Allow);
}

#[test]
fn user_deny_and_ask_add_to_builtins_and_beat_user_allow() {
    let det = Detector::with_rules(vec![
        rule("allow-make", Action::Allow, "make ..."),
        rule("no-deploy", Action::Deny, "make deploy ..."),
        rule(
            "ask-curl-prod",
            Action::Ask,
            "curl https://api.prod.example.com/**",
        ),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let v = classify(&det, "make deploy ENV=prod");
    assert_eq!(
        (v.action, v.rule_id.as_deref(), v.severity),
        (Action::Deny, Some("no-deploy"), Some(Severity::High))
    );
    assert_eq!(classify(&det, "make build").action, Action::Allow);
    let v = classify(&det, "curl https://api.prod.example.com/v1/users");
    assert_eq!(
        (v.action, v.severity),
        (Action::Ask, Some(Severity::Medium))
    );
    assert_eq!(
        classify(&det, "curl https://example.com/").action,
        Action::Allow
    );
    assert_eq!(classify(&det, "bash -c 'make deploy'").action, Action::Deny);
}

#[test]
fn invalid_user_rules_are_refused() {
    let err = Detector::with_rules(vec![rule("x", Action::Deny, "rm 'open")]).err();
    assert!(
        matches!(err, Some(DetectError::BadQuoting { .. })),
        "{err:?}"
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("`x`") && msg.contains("quote"),
        "error names the rule and the fix: {msg}"
    );
}

#[test]
fn environment_and_workspace_shape_the_verdict() {
    let det = Detector::builtin();
    let env = vec![("PROJECT".to_string(), HOME.to_string())];
    let argv = words("bash -c 'rm -rf \"$PROJECT\"'");
    assert_eq!(
        classify_with(&det, &argv, &env, Some(Path::new(WS))).action,
        Action::Deny
    );
    assert_eq!(
        classify_with(&det, &argv, &[], Some(Path::new(WS))).action,
        Action::Ask,
        "unknown variable is asked"
    );
    let argv = words("rm -rf target");
    let v = classify_with(&det, &argv, &[], None);
    assert_eq!(
        (v.action, v.severity),
        (Action::Ask, Some(Severity::High)),
        "no workspace: everything is outside"
    );
    let argv = words("rm notes.txt");
    assert_eq!(classify_with(&det, &argv, &[], None).action, Action::Ask);
}

#[test]
fn here_documents_and_pipes_feed_database_clis() {
    let det = Detector::builtin();
    let run = |script: &str| {
        classify_with(
            &det,
            &["bash".into(), "-c".into(), script.into()],
            &[],
            Some(Path::new(WS)),
        )
    };
    assert_eq!(
        run("psql app <<EOF\nDROP TABLE users;\nEOF\n").action,
        Action::Ask
    );
    assert_eq!(
        run("psql app <<'EOF'\nSELECT 1;\nEOF\n").action,
        Action::Allow
    );
    assert_eq!(
        run("cat <<EOF | mysql shop\nTRUNCATE orders;\nEOF\n").action,
        Action::Ask
    );
    assert_eq!(
        run("mongosh app <<< 'db.dropDatabase()'").action,
        Action::Ask
    );
    assert_eq!(run("echo FLUSHALL | redis-cli").action, Action::Ask);
    assert_eq!(run("bash <<< 'rm -rf /'").action, Action::Deny);
    assert_eq!(run("sh -s <<EOF\nrm -rf ~\nEOF\n").action, Action::Deny);
    assert_eq!(run("echo 'rm -rf /' > notes.txt").action, Action::Allow);
}

#[test]
fn shell_state_is_tracked() {
    assert_eq!(action("bash -c 'cd /etc; rm -rf *'"), Action::Deny);
    assert_eq!(
        action("bash -c '(cd /etc); rm -rf *'"),
        Action::Ask,
        "a subshell's cd does not leak"
    );
    assert_eq!(
        action("bash -c 'X=/; unset X; rm -rf \"$X\"/*'"),
        Action::Deny,
        "unset variable expands to nothing"
    );
    assert_eq!(action("bash -c 'rm -rf \"${X:?}\"/*'"), Action::Ask);
    assert_eq!(
        action("bash -c 'cd \"$1\" && rm -rf *'"),
        Action::Ask,
        "unknown cwd"
    );
    assert_eq!(
        action("bash -c 'f() { rm -rf ~; }; f'"),
        Action::Deny,
        "function bodies are judged"
    );
    assert_eq!(
        action("bash -c 'bomb() { bomb | bomb & }; bomb'"),
        Action::Deny
    );
    assert_eq!(
        action("bash -c 'fib() { fib; }'"),
        Action::Allow,
        "plain recursion is not a fork bomb"
    );
    assert_eq!(
        action("bash -c 'cat <(rm -rf ~/x)'"),
        Action::Ask,
        "process substitutions run"
    );
    assert_eq!(action("bash -c '`rm -rf /`'"), Action::Deny);
    assert_eq!(
        action("bash -c 'trap \"rm -rf ~\" EXIT; make'"),
        Action::Deny,
        "trap handlers are judged"
    );
    let v = classify(
        &Detector::builtin(),
        "bash -c 'd=$(mktemp -d); rm -rf \"$d\"'",
    );
    assert_eq!(
        v.rule_id.as_deref(),
        Some("fs.rm-recursive-temp"),
        "mktemp output lies under /tmp"
    );
    // Positional parameters of `sh -c SCRIPT $0 $1...`.
    assert_eq!(action("sh -c 'exec \"$@\"' sh rm -rf /"), Action::Deny);
    assert_eq!(
        action("sh -c 'cd \"$1\" && npm test' sh packages/web"),
        Action::Allow
    );
    assert_eq!(action("bash -c 'rm -rf \"$1\"' _ /etc"), Action::Deny);
    assert_eq!(
        action("bash -c 'rm -rf /$1'"),
        Action::Deny,
        "an unset $1 expands to nothing"
    );
    assert_eq!(
        action("find . -name x -exec sh -c 'rm -rf \"$1\"' _ {} \\;"),
        Action::Ask
    );
}

#[test]
fn inline_interpreters_and_remote_commands() {
    assert_eq!(
        action("python3 -c \"import os; os.system('rm -rf ~')\""),
        Action::Deny
    );
    assert_eq!(
        action("python3 -c \"import subprocess; subprocess.run(['git', 'push', '--force'])\""),
        Action::Ask
    );
    assert_eq!(
        action("node -e \"require('child_process').execSync('ls -la')\""),
        Action::Allow
    );
    assert_eq!(action("ssh host 'cd /srv && ls'"), Action::Allow);
    assert_eq!(
        action("ssh -i key -p 2222 host rm -rf /srv/app"),
        Action::Ask
    );
    assert_eq!(
        action("docker compose exec db psql -c 'TRUNCATE t'"),
        Action::Ask
    );
    assert_eq!(action("fly ssh console -C 'rm -rf /data'"), Action::Ask);
}

#[test]
fn odd_input_never_panics_and_fails_closed() {
    let det = Detector::builtin();
    let empty: Vec<String> = Vec::new();
    assert_eq!(
        classify_with(&det, &empty, &[], Some(Path::new(WS))).action,
        Action::Allow
    );
    assert_eq!(
        classify_with(&det, &[String::new()], &[], Some(Path::new(WS))).action,
        Action::Allow
    );
    // Scripts bash itself would reject are held, never allowed.
    for script in [
        "echo 'unterminated",
        "rm -rf \"$(",
        "if then fi",
        "x=$((",
        "cat <<EOF",
        "((((((((",
    ] {
        let argv = vec!["bash".to_string(), "-c".to_string(), script.to_string()];
        let v = classify_with(&det, &argv, &[], Some(Path::new(WS)));
        assert_eq!(v.action, Action::Ask, "{script:?}");
    }
    // Input that makes brush-parser itself panic (tilde or redirection fd with an overflowing
    // number) is kept from it and held.
    for script in [
        "~99999999999999999999999",
        "rm -rf ~+99999999999999999999 ~-99999999999999999999",
        "ssh 44444444444<>x",
    ] {
        let argv = vec!["bash".to_string(), "-c".to_string(), script.to_string()];
        assert_eq!(
            classify_with(&det, &argv, &[], Some(Path::new(WS))).action,
            Action::Ask,
            "{script:?}"
        );
    }
    for script in ["echo ${!}", "\u{0}\u{1}\u{ffff}", ""] {
        let argv = vec!["bash".to_string(), "-c".to_string(), script.to_string()];
        assert_eq!(
            classify_with(&det, &argv, &[], Some(Path::new(WS))).action,
            Action::Allow,
            "{script:?}"
        );
    }
    let v = classify(&det, "bash -c 'echo \"unterminated'");
    assert_eq!(
        (v.action, v.rule_id.as_deref()),
        (Action::Ask, Some("analysis.unparseable"))
    );
    // The fallback split still sees obvious commands in unparseable scripts.
    assert_eq!(action("bash -c 'rm -rf / ; echo \"oops'"), Action::Deny);
    // Relative cwd or workspace do not confuse the resolver.
    let argv = words("rm -rf x");
    let ctx = CommandContext {
        argv: &argv,
        cwd: Path::new("rel"),
        env: &[],
        workspace: Some(Path::new("ws")),
        home: None,
    };
    assert_eq!(det.classify(&ctx).action, Action::Ask);
}

#[test]
fn unclosed_parentheses_are_held_quickly() {
    // A hang found by `cargo xtask fuzz` (detector target): `watch` joins its arguments into a
    // script with 32 unclosed `(`, on which the shell parser backtracks for minutes. Run on a
    // thread so that a regression fails here instead of hanging the suite.
    let argv: Vec<String> = [
        "watch",
        "((((((\u{1}w(((((((((\u{1}w((((((((((\u{1a}\u{fffd}1-n",
        "(((((((\u{1a}\u{fffd}1-n",
        ";0",
        "rrf",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let v = classify_with(&Detector::builtin(), &argv, &[], Some(Path::new(WS)));
        let _ = tx.send(v.action);
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Action::Ask));
}

#[test]
fn empty_here_document_delimiters_are_held_without_exhausting_memory() {
    // Found by `cargo xtask fuzz` (detector target): the shell parser queued tokens until it
    // ran out of memory on a here-document delimited by a carriage return, or by `""""`.
    // The fuzzer's second input, run-length encoded: (word, repetitions).
    let ssh: &[(&str, usize)] = &[
        ("ssh", 1),
        ("\t", 1),
        ("", 1),
        (" ", 1),
        ("!{", 1),
        ("", 2),
        ("`d", 1),
        ("drm", 1),
        ("\t", 1),
        ("", 2),
        ("; ", 1),
        ("!", 1),
        (" ", 1),
        ("", 113),
        (
            "\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}",
            1,
        ),
        ("", 55),
        ("<<", 1),
        ("\"\"\"\"", 1),
        ("", 8),
        ("`shdrm", 1),
        ("`doc", 1),
        ("um", 1),
        ("`doc", 1),
        ("u", 1),
        ("m", 1),
    ];
    let inputs: [Vec<String>; 2] = [
        ["watch", "n-", "6+rpx r<<\r", "", "H", "", "{", "", ""]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ssh.iter()
            .flat_map(|(w, n)| std::iter::repeat_n(w.to_string(), *n))
            .collect(),
    ];
    for argv in inputs {
        let shown = argv.len();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let v = classify_with(&Detector::builtin(), &argv, &[], Some(Path::new(WS)));
            let _ = tx.send(v.action);
        });
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Ok(Action::Ask),
            "input of {shown} words"
        );
    }
}

#[test]
fn hostile_sizes_are_bounded() {
    let det = Detector::builtin();
    let start = Instant::now();
    // Huge argv.
    let mut argv = vec!["rm".to_string(), "-f".to_string()];
    argv.extend((0..100_000).map(|i| format!("file{i}.o")));
    assert_eq!(
        classify_with(&det, &argv, &[], Some(Path::new(WS))).action,
        Action::Allow
    );
    argv.push("/etc/passwd".into());
    assert_eq!(
        classify_with(&det, &argv, &[], Some(Path::new(WS))).action,
        Action::Ask
    );
    // Deep nesting of scripts and wrappers is refused, not followed to a stack overflow.
    let deep = format!("{}rm -rf /{}", "{ ".repeat(2000), "; }".repeat(2000));
    let argv = vec!["bash".to_string(), "-c".to_string(), deep];
    assert_ne!(
        classify_with(&det, &argv, &[], Some(Path::new(WS))).action,
        Action::Allow
    );
    let mut argv: Vec<String> = std::iter::repeat_n("sudo".to_string(), 5000).collect();
    argv.push("ls".into());
    let v = classify_with(&det, &argv, &[], Some(Path::new(WS)));
    assert_eq!(v.rule_id.as_deref(), Some("analysis.too-deep"));
    let mut nested = "rm -rf /".to_string();
    // Quoting doubles per level, so 14 levels (28 analysis levels) is enough to exceed the limit.
    for _ in 0..14 {
        nested = format!(
            "bash -c {}",
            shlex::try_quote(&nested)
                .map(|c| c.into_owned())
                .unwrap_or_default()
        );
    }
    assert_ne!(action(&nested), Action::Allow);
    // Many commands in one script.
    let many = "true; ".repeat(30_000);
    let argv = vec!["bash".to_string(), "-c".to_string(), many];
    classify_with(&det, &argv, &[], Some(Path::new(WS)));
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn pseudo_random_scripts_do_not_panic() {
    let det = Detector::builtin();
    let alphabet: Vec<char> = "rm -rf/~.*$(){}[]|&;<>'\"`\\\n\tabcEOF=!#%?:,+0123456789"
        .chars()
        .collect();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let len = (next() % 60) as usize;
        let script: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let argv = vec!["bash".to_string(), "-c".to_string(), script.clone()];
        // Only the absence of panics and hangs is checked here.
        let _ = classify_with(&det, &argv, &[], Some(Path::new(WS)));
        let argv: Vec<String> = script.split(' ').map(str::to_string).collect();
        let _ = classify_with(&det, &argv, &[], Some(Path::new(WS)));
    }
}
