//! Decoding of ring-buffer records into events, the session's process table (ancestry), and the
//! JSON Lines form of `--events`.
//!
//! Schema of one line (see the README):
//! `{"time","ktime_ns","kind","pid","tid","ppid","uid","comm","ancestry":[...],"fields":{...}}`
//! plus `"truncated":true` when a string or argv was cut to fit the probe's bounds.

use std::collections::HashMap;
use std::mem::size_of;

use agent_sandbox_common::{
    ConnectEvent, EventHeader, EventKind, ExecEvent, ExecResultEvent, FLAG_READ_ERROR,
    FLAG_TRUNCATED, ForkEvent, NetRefusedEvent, OpenEvent, PathOpEvent, SignalEvent, net_hook,
    syscall,
};
use serde_json::{Map, Value, json};

/// How many ancestors an event lists at most.
const MAX_ANCESTRY: usize = 64;
const AT_FDCWD: i32 = -100;

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Boot-time nanoseconds of the event.
    pub ktime_ns: u64,
    /// Kind of event.
    pub kind: EventKind,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid.
    pub uid: u32,
    /// Command name of the acting task.
    pub comm: String,
    /// Some string or list was cut to fit.
    pub truncated: bool,
    /// A user pointer could not be read.
    pub read_error: bool,
    /// Kind-specific payload.
    pub data: EventData,
}

/// Kind-specific payload of an [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// exec entered.
    Exec {
        /// Syscall name.
        syscall: &'static str,
        /// Path passed to exec.
        filename: String,
        /// Arguments.
        argv: Vec<String>,
        /// Directory fd (execveat).
        dirfd: i32,
        /// Return value, filled in when the matching result arrives.
        ret: Option<i64>,
    },
    /// exec returned.
    ExecResult {
        /// 0 or -errno.
        ret: i64,
    },
    /// open family.
    Open {
        /// Syscall name.
        syscall: &'static str,
        /// Path as given.
        path: String,
        /// Directory fd.
        dirfd: i32,
        /// Open flags.
        flags: u64,
        /// Creation mode.
        mode: u32,
    },
    /// connect.
    Connect {
        /// Socket fd.
        fd: i32,
        /// Address family number.
        family: u16,
        /// Printable address.
        address: String,
        /// Port (IP families).
        port: u16,
    },
    /// unlink/rmdir/rename family.
    PathOp(PathCall),
    /// New process.
    Fork {
        /// Its pid.
        child_pid: u32,
    },
    /// Process ended.
    Exit,
    /// A connect/sendmsg refused by a network rule.
    NetRefused {
        /// Index of the rule in the session's network rules, or `NET_RULE_DEFAULT`.
        rule: u32,
        /// `connect` or `sendmsg`.
        hook: &'static str,
        /// Address family number.
        family: u16,
        /// Printable destination address.
        address: String,
        /// Destination port.
        port: u16,
        /// `tcp`, `udp` or the protocol number.
        protocol: String,
    },
    /// A signal to another process, or a ptrace attach.
    Signal {
        /// Syscall name.
        syscall: &'static str,
        /// Pid, tgid, tid or pidfd, as the syscall takes it (see [`SignalEvent`]).
        target: i32,
        /// Thread of tgkill / rt_tgsigqueueinfo, 0 otherwise.
        target_tid: i32,
        /// Signal number, or the ptrace request.
        sig: u32,
        /// 0 or -errno.
        ret: i64,
    },
    /// A path call refused with EACCES or EPERM.
    Denied {
        /// The call.
        call: PathCall,
        /// -errno.
        ret: i32,
    },
}

/// A call on one or two paths, as a `path_op` or `denied` record carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCall {
    /// Syscall name.
    pub syscall: &'static str,
    /// The path (the one removed, or the rename source).
    pub path: String,
    /// Rename destination.
    pub target: Option<String>,
    /// Directory fd of `path`.
    pub dirfd: i32,
    /// Directory fd of `target`.
    pub target_dirfd: i32,
    /// Open flags (open, openat, openat2, creat) or unlinkat/renameat2 flags.
    pub flags: u32,
}

