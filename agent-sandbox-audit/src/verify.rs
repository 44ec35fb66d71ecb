//! Checking a log: every line's MAC, the seq order and the hash chain, against an optional
//! checkpoint. Streams the file with bounded memory and never stops at the first problem.

use std::borrow::Cow;
use std::io::{BufRead, ErrorKind};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chain::{
    HmacSha256, MAX_LINE, SealCheck, check_seal, genesis_hash, hex32_string, mac_state, sha256,
    unhex32,
};
use crate::{AuditError, AuditKey, Checkpoint};

/// At most this many problems are kept; the rest are counted in
/// [`VerifyReport::problems_omitted`].
pub const MAX_PROBLEMS: usize = 1000;
/// Unauthenticated lines waiting for the next good record to say whether they replaced a
/// record (edited) or were added (inserted); older ones are classified early as edited.
const MAX_PENDING: usize = 4096;
/// Seq gaps waiting to be filled by records that come later (reordered); older ones are
/// reported early as deleted.
const MAX_GAPS: usize = 4096;

/// What a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The line's MAC does not verify, and it sits where a record is missing: a record was
    /// altered.
    Edited,
    /// A line that is not part of the chain: its MAC fails and nothing is missing where it
    /// stands, or it repeats a seq already seen (a replayed copy), or it follows a final
    /// checkpoint.
    Inserted,
    /// Records are missing: a seq gap that no later line fills, or a `prev` that does not match
    /// the line before.
    Deleted,
    /// A valid record appears after a record with a higher seq.
    Reordered,
    /// The log ends before the checkpoint's last record, or the checkpoint that was expected is
    /// missing.
    Truncated,
    /// The final line has no newline or does not parse: an interrupted write or appended
    /// bytes. It is never accepted as a record.
    TornLastLine,
    /// A line before the last is not JSON (or is longer than [`crate::MAX_LINE`]).
    BadJson,
    /// The checkpoint does not verify, or does not match the log's last record.
    BadCheckpoint,
    /// Record 0 does not bind the session id, or the checkpoint names another session.
    SessionMismatch,
    /// Not one line's MAC verifies: the key is wrong (or every record was altered).
    WrongKey,
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProblemKind::Edited => "edited",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Truncated => "truncated",
            ProblemKind::TornLastLine => "torn last line",
            ProblemKind::BadJson => "bad JSON",
            ProblemKind::BadCheckpoint => "bad checkpoint",
            ProblemKind::SessionMismatch => "session mismatch",
            ProblemKind::WrongKey => "wrong key",
        })
    }
}

/// One thing found wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// 1-based line number in the log; 0 for the checkpoint itself; one past the last line for
    /// something missing at the end.
    pub line: u64,
    /// What happened.
    pub kind: ProblemKind,
    /// Details: seqs involved, what was expected.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.kind, self.detail)
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Lines whose MAC verified.
    pub records: u64,
    /// Lines read (a final line without newline included).
    pub lines: u64,
    /// The session id carried by record 0, if it verified.
    pub session_id: Option<String>,
    /// The seq of the last in-order record that verified.
    pub last_seq: Option<u64>,
    /// Hex SHA-256 of that record's line.
    pub last_hash: Option<String>,
    /// Problems found, in line order (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_PROBLEMS`].
    pub problems_omitted: u64,
}

impl VerifyReport {
    /// `true` when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.problems_omitted == 0
    }
}

