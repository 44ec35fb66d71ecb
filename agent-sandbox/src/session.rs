//! One `agent-sandbox run`: cgroup, probes, the agent's process, the event stream, and the
//! teardown that leaves nothing behind.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agent_sandbox_common::{EventKind, KIND_SLOTS, NET_RULE_DEFAULT};
use anyhow::{Context as _, Result, bail};
use aya::maps::{MapData, RingBuf};
use serde_json::json;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use crate::approval::{self, Broker, BrokerConfig, Cmd, Counters};
use crate::cgroup::{Cgroup2Mount, SessionCgroup};
use crate::detect;
use crate::ebpf::{NetMaps, NetSetup, Observer};
use crate::events::{self, Clock, Event, EventData, ProcessTable, RuleNames};
use crate::fanotify::{DenyGlob, FanotifyError, FileGuard, FileRuleInfo, Refusal};
use crate::gate::{self, GateConfig, GateMsg, ListenerCell};
use crate::launch::{self, ChildSetup, Identity, SpawnError, Step};
use crate::network::{NetPlan, NetRule};
use crate::policy::{self, EffectivePolicy, LoadOptions, Source, TrustDecision};
use crate::secrets;
use crate::tracefs::{self, SchedOffsets};
use agent_sandbox_audit::{AuditKey, AuditWriter, SyslogForwarder};
use std::os::unix::fs::DirBuilderExt as _;

/// How often the reader looks at the ring buffer when no wakeup came (high-rate probes only
/// wake it when a lot is waiting).
const POLL: Duration = Duration::from_millis(20);

/// Options of `agent-sandbox run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Command and arguments.
    pub command: Vec<OsString>,
    /// `--user`.
    pub user: Option<String>,
    /// `--events`: a path, or `-` for stdout.
    pub events: Option<PathBuf>,
    /// `--stats-json`.
    pub stats_json: Option<PathBuf>,
    /// `--grace`.
    pub grace: Duration,
    /// Ring buffer size in bytes.
    pub ringbuf_bytes: u32,
    /// `--policy`: the repository policy to use instead of searching from the cwd.
    pub policy: Option<PathBuf>,
    /// `--trust-policy`: accept a new or changed repository policy without asking.
    pub trust_policy: bool,
    /// `--state-dir`: root-owned state (trusted policies, audit logs and their keys).
    pub state_dir: PathBuf,
    /// Hold destructive actions for approval (seccomp gate). Off only for benchmarks that
    /// measure observation alone (`--no-gate`).
    pub gate: bool,
    /// `--strict`: a rule that cannot be installed (a hostname that does not resolve, a glob
    /// of the user's or repository's policy that matches nothing) is fatal.
    pub strict: bool,
    /// `--audit-syslog`: also send every audit record to this syslog socket.
    pub audit_syslog: Option<PathBuf>,
    /// `--tui`: the approval UI runs in this terminal and the agent is kept off it (its
    /// output goes to a file in the state directory).
    pub tui: bool,
}

/// What the session enforces, prepared from the effective policy before anything starts.
struct Enforcement {
    /// The agent's environment, secrets removed.
    env: Vec<(OsString, OsString)>,
    policy: EffectivePolicy,
    trust: TrustDecision,
    network: NetPlan,
    file_rules: Vec<FileRuleInfo>,
    deny_globs: Vec<DenyGlob>,
    detector: detect::Detector,
    protect: gate::Protect,
}

/// How the session ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code for the supervisor: the agent's code, or 128+N when signal N killed it.
    pub exit_code: i32,
}

/// Runs a whole session. Must be called as root.
pub fn run(opts: RunOptions) -> Result<Outcome> {
    if opts.command.is_empty() {
        bail!("no command given: usage is `agent-sandbox run [OPTIONS] -- CMD [ARGS...]`");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "agent-sandbox run needs root to create the session cgroup and load its eBPF \
             probes: run it with sudo (`sudo agent-sandbox run -- ...`); an unprivileged mode \
             does not exist yet"
        );
    }
    let identity = Identity::resolve(opts.user.as_deref())?;
    let enforcement = prepare_policy(&opts, &identity)?;
    let mount = Cgroup2Mount::find()?;
    tracefs::ensure_mounted()?;
    let sched = SchedOffsets::read().context("reading tracepoint layouts")?;

    // Open the events file first: a bad path should fail before anything is created.
    let sink_out: Option<Box<dyn io::Write + Send>> = match &opts.events {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(io::stdout())),
        Some(p) => Some(Box::new(open_private(p)?)),
    };

    // Asked-for central logging that cannot work is an error now, not a silent gap later.
    let syslog = match &opts.audit_syslog {
        None => None,
        Some(p) => Some(
            agent_sandbox_audit::SyslogForwarder::connect(Some(p)).with_context(|| {
                format!(
                    "--audit-syslog: nothing receives at {} (start the syslog daemon or \
                     journald, or name its socket: --audit-syslog=PATH)",
                    p.display()
                )
            })?,
        ),
    };
    let cgroup = SessionCgroup::create(&mount)?;
    let guard = CgroupGuard(Some(cgroup));
    let result = run_in_cgroup(
        &opts,
        &identity,
        guard.get(),
        sched,
        (sink_out, syslog),
        enforcement,
    );
    guard.finish()?;
    result
}

