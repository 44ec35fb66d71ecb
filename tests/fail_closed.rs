//! End-to-end tests of failing closed (as root, real programs): when the supervisor is killed
//! with SIGKILL, the watchdog kills the agent's whole tree (daemons included), lets go of the
//! network programs and the fanotify group only once the tree is gone, and removes the
//! session cgroup; a pending open of a protected file never succeeds; normal exits and Ctrl-C
//! leave no watchdog; `doctor` lists leftovers and `cleanup` removes them.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use agent_sandbox::leftovers::{prog_ids_held_by, program_exists};
use agent_sandbox::watchdog::{self, WatchdogProcess};
use common::*;

/// Generous: these deadlines only bound a failing test, they are not timing assertions.
const DEADLINE: Duration = Duration::from_secs(30);

/// The tests kill supervisors on purpose and one of them runs the machine-wide `cleanup`:
/// they run one at a time so that a session killed by one test is never cleaned by another.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) of a process this test started or found.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}) failed");
}

/// The session cgroup of supervisor `sup` (its name starts with `agent-sandbox-<sup>-`).
fn session_cgroup_of(sup: u32) -> PathBuf {
    let root = PathBuf::from(cgroup2_root());
    let prefix = format!("agent-sandbox-{sup}-");
    let mut found = None;
    assert!(
        wait_until(DEADLINE, || {
            found = fs::read_dir(&root).ok().and_then(|rd| {
                rd.filter_map(Result::ok)
                    .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
            });
            found.is_some()
        }),
        "no session cgroup {prefix}* under {}",
        root.display()
    );
    found.expect("checked above")
}

fn procs(cg: &Path) -> Vec<u32> {
    fs::read_to_string(cg.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_string())
        .unwrap_or_default()
}

/// Waits until the session has `n` processes named `name`.
fn wait_for_procs(cg: &Path, name: &str, n: usize) -> Vec<u32> {
    let mut seen = Vec::new();
    assert!(
        wait_until(DEADLINE, || {
            seen = procs(cg);
            seen.iter().filter(|&&p| comm(p) == name).count() == n
        }),
        "expected {n} {name} processes in {}, found {:?}",
        cg.display(),
        seen.iter().map(|&p| (p, comm(p))).collect::<Vec<_>>()
    );
    seen
}

/// The watchdog of supervisor `sup`, once it runs.
fn watchdog_of(sup: u32) -> WatchdogProcess {
    let mut found = None;
    assert!(
        wait_until(DEADLINE, || {
            found = watchdog::running()
                .into_iter()
                .find(|w| w.supervisor == sup as i32);
            found.is_some()
        }),
        "no watchdog for supervisor {sup}"
    );
    found.expect("checked above")
}

fn no_watchdog_of(sup: u32) -> bool {
    !watchdog::running()
        .iter()
        .any(|w| w.supervisor == sup as i32)
}

/// The cgroup line (`0::/...`) of a process.
fn cgroup_of(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(String::from))
        .unwrap_or_default()
}

/// Session id of a process (field 6 of /proc/PID/stat).
fn sid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn start(cmd: Command) -> (Child, u32, PathBuf) {
    let child = spawn(cmd);
    let sup = child.id();
    let cg = session_cgroup_of(sup);
    (child, sup, cg)
}

#[test]
fn supervisor_sigkill_kills_the_whole_tree_and_leaves_nothing() {
    require_root();
    let _serial = serial();
    let (child, sup, cg) = start(sandbox(
        &["--user", "nobody"],
        &[
            "/bin/sh",
            "-c",
            "sleep 1000 & sleep 1000 & (setsid sleep 1000 &); wait",
        ],
    ));
    let pids = wait_for_procs(&cg, "sleep", 3);
    assert!(pids.len() >= 4, "shell and three sleeps: {pids:?}");
    let daemon = pids
        .iter()
        .copied()
        .find(|&p| comm(p) == "sleep" && sid(p) == Some(p))
        .expect("the setsid sleep leads its own session");

    let wd = watchdog_of(sup);
    let wd_pid = wd.pid as u32;
    assert_eq!(wd.cgroup, cg, "the watchdog guards this session's cgroup");
    let rel = cgroup_of(wd_pid);
    let cg_name = cg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        !rel.contains(&cg_name),
        "the watchdog runs inside the session cgroup: {rel}"
    );
    assert_eq!(
        sid(wd_pid),
        Some(wd_pid),
        "the watchdog has a session of its own"
    );
    // It holds the links of the four cgroup network programs.
    let held_by_wd = prog_ids_held_by(wd.pid);
    assert_eq!(
        held_by_wd.len(),
        4,
        "programs the watchdog holds: {held_by_wd:?}"
    );
    let ours: BTreeSet<u32> = prog_ids_held_by(sup as i32);
    assert!(
        ours.len() >= 8 && held_by_wd.is_subset(&ours),
        "supervisor's programs {ours:?}, watchdog's {held_by_wd:?}"
    );

    signal(sup, libc::SIGKILL);

    assert!(
        wait_until(DEADLINE, || pids.iter().all(|&p| !alive(p))),
        "still alive after the supervisor's SIGKILL: {:?}",
        pids.iter()
            .filter(|&&p| alive(p))
            .map(|&p| (p, comm(p)))
            .collect::<Vec<_>>()
    );
    assert!(!alive(daemon));
    assert!(
        wait_until(DEADLINE, || !cg.exists()),
        "{} was not removed",
        cg.display()
    );
    assert!(
        wait_until(DEADLINE, || !alive(wd_pid)),
        "the watchdog {wd_pid} did not exit"
    );
    assert!(
        wait_until(DEADLINE, || ours.iter().all(|&id| !program_exists(id))),
        "BPF programs of the session still loaded: {:?}",
        ours.iter()
            .filter(|&&id| program_exists(id))
            .collect::<Vec<_>>()
    );
    let out = wait_output(child, DEADLINE);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "watchdog: the supervisor (pid {sup}) died without ending the session"
        )) && err.contains("removed"),
        "the watchdog did not report its work: {err}"
    );
}

