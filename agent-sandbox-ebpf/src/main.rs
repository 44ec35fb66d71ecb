//! Observation probes of agent-sandbox.
//!
//! Every program is a thin entry point that calls a `try_*` body and ignores its error: an
//! observation probe must never change what the observed syscall does, and a failed read only
//! costs the event (counted in `LOST` when the ring buffer is full, flagged in the event when a
//! user pointer cannot be read).
//!
//! Syscalls are observed at their exit by one BTF-typed raw tracepoint (tp_btf), `sys_exit`,
//! which sees every syscall and dispatches on the `SYSCALLS` table (filled by the supervisor
//! from the architecture's syscall numbers): opens, results, refusals. tp_btf because the
//! kernel then types its `struct pt_regs *` argument: registers are plain loads, not a
//! `bpf_probe_read_kernel` call per syscall. The few calls that must be seen at their entry
//! (exec, connect, unlink/rename, clone) come through their own `syscalls/sys_enter_*`
//! tracepoints, one program attached to each: such a tracepoint builds a perf record before
//! the program runs, which is dear for a hot call (an open loop observed that way was slower
//! than this whole design) but costs nothing for the syscalls it does not cover, where a
//! `sys_enter` raw tracepoint would run a program on the entry of every syscall.
//!
//! The open path runs for every `openat` of the session, so it is kept to the helper calls it
//! needs: header fields are loads from the task, and the record is filled in place (no stack
//! copies, no `memset` calls). Only the rare path calls (unlink, rename) look in `DEFERRED`
//! at their exit.
//!
//! Only tasks whose cgroup v2 ancestor at the session's level is the session cgroup produce
//! events. Records of non-syscall tracepoints (`sched_*`) change between kernels, so their
//! offsets (and those of the `sys_enter_*` records) come from the `CONFIG` map, read by the
//! supervisor from the kernel's format files.
// The crate is only meaningful for the BPF target; on the host it builds as an empty program so
// that `cargo clippy --workspace --all-targets` can check it.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use core::{ffi::c_void, mem::size_of, ptr::read_volatile};

use agent_sandbox_common::{
    ADDR_LEN, ARG_LEN, ARGV_SOFT_CAP, COMM_LEN, Config, ConnectEvent, EventHeader, EventKind,
    ExecEvent, ExecResultEvent, ExitEvent, FLAG_READ_ERROR, FLAG_TRUNCATED, ForkEvent, KIND_SLOTS,
    MAX_ARGS, NET_ACTION_DENY, NET_PORT_SLOTS, NET_PROTO_TCP, NET_PROTO_UDP, NET_RULE_DEFAULT,
    NetRefusedEvent, NetRules, OpenEvent, PATH_LEN, PathOpEvent, SignalEvent, TaskOffsets,
    net_hook, ptrace_req, syscall,
};
use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_user,
        generated::{
            bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_current_task_btf,
            bpf_ktime_get_boot_ns, bpf_probe_read_user_str,
        },
    },
    macros::{btf_tracepoint, cgroup_sock_addr, map, tracepoint},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf, lpm_trie::Key, ring_buf::RingBufEntry},
    programs::{BtfTracePointContext, SockAddrContext, TracePointContext},
};

/// Default ring-buffer size; the supervisor may resize it at load time (`--ringbuf-mb`).
const RINGBUF_BYTES: u32 = 8 * 1024 * 1024;
/// Threads that called clone/clone3 and have not reached `sched_process_fork` yet. Bounded by the
/// number of concurrently forking threads in the session; a full map only means a thread may be
/// reported as a process.
const CLONE_INFLIGHT: u32 = 8192;

/// Threads inside an unlink/rename whose event was deferred to syscall exit. One per thread at
/// most; a full map means the event is emitted at entry, flagged `read_error`.
const DEFERRED_INFLIGHT: u32 = 8192;

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const CLONE_THREAD: u64 = 0x0001_0000;
const AT_FDCWD: i32 = -100;
const EPERM: i64 = 1;
const EACCES: i64 = 13;
const ENOSYS: i64 = 38;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// Offset of `cgroup` in `struct clone_args` (UAPI).
const CLONE_ARGS_CGROUP: usize = 80;
/// `O_WRONLY | O_CREAT | O_TRUNC`: what `creat` opens with.
const CREAT_FLAGS: u64 = 0o1 | 0o100 | 0o1000;

/// Size of the syscall-number table; x86_64 numbers stay below 512.
const SYSCALL_SLOTS: u32 = 1024;
/// Code segment selector of 64-bit user mode on x86_64 (`__USER_CS`); 32-bit (ia32) tasks
/// use other numbers for the same syscalls, so their syscalls are not interpreted.
const USER64_CS: u64 = 0x33;

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Syscall number -> our syscall id (`agent_sandbox_common::syscall`), 0 for syscalls we do
/// not observe. Filled by the supervisor.
#[map]
static SYSCALLS: Array<u32> = Array::with_max_entries(SYSCALL_SLOTS, 0);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(RINGBUF_BYTES, 0);

/// Events that could not be reserved, per `EventKind`.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Arguments of an unlink/rename whose strings were not readable at syscall entry, by thread
/// id, until the syscall's exit (see [`emit_path_op`]).
#[map]
static DEFERRED: HashMap<u32, Deferred> = HashMap::with_max_entries(DEFERRED_INFLIGHT, 0);

/// Per-CPU staging of open records (built by `sys_exit` only), see [`emit_open`].
#[map]
static OPEN_STAGING: PerCpuArray<OpenEvent> = PerCpuArray::with_max_entries(1, 0);
/// Where the path starts in an `OpenEvent`: a record is this header part plus the path's
/// bytes up to and including its NUL.
const OPEN_PATH_OFFSET: usize = core::mem::offset_of!(OpenEvent, path);

