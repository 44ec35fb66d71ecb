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
    /// `cgroup.procs` of the session, opened by root before the fork.
    pub cgroup_procs: OwnedFd,
    /// Terminal to hand the foreground to, when we hold it.
    pub tty: Option<RawFd>,
    /// Target identity.
    pub uid: u32,
    /// Target gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
}

impl ChildSetup {
    /// The body of `pre_exec`: runs in the forked child, before exec.
    ///
    /// Order matters: join the cgroup first (as root, so nothing the child does escapes
    /// observation), take the terminal foreground, then drop privileges for good.
    pub fn apply(&self) -> io::Result<()> {
        let check = |r: libc::c_int| {
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY: all calls below are async-signal-safe system calls on memory owned by `self`,
        // which the forked child inherited intact.
        unsafe {
            let zero = b"0";
            if libc::write(self.cgroup_procs.as_raw_fd(), zero.as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
            // Own process group, so terminal-generated signals (Ctrl-C) reach the agent's
            // foreground job and not the supervisor, which forwards what it receives itself.
            check(libc::setpgid(0, 0))?;
            if let Some(tty) = self.tty {
                // We are a background group now: tcsetpgrp would stop us with SIGTTOU.
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                check(libc::tcsetpgrp(tty, libc::getpid()))?;
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
            check(libc::setgroups(self.groups.len(), self.groups.as_ptr()))?;
            check(libc::setgid(self.gid))?;
            check(libc::setuid(self.uid))?;
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            if self.uid != 0 && libc::setuid(0) == 0 {
                // Dropping privileges must be irreversible; refuse to exec otherwise.
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
        }
        Ok(())
    }
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
