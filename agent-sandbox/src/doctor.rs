//! Kernel capability checks (`agent-sandbox doctor`, also shown by `cargo xtask setup`).
//!
//! Every check really probes the running kernel: it creates a cgroup, loads a two-instruction BPF
//! program of each type the sandbox uses, places a fanotify permission mark, asks seccomp and
//! Landlock what they support. Nothing is inferred from the kernel version. A probe that fails
//! only because the doctor is not root is reported as [`Status::Warn`] ("needs root to probe"),
//! never as a false [`Status::Missing`].
//!
//! Every probe cleans up after itself (file descriptors closed, temporary cgroup and file
//! removed), on error paths too, and none of them changes the doctor process itself: the seccomp
//! filter probe runs in a forked child.

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::cgroup::{self, Cgroup2Mount};
use crate::leftovers;
use crate::tracefs::TRACEFS;
use crate::watchdog::WatchdogProcess;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The kernel offers the mechanism.
    Ok,
    /// The kernel does not offer it (or refused it although we are root).
    Missing,
    /// Could not tell, or usable with a caveat (not root, not mounted yet, leftovers…).
    Warn,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` (not `write_str`) so that width and alignment flags apply.
        f.pad(match self {
            Status::Ok => "ok",
            Status::Missing => "MISSING",
            Status::Warn => "warn",
        })
    }
}

/// The result of one capability check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Short name of the check (one of the `CHECK_*` constants).
    pub name: &'static str,
    /// Whether the mechanism is there.
    pub status: Status,
    /// What was found (mount point, ABI version, errno…), one line.
    pub detail: String,
    /// What the sandbox loses when the mechanism is missing.
    pub consequence: &'static str,
}

/// Name of the "running as root" check.
pub const CHECK_ROOT: &str = "root";
/// Name of the cgroup v2 mount check.
pub const CHECK_CGROUP2: &str = "cgroup v2";
/// Name of the `cgroup.kill` / `cgroup.freeze` check.
pub const CHECK_CGROUP_KILL_FREEZE: &str = "cgroup.kill + cgroup.freeze";
/// Name of the tracefs check.
pub const CHECK_TRACEFS: &str = "tracefs";
/// Name of the BPF tracepoint program check.
pub const CHECK_BPF_TRACEPOINT: &str = "bpf tracepoint";
/// Name of the kernel BTF check (the syscall probes are BTF-typed tracepoints).
pub const CHECK_BTF: &str = "kernel btf (tp_btf)";
/// Name of the BPF ring buffer map check.
pub const CHECK_BPF_RINGBUF: &str = "bpf ringbuf map";
/// Name of the BPF cgroup_sock_addr (connect4) program check.
pub const CHECK_BPF_SOCK_ADDR: &str = "bpf cgroup_sock_addr";
/// Name of the BPF sock_ops program check.
pub const CHECK_BPF_SOCK_OPS: &str = "bpf sock_ops";
/// Name of the BPF sk_msg program check.
pub const CHECK_BPF_SK_MSG: &str = "bpf sk_msg";
/// Name of the BPF cgroup_skb program check.
pub const CHECK_BPF_CGROUP_SKB: &str = "bpf cgroup_skb";
/// Name of the BPF kprobe program check (the program type uprobes use).
pub const CHECK_BPF_KPROBE: &str = "bpf kprobe (uprobes)";
/// Name of the BPF LSM check.
pub const CHECK_BPF_LSM: &str = "bpf lsm";
/// Name of the fanotify permission events check.
pub const CHECK_FANOTIFY: &str = "fanotify permission events";
/// Name of the seccomp user notification check.
pub const CHECK_SECCOMP_NOTIF: &str = "seccomp user notification";
/// Name of the `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` check.
pub const CHECK_SECCOMP_KILLABLE: &str = "seccomp wait_killable_recv";
/// Name of the Landlock check.
pub const CHECK_LANDLOCK: &str = "landlock";
/// Name of the leftover session cgroups check.
pub const CHECK_LEFTOVERS: &str = "leftover sessions";
/// Name of the orphan watchdogs check.
pub const CHECK_LEFTOVER_WATCHDOGS: &str = "leftover watchdogs";
/// Name of the leftover BPF programs check.
pub const CHECK_LEFTOVER_BPF: &str = "leftover bpf programs";

/// Checks whose mechanism `agent-sandbox run` (privileged mode) needs today: when one of them is
/// [`Status::Missing`], [`all_required_ok`] is false. The others serve optional or future layers,
/// or unprivileged mode.
pub const REQUIRED: &[&str] = &[
    CHECK_ROOT,
    CHECK_CGROUP2,
    CHECK_CGROUP_KILL_FREEZE,
    CHECK_TRACEFS,
    CHECK_BPF_TRACEPOINT,
    CHECK_BTF,
    CHECK_BPF_RINGBUF,
    CHECK_BPF_SOCK_ADDR,
    CHECK_FANOTIFY,
    CHECK_SECCOMP_NOTIF,
];

/// Detail of a probe that the kernel refused only because we lack privileges.
const NEEDS_ROOT: &str = "needs root to probe";

/// Runs every check, in the order `doctor` prints them.
pub fn run_checks() -> Vec<Check> {
    let root = nix::unistd::geteuid().is_root();
    let mount = Cgroup2Mount::find();
    let kern_version = kernel_version_code();
    let mut checks = vec![check_root(root)];
    checks.extend(check_cgroup(&mount, root));
    checks.push(check_tracefs(root));
    for probe in BPF_PROBES {
        checks.push(check_bpf_prog(probe, kern_version, root));
    }
    checks.push(check_btf());
    checks.push(check_bpf_ringbuf(root));
    checks.push(check_bpf_lsm());
    checks.push(check_fanotify(root));
    checks.push(check_seccomp_notif());
    checks.push(check_seccomp_killable());
    checks.push(check_landlock());
    checks.push(check_leftovers(&mount));
    let orphans = leftovers::orphan_watchdogs();
    checks.push(check_leftover_watchdogs(&orphans));
    checks.push(check_leftover_bpf(&orphans, root));
    checks
}

/// Renders the checks as a table with aligned columns: check, status (`ok` / `MISSING` /
/// `warn`), detail, and — for rows that are not ok — the consequence. Ends with a newline.
pub fn render_table(checks: &[Check]) -> String {
    const HEADERS: [&str; 4] = ["CHECK", "STATUS", "DETAIL", "IF MISSING"];
    let rows: Vec<[String; 4]> = checks
        .iter()
        .map(|c| {
            [
                c.name.to_string(),
                c.status.to_string(),
                one_line(&c.detail),
                if c.status == Status::Ok {
                    String::new()
                } else {
                    c.consequence.to_string()
                },
            ]
        })
        .collect();
    let show_consequence = rows.iter().any(|r| !r[3].is_empty());
    let ncols = if show_consequence { 4 } else { 3 };
    let mut widths = [0usize; 4];
    for (i, w) in widths.iter_mut().enumerate() {
        *w = rows
            .iter()
            .map(|r| r[i].chars().count())
            .chain(std::iter::once(HEADERS[i].chars().count()))
            .max()
            .unwrap_or(0);
    }
    let header = HEADERS.map(String::from);
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().take(ncols).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            // `{:<w$}` pads by chars, matching the widths counted above.
            line.push_str(&format!("{cell:<w$}", w = widths[i]));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// False when any check in [`REQUIRED`] (what `agent-sandbox run` needs today) is
/// [`Status::Missing`]. A `Warn` never makes it false.
pub fn all_required_ok(checks: &[Check]) -> bool {
    !checks
        .iter()
        .any(|c| c.status == Status::Missing && REQUIRED.contains(&c.name))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check(name: &'static str, status: Status, detail: String, consequence: &'static str) -> Check {
    Check {
        name,
        status,
        detail,
        consequence,
    }
}

fn is_permission_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

/// Status and detail for a probe that failed with `e`: permission errors while not root are
/// `Warn` ("needs root to probe"), anything else is `Missing`.
fn failed(e: &io::Error, root: bool, what: &str) -> (Status, String) {
    if !root && is_permission_error(e) {
        // is_permission_error implies an errno.
        let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
        (
            Status::Warn,
            format!("{NEEDS_ROOT} ({errno:?} as non-root)"),
        )
    } else {
        (Status::Missing, format!("{what}: {}", errno_name(e)))
    }
}

/// "EINVAL (Invalid argument)" for errno errors, the plain message otherwise.
fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let name = nix::errno::Errno::from_raw(n);
            format!("{name:?} ({})", name.desc())
        }
        None => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. root

fn check_root(root: bool) -> Check {
    let euid = nix::unistd::geteuid();
    let (status, detail) = if root {
        (Status::Ok, format!("euid {euid}"))
    } else {
        (
            Status::Missing,
            format!("euid {euid} (run `sudo agent-sandbox doctor` to probe everything)"),
        )
    };
    check(
        CHECK_ROOT,
        status,
        detail,
        "`run` needs root (privileged mode); only unprivileged mode is possible",
    )
}

// ---------------------------------------------------------------------------------------------
// 2. cgroup v2, cgroup.kill, cgroup.freeze

const CGROUP2_CONSEQUENCE: &str = "no session cgroup: the agent's tree cannot be tracked, frozen or killed, and connect \
     blocking has nothing to attach to";
const KILL_FREEZE_CONSEQUENCE: &str =
    "the agent's tree cannot be frozen while a human decides, nor killed as a whole";

/// A child cgroup created for the probe; removed on drop if [`TempCgroup::remove`] was not
/// called (error paths, panics).
struct TempCgroup {
    path: Option<PathBuf>,
}

impl TempCgroup {
    fn create(path: PathBuf) -> io::Result<Self> {
        match fs::create_dir(&path) {
            Ok(()) => {}
            // A doctor with the same pid crashed before removing it: it is ours, reuse it.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Ok(Self { path: Some(path) })
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    fn remove(mut self) -> io::Result<()> {
        match self.path.take() {
            Some(p) => fs::remove_dir(p),
            None => Ok(()),
        }
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir(p);
        }
    }
}

fn check_cgroup(mount: &Result<Cgroup2Mount, cgroup::CgroupError>, root: bool) -> [Check; 2] {
    let mount = match mount {
        Ok(m) => m,
        Err(e) => {
            return [
                check(
                    CHECK_CGROUP2,
                    Status::Missing,
                    e.to_string(),
                    CGROUP2_CONSEQUENCE,
                ),
                check(
                    CHECK_CGROUP_KILL_FREEZE,
                    Status::Missing,
                    "no cgroup v2 hierarchy".into(),
                    KILL_FREEZE_CONSEQUENCE,
                ),
            ];
        }
    };
    let mount_check = check(
        CHECK_CGROUP2,
        Status::Ok,
        mount.mount_point.display().to_string(),
        CGROUP2_CONSEQUENCE,
    );
    let (status, detail) = probe_kill_freeze(mount, root);
    [
        mount_check,
        check(
            CHECK_CGROUP_KILL_FREEZE,
            status,
            detail,
            KILL_FREEZE_CONSEQUENCE,
        ),
    ]
}

fn probe_kill_freeze(mount: &Cgroup2Mount, root: bool) -> (Status, String) {
    let path = mount.mount_point.join(format!(
        "{}doctor-{}",
        cgroup::SESSION_PREFIX,
        std::process::id()
    ));
    let cg = match TempCgroup::create(path.clone()) {
        Ok(cg) => cg,
        Err(e) => return failed(&e, root, &format!("creating {}", path.display())),
    };
    // cgroup.kill and cgroup.freeze exist only in non-root cgroups, hence the child.
    let missing: Vec<&str> = ["cgroup.kill", "cgroup.freeze"]
        .into_iter()
        .filter(|f| !cg.path().join(f).exists())
        .collect();
    let removed = cg.remove();
    let (mut status, mut detail) = if missing.is_empty() {
        (Status::Ok, "both present in a child cgroup".to_string())
    } else {
        (
            Status::Missing,
            format!("{} absent in a child cgroup", missing.join(" and ")),
        )
    };
    if let Err(e) = removed {
        if status == Status::Ok {
            status = Status::Warn;
        }
        detail.push_str(&format!(
            "; could not remove {}: {}",
            path.display(),
            errno_name(&e)
        ));
    }
    (status, detail)
}

// ---------------------------------------------------------------------------------------------
// 3. tracefs

const TRACEFS_CONSEQUENCE: &str =
    "tracepoint field offsets cannot be read: no exec/fork/open observation";
const FORK_FORMAT: &str = "events/sched/sched_process_fork/format";

/// Mount points of the given filesystem type in a /proc/self/mounts text (octal escapes such as
/// `\040` decoded).
fn mount_points_of(mounts: &str, fstype: &str) -> Vec<PathBuf> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _source = fields.next()?;
            let point = fields.next()?;
            (fields.next()? == fstype).then(|| PathBuf::from(cgroup::unescape_mount_path(point)))
        })
        .collect()
}

fn check_tracefs(root: bool) -> Check {
    let mounts = match fs::read_to_string("/proc/self/mounts") {
        Ok(m) => m,
        Err(e) => {
            return check(
                CHECK_TRACEFS,
                Status::Warn,
                format!("reading /proc/self/mounts: {}", errno_name(&e)),
                TRACEFS_CONSEQUENCE,
            );
        }
    };
    let points = mount_points_of(&mounts, "tracefs");
    // Prefer the canonical mount point when tracefs is mounted in several places.
    let Some(point) = points
        .iter()
        .find(|p| p.as_path() == Path::new(TRACEFS))
        .or(points.first())
    else {
        return check(
            CHECK_TRACEFS,
            Status::Warn,
            format!("not mounted; agent-sandbox run mounts it at {TRACEFS}"),
            TRACEFS_CONSEQUENCE,
        );
    };
    let format = point.join(FORK_FORMAT);
    let (status, detail) = match fs::read_to_string(&format) {
        Ok(_) => (
            Status::Ok,
            format!(
                "mounted at {}; sched_process_fork format readable",
                point.display()
            ),
        ),
        Err(e) => failed(&e, root, &format!("reading {}", format.display())),
    };
    // The entry probe reads one record layout for all the syscalls it watches.
    let (status, detail) = match (status, point.as_path() == Path::new(TRACEFS)) {
        (Status::Ok, true) => {
            match crate::tracefs::SyscallEnterOffsets::read(crate::ebpf::SYSCALL_ENTER_PROBE.1) {
                Ok(o) => (
                    Status::Ok,
                    format!(
                        "{detail}; the {} watched sys_enter_* formats agree (__syscall_nr at \
                         {}, arguments from {})",
                        crate::ebpf::SYSCALL_ENTER_PROBE.1.len(),
                        o.nr,
                        o.args
                    ),
                ),
                Err(e) => (Status::Missing, format!("{detail}; {e}")),
            }
        }
        (status, _) => (status, detail),
    };
    check(CHECK_TRACEFS, status, detail, TRACEFS_CONSEQUENCE)
}

// ---------------------------------------------------------------------------------------------
// 4. BPF

// Constants from include/uapi/linux/bpf.h and bpf_common.h (checked against
// /usr/include/linux/bpf.h of linux-libc-dev and a C program printing them).
/// `enum bpf_cmd`: BPF_MAP_CREATE.
const BPF_MAP_CREATE: libc::c_long = 0;
/// `enum bpf_cmd`: BPF_PROG_LOAD.
const BPF_PROG_LOAD: libc::c_long = 5;
/// `enum bpf_prog_type` values.
const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_TYPE_CGROUP_SKB: u32 = 8;
const BPF_PROG_TYPE_SOCK_OPS: u32 = 13;
const BPF_PROG_TYPE_SK_MSG: u32 = 16;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
/// `enum bpf_attach_type`: BPF_CGROUP_INET4_CONNECT.
const BPF_CGROUP_INET4_CONNECT: u32 = 10;
/// `enum bpf_map_type`: BPF_MAP_TYPE_RINGBUF.
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
/// Instruction classes and fields.
const BPF_ALU64: u8 = 0x07;
const BPF_MOV: u8 = 0xb0;
const BPF_K: u8 = 0x00;
const BPF_JMP: u8 = 0x05;
const BPF_EXIT: u8 = 0x90;

/// `struct bpf_insn`: opcode, dst_reg (low nibble) | src_reg (high nibble), offset, immediate.
#[repr(C)]
#[derive(Clone, Copy)]
struct BpfInsn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// `r0 = 0; exit`: the smallest program every type's verifier accepts (0 is a valid return
/// value for all the types probed here).
const RETURN_ZERO: [BpfInsn; 2] = [
    BpfInsn {
        code: BPF_ALU64 | BPF_MOV | BPF_K,
        regs: 0, // dst r0
        off: 0,
        imm: 0,
    },
    BpfInsn {
        code: BPF_JMP | BPF_EXIT,
        regs: 0,
        off: 0,
        imm: 0,
    },
];

/// The prefix of `union bpf_attr` that BPF_PROG_LOAD reads, up to and including
/// `expected_attach_type` (72 bytes; offsets checked against the UAPI header: insns at 8,
/// license 16, log_buf 32, kern_version 40, prog_name 48, expected_attach_type 68). The kernel
/// accepts a shorter attr than its own and treats the missing tail as zero. Build it zeroed
/// (`Default`) so that every field not set is 0.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    /// `__aligned_u64` pointer to the instructions.
    insns: u64,
    /// `__aligned_u64` pointer to a NUL-terminated license string.
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    /// LINUX_VERSION_CODE; checked for kprobe programs by kernels before 5.0.
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The prefix of `union bpf_attr` that BPF_MAP_CREATE reads, up to `map_flags` (20 bytes).
#[repr(C)]
#[derive(Default)]
struct BpfMapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// One program type to probe.
struct BpfProbe {
    name: &'static str,
    prog_type: u32,
    expected_attach_type: u32,
    consequence: &'static str,
}

const BPF_PROBES: &[BpfProbe] = &[
    BpfProbe {
        name: CHECK_BPF_TRACEPOINT,
        prog_type: BPF_PROG_TYPE_TRACEPOINT,
        expected_attach_type: 0,
        consequence: "no exec/open/connect/unlink/fork observation: no live feed, audit of \
                      effects or mass-deletion detector",
    },
    BpfProbe {
        name: CHECK_BPF_SOCK_ADDR,
        prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        expected_attach_type: BPF_CGROUP_INET4_CONNECT,
        consequence: "production endpoints cannot be refused in-kernel",
    },
    BpfProbe {
        name: CHECK_BPF_SOCK_OPS,
        prog_type: BPF_PROG_TYPE_SOCK_OPS,
        expected_attach_type: 0,
        consequence: "plaintext SQL payloads cannot be inspected in-kernel (optional layer)",
    },
    BpfProbe {
        name: CHECK_BPF_SK_MSG,
        prog_type: BPF_PROG_TYPE_SK_MSG,
        expected_attach_type: 0,
        consequence: "plaintext payloads cannot be dropped in-kernel (optional layer)",
    },
    BpfProbe {
        name: CHECK_BPF_CGROUP_SKB,
        prog_type: BPF_PROG_TYPE_CGROUP_SKB,
        expected_attach_type: 0,
        consequence: "packets cannot be filtered per session cgroup (optional layer)",
    },
    BpfProbe {
        name: CHECK_BPF_KPROBE,
        prog_type: BPF_PROG_TYPE_KPROBE,
        expected_attach_type: 0,
        consequence: "no uprobes: TLS plaintext only from the LD_PRELOAD shim, not from static \
                      binaries (optional layer)",
    },
];

/// Loads `r0 = 0; exit` as a program of `prog_type`; the fd is closed on return.
fn bpf_prog_load(prog_type: u32, expected_attach_type: u32, kern_version: u32) -> io::Result<()> {
    let license = c"GPL";
    let attr = BpfProgLoadAttr {
        prog_type,
        insn_cnt: RETURN_ZERO.len() as u32,
        insns: RETURN_ZERO.as_ptr() as u64,
        license: license.as_ptr() as u64,
        kern_version,
        expected_attach_type,
        ..Default::default()
    };
    // SAFETY: `attr` is a fully initialised #[repr(C)] prefix of `union bpf_attr` whose size we
    // pass; the instruction array and the license string it points to are 'static / live for
    // the whole call, and the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const BpfProgLoadAttr,
            std::mem::size_of::<BpfProgLoadAttr>() as libc::c_ulong,
        )
    };
    own_fd(ret).map(drop)
}

/// Creates a BPF ring buffer map of `bytes` bytes; the fd is closed on return.
fn bpf_ringbuf_create(bytes: u32) -> io::Result<()> {
    let attr = BpfMapCreateAttr {
        map_type: BPF_MAP_TYPE_RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: bytes,
        map_flags: 0,
    };
    // SAFETY: `attr` is a fully initialised #[repr(C)] prefix of `union bpf_attr` whose size we
    // pass, alive for the whole call; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const BpfMapCreateAttr,
            std::mem::size_of::<BpfMapCreateAttr>() as libc::c_ulong,
        )
    };
    own_fd(ret).map(drop)
}

/// Turns a syscall's return value into an owned fd (closed on drop) or the errno.
fn own_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a non-negative return of an fd-creating syscall is a new descriptor that nothing
    // else in the process owns; the OwnedFd closes it exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// LINUX_VERSION_CODE of the running kernel from `uname -r` (0 when it cannot be parsed;
/// kernels since 5.0 ignore it).
fn kernel_version_code() -> u32 {
    // SAFETY: utsname is plain old data, valid when zeroed; uname fills it and NUL-terminates
    // every field.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname for the duration of the call.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return 0;
    }
    let release: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    version_code(&String::from_utf8_lossy(&release))
}

/// KERNEL_VERSION(a, b, c) of a release string such as "6.18.44-fc-v595"; the sublevel is
/// clamped to 255 as the kernel's own macro does.
fn version_code(release: &str) -> u32 {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let a = parts.next().unwrap_or(0);
    let b = parts.next().unwrap_or(0);
    let c = parts.next().unwrap_or(0);
    (a.min(255) << 16) | (b.min(255) << 8) | c.min(255)
}

fn check_bpf_prog(probe: &BpfProbe, kern_version: u32, root: bool) -> Check {
    let (status, detail) =
        match bpf_prog_load(probe.prog_type, probe.expected_attach_type, kern_version) {
            Ok(()) => (
                Status::Ok,
                format!("loaded a type-{} program", probe.prog_type),
            ),
            Err(e) => failed(&e, root, &format!("BPF_PROG_LOAD type {}", probe.prog_type)),
        };
    check(probe.name, status, detail, probe.consequence)
}

/// Size of the probe ring buffer: a power of two and a multiple of the page size.
const RINGBUF_PROBE_BYTES: u32 = 4096 * 16;

/// The syscall probes attach as tp_btf programs, which the kernel types from its own BTF: the
/// tracepoints' `btf_trace_*` typedefs must be in `/sys/kernel/btf/vmlinux`, and so must the
/// task fields the probes load directly.
fn check_btf() -> Check {
    let (status, detail) = match crate::ebpf::kernel_btf() {
        Ok(k) => (
            Status::Ok,
            k.probe_ids
                .iter()
                .map(|(n, id)| format!("{n} = type {id}"))
                .chain([format!(
                    "task_struct.pid at {}, .comm at {}, .cred at {}",
                    k.task.task_pid, k.task.task_comm, k.task.task_cred
                )])
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Err(e) => (Status::Missing, e.to_string()),
    };
    check(
        CHECK_BTF,
        status,
        detail,
        "the syscall probes cannot load: no exec/open/connect/unlink observation, and \
         agent-sandbox run refuses to start",
    )
}

fn check_bpf_ringbuf(root: bool) -> Check {
    let (status, detail) = match bpf_ringbuf_create(RINGBUF_PROBE_BYTES) {
        Ok(()) => (
            Status::Ok,
            format!("created a {RINGBUF_PROBE_BYTES}-byte ring buffer"),
        ),
        Err(e) => failed(&e, root, "BPF_MAP_CREATE ringbuf"),
    };
    check(
        CHECK_BPF_RINGBUF,
        status,
        detail,
        "events cannot reach the supervisor: no live feed, audit of effects or detectors",
    )
}

/// BPF LSM programs need an `attach_btf_id` (a BTF lookup of an LSM hook), so instead of loading
/// one we report whether the BPF LSM is in the active LSM list.
fn check_bpf_lsm() -> Check {
    const LSM_LIST: &str = "/sys/kernel/security/lsm";
    let (status, detail) = match fs::read_to_string(LSM_LIST) {
        Ok(list) if list.trim().split(',').any(|l| l == "bpf") => {
            (Status::Ok, format!("\"bpf\" in {LSM_LIST}"))
        }
        Ok(list) => (
            Status::Missing,
            format!("\"bpf\" not in active LSMs ({})", list.trim()),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (
            Status::Warn,
            format!("cannot tell: no {LSM_LIST} (securityfs not mounted)"),
        ),
        Err(e) => (
            Status::Warn,
            format!("cannot tell: reading {LSM_LIST}: {}", errno_name(&e)),
        ),
    };
    check(CHECK_BPF_LSM, status, detail, "optional backend; not used")
}

// ---------------------------------------------------------------------------------------------
// 5. fanotify

/// A file created for the probe and removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn create() -> io::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "agent-sandbox-doctor-{}-{nanos:08x}",
            std::process::id()
        ));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn fanotify_mark(fd: &OwnedFd, mask: u64, path: &CString) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: `fd` is a live fanotify descriptor and `path` a NUL-terminated string alive for the
    // call; with an absolute path the dirfd is ignored.
    let ret = unsafe {
        libc::fanotify_mark(
            fd.as_raw_fd(),
            libc::FAN_MARK_ADD,
            mask,
            libc::AT_FDCWD,
            path.as_ptr(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn probe_fanotify(root: bool) -> (Status, String) {
    // SAFETY: fanotify_init takes two integer flag words and returns a new fd or -1.
    let ret = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC,
            libc::O_RDONLY as libc::c_uint,
        )
    };
    let fd = match own_fd(ret.into()) {
        Ok(fd) => fd,
        Err(e) => return failed(&e, root, "fanotify_init(FAN_CLASS_CONTENT)"),
    };
    let file = match TempFile::create() {
        Ok(f) => f,
        Err(e) => {
            return (
                Status::Warn,
                format!("cannot create a temporary file to mark: {}", errno_name(&e)),
            );
        }
    };
    let Ok(path) = CString::new(file.0.as_os_str().as_bytes()) else {
        return (Status::Warn, "temporary path contains a NUL byte".into());
    };
    // Never open the marked file while `fd` lives: nobody answers its permission events. The
    // mark goes away when `fd` is closed, before the file is removed (drop order: fd, file).
    let result = match fanotify_mark(&fd, libc::FAN_OPEN_PERM | libc::FAN_OPEN_EXEC_PERM, &path) {
        Ok(()) => (
            Status::Ok,
            "FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM inode mark accepted".to_string(),
        ),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Tell which half is missing.
            match fanotify_mark(&fd, libc::FAN_OPEN_PERM, &path) {
                Ok(()) => (
                    Status::Missing,
                    "FAN_OPEN_EXEC_PERM rejected (EINVAL); FAN_OPEN_PERM works".to_string(),
                ),
                Err(e) => failed(&e, root, "fanotify_mark(FAN_OPEN_PERM)"),
            }
        }
        Err(e) => failed(
            &e,
            root,
            "fanotify_mark(FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)",
        ),
    };
    drop(fd);
    drop(file);
    result
}

fn check_fanotify(root: bool) -> Check {
    let (status, detail) = probe_fanotify(root);
    check(
        CHECK_FANOTIFY,
        status,
        detail,
        "credential files cannot be refused in-kernel",
    )
}

// ---------------------------------------------------------------------------------------------
// 6. seccomp

fn seccomp_action_avail(action: u32) -> io::Result<()> {
    // SAFETY: SECCOMP_GET_ACTION_AVAIL only reads the u32 that the pointer designates, which
    // lives for the call; it changes nothing in the process.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL as libc::c_ulong,
            0 as libc::c_ulong,
            &action as *const u32,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn check_seccomp_notif() -> Check {
    let (status, detail) = match seccomp_action_avail(libc::SECCOMP_RET_USER_NOTIF) {
        Ok(()) => (Status::Ok, "SECCOMP_RET_USER_NOTIF available".to_string()),
        Err(e) => (
            Status::Missing,
            format!("SECCOMP_GET_ACTION_AVAIL(USER_NOTIF): {}", errno_name(&e)),
        ),
    };
    check(
        CHECK_SECCOMP_NOTIF,
        status,
        detail,
        "destructive actions cannot be held for approval",
    )
}

/// Installs an allow-all filter with `SECCOMP_FILTER_FLAG_NEW_LISTENER |
/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` in a forked child (a filter cannot be removed, so the
/// doctor never installs one on itself). The child exits 0 when the kernel accepted the flags,
/// with the errno otherwise.
fn probe_wait_killable_recv() -> Result<(), ProbeFailure> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};

    // Built before forking: the child of a multi-threaded process may only make
    // async-signal-safe calls (no allocation).
    let mut filter = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    }];
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_mut_ptr(),
    };
    let flags =
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;

    // SAFETY: the child only calls prctl, syscall and _exit (async-signal-safe, no allocation,
    // no locks), so forking a multi-threaded process is sound.
    match unsafe { fork() } {
        Err(e) => Err(ProbeFailure::Other(format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            // SAFETY: plain prctl/seccomp syscalls on this child only; `prog` and `filter` are
            // valid for the call (copied memory of the parent); _exit never returns and skips
            // the parent's atexit handlers and buffers.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(ERRNO_NNP);
                }
                let ret = libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                    flags,
                    &prog as *const libc::sock_fprog,
                );
                if ret >= 0 {
                    libc::_exit(0);
                }
                let errno = *libc::__errno_location();
                libc::_exit(if (1..ERRNO_NNP).contains(&errno) {
                    errno
                } else {
                    ERRNO_OTHER
                });
            }
        }
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
                Ok(WaitStatus::Exited(_, ERRNO_NNP)) => {
                    return Err(ProbeFailure::Other(
                        "prctl(PR_SET_NO_NEW_PRIVS) failed".into(),
                    ));
                }
                Ok(WaitStatus::Exited(_, code)) => {
                    return Err(ProbeFailure::Errno(io::Error::from_raw_os_error(code)));
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    return Err(ProbeFailure::Other(format!("probe child killed by {sig}")));
                }
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ProbeFailure::Other(format!("waitpid: {e}"))),
            }
        },
    }
}

/// Exit code of the seccomp probe child when prctl(PR_SET_NO_NEW_PRIVS) failed.
const ERRNO_NNP: i32 = 250;
/// Exit code of the seccomp probe child for an errno that does not fit an exit code.
const ERRNO_OTHER: i32 = 251;

/// Why a probe run in a child failed.
enum ProbeFailure {
    /// The kernel refused with this errno.
    Errno(io::Error),
    /// The probe itself could not run.
    Other(String),
}

fn check_seccomp_killable() -> Check {
    let (status, detail) = match probe_wait_killable_recv() {
        Ok(()) => (
            Status::Ok,
            "filter with NEW_LISTENER | WAIT_KILLABLE_RECV accepted (in a child)".to_string(),
        ),
        Err(ProbeFailure::Errno(e)) if e.raw_os_error() == Some(libc::EBUSY) => (
            Status::Warn,
            "cannot probe: an inherited seccomp filter already has a listener (inside a \
             sandbox?)"
                .to_string(),
        ),
        Err(ProbeFailure::Errno(e)) => (
            Status::Missing,
            format!("SECCOMP_SET_MODE_FILTER: {}", errno_name(&e)),
        ),
        Err(ProbeFailure::Other(s)) => (Status::Warn, s),
    };
    check(
        CHECK_SECCOMP_KILLABLE,
        status,
        detail,
        "a signal interrupts a held syscall, which is then asked again",
    )
}

// ---------------------------------------------------------------------------------------------
// 7. Landlock

/// `LANDLOCK_CREATE_RULESET_VERSION` from include/uapi/linux/landlock.h.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1 << 0;

fn check_landlock() -> Check {
    // SAFETY: with a NULL attr, size 0 and the VERSION flag the call only returns the ABI
    // version; it creates nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0 as libc::c_ulong,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    let (status, detail) = if ret >= 0 {
        (Status::Ok, format!("ABI {ret}"))
    } else {
        let e = io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => "; built in but disabled at boot (add landlock to lsm=)",
            Some(libc::ENOSYS) => "; not built into this kernel",
            _ => "",
        };
        (Status::Missing, format!("{}{why}", errno_name(&e)))
    };
    check(
        CHECK_LANDLOCK,
        status,
        detail,
        "unprivileged mode has no file confinement",
    )
}

// ---------------------------------------------------------------------------------------------
// 8. leftovers

fn check_leftovers(mount: &Result<Cgroup2Mount, cgroup::CgroupError>) -> Check {
    const CONSEQUENCE: &str =
        "session cgroups of earlier runs (and any process left in them) stay on the machine";
    let (status, detail) = match mount {
        Err(_) => (
            Status::Warn,
            "cannot look: no cgroup v2 hierarchy".to_string(),
        ),
        Ok(m) => {
            let left = cgroup::leftovers(m);
            if left.is_empty() {
                (Status::Ok, "none".to_string())
            } else {
                let list: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
                (
                    Status::Warn,
                    format!("{}; run `agent-sandbox cleanup`", list.join(", ")),
                )
            }
        }
    };
    check(CHECK_LEFTOVERS, status, detail, CONSEQUENCE)
}

fn check_leftover_watchdogs(orphans: &[WatchdogProcess]) -> Check {
    const CONSEQUENCE: &str = "a watchdog whose supervisor is gone is stuck: it still holds \
                               its session's network programs and file marks";
    let (status, detail) = if orphans.is_empty() {
        (Status::Ok, "none".to_string())
    } else {
        let list: Vec<String> = orphans
            .iter()
            .map(|w| {
                format!(
                    "pid {} (supervisor {} gone, {})",
                    w.pid,
                    w.supervisor,
                    w.cgroup.display()
                )
            })
            .collect();
        (
            Status::Warn,
            format!("{}; run `agent-sandbox cleanup`", list.join(", ")),
        )
    };
    check(CHECK_LEFTOVER_WATCHDOGS, status, detail, CONSEQUENCE)
}

fn check_leftover_bpf(orphans: &[WatchdogProcess], root: bool) -> Check {
    const CONSEQUENCE: &str = "programs of ended sessions stay loaded (and attached, if pinned)";
    let (status, detail) = match leftovers::leftover_programs(orphans) {
        Err(e) if !root => (Status::Warn, format!("{NEEDS_ROOT} ({e})")),
        Err(e) => (Status::Warn, e.to_string()),
        Ok(p) if p.is_empty() => (Status::Ok, "none".to_string()),
        Ok(p) => {
            let list: Vec<String> = p
                .iter()
                .map(|p| {
                    let by = match (p.pins.first(), p.holders.first()) {
                        (Some(pin), _) => format!("pinned at {}", pin.display()),
                        (None, Some(pid)) => format!("held by orphan watchdog {pid}"),
                        (None, None) => "held by no process".to_string(),
                    };
                    format!("{} (id {}, {by})", p.name, p.id)
                })
                .collect();
            (
                Status::Warn,
                format!("{}; run `agent-sandbox cleanup`", list.join(", ")),
            )
        }
    };
    check(CHECK_LEFTOVER_BPF, status, detail, CONSEQUENCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &'static str, status: Status, detail: &str) -> Check {
        check(name, status, detail.to_string(), "loses something")
    }

    #[test]
    fn table_is_aligned_and_shows_consequence_only_when_not_ok() {
        let checks = [
            c(CHECK_ROOT, Status::Ok, "euid 0"),
            c(CHECK_BPF_LSM, Status::Missing, "\"bpf\" not in active LSMs"),
            c(CHECK_TRACEFS, Status::Warn, "not mounted"),
        ];
        let table = render_table(&checks);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("CHECK"), "{table}");
        assert!(table.ends_with('\n'));
        // Every column starts at the same offset on every line, after a blank separator.
        for header in ["STATUS", "DETAIL", "IF MISSING"] {
            let col = lines[0].find(header).expect(header);
            for l in lines.iter().filter(|l| l.len() > col) {
                assert_eq!(&l[col - 2..col], "  ", "{header} in {l:?}\n{table}");
                assert_ne!(&l[col..col + 1], " ", "{header} in {l:?}\n{table}");
            }
        }
        let status_col = lines[0].find("STATUS").expect("STATUS");
        assert_eq!(&lines[1][status_col..status_col + 2], "ok");
        assert_eq!(&lines[2][status_col..status_col + 7], "MISSING");
        assert_eq!(&lines[3][status_col..status_col + 4], "warn");
        let detail_col = lines[0].find("DETAIL").expect("DETAIL");
        assert!(lines[2][detail_col..].starts_with("\"bpf\" not in"));
        let cons_col = lines[0].find("IF MISSING").expect("IF MISSING");
        assert!(
            !lines[1].contains("loses something"),
            "ok rows have no consequence"
        );
        assert_eq!(&lines[2][cons_col..], "loses something");
        assert_eq!(&lines[3][cons_col..], "loses something");
        assert!(
            lines.iter().all(|l| !l.ends_with(' ')),
            "no trailing spaces"
        );
    }

    #[test]
    fn table_without_problems_has_no_consequence_column() {
        let table = render_table(&[c(CHECK_ROOT, Status::Ok, "euid 0")]);
        assert!(!table.contains("IF MISSING"), "{table}");
        assert!(!table.contains("loses"), "{table}");
    }

    #[test]
    fn table_keeps_details_on_one_line() {
        let table = render_table(&[c(CHECK_LEFTOVERS, Status::Warn, "a\nb")]);
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(table.contains("a b"));
    }

    #[test]
    fn required_logic() {
        let ok = vec![
            c(CHECK_ROOT, Status::Ok, ""),
            c(CHECK_BPF_TRACEPOINT, Status::Ok, ""),
        ];
        assert!(all_required_ok(&ok));
        assert!(all_required_ok(&[]));
        // Optional mechanisms may be missing.
        let mut optional_missing = ok.clone();
        optional_missing.push(c(CHECK_BPF_LSM, Status::Missing, ""));
        optional_missing.push(c(CHECK_LANDLOCK, Status::Missing, ""));
        assert!(all_required_ok(&optional_missing));
        // A warning on a required check does not fail.
        let mut warn = ok.clone();
        warn.push(c(CHECK_TRACEFS, Status::Warn, "not mounted"));
        assert!(all_required_ok(&warn));
        // Any required check missing fails.
        for &name in REQUIRED {
            let mut missing = ok.clone();
            missing.push(c(name, Status::Missing, ""));
            assert!(!all_required_ok(&missing), "{name}");
        }
    }

    #[test]
    fn version_codes() {
        assert_eq!(version_code("6.18.44-fc-v595"), (6 << 16) | (18 << 8) | 44);
        assert_eq!(version_code("5.4.300"), (5 << 16) | (4 << 8) | 255);
        assert_eq!(version_code("6.1"), (6 << 16) | (1 << 8));
        assert_eq!(version_code("garbage"), 0);
    }

    #[test]
    fn tracefs_mount_points() {
        let mounts = "\
sysfs /sys sysfs rw 0 0
nodev /sys/kernel/tracing tracefs rw,relatime 0 0
tracefs /mnt/my\\040trace tracefs rw 0 0
";
        assert_eq!(
            mount_points_of(mounts, "tracefs"),
            vec![
                PathBuf::from("/sys/kernel/tracing"),
                PathBuf::from("/mnt/my trace")
            ]
        );
        assert!(mount_points_of("sysfs /sys sysfs rw 0 0\n", "tracefs").is_empty());
    }

    #[test]
    fn status_display_pads() {
        assert_eq!(format!("{:<8}|", Status::Ok), "ok      |");
        assert_eq!(Status::Missing.to_string(), "MISSING");
    }

    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test probes the kernel and must run as root (sudo cargo test)"
        );
    }

    /// The BPF probe is real: the tracepoint type loads and a bogus type is refused.
    #[test]
    fn bpf_probe_is_real() {
        require_root();
        let kv = kernel_version_code();
        bpf_prog_load(BPF_PROG_TYPE_TRACEPOINT, 0, kv).expect("tracepoint program loads");
        let err = bpf_prog_load(9999, 0, kv).expect_err("bogus program type must be refused");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        // A connect4 program with a bogus attach type is refused too.
        assert!(bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, 9999, kv).is_err());
        // A ring buffer whose size is not a power of two is refused.
        assert!(bpf_ringbuf_create(4096 * 3).is_err());
    }

    #[test]
    fn run_checks_on_this_machine() {
        require_root();
        let checks = run_checks();
        println!("{}", render_table(&checks));
        let status = |name: &str| {
            checks
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no check named {name}"))
                .status
        };
        assert_eq!(status(CHECK_ROOT), Status::Ok);
        assert_eq!(status(CHECK_CGROUP2), Status::Ok);
        assert_eq!(status(CHECK_CGROUP_KILL_FREEZE), Status::Ok);
        assert_eq!(status(CHECK_BPF_TRACEPOINT), Status::Ok);
        // The probe cgroup is gone.
        let mount = Cgroup2Mount::find().expect("cgroup2 mount");
        let probe = mount.mount_point.join(format!(
            "{}doctor-{}",
            cgroup::SESSION_PREFIX,
            std::process::id()
        ));
        assert!(!probe.exists(), "{} left behind", probe.display());
    }
}
