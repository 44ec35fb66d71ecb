//! End-to-end tests of the foundation: `agent-sandbox run` puts a real process tree in a
//! session cgroup under eBPF observation, runs it unprivileged, forwards signals, and leaves
//! nothing behind.

mod common;

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

fn exec_with_argv<'a>(events: &'a [Value], want: &[&str]) -> &'a Value {
    events
        .iter()
        .filter(|e| e["kind"] == "exec")
        .find(|e| argv(e) == want)
        .unwrap_or_else(|| {
            let seen: Vec<Vec<String>> = of_kind(events, "exec").into_iter().map(argv).collect();
            panic!("no exec with argv {want:?}; saw {seen:?}")
        })
}

fn pid_of(ev: &Value) -> u64 {
    ev["pid"].as_u64().expect("pid")
}

fn ancestry(ev: &Value) -> Vec<u64> {
    ev["ancestry"]
        .as_array()
        .expect("ancestry")
        .iter()
        .map(|v| v.as_u64().expect("pid"))
        .collect()
}

/// A bash script runs a pipeline, opens and deletes files, connects to a loopback listener and
/// starts a double-forking, setsid daemon. Every action is observed with the right pid, argv
/// and ancestry; the daemon stays in the session cgroup and is killed at the end; a process
/// outside the session produces no events.
#[test]
fn observes_a_real_process_tree() {
    require_root();
    let s = Scratch::new("tree");
    let events_path = s.path("events.jsonl");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback listener");
    let port = listener.local_addr().expect("addr").port();
    let accepted = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = String::new();
        let _ = conn.read_to_string(&mut buf);
        buf
    });
    let listener6 = TcpListener::bind("[::1]:0").expect("bind IPv6 loopback listener");
    let port6 = listener6.local_addr().expect("addr").port();
    let accepted6 = std::thread::spawn(move || {
        let (mut conn, _) = listener6.accept().expect("accept");
        let mut buf = String::new();
        let _ = conn.read_to_string(&mut buf);
        buf
    });

    let work = s.dir.display().to_string();
    let script = format!(
        r#"set -e
cd {work}
echo hello > input.txt
cat input.txt | tr a-z A-Z | wc -c > count.txt
exec 3<>/dev/tcp/127.0.0.1/{port}
echo ping >&3
exec 3>&-
exec 4<>/dev/tcp/::1/{port6}
echo ping6 >&4
exec 4>&-
rm -f input.txt
mv count.txt moved.txt
/usr/bin/python3 -c '
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "300"])
    os._exit(0)
