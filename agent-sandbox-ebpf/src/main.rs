//! Observation probes of agent-sandbox.
//!
//! Every program is a thin entry point that calls a `try_*` body and ignores its error: an
//! observation probe must never change what the observed syscall does, and a failed read only
//! costs the event (counted in `LOST` when the ring buffer is full, flagged in the event when a
//! user pointer cannot be read).
//!
//! Only tasks whose cgroup v2 ancestor at the session's level is the session cgroup produce
//! events; everything else on the machine leaves after two helper calls.
//!
//! Syscall tracepoint records have a stable layout: 8 bytes of common header, the syscall number
//! at 8, then each argument in an 8-byte slot from offset 16. The supervisor checks that layout in
//! the kernel's format files before it loads us. Records of other tracepoints (`sched_*`) change
//! between kernels, so their offsets come from the `CONFIG` map.
// The crate is only meaningful for the BPF target; on the host it builds as an empty program so
// that `cargo clippy --workspace --all-targets` can check it.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use core::ffi::c_void;

use agent_sandbox_common::{
    ADDR_LEN, ARG_LEN, ARGV_SOFT_CAP, COMM_LEN, Config, ConnectEvent, EventHeader, EventKind,
    ExecEvent, ExecResultEvent, ExitEvent, FLAG_READ_ERROR, FLAG_TRUNCATED, ForkEvent, KIND_SLOTS,
    MAX_ARGS, OpenEvent, PathOpEvent, syscall,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_user,
        generated::{
            bpf_get_current_ancestor_cgroup_id, bpf_ktime_get_boot_ns, bpf_probe_read_user_str,
        },
    },
    macros::{map, tracepoint},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};

/// Default ring-buffer size; the supervisor may resize it at load time (`--ringbuf-mb`).
const RINGBUF_BYTES: u32 = 16 * 1024 * 1024;
/// Threads that called clone/clone3 and have not reached `sched_process_fork` yet. Bounded by the
/// number of concurrently forking threads in the session; a full map only means a thread may be
/// reported as a process.
const CLONE_INFLIGHT: u32 = 8192;

/// Threads inside an open/unlink/rename whose event was deferred to syscall exit. One per
/// thread at most; a full map means the event is emitted at entry, flagged `read_error`.
const DEFERRED_INFLIGHT: u32 = 8192;

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
const CLONE_THREAD: u64 = 0x0001_0000;
const AT_FDCWD: i32 = -100;

/// Byte offset of syscall argument `n` in a `sys_enter_*` record.
const fn arg(n: usize) -> usize {
    16 + 8 * n
}
/// Offset of the return value in a `sys_exit_*` record.
const RET: usize = 16;

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(RINGBUF_BYTES, 0);

/// Events that could not be reserved, per `EventKind`.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Arguments of an open/unlink/rename whose strings were not readable at syscall entry, by
/// thread id, until the syscall's exit (see [`emit_open`]).
#[map]
static DEFERRED: HashMap<u32, Deferred> = HashMap::with_max_entries(DEFERRED_INFLIGHT, 0);

/// Captured syscall arguments: the event kind, our syscall id and up to six raw values whose
/// meaning depends on the kind (see `try_open` / `try_path_op`).
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

/// The session's configuration when the current task belongs to the session, `None` otherwise.
#[inline(always)]
fn session() -> Option<&'static Config> {
    let cfg = CONFIG.get(0)?;
    if cfg.session_cgroup_id == 0 {
        return None;
    }
    // SAFETY: plain helper call; the level is a small integer written by the supervisor.
    let id = unsafe { bpf_get_current_ancestor_cgroup_id(cfg.session_cgroup_level as i32) };
    if id == cfg.session_cgroup_id {
        Some(cfg)
    } else {
        None
    }
}

#[inline(always)]
fn count_lost(kind: EventKind) {
    if let Some(slot) = LOST.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run (preemption is disabled in
        // tracepoint programs).
        unsafe { *slot += 1 };
    }
}

