//! Appending records to the log, and the checkpoint that closes it.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chain::{
    HmacSha256, MAX_LINE, SEAL_LEN, SealCheck, check_seal, genesis_hash, hex32, hex32_string,
    mac_state, seal, sha256, unhex32,
};
use crate::{AuditError, AuditKey};

/// Field names the chain writes itself; a record may not use them.
pub const RESERVED_FIELDS: [&str; 4] = ["seq", "prev", "session", "mac"];

/// The default checkpoint path for a log: the log's path with `.checkpoint` appended.
pub fn default_checkpoint_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_os_string();
    s.push(".checkpoint");
    PathBuf::from(s)
}

/// A MAC'd summary of a log's end: which session, how many records, and the hash of the last
/// line. With it the verifier detects a log cut short (truncated) or extended after the session
/// finished; without it, dropping the last records of a log cannot be told from a session that
/// wrote fewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The session id the log was created with.
    pub session_id: String,
    /// How many records the log held (the last record's seq is `records - 1`).
    pub records: u64,
    /// Hex SHA-256 of the last line (without its newline); for an empty log, the session's
    /// genesis hash.
    pub last_hash: String,
    /// `true` when written by [`AuditWriter::finish`]: no record may follow. `false` for an
    /// intermediate checkpoint written by [`AuditWriter::sync`].
    pub is_final: bool,
}

/// The checkpoint's on-disk form (before its seal).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    kind: String,
    session: String,
    records: u64,
    last_seq: Option<u64>,
    last_hash: String,
    #[serde(rename = "final")]
    is_final: bool,
    #[serde(default)]
    mac: Option<String>,
}

const CHECKPOINT_KIND: &str = "audit_checkpoint";

impl Checkpoint {
    /// The seq of the last record, `None` for an empty log.
    pub fn last_seq(&self) -> Option<u64> {
        self.records.checked_sub(1)
    }

    /// The sealed single-line form (with a trailing newline).
    pub fn to_line(&self, key: &AuditKey) -> Result<Vec<u8>, AuditError> {
        let mac = mac_state(key.as_bytes())?;
        self.to_line_with(&mac)
    }

    fn to_line_with(&self, mac: &HmacSha256) -> Result<Vec<u8>, AuditError> {
        let body = CheckpointLine {
            kind: CHECKPOINT_KIND.to_string(),
            session: self.session_id.clone(),
            records: self.records,
            last_seq: self.last_seq(),
            last_hash: self.last_hash.clone(),
            is_final: self.is_final,
            mac: None,
        };
        let mut value = serde_json::to_value(&body)?;
        if let Value::Object(m) = &mut value {
            m.remove("mac");
        }
        let mut buf = serde_json::to_vec(&value)?;
        // Drop the closing brace: the seal appends the MAC member and closes the object.
        buf.pop();
        seal(mac, &mut buf);
        buf.push(b'\n');
        Ok(buf)
    }

    /// Parses and authenticates a checkpoint's bytes.
    pub fn parse(bytes: &[u8], key: &AuditKey) -> Result<Checkpoint, AuditError> {
        let mac = mac_state(key.as_bytes())?;
        Self::parse_with(bytes, &mac).map_err(|detail| AuditError::CheckpointFormat { detail })
    }

    /// The checks of [`Checkpoint::parse`], with a plain description of what is wrong.
    fn parse_with(bytes: &[u8], mac: &HmacSha256) -> Result<Checkpoint, String> {
        let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        match check_seal(mac, line) {
            SealCheck::Valid => {}
            SealCheck::BadMac => {
                return Err(
                    "its MAC does not verify: wrong key, or the checkpoint was altered".to_string(),
                );
            }
            SealCheck::NoSeal => return Err("it does not end with a MAC".to_string()),
        }
        let parsed: CheckpointLine =
            serde_json::from_slice(line).map_err(|e| format!("malformed: {e}"))?;
        if parsed.kind != CHECKPOINT_KIND {
            return Err(format!(
                "kind is `{}`, not `{CHECKPOINT_KIND}`",
                parsed.kind
            ));
        }
        if parsed.last_seq != parsed.records.checked_sub(1) {
            return Err("last_seq and records disagree".to_string());
        }
        if unhex32(parsed.last_hash.as_bytes()).is_none() {
            return Err("last_hash is not 64 hex digits".to_string());
        }
        Ok(Checkpoint {
            session_id: parsed.session,
            records: parsed.records,
            last_hash: parsed.last_hash.to_ascii_lowercase(),
            is_final: parsed.is_final,
        })
    }