os.wait()
'
for i in $(seq 500); do pgrep -f "^sleep 300$" -u nobody >/dev/null && break; sleep 0.01; done
pgrep -n -f "^sleep 300$" -u nobody > daemon.pid
cat /proc/$(cat daemon.pid)/cgroup > daemon.cgroup
touch ready
for i in $(seq 1000); do [ -e go ] && break; sleep 0.01; done
"#
    );
    fs::write(s.path("script.sh"), script).expect("write script");
    fs::set_permissions(s.path("script.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");

    // The scratch directory is the session's workspace: the script's `rm` of its own file
    // is then not a deletion outside the workspace, which the gate would hold for a human.
    fs::create_dir_all(s.path(".git")).expect("mkdir .git");
    let mut cmd = sandbox(
        &[
            "--user",
            "nobody",
            "--grace",
            "0.2",
            "--events",
            events_path.to_str().expect("utf8"),
        ],
        &["/bin/bash", s.path("script.sh").to_str().expect("utf8")],
    );
    cmd.current_dir(&s.dir);
    let child = spawn(cmd);

    // While the session runs, a process outside it opens a marker path: it must not show up.
    assert!(
        wait_until(LONG, || s.path("ready").exists()),
        "script never got ready"
    );
    let marker = s.path("outside-marker-7d3f");
    let _ = Command::new("/bin/cat")
        .arg(&marker)
        .stderr(Stdio::null())
        .status();
    fs::write(s.path("go"), "").expect("write go");

    let out = wait_output(child, LONG);
    assert!(
        out.status.success(),
        "sandboxed script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(accepted.join().expect("listener thread"), "ping\n");
    assert_eq!(accepted6.join().expect("listener thread"), "ping6\n");
    let events = read_events(&events_path);

    // The script itself, then the pipeline: each a child of the script's bash.
    let script_ev = exec_with_argv(
        &events,
        &["/bin/bash", s.path("script.sh").to_str().unwrap()],
    );
    let bash = pid_of(script_ev);
    assert_eq!(script_ev["uid"], NOBODY);
    assert_eq!(script_ev["fields"]["ret"], 0);
    let supervisor = script_ev["ppid"].as_u64().expect("ppid");
    assert_eq!(ancestry(script_ev), vec![supervisor]);
    for want in [
        &["tr", "a-z", "A-Z"][..],
        &["wc", "-c"],
        &["cat", "input.txt"],
        &["rm", "-f", "input.txt"],
    ] {
        let ev = exec_with_argv(&events, want);
        assert_eq!(ev["ppid"], bash, "{want:?} should be a child of the script");
        assert_eq!(ancestry(ev), vec![bash, supervisor], "{want:?}");
    }

    // Opens: the redirect in the script and cat's read, with paths as given.
    let opens = of_kind(&events, "open");
    assert!(
        opens.iter().any(|e| pid_of(e) == bash
            && e["fields"]["path"] == "input.txt"
            && e["fields"]["flags"]
                .as_str()
                .unwrap_or("")
                .contains("O_CREAT")),
        "bash's `> input.txt` open not observed"
    );
    let cat = pid_of(exec_with_argv(&events, &["cat", "input.txt"]));
    assert!(
        opens
            .iter()
            .any(|e| pid_of(e) == cat && e["fields"]["path"] == "input.txt")
    );

    // The connect to the loopback listener, by the script's bash.
    let connects = of_kind(&events, "connect");
    assert!(
        connects.iter().any(|e| pid_of(e) == bash
            && e["fields"]["family"] == "inet"
            && e["fields"]["address"] == "127.0.0.1"
            && e["fields"]["port"] == port),
        "connect to 127.0.0.1:{port} not observed: {connects:?}"
    );
    assert!(
        connects.iter().any(|e| pid_of(e) == bash
            && e["fields"]["family"] == "inet6"
            && e["fields"]["address"] == "::1"
            && e["fields"]["port"] == port6),
        "connect to [::1]:{port6} not observed: {connects:?}"
    );

    // Deletion and rename, by the processes that did them.
    let rm = pid_of(exec_with_argv(&events, &["rm", "-f", "input.txt"]));
    let path_ops = of_kind(&events, "path_op");
    assert!(
        path_ops
            .iter()
            .any(|e| pid_of(e) == rm && e["fields"]["path"] == "input.txt")
    );
    let mv = pid_of(exec_with_argv(&events, &["mv", "count.txt", "moved.txt"]));
    assert!(path_ops.iter().any(|e| pid_of(e) == mv
        && e["fields"]["path"] == "count.txt"
        && e["fields"]["target"] == "moved.txt"));

    // The daemon: exec'd by a grandchild of python that called setsid; its ancestry still
    // leads back through python to the script.
    let daemon: u64 = fs::read_to_string(s.path("daemon.pid"))
        .expect("daemon.pid")
        .trim()
        .parse()
        .expect("daemon pid");
    let sleep_ev = exec_with_argv(&events, &["sleep", "300"]);
    assert_eq!(pid_of(sleep_ev), daemon);
    let python = pid_of(
        of_kind(&events, "exec")
            .into_iter()
            .find(|e| argv(e).first().map(String::as_str) == Some("/usr/bin/python3"))
            .expect("python exec"),
    );
    let chain = ancestry(sleep_ev);
    assert_eq!(
        chain.len(),
        4,
        "sleep <- intermediate <- python <- bash <- supervisor: {chain:?}"
    );
    assert_eq!(&chain[1..], &[python, bash, supervisor]);
    assert!(
        of_kind(&events, "fork")
            .iter()
            .any(|e| e["fields"]["child_pid"] == daemon)
    );

    // It was inside the session cgroup, and it is gone now, killed with the session.
    let cgroup = session_cgroup(&events);
    let name = cgroup.file_name().expect("name").to_str().expect("utf8");
    let daemon_cg = fs::read_to_string(s.path("daemon.cgroup")).expect("daemon.cgroup");
    assert!(
        daemon_cg.contains(name),
        "daemon was in {daemon_cg}, not in {name}"
    );
    assert!(
        !alive(daemon as u32),
        "daemon {daemon} survived the session"
    );
    assert!(of_kind(&events, "exit").iter().any(|e| pid_of(e) == daemon));
    assert!(
        !cgroup.exists(),
        "session cgroup {} left behind",
        cgroup.display()
    );

    // Nothing from outside the session.
    let marker = marker.to_str().expect("utf8");
    let leaked: Vec<&Value> = events
        .iter()
        .filter(|e| e.to_string().contains("outside-marker-7d3f"))
        .collect();
    assert!(
        leaked.is_empty(),
        "events from outside the session ({marker}): {leaked:?}"
    );
    let foreign: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["kind"] != "session_start" && e["kind"] != "session_end" && e["uid"] != NOBODY
        })
        .collect();
    assert!(foreign.is_empty(), "events of another uid: {foreign:#?}");

    let end = events.last().expect("records");
    assert_eq!(end["kind"], "session_end");
    assert_eq!(end["lost_total"], 0);
}

