//! End-to-end tests of the policy's hard blocks (issue 3), as root, with real programs: network
//! rules refused in the kernel, credential files unreadable whatever the path or the program,
//! and the policy's own rules (trust, tighten-only, diagnostics).

mod common;

use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(60);

/// The probe program (tests/helpers/probe.c), built once per test binary: dynamic (with
/// io_uring) and static (musl, no LD_PRELOAD can ever apply to it).
fn probes() -> (PathBuf, PathBuf) {
    static BUILT: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/helpers/probe.c");
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e/bin");
            fs::create_dir_all(&dir).expect("create target/e2e/bin");
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
            let dynamic = dir.join("probe");
            let stat = dir.join("probe-static");
            let ok = Command::new("gcc")
                .args(["-O1", "-Wall", "-o"])
                .arg(&dynamic)
                .arg(&src)
                .status()
                .expect("gcc (cargo xtask setup installs it)");
            assert!(ok.success(), "building the probe failed");
            let ok = Command::new("musl-gcc")
                .args(["-static", "-DNO_URING", "-O1", "-Wall", "-o"])
                .arg(&stat)
                .arg(&src)
                .status()
                .expect("musl-gcc (cargo xtask setup installs musl-tools)");
            assert!(ok.success(), "building the static probe failed");
            (dynamic, stat)
        })
        .clone()
}

/// A workspace for one test: a scratch dir with `.git` (the repository root) and a
/// `policy.toml`, plus a root-only state dir for trust records.
struct Workspace {
    scratch: Scratch,
    state: PathBuf,
}

impl Workspace {
    fn new(name: &str, policy: &str) -> Self {
        let scratch = Scratch::new(name);
        fs::create_dir_all(scratch.path(".git")).unwrap();
        fs::write(scratch.path("policy.toml"), policy).unwrap();
        let state = scratch.path("state");
        fs::create_dir_all(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
        Self { scratch, state }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.scratch.path(p)
    }

    /// `unshare -m` running `agent-sandbox run --user nobody --trust-policy --state-dir STATE`
    /// (the caller adds options and `-- CMD`) with each `(file, over)` bind-mounted over the
    /// path `over` in a private mount namespace: the machine's own files are untouched.
    fn run_with_own_files(&self, binds: &[(&Path, &str)]) -> Command {
        let mut script = String::new();
        for (i, (_, over)) in binds.iter().enumerate() {
            script.push_str(&format!(
                "mount --bind \"${}\" {} && ",
                i + 1,
                shell_quote(over)
            ));
        }
        script.push_str(&format!("shift {} && exec \"$@\"", binds.len()));
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--", "sh", "-c", &script, "sh"])
            .args(binds.iter().map(|(file, _)| *file))
            .arg(BIN)
            .args(["run", "--user", "nobody", "--trust-policy", "--state-dir"])
            .arg(&self.state)
            .current_dir(&self.scratch.dir);
        cmd
    }

    /// `agent-sandbox run --user nobody --state-dir STATE [extra] -- bash SCRIPT`, started
    /// in the workspace.
    fn run(&self, extra: &[&str], script: &str) -> std::process::Output {
        let mut opts = vec![
            "--user",
            "nobody",
            "--state-dir",
            self.state.to_str().unwrap(),
        ];
        opts.extend_from_slice(extra);
        let file = script_file(&self.scratch.dir, script);
        let mut cmd = sandbox(&opts, &["/bin/bash", file.to_str().unwrap()]);
        cmd.current_dir(&self.scratch.dir);
        run_with_deadline(cmd, LONG)
    }
}

/// A TCP listener counting the connections it accepts, until dropped.
struct Counter {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Counter {
    fn tcp(ip: &str) -> Self {
        let l = TcpListener::bind((ip, 0)).expect("bind listener");
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok(_) => {
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            accepted,
            stop,
        }
    }

