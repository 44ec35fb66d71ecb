//! The gate: what the supervisor answers to each seccomp notification.
//!
//! An `execve` is classified by the destructive-command detector (built-in packs plus the
//! policy's `[[exec.rule]]`s); a deletion, rename or truncating open is checked against the
//! policy's `[[files.protect]]` globs. What is allowed is answered at once on the gate's own
//! thread, so the agent's ordinary execs never wait for anything else. A `deny` is refused at
//! once with EPERM and a line on the process's stderr; an `ask` is handed to the
//! [`crate::approval`] broker and the task stays held in the kernel until a human (or the
//! timeout) decides.
//!
//! Limits: the task's memory is read before the decision and the kernel reads it again when
//! the call proceeds (`seccomp_unotify(2)`); another thread of the same process could change
//! the arguments in between. The eBPF exec record shows what actually ran.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use agent_sandbox_tui::proto::{Ancestor, Held, HeldKind};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use tokio::sync::mpsc::UnboundedSender;

use crate::detect::{self, CommandContext, Detector};
use crate::policy::{EffectivePolicy, ProtectAction};
use crate::seccomp::{self, Listener, Notif};

/// Bounds on what is read from a task's memory per exec (the kernel's own limits are larger:
/// a command over these is held for a human rather than classified on a part of it).
const MAX_ARGS: usize = 32 * 1024;
/// Total bytes of argv (and of the environment, when read).
const MAX_ARG_BYTES: usize = 4 * 1024 * 1024;
/// One path.
const MAX_PATH: usize = 4096;
/// Ancestry shown for a held action.
const MAX_ANCESTRY: usize = 16;

/// The rule that keeps the session from deleting, renaming or truncating the sandbox's own
/// files (the state directory, the policy files, the events file).
pub const SELF_RULE: &str = "sandbox.self";
/// The rule that refuses loading eBPF programs, kernel modules and kernels.
pub const KERNEL_RULE: &str = "sandbox.kernel";

/// One `[[files.protect]]` rule, compiled.
struct ProtectRule {
    id: String,
    why: String,
    action: ProtectAction,
    origin: String,
    set: GlobSet,
    /// The literal directories the globs start from: deleting or renaming one of them (or an
    /// ancestor) takes the protected files with it.
    bases: Vec<PathBuf>,
}

/// The policy's protected paths.
pub struct Protect {
    rules: Vec<ProtectRule>,
}

/// Why the protected paths could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("files.protect rule {rule}: glob {glob}: {source}")]
pub struct ProtectError {
    rule: String,
    glob: String,
    #[source]
    source: globset::Error,
}

impl Protect {
    /// Compiles the effective policy's `[[files.protect]]` rules.
    pub fn from_policy(policy: &EffectivePolicy) -> Result<Protect, ProtectError> {
        let mut rules = Vec::new();
        for r in &policy.protect {
            let mut b = GlobSetBuilder::new();
            let mut bases = Vec::new();
            for g in &r.paths {
                let glob = policy.resolve(g);
                let compiled = GlobBuilder::new(&glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| ProtectError {
                        rule: r.meta.id.clone(),
                        glob: glob.clone(),
                        source,
                    })?;
                b.add(compiled);
                bases.push(crate::fanotify::literal_base(&glob).0);
            }
            rules.push(ProtectRule {
                id: r.meta.id.clone(),
                why: r.meta.why.clone().unwrap_or_default(),
                action: r.action,
                origin: r.meta.origin.to_string(),
                set: b.build().map_err(|source| ProtectError {
                    rule: r.meta.id.clone(),
                    glob: String::new(),
                    source,
                })?,
                bases,
            });
        }
        Ok(Protect { rules })
    }

    /// Adds the sandbox's own files and directories (absolute paths) as a deny rule checked
    /// before every other: deleting, renaming or truncating them is refused and recorded.
    /// The directories' whole trees are covered, and so are their ancestors (a rename or
    /// rmdir of one would take them along).
    pub fn guard_own(&mut self, paths: &[PathBuf]) -> Result<(), ProtectError> {
        let mut b = GlobSetBuilder::new();
        let mut bases = Vec::new();
        for p in paths {
            let p = canonical_or_given(p);
            let literal = crate::policy::escape_glob(&p.to_string_lossy());
            let mut globs = vec![literal.clone()];
            if p.is_dir() {
                globs.push(format!("{literal}/**"));
            }
            for glob in globs {
                let compiled = GlobBuilder::new(&glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| ProtectError {
                        rule: SELF_RULE.into(),
                        glob: glob.clone(),
                        source,
                    })?;
                b.add(compiled);
            }
            bases.push(p);
        }
        let set = b.build().map_err(|source| ProtectError {
            rule: SELF_RULE.into(),
            glob: String::new(),
            source,
        })?;
        self.rules.insert(
            0,
            ProtectRule {
                id: SELF_RULE.into(),
                why: "the sandbox's own state, policy and records are out of the session's \
                      reach"
                    .into(),
                action: ProtectAction::Deny,
                origin: "agent-sandbox".into(),
                set,
                bases,
            },
        );
        Ok(())
    }