#[test]
fn exit_status_is_the_agents() {
    require_root();
    let out = run_with_deadline(
        sandbox(&["--user", "nobody"], &["/bin/sh", "-c", "exit 7"]),
        LONG,
    );
    assert_eq!(out.status.code(), Some(7));
    let out = run_with_deadline(
        sandbox(&["--user", "nobody"], &["/bin/sh", "-c", "kill -TERM $$"]),
        LONG,
    );
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM));
}

/// SIGTERM and SIGINT sent to the supervisor reach the agent, and the session is cleaned up.
#[test]
fn forwards_signals_to_the_agent() {
    require_root();
    for (sig, code) in [(libc::SIGTERM, 41), (libc::SIGINT, 42), (libc::SIGHUP, 43)] {
        let s = Scratch::new("sig");
        let ev = s.path("events.jsonl");
        let script = format!(
            "trap 'exit {code}' {}; touch {}/ready; while true; do sleep 0.05; done",
            match sig {
                libc::SIGTERM => "TERM",
                libc::SIGINT => "INT",
                _ => "HUP",
            },
            s.dir.display()
        );
        let child = spawn(sandbox(
            &["--user", "nobody", "--events", ev.to_str().expect("utf8")],
            &["/bin/bash", "-c", &script],
        ));
        assert!(wait_until(LONG, || s.path("ready").exists()));
        // SAFETY: signalling the supervisor this test started.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = wait_output(child, LONG);
        assert_eq!(out.status.code(), Some(code), "signal {sig} not forwarded");
        let cg = session_cgroup(&read_events(&ev));
        assert!(!cg.exists(), "{} left behind", cg.display());
    }
}

