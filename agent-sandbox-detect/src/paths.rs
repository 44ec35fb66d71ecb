//! Lexical path resolution and classification of deletion targets.
//!
//! Nothing touches the file system: `..` is resolved lexically and symlinks are not followed.

use std::cell::Cell;
use std::path::{Component, Path, PathBuf};

use crate::words::Arg;

thread_local! {
    /// Set when an analysis consulted a [`Cwd::Deferred`] working directory.
    static DEFERRED_CWD_READ: Cell<bool> = const { Cell::new(false) };
}

/// The working directory as an analysis knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cwd {
    /// Known (absolute, normalised).
    Known(PathBuf),
    /// Unknown: after `cd $X`, on a remote host, or not given.
    Unknown,
    /// The process's real directory, not read yet because reading it costs a system call.
    /// Every read goes through [`Cwd::get`] or [`Cwd::same`], which record that the
    /// directory mattered, so that the caller reads it and classifies again: a verdict reached
    /// without any such read is the verdict for every directory.
    Deferred,
}

impl Cwd {
    /// `Known` for `Some`, `Unknown` for `None`.
    pub fn from_option(p: Option<PathBuf>) -> Cwd {
        p.map_or(Cwd::Unknown, Cwd::Known)
    }

    /// The directory, if known. Reading a deferred one records that it was needed.
    pub fn get(&self) -> Option<&PathBuf> {
        match self {
            Cwd::Known(p) => Some(p),
            Cwd::Unknown => None,
            Cwd::Deferred => {
                DEFERRED_CWD_READ.with(|r| r.set(true));
                None
            }
        }
    }

    /// Whether two directories are the same. Two deferred ones are (both are the process's);
    /// a deferred one against another needs the real value, which is recorded as a read.
    pub fn same(&self, other: &Cwd) -> bool {
        match (self, other) {
            (Cwd::Deferred, Cwd::Deferred) => true,
            (Cwd::Deferred, _) | (_, Cwd::Deferred) => {
                DEFERRED_CWD_READ.with(|r| r.set(true));
                false
            }
            (a, b) => a == b,
        }
    }

    /// Clears the record of deferred reads (before an analysis).
    pub fn reset_deferred_reads() {
        DEFERRED_CWD_READ.with(|r| r.set(false));
    }

    /// Whether a deferred directory was read since the last reset.
    pub fn deferred_was_read() -> bool {
        DEFERRED_CWD_READ.with(Cell::get)
    }
}

/// Where a command runs, as far as paths are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    /// Working directory.
    pub cwd: Cwd,
    /// The workspace root; `None` on remote hosts and when the caller has none.
    pub workspace: Option<PathBuf>,
    /// Home directory.
    pub home: Option<PathBuf>,
    /// New root set by `chroot`: absolute paths are resolved under it.
    pub root: Option<PathBuf>,
}

impl Scope {
    /// The scope on another machine or in a container: no workspace, unknown cwd.
    pub fn remote(&self) -> Scope {
        Scope {
            cwd: Cwd::Unknown,
            workspace: None,
            home: self.home.clone(),
            root: None,
        }
    }
}

/// Top-level directories whose removal (or whose whole contents' removal) is never legitimate.
const SYSTEM_TOP: &[&str] = &[
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt",
    "proc", "root", "run", "sbin", "snap", "srv", "sys", "usr", "var",
];

/// Directories holding scratch files.
const TEMP_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

/// Where a deletion target lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// Inside a temp directory.
    Temp,
    /// Inside the workspace.
    Inside,
    /// Outside the workspace.
    Outside,
    /// The workspace's `.git` (or inside it).
    GitDir,
    /// The workspace root, its whole contents, or a directory containing it.
    WorkspaceRoot,
    /// `/`, a top-level system directory or the home directory (or their whole contents).
    Catastrophic,
}

/// A resolved target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A known path (possibly a glob) in a class.
    Known { path: PathBuf, class: Class },
    /// Unknown, but known to lie under `dir` (of class `class`).
    Under { dir: PathBuf, class: Class },
    /// Nothing known.
    Unknown,
}