    /// The roots of the protected trees (the sandbox's own files excepted: deletions there
    /// are refused, never counted).
    pub fn roots(&self) -> Vec<PathBuf> {
        self.rules
            .iter()
            .filter(|r| r.id != SELF_RULE)
            .flat_map(|r| r.bases.clone())
            .collect()
    }

    /// Whether any rule exists (otherwise the filter leaves path calls in the kernel).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule protecting `path`: a glob matches it, or (`whole_tree`: rmdir, rename)
    /// it is one of the protected trees' roots or an ancestor of one.
    fn check(&self, path: &Path, whole_tree: bool) -> Option<usize> {
        self.rules.iter().position(|r| {
            r.set.is_match(path) || (whole_tree && r.bases.iter().any(|b| b.starts_with(path)))
        })
    }
}

/// A process, identified safely against pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcKey {
    /// Thread-group id.
    pub tgid: u32,
    /// Start time in clock ticks after boot (`/proc/PID/stat` field 22).
    pub start: u64,
}

/// What a decided hold leaves behind for the process that made it.
#[derive(Debug, Clone)]
enum Grant {
    /// An approved command: it and what it starts run without further holds.
    Everything,
    /// An approved or refused deletion: later calls under the same rule get the same answer.
    Rule { rule: String, allow: bool },
}

/// State the gate thread and the broker share.
#[derive(Default)]
pub struct Shared {
    /// Rules a human allowed for the rest of the session.
    session_allowed: HashSet<String>,
    grants: HashMap<ProcKey, Vec<Grant>>,
    /// The processes and threads waiting for a decision, by held action id.
    held: HashMap<u64, Vec<u32>>,
}

impl Shared {
    /// Notes that held action `id` keeps these processes (or threads) waiting.
    pub fn set_held(&mut self, id: u64, pids: Vec<u32>) {
        self.held.insert(id, pids);
    }

    /// Held action `id` was decided.
    pub fn clear_held(&mut self, id: u64) {
        self.held.remove(&id);
    }

    /// Whether a held action keeps process or thread `pid` waiting.
    pub fn is_held(&self, pid: u32) -> bool {
        self.held.values().any(|p| p.contains(&pid))
    }

    /// Allows `rule` for the rest of the session.
    pub fn allow_rule(&mut self, rule: &str) {
        self.session_allowed.insert(rule.to_string());
    }

    /// Whether `rule` was allowed for the rest of the session.
    pub fn is_allowed(&self, rule: &str) -> bool {
        self.session_allowed.contains(rule)
    }

    /// Records the decision for a held action of `proc`.
    pub fn grant(&mut self, proc: ProcKey, kind: HeldKind, rule: &str, allow: bool) {
        let g = match kind {
            HeldKind::Exec if allow => Grant::Everything,
            HeldKind::Exec | HeldKind::MassDelete => return,
            _ => Grant::Rule {
                rule: rule.to_string(),
                allow,
            },
        };
        self.grants.entry(proc).or_default().push(g);
    }

    /// Forgets grants of processes that no longer exist.
    fn prune(&mut self) {
        self.grants
            .retain(|k, _| proc_key(k.tgid).as_ref() == Some(k));
    }

    /// The standing answer for `rule` in the process chain `chain` (the process first), if any.
    fn standing(&self, chain: &[ProcKey], rule: &str) -> Option<bool> {
        if self.session_allowed.contains(rule) {
            return Some(true);
        }
        for (depth, k) in chain.iter().enumerate() {
            for g in self.grants.get(k).into_iter().flatten() {
                match g {
                    Grant::Everything => return Some(true),
                    // A deletion grant is the process's own, not its children's.
                    Grant::Rule { rule: r, allow } if depth == 0 && r == rule => {
                        return Some(*allow);
                    }
                    Grant::Rule { .. } => {}
                }
            }
        }
        None
    }
}