/// Wakeup flag for high-rate events: wake the reader only once enough data is waiting; the
/// reader also polls, so nothing stays unread for longer than its poll interval.
#[inline(always)]
fn lazy_wakeup(cfg: &Config) -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA) >= cfg.wakeup_bytes {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Fills the common header. `h` points into a reserved ring-buffer record.
#[inline(always)]
unsafe fn fill_header(h: *mut EventHeader, kind: EventKind, syscall: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: `h` is a valid, exclusively owned pointer into a ring-buffer reservation.
    unsafe {
        (*h).ktime_ns = bpf_ktime_get_boot_ns();
        (*h).kind = kind as u32;
        (*h).tid = pid_tgid as u32;
        (*h).pid = (pid_tgid >> 32) as u32;
        (*h).uid = bpf_get_current_uid_gid() as u32;
        (*h).flags = 0;
        (*h).syscall = syscall;
        (*h).comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
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
// exec

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    let _ = try_exec(&ctx, syscall::EXECVE, AT_FDCWD, arg(0), arg(1), None);
    0
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    // SAFETY: reading a fixed slot of the tracepoint record.
    let dfd = unsafe { ctx.read_at::<i64>(arg(0)) }.unwrap_or(0) as i32;
    let _ = try_exec(&ctx, syscall::EXECVEAT, dfd, arg(1), arg(2), Some(arg(4)));
    0
}

/// Inlined into both entry points: BPF functions take at most five arguments.
#[inline(always)]
fn try_exec(
    ctx: &TracePointContext,
    sc: u32,
    dirfd: i32,
    filename_off: usize,
    argv_off: usize,
    flags_off: Option<usize>,
) -> Result<(), i64> {
    session().ok_or(0)?;
    // SAFETY: fixed slots of a syscall tracepoint record.
    let filename: *const u8 = unsafe { ctx.read_at(filename_off) }.map_err(|e| e as i64)?;
    let argv: *const *const u8 = unsafe { ctx.read_at(argv_off) }.map_err(|e| e as i64)?;
    let exec_flags = match flags_off {
        Some(off) => unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0) as u32,
        None => 0,
    };

    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        count_lost(EventKind::Exec);
        return Err(-1);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation, valid for size_of::<ExecEvent>() bytes until submit.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Exec, sc);
        (*ev).dirfd = dirfd;
        (*ev).exec_flags = exec_flags;
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

#[tracepoint]
pub fn sys_exit_execve(ctx: TracePointContext) -> u32 {
    let _ = try_exec_result(&ctx, syscall::EXECVE);
    0
}

#[tracepoint]
pub fn sys_exit_execveat(ctx: TracePointContext) -> u32 {
    let _ = try_exec_result(&ctx, syscall::EXECVEAT);
    0
}

fn try_exec_result(ctx: &TracePointContext, sc: u32) -> Result<(), i64> {
    session().ok_or(0)?;
    // SAFETY: fixed slot of a syscall exit record.
    let ret: i64 = unsafe { ctx.read_at(RET) }.map_err(|e| e as i64)?;
    let Some(mut entry) = EVENTS.reserve::<ExecResultEvent>(0) else {
        count_lost(EventKind::ExecResult);
        return Err(-1);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::ExecResult, sc);
        (*ev).ret = ret;
    }
    entry.submit(0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// open

/// Where each argument of an open-family syscall lives.
struct OpenArgs {
    sc: u32,
    dirfd: Option<usize>,
    path: usize,
    /// Offset of the flags argument, or of the `struct open_how *` for openat2.
    flags: usize,
    mode: Option<usize>,
    how: bool,
}

#[tracepoint]
pub fn sys_enter_open(ctx: TracePointContext) -> u32 {
    let a = OpenArgs {
        sc: syscall::OPEN,
        dirfd: None,
        path: arg(0),
        flags: arg(1),
        mode: Some(arg(2)),
        how: false,
    };
    let _ = try_open(&ctx, &a);
    0
}

#[tracepoint]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    let a = OpenArgs {
        sc: syscall::OPENAT,
        dirfd: Some(arg(0)),
        path: arg(1),
        flags: arg(2),
        mode: Some(arg(3)),
        how: false,
    };
    let _ = try_open(&ctx, &a);
    0
}

