//! The `audit` workload: what the audit trail costs. Each rep writes [`RECORDS`] synthetic
//! records (exec with argv, open, connect: the shapes a session logs) through the audit
//! crate's writer, built in release mode (`agent-sandbox-audit`'s `audit_bench` example), which
//! reports the median per-record cost of `append` over batches of 1 000; then the bench times
//! the real `agent-sandbox audit verify --key KEY LOG` on that file, end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::util;

/// Records per rep (the issue's "1 M-event synthetic stream").
pub const RECORDS: u64 = 1_000_000;

/// One rep's measurements.
#[derive(Debug, Clone, Copy)]
pub struct Rep {
    /// Median cost of one `append`, in microseconds.
    pub append_median_us: f64,
    /// `agent-sandbox audit verify` of the log, wall clock, in milliseconds.
    pub verify_ms: f64,
    /// Size of the log.
    pub bytes: u64,
}

/// Builds the writer benchmark in release mode and returns its path.
pub fn build(root: &Path) -> Result<PathBuf> {
    let status = util::cargo(root)
        .args([
            "build",
            "--release",
            "-p",
            "agent-sandbox-audit",
            "--example",
            "audit_bench",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building the audit writer benchmark failed ({status})");
    }
    Ok(root.join("target/release/examples/audit_bench"))
}

/// The number after `"key":` in a one-line JSON object (the example's summary).
fn field(line: &str, key: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get(key)?.as_f64()
}

/// Runs one rep in `dir` (left there: the log, its checkpoint and its key).
pub fn rep(writer: &Path, supervisor: &Path, dir: &Path) -> Result<Rep> {
    let out = Command::new(writer)
        .arg(RECORDS.to_string())
        .arg("--keep")
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", writer.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{} failed ({}): {text}", writer.display(), out.status);
    }
    let summary = text.lines().last().unwrap_or_default();
    let append_median_us = field(summary, "append_median_us")
        .with_context(|| format!("no append_median_us in {summary:?}"))?;
    let bytes = field(summary, "bytes").unwrap_or(0.0) as u64;
    let log = dir.join("audit.jsonl");
    let start = Instant::now();
    let verify = Command::new(supervisor)
        .args(["audit", "verify", "--key"])
        .arg(dir.join("audit.key"))
        .arg(&log)
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("running {} audit verify", supervisor.display()))?;
    let verify_ms = start.elapsed().as_secs_f64() * 1000.0;
    if !verify.status.success() {
        bail!(
            "audit verify of the benchmark's log failed ({}): {}",
            verify.status,
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    Ok(Rep {
        append_median_us,
        verify_ms,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_read_by_key() {
        let line = r#"{"records":10,"append_median_us":2.5,"verify_s":0.1,"bytes":4096}"#;
        assert_eq!(field(line, "append_median_us"), Some(2.5));
        assert_eq!(field(line, "bytes"), Some(4096.0));
        assert_eq!(field(line, "nope"), None);
        assert_eq!(field("append: 10 records", "bytes"), None);
    }
}
