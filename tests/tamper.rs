//! End-to-end tests of the anti-tamper guarantees (issue 5): a process inside the sandbox
//! tries, and fails, to kill, signal or trace the supervisor and the watchdog, to release a
//! held process with a signal, to leave the session cgroup, to write, truncate, delete or
//! rename the audit log, the state directory and the repository's trusted policy, to load a
//! BPF program or a kernel module, to regain root through a set-uid binary, and to escape
//! observation (LD_PRELOAD cleared, double fork + setsid, a static binary). For each attempt
//! the test checks its effect did not happen AND that the attempt is in the audit log.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use serde_json::Value;

const SECRET: &str = "tamper-secret-do-not-leak";

/// The repository policy of every test: a protected tree (so that deletions reach the gate)
/// and a credential file.
const POLICY: &str = r#"
[[files.protect]]
id = "backups"
why = "Backups are the last line of defence."
paths = ["backups/**"]

[[files.deny_read]]
id = "tamper-cred"
why = "stand-in credential file"
paths = ["secrets/cred.txt"]
"#;

/// A workspace (owned by nobody) with the policy, a protected tree and a credential, a state
/// directory, and the supervisors started in it, killed on drop if still running.
struct Session {
    s: Scratch,
    ws: PathBuf,
    state: PathBuf,
    started: Supervisors,
}

impl Session {
    fn new(name: &str) -> Self {
        require_root();
        let s = Scratch::new(name);
        let ws = s.path("ws");
        let state = s.path("state");
        fs::create_dir_all(ws.join(".git")).unwrap();
        fs::create_dir_all(ws.join("backups")).unwrap();
        fs::create_dir_all(ws.join("secrets")).unwrap();
        fs::create_dir_all(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
        // Records name canonical paths.
        let (ws, state) = (
            fs::canonicalize(ws).unwrap(),
            fs::canonicalize(state).unwrap(),
        );
        fs::write(ws.join("policy.toml"), POLICY).unwrap();
        for i in 0..3 {
            fs::write(ws.join(format!("backups/db-{i}.dump")), "dump").unwrap();
        }
        fs::write(ws.join("secrets/cred.txt"), format!("{SECRET}\n")).unwrap();
        fs::copy(helper(), ws.join("tamper-helper")).unwrap();
        fs::set_permissions(ws.join("tamper-helper"), fs::Permissions::from_mode(0o755)).unwrap();
        chown_tree(&ws);
        Session {
            s,
            ws,
            started: Supervisors::new(&state),
            state,
        }
    }

    fn backups_intact(&self) -> bool {
        (0..3).all(|i| self.ws.join(format!("backups/db-{i}.dump")).exists())
    }

    /// Starts `bash SCRIPT` under the sandbox as `user`, in the workspace.
    fn start_as(&self, user: &str, script: &str) -> Child {
        let child = start_script(&self.s.dir, &self.state, &self.ws, user, script);
        self.started.track(&child);
        child
    }

    fn held(&self) -> Vec<Value> {
        held_in(&self.state)
    }

    fn wait_held(&self, child: Child) -> (Value, Child) {
        wait_held_in(&self.state, child, Duration::from_secs(30))
    }

    /// Answers every hold with `word` until the session ends.
    fn answer_all(&self, child: Child, word: &str) -> (Vec<Value>, Output) {
        let mut holds = Vec::new();
        let pid = child.id();
        loop {
            let mut next = None;
            wait_until(Duration::from_secs(30), || {
                next = self.held().into_iter().next();
                next.is_some() || !alive(pid)
            });
            let Some(h) = next else { break };
            let out = Command::new(BIN)
                .args(["decide", &h["id"].as_u64().unwrap().to_string(), word])
                .arg("--state-dir")
                .arg(&self.state)
                .output()
                .unwrap();
            assert!(out.status.success(), "decide: {out:?}");
            holds.push(h);
            assert!(holds.len() < 20, "too many holds: {holds:#?}");
        }
        (holds, wait_output(child, Duration::from_secs(60)))
    }

    /// The audit log of the session whose supervisor had pid `sup`.
    fn log_of(&self, sup: u32) -> PathBuf {
        let prefix = format!("agent-sandbox-{sup}-");
        fs::read_dir(self.state.join("audit"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.extension().is_some_and(|e| e == "jsonl")
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .unwrap_or_else(|| panic!("no audit log of supervisor {sup}"))
    }

    /// `agent-sandbox audit verify` of a log: its output, and whether it passed.
    fn verify(&self, log: &Path) -> (bool, String) {
        let out = Command::new(BIN)
            .args(["audit", "verify", "--state-dir"])
            .arg(&self.state)
            .arg(log)
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    }
}

fn chown_tree(p: &Path) {
    let _ = std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY));
    if p.is_dir() {
        for e in fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path());
        }
    }
}

