//! Attempts of the session on the sandbox itself, as the audit log records them.
//!
//! The kernel refuses these attempts on its own (file modes, the fanotify marks, the seccomp
//! filter, signal permissions); this module makes each attempt visible. It looks at three
//! kinds of observation records and says what to add to them and whether they belong in the
//! audit log:
//!
//! - `signal` (a signal or a ptrace attach aimed at another process): always audited, with
//!   `to` naming the target (`supervisor`, `watchdog`, `session`, `outside`, `gone`,
//!   `process-group`, `every-process`), `held` when the target waits for a decision, and
//!   `tamper` when it is aimed at the sandbox, outside the session or at a held process;
//! - `denied` (an open, creat, truncate, unlink, rmdir or rename refused with `EACCES` or
//!   `EPERM`): audited when it is not a plain read of an ordinary file, with `attempt` (`write`,
//!   `create`, `truncate`, `delete`, `rename`, `open`), `resolved` (the absolute path) and
//!   `target` (`audit-log`, `audit-key`, `trust-store`, `state-dir`, `policy`, `events-file`,
//!   `cgroup` or `file`); `tamper` when the target is the sandbox's own;
//! - `exec` of a set-user-id or set-group-id file: `setid` with the file's bits and owner, the
//!   process's effective ids after the exec and `no_new_privs` (so that "no privilege was
//!   gained" is a fact in the record, not an assumption).
//!
//! Public API: [`Watch`] ([`Watch::assess`]), [`Assessment`], [`setid`]; for the session:
//! [`watch`], [`fence`], [`merge`].

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::cgroup::SessionCgroup;
use crate::events::{Event, EventData, PathCall};
use crate::fanotify::{CgroupFence, FileRuleInfo};
use crate::gate::{self, Shared};
use crate::launch::Identity;
use crate::policy::EffectivePolicy;
use crate::session::RunOptions;

/// The file rule a root agent's refused cgroup opens name.
pub const CGROUP_RULE: &str = "sandbox.cgroup";

/// The watch for a session: its supervisor (this process), its watchdog, its cgroup, its
/// state directory, policy files and events file.
pub fn watch(
    opts: &RunOptions,
    policy: &EffectivePolicy,
    cgroup: &SessionCgroup,
    watchdog: u32,
    shared: &Arc<Mutex<Shared>>,
) -> Watch {
    let policies = policy.files();
    let events = opts
        .events
        .as_ref()
        .filter(|p| p.as_os_str() != "-")
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    Watch::new(
        std::process::id(),
        watchdog,
        cgroup.relative(),
        cgroup.path().parent().unwrap_or(cgroup.path()),
        &opts.state_dir,
        policies,
        events,
        Arc::clone(shared),
    )
}

/// For an agent that runs as root: the cgroup filesystem's fence, naming a rule added to
/// `rules`. `None` for any other agent, whom file modes keep out of every other cgroup.
pub fn fence(
    identity: &Identity,
    cgroup: &SessionCgroup,
    rules: &mut Vec<FileRuleInfo>,
) -> Option<CgroupFence> {
    if identity.uid != 0 {
        return None;
    }
    let mount = cgroup.path().parent()?.to_path_buf();
    let rule = rules.len();
    rules.push(FileRuleInfo {
        id: CGROUP_RULE.into(),
        why: Some("the session may neither leave its cgroup nor control another one".into()),
    });
    Some(CgroupFence {
        mount,
        session: cgroup.path().to_path_buf(),
        rule,
    })
}

/// Adds an assessment to the JSON record of `ev`; an attempt on the sandbox is also told on
/// the supervisor's terminal.
pub fn merge(record: &mut Value, a: Assessment, ev: &Event) {
    if a.tamper {
        let what = match &ev.data {
            EventData::Signal { syscall, .. } => format!(
                "{syscall} {} to {}",
                record["fields"]["signal"]
                    .as_str()
                    .or(record["fields"]["request"].as_str())
                    .unwrap_or(""),
                a.fields.get("to").and_then(Value::as_str).unwrap_or("?"),
            ),
            EventData::Denied {
                call: PathCall { path, .. },
                ..
            } => format!(
                "{} of {}",
                a.fields
                    .get("attempt")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                a.fields
                    .get("resolved")
                    .and_then(Value::as_str)
                    .unwrap_or(if path.is_empty() { "a cgroup" } else { path })
            ),
            _ => ev.kind.name().to_string(),
        };
        let result = record["fields"]["errno"].as_str().unwrap_or("not refused");
        eprintln!(
            "agent-sandbox: attempt on the sandbox by {} (pid {}): {what}: {result}",
            ev.comm, ev.pid
        );
    }
    if let Some(f) = record.get_mut("fields").and_then(Value::as_object_mut) {
        f.extend(a.fields);
    }
}

