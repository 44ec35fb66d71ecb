//! Types shared by the agent-sandbox eBPF programs (kernel side) and the supervisor (user side).
//!
//! Every type here is `#[repr(C)]`, contains only plain integers and byte arrays, and is read by
//! user space straight out of a ring-buffer record or written straight into a map. Field order is
//! chosen so that no implicit padding exists (checked by the `layout` tests below), because the
//! kernel side cannot zero padding it does not know about.
#![no_std]

/// Bytes kept of one path argument (open, unlink, rename...) including the terminating NUL.
/// Longer paths are truncated and flagged with [`FLAG_TRUNCATED`].
pub const PATH_LEN: usize = 512;
/// Maximum number of argv entries copied for one exec.
pub const MAX_ARGS: usize = 64;
/// Bytes copied of a single argv entry, including its NUL.
pub const ARG_LEN: usize = 1024;
/// Argument bytes are packed NUL-separated; copying stops once this many bytes are used.
/// The buffer is `ARGV_SOFT_CAP + ARG_LEN` long so the verifier can prove every write in bounds
/// with a single mask (`offset & (ARGV_SOFT_CAP - 1)`), which is why this must be a power of two.
pub const ARGV_SOFT_CAP: usize = 4096;
/// Size of the packed argv buffer in an [`ExecEvent`].
pub const ARGV_BUF: usize = ARGV_SOFT_CAP + ARG_LEN;
/// Length of `task->comm`.
pub const COMM_LEN: usize = 16;

/// Set in [`EventHeader::flags`] when a string or the argv list was cut to fit.
pub const FLAG_TRUNCATED: u32 = 1;
/// Set when reading a user-space argument failed (bad pointer); the value is empty.
pub const FLAG_READ_ERROR: u32 = 2;

/// What happened. The discriminant travels in [`EventHeader::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `execve`/`execveat` entered: filename and argv ([`ExecEvent`]).
    Exec = 1,
    /// `execve`/`execveat` returned: result code ([`ExecResultEvent`]).
    ExecResult = 2,
    /// `open`/`openat`/`openat2` entered ([`OpenEvent`]).
    Open = 3,
    /// `connect` entered ([`ConnectEvent`]).
    Connect = 4,
    /// `unlink`/`unlinkat`/`rmdir`/`rename`/`renameat`/`renameat2` ([`PathOpEvent`]).
    PathOp = 5,
    /// A new process (not a thread) was created ([`ForkEvent`]).
    Fork = 6,
    /// The last thread of a process exited ([`ExitEvent`]).
    Exit = 7,
    /// A connect or sendmsg was refused by a network rule ([`NetRefusedEvent`]).
    NetRefused = 8,
    /// A signal sent to another process, or a ptrace attach, with its result
    /// ([`SignalEvent`]).
    Signal = 9,
    /// An open, creat, truncate, unlink, rmdir or rename that failed with `EACCES` or `EPERM`,
    /// emitted at syscall exit ([`PathOpEvent`] layout, `ret` set).
    Denied = 10,
}

/// Number of slots in the per-kind lost-event counter array (indexed by `EventKind as u32`).
pub const KIND_SLOTS: u32 = 16;

impl EventKind {
    /// Maps a raw discriminant back to a kind; `None` for values this build does not know.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Exec,
            2 => Self::ExecResult,
            3 => Self::Open,
            4 => Self::Connect,
            5 => Self::PathOp,
            6 => Self::Fork,
            7 => Self::Exit,
            8 => Self::NetRefused,
            9 => Self::Signal,
            10 => Self::Denied,
            _ => return None,
        })
    }

    /// Every kind, in discriminant order.
    pub const ALL: [EventKind; 10] = [
        Self::Exec,
        Self::ExecResult,
        Self::Open,
        Self::Connect,
        Self::PathOp,
        Self::Fork,
        Self::Exit,
        Self::NetRefused,
        Self::Signal,
        Self::Denied,
    ];

    /// Stable lower-case name used in JSON output and loss reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::ExecResult => "exec_result",
            Self::Open => "open",
            Self::Connect => "connect",
            Self::PathOp => "path_op",
            Self::Fork => "fork",
            Self::Exit => "exit",
            Self::NetRefused => "net_refused",
            Self::Signal => "signal",
            Self::Denied => "denied",
        }
    }
}

/// Common prefix of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// `bpf_ktime_get_boot_ns()` at the event.
    pub ktime_ns: u64,
    /// An [`EventKind`] discriminant.
    pub kind: u32,
    /// Thread id of the acting task.
    pub tid: u32,
    /// Process id (thread-group id) of the acting task.
    pub pid: u32,
    /// Real uid of the acting task.
    pub uid: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Which syscall produced the event (a `syscall::*` id), 0 where not applicable.
    pub syscall: u32,
    /// `task->comm` of the acting task.
    pub comm: [u8; COMM_LEN],
}

