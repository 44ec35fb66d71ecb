//! Credential files made unreadable to the session with fanotify permission marks.
//!
//! Every file a `deny_read` glob matches at start gets an inode mark for `FAN_OPEN_PERM` and
//! `FAN_OPEN_EXEC_PERM`: any open of that inode, by any path (a symlink, a hard link,
//! `/proc/self/root/...`, `..`, a dirfd, an `O_PATH` descriptor reopened through
//! `/proc/self/fd`), by any means (io_uring, a static binary) waits until this module answers.
//! Directories a glob covers as a whole (`~/.aws/**`) are also marked with `FAN_EVENT_ON_CHILD`,
//! so that files created in them during the session are covered too; those events are decided
//! by matching the opened path against the globs.
//!
//! Only processes in the session cgroup are refused; every other process is answered "allow"
//! at once (the answering thread never opens a marked file itself, which would wait on
//! itself). Every event gets an answer, on every path, or the opener would hang.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use globset::{Glob, GlobBuilder, GlobMatcher};
use tokio::sync::mpsc::UnboundedSender;

/// Files visited at most while expanding one glob (a `**` over a huge tree must not stall the
/// start of a session); beyond it the glob's expansion stops and is reported as truncated.
const MAX_WALK: usize = 200_000;

/// One `deny_read` glob, already made absolute (`~` and workspace-relative paths resolved).
#[derive(Debug, Clone)]
pub struct DenyGlob {
    /// Index of its rule in [`FileGuard::rules`].
    pub rule: usize,
    /// Absolute glob.
    pub glob: String,
    /// Absolute globs exempted from `glob` (`.env.example`).
    pub except: Vec<String>,
}

/// A rule's id and explanation.
#[derive(Debug, Clone)]
pub struct FileRuleInfo {
    /// Rule id.
    pub id: String,
    /// Explanation.
    pub why: Option<String>,
}

/// A refused open, reported to the session.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Rule index.
    pub rule: usize,
    /// The file (as the kernel names it now).
    pub path: PathBuf,
    /// Opening process.
    pub pid: i32,
}

/// Errors of setting up the marks.
#[derive(Debug, thiserror::Error)]
pub enum FanotifyError {
    /// fanotify_init failed.
    #[error(
        "fanotify_init: {0} (the kernel needs CONFIG_FANOTIFY_ACCESS_PERMISSIONS; run \
         `agent-sandbox doctor`)"
    )]
    Init(#[source] io::Error),
    /// A glob does not parse.
    #[error("deny_read glob {glob:?} of rule {rule}: {source}")]
    Glob {
        /// The glob.
        glob: String,
        /// Rule id.
        rule: String,
        /// Parse error.
        #[source]
        source: globset::Error,
    },
    /// Marking a file failed.
    #[error("marking {path}: {source}")]
    Mark {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The answering thread could not start.
    #[error("starting the fanotify thread: {0}")]
    Thread(#[source] io::Error),
}

/// The cgroup v2 filesystem fenced off for an agent that runs as root (file modes keep any
/// other agent out): opening a file that moves processes between cgroups or controls a
/// cgroup (`cgroup.procs`, `cgroup.threads`, `cgroup.kill`, `cgroup.freeze`...) anywhere
/// outside the session's own subtree is refused. The whole filesystem is marked, so cgroups
/// created during the session are covered too; every other process is answered at once.
#[derive(Debug, Clone)]
pub struct CgroupFence {
    /// The cgroup v2 mount point.
    pub mount: PathBuf,
    /// The session cgroup's directory.
    pub session: PathBuf,
    /// Index of the rule refusals name, in [`FileGuard::rules`].
    pub rule: usize,
}

/// Control files whose opening the fence refuses outside the session's subtree.
const CGROUP_CONTROL_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.kill",
    "cgroup.freeze",
    "cgroup.subtree_control",
    "cgroup.type",
    "cgroup.max.depth",
    "cgroup.max.descendants",
];

/// The fence as the answering thread applies it.
struct Fence {
    dev: u64,
    session: PathBuf,
    rule: usize,
}

impl Fence {
    /// Whether opening `path` (on the cgroup filesystem) is refused.
    fn refuses(&self, path: &Path) -> bool {
        let control = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| CGROUP_CONTROL_FILES.contains(&n));
        control && !path.starts_with(&self.session)
    }
}

