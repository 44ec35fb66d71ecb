//! The `sigkill` workload: how long the agent's tree survives its supervisor. Each rep starts
//! `agent-sandbox run --user root -- sh -c 'sleep 1000 & sleep 1000 & (setsid sleep 1000 &);
//! wait'`, waits until the session cgroup holds the shell and the three sleeps (the daemonised
//! one included), sends SIGKILL to the supervisor and times how long until `cgroup.events`
//! says `populated 0` (or the cgroup is gone): the watchdog's reaction, `cgroup.kill` and the
//! kernel's teardown of the tree. The time until the cgroup directory is removed is printed
//! beside it.

use std::fs;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// The agent's script: two background children and a `setsid` daemon whose parent exits.
pub const SCRIPT: &str = "sleep 1000 & sleep 1000 & (setsid sleep 1000 &); wait";
/// Processes the session holds once the script is up: the shell and three sleeps.
const EXPECTED_PROCS: usize = 4;
/// Bounds of a failing rep (not timing assertions).
const DEADLINE: Duration = Duration::from_secs(30);

/// One rep's measurements.
#[derive(Debug, Clone, Copy)]
pub struct Rep {
    /// SIGKILL of the supervisor to `populated 0`.
    pub tree_gone_ms: f64,
    /// SIGKILL of the supervisor to the cgroup directory's removal.
    pub cgroup_removed_ms: f64,
}

/// The cgroup v2 mount point, from /proc/self/mountinfo.
fn cgroup2_mount() -> Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    text.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split_whitespace().next()? == "cgroup2")
                .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .context("no cgroup2 mount in /proc/self/mountinfo")
}

/// A workspace of its own (with `.git`, so that no repository policy above it applies).
pub fn workspace(bench_dir: &Path) -> Result<PathBuf> {
    let ws = bench_dir.join("sigkill-workspace");
    fs::create_dir_all(ws.join(".git"))
        .with_context(|| format!("failed to create {}", ws.display()))?;
    Ok(ws)
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// Kills whatever a failed rep left and reaps the supervisor.
fn abandon(child: &mut Child, cgroup: Option<&Path>) {
    let _ = child.kill();
    let _ = child.wait();
    if let Some(cg) = cgroup {
        let _ = fs::write(cg.join("cgroup.kill"), "1");
        let _ = wait_until(Duration::from_secs(5), || {
            fs::remove_dir(cg).is_ok() || !cg.exists()
        });
    }
}

/// Runs one rep.
pub fn rep(supervisor: &Path, workspace: &Path, stderr_log: &Path) -> Result<Rep> {
    let mount = cgroup2_mount()?;
    let log = fs::File::create(stderr_log)
        .with_context(|| format!("failed to create {}", stderr_log.display()))?;
    let mut child = Command::new(supervisor)
        .args(["run", "--user", "root", "--", "/bin/sh", "-c", SCRIPT])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("failed to start {}", supervisor.display()))?;
    let prefix = format!("agent-sandbox-{}-", child.id());
    let mut cgroup = None;
    let found = wait_until(DEADLINE, || {
        cgroup = fs::read_dir(&mount).ok().and_then(|rd| {
            rd.filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
        });
        cgroup.as_ref().is_some_and(|cg| {
            fs::read_to_string(cg.join("cgroup.procs"))
                .map(|p| p.lines().count() >= EXPECTED_PROCS)
                .unwrap_or(false)
        })
    });
    let Some(cg) = cgroup.filter(|_| found) else {
        abandon(&mut child, None);
        bail!(
            "the session did not reach {EXPECTED_PROCS} processes within {DEADLINE:?} (see {})",
            stderr_log.display()
        );
    };
    let events = fs::File::open(cg.join("cgroup.events"))
        .with_context(|| format!("opening {}/cgroup.events", cg.display()))?;

    let t0 = Instant::now();
    // SAFETY: kill(2) of the supervisor this function started and has not reaped.
    if unsafe { libc::kill(child.id() as i32, libc::SIGKILL) } != 0 {
        let err = std::io::Error::last_os_error();
        abandon(&mut child, Some(&cg));
        bail!("SIGKILL of the supervisor failed: {err}");
    }
    let mut tree_gone = None;
    while t0.elapsed() < DEADLINE {
        let populated = fs::read_to_string(cg.join("cgroup.events"))
            .ok()
            .map(|t| t.lines().any(|l| l.trim() == "populated 1"));
        if populated != Some(true) {
            tree_gone = Some(t0.elapsed());
            break;
        }
        // cgroup.events signals a change with POLLPRI; the short timeout covers a missed one.
        let mut pfd = libc::pollfd {
            fd: events.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: polling one descriptor we own.
        unsafe { libc::poll(&mut pfd, 1, 1) };
    }
    let Some(tree_gone) = tree_gone else {
        abandon(&mut child, Some(&cg));
        bail!("the session's processes were still there {DEADLINE:?} after the SIGKILL");
    };
    if !wait_until(DEADLINE, || !cg.exists()) {
        abandon(&mut child, Some(&cg));
        bail!("{} was not removed after the SIGKILL", cg.display());
    }
    let removed = t0.elapsed();
    let _ = child.wait();
    Ok(Rep {
        tree_gone_ms: tree_gone.as_secs_f64() * 1000.0,
        cgroup_removed_ms: removed.as_secs_f64() * 1000.0,
    })
}