    fn udp(ip: &str) -> Self {
        let u = UdpSocket::bind((ip, 0)).expect("bind udp");
        u.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let port = u.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s.load(Ordering::Relaxed) {
                if u.recv(&mut buf).is_ok() {
                    a.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self {
            port,
            accepted,
            stop,
        }
    }

    fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Single-quotes `s` for the shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn production_endpoints_are_refused_in_the_kernel() {
    require_root();
    let (probe, probe_static) = probes();
    let prod = Counter::tcp("127.0.0.1");
    let prod_udp = Counter::udp("127.0.0.1");
    let allowed = Counter::tcp("127.0.0.2");
    let policy = format!(
        r#"
[[network.deny]]
id = "prod-by-name"
why = "stand-in for the production API"
hosts = ["localhost"]
ports = [{p}]

[[network.deny]]
id = "prod-udp"
why = "stand-in for a production UDP service"
cidrs = ["127.0.0.1/32"]
ports = [{u}]
protocols = ["udp"]
"#,
        p = prod.port,
        u = prod_udp.port
    );
    let ws = Workspace::new("net", &policy);
    let ev = ws.path("events.jsonl");
    let (p, u, a) = (prod.port, prod_udp.port, allowed.port);
    let probe = probe.display();
    let probe_static = probe_static.display();
    let script = format!(
        r#"
try() {{ name=$1; shift; if "$@" >/dev/null 2>&1; then echo "REACHED $name"; else echo "BLOCKED $name"; fi; }}
try curl-ip    curl -sS -m 3 http://127.0.0.1:{p}/
try curl-name  curl -sS -m 3 http://localhost:{p}/
try curl-v6map curl -sS -m 3 -g 'http://[::ffff:127.0.0.1]:{p}/'
try python-v4  /usr/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", {p}), 3)'
try python-v6map /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.settimeout(3); s.connect(("::ffff:127.0.0.1", {p}))'
try nc         nc -z -w 3 127.0.0.1 {p}
try static-v4  {probe_static} tcp4 127.0.0.1 {p}
try static-v6map {probe_static} tcp6 ::ffff:127.0.0.1 {p}
try udp        {probe} udp4 127.0.0.1 {u}
try udp-static {probe_static} udp4 127.0.0.1 {u}
try udp-python /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", {u}))'
try allowed    {probe_static} tcp4 127.0.0.2 {a}
try allowed-curl curl -sS -m 3 -o /dev/null http://127.0.0.2:{a}/
"#
    );
    let out = ws.run(
        &["--trust-policy", "--events", ev.to_str().unwrap()],
        &script,
    );
    let so = stdout(&out);
    assert!(out.status.success(), "{so}\n{}", stderr(&out));
    for name in [
        "curl-ip",
        "curl-name",
        "curl-v6map",
        "python-v4",
        "python-v6map",
        "nc",
        "static-v4",
        "static-v6map",
        "udp",
        "udp-static",
        "udp-python",
    ] {
        assert!(
            so.contains(&format!("BLOCKED {name}\n")),
            "{name} was not blocked:\n{so}\n{}",
            stderr(&out)
        );
    }
    assert!(so.contains("REACHED allowed\n"), "{so}");
    // The effect, not the message: production saw nothing, the allowed server did.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        prod.count(),
        0,
        "the production stand-in accepted a connection"
    );
    assert_eq!(
        prod_udp.count(),
        0,
        "the production UDP stand-in got a datagram"
    );
    assert!(allowed.count() >= 2, "the allowed endpoint was not reached");

    // Every refusal names its rule.
    let events = read_events(&ev);
    let refused = of_kind(&events, "net_refused");
    assert!(refused.len() >= 11, "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|e| e["fields"]["rule"] == "prod-by-name" && e["fields"]["port"] == p)
    );
    assert!(
        refused
            .iter()
            .any(|e| e["fields"]["rule"] == "prod-udp" && e["fields"]["protocol"] == "udp")
    );
    assert!(stderr(&out).contains("rule prod-by-name: stand-in for the production API"));

    // Outside the session the same destinations work.
    let before = prod.count();
    std::net::TcpStream::connect(("127.0.0.1", p)).expect("outside connect");
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"x", ("127.0.0.1", u))
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || prod.count() > before
        && prod_udp.count() > 0));
}

#[test]
fn credential_files_are_unreadable_every_way() {
    require_root();
    let (probe, probe_static) = probes();
    let policy = r#"
[[files.deny_read]]
id = "test-cred"
why = "stand-in credential file"
paths = ["secrets/cred.txt"]

[[files.deny_read]]
id = "test-cred-dir"
why = "stand-in credential directory"
paths = ["creds/**"]
"#;
    let ws = Workspace::new("files", policy);
    let secret = "s3cr3t-value-do-not-leak";
    for (dir, file) in [("secrets", "cred.txt"), ("creds", "config")] {
        fs::create_dir_all(ws.path(dir)).unwrap();
        fs::write(ws.path(&format!("{dir}/{file}")), format!("{secret}\n")).unwrap();
        for p in [ws.path(dir), ws.path(&format!("{dir}/{file}"))] {
            std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
    fs::write(ws.path("public.txt"), "public\n").unwrap();
    let cred = ws.path("secrets/cred.txt");
    let ev = ws.path("events.jsonl");
    let probe = probe.display();
    let probe_static = probe_static.display();
    let late = ws.path("creds/late.txt");
    let go = ws.path("go");
    // Every way of reading runs twice: on the protected file, and on an unprotected control
    // copy, which must be read, so a method that fails for another reason cannot pass.
    fs::create_dir_all(ws.path("open")).unwrap();
    fs::write(ws.path("open/cred.txt"), "control-content\n").unwrap();
    std::os::unix::fs::chown(ws.path("open"), Some(NOBODY), Some(NOBODY)).unwrap();
    std::os::unix::fs::chown(ws.path("open/cred.txt"), Some(NOBODY), Some(NOBODY)).unwrap();
    let methods: &[(&str, &str)] = &[
        ("cat", "cat {D}/cred.txt"),
        (
            "cp",
            "sh -c 'cp {D}/cred.txt /tmp/agent-sandbox-e2e-copy.$$ && cat /tmp/agent-sandbox-e2e-copy.$$; rm -f /tmp/agent-sandbox-e2e-copy.$$'",
        ),
        (
            "python",
            "/usr/bin/python3 -c 'print(open(\"{D}/cred.txt\").read())'",
        ),
        // diff exits 1 when the files differ, which they do when git could read the file
        (
            "git",
            "sh -c 'git --no-pager diff --no-index /dev/null {D}/cred.txt; [ $? -eq 1 ]'",
        ),
        (
            "symlink",
            "sh -c 'ln -sf \"$PWD/{D}/cred.txt\" {D}-link && cat {D}-link'",
        ),
        (
            "hardlink",
            "sh -c 'ln -f {D}/cred.txt {D}-hard && cat {D}-hard'",
        ),
        ("proc-root", "cat /proc/self/root{W}/{D}/cred.txt"),
        ("dotdot", "cat {D}/../{D}/./cred.txt"),
        ("openat", "{probe} openat {D} cred.txt"),
        ("o_path", "{probe} opath {D}/cred.txt"),
        ("io_uring", "{probe} uring {D}/cred.txt"),
        ("static", "{probe_static} read {D}/cred.txt"),
    ];
    let mut script = String::from(
        "try() { name=$1; shift; if out=$(eval \"$@\" 2>/dev/null) && [ -n \"$out\" ]; then echo \"READ $name: $out\"; else echo \"BLOCKED $name\"; fi; }\n",
    );
    let wsdir = ws.scratch.dir.display().to_string();
    for (name, tmpl) in methods {
        for (suffix, dir) in [("", "secrets"), ("-control", "open")] {
            let cmd = tmpl
                .replace("{D}", dir)
                .replace("{W}", &wsdir)
                .replace("{probe}", &probe.to_string())
                .replace("{probe_static}", &probe_static.to_string());
            script.push_str(&format!("try {name}{suffix} {}\n", shell_quote(&cmd)));
        }
    }
    script.push_str(&format!(
        "try dir-file 'cat creds/config'\nwhile [ ! -e {go} ]; do sleep 0.05; done\ntry late-file 'cat creds/late.txt'\ntry public 'cat public.txt'\n",
        go = go.display()
    ));
    let mut cmd = sandbox(
        &[
            "--user",
            "nobody",
            "--state-dir",
            ws.state.to_str().unwrap(),
            "--trust-policy",
            "--events",
            ev.to_str().unwrap(),
        ],
        &[
            "/bin/bash",
            script_file(&ws.scratch.dir, &script).to_str().unwrap(),
        ],
    );
    cmd.current_dir(&ws.scratch.dir);
    let child = spawn(cmd);
    // A file created in a protected directory during the session is protected too.
    std::thread::sleep(Duration::from_millis(1500));
    fs::write(&late, format!("{secret}\n")).unwrap();
    fs::set_permissions(&late, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&go, "").unwrap();
    let out = wait_output(child, LONG);
    let so = stdout(&out);
    assert!(out.status.success(), "{so}\n{}", stderr(&out));
    assert!(!so.contains(secret), "the secret leaked:\n{so}");
    for (name, _) in methods {
        assert!(
            so.contains(&format!("BLOCKED {name}\n")),
            "{name}:\n{so}\n{}",
            stderr(&out)
        );
        assert!(
            so.contains(&format!("READ {name}-control: ")),
            "the control of {name} failed, so its refusal proves nothing:\n{so}\n{}",
            stderr(&out)
        );
    }
    for name in ["dir-file", "late-file"] {
        assert!(so.contains(&format!("BLOCKED {name}\n")), "{name}:\n{so}");
    }
    assert!(so.contains("READ public: public"), "{so}");

    // Readable outside the session, by the same user.
    let outside = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&cred)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&outside.stdout).contains(secret));

