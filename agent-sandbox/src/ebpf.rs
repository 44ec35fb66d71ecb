//! Loading, configuring and attaching the observation probes (agent-sandbox-ebpf), and reading
//! their counters.
//!
//! The programs stay attached for as long as the returned [`Observer`] lives; dropping it
//! detaches every link and unloads the programs and maps (nothing is pinned).

use std::os::fd::{AsFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

use agent_sandbox_common::{Config, EventKind, KIND_SLOTS, NetRules, TaskOffsets};
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::cgroup_sock_addr::CgroupSockAddrLink;
use aya::programs::links::FdLink;
use aya::programs::tp_btf::BtfTracePointLink;
use aya::programs::trace_point::TracePointLink;
use aya::programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};

use crate::network::Table;

use crate::tracefs::{SchedOffsets, SyscallEnterOffsets, TracefsError};

/// The eBPF object built by build.rs (aya-build) from agent-sandbox-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-sandbox"));

/// BTF-typed raw tracepoints (tp_btf): (program name in the object, tracepoint name). It sees
/// every syscall's exit and dispatches on the `SYSCALLS` table; the kernel's BTF types its
/// `struct pt_regs *` argument, so the probe reads registers without a helper call.
pub const BTF_PROBES: &[(&str, &str)] = &[("sys_exit", "sys_exit")];

/// The program that sees the syscalls observed at their entry, and the `syscalls/<name>`
/// tracepoints it is attached to (the kernel skips every other syscall with a bit test; see
/// the probes' crate documentation).
pub const SYSCALL_ENTER_PROBE: (&str, &[&str]) = (
    "sys_enter_watched",
    &[
        "sys_enter_execve",
        "sys_enter_execveat",
        "sys_enter_connect",
        "sys_enter_unlink",
        "sys_enter_unlinkat",
        "sys_enter_rmdir",
        "sys_enter_rename",
        "sys_enter_renameat",
        "sys_enter_renameat2",
        "sys_enter_clone",
        "sys_enter_clone3",
    ],
);

/// What the probes need from the running kernel's BTF (see [`crate::btf`]).
#[derive(Debug, Clone)]
pub struct KernelBtf {
    /// The type ids of the [`BTF_PROBES`]' tracepoints (their `btf_trace_<name>` typedefs),
    /// in that order.
    pub probe_ids: Vec<(String, u32)>,
    /// Where the fields the probes load directly sit in `task_struct` and the structures
    /// behind it.
    pub task: TaskOffsets,
}

