//! Secret scanner for agent-sandbox: finds high-confidence credentials in the agent's working
//! tree and in the environment it is about to receive.
//!
//! At the start of a session the supervisor calls [`scan_dir`] on the working tree; every file
//! holding a finding is then made unreadable to the agent (fanotify marks, elsewhere). It also
//! passes the agent's environment through [`scrub_env`]. The incident this prevents: an agent
//! found a broadly-scoped API token in an unrelated workspace file and used it to delete
//! production.
//!
//! # Public API
//! - [`scan_dir`] walks a directory tree with [`ScanOptions`] (byte, time and file-size limits,
//!   exempt globs, worker threads) and returns a [`ScanReport`]: [`Finding`]s, counts, skipped
//!   files with their [`SkipReason`], and the [`Limit`] that stopped the scan early, if any.
//!   Progress is reported through a callback about every 250 ms ([`Progress`]).
//! - [`scan_bytes`] scans one buffer and returns `(line, kind, redacted)` triples.
//! - [`env_secret`] classifies one environment variable; [`scrub_env`] removes the secret ones
//!   from an environment, keeping names the user explicitly allows.
//! - [`SecretKind`] names the detected format (`Display` for people, [`SecretKind::id`] for logs).
//!
//! # Detection
//! Only high-confidence formats are reported, because false positives make users turn the
//! scanner off: private key blocks with a real body, AWS key ids and the secret keys next to
//! them, GitHub, GitLab, Slack, Stripe live, OpenAI, Anthropic, Google, npm, PyPI, Hugging Face,
//! SendGrid, Twilio, DigitalOcean and Fly.io tokens, passwords embedded in URLs, and random-looking
//! values assigned to `*_TOKEN`, `*_SECRET`, `*_KEY`, `*PASSWORD` names. Placeholders
//! (`changeme`, `${VAR}`, `<token>`, `xxxx…`, `your-api-key-here`, `example`, `dummy`, `test`)
//! are ignored. A finding's `redacted` text shows a short public prefix and the length only.
//!
//! Railway tokens are plain UUIDs and have no recognisable form: they are caught by name
//! (`RAILWAY_TOKEN=…` in a file or the environment), as are Twilio auth tokens.
//!
//! # Walk
//! Every regular file under the root is scanned; `.gitignore` is not honoured (ignored `.env`
//! files are where secrets live). Symlinks are never followed; `.git` directories are skipped
//! except `.git/config`, where clone URLs with embedded tokens end up. Binary files (a NUL in
//! the first 8 KiB), files over the size limit, exempt paths, FIFOs and devices are skipped and
//! listed with their reason.
//!
//! # Speed
//! One Aho-Corasick pass (32 anchors, SIMD prefilter) over each file finds anchor literals;
//! validators run only around hits, and the work stays linear in the input whatever it
//! contains. Files are read into one reused buffer per worker thread. About 500-750 MB/s per
//! core on source code.

mod detect;
mod env;
mod value;
mod walk;

pub use detect::SecretKind;
pub use env::{EnvVars, env_secret, scrub_env};
pub use walk::scan_dir;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Limits and exclusions for [`scan_dir`].
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Stop after scanning this many bytes of file content (reported in [`ScanReport::stopped`]).
    pub max_bytes: u64,
    /// Stop after this much wall-clock time (reported in [`ScanReport::stopped`]).
    pub max_duration: Duration,
    /// Files larger than this are skipped and listed as [`SkipReason::TooBig`].
    pub max_file_size: u64,
    /// Globs relative to the root (`vendor/**`, `*.min.js`, `docs/secrets.md`). A glob without
    /// `/` also matches a file or directory name at any depth. `*` does not cross `/`; `**` does.
    pub exempt: Vec<String>,
    /// Worker threads reading and scanning files (0 is treated as 1).
    pub threads: usize,
}

impl Default for ScanOptions {
    /// 4 GiB, 60 s, 16 MiB per file, nothing exempt, 2 threads.
    fn default() -> Self {
        ScanOptions {
            max_bytes: 4 << 30,
            max_duration: Duration::from_secs(60),
            max_file_size: 16 << 20,
            exempt: Vec::new(),
            threads: 2,
        }
    }
}

/// One secret found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The file, as `root.join(relative path)`.
    pub path: PathBuf,
    /// 1-based line where the secret starts.
    pub line: u64,
    /// What kind of secret it is.
    pub kind: SecretKind,
    /// A short prefix and the length, never enough to use the secret.
    pub redacted: String,
}

/// Why a file or directory was not scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Larger than [`ScanOptions::max_file_size`].
    TooBig {
        /// Size in bytes when it was looked at.
        size: u64,
    },
    /// A NUL byte in the first 8 KiB.
    Binary,
    /// Opening or reading failed; the text is the operating system's error.
    Unreadable(String),
    /// Matched one of [`ScanOptions::exempt`] (a directory is listed once, not per file).
    Exempt,
    /// A symbolic link: never followed.
    Symlink,
    /// A FIFO, socket or device: reading it could block or never end.
    Special,
    /// A directory already visited through another path (a bind mount loop).
    AlreadyVisited,
}

