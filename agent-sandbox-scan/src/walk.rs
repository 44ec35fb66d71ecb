//! Walking the tree: one walker thread lists files, `threads` workers read and scan them, and
//! the calling thread reports progress and enforces the time limit.
//!
//! Files are opened with `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat` after opening, so a
//! file swapped for a symlink or a FIFO between listing and opening is neither followed nor
//! allowed to block the scan.

use crate::detect::{self, Raw};
use crate::{Finding, Limit, Progress, ScanError, ScanOptions, ScanReport, SkipReason};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes looked at for a NUL to decide that a file is binary.
const BINARY_PROBE: usize = 8 * 1024;
/// How often the progress callback runs.
const TICK: Duration = Duration::from_millis(250);

/// Scans every regular file under `root` for secrets.
///
/// Symlinks are never followed (the root itself may be one), `.git` directories are skipped
/// except for `.git/config`, which is where clone URLs with embedded tokens live. Files over
/// `max_file_size`, binary files (a NUL in the first 8 KiB), unreadable files and exempt paths
/// are skipped and listed. `.gitignore` is deliberately not honoured: ignored `.env` files are
/// exactly where secrets live. `progress` is called on the calling thread about every 250 ms.
///
/// Reaching `max_bytes` or `max_duration` ends the scan early with `stopped` set; the report
/// then covers only part of the tree.
pub fn scan_dir(
    root: &Path,
    opts: &ScanOptions,
    progress: &dyn Fn(&Progress),
) -> Result<ScanReport, ScanError> {
    let started = Instant::now();
    let meta = fs::metadata(root).map_err(|source| ScanError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let exempt = Exempt::new(&opts.exempt)?;
    let shared = Shared {
        opts,
        started,
        stop: AtomicBool::new(false),
        stopped: AtomicU8::new(STOP_NONE),
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        budget_used: AtomicU64::new(0),
    };
    let workers = opts.threads.max(1);
    let (job_tx, job_rx) = mpsc::sync_channel::<Batch>(64);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<()>();

    let outcome = thread::scope(|scope| -> Result<Vec<Part>, ScanError> {
        let mut handles = Vec::with_capacity(workers + 1);
        for i in 0..workers {
            let done = DoneGuard(done_tx.clone());
            let (shared, job_rx) = (&shared, &job_rx);
            let h = thread::Builder::new()
                .name(format!("scan-worker-{i}"))
                .spawn_scoped(scope, move || {
                    let _done = done;
                    worker(shared, job_rx)
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Dropping the sender ends the workers already started.
                    shared.stop.store(true, Ordering::Relaxed);
                    drop(job_tx);
                    return Err(ScanError::Thread(e));
                }
            }
        }
        let done = DoneGuard(done_tx.clone());
        let (shared, exempt) = (&shared, &exempt);
        let root = root.to_path_buf();
        let walker = thread::Builder::new()
            .name("scan-walker".into())
            .spawn_scoped(scope, move || {
                let _done = done;
                walk(&root, &meta, shared, exempt, job_tx)
            })
            .map_err(|e| {
                shared.stop.store(true, Ordering::Relaxed);
                ScanError::Thread(e)
            })?;
        handles.push(walker);
        drop(done_tx);

        let total = handles.len();
        let mut finished = 0;
        let mut next_tick = started + TICK;
        while finished < total {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match done_rx.recv_timeout(wait) {
                Ok(()) => finished += 1,
                Err(RecvTimeoutError::Timeout) => {
                    progress(&shared.progress());
                    next_tick += TICK;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            shared.check_time();
        }
        let mut parts = Vec::with_capacity(total);
        for h in handles {
            parts.push(h.join().map_err(|_| ScanError::WorkerPanicked)?);
        }
        Ok(parts)
    })?;

    let mut report = ScanReport {
        files_scanned: shared.files.load(Ordering::Relaxed),
        bytes_scanned: shared.bytes.load(Ordering::Relaxed),
        stopped: match shared.stopped.load(Ordering::Relaxed) {
            STOP_BYTES => Some(Limit::Bytes(opts.max_bytes)),
            STOP_TIME => Some(Limit::Duration(opts.max_duration)),
            _ => None,
        },
        ..ScanReport::default()
    };
    for p in outcome {
        report.findings.extend(p.findings);
        report.skipped.extend(p.skipped);
    }
    report
        .findings
        .sort_by(|a, b| a.path.cmp(&b.path).then(a.line.cmp(&b.line)));
    report.skipped.sort_by(|a, b| a.0.cmp(&b.0));
    report.elapsed = started.elapsed();
    Ok(report)
}

const STOP_NONE: u8 = 0;
const STOP_BYTES: u8 = 1;
const STOP_TIME: u8 = 2;

/// State shared by the walker, the workers and the coordinating thread.
struct Shared<'a> {
    opts: &'a ScanOptions,
    started: Instant,
    stop: AtomicBool,
    stopped: AtomicU8,
    files: AtomicU64,
    bytes: AtomicU64,
    /// Bytes reserved against `max_bytes` (reserved before reading, so two workers cannot
    /// both slip under the limit).
    budget_used: AtomicU64,
}

impl Shared<'_> {
    fn halt(&self, why: u8) {
        let _ = self
            .stopped
            .compare_exchange(STOP_NONE, why, Ordering::Relaxed, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sets the stop flag once `max_duration` has passed; returns whether the scan must stop.
    fn check_time(&self) -> bool {
        if self.started.elapsed() >= self.opts.max_duration {
            self.halt(STOP_TIME);
        }
        self.stopping()
    }

    fn progress(&self) -> Progress {
        Progress {
            files_scanned: self.files.load(Ordering::Relaxed),
            bytes_scanned: self.bytes.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
        }
    }
}

/// Tells the coordinating thread that a thread finished, even when it unwinds.
struct DoneGuard(mpsc::Sender<()>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Files to scan, by path as reported (`root.join(rel)`). Sent in batches so that the queue's
/// locking and wake-ups cost little next to the scanning.
type Batch = Vec<PathBuf>;

/// Files per batch.
const BATCH: usize = 32;

/// What one thread found.
#[derive(Default)]
struct Part {
    findings: Vec<Finding>,
    skipped: Vec<(PathBuf, SkipReason)>,
}

/// Compiled exempt globs: one set matched against the relative path, one against the name.
struct Exempt {
    by_path: GlobSet,
    by_name: GlobSet,
    empty: bool,
}

impl Exempt {
    fn new(globs: &[String]) -> Result<Exempt, ScanError> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for g in globs {
            let pattern = g.trim_start_matches("./").trim_end_matches('/');
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| ScanError::BadGlob {
                    glob: g.clone(),
                    source,
                })?;
            if pattern.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder, g: &str| {
            b.build().map_err(|source| ScanError::BadGlob {
                glob: g.to_string(),
                source,
            })
        };
        let all = globs.join(", ");
        Ok(Exempt {
            by_path: build(by_path, &all)?,
            by_name: build(by_name, &all)?,
            empty: globs.is_empty(),
        })
    }

    fn matches(&self, rel: &Path) -> bool {
        if self.empty {
            return false;
        }
        self.by_path.is_match(rel) || rel.file_name().is_some_and(|n| self.by_name.is_match(n))
    }
}

/// Lists the tree depth-first with an explicit stack (no recursion, so depth cannot overflow
/// the stack), sending regular files to the workers.
fn walk(
    root: &Path,
    root_meta: &fs::Metadata,
    shared: &Shared<'_>,
    exempt: &Exempt,
    jobs: SyncSender<Batch>,
) -> Part {
    let mut part = Part::default();
    let mut batch: Batch = Vec::with_capacity(BATCH);
    // Queues a path, sending the batch when full (or when `flush`); false when every worker
    // is gone.
    let push = |batch: &mut Batch, path: Option<PathBuf>, flush: bool| -> bool {
        batch.extend(path);
        if batch.len() >= BATCH || (flush && !batch.is_empty()) {
            return jobs.send(std::mem::take(batch)).is_ok();
        }
        true
    };
    let mut visited: HashSet<(u64, u64)> = HashSet::new();
    visited.insert((root_meta.dev(), root_meta.ino()));
    let mut stack: Vec<(PathBuf, PathBuf)> = vec![(root.to_path_buf(), PathBuf::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        if shared.check_time() {
            break;
        }
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                part.skipped
                    .push((dir, SkipReason::Unreadable(e.to_string())));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    part.skipped
                        .push((dir.clone(), SkipReason::Unreadable(e.to_string())));
                    continue;
                }
            };
            let name = entry.file_name();
            let path = entry.path();
            let rel = rel_dir.join(&name);
            let ft = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    part.skipped
                        .push((path, SkipReason::Unreadable(e.to_string())));
                    continue;
                }
            };
            if name == ".git" {
                // Git's object store is compressed and huge; its config holds remote URLs,
                // which can embed tokens.
                if ft.is_dir() {
                    let config = path.join("config");
                    if fs::symlink_metadata(&config).is_ok_and(|m| m.file_type().is_file())
                        && !exempt.matches(&rel.join("config"))
                        && !push(&mut batch, Some(config), false)
                    {
                        return part;
                    }
                }
                continue;
            }
            if exempt.matches(&rel) {
                part.skipped.push((path, SkipReason::Exempt));
                continue;
            }
            if ft.is_symlink() {
                part.skipped.push((path, SkipReason::Symlink));
            } else if ft.is_dir() {
                match entry.metadata() {
                    Ok(m) if !visited.insert((m.dev(), m.ino())) => {
                        part.skipped.push((path, SkipReason::AlreadyVisited));
                    }
                    Ok(_) => stack.push((path, rel)),
                    Err(e) => part
                        .skipped
                        .push((path, SkipReason::Unreadable(e.to_string()))),
                }
            } else if ft.is_file() {
                if !push(&mut batch, Some(path), false) {
                    // Every worker is gone: nothing left to do.
                    return part;
                }
            } else {
                part.skipped.push((path, SkipReason::Special));
            }
            if shared.stopping() {
                return part;
            }
        }
    }
    push(&mut batch, None, true);
    part
}

