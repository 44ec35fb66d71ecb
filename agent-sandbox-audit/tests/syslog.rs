//! Forwarding to a unix datagram socket bound in a temp dir, standing in for /dev/log.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use agent_sandbox_audit::{AuditWriter, SyslogForwarder, verify_bytes};

fn recv_string(sock: &UnixDatagram) -> String {
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn forwards_sealed_lines_as_rfc5424() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&sock_path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut fwd = SyslogForwarder::connect(Some(&sock_path)).unwrap();

    let key = agent_sandbox_audit::AuditKey::generate().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut w = AuditWriter::create(&log, &key, common::SESSION).unwrap();
    let events = common::events();
    // Received as they are sent: the kernel queues only a few datagrams per socket.
    let mut received = Vec::new();
    for e in &events {
        w.append(e).unwrap();
        assert!(fwd.send(w.last_line()));
        received.push(recv_string(&receiver));
    }
    w.finish().unwrap();
    assert_eq!(fwd.stats().sent, events.len() as u64);
    assert_eq!(fwd.stats().failed, 0);

    let disk = std::fs::read_to_string(&log).unwrap();
    assert_eq!(disk.lines().count(), received.len());
    let mut copies = Vec::new();
    for (i, (disk_line, msg)) in disk.lines().zip(&received).enumerate() {
        // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
        let parts: Vec<&str> = msg.splitn(8, ' ').collect();
        assert_eq!(i, copies.len());
        assert_eq!(parts.len(), 8, "{msg}");
        let kind = events[i]["kind"].as_str().unwrap();
        let want_pri = match kind {
            "net_refused" | "file_refused" | "held" | "gate_refused" | "approval_refused"
            | "freeze" => "<84>1",
            "decision" | "thaw" | "session_start" | "session_end" | "policy_trust" => "<85>1",
            _ => "<86>1",
        };
        assert_eq!(parts[0], want_pri, "{kind}");
        assert!(
            parts[1].ends_with('Z') && parts[1].len() == 27,
            "{}",
            parts[1]
        );
        assert_ne!(parts[2], "");
        assert_eq!(parts[3], "agent-sandbox");
        assert_eq!(parts[4], std::process::id().to_string());
        assert_eq!(parts[5], kind);
        assert_eq!(parts[6], "-");
        // The message is the sealed line itself, byte for byte.
        assert_eq!(parts[7], disk_line);
        copies.push(parts[7].to_string());
    }
    // The syslog copy verifies on its own with the session key.
    let copy = copies.join("\n") + "\n";
    let report = verify_bytes(copy.as_bytes(), &key, None);
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.records, events.len() as u64);
}

#[test]
fn a_full_socket_never_blocks_and_failures_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log.sock");
    // Bound but never read: the queue fills up.
    let _receiver = UnixDatagram::bind(&sock_path).unwrap();
    let mut fwd = SyslogForwarder::connect(Some(&sock_path)).unwrap();
    let line = format!("{{\"kind\":\"exec\",\"pad\":\"{}\"}}\n", "x".repeat(2000));
    fwd.set_max_wait(Duration::from_millis(50));
    let start = Instant::now();
    for _ in 0..5000 {
        fwd.send(line.as_bytes());
    }
    let elapsed = start.elapsed();
    let s = fwd.stats();
    assert_eq!(s.sent + s.failed, 5000);
    assert!(s.failed > 0, "the queue should have filled: {s:?}");
    assert!(s.sent > 0);
    // One bounded wait when the queue first fills, then drops without waiting: far below
    // 5000 waits of 50 ms.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn daemon_gone_then_back() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log.sock");
    assert!(
        SyslogForwarder::connect(Some(&sock_path)).is_err(),
        "nobody listens yet"
    );
    let receiver = UnixDatagram::bind(&sock_path).unwrap();
    let mut fwd = SyslogForwarder::connect(Some(&sock_path)).unwrap();
    assert!(fwd.send(b"{\"kind\":\"exec\"}\n"));
    // The daemon goes away: sends fail, fast, and are counted.
    drop(receiver);
    std::fs::remove_file(&sock_path).unwrap();
    assert!(!fwd.send(b"{\"kind\":\"exec\"}\n"));
    assert!(!fwd.send(b"{\"kind\":\"exec\"}\n"));
    assert_eq!(fwd.stats().failed, 2);
    // It comes back at the same path: after the reconnect interval the forwarder finds it.
    let receiver = UnixDatagram::bind(&sock_path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(fwd.send(b"{\"kind\":\"held\"}\n"));
    let msg = recv_string(&receiver);
    assert!(msg.starts_with("<84>1 "), "{msg}");
    assert!(msg.ends_with(" held - {\"kind\":\"held\"}"), "{msg}");
}

#[test]
fn oversized_records_are_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&sock_path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut fwd = SyslogForwarder::connect(Some(&sock_path)).unwrap();
    // Multi-byte characters straddle the cut.
    let line = format!("{{\"kind\":\"exec\",\"argv\":\"{}\"}}", "é".repeat(10_000));
    assert!(fwd.send(line.as_bytes()));
    let msg = recv_string(&receiver);
    assert!(msg.len() <= agent_sandbox_audit::MAX_MESSAGE);
    assert!(msg.len() > agent_sandbox_audit::MAX_MESSAGE - 4);
    assert_eq!(fwd.stats().truncated, 1);
}

#[test]
fn a_reader_that_keeps_up_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&sock_path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..300 {
            got.push(recv_string(&receiver));
        }
        got
    });
    let mut fwd = SyslogForwarder::connect(Some(&sock_path)).unwrap();
    // A burst far larger than the kernel's queue: the bounded wait lets the reader catch up.
    fwd.set_max_wait(Duration::from_millis(500));
    for i in 0..300 {
        assert!(fwd.send(format!("{{\"kind\":\"exec\",\"i\":{i}}}\n").as_bytes()));
    }
    let got = reader.join().unwrap();
    assert_eq!(fwd.stats().failed, 0);
    for (i, msg) in got.iter().enumerate() {
        assert!(msg.ends_with(&format!(",\"i\":{i}}}")), "{msg}");
    }
}