/// A held action, handed to the broker: what approvers are shown (`held`, whose id, time and
/// timeout the broker fills in) and how to answer it.
#[derive(Debug)]
pub struct HoldRequest {
    /// The notification to answer.
    pub notif: u64,
    /// The process.
    pub proc: ProcKey,
    /// The waiting thread.
    pub tid: u32,
    /// What approvers see.
    pub held: Held,
}

impl HoldRequest {
    /// A request for notification `n`; the process is filled in by [`Gate::decide`].
    fn new(n: &Notif, held: Held) -> Self {
        HoldRequest {
            notif: n.id,
            proc: ProcKey { tgid: 0, start: 0 },
            tid: n.pid,
            held,
        }
    }
}

/// What the gate tells the rest of the supervisor.
#[derive(Debug)]
pub enum GateMsg {
    /// Hold this for a human.
    Hold(Box<HoldRequest>),
    /// Refused at once by a deny rule (or because it could not be inspected): a record.
    Refused(serde_json::Value),
}

/// The gate's configuration and state, moved onto its thread by [`spawn`].
pub struct Gate {
    listener: Arc<Listener>,
    cfg: GateConfig,
    /// The supervisor's pid: where ancestry stops.
    supervisor: u32,
}

/// Locks the shared state; a panic elsewhere must not open the gate, so a poisoned lock is
/// still used (its data is only sets and maps).
pub fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gate {
    fn new(listener: Arc<Listener>, cfg: GateConfig) -> Gate {
        Gate {
            listener,
            cfg,
            supervisor: std::process::id(),
        }
    }

    /// Answers notifications until the tree is gone (the listener hangs up) or `stop` becomes
    /// readable. Runs on its own thread.
    pub fn run(self, stop: OwnedFd) {
        let mut handled: u64 = 0;
        loop {
            // SAFETY: the listener's fd stays open for the life of `self.listener`.
            let listener = unsafe { BorrowedFd::borrow_raw(self.listener.raw_fd()) };
            let revents = match crate::poll::either(listener, stop.as_fd()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("agent-sandbox: gate: poll: {e}");
                    return;
                }
            };
            if revents[1] != 0 {
                return;
            }
            if revents[0] & libc::POLLIN != 0 {
                match self.listener.recv() {
                    Ok(Some(n)) => self.handle(&n),
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("agent-sandbox: gate: receiving a notification: {e}");
                        return;
                    }
                }
                handled += 1;
                if handled.is_multiple_of(4096) {
                    lock(&self.cfg.shared).prune();
                }
            } else if revents[0] & (libc::POLLHUP | libc::POLLERR) != 0 {
                // Every process that had the filter is gone.
                return;
            }
        }
    }

    fn handle(&self, n: &Notif) {
        let result = if n.nr == libc::SYS_execve || n.nr == libc::SYS_execveat {
            self.on_exec(n)
        } else if seccomp::KERNEL_CALLS.contains(&n.nr) {
            self.on_kernel(n);
            Ok(())
        } else {
            self.on_path(n)
        };
        if let Err(e) = result {
            // The task's memory could not be read: the kernel would fail the call the same
            // way when it read the same pointers, so failing it here changes nothing for a
            // well-behaved program and never lets an unread call through.
            let errno = e.raw_os_error().unwrap_or(libc::EFAULT);
            let _ = self.listener.fail(n.id, errno);
        }
    }

    fn on_exec(&self, n: &Notif) -> io::Result<()> {
        // execveat's path is relative to its dirfd: shown as given, argv is what is judged.
        let (path, argv, envp) = if n.nr == libc::SYS_execve {
            (n.args[0], n.args[1], n.args[2])
        } else {
            (n.args[1], n.args[2], n.args[3])
        };
        let filename = lossy(seccomp::read_cstr(n.pid, path, MAX_PATH)?);
        let Some(argv) = read_strings(n.pid, argv)? else {
            return self.too_big(n, filename);
        };
        // The detector only needs the environment to expand `$VAR` in shell code.
        let env: Vec<(String, String)> = if argv.iter().any(|a| a.contains('$')) {
            match read_strings(n.pid, envp)? {
                Some(e) => e
                    .into_iter()
                    .filter_map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect(),
                None => return self.too_big(n, filename),
            }
        } else {
            Vec::new()
        };
        if !self.listener.id_valid(n.id) {
            return Ok(());
        }
        let argv = if argv.is_empty() {
            vec![filename.clone()]
        } else {
            argv
        };
        let dirfd = if n.nr == libc::SYS_execveat {
            n.args[0] as i32
        } else {
            libc::AT_FDCWD
        };
        let program = program_path(n.pid, dirfd, &filename);
        // The working directory costs a /proc lookup: read only when a rule needs it (a
        // relative deletion target, `cd`...), and then once for both classifications.
        let cwd_cell = std::cell::OnceCell::new();
        let cwd = || cwd_cell.get_or_init(|| proc_cwd(n.pid)).clone();
        let judge = |argv: &[String]| {
            self.cfg.detector.classify_deferring_cwd(
                &CommandContext {
                    argv,
                    cwd: Path::new(""),
                    env: &env,
                    workspace: Some(&self.cfg.workspace),
                    home: Some(&self.cfg.home),
                },
                cwd,
            )
        };
        let mut verdict = judge(&argv);
        // argv[0] is the caller's choice (`exec -a`, `os.execv`): when it names another program
        // than the one the kernel runs, the command is judged under both names.
        if base_name(&program) != base_name(&argv[0]) {
            let mut real = argv.clone();
            real[0] = program;
            let other = judge(&real);
            if (other.action, other.severity) > (verdict.action, verdict.severity) {
                verdict = other;
            }
        }
        if verdict.action == detect::Action::Allow {
            return self.listener.allow(n.id);
        }
        let cwd = cwd();
        let rule = verdict.rule_id.clone().unwrap_or_else(|| "exec".into());
        let origin = self
            .cfg
            .exec_origins
            .get(&rule)
            .cloned()
            .unwrap_or_else(|| "built-in detector rules".into());
        self.decide(
            n,
            HoldRequest::new(
                n,
                Held {
                    command: argv,
                    cwd: cwd.to_string_lossy().into_owned(),
                    paths: vec![filename],
                    severity: verdict.severity.map(|s| s.to_string()),
                    ..Held::pending(HeldKind::Exec, rule, verdict.explanation, origin)
                },
            ),
            verdict.action == detect::Action::Deny,
        )
    }

    /// An exec whose arguments exceed what the gate reads is held for a human.
    fn too_big(&self, n: &Notif, filename: String) -> io::Result<()> {
        let cwd = proc_cwd(n.pid);
        self.decide(
            n,
            HoldRequest::new(
                n,
                Held {
                    command: vec![filename.clone(), "…".into()],
                    cwd: cwd.to_string_lossy().into_owned(),
                    paths: vec![filename],
                    severity: Some("medium".into()),
                    ..Held::pending(
                        HeldKind::Exec,
                        "gate.too-long",
                        format!(
                            "the command's arguments exceed what the gate inspects ({MAX_ARGS} \
                             arguments, {} MiB): it could not be classified",
                            MAX_ARG_BYTES >> 20
                        ),
                        "agent-sandbox",
                    )
                },
            ),
            false,
        )
    }

    /// `bpf`, module or kexec loading: always refused, told and recorded. Nothing is read
    /// from the task's memory, so nothing can fail before the refusal.
    fn on_kernel(&self, n: &Notif) {
        let name = match n.nr {
            libc::SYS_bpf => "bpf",
            libc::SYS_init_module => "init_module",
            libc::SYS_finit_module => "finit_module",
            libc::SYS_delete_module => "delete_module",
            libc::SYS_kexec_load => "kexec_load",
            _ => "kexec_file_load",
        };
        let _ = self.listener.fail(n.id, libc::EPERM);
        tell(
            n.pid,
            &format!(
                "agent-sandbox: refused {name}: rule {KERNEL_RULE} (the session may not load code into the kernel)"
            ),
        );
        let chain = proc_chain(n.pid, self.supervisor);
        let pid = chain.first().map_or(n.pid, |k| k.tgid);
        let mut fields = serde_json::json!({
            "action": "kernel load",
            "syscall": name,
            "command": proc_cmdline(pid),
            "cwd": proc_cwd(pid),
            "rule": KERNEL_RULE,
            "why": "loading eBPF programs, kernel modules or kernels reaches the sandbox's own \
                    machinery",
            "origin": "agent-sandbox",
            "ancestry": chain.iter().skip(1).map(|k| k.tgid).collect::<Vec<_>>(),
            "errno": "EPERM",
            "tamper": true,
        });
        if n.nr == libc::SYS_bpf {
            fields["bpf_cmd"] = serde_json::json!(bpf_cmd_name(n.args[0]));
        }
        let _ = self.cfg.out.send(GateMsg::Refused(serde_json::json!({
            "kind": "gate_refused",
            "time": crate::session::now_rfc3339(),
            "pid": pid,
            "comm": proc_comm(pid),
            "fields": fields,
        })));
    }

    fn on_path(&self, n: &Notif) -> io::Result<()> {
        const CWD: i32 = libc::AT_FDCWD;
        let a = &n.args;
        let fd = |i: usize| a[i] as i32;
        // (dirfd, path pointer, whole tree matters, follow a final symlink)
        let (kind, targets): (HeldKind, Vec<(i32, u64, bool, bool)>) = match n.nr {
            libc::SYS_unlink => (HeldKind::Delete, vec![(CWD, a[0], false, false)]),
            libc::SYS_rmdir => (HeldKind::Delete, vec![(CWD, a[0], true, false)]),
            libc::SYS_unlinkat => {
                let dir = a[2] as i32 & libc::AT_REMOVEDIR != 0;
                (HeldKind::Delete, vec![(fd(0), a[1], dir, false)])
            }
            libc::SYS_rename => (
                HeldKind::Rename,
                vec![(CWD, a[0], true, false), (CWD, a[1], true, false)],
            ),
            libc::SYS_renameat | libc::SYS_renameat2 => (
                HeldKind::Rename,
                vec![(fd(0), a[1], true, false), (fd(2), a[3], true, false)],
            ),
            libc::SYS_creat | libc::SYS_truncate => {
                (HeldKind::Truncate, vec![(CWD, a[0], false, true)])
            }
            libc::SYS_open => (HeldKind::Truncate, vec![(CWD, a[0], false, true)]),
            libc::SYS_openat => (HeldKind::Truncate, vec![(fd(0), a[1], false, true)]),
            libc::SYS_openat2 => {
                let mut how = [0u8; 8];
                seccomp::read_mem(n.pid, a[2], &mut how)?;
                if u64::from_ne_bytes(how) & libc::O_TRUNC as u64 == 0 {
                    return self.listener.allow(n.id);
                }
                (HeldKind::Truncate, vec![(fd(0), a[1], false, true)])
            }
            _ => return self.listener.allow(n.id),
        };
        let mut paths = Vec::new();
        let mut hit = None;
        for (dirfd, ptr, tree, follow) in targets {
            let raw = seccomp::read_cstr(n.pid, ptr, MAX_PATH)?;
            let Some(p) = resolve(n.pid, dirfd, &raw, follow) else {
                // The call itself will fail (no such directory).
                continue;
            };
            if hit.is_none() {
                hit = self.cfg.protect.check(&p, tree);
            }
            paths.push(p.to_string_lossy().into_owned());
        }
        if !self.listener.id_valid(n.id) {
            return Ok(());
        }
        let Some(rule) = hit else {
            return self.listener.allow(n.id);
        };
        let r = &self.cfg.protect.rules[rule];
        let command = proc_cmdline(n.pid);
        self.decide(
            n,
            HoldRequest::new(
                n,
                Held {
                    command,
                    cwd: proc_cwd(n.pid).to_string_lossy().into_owned(),
                    paths,
                    ..Held::pending(kind, r.id.clone(), r.why.clone(), r.origin.clone())
                },
            ),
            r.action == ProtectAction::Deny,
        )
    }

    /// The slow path, for a call a rule flagged: standing answers first, then refuse or hold.
    fn decide(&self, n: &Notif, mut req: HoldRequest, deny: bool) -> io::Result<()> {
        let chain = proc_chain(n.pid, self.supervisor);
        let Some(&proc) = chain.first() else {
            // The process is gone.
            return Ok(());
        };
        req.proc = proc;
        req.held.pid = proc.tgid;
        if !deny {
            match lock(&self.cfg.shared).standing(&chain, &req.held.rule) {
                Some(true) => return self.listener.allow(n.id),
                Some(false) => {
                    tell(
                        n.pid,
                        &format!(
                            "agent-sandbox: refused {} {}: rule {} — a human denied this \
                             earlier for this process",
                            kind_word(req.held.kind),
                            shown(&req),
                            req.held.rule
                        ),
                    );
                    return self.listener.fail(n.id, libc::EPERM);
                }
                None => {}
            }
        }
        req.held.ancestry = chain
            .iter()
            .take(MAX_ANCESTRY)
            .map(|k| Ancestor {
                pid: k.tgid,
                cmdline: {
                    let c = proc_cmdline(k.tgid).join(" ");
                    if c.is_empty() { proc_comm(k.tgid) } else { c }
                },
            })
            .collect();
        if deny {
            tell(
                n.pid,
                &format!(
                    "agent-sandbox: refused {} {}: rule {}{}",
                    kind_word(req.held.kind),
                    shown(&req),
                    req.held.rule,
                    if req.held.why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", req.held.why)
                    }
                ),
            );
            let record = serde_json::json!({
                "kind": "gate_refused",
                "time": crate::session::now_rfc3339(),
                "pid": req.proc.tgid,
                "fields": {
                    "action": kind_word(req.held.kind),
                    "command": req.held.command,
                    "cwd": req.held.cwd,
                    "paths": req.held.paths,
                    "rule": req.held.rule,
                    "why": req.held.why,
                    "origin": req.held.origin,
                    "ancestry": req.held.ancestry.iter().map(|a| a.pid).collect::<Vec<_>>(),
                    "tamper": req.held.rule == SELF_RULE,
                },
            });
            let _ = self.cfg.out.send(GateMsg::Refused(record));
            return self.listener.fail(n.id, libc::EPERM);
        }
        if self.cfg.out.send(GateMsg::Hold(Box::new(req))).is_err() {
            // Nobody can decide any more: fail closed.
            return self.listener.fail(n.id, libc::EPERM);
        }
        Ok(())
    }
}

