//! The broker: the queue of held actions, the decisions, the timeout, and the approval socket.
//!
//! Held actions come from the [`crate::gate`] thread (and from the mass-deletion detector).
//! Each gets an id, an audit record and a line on the supervisor's terminal, and waits until
//! a decision arrives on the approval socket (`attach`, `run --tui`, `decide`) or the policy's
//! timeout denies it. Holds are independent: deciding one never waits for another.
//!
//! The socket lives in `<state>/sessions/` (root, 0700) and refuses any peer inside the
//! session's cgroup, so nothing the agent starts can approve its own request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_sandbox_tui::proto::{
    self, Approver, Decision, Held, HeldKind, Reply, Request, Summary, Update,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use crate::cgroup;
use crate::gate::{self, GateMsg, HoldRequest, ListenerCell, Shared};

/// Longest request line accepted on the socket.
const MAX_LINE: usize = 64 * 1024;

/// Counters the event reader keeps for the summary approvers see.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events observed.
    pub events: AtomicU64,
    /// Connections refused by network rules.
    pub connections_refused: AtomicU64,
    /// Opens refused by file rules.
    pub files_refused: AtomicU64,
}

/// A request from a socket connection to the broker.
pub enum Cmd {
    /// Pending actions.
    List(oneshot::Sender<Reply>),
    /// A decision.
    Decide {
        /// Held action id (0: the tree, for freeze/thaw).
        id: u64,
        /// The decision.
        decision: Decision,
        /// Who decides.
        by: Approver,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// The state for a new subscriber.
    Snapshot(oneshot::Sender<Update>),
    /// The mass-deletion detector froze the tree.
    MassDelete {
        /// Processes that deleted, most first.
        pids: Vec<u32>,
        /// Deletions counted in the window.
        count: u64,
        /// Some of the deleted paths.
        sample: Vec<String>,
        /// The threshold's description, for the explanation.
        why: String,
    },
}

/// Fixed facts of the session the broker serves.
pub struct BrokerConfig {
    /// Session name (the cgroup's name).
    pub session: String,
    /// The agent's command line.
    pub command: Vec<String>,
    /// The session cgroup's directory.
    pub cgroup_dir: PathBuf,
    /// The session cgroup as `/proc/PID/cgroup` names it.
    pub cgroup_rel: String,
    /// How long a held action waits before it is denied.
    pub timeout: Duration,
    /// Whether to announce holds on the supervisor's stderr (not when the TUI owns it).
    pub announce: bool,
}

struct Pending {
    held: Held,
    req: Option<HoldRequest>,
    since: Instant,
    deadline: Instant,
    /// For a mass deletion: the processes that deleted.
    pids: Vec<u32>,
}

/// The broker; run it with [`Broker::run`].
pub struct Broker {
    cfg: BrokerConfig,
    listener: ListenerCell,
    shared: Arc<Mutex<Shared>>,
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    held: u64,
    allowed: u64,
    denied: u64,
    frozen: bool,
    frozen_at: Option<Instant>,
    updates: broadcast::Sender<Arc<Vec<u8>>>,
    records: UnboundedSender<serde_json::Value>,
    counters: Arc<Counters>,
}

impl Broker {
    /// A broker answering through the listener in `listener` (empty while the gate is off
    /// or the agent has not started).
    pub fn new(
        cfg: BrokerConfig,
        listener: ListenerCell,
        shared: Arc<Mutex<Shared>>,
        updates: broadcast::Sender<Arc<Vec<u8>>>,
        records: UnboundedSender<serde_json::Value>,
        counters: Arc<Counters>,
    ) -> Self {
        Broker {
            cfg,
            listener,
            shared,
            pending: BTreeMap::new(),
            next_id: 1,
            held: 0,
            allowed: 0,
            denied: 0,
            frozen: false,
            frozen_at: None,
            updates,
            records,
            counters,
        }
    }

    fn summary(&self) -> Summary {
        Summary {
            held: self.held,
            allowed: self.allowed,
            denied: self.denied,
            connections_refused: self.counters.connections_refused.load(Ordering::Relaxed),
            files_refused: self.counters.files_refused.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
            frozen: self.frozen,
        }
    }

