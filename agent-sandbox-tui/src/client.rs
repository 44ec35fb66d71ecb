//! A blocking client of the approval socket: one request, one reply (`list`, `decide`), or a
//! subscription whose [`Update`]s arrive on a channel fed by a reader thread.
//!
//! Lines are read without a fixed buffer (events carry whole argvs) but with a generous cap
//! ([`MAX_LINE`]) so a broken peer cannot make the client grow without bound.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::Duration;

use crate::error::TuiError;
use crate::proto::{self, Approver, Decision, Reply, Request, Update};

/// The longest protocol line accepted, in bytes.
pub const MAX_LINE: usize = 16 << 20;

/// How long `list` and `decide` wait for the supervisor's answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a session's approval socket.
///
/// After a [`TuiError::Timeout`] a late answer may still arrive on the connection: drop the
/// client rather than sending another request on it.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    writer: UnixStream,
    reader: LineReader,
}

impl Client {
    /// Connects to the approval socket at `path`.
    ///
    /// A missing socket or a refused connection means no session is running there; a
    /// permission error means the caller is not root.
    pub fn connect(path: &Path) -> Result<Client, TuiError> {
        let stream = UnixStream::connect(path).map_err(|source| TuiError::connect(path, source))?;
        let reader = stream
            .try_clone()
            .map_err(|source| TuiError::io(path, "cloning the socket handle", source))?;
        Ok(Client {
            path: path.to_path_buf(),
            writer: stream,
            reader: LineReader::new(reader),
        })
    }

    /// The socket this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks for the pending held actions and the session's totals (a [`Reply::Held`] on
    /// success).
    pub fn list(&mut self) -> Result<Reply, TuiError> {
        self.request(&Request::List)
    }

    /// Decides held action `id` (0 with `freeze`/`thaw`: the tree without an action).
    /// Returns the supervisor's [`Reply::Done`] or [`Reply::Error`].
    pub fn decide(&mut self, id: u64, decision: Decision, by: Approver) -> Result<Reply, TuiError> {
        self.request(&Request::Decide { id, decision, by })
    }

    fn request(&mut self, req: &Request) -> Result<Reply, TuiError> {
        let path = self.path.clone();
        self.writer
            .set_write_timeout(Some(REPLY_TIMEOUT))
            .and_then(|()| self.reader.stream().set_read_timeout(Some(REPLY_TIMEOUT)))
            .map_err(|source| TuiError::io(&path, "setting socket timeouts", source))?;
        write_line(&mut self.writer, &path, req)?;
        let line = match self.reader.next_line(&path) {
            Ok(Some(line)) => line,
            Ok(None) => return Err(TuiError::Closed { path }),
            Err(TuiError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(TuiError::Timeout {
                    path,
                    secs: REPLY_TIMEOUT.as_secs(),
                });
            }
            Err(e) => return Err(e),
        };
        proto::decode::<Reply>(&line).map_err(|source| self.reader.malformed(&path, &line, source))
    }