/// Reads [`KernelBtf`] from `/sys/kernel/btf/vmlinux` in one pass.
pub fn kernel_btf() -> Result<KernelBtf, crate::btf::BtfError> {
    let names: Vec<String> = BTF_PROBES
        .iter()
        .map(|(_, t)| format!("btf_trace_{t}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let found = crate::btf::scan(
        std::path::Path::new(crate::btf::VMLINUX),
        &refs,
        &TaskOffsets::FIELDS,
    )?;
    let offsets: [u32; TaskOffsets::FIELDS.len()] =
        found
            .member_offsets
            .try_into()
            .map_err(|_| crate::btf::BtfError::Malformed {
                path: crate::btf::VMLINUX.into(),
                what: "member offsets lost in the scan".into(),
            })?;
    Ok(KernelBtf {
        probe_ids: names.into_iter().zip(found.typedef_ids).collect(),
        task: TaskOffsets::from_array(offsets),
    })
}

/// Classic tracepoints: (program name, category, tracepoint name). Their record offsets come
/// from the format files (see [`crate::tracefs`]).
pub const PROBES: &[(&str, &str, &str)] = &[
    ("sched_process_fork", "sched", "sched_process_fork"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

/// cgroup sock_addr programs that enforce the network rules on the session cgroup.
pub const SOCK_PROGRAMS: &[&str] = &["connect4", "connect6", "sendmsg4", "sendmsg6"];

/// Names of the object's maps as the kernel shows them (`doctor` recognises the programs of
/// agent-sandbox by their names and by these maps).
pub const MAP_NAMES: &[&str] = &[
    "CONFIG",
    "SYSCALLS",
    "EVENTS",
    "LOST",
    "DEFERRED",
    "OPEN_STAGING",
    "WAKE",
    "CLONE_FLAGS",
    "NET4",
    "NET6",
];

/// The syscalls the probes interpret: (this architecture's number, our id).
#[cfg(target_arch = "x86_64")]
const SYSCALL_TABLE: &[(i64, u32)] = {
    use agent_sandbox_common::syscall as s;
    &[
        (libc::SYS_execve, s::EXECVE),
        (libc::SYS_execveat, s::EXECVEAT),
        (libc::SYS_open, s::OPEN),
        (libc::SYS_openat, s::OPENAT),
        (libc::SYS_openat2, s::OPENAT2),
        (libc::SYS_connect, s::CONNECT),
        (libc::SYS_unlink, s::UNLINK),
        (libc::SYS_unlinkat, s::UNLINKAT),
        (libc::SYS_rmdir, s::RMDIR),
        (libc::SYS_rename, s::RENAME),
        (libc::SYS_renameat, s::RENAMEAT),
        (libc::SYS_renameat2, s::RENAMEAT2),
        (libc::SYS_clone, s::CLONE),
        (libc::SYS_clone3, s::CLONE3),
        (libc::SYS_kill, s::KILL),
        (libc::SYS_tkill, s::TKILL),
        (libc::SYS_tgkill, s::TGKILL),
        (libc::SYS_rt_sigqueueinfo, s::RT_SIGQUEUEINFO),
        (libc::SYS_rt_tgsigqueueinfo, s::RT_TGSIGQUEUEINFO),
        (libc::SYS_pidfd_send_signal, s::PIDFD_SEND_SIGNAL),
        (libc::SYS_ptrace, s::PTRACE),
        (libc::SYS_creat, s::CREAT),
        (libc::SYS_truncate, s::TRUNCATE),
    ]
};
#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "the observation probes read x86_64 syscall registers; other architectures are not supported yet"
);

/// Unread bytes at which the high-rate probes, together, wake the reader instead of leaving
/// the records for its next poll.
const WAKEUP_BYTES: u64 = 256 * 1024;

/// The share of [`WAKEUP_BYTES`] (at most a quarter of the ring) that each CPU writes before
/// it wakes the reader: the probes count per CPU (see `lazy_wakeup` in the probes), so all
/// CPUs together leave at most that much unread between wakeups. `cpus` is the number of
/// possible CPUs, `None` when unknown (then each CPU counts 4 KiB).
fn wakeup_bytes_per_cpu(ringbuf_bytes: u32, cpus: Option<usize>) -> u64 {
    let total = WAKEUP_BYTES.min(u64::from(ringbuf_bytes) / 4);
    let cpus = cpus.map_or(u64::MAX, |n| n.max(1) as u64);
    (total / cpus).max(4096)
}

/// Errors of loading and attaching the probes.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// The object did not load (verifier rejection, missing privileges...).
    #[error("loading the eBPF object: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    /// A program is missing from the object or failed to load/attach.
    #[error("eBPF program {program} ({category}/{tracepoint}): {source}")]
    Program {
        /// Program name.
        program: &'static str,
        /// Tracepoint category.
        category: &'static str,
        /// Tracepoint name.
        tracepoint: &'static str,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A map is missing or of the wrong type.
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, String),
    /// The kernel's BTF, which types the syscall probes, could not be used.
    #[error(transparent)]
    Btf(#[from] crate::btf::BtfError),
    /// A tracepoint's format file did not match what the probes assume.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
}

/// An attachment owned by the observer (dropping it detaches the program).
enum Link {
    Btf(#[allow(dead_code)] BtfTracePointLink),
    Tp(#[allow(dead_code)] Vec<TracePointLink>),
    /// A cgroup program's bpf_link, as a descriptor of our own so that a duplicate can be
    /// handed to the watchdog (the attachment lasts until the last descriptor closes).
    SockFd(OwnedFd),
}

/// `BPF_LINK_GET_FD_BY_ID` (include/uapi/linux/bpf.h).
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;

/// Opens a new descriptor of the bpf_link with this id (root only).
fn link_fd_by_id(id: u32) -> std::io::Result<OwnedFd> {
    // The `*_GET_FD_BY_ID` part of `union bpf_attr`: id, next_id, open_flags.
    let attr: [u32; 3] = [id, 0, 0];
    // SAFETY: `attr` is a valid prefix of `union bpf_attr` of the size passed, alive for the
    // whole call; the kernel only reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_GET_FD_BY_ID,
            attr.as_ptr(),
            std::mem::size_of_val(&attr) as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(r).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a non-negative return is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Turns an attached cgroup program's link into a plain descriptor of its bpf_link. Kernels
/// before 5.7 attach with `BPF_PROG_ATTACH` (no link object, nothing the watchdog could hold):
/// they are refused, since the rules could then outlive the session unnoticed.
fn own_link(link: CgroupSockAddrLink) -> Result<Link, Box<dyn std::error::Error + Send + Sync>> {
    let fd_link = FdLink::try_from(link).map_err(|e| {
        format!("{e}: this kernel attached without a bpf_link (Linux 5.7 or later is needed)")
    })?;
    let id = fd_link.info().map_err(Box::new)?.id();
    let fd = link_fd_by_id(id)?;
    // Our descriptor holds the link: dropping aya's copy does not detach it.
    drop(fd_link);
    Ok(Link::SockFd(fd))
}

/// What the network programs need at load time.
pub struct NetSetup<'a> {
    /// The session cgroup's directory (the programs attach to it).
    pub cgroup_dir: BorrowedFd<'a>,
    /// Allow-list mode.
    pub default_deny: bool,
    /// Initial map contents.
    pub v4: &'a Table<[u8; 4]>,
    /// Initial map contents.
    pub v6: &'a Table<[u8; 16]>,
}

/// The network rule maps, writable for the whole session (re-resolved hostnames).
pub struct NetMaps {
    v4: LpmTrie<MapData, [u8; 4], NetRules>,
    v6: LpmTrie<MapData, [u8; 16], NetRules>,
}

impl NetMaps {
    /// Writes every prefix of the tables (entries are only ever added or widened, so writing
    /// over the old contents never opens a gap).
    pub fn apply(&mut self, v4: &Table<[u8; 4]>, v6: &Table<[u8; 16]>) -> Result<(), EbpfError> {
        for (len, key, rules) in v4 {
            self.v4
                .insert(&Key::new(*len, *key), rules, 0)
                .map_err(|e| EbpfError::Map("NET4", format!("{e} (is the map full?)")))?;
        }
        for (len, key, rules) in v6 {
            self.v6
                .insert(&Key::new(*len, *key), rules, 0)
                .map_err(|e| EbpfError::Map("NET6", format!("{e} (is the map full?)")))?;
        }
        Ok(())
    }
}

/// The loaded, attached probes of one session.
pub struct Observer {
    ebpf: Ebpf,
    links: Vec<Link>,
    ringbuf_bytes: u32,
    net_maps: Option<NetMaps>,
}

fn take_lpm<K: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<LpmTrie<MapData, K, NetRules>, EbpfError> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| EbpfError::Map(name, "missing from the object".into()))?;
    LpmTrie::try_from(map).map_err(|e| EbpfError::Map(name, e.to_string()))
}

/// How one program of the object is attached.
#[derive(Clone, Copy)]
enum Job {
    /// A cgroup sock_addr program, on the session cgroup.
    Sock(&'static str),
    /// A BTF-typed raw tracepoint: (program, tracepoint).
    Btf(&'static str, &'static str),
    /// A classic tracepoint: (program, category, tracepoint).
    Tp(&'static str, &'static str, &'static str),
    /// One classic-tracepoint program attached to several `syscalls` tracepoints.
    Syscalls(&'static str, &'static [&'static str]),
}

impl Job {
    /// Every program the supervisor attaches.
    fn all() -> Vec<Job> {
        SOCK_PROGRAMS
            .iter()
            .map(|&p| Job::Sock(p))
            .chain(BTF_PROBES.iter().map(|&(p, t)| Job::Btf(p, t)))
            .chain(PROBES.iter().map(|&(p, c, t)| Job::Tp(p, c, t)))
            .chain([Job::Syscalls(SYSCALL_ENTER_PROBE.0, SYSCALL_ENTER_PROBE.1)])
            .collect()
    }

    /// (program, category, tracepoint), for errors.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Job::Sock(p) => (p, "cgroup_sock_addr", p),
            Job::Btf(p, t) => (p, "tp_btf", t),
            Job::Tp(p, c, t) => (p, c, t),
            Job::Syscalls(p, t) => (p, "syscalls", t.first().copied().unwrap_or("")),
        }
    }

    /// Loads and attaches `prog`.
    fn run(
        self,
        prog: &mut aya::programs::Program,
        cgroup_dir: BorrowedFd<'_>,
        btf: &Btf,
    ) -> Result<Link, EbpfError> {
        let (program, category, tracepoint) = self.names();
        let err = |source: Box<dyn std::error::Error + Send + Sync>| EbpfError::Program {
            program,
            category,
            tracepoint,
            source,
        };
        let wrong = |e: aya::programs::ProgramError| err(Box::new(e));
        match self {
            Job::Sock(_) => {
                let prog: &mut CgroupSockAddr = prog.try_into().map_err(wrong)?;
                prog.load().map_err(wrong)?;
                let id = prog
                    .attach(cgroup_dir, CgroupAttachMode::Single)
                    .map_err(wrong)?;
                let link = prog.take_link(id).map_err(wrong)?;
                own_link(link).map_err(err)
            }
            Job::Btf(_, t) => {
                let prog: &mut BtfTracePoint = prog.try_into().map_err(wrong)?;
                prog.load(t, btf).map_err(wrong)?;
                let id = prog.attach().map_err(wrong)?;
                Ok(Link::Btf(prog.take_link(id).map_err(wrong)?))
            }
            Job::Tp(_, c, t) => {
                let prog: &mut TracePoint = prog.try_into().map_err(wrong)?;
                prog.load().map_err(wrong)?;
                let id = prog.attach(c, t).map_err(wrong)?;
                Ok(Link::Tp(vec![prog.take_link(id).map_err(wrong)?]))
            }
            Job::Syscalls(program, tracepoints) => {
                let prog: &mut TracePoint = prog.try_into().map_err(wrong)?;
                prog.load().map_err(wrong)?;
                let mut links = Vec::with_capacity(tracepoints.len());
                for &t in tracepoints {
                    let id = prog.attach("syscalls", t).map_err(|e| EbpfError::Program {
                        program,
                        category: "syscalls",
                        tracepoint: t,
                        source: Box::new(e),
                    })?;
                    links.push(prog.take_link(id).map_err(wrong)?);
                }
                Ok(Link::Tp(links))
            }
        }
    }
}

impl Observer {
    /// Loads the probes, points them at the session cgroup and attaches them.
    ///
    /// `ringbuf_bytes` must be a power of two multiple of the page size.
    pub fn start(
        cgroup_id: u64,
        cgroup_level: u32,
        sched: SchedOffsets,
        ringbuf_bytes: u32,
        net: NetSetup<'_>,
    ) -> Result<Self, EbpfError> {
        // The tp_btf probes need their tracepoints' BTF ids, and every tracing probe the task
        // field offsets, in its read-only data before the verifier sees it (see `crate::btf`).
        let kernel = kernel_btf()?;
        let enter = SyscallEnterOffsets::read(SYSCALL_ENTER_PROBE.1)?;
        let mut ebpf = EbpfLoader::new()
            // No CO-RE relocations in Rust eBPF: skip parsing the kernel's BTF (~1.6 MB).
            .btf(None)
            .override_global("TASK_OFFSETS", &kernel.task, true)
            .map_max_entries("EVENTS", ringbuf_bytes)
            .load(OBJECT)
            .map_err(|e| EbpfError::Load(Box::new(e)))?;

        // Configure before attaching, so that the first record a probe writes is already right.
        let config = Config {
            session_cgroup_id: cgroup_id,
            session_cgroup_level: cgroup_level,
            fork_parent_pid_off: sched.fork_parent_pid,
            fork_child_pid_off: sched.fork_child_pid,
            exit_group_dead_off: sched.exit_group_dead.unwrap_or(u32::MAX),
            wakeup_bytes: wakeup_bytes_per_cpu(ringbuf_bytes, aya::util::nr_cpus().ok()),
            net_default_deny: u32::from(net.default_deny),
            sys_enter_nr_off: enter.nr,
            sys_enter_args_off: enter.args,
            _pad: 0,
        };
        let map = ebpf
            .map_mut("CONFIG")
            .ok_or_else(|| EbpfError::Map("CONFIG", "missing from the object".into()))?;
        let mut cfg_map: Array<&mut MapData, Config> =
            Array::try_from(map).map_err(|e| EbpfError::Map("CONFIG", e.to_string()))?;
        cfg_map
            .set(0, config, 0)
            .map_err(|e| EbpfError::Map("CONFIG", e.to_string()))?;

        let mut links = Vec::with_capacity(PROBES.len());
        let map = ebpf
            .map_mut("SYSCALLS")
            .ok_or_else(|| EbpfError::Map("SYSCALLS", "missing from the object".into()))?;
        let mut table: Array<&mut MapData, u32> =
            Array::try_from(map).map_err(|e| EbpfError::Map("SYSCALLS", e.to_string()))?;
        for &(nr, id) in SYSCALL_TABLE {
            table
                .set(nr as u32, id, 0)
                .map_err(|e| EbpfError::Map("SYSCALLS", format!("syscall {nr}: {e}")))?;
        }

        // The rules are in the maps before any program can consult them.
        let mut net_maps = NetMaps {
            v4: take_lpm(&mut ebpf, "NET4")?,
            v6: take_lpm(&mut ebpf, "NET6")?,
        };
        net_maps.apply(net.v4, net.v6)?;
        // Each program is loaded (the verifier: ~35 ms of CPU for the whole set) and attached
        // (each attach waits for the kernel to patch and synchronise its hook) on a thread of
        // its own: done one after another they were most of a session's start.
        let cgroup_dir = net.cgroup_dir;
        let pairs: Vec<(&str, u32)> = kernel
            .probe_ids
            .iter()
            .map(|(n, id)| (n.as_str(), *id))
            .collect();
        let btf = &crate::btf::stand_in(&pairs)?;
        let wanted = Job::all();
        for &job in &wanted {
            let (program, category, tracepoint) = job.names();
            if ebpf.program(program).is_none() {
                return Err(EbpfError::Program {
                    program,
                    category,
                    tracepoint,
                    source: "missing from the object".into(),
                });
            }
        }
        let results: Vec<Result<Link, EbpfError>> = std::thread::scope(|s| {
            let jobs: Vec<_> = ebpf
                .programs_mut()
                .filter_map(|(name, prog)| {
                    let job = *wanted.iter().find(|j| j.names().0 == name)?;
                    Some(s.spawn(move || job.run(prog, cgroup_dir, btf)))
                })
                .collect();
            jobs.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(EbpfError::Program {
                            program: "?",
                            category: "?",
                            tracepoint: "?",
                            source: "the loading thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        for r in results {
            links.push(r?);
        }
        Ok(Self {
            ebpf,
            links,
            ringbuf_bytes,
            net_maps: Some(net_maps),
        })
    }

    /// Detaches every probe and unloads the programs.
    ///
    /// Each detach waits for an RCU grace period in the kernel (tens of milliseconds); done one
    /// after another they would add over a second to every session's exit, so the links are
    /// closed from parallel threads and their grace periods overlap.
    pub fn shutdown(self) {
        let Self {
            ebpf,
            links,
            net_maps,
            ..
        } = self;
        drop(net_maps);
        std::thread::scope(|s| {
            for link in links {
                s.spawn(move || drop(link));
            }
        });
        drop(ebpf);
    }

    /// Detaches every probe without making the caller wait for it.
    ///
    /// The last close of a tracepoint's perf event unregisters the probe and waits for an RCU
    /// grace period under a kernel-wide mutex: ~30 ms per tracepoint, over half a second for
    /// all of them. A forked reaper (outside the session cgroup) takes over the last reference
    /// to every descriptor: this process closes its copies first, which is cheap, then lets the
    /// reaper close the rest and exit. The probes keep filtering on a session cgroup that no
    /// longer exists until then, so they observe nothing. If fork fails, detaching happens here.
    pub fn shutdown_in_background(self) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return self.shutdown();
        }
        let [rd, wr] = fds;
        // SAFETY: the child only makes async-signal-safe system calls (close_range, read,
        // _exit) before it ends, so forking a process that may have other threads is sound.
        match unsafe { libc::fork() } {
            0 => unsafe {
                // Release stdio at once so that whoever reads our output sees EOF.
                libc::close_range(0, 2, 0);
                libc::close(wr);
                let mut b = 0u8;
                // Wait until the parent has closed its copies (EOF when it closes `wr`).
                while libc::read(rd, (&raw mut b).cast(), 1) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                libc::close_range(3, u32::MAX, 0);
                libc::_exit(0);
            },
            -1 => {
                // SAFETY: closing the pipe we created.
                unsafe {
                    libc::close(rd);
                    libc::close(wr);
                }
                self.shutdown();
            }
            _ => {
                drop(self);
                // SAFETY: closing the pipe we created; EOF releases the reaper.
                unsafe {
                    libc::close(rd);
                    libc::close(wr);
                }
            }
        }
    }

    /// Descriptors of the cgroup programs' bpf_links, for the watchdog to hold duplicates of:
    /// the network rules then stay attached to the session cgroup until the watchdog lets go.
    pub fn cgroup_link_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.links
            .iter()
            .filter_map(|l| match l {
                Link::SockFd(fd) => Some(fd.as_fd()),
                _ => None,
            })
            .collect()
    }

    /// Takes the network rule maps (once), for updates during the session.
    pub fn take_net_maps(&mut self) -> Option<NetMaps> {
        self.net_maps.take()
    }

    /// Takes the event ring buffer (once).
    pub fn take_ring_buffer(&mut self) -> Result<RingBuf<MapData>, EbpfError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| EbpfError::Map("EVENTS", "missing or already taken".into()))?;
        RingBuf::try_from(map).map_err(|e| EbpfError::Map("EVENTS", e.to_string()))
    }

    /// Size of the ring buffer in bytes.
    pub fn ring_buffer_bytes(&self) -> u32 {
        self.ringbuf_bytes
    }

    /// Events the probes could not reserve, per kind, summed over CPUs.
    pub fn lost(&self) -> Result<Vec<(EventKind, u64)>, EbpfError> {
        let map = self
            .ebpf
            .map("LOST")
            .ok_or_else(|| EbpfError::Map("LOST", "missing from the object".into()))?;
        let lost: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| EbpfError::Map("LOST", e.to_string()))?;
        let mut out = Vec::new();
        for kind in EventKind::ALL {
            debug_assert!((kind as u32) < KIND_SLOTS);
            let per_cpu = lost
                .get(&(kind as u32), 0)
                .map_err(|e| EbpfError::Map("LOST", e.to_string()))?;
            out.push((kind, per_cpu.iter().sum()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn cpus_share_the_wakeup_threshold() {
        // 8 MiB ring, 2 CPUs: 128 KiB each, 256 KiB together.
        assert_eq!(wakeup_bytes_per_cpu(8 << 20, Some(2)), 128 << 10);
        // A 256 KiB ring: a quarter of it, shared.
        assert_eq!(wakeup_bytes_per_cpu(256 << 10, Some(2)), 32 << 10);
        // Many CPUs or an unknown count: never below a page.
        assert_eq!(wakeup_bytes_per_cpu(8 << 20, Some(4096)), 4096);
        assert_eq!(wakeup_bytes_per_cpu(8 << 20, None), 4096);
        assert_eq!(wakeup_bytes_per_cpu(8 << 20, Some(0)), 256 << 10);
    }

    /// `MAP_NAMES` and the program lists are written by hand; leftover detection relies on
    /// them naming every map and program of the object, so they are checked against it.
    #[test]
    fn the_name_lists_match_the_object() {
        let obj = aya_obj::Object::parse(OBJECT).expect("the built object parses");
        let maps: BTreeSet<&str> = obj
            .maps
            .keys()
            .map(String::as_str)
            .filter(|m| !m.starts_with('.'))
            .collect();
        assert_eq!(maps, MAP_NAMES.iter().copied().collect::<BTreeSet<_>>());
        let programs: BTreeSet<&str> = obj.programs.keys().map(String::as_str).collect();
        let listed: BTreeSet<&str> = BTF_PROBES
            .iter()
            .map(|(p, _)| *p)
            .chain(PROBES.iter().map(|(p, _, _)| *p))
            .chain([SYSCALL_ENTER_PROBE.0])
            .chain(SOCK_PROGRAMS.iter().copied())
            .collect();
        assert_eq!(programs, listed);
    }
}