/// True if the text has unquoted-glob-looking characters.
pub(crate) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Lexically normalises an absolute path (`/a/./b/../c` -> `/a/c`).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Resolves a path argument to an absolute, normalised path (glob characters kept), or `None`
/// when it is relative and the cwd is unknown. A leading `~` means home.
pub(crate) fn resolve(text: &str, scope: &Scope) -> Option<PathBuf> {
    let expanded: PathBuf = if text == "~" {
        scope.home.clone()?
    } else if let Some(rest) = text.strip_prefix("~/") {
        scope.home.clone()?.join(rest)
    } else {
        PathBuf::from(text)
    };
    let abs = if expanded.is_absolute() {
        match &scope.root {
            Some(r) => r.join(expanded.strip_prefix("/").unwrap_or(&expanded)),
            None => expanded,
        }
    } else {
        scope.cwd.get()?.join(expanded)
    };
    Some(normalize(&abs))
}

/// Whether a glob component selects (nearly) everything in its directory.
fn is_wide_glob(c: &str) -> bool {
    matches!(
        c,
        "*" | ".*" | "*.*" | "**" | ".[!.]*" | "{*,.*}" | "{.*,*}" | "?*"
    )
}

/// Classifies a resolved path; `contents` means "every entry of this directory".
fn classify_path(p: &Path, scope: &Scope) -> Class {
    // Judged against the real root: inside a chroot, `/usr` is just some directory.
    let rel = p.strip_prefix("/").unwrap_or(p);
    let depth = rel.components().count();
    if depth == 0 {
        return Class::Catastrophic;
    }
    if depth == 1 && rel.to_str().is_some_and(|s| SYSTEM_TOP.contains(&s)) {
        return Class::Catastrophic;
    }
    if scope.home.as_deref() == Some(p) {
        return Class::Catastrophic;
    }
    if let Some(ws) = scope.workspace.as_deref() {
        if p == ws || ws.starts_with(p) {
            return Class::WorkspaceRoot;
        }
        if let Ok(inner) = p.strip_prefix(ws) {
            if inner.starts_with(".git") {
                return Class::GitDir;
            }
            return Class::Inside;
        }
    }
    if scope.home.as_deref().is_some_and(|h| h.starts_with(p)) {
        return Class::Catastrophic;
    }
    if TEMP_DIRS
        .iter()
        .any(|t| p.starts_with(t) && p != Path::new(t))
    {
        return Class::Temp;
    }
    Class::Outside
}

/// Whether `p` is one of the scratch directories themselves (`/tmp`, `/var/tmp`, `/dev/shm`).
pub(crate) fn is_temp_dir(p: &Path) -> bool {
    TEMP_DIRS.iter().any(|t| p == Path::new(t))
}

/// Classifies a deletion target argument.
pub(crate) fn target(arg: &Arg, scope: &Scope) -> Target {
    if !arg.known {
        return match &arg.under {
            Some(dir) => match resolve(&dir.to_string_lossy(), scope) {
                Some(d) => Target::Under {
                    class: classify_path(&d, scope),
                    dir: d,
                },
                None => Target::Unknown,
            },
            None => Target::Unknown,
        };
    }
    let Some(path) = resolve(&arg.text, scope) else {
        return Target::Unknown;
    };
    if !has_glob(&arg.text) {
        return Target::Known {
            class: classify_path(&path, scope),
            path,
        };
    }
    // Split at the first glob component: the prefix is the directory the glob selects in.
    let mut base = PathBuf::from("/");
    let comps: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    for (i, c) in comps.iter().enumerate() {
        if has_glob(c) {
            let last = i + 1 == comps.len();
            let class = if last && is_wide_glob(c) {
                classify_path(&base, scope)
            } else if base == Path::new("/") {
                // Any glob right under / may select system directories.
                Class::Catastrophic
            } else {
                match classify_path(&base, scope) {
                    // Some entries of home / the workspace root, not all of them.
                    Class::Catastrophic => Class::Outside,
                    Class::WorkspaceRoot if scope.workspace.as_deref() == Some(base.as_path()) => {
                        Class::Inside
                    }
                    other => other,
                }
            };
            return Target::Known { path, class };
        }
        base.push(c);
    }
    Target::Known {
        class: classify_path(&path, scope),
        path,
    }
}