const O_ACCMODE: u32 = 3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;
const AT_FDCWD: i32 = -100;

/// What the session's records are compared against.
pub struct Watch {
    /// The supervisor's pid.
    pub supervisor: u32,
    /// The watchdog's pid.
    pub watchdog: u32,
    /// The session cgroup as `/proc/PID/cgroup` names it.
    pub cgroup_rel: String,
    /// The cgroup v2 mount point.
    pub cgroup_mount: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The policy files in use (repository, user).
    pub policies: Vec<PathBuf>,
    /// The events file, when one is written.
    pub events_file: Option<PathBuf>,
    /// Held actions (which processes wait for a decision).
    pub shared: Arc<Mutex<Shared>>,
}

/// What to add to one record, and whether the audit log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Fields merged into the record's `fields`.
    pub fields: Map<String, Value>,
    /// The record goes to the audit log.
    pub audit: bool,
    /// The record is an attempt on the sandbox itself (also in `fields.tamper`).
    pub tamper: bool,
}

impl Watch {
    /// Builds a watch; paths are made canonical where they exist, so that they compare with
    /// the canonical paths [`Watch::assess`] resolves.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        supervisor: u32,
        watchdog: u32,
        cgroup_rel: &str,
        cgroup_mount: &Path,
        state_dir: &Path,
        policies: Vec<PathBuf>,
        events_file: Option<PathBuf>,
        shared: Arc<Mutex<Shared>>,
    ) -> Self {
        Watch {
            supervisor,
            watchdog,
            cgroup_rel: cgroup_rel.to_string(),
            cgroup_mount: canonical(cgroup_mount),
            state_dir: canonical(state_dir),
            policies: policies.iter().map(|p| canonical(p)).collect(),
            events_file: events_file.map(|p| canonical(&p)),
            shared,
        }
    }

    /// What to add to `ev`'s record: `None` for records this module has nothing to say about.
    pub fn assess(&self, ev: &Event) -> Option<Assessment> {
        match &ev.data {
            EventData::Signal {
                syscall,
                target,
                target_tid,
                ..
            } => Some(self.signal(ev.pid, syscall, *target, *target_tid)),
            EventData::Denied { call, .. } => self.denied(
                ev.pid,
                call.syscall,
                (&call.path, call.dirfd),
                call.target.as_deref().map(|t| (t, call.target_dirfd)),
                call.flags,
            ),
            EventData::Exec {
                filename,
                ret: Some(0),
                ..
            } => setid(ev.pid, ev.uid, filename).map(|s| {
                let mut fields = Map::new();
                fields.insert("setid".into(), s);
                Assessment {
                    fields,
                    audit: true,
                    tamper: false,
                }
            }),
            _ => None,
        }
    }

    fn signal(&self, sender: u32, syscall: &str, target: i32, target_tid: i32) -> Assessment {
        let mut fields = Map::new();
        // The process (or group) the call aims at.
        let pid: Option<u32> = match syscall {
            "tkill" => tgid_of(target),
            "pidfd_send_signal" => pidfd_target(sender, target),
            _ => u32::try_from(target).ok().filter(|&p| p > 0),
        };
        let (to, group_hits_sandbox) = match (syscall, target) {
            ("kill" | "rt_sigqueueinfo", -1) => ("every-process", true),
            ("kill" | "rt_sigqueueinfo", t) if t <= 0 => {
                let pgid = if t == 0 {
                    pgid_of(sender)
                } else {
                    u32::try_from(-i64::from(t)).ok()
                };
                let hits = pgid.is_some_and(|g| {
                    pgid_of(self.supervisor) == Some(g) || pgid_of(self.watchdog) == Some(g)
                });
                ("process-group", hits)
            }
            _ => (self.whose(pid), false),
        };
        if let Some(p) = pid
            && syscall != "kill"
            && syscall != "ptrace"
        {
            fields.insert("resolved_pid".into(), json!(p));
        }
        let held = {
            let shared = gate::lock(&self.shared);
            pid.is_some_and(|p| shared.is_held(p))
                || u32::try_from(target_tid).is_ok_and(|t| t > 0 && shared.is_held(t))
                || (syscall == "tkill" && u32::try_from(target).is_ok_and(|t| shared.is_held(t)))
        };
        let tamper =
            held || group_hits_sandbox || matches!(to, "supervisor" | "watchdog" | "outside");
        fields.insert("to".into(), json!(to));
        fields.insert("held".into(), json!(held));
        fields.insert("tamper".into(), json!(tamper));
        Assessment {
            fields,
            audit: true,
            tamper,
        }
    }

    /// Who process `pid` is, from the session's point of view.
    fn whose(&self, pid: Option<u32>) -> &'static str {
        let Some(pid) = pid else {
            return "gone";
        };
        if pid == self.supervisor {
            return "supervisor";
        }
        if pid == self.watchdog {
            return "watchdog";
        }
        match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            Err(_) => "gone",
            Ok(text) => {
                let inside = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("0::"))
                    .any(|cg| {
                        cg == self.cgroup_rel
                            || cg
                                .strip_prefix(self.cgroup_rel.as_str())
                                .is_some_and(|rest| rest.starts_with('/'))
                    });
                if inside { "session" } else { "outside" }
            }
        }
    }

    fn denied(
        &self,
        pid: u32,
        syscall: &str,
        (path, dirfd): (&str, i32),
        rename_to: Option<(&str, i32)>,
        flags: u32,
    ) -> Option<Assessment> {
        let attempt = match syscall {
            "open" | "openat" | "openat2" => {
                if flags & O_TRUNC != 0 {
                    "truncate"
                } else if flags & O_APPEND != 0 {
                    "write"
                } else if flags & O_CREAT != 0 {
                    "create"
                } else if flags & O_ACCMODE != 0 {
                    "write"
                } else {
                    "open"
                }
            }
            "creat" => "create",
            "truncate" => "truncate",
            "unlink" | "unlinkat" | "rmdir" => "delete",
            "clone3" => "clone-into-cgroup",
            _ => "rename",
        };
        let resolved = if path.is_empty() && dirfd >= 0 {
            std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()
        } else {
            resolve(pid, dirfd, path)
        };
        let mut target = match resolved.as_deref() {
            // CLONE_INTO_CGROUP names a cgroup by definition, even once its fd is gone.
            _ if syscall == "clone3" => "cgroup",
            Some(p) => self.what(p),
            None => "file",
        };
        let mut fields = Map::new();
        if let Some((to, to_dirfd)) = rename_to {
            let to_resolved = resolve(pid, to_dirfd, to);
            if target == "file"
                && let Some(t) = to_resolved.as_deref()
            {
                target = self.what(t);
            }
            if let Some(t) = to_resolved {
                fields.insert("resolved_target".into(), json!(t));
            }
        }
        // A plain read of an ordinary file that failed is no attempt on anything.
        if target == "file" && attempt == "open" {
            return None;
        }
        let tamper = target != "file";
        fields.insert("attempt".into(), json!(attempt));
        if let Some(r) = resolved {
            fields.insert("resolved".into(), json!(r));
        }
        fields.insert("target".into(), json!(target));
        fields.insert("tamper".into(), json!(tamper));
        Some(Assessment {
            fields,
            audit: true,
            tamper,
        })
    }

    /// What an absolute, canonical path is to the sandbox.
    fn what(&self, p: &Path) -> &'static str {
        if self.policies.iter().any(|q| q == p) {
            return "policy";
        }
        if self.events_file.as_deref() == Some(p) {
            return "events-file";
        }
        if p.starts_with(&self.state_dir) {
            let rel = p.strip_prefix(&self.state_dir).unwrap_or(p);
            return match rel.components().next().and_then(|c| c.as_os_str().to_str()) {
                Some("audit") => "audit-log",
                Some("keys") => "audit-key",
                Some("trust") => "trust-store",
                _ => "state-dir",
            };
        }
        if p.starts_with(&self.cgroup_mount) {
            return "cgroup";
        }
        "file"
    }
}

