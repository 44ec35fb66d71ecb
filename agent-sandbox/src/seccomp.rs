//! seccomp user notification: the filter the agent's first process installs before it execs,
//! and the supervisor's side of the listener.
//!
//! The filter sends `execve`/`execveat` (and, when the policy protects paths, the deletion,
//! rename and truncation calls, refusing io_uring then) to the supervisor, and sends it what
//! an agent never needs and what touches the sandbox's own machinery (`bpf`, module and kexec
//! loading), which the supervisor always refuses and records (the kernel refuses them too,
//! with `ENOSYS`, when no supervisor answers). It allows the rest in the kernel. It is inherited by every descendant and cannot be removed. A notified task
//! waits inside the system call until the supervisor answers; with
//! `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` only a fatal signal ends that wait once the
//! supervisor has received the notification. If the supervisor dies, the kernel fails every
//! notified call with `ENOSYS`: the gate fails closed.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

/// `AUDIT_ARCH_X86_64` (linux/audit.h): the only architecture the filter lets through.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// Bit set in the syscall number by the x32 ABI, which would otherwise be a second way in.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (little-endian).
const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// System calls that always go to the supervisor.
const EXEC_CALLS: [i64; 2] = [libc::SYS_execve, libc::SYS_execveat];
/// Calls that delete, rename or truncate by path: sent to the supervisor when the policy has
/// `[[files.protect]]` rules.
const PATH_CALLS: [i64; 9] = [
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rmdir,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_creat,
    libc::SYS_truncate,
    libc::SYS_openat2,
];
/// Always refused, by the supervisor (which records the attempt): an agent never needs them,
/// and they reach the sandbox's own machinery (eBPF programs, kernel modules, the running
/// kernel).
pub const KERNEL_CALLS: [i64; 6] = [
    libc::SYS_bpf,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
];

/// Where a conditional jump goes.
#[derive(Clone, Copy)]
enum To {
    Next,
    Skip(u8),
    Notify,
    Deny,
    Allow,
}

enum Insn {
    Load(u32),
    JumpEq(u32, To, To),
    JumpSet(u32, To, To),
    Ret(u32),
}

/// A compiled filter program, built before the fork so that the child only has to install it.
pub struct Filter {
    prog: Vec<libc::sock_filter>,
}

impl Filter {
    /// The gate's filter. `paths`: also send deletions, renames and truncating opens.
    pub fn gate(paths: bool) -> Filter {
        Self::build(paths, false)
    }

    /// The gate's filter for an agent running as root, which file modes do not stop: as
    /// [`Filter::gate`], and `clone3` fails with `ENOSYS` (the C libraries then fall back to
    /// `clone`), since `CLONE_INTO_CGROUP` with an `O_PATH` descriptor would place a child in
    /// another cgroup without any open the fanotify fence could refuse.
    pub fn gate_root(paths: bool) -> Filter {
        Self::build(paths, true)
    }