/// What expanding the globs found.
#[derive(Debug, Default, Clone)]
pub struct Expansion {
    /// Files marked, per rule id.
    pub per_rule: std::collections::BTreeMap<String, usize>,
    /// Directories watched for new files.
    pub dirs: usize,
    /// Globs that matched nothing (rule id, glob).
    pub unmatched: Vec<(String, String)>,
    /// Globs whose expansion stopped at [`MAX_WALK`] entries.
    pub truncated: Vec<(String, String)>,
}

/// The running guard: marks placed, a thread answering permission events.
pub struct FileGuard {
    /// Keeps the group, and so its marks, for the whole session even if the answering thread
    /// ends early: opens of marked files then wait instead of succeeding (fail closed).
    _fan: Arc<OwnedFd>,
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
    rules: Vec<FileRuleInfo>,
    expansion: Expansion,
}

struct Matcher {
    rule: usize,
    glob: GlobMatcher,
    except: Vec<GlobMatcher>,
}

impl Matcher {
    fn is_match(&self, path: &Path) -> bool {
        self.glob.is_match(path) && !self.except.iter().any(|e| e.is_match(path))
    }
}

fn compile(glob: &str, rule: &str) -> Result<GlobMatcher, FanotifyError> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map(|gl: Glob| gl.compile_matcher())
        .map_err(|source| FanotifyError::Glob {
            glob: glob.to_string(),
            rule: rule.to_string(),
            source,
        })
}

/// What the answering thread knows.
struct Decider {
    /// Inodes marked directly, with their rule: any open of them from the session is refused.
    inodes: HashMap<(u64, u64), usize>,
    /// For events from watched directories: refuse when the opened path matches.
    globs: Vec<Matcher>,
    /// The session cgroup, relative to the cgroup2 root (as in /proc/PID/cgroup).
    cgroup: String,
    /// The cgroup filesystem's fence, for a root agent.
    fence: Option<Fence>,
}

impl Expansion {
    /// Files marked, all rules together.
    pub fn files(&self) -> usize {
        self.per_rule.values().sum()
    }
}

impl FileGuard {
    /// Expands `globs`, marks what they match and starts answering. `cgroup_rel` is the
    /// session cgroup's path relative to the cgroup v2 root, starting with `/`.
    pub fn start(
        rules: Vec<FileRuleInfo>,
        globs: &[DenyGlob],
        cgroup_rel: &str,
        refusals: UnboundedSender<Refusal>,
    ) -> Result<Self, FanotifyError> {
        Self::start_fenced(rules, globs, cgroup_rel, None, refusals)
    }