/// Syscall identifiers carried in [`EventHeader::syscall`] and stored as the values of the
/// probes' `SYSCALLS` table; our own numbering, not the architecture's syscall numbers.
pub mod syscall {
    pub const EXECVE: u32 = 1;
    pub const EXECVEAT: u32 = 2;
    pub const OPEN: u32 = 3;
    pub const OPENAT: u32 = 4;
    pub const OPENAT2: u32 = 5;
    pub const CONNECT: u32 = 6;
    pub const UNLINK: u32 = 7;
    pub const UNLINKAT: u32 = 8;
    pub const RMDIR: u32 = 9;
    pub const RENAME: u32 = 10;
    pub const RENAMEAT: u32 = 11;
    pub const RENAMEAT2: u32 = 12;
    pub const CLONE: u32 = 13;
    pub const CLONE3: u32 = 14;
    pub const KILL: u32 = 15;
    pub const TKILL: u32 = 16;
    pub const TGKILL: u32 = 17;
    pub const RT_SIGQUEUEINFO: u32 = 18;
    pub const RT_TGSIGQUEUEINFO: u32 = 19;
    pub const PIDFD_SEND_SIGNAL: u32 = 20;
    pub const PTRACE: u32 = 21;
    pub const CREAT: u32 = 22;
    pub const TRUNCATE: u32 = 23;
}

/// An exec attempt with its filename and argv (packed, NUL-separated).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Directory fd for `execveat`, `AT_FDCWD` (-100) for `execve`.
    pub dirfd: i32,
    /// Number of argv entries copied into `argv`.
    pub argc: u32,
    /// Bytes of `argv` in use.
    pub argv_len: u32,
    /// `execveat` flags, 0 for `execve`.
    pub exec_flags: u32,
    pub filename: [u8; PATH_LEN],
    pub argv: [u8; ARGV_BUF],
}

/// The return value of an exec attempt, emitted from the syscall's exit tracepoint.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecResultEvent {
    pub header: EventHeader,
    /// 0 on success, `-errno` on failure.
    pub ret: i64,
}

/// An open attempt, as the caller spelled it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenEvent {
    pub header: EventHeader,
    /// `O_*` flags (from `open_how.flags` for openat2).
    pub open_flags: u64,
    /// Directory fd, `AT_FDCWD` (-100) for plain `open`.
    pub dirfd: i32,
    /// Creation mode (low 32 bits).
    pub mode: u32,
    pub path: [u8; PATH_LEN],
}

/// Bytes kept of a connect address: enough for an IPv6 address and for a whole
/// `sockaddr_un.sun_path` (108 bytes).
pub const ADDR_LEN: usize = 112;

/// A connect attempt. `addr` holds 4 bytes for AF_INET, 16 for AF_INET6 and the path for AF_UNIX
/// (abstract socket names start with a NUL byte).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectEvent {
    pub header: EventHeader,
    pub fd: i32,
    /// `sa_family`.
    pub family: u16,
    /// Port in host byte order (converted by the probe).
    pub port: u16,
    pub addr: [u8; ADDR_LEN],
    /// `addrlen` as passed by the caller (IPv6 flow info and scope id are not kept).
    pub addrlen: u32,
    pub _pad: u32,
}

/// A deletion or rename (`EventKind::PathOp`), or a path call that failed with `EACCES` or
/// `EPERM` (`EventKind::Denied`: open, creat, truncate, unlink, rmdir, rename; the header's
/// `syscall` says which). `path2` is empty except for renames.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PathOpEvent {
    pub header: EventHeader,
    pub dirfd1: i32,
    pub dirfd2: i32,
    /// `unlinkat` / `renameat2` flags; for a denied open or creat, the open flags.
    pub op_flags: u32,
    /// `EventKind::Denied`: the syscall's return value (`-errno`); 0 otherwise.
    pub ret: i32,
    pub path1: [u8; PATH_LEN],
    pub path2: [u8; PATH_LEN],
}

/// A new process in the session. The header describes the parent.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkEvent {
    pub header: EventHeader,
    /// Pid of the new process.
    pub child_pid: u32,
    pub _pad: u32,
}

/// `ptrace` requests that are reported (the others act on a tracee already attached).
pub mod ptrace_req {
    /// `PTRACE_ATTACH`.
    pub const ATTACH: u32 = 16;
    /// `PTRACE_SEIZE`.
    pub const SEIZE: u32 = 0x4206;
}