/// Ctrl-C typed in a real terminal (a tmux pane) reaches the agent; the supervisor survives it,
/// reports the agent's status and cleans up.
#[test]
fn ctrl_c_in_a_terminal_reaches_the_agent() {
    require_root();
    let s = Scratch::new("tmux");
    let session = format!("as-test-{}", std::process::id());
    let ev = s.path("events.jsonl");
    let got = s.path("got-int");
    let status = s.path("status");
    let inner = format!(
        "trap 'echo yes > {got}; exit 5' INT; touch {ready}; while true; do sleep 0.05; done",
        got = got.display(),
        ready = s.path("ready").display()
    );
    let shell_cmd = format!(
        "{BIN} run --user nobody --events {ev} -- /bin/bash -c \"{inner}\"; echo $? > {status}",
        ev = ev.display(),
        status = status.display()
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "30",
            "-c",
            &neutral_workspace().to_string_lossy(),
            &shell_cmd,
        ])
        .status()
        .expect("tmux available (cargo xtask setup installs it)");
    assert!(ok.success(), "tmux new-session failed");
    struct KillTmux(String);
    impl Drop for KillTmux {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _guard = KillTmux(session.clone());

    assert!(
        wait_until(LONG, || s.path("ready").exists()),
        "agent never started in tmux"
    );
    let sent = Command::new("tmux")
        .args(["send-keys", "-t", &session, "C-c"])
        .status()
        .expect("tmux send-keys");
    assert!(sent.success());
    assert!(
        wait_until(LONG, || status.exists()),
        "supervisor did not exit after Ctrl-C"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(fs::read_to_string(&got).expect("trap ran").trim(), "yes");
    assert_eq!(fs::read_to_string(&status).expect("status").trim(), "5");
    let cg = session_cgroup(&read_events(&ev));
    assert!(!cg.exists(), "{} left behind", cg.display());
}

/// The agent runs as the invoking user (SUDO_UID) or --user, with that user's groups and
/// HOME, and a setuid-root binary does not give root back.
#[test]
fn runs_unprivileged_without_a_way_back() {
    require_root();
    let out = run_with_deadline(
        {
            let mut c = sandbox(
                &[],
                &["/bin/sh", "-c", "id -u; id -g; echo $HOME; echo $USER"],
            );
            c.env("SUDO_UID", NOBODY.to_string())
                .env("SUDO_GID", NOBODY.to_string());
            c
        },
        LONG,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["65534", "65534", "/nonexistent", "nobody"]);

    // A setuid-root copy of `id`: outside the sandbox it really yields euid 0 to nobody...
    let s = Scratch::new("setuid");
    let suid = s.path("suid-id");
    fs::copy("/usr/bin/id", &suid).expect("copy id");
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).expect("chown");
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    let control = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&suid)
        .arg("-u")
        .output()
        .expect("setpriv");
    assert_eq!(
        String::from_utf8_lossy(&control.stdout).trim(),
        "0",
        "control: setuid works here"
    );
    // ...inside, no_new_privs keeps it at nobody.
    let out = run_with_deadline(
        sandbox(&["--user", "nobody"], &[suid.to_str().unwrap(), "-u"]),
        LONG,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65534");
    let out = run_with_deadline(
        sandbox(
            &["--user", "nobody"],
            &["/bin/sh", "-c", "grep NoNewPrivs /proc/self/status"],
        ),
        LONG,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("NoNewPrivs:\t1"));
}

#[test]
fn bad_input_gives_clear_errors() {
    require_root();
    let out = run_with_deadline(
        {
            let mut c = Command::new(BIN);
            c.args(["run", "--user", "nobody"]);
            c
        },
        LONG,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command given"));

    let out = run_with_deadline(
        sandbox(&["--user", "nobody"], &["no-such-command-x1"]),
        LONG,
    );
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command-x1: command not found"));

    let out = run_with_deadline(sandbox(&["--user", "no-such-user-x1"], &["true"]), LONG);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user `no-such-user-x1` does not exist"));

    let out = run_with_deadline(
        {
            let mut c = sandbox(&[], &["true"]);
            c.env_remove("SUDO_UID");
            c
        },
        LONG,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user NAME"));

    // Not root: says to use sudo.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "run",
            "--",
            "true",
        ])
        .output()
        .expect("setpriv");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sudo"),
        "{out:?}"
    );

    // No cgroup v2 mounted (in a private mount namespace): the error names the fix.
    let cg2 = cgroup2_root();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "umount -l {cg2} && exec {BIN} run --user nobody -- true"
        ))
        .current_dir(neutral_workspace())
        .output()
        .expect("unshare");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no cgroup v2") && err.contains("mount -t cgroup2"),
        "{err}"
    );
}