/// Takes files from the queue until it is empty and closed, or the scan is stopped.
fn worker(shared: &Shared<'_>, jobs: &Mutex<Receiver<Batch>>) -> Part {
    let mut part = Part::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut raw: Vec<Raw> = Vec::new();
    loop {
        let batch = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(batch) = batch else { break };
        for path in batch {
            if shared.check_time() {
                // Keep draining so the walker never blocks on a full queue.
                break;
            }
            scan_one(shared, path, &mut buf, &mut raw, &mut part);
        }
    }
    part
}

/// Scans one file and records its findings or the reason it was skipped.
fn scan_one(
    shared: &Shared<'_>,
    path: PathBuf,
    buf: &mut Vec<u8>,
    raw: &mut Vec<Raw>,
    part: &mut Part,
) {
    match scan_file(shared, &path, buf, raw) {
        Ok(FileOutcome::Scanned) => {
            for (line, r) in crate::with_lines(buf, raw) {
                part.findings.push(Finding {
                    path: path.clone(),
                    line,
                    kind: r.kind,
                    redacted: r.redacted.clone(),
                });
            }
        }
        Ok(FileOutcome::Skipped(reason)) => part.skipped.push((path, reason)),
        Ok(FileOutcome::OverBudget) => {}
        Err(e) => part
            .skipped
            .push((path, SkipReason::Unreadable(e.to_string()))),
    }
    // Large buffers are kept for reuse, but not beyond what one file may need.
    let keep = shared
        .opts
        .max_file_size
        .saturating_add(BINARY_PROBE as u64);
    if buf.capacity() as u64 > keep {
        *buf = Vec::new();
    }
}