/// A signal aimed at another process or thread (`kill`, `tkill`, `tgkill`, `rt_sigqueueinfo`,
/// `rt_tgsigqueueinfo`, `pidfd_send_signal`) or a `ptrace` attach, emitted at syscall exit.
/// Signals a process sends to itself are not reported.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SignalEvent {
    pub header: EventHeader,
    /// The syscall's return value (0, or `-errno`).
    pub ret: i64,
    /// The first argument: the pid (kill, rt_sigqueueinfo, ptrace; 0 and negative values
    /// name process groups), the tgid (tgkill, rt_tgsigqueueinfo), the tid (tkill) or the
    /// pidfd (pidfd_send_signal).
    pub target: i32,
    /// The thread of tgkill and rt_tgsigqueueinfo, 0 otherwise.
    pub target_tid: i32,
    /// The signal number, or the ptrace request.
    pub sig: u32,
    pub _pad: u32,
}

/// The last thread of a process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    pub header: EventHeader,
}

/// Which cgroup sock_addr hook refused a [`NetRefusedEvent`].
pub mod net_hook {
    /// `connect` on an AF_INET socket.
    pub const CONNECT4: u32 = 1;
    /// `connect` on an AF_INET6 socket.
    pub const CONNECT6: u32 = 2;
    /// `sendmsg`/`sendto` with an address on an AF_INET socket (UDP).
    pub const SENDMSG4: u32 = 3;
    /// `sendmsg`/`sendto` with an address on an AF_INET6 socket (UDP).
    pub const SENDMSG6: u32 = 4;
}

/// [`NetPortRule::action`]: refuse.
pub const NET_ACTION_DENY: u8 = 1;
/// [`NetPortRule::action`]: allow (allow-list mode, or an exception inside a denied range).
pub const NET_ACTION_ALLOW: u8 = 2;
/// [`NetPortRule::protos`] bit for TCP.
pub const NET_PROTO_TCP: u8 = 1;
/// [`NetPortRule::protos`] bit for UDP.
pub const NET_PROTO_UDP: u8 = 2;
/// Rule index reported when nothing matched and `Config::net_default_deny` refused.
pub const NET_RULE_DEFAULT: u32 = u32::MAX;
/// Port rules kept per address prefix (after the supervisor copies each prefix's covering
/// prefixes' rules into it, so that the longest-prefix match alone decides).
pub const NET_PORT_SLOTS: usize = 16;

/// One port range of a network rule, for the prefixes it applies to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetPortRule {
    /// First port (host byte order), inclusive.
    pub lo: u16,
    /// Last port, inclusive.
    pub hi: u16,
    /// Index of the rule in the supervisor's table (named in refusal events).
    pub rule: u16,
    /// `NET_PROTO_*` bits.
    pub protos: u8,
    /// `NET_ACTION_*`.
    pub action: u8,
}

/// The value of the `NET4`/`NET6` longest-prefix-match maps: the port rules of one prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetRules {
    /// Entries used in `entries`.
    pub count: u32,
    pub _pad: u32,
    pub entries: [NetPortRule; NET_PORT_SLOTS],
}

/// A connect or sendmsg refused by a cgroup sock_addr program (the caller got EPERM).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetRefusedEvent {
    pub header: EventHeader,
    /// Rule index, or [`NET_RULE_DEFAULT`].
    pub rule: u32,
    /// A `net_hook` value.
    pub hook: u32,
    /// AF_INET or AF_INET6 (of the socket; an IPv4-mapped IPv6 address is reported as such).
    pub family: u16,
    /// Destination port, host byte order.
    pub port: u16,
    /// IPPROTO_* of the socket.
    pub protocol: u32,
    /// Destination address: 4 bytes for AF_INET, 16 for AF_INET6.
    pub addr: [u8; 16],
}

/// Run-time configuration written by the supervisor into the `CONFIG` array (index 0) before
/// any program can see a session task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// cgroup v2 id (inode number) of the session cgroup; 0 disables every probe.
    pub session_cgroup_id: u64,
    /// Depth of the session cgroup below the cgroup v2 root (root = 0).
    pub session_cgroup_level: u32,
    /// Offset of `parent_pid` in the `sched_process_fork` record (from its format file).
    pub fork_parent_pid_off: u32,
    /// Offset of `child_pid` in the `sched_process_fork` record.
    pub fork_child_pid_off: u32,
    /// Offset of `group_dead` in the `sched_process_exit` record, or `u32::MAX` when the kernel
    /// does not have that field (then the exit of the thread-group leader counts).
    pub exit_group_dead_off: u32,
    /// Bytes of high-rate records a CPU writes between two wakeups of the reader. In between,
    /// the reader finds records on its periodic poll, which saves a wakeup per event.
    pub wakeup_bytes: u64,
    /// Non-zero in allow-list mode: a connection no rule allows is refused.
    pub net_default_deny: u32,
    /// Offset of `__syscall_nr` in the `syscalls/sys_enter_*` records (from their format files).
    pub sys_enter_nr_off: u32,
    /// Offset of the first argument in those records; the six arguments follow, 8 bytes each.
    pub sys_enter_args_off: u32,
    pub _pad: u32,
}