    fn publish(&self, u: &Update) {
        // No subscriber is not an error.
        let _ = self.updates.send(Arc::new(proto::encode(u)));
    }

    fn record(&self, v: serde_json::Value) {
        let _ = self.records.send(v);
    }

    fn pending_list(&self) -> Vec<Held> {
        let now = Instant::now();
        self.pending
            .values()
            .map(|p| {
                let mut h = p.held.clone();
                h.timeout_secs = p.deadline.saturating_duration_since(now).as_secs();
                h
            })
            .collect()
    }

    /// Serves until `stop` fires; then every action still held is denied.
    pub async fn run(
        mut self,
        mut gate_rx: UnboundedReceiver<GateMsg>,
        mut cmds: UnboundedReceiver<Cmd>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let next = self
                .pending
                .values()
                .map(|p| p.deadline)
                .min()
                .filter(|_| !self.frozen);
            let sleep = async {
                match next {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = gate_rx.recv() => match msg {
                    Some(GateMsg::Hold(req)) => self.hold(*req),
                    Some(GateMsg::Refused(rec)) => {
                        self.denied += 1;
                        self.record(rec);
                        self.publish(&Update::Summary { summary: self.summary() });
                    }
                    None => {}
                },
                Some(cmd) = cmds.recv() => self.command(cmd),
                _ = sleep => self.expire(),
                _ = tick.tick() => self.withdraw_gone(),
                _ = &mut stop => break,
            }
        }
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            self.resolve(id, Decision::Deny, Approver::Supervisor);
        }
    }

    fn hold(&mut self, req: HoldRequest) {
        let held = req.held.clone();
        let shown = gate::shown(&req);
        self.open_hold(held, Some(req), Vec::new(), shown, json!({}));
    }

    /// Numbers a held action, tells approvers and the log, and queues it. `pids` are the
    /// processes a deny of a mass deletion kills; `extra` adds to the record's fields.
    fn open_hold(
        &mut self,
        mut held: Held,
        req: Option<HoldRequest>,
        pids: Vec<u32>,
        shown: String,
        extra: serde_json::Value,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        self.held += 1;
        held.id = id;
        held.since = crate::session::now_rfc3339();
        held.timeout_secs = self.cfg.timeout.as_secs();
        self.announce_hold(&held, shown);
        let mut fields = json!({
            "id": id,
            "action": held.kind,
            "command": held.command,
            "cwd": held.cwd,
            "paths": held.paths,
            "rule": held.rule,
            "why": held.why,
            "severity": held.severity,
            "origin": held.origin,
            "ancestry": held.ancestry.iter().map(|a| a.pid).collect::<Vec<_>>(),
        });
        if let (Some(f), serde_json::Value::Object(extra)) = (fields.as_object_mut(), extra) {
            f.extend(extra);
        }
        self.record(json!({
            "kind": "held",
            "time": held.since,
            "pid": held.pid,
            "fields": fields,
        }));
        self.publish(&Update::Held { held: held.clone() });
        // The tasks a signal must not release: the waiting thread, or the deleting processes.
        let stuck = match &req {
            Some(r) => vec![held.pid, r.tid],
            None => pids.clone(),
        };
        gate::lock(&self.shared).set_held(id, stuck);
        let now = Instant::now();
        self.pending.insert(
            id,
            Pending {
                held,
                req,
                since: now,
                deadline: now + self.cfg.timeout,
                pids,
            },
        );
        self.publish(&Update::Summary {
            summary: self.summary(),
        });
    }

