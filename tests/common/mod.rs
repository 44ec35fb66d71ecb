//! Shared helpers of the end-to-end tests. They run the real supervisor, as root, on real
//! programs; a test that cannot get root fails (it never passes silently).
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The supervisor binary built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_agent-sandbox");

/// Uid the agent runs as in tests.
pub const NOBODY: u32 = 65534;

/// Panics unless the test runs as root: these tests need the real kernel features.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the end-to-end tests need root (cgroups, eBPF); run `cargo xtask test` as root"
    );
}

/// A scratch directory the unprivileged agent can use, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    /// Creates `target/e2e/<name>-<pid>-<n>` owned by `nobody`.
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
        let dir = base.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        // Every ancestor must be traversable by nobody.
        let mut p = dir.clone();
        while let Some(parent) = p.parent() {
            if parent.as_os_str().is_empty() || parent == Path::new("/") {
                break;
            }
            if let Ok(meta) = fs::metadata(parent) {
                let mode = meta.permissions().mode();
                if mode & 0o001 == 0 {
                    let _ = fs::set_permissions(parent, fs::Permissions::from_mode(mode | 0o011));
                }
            }
            p = parent.to_path_buf();
        }
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).expect("chown scratch dir");
        Self { dir }
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A workspace of the tests' own (`target/e2e/workspace`, with a `.git` so that the search
/// for a repository policy stops there instead of finding this repository's example policy).
pub fn neutral_workspace() -> PathBuf {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e/workspace");
    fs::create_dir_all(ws.join(".git")).expect("create test workspace");
    let _ = fs::set_permissions(&ws, fs::Permissions::from_mode(0o755));
    ws
}

/// `agent-sandbox run` with the given options, as a command ready to spawn. It starts in
/// [`neutral_workspace`], so only the embedded default policy applies unless a test says
/// otherwise (`current_dir`, `--policy`).
pub fn sandbox(opts: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run").args(opts).arg("--").args(cmd);
    c.current_dir(neutral_workspace());
    c
}

/// Starts a supervisor in the background, stdin closed, output captured.
pub fn spawn(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent-sandbox")
}

/// Runs to completion with a deadline, killing the supervisor (by pid) if it overruns.
pub fn run_with_deadline(cmd: Command, deadline: Duration) -> Output {
    wait_output(spawn(cmd), deadline)
}

/// Waits for a spawned supervisor with a deadline.
pub fn wait_output(child: Child, deadline: Duration) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("wait for agent-sandbox"),
        Err(_) => {
            // SAFETY: kill(2) of the supervisor this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("agent-sandbox (pid {pid}) did not finish within {deadline:?}");
        }
    }
}

/// Writes `text` to a new executable script in `dir` and returns its path. Scripts are run as
/// `bash FILE` rather than `bash -c TEXT`: the gate classifies an exec's argv, and test
/// scripts full of `eval` would (rightly) be held for a human as dynamic commands.
pub fn script_file(dir: &Path, text: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("script-{n}.sh"));
    fs::write(&path, text).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod script");
    path
}

/// Parses a JSON Lines events file.
pub fn read_events(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading events {}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Events of one kind.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The argv of an exec event as strings.
pub fn argv(ev: &Value) -> Vec<String> {
    ev["fields"]["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The session cgroup directory named by the session_start record.
pub fn session_cgroup(events: &[Value]) -> PathBuf {
    let start = events
        .iter()
        .find(|e| e["kind"] == "session_start")
        .expect("session_start record");
    PathBuf::from(start["cgroup"].as_str().expect("cgroup path"))
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Mount point of the cgroup v2 hierarchy on this machine.
pub fn cgroup2_root() -> String {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4))
        .expect("a cgroup2 mount on the test machine")
        .to_string()
}

/// Starts `bash SCRIPT` (written to a file in `scratch`) under the sandbox as `user`, in
/// `ws`, with `--trust-policy` and the state directory `state`.
pub fn start_script(scratch: &Path, state: &Path, ws: &Path, user: &str, script: &str) -> Child {
    let path = script_file(scratch, script);
    let mut c = Command::new(BIN);
    c.args(["run", "--user", user, "--trust-policy", "--state-dir"])
        .arg(state)
        .args(["--", "/bin/bash"])
        .arg(&path)
        .current_dir(ws)
        .stdin(Stdio::null());
    spawn(c)
}

/// The actions held now in the sessions of `state` (via `decide --list --json`).
pub fn held_in(state: &Path) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(["decide", "--list", "--json", "--state-dir"])
        .arg(state)
        .output()
        .expect("run agent-sandbox decide --list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| v["held"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Waits up to `limit` for the first held action of the session that `child` supervises;
/// if none comes, stops the session and fails with its output.
pub fn wait_held_in(state: &Path, child: Child, limit: Duration) -> (Value, Child) {
    let mut found = None;
    let pid = child.id();
    wait_until(limit, || {
        found = held_in(state).into_iter().next();
        found.is_some() || !alive(pid)
    });
    match found {
        Some(h) => (h, child),
        None => {
            // SAFETY: kill(2) of the supervisor the caller started.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let out = wait_output(child, Duration::from_secs(30));
            panic!("nothing was held; the session said:\n{}", text(&out));
        }
    }
}

/// A command's stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The supervisors a test started with `--state-dir STATE`: those still running are killed on
/// drop, so that a failing test leaves no held or frozen session behind (the watchdog then
/// ends the tree).
pub struct Supervisors {
    state: String,
    pids: std::cell::RefCell<Vec<u32>>,
}

impl Supervisors {
    /// Tracks supervisors of the state directory `state`.
    pub fn new(state: &Path) -> Self {
        Supervisors {
            state: state.to_string_lossy().into_owned(),
            pids: Default::default(),
        }
    }

    /// Tracks `child`, a supervisor.
    pub fn track(&self, child: &Child) {
        self.pids.borrow_mut().push(child.id());
    }
}

impl Drop for Supervisors {
    fn drop(&mut self) {
        for &pid in self.pids.borrow().iter() {
            let ours = fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&self.state));
            if ours && alive(pid) {
                // SAFETY: kill(2) of a supervisor this test started (checked by its cmdline).
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// A tmux session of the test's own (a real terminal), killed (by name) when dropped.
pub struct Tmux(pub String);

impl Tmux {
    pub fn start(name: &str, cmd: &str) -> Tmux {
        let st = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "50",
                "-s",
                name,
                cmd,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "tmux new-session");
        Tmux(name.to_string())
    }

    pub fn screen(&self) -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let st = Command::new("tmux")
            .args(["send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub fn wait_for(&self, what: &str) {
        assert!(
            wait_until(Duration::from_secs(20), || self.screen().contains(what)),
            "the terminal never showed {what:?}; screen:\n{}",
            self.screen()
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}