/// Facts about the exec of a set-user-id or set-group-id file by `pid` (`filename` as passed
/// to exec, `uid` the real uid the exec was recorded with): `None` for any other file. Read
/// from `/proc/PID/status` right after the exec returned (`"from": "proc"`). A process that
/// already exited shows nothing there; then what the session guarantees is reported
/// (`"from": "no_new_privs"`): every process of the tree has `no_new_privs`, set before the
/// first exec and never cleared, so the kernel ignored the set-id bits and the effective uid
/// stayed the real one.
pub fn setid(pid: u32, uid: u32, filename: &str) -> Option<Value> {
    let meta = std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .or_else(|| {
            filename
                .starts_with('/')
                .then(|| std::fs::metadata(filename).ok())
                .flatten()
        })?;
    let mode = meta.mode();
    if mode & 0o6000 == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
    let ids = |key: &str| -> Option<Vec<u32>> {
        status
            .as_deref()?
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
    };
    let uids = ids("Uid:");
    let gids = ids("Gid:");
    let nnp = ids("NoNewPrivs:").and_then(|v| v.first().copied());
    // Real, effective, saved, filesystem.
    let (ruid, euid) = match uids.as_deref() {
        Some([r, e, ..]) => (Some(*r), Some(*e)),
        _ => (None, None),
    };
    let (rgid, egid) = match gids.as_deref() {
        Some([r, e, ..]) => (Some(*r), Some(*e)),
        _ => (None, None),
    };
    let gained = match (ruid, euid, rgid, egid) {
        (Some(ru), Some(eu), Some(rg), Some(eg)) => json!(ru != eu || rg != eg),
        _ => Value::Null,
    };
    if status.is_none() {
        return Some(json!({
            "setuid": mode & 0o4000 != 0,
            "setgid": mode & 0o2000 != 0,
            "file_uid": meta.uid(),
            "file_gid": meta.gid(),
            "euid": uid,
            "egid": Value::Null,
            "no_new_privs": true,
            "privilege_gained": false,
            "from": "no_new_privs",
        }));
    }
    Some(json!({
        "from": "proc",
        "setuid": mode & 0o4000 != 0,
        "setgid": mode & 0o2000 != 0,
        "file_uid": meta.uid(),
        "file_gid": meta.gid(),
        "euid": euid,
        "egid": egid,
        "no_new_privs": nnp.map(|n| n == 1),
        "privilege_gained": gained,
    }))
}