    /// As [`FileGuard::start`], and with `fence`, the cgroup filesystem fenced off.
    pub fn start_fenced(
        rules: Vec<FileRuleInfo>,
        globs: &[DenyGlob],
        cgroup_rel: &str,
        fence: Option<CgroupFence>,
        refusals: UnboundedSender<Refusal>,
    ) -> Result<Self, FanotifyError> {
        // SAFETY: plain syscall; the descriptor is owned below.
        let fd = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_CONTENT
                    | libc::FAN_CLOEXEC
                    | libc::FAN_NONBLOCK
                    | libc::FAN_UNLIMITED_QUEUE
                    | libc::FAN_UNLIMITED_MARKS,
                (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32,
            )
        };
        if fd < 0 {
            return Err(FanotifyError::Init(io::Error::last_os_error()));
        }
        // SAFETY: fanotify_init returned a new descriptor.
        let fan = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });

        let mut decider = Decider {
            inodes: HashMap::new(),
            globs: Vec::new(),
            cgroup: cgroup_rel.to_string(),
            fence: None,
        };
        if let Some(f) = fence {
            let dev = std::fs::metadata(&f.mount)
                .map_err(|source| FanotifyError::Mark {
                    path: f.mount.clone(),
                    source,
                })?
                .dev();
            mark_filesystem(&fan, &f.mount)?;
            decider.fence = Some(Fence {
                dev,
                session: f.session,
                rule: f.rule,
            });
        }
        let mut expansion = Expansion::default();
        for g in globs {
            let rule_id = rules.get(g.rule).map(|r| r.id.clone()).unwrap_or_default();
            let matcher = Matcher {
                rule: g.rule,
                glob: compile(&g.glob, &rule_id)?,
                except: g
                    .except
                    .iter()
                    .map(|e| compile(e, &rule_id))
                    .collect::<Result<_, _>>()?,
            };
            let (base, whole_dir) = literal_base(&g.glob);
            let mut found = 0usize;
            let mut visited = 0usize;
            let mut stack = vec![base.clone()];
            while let Some(p) = stack.pop() {
                let Ok(meta) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                visited += 1;
                if visited > MAX_WALK {
                    expansion.truncated.push((rule_id.clone(), g.glob.clone()));
                    break;
                }
                if meta.is_dir() {
                    // A directory the glob owns as a whole: watch it for files created later.
                    if whole_dir && (p == base || p.starts_with(&base)) {
                        mark(&fan, &p, libc::FAN_EVENT_ON_CHILD)?;
                        expansion.dirs += 1;
                    }
                    if p.file_name().is_some_and(|n| n == ".git") && p != base {
                        continue;
                    }
                    if let Ok(rd) = std::fs::read_dir(&p) {
                        stack.extend(rd.flatten().map(|e| e.path()));
                    }
                } else if meta.is_file() && matcher.is_match(&p) {
                    mark(&fan, &p, 0)?;
                    decider
                        .inodes
                        .entry((meta.dev(), meta.ino()))
                        .or_insert(g.rule);
                    *expansion.per_rule.entry(rule_id.clone()).or_default() += 1;
                    found += 1;
                }
            }
            if found == 0 && !whole_dir {
                expansion.unmatched.push((rule_id, g.glob.clone()));
            }
            decider.globs.push(matcher);
        }

        // SAFETY: plain syscall; the descriptor is owned below.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(FanotifyError::Thread(io::Error::last_os_error()));
        }
        // SAFETY: eventfd returned a new descriptor.
        let stop = unsafe { OwnedFd::from_raw_fd(efd) };
        let stop_fd = stop.as_raw_fd();
        let fan2 = Arc::clone(&fan);
        let thread = std::thread::Builder::new()
            .name("fanotify".into())
            .spawn(move || answer_loop(&fan2, stop_fd, &decider, &refusals))
            .map_err(FanotifyError::Thread)?;
        Ok(Self {
            _fan: fan,
            stop,
            thread: Some(thread),
            rules,
            expansion,
        })
    }

    /// The fanotify group's descriptor, for the watchdog to hold a duplicate of: while any
    /// descriptor of the group is open, the marks stay and an unanswered open keeps waiting
    /// (the kernel answers "allow" to pending events only when the last one closes).
    pub fn group_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self._fan.as_fd()
    }

    /// The rules, by index.
    pub fn rules(&self) -> &[FileRuleInfo] {
        &self.rules
    }

    /// What the globs matched.
    pub fn expansion(&self) -> &Expansion {
        &self.expansion
    }

    /// Stops answering and removes every mark (closing the group allows whatever waits).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), (&raw const one).cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The longest leading part of `glob` without metacharacters, and whether the glob covers
/// that directory as a whole (`dir/**`, `dir/*`, or the directory itself).
pub(crate) fn literal_base(glob: &str) -> (PathBuf, bool) {
    let mut base = PathBuf::from("/");
    let comps: Vec<&str> = glob.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in comps.iter().enumerate() {
        if c.contains(['*', '?', '[', '{']) {
            let rest = &comps[i..];
            let whole = matches!(rest, ["**"] | ["*"] | ["**", "*"]);
            return (base, whole);
        }
        base.push(c);
    }
    // No metacharacter: a plain file, or a directory protected as a whole.
    let whole = base.is_dir();
    (base, whole)
}

