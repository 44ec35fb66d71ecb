//! Writes 1 000 000 synthetic records (exec with argv, open, connect) to an audit log in a
//! temp dir and prints the median per-record cost of `append` (batches of 1000 timed), then
//! the time `verify` takes on that file.
//!
//! Run with: `cargo run --release -p agent-sandbox-audit --example audit_bench [records]
//! [--keep DIR]`. With `--keep`, the log (`DIR/audit.jsonl`), its checkpoint and its key
//! (`DIR/audit.key`) stay in DIR for `agent-sandbox audit verify --key`, and the last line
//! printed is a JSON summary (`cargo xtask bench --only audit` reads it).

use std::time::Instant;

use agent_sandbox_audit::{AuditKey, AuditWriter, Report, synthetic_record, verify};

const BATCH: u64 = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let records: u64 = match args.first().filter(|a| !a.starts_with("--")) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let tmp = tempfile::tempdir()?;
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(agent_sandbox_audit::default_checkpoint_path(&log));
    let key = AuditKey::generate()?;
    if keep.is_some() {
        let key_path = dir.join("audit.key");
        let _ = std::fs::remove_file(&key_path);
        key.save(&key_path)?;
    }
    let mut w = AuditWriter::create(&log, &key, "bench-session")?;

    let mut per_record_ns = Vec::new();
    let mut batch = Vec::with_capacity(BATCH as usize);
    let mut i = 0u64;
    let total_start = Instant::now();
    let mut append_total = std::time::Duration::ZERO;
    while i < records {
        // Records are built outside the timed region: the bar is the writer's cost.
        batch.clear();
        let n = BATCH.min(records - i);
        batch.extend((i..i + n).map(synthetic_record));
        let start = Instant::now();
        for r in &batch {
            w.append(r)?;
        }
        let spent = start.elapsed();
        append_total += spent;
        per_record_ns.push(spent.as_nanos() as f64 / n as f64);
        i += n;
    }
    let cp = w.finish()?;
    let wall = total_start.elapsed();
    per_record_ns.sort_by(f64::total_cmp);
    let pct = |p: f64| per_record_ns[((per_record_ns.len() - 1) as f64 * p) as usize];
    let size = std::fs::metadata(&log)?.len();
    println!(
        "append: {records} records, {:.1} MB, {:.0} B/record",
        size as f64 / 1e6,
        size as f64 / records.max(1) as f64
    );
    println!(
        "append per record (batches of {BATCH}): median {:.2} us, p90 {:.2} us, max {:.2} us; \
         total append {:.2} s (wall incl. record generation {:.2} s); bar: median <= 5 us",
        pct(0.5) / 1000.0,
        pct(0.9) / 1000.0,
        pct(1.0) / 1000.0,
        append_total.as_secs_f64(),
        wall.as_secs_f64()
    );

    let cp_path = agent_sandbox_audit::default_checkpoint_path(&log);
    let start = Instant::now();
    let report = verify(&log, &key, Some(&cp_path))?;
    let verify_time = start.elapsed();
    println!(
        "verify: {} records, {} problems, {:.3} s; bar: < 2 s",
        report.records,
        report.problems.len(),
        verify_time.as_secs_f64()
    );
    if !report.is_clean() || report.records != cp.records {
        return Err(format!("verify did not come out clean: {:?}", report.problems).into());
    }

    // Adversarial shapes must stay linear: every line reordered, or no line verifying.
    let bytes = std::fs::read(&log)?;
    let mut lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    lines.reverse();
    let reversed = lines.concat();
    drop(lines);
    let start = Instant::now();
    let r = agent_sandbox_audit::verify_bytes(&reversed, &key, None);
    println!(
        "verify, lines reversed: {} problems kept (+{} omitted), {:.3} s",
        r.problems.len(),
        r.problems_omitted,
        start.elapsed().as_secs_f64()
    );
    drop(reversed);
    let start = Instant::now();
    let r = agent_sandbox_audit::verify_bytes(&bytes, &AuditKey::generate()?, None);
    println!(
        "verify, wrong key: {:?}, {:.3} s",
        r.problems.iter().map(|p| p.kind).collect::<Vec<_>>(),
        start.elapsed().as_secs_f64()
    );
    drop(bytes);

    let start = Instant::now();
    let summary = Report::from_log(&log)?;
    println!(
        "report: {} records summarised in {:.3} s",
        summary.totals.records,
        start.elapsed().as_secs_f64()
    );
    if keep.is_some() {
        println!(
            "{{\"records\":{records},\"append_median_us\":{:.4},\"append_p90_us\":{:.4},\
             \"verify_s\":{:.4},\"bytes\":{size}}}",
            pct(0.5) / 1000.0,
            pct(0.9) / 1000.0,
            verify_time.as_secs_f64()
        );
    }
    Ok(())
}
