//! The report on a real log written by `AuditWriter` from the committed fixture.

mod common;

use std::path::Path;

use agent_sandbox_audit::{Report, render_text};
use common::build_log;

fn report() -> Report {
    let built = build_log();
    Report::from_log(&built.log).unwrap()
}

#[test]
fn session_and_totals() {
    let r = report();
    let s = &r.session;
    assert_eq!(s.session_id.as_deref(), Some(common::SESSION));
    assert_eq!(s.command, ["claude", "--resume"]);
    assert_eq!(s.user.as_deref(), Some("dev"));
    assert_eq!(s.uid, Some(1000));
    assert_eq!(s.policy_hash.as_deref(), Some("sha256:5f1c0e"));
    assert_eq!(s.exit_code, Some(0));
    assert_eq!(s.lost_total, Some(0));
    assert!(s.ended);
    // 06:26:00.240941 to 06:27:30.740941.
    assert_eq!(s.duration_ms, Some(90_500));
    let t = &r.totals;
    assert_eq!(t.records, 34);
    assert_eq!(t.unparsable_lines, 0);
    assert_eq!(t.unknown_kinds, 1, "mystery_event");
    assert_eq!(t.by_kind.get("exec"), Some(&10));
    assert_eq!(t.by_kind.get("hold"), Some(&4));
    assert_eq!(t.by_kind.values().sum::<u64>() + t.unknown_kinds, 34);
    assert_eq!(t.holds, 4);
    assert_eq!(t.holds_refused, 2, "deny and timeout");
    assert_eq!(t.holds_undecided, 1);
    assert_eq!(t.failed_execs, 1);
}

#[test]
fn commands_grouped_by_program() {
    let r = report();
    let git = r.commands.iter().find(|c| c.program == "git").unwrap();
    assert_eq!(git.count, 5);
    let subs: Vec<(&str, u64)> = git
        .subcommands
        .iter()
        .map(|c| (c.name.as_str(), c.count))
        .collect();
    assert_eq!(subs, [("diff", 2), ("status", 2), ("push", 1)]);
    assert_eq!(r.commands[0].program, "git", "most frequent first");
    let failed = r
        .commands
        .iter()
        .find(|c| c.program == "nosuch-tool")
        .unwrap();
    assert_eq!(failed.failed, 1);
    assert!(render_text(&r).contains("git (5): diff x2, status x2, push x1"));
}

#[test]
fn files_connections_holds_freezes() {
    let r = report();
    assert_eq!(r.files_read.len(), 1);
    assert_eq!(r.files_read[0].name, ".git/HEAD");
    assert_eq!(r.files_read[0].count, 2);
    assert_eq!(r.files_written[0].name, "target/release/.cargo-lock");
    assert_eq!(r.path_ops.len(), 2);
    assert!(
        r.path_ops
            .iter()
            .any(|p| p.name == "renameat2 notes.txt -> old-notes.txt")
    );
    assert_eq!(r.files_refused.len(), 1);
    assert_eq!(r.files_refused[0].target, "/home/dev/.aws/credentials");
    assert_eq!(r.files_refused[0].rule.as_deref(), Some("files.deny[0]"));

    assert_eq!(r.connections[0].address, "10.1.2.3");
    assert_eq!(r.connections[0].port, Some(443));
    assert_eq!(r.connections[0].count, 2);
    assert_eq!(r.connections_refused.len(), 1);
    assert_eq!(r.connections_refused[0].target, "10.9.8.7:5432 (tcp)");

    type HoldRow<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<u64>);
    let holds: Vec<HoldRow> = r
        .holds
        .iter()
        .map(|h| {
            (
                h.hold_id.as_str(),
                h.decision.as_deref(),
                h.by.as_deref(),
                h.latency_ms,
            )
        })
        .collect();
    assert_eq!(
        holds,
        [
            ("1", Some("allow_once"), Some("tui"), Some(4200)),
            ("2", Some("deny"), Some("tui"), Some(1500)),
            ("3", Some("timeout"), Some("timeout"), Some(60000)),
            ("4", None, None, None),
        ]
    );
    assert_eq!(r.holds[0].what, "git push --force origin main");
    assert_eq!(r.holds[1].what, "/home/dev/project/migrations");

    let freezes: Vec<(&str, Option<&str>)> = r
        .freezes
        .iter()
        .map(|f| (f.action.as_str(), f.by.as_deref()))
        .collect();
    assert_eq!(freezes, [("freeze", Some("tui")), ("thaw", Some("tui"))]);
    assert_eq!(r.policy_trust[0].decision.as_deref(), Some("trusted"));

    // Timeline: notable events only, in log order.
    let kinds: Vec<&str> = r.timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "session_start",
            "policy_trust",
            "file_refused",
            "net_refused",
            "hold",
            "decision",
            "hold",
            "decision",
            "hold",
            "freeze",
            "decision",
            "thaw",
            "hold",
            "session_end"
        ]
    );
}