/// Byte offsets of the kernel structure fields that the tracing probes load directly from the
/// current task (`bpf_get_current_task_btf()`), instead of asking a helper for each (on this
/// kind of machine every helper call's return is costly, see the README's Performance).
///
/// Rust eBPF has no CO-RE relocations, so nothing here is compiled in: the supervisor reads
/// each offset from the running kernel's BTF ([`TaskOffsets::FIELDS`]) and writes the struct
/// into the probes' read-only data before loading them. The verifier then sees every offset
/// as a constant and checks each load against the kernel's own types: a pointer read from a
/// place that holds no pointer of the expected type makes the load fail. (Plain numbers are
/// not told apart: the offsets are right because they are looked up by field name.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
    /// `task_struct.pid` (the thread id).
    pub task_pid: u32,
    /// `task_struct.tgid` (the process id).
    pub task_tgid: u32,
    /// `task_struct.comm`.
    pub task_comm: u32,
    /// `task_struct.cred` (the subjective credentials, as `current_uid()` reads them).
    pub task_cred: u32,
    /// `task_struct.cgroups` (the task's `css_set`).
    pub task_cgroups: u32,
    /// `cred.uid`.
    pub cred_uid: u32,
    /// `css_set.dfl_cgrp` (the task's cgroup on the v2 hierarchy).
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn` (the cgroup's directory).
    pub cgroup_kn: u32,
    /// `kernfs_node.id` (the cgroup id that `bpf_get_current_cgroup_id` returns).
    pub kernfs_node_id: u32,
}

impl TaskOffsets {
    /// The fields in declaration order, as `(struct, member)` names in the kernel's BTF.
    pub const FIELDS: [(&'static str, &'static str); 9] = [
        ("task_struct", "pid"),
        ("task_struct", "tgid"),
        ("task_struct", "comm"),
        ("task_struct", "cred"),
        ("task_struct", "cgroups"),
        ("cred", "uid"),
        ("css_set", "dfl_cgrp"),
        ("cgroup", "kn"),
        ("kernfs_node", "id"),
    ];

    /// Builds the struct from offsets listed in the order of [`TaskOffsets::FIELDS`].
    pub const fn from_array(o: [u32; 9]) -> Self {
        Self {
            task_pid: o[0],
            task_tgid: o[1],
            task_comm: o[2],
            task_cred: o[3],
            task_cgroups: o[4],
            cred_uid: o[5],
            css_set_dfl_cgrp: o[6],
            cgroup_kn: o[7],
            kernfs_node_id: o[8],
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain-old-data, #[repr(C)], nine u32 without padding.
    unsafe impl aya::Pod for super::TaskOffsets {}
    // SAFETY: plain-old-data, #[repr(C)], no padding (see the layout tests).
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NetRules {}
}

#[cfg(test)]
mod layout {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn no_implicit_padding() {
        assert_eq!(size_of::<EventHeader>(), 8 + 6 * 4 + COMM_LEN);
        assert_eq!(
            size_of::<ExecEvent>(),
            size_of::<EventHeader>() + 16 + PATH_LEN + ARGV_BUF
        );
        assert_eq!(size_of::<ExecResultEvent>(), size_of::<EventHeader>() + 8);
        assert_eq!(
            size_of::<OpenEvent>(),
            size_of::<EventHeader>() + 16 + PATH_LEN
        );
        assert_eq!(
            size_of::<ConnectEvent>(),
            size_of::<EventHeader>() + 8 + ADDR_LEN + 8
        );
        assert_eq!(
            size_of::<PathOpEvent>(),
            size_of::<EventHeader>() + 16 + 2 * PATH_LEN
        );
        assert_eq!(size_of::<ForkEvent>(), size_of::<EventHeader>() + 8);
        assert_eq!(size_of::<Config>(), 8 + 4 * 4 + 8 + 4 * 4);
        assert_eq!(size_of::<TaskOffsets>(), 4 * TaskOffsets::FIELDS.len());
        assert_eq!(size_of::<NetPortRule>(), 8);
        assert_eq!(size_of::<NetRules>(), 8 + 8 * NET_PORT_SLOTS);
        assert_eq!(
            size_of::<NetRefusedEvent>(),
            size_of::<EventHeader>() + 16 + 16
        );
        assert_eq!(size_of::<SignalEvent>(), size_of::<EventHeader>() + 24);
        assert!(ARGV_SOFT_CAP.is_power_of_two());
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_u32(k as u32), Some(k));
            assert!((k as u32) < KIND_SLOTS);
        }
        assert_eq!(EventKind::from_u32(0), None);
    }
}
