//! Starting the agent: as the invoking (unprivileged) user, with that user's groups and
//! environment, `no_new_privs`, in the session cgroup before it execs anything.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::unistd::{Gid, Uid, User};

/// Errors of resolving who the agent runs as.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// `--user` names nobody.
    #[error("user `{0}` does not exist (check the name given to --user)")]
    NoSuchUser(String),
    /// SUDO_UID is set but malformed or unknown.
    #[error("SUDO_UID={0} does not name an existing user")]
    BadSudoUid(String),
    /// Neither sudo nor --user says who the agent should run as.
    #[error(
        "cannot tell which user the agent should run as: start agent-sandbox with sudo (it uses \
         SUDO_UID) or pass --user NAME (use `--user root` to run the agent as root, which removes \
         most of the protection)"
    )]
    NoInvokingUser,
    /// A lookup failed.
    #[error("looking up user {what}: {source}")]
    Lookup {
        /// What was looked up.
        what: String,
        /// The error.
        #[source]
        source: nix::Error,
    },
}

/// Who the agent runs as.
#[derive(Debug, Clone)]
pub struct Identity {
    /// User name.
    pub name: String,
    /// Uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary groups (including the primary one).
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell.
    pub shell: PathBuf,
}

impl Identity {
    /// `--user NAME` when given, else the user behind sudo (SUDO_UID).
    pub fn resolve(user: Option<&str>) -> Result<Self, LaunchError> {
        let u = match user {
            Some(name) => User::from_name(name)
                .map_err(|source| LaunchError::Lookup {
                    what: name.to_string(),
                    source,
                })?
                .ok_or_else(|| LaunchError::NoSuchUser(name.to_string()))?,
            None => {
                let raw = std::env::var("SUDO_UID").map_err(|_| LaunchError::NoInvokingUser)?;
                let uid: u32 = raw
                    .parse()
                    .map_err(|_| LaunchError::BadSudoUid(raw.clone()))?;
                User::from_uid(Uid::from_raw(uid))
                    .map_err(|source| LaunchError::Lookup {
                        what: raw.clone(),
                        source,
                    })?
                    .ok_or(LaunchError::BadSudoUid(raw))?
            }
        };
        let cname =
            CString::new(u.name.clone()).map_err(|_| LaunchError::NoSuchUser(u.name.clone()))?;
        let groups = nix::unistd::getgrouplist(&cname, u.gid)
            .map_err(|source| LaunchError::Lookup {
                what: format!("groups of {}", u.name),
                source,
            })?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        Ok(Self {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            groups,
            home: u.dir,
            shell: u.shell,
        })
    }

    /// The agent's environment: ours (sudo already reset it to a safe set) without sudo's own
    /// variables, with the identity's HOME, USER, LOGNAME and SHELL.
    pub fn environment(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| {
                let k = k.to_string_lossy();
                !k.starts_with("SUDO_") && !matches!(&*k, "HOME" | "USER" | "LOGNAME" | "SHELL")
            })
            .collect();
        env.push(("HOME".into(), self.home.clone().into_os_string()));
        env.push(("USER".into(), self.name.clone().into()));
        env.push(("LOGNAME".into(), self.name.clone().into()));
        env.push(("SHELL".into(), self.shell.clone().into_os_string()));
        env
    }
}

/// Everything the child needs after fork, prepared before it so that the child only makes
/// async-signal-safe system calls.
pub struct ChildSetup {
    /// The session cgroup's directory, opened by root before the fork: the child is created
    /// inside it (`CLONE_INTO_CGROUP`), so it never runs a single instruction outside.
    pub cgroup_dir: OwnedFd,
    /// Terminal to hand the foreground to, when we hold it.
    pub tty: Option<RawFd>,
    /// Target identity.
    pub uid: u32,
    /// Target gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
    /// The gate's seccomp filter and the socket its listener fd is sent over, when the gate
    /// is on. Installed last, after privileges are dropped and `no_new_privs` is set.
    pub gate: Option<(crate::seccomp::Filter, RawFd)>,
    /// Keep the agent off the supervisor's terminal (`run --tui`): a new session without a
    /// controlling terminal and these descriptors as its stdio.
    pub detach: Option<Detach>,
}