#[test]
fn an_open_pending_when_the_supervisor_dies_never_succeeds() {
    require_root();
    let _serial = serial();
    let scratch = Scratch::new("pending-open");
    fs::create_dir_all(scratch.path(".git")).unwrap();
    fs::write(
        scratch.path("policy.toml"),
        "[[files.deny_read]]\nid = \"test-cred\"\nwhy = \"stand-in\"\npaths = [\"secrets/cred.txt\"]\n",
    )
    .unwrap();
    let secret = "s3cr3t-pending-open-must-not-leak";
    fs::create_dir_all(scratch.path("secrets")).unwrap();
    fs::write(scratch.path("secrets/cred.txt"), format!("{secret}\n")).unwrap();
    for p in ["secrets", "secrets/cred.txt"] {
        std::os::unix::fs::chown(scratch.path(p), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let state = scratch.path("state");
    fs::create_dir_all(&state).unwrap();
    let out_file = scratch.path("out.txt");
    let go = scratch.path("go");
    // The reader is exec'd before the supervisor stops (every exec goes through the gate,
    // which a stopped supervisor cannot answer); only its open happens afterwards.
    let script = format!(
        "python3 -c 'import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)\nsys.stdout.write(open(\"secrets/cred.txt\").read())' {go} > {out}; echo \"cat=$?\" >> {out}",
        go = go.display(),
        out = out_file.display()
    );
    let mut cmd = sandbox(
        &[
            "--user",
            "nobody",
            "--trust-policy",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &["/bin/sh", "-c", &script],
    );
    cmd.current_dir(&scratch.dir);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn agent-sandbox");
    let sup = child.id();
    let cg = session_cgroup_of(sup);
    let wd = watchdog_of(sup);
    // The agent exists (the watchdog is armed before it is spawned).
    wait_for_procs(&cg, "sh", 1);

    // With the supervisor stopped, nobody answers the permission event: the reader waits in
    // open.
    let pids = wait_for_procs(&cg, "python3", 1);
    let cat = pids
        .iter()
        .copied()
        .find(|&p| comm(p) == "python3")
        .unwrap();
    signal(sup, libc::SIGSTOP);
    fs::write(&go, "").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(cat), "cat ended while nobody could answer");
    let wchan = fs::read_to_string(format!("/proc/{cat}/wchan")).unwrap_or_default();
    assert!(
        fs::read_to_string(&out_file).unwrap_or_default().is_empty(),
        "cat wrote before the kill (wchan {wchan})"
    );

    // The watchdog is held back while the supervisor dies, so that the supervisor's exit
    // (which closes its copy of the fanotify group) cannot race with the kill: the open must
    // still be pending, because the watchdog's copy keeps the group alive.
    let wd_pid = wd.pid as u32;
    signal(wd_pid, libc::SIGSTOP);
    signal(sup, libc::SIGKILL);
    let mut child = child;
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(500));
    let early = fs::read_to_string(&out_file).unwrap_or_default();
    assert!(
        alive(cat) && early.is_empty(),
        "the open did not stay pending once the supervisor was gone: cat alive {}, out {early:?}",
        alive(cat)
    );
    signal(wd_pid, libc::SIGCONT);
    assert!(
        wait_until(DEADLINE, || !alive(cat) && !cg.exists() && !alive(wd_pid)),
        "the tree, its cgroup or the watchdog is still there"
    );
    let written = fs::read_to_string(&out_file).unwrap_or_default();
    assert!(
        !written.contains(secret),
        "the protected file's content leaked: {written:?}"
    );
    assert!(
        !written.contains("cat="),
        "the shell went on after the open: {written:?}"
    );
}

#[test]
fn normal_exit_and_ctrl_c_leave_no_watchdog() {
    require_root();
    let _serial = serial();
    // Normal exit.
    let child = spawn(sandbox(&["--user", "nobody"], &["/bin/true"]));
    let sup = child.id();
    let out = wait_output(child, DEADLINE);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        no_watchdog_of(sup),
        "a watchdog of {sup} outlived its session"
    );

    // Ctrl-C: SIGINT to the supervisor's process group (the agent has a group of its own and
    // gets it forwarded). The watchdog ignores terminal signals sent to it directly too.
    let mut cmd = sandbox(&["--user", "nobody"], &["/bin/sleep", "1000"]);
    cmd.process_group(0);
    let (child, sup, cg) = start(cmd);
    wait_for_procs(&cg, "sleep", 1);
    let wd = watchdog_of(sup);
    let wd_pid = wd.pid as u32;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal(wd_pid, sig);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(wd_pid), "a terminal signal ended the watchdog");
    // SAFETY: kill(2) of the process group this test created.
    assert_eq!(unsafe { libc::kill(-(sup as i32), libc::SIGINT) }, 0);
    let out = wait_output(child, DEADLINE);
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("watchdog:"),
        "the watchdog acted on a normal end: {err}"
    );
    assert!(
        wait_until(DEADLINE, || !alive(wd_pid)),
        "the watchdog survived the session"
    );
    assert!(no_watchdog_of(sup));
    assert!(!cg.exists(), "{} left behind", cg.display());
}