/// Verifies the log at `path` with `key`. With `checkpoint`, the log must end exactly at the
/// checkpoint's last record (or, for an intermediate checkpoint, contain it); a checkpoint path
/// that does not exist is reported as truncation (the session never finished, or the
/// checkpoint was removed). Errors are only for a log that cannot be read at all.
pub fn verify(
    path: &Path,
    key: &AuditKey,
    checkpoint: Option<&Path>,
) -> Result<VerifyReport, AuditError> {
    let mut early = Vec::new();
    let cp = match checkpoint {
        None => None,
        Some(cp_path) => match Checkpoint::load(cp_path, key) {
            Ok(cp) => Some(cp),
            Err(AuditError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                early.push(Problem {
                    line: 0,
                    kind: ProblemKind::Truncated,
                    detail: format!(
                        "checkpoint {} is missing: the session did not finish, or the \
                         checkpoint was removed",
                        cp_path.display()
                    ),
                });
                None
            }
            Err(e) => {
                early.push(Problem {
                    line: 0,
                    kind: ProblemKind::BadCheckpoint,
                    detail: e.to_string(),
                });
                None
            }
        },
    };
    // O_NONBLOCK so that a FIFO at the path cannot block the open; it is refused just after.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| AuditError::io("opening audit log", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| AuditError::io("reading audit log metadata", path, e))?;
    if !meta.file_type().is_file() {
        return Err(AuditError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    verify_reader(reader, key, cp.as_ref(), early)
        .map_err(|e| AuditError::io("reading audit log", path, e))
}

/// Verifies a log held in memory. This is the entry point for fuzzers: it never panics and
/// never hangs, whatever `bytes` hold.
pub fn verify_bytes(bytes: &[u8], key: &AuditKey, checkpoint: Option<&Checkpoint>) -> VerifyReport {
    match verify_reader(bytes, key, checkpoint, Vec::new()) {
        Ok(r) => r,
        // Reading a slice cannot fail, and a key of 32 bytes is always accepted; still, report
        // rather than panic.
        Err(e) => VerifyReport {
            problems: vec![Problem {
                line: 0,
                kind: ProblemKind::BadJson,
                detail: format!("could not read the bytes: {e}"),
            }],
            ..VerifyReport::default()
        },
    }
}

fn verify_reader<R: BufRead>(
    mut reader: R,
    key: &AuditKey,
    checkpoint: Option<&Checkpoint>,
    early: Vec<Problem>,
) -> std::io::Result<VerifyReport> {
    let mac = mac_state(key.as_bytes()).map_err(std::io::Error::other)?;
    let mut v = Verifier::new(mac, checkpoint);
    for p in early {
        v.problem(p.line, p.kind, p.detail);
    }
    let mut cur = Line::default();
    let mut next = Line::default();
    let mut have_cur = read_line(&mut reader, &mut cur)?;
    while have_cur {
        let have_next = read_line(&mut reader, &mut next)?;
        v.line(&cur, !have_next);
        std::mem::swap(&mut cur, &mut next);
        have_cur = have_next;
    }
    Ok(v.finish())
}

/// One line as read: its bytes (without newline, up to [`MAX_LINE`]).
#[derive(Default)]
pub(crate) struct Line {
    pub(crate) bytes: Vec<u8>,
    pub(crate) newline: bool,
    pub(crate) oversized: bool,
}

/// Reads the next line into `line`, keeping at most [`MAX_LINE`] bytes of it. `false` at end
/// of input.
pub(crate) fn read_line<R: BufRead>(reader: &mut R, line: &mut Line) -> std::io::Result<bool> {
    line.bytes.clear();
    line.newline = false;
    line.oversized = false;
    let mut any = false;
    loop {
        let avail = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(any);
        }
        any = true;
        let (chunk, consumed, found) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (avail.get(..i).unwrap_or_default(), i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.bytes.len());
        if chunk.len() > room {
            line.oversized = true;
        } else {
            line.bytes.extend_from_slice(chunk);
        }
        reader.consume(consumed);
        if found {
            line.newline = true;
            return Ok(true);
        }
    }
}

/// The chain fields of a line. Unknown fields are skipped without being built.
#[derive(Deserialize)]
struct Header<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    prev: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session: Option<Cow<'a, str>>,
}

/// `record N` or `records A..=B`.
fn seq_range(start: u64, end: u64) -> String {
    if start == end {
        format!("record {start}")
    } else {
        format!("records {start}..={end}")
    }
}

/// A record whose MAC verified.
#[derive(Clone, Copy)]
struct Rec {
    line: u64,
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
}

/// A record that skipped ahead of the expected seq, held until the next record says whether
/// records are missing before it or it came early.
struct Tentative {
    rec: Rec,
    covered: Vec<u64>,
}

/// A line whose MAC does not verify, waiting to be classified.
struct Pending {
    line: u64,
    claimed_seq: Option<u64>,
    why: &'static str,
}