    /// Turns the connection into a subscription. The first line (the snapshot) is read here, so
    /// a supervisor that refuses the subscription is an error now rather than later.
    pub fn subscribe(mut self) -> Result<Subscription, TuiError> {
        let path = self.path.clone();
        self.writer
            .set_write_timeout(Some(REPLY_TIMEOUT))
            .and_then(|()| self.reader.stream().set_read_timeout(Some(REPLY_TIMEOUT)))
            .map_err(|source| TuiError::io(&path, "setting socket timeouts", source))?;
        write_line(&mut self.writer, &path, &Request::Subscribe)?;
        let first = match self.reader.next_line(&path)? {
            Some(line) => line,
            None => return Err(TuiError::Closed { path }),
        };
        let first = match proto::decode::<Update>(&first) {
            Ok(u) => u,
            Err(source) => {
                // A refusal comes as a plain reply rather than an update.
                return Err(match proto::decode::<Reply>(&first) {
                    Ok(Reply::Error { message }) => TuiError::Refused { path, message },
                    Ok(other) => TuiError::Unexpected {
                        path,
                        what: format!("{other:?} instead of a snapshot"),
                    },
                    Err(_) => self.reader.malformed(&path, &first, source),
                });
            }
        };
        // The stream may be quiet for a long time: no read timeout from here on.
        self.reader
            .stream()
            .set_read_timeout(None)
            .map_err(|source| TuiError::io(&path, "clearing the read timeout", source))?;
        let (tx, rx) = mpsc::channel();
        // The receiver exists, so this send cannot fail.
        let _ = tx.send(Ok(first));
        let mut reader = self.reader;
        let thread_path = path.clone();
        thread::Builder::new()
            .name("approval-stream".into())
            .spawn(move || {
                loop {
                    let item = match reader.next_line(&thread_path) {
                        Ok(Some(line)) => proto::decode::<Update>(&line)
                            .map_err(|source| reader.malformed(&thread_path, &line, source)),
                        // EOF: dropping the sender tells the receiver the stream is over.
                        Ok(None) => return,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let stop = matches!(item, Ok(Update::Ended { .. }));
                    if tx.send(item).is_err() || stop {
                        return;
                    }
                }
            })
            .map_err(|source| TuiError::io(&path, "starting the reader thread", source))?;
        Ok(Subscription {
            path,
            writer: self.writer,
            updates: rx,
        })
    }
}

/// A live subscription: updates in order on a channel, and decisions sent on the same
/// connection (answered by [`Update::Answer`]).
#[derive(Debug)]
pub struct Subscription {
    path: PathBuf,
    writer: UnixStream,
    updates: Receiver<Result<Update, TuiError>>,
}

/// What waiting on a [`Subscription`] gave.
#[derive(Debug)]
// Each value is moved once, straight out of the channel: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// An update (or a line that could not be read or parsed).
    Item(Result<Update, TuiError>),
    /// Nothing arrived in time.
    Idle,
    /// The stream is over (EOF, an I/O error already reported, or after [`Update::Ended`]).
    Closed,
}

impl Subscription {
    /// The channel of updates, in the order the supervisor sent them. It disconnects when the
    /// stream ends.
    pub fn updates(&self) -> &Receiver<Result<Update, TuiError>> {
        &self.updates
    }

    /// The next update without waiting.
    pub fn try_next(&self) -> Next {
        match self.updates.try_recv() {
            Ok(item) => Next::Item(item),
            Err(TryRecvError::Empty) => Next::Idle,
            Err(TryRecvError::Disconnected) => Next::Closed,
        }
    }

    /// The next update, waiting at most `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Next {
        match self.updates.recv_timeout(timeout) {
            Ok(item) => Next::Item(item),
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// Sends a request on the subscription (in practice a [`Request::Decide`]).
    pub fn send(&mut self, req: &Request) -> Result<(), TuiError> {
        write_line(&mut self.writer, &self.path, req)
    }

    /// Sends a decision; the answer comes as an [`Update::Answer`].
    pub fn decide(&mut self, id: u64, decision: Decision, by: Approver) -> Result<(), TuiError> {
        self.send(&Request::Decide { id, decision, by })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Wakes the reader thread (its read returns EOF) so it does not outlive us.
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}

fn write_line(w: &mut UnixStream, path: &Path, req: &Request) -> Result<(), TuiError> {
    w.write_all(&proto::encode(req))
        .and_then(|()| w.flush())
        .map_err(|source| TuiError::io(path, "sending a request", source))
}

/// Reads `\n`-terminated lines of any length up to [`MAX_LINE`], counting them for error
/// messages.
#[derive(Debug)]
struct LineReader {
    inner: BufReader<UnixStream>,
    line_no: u64,
}

impl LineReader {
    fn new(stream: UnixStream) -> LineReader {
        LineReader {
            inner: BufReader::with_capacity(64 * 1024, stream),
            line_no: 0,
        }
    }

    fn stream(&self) -> &UnixStream {
        self.inner.get_ref()
    }

    /// The next non-empty line, without its `\n`; `None` at EOF. A final line without `\n`
    /// still counts.
    fn next_line(&mut self, path: &Path) -> Result<Option<Vec<u8>>, TuiError> {
        loop {
            let mut line = Vec::new();
            let n = read_bounded_line(&mut self.inner, &mut line, MAX_LINE).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    TuiError::LineTooLong {
                        path: path.to_path_buf(),
                        line: self.line_no + 1,
                        max: MAX_LINE,
                    }
                } else {
                    TuiError::io(path, "reading from the supervisor", e)
                }
            })?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if !line.trim_ascii().is_empty() {
                return Ok(Some(line));
            }
        }
    }

    fn malformed(&self, path: &Path, line: &[u8], source: proto::ProtoError) -> TuiError {
        let text = String::from_utf8_lossy(line);
        let mut excerpt: String = text.chars().take(80).collect();
        if text.chars().nth(80).is_some() {
            excerpt.push('…');
        }
        TuiError::Malformed {
            path: path.to_path_buf(),
            line: self.line_no,
            excerpt: crate::tui::sanitize(&excerpt),
            source,
        }
    }
}

