//! End-to-end tests of the gate and the broker (issue 4): destructive actions by real programs
//! are held in the kernel until `agent-sandbox decide` answers; on deny the directory, the
//! remote ref and the table are intact, on allow the action completes; the sandbox cannot
//! approve its own request or release a held process.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A workspace with protected trees, a state directory and a session started in it.
struct Session {
    s: Scratch,
    ws: PathBuf,
    state: PathBuf,
    /// Supervisors this test started: killed on drop if still running, so that a failing
    /// test leaves no held or frozen session behind (the watchdog then ends the tree).
    started: Supervisors,
}

const POLICY: &str = r#"
[[files.protect]]
id = "backups"
why = "Backups are the last line of defence."
paths = ["backups/**"]
"#;

impl Session {
    fn new(name: &str, extra_policy: &str) -> Self {
        require_root();
        let s = Scratch::new(name);
        let ws = s.path("ws");
        let state = s.path("state");
        fs::create_dir_all(ws.join(".git")).unwrap();
        fs::create_dir_all(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(ws.join("policy.toml"), format!("{POLICY}{extra_policy}")).unwrap();
        let me = Session {
            s,
            ws,
            started: Supervisors::new(&state),
            state,
        };
        me.fill_backups();
        me
    }

    fn fill_backups(&self) {
        let b = self.ws.join("backups/nested");
        fs::create_dir_all(&b).unwrap();
        for i in 0..5 {
            fs::write(self.ws.join(format!("backups/db-{i}.dump")), "dump").unwrap();
        }
        fs::write(b.join("deep.dump"), "dump").unwrap();
        chown_tree(&self.ws);
    }

    fn backups_intact(&self) -> bool {
        (0..5).all(|i| self.ws.join(format!("backups/db-{i}.dump")).exists())
            && self.ws.join("backups/nested/deep.dump").exists()
    }

    /// Starts `bash SCRIPT` under the sandbox as nobody, in the workspace.
    fn start(&self, script: &str) -> Child {
        self.start_as("nobody", script)
    }

    /// Starts `bash SCRIPT` under the sandbox as `user`, in the workspace.
    fn start_as(&self, user: &str, script: &str) -> Child {
        let child = start_script(&self.s.dir, &self.state, &self.ws, user, script);
        self.started.track(&child);
        child
    }

    /// The actions held now (via `decide --list --json`).
    fn held(&self) -> Vec<Value> {
        held_in(&self.state)
    }

    /// Waits for the next held action of the session `child`; on failure shows its output.
    fn wait_held(&self, child: Child) -> (Value, Child) {
        wait_held_in(&self.state, child, Duration::from_secs(20))
    }

    fn decide(&self, id: u64, word: &str) -> Output {
        Command::new(BIN)
            .args(["decide", &id.to_string(), word, "--state-dir"])
            .arg(&self.state)
            .output()
            .unwrap()
    }

    /// Answers every hold with `word` until the session ends; returns the holds and the
    /// session's output.
    fn answer_all(&self, child: Child, word: &str) -> (Vec<Value>, Output) {
        let mut holds = Vec::new();
        let pid = child.id();
        loop {
            let mut next = None;
            wait_until(Duration::from_secs(20), || {
                next = self.held().into_iter().next();
                next.is_some() || !alive(pid)
            });
            let Some(h) = next else { break };
            let out = self.decide(h["id"].as_u64().unwrap(), word);
            assert!(out.status.success(), "decide: {out:?}");
            holds.push(h);
            assert!(holds.len() < 20, "too many holds: {holds:#?}");
        }
        (holds, wait_output(child, Duration::from_secs(30)))
    }

    /// The audit log of the newest session in the state directory.
    fn audit(&self) -> Vec<Value> {
        let log = fs::read_dir(self.state.join("audit"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
            .expect("an audit log");
        read_events(&log)
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

/// The thread state letter of `pid` ('S' sleeping, 'R', 'T' stopped...).
fn state_of(pid: u64) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn deletions_by_every_means_are_held_and_denied_ones_leave_the_tree_intact() {
    let se = Session::new("gate-deny", "");
    let py = se.s.path("rmtree.py");
    fs::write(&py, "import shutil\nshutil.rmtree('backups')\n").unwrap();
    let script = format!(
        "bash -c 'rm -rf backups'; echo \"bash-c=$?\"\n\
         find backups -delete; echo \"find=$?\"\n\
         find backups -type f | xargs rm -f; echo \"xargs=$?\"\n\
         cp /bin/rm /tmp/zap-$$ && /tmp/zap-$$ -rf backups; echo \"copied-rm=$?\"\n\
         python3 {py}; echo \"rmtree=$?\"\n\
         rm -f /tmp/zap-$$\n",
        py = py.display()
    );
    let (first, child) = se.wait_held(se.start(&script));

    // The first hold: the process waits in the kernel, SIGCONT does not release it, and the
    // directory is intact while it waits.
    let pid = first["pid"].as_u64().unwrap();
    assert_eq!(first["rule"], "fs.rm-recursive-workspace", "{first:#}");
    assert_eq!(
        state_of(pid),
        Some('S'),
        "held in an interruptible-looking wait"
    );
    // SAFETY: signals to a process of the session this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGCONT);
        libc::kill(pid as i32, libc::SIGWINCH);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(pid as u32) && se.backups_intact());
    assert_eq!(se.held().len(), 1, "still held after SIGCONT");

    let (mut holds, out) = se.answer_all(child, "deny");
    holds.insert(0, first.clone());
    let log = text(&out);
    assert!(se.backups_intact(), "backups damaged:\n{log}");
    for step in ["bash-c", "find", "xargs", "copied-rm", "rmtree"] {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("{step}=")))
            .unwrap_or_else(|| panic!("no {step}= line in:\n{log}"));
        assert_ne!(line, format!("{step}=0"), "{step} succeeded:\n{log}");
    }
    // Every means was held, by the detector or by the protected path.
    let rules: Vec<&str> = holds.iter().filter_map(|h| h["rule"].as_str()).collect();
    assert!(
        rules.contains(&"backups"),
        "the copied rm and rmtree hit the path gate: {rules:?}"
    );
    assert!(
        holds.len() >= 5,
        "one hold per attempt at least: {holds:#?}"
    );
    assert!(
        log.contains("a human denied it"),
        "the held process is told why:\n{log}"
    );
    // The audit log has each hold and its decision.
    let audit = se.audit();
    let held = of_kind(&audit, "held").len();
    let denied = of_kind(&audit, "decision")
        .iter()
        .filter(|d| d["fields"]["decision"] == "deny" && d["fields"]["by"] == "decide")
        .count();
    assert!(held >= 5 && denied >= 5, "held {held}, denied {denied}");
}

/// argv[0] is the caller's choice: renaming the program in it (`exec -a`, `os.execv`, and
/// `fexecve` through a descriptor) must not hide a recursive deletion from the detector.
#[test]
fn a_deletion_is_held_whatever_argv0_says() {
    let se = Session::new("gate-argv0", "");
    let build = se.ws.join("build");
    fs::create_dir_all(build.join("out")).unwrap();
    fs::write(build.join("out/a.o"), "obj").unwrap();
    chown_tree(&se.ws);
    let py = se.s.path("argv0.py");
    fs::write(
        &py,
        "import os, sys\n\
         if sys.argv[1] == 'execv':\n\
         \x20   os.execv('/bin/rm', ['ls', '-r', 'build'])\n\
         fd = os.open('/bin/rm', os.O_RDONLY)\n\
         os.execve(fd, ['true', '-r', 'build'], dict(os.environ))\n",
    )
    .unwrap();
    let script = format!(
        "(exec -a ls rm -r build); echo \"exec-a=$?\"\n\
         python3 {py} execv; echo \"execv=$?\"\n\
         python3 {py} fexecve; echo \"fexecve=$?\"\n",
        py = py.display()
    );
    let (holds, out) = se.answer_all(se.start(&script), "deny");
    let log = text(&out);
    assert!(build.join("out/a.o").exists(), "build deleted:\n{log}");
    for step in ["exec-a", "execv", "fexecve"] {
        assert!(
            log.lines().any(|l| l.starts_with(&format!("{step}=")))
                && !log.contains(&format!("{step}=0")),
            "{step} not refused:\n{log}"
        );
    }
    assert_eq!(holds.len(), 3, "{holds:#?}\n{log}");
    for h in &holds {
        assert_eq!(h["rule"], "fs.rm-recursive-workspace", "{h:#}");
    }
}

#[test]
fn allowed_actions_complete_and_one_approval_covers_the_whole_command() {
    let se = Session::new("gate-allow", "");
    let child = se.start(
        "cp /bin/rm /tmp/zap-$$ && /tmp/zap-$$ -rf backups/nested; echo \"copied=$?\"\n\
         rm -f /tmp/zap-$$\n\
         bash -c 'rm -rf backups'; echo \"bash-c=$?\"\n",
    );
    let (holds, out) = se.answer_all(child, "allow");
    let log = text(&out);
    assert!(
        !se.ws.join("backups").exists(),
        "backups still there:\n{log}"
    );
    assert!(
        log.contains("copied=0") && log.contains("bash-c=0"),
        "{log}"
    );
    // The copied rm is held once (not once per file), and the approved `bash -c` is not held
    // again for the rm it starts or the files that rm deletes.
    assert_eq!(holds.len(), 2, "{holds:#?}\n{}", text(&out));
}

#[test]
fn allow_session_freeze_and_kill() {
    let se = Session::new("gate-session", "");
    let (h, child) = se.wait_held(se.start(
        "mkdir -p a b; bash -c 'rm -rf a'; echo a=$?; bash -c 'rm -rf b'; echo b=$?\n\
         bash -c 'rm -rf backups'; echo backups=$?\n",
    ));
    assert!(
        se.decide(h["id"].as_u64().unwrap(), "allow-session")
            .status
            .success()
    );
    let cg = session_cgroup(&se.audit());
    // The rule allowed for the session is not asked again; the protected tree is another
    // rule and is: one more hold, for the first deletion in backups/.
    let (more, out) = se.answer_all(child, "allow");
    let log = text(&out);
    assert!(
        log.contains("a=0") && log.contains("b=0") && log.contains("backups=0"),
        "{log}"
    );
    assert_eq!(more.len(), 1, "{more:#?}");
    assert_eq!(more[0]["rule"], "backups");
    assert!(!se.ws.join("backups").exists());
    assert!(!cg.exists(), "session cgroup removed");

    // Freeze and kill: a held action, the tree frozen, then killed.
    se.fill_backups();
    let (h, child) =
        se.wait_held(se.start("sleep 1000 & bash -c 'rm -rf backups'; echo after=$?; wait\n"));
    let id = h["id"].as_u64().unwrap();
    let cg = session_cgroup(&se.audit());
    assert!(se.decide(0, "freeze").status.success());
    assert!(
        wait_until(Duration::from_secs(5), || fs::read_to_string(
            cg.join("cgroup.freeze")
        )
        .is_ok_and(|f| f.trim() == "1")),
        "the tree is frozen"
    );
    let listed = se.held();
    assert_eq!(listed.len(), 1, "a freeze keeps the action held");
    assert!(se.decide(id, "kill").status.success());
    let out = wait_output(child, Duration::from_secs(30));
    assert!(!text(&out).contains("after="), "the held shell was killed");
    assert!(se.backups_intact());
    assert!(!cg.exists());
}

#[test]
fn nobody_answering_means_deny_and_unknown_ids_are_clear_errors() {
    let se = Session::new("gate-timeout", "\n[approval]\ntimeout_secs = 2\n");
    let (h, child) = se.wait_held(se.start("bash -c 'rm -rf backups'; echo rc=$?\n"));
    let bad = se.decide(h["id"].as_u64().unwrap() + 100, "allow");
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("no held action has id"),
        "{}",
        text(&bad)
    );
    let bad = se.decide(h["id"].as_u64().unwrap(), "perhaps");
    assert!(!bad.status.success() && text(&bad).contains("unknown decision"));
    let out = wait_output(child, Duration::from_secs(30));
    let log = text(&out);
    assert!(se.backups_intact());
    assert!(log.contains("nobody answered within 2 s"), "{log}");
    assert!(log.contains("rc=126"), "{log}");
    let audit = se.audit();
    assert!(
        of_kind(&audit, "decision")
            .iter()
            .any(|d| d["fields"]["by"] == "timeout" && d["fields"]["decision"] == "deny")
    );

    // An [exec] rule with a broken pattern is a line-and-column error.
    let bad_policy = se.s.path("bad.toml");
    fs::write(
        &bad_policy,
        "[[exec.rule]]\nid = \"x\"\naction = \"ask\"\nmatch = \"rm 'oops\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["policy", "check"])
        .arg(&bad_policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("bad.toml:4:9"), "{}", text(&out));
}

#[test]
fn the_sandbox_cannot_approve_its_own_request_or_release_a_held_process() {
    let se = Session::new("gate-tamper", "");
    let state = se.state.display().to_string();
    let py = se.s.path("approve.py");
    fs::write(
        &py,
        "import os, socket, sys\n\
         s = socket.socket(socket.AF_UNIX)\n\
         os.chdir(os.path.dirname(sys.argv[1]))\n\
         try:\n    s.connect(os.path.basename(sys.argv[1]))\n    \
         s.sendall(b'{\"op\":\"decide\",\"id\":1,\"decision\":\"allow\",\"by\":\"decide\"}\\n')\n    \
         print('REPLY', s.recv(4096).decode().strip())\n\
         except OSError as e:\n    print('CONNECT-FAILED', e)\n",
    )
    .unwrap();
    let py = py.display();
    // The agent runs as root here: only the cgroup check keeps it from the socket, not the
    // directory's mode. It finds its session's socket from its own cgroup's name.
    let script = format!(
        "bash -c 'rm -rf backups' & held=$!\n\
         sleep 1\n\
         sock={state}/sessions/$(basename $(grep '^0::' /proc/self/cgroup | cut -d: -f3)).sock\n\
         python3 {py} \"$sock\"\n\
         kill -STOP $held; kill -CONT $held; kill -WINCH $held; kill -CONT $held\n\
         echo forged > {state}/sessions/x 2>/dev/null && echo WROTE-STATE\n\
         sleep 1; ls backups >/dev/null && echo STILL-THERE\n\
         wait $held; echo held-exit=$?\n"
    );
    let (h, child) = se.wait_held(se.start_as("root", &script));
    // Give the agent's attempts time to run, then check the hold still stands.
    std::thread::sleep(Duration::from_secs(3));
    let still: Vec<Value> = se.held();
    let (_, out) = se.answer_all(child, "deny");
    let log = text(&out);
    // The socket is reachable (a relative name, however deep the state directory): the
    // refusal comes from the supervisor's check of the peer, not from a failed connect.
    assert!(
        log.contains("REPLY") && log.contains("refused"),
        "the approval attempt reached the socket and was refused:\n{log}"
    );
    assert!(!log.contains("WROTE-STATE"), "{log}");
    assert!(log.contains("STILL-THERE"), "{log}");
    assert!(se.backups_intact());
    assert!(
        still.iter().any(|s| s["id"] == h["id"]),
        "the hold stood through the agent's attempts: {still:#?}"
    );
    assert!(
        of_kind(&se.audit(), "approval_refused").len() == 1,
        "the attempt is in the audit log"
    );
}

#[test]
fn git_force_push_to_a_local_bare_repository_is_held() {
    let se = Session::new("gate-git", "");
    let bare = se.s.path("remote.git");
    let git = |dir: &Path, args: &[&str]| {
        let o = Command::new("git")
            .args(["-c", "safe.directory=*"])
            .args(args)
            .current_dir(dir)
            .env("HOME", &se.s.dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    git(
        &se.s.dir,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let repo = se.ws.clone();
    fs::remove_dir_all(repo.join(".git")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "one"]);
    git(&repo, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git(&repo, &["push", "-q", "origin", "main"]);
    git(
        &repo,
        &[
            "commit",
            "-q",
            "--amend",
            "--allow-empty",
            "-m",
            "rewritten",
        ],
    );
    let before = git(&bare, &["rev-parse", "main"]);
    chown_tree(&bare);
    chown_tree(&se.ws);
    let script = "export HOME=$PWD/..; git -c safe.directory='*' push -q --force origin main; echo push=$?\n";
    let (holds, out) = se.answer_all(se.start(script), "deny");
    assert_eq!(git(&bare, &["rev-parse", "main"]), before, "{}", text(&out));
    assert!(
        holds
            .iter()
            .any(|h| h["rule"].as_str().unwrap_or("").contains("push")),
        "{holds:#?}"
    );
    let (_, out) = se.answer_all(se.start(script), "allow");
    assert_ne!(git(&bare, &["rev-parse", "main"]), before, "{}", text(&out));
}

/// A PostgreSQL server of the test's own, on a unix socket in a scratch directory, stopped
/// (by its pid) when dropped.
struct Postgres {
    child: Child,
    sock: PathBuf,
}

impl Postgres {
    fn start(s: &Scratch) -> Postgres {
        let data = s.path("pgdata");
        let sock = s.path("pgsock");
        fs::create_dir_all(&sock).unwrap();
        chown_tree(&sock);
        let as_nobody = |args: &[&str]| {
            let o = Command::new("setpriv")
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .args(args)
                .output()
                .unwrap();
            assert!(o.status.success(), "{args:?}: {}", text(&o));
        };
        as_nobody(&[
            "initdb",
            "-U",
            "postgres",
            "--auth=trust",
            "-D",
            data.to_str().unwrap(),
        ]);
        let child = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                "postgres",
                "-D",
            ])
            .arg(&data)
            .args([
                "-k",
                sock.to_str().unwrap(),
                "-c",
                "listen_addresses=",
                "-p",
                "5499",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pg = Postgres { child, sock };
        assert!(
            wait_until(Duration::from_secs(30), || pg
                .sql("postgres", "select 1")
                .is_some()),
            "postgres did not start"
        );
        pg
    }

    fn sql(&self, db: &str, q: &str) -> Option<String> {
        let o = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-U", "postgres", "-p", "5499", "-h"])
            .arg(&self.sock)
            .args(["-d", db, "-c", q])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SAFETY: SIGINT (fast shutdown) to the server this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

#[test]
fn psql_drop_table_and_dropdb_against_a_real_server_are_held() {
    let se = Session::new("gate-psql", "");
    let pg = Postgres::start(&se.s);
    pg.sql("postgres", "create database app")
        .expect("create db");
    pg.sql(
        "app",
        "create table important(x int); insert into important values (42)",
    )
    .expect("create table");
    let conn = format!("-h {} -p 5499 -U postgres", pg.sock.display());
    let script = format!(
        "psql -X {conn} -d app -c 'DROP TABLE important'; echo drop=$?\n\
         dropdb {conn} app; echo dropdb=$?\n"
    );
    let (holds, out) = se.answer_all(se.start(&script), "deny");
    assert_eq!(
        pg.sql("app", "select x from important").as_deref(),
        Some("42"),
        "{}",
        text(&out)
    );
    assert_eq!(holds.len(), 2, "{holds:#?}\n{}", text(&out));

    let (_, out) = se.answer_all(
        se.start(&format!(
            "psql -X {conn} -d app -c 'DROP TABLE important'; echo drop=$?\n"
        )),
        "allow",
    );
    assert!(text(&out).contains("drop=0"), "{}", text(&out));
    assert_eq!(
        pg.sql(
            "app",
            "select count(*) from pg_tables where tablename='important'"
        )
        .as_deref(),
        Some("0")
    );
}

#[test]
fn the_tui_in_a_real_terminal_allows_denies_allows_for_the_session_and_freezes() {
    let se = Session::new("gate-tui", "");
    let child = se.start(
        "mkdir -p one two three four\n\
         bash -c 'rm -rf one'; echo one=$?\n\
         bash -c 'rm -rf two'; echo two=$?\n\
         bash -c 'rm -rf three'; echo three=$?\n\
         bash -c 'rm -rf four'; echo four=$?\n\
         while [ ! -e end ]; do sleep 0.05; done\n",
    );
    // Attach once the session (and its socket) exists.
    let (_, child) = se.wait_held(child);
    let pid = child.id();
    // The script waits for `end`: whatever fails below, the session must not outlive the test.
    struct EndOnDrop(PathBuf);
    impl Drop for EndOnDrop {
        fn drop(&mut self) {
            let _ = fs::write(&self.0, "");
        }
    }
    let _end = EndOnDrop(se.ws.join("end"));
    let tui = Tmux::start(
        &format!("as-tui-{pid}"),
        &format!("{BIN} attach --state-dir {}", se.state.display()),
    );
    tui.wait_for("rm -rf one");
    tui.keys(&["a"]);
    assert!(wait_until(Duration::from_secs(20), || !se
        .ws
        .join("one")
        .exists()));
    tui.wait_for("rm -rf two");
    tui.keys(&["d"]);
    tui.wait_for("rm -rf three");
    assert!(se.ws.join("two").exists(), "denied: kept");
    // A session-wide allow needs a confirmation; then `four` (same rule) is not held.
    tui.keys(&["A"]);
    tui.wait_for("y");
    tui.keys(&["y"]);
    assert!(wait_until(Duration::from_secs(20), || !se
        .ws
        .join("three")
        .exists()
        && !se.ws.join("four").exists()));
    let cg = session_cgroup(&se.audit());
    let frozen = || {
        fs::read_to_string(cg.join("cgroup.freeze"))
            .map(|f| f.trim() == "1")
            .unwrap_or(false)
    };
    tui.keys(&["f"]);
    assert!(
        wait_until(Duration::from_secs(20), frozen),
        "f froze the tree"
    );
    tui.wait_for("FROZEN");
    tui.keys(&["t"]);
    assert!(
        wait_until(Duration::from_secs(20), || !frozen()),
        "t thawed it"
    );
    tui.keys(&["?"]);
    tui.wait_for("allow");
    fs::write(se.ws.join("end"), "").unwrap();
    let out = wait_output(child, Duration::from_secs(30));
    let log = text(&out);
    assert!(log.contains("one=0") && log.contains("two=126"), "{log}");
    assert!(log.contains("three=0") && log.contains("four=0"), "{log}");
    let decisions: Vec<String> = of_kind(&se.audit(), "decision")
        .iter()
        .map(|d| format!("{}/{}", d["fields"]["decision"], d["fields"]["by"]))
        .collect();
    assert_eq!(
        decisions,
        [
            "\"allow\"/\"tui\"",
            "\"deny\"/\"tui\"",
            "\"allow-session\"/\"tui\""
        ],
        "every decision is recorded with who made it"
    );
}

#[test]
fn a_burst_of_deletions_by_any_means_freezes_the_tree_until_a_human_decides() {
    let se = Session::new(
        "gate-mass",
        "\n[approval]\nmass_delete_files = 50\nmass_delete_window_secs = 5\n",
    );
    let many = se.ws.join("build");
    fs::create_dir_all(&many).unwrap();
    for i in 0..300 {
        fs::write(many.join(format!("f{i}")), "x").unwrap();
    }
    chown_tree(&many);
    let py = se.s.path("wipe.py");
    // No exec rule sees this coming: plain os.remove in a loop, from a script file.
    fs::write(
        &py,
        "import os, time\nfor i in range(300):\n    os.remove(f'build/f{i}')\n    time.sleep(0.005)\nprint('wiped')\n",
    )
    .unwrap();
    let (h, child) = se.wait_held(se.start(&format!("python3 {}; echo py=$?\n", py.display())));
    assert_eq!(h["kind"], "mass-delete", "{h:#}");
    let cg = session_cgroup(&se.audit());
    assert_eq!(
        fs::read_to_string(cg.join("cgroup.freeze")).unwrap().trim(),
        "1",
        "the tree is frozen"
    );
    let left = || fs::read_dir(&many).unwrap().count();
    let while_frozen = left();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(left(), while_frozen, "nothing is deleted while frozen");
    assert!(while_frozen > 0);
    // Deny: the deleting process is killed and the rest of the tree thaws.
    let (_, out) = se.answer_all(child, "deny");
    let log = text(&out);
    assert!(!log.contains("wiped"), "{log}");
    assert!(log.contains("py=137"), "{log}");
    assert_eq!(left(), while_frozen, "{log}");
    let audit = se.audit();
    assert!(of_kind(&audit, "freeze").len() == 1 && of_kind(&audit, "thaw").len() == 1);
}

#[test]
fn the_filter_refuses_bpf_and_module_loading_and_io_uring_while_paths_are_gated() {
    let se = Session::new("gate-syscalls", "");
    let py = se.s.path("syscalls.py");
    fs::write(
        &py,
        "import ctypes, os\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         buf = ctypes.create_string_buffer(256)\n\
         for name, nr, args in [('io_uring_setup', 425, (4, buf)), ('bpf', 321, (0, buf, 64)),\n\
         \x20                      ('init_module', 175, (buf, 0, buf))]:\n\
         \x20   r = libc.syscall(nr, *args)\n\
         \x20   print(name, 'EPERM' if r < 0 and ctypes.get_errno() == 1 else 'not-refused')\n",
    )
    .unwrap();
    let script = format!("python3 {}\n", py.display());
    // With [[files.protect]] rules: all three refused.
    let (holds, out) = se.answer_all(se.start(&script), "deny");
    let log = text(&out);
    assert!(holds.is_empty(), "{holds:#?}");
    for name in ["io_uring_setup", "bpf", "init_module"] {
        assert!(log.contains(&format!("{name} EPERM")), "{log}");
    }
    // Without them (the embedded default alone): io_uring stays, bpf and modules do not.
    let out = run_with_deadline(
        sandbox(
            &["--user", "nobody"],
            &["/usr/bin/python3", py.to_str().unwrap()],
        ),
        Duration::from_secs(60),
    );
    let log = text(&out);
    assert!(log.contains("io_uring_setup not-refused"), "{log}");
    assert!(
        log.contains("bpf EPERM") && log.contains("init_module EPERM"),
        "{log}"
    );
}

#[test]
fn run_tui_shows_the_queue_in_the_supervisors_terminal_and_keeps_the_agent_off_it() {
    let se = Session::new("gate-run-tui", "");
    // The agent tries the terminal every way it could: as its stdio, as /dev/tty, and by name
    // (the terminal is made the agent user's, as it is when a developer runs sudo in their
    // own terminal, so only the sandbox stands in the way).
    let script = script_file(
        &se.s.dir,
        "mkdir -p one two\n\
         tty; echo tty=$?\n\
         (echo x > /dev/tty) 2>/dev/null; echo devtty=$?\n\
         python3 -c \"\n\
import os, sys\n\
try:\n    fd = os.open(sys.argv[1], os.O_RDWR); os.write(fd, b'FORGED'); print('OPENED-PTS')\n\
except OSError as e:\n    print('pts refused', e.errno)\n\" \"$AS_PTS\"\n\
         bash -c 'rm -rf one'; echo one=$?\n\
         bash -c 'rm -rf two'; echo two=$?\n",
    );
    let status = se.s.path("status");
    let tui = Tmux::start(
        &format!("as-run-tui-{}", std::process::id()),
        &format!(
            "export AS_PTS=$(tty); chown nobody $AS_PTS; chmod 620 $AS_PTS; cd {ws} && {BIN} run --tui --user \
             nobody --trust-policy --state-dir {state} -- /bin/bash {script}; echo $? > {status}; \
             sleep 600",
            ws = se.ws.display(),
            state = se.state.display(),
            script = script.display(),
            status = status.display(),
        ),
    );
    // Whatever fails below, dropping `tui` kills the tmux session: the supervisor gets SIGHUP,
    // forwards it, and the tree ends with it.
    tui.wait_for("rm -rf one");
    tui.keys(&["a"]);
    assert!(wait_until(Duration::from_secs(20), || !se
        .ws
        .join("one")
        .exists()));
    tui.wait_for("rm -rf two");
    tui.keys(&["d"]);
    assert!(
        wait_until(Duration::from_secs(30), || status.exists()),
        "the session ended; screen:\n{}",
        tui.screen()
    );
    assert_eq!(fs::read_to_string(&status).unwrap().trim(), "0");
    assert!(se.ws.join("two").exists(), "denied: kept");
    assert!(
        !tui.screen().contains("FORGED"),
        "the agent wrote on the UI's terminal:\n{}",
        tui.screen()
    );
    // The agent's output went to its file, not to the terminal.
    let out_dir = se.state.join("output");
    let log: String = fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(log.contains("not a tty") && log.contains("tty=1"), "{log}");
    assert!(!log.contains("devtty=0"), "{log}");
    assert!(
        log.contains("pts refused") && !log.contains("OPENED-PTS"),
        "{log}"
    );
    assert!(log.contains("one=0") && log.contains("two=126"), "{log}");
    assert!(log.contains("pts refused 13"), "{log}");
    // The terminal was the agent user's for the session's sake of realism: it is again.
    let pts = Command::new("tmux")
        .args(["display", "-p", "-t", &tui.0, "#{pane_tty}"])
        .output()
        .unwrap();
    let pts = String::from_utf8_lossy(&pts.stdout).trim().to_string();
    let meta = fs::metadata(&pts).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (NOBODY, 0o620),
        "{pts} got its owner and mode back"
    );
    let audit = se.audit();
    let by: Vec<String> = of_kind(&audit, "decision")
        .iter()
        .map(|d| format!("{}/{}", d["fields"]["decision"], d["fields"]["by"]))
        .collect();
    assert_eq!(by, ["\"allow\"/\"tui\"", "\"deny\"/\"tui\""]);
    // The session report pairs each hold with its decision.
    let log = fs::read_dir(se.state.join("audit"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let rep = Command::new(BIN)
        .args(["report", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(rep.status.success(), "{}", text(&rep));
    let rep: Value = serde_json::from_slice(&rep.stdout).unwrap();
    let holds: Vec<String> = rep["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{} {}/{}", h["what"], h["decision"], h["by"]))
        .collect();
    assert_eq!(
        holds,
        [
            "\"bash -c 'rm -rf one'\" \"allow\"/\"tui\"",
            "\"bash -c 'rm -rf two'\" \"deny\"/\"tui\""
        ],
        "{rep:#}"
    );
}
