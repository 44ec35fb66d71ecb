//! The session cgroup: one cgroup v2 directory per session, created under the cgroup v2 root
//! (found in /proc/self/mountinfo, never hard-coded), holding the agent's whole process tree.
//!
//! Membership is what every other layer keys on: the eBPF probes filter on the cgroup id, and
//! `cgroup.kill` ends every process of the tree at once, daemons included.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Prefix of every session cgroup's directory name; `doctor` uses it to find leftovers.
pub const SESSION_PREFIX: &str = "agent-sandbox-";

/// Errors of cgroup handling.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 filesystem is mounted.
    #[error(
        "no cgroup v2 hierarchy is mounted (no `cgroup2` entry in /proc/self/mountinfo); \
         mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified` (or boot with \
         systemd.unified_cgroup_hierarchy=1)"
    )]
    NoCgroup2,
    /// A file operation on a cgroup path failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The cgroup still had processes after `cgroup.kill` and the wait.
    #[error("cgroup {0} still has processes after cgroup.kill")]
    NotEmpty(PathBuf),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A cgroup2 mount point and the cgroup path it exposes as its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2Mount {
    /// Where the hierarchy is mounted (e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified).
    pub mount_point: PathBuf,
    /// The cgroup path of the mount's root inside the hierarchy ("/" unless inside a cgroup
    /// namespace or a bind mount of a subtree).
    pub root: String,
}

impl Cgroup2Mount {
    /// Finds the cgroup2 mount in /proc/self/mountinfo.
    pub fn find() -> Result<Self, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(io_err("reading", path))?;
        parse_mountinfo(&text).ok_or(CgroupError::NoCgroup2)
    }

    /// Depth of a directory of this mount below the hierarchy's true root, as the kernel counts
    /// levels for `bpf_get_current_ancestor_cgroup_id` (the root cgroup is level 0).
    pub fn level_of(&self, dir: &Path) -> Option<u32> {
        let rel = dir.strip_prefix(&self.mount_point).ok()?;
        let below_root = self.root.split('/').filter(|c| !c.is_empty()).count();
        Some((below_root + rel.components().count()) as u32)
    }
}

/// Picks the first cgroup2 entry of a mountinfo text. Fields: id parent major:minor root
/// mount-point options... `-` fstype source super-options. Octal escapes (`\040`) in paths are
/// decoded.
pub fn parse_mountinfo(text: &str) -> Option<Cgroup2Mount> {
    text.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = pre.split_whitespace().collect();
        Some(Cgroup2Mount {
            root: unescape_mount_path(fields.get(3)?),
            mount_point: PathBuf::from(unescape_mount_path(fields.get(4)?)),
        })
    })
}

/// Decodes the octal escapes (`\040` for a space) that /proc/self/mountinfo and
/// /proc/self/mounts use in paths.
pub fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = u32::from(d[0] - b'0') * 64
                    + u32::from(d[1] - b'0') * 8
                    + u32::from(d[2] - b'0');
                // \400 and above are not escapes the kernel writes; keep them verbatim.
                match u8::try_from(v) {
                    Ok(byte) => out.push(byte),
                    Err(_) => out.extend_from_slice(&b[i..i + 4]),
                }
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A session cgroup that this process created and will remove.
#[derive(Debug)]
pub struct SessionCgroup {
    path: PathBuf,
    id: u64,
    level: u32,
    relative: String,
}

impl SessionCgroup {
    /// Creates `<cgroup2 root>/agent-sandbox-<pid>-<nanos>`.
    pub fn create(mount: &Cgroup2Mount) -> Result<Self, CgroupError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("{SESSION_PREFIX}{}-{nanos:08x}", std::process::id());
        let path = mount.mount_point.join(&name);
        fs::create_dir(&path).map_err(io_err("creating cgroup", &path))?;
        let meta = fs::metadata(&path).map_err(io_err("stat of", &path))?;
        let level = mount.level_of(&path).unwrap_or(1);
        let relative = format!("{}/{name}", mount.root.trim_end_matches('/'));
        Ok(Self {
            relative,
            // On cgroup2 the kernfs inode number is the cgroup id that BPF helpers return.
            id: meta.ino(),
            level,
            path,
        })
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cgroup's path as `/proc/PID/cgroup` shows it (`0::/agent-sandbox-...`), relative to
    /// the hierarchy root.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// The cgroup id (as returned by `bpf_get_current_cgroup_id`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Depth below the hierarchy root.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Path of `cgroup.procs`, which lists the member processes.
    pub fn procs_path(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Pids currently in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let p = self.procs_path();
        let text = fs::read_to_string(&p).map_err(io_err("reading", &p))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Whether any process is left (from `cgroup.events`' `populated` key).
    pub fn populated(&self) -> Result<bool, CgroupError> {
        let p = self.path.join("cgroup.events");
        let text = fs::read_to_string(&p).map_err(io_err("reading", &p))?;
        Ok(text
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["populated", "1"]))
    }

    /// Sends `sig` to every process currently in the cgroup.
    pub fn signal_all(&self, sig: i32) -> Result<(), CgroupError> {
        for pid in self.pids()? {
            // SAFETY: kill(2) with a pid read from our own cgroup; ESRCH for a process that
            // exited meanwhile is harmless.
            unsafe { libc::kill(pid, sig) };
        }
        Ok(())
    }

    /// Waits up to `timeout` for the cgroup to become empty; true when it did.
    pub fn wait_empty(&self, timeout: Duration) -> Result<bool, CgroupError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.populated()? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills every process in the cgroup (`cgroup.kill`) and waits until it is empty.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        kill_now(&self.path)?;
        if self.wait_empty(Duration::from_secs(5))? {
            Ok(())
        } else {
            Err(CgroupError::NotEmpty(self.path.clone()))
        }
    }

