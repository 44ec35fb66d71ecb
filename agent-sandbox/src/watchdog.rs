//! The watchdog: a session fails closed when its supervisor dies.
//!
//! [`Watchdog::start`] re-executes this binary as `agent-sandbox __watchdog ...`, a separate
//! root process that is started before the agent, outside the session cgroup, in a session of
//! its own (so Ctrl-C, a closed terminal or a signal to the supervisor's process group never
//! reach it). It holds:
//!
//! - a pidfd of the supervisor and one end of a control socket whose other end only the
//!   supervisor has (close-on-exec, so the agent never inherits it);
//! - duplicates of the descriptors in `keep`: the bpf_links of the session cgroup's network
//!   programs (the rules stay attached until the tree is dead) and the fanotify group (while
//!   one descriptor of the group is open, an open of a protected file that nobody answers keeps
//!   waiting; the kernel answers "allow" only when the last one closes).
//!
//! It never holds the seccomp listener (it exists only after the watchdog has started, and the
//! watchdog closes every descriptor it was not handed), so a dead supervisor also means that
//! every syscall the listener gates fails.
//!
//! When the supervisor dies without disarming it (the pidfd becomes readable, or the control
//! socket reaches end-of-file without the disarm byte), the watchdog writes `cgroup.kill`,
//! waits (bounded) until `cgroup.events` says `populated 0`, closes what it holds, removes the
//! cgroup and exits. [`Watchdog::disarm`] at the normal end makes it exit without acting.
//!
//! Public API: [`Watchdog`] (`start`, `disarm`, `pid`), [`main`] (the hidden subcommand),
//! [`running`] and [`WatchdogProcess`] (what `doctor` and `cleanup` look for), and
//! [`process_start_time`].

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand that runs the watchdog (`agent-sandbox __watchdog ...`).
pub const SUBCOMMAND: &str = "__watchdog";

/// Byte the watchdog sends once it is armed.
const READY: u8 = b'R';
/// Byte the supervisor sends at the normal end.
const DISARM: u8 = b'D';
/// How long `start` waits for the watchdog to arm itself.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the watchdog waits for the killed tree to be gone before it lets go anyway (every
/// process of it has SIGKILL pending by then: none returns to user space again).
const EMPTY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the supervisor waits for the watchdog to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Exit status of a watchdog that was disarmed.
pub const EXIT_DISARMED: i32 = 0;
/// Exit status of a watchdog that found the supervisor dead and killed the tree.
pub const EXIT_ACTED: i32 = 3;
/// Exit status of a watchdog that could not start or could not finish its work.
pub const EXIT_FAILED: i32 = 1;

/// Errors of starting, disarming or running the watchdog.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// The control socket could not be created.
    #[error("creating the watchdog's control socket: {0}")]
    Socket(#[source] io::Error),
    /// The watchdog process could not be started.
    #[error("starting the watchdog ({exe}): {source}")]
    Spawn {
        /// What was executed.
        exe: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The watchdog started but did not arm itself; the session must not start without it.
    #[error("the watchdog (pid {pid}) did not arm itself: {detail}")]
    NotReady {
        /// Its pid.
        pid: u32,
        /// What happened (its own message is on stderr).
        detail: String,
    },
    /// The watchdog was gone or misbehaved when the session ended.
    #[error("disarming the watchdog (pid {pid}): {detail}")]
    Disarm {
        /// Its pid.
        pid: u32,
        /// What happened.
        detail: String,
    },
    /// The hidden subcommand got a command line it does not understand.
    #[error(
        "{SUBCOMMAND}: {0}; this subcommand is started by `agent-sandbox run`, not by hand \
         (usage: {SUBCOMMAND} SUPERVISOR_PID SUPERVISOR_START CONTROL_FD CGROUP_DIR [FD...])"
    )]
    Usage(String),
    /// A step of the watchdog's own setup or work failed.
    #[error("watchdog: {what}: {source}")]
    Setup {
        /// What it was doing.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn setup_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> WatchdogError {
    let what = what.into();
    move |source| WatchdogError::Setup { what, source }
}

