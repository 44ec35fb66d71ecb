//! Data-driven tamper tests: each case in `data/tamper_cases.json` alters a real log written by
//! `AuditWriter` (and/or its checkpoint) and lists exactly the problems `verify` must report,
//! as (kind, line) pairs in order.

mod common;

use std::path::Path;

use agent_sandbox_audit::{AuditKey, ProblemKind, verify};
use common::{Built, build_log, split_lines};
use serde_json::Value;

fn line_index(op: &Value, field: &str) -> usize {
    let n = op[field]
        .as_u64()
        .unwrap_or_else(|| panic!("op needs `{field}`: {op}"));
    usize::try_from(n).unwrap() - 1
}

fn replace_once(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    assert!(text.contains(from), "`{from}` not in line {text}");
    text.replacen(from, to, 1).into_bytes()
}

/// Applies one operation to the log's lines (or to the checkpoint file).
fn apply(op: &Value, lines: &mut Vec<Vec<u8>>, built: &Built) {
    match op["op"].as_str().unwrap() {
        "replace" => {
            let i = line_index(op, "line");
            let from = op["from"].as_str().unwrap();
            let to = op["to"].as_str().unwrap();
            lines[i] = replace_once(&lines[i], from, to);
        }
        "insert" => {
            let at = line_index(op, "at");
            lines.insert(at, op["text"].as_str().unwrap().as_bytes().to_vec());
        }
        "insert_copy" => {
            let of = line_index(op, "of");
            let at = line_index(op, "at");
            let copy = lines[of].clone();
            lines.insert(at, copy);
        }
        "delete" => {
            lines.remove(line_index(op, "line"));
        }
        "swap" => lines.swap(line_index(op, "a"), line_index(op, "b")),
        "move_to_end" => {
            let l = lines.remove(line_index(op, "line"));
            lines.push(l);
        }
        "keep_lines" => lines.truncate(op["n"].as_u64().unwrap() as usize),
        "cut_last_line" => {
            let last = lines.last_mut().unwrap();
            let half = last.len() / 2;
            last.truncate(half);
        }
        "strip_final_newline" => {
            let last = lines.last_mut().unwrap();
            assert_eq!(last.pop(), Some(b'\n'));
        }
        "append" => lines.push(op["text"].as_str().unwrap().as_bytes().to_vec()),
        "remove_checkpoint" => std::fs::remove_file(&built.checkpoint).unwrap(),
        "edit_checkpoint" => {
            let bytes = std::fs::read(&built.checkpoint).unwrap();
            let edited = replace_once(
                &bytes,
                op["from"].as_str().unwrap(),
                op["to"].as_str().unwrap(),
            );
            std::fs::write(&built.checkpoint, edited).unwrap();
        }
        other => panic!("unknown op {other}"),
    }
}

fn kind_name(k: ProblemKind) -> String {
    serde_json::to_value(k)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn tamper_cases() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tamper_cases.json");
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let built = build_log();
        let mut lines = split_lines(&std::fs::read(&built.log).unwrap());
        assert_eq!(lines.len(), 34);
        for op in case["ops"].as_array().unwrap() {
            apply(op, &mut lines, &built);
        }
        let tampered = built.dir.path().join("tampered.jsonl");
        std::fs::write(&tampered, lines.concat()).unwrap();
        let key = if case["wrong_key"].as_bool().unwrap_or(false) {
            AuditKey::from_bytes([0x55; 32])
        } else {
            built.key.clone()
        };
        let cp = case["checkpoint"]
            .as_bool()
            .unwrap()
            .then_some(built.checkpoint.as_path());
        let report = verify(&tampered, &key, cp).unwrap();
        let got: Vec<(String, u64)> = report
            .problems
            .iter()
            .map(|p| (kind_name(p.kind), p.line))
            .collect();
        let want: Vec<(String, u64)> = case["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_u64().unwrap()))
            .collect();
        if std::env::var_os("TAMPER_SHOW").is_some() {
            eprintln!("{name}");
            for p in &report.problems {
                eprintln!("    {p}");
            }
        }
        if got != want || report.problems_omitted != 0 || report.is_clean() != want.is_empty() {
            failures.push(format!(
                "{name}:\n  want {want:?}\n  got  {got:?}\n  {}",
                report
                    .problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn clean_log_reports_its_chain_head() {
    let built = build_log();
    let report = verify(&built.log, &built.key, Some(&built.checkpoint)).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.records, 34);
    assert_eq!(report.lines, 34);
    assert_eq!(report.session_id.as_deref(), Some(common::SESSION));
    assert_eq!(report.last_seq, Some(33));
    assert_eq!(
        report.last_hash.as_deref(),
        Some(built.final_checkpoint.last_hash.as_str())
    );
}

#[test]
fn checkpoint_from_another_session_is_reported() {
    let a = build_log();
    // A second log with the same key but another session id: its checkpoint must not vouch
    // for the first log.
    let other = a.dir.path().join("other.jsonl");
    let other_cp = a.dir.path().join("other.cp");
    let mut w = agent_sandbox_audit::AuditWriter::create_with_checkpoint(
        &other,
        &other_cp,
        &a.key,
        "another-session",
    )
    .unwrap();
    for e in common::events() {
        w.append(&e).unwrap();
    }
    w.finish().unwrap();
    let report = verify(&a.log, &a.key, Some(&other_cp)).unwrap();
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProblemKind::SessionMismatch), "{kinds:?}");
    assert!(kinds.contains(&ProblemKind::BadCheckpoint), "{kinds:?}");
}

#[test]
fn intermediate_checkpoint_accepts_later_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.jsonl");
    let cp = dir.path().join("a.cp");
    let key = AuditKey::generate().unwrap();
    let mut w =
        agent_sandbox_audit::AuditWriter::create_with_checkpoint(&log, &cp, &key, "s").unwrap();
    let events = common::events();
    for e in &events[..10] {
        w.append(e).unwrap();
    }
    let mid = w.sync().unwrap();
    assert!(!mid.is_final);
    assert_eq!(mid.records, 10);
    for e in &events[10..] {
        w.append(e).unwrap();
    }
    // The process "crashes" here: no finish. The intermediate checkpoint still vouches for
    // the first ten records, and the later ones are accepted.
    drop(w);
    let report = verify(&log, &key, Some(&cp)).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.records, 34);
    // Cutting the log below the intermediate checkpoint is detected.
    let bytes = std::fs::read(&log).unwrap();
    let lines = split_lines(&bytes);
    std::fs::write(&log, lines[..8].concat()).unwrap();
    let report = verify(&log, &key, Some(&cp)).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind, ProblemKind::Truncated);
}

