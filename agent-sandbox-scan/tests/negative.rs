//! Negative corpora: committed files full of lookalikes (documentation placeholders, lockfile
//! hashes, UUIDs, public keys, minified JS, code that names secrets) must produce no finding,
//! and neither must this crate's own tree, whose fake secrets are built at run time.

mod common;

use agent_sandbox_scan::{ScanOptions, scan_dir};
use common::data_dir;
use std::path::Path;

fn assert_clean(root: &Path, min_files: u64) {
    let report = scan_dir(root, &ScanOptions::default(), &|_| {}).expect("scan");
    let shown: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{}:{} {} {}", f.path.display(), f.line, f.kind, f.redacted))
        .collect();
    assert!(shown.is_empty(), "false positives:\n{}", shown.join("\n"));
    assert!(
        report.files_scanned >= min_files,
        "only {} files scanned under {}",
        report.files_scanned,
        root.display()
    );
    assert_eq!(report.stopped, None);
}

#[test]
fn lookalike_corpus_has_no_findings() {
    // 12 files: docs, lockfiles (npm, yarn, Cargo, Go), ids and hashes, public PEM blocks,
    // minified JS and CSS, Rust/Python/YAML code that handles secrets by reference.
    assert_clean(&data_dir().join("negative"), 12);
}

#[test]
fn own_source_tree_scans_clean() {
    // src, tests (templates and lookalikes included), examples, Cargo.toml.
    assert_clean(Path::new(env!("CARGO_MANIFEST_DIR")), 20);
}