/// Appends bytes up to and including the next `\n` to `buf`; returns how many were read (0 at
/// EOF). Past `max` bytes it fails with `InvalidData` (the rest of that line is not consumed).
fn read_bounded_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(total);
        }
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if total + used > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "protocol line too long",
            ));
        }
        buf.extend_from_slice(available.get(..used).unwrap_or(available));
        r.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Held, HeldKind, Summary};
    use crate::testutil::{FakeSupervisor, held};
    use std::io::Cursor;

    #[test]
    fn bounded_lines_split_on_newline_and_refuse_overlong_ones() {
        let mut r = Cursor::new(b"ab\ncd\nlast".to_vec());
        let mut buf = Vec::new();
        assert_eq!(read_bounded_line(&mut r, &mut buf, 10).unwrap(), 3);
        assert_eq!(buf, b"ab\n");
        buf.clear();
        assert_eq!(read_bounded_line(&mut r, &mut buf, 10).unwrap(), 3);
        assert_eq!(buf, b"cd\n");
        buf.clear();
        assert_eq!(read_bounded_line(&mut r, &mut buf, 10).unwrap(), 4);
        assert_eq!(buf, b"last");
        buf.clear();
        assert_eq!(read_bounded_line(&mut r, &mut buf, 10).unwrap(), 0);

        let mut r = BufReader::with_capacity(4, Cursor::new(vec![b'x'; 100]));
        let err = read_bounded_line(&mut r, &mut buf, 50).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn connect_errors_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("approval.sock");
        let err = Client::connect(&missing).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TuiError::NoSession { .. }), "{err:?}");
        assert!(msg.contains("no session is running"), "{msg}");
        assert!(msg.contains(&missing.display().to_string()), "{msg}");

        // A socket file nobody listens on: ECONNREFUSED.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let err = Client::connect(&stale).unwrap_err();
        assert!(matches!(err, TuiError::NoSession { .. }), "{err:?}");

        // Root (which runs these tests) passes permission checks, so EACCES is made up here.
        let denied = TuiError::connect(&missing, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(denied.to_string().contains("run as root"), "{denied}");
        assert!(denied.to_string().contains("approval.sock"), "{denied}");
    }

    #[test]
    fn list_and_decide_round_trip() {
        let h = held(4, "rm -rf build");
        let reply_held = Reply::Held {
            session: "s1".into(),
            held: vec![h.clone()],
            summary: Summary {
                held: 1,
                ..Summary::default()
            },
        };
        let server = FakeSupervisor::start(move |req, out| {
            let reply = match req {
                Request::List => reply_held.clone(),
                Request::Decide {
                    id: 4,
                    decision,
                    by: Approver::Decide,
                } => Reply::Done {
                    message: format!("#4: {}", decision.as_str()),
                },
                other => Reply::Error {
                    message: format!("unexpected {other:?}"),
                },
            };
            out.send_line(&reply);
        });
        let mut c = Client::connect(server.path()).unwrap();
        match c.list().unwrap() {
            Reply::Held { session, held, .. } => {
                assert_eq!(session, "s1");
                assert_eq!(held, vec![h]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            c.decide(4, Decision::Deny, Approver::Decide).unwrap(),
            Reply::Done {
                message: "#4: deny".into()
            }
        );
        // The server checked the approver: a wrong one is answered with an error.
        assert!(matches!(
            c.decide(4, Decision::Deny, Approver::Tui).unwrap(),
            Reply::Error { .. }
        ));
        assert_eq!(
            server.requests(),
            vec![
                Request::List,
                Request::Decide {
                    id: 4,
                    decision: Decision::Deny,
                    by: Approver::Decide
                },
                Request::Decide {
                    id: 4,
                    decision: Decision::Deny,
                    by: Approver::Tui
                }
            ]
        );
    }

    #[test]
    fn subscription_delivers_updates_in_order_and_sends_decisions() {
        let big = held(9, &"x".repeat(300_000));
        let mut updates = vec![Update::Snapshot {
            session: "s".into(),
            command: vec!["claude".into()],
            held: vec![],
            summary: Summary::default(),
        }];
        for i in 0..200u64 {
            updates.push(Update::Event {
                event: serde_json::json!({"kind": "exec", "pid": i, "fields": {"argv": ["ls"]}}),
            });
        }
        updates.push(Update::Held { held: big.clone() });
        let expected = updates.clone();
        let server = FakeSupervisor::start(move |req, out| {
            if req == Request::Subscribe {
                for u in &updates {
                    out.send_line(u);
                }
            } else {
                out.send_line(&Update::Answer {
                    reply: Reply::Done {
                        message: "ok".into(),
                    },
                });
                out.send_line(&Update::Ended { exit_code: 3 });
            }
        });
        let mut sub = Client::connect(server.path()).unwrap().subscribe().unwrap();
        let mut got = Vec::new();
        while got.len() < expected.len() {
            match sub.next_timeout(Duration::from_secs(5)) {
                Next::Item(u) => got.push(u.unwrap()),
                other => panic!("stream stopped early: {other:?}"),
            }
        }
        assert_eq!(got, expected);
        match &got[201] {
            Update::Held {
                held: Held { kind, command, .. },
            } => {
                assert_eq!(*kind, HeldKind::Exec);
                assert_eq!(command.last().map(String::len), Some(300_000));
            }
            other => panic!("{other:?}"),
        }
        sub.decide(9, Decision::Allow, Approver::Tui).unwrap();
        assert!(matches!(
            sub.next_timeout(Duration::from_secs(5)),
            Next::Item(Ok(Update::Answer { .. }))
        ));
        assert!(matches!(
            sub.next_timeout(Duration::from_secs(5)),
            Next::Item(Ok(Update::Ended { exit_code: 3 }))
        ));
        assert!(matches!(
            sub.next_timeout(Duration::from_secs(5)),
            Next::Closed
        ));
        assert_eq!(
            server.requests(),
            vec![
                Request::Subscribe,
                Request::Decide {
                    id: 9,
                    decision: Decision::Allow,
                    by: Approver::Tui
                }
            ]
        );
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        let server = FakeSupervisor::start(|req, out| match req {
            Request::List => out.send_raw(b"{\"reply\":\"held\",\"session\":\n"),
            Request::Subscribe => {
                out.send_line(&Update::Summary {
                    summary: Summary::default(),
                });
                out.send_raw(b"not json at all \x1b[2J\n");
                out.send_line(&Update::Ended { exit_code: 0 });
            }
            Request::Decide { .. } => out.send_raw(b"{\"update\":\"ended\",\"exit_code\":0}\n"),
        });
        let mut c = Client::connect(server.path()).unwrap();
        let err = c.list().unwrap_err();
        assert!(
            matches!(err, TuiError::Malformed { line: 1, .. }),
            "{err:?}"
        );
        // A line of the wrong message type is malformed too.
        let err = c.decide(1, Decision::Deny, Approver::Decide).unwrap_err();
        assert!(
            matches!(err, TuiError::Malformed { line: 2, .. }),
            "{err:?}"
        );

        let sub = Client::connect(server.path()).unwrap().subscribe().unwrap();
        assert!(matches!(
            sub.next_timeout(Duration::from_secs(5)),
            Next::Item(Ok(Update::Summary { .. }))
        ));
        match sub.next_timeout(Duration::from_secs(5)) {
            Next::Item(Err(e @ TuiError::Malformed { line: 2, .. })) => {
                let msg = e.to_string();
                assert!(msg.contains("not json at all"), "{msg}");
                // The escape sequence is shown, not sent to the terminal.
                assert!(!msg.contains('\x1b'), "{msg:?}");
            }
            other => panic!("{other:?}"),
        }
        // The stream goes on after a bad line.
        assert!(matches!(
            sub.next_timeout(Duration::from_secs(5)),
            Next::Item(Ok(Update::Ended { .. }))
        ));
    }

    #[test]
    fn refused_subscription_and_early_close_are_errors() {
        let server = FakeSupervisor::start(|req, out| match req {
            Request::Subscribe => out.send_line(&Reply::Error {
                message: "peer is inside the sandbox".into(),
            }),
            _ => out.close(),
        });
        let err = Client::connect(server.path())
            .unwrap()
            .subscribe()
            .unwrap_err();
        assert!(
            err.to_string().contains("peer is inside the sandbox"),
            "{err}"
        );
        let err = Client::connect(server.path()).unwrap().list().unwrap_err();
        assert!(matches!(err, TuiError::Closed { .. }), "{err:?}");
    }
}