impl PathCall {
    fn decode(syscall_id: u32, e: &PathOpEvent) -> Self {
        let renaming = matches!(
            syscall_id,
            syscall::RENAME | syscall::RENAMEAT | syscall::RENAMEAT2
        );
        PathCall {
            syscall: syscall_name(syscall_id),
            path: cstr(&e.path1),
            target: renaming.then(|| cstr(&e.path2)),
            dirfd: e.dirfd1,
            target_dirfd: e.dirfd2,
            flags: e.op_flags,
        }
    }

    /// The record's fields; `flags` as given (open flags are spelled out by the caller).
    fn fields(&self) -> serde_json::Value {
        let mut m = json!({
            "syscall": self.syscall, "path": self.path, "dirfd": dirfd_value(self.dirfd),
            "flags": self.flags,
        });
        if let Some(t) = &self.target {
            m["target"] = json!(t);
            m["target_dirfd"] = dirfd_value(self.target_dirfd);
        }
        m
    }
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its kind's struct.
    #[error("record of {len} bytes is too short for kind {kind}")]
    Short {
        /// Record length.
        len: usize,
        /// Raw kind.
        kind: u32,
    },
    /// Unknown kind.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
}

/// Reads a `T` from the start of `bytes` (unaligned).
fn read<T: Copy>(bytes: &[u8], kind: u32) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            len: bytes.len(),
            kind,
        });
    }
    // SAFETY: length checked above; every `T` used here is a #[repr(C)] struct of integers and
    // byte arrays, valid for any bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A record of the `OpenEvent` layout that may end right after its path's NUL (the probe
/// copies only the path's real length into the ring): at least the part before `path` and one
/// byte of path must be there; the rest reads as zeros.
fn read_open(bytes: &[u8], kind: u32) -> Result<OpenEvent, DecodeError> {
    let min = std::mem::offset_of!(OpenEvent, path) + 1;
    if bytes.len() < min {
        return Err(DecodeError::Short {
            len: bytes.len(),
            kind,
        });
    }
    let mut full = [0u8; size_of::<OpenEvent>()];
    let n = bytes.len().min(full.len());
    full[..n].copy_from_slice(&bytes[..n]);
    read(&full, kind)
}