/// The value of `name=` printed by a script, from its output.
fn printed<'a>(log: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=");
    log.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {name}= line in:\n{log}"))
}

/// The thread state letter of `pid`.
fn state_of(pid: u64) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')').next()?.trim_start().chars().next()
}

/// The helper (tests/helpers/tamper.c) built statically with `cc -static`, once per test
/// binary. A missing compiler or static C library fails the test: it is never skipped.
fn helper() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/helpers/tamper.c");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
        fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("tamper-helper-{}", std::process::id()));
        let o = Command::new("cc")
            .args(["-static", "-O1", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("cc (cargo xtask setup installs build-essential)");
        assert!(
            o.status.success(),
            "`cc -static` of the helper failed (the static C library comes with libc6-dev, \
             which cargo xtask setup installs): {}",
            text(&o)
        );
        let file = Command::new("file").arg(&out).output().unwrap();
        assert!(
            String::from_utf8_lossy(&file.stdout).contains("statically linked"),
            "{}",
            text(&file)
        );
        out
    })
}

/// Records of `kind` in an audit log whose `fields` satisfy `pred`.
fn records<'a>(audit: &'a [Value], kind: &str, pred: impl Fn(&Value) -> bool) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|r| r["kind"] == kind && pred(&r["fields"]))
        .collect()
}

/// The watchdog of supervisor `sup`.
fn watchdog_of(sup: u32) -> u32 {
    let mut found = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            found = agent_sandbox::watchdog::running()
                .into_iter()
                .find(|w| w.supervisor == sup as i32);
            found.is_some()
        }),
        "no watchdog for supervisor {sup}"
    );
    found.map(|w| w.pid as u32).unwrap_or_default()
}