/// What the gate is built from (and keeps: detector, rules, shared state, output).
pub struct GateConfig {
    detector: Detector,
    protect: Protect,
    exec_origins: HashMap<String, String>,
    workspace: PathBuf,
    home: PathBuf,
    shared: Arc<Mutex<Shared>>,
    out: UnboundedSender<GateMsg>,
    /// The agent runs as root (see [`seccomp::Filter::gate_root`]).
    root_agent: bool,
}

impl GateConfig {
    /// Marks the agent as running as root: its filter refuses `clone3`.
    pub fn for_root_agent(mut self, root: bool) -> Self {
        self.root_agent = root;
        self
    }

    /// The seccomp filter the agent's first process installs for this gate.
    pub fn filter(&self) -> seccomp::Filter {
        if self.root_agent {
            seccomp::Filter::gate_root(self.gates_paths())
        } else {
            seccomp::Filter::gate(self.gates_paths())
        }
    }

    /// The gate for `policy`: `detector` classifies execs, `protect` gates path calls, holds
    /// and refusals go to `out`, standing decisions are read from `shared`.
    pub fn new(
        policy: &EffectivePolicy,
        detector: Detector,
        protect: Protect,
        shared: Arc<Mutex<Shared>>,
        out: UnboundedSender<GateMsg>,
    ) -> Self {
        GateConfig {
            detector,
            protect,
            exec_origins: policy
                .exec
                .iter()
                .map(|r| (r.meta.id.clone(), r.meta.origin.to_string()))
                .collect(),
            workspace: policy.workspace.clone(),
            home: policy.home.clone(),
            shared,
            out,
            root_agent: false,
        }
    }