/// The supervisor's handle on its running watchdog.
///
/// Dropping it without [`Watchdog::disarm`] (an error path of the supervisor) closes the
/// control socket: the watchdog then kills the tree and removes the cgroup, and the drop waits
/// (bounded) until it has.
#[derive(Debug)]
pub struct Watchdog {
    child: std::process::Child,
    pidfd: OwnedFd,
    control: Option<OwnedFd>,
}

impl Watchdog {
    /// Starts the watchdog of the session cgroup `cgroup_dir`, handing it duplicates of `keep`
    /// (the network programs' bpf_link descriptors and the fanotify group), and waits until it
    /// is armed. Call it before the agent exists.
    pub fn start(cgroup_dir: &Path, keep: &[BorrowedFd<'_>]) -> Result<Self, WatchdogError> {
        let (ours, theirs) = socketpair().map_err(WatchdogError::Socket)?;
        let me = std::process::id();
        let start = process_start_time(me as i32).ok_or_else(|| WatchdogError::Spawn {
            exe: PathBuf::from("/proc/self/exe"),
            source: io::Error::other("cannot read this process's start time in /proc/self/stat"),
        })?;
        // argv[0] names the real binary, so that `doctor` recognises the process.
        let arg0 = std::env::current_exe()
            .map(PathBuf::into_os_string)
            .unwrap_or_else(|_| OsString::from("agent-sandbox"));
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0(&arg0)
            .arg(SUBCOMMAND)
            .arg(me.to_string())
            .arg(start.to_string())
            .arg(theirs.as_raw_fd().to_string())
            .arg(cgroup_dir)
            .args(keep.iter().map(|fd| fd.as_raw_fd().to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let inherit: Vec<RawFd> = keep
            .iter()
            .map(|fd| fd.as_raw_fd())
            .chain([theirs.as_raw_fd()])
            .collect();
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (setsid, fcntl) on descriptors it reads from a vector
        // built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // A session of its own: no terminal, no process group shared with anyone.
                libc::setsid();
                for &fd in &inherit {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| WatchdogError::Spawn {
            exe: PathBuf::from(&arg0),
            source,
        })?;
        drop(theirs);
        let pid = child.id();
        let pidfd = match pidfd_open(pid as i32) {
            Ok(fd) => fd,
            Err(e) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(WatchdogError::NotReady {
                    pid,
                    detail: format!("pidfd_open: {e}"),
                });
            }
        };
        let mut wd = Self {
            child,
            pidfd,
            control: Some(ours),
        };
        match wd.wait_ready() {
            Ok(()) => Ok(wd),
            Err(detail) => {
                // It must not act on our behalf later: kill it before it could.
                wd.kill_and_reap();
                Err(WatchdogError::NotReady { pid, detail })
            }
        }
    }

    /// The watchdog's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let Some(control) = self.control.as_ref() else {
            return Err("no control socket".into());
        };
        match poll_in(control.as_fd(), Some(READY_TIMEOUT)) {
            Ok(true) => {}
            Ok(false) => return Err(format!("no answer within {READY_TIMEOUT:?}")),
            Err(e) => return Err(format!("poll: {e}")),
        }
        match recv_byte(control.as_fd()) {
            Ok(Some(READY)) => Ok(()),
            Ok(Some(b)) => Err(format!("unexpected byte {b:#x}")),
            Ok(None) => {
                let status = describe(&self.wait_exit(Duration::from_secs(2)));
                Err(format!("it exited ({status}); its message is above"))
            }
            Err(e) => Err(format!("reading its control socket: {e}")),
        }
    }

    /// Normal end of the session (the tree is gone): tells the watchdog to exit without acting
    /// and waits for it. An error means it was no longer watching (it was killed, or it acted).
    pub fn disarm(mut self) -> Result<(), WatchdogError> {
        let pid = self.pid();
        let sent = match self.control.take() {
            Some(control) => send_byte(control.as_fd(), DISARM),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        };
        let status = self.wait_exit(EXIT_TIMEOUT);
        match (sent, &status) {
            (Ok(()), Ok(st)) if st.code() == Some(EXIT_DISARMED) => Ok(()),
            (Ok(()), _) => Err(WatchdogError::Disarm {
                pid,
                detail: format!("it ended with {}", describe(&status)),
            }),
            (Err(e), _) => Err(WatchdogError::Disarm {
                pid,
                detail: format!(
                    "it was gone before the session ended ({e}; {}): the tree ran without it \
                     from some point",
                    describe(&status)
                ),
            }),
        }
    }