/// Long argv entries and many arguments are bounded, flagged, and never lose the command.
#[test]
fn long_argv_is_truncated_and_flagged() {
    require_root();
    let s = Scratch::new("argv");
    let ev = s.path("events.jsonl");
    let long = "x".repeat(3000);
    let many: Vec<String> = (0..100).map(|i| format!("a{i}")).collect();
    let mut cmd = vec!["/bin/echo", long.as_str()];
    cmd.extend(many.iter().map(String::as_str));
    let out = run_with_deadline(
        sandbox(
            &["--user", "nobody", "--events", ev.to_str().unwrap()],
            &cmd,
        ),
        LONG,
    );
    assert!(out.status.success());
    let events = read_events(&ev);
    let echo = of_kind(&events, "exec")
        .into_iter()
        .find(|e| e["fields"]["filename"] == "/bin/echo")
        .expect("echo exec");
    assert_eq!(echo["truncated"], true);
    let a = argv(echo);
    assert_eq!(a[0], "/bin/echo");
    assert_eq!(a[1].len(), 1023, "an argument is cut at ARG_LEN - 1 bytes");
    assert!(a.len() > 3 && a.len() < 100);
    assert_eq!(a[2], "a0");
}

#[test]
fn doctor_reports_the_kernel() {
    require_root();
    let out = Command::new(BIN).arg("doctor").output().expect("doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for row in [
        "cgroup v2",
        "bpf tracepoint",
        "kernel btf (tp_btf)",
        "fanotify",
        "seccomp",
        "landlock",
    ] {
        assert!(text.contains(row), "doctor lacks {row}: {text}");
    }
    let btf = text
        .lines()
        .find(|l| l.starts_with("kernel btf"))
        .expect("btf row");
    assert!(
        btf.contains(" ok ") && btf.contains("btf_trace_sys_exit = type"),
        "{btf}"
    );
    assert!(Path::new(BIN).exists());
}

/// A burst of opens while the supervisor is stopped (SIGSTOP, so its reader cannot drain)
/// overflows a small ring buffer: every open is either delivered or counted as lost, per kind,
/// in the closing record and on stderr.
#[test]
fn lost_events_are_counted_never_silent() {
    require_root();
    let s = Scratch::new("lost");
    let ev = s.path("events.jsonl");
    const OPENS: u64 = 100_000;
    let dir = s.dir.display();
    let script = format!(
        "import os, time\n\
         open('{dir}/ready', 'w').close()\n\
         while not os.path.exists('{dir}/go'): time.sleep(0.01)\n\
         for _ in range({OPENS}):\n    os.close(os.open('/dev/null', os.O_RDONLY))\n\
         open('{dir}/done', 'w').close()\n"
    );
    let child = spawn(sandbox(
        &[
            "--user",
            "nobody",
            "--ringbuf-mb",
            "1",
            "--events",
            ev.to_str().unwrap(),
        ],
        &["/usr/bin/python3", "-c", &script],
    ));
    let pid = child.id() as i32;
    assert!(wait_until(LONG, || s.path("ready").exists()));
    // SAFETY: stopping and continuing the supervisor this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    fs::write(s.path("go"), "").expect("go");
    let done = wait_until(LONG, || s.path("done").exists());
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(done, "burst did not finish");
    let out = wait_output(child, LONG);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let events = read_events(&ev);
    let delivered = of_kind(&events, "open")
        .iter()
        .filter(|e| e["fields"]["path"] == "/dev/null")
        .count() as u64;
    let end = events.last().expect("records");
    assert_eq!(end["kind"], "session_end");
    let lost_open = end["lost"]["open"].as_u64().expect("lost.open");
    assert!(
        lost_open > 0,
        "a 1 MiB ring buffer cannot hold {OPENS} opens: {end}"
    );
    assert!(
        delivered + lost_open >= OPENS,
        "{delivered} delivered + {lost_open} lost < {OPENS} opens: events vanished silently"
    );
    let lost_sum: u64 = end["lost"]
        .as_object()
        .expect("lost per kind")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum();
    assert_eq!(end["lost_total"].as_u64(), Some(lost_sum));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LOST") && err.contains("open"),
        "loss not reported: {err}"
    );
}