/// The path a call named, made absolute against its dirfd or the process's cwd, with its
/// parent directory canonical when it exists (the final component as given). `None` for a
/// relative path of a process that is gone.
fn resolve(pid: u32, dirfd: i32, path: &str) -> Option<PathBuf> {
    if path.is_empty() {
        return None;
    }
    let p = Path::new(path);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        let base = if dirfd == AT_FDCWD {
            format!("/proc/{pid}/cwd")
        } else {
            format!("/proc/{pid}/fd/{dirfd}")
        };
        std::fs::read_link(base).ok()?.join(p)
    };
    let name = full.file_name()?;
    if name == ".." {
        return Some(std::fs::canonicalize(&full).unwrap_or(full));
    }
    // A parent that does not exist (any more) is kept as given.
    let parent = full.parent()?;
    let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    Some(parent.join(name))
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The process of thread `tid`.
fn tgid_of(tid: i32) -> Option<u32> {
    let tid = u32::try_from(tid).ok().filter(|&t| t > 0)?;
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// The process a pidfd of process `holder` refers to (from its fdinfo).
fn pidfd_target(holder: u32, fd: i32) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/{holder}/fdinfo/{fd}")).ok()?;
    let pid: i64 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    u32::try_from(pid).ok().filter(|&p| p > 0)
}