    /// Reads and authenticates a checkpoint file.
    pub fn load(path: &Path, key: &AuditKey) -> Result<Checkpoint, AuditError> {
        let bytes = crate::read_small_file(path, 64 * 1024 + MAX_LINE)?;
        let mac = mac_state(key.as_bytes())?;
        Checkpoint::parse_with(&bytes, &mac).map_err(|detail| AuditError::Checkpoint {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Writes the checkpoint atomically: a new 0600 file beside `path`, synced, then renamed
    /// over `path` (a rename replaces a symlink at `path`, never its target).
    fn store(&self, path: &Path, mac: &HmacSha256) -> Result<(), AuditError> {
        let line = self.to_line_with(mac)?;
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        // A leftover from a crashed run of this same process id is ours to replace.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| AuditError::io("creating checkpoint", &tmp, e))?;
        f.write_all(&line)
            .and_then(|()| f.sync_all())
            .map_err(|e| AuditError::io("writing checkpoint", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| AuditError::io("renaming checkpoint into", path, e))
    }
}

/// Appends MAC'd, hash-chained records to one session's audit log.
///
/// Each [`append`](AuditWriter::append) is one `write(2)` of one complete line on a file opened
/// with `O_APPEND`, so a crash of this process loses at most the record being written, and
/// leaves at worst a torn last line that the verifier reports. `write(2)` survives a process
/// crash, not a power loss: data still in the page cache is lost with the machine. Call
/// [`sync`](AuditWriter::sync) at checkpoints that must survive a power loss;
/// [`finish`](AuditWriter::finish) syncs too.
///
/// Line layout: `{"seq":N,"prev":"<hex>",["session":"<id>",]<record fields>,"mac":"<hex>"}`.
/// `prev` is the SHA-256 of the previous line (without its newline); record 0 carries the
/// session id and its `prev` is a hash of that id. `mac` is HMAC-SHA256 over every byte
/// before `,"mac":"`.
pub struct AuditWriter {
    file: File,
    path: PathBuf,
    checkpoint_path: PathBuf,
    session_id: String,
    mac: HmacSha256,
    next_seq: u64,
    prev: [u8; 32],
    buf: Vec<u8>,
    poisoned: bool,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("path", &self.path)
            .field("checkpoint_path", &self.checkpoint_path)
            .field("session_id", &self.session_id)
            .field("next_seq", &self.next_seq)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Creates a new log at `path` (mode 0600, `O_NOFOLLOW`, `O_CLOEXEC`, `O_APPEND`) whose
    /// checkpoint goes to [`default_checkpoint_path`]. Refuses an existing file or symlink.
    pub fn create(
        path: &Path,
        key: &AuditKey,
        session_id: &str,
    ) -> Result<AuditWriter, AuditError> {
        Self::create_with_checkpoint(path, &default_checkpoint_path(path), key, session_id)
    }

    /// Like [`create`](AuditWriter::create), with the checkpoint at `checkpoint_path` (for
    /// example in the supervisor's state directory, away from the log).
    pub fn create_with_checkpoint(
        path: &Path,
        checkpoint_path: &Path,
        key: &AuditKey,
        session_id: &str,
    ) -> Result<AuditWriter, AuditError> {
        // std always adds O_CLOEXEC; create_new is O_CREAT|O_EXCL, which also fails on a
        // symlink, dangling or not.
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => AuditError::Exists {
                    path: path.to_path_buf(),
                },
                _ => AuditError::io("creating audit log", path, e),
            })?;
        Ok(AuditWriter {
            file,
            path: path.to_path_buf(),
            checkpoint_path: checkpoint_path.to_path_buf(),
            session_id: session_id.to_string(),
            mac: mac_state(key.as_bytes())?,
            next_seq: 0,
            prev: genesis_hash(session_id),
            buf: Vec::with_capacity(4096),
            poisoned: false,
        })
    }

    /// Continues an existing log (after a supervisor restart). The log is verified first, with
    /// its checkpoint if one exists, and refused unless it verifies cleanly and belongs to
    /// `session_id`. A non-final checkpoint for the current end is written at once, so a crash
    /// before the next checkpoint is not mistaken for records appended after a finished session.
    pub fn open_append(
        path: &Path,
        checkpoint_path: &Path,
        key: &AuditKey,
        session_id: &str,
    ) -> Result<AuditWriter, AuditError> {
        let (file, _) = crate::open_regular(
            std::fs::OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK),
            path,
            "opening audit log for append",
        )?;
        let cp = checkpoint_path.exists().then_some(checkpoint_path);
        let report = crate::verify(path, key, cp)?;
        if let Some(first) = report.problems.first() {
            return Err(AuditError::AppendRefused {
                path: path.to_path_buf(),
                problems: report.problems.len(),
                first: first.to_string(),
            });
        }
        let (next_seq, prev) = match (&report.session_id, report.last_seq, &report.last_hash) {
            (Some(found), Some(seq), Some(hash)) => {
                if found != session_id {
                    return Err(AuditError::SessionMismatch {
                        path: path.to_path_buf(),
                        expected: session_id.to_string(),
                        found: found.clone(),
                    });
                }
                let prev = unhex32(hash.as_bytes()).ok_or_else(|| AuditError::Checkpoint {
                    path: path.to_path_buf(),
                    detail: "verifier returned a malformed hash".to_string(),
                })?;
                (seq.saturating_add(1), prev)
            }
            _ => (0, genesis_hash(session_id)),
        };
        let mut w = AuditWriter {
            file,
            path: path.to_path_buf(),
            checkpoint_path: checkpoint_path.to_path_buf(),
            session_id: session_id.to_string(),
            mac: mac_state(key.as_bytes())?,
            next_seq,
            prev,
            buf: Vec::with_capacity(4096),
            poisoned: false,
        };
        w.sync()?;
        Ok(w)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line written by the last successful [`append`](AuditWriter::append), newline
    /// included: what to forward to syslog, so the copy there carries the same MAC.
    pub fn last_line(&self) -> &[u8] {
        &self.buf
    }

    /// How many records the log holds (the next record's seq).
    pub fn records(&self) -> u64 {
        self.next_seq
    }

    /// Appends one record as one line with one `write(2)`, and returns its seq. The record's
    /// fields are written in the map's order after `seq`, `prev` (and `session` for record 0);
    /// they may not use those names or `mac`.
    pub fn append(&mut self, record: &Map<String, Value>) -> Result<u64, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        for field in RESERVED_FIELDS {
            if record.contains_key(field) {
                return Err(AuditError::ReservedField {
                    field: field.to_string(),
                });
            }
        }
        let seq = self.next_seq;
        self.buf.clear();
        self.buf.extend_from_slice(b"{\"seq\":");
        // u64 Display into the Vec: no intermediate String.
        write!(self.buf, "{seq}").map_err(|e| AuditError::io("formatting", &self.path, e))?;
        self.buf.extend_from_slice(b",\"prev\":\"");
        self.buf.extend_from_slice(&hex32(&self.prev));
        self.buf.push(b'"');
        if seq == 0 {
            self.buf.extend_from_slice(b",\"session\":");
            serde_json::to_writer(&mut self.buf, &self.session_id)?;
        }
        for (k, v) in record {
            self.buf.push(b',');
            serde_json::to_writer(&mut self.buf, k)?;
            self.buf.push(b':');
            serde_json::to_writer(&mut self.buf, v)?;
        }
        let total = self.buf.len() + SEAL_LEN;
        if total > MAX_LINE {
            self.buf.clear();
            return Err(AuditError::RecordTooLarge {
                bytes: total,
                max: MAX_LINE,
            });
        }
        seal(&self.mac, &mut self.buf);
        let hash = sha256(&self.buf);
        self.buf.push(b'\n');
        if let Err(e) = self.write_line() {
            self.buf.clear();
            return Err(e);
        }
        self.prev = hash;
        self.next_seq = seq.saturating_add(1);
        Ok(seq)
    }

    /// One `write(2)` of the whole line. A short write (disk full, a signal) is completed with
    /// further writes, which `O_APPEND` keeps contiguous; if the line cannot be completed, the
    /// writer refuses further records rather than write after a torn line.
    fn write_line(&mut self) -> Result<(), AuditError> {
        let mut written = 0usize;
        while let Some(rest) = self.buf.get(written..).filter(|r| !r.is_empty()) {
            match (&self.file).write(rest) {
                Ok(0) => {
                    self.poisoned |= written > 0;
                    return Err(AuditError::io(
                        "appending to audit log",
                        &self.path,
                        std::io::Error::from(ErrorKind::WriteZero),
                    ));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.poisoned |= written > 0;
                    return Err(AuditError::io("appending to audit log", &self.path, e));
                }
            }
        }
        Ok(())
    }

    fn checkpoint(&self, is_final: bool) -> Checkpoint {
        Checkpoint {
            session_id: self.session_id.clone(),
            records: self.next_seq,
            last_hash: hex32_string(&self.prev),
            is_final,
        }
    }

    /// Flushes the log to stable storage (`fdatasync`) and writes an intermediate checkpoint
    /// for the current end. Records appended later are still accepted by the verifier.
    pub fn sync(&mut self) -> Result<Checkpoint, AuditError> {
        self.file
            .sync_data()
            .map_err(|e| AuditError::io("syncing audit log", &self.path, e))?;
        let cp = self.checkpoint(false);
        cp.store(&self.checkpoint_path, &self.mac)?;
        Ok(cp)
    }

    /// Ends the log: syncs it and writes the final checkpoint. A verifier given that
    /// checkpoint reports any record missing from the end, or added after it.
    pub fn finish(self) -> Result<Checkpoint, AuditError> {
        self.file
            .sync_data()
            .map_err(|e| AuditError::io("syncing audit log", &self.path, e))?;
        let cp = self.checkpoint(true);
        cp.store(&self.checkpoint_path, &self.mac)?;
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn rec(kind: &str, n: i64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kind".into(), Value::from(kind));
        m.insert("n".into(), Value::from(n));
        m
    }

    #[test]
    fn writes_chained_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let key = AuditKey::from_bytes([3; 32]);
        let mut w = AuditWriter::create(&path, &key, "sess-1").unwrap();
        assert_eq!(w.append(&rec("a", 1)).unwrap(), 0);
        assert_eq!(w.append(&rec("b", 2)).unwrap(), 1);
        let cp = w.finish().unwrap();
        assert_eq!(cp.records, 2);
        assert!(cp.is_final);

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let l0: Value = serde_json::from_str(lines[0]).unwrap();
        let l1: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(l0["seq"], 0);
        assert_eq!(l0["session"], "sess-1");
        assert_eq!(l0["prev"], hex32_string(&genesis_hash("sess-1")));
        assert_eq!(l0["kind"], "a");
        assert_eq!(l1["seq"], 1);
        assert!(l1.get("session").is_none());
        assert_eq!(l1["prev"], hex32_string(&sha256(lines[0].as_bytes())));
        assert_eq!(cp.last_hash, hex32_string(&sha256(lines[1].as_bytes())));

        let loaded = Checkpoint::load(&default_checkpoint_path(&path), &key).unwrap();
        assert_eq!(loaded, cp);
        assert!(
            Checkpoint::load(
                &default_checkpoint_path(&path),
                &AuditKey::from_bytes([4; 32])
            )
            .is_err()
        );
    }

    #[test]
    fn checkpoint_parse_round_trip_and_refusals() {
        let key = AuditKey::from_bytes([6; 32]);
        let cp = Checkpoint {
            session_id: "s\"1".to_string(),
            records: 3,
            last_hash: "ab".repeat(32),
            is_final: true,
        };
        let line = cp.to_line(&key).unwrap();
        assert_eq!(Checkpoint::parse(&line, &key).unwrap(), cp);
        let wrong = Checkpoint::parse(&line, &AuditKey::from_bytes([7; 32]));
        assert!(
            matches!(wrong, Err(AuditError::CheckpointFormat { detail }) if detail.contains("MAC"))
        );
        for bad in [&b""[..], b"{}", b"\xff\xfe", &line[..line.len() / 2]] {
            assert!(matches!(
                Checkpoint::parse(bad, &key),
                Err(AuditError::CheckpointFormat { .. })
            ));
        }
    }

    #[test]
    fn refuses_existing_and_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let key = AuditKey::from_bytes([3; 32]);
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            AuditWriter::create(&path, &key, "s"),
            Err(AuditError::Exists { .. })
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(matches!(
            AuditWriter::create(&link, &key, "s"),
            Err(AuditError::Exists { .. })
        ));
        assert!(!dir.path().join("nowhere").exists());

        let mut w = AuditWriter::create(&dir.path().join("b"), &key, "s").unwrap();
        let mut bad = rec("x", 1);
        bad.insert("mac".into(), Value::from("forged"));
        assert!(matches!(
            w.append(&bad),
            Err(AuditError::ReservedField { field }) if field == "mac"
        ));
        let mut huge = rec("x", 1);
        huge.insert("blob".into(), Value::from("a".repeat(MAX_LINE)));
        assert!(matches!(
            w.append(&huge),
            Err(AuditError::RecordTooLarge { .. })
        ));
        // Refused records do not consume a seq.
        assert_eq!(w.append(&rec("x", 1)).unwrap(), 0);
    }

    #[test]
    fn open_append_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let cp_path = dir.path().join("cp");
        let key = AuditKey::from_bytes([5; 32]);
        let mut w = AuditWriter::create_with_checkpoint(&path, &cp_path, &key, "s").unwrap();
        w.append(&rec("a", 1)).unwrap();
        w.sync().unwrap();
        drop(w);
        assert!(matches!(
            AuditWriter::open_append(&path, &cp_path, &key, "other"),
            Err(AuditError::SessionMismatch { .. })
        ));
        let mut w = AuditWriter::open_append(&path, &cp_path, &key, "s").unwrap();
        assert_eq!(w.append(&rec("b", 2)).unwrap(), 1);
        w.finish().unwrap();
        let report = crate::verify(&path, &key, Some(&cp_path)).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.records, 2);

        // A damaged log is not continued.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"torn");
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            AuditWriter::open_append(&path, &cp_path, &key, "s"),
            Err(AuditError::AppendRefused { .. })
        ));
    }
}