    /// Whether path calls need to leave the kernel at all.
    pub fn gates_paths(&self) -> bool {
        !self.protect.is_empty()
    }
}

/// The listener, once the agent's first process has handed it over.
pub type ListenerCell = Arc<std::sync::OnceLock<Arc<Listener>>>;

/// Starts the gate on its own thread: it first receives the listener fd on `sock` (sent by
/// the agent's process before its exec), publishes it in `cell` for the broker, then answers
/// notifications. Writing to the returned eventfd stops it.
pub fn spawn(
    sock: OwnedFd,
    cfg: GateConfig,
    cell: ListenerCell,
) -> io::Result<(std::thread::JoinHandle<()>, OwnedFd)> {
    // SAFETY: eventfd returns a new descriptor or -1.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, owned here.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    let theirs = efd.try_clone()?;
    let handle = std::thread::Builder::new()
        .name("gate".into())
        .spawn(move || {
            let fd = match seccomp::recv_fd(&sock) {
                Ok(fd) => fd,
                // The agent's process failed before installing the filter: it reports why.
                Err(_) => return,
            };
            drop(sock);
            raise_priority();
            let listener = Arc::new(Listener::new(fd));
            let _ = cell.set(Arc::clone(&listener));
            Gate::new(listener, cfg).run(theirs)
        })?;
    Ok((handle, efd))
}

