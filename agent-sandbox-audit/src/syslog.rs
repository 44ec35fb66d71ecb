//! Forwarding audit records to the local syslog daemon.
//!
//! Each record is sent as one RFC 5424 message over the unix datagram socket (`/dev/log` by
//! default): `<PRI>1 TIMESTAMP HOSTNAME agent-sandbox PROCID MSGID - MSG`, where MSG is the
//! sealed audit line itself, so the copy kept by syslog (or relayed off the machine) can be
//! verified with the session key too.
//!
//! Facility: **authpriv** (10). These records are security decisions about a user's session,
//! and they can carry command lines and paths that are private; authpriv is the facility that
//! syslog configurations route to a root-only file (`/var/log/auth.log` or `/var/log/secure`).
//! Severity: warning for refusals, holds and freezes, notice for decisions and session
//! boundaries, info for the rest.
//!
//! The socket is non-blocking. When the daemon's queue is full (Linux queues only
//! `net.unix.max_dgram_qlen` datagrams, 10 by default, per socket), a send waits at most
//! [`SyslogForwarder::set_max_wait`] (2 ms by default) for room, once; if there is still none,
//! the record is dropped and counted in [`SyslogStats`], and later sends do not wait at all
//! until one goes through again. An absent daemon fails at once. So a stuck syslog costs the
//! writer one short wait, never a stall.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::AuditError;

/// The local syslog socket.
pub const DEFAULT_SYSLOG_PATH: &str = "/dev/log";
/// RFC 5424 APP-NAME.
pub const APP_NAME: &str = "agent-sandbox";
/// Facility authpriv (see the module docs for why).
pub const FACILITY_AUTHPRIV: u8 = 10;
/// Longest datagram sent; longer records are cut (and counted), as many syslog daemons cap
/// messages at 8 KiB anyway.
pub const MAX_MESSAGE: usize = 8192;
/// Default bound on the wait for room in a full queue.
const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(2);
/// After the daemon went away, reconnect at most this often.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// What the forwarder has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyslogStats {
    /// Messages handed to the socket.
    pub sent: u64,
    /// Messages dropped: the socket was full, or the daemon was gone.
    pub failed: u64,
    /// Messages cut to [`MAX_MESSAGE`].
    pub truncated: u64,
}

/// Sends audit lines to syslog; see the module docs.
#[derive(Debug)]
pub struct SyslogForwarder {
    socket: UnixDatagram,
    path: PathBuf,
    hostname: String,
    pid: u32,
    buf: Vec<u8>,
    stats: SyslogStats,
    last_reconnect: Option<Instant>,
    max_wait: Duration,
    /// The last send found the queue full even after waiting: do not wait again until a send
    /// succeeds.
    congested: bool,
}

fn new_socket(path: &Path) -> std::io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.set_nonblocking(true)?;
    s.connect(path)?;
    Ok(s)
}

/// The host name for the HOSTNAME field: printable ASCII without spaces, else `-`.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = raw.trim();
    if !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| (33..=126).contains(&b)) {
        name.to_string()
    } else {
        "-".to_string()
    }
}

/// The value of the first `"kind":"..."` in a line, without parsing the whole line.
fn kind_of(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"kind\":\"";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = line.get(at..)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

/// RFC 5424 severity for a record kind.
fn severity(kind: Option<&str>) -> u8 {
    match kind {
        Some(
            "net_refused" | "file_refused" | "held" | "gate_refused" | "approval_refused"
            | "freeze",
        ) => 4,
        Some("decision" | "thaw" | "session_start" | "session_end" | "policy_trust") => 5,
        _ => 6,
    }
}

/// Days since the epoch to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC 3339, UTC, microseconds) from Unix seconds. The one
/// timestamp format of agent-sandbox: the supervisor's event records use it too.
pub fn rfc3339(secs: i64, micros: u32) -> String {
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
    )
}

/// [`rfc3339`] of a `SystemTime`.
fn rfc3339_of(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_micros())
}