    /// Waits up to `limit` for the watchdog to exit and reaps it.
    fn wait_exit(&mut self, limit: Duration) -> Result<std::process::ExitStatus, String> {
        match poll_in(self.pidfd.as_fd(), Some(limit)) {
            Ok(true) => {}
            Ok(false) => return Err(format!("still running after {limit:?}")),
            Err(e) => return Err(format!("poll on its pidfd: {e}")),
        }
        self.child.wait().map_err(|e| format!("wait: {e}"))
    }

    fn kill_and_reap(&mut self) {
        self.control = None;
        // SAFETY: pidfd_send_signal on the pidfd of our own unreaped child.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        let _ = self.wait_exit(EXIT_TIMEOUT);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if self.control.take().is_some() {
            // Not disarmed: end-of-file on the control socket makes it act, as if we had died.
            let status = self.wait_exit(EXIT_TIMEOUT);
            if !matches!(&status, Ok(st) if st.code() == Some(EXIT_ACTED)) {
                eprintln!(
                    "agent-sandbox: the watchdog (pid {}) ended with {}",
                    self.child.id(),
                    describe(&status)
                );
            }
        }
    }
}

/// How a waited-for watchdog ended, for messages.
fn describe(status: &Result<std::process::ExitStatus, String>) -> String {
    match status {
        Ok(st) => st.to_string(),
        Err(e) => e.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The watchdog process.

/// The watchdog's command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The supervisor's pid.
    pub supervisor: i32,
    /// The supervisor's start time (clock ticks since boot, field 22 of /proc/PID/stat).
    pub supervisor_start: u64,
    /// The control socket's descriptor.
    pub control: RawFd,
    /// The session cgroup's directory.
    pub cgroup: PathBuf,
    /// Descriptors to hold until the tree is gone.
    pub keep: Vec<RawFd>,
}

fn parse_num<T: std::str::FromStr>(arg: Option<&OsString>, what: &str) -> Result<T, WatchdogError> {
    let a = arg.ok_or_else(|| WatchdogError::Usage(format!("missing {what}")))?;
    a.to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| WatchdogError::Usage(format!("{what} {a:?} is not a number")))
}

/// Parses the arguments after the subcommand's name.
pub fn parse_args(args: &[OsString]) -> Result<Args, WatchdogError> {
    let supervisor: i32 = parse_num(args.first(), "supervisor pid")?;
    let supervisor_start: u64 = parse_num(args.get(1), "supervisor start time")?;
    let control: RawFd = parse_num(args.get(2), "control descriptor")?;
    let cgroup = PathBuf::from(
        args.get(3)
            .ok_or_else(|| WatchdogError::Usage("missing cgroup directory".into()))?,
    );
    let keep = args
        .iter()
        .skip(4)
        .map(|a| parse_num::<RawFd>(Some(a), "descriptor"))
        .collect::<Result<Vec<_>, _>>()?;
    if supervisor <= 0 {
        return Err(WatchdogError::Usage(format!(
            "supervisor pid {supervisor} is not a process"
        )));
    }
    if !cgroup.is_absolute() {
        return Err(WatchdogError::Usage(format!(
            "cgroup directory {} is not absolute",
            cgroup.display()
        )));
    }
    let mut all: Vec<RawFd> = keep.iter().copied().chain([control]).collect();
    all.sort_unstable();
    if all.first().is_some_and(|&fd| fd < 3) {
        return Err(WatchdogError::Usage(
            "descriptors 0, 1 and 2 are stdio, not ones to hold".into(),
        ));
    }
    if all.windows(2).any(|w| w[0] == w[1]) {
        return Err(WatchdogError::Usage("a descriptor is named twice".into()));
    }
    Ok(Args {
        supervisor,
        supervisor_start,
        control,
        cgroup,
        keep,
    })
}