/// Gives the calling (gate) thread the highest nice level. Every exec of the tree waits for
/// this thread. At nice 0 the task it answers preempts it before it is back in `poll`. That
/// task then finds two runnable tasks on its CPU in `execve`'s `sched_exec` and migrates to an
/// idle one. On a small VM that costs two cross-CPU wakeups (about 100 µs per exec). At -20
/// the gate finishes first and the exec stays where it is. It stays a fair-class thread: it
/// runs only when a notification arrives, so it cannot starve the machine. Best effort: a
/// refusal (no CAP_SYS_NICE) costs only speed.
fn raise_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let tid = unsafe { libc::gettid() };
    // SAFETY: as above; PRIO_PROCESS with a thread id sets that thread's nice value.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -20) };
}

/// Wakes the gate thread so that it returns.
pub fn stop(efd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writing 8 bytes to an eventfd we own.
    unsafe { libc::write(efd.as_raw_fd(), (&raw const one).cast(), 8) };
}

/// The word for an action in messages.
pub fn kind_word(kind: HeldKind) -> &'static str {
    match kind {
        HeldKind::Exec => "exec of",
        HeldKind::Delete => "deletion of",
        HeldKind::Rename => "rename of",
        HeldKind::Truncate => "overwrite of",
        HeldKind::MassDelete => "mass deletion by",
    }
}