/// Waits up to `max` for the socket to accept a datagram; `true` if it will.
fn wait_writable(socket: &UnixDatagram, max: Duration) -> bool {
    use std::os::fd::AsRawFd;
    if max.is_zero() {
        return false;
    }
    let mut pfd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = libc::c_int::try_from(max.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is a valid pollfd for an open descriptor owned by `socket`, and the count
    // passed is 1, matching the single struct.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n == 1 && pfd.revents & libc::POLLOUT != 0
}

impl SyslogForwarder {
    /// Connects to `path` (default [`DEFAULT_SYSLOG_PATH`]). Fails if nothing listens there
    /// now, so a missing daemon is noticed at start; later failures are only counted.
    pub fn connect(path: Option<&Path>) -> Result<SyslogForwarder, AuditError> {
        let path = path.unwrap_or(Path::new(DEFAULT_SYSLOG_PATH));
        let socket =
            new_socket(path).map_err(|e| AuditError::io("connecting to syslog socket", path, e))?;
        Ok(SyslogForwarder {
            socket,
            path: path.to_path_buf(),
            hostname: hostname(),
            pid: std::process::id(),
            buf: Vec::with_capacity(MAX_MESSAGE),
            stats: SyslogStats::default(),
            last_reconnect: None,
            max_wait: DEFAULT_MAX_WAIT,
            congested: false,
        })
    }

    /// Sets how long a send may wait for room when the daemon's queue is full (zero: never).
    pub fn set_max_wait(&mut self, wait: Duration) {
        self.max_wait = wait;
    }

    /// Counts so far.
    pub fn stats(&self) -> SyslogStats {
        self.stats
    }

    /// Sends one audit line (a trailing newline is dropped). Returns whether the datagram was
    /// handed to the socket; a failure is counted, never retried beyond one reconnect.
    pub fn send(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let kind = kind_of(line);
        let msgid = kind
            .filter(|k| {
                !k.is_empty() && k.len() <= 32 && k.bytes().all(|b| (33..=126).contains(&b))
            })
            .unwrap_or("-");
        let pri = u16::from(FACILITY_AUTHPRIV) * 8 + u16::from(severity(kind));
        let mut header = String::with_capacity(128);
        let _ = write!(
            header,
            "<{pri}>1 {} {} {APP_NAME} {} {msgid} - ",
            rfc3339_of(SystemTime::now()),
            self.hostname,
            self.pid
        );
        self.buf.clear();
        self.buf.extend_from_slice(header.as_bytes());
        let room = MAX_MESSAGE.saturating_sub(self.buf.len());
        if line.len() > room {
            self.stats.truncated += 1;
            // Cut on a UTF-8 boundary so the message stays valid text.
            let mut cut = room;
            while cut > 0 && line.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
                cut -= 1;
            }
            self.buf
                .extend_from_slice(line.get(..cut).unwrap_or_default());
        } else {
            self.buf.extend_from_slice(line);
        }
        match self.socket.send(&self.buf) {
            Ok(_) => {
                self.stats.sent += 1;
                self.congested = false;
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !self.congested
                    && wait_writable(&self.socket, self.max_wait)
                    && self.socket.send(&self.buf).is_ok()
                {
                    self.stats.sent += 1;
                    return true;
                }
                self.congested = true;
                self.stats.failed += 1;
                false
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::NotConnected | ErrorKind::NotFound
                ) && self.reconnect() =>
            {
                if self.socket.send(&self.buf).is_ok() {
                    self.stats.sent += 1;
                    true
                } else {
                    self.stats.failed += 1;
                    false
                }
            }
            Err(_) => {
                self.stats.failed += 1;
                false
            }
        }
    }

    /// Reconnects after the daemon restarted (its socket is a new inode), at most once per
    /// [`RECONNECT_EVERY`].
    fn reconnect(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last_reconnect
            .is_some_and(|t| now.duration_since(t) < RECONNECT_EVERY)
        {
            return false;
        }
        self.last_reconnect = Some(now);
        match new_socket(&self.path) {
            Ok(s) => {
                self.socket = s;
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_778), (2026, 11, 21));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let t = UNIX_EPOCH + Duration::from_micros(1_763_706_360_240_941);
        assert_eq!(rfc3339_of(t), "2025-11-21T06:26:00.240941Z");
        for d in [-1000, 0, 59, 60, 365, 10_000, 20_778, 100_000] {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(
                crate::report::days_from_civil(y, i64::from(m), i64::from(day)),
                d
            );
        }
    }

    #[test]
    fn kinds_and_severity() {
        assert_eq!(kind_of(br#"{"seq":1,"kind":"held","x":1}"#), Some("held"));
        assert_eq!(kind_of(br#"{"seq":1}"#), None);
        assert_eq!(kind_of(br#"{"kind":"unterminated"#), None);
        assert_eq!(severity(Some("net_refused")), 4);
        assert_eq!(severity(Some("decision")), 5);
        assert_eq!(severity(Some("exec")), 6);
        assert_eq!(severity(None), 6);
    }
}
