//! Helpers shared by the integration tests: a real log built by the writer from the committed
//! event fixture.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use agent_sandbox_audit::{AuditKey, AuditWriter, Checkpoint};
use serde_json::{Map, Value};

/// The fixture's records, in order.
pub fn events() -> Vec<Map<String, Value>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/session_events.jsonl");
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("fixture line is a JSON object"))
        .collect()
}

pub const SESSION: &str = "test-session-0001";

/// A log written by `AuditWriter` from the fixture, finished with a final checkpoint.
pub struct Built {
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub checkpoint: PathBuf,
    pub key: AuditKey,
    pub final_checkpoint: Checkpoint,
}

pub fn build_log() -> Built {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let checkpoint = dir.path().join("state").join("audit.checkpoint");
    std::fs::create_dir(dir.path().join("state")).expect("state dir");
    let key = AuditKey::from_bytes(*b"0123456789abcdef0123456789abcdef");
    let mut w =
        AuditWriter::create_with_checkpoint(&log, &checkpoint, &key, SESSION).expect("create log");
    for (i, e) in events().iter().enumerate() {
        assert_eq!(w.append(e).expect("append"), i as u64);
    }
    let final_checkpoint = w.finish().expect("finish");
    Built {
        dir,
        log,
        checkpoint,
        key,
        final_checkpoint,
    }
}

/// Splits a log into lines, each keeping its newline.
pub fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}