/// The stdio of an agent kept off the terminal. Without a controlling terminal and without a
/// descriptor of it, the agent can neither type into the approval UI (`TIOCSTI`) nor read it.
#[derive(Debug, Clone, Copy)]
pub struct Detach {
    /// Becomes fd 0 (`/dev/null`).
    pub stdin: RawFd,
    /// Becomes fds 1 and 2 (the agent's output file).
    pub output: RawFd,
}

impl ChildSetup {
    /// Runs in the new child, before exec: take the terminal foreground, then drop privileges
    /// for good. Returns the failing step's errno.
    ///
    /// # Safety
    /// Only call in a freshly cloned child of a possibly multi-threaded process: everything
    /// below is an async-signal-safe system call on memory `self` owns.
    unsafe fn apply(&self) -> Result<(), (Step, i32)> {
        let check = |step: Step, r: libc::c_int| {
            if r < 0 { Err((step, errno())) } else { Ok(()) }
        };
        // SAFETY: see the function's contract.
        unsafe {
            // Dispositions and mask survive exec: give the agent the defaults a shell would.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if let Some(d) = self.detach {
                // Its own session: no controlling terminal, so no terminal signal or ioctl
                // reaches the supervisor's terminal through it.
                check(Step::Setsid, libc::setsid())?;
                check(Step::Stdio, libc::dup2(d.stdin, 0))?;
                check(Step::Stdio, libc::dup2(d.output, 1))?;
                check(Step::Stdio, libc::dup2(d.output, 2))?;
            } else {
                // Own process group, so terminal-generated signals (Ctrl-C) reach the agent's
                // foreground job and not the supervisor, which forwards what it receives.
                check(Step::Setpgid, libc::setpgid(0, 0))?;
            }
            if let Some(tty) = self.tty.filter(|_| self.detach.is_none()) {
                // We are a background group now: tcsetpgrp would stop us with SIGTTOU.
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                check(Step::Tcsetpgrp, libc::tcsetpgrp(tty, libc::getpid()))?;
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
            // Raw system calls: glibc's setgroups/setgid/setuid broadcast the change to every
            // thread it believes exists, and in a child cloned from a multi-threaded process
            // those threads do not exist; glibc would wait for them forever.
            check(
                Step::Setgroups,
                libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr()) as i32,
            )?;
            check(
                Step::Setgid,
                libc::syscall(libc::SYS_setresgid, self.gid, self.gid, self.gid) as i32,
            )?;
            check(
                Step::Setuid,
                libc::syscall(libc::SYS_setresuid, self.uid, self.uid, self.uid) as i32,
            )?;
            check(
                Step::NoNewPrivs,
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            )?;
            if self.uid != 0 && libc::syscall(libc::SYS_setresuid, 0, 0, 0) == 0 {
                // Dropping privileges must be irreversible; refuse to exec otherwise.
                return Err((Step::Setuid, libc::EPERM));
            }
            if let Some((filter, sock)) = &self.gate {
                let listener = filter.install().map_err(|e| (Step::Seccomp, e))?;
                // The supervisor must hold the listener before our exec, which is its first
                // notification; the agent must never hold it.
                let sent = crate::seccomp::send_fd(*sock, listener);
                libc::close(listener);
                libc::close(*sock);
                sent.map_err(|e| (Step::Seccomp, e))?;
            }
        }
        Ok(())
    }
}