/// Captured syscall arguments: the event kind, our syscall id and up to six raw values whose
/// meaning depends on the kind (see [`path_op`] and [`try_denied`]).
#[derive(Clone, Copy)]
#[repr(C)]
struct Deferred {
    kind: u32,
    sc: u32,
    v: [u64; 6],
}

/// clone flags by thread id, from `sys_enter_clone*` to `sched_process_fork`, so that new threads
/// are not reported as new processes.
#[map]
static CLONE_FLAGS: HashMap<u32, u64> = HashMap::with_max_entries(CLONE_INFLIGHT, 0);

/// Where the fields [`Task`] reads sit in the running kernel's structures: written by the
/// supervisor from the kernel's BTF before loading (read-only data, so the verifier sees each
/// offset as a constant and checks every load against the kernel's types).
#[unsafe(no_mangle)]
static TASK_OFFSETS: TaskOffsets = TaskOffsets::from_array([0; 9]);

/// Bytes of records each CPU has written since it last woke the reader (see [`lazy_wakeup`]).
#[map]
static WAKE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The current task, BTF-typed (`bpf_get_current_task_btf`): its pid, uid, comm and cgroup are
/// plain loads at [`TASK_OFFSETS`] (see [`Actor::from_task`] for when that pays).
#[derive(Clone, Copy)]
struct Task(*const u8);

impl Task {
    #[inline(always)]
    fn current() -> Self {
        // SAFETY: plain helper call, always valid in a tracing program.
        Self(
            unsafe { bpf_get_current_task_btf() }
                .cast::<u8>()
                .cast_const(),
        )
    }

    /// The `T` at `*off` bytes into the structure at `base`.
    ///
    /// # Safety
    /// `base` must be a BTF-typed kernel pointer (the verifier then checks the load against
    /// the field's type and makes it fault-tolerant) and `off` a field of [`TASK_OFFSETS`].
    #[inline(always)]
    unsafe fn load<T: Copy>(base: *const u8, off: &u32) -> T {
        // SAFETY: see above; the volatile read keeps the offset a load from read-only data,
        // which the verifier turns into a constant.
        unsafe { *base.add(read_volatile(off) as usize).cast::<T>() }
    }

    /// `pid` (thread id) and `tgid` (process id).
    #[inline(always)]
    fn ids(self) -> (u32, u32) {
        // SAFETY: `self.0` is the current task_struct; the offsets are its fields.
        unsafe {
            (
                Self::load(self.0, &TASK_OFFSETS.task_pid),
                Self::load(self.0, &TASK_OFFSETS.task_tgid),
            )
        }
    }

    /// `cred->uid`, as `bpf_get_current_uid_gid` returns it.
    #[inline(always)]
    fn uid(self) -> u32 {
        // SAFETY: as in `ids`; `cred` is a pointer field, which the verifier types.
        unsafe {
            let cred: *const u8 = Self::load(self.0, &TASK_OFFSETS.task_cred);
            Self::load(cred, &TASK_OFFSETS.cred_uid)
        }
    }

    /// Copies `comm` into `dst` as two 8-byte loads.
    #[inline(always)]
    fn comm_into(self, dst: *mut [u8; COMM_LEN]) {
        const _: () = assert!(COMM_LEN == 16);
        // SAFETY: as in `ids`; `dst` is 16 bytes at an 8-byte aligned offset of a record.
        unsafe {
            let comm = self.0.add(read_volatile(&TASK_OFFSETS.task_comm) as usize);
            let d = dst.cast::<u64>();
            *d = *comm.cast::<u64>();
            *d.add(1) = *comm.add(8).cast::<u64>();
        }
    }

    /// The id of the task's cgroup on the v2 hierarchy (`cgroups->dfl_cgrp->kn->id`).
    #[inline(always)]
    fn cgroup_id(self) -> u64 {
        // SAFETY: as in `ids`; each step is a pointer field, typed by the verifier.
        unsafe {
            let css_set: *const u8 = Self::load(self.0, &TASK_OFFSETS.task_cgroups);
            let cgroup: *const u8 = Self::load(css_set, &TASK_OFFSETS.css_set_dfl_cgrp);
            let kn: *const u8 = Self::load(cgroup, &TASK_OFFSETS.cgroup_kn);
            Self::load(kn, &TASK_OFFSETS.kernfs_node_id)
        }
    }
}

/// The task a probe runs for, once it is known to belong to the session: what every record's
/// header needs (ids, uid, name).
///
/// Each program builds one at its top, before it branches, because reading the task directly
/// is dear to load: the verifier checks every load of a pointer field from a BTF-typed pointer
/// (`task->cred`, the cgroup chain) with linear name searches of the kernel's BTF
/// (`btf_nested_type_is_trusted`, up to four per load on 6.x), once for every path it explores
/// through that load. Inlined into every branch, these walks made `sys_exit` take ~50 ms to
/// load, a third of a session's start. Only `sys_exit`, which runs for every open, reads the
/// task ([`Actor::from_task`]); the programs of rarer events ask helpers
/// ([`Actor::from_helpers`]).
#[derive(Clone, Copy)]
struct Actor {
    cfg: &'static Config,
    tid: u32,
    pid: u32,
    uid: u32,
    /// The task, for its `comm`, when the program reads it directly; `None`: ask the helper.
    task: Option<Task>,
}

impl Actor {
    /// The current task from loads of its `task_struct`, `None` when it does not belong to
    /// the session: one helper call where [`Actor::from_helpers`] takes three (and a fourth
    /// for the name). On this kind of machine a helper call's return is what a probe mostly
    /// pays for, and `sys_exit` pays it for every open.
    #[inline(always)]
    fn from_task() -> Option<Self> {
        let cfg = CONFIG.get(0)?;
        if cfg.session_cgroup_id == 0 {
            return None;
        }
        let task = Task::current();
        // Every agent process sits in the session cgroup itself (it cannot create cgroups);
        // the helper answers for descendants of it and for everything else on the machine.
        if task.cgroup_id() != cfg.session_cgroup_id && !in_session_subtree(cfg) {
            return None;
        }
        let (tid, pid) = task.ids();
        Some(Self {
            cfg,
            tid,
            pid,
            uid: task.uid(),
            task: Some(task),
        })
    }