/// The command or path a message names.
pub fn shown(req: &HoldRequest) -> String {
    match req.held.kind {
        HeldKind::Exec => format!("`{}`", req.held.command.join(" ")),
        _ => req.held.paths.join(" -> "),
    }
}

/// Writes one line to the stderr of process `pid`, without blocking and only if its fd 2
/// was opened for writing (the descriptor itself is duplicated, never reopened by path: a
/// read-only fd 2 pointing at some file stays untouched).
pub fn tell(pid: u32, line: &str) {
    // SAFETY: pidfd_open/pidfd_getfd return new descriptors or -1; poll and write act on the
    // descriptor we own and a buffer we own.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0);
        if pidfd < 0 {
            return;
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), 2, 0);
        if fd < 0 {
            return;
        }
        let fd = OwnedFd::from_raw_fd(fd as i32);
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        if libc::poll(&mut p, 1, 0) != 1 || p.revents & libc::POLLOUT == 0 {
            return;
        }
        let mut msg = line.as_bytes().to_vec();
        msg.push(b'\n');
        libc::write(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len());
    }
}

/// The name of a `bpf(2)` command.
fn bpf_cmd_name(cmd: u64) -> String {
    const NAMES: [&str; 11] = [
        "BPF_MAP_CREATE",
        "BPF_MAP_LOOKUP_ELEM",
        "BPF_MAP_UPDATE_ELEM",
        "BPF_MAP_DELETE_ELEM",
        "BPF_MAP_GET_NEXT_KEY",
        "BPF_PROG_LOAD",
        "BPF_OBJ_PIN",
        "BPF_OBJ_GET",
        "BPF_PROG_ATTACH",
        "BPF_PROG_DETACH",
        "BPF_PROG_TEST_RUN",
    ];
    usize::try_from(cmd)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("command {cmd}"), |n| (*n).to_string())
}

/// `p` with its parent directory made canonical (the final component kept as it is), or `p`
/// itself when the parent does not exist.
fn canonical_or_given(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| p.to_path_buf()),
        _ => p.to_path_buf(),
    }
}

fn lossy(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The program an exec runs, as a path whose last component names it: the file behind a
/// descriptor for `fexecve` (`execveat` with an empty path) and `/proc/self/fd/N` or
/// `/dev/fd/N`, else the path as given. Symbolic links are not followed (a cost on every
/// exec); the kernel layers, not the detector, are what hold against a renamed binary.
fn program_path(pid: u32, dirfd: i32, filename: &str) -> String {
    let fd = if filename.is_empty() {
        Some(dirfd.to_string())
    } else {
        ["/proc/self/fd/", "/proc/thread-self/fd/", "/dev/fd/"]
            .iter()
            .find_map(|p| filename.strip_prefix(p))
            .map(str::to_string)
    };
    match fd.filter(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit())) {
        Some(fd) => std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| filename.to_string()),
        None => filename.to_string(),
    }
}