/// The events file is created outside the agent's reach: root-owned, mode 0600, even when a
/// file of that name already existed with other owner and mode.
#[test]
fn events_file_is_private_to_root() {
    use std::os::unix::fs::MetadataExt as _;
    require_root();
    let s = Scratch::new("private");
    let ev = s.path("events.jsonl");
    fs::write(&ev, "old").expect("pre-create");
    std::os::unix::fs::chown(&ev, Some(NOBODY), Some(NOBODY)).expect("chown");
    fs::set_permissions(&ev, fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = run_with_deadline(
        sandbox(
            &["--user", "nobody", "--events", ev.to_str().unwrap()],
            &[
                "/bin/sh",
                "-c",
                &format!(
                    "cat {} >/dev/null 2>&1 && echo readable || echo refused",
                    ev.display()
                ),
            ],
        ),
        LONG,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "refused");
    let meta = fs::metadata(&ev).expect("events file");
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (0, 0, 0o600));
    assert!(!fs::read_to_string(&ev).expect("read").starts_with("old"));

    // A symlink planted at the events path is not followed.
    let target = s.path("victim");
    fs::write(&target, "keep").expect("victim");
    let link = s.path("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let out = run_with_deadline(
        sandbox(
            &["--user", "nobody", "--events", link.to_str().unwrap()],
            &["true"],
        ),
        LONG,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("creating events file"));
    assert_eq!(fs::read_to_string(&target).expect("victim"), "keep");
}

/// A session cgroup whose supervisor is gone (here: made by hand, with a process in it) is
/// listed by `doctor` and removed, process and all, by `cleanup`.
#[test]
fn cleanup_removes_leftovers_of_dead_sessions() {
    require_root();
    let root = cgroup2_root();
    // A pid that no longer runs stands for the dead supervisor.
    let mut gone = Command::new("true").spawn().expect("true");
    let dead_pid = gone.id();
    gone.wait().expect("wait");
    let dir = Path::new(&root).join(format!("agent-sandbox-{dead_pid}-0badc0de"));
    fs::create_dir(&dir).expect("create leftover cgroup");
    // Whatever happens below, leave no cgroup behind.
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::write(self.0.join("cgroup.kill"), "1");
            std::thread::sleep(Duration::from_millis(50));
            let _ = fs::remove_dir(&self.0);
        }
    }
    let _remove = Remove(dir.clone());
    let mut straggler = Command::new("sleep").arg("300").spawn().expect("sleep");
    fs::write(dir.join("cgroup.procs"), straggler.id().to_string()).expect("move into cgroup");

    let out = Command::new(BIN).arg("doctor").output().expect("doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(dir.to_str().unwrap()),
        "doctor does not list it: {text}"
    );

    let out = Command::new(BIN).arg("cleanup").output().expect("cleanup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = straggler.wait().expect("wait straggler");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(!dir.exists(), "{} still there", dir.display());
}

