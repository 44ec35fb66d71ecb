//! End-to-end tests of the session's audit log (issue 5, first part): written by a real
//! session, verified by `agent-sandbox audit verify`, out of the agent's reach, and any edit
//! is detected.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn a_session_leaves_a_verifiable_audit_log_the_agent_cannot_touch() {
    require_root();
    let s = Scratch::new("audit");
    let state = s.path("state");
    fs::create_dir_all(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    // The agent runs as root here on purpose: file modes alone would keep nobody out of the
    // state directory; the sandbox must keep out even a root agent. The agent cannot list the
    // directory, so the test hands it the log's path once the session has created it.
    let go = s.path("go");
    let script = format!(
        "while [ ! -s {go} ]; do sleep 0.05; done; f=$(cat {go}) && echo READ-CONTROL; \
         cat \"$f\" >/dev/null 2>&1 && echo READ-LOG; \
         echo forged >> \"$f\" 2>/dev/null && echo WROTE-LOG; \
         cat {st}/keys/$(basename \"$f\" .jsonl).key >/dev/null 2>&1 && echo READ-KEY; \
         echo done",
        go = go.display(),
        st = state.display()
    );
    let child = spawn(sandbox(
        &["--user", "root", "--state-dir", state.to_str().unwrap()],
        &["/bin/bash", "-c", &script],
    ));
    let audit_dir = state.join("audit");
    let find_log = || {
        fs::read_dir(&audit_dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
    };
    assert!(
        wait_until(Duration::from_secs(30), || find_log().is_some()),
        "the session created no audit log"
    );
    let log = find_log().expect("an audit log");
    fs::write(&go, log.to_str().unwrap()).unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(
        so.contains("READ-CONTROL") && so.contains("done"),
        "{so}\n{se}"
    );
    for leak in ["READ-LOG", "WROTE-LOG", "READ-KEY"] {
        assert!(!so.contains(leak), "{leak}:\n{so}\n{se}");
    }
    let meta = fs::metadata(&log).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let verify = |extra: &[&str]| {
        Command::new(BIN)
            .args(["audit", "verify", "--state-dir", state.to_str().unwrap()])
            .args(extra)
            .arg(&log)
            .output()
            .unwrap()
    };
    let ok = verify(&[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"kind\":\"exec\""), "{text}");
    assert!(text.contains("\"kind\":\"session_end\""), "{text}");

    // Edit one record: detected, with its line.
    let edited = text.replacen("\"bash\"", "\"bosh\"", 1);
    assert_ne!(edited, text);
    fs::write(&log, &edited).unwrap();
    let bad = verify(&[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("edited"));

    // Drop the last record: detected against the checkpoint.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    fs::write(&log, lines.join("\n") + "\n").unwrap();
    let cut = verify(&[]);
    assert_eq!(cut.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&cut.stdout).contains("truncated"),
        "{}",
        String::from_utf8_lossy(&cut.stdout)
    );

    // The report reads the (restored) log.
    fs::write(&log, &text).unwrap();
    let rep = Command::new(BIN)
        .args(["report", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(rep.status.success());
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout).expect("report json");
    assert!(v.is_object());
}