/// The last component of a path (the whole string when it has no `/`).
fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Reads a NULL-terminated string array (argv, envp) of `pid`; `None` when over the bounds.
fn read_strings(pid: u32, addr: u64) -> io::Result<Option<Vec<String>>> {
    let Some(ptrs) = seccomp::read_ptrs(pid, addr, MAX_ARGS)? else {
        return Ok(None);
    };
    let mut total = 0;
    let mut out = Vec::with_capacity(ptrs.len());
    for p in ptrs {
        let s = match seccomp::read_cstr(pid, p, MAX_ARG_BYTES - total) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
            Err(e) => return Err(e),
        };
        total += s.len() + 1;
        out.push(lossy(s));
    }
    Ok(Some(out))
}

/// Resolves a path argument as the kernel will: relative to `dirfd` or the cwd, through the
/// process's root; the parent directory canonical, the final component followed only when
/// `follow`. `None` when the parent does not exist.
fn resolve(pid: u32, dirfd: i32, raw: &[u8], follow: bool) -> Option<PathBuf> {
    if raw.is_empty() {
        return None;
    }
    let rel = PathBuf::from(OsString::from_vec(raw.to_vec()));
    let full = if rel.is_absolute() {
        PathBuf::from(format!("/proc/{pid}/root")).join(rel.strip_prefix("/").ok()?)
    } else if dirfd == libc::AT_FDCWD {
        PathBuf::from(format!("/proc/{pid}/cwd")).join(&rel)
    } else {
        PathBuf::from(format!("/proc/{pid}/fd/{dirfd}")).join(&rel)
    };
    let name = full.file_name().map(|n| n.to_os_string());
    match name {
        Some(name) if name != ".." => {
            let parent = std::fs::canonicalize(full.parent()?).ok()?;
            let p = parent.join(name);
            if follow {
                Some(std::fs::canonicalize(&p).unwrap_or(p))
            } else {
                Some(p)
            }
        }
        _ => std::fs::canonicalize(&full).ok(),
    }
}

/// `(tgid, start time)` of the process a thread belongs to.
fn proc_key(tid: u32) -> Option<ProcKey> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()?;
    let (_, start) = stat_fields(tgid)?;
    Some(ProcKey { tgid, start })
}

/// `(ppid, start time)` from `/proc/PID/stat` (after the parenthesised comm, which may hold
/// spaces and parentheses itself).
fn stat_fields(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state): ppid is field 4, starttime field 22.
    Some((f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// The process of thread `tid` and its ancestors, up to (not including) `stop` or init.
fn proc_chain(tid: u32, stop: u32) -> Vec<ProcKey> {
    let mut out = Vec::new();
    let Some(first) = proc_key(tid) else {
        return out;
    };
    let mut pid = first.tgid;
    out.push(first);
    while out.len() < 64 {
        let Some((ppid, _)) = stat_fields(pid) else {
            break;
        };
        if ppid <= 1 || ppid == stop {
            break;
        }
        let Some((_, start)) = stat_fields(ppid) else {
            break;
        };
        out.push(ProcKey { tgid: ppid, start });
        pid = ppid;
    }
    out
}

/// A process's working directory (`?` when it cannot be read).
pub(crate) fn proc_cwd(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_else(|_| PathBuf::from("?"))
}

/// A process's argv from /proc (empty when it cannot be read).
pub(crate) fn proc_cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn proc_comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_keys_and_chains_of_this_process() {
        let me = std::process::id();
        let k = proc_key(me).unwrap();
        assert_eq!(k.tgid, me);
        assert!(k.start > 0);
        let chain = proc_chain(me, 0);
        assert_eq!(chain.first(), Some(&k));
        assert!(chain.len() >= 2, "the test runner has a parent: {chain:?}");
    }

    #[test]
    fn grants_cover_descendants_only_for_approved_commands() {
        let (a, b) = (
            ProcKey { tgid: 10, start: 1 },
            ProcKey { tgid: 11, start: 2 },
        );
        let mut s = Shared::default();
        s.grant(a, HeldKind::Delete, "backups", false);
        assert_eq!(s.standing(&[a], "backups"), Some(false));
        assert_eq!(s.standing(&[b, a], "backups"), None, "not inherited");
        assert_eq!(s.standing(&[a], "other"), None);
        s.grant(a, HeldKind::Exec, "rm.recursive", true);
        assert_eq!(s.standing(&[b, a], "backups"), Some(true));
        s.allow_rule("x");
        assert_eq!(s.standing(&[], "x"), Some(true));
    }
}