#[tracepoint]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    let a = OpenArgs {
        sc: syscall::OPENAT2,
        dirfd: Some(arg(0)),
        path: arg(1),
        flags: arg(2),
        mode: None,
        how: true,
    };
    let _ = try_open(&ctx, &a);
    0
}

#[inline(always)]
fn try_open(ctx: &TracePointContext, a: &OpenArgs) -> Result<(), i64> {
    let cfg = session().ok_or(0)?;
    // SAFETY (all reads below): fixed slots of a syscall tracepoint record, or user memory read
    // through the fault-tolerant helper.
    let path: *const u8 = unsafe { ctx.read_at(a.path) }.map_err(|e| e as i64)?;
    let dirfd = match a.dirfd {
        Some(off) => unsafe { ctx.read_at::<i64>(off) }.unwrap_or(0),
        None => AT_FDCWD as i64,
    };
    let (open_flags, mode) = if a.how {
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        let how: *const u64 = unsafe { ctx.read_at(a.flags) }.map_err(|e| e as i64)?;
        let f = unsafe { bpf_probe_read_user(how) }.unwrap_or(0);
        let m = unsafe { bpf_probe_read_user(how.add(1)) }.unwrap_or(0);
        (f, m)
    } else {
        let f = unsafe { ctx.read_at::<u64>(a.flags) }.unwrap_or(0) & 0xffff_ffff;
        let m = match a.mode {
            Some(off) => unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0),
            None => 0,
        };
        (f, m)
    };
    let args = Deferred {
        kind: EventKind::Open as u32,
        sc: a.sc,
        v: [dirfd as u64, path as u64, open_flags, mode, 0, 0],
    };
    emit_open(cfg, &args, true)
}

/// Emits an open event from captured arguments. When the path cannot be read yet (its page
/// not faulted in) and `may_defer` is set, the arguments are parked in `DEFERRED` and the
/// event is emitted at syscall exit, after the kernel itself has copied (and so faulted in)
/// the string.
#[inline(always)]
fn emit_open(cfg: &Config, a: &Deferred, may_defer: bool) -> Result<(), i64> {
    let Some(mut entry) = EVENTS.reserve::<OpenEvent>(0) else {
        count_lost(EventKind::Open);
        return Err(-1);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation; the path is read through the fault-tolerant helper.
    let flags = unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Open, a.sc);
        (*ev).dirfd = a.v[0] as i32;
        (*ev).open_flags = a.v[2];
        (*ev).mode = a.v[3] as u32;
        let f = read_user_str(&raw mut (*ev).path, a.v[1] as *const u8);
        (*ev).header.flags = f;
        f
    };
    if may_defer && flags & FLAG_READ_ERROR != 0 && defer(a) {
        entry.discard(0);
    } else {
        entry.submit(lazy_wakeup(cfg));
    }
    Ok(())
}

/// Parks arguments for replay at syscall exit; false when the map is full (then the event goes
/// out now, flagged `read_error`, rather than not at all).
#[inline(always)]
fn defer(a: &Deferred) -> bool {
    let tid = bpf_get_current_pid_tgid() as u32;
    DEFERRED.insert(tid, a, 0).is_ok()
}

/// One program attached to the exit tracepoint of every open/unlink/rename syscall: replays
/// what the entry probe deferred.
#[tracepoint]
pub fn sys_exit_replay(_ctx: TracePointContext) -> u32 {
    let _ = try_replay();
    0
}

fn try_replay() -> Result<(), i64> {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let a = match unsafe { DEFERRED.get(tid) } {
        Some(a) => *a,
        None => return Ok(()),
    };
    let _ = DEFERRED.remove(tid);
    let cfg = session().ok_or(0)?;
    if a.kind == EventKind::Open as u32 {
        emit_open(cfg, &a, false)
    } else {
        emit_path_op(cfg, &a, false)
    }
}