/// The bytes up to the first NUL, lossily decoded.
fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn syscall_name(sc: u32) -> &'static str {
    match sc {
        syscall::EXECVE => "execve",
        syscall::EXECVEAT => "execveat",
        syscall::OPEN => "open",
        syscall::OPENAT => "openat",
        syscall::OPENAT2 => "openat2",
        syscall::CONNECT => "connect",
        syscall::UNLINK => "unlink",
        syscall::UNLINKAT => "unlinkat",
        syscall::RMDIR => "rmdir",
        syscall::RENAME => "rename",
        syscall::RENAMEAT => "renameat",
        syscall::RENAMEAT2 => "renameat2",
        syscall::CLONE => "clone",
        syscall::CLONE3 => "clone3",
        syscall::KILL => "kill",
        syscall::TKILL => "tkill",
        syscall::TGKILL => "tgkill",
        syscall::RT_SIGQUEUEINFO => "rt_sigqueueinfo",
        syscall::RT_TGSIGQUEUEINFO => "rt_tgsigqueueinfo",
        syscall::PIDFD_SEND_SIGNAL => "pidfd_send_signal",
        syscall::PTRACE => "ptrace",
        syscall::CREAT => "creat",
        syscall::TRUNCATE => "truncate",
        _ => "unknown",
    }
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let h: EventHeader = read(bytes, 0)?;
    let kind = EventKind::from_u32(h.kind).ok_or(DecodeError::UnknownKind(h.kind))?;
    let data = match kind {
        EventKind::Exec => {
            let e: ExecEvent = read(bytes, h.kind)?;
            let used = (e.argv_len as usize).min(e.argv.len());
            let argv = e.argv[..used]
                .split(|&b| b == 0)
                .take(e.argc as usize)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            EventData::Exec {
                syscall: syscall_name(h.syscall),
                filename: cstr(&e.filename),
                argv,
                dirfd: e.dirfd,
                ret: None,
            }
        }
        EventKind::ExecResult => {
            let e: ExecResultEvent = read(bytes, h.kind)?;
            EventData::ExecResult { ret: e.ret }
        }
        EventKind::Open => {
            let e = read_open(bytes, h.kind)?;
            EventData::Open {
                syscall: syscall_name(h.syscall),
                path: cstr(&e.path),
                dirfd: e.dirfd,
                flags: e.open_flags,
                mode: e.mode,
            }
        }
        EventKind::Connect => {
            let e: ConnectEvent = read(bytes, h.kind)?;
            let address = match e.family {
                2 => {
                    std::net::Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]).to_string()
                }
                10 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&e.addr[..16]);
                    std::net::Ipv6Addr::from(a).to_string()
                }
                1 => unix_path(&e.addr[..108.min(e.addrlen.saturating_sub(2) as usize)]),
                _ => String::new(),
            };
            EventData::Connect {
                fd: e.fd,
                family: e.family,
                address,
                port: e.port,
            }
        }
        EventKind::PathOp => {
            let e: PathOpEvent = read(bytes, h.kind)?;
            EventData::PathOp(PathCall::decode(h.syscall, &e))
        }
        EventKind::Denied => {
            let e: PathOpEvent = read(bytes, h.kind)?;
            EventData::Denied {
                call: PathCall::decode(h.syscall, &e),
                ret: e.ret,
            }
        }
        EventKind::Signal => {
            let e: SignalEvent = read(bytes, h.kind)?;
            EventData::Signal {
                syscall: syscall_name(h.syscall),
                target: e.target,
                target_tid: e.target_tid,
                sig: e.sig,
                ret: e.ret,
            }
        }
        EventKind::Fork => {
            let e: ForkEvent = read(bytes, h.kind)?;
            EventData::Fork {
                child_pid: e.child_pid,
            }
        }
        EventKind::Exit => EventData::Exit,
        EventKind::NetRefused => {
            let e: NetRefusedEvent = read(bytes, h.kind)?;
            let address = if e.family == 2 {
                std::net::Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]).to_string()
            } else {
                std::net::Ipv6Addr::from(e.addr).to_string()
            };
            EventData::NetRefused {
                rule: e.rule,
                hook: match e.hook {
                    net_hook::CONNECT4 | net_hook::CONNECT6 => "connect",
                    _ => "sendmsg",
                },
                family: e.family,
                address,
                port: e.port,
                protocol: match e.protocol {
                    6 => "tcp".into(),
                    17 => "udp".into(),
                    n => n.to_string(),
                },
            }
        }
    };
    Ok(Event {
        ktime_ns: h.ktime_ns,
        kind,
        pid: h.pid,
        tid: h.tid,
        uid: h.uid,
        comm: cstr(&h.comm),
        truncated: h.flags & FLAG_TRUNCATED != 0,
        read_error: h.flags & FLAG_READ_ERROR != 0,
        data,
    })
}

/// Unix socket paths: abstract names (leading NUL) are shown with a leading `@`.
fn unix_path(raw: &[u8]) -> String {
    match raw.first() {
        Some(0) => format!("@{}", cstr(&raw[1..])),
        _ => cstr(raw),
    }
}

/// Renders open flags as `O_WRONLY|O_CREAT|...`.
pub fn open_flags_str(flags: u64) -> String {
    const NAMED: &[(u64, &str)] = &[
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o40000, "O_DIRECT"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
        (0o20200000, "O_TMPFILE"),
    ];
    let mut parts = vec![match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    }];
    let mut rest = flags & !3;
    for &(bit, name) in NAMED {
        if rest & bit == bit {
            parts.push(name);
            rest &= !bit;
        }
    }
    let mut s = parts.join("|");
    if rest != 0 {
        s.push_str(&format!("|0x{rest:x}"));
    }
    s
}

/// What the supervisor knows about one process of the session.
#[derive(Debug, Clone, Default)]
struct Proc {
    ppid: u32,
}

