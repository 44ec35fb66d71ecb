//! The walk: nested directories, symlinks, exempt globs, binary and oversized files, `.git`,
//! special files, limits, progress and errors, on real files in temporary directories.

mod common;

use agent_sandbox_scan::{Limit, ScanError, ScanOptions, SecretKind, SkipReason, scan_dir};
use common::{B62, Rng, write};
use std::cell::RefCell;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn gh(r: &mut Rng) -> String {
    format!("ghp_{}", r.mixed(B62, 36))
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .expect("under root")
        .to_string_lossy()
        .into_owned()
}

fn finding_paths(root: &Path, report: &agent_sandbox_scan::ScanReport) -> Vec<String> {
    let mut v: Vec<String> = report.findings.iter().map(|f| rel(root, &f.path)).collect();
    v.dedup();
    v
}

fn skipped(root: &Path, report: &agent_sandbox_scan::ScanReport) -> Vec<(String, &'static str)> {
    report
        .skipped
        .iter()
        .map(|(p, r)| (rel(root, p), r.label()))
        .collect()
}

#[test]
fn nested_directories_are_walked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut r = Rng::new(1);
    let mut deep = String::new();
    for i in 0..40 {
        deep.push_str(&format!("d{i}/"));
    }
    write(
        tmp.path(),
        &format!("{deep}deep.env"),
        format!("T={}\n", gh(&mut r)),
    );
    write(tmp.path(), "a/b/c/.env", format!("T={}\n", gh(&mut r)));
    write(tmp.path(), "a/clean.txt", "nothing here\n");
    let report = scan_dir(tmp.path(), &ScanOptions::default(), &|_| {}).expect("scan");
    let mut paths = finding_paths(tmp.path(), &report);
    paths.sort();
    assert_eq!(
        paths,
        vec!["a/b/c/.env".to_string(), format!("{deep}deep.env")]
    );
    assert_eq!(report.files_scanned, 3);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind == SecretKind::GitHubToken)
    );
}

#[test]
fn symlinks_are_never_followed() {
    let outside = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut r = Rng::new(2);
    let secret_file = write(outside.path(), "creds/.env", format!("T={}\n", gh(&mut r)));
    symlink(&secret_file, tmp.path().join("link-to-file")).expect("symlink");
    symlink(outside.path().join("creds"), tmp.path().join("link-to-dir")).expect("symlink");
    symlink(tmp.path(), tmp.path().join("loop")).expect("symlink");
    write(tmp.path(), "plain.txt", "x\n");
    let report = scan_dir(tmp.path(), &ScanOptions::default(), &|_| {}).expect("scan");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.files_scanned, 1);
    let mut s = skipped(tmp.path(), &report);
    s.sort();
    assert_eq!(
        s,
        vec![
            ("link-to-dir".to_string(), "symlink"),
            ("link-to-file".to_string(), "symlink"),
            ("loop".to_string(), "symlink"),
        ]
    );
    // The same secret is found when scanned directly, so the link was the only reason.
    let direct = scan_dir(outside.path(), &ScanOptions::default(), &|_| {}).expect("scan");
    assert_eq!(direct.findings.len(), 1);
}

#[test]
fn exempt_globs_skip_and_count() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut r = Rng::new(3);
    for p in [
        "vendor/lib/a.env",
        "vendor/b.env",
        "web/app.min.js",
        "web/deep/x.min.js",
        "docs/example.env",
        "src/real.env",
    ] {
        write(tmp.path(), p, format!("T={}\n", gh(&mut r)));
    }
    let opts = ScanOptions {
        exempt: vec![
            "vendor".into(),
            "*.min.js".into(),
            "docs/example.env".into(),
        ],
        ..ScanOptions::default()
    };
    let report = scan_dir(tmp.path(), &opts, &|_| {}).expect("scan");
    assert_eq!(finding_paths(tmp.path(), &report), vec!["src/real.env"]);
    let mut s = skipped(tmp.path(), &report);
    s.sort();
    assert_eq!(
        s,
        vec![
            ("docs/example.env".to_string(), "exempt"),
            ("vendor".to_string(), "exempt"),
            ("web/app.min.js".to_string(), "exempt"),
            ("web/deep/x.min.js".to_string(), "exempt"),
        ]
    );
    assert_eq!(report.skip_counts(), vec![("exempt", 4)]);
    assert_eq!(report.files_scanned, 1);
}