    let events = read_events(&ev);
    let refused = of_kind(&events, "file_refused");
    assert!(
        refused.iter().any(|e| e["fields"]["rule"] == "test-cred"),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|e| e["fields"]["rule"] == "test-cred-dir"),
        "{refused:?}"
    );
}

#[test]
fn policy_and_sandbox_files_cannot_be_read_or_written_from_inside() {
    require_root();
    let ws = Workspace::new("self", "[approval]\ntimeout_secs = 60\n");
    // The agent's user owns the file: only the sandbox stands between it and the file.
    std::os::unix::fs::chown(ws.path("policy.toml"), Some(NOBODY), Some(NOBODY)).unwrap();
    let out = ws.run(
        &["--trust-policy"],
        "echo '[network]' >> policy.toml && echo WROTE; cat policy.toml >/dev/null && echo READ; true",
    );
    let so = stdout(&out);
    assert!(!so.contains("WROTE") && !so.contains("READ"), "{so}");
    assert_eq!(
        fs::read_to_string(ws.path("policy.toml")).unwrap(),
        "[approval]\ntimeout_secs = 60\n"
    );
    assert!(
        stderr(&out).contains("agent-sandbox-self"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_repository_policy_may_only_tighten() {
    require_root();
    let ws = Workspace::new(
        "loosen",
        r#"disable = ["cloud-metadata"]

[[exec.rule]]
id = "allow-everything"
action = "allow"
match = "rm -rf *"
"#,
    );
    let out = ws.run(&["--trust-policy"], "touch ran");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        !ws.path("ran").exists(),
        "the agent ran under a loosening policy"
    );
    let err = stderr(&out);
    assert!(err.contains("policy.toml:1:"), "{err}");
    assert!(err.contains("cloud-metadata"), "{err}");
    assert!(err.contains("allow-everything"), "{err}");
}

#[test]
fn a_changed_policy_is_not_used_until_trusted() {
    require_root();
    let ws = Workspace::new("trust", "[approval]\ntimeout_secs = 120\n");
    // New policy, no terminal, no flag: refuses, runs nothing.
    let out = ws.run(&[], "touch ran");
    assert_eq!(out.status.code(), Some(125));
    assert!(!ws.path("ran").exists());
    assert!(stderr(&out).contains("--trust-policy"), "{}", stderr(&out));
    // Trusted with the flag: runs.
    let out = ws.run(&["--trust-policy"], "touch ran");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ws.path("ran").exists());
    fs::remove_file(ws.path("ran")).unwrap();
    // Unchanged: runs without the flag.
    let out = ws.run(&[], "touch ran");
    assert!(out.status.success(), "{}", stderr(&out));
    fs::remove_file(ws.path("ran")).unwrap();
    // Changed: refused again until trusted, and the refusal says it changed.
    fs::write(
        ws.path("policy.toml"),
        "[approval]\ntimeout_secs = 120\n\n[[files.deny_read]]\nid = \"x\"\npaths = [\"x\"]\n",
    )
    .unwrap();
    let out = ws.run(&[], "touch ran");
    assert_eq!(out.status.code(), Some(125));
    assert!(!ws.path("ran").exists());
    assert!(stderr(&out).contains("changed"), "{}", stderr(&out));
}

#[test]
fn policy_check_reports_line_and_column() {
    require_root();
    let s = Scratch::new("check");
    let bad = s.path("bad.toml");
    fs::write(
        &bad,
        "[files]\n[[files.deny_reed]]\nid = \"a\"\n\n[[network.deny]]\nid = \"b\"\ncidrs = [\"10.0.0.0/33\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("bad.toml:2:"), "{err}");
    assert!(err.contains("did you mean \"deny_read\""), "{err}");
    assert!(err.contains("bad.toml:7:"), "{err}");
    let syntax = s.path("syntax.toml");
    fs::write(&syntax, "[network\ndefault = \"allow\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["policy", "check"])
        .arg(&syntax)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("syntax.toml:1:"), "{}", stderr(&out));
}

/// A GitHub-token-shaped value made at run time (so this file itself holds no secret).
fn fake_github_token() -> String {
    let mut x: u64 = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let body: String = (0..36)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect();
    format!("{}_{body}", "ghp")
}

#[test]
fn secrets_in_the_workspace_and_environment_are_out_of_reach() {
    require_root();
    let ws = Workspace::new("secrets", "[approval]\ntimeout_secs = 60\n");
    let token = fake_github_token();
    let nested = ws.path("services/billing/config");
    fs::create_dir_all(&nested).unwrap();
    let planted = nested.join("deploy.yml");
    fs::write(&planted, format!("deploy:\n  github_token: {token}\n")).unwrap();
    fs::write(nested.join("plain.yml"), "deploy:\n  replicas: 2\n").unwrap();
    for p in [
        ws.path("services"),
        ws.path("services/billing"),
        nested.clone(),
    ] {
        std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    for f in [&planted, &nested.join("plain.yml")] {
        std::os::unix::fs::chown(f, Some(NOBODY), Some(NOBODY)).unwrap();
    }

    // `agent-sandbox scan` finds it, redacted.
    let scan = Command::new(BIN)
        .arg("scan")
        .arg(&ws.scratch.dir)
        .output()
        .unwrap();
    assert_eq!(scan.status.code(), Some(1));
    let listing = stdout(&scan);
    assert!(
        listing.contains("services/billing/config/deploy.yml:2:"),
        "{listing}"
    );
    assert!(
        !listing.contains(&token),
        "the scan printed the secret: {listing}"
    );

    let mut cmd = sandbox(
        &[
            "--user",
            "nobody",
            "--state-dir",
            ws.state.to_str().unwrap(),
            "--trust-policy",
        ],
        &[
            "/bin/bash",
            "-c",
            "cat services/billing/config/deploy.yml && echo READ-PLANTED; \
             cat services/billing/config/plain.yml >/dev/null && echo READ-PLAIN; \
             echo \"env:${GITHUB_TOKEN:-gone}:${EDITOR:-unset}\"",
        ],
    );
    cmd.current_dir(&ws.scratch.dir)
        .env("GITHUB_TOKEN", &token)
        .env("EDITOR", "vi");
    let out = run_with_deadline(cmd, LONG);
    let so = stdout(&out);
    let se = stderr(&out);
    assert!(out.status.success(), "{so}\n{se}");
    assert!(!so.contains(&token), "the secret leaked:\n{so}");
    assert!(!so.contains("READ-PLANTED"), "{so}\n{se}");
    assert!(so.contains("READ-PLAIN"), "{so}\n{se}");
    assert!(so.contains("env:gone:vi"), "{so}\n{se}");
    assert!(se.contains("removed GITHUB_TOKEN"), "{se}");
    assert!(se.contains("rule workspace-secrets"), "{se}");
}

#[test]
fn allow_list_mode_refuses_everything_not_allowed() {
    require_root();
    let (_, probe_static) = probes();
    let elsewhere = Counter::tcp("127.0.0.1");
    let allowed = Counter::tcp("127.0.0.2");
    let policy = format!(
        r#"
[network]
default = "deny"

[[network.allow]]
id = "dev-server"
why = "the one service this repository talks to"
cidrs = ["127.0.0.2/32"]
ports = [{a}]
"#,
        a = allowed.port
    );
    let ws = Workspace::new("allowlist", &policy);
    let ev = ws.path("events.jsonl");
    let p = probe_static.display();
    let script = format!(
        "{p} tcp4 127.0.0.2 {a}; {p} tcp4 127.0.0.1 {e}; {p} udp4 127.0.0.1 {e}; true",
        a = allowed.port,
        e = elsewhere.port
    );
    let out = ws.run(
        &["--trust-policy", "--events", ev.to_str().unwrap()],
        &script,
    );
    let so = stdout(&out);
    assert!(out.status.success(), "{so}\n{}", stderr(&out));
    assert_eq!(
        so.lines().collect::<Vec<_>>(),
        ["OK connect", "ERR EPERM connect", "ERR EPERM sendto"],
        "{}",
        stderr(&out)
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(elsewhere.count(), 0);
    assert!(allowed.count() >= 1);
    let events = read_events(&ev);
    assert!(
        of_kind(&events, "net_refused")
            .iter()
            .all(|e| e["fields"]["rule"] == "network.default"),
        "{events:?}"
    );
}

/// The trust prompt in a real terminal (a tmux pane): a new repository policy is shown whole
/// and nothing runs until the human types `y`; a changed one is shown as a diff against the
/// trusted version, and `n` runs nothing.
#[test]
fn the_trust_prompt_shows_the_policy_or_its_diff_and_asks() {
    require_root();
    let ws = Workspace::new("trust-tty", "[approval]\ntimeout_secs = 120\n");
    let script = script_file(&ws.scratch.dir, "touch ran\n");
    let cmd = format!(
        "cd {dir} && {BIN} run --user nobody --state-dir {state} -- /bin/bash {script}; \
         echo exit=$?; sleep 600",
        dir = shell_quote(ws.scratch.dir.to_str().unwrap()),
        state = shell_quote(ws.state.to_str().unwrap()),
        script = shell_quote(script.to_str().unwrap()),
    );
    let name = |n| format!("trust-{}-{n}", std::process::id());

    let t = Tmux::start(&name(1), &cmd);
    t.wait_for("Trust this policy for runs in this repository? [y/N]");
    let screen = t.screen();
    assert!(screen.contains("never trusted"), "{screen}");
    assert!(
        screen.contains("timeout_secs = 120"),
        "the policy is shown:\n{screen}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!ws.path("ran").exists(), "ran before the human answered");
    t.keys(&["y", "Enter"]);
    t.wait_for("exit=0");
    assert!(ws.path("ran").exists(), "{}", t.screen());
    drop(t);

    fs::remove_file(ws.path("ran")).unwrap();
    fs::write(ws.path("policy.toml"), "[approval]\ntimeout_secs = 60\n").unwrap();
    let t = Tmux::start(&name(2), &cmd);
    t.wait_for("[y/N]");
    let screen = t.screen();
    assert!(
        screen.contains("changed since it was last trusted"),
        "{screen}"
    );
    assert!(
        screen.contains("-timeout_secs = 120") && screen.contains("+timeout_secs = 60"),
        "the change is shown as a diff:\n{screen}"
    );
    t.keys(&["n", "Enter"]);
    t.wait_for("exit=125");
    assert!(t.screen().contains("was not trusted"), "{}", t.screen());
    assert!(!ws.path("ran").exists(), "ran although the human said no");
}

/// A wildcard rule covers the names under it that the supervisor resolves. The names come
/// from a hosts file of the test's own, bind-mounted over /etc/hosts in a private mount
/// namespace (the machine's file is untouched). `db.prod.test` is named by an exact rule, so
/// the supervisor resolves it, and the wildcard's port is then refused for its address too,
/// by name and by IP; another port of the same address still works.
#[test]
fn a_wildcard_rule_covers_the_resolved_names_under_it() {
    require_root();
    let wild = Counter::tcp("127.0.0.7");
    let admin = Counter::tcp("127.0.0.7");
    let open = Counter::tcp("127.0.0.7");
    let policy = format!(
        r#"
[[network.deny]]
id = "prod-wild"
why = "every production host"
hosts = ["*.prod.test"]
ports = [{w}]

[[network.deny]]
id = "prod-db-admin"
hosts = ["db.prod.test"]
ports = [{a}]
"#,
        w = wild.port,
        a = admin.port
    );
    let ws = Workspace::new("wildcard", &policy);
    let hosts = ws.path("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.7 db.prod.test\n").unwrap();
    let ev = ws.path("events.jsonl");
    let (w, a, o) = (wild.port, admin.port, open.port);
    let script = script_file(
        &ws.scratch.dir,
        &format!(
            r#"
try() {{ name=$1; shift; if "$@" >/dev/null 2>&1; then echo "REACHED $name"; else echo "BLOCKED $name"; fi; }}
tcp() {{ timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2"; }}
try wild-name  tcp db.prod.test {w}
try wild-ip    tcp 127.0.0.7 {w}
try admin-name tcp db.prod.test {a}
try open-name  tcp db.prod.test {o}
"#
        ),
    );
    let mut cmd = ws.run_with_own_files(&[(&hosts, "/etc/hosts")]);
    cmd.arg("--events")
        .arg(&ev)
        .args(["--", "/bin/bash"])
        .arg(&script);
    let out = run_with_deadline(cmd, LONG);
    let so = stdout(&out);
    assert!(out.status.success(), "{so}\n{}", stderr(&out));
    for name in ["wild-name", "wild-ip", "admin-name"] {
        assert!(
            so.contains(&format!("BLOCKED {name}\n")),
            "{name}:\n{so}\n{}",
            stderr(&out)
        );
    }
    assert!(
        so.contains("REACHED open-name\n"),
        "name resolution works: {so}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(wild.count(), 0, "the wildcard's port was reached");
    assert_eq!(admin.count(), 0, "the exact rule's port was reached");
    assert!(open.count() >= 1);
    let events = read_events(&ev);
    let refused = of_kind(&events, "net_refused");
    assert!(
        refused
            .iter()
            .any(|e| e["fields"]["rule"] == "prod-wild" && e["fields"]["port"] == w),
        "{refused:?}"
    );
}

/// A DNS server that never answers does not hold the session's start: the names are looked
/// up in parallel, the start waits a bounded time, the unanswered name is reported and the
/// agent runs. The resolver is the test's own (a silent UDP socket on 127.0.0.77:53 named by a
/// resolv.conf bind-mounted in a private mount namespace; /etc/hosts knows neither name).
#[test]
fn a_silent_dns_server_is_reported_and_does_not_hold_the_start() {
    require_root();
    let silent = UdpSocket::bind("127.0.0.77:53").expect("bind 127.0.0.77:53 for the silent DNS");
    let policy = r#"
[[network.deny]]
id = "prod-a"
hosts = ["a.silent.test"]

[[network.deny]]
id = "prod-b"
hosts = ["b.silent.test"]
"#;
    let ws = Workspace::new("silent-dns", policy);
    let resolv = ws.path("resolv.conf");
    fs::write(
        &resolv,
        "nameserver 127.0.0.77\noptions timeout:5 attempts:2\n",
    )
    .unwrap();
    let hosts = ws.path("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let script = script_file(&ws.scratch.dir, "touch ran\n");
    let mut cmd = ws.run_with_own_files(&[(&resolv, "/etc/resolv.conf"), (&hosts, "/etc/hosts")]);
    cmd.args(["--", "/bin/bash"]).arg(&script);
    let out = run_with_deadline(cmd, LONG);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(ws.path("ran").exists(), "the agent did not run:\n{err}");
    for (rule, host) in [("prod-a", "a.silent.test"), ("prod-b", "b.silent.test")] {
        assert!(
            err.contains(&format!(
                "network rule {rule}: {host} did not resolve (no answer within 3000 ms)"
            )),
            "{err}"
        );
    }
    // The resolver really was asked (and kept silent).
    let mut buf = [0u8; 512];
    silent
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(
        silent.recv(&mut buf).is_ok(),
        "no DNS query reached the silent server"
    );
}