    fn announce_hold(&self, held: &Held, what: String) {
        if self.cfg.announce {
            eprintln!(
                "agent-sandbox: HELD #{}: {} {what} (pid {}, rule {}{}). Decide with \
                 `agent-sandbox decide {} allow|deny|kill` or `agent-sandbox attach`; denied in \
                 {} s otherwise.",
                held.id,
                gate::kind_word(held.kind),
                held.pid,
                held.rule,
                if held.why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", held.why)
                },
                held.id,
                self.cfg.timeout.as_secs()
            );
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::List(tx) => {
                let _ = tx.send(Reply::Held {
                    session: self.cfg.session.clone(),
                    held: self.pending_list(),
                    summary: self.summary(),
                });
            }
            Cmd::Snapshot(tx) => {
                let _ = tx.send(Update::Snapshot {
                    session: self.cfg.session.clone(),
                    command: self.cfg.command.clone(),
                    held: self.pending_list(),
                    summary: self.summary(),
                });
            }
            Cmd::Decide {
                id,
                decision,
                by,
                reply,
            } => {
                let r = self.decide(id, decision, by);
                let _ = reply.send(r);
            }
            Cmd::MassDelete {
                pids,
                count,
                sample,
                why,
            } => self.mass_delete(pids, count, sample, why),
        }
    }

    fn decide(&mut self, id: u64, decision: Decision, by: Approver) -> Reply {
        match decision {
            // The tree is what freezes: the id only says where the approver was looking, and
            // may name an action decided a moment ago.
            Decision::Freeze | Decision::Thaw => {
                match self.set_frozen(decision == Decision::Freeze, by) {
                    Ok(()) => Reply::Done {
                        message: format!(
                            "the session's process tree is {}",
                            if self.frozen { "frozen" } else { "thawed" }
                        ),
                    },
                    Err(e) => Reply::Error {
                        message: format!("{e}"),
                    },
                }
            }
            _ if !self.pending.contains_key(&id) => self.unknown(id),
            _ => {
                self.resolve(id, decision, by);
                Reply::Done {
                    message: format!("#{id}: {}", decision.as_str()),
                }
            }
        }
    }

    fn unknown(&self, id: u64) -> Reply {
        let ids: Vec<String> = self.pending.keys().map(|k| k.to_string()).collect();
        Reply::Error {
            message: if ids.is_empty() {
                format!("no held action has id {id}: nothing is held in this session now")
            } else {
                format!(
                    "no held action has id {id}; held now: {} (see `agent-sandbox decide --list`)",
                    ids.join(", ")
                )
            },
        }
    }

    fn set_frozen(&mut self, frozen: bool, by: Approver) -> Result<(), cgroup::CgroupError> {
        if frozen == self.frozen {
            return Ok(());
        }
        cgroup::set_frozen(&self.cfg.cgroup_dir, frozen)?;
        self.frozen = frozen;
        // Timeouts do not run while a human looks at a frozen tree.
        if frozen {
            self.frozen_at = Some(Instant::now());
        } else if let Some(at) = self.frozen_at.take() {
            let paused = at.elapsed();
            for p in self.pending.values_mut() {
                p.deadline += paused;
            }
        }
        self.record(json!({
            "kind": if frozen { "freeze" } else { "thaw" },
            "time": crate::session::now_rfc3339(),
            "fields": {"by": by},
        }));
        self.publish(&Update::Summary {
            summary: self.summary(),
        });
        Ok(())
    }

    /// Drops held actions whose process ended while held (a fatal signal), so that nobody
    /// is asked about them.
    fn withdraw_gone(&mut self) {
        let Some(l) = self.listener.get() else {
            return;
        };
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.req.as_ref().is_some_and(|r| !l.id_valid(r.notif)))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.resolve(id, Decision::Deny, Approver::Supervisor);
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.resolve(id, Decision::Deny, Approver::Timeout);
        }
    }

    /// Applies a resolving decision to a pending action.
    fn resolve(&mut self, id: u64, decision: Decision, by: Approver) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        gate::lock(&self.shared).clear_held(id);
        let allow = matches!(decision, Decision::Allow | Decision::AllowSession);
        if allow {
            self.allowed += 1;
        } else {
            self.denied += 1;
        }
        let rule = p.held.rule.clone();
        if decision == Decision::AllowSession {
            gate::lock(&self.shared).allow_rule(&rule);
        }
        match (&p.req, decision) {
            (_, Decision::Kill) => {
                if let Err(e) = cgroup::kill_now(&self.cfg.cgroup_dir) {
                    eprintln!("agent-sandbox: kill: {e}");
                }
                // A frozen tree dies only once thawed.
                let _ = cgroup::set_frozen(&self.cfg.cgroup_dir, false);
                self.frozen = false;
            }
            (Some(req), _) => {
                gate::lock(&self.shared).grant(req.proc, req.held.kind, &rule, allow);
                if let Some(l) = self.listener.get() {
                    let r = if allow {
                        l.allow(req.notif)
                    } else {
                        let reason = match by {
                            Approver::Timeout => format!(
                                "nobody answered within {} s, so it was denied",
                                self.cfg.timeout.as_secs()
                            ),
                            Approver::Supervisor => "the process or the session ended".to_string(),
                            _ => "a human denied it".to_string(),
                        };
                        gate::tell(
                            req.tid,
                            &format!(
                                "agent-sandbox: held {} {} (rule {}): {reason}",
                                gate::kind_word(req.held.kind),
                                gate::shown(req),
                                rule
                            ),
                        );
                        l.fail(req.notif, libc::EPERM)
                    };
                    if let Err(e) = r {
                        eprintln!("agent-sandbox: answering held action #{id}: {e}");
                    }
                }
            }
            (None, _) => {
                // A mass deletion: the tree is frozen. Allow thaws it; deny ends the
                // processes that deleted and thaws the rest.
                if !allow {
                    for &pid in &p.pids {
                        // Only processes still in the session: a pid that exited and was reused
                        // outside is left alone.
                        if cgroup::pid_in(pid as i32, &self.cfg.cgroup_rel) {
                            // SAFETY: kill(2) has no memory preconditions.
                            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                        }
                    }
                }
                if let Err(e) = self.set_frozen(false, by) {
                    eprintln!("agent-sandbox: thaw: {e}");
                }
            }
        }
        let latency_ms = p.since.elapsed().as_secs_f64() * 1000.0;
        if self.cfg.announce {
            eprintln!(
                "agent-sandbox: #{id} {}: {} (by {})",
                p.held.rule,
                decision.as_str(),
                approver_word(by)
            );
        }
        self.record(json!({
            "kind": "decision",
            "time": crate::session::now_rfc3339(),
            "pid": p.held.pid,
            "fields": {
                "id": id,
                "decision": decision,
                "by": by,
                "rule": rule,
                "action": p.held.kind,
                "command": p.held.command,
                "latency_ms": (latency_ms * 1000.0).round() / 1000.0,
            },
        }));
        self.publish(&Update::Resolved { id, decision, by });
        self.publish(&Update::Summary {
            summary: self.summary(),
        });
    }

    fn mass_delete(&mut self, pids: Vec<u32>, count: u64, sample: Vec<String>, why: String) {
        if self
            .pending
            .values()
            .any(|p| p.held.kind == HeldKind::MassDelete)
        {
            return;
        }
        if let Err(e) = self.set_frozen(true, Approver::Supervisor) {
            eprintln!("agent-sandbox: freezing after a mass deletion: {e}");
            return;
        }
        let pid = pids.first().copied().unwrap_or(0);
        let held = Held {
            pid,
            command: gate::proc_cmdline(pid),
            cwd: gate::proc_cwd(pid).to_string_lossy().into_owned(),
            paths: sample,
            severity: Some("high".into()),
            ..Held::pending(
                HeldKind::MassDelete,
                MASS_DELETE_RULE,
                format!("{count} deletions: {why}; the whole tree is frozen"),
                "[approval] mass_delete_files",
            )
        };
        let extra = json!({"pids": pids, "count": count});
        self.open_hold(held, None, pids, format!("pid {pid}"), extra);
    }
}