fn mark(fan: &OwnedFd, path: &Path, extra: u64) -> Result<(), FanotifyError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| FanotifyError::Mark {
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: marking a NUL-terminated path on our own fanotify group. FAN_MARK_DONT_FOLLOW:
    // a symlink in a credential directory is marked itself, never its target (which could be
    // anything the agent pointed it at before the session).
    let r = unsafe {
        libc::fanotify_mark(
            fan.as_raw_fd(),
            libc::FAN_MARK_ADD | libc::FAN_MARK_DONT_FOLLOW,
            libc::FAN_OPEN_PERM | libc::FAN_OPEN_EXEC_PERM | extra,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    if r < 0 {
        return Err(FanotifyError::Mark {
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Marks the whole filesystem that holds `path` for `FAN_OPEN_PERM`.
fn mark_filesystem(fan: &OwnedFd, path: &Path) -> Result<(), FanotifyError> {
    let err = |source| FanotifyError::Mark {
        path: path.to_path_buf(),
        source,
    };
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: marking a NUL-terminated path on our own fanotify group.
    let r = unsafe {
        libc::fanotify_mark(
            fan.as_raw_fd(),
            libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
            libc::FAN_OPEN_PERM,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    if r < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

/// Reads permission events until `stop` is signalled, answering every one.
fn answer_loop(fan: &OwnedFd, stop: RawFd, d: &Decider, out: &UnboundedSender<Refusal>) {
    let mut buf = vec![0u8; 64 * 1024];
    let meta_len = std::mem::size_of::<libc::fanotify_event_metadata>();
    loop {
        // SAFETY: `stop` stays open for as long as this loop runs (its owner joins us).
        let stop_fd = unsafe { BorrowedFd::borrow_raw(stop) };
        match crate::poll::either(fan.as_fd(), stop_fd) {
            Ok([_, 0]) => {}
            _ => return,
        }
        // SAFETY: reading into our own buffer.
        let n = unsafe { libc::read(fan.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            continue;
        }
        let mut off = 0usize;
        while off + meta_len <= n as usize {
            // SAFETY: the kernel wrote whole metadata records; read_unaligned copes with the
            // buffer's alignment.
            let m: libc::fanotify_event_metadata =
                unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
            if m.event_len < meta_len as u32 {
                break;
            }
            off += m.event_len as usize;
            if m.fd < 0 {
                continue; // queue overflow notice: carries no permission request
            }
            // SAFETY: the event's descriptor is ours to answer and close.
            let efd = unsafe { OwnedFd::from_raw_fd(m.fd) };
            let verdict = d.decide(&efd, m.pid);
            let resp = libc::fanotify_response {
                fd: efd.as_raw_fd(),
                response: if verdict.is_some() {
                    libc::FAN_DENY
                } else {
                    libc::FAN_ALLOW
                },
            };
            // SAFETY: writing a response struct to our fanotify group.
            unsafe {
                libc::write(
                    fan.as_raw_fd(),
                    (&raw const resp).cast(),
                    std::mem::size_of::<libc::fanotify_response>(),
                )
            };
            if let Some((rule, path)) = verdict {
                let _ = out.send(Refusal {
                    rule,
                    path,
                    pid: m.pid,
                });
            }
        }
    }
}

impl Decider {
    /// `Some((rule, path))` to refuse.
    fn decide(&self, efd: &OwnedFd, pid: i32) -> Option<(usize, PathBuf)> {
        if !crate::cgroup::pid_in(pid, &self.cgroup) {
            return None;
        }
        let path = std::fs::read_link(format!("/proc/self/fd/{}", efd.as_raw_fd()))
            .unwrap_or_else(|_| PathBuf::from("?"));
        // SAFETY: fstat on the event's descriptor into a struct we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(efd.as_raw_fd(), &mut st) } == 0 {
            if let Some(&rule) = self.inodes.get(&(st.st_dev, st.st_ino)) {
                return Some((rule, path));
            }
            if let Some(f) = self.fence.as_ref().filter(|f| f.dev == st.st_dev) {
                return f.refuses(&path).then_some((f.rule, path));
            }
        } else {
            // Cannot tell what it is: refuse (fail closed), naming the first rule.
            return Some((0, path));
        }
        self.globs
            .iter()
            .find(|m| m.is_match(&path))
            .map(|m| (m.rule, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_refuses_control_files_outside_the_session_only() {
        let f = Fence {
            dev: 0,
            session: PathBuf::from("/sys/fs/cgroup/agent-sandbox-1-x"),
            rule: 3,
        };
        assert!(f.refuses(Path::new("/sys/fs/cgroup/cgroup.procs")));
        assert!(f.refuses(Path::new("/sys/fs/cgroup/escape/cgroup.threads")));
        assert!(f.refuses(Path::new("/sys/fs/cgroup/agent-sandbox-2-y/cgroup.kill")));
        // A sibling whose name extends the session's is outside it.
        assert!(f.refuses(Path::new("/sys/fs/cgroup/agent-sandbox-1-xy/cgroup.procs")));
        assert!(!f.refuses(Path::new("/sys/fs/cgroup/agent-sandbox-1-x/cgroup.procs")));
        assert!(!f.refuses(Path::new(
            "/sys/fs/cgroup/agent-sandbox-1-x/child/cgroup.procs"
        )));
        assert!(!f.refuses(Path::new("/sys/fs/cgroup/cpu.max")));
        assert!(!f.refuses(Path::new("/sys/fs/cgroup/cgroup.controllers")));
    }

    #[test]
    fn literal_base_and_whole_directories() {
        assert_eq!(
            literal_base("/home/u/.aws/**"),
            (PathBuf::from("/home/u/.aws"), true)
        );
        assert_eq!(
            literal_base("/home/u/.ssh/id_*"),
            (PathBuf::from("/home/u/.ssh"), false)
        );
        assert_eq!(
            literal_base("/work/repo/**/.env"),
            (PathBuf::from("/work/repo"), false)
        );
    }
}