#[test]
fn signals_and_traces_of_the_supervisor_the_watchdog_and_a_held_process_fail_and_are_audited() {
    let se = Session::new("tamper-signals");
    let py = se.s.path("trace.py");
    fs::write(
        &py,
        "import ctypes, os, signal, sys, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]\n\
         sup, wd = int(sys.argv[1]), int(sys.argv[2])\n\
         for name, req, pid in [('attach-sup', 16, sup), ('seize-wd', 0x4206, wd)]:\n\
         \x20   r = libc.ptrace(req, pid, None, None)\n\
         \x20   print(f'{name}={r} {ctypes.get_errno()}', flush=True)\n\
         fd = os.pidfd_open(sup)\n\
         try:\n\
         \x20   signal.pidfd_send_signal(fd, signal.SIGKILL)\n\
         \x20   print('pidfd-kill=0', flush=True)\n\
         except OSError as e:\n\
         \x20   print(f'pidfd-kill={e.errno}', flush=True)\n\
         time.sleep(1)\n",
    )
    .unwrap();
    let script = format!(
        "bash -c 'rm -rf backups' & held=$!\n\
         while [ ! -s go ]; do sleep 0.05; done\n\
         sup=$PPID; wd=$(cat go)\n\
         kill -TERM $sup; echo kill-sup-term=$?\n\
         kill -KILL $sup; echo kill-sup-kill=$?\n\
         kill -STOP $wd; echo stop-wd=$?\n\
         kill -KILL $wd; echo kill-wd=$?\n\
         kill -0 -1; echo kill-all=$?\n\
         kill -CONT $held; kill -WINCH $held; kill -STOP $held; kill -CONT $held; echo held-signals=$?\n\
         python3 {py} $sup $wd\n\
         timeout 20 strace -p $sup -o /dev/null 2>/dev/null; echo strace=$?\n\
         timeout 60 gdb -nx -batch -p $sup -ex detach >gdb.out 2>&1; echo gdb=$?\n\
         cat secrets/cred.txt; echo cred=$?\n\
         touch attempts-done\n\
         wait $held; echo held-exit=$?\n",
        py = py.display()
    );
    let (h, child) = se.wait_held(se.start_as("nobody", &script));
    let sup = child.id();
    let wd = watchdog_of(sup);
    let held_pid = h["pid"].as_u64().unwrap();
    fs::write(se.ws.join("go"), wd.to_string()).unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || se
            .ws
            .join("attempts-done")
            .exists()),
        "the agent's attempts did not finish"
    );
    // The effects: both still run, the held process still waits in the kernel and is still
    // listed, the session still enforces (the credential read below was refused).
    assert!(alive(sup), "the supervisor survived");
    assert!(alive(wd), "the watchdog survived");
    assert_eq!(
        state_of(wd as u64),
        Some('S'),
        "the watchdog is not stopped"
    );
    // Still inside execve in the kernel: interruptible until a signal came, killable since
    // (`SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`), never stopped or running.
    assert!(
        matches!(state_of(held_pid), Some('S' | 'D')),
        "{:?}",
        state_of(held_pid)
    );
    let in_call = fs::read_to_string(format!("/proc/{held_pid}/syscall")).unwrap_or_default();
    assert_eq!(
        in_call.split_whitespace().next(),
        Some(libc::SYS_execve.to_string().as_str()),
        "the held process waits in execve"
    );
    assert!(
        se.held().iter().any(|x| x["id"] == h["id"]),
        "still held after the signals"
    );
    let (_, out) = se.answer_all(child, "deny");
    let log = text(&out);
    for step in ["kill-sup-term", "kill-sup-kill", "stop-wd", "kill-wd"] {
        assert_ne!(printed(&log, step), "0", "{step} succeeded:\n{log}");
    }
    assert_eq!(printed(&log, "attach-sup"), "-1 1", "{log}");
    assert_eq!(printed(&log, "seize-wd"), "-1 1", "{log}");
    assert_eq!(printed(&log, "pidfd-kill"), "1", "EPERM:\n{log}");
    assert_ne!(printed(&log, "strace"), "0", "{log}");
    assert_ne!(printed(&log, "cred"), "0", "{log}");
    assert!(!log.contains(SECRET), "{log}");
    assert_ne!(printed(&log, "held-exit"), "0", "{log}");
    assert!(se.backups_intact());
    let gdb = fs::read_to_string(se.ws.join("gdb.out")).unwrap_or_default();
    assert!(
        gdb.contains("Operation not permitted"),
        "gdb could not attach:\n{gdb}"
    );

    // Every attempt is in the audit log, which verifies.
    let path = se.log_of(sup);
    let (ok, report) = se.verify(&path);
    assert!(ok, "{report}");
    let audit = read_events(&path);
    let at = |to: &str, sig: &str| {
        records(&audit, "signal", |f| {
            f["to"] == to && f["signal"] == sig && f["errno"] == "EPERM" && f["tamper"] == true
        })
        .len()
    };
    assert_eq!(at("supervisor", "SIGTERM"), 1, "{audit:#?}");
    assert_eq!(at("supervisor", "SIGKILL"), 2, "kill and pidfd_send_signal");
    assert_eq!(at("watchdog", "SIGSTOP"), 1);
    assert_eq!(at("watchdog", "SIGKILL"), 1);
    let pidfd = records(&audit, "signal", |f| {
        f["syscall"] == "pidfd_send_signal" && f["resolved_pid"] == sup
    });
    assert_eq!(pidfd.len(), 1, "the pidfd's process is named");
    assert_eq!(
        records(&audit, "signal", |f| f["to"] == "every-process"
            && f["tamper"] == true)
        .len(),
        1
    );
    // The signals to the held process were delivered (same user) and did not release it.
    let to_held = records(&audit, "signal", |f| {
        f["held"] == true && f["target_pid"] == held_pid && f["ret"] == 0 && f["tamper"] == true
    });
    let sigs: Vec<&str> = to_held
        .iter()
        .filter_map(|r| r["fields"]["signal"].as_str())
        .collect();
    assert_eq!(
        sigs,
        ["SIGCONT", "SIGWINCH", "SIGSTOP", "SIGCONT"],
        "{to_held:#?}"
    );
    // Traces: python's attach and seize, strace's seize, gdb's attach.
    let traces = |req: &str, to: &str| {
        records(&audit, "signal", |f| {
            f["syscall"] == "ptrace"
                && f["request"] == req
                && f["to"] == to
                && f["errno"] == "EPERM"
        })
        .len()
    };
    assert!(traces("PTRACE_ATTACH", "supervisor") >= 2, "python and gdb");
    assert_eq!(traces("PTRACE_SEIZE", "watchdog"), 1);
    assert!(traces("PTRACE_SEIZE", "supervisor") >= 1, "strace");
    assert_eq!(
        records(&audit, "file_refused", |f| f["rule"] == "tamper-cred").len(),
        1
    );
}