#[test]
fn binary_and_oversized_files_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut r = Rng::new(4);
    let secret = format!("T={}\n", gh(&mut r));
    // NUL in the first 8 KiB: binary.
    let mut bin = b"\x7fELF\0\0\0".to_vec();
    bin.extend_from_slice(secret.as_bytes());
    write(tmp.path(), "tool.bin", &bin);
    // NUL only after 8 KiB: text, scanned.
    let mut late = vec![b'a'; 9000];
    late.push(b'\n');
    late.extend_from_slice(secret.as_bytes());
    late.push(0);
    write(tmp.path(), "late-nul.txt", &late);
    // Over the size limit.
    let mut big = vec![b'#'; 5000];
    big.extend_from_slice(secret.as_bytes());
    write(tmp.path(), "big.env", &big);
    let opts = ScanOptions {
        max_file_size: 4096 + 9000,
        ..ScanOptions::default()
    };
    let small = ScanOptions {
        max_file_size: 4096,
        ..ScanOptions::default()
    };
    let report = scan_dir(tmp.path(), &opts, &|_| {}).expect("scan");
    assert_eq!(
        finding_paths(tmp.path(), &report),
        vec!["big.env", "late-nul.txt"]
    );
    assert_eq!(
        skipped(tmp.path(), &report),
        vec![("tool.bin".into(), "binary")]
    );
    let report = scan_dir(tmp.path(), &small, &|_| {}).expect("scan");
    assert!(report.findings.is_empty());
    let s = &report.skipped;
    assert_eq!(s.len(), 3, "{s:?}");
    assert!(s.iter().any(|(p, r)| p.ends_with("big.env")
        && *r
            == SkipReason::TooBig {
                size: big.len() as u64
            }));
    assert!(
        s.iter()
            .any(|(p, r)| p.ends_with("late-nul.txt") && matches!(r, SkipReason::TooBig { .. }))
    );
    assert_eq!(report.skip_counts(), vec![("binary", 1), ("too-big", 2)]);
}

#[test]
fn git_internals_are_skipped_but_git_config_is_scanned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut r = Rng::new(5);
    let token = gh(&mut r);
    write(tmp.path(), ".git/objects/ab/cdef", format!("{token}\n"));
    write(tmp.path(), ".git/logs/HEAD", format!("{token}\n"));
    write(
        tmp.path(),
        ".git/config",
        format!("[remote \"origin\"]\n\turl = https://x-access-token:{token}@github.com/o/r\n"),
    );
    write(tmp.path(), "sub/.git/packed-refs", format!("{token}\n"));
    let report = scan_dir(tmp.path(), &ScanOptions::default(), &|_| {}).expect("scan");
    assert_eq!(finding_paths(tmp.path(), &report), vec![".git/config"]);
    assert_eq!(report.findings[0].line, 2);
    assert_eq!(report.findings[0].kind, SecretKind::GitHubToken);
    assert_eq!(report.files_scanned, 1);
}

#[test]
fn fifos_are_skipped_without_blocking() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fifo = tmp.path().join("pipe");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    write(tmp.path(), "a.txt", "x\n");
    let report = scan_dir(tmp.path(), &ScanOptions::default(), &|_| {}).expect("scan");
    assert_eq!(
        skipped(tmp.path(), &report),
        vec![("pipe".into(), "special")]
    );
    assert_eq!(report.files_scanned, 1);
}

#[test]
fn byte_limit_stops_the_scan_and_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for i in 0..50 {
        write(tmp.path(), &format!("f{i:02}.txt"), vec![b'x'; 1000]);
    }
    let opts = ScanOptions {
        max_bytes: 10_500,
        ..ScanOptions::default()
    };
    let report = scan_dir(tmp.path(), &opts, &|_| {}).expect("scan");
    assert_eq!(report.stopped, Some(Limit::Bytes(10_500)));
    assert!(report.bytes_scanned <= 10_500, "{}", report.bytes_scanned);
    assert!(report.files_scanned < 50);
    assert!(report.files_scanned >= 1);
    // Without the limit the whole tree is covered.
    let full = scan_dir(tmp.path(), &ScanOptions::default(), &|_| {}).expect("scan");
    assert_eq!(
        (full.stopped, full.files_scanned, full.bytes_scanned),
        (None, 50, 50_000)
    );
}

