//! `agent-sandbox`: the command-line front end.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use agent_sandbox::{
    approval, cgroup, detect, doctor, launch, leftovers, policy, secrets, session, watchdog,
};
use agent_sandbox_audit as audit;
use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

/// Runs an AI coding agent's whole process tree under kernel enforcement and observation.
///
/// `sudo agent-sandbox run -- cursor .` puts the agent and everything it starts into a cgroup of
/// its own, watched by eBPF probes (exec with argv, open, connect, unlink/rename, fork, exit),
/// runs it as the invoking user with no way back to root, and removes every trace of the
/// session when it ends.
#[derive(Parser, Debug)]
#[command(name = "agent-sandbox", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run CMD and its whole process tree inside a new sandbox session (needs root).
    ///
    /// The agent runs as the user who invoked sudo (SUDO_UID), or as --user, with that user's
    /// groups and HOME, and with no_new_privs (setuid binaries cannot give root back). It is
    /// created inside the session cgroup, so nothing it starts escapes. Signals SIGINT,
    /// SIGTERM, SIGHUP and SIGWINCH sent to the supervisor are forwarded to it. When it exits,
    /// whatever it left running gets SIGTERM and the --grace period, then the whole cgroup is
    /// killed and removed. The exit status is the agent's (128+N when signal N killed it).
    Run {
        /// Run the agent as this user instead of the one behind sudo.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Write every event as one JSON object per line to FILE (`-` for stdout). The file is
        /// created root-owned with mode 0600. Schema: see the README.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        /// Seconds that processes left behind by the agent get after SIGTERM before the whole
        /// tree is killed.
        #[arg(long, value_name = "SECS", default_value_t = 2.0)]
        grace: f64,
        /// Size of the event ring buffer in MiB (a power of two); events that do not fit are
        /// counted as lost and reported. The buffer is mapped into the supervisor twice (for
        /// wrap-around reads), so its resident size is about twice this.
        #[arg(long, value_name = "MIB", default_value_t = 8)]
        ringbuf_mb: u32,
        /// Use this repository policy instead of the first policy.toml found from the current
        /// directory upward (the search stops at the repository root).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Trust a new or changed repository policy without asking (for CI and scripts).
        /// Without it, a new policy is shown (a changed one as a diff) and must be approved
        /// on the terminal; without a terminal the run refuses to start.
        #[arg(long)]
        trust_policy: bool,
        /// Refuse to start when a rule cannot be installed: a network rule's hostname that
        /// does not resolve, or a deny_read glob of the user's or repository's policy that
        /// matches no file.
        #[arg(long)]
        strict: bool,
        /// Where agent-sandbox keeps its root-only state (trusted policy hashes). The session
        /// can neither read nor write it.
        #[arg(long, value_name = "DIR", default_value = policy::STATE_DIR)]
        state_dir: PathBuf,
        /// Write session statistics (event and loss counts, supervisor peak RSS) as JSON.
        #[arg(long, value_name = "FILE", hide = true)]
        stats_json: Option<PathBuf>,
        /// Observe only: no exec/deletion gate (for benchmarks comparing the two).
        #[arg(long, hide = true)]
        no_gate: bool,
        /// Also send every audit record to syslog (authpriv facility, RFC 5424, the sealed line
        /// as the message, so the central copy verifies with the session key too): to
        /// /dev/log, or to the datagram socket PATH (`--audit-syslog=PATH`). The run refuses to
        /// start when nothing receives there; records the daemon cannot take are counted.
        #[arg(
            long,
            value_name = "PATH",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "/dev/log"
        )]
        audit_syslog: Option<PathBuf>,
        /// Show the approval UI in this terminal. The agent is then kept off the terminal: it
        /// runs in a session of its own with stdin from /dev/null and its output in
        /// <state-dir>/output/<session>.log. The default when the agent is a GUI editor that
        /// needs no terminal (cursor, code, codium, windsurf, zed, JetBrains IDEs, subl) and
        /// this is a terminal; otherwise approve with `agent-sandbox attach` from another one.
        #[arg(long, overrides_with = "no_tui")]
        tui: bool,
        /// Never show the approval UI in this terminal, even for a GUI editor.
        #[arg(long, overrides_with = "tui")]
        no_tui: bool,
        /// The agent command and its arguments.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Check what this kernel and machine offer and what is missing (installs nothing).
    Doctor,
    /// Check a policy file, or show the effective policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Scan a directory for secrets (private keys, cloud and service tokens, credential
    /// assignments) and print each as file:line, kind and a redacted value. Exits 1 when
    /// something is found. `run` does the same for the workspace and makes those files
    /// unreadable to the agent.
    Scan {
        /// The directory (default: the current one).
        dir: Option<PathBuf>,
        /// Stop after reading this many bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 4 << 30)]
        max_bytes: u64,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        max_secs: u64,
        /// Skip paths matching this glob (relative to DIR); repeatable.
        #[arg(long, value_name = "GLOB")]
        exempt: Vec<String>,
    },
    /// Say whether a command line is destructive: prints the verdict, the rule and its
    /// explanation. Exit code: 0 allow, 10 ask (held for a human), 20 deny; 125 on error.
    /// Uses the built-in rule packs and the `[[exec.rule]]` rules of the effective policy.
    Classify {
        /// Classify as if run from this directory (default: the current one); it is also where
        /// the policy search starts.
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// Use this repository policy instead of searching.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The command and its arguments, as execve would see them.
        #[arg(last = true, value_name = "CMD", required = true)]
        command: Vec<String>,
    },
    /// Check that a session's audit log is intact.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Summarise a session from its audit log: timeline, commands, files and connections
    /// (refused ones too), holds and decisions, totals.
    Report {
        /// The audit log (default: the newest in <state-dir>/audit).
        file: Option<PathBuf>,
        /// `text` for people, `json` for machines.
        #[arg(long, value_name = "FORMAT", default_value = "text")]
        format: ReportFormat,
        /// agent-sandbox's state directory.
        #[arg(long, value_name = "DIR", default_value = policy::STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Remove what sessions whose supervisor is gone left behind: their cgroups (and any
    /// process in them), their watchdogs if stuck, and BPF programs of agent-sandbox that no
    /// live session holds (pins included), and approval sockets nobody listens on. Exits 1 when
    /// something could not be removed.
    Cleanup {
        /// agent-sandbox's state directory (for the approval sockets).
        #[arg(long, value_name = "DIR", default_value = policy::STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Open the approval UI of a running session in this terminal: the live event feed, the
    /// queue of held actions with their command, ancestry and rule, one key per decision
    /// (`?` lists them). Quitting the UI leaves the session running.
    Attach {
        /// The session (its name, as `decide --list` shows it); needed when several run.
        #[arg(long, value_name = "NAME")]
        session: Option<String>,
        /// agent-sandbox's state directory.
        #[arg(long, value_name = "DIR", default_value = policy::STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Answer a held action from a script: `decide ID allow|allow-session|deny|kill`, or
    /// `decide 0 freeze|thaw` for the whole tree; `decide --list` shows what is held.
    ///
    /// Talks to the session's approval socket (root only). With several sessions running,
    /// name one with --session (see `decide --list`).
    Decide {
        /// The held action's id (as shown by `--list`, the TUI, or the HELD line).
        #[arg(required_unless_present = "list")]
        id: Option<u64>,
        /// allow, allow-session, deny, kill, freeze or thaw.
        #[arg(required_unless_present = "list")]
        decision: Option<String>,
        /// List the held actions of every running session instead (`--json` for machines).
        #[arg(long)]
        list: bool,
        /// With --list: one JSON object per session.
        #[arg(long, requires = "list")]
        json: bool,
        /// The session (its name, as --list shows it).
        #[arg(long, value_name = "NAME")]
        session: Option<String>,
        /// agent-sandbox's state directory.
        #[arg(long, value_name = "DIR", default_value = policy::STATE_DIR)]
        state_dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Report every error of a policy file as file:line:column, with a suggestion for unknown
    /// keys. Exits 1 when there is an error. FILE defaults to the repository policy found
    /// from the current directory.
    Check {
        /// The policy file.
        file: Option<PathBuf>,
    },
    /// Print the effective policy (embedded default + user policy + repository policy) with
    /// the source of every rule.
    Show {
        /// Use this repository policy instead of searching from the current directory.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Whose home `~/` means and whose user policy applies (default: the user behind
        /// sudo, else the current user).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Verify every record's hash chain and MAC, and the log's length against its
    /// checkpoint. Names each edited, inserted, deleted, reordered or truncated record and a
    /// torn last line; exits 1 on any problem.
    Verify {
        /// The audit log (`<state-dir>/audit/<session>.jsonl`).
        file: PathBuf,
        /// The session's key (default: `<state-dir>/keys/<session>.key`).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The checkpoint written at the session's end (default: FILE.checkpoint).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// agent-sandbox's state directory.
        #[arg(long, value_name = "DIR", default_value = policy::STATE_DIR)]
        state_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    // The watchdog (started by `run`) is this binary under a hidden name, handled before clap.
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == watchdog::SUBCOMMAND) {
        let code = watchdog::main(args.get(2..).unwrap_or_default());
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse_from(args);
    match real_main(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("agent-sandbox: error: {e:#}");
            ExitCode::from(125)
        }
    }
}

/// GUI editors and IDEs that agents run in: they need no terminal, so by default the
/// approval UI takes it.
const GUI_AGENTS: &[&str] = &[
    "cursor",
    "code",
    "code-insiders",
    "codium",
    "vscodium",
    "windsurf",
    "zed",
    "zeditor",
    "idea",
    "idea.sh",
    "pycharm",
    "pycharm.sh",
    "goland",
    "webstorm",
    "clion",
    "rustrover",
    "subl",
];

/// Whether the agent command is one of [`GUI_AGENTS`] (by the program's file name).
fn is_gui_agent(command: &[std::ffi::OsString]) -> bool {
    command
        .first()
        .and_then(|c| Path::new(c).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| GUI_AGENTS.contains(&n))
}

/// Whether `run` shows the approval UI in its own terminal: `--tui`, or a GUI agent (see
/// [`GUI_AGENTS`]) with stdin and stdout on a terminal, unless `--no-tui`.
fn wants_tui(
    tui: bool,
    no_tui: bool,
    command: &[std::ffi::OsString],
    events: &Option<PathBuf>,
) -> Result<bool> {
    use std::io::IsTerminal as _;
    let gui = is_gui_agent(command);
    let on = !no_tui
        && (tui || (gui && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()));
    if on && events.as_deref() == Some(Path::new("-")) {
        bail!(
            "--events - writes events to the terminal the approval UI needs: give --events a \
             file, or add --no-tui"
        );
    }
    if tui && !std::io::stdout().is_terminal() {
        bail!(
            "--tui needs a terminal on stdout; approve with `agent-sandbox attach` or \
             `agent-sandbox decide` from elsewhere instead"
        );
    }
    Ok(on)
}

fn real_main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run {
            user,
            events,
            grace,
            ringbuf_mb,
            stats_json,
            policy,
            trust_policy,
            strict,
            state_dir,
            no_gate,
            tui,
            no_tui,
            audit_syslog,
            command,
        } => {
            if command.is_empty() {
                bail!("no command given: usage is `agent-sandbox run [OPTIONS] -- CMD [ARGS...]`");
            }
            if !ringbuf_mb.is_power_of_two() || ringbuf_mb > 1024 {
                bail!("--ringbuf-mb must be a power of two between 1 and 1024, got {ringbuf_mb}");
            }
            if !(0.0..=3600.0).contains(&grace) {
                bail!("--grace must be between 0 and 3600 seconds, got {grace}");
            }
            let tui = wants_tui(tui, no_tui, &command, &events)?;
            let outcome = session::run(session::RunOptions {
                command,
                user,
                events,
                stats_json,
                grace: Duration::from_secs_f64(grace),
                ringbuf_bytes: ringbuf_mb * 1024 * 1024,
                policy,
                trust_policy,
                strict,
                state_dir,
                gate: !no_gate,
                audit_syslog,
                tui,
            })?;
            Ok(outcome.exit_code)
        }
        Command::Attach { session, state_dir } => {
            let (_, path) = pick_session(&state_dir, session.as_deref())?;
            let (_dir, short) = approval::short_path(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            agent_sandbox_tui::tui::run(&short)?;
            Ok(0)
        }
        Command::Decide {
            id,
            decision,
            list,
            json,
            session,
            state_dir,
        } => decide(id, decision, list, json, session, &state_dir),
        Command::Policy(PolicyCommand::Check { file }) => {
            let cwd = std::env::current_dir().context("reading the current directory")?;
            let Some(file) = file.or_else(|| policy::find_repository_policy(&cwd)) else {
                bail!(
                    "no policy.toml found from {} up to the repository root: name the file \
                     (`agent-sandbox policy check FILE`)",
                    cwd.display()
                );
            };
            let diags = policy::check(&file);
            for d in &diags {
                eprintln!("{d}");
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            if errors == 0 {
                println!("{}: ok", file.display());
                Ok(0)
            } else {
                eprintln!("{}: {errors} error(s)", file.display());
                Ok(1)
            }
        }
        Command::Policy(PolicyCommand::Show {
            policy: explicit,
            user,
        }) => {
            let home = match user {
                Some(name) => launch::Identity::resolve(Some(&name))?.home,
                None => match launch::Identity::resolve(None) {
                    Ok(id) => id.home,
                    Err(_) => PathBuf::from(
                        std::env::var_os("HOME").context("HOME is not set: pass --user")?,
                    ),
                },
            };
            let cwd = std::env::current_dir().context("reading the current directory")?;
            let effective = policy::load(&policy::LoadOptions {
                home,
                cwd,
                explicit,
                user_policy: None,
            })?;
            print!("{}", effective.render());
            Ok(0)
        }
        Command::Audit(AuditCommand::Verify {
            file,
            key,
            checkpoint,
            state_dir,
        }) => {
            let session = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let key_path =
                key.unwrap_or_else(|| state_dir.join("keys").join(format!("{session}.key")));
            let key = audit::AuditKey::load(&key_path)
                .with_context(|| format!("loading the audit key {}", key_path.display()))?;
            let cp = checkpoint.unwrap_or_else(|| audit::default_checkpoint_path(&file));
            let report = audit::verify(&file, &key, cp.exists().then_some(cp.as_path()))?;
            for p in &report.problems {
                println!("{}:{}: {}: {}", file.display(), p.line, p.kind, p.detail);
            }
            if !cp.exists() {
                println!(
                    "{}: no checkpoint at {}: records cut from the end cannot be detected",
                    file.display(),
                    cp.display()
                );
            }
            if report.is_clean() && cp.exists() {
                println!("{}: ok, {} records intact", file.display(), report.records);
                Ok(0)
            } else {
                println!(
                    "{}: {} problem(s)",
                    file.display(),
                    report.problems.len().max(1)
                );
                Ok(1)
            }
        }
        Command::Report {
            file,
            format,
            state_dir,
        } => {
            let file = match file {
                Some(f) => f,
                None => newest_log(&state_dir.join("audit"))?,
            };
            let report = audit::Report::from_log(&file)?;
            match format {
                ReportFormat::Text => print!("{}", audit::render_text(&report)),
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(0)
        }
        Command::Scan {
            dir,
            max_bytes,
            max_secs,
            exempt,
        } => {
            let dir = match dir {
                Some(d) => d,
                None => std::env::current_dir().context("reading the current directory")?,
            };
            let opts = agent_sandbox_scan::ScanOptions {
                max_bytes,
                max_duration: Duration::from_secs(max_secs),
                exempt,
                ..Default::default()
            };
            let report = secrets::scan_with_progress(&dir, &opts)?;
            for f in &report.findings {
                println!(
                    "{}:{}: {}: {}",
                    f.path.display(),
                    f.line,
                    f.kind,
                    f.redacted
                );
            }
            eprintln!(
                "{} file(s), {} MB scanned in {:.2}s: {} finding(s){}",
                report.files_scanned,
                report.bytes_scanned / 1_000_000,
                report.elapsed.as_secs_f64(),
                report.findings.len(),
                report
                    .stopped
                    .as_ref()
                    .map(|l| format!("; stopped early: {l:?}"))
                    .unwrap_or_default()
            );
            Ok(i32::from(!report.findings.is_empty()))
        }
        Command::Classify {
            cwd,
            policy: explicit,
            command,
        } => {
            let cwd = match cwd {
                Some(c) => std::path::absolute(c).context("resolving --cwd")?,
                None => std::env::current_dir().context("reading the current directory")?,
            };
            let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
            let effective = policy::load(&policy::LoadOptions {
                home: home.clone(),
                cwd: cwd.clone(),
                explicit,
                user_policy: None,
            })?;
            let detector = detect::detector_for(&effective)?;
            let env: Vec<(String, String)> = std::env::vars().collect();
            let verdict = detector.classify(&detect::CommandContext {
                argv: &command,
                cwd: &cwd,
                env: &env,
                workspace: Some(&effective.workspace),
                home: Some(&home),
            });
            println!(
                "{}{}{}",
                verdict.action,
                verdict
                    .rule_id
                    .as_ref()
                    .map(|r| format!(" (rule {r}"))
                    .unwrap_or_default(),
                match (&verdict.rule_id, verdict.severity) {
                    (Some(_), Some(s)) => format!(", severity {s})"),
                    (Some(_), None) => ")".into(),
                    _ => String::new(),
                }
            );
            if !verdict.explanation.is_empty() {
                println!("{}", verdict.explanation);
            }
            if !verdict.matched.is_empty() && verdict.matched != command {
                println!("matched: {}", verdict.matched.join(" "));
            }
            Ok(verdict.exit_code())
        }
        Command::Doctor => {
            let checks = doctor::run_checks();
            print!("{}", doctor::render_table(&checks));
            Ok(if doctor::all_required_ok(&checks) {
                0
            } else {
                1
            })
        }
        Command::Cleanup { state_dir } => {
            let mount = cgroup::Cgroup2Mount::find()?;
            let r = leftovers::cleanup(&mount);
            // Listing the sessions removes the sockets nobody listens on any more.
            let _ = approval::sessions(&state_dir);
            for pid in &r.killed_watchdogs {
                println!("killed orphan watchdog {pid}");
            }
            for dir in &r.removed_cgroups {
                println!("removed {}", dir.display());
            }
            for pin in &r.unpinned {
                println!("removed pin {}", pin.display());
            }
            for p in &r.remaining_programs {
                eprintln!(
                    "agent-sandbox: BPF program {} (id {}) is still loaded and nothing here can \
                     remove it (held by {:?})",
                    p.name, p.id, p.holders
                );
            }
            for f in &r.failures {
                eprintln!("agent-sandbox: cleanup: {f}");
            }
            let did = r.killed_watchdogs.len() + r.removed_cgroups.len() + r.unpinned.len();
            if did == 0 && r.failures.is_empty() && r.remaining_programs.is_empty() {
                println!("nothing to clean up");
            }
            Ok(i32::from(
                !r.failures.is_empty() || !r.remaining_programs.is_empty(),
            ))
        }
    }
}

/// The most recently modified `*.jsonl` in `dir`.
fn newest_log(dir: &std::path::Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
        .with_context(|| format!("no audit log in {}: name the file", dir.display()))
}

/// `agent-sandbox decide`: answers a held action, or lists them.
fn decide(
    id: Option<u64>,
    decision: Option<String>,
    list: bool,
    json: bool,
    session: Option<String>,
    state_dir: &std::path::Path,
) -> Result<i32> {
    use agent_sandbox_tui::proto::{Approver, Decision, Reply, Request};
    // Listing shows every running session unless one is named; deciding needs exactly one.
    let chosen: Vec<(String, PathBuf)> = match (&session, list) {
        (None, true) => approval::sessions(state_dir),
        _ => vec![pick_session(state_dir, session.as_deref())?],
    };
    if chosen.is_empty() {
        bail!(
            "no agent-sandbox session is running (no approval socket in {}); start one with \
             `sudo agent-sandbox run -- CMD`",
            approval::socket_dir(state_dir).display()
        );
    }
    let ask = |path: &PathBuf, req: &Request| {
        approval::request(path, req).with_context(|| {
            format!(
                "talking to the session at {} (is it still running? are you root?)",
                path.display()
            )
        })
    };
    if list {
        for (name, path) in &chosen {
            let reply = match ask(path, &Request::List) {
                Ok(r) => r,
                // A socket left by a session that crashed: say so and go on.
                Err(e) if session.is_none() => {
                    eprintln!("agent-sandbox: {name}: {e:#}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Reply::Held { held, summary, .. } = reply else {
                bail!("{name}: unexpected reply {reply:?}");
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"session": name, "held": held, "summary": summary})
                );
                continue;
            }
            println!(
                "session {name}: {} held now ({} held in all, {} allowed, {} denied){}",
                held.len(),
                summary.held,
                summary.allowed,
                summary.denied,
                if summary.frozen { ", FROZEN" } else { "" }
            );
            for h in held {
                println!(
                    "  #{:<4} {:?} pid {} rule {}: {}  [{} s left]",
                    h.id,
                    h.kind,
                    h.pid,
                    h.rule,
                    if h.paths.is_empty()
                        || matches!(h.kind, agent_sandbox_tui::proto::HeldKind::Exec)
                    {
                        h.command.join(" ")
                    } else {
                        h.paths.join(" -> ")
                    },
                    h.timeout_secs
                );
            }
        }
        return Ok(0);
    }
    let (Some(id), Some(word)) = (id, decision) else {
        bail!("usage: agent-sandbox decide ID allow|allow-session|deny|kill|freeze|thaw");
    };
    let Some(decision) = Decision::parse(&word) else {
        bail!("unknown decision `{word}`: use allow, allow-session, deny, kill, freeze or thaw");
    };
    let (name, path) = &chosen[0];
    match ask(
        path,
        &Request::Decide {
            id,
            decision,
            by: Approver::Decide,
        },
    )? {
        Reply::Done { message } => {
            println!("{name}: {message}");
            Ok(0)
        }
        Reply::Error { message } => bail!("{name}: {message}"),
        other => bail!("{name}: unexpected reply {other:?}"),
    }
}

/// The one running session, or the one named.
fn pick_session(state_dir: &std::path::Path, name: Option<&str>) -> Result<(String, PathBuf)> {
    let all = approval::sessions(state_dir);
    match name {
        Some(n) => {
            all.iter().find(|(s, _)| s == n).cloned().with_context(|| {
                format!("no running session is named {n} (running: {})", names(&all))
            })
        }
        None => match all.as_slice() {
            [] => bail!(
                "no agent-sandbox session is running (no approval socket in {}); start one \
                 with `sudo agent-sandbox run -- CMD`",
                approval::socket_dir(state_dir).display()
            ),
            [one] => Ok(one.clone()),
            _ => bail!(
                "{} sessions are running ({}): name one with --session",
                all.len(),
                names(&all)
            ),
        },
    }
}

fn names(s: &[(String, PathBuf)]) -> String {
    if s.is_empty() {
        return "none".into();
    }
    s.iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn gui_editors_are_recognised_by_their_program_name_only() {
        assert!(is_gui_agent(&cmd(&["cursor", "."])));
        assert!(is_gui_agent(&cmd(&["/usr/share/code/code", "--wait"])));
        assert!(is_gui_agent(&cmd(&["zed"])));
        assert!(!is_gui_agent(&cmd(&["claude"])));
        assert!(!is_gui_agent(&cmd(&["bash", "-c", "cursor ."])));
        assert!(!is_gui_agent(&cmd(&["/opt/cursor-tools/bin/aider"])));
        assert!(!is_gui_agent(&[]));
    }

    #[test]
    fn the_ui_and_events_on_stdout_exclude_each_other() {
        let err = wants_tui(true, false, &cmd(&["bash"]), &Some(PathBuf::from("-")))
            .expect_err("both want the terminal");
        assert!(err.to_string().contains("--no-tui"), "{err}");
        assert!(!wants_tui(false, true, &cmd(&["cursor"]), &None).unwrap());
    }
}