/// The rule id of the mass-deletion detector.
pub const MASS_DELETE_RULE: &str = "mass-delete";

fn approver_word(by: Approver) -> &'static str {
    match by {
        Approver::Tui => "the TUI",
        Approver::Decide => "agent-sandbox decide",
        Approver::Timeout => "timeout",
        Approver::Supervisor => "the supervisor",
    }
}

/// Where a session's approval socket lives.
pub fn socket_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("sessions")
}

/// Creates the session's socket (in a root-only 0700 directory).
pub fn bind(state_dir: &Path, session: &str) -> std::io::Result<(UnixListener, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let dir = socket_dir(state_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    // Sockets of sessions whose supervisor was killed go now (listing removes them).
    let _ = sessions(state_dir);
    let path = dir.join(format!("{session}.sock"));
    let _ = std::fs::remove_file(&path);
    let (_dir, short) = short_path(&path)?;
    let l = UnixListener::bind(&short)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((l, path))
}

/// A socket address for `path` that fits in `sun_path` (108 bytes) however deep the state
/// directory is: `/proc/self/fd/N/NAME`, through an `O_PATH` descriptor of its directory,
/// which must stay open while the address is used.
pub fn short_path(path: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a socket path", path.display()),
        ));
    };
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    Ok((d, short))
}