/// Loads the effective policy, makes sure a human trusts the repository's, and derives what
/// each enforcement layer needs.
fn prepare_policy(opts: &RunOptions, identity: &Identity) -> Result<Enforcement> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let policy = policy::load(&LoadOptions {
        home: identity.home.clone(),
        cwd,
        explicit: opts.policy.clone(),
        user_policy: None,
    })
    .context("loading the policy")?;
    for w in &policy.warnings {
        eprintln!("agent-sandbox: {w}");
    }
    let trust = policy::ensure_trusted(&policy, &opts.state_dir, opts.trust_policy)?;
    let network = policy::network_plan(&policy)?;
    let detector = detect::detector_for(&policy).context("compiling the [[exec.rule]] rules")?;
    let mut protect = gate::Protect::from_policy(&policy)?;
    let mut own: Vec<PathBuf> = policy.files();
    // Created now (root-only) so that it is protected as a directory from the first run.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.state_dir)
        .with_context(|| format!("creating {}", opts.state_dir.display()))?;
    // The approval sockets' directory too: a directory created after the marks are placed
    // would not be watched.
    let sockets = approval::socket_dir(&opts.state_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&sockets)
        .with_context(|| format!("creating {}", sockets.display()))?;
    own.push(opts.state_dir.clone());
    if let Some(ev) = opts.events.as_ref().filter(|p| p.as_os_str() != "-") {
        own.push(std::path::absolute(ev).unwrap_or_else(|_| ev.clone()));
    }
    // Deletions, renames and truncations of the sandbox's own files are refused by the gate
    // whenever path calls reach it, and always for a root agent (file modes stop any other).
    if !protect.is_empty() || identity.uid == 0 {
        protect.guard_own(&own)?;
    }
    let (mut file_rules, mut deny_globs) = policy::deny_globs(&policy, &own);

    // Files of the workspace that hold a secret are protected like credential files.
    if policy.scan_enabled.value {
        let found = secrets::scan_workspace(&policy)?;
        if !found.is_empty() {
            let rule = file_rules.len();
            file_rules.push(FileRuleInfo {
                id: secrets::WORKSPACE_SECRETS_RULE.into(),
                why: Some(
                    "this workspace file holds a secret (see `agent-sandbox scan`); exempt it \
                     with [scan] exempt in your user policy if it is a fixture"
                        .into(),
                ),
            });
            for f in found {
                deny_globs.push(DenyGlob {
                    rule,
                    glob: policy::escape_glob(&f.to_string_lossy()),
                    except: Vec::new(),
                });
            }
        }
    }
    let keep: Vec<String> = policy.env_keep.iter().map(|k| k.value.clone()).collect();
    let (env, removed) = agent_sandbox_scan::scrub_env(identity.environment(), &keep);
    for (name, kind) in &removed {
        eprintln!(
            "agent-sandbox: removed {name} from the agent's environment ({kind}); keep it with \
             [env] keep = [\"{name}\"] in your user policy"
        );
    }
    Ok(Enforcement {
        env,
        policy,
        trust,
        network,
        file_rules,
        deny_globs,
        detector,
        protect,
    })
}

/// Removes the session cgroup (killing what is left) on every path out of `run`.
struct CgroupGuard(Option<SessionCgroup>);

impl CgroupGuard {
    fn get(&self) -> &SessionCgroup {
        self.0
            .as_ref()
            .expect("guard holds the cgroup until finish")
    }

    fn finish(mut self) -> Result<()> {
        match self.0.take() {
            Some(cg) => {
                let path = cg.path().to_path_buf();
                cg.destroy()
                    .with_context(|| format!("removing session cgroup {}", path.display()))
            }
            None => Ok(()),
        }
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = self.0.take()
            && let Err(e) = cg.destroy()
        {
            eprintln!("agent-sandbox: cleanup: {e}");
        }
    }
}

/// Creates (or truncates) a root-owned 0600 file without following a symlink.
fn open_private(path: &std::path::Path) -> Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(
        256 * 1024,
        create_private(path, "events file")?,
    ))
}

/// Creates (or truncates) `path` root-owned with mode 0600, never through a symlink.
fn create_private(path: &std::path::Path, what: &str) -> Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("creating {what} {}", path.display()))?;
    // An existing file keeps its owner and mode on open: make it ours and private.
    std::os::unix::fs::fchown(&f, Some(0), Some(0))
        .with_context(|| format!("chown root {}", path.display()))?;
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    Ok(f)
}