    /// The current task from helper calls, `None` when it does not belong to the session.
    #[inline(always)]
    fn from_helpers() -> Option<Self> {
        let cfg = CONFIG.get(0)?;
        if cfg.session_cgroup_id == 0 || !in_session_subtree(cfg) {
            return None;
        }
        Some(Self::of_caller(cfg))
    }

    /// The calling task from helper calls, with no session check: for the cgroup sock_addr
    /// programs, which only run for the session's sockets and may not read the task.
    #[inline(always)]
    fn of_caller(cfg: &'static Config) -> Self {
        let pid_tgid = bpf_get_current_pid_tgid();
        Self {
            cfg,
            tid: pid_tgid as u32,
            pid: (pid_tgid >> 32) as u32,
            uid: bpf_get_current_uid_gid() as u32,
            task: None,
        }
    }
}

/// Whether the current task's cgroup is the session cgroup or below it.
#[inline(always)]
fn in_session_subtree(cfg: &Config) -> bool {
    // SAFETY: plain helper call; the level is a small integer written by the supervisor.
    let id = unsafe { bpf_get_current_ancestor_cgroup_id(cfg.session_cgroup_level as i32) };
    id == cfg.session_cgroup_id
}

/// A ring-buffer record for an event of `kind`; when the ring is full, the loss is counted.
#[inline(always)]
fn reserve<T: 'static>(kind: EventKind) -> Result<RingBufEntry<T>, i64> {
    EVENTS.reserve::<T>(0).ok_or_else(|| {
        count_lost(kind);
        -1
    })
}

#[inline(always)]
fn count_lost(kind: EventKind) {
    if let Some(slot) = LOST.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run (preemption is disabled in
        // tracepoint programs).
        unsafe { *slot += 1 };
    }
}

/// Wakeup flag for high-rate events (`size` = this record's size): wake the reader once this
/// CPU has written `cfg.wakeup_bytes` since it last did. Waking on every record would cost an
/// interrupt per event; the reader drains everything once woken, and also polls, so nothing
/// stays unread for longer than its poll interval. A per-CPU count, not the ring's fill level:
/// asking the ring is a helper call, and this runs for every open.
#[inline(always)]
fn lazy_wakeup(cfg: &Config, size: usize) -> u64 {
    let Some(written) = WAKE.get_ptr_mut(0) else {
        return BPF_RB_FORCE_WAKEUP;
    };
    // SAFETY: this CPU's slot; tracing programs run with preemption disabled, and a nested
    // run on this CPU is skipped by the kernel, so only this run writes it meanwhile.
    unsafe {
        let n = *written + size as u64;
        if n >= cfg.wakeup_bytes {
            *written = 0;
            BPF_RB_FORCE_WAKEUP
        } else {
            *written = n;
            BPF_RB_NO_WAKEUP
        }
    }
}

/// Fills the common header for `me`. `h` points into a reserved ring-buffer record or a
/// staging slot.
#[inline(always)]
unsafe fn fill_header(h: *mut EventHeader, kind: EventKind, syscall: u32, me: &Actor) {
    // SAFETY: `h` is a valid, exclusively owned pointer into a record.
    unsafe {
        (*h).ktime_ns = bpf_ktime_get_boot_ns();
        (*h).kind = kind as u32;
        (*h).tid = me.tid;
        (*h).pid = me.pid;
        (*h).uid = me.uid;
        (*h).flags = 0;
        (*h).syscall = syscall;
        let comm = &raw mut (*h).comm;
        match me.task {
            Some(t) => t.comm_into(comm),
            // Straight into the record (the helper zero-fills on failure): going through a
            // returned array costs a stack copy byte by byte and a memset call.
            None => {
                bpf_get_current_comm(comm.cast::<c_void>(), COMM_LEN as u32);
            }
        }
    }
}