/// Accepts approvers until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    cgroup_rel: String,
    cmds: UnboundedSender<Cmd>,
    updates: broadcast::Sender<Arc<Vec<u8>>>,
    records: UnboundedSender<serde_json::Value>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: try again shortly rather than spin.
                eprintln!("agent-sandbox: approval socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = stream.peer_cred().ok().and_then(|c| c.pid());
        let inside = match peer {
            Some(pid) => cgroup::pid_in(pid, &cgroup_rel),
            // Without the peer's pid, nothing proves it is outside.
            None => true,
        };
        if inside {
            let _ = records.send(json!({
                "kind": "approval_refused",
                "time": crate::session::now_rfc3339(),
                "pid": peer,
                "fields": {"why": "a process inside the sandbox connected to the approval socket"},
            }));
            tokio::spawn(async move {
                let mut s = stream;
                let _ = s
                    .write_all(&proto::encode(&Reply::Error {
                        message: "refused: this process runs inside the sandbox it would approve"
                            .into(),
                    }))
                    .await;
                // Keep the connection open until the peer has sent its request (bounded):
                // closing first would fail its send with EPIPE before it reads the refusal.
                let mut sink = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
            });
            continue;
        }
        tokio::spawn(connection(stream, cmds.clone(), updates.subscribe()));
    }
}