#[test]
fn empty_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("empty.jsonl");
    let cp = dir.path().join("empty.cp");
    let key = AuditKey::generate().unwrap();
    let w = agent_sandbox_audit::AuditWriter::create_with_checkpoint(&log, &cp, &key, "e").unwrap();
    let checkpoint = w.finish().unwrap();
    assert_eq!(checkpoint.records, 0);
    assert_eq!(checkpoint.last_seq(), None);
    let r = verify(&log, &key, Some(&cp)).unwrap();
    assert!(r.is_clean(), "{:?}", r.problems);
    assert_eq!((r.records, r.lines), (0, 0));

    // A full log emptied: the checkpoint says 34 records.
    let built = build_log();
    std::fs::write(&built.log, b"").unwrap();
    let r = verify(&built.log, &built.key, Some(&built.checkpoint)).unwrap();
    let got: Vec<(ProblemKind, u64)> = r.problems.iter().map(|p| (p.kind, p.line)).collect();
    assert_eq!(got, [(ProblemKind::Truncated, 1)]);
}

#[test]
fn records_appended_after_the_final_checkpoint() {
    let built = build_log();
    // Keep the final checkpoint, then continue the log (as someone holding the key could).
    let saved = built.dir.path().join("final.cp");
    std::fs::copy(&built.checkpoint, &saved).unwrap();
    let mut w = agent_sandbox_audit::AuditWriter::open_append(
        &built.log,
        &built.checkpoint,
        &built.key,
        common::SESSION,
    )
    .unwrap();
    w.append(&common::events()[3]).unwrap();
    w.append(&common::events()[4]).unwrap();
    w.finish().unwrap();
    // Against the new checkpoint the log is clean; against the saved final one, the two new
    // records are additions.
    assert!(
        verify(&built.log, &built.key, Some(&built.checkpoint))
            .unwrap()
            .is_clean()
    );
    let r = verify(&built.log, &built.key, Some(&saved)).unwrap();
    let got: Vec<(ProblemKind, u64)> = r.problems.iter().map(|p| (p.kind, p.line)).collect();
    assert_eq!(
        got,
        [(ProblemKind::Inserted, 35), (ProblemKind::Inserted, 36)]
    );
}

#[test]
fn unreadable_inputs_are_errors_not_problems() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    assert!(matches!(
        verify(&dir.path().join("missing"), &key, None),
        Err(agent_sandbox_audit::AuditError::Io { .. })
    ));
    // A directory, and a FIFO (which must not block the open).
    assert!(matches!(
        verify(dir.path(), &key, None),
        Err(agent_sandbox_audit::AuditError::NotRegular { .. })
            | Err(agent_sandbox_audit::AuditError::Io { .. })
    ));
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(matches!(
        verify(&fifo, &key, None),
        Err(agent_sandbox_audit::AuditError::NotRegular { .. })
    ));
    assert!(matches!(
        agent_sandbox_audit::Report::from_log(&fifo),
        Err(agent_sandbox_audit::AuditError::NotRegular { .. })
    ));
}