    fn build(paths: bool, root: bool) -> Filter {
        use Insn::*;
        let mut p = vec![
            Load(OFF_ARCH),
            JumpEq(AUDIT_ARCH_X86_64, To::Skip(1), To::Next),
            // A 32-bit syscall table would be a way around every check below.
            Ret(SECCOMP_RET_KILL_PROCESS),
            Load(OFF_NR),
            JumpSet(X32_SYSCALL_BIT, To::Deny, To::Next),
        ];
        if paths {
            // Opens are by far the most frequent calls here, so they are answered first: only
            // the truncating ones leave the kernel.
            p.push(JumpEq(libc::SYS_openat as u32, To::Next, To::Skip(2)));
            p.push(Load(off_arg(2)));
            p.push(JumpSet(libc::O_TRUNC as u32, To::Notify, To::Allow));
            p.push(JumpEq(libc::SYS_open as u32, To::Next, To::Skip(2)));
            p.push(Load(off_arg(1)));
            p.push(JumpSet(libc::O_TRUNC as u32, To::Notify, To::Allow));
        }
        for nr in KERNEL_CALLS {
            p.push(JumpEq(nr as u32, To::Notify, To::Next));
        }
        if root {
            p.push(JumpEq(libc::SYS_clone3 as u32, To::Next, To::Skip(1)));
            p.push(Ret(SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
        }
        for nr in EXEC_CALLS {
            p.push(JumpEq(nr as u32, To::Notify, To::Next));
        }
        if paths {
            // io_uring can unlink and rename without any of the calls below: refused while
            // paths are gated (credential reads through it still hit the fanotify marks).
            p.push(JumpEq(libc::SYS_io_uring_setup as u32, To::Deny, To::Next));
            for nr in PATH_CALLS {
                p.push(JumpEq(nr as u32, To::Notify, To::Next));
            }
        }
        let allow = p.len();
        p.push(Ret(SECCOMP_RET_ALLOW));
        let notify = p.len();
        p.push(Ret(libc::SECCOMP_RET_USER_NOTIF));
        let deny = p.len();
        p.push(Ret(SECCOMP_RET_ERRNO | libc::EPERM as u32));

        let offset = |i: usize, to: To| -> u8 {
            let target = match to {
                To::Next => return 0,
                To::Skip(n) => return n,
                To::Notify => notify,
                To::Deny => deny,
                To::Allow => allow,
            };
            // Every target lies ahead, and the program is far shorter than 256 instructions.
            (target - i - 1) as u8
        };
        let prog = p
            .iter()
            .enumerate()
            .map(|(i, insn)| match *insn {
                Load(off) => stmt(BPF_LD | BPF_W | BPF_ABS, off),
                JumpEq(k, t, f) => jump(BPF_JEQ, k, offset(i, t), offset(i, f)),
                JumpSet(k, t, f) => jump(BPF_JSET, k, offset(i, t), offset(i, f)),
                Ret(k) => stmt(BPF_RET | BPF_K, k),
            })
            .collect();
        Filter { prog }
    }

    /// Number of instructions (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// Whether the program is empty (never, for [`Filter::gate`]).
    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }

    /// Installs the filter on the calling thread's process and returns the listener fd
    /// (close-on-exec), or the errno.
    ///
    /// # Safety
    /// Async-signal-safe: may be called in a freshly cloned child. `no_new_privs` must be set
    /// (or the caller must have CAP_SYS_ADMIN).
    pub unsafe fn install(&self) -> Result<RawFd, i32> {
        let fprog = libc::sock_fprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at our program, alive for the call; seccomp copies it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
                    | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                &raw const fprog,
            )
        };
        if fd < 0 {
            Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        } else {
            Ok(fd as RawFd)
        }
    }
}

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(op: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JMP | op | BPF_K,
        jt,
        jf,
        k,
    }
}

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS). Async-signal-safe.
///
/// # Safety
/// Both descriptors must be open.
pub unsafe fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), i32> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one cmsghdr carrying one int, aligned for cmsghdr.
    let mut buf = [0u64; 4];
    // SAFETY: msghdr is plain data; every pointer set below refers to locals that outlive the
    // sendmsg call, and CMSG_* only compute addresses inside `buf`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &raw const msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO));
        }
    }
    Ok(())
}

