//! Tamper-evident audit log for agent-sandbox sessions.
//!
//! The supervisor records every consequential event of a session (execs, opens, connections,
//! refusals, holds and the human decisions on them, freezes, policy trust) in an append-only
//! JSON-lines file that the agent cannot reach. This crate makes that file *tamper-evident*:
//! each line carries its `seq`, the SHA-256 of the previous line (`prev`) and an HMAC-SHA256
//! (`mac`) under a per-session key kept in the supervisor's state directory. Anyone without the
//! key who edits, inserts, deletes, reorders or truncates records is detected by [`verify`];
//! a [`Checkpoint`] written when the session ends pins the log's length and last line.
//!
//! Public API:
//! - [`AuditKey`]: `generate`, `save` (0600), `load`.
//! - [`AuditWriter`]: `create`, `create_with_checkpoint`, `open_append`, `append` (one line,
//!   one `write(2)`), `sync`, `finish` (returns the final [`Checkpoint`]).
//! - [`verify`] (a file) and [`verify_bytes`] (memory, for fuzzers) return a [`VerifyReport`]
//!   listing every [`Problem`] found with its [`ProblemKind`] and line.
//! - [`Report`]: a human summary of a log (timeline, commands, files, connections, holds and
//!   decisions, freezes, totals), [`render_text`] or JSON through `serde`.
//! - [`SyslogForwarder`]: copies records to the local syslog (RFC 5424, facility authpriv)
//!   without ever blocking the writer.
//! - [`synthetic_record`]: deterministic event-shaped records for benchmarks and tests.
//!
//! Durability: a record is one `write(2)`, so a crash of the supervisor loses at most the
//! record being written (seen by the verifier as a torn last line). A power loss can lose what
//! the page cache held since the last [`AuditWriter::sync`].

#![warn(missing_docs)]

mod chain;
mod error;
mod key;
mod report;
mod synthetic;
mod syslog;
mod verify;
mod writer;

pub use chain::MAX_LINE;
pub use error::AuditError;
pub use key::AuditKey;
pub use report::{
    CommandGroup, Connection, Counted, Freeze, HoldEntry, PolicyTrust, Refusal, Report,
    SessionInfo, TimelineEntry, Totals, render_text,
};
pub use synthetic::synthetic_record;
pub use syslog::{
    APP_NAME, DEFAULT_SYSLOG_PATH, FACILITY_AUTHPRIV, MAX_MESSAGE, SyslogForwarder, SyslogStats,
    rfc3339,
};
pub use verify::{MAX_PROBLEMS, Problem, ProblemKind, VerifyReport, verify, verify_bytes};
pub use writer::{AuditWriter, Checkpoint, RESERVED_FIELDS, default_checkpoint_path};

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` with `opts` and refuses anything but a regular file, returning the file and
/// its metadata. The caller's flags should include `O_NONBLOCK`, so that a FIFO at the path
/// cannot block the open (it is refused just after). `action` names the open in errors.
pub(crate) fn open_regular(
    opts: &std::fs::OpenOptions,
    path: &Path,
    action: &'static str,
) -> Result<(std::fs::File, std::fs::Metadata), AuditError> {
    let file = opts
        .open(path)
        .map_err(|e| AuditError::io(action, path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| AuditError::io("reading metadata of", path, e))?;
    if !meta.file_type().is_file() {
        return Err(AuditError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    Ok((file, meta))
}

/// Opens an audit log for streaming, refusing anything but a regular file.
pub(crate) fn open_log(path: &Path) -> Result<std::io::BufReader<std::fs::File>, AuditError> {
    let (file, _) = open_regular(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK),
        path,
        "opening audit log",
    )?;
    Ok(std::io::BufReader::with_capacity(1 << 20, file))
}

/// Reads a small regular file whole, refusing FIFOs and devices (which could block or never
/// end) and anything over `limit` bytes.
pub(crate) fn read_small_file(path: &Path, limit: usize) -> Result<Vec<u8>, AuditError> {
    let (f, _) = open_regular(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK),
        path,
        "opening",
    )?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    f.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| AuditError::io("reading", path, e))?;
    if bytes.len() > limit {
        return Err(AuditError::Checkpoint {
            path: path.to_path_buf(),
            detail: format!("larger than {limit} bytes"),
        });
    }
    Ok(bytes)
}