    /// Kills whatever is left and removes the directory. A directory already gone (the
    /// watchdog removed it on an error path of the supervisor) is not an error.
    pub fn destroy(self) -> Result<(), CgroupError> {
        match self.populated() {
            Ok(true) => self.kill_all()?,
            Ok(false) => {}
            Err(CgroupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        remove_dir_retry(&self.path, Duration::from_secs(2))
    }
}

/// rmdir of a just-emptied cgroup can briefly fail with EBUSY while the kernel finishes
/// releasing exiting tasks.
pub fn remove_dir_retry(path: &Path, patience: Duration) -> Result<(), CgroupError> {
    let deadline = Instant::now() + patience;
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(io_err("removing cgroup", path)(e)),
        }
    }
}

/// Freezes (`true`) or thaws the tree of the cgroup at `dir` (`cgroup.freeze`).
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let p = dir.join("cgroup.freeze");
    fs::write(&p, if frozen { "1" } else { "0" }).map_err(io_err("writing", &p))
}

/// Kills every process of the cgroup at `dir` at once (`cgroup.kill`), without waiting.
pub fn kill_now(dir: &Path) -> Result<(), CgroupError> {
    let p = dir.join("cgroup.kill");
    fs::write(&p, "1").map_err(io_err("writing", &p))
}

/// Whether `pid` is in the cgroup `relative` (a path below the cgroup2 mount, as in
/// `/proc/PID/cgroup`) or below it. A process whose cgroup cannot be read has exited (or is
/// being reaped): nothing to protect from it, but nothing to grant either, so it counts as
/// inside.
pub fn pid_in(pid: i32, relative: &str) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return true;
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("0::"))
        .any(|cg| {
            cg == relative
                || cg
                    .strip_prefix(relative)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Kills whatever is left in a leftover session cgroup and removes it (`agent-sandbox cleanup`).
pub fn remove_leftover(dir: &Path) -> Result<(), CgroupError> {
    let kill = dir.join("cgroup.kill");
    if kill.exists() {
        fs::write(&kill, "1").map_err(io_err("writing", &kill))?;
    }
    remove_dir_retry(dir, Duration::from_secs(5))
}

/// Session cgroups left on the machine by earlier sessions whose supervisor is gone.
pub fn leftovers(mount: &Cgroup2Mount) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(&mount.mount_point) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let pid: i32 = name
                .strip_prefix(SESSION_PREFIX)?
                .split('-')
                .next()?
                .parse()
                .ok()?;
            // A live supervisor owns its cgroup; only report ones whose supervisor is gone.
            (!Path::new(&format!("/proc/{pid}")).exists()).then(|| e.path())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const UNIFIED_NS: &str = "\
25 1 0:22 / / rw - ext4 /dev/root rw
30 25 0:26 /user.slice/x /sys/fs/cgroup\\040v2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn finds_hybrid_mount() {
        let m = parse_mountinfo(HYBRID).expect("cgroup2 entry");
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m.root, "/");
        assert_eq!(
            m.level_of(Path::new("/sys/fs/cgroup/unified/agent-sandbox-1")),
            Some(1)
        );
    }

    #[test]
    fn decodes_escapes_and_nested_roots() {
        let m = parse_mountinfo(UNIFIED_NS).expect("cgroup2 entry");
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup v2"));
        assert_eq!(m.root, "/user.slice/x");
        assert_eq!(m.level_of(Path::new("/sys/fs/cgroup v2/s")), Some(3));
    }

    #[test]
    fn out_of_range_escape_is_kept_verbatim() {
        assert_eq!(unescape_mount_path("/a\\777b\\040c"), "/a\\777b c");
    }

    #[test]
    fn no_cgroup2_is_none() {
        assert_eq!(
            parse_mountinfo("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
            None
        );
    }
}