/// A path the probe cannot read at syscall entry (its page is not mapped into the process yet,
/// and the probe may not fault) is still reported whole: the event is parked and emitted at
/// the syscall's exit, after the kernel itself has faulted the page in. Each path sits in a
/// file mapping of its own that nothing touched before the call (two mappings, so that the
/// kernel's fault-around for the first cannot map the second).
#[test]
fn paths_on_pages_not_yet_mapped_are_reported_whole() {
    require_root();
    let s = Scratch::new("unmapped");
    let ev = s.path("events.jsonl");
    let opened = s.path("opened-from-an-unmapped-page");
    let removed = s.path("removed-from-an-unmapped-page");
    fs::write(&opened, "x").unwrap();
    fs::write(&removed, "x").unwrap();
    std::os::unix::fs::chown(&removed, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut names = vec![0u8; 8192];
    for (off, p) in [(0, &opened), (4096, &removed)] {
        let b = p.as_os_str().as_encoded_bytes();
        names[off..off + b.len()].copy_from_slice(b);
    }
    let names_file = s.path("names");
    fs::write(&names_file, &names).unwrap();
    let script = script_file(
        &s.dir,
        r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.open.argtypes = [ctypes.c_void_p, ctypes.c_int]
libc.unlink.argtypes = [ctypes.c_void_p]
fd = os.open(sys.argv[1], os.O_RDONLY)
first = libc.mmap(None, 4096, 1, 2, fd, 0)      # PROT_READ, MAP_PRIVATE
second = libc.mmap(None, 4096, 1, 2, fd, 4096)
assert first not in (None, 2**64 - 1) and second not in (None, 2**64 - 1)
f = libc.open(first, 0)
assert f >= 0, ctypes.get_errno()
assert libc.unlink(second) == 0, ctypes.get_errno()
print("done")
"#,
    );
    let out = run_with_deadline(
        sandbox(
            &["--user", "nobody", "--events", ev.to_str().unwrap()],
            &[
                "/usr/bin/python3",
                script.to_str().unwrap(),
                names_file.to_str().unwrap(),
            ],
        ),
        LONG,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!removed.exists(), "the script's unlink took effect");
    let events = read_events(&ev);
    let open = of_kind(&events, "open")
        .into_iter()
        .find(|e| e["fields"]["path"] == opened.to_str().unwrap())
        .unwrap_or_else(|| panic!("no open of {} in {events:#?}", opened.display()));
    assert_eq!(open.get("read_error"), None, "{open}");
    let unlink = of_kind(&events, "path_op")
        .into_iter()
        .find(|e| e["fields"]["path"] == removed.to_str().unwrap())
        .unwrap_or_else(|| panic!("no unlink of {} in {events:#?}", removed.display()));
    assert_eq!(unlink["fields"]["syscall"], "unlink");
    assert_eq!(unlink.get("read_error"), None, "{unlink}");
    assert!(
        !events.iter().any(|e| e.get("read_error").is_some()
            && e["comm"].as_str().is_some_and(|c| c.starts_with("python"))),
        "no record of the script lost its path"
    );
}

/// The syscall exit probe reads the acting task's ids, uid and name straight from its
/// `task_struct`, at offsets taken from the kernel's BTF; the entry probes ask helpers. Both
/// kinds of record of a named worker thread of a process run as nobody (its open, seen at
/// exit, and its connect, seen at entry) carry that thread's id, the process's id, nobody's
/// uid and the thread's own name.
#[test]
fn records_carry_the_acting_threads_ids_and_name() {
    require_root();
    let s = Scratch::new("thread-header");
    let ev = s.path("events.jsonl");
    let target = s.path("opened-by-a-thread");
    fs::write(&target, "x").unwrap();
    let ids = s.path("ids");
    fs::write(&ids, "").unwrap();
    std::os::unix::fs::chown(&ids, Some(NOBODY), Some(NOBODY)).unwrap();
    let script = script_file(
        &s.dir,
        r#"
import os, socket, sys, threading
def work():
    tid = threading.get_native_id()
    with open(f"/proc/self/task/{tid}/comm", "w") as f:
        f.write("opener")
    os.close(os.open(sys.argv[1], os.O_RDONLY))
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", 9))
    except OSError:
        pass
    s.close()
    with open(sys.argv[2], "w") as f:
        f.write(f"{os.getpid()} {tid}")
t = threading.Thread(target=work)
t.start()
t.join()
"#,
    );
    let out = run_with_deadline(
        sandbox(
            &["--user", "nobody", "--events", ev.to_str().unwrap()],
            &[
                "/usr/bin/python3",
                script.to_str().unwrap(),
                target.to_str().unwrap(),
                ids.to_str().unwrap(),
            ],
        ),
        LONG,
    );
    assert!(out.status.success(), "{}", text(&out));
    let written = fs::read_to_string(&ids).unwrap();
    let (pid, tid) = written
        .split_once(' ')
        .map(|(p, t)| (p.parse::<u64>().unwrap(), t.parse::<u64>().unwrap()))
        .unwrap_or_else(|| panic!("the script wrote {written:?}"));
    assert_ne!(pid, tid, "the worker is a thread of its own");
    let events = read_events(&ev);
    let open = of_kind(&events, "open")
        .into_iter()
        .find(|e| e["fields"]["path"] == target.to_str().unwrap())
        .unwrap_or_else(|| panic!("no open of {} in {events:#?}", target.display()));
    assert_eq!(open["pid"], pid, "{open}");
    assert_eq!(open["tid"], tid, "{open}");
    assert_eq!(open["uid"], NOBODY, "{open}");
    assert_eq!(open["comm"], "opener", "{open}");
    let connect = of_kind(&events, "connect")
        .into_iter()
        .find(|e| e["fields"]["port"] == 9)
        .unwrap_or_else(|| panic!("no connect to port 9 in {events:#?}"));
    assert_eq!(connect["pid"], pid, "{connect}");
    assert_eq!(connect["tid"], tid, "{connect}");
    assert_eq!(connect["uid"], NOBODY, "{connect}");
    assert_eq!(connect["comm"], "opener", "{connect}");
}

/// The supervisor learns the agent's pid in `spawn`'s `on_clone` callback; the agent must not
/// run before that, or its first events (its own exec) arrive from a pid the supervisor does
/// not know yet and are shown without their ancestry. The callback here is slow on purpose
/// and creates a file only at its end: the child sees that file only if it waited.
#[test]
fn the_agent_waits_until_the_supervisor_knows_its_pid() {
    use agent_sandbox::cgroup::{Cgroup2Mount, SessionCgroup};
    use agent_sandbox::launch::{self, ChildSetup};
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::OpenOptionsExt as _;

    require_root();
    let scratch = Scratch::new("go-ahead");
    let flag = scratch.path("on_clone-ran");
    let cgroup = SessionCgroup::create(&Cgroup2Mount::find().expect("cgroup2 mount"))
        .expect("creating a cgroup");
    let dir: OwnedFd = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_DIRECTORY)
        .open(cgroup.path())
        .expect("opening the cgroup")
        .into();
    let setup = ChildSetup {
        cgroup_dir: dir,
        tty: None,
        uid: 0,
        gid: 0,
        groups: vec![0],
        gate: None,
        detach: None,
    };
    let argv: Vec<std::ffi::OsString> = ["sh", "-c", "test -e \"$1\"", "sh"]
        .iter()
        .map(Into::into)
        .chain([flag.clone().into_os_string()])
        .collect();
    let seen = std::sync::atomic::AtomicI32::new(0);
    let child = launch::spawn(Path::new("/bin/sh"), &argv, &[], &setup, &|pid| {
        std::thread::sleep(Duration::from_millis(300));
        seen.store(pid, std::sync::atomic::Ordering::SeqCst);
        fs::write(&flag, b"").expect("creating the flag");
    });
    let status = child
        .as_ref()
        .ok()
        .map(|c| launch::reap(&c.pidfd).expect("reaping the child"));
    cgroup.destroy().expect("removing the cgroup");
    let child = child.expect("spawn");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), child.pid);
    assert_eq!(
        status,
        Some(0),
        "the child ran its command before on_clone had finished"
    );
}