enum FileOutcome {
    Scanned,
    Skipped(SkipReason),
    OverBudget,
}

/// Reads one file into `buf` and scans it into `raw`.
fn scan_file(
    shared: &Shared<'_>,
    path: &Path,
    buf: &mut Vec<u8>,
    raw: &mut Vec<Raw>,
) -> std::io::Result<FileOutcome> {
    let max = shared.opts.max_file_size;
    let mut file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(FileOutcome::Skipped(SkipReason::Special));
    }
    if meta.len() > max {
        return Ok(FileOutcome::Skipped(SkipReason::TooBig {
            size: meta.len(),
        }));
    }
    buf.clear();
    let probe = (BINARY_PROBE as u64).min(max.saturating_add(1));
    (&mut file).take(probe).read_to_end(buf)?;
    if memchr::memchr(0, buf).is_some() {
        return Ok(FileOutcome::Skipped(SkipReason::Binary));
    }
    // Reserve the file's size against the byte budget before reading the rest.
    let want = meta.len().max(buf.len() as u64);
    let before = shared.budget_used.fetch_add(want, Ordering::Relaxed);
    if before.saturating_add(want) > shared.opts.max_bytes {
        shared.halt(STOP_BYTES);
        return Ok(FileOutcome::OverBudget);
    }
    if buf.len() as u64 == probe {
        let rest = max.saturating_add(1).saturating_sub(buf.len() as u64);
        // Capped: `read_to_end` grows the buffer itself, and a size from fstat is only a hint.
        let hint = meta.len().min(64 << 20) as usize;
        buf.reserve(hint.saturating_sub(buf.len()));
        (&mut file).take(rest).read_to_end(buf)?;
    }
    if buf.len() as u64 > max {
        // The file grew after fstat.
        return Ok(FileOutcome::Skipped(SkipReason::TooBig {
            size: buf.len() as u64,
        }));
    }
    detect::find(buf, raw);
    shared.files.fetch_add(1, Ordering::Relaxed);
    shared.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
    Ok(FileOutcome::Scanned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exempt_globs_match_paths_and_names() -> Result<(), ScanError> {
        let e = Exempt::new(&["vendor/**".into(), "*.min.js".into(), "docs/".into()])?;
        assert!(e.matches(Path::new("vendor/a/b.rs")));
        assert!(e.matches(Path::new("web/app.min.js")));
        assert!(e.matches(Path::new("docs")));
        assert!(!e.matches(Path::new("src/vendor.rs")));
        assert!(!e.matches(Path::new("web/app.js")));
        let none = Exempt::new(&[])?;
        assert!(!none.matches(Path::new("anything")));
        Ok(())
    }

    #[test]
    fn bad_glob_is_an_error_naming_it() {
        let Err(e) = Exempt::new(&["a/[".into()]) else {
            panic!("an unclosed class must not parse");
        };
        assert!(e.to_string().contains("a/["), "{e}");
    }
}