#[test]
fn doctor_lists_leftovers_and_cleanup_removes_them() {
    require_root();
    let _serial = serial();
    // An artificial leftover: a cgroup named like a session of a supervisor that is gone.
    let mut gone = Command::new("/bin/true").spawn().expect("spawn true");
    let dead = gone.id();
    gone.wait().unwrap();
    let fake = PathBuf::from(cgroup2_root()).join(format!("agent-sandbox-{dead}-fa11c105"));
    fs::create_dir(&fake).expect("create the artificial leftover cgroup");

    // A real one: a session whose watchdog is stopped when its supervisor dies, so the tree,
    // the cgroup, the watchdog and the network programs it holds all stay.
    let mut cmd = sandbox(&["--user", "nobody"], &["/bin/sleep", "1000"]);
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().expect("spawn agent-sandbox");
    let sup = child.id();
    let cg = session_cgroup_of(sup);
    let sleeper = wait_for_procs(&cg, "sleep", 1)[0];
    let wd = watchdog_of(sup);
    let wd_pid = wd.pid as u32;
    let held = prog_ids_held_by(wd.pid);
    assert_eq!(held.len(), 4, "{held:?}");
    signal(wd_pid, libc::SIGSTOP);
    signal(sup, libc::SIGKILL);
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(sleeper) && cg.exists(), "the stopped watchdog acted");
    // The network rules did not die with the supervisor: the programs the watchdog holds are
    // still attached to the session cgroup (as the kernel reports it).
    let shown = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(&cg)
        .output()
        .expect("bpftool (cargo xtask setup installs it)");
    let attached: BTreeSet<u32> = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(
        attached,
        held,
        "bpftool cgroup show: {}",
        String::from_utf8_lossy(&shown.stdout)
    );

    let doctor = Command::new(BIN)
        .arg("doctor")
        .output()
        .expect("run doctor");
    let report = String::from_utf8_lossy(&doctor.stdout);
    for needle in [
        fake.display().to_string(),
        cg.display().to_string(),
        format!("pid {wd_pid} (supervisor {sup} gone"),
        "connect4".to_string(),
        format!("held by orphan watchdog {wd_pid}"),
    ] {
        assert!(
            report.contains(&needle),
            "doctor does not list {needle}:\n{report}"
        );
    }

    let cleanup = Command::new(BIN)
        .arg("cleanup")
        .output()
        .expect("run cleanup");
    let said = String::from_utf8_lossy(&cleanup.stdout);
    assert_eq!(
        cleanup.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&cleanup.stderr)
    );
    assert!(
        said.contains(&format!("killed orphan watchdog {wd_pid}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("removed {}", fake.display())),
        "{said}"
    );
    assert!(
        said.contains(&format!("removed {}", cg.display())),
        "{said}"
    );
    assert!(!fake.exists() && !cg.exists());
    assert!(wait_until(DEADLINE, || !alive(sleeper) && !alive(wd_pid)));
    assert!(
        wait_until(DEADLINE, || held.iter().all(|&id| !program_exists(id))),
        "programs still loaded: {held:?}"
    );

    let again = Command::new(BIN)
        .arg("doctor")
        .output()
        .expect("run doctor");
    let report = String::from_utf8_lossy(&again.stdout);
    assert!(!report.contains(&fake.display().to_string()), "{report}");
    assert!(!report.contains(&format!("pid {wd_pid} ")), "{report}");
}