/// What the file attempts of one session should leave untouched.
struct Untouched {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Untouched {
    fn take(paths: &[PathBuf]) -> Self {
        Untouched {
            files: paths
                .iter()
                .map(|p| (p.clone(), fs::read(p).unwrap()))
                .collect(),
        }
    }

    fn check(&self) {
        for (p, bytes) in &self.files {
            let now = fs::read(p).unwrap_or_else(|e| panic!("{} is gone: {e}", p.display()));
            assert!(&now == bytes, "{} changed", p.display());
        }
    }
}

/// The sandbox's files as one agent (`user`) attacks them: a finished session's audit log
/// and checkpoint, the trust store's record of the policy, the repository policy, the state
/// directory itself and the cgroup hierarchy.
fn files_of_the_sandbox_resist(user: &str) {
    let se = Session::new(&format!("tamper-files-{user}"));
    // A first session leaves an audit log and the policy's trust record behind.
    let first = se.start_as(user, "true\n");
    let first_pid = first.id();
    let out = wait_output(first, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    let old_log = se.log_of(first_pid);
    let checkpoint = PathBuf::from(format!("{}.checkpoint", old_log.display()));
    let trust: Vec<PathBuf> = fs::read_dir(se.state.join("trust"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(trust.len(), 1, "one trusted policy: {trust:?}");
    let policy = se.ws.join("policy.toml");
    let keep = Untouched::take(&[
        old_log.clone(),
        checkpoint.clone(),
        trust[0].clone(),
        policy.clone(),
    ]);
    let cg_root = cgroup2_root();

    // Every attempt is one system call, made directly (a tool such as `mv` or `rm` may give
    // up after a failed stat without ever making the call).
    let py = se.s.path("files.py");
    fs::write(
        &py,
        "import os, sys\n\
         def attempt(name, f):\n\
         \x20   try:\n\
         \x20       f()\n\
         \x20       print(f'{name}=0', flush=True)\n\
         \x20   except OSError as e:\n\
         \x20       print(f'{name}={e.errno}', flush=True)\n\
         env = dict(l.strip().split('=', 1) for l in open('go') if '=' in l)\n\
         files = [env['LOG'], env['CHECKPOINT'], env['TRUST'], os.path.abspath('policy.toml')]\n\
         for n, path in enumerate(files, 1):\n\
         \x20   attempt(f'append{n}', lambda: os.close(os.open(path, os.O_WRONLY | os.O_APPEND)))\n\
         \x20   attempt(f'write{n}', lambda: os.close(os.open(path, os.O_WRONLY | os.O_TRUNC)))\n\
         \x20   attempt(f'truncate{n}', lambda: os.truncate(path, 0))\n\
         \x20   attempt(f'rm{n}', lambda: os.unlink(path))\n\
         \x20   attempt(f'mv{n}', lambda: os.rename(path, path + '.moved'))\n\
         state = env['STATE']\n\
         attempt('create-in-state', lambda: os.close(os.open(state + '/forged', os.O_WRONLY | os.O_CREAT, 0o644)))\n\
         attempt('mv-state', lambda: os.rename(state, state + '.moved'))\n\
         attempt('cgroup-move', lambda: open(env['CG'] + '/cgroup.procs', 'w').write(str(os.getpid())))\n",
    )
    .unwrap();
    let script = format!(
        "while [ ! -s go ]; do sleep 0.05; done\n\
         python3 {py}\n\
         ./tamper-helper clone3-into $(grep ^CG= go | cut -d= -f2); echo clone3=$?\n\
         grep '^0::' /proc/self/cgroup | cut -d: -f3- > cgroup-after\n",
        py = py.display()
    );
    let child = se.start_as(user, &script);
    let sup = child.id();
    fs::write(
        se.ws.join("go"),
        format!(
            "LOG={}\nCHECKPOINT={}\nTRUST={}\nSTATE={}\nCG={cg_root}\n",
            old_log.display(),
            checkpoint.display(),
            trust[0].display(),
            se.state.display()
        ),
    )
    .unwrap();
    let (holds, out) = se.answer_all(child, "deny");
    let log = text(&out);
    assert!(
        holds.is_empty(),
        "nothing is held, all is refused: {holds:#?}\n{log}"
    );
    // The effects: nothing changed, nothing moved, the agent stayed in its cgroup.
    keep.check();
    assert!(se.state.is_dir() && !se.state.with_extension("moved").exists());
    let forged = se.state.join("forged");
    if user == "root" {
        // fanotify refuses the open only once the file exists: a root agent leaves an
        // empty file behind (README, Known limits), and writes nothing into it.
        assert_eq!(
            fs::metadata(&forged).map(|m| m.len()).ok(),
            Some(0),
            "{log}"
        );
    } else {
        assert!(!forged.exists(), "{log}");
    }
    for n in 1..=4 {
        for step in ["append", "write", "truncate", "rm", "mv"] {
            let r = printed(&log, &format!("{step}{n}"));
            assert!(
                r == "1" || r == "13",
                "{step}{n}={r}: EPERM or EACCES\n{log}"
            );
        }
    }
    for step in ["create-in-state", "mv-state", "cgroup-move", "clone3"] {
        assert_ne!(printed(&log, step), "0", "{step}:\n{log}");
    }
    let start = read_events(&se.log_of(sup));
    let session = session_cgroup(&start);
    let rel = session
        .strip_prefix(&cg_root)
        .map(|r| format!("/{}", r.display()))
        .unwrap();
    assert_eq!(
        fs::read_to_string(se.ws.join("cgroup-after"))
            .unwrap()
            .trim(),
        rel,
        "the agent is still in the session cgroup"
    );

    // Every attempt is in the audit log, which verifies.
    let path = se.log_of(sup);
    let (ok, report) = se.verify(&path);
    assert!(ok, "{report}");
    let (ok, report) = se.verify(&old_log);
    assert!(ok, "the older log still verifies: {report}");
    let audit = read_events(&path);
    let denied = |file: &Path, attempt: &str, target: &str| {
        records(&audit, "denied", |f| {
            f["resolved"] == file.to_str().unwrap()
                && f["attempt"] == attempt
                && f["target"] == target
                && f["tamper"] == true
                && (f["errno"] == "EACCES" || f["errno"] == "EPERM")
        })
        .len()
    };
    for (file, target) in [
        (&old_log, "audit-log"),
        (&checkpoint, "audit-log"),
        (&trust[0], "trust-store"),
        (&policy, "policy"),
    ] {
        // `>>` writes, `>` truncates (with open), python truncates (with truncate(2)).
        assert_eq!(
            denied(file, "write", target),
            1,
            "{}: {audit:#?}",
            file.display()
        );
        assert_eq!(denied(file, "truncate", target), 2, "{}", file.display());
        assert_eq!(denied(file, "delete", target), 1, "{}", file.display());
        assert_eq!(denied(file, "rename", target), 1, "{}", file.display());
    }
    assert_eq!(denied(&se.state.join("forged"), "create", "state-dir"), 1);
    assert_eq!(denied(&se.state, "rename", "state-dir"), 1);
    let procs = PathBuf::from(&cg_root).join("cgroup.procs");
    assert_eq!(denied(&procs, "truncate", "cgroup"), 1, "{audit:#?}");
    // The gate names the rule for deletions, renames and truncations of the sandbox's files.
    let gate = records(&audit, "gate_refused", |f| {
        f["rule"] == "sandbox.self" && f["tamper"] == true
    });
    assert!(gate.len() >= 4 * 3, "{gate:#?}");
    if user == "root" {
        // File modes do not stop root: the fanotify marks and the cgroup fence do.
        assert!(
            !records(&audit, "file_refused", |f| f["rule"] == "sandbox.cgroup").is_empty(),
            "{audit:#?}"
        );
        assert!(log.contains("ERR ENOSYS clone3"), "{log}");
    } else {
        assert!(log.contains("ERR EACCES clone3"), "{log}");
        assert_eq!(
            records(&audit, "denied", |f| f["attempt"] == "clone-into-cgroup"
                && f["target"] == "cgroup"
                && f["errno"] == "EACCES")
            .len(),
            1
        );
    }
    assert!(se.backups_intact());
}

#[test]
fn the_sandbox_files_and_cgroup_resist_an_unprivileged_agent() {
    files_of_the_sandbox_resist("nobody");
}

#[test]
fn the_sandbox_files_and_cgroup_resist_a_root_agent() {
    files_of_the_sandbox_resist("root");
}

/// Ids and creators of every loaded BPF program (`BPF_PROG_GET_NEXT_ID`,
/// `BPF_OBJ_GET_INFO_BY_FD`: `created_by_uid` is at byte 48 of `struct bpf_prog_info`).
fn bpf_programs() -> Vec<(u32, u32)> {
    const GET_NEXT_ID: libc::c_long = 11;
    const GET_FD_BY_ID: libc::c_long = 13;
    const GET_INFO_BY_FD: libc::c_long = 15;
    let mut out = Vec::new();
    let mut id = 0u32;
    loop {
        let mut attr = [0u32; 4];
        attr[0] = id;
        // SAFETY: a bpf_attr prefix we own, of the size passed.
        let r = unsafe { libc::syscall(libc::SYS_bpf, GET_NEXT_ID, attr.as_mut_ptr(), 16) };
        if r != 0 {
            return out;
        }
        id = attr[1];
        let attr = [id, 0, 0, 0];
        // SAFETY: as above; a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_bpf, GET_FD_BY_ID, attr.as_ptr(), 16) };
        if fd < 0 {
            continue;
        }
        let mut info = [0u8; 256];
        let mut iattr = [0u64; 2];
        // info { bpf_fd u32, info_len u32, info u64 }
        iattr[0] = fd as u64 | ((info.len() as u64) << 32);
        iattr[1] = info.as_mut_ptr() as u64;
        // SAFETY: the kernel writes at most info_len bytes into `info`.
        let r = unsafe { libc::syscall(libc::SYS_bpf, GET_INFO_BY_FD, iattr.as_mut_ptr(), 16) };
        // SAFETY: closing the fd we got.
        unsafe { libc::close(fd as i32) };
        if r == 0 {
            let uid = u32::from_ne_bytes([info[48], info[49], info[50], info[51]]);
            out.push((id, uid));
        }
    }
}

#[test]
fn loading_bpf_or_modules_and_running_a_setuid_binary_give_nothing_and_are_audited() {
    let se = Session::new("tamper-kernel");
    // A set-uid root copy of the static helper: outside the sandbox it does give root.
    let suid = se.s.path("suid-helper");
    fs::copy(helper(), &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    // Another test thread's fork can hold the copy's write descriptor for a moment (until its
    // child execs): ETXTBSY then, which says nothing about the set-uid bit.
    let mut control = None;
    for _ in 0..100 {
        let o = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(&suid)
            .arg("ids")
            .output()
            .unwrap();
        let busy = text(&o).contains("Text file busy");
        control = Some(o);
        if !busy {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let control = control.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&control.stdout).trim(),
        "uid=65534 euid=0",
        "the set-uid bit works on this filesystem: {}",
        text(&control)
    );
    let py = se.s.path("kernel.py");
    // BPF_PROG_LOAD of "r0 = 0; exit" as a socket filter; init_module of an empty image;
    // finit_module of /dev/null.
    fs::write(
        &py,
        "import ctypes, os, struct\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         insns = struct.pack('<BBhi', 0xb7, 0, 0, 0) + struct.pack('<BBhi', 0x95, 0, 0, 0)\n\
         ibuf = ctypes.create_string_buffer(insns)\n\
         lic = ctypes.create_string_buffer(b'GPL')\n\
         attr = ctypes.create_string_buffer(struct.pack('<IIQQ', 1, 2, ctypes.addressof(ibuf), ctypes.addressof(lic)) + bytes(96))\n\
         for name, nr, args in [('bpf', 321, (5, attr, 128)), ('init_module', 175, (ibuf, 0, lic)),\n\
         \x20                      ('finit_module', 313, (os.open('/dev/null', os.O_RDONLY), lic, 0))]:\n\
         \x20   r = libc.syscall(nr, *args)\n\
         \x20   print(f'{name}={r} {ctypes.get_errno()}', flush=True)\n",
    )
    .unwrap();
    let script = format!(
        "python3 {py}\n\
         echo ids=$({suid} ids)\n\
         su -c true root </dev/null 2>/dev/null; echo su=$?\n",
        py = py.display(),
        suid = suid.display()
    );
    let child = se.start_as("nobody", &script);
    let sup = child.id();
    let out = wait_output(child, Duration::from_secs(60));
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for name in ["bpf", "init_module", "finit_module"] {
        assert_eq!(
            printed(&log, name),
            "-1 1",
            "{name} refused with EPERM:\n{log}"
        );
    }
    assert_eq!(printed(&log, "ids"), "uid=65534 euid=65534", "{log}");
    assert_ne!(printed(&log, "su"), "0", "{log}");
    // No program was loaded by the agent's user.
    let by_nobody: Vec<(u32, u32)> = bpf_programs()
        .into_iter()
        .filter(|&(_, uid)| uid == NOBODY)
        .collect();
    assert!(by_nobody.is_empty(), "{by_nobody:?}");

    let path = se.log_of(sup);
    let (ok, report) = se.verify(&path);
    assert!(ok, "{report}");
    let audit = read_events(&path);
    let kernel = |syscall: &str| {
        records(&audit, "gate_refused", |f| {
            f["rule"] == "sandbox.kernel"
                && f["syscall"] == syscall
                && f["errno"] == "EPERM"
                && f["tamper"] == true
        })
    };
    let bpf = kernel("bpf");
    assert_eq!(bpf.len(), 1, "{audit:#?}");
    assert_eq!(bpf[0]["fields"]["bpf_cmd"], "BPF_PROG_LOAD");
    assert_eq!(kernel("init_module").len(), 1);
    assert_eq!(kernel("finit_module").len(), 1);
    // The set-uid exec is recorded as such, with the fact that it gained nothing.
    let setid: Vec<&Value> = records(&audit, "exec", |f| {
        f["filename"] == suid.to_str().unwrap() && f["ret"] == 0
    });
    assert_eq!(setid.len(), 1, "{audit:#?}");
    let s = &setid[0]["fields"]["setid"];
    assert_eq!(s["setuid"], true, "{s}");
    assert_eq!(s["file_uid"], 0);
    assert_eq!(s["euid"], NOBODY, "{s}");
    assert_eq!(s["no_new_privs"], true);
    assert_eq!(s["privilege_gained"], false);
    assert!(
        !records(&audit, "exec", |f| f["filename"]
            .as_str()
            .is_some_and(|n| n.ends_with("/su"))
            && f["setid"]["setuid"] == true
            && f["setid"]["no_new_privs"] == true)
        .is_empty(),
        "su's exec is recorded as set-uid: {audit:#?}"
    );
}

#[test]
fn clearing_ld_preload_a_setsid_daemon_and_a_static_binary_stay_observed_and_enforced() {
    let se = Session::new("tamper-escape");
    let daemon = se.s.path("daemon.sh");
    fs::write(
        &daemon,
        "cat secrets/cred.txt; echo daemon-cred=$? > daemon.out\n\
         ./tamper-helper unlink backups/db-0.dump; echo daemon-unlink=$? >> daemon.out\n",
    )
    .unwrap();
    let script = format!(
        "env -i /bin/cat secrets/cred.txt; echo env-i=$?\n\
         env -u LD_PRELOAD /bin/cat secrets/cred.txt; echo env-u=$?\n\
         ( setsid /bin/bash {daemon} & )\n\
         ./tamper-helper read secrets/cred.txt; echo static-read=$?\n\
         ./tamper-helper exec /bin/cat secrets/cred.txt; echo static-exec=$?\n\
         ./tamper-helper unlink backups/db-1.dump; echo static-unlink=$?\n\
         while ! grep -q daemon-unlink daemon.out 2>/dev/null; do sleep 0.05; done\n\
         cat daemon.out\n",
        daemon = daemon.display()
    );
    let child = se.start_as("nobody", &script);
    let sup = child.id();
    let (holds, out) = se.answer_all(child, "deny");
    let log = text(&out);
    assert!(!log.contains(SECRET), "{log}");
    for step in [
        "env-i",
        "env-u",
        "static-read",
        "static-exec",
        "static-unlink",
        "daemon-cred",
        "daemon-unlink",
    ] {
        assert_ne!(printed(&log, step), "0", "{step}:\n{log}");
    }
    assert!(se.backups_intact(), "{log}");
    // Both unlinks of the static binary (the agent's and the daemon's) were held.
    let held_static: Vec<&Value> = holds
        .iter()
        .filter(|h| h["rule"] == "backups" && h["command"][0] == "./tamper-helper")
        .collect();
    assert_eq!(held_static.len(), 2, "{holds:#?}");

    let path = se.log_of(sup);
    let (ok, report) = se.verify(&path);
    assert!(ok, "{report}");
    let audit = read_events(&path);
    // Every exec is in the log, whatever its environment or its parent.
    let execs = |pred: &dyn Fn(&[String]) -> bool| {
        records(&audit, "exec", |f| {
            pred(&argv(&serde_json::json!({ "fields": f })))
        })
    };
    assert_eq!(
        execs(&|a| a.first().is_some_and(|x| x == "env") && a.get(1).is_some_and(|x| x == "-i"))
            .len(),
        1
    );
    let cats = execs(&|a| a == ["/bin/cat", "secrets/cred.txt"]);
    assert_eq!(
        cats.len(),
        3,
        "env -i, env -u and the static exec: {cats:#?}"
    );
    let static_execs = execs(&|a| a.first().is_some_and(|x| x == "./tamper-helper"));
    assert_eq!(
        static_execs.len(),
        4,
        "agent: read, exec, unlink; daemon: unlink"
    );
    // The daemon left its parent behind (setsid, re-parented) but not the session: its
    // exec and its refused read carry its lineage back to the agent.
    let daemon_exec = execs(&|a| a.get(1).is_some_and(|x| x.ends_with("daemon.sh")));
    assert_eq!(daemon_exec.len(), 1);
    let daemon_pid = daemon_exec[0]["pid"].as_u64().unwrap();
    let refused: Vec<u64> = records(&audit, "file_refused", |f| f["rule"] == "tamper-cred")
        .iter()
        .filter_map(|r| r["pid"].as_u64())
        .collect();
    assert_eq!(refused.len(), 5, "every reader was refused: {refused:?}");
    let daemon_cat = records(&audit, "exec", |f| {
        f["argv"] == serde_json::json!(["cat", "secrets/cred.txt"])
    });
    assert_eq!(daemon_cat.len(), 1);
    assert_eq!(daemon_cat[0]["ppid"], daemon_pid, "{daemon_cat:#?}");
    assert!(refused.contains(&daemon_cat[0]["pid"].as_u64().unwrap()));
    assert_eq!(
        records(&audit, "held", |f| f["rule"] == "backups").len(),
        2,
        "the holds are audited"
    );
}