#[test]
fn json_form() {
    let r = report();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["session"]["exit_code"], 0);
    assert_eq!(v["commands"][0]["program"], "git");
    assert_eq!(v["holds"][1]["decision"], "deny");
    assert_eq!(v["totals"]["unknown_kinds"], 1);
}

/// The text rendering, compared with the committed `data/session_report.txt`. Set
/// `UPDATE_GOLDEN=1` to rewrite it after a deliberate change, then review the diff.
#[test]
fn text_rendering_matches_golden() {
    let text = render_text(&report());
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/session_report.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(text, want);
}

#[test]
fn damaged_and_foreign_lines_are_counted_not_fatal() {
    let built = build_log();
    let mut bytes = std::fs::read(&built.log).unwrap();
    bytes.extend_from_slice(b"not json\n[1,2]\n{\"no_kind\":true}\n{\"kind\":\"exec\",\"fields\":{\"argv\":7}}\n{\"half");
    let damaged = built.dir.path().join("damaged.jsonl");
    std::fs::write(&damaged, bytes).unwrap();
    let r = Report::from_log(&damaged).unwrap();
    assert_eq!(r.totals.records, 36);
    assert_eq!(r.totals.unparsable_lines, 3);
    assert_eq!(r.totals.unknown_kinds, 2);
    assert_eq!(r.totals.by_kind.get("exec"), Some(&11));
    assert!(r.commands.iter().any(|c| c.program == "?"));
}

/// The records of the sandbox's own refusals (the gate, failed signals and ptrace, path calls
/// the kernel refused, peers at the approval socket) are listed and on the timeline, not
/// counted as unknown kinds; a signal that was delivered is only counted.
#[test]
fn the_sandboxs_own_refusals_are_listed() {
    let lines = [
        r#"{"kind":"gate_refused","time":"2026-11-21T10:00:00Z","pid":41,"fields":{"action":"exec","command":["python3","-c","bpf()"],"rule":"sandbox.kernel","why":"loads eBPF"}}"#,
        r#"{"kind":"signal","time":"2026-11-21T10:00:01Z","pid":42,"comm":"kill","fields":{"syscall":"kill","signal":"SIGKILL","target_pid":7,"ret":-1,"errno":"EPERM"}}"#,
        r#"{"kind":"signal","time":"2026-11-21T10:00:02Z","pid":42,"comm":"kill","fields":{"syscall":"kill","signal":"SIGTERM","target_pid":43,"ret":0}}"#,
        r#"{"kind":"denied","time":"2026-11-21T10:00:03Z","pid":44,"comm":"truncate","fields":{"syscall":"truncate","path":"/state/audit.jsonl","ret":-13,"errno":"EACCES"}}"#,
        r#"{"kind":"approval_refused","time":"2026-11-21T10:00:04Z","pid":45,"fields":{"why":"a process inside the sandbox connected to the approval socket"}}"#,
    ];
    let r = Report::from_reader(lines.join("\n").as_bytes()).unwrap();
    assert_eq!(r.totals.unknown_kinds, 0);
    let targets: Vec<&str> = r
        .sandbox_refused
        .iter()
        .map(|x| x.target.as_str())
        .collect();
    assert_eq!(
        targets,
        [
            "exec python3 -c bpf()",
            "kill SIGKILL to pid 7 (EPERM)",
            "truncate /state/audit.jsonl (EACCES)",
            "the approval socket",
        ]
    );
    assert_eq!(r.sandbox_refused[0].rule.as_deref(), Some("sandbox.kernel"));
    assert_eq!(r.timeline.len(), 4);
    assert!(
        render_text(&r)
            .contains("Refused by the sandbox (gate, signals, path calls, approval socket) (4)")
    );
}