/// Seqs `start..=end` missing, first noticed at `line`.
struct Gap {
    start: u64,
    end: u64,
    line: u64,
}

struct Verifier<'c> {
    mac: HmacSha256,
    checkpoint: Option<&'c Checkpoint>,
    session: Option<String>,
    /// The chain head: the last in-order record accepted.
    anchor: Option<Rec>,
    tentative: Option<Tentative>,
    /// Records that came before records preceding them, waiting for the chain to reach them.
    early: Vec<Rec>,
    pending: Vec<Pending>,
    gaps: Vec<Gap>,
    problems: Vec<Problem>,
    omitted: u64,
    records: u64,
    lines: u64,
    unauthenticated: u64,
    /// Lines (first, last, count) dropped from `pending` before any record verified.
    unverified_prefix: Option<(u64, u64, u64)>,
}

impl<'c> Verifier<'c> {
    fn new(mac: HmacSha256, checkpoint: Option<&'c Checkpoint>) -> Self {
        Verifier {
            mac,
            checkpoint,
            session: None,
            anchor: None,
            tentative: None,
            early: Vec::new(),
            pending: Vec::new(),
            gaps: Vec::new(),
            problems: Vec::new(),
            omitted: 0,
            records: 0,
            lines: 0,
            unauthenticated: 0,
            unverified_prefix: None,
        }
    }