/// Process group of `pid` (field 5 of `/proc/PID/stat`).
fn pgid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_sandbox_common::EventKind;

    fn watch(state: &Path) -> Watch {
        Watch::new(
            std::process::id(),
            u32::MAX - 1,
            "/agent-sandbox-test-none",
            Path::new("/sys/fs/cgroup"),
            state,
            vec![state.join("policy.toml")],
            Some(state.join("events.jsonl")),
            Arc::default(),
        )
    }

    fn event(data: EventData) -> Event {
        Event {
            ktime_ns: 1,
            kind: EventKind::Denied,
            pid: std::process::id(),
            tid: std::process::id(),
            uid: 65534,
            comm: "bash".into(),
            truncated: false,
            read_error: false,
            data,
        }
    }

    fn denied(syscall: &'static str, path: &str, flags: u32) -> Event {
        event(EventData::Denied {
            call: PathCall {
                syscall,
                path: path.into(),
                target: None,
                dirfd: AT_FDCWD,
                target_dirfd: AT_FDCWD,
                flags,
            },
            ret: -13,
        })
    }

    #[test]
    fn refused_calls_name_what_they_aimed_at() {
        let tmp = std::env::temp_dir().join(format!("tamper-unit-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("audit")).unwrap();
        let w = watch(&tmp);
        let log = tmp.join("audit/s.jsonl");
        let a = w
            .assess(&denied("openat", log.to_str().unwrap(), 0o1 | 0o2000))
            .expect("a write to the audit log is recorded");
        assert_eq!(a.fields["target"], "audit-log");
        assert_eq!(a.fields["attempt"], "write");
        assert!(a.audit && a.tamper);
        let a = w
            .assess(&denied(
                "openat",
                log.to_str().unwrap(),
                0o1 | 0o100 | 0o2000,
            ))
            .unwrap();
        assert_eq!(a.fields["attempt"], "write", "appending");
        let a = w
            .assess(&denied("openat", log.to_str().unwrap(), 0o1 | 0o100))
            .unwrap();
        assert_eq!(a.fields["attempt"], "create");
        let a = w
            .assess(&denied("openat", log.to_str().unwrap(), 0o1 | 0o1000))
            .unwrap();
        assert_eq!(a.fields["attempt"], "truncate");
        // Even reading the state directory is recorded.
        let a = w
            .assess(&denied("openat", tmp.join("keys/k").to_str().unwrap(), 0))
            .unwrap();
        assert_eq!(a.fields["target"], "audit-key");
        assert_eq!(a.fields["attempt"], "open");
        let a = w
            .assess(&denied(
                "unlink",
                tmp.join("policy.toml").to_str().unwrap(),
                0,
            ))
            .unwrap();
        assert_eq!(
            (&a.fields["target"], &a.fields["attempt"]),
            (&json!("policy"), &json!("delete"))
        );
        let a = w
            .assess(&denied("truncate", "/sys/fs/cgroup/cgroup.procs", 0))
            .unwrap();
        assert_eq!(a.fields["target"], "cgroup");
        // A failed write elsewhere is recorded, not as an attempt on the sandbox; a failed
        // read of an ordinary file is not recorded at all.
        let a = w.assess(&denied("openat", "/etc/shadow-x", 0o101)).unwrap();
        assert_eq!(a.fields["target"], "file");
        assert!(a.audit && !a.tamper);
        assert_eq!(w.assess(&denied("openat", "/etc/shadow", 0)), None);
        // A relative path resolves against the process's cwd.
        let cwd = std::env::current_dir().unwrap();
        let a = w.assess(&denied("creat", "x/y", 0o1101)).unwrap();
        assert_eq!(a.fields["resolved"], json!(cwd.join("x/y")), "{a:?}");
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn signals_name_their_target() {
        let tmp = std::env::temp_dir();
        let w = watch(&tmp);
        let sig = |syscall: &'static str, target: i32| {
            w.assess(&event(EventData::Signal {
                syscall,
                target,
                target_tid: 0,
                sig: 9,
                ret: -1,
            }))
            .unwrap()
        };
        let a = sig("kill", std::process::id() as i32);
        assert_eq!(a.fields["to"], "supervisor");
        assert!(a.tamper && a.audit);
        // pid 1 is outside every session.
        assert_eq!(sig("kill", 1).fields["to"], "outside");
        assert_eq!(sig("ptrace", 1).fields["to"], "outside");
        assert_eq!(sig("kill", -1).fields["to"], "every-process");
        assert!(sig("kill", -1).tamper);
        // Our own process group is the supervisor's.
        assert!(sig("kill", 0).tamper);
        assert_eq!(sig("kill", i32::MAX).fields["to"], "gone");
        assert!(!sig("kill", i32::MAX).tamper);
        // A held process.
        gate::lock(&w.shared).set_held(7, vec![424_242]);
        let a = sig("tgkill", 424_242);
        assert_eq!(a.fields["held"], true);
        assert!(a.tamper);
        gate::lock(&w.shared).clear_held(7);
        assert_eq!(sig("tgkill", 424_242).fields["held"], false);
    }

    #[test]
    fn setid_reports_set_id_files_only() {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(setid(std::process::id(), 0, "/proc/self/exe"), None);
        let f = std::env::temp_dir().join(format!("tamper-setid-{}", std::process::id()));
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o6755)).unwrap();
        // No process has this pid: the file named is what is looked at, and the session's
        // no_new_privs is what the privileges are known from.
        let v = setid(u32::MAX - 3, 1234, f.to_str().unwrap()).expect("a set-id file is reported");
        let _ = std::fs::remove_file(&f);
        assert_eq!((&v["setuid"], &v["setgid"]), (&json!(true), &json!(true)));
        // SAFETY: getuid has no preconditions.
        assert_eq!(v["file_uid"], json!(unsafe { libc::getuid() }));
        assert_eq!(v["euid"], json!(1234));
        assert_eq!(v["no_new_privs"], json!(true));
        assert_eq!(v["privilege_gained"], json!(false));
        assert_eq!(v["from"], json!("no_new_privs"));
        assert_eq!(setid(u32::MAX - 3, 0, "relative/name"), None);
    }
}
