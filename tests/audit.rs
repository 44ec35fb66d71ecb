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

#[test]
fn audit_syslog_sends_every_sealed_record_to_the_syslog_socket() {
    use std::os::unix::net::UnixDatagram;
    require_root();
    let s = Scratch::new("audit-syslog");
    let state = s.path("state");
    fs::create_dir_all(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    // The test is the syslog daemon: a datagram socket, as /dev/log is.
    let sock_path = s.path("log.sock");
    let daemon = UnixDatagram::bind(&sock_path).unwrap();
    daemon
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let end = std::time::Instant::now() + Duration::from_secs(120);
        // Until the session's last record (or a generous bound, if it never comes).
        while std::time::Instant::now() < end
            && !got
                .last()
                .is_some_and(|m: &String| m.contains("\"kind\":\"session_end\""))
        {
            if let Ok(n) = daemon.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        got
    });
    // A refused read of a protected file (a warning) among ordinary execs.
    let secret = s.path("secret.txt");
    fs::write(&secret, "secret").unwrap();
    let secret = fs::canonicalize(&secret).unwrap();
    let policy = s.path("policy.toml");
    fs::write(
        &policy,
        format!(
            "[[files.deny_read]]\nid = \"test-secret\"\npaths = [\"{}\"]\n",
            secret.display()
        ),
    )
    .unwrap();
    let out = sandbox(
        &[
            "--user",
            "root",
            "--trust-policy",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            &format!("--audit-syslog={}", sock_path.display()),
        ],
        &[
            "/bin/bash",
            "-c",
            &format!("cat {}; true", secret.display()),
        ],
    )
    .output()
    .unwrap();
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{se}");
    assert!(se.contains("audit records sent to syslog"), "{se}");
    let got = receiver.join().unwrap();
    let log = fs::read_dir(state.join("audit"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let lines: Vec<String> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(lines.len() >= 3, "{lines:#?}");
    // Every record, in order, each message the sealed line itself (verifiable centrally).
    let messages: Vec<&str> = got
        .iter()
        .map(|m| m.split_once(" - ").map(|(_, msg)| msg).unwrap_or(""))
        .collect();
    assert_eq!(messages, lines, "the syslog copy is the audit log");
    // authpriv (10): <84> warning for the refusal, <85> notice for the session's ends.
    let pri_of = |kind: &str| {
        got.iter()
            .find(|m| m.contains(&format!("\"kind\":\"{kind}\"")))
            .and_then(|m| m.split_once('>'))
            .map(|(p, _)| p.to_owned())
    };
    assert_eq!(pri_of("file_refused").as_deref(), Some("<84"), "{got:#?}");
    assert_eq!(pri_of("session_start").as_deref(), Some("<85"));
    assert_eq!(pri_of("session_end").as_deref(), Some("<85"));
    assert!(got.iter().all(|m| m.contains(" agent-sandbox ")));
}

#[test]
fn audit_syslog_without_a_receiver_refuses_to_start() {
    require_root();
    let s = Scratch::new("audit-syslog-none");
    let missing = s.path("no-such.sock");
    let out = sandbox(
        &[
            "--user",
            "root",
            "--state-dir",
            s.path("state").to_str().unwrap(),
            &format!("--audit-syslog={}", missing.display()),
        ],
        &["/bin/sh", "-c", "echo RAN"],
    )
    .output()
    .unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!so.contains("RAN"), "the agent must not run: {so}");
    assert!(
        se.contains("--audit-syslog") && se.contains(missing.to_str().unwrap()),
        "{se}"
    );
}