/// Exited processes remembered for the ancestry of their descendants (a daemon's intermediate
/// parent exits before the daemon does anything); the oldest are forgotten beyond this.
const MAX_EXITED: usize = 65_536;

/// The session's process tree, built from fork events, so that every event can name its parent
/// and ancestry (the probes cannot read `task->real_parent` without hard-coded offsets).
/// Ancestry is the creation lineage: a process re-parented to init still lists the processes
/// that created it.
#[derive(Debug, Default)]
pub struct ProcessTable {
    procs: HashMap<u32, Proc>,
    exited: std::collections::VecDeque<u32>,
}

impl ProcessTable {
    /// Records a process whose creation was not observed (the agent itself).
    pub fn seed(&mut self, pid: u32, ppid: u32) {
        self.procs.insert(pid, Proc { ppid });
    }

    /// Parent pid, 0 when unknown.
    pub fn ppid(&self, pid: u32) -> u32 {
        self.procs.get(&pid).map_or(0, |p| p.ppid)
    }

    /// Parent, grandparent, ... up to the first process whose parent is unknown.
    pub fn ancestry(&self, pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = pid;
        while let Some(p) = self.procs.get(&cur) {
            if p.ppid == 0 || out.len() >= MAX_ANCESTRY || out.contains(&p.ppid) {
                break;
            }
            out.push(p.ppid);
            cur = p.ppid;
        }
        out
    }

    /// Updates the table with an event; call before rendering the event.
    pub fn observe(&mut self, ev: &Event) {
        if let EventData::Fork { child_pid } = ev.data {
            self.procs.insert(child_pid, Proc { ppid: ev.pid });
        }
    }

    /// Notes an exit; the entry stays (bounded by `MAX_EXITED`) for descendants' ancestry
    /// until its pid is reused by a new fork.
    pub fn note_exit(&mut self, ev: &Event) {
        if ev.kind != EventKind::Exit {
            return;
        }
        self.exited.push_back(ev.pid);
        if self.exited.len() > MAX_EXITED
            && let Some(old) = self.exited.pop_front()
        {
            self.procs.remove(&old);
        }
    }
}

fn dirfd_value(fd: i32) -> Value {
    if fd == AT_FDCWD {
        json!("AT_FDCWD")
    } else {
        json!(fd)
    }
}

/// Name of a signal number (`SIGKILL`), or the number as text.
pub fn signal_name(sig: u32) -> String {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match NAMES.get(sig as usize) {
        Some(n) => (*n).to_string(),
        None => format!("SIGRT+{}", sig.saturating_sub(32)),
    }
}

/// Name of an errno value (positive), as far as the records need one.
pub fn errno_name(errno: i64) -> String {
    match errno {
        1 => "EPERM".into(),
        2 => "ENOENT".into(),
        3 => "ESRCH".into(),
        9 => "EBADF".into(),
        13 => "EACCES".into(),
        22 => "EINVAL".into(),
        30 => "EROFS".into(),
        38 => "ENOSYS".into(),
        n => format!("errno {n}"),
    }
}

/// Whether a denied call's syscall takes open flags in its `flags`.
fn opens(syscall: &str) -> bool {
    matches!(syscall, "open" | "openat" | "openat2" | "creat")
}

/// Converts boot-time nanoseconds to RFC 3339 UTC with microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// realtime - boottime, in ns.
    offset_ns: i128,
}

impl Clock {
    /// Samples both clocks now.
    pub fn now() -> Self {
        let rt = clock_ns(libc::CLOCK_REALTIME);
        let bt = clock_ns(libc::CLOCK_BOOTTIME);
        Self { offset_ns: rt - bt }
    }

