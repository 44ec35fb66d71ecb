//! Throughput benchmark for `scan_dir`.
//!
//! Builds a ~200 MB tree of real source code in a temporary directory by copying the text files
//! of `~/.cargo/registry/src` (repeatedly, into `copy-N/` subdirectories, until the size is
//! reached), warms the page cache with one scan, then times several scans and prints MB/s.
//!
//! ```text
//! cargo run --release -p agent-sandbox-scan --example scan_bench -- \
//!     [--size-mb 200] [--runs 3] [--threads 2] [--dir PATH] [--show]
//! ```
//! `--dir` scans an existing directory instead of building one; `--show` prints the findings
//! (redacted), which is how false positives on real code are reviewed.

use agent_sandbox_scan::{ScanOptions, scan_dir};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Args {
    size_mb: u64,
    runs: usize,
    threads: usize,
    dir: Option<PathBuf>,
    show: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        size_mb: 200,
        runs: 3,
        threads: 2,
        dir: None,
        show: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--size-mb" => a.size_mb = value("--size-mb")?.parse().map_err(|e| format!("{e}"))?,
            "--runs" => a.runs = value("--runs")?.parse().map_err(|e| format!("{e}"))?,
            "--threads" => a.threads = value("--threads")?.parse().map_err(|e| format!("{e}"))?,
            "--dir" => a.dir = Some(PathBuf::from(value("--dir")?)),
            "--show" => a.show = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Regular, non-binary files under `dir` (symlinks ignored), depth-first.
fn text_files(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            text_files(&p, out);
        } else if ft.is_file() {
            let mut head = [0u8; 8192];
            let n = fs::File::open(&p)
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if n > 0 && !head[..n].contains(&0) && len < (4 << 20) {
                out.push((p, len));
            }
        }
    }
}

fn build_tree(dest: &Path, size: u64) -> Result<u64, String> {
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let src = Path::new(&home).join(".cargo/registry/src");
    let mut files = Vec::new();
    text_files(&src, &mut files);
    if files.is_empty() {
        return Err(format!("no source files under {}", src.display()));
    }
    let mut total = 0u64;
    let mut copy = 0;
    while total < size {
        for (p, len) in &files {
            if total >= size {
                break;
            }
            let rel = p.strip_prefix(&src).map_err(|e| e.to_string())?;
            let to = dest.join(format!("copy-{copy}")).join(rel);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            fs::copy(p, &to).map_err(|e| format!("{}: {e}", to.display()))?;
            total += len;
        }
        copy += 1;
    }
    Ok(total)
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let built = build_tree(tmp.path(), args.size_mb << 20)?;
            println!(
                "built {:.1} MB tree in {}",
                built as f64 / 1e6,
                tmp.path().display()
            );
            tmp.path().to_path_buf()
        }
    };
    let opts = ScanOptions {
        threads: args.threads,
        max_duration: Duration::from_secs(600),
        ..ScanOptions::default()
    };
    let quiet = |_: &agent_sandbox_scan::Progress| {};
    // Warm-up: fills the page cache, so the runs measure the scanner rather than the disk.
    let warm = scan_dir(&root, &opts, &quiet).map_err(|e| e.to_string())?;
    println!(
        "warm-up: {} files, {:.1} MB, {} findings in {} files, skipped {:?}",
        warm.files_scanned,
        warm.bytes_scanned as f64 / 1e6,
        warm.findings.len(),
        warm.files_with_findings().len(),
        warm.skip_counts()
    );
    if args.show {
        for f in &warm.findings {
            println!(
                "  {}:{} {} {}",
                f.path.display(),
                f.line,
                f.kind,
                f.redacted
            );
        }
    }
    for run in 1..=args.runs {
        let r = scan_dir(&root, &opts, &quiet).map_err(|e| e.to_string())?;
        let secs = r.elapsed.as_secs_f64();
        println!(
            "run {run}: {:.1} MB in {:.3} s = {:.0} MB/s ({} threads, {} files)",
            r.bytes_scanned as f64 / 1e6,
            secs,
            r.bytes_scanned as f64 / 1e6 / secs,
            args.threads,
            r.files_scanned
        );
    }
    Ok(())
}