// ---------------------------------------------------------------------------------------------
// connect

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    let _ = try_connect(&ctx);
    0
}

fn try_connect(ctx: &TracePointContext) -> Result<(), i64> {
    let cfg = session().ok_or(0)?;
    // SAFETY: fixed slots of the record; user memory through the fault-tolerant helper.
    let fd = unsafe { ctx.read_at::<i64>(arg(0)) }.map_err(|e| e as i64)? as i32;
    let sa: *const u8 = unsafe { ctx.read_at(arg(1)) }.map_err(|e| e as i64)?;
    let addrlen = unsafe { ctx.read_at::<u64>(arg(2)) }.map_err(|e| e as i64)? as u32;
    let family: u16 = unsafe { bpf_probe_read_user(sa.cast::<u16>()) }.map_err(|e| e as i64)?;

    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        count_lost(EventKind::Connect);
        return Err(-1);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation; user reads go through the fault-tolerant helper.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Connect, syscall::CONNECT);
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
    entry.submit(lazy_wakeup(cfg));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// unlink / rmdir / rename

/// Where each argument of a deletion or rename lives; `None` for arguments the syscall lacks.
struct PathOpArgs {
    sc: u32,
    dirfd1: Option<usize>,
    path1: usize,
    dirfd2: Option<usize>,
    path2: Option<usize>,
    flags: Option<usize>,
}

macro_rules! path_op_probe {
    ($name:ident, $sc:expr, $d1:expr, $p1:expr, $d2:expr, $p2:expr, $fl:expr) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            let a = PathOpArgs {
                sc: $sc,
                dirfd1: $d1,
                path1: $p1,
                dirfd2: $d2,
                path2: $p2,
                flags: $fl,
            };
            let _ = try_path_op(&ctx, &a);
            0
        }
    };
}

path_op_probe!(
    sys_enter_unlink,
    syscall::UNLINK,
    None,
    arg(0),
    None,
    None,
    None
);
path_op_probe!(
    sys_enter_unlinkat,
    syscall::UNLINKAT,
    Some(arg(0)),
    arg(1),
    None,
    None,
    Some(arg(2))
);
path_op_probe!(
    sys_enter_rmdir,
    syscall::RMDIR,
    None,
    arg(0),
    None,
    None,
    None
);
path_op_probe!(
    sys_enter_rename,
    syscall::RENAME,
    None,
    arg(0),
    None,
    Some(arg(1)),
    None
);
path_op_probe!(
    sys_enter_renameat,
    syscall::RENAMEAT,
    Some(arg(0)),
    arg(1),
    Some(arg(2)),
    Some(arg(3)),
    None
);
path_op_probe!(
    sys_enter_renameat2,
    syscall::RENAMEAT2,
    Some(arg(0)),
    arg(1),
    Some(arg(2)),
    Some(arg(3)),
    Some(arg(4))
);

#[inline(always)]
fn try_path_op(ctx: &TracePointContext, a: &PathOpArgs) -> Result<(), i64> {
    let cfg = session().ok_or(0)?;
    // SAFETY (reads): fixed slots of a syscall tracepoint record.
    let read_fd = |off: Option<usize>| match off {
        Some(o) => unsafe { ctx.read_at::<i64>(o) }.unwrap_or(0),
        None => AT_FDCWD as i64,
    };
    let p1: *const u8 = unsafe { ctx.read_at(a.path1) }.map_err(|e| e as i64)?;
    let p2: *const u8 = match a.path2 {
        Some(o) => unsafe { ctx.read_at(o) }.map_err(|e| e as i64)?,
        None => core::ptr::null(),
    };
    let op_flags = match a.flags {
        Some(o) => unsafe { ctx.read_at::<u64>(o) }.unwrap_or(0),
        None => 0,
    };
    let args = Deferred {
        kind: EventKind::PathOp as u32,
        sc: a.sc,
        v: [
            read_fd(a.dirfd1) as u64,
            p1 as u64,
            read_fd(a.dirfd2) as u64,
            p2 as u64,
            op_flags,
            0,
        ],
    };
    emit_path_op(cfg, &args, true)
}