/// The step of starting the agent that failed (reported through the error pipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// setpgid(0, 0)
    Setpgid = 1,
    /// tcsetpgrp on the terminal
    Tcsetpgrp,
    /// setgroups
    Setgroups,
    /// setgid
    Setgid,
    /// setuid, or the check that root cannot be regained
    Setuid,
    /// PR_SET_NO_NEW_PRIVS
    NoNewPrivs,
    /// execve itself
    Exec,
    /// installing the gate's seccomp filter or handing its listener over
    Seccomp,
    /// setsid (an agent kept off the terminal)
    Setsid,
    /// dup2 of the agent's stdio (an agent kept off the terminal)
    Stdio,
}

impl Step {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Step::Setpgid,
            2 => Step::Tcsetpgrp,
            3 => Step::Setgroups,
            4 => Step::Setgid,
            5 => Step::Setuid,
            6 => Step::NoNewPrivs,
            7 => Step::Exec,
            8 => Step::Seccomp,
            9 => Step::Setsid,
            10 => Step::Stdio,
            _ => return None,
        })
    }
}

/// Why the agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// An argument or environment entry holds a NUL byte.
    #[error("argument or environment entry contains a NUL byte: {0:?}")]
    Nul(OsString),
    /// clone3 or the error pipe failed in the supervisor.
    #[error("creating the agent's process: {0}")]
    Clone(#[source] io::Error),
    /// A step in the child failed; `Exec` carries exec's errno (ENOENT, EACCES...).
    #[error("{step:?}: {source}")]
    Child {
        /// The step.
        step: Step,
        /// Its error.
        #[source]
        source: io::Error,
    },
}

/// The started agent.
pub struct Child {
    /// Its pid.
    pub pid: i32,
    /// A pidfd: readable once the process has exited, and safe against pid reuse.
    pub pidfd: OwnedFd,
}

/// `struct clone_args` (linux/sched.h), up to the `cgroup` field (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn cstring(s: &std::ffi::OsStr) -> Result<CString, SpawnError> {
    use std::os::unix::ffi::OsStrExt as _;
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Nul(s.to_owned()))
}

