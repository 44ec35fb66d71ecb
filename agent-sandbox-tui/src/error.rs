//! The errors of the client and the terminal UI.

use std::io;
use std::path::{Path, PathBuf};

use crate::proto::ProtoError;

/// What went wrong talking to the supervisor or driving the terminal.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// Nothing listens on the socket (ENOENT, ECONNREFUSED).
    #[error(
        "no session is running at {path} ({source}): start one with `sudo agent-sandbox run`, or \
         check the socket path of the running session"
    )]
    NoSession {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// The socket is root-only (EACCES, EPERM).
    #[error(
        "permission denied connecting to {path}: the approval socket is root-only, run as root \
         (sudo agent-sandbox ...)"
    )]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// Another connect failure.
    #[error("cannot connect to the approval socket {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("approval socket {path}: {what}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What the client was doing.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A line was not a valid protocol message.
    #[error("approval socket {path}, line {line}: {source} (line starts: {excerpt})")]
    Malformed {
        /// The socket path.
        path: PathBuf,
        /// Line number on this connection (1-based).
        line: u64,
        /// The start of the line, with control characters escaped.
        excerpt: String,
        /// The parse error.
        source: ProtoError,
    },
    /// A line exceeded [`crate::client::MAX_LINE`].
    #[error(
        "approval socket {path}, line {line}: longer than {max} bytes; is this the right socket?"
    )]
    LineTooLong {
        /// The socket path.
        path: PathBuf,
        /// Line number on this connection (1-based).
        line: u64,
        /// The limit.
        max: usize,
    },
    /// The supervisor closed the connection before answering.
    #[error(
        "approval socket {path}: the supervisor closed the connection without answering (the session may have ended)"
    )]
    Closed {
        /// The socket path.
        path: PathBuf,
    },
    /// The supervisor did not answer in time.
    #[error("approval socket {path}: no answer within {secs} s; is the supervisor stuck?")]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// The wait, in seconds.
        secs: u64,
    },
    /// The supervisor answered a subscription with an error.
    #[error("approval socket {path}: the supervisor refused: {message}")]
    Refused {
        /// The socket path.
        path: PathBuf,
        /// Its message.
        message: String,
    },
    /// A valid message of the wrong kind.
    #[error("approval socket {path}: unexpected message: {what}")]
    Unexpected {
        /// The socket path.
        path: PathBuf,
        /// What arrived.
        what: String,
    },
    /// The UI was asked to draw on something that is not a terminal.
    #[error(
        "the approval UI needs a terminal on stdout, and stdout is not one: run it in an \
         interactive terminal, or answer from scripts with `agent-sandbox decide ID allow|deny|kill`"
    )]
    NotATerminal,
    /// Setting up, drawing on or reading the terminal failed.
    #[error("terminal: {what}: {message}")]
    Terminal {
        /// What the UI was doing.
        what: &'static str,
        /// The error.
        message: String,
    },
}

impl TuiError {
    /// Classifies a connect error on `path`.
    pub fn connect(path: &Path, source: io::Error) -> TuiError {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                TuiError::NoSession { path, source }
            }
            io::ErrorKind::PermissionDenied => TuiError::PermissionDenied { path, source },
            _ => TuiError::Connect { path, source },
        }
    }

    /// An I/O error on `path` while doing `what`.
    pub fn io(path: &Path, what: &'static str, source: io::Error) -> TuiError {
        TuiError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }

    /// A terminal error while doing `what`.
    pub fn terminal(what: &'static str, err: impl std::fmt::Display) -> TuiError {
        TuiError::Terminal {
            what,
            message: err.to_string(),
        }
    }
}
