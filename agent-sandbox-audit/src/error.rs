//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Each variant names the file involved and, where
/// there is one, what to do about it. Problems *found in a log* are not errors: they are
/// [`crate::Problem`]s in a [`crate::VerifyReport`].
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A system call on a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "creating audit log".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `create` found something at the path already.
    #[error(
        "{path} already exists (or is a symlink): refusing to overwrite it; choose a new path, \
         or use AuditWriter::open_append to continue a log written with the same key"
    )]
    Exists {
        /// The path that exists.
        path: PathBuf,
    },
    /// The path is not a regular file (a FIFO, a device, a directory...).
    #[error("{path} is not a regular file: an audit log, key or checkpoint must be one")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// A record used a field name that the chain itself writes.
    #[error(
        "record field `{field}` is reserved by the audit chain (seq, prev, session, mac): \
         rename it before appending"
    )]
    ReservedField {
        /// The offending field.
        field: String,
    },
    /// A record would produce a line longer than [`crate::MAX_LINE`].
    #[error(
        "record is {bytes} bytes once serialised, over the {max}-byte line limit: bound its fields"
    )]
    RecordTooLarge {
        /// Serialised size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write left a partial line; nothing more is written after it.
    #[error(
        "audit log {path} was left with a partial line by an earlier failed write; \
         it accepts no more records (run verify, then start a new log)"
    )]
    Poisoned {
        /// The log.
        path: PathBuf,
    },
    /// A key file is not 64 hex digits.
    #[error(
        "key file {path} is malformed: {detail} (expected 64 hex digits, as written by AuditKey::save)"
    )]
    KeyFormat {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A key file can be read by group or others.
    #[error(
        "key file {path} has mode {mode:o}: readable by others; chmod 600 it (and consider the key leaked)"
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// HMAC refused the key length (cannot happen with 32-byte keys; kept so nothing unwraps).
    #[error("HMAC-SHA256 rejected the key length")]
    KeyLength,
    /// The operating system's random source failed.
    #[error("reading random bytes for a new key failed: {0}")]
    Random(String),
    /// A checkpoint file could not be parsed or its MAC does not verify.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Checkpoint bytes (not read from a file) could not be parsed or authenticated.
    #[error("checkpoint: {detail}")]
    CheckpointFormat {
        /// What is wrong.
        detail: String,
    },
    /// `open_append` found a log that does not verify cleanly.
    #[error(
        "refusing to append to {path}: it does not verify ({problems} problem(s), first: {first}); \
         inspect it with verify and start a new log"
    )]
    AppendRefused {
        /// The log.
        path: PathBuf,
        /// How many problems verify found.
        problems: usize,
        /// The first problem, rendered.
        first: String,
    },
    /// `open_append` was given a session id that differs from the log's.
    #[error("log {path} belongs to session `{found}`, not `{expected}`: open the right log")]
    SessionMismatch {
        /// The log.
        path: PathBuf,
        /// The session id passed in.
        expected: String,
        /// The session id in the log.
        found: String,
    },
    /// Serialising a record failed (non-string map keys cannot occur with `serde_json::Map`).
    #[error("serialising a record failed: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl AuditError {
    /// Shorthand for [`AuditError::Io`].
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        AuditError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