/// Emits a deletion/rename event from captured arguments (see [`emit_open`] for deferral).
#[inline(always)]
fn emit_path_op(cfg: &Config, a: &Deferred, may_defer: bool) -> Result<(), i64> {
    let Some(mut entry) = EVENTS.reserve::<PathOpEvent>(0) else {
        count_lost(EventKind::PathOp);
        return Err(-1);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation; paths are read through the fault-tolerant helper.
    let flags = unsafe {
        fill_header(&raw mut (*ev).header, EventKind::PathOp, a.sc);
        (*ev).dirfd1 = a.v[0] as i32;
        (*ev).dirfd2 = a.v[2] as i32;
        (*ev).op_flags = a.v[4] as u32;
        (*ev)._pad = 0;
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
    if may_defer && flags & FLAG_READ_ERROR != 0 && defer(a) {
        entry.discard(0);
    } else {
        entry.submit(lazy_wakeup(cfg));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fork / exit

#[tracepoint]
pub fn sys_enter_clone(ctx: TracePointContext) -> u32 {
    if session().is_some() {
        // SAFETY: fixed slot (x86_64 clone: flags is the first argument).
        let flags = unsafe { ctx.read_at::<u64>(arg(0)) }.unwrap_or(0);
        let tid = bpf_get_current_pid_tgid() as u32;
        let _ = CLONE_FLAGS.insert(tid, flags, 0);
    }
    0
}

#[tracepoint]
pub fn sys_enter_clone3(ctx: TracePointContext) -> u32 {
    if session().is_some() {
        // struct clone_args starts with `u64 flags`.
        // SAFETY: fixed slot, then user memory through the fault-tolerant helper.
        let flags = unsafe { ctx.read_at::<*const u64>(arg(0)) }
            .and_then(|p| unsafe { bpf_probe_read_user(p) })
            .unwrap_or(0);
        let tid = bpf_get_current_pid_tgid() as u32;
        let _ = CLONE_FLAGS.insert(tid, flags, 0);
    }
    0
}

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let _ = try_fork(&ctx);
    0
}

fn try_fork(ctx: &TracePointContext) -> Result<(), i64> {
    let cfg = session().ok_or(0)?;
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the map value is a plain u64 that only this thread writes.
    let clone_flags = unsafe { CLONE_FLAGS.get(tid) }.copied().unwrap_or(0);
    let _ = CLONE_FLAGS.remove(tid);
    if clone_flags & CLONE_THREAD != 0 {
        return Ok(());
    }
    // SAFETY: offsets come from the kernel's own format file for this tracepoint.
    let child: i32 =
        unsafe { ctx.read_at(cfg.fork_child_pid_off as usize) }.map_err(|e| e as i64)?;
    let Some(mut entry) = EVENTS.reserve::<ForkEvent>(0) else {
        count_lost(EventKind::Fork);
        return Err(-1);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Fork, 0);
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
    let cfg = session().ok_or(0)?;
    let pid_tgid = bpf_get_current_pid_tgid();
    let last = if cfg.exit_group_dead_off == u32::MAX {
        pid_tgid as u32 == (pid_tgid >> 32) as u32
    } else {
        // SAFETY: offset from the kernel's format file.
        unsafe { ctx.read_at::<u8>(cfg.exit_group_dead_off as usize) }.unwrap_or(0) != 0
    };
    if !last {
        return Ok(());
    }
    let Some(mut entry) = EVENTS.reserve::<ExitEvent>(0) else {
        count_lost(EventKind::Exit);
        return Err(-1);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation.
    unsafe { fill_header(&raw mut (*ev).header, EventKind::Exit, 0) };
    entry.submit(0);
    Ok(())
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