/// Starts `program` with `argv` and `env` inside the session cgroup, set up by `setup`;
/// `on_clone` gets the child's pid as soon as it exists; the child waits for it to return
/// before it does anything else, so nothing it does can be reported from an unknown pid.
///
/// The child is created directly in the cgroup with `clone3(CLONE_INTO_CGROUP)`: moving a
/// running process by writing `cgroup.procs` waits for an RCU grace period (about 10 ms here),
/// and the child would exist, however briefly, outside the session. A failure of any step
/// before exec, exec's included, comes back through a close-on-exec pipe, so "exec succeeded"
/// is known for certain when this returns `Ok`.
pub fn spawn(
    program: &std::path::Path,
    argv: &[OsString],
    env: &[(OsString, OsString)],
    setup: &ChildSetup,
    on_clone: &dyn Fn(i32),
) -> Result<Child, SpawnError> {
    use std::os::fd::FromRawFd as _;
    use std::os::unix::ffi::OsStrExt as _;

    let path = cstring(program.as_os_str())?;
    let args = argv
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envs = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| SpawnError::Nul(k.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envs.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::Clone(io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    // The go-ahead: the child waits on it until `on_clone` has run, so observers know its
    // pid before anything it does can be reported.
    // SAFETY: as above.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::Clone(io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (go_rd, go_wr) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };

    let mut pidfd: RawFd = -1;
    let mut cl = CloneArgs {
        flags: (libc::CLONE_PIDFD as u64) | CLONE_INTO_CGROUP,
        pidfd: (&raw mut pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: setup.cgroup_dir.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM duplicates the process like fork; `cl` is a valid
    // clone_args of the size passed.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw mut cl,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // The child. SAFETY: only async-signal-safe system calls on memory prepared before
        // the clone; it never returns into the caller.
        unsafe {
            let report = |step: Step, err: i32| -> ! {
                let mut msg = [0u8; 8];
                msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
                msg[4..].copy_from_slice(&err.to_ne_bytes());
                libc::write(wr.as_raw_fd(), msg.as_ptr().cast(), msg.len());
                libc::_exit(127)
            };
            // Our copy of the write end goes first, so a supervisor that dies before its
            // go-ahead leaves end-of-file here, and the child never runs the command.
            libc::close(go_wr.as_raw_fd());
            let mut go = 0u8;
            loop {
                let n = libc::read(go_rd.as_raw_fd(), (&raw mut go).cast(), 1);
                if n == 1 {
                    break;
                }
                if n == 0 || errno() != libc::EINTR {
                    libc::_exit(127);
                }
            }
            if let Err((step, err)) = setup.apply() {
                report(step, err);
            }
            libc::execve(path.as_ptr(), argp.as_ptr(), envp.as_ptr());
            report(Step::Exec, errno());
        }
    }
    if pid < 0 {
        return Err(SpawnError::Clone(io::Error::last_os_error()));
    }
    let pid = pid as i32;
    // Observers learn the child's pid before it may go on (see the go-ahead above).
    on_clone(pid);
    // SAFETY: CLONE_PIDFD stored a new descriptor owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(go_rd);
    // SAFETY: writing one byte from our own buffer to our own pipe.
    let sent = unsafe { libc::write(go_wr.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    if sent != 1 {
        let err = io::Error::last_os_error();
        // The child exits on end-of-file once our end is closed; reap it before reporting.
        drop(go_wr);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(SpawnError::Clone(err));
    }
    drop(go_wr);
    drop(wr);
    let mut msg = [0u8; 8];
    let n = loop {
        // SAFETY: reading into our own buffer from our own pipe.
        let n = unsafe { libc::read(rd.as_raw_fd(), msg.as_mut_ptr().cast(), msg.len()) };
        if n >= 0 || errno() != libc::EINTR {
            break n;
        }
    };
    if n == 8 {
        // The child failed before exec and exits 127: reap it, then report.
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let step = Step::from_u32(u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]))
            .unwrap_or(Step::Exec);
        let err = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
        return Err(SpawnError::Child {
            step,
            source: io::Error::from_raw_os_error(err),
        });
    }
    Ok(Child { pid, pidfd })
}

/// Reaps the exited child behind `pidfd` and returns its status as a shell reports it: the
/// exit code, or 128+N when signal N ended it. Call once the pidfd is readable.
pub fn reap(pidfd: &OwnedFd) -> io::Result<i32> {
    // SAFETY: siginfo_t is plain data; waitid fills it for the process behind our pidfd.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: see above; P_PIDFD = 3.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        if r == 0 {
            break;
        }
        if errno() != libc::EINTR {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: waitid filled a SIGCHLD siginfo.
    let (code, status) = unsafe { (info.si_code, info.si_status()) };
    Ok(match code {
        libc::CLD_EXITED => status,
        _ => 128 + status,
    })
}

/// The terminal on stdin when this process is in its foreground process group.
pub fn foreground_tty() -> Option<RawFd> {
    // SAFETY: isatty/tcgetpgrp/getpgrp only inspect fd 0 and our own process group.
    unsafe { (libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp()).then_some(0) }
}

/// Makes our process group the terminal's foreground group again after the agent is gone.
pub fn reclaim_tty(tty: RawFd) {
    // SAFETY: signal disposition juggling around tcsetpgrp on a terminal fd we hold; SIGTTOU
    // is ignored only for the duration of the call.
    unsafe {
        let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(tty, libc::getpgrp());
        libc::signal(libc::SIGTTOU, old);
    }
}

/// Finds `program` the way a shell would: as given when it contains a slash, else in the first
/// `PATH` directory that holds an executable regular file of that name. `None` means "command
/// not found" (exit 127). Resolving here, instead of letting execvp search, keeps an
/// unreadable directory in PATH from turning "not found" into "permission denied".
pub fn resolve_command(program: &std::ffi::OsStr, env: &[(OsString, OsString)]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    if program.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    if program.is_empty() {
        return None;
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|cand| {
            std::fs::metadata(cand)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}