/// Runs the hidden subcommand with the arguments after its name; returns the exit status
/// ([`EXIT_DISARMED`], [`EXIT_ACTED`] or [`EXIT_FAILED`]).
pub fn main(args: &[OsString]) -> i32 {
    let result = parse_args(args).and_then(run);
    match result {
        Ok(code) => code,
        Err(e) => {
            say(format_args!("agent-sandbox: {e}"));
            EXIT_FAILED
        }
    }
}

/// What woke the watchdog.
enum Wake {
    Disarmed,
    SupervisorGone(&'static str),
}

fn run(args: Args) -> Result<i32, WatchdogError> {
    // Terminal and job-control signals must not end or stop it (SIGKILL and SIGSTOP can only
    // come from root).
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ] {
        // SAFETY: setting a signal's disposition to "ignore".
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    close_all_but(&args)?;
    // SAFETY: parse_args checked that these numbers are distinct; close_all_but checked each is
    // open. From here on each is owned exactly once.
    let control = unsafe { OwnedFd::from_raw_fd(args.control) };
    let keep: Vec<OwnedFd> = args
        .keep
        .iter()
        // SAFETY: as above.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    // The OOM killer must never pick the process that keeps the session closed.
    let _ = fs::write("/proc/self/oom_score_adj", "-1000");

    let cgroup = SessionFiles::open(&args.cgroup)?;
    check_outside(&args.cgroup)?;

    // A supervisor that died before this point: its pid may even be reused, hence the start
    // time and the parent check.
    let pidfd = match pidfd_open(args.supervisor) {
        Ok(fd)
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } == args.supervisor
                && process_start_time(args.supervisor) == Some(args.supervisor_start) =>
        {
            Some(fd)
        }
        _ => None,
    };
    let wake = match &pidfd {
        None => Wake::SupervisorGone("it was gone when the watchdog started"),
        Some(pidfd) => {
            send_byte(control.as_fd(), READY).map_err(setup_err("reporting ready"))?;
            watch(control.as_fd(), pidfd.as_fd())
        }
    };
    match wake {
        Wake::Disarmed => Ok(EXIT_DISARMED),
        Wake::SupervisorGone(how) => {
            let ok = act(&args, &cgroup, keep, how);
            Ok(if ok { EXIT_ACTED } else { EXIT_FAILED })
        }
    }
}

/// Closes every descriptor above stdio that the watchdog was not handed, and checks that the
/// handed ones are open.
fn close_all_but(args: &Args) -> Result<(), WatchdogError> {
    let mut mine: Vec<RawFd> = args.keep.iter().copied().chain([args.control]).collect();
    mine.sort_unstable();
    let mut from: u32 = 3;
    for &fd in &mine {
        // SAFETY: F_GETFD only inspects the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(WatchdogError::Setup {
                what: format!("descriptor {fd} handed by the supervisor"),
                source: io::Error::last_os_error(),
            });
        }
        let fd = fd as u32;
        if fd > from {
            // SAFETY: closes descriptors nothing in this process uses (it just started).
            unsafe { libc::close_range(from, fd - 1, 0) };
        }
        from = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::close_range(from, u32::MAX, 0) };
    Ok(())
}

/// Refuses to run inside the cgroup it is meant to kill.
fn check_outside(session: &Path) -> Result<(), WatchdogError> {
    let mount = crate::cgroup::Cgroup2Mount::find().map_err(|e| WatchdogError::Setup {
        what: "finding the cgroup v2 mount".into(),
        source: io::Error::other(e.to_string()),
    })?;
    let own =
        fs::read_to_string("/proc/self/cgroup").map_err(setup_err("reading /proc/self/cgroup"))?;
    let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Ok(());
    };
    let root = mount.root.trim_end_matches('/');
    let own_dir = rel
        .strip_prefix(root)
        .map(|r| mount.mount_point.join(r.trim_start_matches('/')));
    if own_dir.is_some_and(|d| d.starts_with(session)) {
        return Err(WatchdogError::Setup {
            what: format!("checking that it runs outside {}", session.display()),
            source: io::Error::other("the watchdog is inside the session cgroup"),
        });
    }
    Ok(())
}