impl SkipReason {
    /// A short label for summaries (`too-big`, `binary`, …).
    pub fn label(&self) -> &'static str {
        match self {
            SkipReason::TooBig { .. } => "too-big",
            SkipReason::Binary => "binary",
            SkipReason::Unreadable(_) => "unreadable",
            SkipReason::Exempt => "exempt",
            SkipReason::Symlink => "symlink",
            SkipReason::Special => "special",
            SkipReason::AlreadyVisited => "already-visited",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TooBig { size } => write!(f, "too big ({size} bytes)"),
            SkipReason::Binary => f.write_str("binary"),
            SkipReason::Unreadable(e) => write!(f, "unreadable: {e}"),
            SkipReason::Exempt => f.write_str("exempt"),
            SkipReason::Symlink => f.write_str("symbolic link (not followed)"),
            SkipReason::Special => f.write_str("not a regular file"),
            SkipReason::AlreadyVisited => f.write_str("directory already visited"),
        }
    }
}

/// The limit that ended a scan before it covered the whole tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`ScanOptions::max_bytes`] was reached.
    Bytes(u64),
    /// [`ScanOptions::max_duration`] passed.
    Duration(Duration),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Bytes(n) => write!(f, "stopped after the byte limit ({n} bytes)"),
            Limit::Duration(d) => write!(f, "stopped after the time limit ({d:?})"),
        }
    }
}

/// What [`scan_dir`] found and how far it got.
#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    /// Findings, sorted by path then line.
    pub findings: Vec<Finding>,
    /// Files read and scanned.
    pub files_scanned: u64,
    /// Bytes of file content scanned.
    pub bytes_scanned: u64,
    /// Files and directories not scanned, with the reason, sorted by path.
    pub skipped: Vec<(PathBuf, SkipReason)>,
    /// `Some` when a limit ended the scan early: the tree was not fully covered.
    pub stopped: Option<Limit>,
    /// Wall-clock time of the scan.
    pub elapsed: Duration,
}

impl ScanReport {
    /// How many entries were skipped for each reason, by [`SkipReason::label`], sorted by label.
    pub fn skip_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for (_, r) in &self.skipped {
            *counts.entry(r.label()).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// The distinct files that hold at least one finding, in order.
    pub fn files_with_findings(&self) -> Vec<&std::path::Path> {
        let mut v: Vec<&std::path::Path> = self.findings.iter().map(|f| f.path.as_path()).collect();
        v.dedup();
        v
    }
}

/// Progress of a running [`scan_dir`], passed to its callback about every 250 ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Files scanned so far.
    pub files_scanned: u64,
    /// Bytes scanned so far.
    pub bytes_scanned: u64,
    /// Time since the scan started.
    pub elapsed: Duration,
}

/// Why [`scan_dir`] could not run at all. Problems with single files are not errors: they are
/// listed in [`ScanReport::skipped`].
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The root could not be examined.
    #[error("cannot scan {path}: {source} (check that the directory exists and is readable)")]
    Root {
        /// The root given to [`scan_dir`].
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The root is not a directory.
    #[error("cannot scan {path}: not a directory (pass the working tree's top directory)")]
    NotADirectory {
        /// The root given to [`scan_dir`].
        path: PathBuf,
    },
    /// An exempt glob does not parse.
    #[error("exempt glob {glob:?} is invalid: {source} (fix or remove it)")]
    BadGlob {
        /// The glob as given.
        glob: String,
        /// The parser's complaint.
        #[source]
        source: globset::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start a scan thread: {0} (the system is out of threads or memory)")]
    Thread(#[source] std::io::Error),
    /// A worker thread panicked; the scan result would be incomplete, so none is returned.
    #[error("a scan thread failed unexpectedly; the scan is incomplete (please report this bug)")]
    WorkerPanicked,
}

/// Scans one buffer. Returns `(1-based line, kind, redacted)` for each secret, in order.
pub fn scan_bytes(data: &[u8]) -> Vec<(u64, SecretKind, String)> {
    let mut raw = Vec::new();
    detect::find(data, &mut raw);
    with_lines(data, &raw)
        .map(|(line, r)| (line, r.kind, r.redacted.clone()))
        .collect()
}

/// Pairs sorted detections with their line numbers, counting newlines only once.
pub(crate) fn with_lines<'a>(
    data: &'a [u8],
    raw: &'a [detect::Raw],
) -> impl Iterator<Item = (u64, &'a detect::Raw)> + 'a {
    let mut pos = 0usize;
    let mut line = 1u64;
    raw.iter().map(move |r| {
        if r.start >= pos {
            let gap = data.get(pos..r.start).unwrap_or(&[]);
            line += memchr::memchr_iter(b'\n', gap).count() as u64;
            pos = r.start;
        }
        (line, r)
    })
}