async fn connection(
    stream: UnixStream,
    cmds: UnboundedSender<Cmd>,
    mut updates: broadcast::Receiver<Arc<Vec<u8>>>,
) {
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd);
    let mut subscribed = false;
    let mut line = Vec::new();
    loop {
        tokio::select! {
            n = read_line(&mut lines, &mut line) => {
                match n {
                    Ok(true) => {}
                    _ => return,
                }
                let reply = match proto::decode::<Request>(&line) {
                    Err(e) => Reply::Error { message: e.to_string() },
                    Ok(Request::Subscribe) => {
                        let (tx, rx) = oneshot::channel();
                        if cmds.send(Cmd::Snapshot(tx)).is_err() { return; }
                        let Ok(snap) = rx.await else { return };
                        if wr.write_all(&proto::encode(&snap)).await.is_err() { return; }
                        subscribed = true;
                        continue;
                    }
                    Ok(Request::List) => {
                        let (tx, rx) = oneshot::channel();
                        if cmds.send(Cmd::List(tx)).is_err() { return; }
                        let Ok(r) = rx.await else { return };
                        r
                    }
                    Ok(Request::Decide { id, decision, by }) => {
                        let (tx, rx) = oneshot::channel();
                        if cmds.send(Cmd::Decide { id, decision, by, reply: tx }).is_err() {
                            return;
                        }
                        let Ok(r) = rx.await else { return };
                        r
                    }
                };
                let out = if subscribed {
                    proto::encode(&Update::Answer { reply })
                } else {
                    proto::encode(&reply)
                };
                if wr.write_all(&out).await.is_err() { return; }
            }
            u = updates.recv(), if subscribed => match u {
                Ok(bytes) => {
                    if wr.write_all(&bytes).await.is_err() { return; }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Fell behind: start over from a fresh snapshot.
                    let (tx, rx) = oneshot::channel();
                    if cmds.send(Cmd::Snapshot(tx)).is_err() { return; }
                    let Ok(snap) = rx.await else { return };
                    if wr.write_all(&proto::encode(&snap)).await.is_err() { return; }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Reads one line (bounded); false at end of stream.
async fn read_line(
    r: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', line)
        .await?;
    Ok(n > 0)
}

/// Running sessions' approval sockets in `state_dir`, by session name. A socket nobody
/// listens on (its supervisor was killed) is removed.
pub fn sessions(state_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(socket_dir(state_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_str()?.strip_suffix(".sock")?.to_string();
            Some((name, p))
        })
        .filter(|(_, p)| {
            let refused = short_path(p)
                .and_then(|(_dir, short)| std::os::unix::net::UnixStream::connect(short))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            if refused {
                let _ = std::fs::remove_file(p);
            }
            !refused
        })
        .collect();
    out.sort();
    out
}

/// Sends one request to a session's socket and reads the reply (blocking; for `decide`).
pub fn request(socket: &Path, req: &Request) -> std::io::Result<Reply> {
    use std::io::{BufRead as _, Write as _};
    let (_dir, short) = short_path(socket)?;
    let mut s = std::os::unix::net::UnixStream::connect(&short)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&proto::encode(req))?;
    let mut line = Vec::new();
    std::io::BufReader::new(s).read_until(b'\n', &mut line)?;
    proto::decode(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The mass-deletion detector: counts deletions under the workspace or a protected tree in
/// the observation stream and freezes the tree (through the broker) when more than the
/// policy's threshold happen within its window, by any means (`rm`, `find -delete`,
/// `shutil.rmtree`, a static binary...).
pub struct MassDeleteWatch {
    limit: u64,
    window: Duration,
    roots: Vec<PathBuf>,
    recent: std::collections::VecDeque<(std::time::Instant, u32, String)>,
    cmds: UnboundedSender<Cmd>,
    shared: Arc<Mutex<Shared>>,
}

impl MassDeleteWatch {
    /// A watch over `roots` (the workspace and the protected trees' roots).
    pub fn new(
        limit: u64,
        window: Duration,
        roots: Vec<PathBuf>,
        cmds: UnboundedSender<Cmd>,
        shared: Arc<Mutex<Shared>>,
    ) -> Self {
        MassDeleteWatch {
            limit,
            window,
            roots,
            recent: std::collections::VecDeque::new(),
            cmds,
            shared,
        }
    }

    /// One observed `unlink`/`unlinkat`/`rmdir` of `path` (as given, relative to `dirfd`).
    pub fn observe(&mut self, pid: u32, path: &str, dirfd: i32) {
        let Some(full) = absolute(pid, path, dirfd) else {
            return;
        };
        if !self.roots.iter().any(|r| full.starts_with(r)) {
            return;
        }
        let now = std::time::Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        self.recent
            .push_back((now, pid, full.to_string_lossy().into_owned()));
        if (self.recent.len() as u64) <= self.limit
            || gate::lock(&self.shared).is_allowed(MASS_DELETE_RULE)
        {
            return;
        }
        let mut per_pid: BTreeMap<u32, u64> = BTreeMap::new();
        for (_, p, _) in &self.recent {
            *per_pid.entry(*p).or_default() += 1;
        }
        let mut pids: Vec<(u32, u64)> = per_pid.into_iter().collect();
        pids.sort_by_key(|p| std::cmp::Reverse(p.1));
        let sample = self
            .recent
            .iter()
            .take(5)
            .map(|(_, _, p)| p.clone())
            .collect();
        let count = self.recent.len() as u64;
        self.recent.clear();
        let _ = self.cmds.send(Cmd::MassDelete {
            pids: pids.into_iter().map(|(p, _)| p).collect(),
            count,
            sample,
            why: format!(
                "more than {} deletions within {} s under the workspace or a protected tree",
                self.limit,
                self.window.as_secs()
            ),
        });
    }
}

/// `path` made absolute the way the deleting process saw it (its cwd or the directory fd),
/// if that can still be read.
fn absolute(pid: u32, path: &str, dirfd: i32) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Some(p.to_path_buf());
    }
    let base = if dirfd == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?
    } else {
        std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()?
    };
    Some(base.join(p))
}