/// Waits until the supervisor disarms it or dies.
fn watch(control: BorrowedFd<'_>, pidfd: BorrowedFd<'_>) -> Wake {
    loop {
        let Ok(revents) = crate::poll::either(control, pidfd) else {
            // Cannot watch any more: fail closed.
            return Wake::SupervisorGone("the watchdog could not poll");
        };
        // A disarm byte sent just before the supervisor exited counts, whatever woke us.
        if revents[0] != 0 {
            return match recv_byte(control) {
                Ok(Some(DISARM)) => Wake::Disarmed,
                Ok(Some(_)) => continue,
                Ok(None) => Wake::SupervisorGone("its control socket closed"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => Wake::SupervisorGone("its control socket failed"),
            };
        }
        if revents[1] != 0 {
            return match recv_byte(control) {
                Ok(Some(DISARM)) => Wake::Disarmed,
                _ => Wake::SupervisorGone("it exited"),
            };
        }
    }
}

/// The session cgroup's files the watchdog needs, opened while it is armed.
struct SessionFiles {
    kill: fs::File,
    events: fs::File,
}

impl SessionFiles {
    fn open(dir: &Path) -> Result<Self, WatchdogError> {
        let kill = dir.join("cgroup.kill");
        let events = dir.join("cgroup.events");
        Ok(Self {
            kill: fs::OpenOptions::new()
                .write(true)
                .open(&kill)
                .map_err(setup_err(format!("opening {}", kill.display())))?,
            events: fs::File::open(&events)
                .map_err(setup_err(format!("opening {}", events.display())))?,
        })
    }

    /// `populated` from cgroup.events; `None` when it cannot be read (the cgroup is gone).
    fn populated(&self) -> Option<bool> {
        use std::os::unix::fs::FileExt as _;
        let mut buf = [0u8; 256];
        let n = self.events.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(buf.get(..n)?).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("populated "))
            .map(|v| v.trim() != "0")
    }

    /// Waits until the cgroup is empty (true) or `limit` passes (false). Kernfs signals a
    /// change of cgroup.events with POLLPRI; the short timeout covers a missed one.
    fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.populated() {
                Some(false) | None => return true,
                Some(true) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut pfd = libc::pollfd {
                fd: self.events.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            };
            let ms = left.as_millis().min(20) as libc::c_int;
            // SAFETY: polling one descriptor we own.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }
}

/// Kills the tree, waits for it, lets go of what it held and removes the cgroup. True when
/// everything went as planned.
fn act(args: &Args, cgroup: &SessionFiles, keep: Vec<OwnedFd>, how: &str) -> bool {
    let mut ok = true;
    if let Err(e) = (&cgroup.kill).write_all(b"1") {
        // A cgroup removed meanwhile has nothing left to kill.
        if cgroup.populated().is_some() {
            say(format_args!(
                "agent-sandbox: watchdog: writing {}/cgroup.kill: {e}",
                args.cgroup.display()
            ));
            ok = false;
        }
    }
    let emptied = cgroup.wait_empty(EMPTY_TIMEOUT);
    // The tree is dead (or every process of it has SIGKILL pending): the network rules and the
    // file marks can go.
    drop(keep);
    let removed = crate::cgroup::remove_dir_retry(&args.cgroup, Duration::from_secs(2));
    say(format_args!(
        "agent-sandbox: watchdog: the supervisor (pid {}) died without ending the session \
         ({how}); killed the session's processes{}{}",
        args.supervisor,
        if emptied {
            String::new()
        } else {
            format!(" (some still exiting after {EMPTY_TIMEOUT:?})")
        },
        match &removed {
            Ok(()) => format!(" and removed {}", args.cgroup.display()),
            Err(e) => format!(
                "; could not remove {}: {e} (`agent-sandbox cleanup` will)",
                args.cgroup.display()
            ),
        }
    ));
    ok && emptied && removed.is_ok()
}

/// Writes one line to stderr, ignoring errors: the terminal may be gone, and the watchdog must
/// finish its work whatever happens to its output (eprintln! would panic).
fn say(msg: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Finding watchdogs (doctor, cleanup).

/// A watchdog process found on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogProcess {
    /// Its pid.
    pub pid: i32,
    /// The supervisor it watches.
    pub supervisor: i32,
    /// That supervisor's start time, from the command line.
    pub supervisor_start: u64,
    /// The session cgroup it guards.
    pub cgroup: PathBuf,
}

impl WatchdogProcess {
    /// Whether the supervisor it watches still runs (same pid and same start time).
    pub fn supervisor_alive(&self) -> bool {
        process_start_time(self.supervisor) == Some(self.supervisor_start)
    }
}

/// Recognises a watchdog's `/proc/PID/cmdline` (NUL-separated): argv[0] is an
/// `agent-sandbox` binary and argv[1] the hidden subcommand.
pub fn parse_cmdline(pid: i32, cmdline: &[u8]) -> Option<WatchdogProcess> {
    let argv: Vec<OsString> = cmdline
        .split(|&b| b == 0)
        .map(|a| OsStr::from_bytes(a).to_os_string())
        .collect();
    let name = Path::new(argv.first()?).file_name()?.to_str()?;
    if !name.starts_with("agent-sandbox") || argv.get(1)? != SUBCOMMAND {
        return None;
    }
    // A trailing NUL leaves an empty last element.
    let rest: Vec<OsString> = argv
        .get(2..)?
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    let args = parse_args(&rest).ok()?;
    Some(WatchdogProcess {
        pid,
        supervisor: args.supervisor,
        supervisor_start: args.supervisor_start,
        cgroup: args.cgroup,
    })
}

/// Every watchdog running on the machine (root-owned processes with a watchdog's command
/// line).
pub fn running() -> Vec<WatchdogProcess> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            if e.metadata().ok()?.uid() != 0 {
                return None;
            }
            let cmdline = fs::read(e.path().join("cmdline")).ok()?;
            parse_cmdline(pid, &cmdline)
        })
        .collect()
}