/// Receives one descriptor sent with [`send_fd`] (blocking).
pub fn recv_fd(sock: &OwnedFd) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = [0u64; 4];
    // SAFETY: as in send_fd; the kernel writes at most msg_controllen bytes into `buf`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&buf);
        let n = libc::recvmsg(sock.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if n == 0
            || cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the agent's process sent no seccomp listener",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// One notification: a task waiting in a system call.
#[derive(Debug, Clone, Copy)]
pub struct Notif {
    /// Cookie for the answer.
    pub id: u64,
    /// Thread id of the waiting task (in the supervisor's pid namespace).
    pub pid: u32,
    /// System call number.
    pub nr: i64,
    /// Arguments.
    pub args: [u64; 6],
}

/// The supervisor's end of the filter.
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// Wraps a listener fd received from the child.
    pub fn new(fd: OwnedFd) -> Self {
        // Wake the supervisor's thread on the CPU of the notifying task: lower latency per
        // exec (Linux 6.6+; older kernels simply keep the default).
        // SAFETY: SET_FLAGS takes a u64 by value on a listener fd.
        unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
                1u64, // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
            )
        };
        Listener { fd }
    }

    /// The fd, for polling.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives the next notification (blocks when none is pending). `Ok(None)` when the
    /// task went away before it could be received.
    pub fn recv(&self) -> io::Result<Option<Notif>> {
        // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed on input.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV writes one seccomp_notif into `n`.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &raw mut n,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(Notif {
            id: n.id,
            pid: n.pid,
            nr: n.data.nr as i64,
            args: n.data.args,
        }))
    }

    /// Whether the notification is still pending: call after reading the task's memory, so
    /// that what was read belongs to the task that is waiting (and not to a reused pid).
    pub fn id_valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: ID_VALID reads one u64.
        unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
                &raw mut id,
            ) == 0
        }
    }

    /// Lets the call proceed in the kernel.
    pub fn allow(&self, id: u64) -> io::Result<()> {
        self.send(id, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32)
    }

    /// Fails the call with `errno`.
    pub fn fail(&self, id: u64, errno: i32) -> io::Result<()> {
        self.send(id, -errno, 0)
    }

    fn send(&self, id: u64, error: i32, flags: u32) -> io::Result<()> {
        let mut resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error,
            flags,
        };
        // SAFETY: SEND reads one seccomp_notif_resp.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                &raw mut resp,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // The task was killed while held: nothing left to answer.
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Reads `len` bytes at `addr` in process `pid` (fewer at the end of a mapping).
pub fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the local iovec covers `buf`; the remote one is only read by the kernel, which
    // checks it against the target's mappings.
    let n =
        unsafe { libc::process_vm_readv(pid as i32, &raw const local, 1, &raw const remote, 1, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads a NUL-terminated string at `addr` in `pid`, at most `max` bytes. Reads stop at page
/// boundaries so that a string ending just before an unmapped page is still read.
pub fn read_cstr(pid: u32, addr: u64, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = addr;
    let mut chunk = [0u8; 4096];
    while out.len() < max {
        let to_page_end = 4096 - (at % 4096) as usize;
        let want = to_page_end.min(max - out.len());
        let n = read_mem(pid, at, &mut chunk[..want])?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("string longer than {max} bytes"),
    ))
}

/// Reads a NULL-terminated array of pointers at `addr` in `pid`, at most `max` entries.
/// `Ok(None)` when it has more than `max`.
pub fn read_ptrs(pid: u32, addr: u64, max: usize) -> io::Result<Option<Vec<u64>>> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(Some(out));
    }
    let mut at = addr;
    let mut chunk = [0u8; 4096];
    loop {
        let to_page_end = 4096 - (at % 4096) as usize;
        let n = read_mem(pid, at, &mut chunk[..to_page_end])?;
        if n < 8 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        for word in chunk[..n - n % 8].chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            let p = u64::from_ne_bytes(b);
            if p == 0 {
                return Ok(Some(out));
            }
            if out.len() == max {
                return Ok(None);
            }
            out.push(p);
        }
        at += (n - n % 8) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        for paths in [false, true] {
            let f = Filter::gate(paths);
            for (i, insn) in f.prog.iter().enumerate() {
                if insn.code & 0x07 == BPF_JMP {
                    assert!(i + 1 + (insn.jt as usize) < f.len(), "jt of {i}");
                    assert!(i + 1 + (insn.jf as usize) < f.len(), "jf of {i}");
                }
            }
            assert_eq!(f.prog.last().map(|i| i.code), Some(BPF_RET | BPF_K));
        }
        assert!(Filter::gate(true).len() > Filter::gate(false).len());
    }

    /// Runs the filter on one call (`nr`, arguments) as the kernel would: the action word.
    fn verdict(f: &Filter, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let insn = f.prog[pc];
            match insn.code {
                c if c == BPF_LD | BPF_W | BPF_ABS => {
                    let k = insn.k as usize;
                    let mut w = [0u8; 4];
                    w.copy_from_slice(&data[k..k + 4]);
                    acc = u32::from_ne_bytes(w);
                    pc += 1;
                }
                c if c == BPF_JMP | BPF_JEQ | BPF_K || c == BPF_JMP | BPF_JSET | BPF_K => {
                    let hit = if c & BPF_JSET != 0 {
                        acc & insn.k != 0
                    } else {
                        acc == insn.k
                    };
                    pc += 1 + usize::from(if hit { insn.jt } else { insn.jf });
                }
                c if c == BPF_RET | BPF_K => return insn.k,
                c => panic!("unexpected instruction {c:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_sends_kernel_calls_to_the_supervisor_and_refuses_clone3_to_root_agents() {
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        for f in [
            Filter::gate(false),
            Filter::gate(true),
            Filter::gate_root(false),
        ] {
            for nr in KERNEL_CALLS {
                assert_eq!(verdict(&f, nr, [0; 6]), notify, "syscall {nr}");
            }
            assert_eq!(verdict(&f, libc::SYS_execve, [0; 6]), notify);
            assert_eq!(verdict(&f, libc::SYS_getpid, [0; 6]), SECCOMP_RET_ALLOW);
        }
        let clone3 = |f: &Filter| verdict(f, libc::SYS_clone3, [0; 6]);
        assert_eq!(clone3(&Filter::gate(true)), SECCOMP_RET_ALLOW);
        assert_eq!(clone3(&Filter::gate_root(false)), enosys);
        assert_eq!(clone3(&Filter::gate_root(true)), enosys);
        // Path calls leave the kernel only when paths are gated; plain opens never do.
        let trunc = [libc::AT_FDCWD as u64, 0, libc::O_TRUNC as u64, 0, 0, 0];
        assert_eq!(
            verdict(&Filter::gate_root(true), libc::SYS_openat, trunc),
            notify
        );
        assert_eq!(
            verdict(&Filter::gate_root(false), libc::SYS_openat, trunc),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            verdict(&Filter::gate_root(true), libc::SYS_openat, [0; 6]),
            SECCOMP_RET_ALLOW
        );
        let open_trunc = [0, libc::O_TRUNC as u64, 0, 0, 0, 0];
        assert_eq!(
            verdict(&Filter::gate(true), libc::SYS_open, open_trunc),
            notify
        );
        assert_eq!(
            verdict(&Filter::gate(true), libc::SYS_open, [0; 6]),
            SECCOMP_RET_ALLOW
        );
        // The opens are answered first; every call after them is still looked at.
        for nr in [
            libc::SYS_unlink,
            libc::SYS_renameat2,
            libc::SYS_execve,
            libc::SYS_bpf,
        ] {
            assert_eq!(
                verdict(&Filter::gate(true), nr, [0; 6]),
                notify,
                "syscall {nr}"
            );
        }
        assert_eq!(
            verdict(&Filter::gate(true), libc::SYS_unlink, [0; 6]),
            notify
        );
        assert_eq!(
            verdict(&Filter::gate(false), libc::SYS_unlink, [0; 6]),
            SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn reads_strings_and_pointer_arrays_of_a_process() {
        let s = b"hello world\0";
        let got = read_cstr(std::process::id(), s.as_ptr() as u64, 100).unwrap();
        assert_eq!(got, b"hello world");
        assert!(read_cstr(std::process::id(), s.as_ptr() as u64, 5).is_err());
        let a = [s.as_ptr() as u64, 7, 0];
        let ptrs = read_ptrs(std::process::id(), a.as_ptr() as u64, 10).unwrap();
        assert_eq!(ptrs, Some(vec![s.as_ptr() as u64, 7]));
        assert_eq!(
            read_ptrs(std::process::id(), a.as_ptr() as u64, 1).unwrap(),
            None
        );
    }
}
