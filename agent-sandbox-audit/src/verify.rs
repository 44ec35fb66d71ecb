//! Checking a log: every line's MAC, the seq order and the hash chain, against an optional
//! checkpoint. Streams the file with bounded memory and never stops at the first problem.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, ErrorKind};
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
/// Records that came ahead of their place, waiting for the chain to reach them (about 100
/// bytes each).
const MAX_EARLY: usize = 65_536;

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
    let reader = crate::open_log(path)?;
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
        let (chunk, consumed, found) = match memchr::memchr(b'\n', avail) {
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

/// Reads the writer's fixed prefix `{"seq":N,"prev":"<64 hex>",`. Used only on lines whose MAC
/// verified: their bytes are the writer's own, so a full JSON parse would learn nothing more
/// (and costs more than the MAC and the hash together). `None` sends the line to the full
/// parse.
fn fast_header(b: &[u8]) -> Option<(u64, [u8; 32])> {
    let rest = b.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let (num, rest) = rest.split_at_checked(digits)?;
    if num.is_empty() || num.len() > 20 || (num.len() > 1 && num.first() == Some(&b'0')) {
        return None;
    }
    let seq = std::str::from_utf8(num).ok()?.parse::<u64>().ok()?;
    let rest = rest.strip_prefix(b",\"prev\":\"")?;
    let (hex, rest) = rest.split_at_checked(64)?;
    if !rest.starts_with(b"\",") {
        return None;
    }
    Some((seq, unhex32(hex)?))
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
#[derive(Clone, Copy)]
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
    early: BTreeMap<u64, Rec>,
    pending: VecDeque<Pending>,
    /// Missing seqs by the start of their range.
    gaps: BTreeMap<u64, Gap>,
    problems: Vec<Problem>,
    omitted: u64,
    records: u64,
    lines: u64,
    unauthenticated: u64,
    /// Early records forgotten because there were too many.
    early_dropped: u64,
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
            early: BTreeMap::new(),
            pending: VecDeque::new(),
            gaps: BTreeMap::new(),
            problems: Vec::new(),
            omitted: 0,
            records: 0,
            lines: 0,
            unauthenticated: 0,
            unverified_prefix: None,
            early_dropped: 0,
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
        if seal == SealCheck::Valid
            && let Some((seq, prev)) = fast_header(bytes).filter(|&(seq, _)| seq != 0)
        {
            self.authentic(n, bytes, seq, prev, None);
            return;
        }
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
        self.authentic(n, bytes, seq, prev, header.session.as_deref());
    }

    /// A line whose MAC verified, with its chain fields read.
    fn authentic(&mut self, n: u64, bytes: &[u8], seq: u64, prev: [u8; 32], session: Option<&str>) {
        self.records = self.records.saturating_add(1);
        let hash = sha256(bytes);
        if seq == 0 && self.session.is_none() {
            self.check_genesis(n, session, &prev);
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
            let Some(e) = self.early.remove(&next) else {
                break;
            };
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
        self.early.insert(t.rec.seq, t.rec);
        if self.early.len() > MAX_EARLY {
            // Forget the furthest ahead: it will then be reported missing, which is still a
            // report, only a less precise one; `finish` says so.
            self.early.pop_last();
            self.early_dropped += 1;
        }
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
            let Some(old) = self.pending.pop_front() else {
                return;
            };
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
        self.pending.push_back(Pending {
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
        let mut covered: BTreeSet<u64> = BTreeSet::new();
        let pending = std::mem::take(&mut self.pending);
        let mut unfit = Vec::new();
        for p in pending {
            let fits = p
                .claimed_seq
                .filter(|&c| c >= lo && hi.is_none_or(|h| c < h) && !covered.contains(&c));
            match fits {
                Some(c) => {
                    covered.insert(c);
                    self.problem(
                        p.line,
                        ProblemKind::Edited,
                        format!("record {c} was altered: {}", p.why),
                    );
                }
                None => unfit.push(p),
            }
        }
        // The lowest free seq only moves up as seqs are taken, so one cursor serves all lines.
        let mut free = lo;
        for p in unfit {
            let slot = hi.and_then(|h| {
                while free < h && covered.contains(&free) {
                    free += 1;
                }
                (free < h).then_some(free)
            });
            match slot {
                Some(c) => {
                    covered.insert(c);
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
        covered.into_iter().collect()
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
        self.gaps.insert(start, Gap { start, end, line });
        if self.gaps.len() > MAX_GAPS
            && let Some((_, old)) = self.gaps.pop_first()
        {
            // The oldest gap is the least likely to be filled by a late record.
            self.report_gap(&old);
        }
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
        let Some(start) = self
            .gaps
            .range(..=seq)
            .next_back()
            .filter(|(_, g)| seq <= g.end)
            .map(|(&start, _)| start)
        else {
            return false;
        };
        let Some(g) = self.gaps.remove(&start) else {
            return false;
        };
        // Put back what is left on either side of `seq`.
        if g.start < seq {
            self.gaps.insert(g.start, Gap { end: seq - 1, ..g });
        }
        if seq < g.end {
            self.gaps.insert(
                seq + 1,
                Gap {
                    start: seq + 1,
                    ..g
                },
            );
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
        let early = std::mem::take(&mut self.early);
        for e in early.into_values() {
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
        for g in gaps.values() {
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
        if self.early_dropped > 0 {
            let line = self.lines.saturating_add(1);
            self.problem(
                line,
                ProblemKind::Reordered,
                format!(
                    "{} records were too far out of place to track (over {MAX_EARLY}); some \
                     records reported missing may only be out of place",
                    self.early_dropped
                ),
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_header_reads_only_the_canonical_prefix() {
        let hex = "ab".repeat(32);
        let line = format!("{{\"seq\":42,\"prev\":\"{hex}\",\"mac\":\"x\"}}");
        let (seq, prev) = fast_header(line.as_bytes()).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(prev, [0xab; 32]);
        for bad in [
            format!("{{\"seq\":042,\"prev\":\"{hex}\","),
            format!("{{\"seq\":,\"prev\":\"{hex}\","),
            format!("{{\"seq\":99999999999999999999,\"prev\":\"{hex}\","),
            format!("{{\"seq\":1,\"prev\":\"{}\",", "zz".repeat(32)),
            format!("{{\"seq\":1,\"prev\":\"{hex}\"}}"),
            format!("{{ \"seq\":1,\"prev\":\"{hex}\","),
            "{\"seq\":1".to_string(),
        ] {
            assert_eq!(fast_header(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn bounded_problems_on_wrong_key() {
        let key = AuditKey::from_bytes([1; 32]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = crate::AuditWriter::create(&path, &key, "s").unwrap();
        for i in 0..6000 {
            w.append(&crate::synthetic_record(i)).unwrap();
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let r = verify_bytes(&bytes, &AuditKey::from_bytes([2; 32]), None);
        let kinds: Vec<ProblemKind> = r.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [ProblemKind::WrongKey]);
        assert_eq!(r.records, 0);
        assert!(verify_bytes(&bytes, &key, None).is_clean());
    }

    #[test]
    fn problems_are_capped() {
        let key = AuditKey::from_bytes([1; 32]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = crate::AuditWriter::create(&path, &key, "s").unwrap();
        for i in 0..3000 {
            w.append(&crate::synthetic_record(i)).unwrap();
        }
        drop(w);
        // Every other line replaced by garbage: 1500 bad JSON lines.
        let bytes = std::fs::read(&path).unwrap();
        let mut out = Vec::new();
        for (i, l) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            out.extend_from_slice(if i % 2 == 1 { b"garbage\n" } else { l });
        }
        let r = verify_bytes(&out, &key, None);
        assert_eq!(r.problems.len(), MAX_PROBLEMS);
        assert!(r.problems_omitted > 0);
        assert_eq!(r.records, 1500);
        assert!(!r.is_clean());
    }
}