fn run_in_cgroup(
    opts: &RunOptions,
    identity: &Identity,
    cgroup: &SessionCgroup,
    sched: SchedOffsets,
    (out, syslog): (Option<Box<dyn io::Write + Send>>, Option<SyslogForwarder>),
    enforcement: Enforcement,
) -> Result<Outcome> {
    let cgroup_dir: OwnedFd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_DIRECTORY)
        .open(cgroup.path())
        .with_context(|| format!("opening {}", cgroup.path().display()))?
        .into();
    let Enforcement {
        env,
        policy,
        trust,
        network: mut plan,
        mut file_rules,
        deny_globs,
        detector,
        protect,
    } = enforcement;
    let resolve_interval = Duration::from_secs(policy.resolve_interval_secs.value.max(5));
    if plan.has_hosts() {
        let (_, failed) = plan.resolve_within(START_RESOLVE_LIMIT);
        // Names of the embedded default (cloud metadata) only resolve on their own clouds.
        let default_ids: std::collections::HashSet<&str> = policy
            .rules()
            .into_iter()
            .filter(|m| m.origin.source == Source::Default)
            .map(|m| m.id.as_str())
            .collect();
        let failed: Vec<_> = failed
            .into_iter()
            .filter(|f| !default_ids.contains(f.rule.as_str()))
            .collect();
        for f in &failed {
            eprintln!(
                "agent-sandbox: {}: network rule {}: {} did not resolve ({}); it is tried \
                 again every {}s",
                if opts.strict { "error" } else { "warning" },
                f.rule,
                f.host,
                f.error,
                resolve_interval.as_secs()
            );
        }
        if opts.strict && !failed.is_empty() {
            bail!(
                "--strict: {} hostname(s) of network rules did not resolve",
                failed.len()
            );
        }
    }

    // The audit log and its key exist before the marks are placed, so that they are marked.
    let audit = open_audit(&opts.state_dir, cgroup)?;
    let audit_path = audit.path().to_path_buf();
    let (refusal_tx, refusal_rx) = tokio::sync::mpsc::unbounded_channel();
    let fence = crate::tamper::fence(identity, cgroup, &mut file_rules);
    // Marking the protected files (a walk and a mark per file, ~50 ms with a few thousand
    // audit logs and keys in the state directory) and loading the probes (the verifier) are
    // independent: each takes about half of a session's start, so they run side by side.
    let (v4, v6) = plan.tables().context("building the network rule maps")?;
    let (guard, observer) = std::thread::scope(|s| {
        let marking = std::thread::Builder::new()
            .name("marking".into())
            .spawn_scoped(s, || {
                FileGuard::start_fenced(
                    file_rules,
                    &deny_globs,
                    cgroup.relative(),
                    fence,
                    refusal_tx,
                )
            });
        let observer = Observer::start(
            cgroup.id(),
            cgroup.level(),
            sched,
            opts.ringbuf_bytes,
            NetSetup {
                cgroup_dir: cgroup_dir.as_fd(),
                default_deny: plan.default_deny(),
                v4: &v4,
                v6: &v6,
            },
        );
        let guard = match marking {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(e) => Err(FanotifyError::Thread(e)),
        };
        (guard, observer)
    });
    let guard = guard.context("marking the files the policy denies")?;
    let mut observer = observer.context("starting the eBPF probes")?;
    let exp = guard.expansion();
    let user_rules: std::collections::HashSet<&str> = policy
        .rules()
        .into_iter()
        .filter(|m| m.origin.source != Source::Default)
        .map(|m| m.id.as_str())
        .collect();
    let mut unmatched = 0;
    for (rule, glob) in &exp.unmatched {
        if user_rules.contains(rule.as_str()) {
            unmatched += 1;
            eprintln!(
                "agent-sandbox: {}: deny_read rule {rule}: {glob} matches no file now",
                if opts.strict { "error" } else { "warning" }
            );
        }
    }
    for (rule, glob) in &exp.truncated {
        eprintln!(
            "agent-sandbox: warning: deny_read rule {rule}: {glob} covers too many files; only \
             the first ones found are protected"
        );
    }
    if opts.strict && unmatched > 0 {
        bail!("--strict: {unmatched} deny_read glob(s) of the policy match no file");
    }
    let ring = observer.take_ring_buffer()?;
    let net_maps = observer.take_net_maps();
    // Fail closed if this process dies: the watchdog kills the tree (see crate::watchdog).
    let watchdog = {
        let mut keep = observer.cgroup_link_fds();
        keep.push(guard.group_fd());
        crate::watchdog::Watchdog::start(cgroup.path(), &keep).context("starting the watchdog")?
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let rules = Arc::new(SessionRules {
        network: plan.rules().to_vec(),
        files: guard.rules().to_vec(),
    });
    let resolver = net_maps
        .filter(|_| plan.has_hosts())
        .map(|maps| rt.spawn(keep_resolving(plan, maps, resolve_interval)));
    let start_extra = json!({
        "policy_hash": policy.hash(),
        "policy_sources": policy.sources.iter().map(|s| s.file_name()).collect::<Vec<_>>(),
        "policy_trust": trust.name(),
        "protected_files": exp.files(),
        "protected_by_rule": exp.per_rule,
        "watched_dirs": exp.dirs,
    });
    let trust_record = policy.repository_path().map(|p| {
        json!({
            "kind": "policy_trust",
            "time": now_rfc3339(),
            "path": p,
            "hash": policy.hash(),
            "decision": if trust == TrustDecision::Unchanged { "unchanged" } else { "trusted" },
            "by": match trust {
                TrustDecision::Prompt => "prompt",
                TrustDecision::Flag => "flag",
                _ => "store",
            },
        })
    });
    let (gate_tx, gate_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(std::sync::Mutex::new(gate::Shared::default()));
    let mut roots = protect.roots();
    roots.push(policy.workspace.clone());
    let mass_delete = (
        policy.mass_delete_files.value,
        Duration::from_secs(policy.mass_delete_window_secs.value),
        roots,
    );
    let gate_cfg = opts.gate.then(|| {
        GateConfig::new(
            &policy,
            detector,
            protect,
            Arc::clone(&shared),
            gate_tx.clone(),
        )
        .for_root_agent(identity.uid == 0)
    });
    let tamper = crate::tamper::watch(opts, &policy, cgroup, watchdog.pid(), &shared);
    let approval = Approval {
        gate: gate_cfg,
        gate_rx,
        shared,
        timeout: Duration::from_secs(policy.approval_timeout_secs.value.max(1)),
        mass_delete,
        tamper,
    };
    let (exit_code, mut sink) = rt.block_on(supervise(
        opts,
        (identity, env),
        cgroup,
        cgroup_dir,
        (ring, refusal_rx),
        (out, audit, syslog),
        rules,
        (start_extra, trust_record),
        approval,
    ))?;
    // The tree is gone: the watchdog can go before the marks and probes do.
    if let Err(e) = watchdog.disarm() {
        eprintln!("agent-sandbox: warning: {e}");
    }
    guard.stop();
    if let Some(task) = resolver {
        task.abort();
    }

    let lost = observer.lost()?;
    let lost_total: u64 = lost.iter().map(|(_, n)| n).sum();
    let lost_map: BTreeMap<&str, u64> = lost.iter().map(|(k, n)| (k.name(), *n)).collect();
    let total_events: u64 = sink.counts.iter().sum();
    sink.finish(&json!({
        "kind": "session_end",
        "time": now_rfc3339(),
        "exit_code": exit_code,
        "events": sink.counts_json(),
        "lost": lost_map,
        "lost_total": lost_total,
        "decode_errors": sink.decode_errors,
        "files_refused": sink.counts_refused_files,
        "audit_failures": sink.audit_failures,
    }))?;
    eprintln!("agent-sandbox: audit log: {}", audit_path.display());
    if let Some(st) = sink.syslog.as_ref().map(SyslogForwarder::stats) {
        eprintln!(
            "agent-sandbox: audit records sent to syslog: {} ({} dropped: the daemon was gone \
             or its queue full; {} cut to {} bytes)",
            st.sent,
            st.failed,
            st.truncated,
            agent_sandbox_audit::MAX_MESSAGE
        );
    }

    if lost_total > 0 {
        let detail: Vec<String> = lost
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        eprintln!(
            "agent-sandbox: session ended: {total_events} events observed, {lost_total} LOST \
             (ring buffer full: {}); raise --ringbuf-mb",
            detail.join(", ")
        );
    } else {
        eprintln!("agent-sandbox: session ended: {total_events} events observed, 0 lost");
    }
    if let Some(path) = &opts.stats_json {
        let stats = json!({
            "events": sink.counts_json(),
            "lost": lost_map,
            "lost_total": lost_total,
            "decode_errors": sink.decode_errors,
            "peak_rss_kb": peak_rss_kb(),
            "ringbuf_bytes": observer.ring_buffer_bytes(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&stats)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    observer.shutdown_in_background();
    Ok(Outcome { exit_code })
}

/// The current time, RFC 3339 in UTC with microseconds.
pub(crate) fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    events::rfc3339(now.as_secs() as i64, now.subsec_micros())
}

/// VmHWM of this process in KiB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Creates the session's audit log `<state>/audit/<session>.jsonl` (with its checkpoint beside
/// it) and its MAC key `<state>/keys/<session>.key`, all root-only.
fn open_audit(state_dir: &std::path::Path, cgroup: &SessionCgroup) -> Result<AuditWriter> {
    let session = cgroup
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "session".into());
    let (audit_dir, key_dir) = (state_dir.join("audit"), state_dir.join("keys"));
    for d in [state_dir, &audit_dir, &key_dir] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    let key = AuditKey::generate().context("generating the audit key")?;
    key.save(&key_dir.join(format!("{session}.key")))
        .context("saving the audit key")?;
    AuditWriter::create(&audit_dir.join(format!("{session}.jsonl")), &key, &session)
        .context("creating the audit log")
}

/// Resolves the network rules' hostnames again every `interval` and adds new addresses to
/// the maps (addresses are never removed during a session; see [`crate::network`]).
async fn keep_resolving(mut plan: NetPlan, mut maps: NetMaps, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Ok((p, changed)) = tokio::task::spawn_blocking(move || {
            let (changed, _) = plan.resolve_within(interval);
            (plan, changed)
        })
        .await
        else {
            return;
        };
        plan = p;
        if changed {
            match plan.tables() {
                Ok((v4, v6)) => {
                    if let Err(e) = maps.apply(&v4, &v6) {
                        eprintln!("agent-sandbox: updating network rules: {e}");
                    }
                }
                Err(e) => eprintln!("agent-sandbox: updating network rules: {e}"),
            }
        }
    }
}

/// How long the start waits for the network rules' host names to resolve (all at once). A
/// name unanswered by then is reported and tried again every `resolve_interval_secs`; until it
/// resolves its rule covers only its addresses and ranges.
const START_RESOLVE_LIMIT: Duration = Duration::from_secs(3);

/// The rules kernel records refer to by index.
pub struct SessionRules {
    /// Network rules, in the order of the kernel's indices.
    pub network: Vec<NetRule>,
    /// File rules, by the fanotify guard's indices.
    pub files: Vec<FileRuleInfo>,
}

impl RuleNames for SessionRules {
    fn describe(&self, index: u32) -> (String, Option<String>) {
        match self.network.get(index as usize) {
            Some(r) => (r.id.clone(), r.why.clone()),
            None if index == NET_RULE_DEFAULT => (
                "network.default".into(),
                Some("allow-list mode: no rule allows this destination".into()),
            ),
            None => (format!("#{index}"), None),
        }
    }
}

/// The approval side of a session, prepared before it starts.
struct Approval {
    /// The gate, unless `--no-gate`.
    gate: Option<GateConfig>,
    gate_rx: UnboundedReceiver<GateMsg>,
    shared: Arc<std::sync::Mutex<gate::Shared>>,
    timeout: Duration,
    /// Mass-deletion threshold: deletions, window, and the trees they count under.
    mass_delete: (u64, Duration, Vec<PathBuf>),
    /// What attempts on the sandbox are compared against.
    tamper: crate::tamper::Watch,
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    opts: &RunOptions,
    (identity, env): (&Identity, Vec<(OsString, OsString)>),
    cgroup: &SessionCgroup,
    cgroup_dir: OwnedFd,
    (ring, refusals): (RingBuf<MapData>, UnboundedReceiver<Refusal>),
    (out, audit, syslog): (
        Option<Box<dyn io::Write + Send>>,
        AuditWriter,
        Option<SyslogForwarder>,
    ),
    rules: Arc<SessionRules>,
    (start_extra, trust_record): (serde_json::Value, Option<serde_json::Value>),
    approval: Approval,
) -> Result<(i32, Sink)> {
    let clock = Clock::now();
    let counters = Arc::new(Counters::default());
    let (updates, _) = tokio::sync::broadcast::channel(4096);
    let (records_tx, records_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut sink = Sink::new(out, clock, rules, audit);
    sink.syslog = syslog;
    sink.tamper = Some(approval.tamper);
    sink.updates = Some(updates.clone());
    sink.counters = Arc::clone(&counters);
    let mut start = json!({
        "kind": "session_start",
        "time": now_rfc3339(),
        "supervisor_pid": std::process::id(),
        "cgroup": cgroup.path(),
        "user": identity.name,
        "uid": identity.uid,
        "command": opts.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
    });
    if let (Some(m), serde_json::Value::Object(extra)) = (start.as_object_mut(), start_extra) {
        m.extend(extra);
    }
    sink.write_record(&start)?;
    sink.audit_record(&start);
    if let Some(t) = trust_record {
        sink.audit_record(&t);
    }

    // The approval socket and the broker exist before the agent can be held.
    let session = session_name(cgroup);
    let (sock, sock_path) = approval::bind(&opts.state_dir, &session).with_context(|| {
        format!(
            "creating the approval socket in {}",
            opts.state_dir.display()
        )
    })?;
    let listener_cell: ListenerCell = Arc::default();
    let (cmds_tx, cmds_rx) = tokio::sync::mpsc::unbounded_channel::<Cmd>();
    let (limit, window, roots) = approval.mass_delete;
    sink.mass_delete = Some(approval::MassDeleteWatch::new(
        limit,
        window,
        roots,
        cmds_tx.clone(),
        Arc::clone(&approval.shared),
    ));
    let (broker_stop, broker_stop_rx) = oneshot::channel();
    let broker = Broker::new(
        BrokerConfig {
            session,
            command: opts
                .command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            cgroup_dir: cgroup.path().to_path_buf(),
            cgroup_rel: cgroup.relative().to_string(),
            timeout: approval.timeout,
            // The UI in this terminal shows holds itself; a line on stderr would tear it.
            announce: !opts.tui,
        },
        Arc::clone(&listener_cell),
        approval.shared,
        updates.clone(),
        records_tx.clone(),
        counters,
    );
    let broker = tokio::spawn(broker.run(approval.gate_rx, cmds_rx, broker_stop_rx));
    let server = tokio::spawn(approval::serve(
        sock,
        cgroup.relative().to_string(),
        cmds_tx,
        updates.clone(),
        records_tx,
    ));
    // The UI is a client of the socket like `attach`, on its own thread (it blocks on keys).
    let _terminal_lock = if opts.tui {
        TerminalLock::take()?
    } else {
        None
    };
    let tui = opts.tui.then(|| {
        let path = sock_path.clone();
        std::thread::spawn(move || {
            let r = approval::short_path(&path)
                .map_err(|e| e.to_string())
                .and_then(|(_dir, short)| {
                    agent_sandbox_tui::tui::run(&short).map_err(|e| e.to_string())
                });
            if let Err(e) = r {
                eprintln!(
                    "agent-sandbox: approval UI: {e} (`agent-sandbox attach` from another terminal)"
                );
            }
        })
    });

    // The gate thread waits for the listener the agent's first process sends it.
    let (gate_sock, child_sock) = match approval.gate {
        Some(_) => {
            let (a, b) = seqpacket_pair().context("creating the gate's socket pair")?;
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    let (gate_thread, filter) = match (approval.gate, gate_sock) {
        (Some(cfg), Some(sock)) => {
            let filter = cfg.filter();
            let (h, stop) = gate::spawn(sock, cfg, Arc::clone(&listener_cell))
                .context("starting the gate thread")?;
            (Some((h, stop)), Some(filter))
        }
        _ => (None, None),
    };

    // With the approval UI in this terminal, the agent gets none of it.
    let detached = if opts.tui {
        Some(AgentOutput::open(&opts.state_dir, &session_name(cgroup))?)
    } else {
        None
    };
    let tty = if detached.is_some() {
        None
    } else {
        launch::foreground_tty()
    };
    let setup = ChildSetup {
        cgroup_dir,
        tty,
        detach: detached.as_ref().map(AgentOutput::detach),
        uid: identity.uid,
        gid: identity.gid,
        groups: identity.groups.clone(),
        gate: match (filter, &child_sock) {
            (Some(filter), Some(cs)) => Some((filter, cs.as_raw_fd())),
            _ => None,
        },
    };

    // Signal handlers go in before the child exists, so nothing sent meanwhile kills us.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigwinch = signal(SignalKind::window_change())?;

    let (stop_tx, stop_rx) = oneshot::channel();
    let agent_pid = Arc::clone(&sink.agent_pid);
    let reader_sink = sink;
    let reader = tokio::spawn(read_events(
        ring,
        refusals,
        records_rx,
        reader_sink,
        stop_rx,
    ));

    // A name found in no PATH directory fails like exec's ENOENT, through the same report.
    // The spawn blocks until the agent's exec went through, which the gate may hold for a
    // human: it must not block the runtime the broker runs on.
    let spawned = match launch::resolve_command(&opts.command[0], &env) {
        None => {
            // No child will send the gate its listener: let the gate thread see EOF.
            drop(child_sock);
            Err(io::Error::from(io::ErrorKind::NotFound))
        }
        Some(program) => {
            let command = opts.command.clone();
            let env = env.clone();
            let seen = Arc::clone(&agent_pid);
            tokio::task::spawn_blocking(move || {
                let r = launch::spawn(&program, &command, &env, &setup, &|pid| {
                    seen.store(pid as u32, Ordering::Release)
                });
                // Our copy of the child's end: closed so that the gate thread sees EOF if
                // the child failed before sending the listener.
                drop(child_sock);
                r
            })
            .await
            .context("starting the agent")?
            .map_err(|e| match e {
                SpawnError::Child {
                    step: Step::Exec,
                    source,
                } => source,
                other => io::Error::other(other.to_string()),
            })
        }
    };
    let code = 'run: {
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let name = opts.command[0].to_string_lossy();
                let code = match e.kind() {
                    io::ErrorKind::NotFound => {
                        eprintln!("agent-sandbox: {name}: command not found");
                        127
                    }
                    io::ErrorKind::PermissionDenied => {
                        eprintln!("agent-sandbox: {name}: permission denied");
                        126
                    }
                    _ => {
                        eprintln!("agent-sandbox: cannot start {name}: {e}");
                        126
                    }
                };
                if let Some(t) = tty {
                    launch::reclaim_tty(t);
                }
                break 'run code;
            }
        };
        let child_pid = child.pid;
        agent_pid.store(child_pid as u32, Ordering::Release);
        // SAFETY: the pidfd is owned by the AsyncFd from here on and closed only when it drops.
        let exited = unsafe { AsyncFd::register_with_interest(child.pidfd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("watching the agent's pidfd")?;

        let code = loop {
            let forward = tokio::select! {
                ready = exited.readable() => {
                    let _guard = ready.context("waiting for the agent")?;
                    break launch::reap(exited.get_ref()).context("reaping the agent")?;
                }
                _ = sigint.recv() => libc::SIGINT,
                _ = sigterm.recv() => libc::SIGTERM,
                _ = sighup.recv() => libc::SIGHUP,
                _ = sigwinch.recv() => libc::SIGWINCH,
            };
            // SAFETY: pidfd_send_signal to our own unreaped child; the pidfd cannot refer to a
            // reused pid.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    exited.get_ref().as_raw_fd(),
                    forward,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        };
        if let Some(t) = tty {
            launch::reclaim_tty(t);
        }

        // The main process is gone: give the rest of the tree the grace period, then kill it.
        if cgroup.populated()? {
            cgroup.signal_all(libc::SIGTERM)?;
            let deadline = tokio::time::Instant::now() + opts.grace;
            while cgroup.populated()? && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if cgroup.populated()? {
                cgroup.kill_all()?;
            }
        }
        code
    };

    let _ = broker_stop.send(());
    let _ = broker.await;
    server.abort();
    let _ = updates.send(Arc::new(agent_sandbox_tui::proto::encode(
        &agent_sandbox_tui::proto::Update::Ended { exit_code: code },
    )));
    let _ = std::fs::remove_file(&sock_path);
    // The UI leaves on the Ended update; its terminal is restored before anything is printed.
    if let Some(h) = tui {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    if let Some(o) = &detached {
        eprintln!("agent-sandbox: the agent's output: {}", o.path.display());
    }
    if let Some((h, stop)) = gate_thread {
        gate::stop(&stop);
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    let _ = stop_tx.send(());
    let sink = reader.await.context("event reader task")??;
    Ok((code, sink))
}

/// The session's name: its cgroup's directory name.
fn session_name(cgroup: &SessionCgroup) -> String {
    cgroup
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where the output of an agent kept off the terminal goes: `<state>/output/<session>.log`,
/// root-owned 0600 (the agent writes through the descriptor it inherits, and cannot open it).
struct AgentOutput {
    path: PathBuf,
    null: std::fs::File,
    file: std::fs::File,
}

impl AgentOutput {
    fn open(state_dir: &std::path::Path, session: &str) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = state_dir.join("output");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{session}.log"));
        let file = create_private(&path, "the agent's output file")?;
        let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
        Ok(Self { path, null, file })
    }

    fn detach(&self) -> launch::Detach {
        launch::Detach {
            stdin: self.null.as_raw_fd(),
            output: self.file.as_raw_fd(),
        }
    }
}

/// The approval UI's terminal, made root-only (0600) for the session and given back on drop.
/// The agent usually runs as the user who owns the terminal and could otherwise open it by
/// name (`/dev/pts/N`) and draw a forged screen over the UI. fanotify cannot refuse that open:
/// the kernel sends no permission events for device files. Descriptors already open (the
/// user's shell) keep working.
struct TerminalLock {
    uid: u32,
    gid: u32,
    mode: u32,
}

impl TerminalLock {
    fn take() -> Result<Option<Self>> {
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
        let f = io::stdout();
        let meta = std::fs::metadata("/proc/self/fd/1").context("inspecting the terminal")?;
        if !meta.file_type().is_char_device() {
            return Ok(None);
        }
        std::os::unix::fs::fchown(f.as_fd(), Some(0), None)
            .context("making the approval UI's terminal root-owned")?;
        // SAFETY: fchmod of our own stdout, which stays open.
        if unsafe { libc::fchmod(1, 0o600) } != 0 {
            return Err(io::Error::last_os_error())
                .context("making the approval UI's terminal private");
        }
        Ok(Some(Self {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        }))
    }
}

impl Drop for TerminalLock {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::fchown(io::stdout().as_fd(), Some(self.uid), Some(self.gid));
        // SAFETY: fchmod of our own stdout, which stays open.
        unsafe { libc::fchmod(1, self.mode) };
    }
}

/// Sends one event record to subscribed approvers (a full subscriber skips, never blocks).
fn send_event(u: &tokio::sync::broadcast::Sender<Arc<Vec<u8>>>, v: &serde_json::Value) {
    let _ = u.send(Arc::new(agent_sandbox_tui::proto::encode(
        &agent_sandbox_tui::proto::Update::Event { event: v.clone() },
    )));
}

/// A close-on-exec SOCK_SEQPACKET pair.
fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd as _;
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two new descriptors into our array.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just created and are owned only here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Consumes decoded events: counts, process tree, exec pairing, JSON output.
pub struct Sink {
    out: Option<Box<dyn io::Write + Send>>,
    clock: Clock,
    table: ProcessTable,
    /// exec entries waiting for their result, by pid.
    pending_exec: HashMap<u32, Event>,
    /// Records per kind, indexed by `EventKind as usize`.
    counts: [u64; KIND_SLOTS as usize],
    decode_errors: u64,
    /// The agent's pid once it is known (0 before): seeded into the process table, since its
    /// fork happened outside the session.
    agent_pid: Arc<AtomicU32>,
    seeded: bool,
    rules: Arc<SessionRules>,
    counts_refused_files: u64,
    audit: Option<AuditWriter>,
    audit_failures: u64,
    /// `--audit-syslog`: every audit record is also sent there.
    syslog: Option<SyslogForwarder>,
    /// Approvers' live feed, when any is subscribed.
    updates: Option<tokio::sync::broadcast::Sender<Arc<Vec<u8>>>>,
    /// Totals approvers see.
    counters: Arc<Counters>,
    /// The mass-deletion detector.
    mass_delete: Option<approval::MassDeleteWatch>,
    /// Attempts on the sandbox: what to add to signal, denied and set-id exec records.
    tamper: Option<crate::tamper::Watch>,
}

impl Sink {
    fn new(
        out: Option<Box<dyn io::Write + Send>>,
        clock: Clock,
        rules: Arc<SessionRules>,
        audit: AuditWriter,
    ) -> Self {
        Self {
            out,
            clock,
            table: ProcessTable::default(),
            pending_exec: HashMap::new(),
            counts: [0; KIND_SLOTS as usize],
            decode_errors: 0,
            agent_pid: Arc::new(AtomicU32::new(0)),
            seeded: false,
            rules,
            counts_refused_files: 0,
            audit: Some(audit),
            audit_failures: 0,
            syslog: None,
            updates: None,
            counters: Arc::default(),
            mass_delete: None,
            tamper: None,
        }
    }

    /// A record from the approval side (held, decision, refused by the gate, freeze):
    /// written to the events file, the audit log and the approvers' feed.
    fn record(&mut self, v: &serde_json::Value) -> Result<()> {
        self.audit_record(v);
        self.feed(v);
        self.write_record(v)
    }

    /// Sends a record to subscribed approvers.
    fn feed(&self, v: &serde_json::Value) {
        if let Some(u) = self.listening() {
            send_event(&u, v);
        }
    }

    /// The feed's sender when an approver is subscribed (checked once per event).
    fn listening(&self) -> Option<tokio::sync::broadcast::Sender<Arc<Vec<u8>>>> {
        self.updates
            .as_ref()
            .filter(|u| u.receiver_count() > 0)
            .cloned()
    }

    fn counts_json(&self) -> serde_json::Value {
        let named: BTreeMap<&str, u64> = EventKind::ALL
            .iter()
            .map(|&k| (k.name(), self.counts[k as usize]))
            .collect();
        json!(named)
    }

    fn write_record(&mut self, v: &serde_json::Value) -> Result<()> {
        if let Some(out) = self.out.as_mut() {
            serde_json::to_writer(&mut *out, v).context("writing an event")?;
            out.write_all(b"\n").context("writing an event")?;
        }
        Ok(())
    }

    fn handle(&mut self, bytes: &[u8]) -> Result<()> {
        if !self.seeded
            && let pid @ 1.. = self.agent_pid.load(Ordering::Acquire)
        {
            self.table.seed(pid, std::process::id());
            self.seeded = true;
        }
        let ev = match events::decode(bytes) {
            Ok(ev) => ev,
            Err(_) => {
                self.decode_errors += 1;
                return Ok(());
            }
        };
        self.counts[ev.kind as usize] += 1;
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        if ev.kind == EventKind::NetRefused {
            self.counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        self.table.observe(&ev);
        if let (Some(w), EventData::PathOp(call)) = (self.mass_delete.as_mut(), &ev.data)
            && matches!(call.syscall, "unlink" | "unlinkat" | "rmdir")
        {
            w.observe(ev.pid, &call.path, call.dirfd);
        }
        match ev.data {
            EventData::Exec { .. } => {
                if let Some(prev) = self.pending_exec.insert(ev.pid, ev) {
                    self.emit(&prev)?;
                }
            }
            EventData::ExecResult { ret } => match self.pending_exec.remove(&ev.pid) {
                Some(mut exec) => {
                    if let EventData::Exec { ret: r, .. } = &mut exec.data {
                        *r = Some(ret);
                    }
                    // Show the program's new name once the exec succeeded.
                    if ret == 0 {
                        exec.comm = ev.comm.clone();
                    }
                    self.emit(&exec)?;
                }
                None => self.emit(&ev)?,
            },
            EventData::NetRefused {
                rule,
                hook,
                ref address,
                port,
                ref protocol,
                ..
            } => {
                let (id, why) = self.rules.describe(rule);
                let shown = if address.contains(':') {
                    format!("[{address}]:{port}")
                } else {
                    format!("{address}:{port}")
                };
                eprintln!(
                    "agent-sandbox: refused {hook} to {shown}/{protocol} by {} (pid {}): rule \
                     {id}{}",
                    ev.comm,
                    ev.pid,
                    why.map(|w| format!(": {w}")).unwrap_or_default()
                );
                self.emit(&ev)?;
            }
            _ => {
                if ev.kind == EventKind::Exit
                    && let Some(exec) = self.pending_exec.remove(&ev.pid)
                {
                    self.emit(&exec)?;
                }
                self.emit(&ev)?;
                self.table.note_exit(&ev);
            }
        }
        Ok(())
    }

    fn emit(&mut self, ev: &Event) -> Result<()> {
        // The audit log keeps what matters afterwards: what ran and what was refused (opens,
        // forks and exits stay in the event stream).
        let assessed = self.tamper.as_ref().and_then(|t| t.assess(ev));
        let audited = matches!(
            ev.kind,
            EventKind::Exec | EventKind::ExecResult | EventKind::NetRefused
        ) || assessed.as_ref().is_some_and(|a| a.audit);
        let feed = self.listening();
        if self.out.is_some() || audited || feed.is_some() {
            let mut v = events::to_json(ev, &self.table, &self.clock, &*self.rules);
            if let Some(a) = assessed {
                crate::tamper::merge(&mut v, a, ev);
            }
            self.write_record(&v)?;
            if audited {
                self.audit_record(&v);
            }
            if let Some(u) = feed {
                send_event(&u, &v);
            }
        }
        Ok(())
    }

    /// Appends a record to the audit log. A failure is reported once and counted; the
    /// session's enforcement does not depend on the log.
    fn audit_record(&mut self, v: &serde_json::Value) {
        let (Some(w), Some(map)) = (self.audit.as_mut(), v.as_object()) else {
            return;
        };
        if let Err(e) = w.append(map) {
            if self.audit_failures == 0 {
                eprintln!("agent-sandbox: error: writing the audit log: {e}");
            }
            self.audit_failures += 1;
        } else if let Some(s) = self.syslog.as_mut() {
            // The sealed line itself, so the central copy verifies with the same key.
            s.send(w.last_line());
        }
    }

    /// A refused open of a protected file: told on stderr and recorded.
    fn file_refused(&mut self, r: &Refusal) -> Result<()> {
        let (id, why) = self
            .rules
            .files
            .get(r.rule)
            .map(|f| (f.id.clone(), f.why.clone()))
            .unwrap_or_else(|| (format!("#{}", r.rule), None));
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", r.pid))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default();
        eprintln!(
            "agent-sandbox: refused open of {} by {comm} (pid {}): rule {id}{}",
            r.path.display(),
            r.pid,
            why.as_ref().map(|w| format!(": {w}")).unwrap_or_default()
        );
        self.counts_refused_files += 1;
        self.counters.files_refused.fetch_add(1, Ordering::Relaxed);
        let pid = r.pid as u32;
        let rec = json!({
            "kind": "file_refused",
            "time": now_rfc3339(),
            "pid": pid,
            "ppid": self.table.ppid(pid),
            "comm": comm,
            "ancestry": self.table.ancestry(pid),
            "fields": {"rule": id, "why": why, "path": r.path},
        });
        self.record(&rec)
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.flush().context("flushing the events file")?;
        }
        Ok(())
    }

    /// Emits what is still pending, writes the closing record and flushes.
    fn finish(&mut self, end: &serde_json::Value) -> Result<()> {
        let mut pending: Vec<Event> = self.pending_exec.drain().map(|(_, e)| e).collect();
        pending.sort_by_key(|e| e.ktime_ns);
        for e in pending {
            self.emit(&e)?;
        }
        self.write_record(end)?;
        self.audit_record(end);
        if let Some(w) = self.audit.take() {
            let path = w.path().to_path_buf();
            w.finish()
                .with_context(|| format!("closing the audit log {}", path.display()))?;
        }
        self.flush()
    }
}

async fn read_events(
    ring: RingBuf<MapData>,
    mut refusals: UnboundedReceiver<Refusal>,
    mut records: UnboundedReceiver<serde_json::Value>,
    mut sink: Sink,
    mut stop: oneshot::Receiver<()>,
) -> Result<Sink> {
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the AsyncFd
    // (and with it the RingBuf) is dropped.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer with epoll: {e}"))?;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            guard = fd.readable_mut() => {
                let mut guard = guard.context("polling the ring buffer")?;
                guard.clear_ready();
                false
            }
            _ = tick.tick() => false,
            Some(r) = refusals.recv() => {
                sink.file_refused(&r)?;
                false
            }
            Some(rec) = records.recv() => {
                sink.record(&rec)?;
                false
            }
        };
        while let Ok(rec) = records.try_recv() {
            sink.record(&rec)?;
        }
        while let Ok(r) = refusals.try_recv() {
            sink.file_refused(&r)?;
        }
        let ring = fd.get_mut();
        while let Some(item) = ring.next() {
            sink.handle(&item)?;
        }
        sink.flush()?;
        if stopping {
            return Ok(sink);
        }
    }
}