/// Kills a watchdog whose supervisor is gone, after checking again (through a pidfd, so that
/// the pid cannot be reused meanwhile) that it is one. Waits up to 2 s for it to exit; true
/// when it did.
pub fn kill_orphan(w: &WatchdogProcess) -> io::Result<bool> {
    let pidfd = pidfd_open(w.pid)?;
    let cmdline = fs::read(format!("/proc/{}/cmdline", w.pid))?;
    let again = parse_cmdline(w.pid, &cmdline);
    if again.as_ref() != Some(w) || w.supervisor_alive() {
        return Err(io::Error::other(
            "no longer an orphan agent-sandbox watchdog; left alone",
        ));
    }
    // SAFETY: pidfd_send_signal on a pidfd we opened; it cannot reach a reused pid.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    poll_in(pidfd.as_fd(), Some(Duration::from_secs(2)))
}

/// Start time of a process (clock ticks since boot, field 22 of `/proc/PID/stat`); `None`
/// when it does not exist.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of a `/proc/PID/stat` line (the command name, field 2, may contain spaces and
/// parentheses: fields are counted after its last `)`).
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(19)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Small system call wrappers.

fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into the array we own.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here only.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; a non-negative return is a new descriptor.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: pidfd_open returned a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until `fd` is readable (or hung up); false on timeout. `None` waits for ever.
fn poll_in(fd: BorrowedFd<'_>, limit: Option<Duration>) -> io::Result<bool> {
    let deadline = limit.map(|l| Instant::now() + l);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as libc::c_int,
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one descriptor we own.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            return Ok(true);
        }
        if r == 0 {
            return Ok(false);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn send_byte(fd: BorrowedFd<'_>, b: u8) -> io::Result<()> {
    // SAFETY: sending one byte from our stack; MSG_NOSIGNAL: a closed peer is an error, not
    // SIGPIPE.
    let r = unsafe { libc::send(fd.as_raw_fd(), (&raw const b).cast(), 1, libc::MSG_NOSIGNAL) };
    if r == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One byte, `None` at end-of-file; never blocks.
fn recv_byte(fd: BorrowedFd<'_>) -> io::Result<Option<u8>> {
    let mut b = 0u8;
    loop {
        // SAFETY: receiving at most one byte into our stack.
        let r = unsafe { libc::recv(fd.as_raw_fd(), (&raw mut b).cast(), 1, libc::MSG_DONTWAIT) };
        match r {
            1 => return Ok(Some(b)),
            0 => return Ok(None),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_its_command_line() {
        let a = parse_args(&os(&[
            "42",
            "1234",
            "7",
            "/sys/fs/cgroup/agent-sandbox-42-ab",
            "5",
            "9",
        ]))
        .expect("valid");
        assert_eq!(
            a,
            Args {
                supervisor: 42,
                supervisor_start: 1234,
                control: 7,
                cgroup: PathBuf::from("/sys/fs/cgroup/agent-sandbox-42-ab"),
                keep: vec![5, 9],
            }
        );
        assert!(parse_args(&os(&["42", "1", "7", "/cg"])).is_ok());
    }

    #[test]
    fn refuses_bad_command_lines() {
        for bad in [
            &[][..],
            &["x", "1", "7", "/cg"][..],
            &["0", "1", "7", "/cg"][..],
            &["-3", "1", "7", "/cg"][..],
            &["42", "1", "7"][..],
            &["42", "1", "7", "relative/cg"][..],
            &["42", "1", "2", "/cg"][..],
            &["42", "1", "7", "/cg", "1"][..],
            &["42", "1", "7", "/cg", "7"][..],
            &["42", "1", "7", "/cg", "5", "5"][..],
            &["42", "1", "7", "/cg", "five"][..],
            &["42", "nope", "7", "/cg"][..],
        ] {
            assert!(parse_args(&os(bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn recognises_watchdog_cmdlines() {
        let line = [
            "/usr/local/bin/agent-sandbox",
            "__watchdog",
            "100",
            "555",
            "4",
            "/sys/fs/cgroup/unified/agent-sandbox-100-ff",
            "5",
            "6",
            "",
        ]
        .join("\0");
        let line = line.as_bytes();
        let w = parse_cmdline(77, line).expect("a watchdog");
        assert_eq!(w.pid, 77);
        assert_eq!(w.supervisor, 100);
        assert_eq!(w.supervisor_start, 555);
        assert_eq!(
            w.cgroup,
            PathBuf::from("/sys/fs/cgroup/unified/agent-sandbox-100-ff")
        );
        // Another program, or agent-sandbox doing something else.
        let other = [
            "/usr/bin/python3",
            "__watchdog",
            "100",
            "555",
            "4",
            "/cg",
            "",
        ]
        .join("\0");
        assert!(parse_cmdline(1, other.as_bytes()).is_none());
        assert!(parse_cmdline(1, b"/usr/bin/agent-sandbox\0run\0--\0bash\0").is_none());
        assert!(parse_cmdline(1, b"agent-sandbox\0__watchdog\0garbage\0").is_none());
        assert!(parse_cmdline(1, b"").is_none());
    }

    #[test]
    fn start_time_field() {
        // comm with spaces and parentheses; starttime is 22nd field.
        let stat =
            "123 (a) b (c)) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_start_time("1 (x) S 1 2"), None);
        let me = process_start_time(std::process::id() as i32).expect("own start time");
        assert!(me > 0);
    }

    #[test]
    fn control_socket_bytes_and_eof() {
        let (a, b) = socketpair().expect("socketpair");
        assert!(matches!(recv_byte(b.as_fd()), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        send_byte(a.as_fd(), DISARM).expect("send");
        assert!(poll_in(b.as_fd(), Some(Duration::from_secs(1))).expect("poll"));
        assert_eq!(recv_byte(b.as_fd()).expect("recv"), Some(DISARM));
        drop(a);
        assert!(poll_in(b.as_fd(), Some(Duration::from_secs(1))).expect("poll"));
        assert_eq!(recv_byte(b.as_fd()).expect("recv"), None);
    }
}