/// Copies a NUL-terminated user string into `dst` (capacity `N`), returning header flags.
#[inline(always)]
unsafe fn read_user_str<const N: usize>(dst: *mut [u8; N], src: *const u8) -> u32 {
    // SAFETY: the helper writes at most N bytes into `dst` and always NUL-terminates.
    let n = unsafe { bpf_probe_read_user_str(dst.cast::<c_void>(), N as u32, src.cast()) };
    if n < 0 {
        // Leave an empty string behind rather than whatever the reservation held.
        unsafe { (*dst)[0] = 0 };
        FLAG_READ_ERROR
    } else if n as usize >= N {
        FLAG_TRUNCATED
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// syscall dispatch

/// The arguments of the current syscall from the task's saved user registers, `None` for a
/// task in 32-bit mode (its syscall numbers and registers mean other things).
///
/// `regs` is the tracepoint's `struct pt_regs *`, typed by the kernel's BTF, so each field is
/// a direct load that the verifier guards against faults: no helper call per read. The
/// x86_64 syscall convention passes arguments in rdi, rsi, rdx, r10, r8, r9.
#[inline(always)]
unsafe fn syscall_args(regs: *const pt_regs) -> Option<[u64; 6]> {
    // SAFETY: `regs` comes from a tp_btf context (PTR_TO_BTF_ID of struct pt_regs, a UAPI
    // layout); the verifier turns these loads into fault-tolerant ones.
    unsafe {
        if (*regs).cs != USER64_CS {
            return None;
        }
        Some([
            (*regs).rdi,
            (*regs).rsi,
            (*regs).rdx,
            (*regs).r10,
            (*regs).r8,
            (*regs).r9,
        ])
    }
}

/// Our id of syscall `nr`, 0 when we do not observe it.
#[inline(always)]
fn lookup_syscall(nr: i64) -> u32 {
    if !(0..SYSCALL_SLOTS as i64).contains(&nr) {
        return 0;
    }
    SYSCALLS.get(nr as u32).copied().unwrap_or(0)
}

/// The `syscalls/sys_enter_<name>` tracepoints of the calls observed at their entry: exec
/// (argv must be read before the new program replaces it), connect (it may block for long),
/// unlink/rmdir/rename (reported as attempted, before the gate or the kernel refuses them) and
/// clone (its flags, for the fork that follows). One program, attached to each of them.
///
/// Not a `sys_enter` raw tracepoint, which runs a program on the entry of every syscall on the
/// machine: the kernel's per-syscall tracepoints skip every other syscall with a bit test, and
/// the hot calls (`openat`, `close`) are then seen by `sys_exit` alone (see [`try_sys_exit`]).
/// The record is `__syscall_nr` and the six arguments, at offsets read from the format files
/// (`cfg.sys_enter_nr_off`, `cfg.sys_enter_args_off`). The kernel fires these tracepoints for
/// 64-bit syscalls only, so there is no 32-bit task to filter out.
#[tracepoint]
pub fn sys_enter_watched(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter(&ctx);
    0
}

fn try_sys_enter(ctx: &TracePointContext) -> Result<(), i64> {
    let Some(me) = Actor::from_helpers() else {
        return Ok(());
    };
    let cfg = me.cfg;
    // SAFETY: offsets from the kernel's format files; the reads go through the fault-tolerant
    // helper. Fewer than six arguments leave the rest unspecified and unused.
    let (nr, a) = unsafe {
        (
            ctx.read_at::<i32>(cfg.sys_enter_nr_off as usize)?,
            ctx.read_at::<[u64; 6]>(cfg.sys_enter_args_off as usize)?,
        )
    };
    let sc = lookup_syscall(i64::from(nr));
    match sc {
        syscall::EXECVE | syscall::EXECVEAT => try_exec(&me, sc, &a),
        syscall::CONNECT => try_connect(&me, a[0] as i32, a[1] as *const u8, a[2] as u32),
        syscall::UNLINK | syscall::RMDIR => path_op(&me, sc, [AT_FDCWD as u64, a[0], 0, 0, 0]),
        syscall::UNLINKAT => path_op(&me, sc, [a[0], a[1], 0, 0, a[2]]),
        syscall::RENAME => path_op(&me, sc, [AT_FDCWD as u64, a[0], AT_FDCWD as u64, a[1], 0]),
        syscall::RENAMEAT => path_op(&me, sc, [a[0], a[1], a[2], a[3], 0]),
        syscall::RENAMEAT2 => path_op(&me, sc, [a[0], a[1], a[2], a[3], a[4]]),
        syscall::CLONE => {
            note_clone(&me, a[0]);
            Ok(())
        }
        syscall::CLONE3 => {
            // struct clone_args starts with `u64 flags`.
            // SAFETY: user memory through the fault-tolerant helper.
            note_clone(
                &me,
                unsafe { bpf_probe_read_user(a[0] as *const u64) }.unwrap_or(0),
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `sys_exit(struct pt_regs *regs, long ret)`: opens, exec results, unlink/rename events
/// deferred at entry, path calls refused with EACCES/EPERM, signals and ptrace attaches.
///
/// Opens are recorded here rather than at entry: this probe runs for every syscall anyway,
/// and a `sys_enter` probe would have been a second program run on every syscall of the
/// machine. At exit the path is always readable (the kernel has just copied it, faulting its
/// page in), so an open is never deferred.
///
/// The saved argument registers are still those of the call at its exit (x86_64 syscalls
/// return in rax and clobber only rcx and r11), so calls looked at only here re-read them.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let regs: *const pt_regs = ctx.arg(0);
    // SAFETY: `regs` is the tracepoint's BTF-typed pointer; the load is fault-tolerant.
    let nr = unsafe { (*regs).orig_rax };
    let sc = lookup_syscall(nr as i64);
    if sc != 0 {
        let _ = try_sys_exit(regs, sc, ctx.arg::<i64>(1));
    }
    0
}

fn try_sys_exit(regs: *const pt_regs, sc: u32, ret: i64) -> Result<(), i64> {
    match sc {
        syscall::CONNECT | syscall::CLONE => return Ok(()),
        syscall::CLONE3 if ret >= 0 => return Ok(()),
        _ => {}
    }
    let Some(me) = Actor::from_task() else {
        return Ok(());
    };
    match sc {
        syscall::EXECVE | syscall::EXECVEAT => try_exec_result(&me, sc, ret),
        syscall::KILL..=syscall::PTRACE => try_signal(&me, regs, sc, ret),
        syscall::CREAT | syscall::TRUNCATE => try_denied(&me, regs, sc, ret),
        syscall::OPEN | syscall::OPENAT | syscall::OPENAT2 => {
            let opened = try_open(&me, regs, sc);
            // The one check ordinary opens pay: a refusal is rare.
            if ret == -EACCES || ret == -EPERM {
                try_denied(&me, regs, sc, ret)
            } else {
                opened
            }
        }
        _ => {
            let replayed = try_replay(&me);
            if ret == -EACCES || ret == -EPERM {
                try_denied(&me, regs, sc, ret)
            } else {
                replayed
            }
        }
    }
}

/// The arguments of the current syscall at its exit, for a task in 64-bit mode.
#[inline(always)]
fn exit_args(regs: *const pt_regs) -> Result<[u64; 6], i64> {
    // SAFETY: the pointer comes from the tracepoint.
    unsafe { syscall_args(regs) }.ok_or(0)
}

// ---------------------------------------------------------------------------------------------
// signals and ptrace

/// kill / tkill / tgkill / rt_sigqueueinfo / rt_tgsigqueueinfo / pidfd_send_signal, and
/// ptrace attach/seize. A process signalling itself (raise, abort, Go's preemption signals) is
/// not reported.
fn try_signal(me: &Actor, regs: *const pt_regs, sc: u32, ret: i64) -> Result<(), i64> {
    let a = exit_args(regs)?;
    let (own_tid, own_pid) = (me.tid as i32, me.pid as i32);
    let (target, tid, sig) = match sc {
        syscall::TGKILL | syscall::RT_TGSIGQUEUEINFO => (a[0] as i32, a[1] as i32, a[2] as u32),
        syscall::PTRACE => {
            let req = a[0] as u32;
            if req != ptrace_req::ATTACH && req != ptrace_req::SEIZE {
                return Ok(());
            }
            (a[1] as i32, 0, req)
        }
        _ => (a[0] as i32, 0, a[1] as u32),
    };
    let own = match sc {
        syscall::TKILL => target == own_tid,
        syscall::PIDFD_SEND_SIGNAL => false,
        _ => target == own_pid,
    };
    if own {
        return Ok(());
    }
    let mut entry = reserve::<SignalEvent>(EventKind::Signal)?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Signal, sc, me);
        (*ev).ret = ret;
        (*ev).target = target;
        (*ev).target_tid = tid;
        (*ev).sig = sig;
        (*ev)._pad = 0;
    }
    entry.submit(0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// refused path calls

/// A path call that failed with EACCES or EPERM: the attempt to write, delete or rename
/// something the session may not touch (the sandbox's state, the cgroup filesystem, another
/// user's files), reported with its result. Also a `clone3(CLONE_INTO_CGROUP)` that failed
/// (ENOSYS included: the filter's answer to a root agent), with the cgroup's fd as `dirfd1`.
/// Emitted in the [`PathOpEvent`] layout.
fn try_denied(me: &Actor, regs: *const pt_regs, sc: u32, ret: i64) -> Result<(), i64> {
    if ret != -EACCES && ret != -EPERM && !(sc == syscall::CLONE3 && ret == -ENOSYS) {
        return Ok(());
    }
    let a = exit_args(regs)?;
    let cwd = AT_FDCWD as u64;
    // [dirfd, path, target dirfd, target path, flags]
    let v: [u64; 5] = match sc {
        syscall::OPEN => [cwd, a[0], 0, 0, a[1]],
        syscall::OPENAT => [a[0], a[1], 0, 0, a[2]],
        syscall::OPENAT2 => {
            // SAFETY: user memory through the fault-tolerant helper (open_how.flags).
            let f = unsafe { bpf_probe_read_user(a[2] as *const u64) }.unwrap_or(0);
            [a[0], a[1], 0, 0, f]
        }
        syscall::CREAT => [cwd, a[0], 0, 0, CREAT_FLAGS],
        syscall::TRUNCATE | syscall::UNLINK | syscall::RMDIR => [cwd, a[0], 0, 0, 0],
        syscall::UNLINKAT => [a[0], a[1], 0, 0, a[2]],
        syscall::RENAME => [cwd, a[0], cwd, a[1], 0],
        syscall::RENAMEAT => [a[0], a[1], a[2], a[3], 0],
        syscall::RENAMEAT2 => [a[0], a[1], a[2], a[3], a[4]],
        syscall::CLONE3 => {
            let ca = a[0] as *const u8;
            // SAFETY: user memory through the fault-tolerant helper (clone_args.flags, .cgroup).
            let (flags, fd) = unsafe {
                (
                    bpf_probe_read_user(ca.cast::<u64>()).unwrap_or(0),
                    bpf_probe_read_user(ca.add(CLONE_ARGS_CGROUP).cast::<u64>()).unwrap_or(0),
                )
            };
            if flags & CLONE_INTO_CGROUP == 0 {
                return Ok(());
            }
            [fd, 0, 0, 0, 0]
        }
        _ => return Ok(()),
    };
    let args = Deferred {
        kind: EventKind::Denied as u32,
        sc,
        v: [v[0], v[1], v[2], v[3], v[4], ret as u64],
    };
    emit_path_op(me, &args, false)
}

// ---------------------------------------------------------------------------------------------
// exec

/// execve(filename, argv, envp) or execveat(dirfd, filename, argv, envp, flags).
fn try_exec(me: &Actor, sc: u32, a: &[u64; 6]) -> Result<(), i64> {
    let (dirfd, filename, argv, exec_flags) = if sc == syscall::EXECVEAT {
        (a[0] as i32, a[1], a[2], a[4])
    } else {
        (AT_FDCWD, a[0], a[1], 0)
    };
    let filename = filename as *const u8;
    let argv = argv as *const *const u8;
    let mut entry = reserve::<ExecEvent>(EventKind::Exec)?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation, valid for size_of::<ExecEvent>() bytes until submit.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Exec, sc, me);
        (*ev).dirfd = dirfd;
        (*ev).exec_flags = exec_flags as u32;
        let mut flags = read_user_str(&raw mut (*ev).filename, filename);

        let buf = (&raw mut (*ev).argv).cast::<u8>();
        let mut off: usize = 0;
        let mut argc: u32 = 0;
        for i in 0..MAX_ARGS {
            let Ok(p) = bpf_probe_read_user(argv.add(i)) else {
                flags |= FLAG_READ_ERROR;
                break;
            };
            if p.is_null() {
                break;
            }
            if off >= ARGV_SOFT_CAP || i == MAX_ARGS - 1 {
                // No room left, or the last slot: mark the list as cut rather than silently
                // dropping the rest.
                flags |= FLAG_TRUNCATED;
                break;
            }
            // The mask is a no-op at run time (off < ARGV_SOFT_CAP here) but lets the verifier
            // prove that `dst .. dst + ARG_LEN` stays inside the ARGV_SOFT_CAP + ARG_LEN buffer.
            let dst = buf.add(off & (ARGV_SOFT_CAP - 1));
            let n = bpf_probe_read_user_str(dst.cast(), ARG_LEN as u32, p.cast());
            if n <= 0 {
                flags |= FLAG_READ_ERROR;
                break;
            }
            if n as usize >= ARG_LEN {
                flags |= FLAG_TRUNCATED;
            }
            off += n as usize;
            argc += 1;
        }
        (*ev).argc = argc;
        (*ev).argv_len = off as u32;
        (*ev).header.flags = flags;
    }
    entry.submit(0);
    Ok(())
}

fn try_exec_result(me: &Actor, sc: u32, ret: i64) -> Result<(), i64> {
    let mut entry = reserve::<ExecResultEvent>(EventKind::ExecResult)?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::ExecResult, sc, me);
        (*ev).ret = ret;
    }
    entry.submit(0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// open

/// open(path, flags, mode), openat(dirfd, path, flags, mode) or openat2(dirfd, path, how,
/// size), at the call's exit (see [`sys_exit`]).
#[inline(always)]
fn try_open(me: &Actor, regs: *const pt_regs, sc: u32) -> Result<(), i64> {
    let a = exit_args(regs)?;
    let v = match sc {
        syscall::OPEN => [AT_FDCWD as u64, a[0], a[1] & 0xffff_ffff, a[2]],
        syscall::OPENAT => [a[0], a[1], a[2] & 0xffff_ffff, a[3]],
        _ => {
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            let how = a[2] as *const u64;
            // SAFETY: user memory through the fault-tolerant helper.
            let (f, m) = unsafe {
                (
                    bpf_probe_read_user(how).unwrap_or(0),
                    bpf_probe_read_user(how.add(1)).unwrap_or(0),
                )
            };
            [a[0], a[1], f, m]
        }
    };
    emit_open(me, sc, v)
}

/// Emits an open event from captured arguments `v` = [dirfd, path, flags, mode].
///
/// This is the path every traced open takes. The record is built in a per-CPU staging slot
/// (see [`OPEN_STAGING`]) and copied into the ring buffer with the path's real length, so
/// that a typical open takes ~120 bytes of the ring instead of the 584 of a whole
/// `OpenEvent`: fewer cache lines written per record, fewer for the reader, and a ring that
/// fills five times more slowly.
#[inline(always)]
fn emit_open(me: &Actor, sc: u32, v: [u64; 4]) -> Result<(), i64> {
    let ev = OPEN_STAGING.get_ptr_mut(0).ok_or(-1i64)?;
    // SAFETY: `ev` is this CPU's staging slot for this program; the program cannot be
    // re-entered on this CPU while it runs (the kernel skips a nested run), and syscall
    // tracepoint programs run with preemption disabled, so nothing else writes it meanwhile.
    // The path is read through the fault-tolerant helper.
    let len = unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Open, sc, me);
        (*ev).dirfd = v[0] as i32;
        (*ev).open_flags = v[2];
        (*ev).mode = v[3] as u32;
        let n = bpf_probe_read_user_str(
            (&raw mut (*ev).path).cast::<c_void>(),
            PATH_LEN as u32,
            v[1] as *const c_void,
        );
        let (f, len) = if n < 0 {
            (*ev).path[0] = 0;
            (FLAG_READ_ERROR, 1)
        } else if n as usize >= PATH_LEN {
            (FLAG_TRUNCATED, PATH_LEN)
        } else {
            (0, n as usize)
        };
        (*ev).header.flags = f;
        len
    };
    // The bound is a no-op at run time but lets the verifier see that the copy stays inside
    // the staging slot.
    let size = OPEN_PATH_OFFSET + if len > PATH_LEN { PATH_LEN } else { len };
    // SAFETY: `size` <= size_of::<OpenEvent>(), the slot's size.
    let bytes = unsafe { core::slice::from_raw_parts(ev.cast::<u8>(), size) };
    if EVENTS
        .output::<[u8]>(bytes, lazy_wakeup(me.cfg, size))
        .is_err()
    {
        count_lost(EventKind::Open);
        return Err(-1);
    }
    Ok(())
}

/// Parks arguments for replay at syscall exit; false when the map is full (then the event goes
/// out now, flagged `read_error`, rather than not at all).
#[inline(always)]
fn defer(me: &Actor, a: &Deferred) -> bool {
    DEFERRED.insert(me.tid, a, 0).is_ok()
}

/// Replays, at syscall exit, an unlink/rename event deferred at entry.
fn try_replay(me: &Actor) -> Result<(), i64> {
    // SAFETY: the value is copied out before the entry is removed.
    let a = match unsafe { DEFERRED.get(me.tid) } {
        Some(a) => *a,
        None => return Ok(()),
    };
    let _ = DEFERRED.remove(me.tid);
    emit_path_op(me, &a, false)
}

// ---------------------------------------------------------------------------------------------
// connect

fn try_connect(me: &Actor, fd: i32, sa: *const u8, addrlen: u32) -> Result<(), i64> {
    // SAFETY: user memory through the fault-tolerant helper.
    let family: u16 = unsafe { bpf_probe_read_user(sa.cast::<u16>()) }.map_err(|e| e as i64)?;

    let mut entry = reserve::<ConnectEvent>(EventKind::Connect)?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation; user reads go through the fault-tolerant helper.
    unsafe {
        fill_header(
            &raw mut (*ev).header,
            EventKind::Connect,
            syscall::CONNECT,
            me,
        );
        (*ev).fd = fd;
        (*ev).family = family;
        (*ev).addrlen = addrlen;
        (*ev)._pad = 0;
        (*ev).port = 0;
        let mut addr = [0u8; ADDR_LEN];
        let mut flags = 0;
        match family {
            // AF_INET: sockaddr_in { family, port (BE), addr[4] }
            2 => {
                let port: u16 = bpf_probe_read_user(sa.add(2).cast()).unwrap_or(0);
                (*ev).port = u16::from_be(port);
                match bpf_probe_read_user(sa.add(4).cast::<[u8; 4]>()) {
                    Ok(a) => addr[..4].copy_from_slice(&a),
                    Err(_) => flags |= FLAG_READ_ERROR,
                }
            }
            // AF_INET6: sockaddr_in6 { family, port (BE), flowinfo, addr[16], scope_id }
            10 => {
                let port: u16 = bpf_probe_read_user(sa.add(2).cast()).unwrap_or(0);
                (*ev).port = u16::from_be(port);
                match bpf_probe_read_user(sa.add(8).cast::<[u8; 16]>()) {
                    Ok(a) => addr[..16].copy_from_slice(&a),
                    Err(_) => flags |= FLAG_READ_ERROR,
                }
            }
            // AF_UNIX: sockaddr_un { family, path[108] }; abstract names start with NUL, so
            // copy raw bytes instead of a string.
            1 => match bpf_probe_read_user(sa.add(2).cast::<[u8; 108]>()) {
                Ok(p) => addr[..108].copy_from_slice(&p),
                Err(_) => flags |= FLAG_READ_ERROR,
            },
            _ => {}
        }
        (*ev).addr = addr;
        (*ev).header.flags = flags;
    }
    entry.submit(lazy_wakeup(me.cfg, size_of::<ConnectEvent>()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// unlink / rmdir / rename

/// `v` = [dirfd, path, target dirfd, target path (0 when none), flags].
#[inline(always)]
fn path_op(me: &Actor, sc: u32, v: [u64; 5]) -> Result<(), i64> {
    let args = Deferred {
        kind: EventKind::PathOp as u32,
        sc,
        v: [v[0], v[1], v[2], v[3], v[4], 0],
    };
    emit_path_op(me, &args, true)
}

/// Emits a deletion/rename event (or, for `a.kind == Denied`, a refused path call whose
/// result is `a.v[5]`) from captured arguments. With `may_defer`, a path not readable yet is
/// parked in `DEFERRED` and the event emitted at the call's exit ([`try_replay`]).
#[inline(always)]
fn emit_path_op(me: &Actor, a: &Deferred, may_defer: bool) -> Result<(), i64> {
    let kind = if a.kind == EventKind::Denied as u32 {
        EventKind::Denied
    } else {
        EventKind::PathOp
    };
    let mut entry = reserve::<PathOpEvent>(kind)?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation; paths are read through the fault-tolerant helper.
    let flags = unsafe {
        fill_header(&raw mut (*ev).header, kind, a.sc, me);
        (*ev).dirfd1 = a.v[0] as i32;
        (*ev).dirfd2 = a.v[2] as i32;
        (*ev).op_flags = a.v[4] as u32;
        (*ev).ret = a.v[5] as i32;
        let mut f = read_user_str(&raw mut (*ev).path1, a.v[1] as *const u8);
        let p2 = a.v[3] as *const u8;
        if p2.is_null() {
            (*ev).path2[0] = 0;
        } else {
            f |= read_user_str(&raw mut (*ev).path2, p2);
        }
        (*ev).header.flags = f;
        f
    };
    if may_defer && flags & FLAG_READ_ERROR != 0 && defer(me, a) {
        entry.discard(0);
    } else {
        entry.submit(lazy_wakeup(me.cfg, size_of::<PathOpEvent>()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fork / exit

/// Remembers the flags of a clone in progress, for `sched_process_fork` to tell threads from
/// processes.
#[inline(always)]
fn note_clone(me: &Actor, flags: u64) {
    let _ = CLONE_FLAGS.insert(me.tid, flags, 0);
}

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let _ = try_fork(&ctx);
    0
}

fn try_fork(ctx: &TracePointContext) -> Result<(), i64> {
    let Some(me) = Actor::from_helpers() else {
        return Ok(());
    };
    // SAFETY: the map value is a plain u64 that only this thread writes.
    let clone_flags = unsafe { CLONE_FLAGS.get(me.tid) }.copied().unwrap_or(0);
    let _ = CLONE_FLAGS.remove(me.tid);
    if clone_flags & CLONE_THREAD != 0 {
        return Ok(());
    }
    // SAFETY: offsets come from the kernel's own format file for this tracepoint.
    let child: i32 =
        unsafe { ctx.read_at(me.cfg.fork_child_pid_off as usize) }.map_err(|e| e as i64)?;
    let mut entry = reserve::<ForkEvent>(EventKind::Fork)?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Fork, 0, &me);
        (*ev).child_pid = child as u32;
        (*ev)._pad = 0;
    }
    entry.submit(0);
    Ok(())
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let _ = try_exit(&ctx);
    0
}

fn try_exit(ctx: &TracePointContext) -> Result<(), i64> {
    let Some(me) = Actor::from_helpers() else {
        return Ok(());
    };
    let cfg = me.cfg;
    let last = if cfg.exit_group_dead_off == u32::MAX {
        me.tid == me.pid
    } else {
        // SAFETY: offset from the kernel's format file.
        unsafe { ctx.read_at::<u8>(cfg.exit_group_dead_off as usize) }.unwrap_or(0) != 0
    };
    if !last {
        return Ok(());
    }
    let mut entry = reserve::<ExitEvent>(EventKind::Exit)?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation.
    unsafe { fill_header(&raw mut (*ev).header, EventKind::Exit, 0, &me) };
    entry.submit(0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// network rules (cgroup sock_addr): these programs enforce, they do not just observe

/// Address prefixes with rules, per family. Sized for large deny lists; the supervisor refuses
/// to start when a policy needs more (it never drops a rule).
const NET_PREFIXES: u32 = 16_384;
const BPF_F_NO_PREALLOC: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// What a cgroup sock_addr program returns to let the call proceed; 0 makes it fail with EPERM.
const SOCK_ALLOW: i32 = 1;
const SOCK_REFUSE: i32 = 0;

#[map]
static NET4: LpmTrie<[u8; 4], NetRules> =
    LpmTrie::with_max_entries(NET_PREFIXES, BPF_F_NO_PREALLOC);
#[map]
static NET6: LpmTrie<[u8; 16], NetRules> =
    LpmTrie::with_max_entries(NET_PREFIXES, BPF_F_NO_PREALLOC);

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    check_inet4(&ctx, net_hook::CONNECT4)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    check_inet4(&ctx, net_hook::SENDMSG4)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    check_inet6(&ctx, net_hook::CONNECT6)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    check_inet6(&ctx, net_hook::SENDMSG6)
}

/// `NET_PROTO_*` bit of the socket's protocol. Anything but TCP and UDP (SCTP, ...) matches
/// rules of either protocol: a rule must not be sidestepped by picking an unusual protocol.
#[inline(always)]
fn proto_bit(protocol: u32) -> u8 {
    match protocol {
        IPPROTO_TCP => NET_PROTO_TCP,
        IPPROTO_UDP => NET_PROTO_UDP,
        _ => NET_PROTO_TCP | NET_PROTO_UDP,
    }
}

/// The verdict for one destination: `Some(rule)` to refuse, `None` to allow. A matching deny
/// entry wins over a matching allow entry; with neither, the policy's default decides.
#[inline(always)]
fn decide(rules: Option<&NetRules>, port: u16, proto: u8) -> Option<u32> {
    let mut allowed = false;
    if let Some(r) = rules {
        let n = r.count as usize;
        for i in 0..NET_PORT_SLOTS {
            if i >= n {
                break;
            }
            let e = &r.entries[i];
            if port >= e.lo && port <= e.hi && e.protos & proto != 0 {
                if e.action == NET_ACTION_DENY {
                    return Some(u32::from(e.rule));
                }
                allowed = true;
            }
        }
    }
    let default_deny = CONFIG
        .get(0)
        .map(|c| c.net_default_deny != 0)
        .unwrap_or(true);
    if !allowed && default_deny {
        Some(NET_RULE_DEFAULT)
    } else {
        None
    }
}

fn check_inet4(ctx: &SockAddrContext, hook: u32) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the program's context; each field is read with the exact width the
    // verifier allows for it (u32).
    let (ip, port, protocol) = unsafe {
        (
            read_volatile(&raw const (*sa).user_ip4),
            read_volatile(&raw const (*sa).user_port),
            read_volatile(&raw const (*sa).protocol),
        )
    };
    // user_ip4 and user_port hold network byte order: the address bytes are in memory order.
    let addr = ip.to_ne_bytes();
    let port = u16::from_be(port as u16);
    let verdict = decide(NET4.get(Key::new(32, addr)), port, proto_bit(protocol));
    match verdict {
        None => SOCK_ALLOW,
        Some(rule) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&addr);
            report_refusal(rule, hook, AF_INET, port, protocol, a);
            SOCK_REFUSE
        }
    }
}

fn check_inet6(ctx: &SockAddrContext, hook: u32) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: as in `check_inet4`; user_ip6 is read one u32 word at a time, the access size
    // the verifier accepts for it.
    let (w, port, protocol) = unsafe {
        (
            [
                read_volatile(&raw const (*sa).user_ip6[0]),
                read_volatile(&raw const (*sa).user_ip6[1]),
                read_volatile(&raw const (*sa).user_ip6[2]),
                read_volatile(&raw const (*sa).user_ip6[3]),
            ],
            read_volatile(&raw const (*sa).user_port),
            read_volatile(&raw const (*sa).protocol),
        )
    };
    let port = u16::from_be(port as u16);
    let proto = proto_bit(protocol);
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&w[0].to_ne_bytes());
    addr[4..8].copy_from_slice(&w[1].to_ne_bytes());
    addr[8..12].copy_from_slice(&w[2].to_ne_bytes());
    addr[12..].copy_from_slice(&w[3].to_ne_bytes());
    // ::ffff:a.b.c.d reaches an IPv4 host through a dual-stack socket: the IPv4 rules apply.
    let mapped = w[0] == 0 && w[1] == 0 && w[2] == u32::from_be(0xffff);
    let verdict = if mapped {
        decide(NET4.get(Key::new(32, w[3].to_ne_bytes())), port, proto)
    } else {
        decide(NET6.get(Key::new(128, addr)), port, proto)
    };
    match verdict {
        None => SOCK_ALLOW,
        Some(rule) => {
            report_refusal(rule, hook, AF_INET6, port, protocol, addr);
            SOCK_REFUSE
        }
    }
}

/// Records a refusal. The refusal itself never depends on this: a full ring buffer costs the
/// event (counted), not the verdict.
#[inline(always)]
fn report_refusal(rule: u32, hook: u32, family: u16, port: u16, protocol: u32, addr: [u8; 16]) {
    let Some(cfg) = CONFIG.get(0) else {
        return;
    };
    let me = Actor::of_caller(cfg);
    let Ok(mut entry) = reserve::<NetRefusedEvent>(EventKind::NetRefused) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation, written only inside this block.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::NetRefused, 0, &me);
        (*ev).rule = rule;
        (*ev).hook = hook;
        (*ev).family = family;
        (*ev).port = port;
        (*ev).protocol = protocol;
        (*ev).addr = addr;
    }
    entry.submit(0);
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