    /// Formats a boot-time timestamp as wall-clock time.
    pub fn format(&self, ktime_ns: u64) -> String {
        let t = i128::from(ktime_ns) + self.offset_ns;
        let secs = t.div_euclid(1_000_000_000) as i64;
        let micros = (t.rem_euclid(1_000_000_000) / 1000) as u32;
        rfc3339(secs, micros)
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// RFC 3339 timestamps, the same format as the audit log's.
pub use agent_sandbox_audit::rfc3339;

/// Names the rules that kernel records refer to by index.
pub trait RuleNames {
    /// Id and explanation of network rule `index` (`NET_RULE_DEFAULT` is the policy's
    /// `network.default`).
    fn describe(&self, index: u32) -> (String, Option<String>);
}

/// The JSON object of one event.
pub fn to_json(ev: &Event, table: &ProcessTable, clock: &Clock, rules: &dyn RuleNames) -> Value {
    let fields = match &ev.data {
        EventData::Exec {
            syscall,
            filename,
            argv,
            dirfd,
            ret,
        } => {
            let mut m = json!({"syscall": syscall, "filename": filename, "argv": argv, "ret": ret});
            if *syscall == "execveat" {
                m["dirfd"] = dirfd_value(*dirfd);
            }
            m
        }
        EventData::ExecResult { ret } => json!({ "ret": ret }),
        EventData::Open {
            syscall,
            path,
            dirfd,
            flags,
            mode,
        } => json!({
            "syscall": syscall, "path": path, "dirfd": dirfd_value(*dirfd),
            "flags": open_flags_str(*flags), "flags_raw": flags, "mode": format!("{mode:o}"),
        }),
        EventData::Connect {
            fd,
            family,
            address,
            port,
        } => {
            let fam = match family {
                1 => json!("unix"),
                2 => json!("inet"),
                10 => json!("inet6"),
                n => json!(n),
            };
            let mut m = json!({"fd": fd, "family": fam, "address": address});
            if matches!(family, 2 | 10) {
                m["port"] = json!(port);
            }
            m
        }
        EventData::PathOp(call) => call.fields(),
        EventData::Signal {
            syscall,
            target,
            target_tid,
            sig,
            ret,
        } => {
            let mut m = json!({"syscall": syscall, "ret": ret});
            if *syscall == "ptrace" {
                m["request"] = json!(match *sig {
                    agent_sandbox_common::ptrace_req::ATTACH => "PTRACE_ATTACH".to_string(),
                    agent_sandbox_common::ptrace_req::SEIZE => "PTRACE_SEIZE".to_string(),
                    n => n.to_string(),
                });
            } else {
                m["signal"] = json!(signal_name(*sig));
            }
            if *syscall == "pidfd_send_signal" {
                m["pidfd"] = json!(target);
            } else {
                m["target_pid"] = json!(target);
            }
            if *target_tid != 0 {
                m["target_tid"] = json!(target_tid);
            }
            if *ret < 0 {
                m["errno"] = json!(errno_name(-ret));
            }
            m
        }
        EventData::Denied { call, ret } => {
            let mut m = call.fields();
            m["ret"] = json!(ret);
            m["errno"] = json!(errno_name(-i64::from(*ret)));
            if opens(call.syscall) {
                m["flags"] = json!(open_flags_str(u64::from(call.flags)));
            }
            m
        }
        EventData::Fork { child_pid } => json!({ "child_pid": child_pid }),
        EventData::Exit => json!({}),
        EventData::NetRefused {
            rule,
            hook,
            family,
            address,
            port,
            protocol,
        } => {
            let (id, why) = rules.describe(*rule);
            json!({
                "rule": id, "why": why, "hook": hook,
                "family": if *family == 2 { "inet" } else { "inet6" },
                "address": address, "port": port, "protocol": protocol,
            })
        }
    };
    let mut obj = Map::new();
    obj.insert("time".into(), json!(clock.format(ev.ktime_ns)));
    obj.insert("ktime_ns".into(), json!(ev.ktime_ns));
    obj.insert("kind".into(), json!(ev.kind.name()));
    obj.insert("pid".into(), json!(ev.pid));
    obj.insert("tid".into(), json!(ev.tid));
    obj.insert("ppid".into(), json!(table.ppid(ev.pid)));
    obj.insert("uid".into(), json!(ev.uid));
    obj.insert("comm".into(), json!(ev.comm));
    obj.insert("ancestry".into(), json!(table.ancestry(ev.pid)));
    obj.insert("fields".into(), fields);
    if ev.truncated {
        obj.insert("truncated".into(), json!(true));
    }
    if ev.read_error {
        obj.insert("read_error".into(), json!(true));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_sandbox_common::{ARGV_BUF, COMM_LEN, PATH_LEN};

    fn header(kind: EventKind, pid: u32, sc: u32) -> EventHeader {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"bash");
        EventHeader {
            ktime_ns: 5,
            kind: kind as u32,
            tid: pid,
            pid,
            uid: 1000,
            flags: 0,
            syscall: sc,
            comm,
        }
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a repr(C) value as bytes.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn decodes_exec_argv() {
        let mut e = ExecEvent {
            header: header(EventKind::Exec, 42, syscall::EXECVE),
            dirfd: AT_FDCWD,
            argc: 3,
            argv_len: 0,
            exec_flags: 0,
            filename: [0; PATH_LEN],
            argv: [0; ARGV_BUF],
        };
        e.filename[..7].copy_from_slice(b"/bin/ls");
        let packed = b"ls\0-la\0/tmp dir\0";
        e.argv[..packed.len()].copy_from_slice(packed);
        e.argv_len = packed.len() as u32;
        let ev = decode(&bytes_of(&e)).expect("decode");
        assert_eq!(ev.comm, "bash");
        assert_eq!(
            ev.data,
            EventData::Exec {
                syscall: "execve",
                filename: "/bin/ls".into(),
                argv: vec!["ls".into(), "-la".into(), "/tmp dir".into()],
                dirfd: AT_FDCWD,
                ret: None
            }
        );
    }

    /// The probe copies an open record only up to its path's NUL; stale bytes of the staging
    /// slot after it never reach the ring, and a cut record is refused.
    #[test]
    fn open_records_end_at_their_path() {
        let mut e = OpenEvent {
            header: header(EventKind::Open, 7, syscall::OPENAT),
            open_flags: libc::O_RDONLY as u64,
            dirfd: 3,
            mode: 0,
            path: [b'x'; PATH_LEN],
        };
        e.path[..9].copy_from_slice(b"src/a.rs\0");
        let at = std::mem::offset_of!(OpenEvent, path);
        let full = bytes_of(&e);
        let ev = decode(&full[..at + 9]).expect("decode");
        assert_eq!(
            ev.data,
            EventData::Open {
                syscall: "openat",
                path: "src/a.rs".into(),
                dirfd: 3,
                flags: libc::O_RDONLY as u64,
                mode: 0
            }
        );
        assert_eq!(decode(&full).expect("a whole record too").data, ev.data);
        assert!(matches!(
            decode(&full[..at]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let h = header(EventKind::Open, 1, syscall::OPENAT);
        assert!(matches!(
            decode(&bytes_of(&h)),
            Err(DecodeError::Short { .. })
        ));
        let mut h = header(EventKind::Exit, 1, 0);
        h.kind = 99;
        assert_eq!(decode(&bytes_of(&h)), Err(DecodeError::UnknownKind(99)));
        assert!(decode(&[1, 2, 3]).is_err());
    }

    #[test]
    fn ancestry_follows_forks() {
        let mut t = ProcessTable::default();
        t.seed(10, 1);
        for (parent, child) in [(10, 11), (11, 12), (12, 13)] {
            let ev = Event {
                ktime_ns: 0,
                kind: EventKind::Fork,
                pid: parent,
                tid: parent,
                uid: 0,
                comm: String::new(),
                truncated: false,
                read_error: false,
                data: EventData::Fork { child_pid: child },
            };
            t.observe(&ev);
        }
        assert_eq!(t.ppid(13), 12);
        assert_eq!(t.ancestry(13), vec![12, 11, 10, 1]);
        assert_eq!(t.ancestry(999), Vec::<u32>::new());
    }

    #[test]
    fn flags_and_time_render() {
        assert_eq!(open_flags_str(0), "O_RDONLY");
        assert_eq!(
            open_flags_str(0o1 | 0o100 | 0o1000 | 0o2000000),
            "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
        );
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_795_250_000, 12), "2026-11-21T08:33:20.000012Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
    }
}