#[test]
fn time_limit_stops_the_scan_and_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for i in 0..20 {
        write(tmp.path(), &format!("f{i}.txt"), "x\n");
    }
    let opts = ScanOptions {
        max_duration: Duration::ZERO,
        ..ScanOptions::default()
    };
    let report = scan_dir(tmp.path(), &opts, &|_| {}).expect("scan");
    assert_eq!(report.stopped, Some(Limit::Duration(Duration::ZERO)));
    assert!(report.files_scanned < 20);
}

#[test]
fn progress_is_reported_while_a_long_scan_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut r = Rng::new(6);
    // Grow the tree until one scan takes over a second (debug builds scan slowly, release
    // builds fast), so the 250 ms cadence must have fired several times.
    let mut files = 0;
    let mut report;
    let calls: RefCell<Vec<agent_sandbox_scan::Progress>> = RefCell::new(Vec::new());
    loop {
        for _ in 0..files.max(20) {
            let text = (0..2000)
                .map(|_| {
                    format!(
                        "let key_{} = value_{};\n",
                        r.mixed(B62, 12),
                        r.mixed(B62, 12)
                    )
                })
                .collect::<String>();
            write(tmp.path(), &format!("d{}/f{files}.rs", files % 7), text);
            files += 1;
        }
        calls.borrow_mut().clear();
        let opts = ScanOptions {
            threads: 1,
            ..ScanOptions::default()
        };
        report = scan_dir(tmp.path(), &opts, &|p| calls.borrow_mut().push(*p)).expect("scan");
        if report.elapsed >= Duration::from_millis(1200) || files > 20_000 {
            break;
        }
    }
    assert!(
        report.elapsed >= Duration::from_millis(1200),
        "tree too small"
    );
    let calls = calls.into_inner();
    let expected = (report.elapsed.as_millis() / 250) as usize;
    assert!(
        calls.len() + 1 >= expected && calls.len() <= expected + 1,
        "{} calls in {:?}",
        calls.len(),
        report.elapsed
    );
    for w in calls.windows(2) {
        assert!(w[0].bytes_scanned <= w[1].bytes_scanned);
        assert!(w[0].files_scanned <= w[1].files_scanned);
        assert!(w[0].elapsed < w[1].elapsed);
    }
    let last = calls.last().expect("at least one call");
    assert!(last.bytes_scanned <= report.bytes_scanned);
    assert!(last.bytes_scanned > 0);
}

#[test]
fn several_threads_find_the_same_as_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut r = Rng::new(7);
    for i in 0..200 {
        let body = if i % 9 == 0 {
            format!("x\nT={}\n", gh(&mut r))
        } else {
            "nothing\n".to_string()
        };
        write(tmp.path(), &format!("d{}/f{i}.txt", i % 5), body);
    }
    let run = |threads| {
        let opts = ScanOptions {
            threads,
            ..ScanOptions::default()
        };
        let rep = scan_dir(tmp.path(), &opts, &|_| {}).expect("scan");
        (rep.findings, rep.files_scanned, rep.bytes_scanned)
    };
    let one = run(1);
    assert_eq!(one.0.len(), 23);
    assert_eq!(one.1, 200);
    assert_eq!(run(4), one);
    assert_eq!(run(0), one);
}

#[test]
fn errors_name_the_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope");
    let err = scan_dir(&missing, &ScanOptions::default(), &|_| {}).expect_err("missing root");
    assert!(matches!(err, ScanError::Root { .. }));
    assert!(err.to_string().contains("nope"), "{err}");
    let file: PathBuf = write(tmp.path(), "file.txt", "x");
    let err = scan_dir(&file, &ScanOptions::default(), &|_| {}).expect_err("file root");
    assert!(matches!(err, ScanError::NotADirectory { .. }), "{err}");
    let opts = ScanOptions {
        exempt: vec!["src/[".into()],
        ..ScanOptions::default()
    };
    let err = scan_dir(tmp.path(), &opts, &|_| {}).expect_err("bad glob");
    assert!(matches!(err, ScanError::BadGlob { .. }), "{err}");
    assert!(err.to_string().contains("src/["), "{err}");
}