/// Whether a path is a block/character device other than the harmless ones.
pub(crate) fn is_disk_device(text: &str) -> bool {
    let Some(dev) = text.strip_prefix("/dev/") else {
        return false;
    };
    let harmless = [
        "null", "zero", "full", "random", "urandom", "stdout", "stderr", "stdin", "tty", "ptmx",
        "console",
    ];
    !(harmless.contains(&dev)
        || dev.starts_with("fd/")
        || dev.starts_with("pts/")
        // bash's network redirections (`> /dev/tcp/host/port`), not files at all
        || dev.starts_with("tcp/")
        || dev.starts_with("udp/")
        || dev.starts_with("shm/")
        || dev.starts_with("tty")
        || dev.starts_with("mqueue"))
}

/// Whether a path lies in a system directory whose files must not be truncated.
pub(crate) fn is_system_file(p: &Path) -> bool {
    let sys = [
        "/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/var/lib",
        "/var/log", "/opt", "/root", "/srv",
    ];
    sys.iter().any(|s| p.starts_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            cwd: Cwd::Known("/home/dev/repo".into()),
            workspace: Some("/home/dev/repo".into()),
            home: Some("/home/dev".into()),
            root: None,
        }
    }

    fn class(s: &str) -> Option<Class> {
        match target(&Arg::lit(s), &scope()) {
            Target::Known { class, .. } => Some(class),
            _ => None,
        }
    }

    #[test]
    fn normalisation_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../..")), PathBuf::from("/"));
        assert_eq!(resolve("src/../..", &scope()), Some("/home/dev".into()));
    }

    #[test]
    fn classes_by_target() {
        use Class::*;
        assert_eq!(class("/"), Some(Catastrophic));
        assert_eq!(class("/*"), Some(Catastrophic));
        assert_eq!(class("//"), Some(Catastrophic));
        assert_eq!(class("/etc"), Some(Catastrophic));
        assert_eq!(class("/etc/*"), Some(Catastrophic));
        assert_eq!(class("/etc/nginx"), Some(Outside));
        assert_eq!(class("~"), Some(Catastrophic));
        assert_eq!(class("~/*"), Some(Catastrophic));
        assert_eq!(class("~/*.log"), Some(Outside));
        assert_eq!(class(".."), Some(Catastrophic));
        assert_eq!(class("."), Some(WorkspaceRoot));
        assert_eq!(class("*"), Some(WorkspaceRoot));
        assert_eq!(class("*.o"), Some(Inside));
        assert_eq!(class("src/*"), Some(Inside));
        assert_eq!(class(".git"), Some(GitDir));
        assert_eq!(class("target"), Some(Inside));
        assert_eq!(class("./target/../src"), Some(Inside));
        assert_eq!(class("/tmp/x"), Some(Temp));
        assert_eq!(class("/tmp"), Some(Outside));
        assert_eq!(class("../other"), Some(Outside));
    }

    #[test]
    fn chroot_and_unknown_cwd() {
        let mut s = scope();
        s.root = Some("/mnt/sys".into());
        s.cwd = Cwd::Known("/mnt/sys".into());
        assert_eq!(
            target(&Arg::lit("/usr"), &s),
            Target::Known {
                path: "/mnt/sys/usr".into(),
                class: Class::Outside
            }
        );
        s.cwd = Cwd::Unknown;
        assert_eq!(target(&Arg::lit("rel"), &s), Target::Unknown);
    }

    #[test]
    fn devices() {
        assert!(is_disk_device("/dev/sda"));
        assert!(is_disk_device("/dev/nvme0n1"));
        assert!(!is_disk_device("/dev/null"));
        assert!(!is_disk_device("/dev/fd/1"));
        assert!(!is_disk_device("/dev/tcp/db.prod.test/5432"));
        assert!(!is_disk_device("/dev/udp/127.0.0.1/53"));
        assert!(!is_disk_device("disk.img"));
    }
}