    fn problem(&mut self, line: u64, kind: ProblemKind, detail: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { line, kind, detail });
        } else {
            self.omitted = self.omitted.saturating_add(1);
        }
    }

    fn expected_seq(&self) -> u64 {
        self.anchor.map_or(0, |a| a.seq.saturating_add(1))
    }

    fn line(&mut self, line: &Line, is_last: bool) {
        self.lines = self.lines.saturating_add(1);
        let n = self.lines;
        if !line.newline {
            self.problem(
                n,
                ProblemKind::TornLastLine,
                format!(
                    "no trailing newline ({} bytes): an interrupted write or appended bytes; \
                     not accepted as a record",
                    line.bytes.len()
                ),
            );
            return;
        }
        if line.oversized {
            let kind = if is_last {
                ProblemKind::TornLastLine
            } else {
                ProblemKind::BadJson
            };
            self.problem(n, kind, format!("line longer than {MAX_LINE} bytes"));
            return;
        }
        let bytes = line.bytes.as_slice();
        let seal = check_seal(&self.mac, bytes);
        let header = serde_json::from_slice::<Header>(bytes).ok();
        let header = match header {
            Some(h) => h,
            None => {
                // Valid JSON without a usable header is an unauthenticated record; anything
                // else is not a record at all.
                if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
                    self.unauthenticated += 1;
                    self.push_pending(n, None, "a JSON line without a valid seq/prev header");
                } else if is_last {
                    self.problem(
                        n,
                        ProblemKind::TornLastLine,
                        "the final line is not JSON: an interrupted write or appended bytes; \
                         not accepted as a record"
                            .to_string(),
                    );
                } else {
                    self.problem(
                        n,
                        ProblemKind::BadJson,
                        "not a JSON line; skipped".to_string(),
                    );
                }
                return;
            }
        };
        let prev = header.prev.as_deref().and_then(|p| unhex32(p.as_bytes()));
        let (seq, prev) = match (seal, header.seq, prev) {
            (SealCheck::Valid, Some(seq), Some(prev)) => (seq, prev),
            (SealCheck::Valid, _, _) => {
                self.unauthenticated += 1;
                self.push_pending(n, header.seq, "its MAC verifies but it lacks seq or prev");
                return;
            }
            (SealCheck::BadMac, s, _) => {
                self.unauthenticated += 1;
                self.push_pending(n, s, "its MAC does not verify");
                return;
            }
            (SealCheck::NoSeal, s, _) => {
                self.unauthenticated += 1;
                self.push_pending(n, s, "it carries no MAC");
                return;
            }
        };
        self.records = self.records.saturating_add(1);
        let hash = sha256(bytes);
        if seq == 0 && self.session.is_none() {
            self.check_genesis(n, header.session.as_deref(), &prev);
        }
        self.check_checkpoint_record(n, seq, &hash);
        self.valid(Rec {
            line: n,
            seq,
            prev,
            hash,
        });
    }

    /// Places a record whose MAC verified in the chain.
    fn valid(&mut self, r: Rec) {
        if let Some(t) = self.tentative.take() {
            if r.seq >= self.expected_seq() && r.seq < t.rec.seq {
                // The chain goes on below the earlier jump: that record came early.
                self.problem(
                    t.rec.line,
                    ProblemKind::Reordered,
                    format!(
                        "record {} comes before {} that precede{} it",
                        t.rec.seq,
                        seq_range(self.expected_seq(), t.rec.seq - 1),
                        if self.expected_seq() == t.rec.seq - 1 {
                            "s"
                        } else {
                            ""
                        }
                    ),
                );
                self.push_early(t);
            } else {
                self.commit_jump(t);
            }
        }
        let expected = self.expected_seq();
        if r.seq < expected {
            self.backward(r);
            return;
        }
        let covered = self.resolve_pending(expected, Some(r.seq));
        if r.seq == expected {
            // Without an anchor this is record 0, whose prev was checked against the session.
            if let Some(a) = self.anchor
                && a.hash != r.prev
            {
                self.problem(
                    r.line,
                    ProblemKind::Deleted,
                    format!(
                        "record {}'s prev does not match the record before it: records were \
                         removed and the chain re-linked",
                        r.seq
                    ),
                );
            }
            self.accept(r);
        } else if u64::try_from(covered.len()).is_ok_and(|c| c == r.seq - expected) {
            // Altered lines stand for every seq in between: nothing is missing.
            self.accept(r);
        } else {
            // A jump: records are missing, or this one came early. The next record tells.
            self.tentative = Some(Tentative { rec: r, covered });
        }
    }

    fn check_genesis(&mut self, n: u64, session: Option<&str>, prev: &[u8; 32]) {
        let Some(session) = session else {
            self.problem(
                n,
                ProblemKind::SessionMismatch,
                "record 0 carries no session id".to_string(),
            );
            return;
        };
        if genesis_hash(session) != *prev {
            self.problem(
                n,
                ProblemKind::SessionMismatch,
                format!("record 0's prev does not bind its session id `{session}`"),
            );
        }
        if let Some(cp) = self.checkpoint
            && cp.session_id != session
        {
            self.problem(
                n,
                ProblemKind::SessionMismatch,
                format!(
                    "the log is session `{session}` but the checkpoint is session `{}`",
                    cp.session_id
                ),
            );
        }
        self.session = Some(session.to_string());
    }

    fn check_checkpoint_record(&mut self, n: u64, seq: u64, hash: &[u8; 32]) {
        let Some(cp) = self.checkpoint else { return };
        if cp.last_seq() == Some(seq) && hex32_string(hash) != cp.last_hash {
            self.problem(
                n,
                ProblemKind::BadCheckpoint,
                format!("record {seq} does not hash to the checkpoint's last_hash"),
            );
        }
        if cp.is_final && seq >= cp.records {
            self.problem(
                n,
                ProblemKind::Inserted,
                format!(
                    "record {seq} follows the final checkpoint, which ends at {} record(s)",
                    cp.records
                ),
            );
        }
    }

    /// A jump turned out real: the seqs it skipped (less those altered lines stand for) are
    /// missing unless they turn up later.
    fn commit_jump(&mut self, t: Tentative) {
        let expected = self.expected_seq();
        if t.rec.seq > expected {
            self.add_gaps(t.rec.line, expected, t.rec.seq - 1, &t.covered);
        }
        self.accept(t.rec);
    }

    /// Makes `r` the chain head, then takes in records that came early and now follow it.
    fn accept(&mut self, r: Rec) {
        self.anchor = Some(r);
        while let Some(a) = self.anchor {
            let next = a.seq.saturating_add(1);
            let Some(i) = self.early.iter().position(|e| e.seq == next) else {
                break;
            };
            let e = self.early.remove(i);
            if e.prev != a.hash {
                self.problem(
                    e.line,
                    ProblemKind::Deleted,
                    format!(
                        "record {}'s prev does not match record {}: the chain was re-linked",
                        e.seq, a.seq
                    ),
                );
            }
            self.anchor = Some(e);
        }
    }

    fn push_early(&mut self, t: Tentative) {
        if self.early.len() >= MAX_GAPS && !self.early.is_empty() {
            // Forget the oldest: when the chain reaches its seq it will look missing, which
            // is still reported, only less precisely.
            self.early.remove(0);
        }
        self.early.push(t.rec);
    }

    /// A valid record whose seq is lower than expected: it fills a gap (reordered) or repeats
    /// a seq (inserted copy).
    fn backward(&mut self, r: Rec) {
        let head = self.anchor.map_or(0, |a| a.seq);
        if self.take_from_gaps(r.seq) {
            self.problem(
                r.line,
                ProblemKind::Reordered,
                format!("record {} comes after record {head}", r.seq),
            );
        } else {
            self.problem(
                r.line,
                ProblemKind::Inserted,
                format!(
                    "record {} repeats a seq already seen (latest is {head}): a copy",
                    r.seq
                ),
            );
        }
    }

    fn push_pending(&mut self, line: u64, claimed_seq: Option<u64>, why: &'static str) {
        if self.pending.len() >= MAX_PENDING && !self.pending.is_empty() {
            let old = self.pending.remove(0);
            if self.records == 0 {
                // Nothing has verified yet: most likely a wrong key. Keep a count, not a
                // problem per line; `finish` reports it either way.
                let (first, _, count) = self.unverified_prefix.unwrap_or((old.line, 0, 0));
                self.unverified_prefix = Some((first, old.line, count + 1));
            } else {
                self.problem(
                    old.line,
                    ProblemKind::Edited,
                    format!(
                        "{}; too many unverified lines in a row to tell more",
                        old.why
                    ),
                );
            }
        }
        self.pending.push(Pending {
            line,
            claimed_seq,
            why,
        });
    }

    /// Classifies the unverified lines seen since the anchor, now that the next good record
    /// (seq `hi`, exclusive) or the end (`hi` = None: nothing more is known to be missing) is
    /// known. A line claiming a distinct seq in `lo..hi` stands where that record is missing:
    /// edited. Then the other lines, in order, take the missing seqs still free (an edit that
    /// changed the seq too); lines left over are insertions. Returns the seqs the edited lines
    /// stand for, sorted.
    fn resolve_pending(&mut self, lo: u64, hi: Option<u64>) -> Vec<u64> {
        let mut covered: Vec<u64> = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        let mut unfit = Vec::new();
        for p in pending {
            let fits = p.claimed_seq.filter(|&c| {
                c >= lo && hi.is_none_or(|h| c < h) && covered.binary_search(&c).is_err()
            });
            match fits {
                Some(c) => {
                    if let Err(at) = covered.binary_search(&c) {
                        covered.insert(at, c);
                    }
                    self.problem(
                        p.line,
                        ProblemKind::Edited,
                        format!("record {c} was altered: {}", p.why),
                    );
                }
                None => unfit.push(p),
            }
        }
        for p in unfit {
            let slot = hi.and_then(|h| {
                let mut c = lo;
                while covered.binary_search(&c).is_ok() {
                    c = c.saturating_add(1);
                }
                (c < h).then_some(c)
            });
            match slot {
                Some(c) => {
                    if let Err(at) = covered.binary_search(&c) {
                        covered.insert(at, c);
                    }
                    self.problem(
                        p.line,
                        ProblemKind::Edited,
                        format!("record {c} was altered, its seq included: {}", p.why),
                    );
                }
                None => {
                    let claim = p
                        .claimed_seq
                        .map_or_else(|| "no seq".to_string(), |c| format!("seq {c}"));
                    self.problem(
                        p.line,
                        ProblemKind::Inserted,
                        format!(
                            "a line not in the chain ({claim}) where no record is missing: {}",
                            p.why
                        ),
                    );
                }
            }
        }
        covered
    }

    /// Records `start..=end` minus `covered` as missing, to be reported as deleted unless they
    /// turn up later.
    fn add_gaps(&mut self, line: u64, start: u64, end: u64, covered: &[u64]) {
        let mut from = start;
        for &c in covered.iter().filter(|&&c| c >= start && c <= end) {
            if c > from {
                self.push_gap(line, from, c - 1);
            }
            from = c.saturating_add(1);
        }
        // `c <= end < u64::MAX`, so `from` never saturates past a covered seq.
        if from <= end {
            self.push_gap(line, from, end);
        }
    }

    fn push_gap(&mut self, line: u64, start: u64, end: u64) {
        if self.gaps.len() >= MAX_GAPS && !self.gaps.is_empty() {
            let old = self.gaps.remove(0);
            self.report_gap(&old);
        }
        self.gaps.push(Gap { start, end, line });
    }

    fn report_gap(&mut self, g: &Gap) {
        let what = if g.start == g.end {
            format!("record {} is missing before this line", g.start)
        } else {
            format!(
                "records {}..={} ({} records) are missing before this line",
                g.start,
                g.end,
                (g.end - g.start).saturating_add(1)
            )
        };
        self.problem(g.line, ProblemKind::Deleted, what);
    }

    /// Removes `seq` from the gaps; `true` if it was missing.
    fn take_from_gaps(&mut self, seq: u64) -> bool {
        let Some(i) = self
            .gaps
            .iter()
            .position(|g| g.start <= seq && seq <= g.end)
        else {
            return false;
        };
        let Some(g) = self.gaps.get_mut(i) else {
            return false;
        };
        if g.start == g.end {
            self.gaps.remove(i);
        } else if seq == g.start {
            g.start += 1;
        } else if seq == g.end {
            g.end -= 1;
        } else {
            let tail = Gap {
                start: seq + 1,
                end: g.end,
                line: g.line,
            };
            g.end = seq - 1;
            self.gaps.insert(i + 1, tail);
        }
        true
    }

    fn finish(mut self) -> VerifyReport {
        let wrong_key = self.records == 0 && self.unauthenticated > 0;
        if wrong_key {
            // Not one MAC verified: per-line verdicts and truncation would only be noise.
            self.pending.clear();
            self.unverified_prefix = None;
            self.problem(
                1,
                ProblemKind::WrongKey,
                format!(
                    "none of {} record line(s) verifies with this key: the key is wrong, or \
                     every record was altered",
                    self.unauthenticated
                ),
            );
        }
        if let Some((first, last, count)) = self.unverified_prefix.take() {
            self.problem(
                first,
                ProblemKind::Edited,
                format!(
                    "lines {first}..={last} ({count} lines) do not verify, before any record \
                     that does"
                ),
            );
        }
        // Nothing came below the last jump: it was real.
        if let Some(t) = self.tentative.take() {
            self.commit_jump(t);
        }
        // Early records the chain never reached: the records before them are missing.
        let mut early = std::mem::take(&mut self.early);
        early.sort_by_key(|e| e.seq);
        for e in early {
            if e.seq >= self.expected_seq() {
                self.commit_jump(Tentative {
                    rec: e,
                    covered: Vec::new(),
                });
            }
        }
        let expected = self.expected_seq();
        let end_bound = self.checkpoint.map(|cp| cp.records.max(expected));
        let covered = self.resolve_pending(expected, end_bound);
        let gaps = std::mem::take(&mut self.gaps);
        for g in &gaps {
            self.report_gap(g);
        }
        if let Some(cp) = self.checkpoint.filter(|_| !wrong_key) {
            // The highest seq the log accounts for, including records that are there but
            // altered.
            let reached = covered
                .last()
                .copied()
                .map(|c| c.saturating_add(1))
                .unwrap_or(0)
                .max(expected);
            if reached < cp.records {
                let line = self.lines.saturating_add(1);
                self.problem(
                    line,
                    ProblemKind::Truncated,
                    format!(
                        "the log ends after {reached} record(s) but the checkpoint records {}: \
                         {} missing at the end",
                        cp.records,
                        cp.records - reached
                    ),
                );
            }
        }
        let mut problems = self.problems;
        problems.sort_by_key(|p| p.line);
        VerifyReport {
            records: self.records,
            lines: self.lines,
            session_id: self.session,
            last_seq: self.anchor.map(|a| a.seq),
            last_hash: self.anchor.map(|a| hex32_string(&a.hash)),
            problems,
            problems_omitted: self.omitted,
        }
    }
}
