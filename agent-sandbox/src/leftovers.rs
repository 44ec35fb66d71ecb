//! What earlier sessions may have left on the machine, for `agent-sandbox doctor` (list) and
//! `agent-sandbox cleanup` (remove): session cgroups whose supervisor is gone, watchdogs whose
//! supervisor is gone (a watchdog normally acts within milliseconds of that; one still there
//! is stuck or stopped), and BPF programs of agent-sandbox that no live session holds.
//!
//! A BPF program is recognised as agent-sandbox's by its name (one of the object's programs,
//! as the kernel truncates names to 15 bytes) and its maps (all of them named like the
//! object's, `.rodata`-style internal maps aside). Who holds it is read from
//! `/proc/*/fdinfo/*` (`prog_id:` of program and link descriptors); pins are found by
//! opening every file of the bpf filesystems mounted. A program is left over when nothing
//! but orphan watchdogs and pins keeps it loaded.
//!
//! Public API: [`Leftovers::find`], [`cleanup`] and its [`CleanupReport`], [`OurProgram`],
//! [`our_programs`], [`orphan_watchdogs`], [`leftover_programs`], [`prog_ids_held_by`] and
//! [`program_exists`].

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use crate::cgroup::{self, Cgroup2Mount};
use crate::ebpf;
use crate::watchdog::{self, WatchdogProcess};

/// Errors of listing BPF programs.
#[derive(Debug, thiserror::Error)]
pub enum LeftoverError {
    /// The kernel refused to enumerate programs (not root?).
    #[error("listing BPF programs: {0} (run as root)")]
    List(String),
}

/// `BPF_OBJ_GET` (include/uapi/linux/bpf.h).
const BPF_OBJ_GET: libc::c_long = 7;
/// `BPF_PROG_GET_FD_BY_ID`.
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
/// The kernel keeps this many bytes of a program's name (BPF_OBJ_NAME_LEN minus the NUL).
const NAME_LEN: usize = 15;

/// A BPF program of agent-sandbox loaded on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurProgram {
    /// Kernel program id.
    pub id: u32,
    /// Name as the kernel shows it.
    pub name: String,
    /// Processes holding a descriptor of it (or of a link to it).
    pub holders: Vec<i32>,
    /// bpffs files pinning it (or a link to it).
    pub pins: Vec<PathBuf>,
}

/// Program names of the object, as the kernel stores them.
fn program_names() -> BTreeSet<String> {
    ebpf::BTF_PROBES
        .iter()
        .map(|(p, _)| *p)
        .chain(ebpf::PROBES.iter().map(|(p, _, _)| *p))
        .chain([ebpf::SYSCALL_ENTER_PROBE.0])
        .chain(ebpf::SOCK_PROGRAMS.iter().copied())
        .map(|n| n.get(..NAME_LEN).unwrap_or(n).to_string())
        .collect()
}

/// Whether a program's name and map names are those of our object.
fn looks_ours(name: &str, maps: &[String], names: &BTreeSet<String>) -> bool {
    names.contains(name)
        && maps.iter().any(|m| ebpf::MAP_NAMES.contains(&m.as_str()))
        && maps
            .iter()
            .all(|m| ebpf::MAP_NAMES.contains(&m.as_str()) || m.starts_with('.'))
}

/// Every program of agent-sandbox loaded on the machine, with who holds it.
pub fn our_programs() -> Result<Vec<OurProgram>, LeftoverError> {
    let names = program_names();
    let mut found = Vec::new();
    for info in aya::programs::loaded_programs() {
        let info = match info {
            Ok(i) => i,
            // A program unloaded between listing and opening it.
            Err(aya::programs::ProgramError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                continue;
            }
            Err(e) => return Err(LeftoverError::List(e.to_string())),
        };
        let name = String::from_utf8_lossy(info.name()).into_owned();
        if !names.contains(&name) {
            continue;
        }
        let maps: Vec<String> = info
            .map_ids()
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| aya::maps::MapInfo::from_id(id).ok())
            .map(|m| String::from_utf8_lossy(m.name()).into_owned())
            .collect();
        if looks_ours(&name, &maps, &names) {
            found.push(OurProgram {
                id: info.id(),
                name,
                holders: Vec::new(),
                pins: Vec::new(),
            });
        }
    }
    if found.is_empty() {
        return Ok(found);
    }
    let holders = holders_by_prog();
    let pins = pins_by_prog();
    for p in &mut found {
        p.holders = holders.get(&p.id).cloned().unwrap_or_default();
        p.pins = pins.get(&p.id).cloned().unwrap_or_default();
    }
    Ok(found)
}

/// `prog_id:` values in an fdinfo text.
fn prog_id_of(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("prog_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Program ids that process `pid` holds descriptors of (programs and links to programs).
pub fn prog_ids_held_by(pid: i32) -> BTreeSet<u32> {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return BTreeSet::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| prog_id_of(&fs::read_to_string(e.path()).ok()?))
        .collect()
}

/// Program id -> pids holding it, over every process but this one.
fn holders_by_prog() -> BTreeMap<u32, Vec<i32>> {
    let me = std::process::id() as i32;
    let mut map: BTreeMap<u32, Vec<i32>> = BTreeMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return map;
    };
    for pid in rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != me)
    {
        for id in prog_ids_held_by(pid) {
            map.entry(id).or_default().push(pid);
        }
    }
    map
}

/// Whether a program with this id is still loaded.
pub fn program_exists(id: u32) -> bool {
    let attr: [u32; 3] = [id, 0, 0];
    // SAFETY: a valid `*_GET_FD_BY_ID` prefix of `union bpf_attr`, alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            attr.as_ptr(),
            std::mem::size_of_val(&attr) as libc::c_uint,
        )
    };
    if r >= 0 {
        // SAFETY: closing the descriptor the kernel just gave us.
        unsafe { libc::close(r as libc::c_int) };
        return true;
    }
    // EPERM and the like: cannot tell, so do not claim it is gone.
    io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
}

/// Opens a pinned bpffs object.
fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // pathname (u64), bpf_fd (u32), file_flags (u32).
    let mut attr = [0u8; 16];
    attr[..8].copy_from_slice(&(c.as_ptr() as u64).to_ne_bytes());
    // SAFETY: a valid `BPF_OBJ_GET` prefix of `union bpf_attr`; the path it points to lives
    // for the whole call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Program id -> bpffs files pinning it (a program or a link to it).
fn pins_by_prog() -> BTreeMap<u32, Vec<PathBuf>> {
    let mut map: BTreeMap<u32, Vec<PathBuf>> = BTreeMap::new();
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else {
        return map;
    };
    let roots: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            if post.split_whitespace().next()? != "bpf" {
                return None;
            }
            let point = pre.split_whitespace().nth(4)?;
            Some(PathBuf::from(cgroup::unescape_mount_path(point)))
        })
        .collect();
    let mut visited = 0usize;
    let mut stack = roots;
    while let Some(p) = stack.pop() {
        visited += 1;
        if visited > 100_000 {
            break;
        }
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.filter_map(Result::ok).map(|e| e.path()));
            }
        } else if let Ok(fd) = obj_get(&p)
            && let Ok(info) = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
            && let Some(id) = prog_id_of(&info)
        {
            map.entry(id).or_default().push(p);
        }
    }
    map
}

/// Leftovers of earlier sessions.
#[derive(Debug, Clone, Default)]
pub struct Leftovers {
    /// Session cgroups whose supervisor is gone.
    pub cgroups: Vec<PathBuf>,
    /// Watchdogs whose supervisor is gone.
    pub watchdogs: Vec<WatchdogProcess>,
    /// Programs of agent-sandbox held only by orphan watchdogs and pins (or by nothing).
    pub programs: Vec<OurProgram>,
    /// Why the programs could not be listed, if they could not.
    pub programs_error: Option<String>,
}

/// Watchdogs whose supervisor is gone.
pub fn orphan_watchdogs() -> Vec<WatchdogProcess> {
    watchdog::running()
        .into_iter()
        .filter(|w| !w.supervisor_alive())
        .collect()
}

/// Programs of agent-sandbox that nothing but `orphans` (watchdog pids) and pins holds.
pub fn leftover_programs(orphans: &[WatchdogProcess]) -> Result<Vec<OurProgram>, LeftoverError> {
    let orphan_pids: BTreeSet<i32> = orphans.iter().map(|w| w.pid).collect();
    Ok(our_programs()?
        .into_iter()
        .filter(|p| p.holders.iter().all(|h| orphan_pids.contains(h)))
        .collect())
}

impl Leftovers {
    /// Looks for every kind of leftover.
    pub fn find(mount: &Cgroup2Mount) -> Self {
        let watchdogs = orphan_watchdogs();
        let (programs, programs_error) = match leftover_programs(&watchdogs) {
            Ok(p) => (p, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        Self {
            cgroups: cgroup::leftovers(mount),
            watchdogs,
            programs,
            programs_error,
        }
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty() && self.watchdogs.is_empty() && self.programs.is_empty()
    }
}

/// What [`cleanup`] did.
#[derive(Debug, Clone, Default)]
pub struct CleanupReport {
    /// Orphan watchdogs killed (pids).
    pub killed_watchdogs: Vec<i32>,
    /// Session cgroups removed (with whatever ran in them).
    pub removed_cgroups: Vec<PathBuf>,
    /// Pins removed.
    pub unpinned: Vec<PathBuf>,
    /// Programs still loaded afterwards, with no way for cleanup to remove them.
    pub remaining_programs: Vec<OurProgram>,
    /// What failed, one line each.
    pub failures: Vec<String>,
}

/// Removes every leftover: kills orphan watchdogs (which lets go of the network programs they
/// held), kills and removes orphan session cgroups (which detaches what is attached to them),
/// removes pins of our programs, then lists what is still loaded.
pub fn cleanup(mount: &Cgroup2Mount) -> CleanupReport {
    let mut report = CleanupReport::default();
    let found = Leftovers::find(mount);
    for w in &found.watchdogs {
        match watchdog::kill_orphan(w) {
            Ok(true) => report.killed_watchdogs.push(w.pid),
            Ok(false) => report
                .failures
                .push(format!("watchdog {} did not exit after SIGKILL", w.pid)),
            Err(e) => report
                .failures
                .push(format!("killing watchdog {}: {e}", w.pid)),
        }
    }
    // Listed again: a killed watchdog's cgroup may be new on the list, or already gone.
    for dir in cgroup::leftovers(mount) {
        match cgroup::remove_leftover(&dir) {
            Ok(()) => report.removed_cgroups.push(dir),
            Err(e) => report.failures.push(e.to_string()),
        }
    }
    for p in &found.programs {
        for pin in &p.pins {
            match fs::remove_file(pin) {
                Ok(()) => report.unpinned.push(pin.clone()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => report
                    .failures
                    .push(format!("removing pin {}: {e}", pin.display())),
            }
        }
    }
    // Programs are freed asynchronously once their last reference goes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let left = Leftovers::find(mount);
        if left.programs.is_empty() || std::time::Instant::now() >= deadline {
            report.remaining_programs = left.programs;
            if let Some(e) = left.programs_error {
                report.failures.push(e);
            }
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_truncated_like_the_kernel() {
        let n = program_names();
        assert!(n.contains("sched_process_f"), "{n:?}");
        assert!(n.contains("connect4"));
        assert!(n.iter().all(|x| x.len() <= NAME_LEN));
    }

    #[test]
    fn recognises_our_programs_by_name_and_maps() {
        let n = program_names();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(looks_ours(
            "connect4",
            &s(&["NET4", "CONFIG", "EVENTS"]),
            &n
        ));
        assert!(looks_ours("sys_exit", &s(&["CONFIG", ".rodata"]), &n));
        // The kernel keeps 15 characters of a program's name.
        assert!(looks_ours("sys_enter_watch", &s(&["CONFIG", "EVENTS"]), &n));
        // Same name, someone else's maps.
        assert!(!looks_ours("sys_exit", &s(&["events", "CONFIG"]), &n));
        assert!(!looks_ours("sys_exit", &s(&[]), &n));
        assert!(!looks_ours("sys_exit", &s(&[".rodata"]), &n));
        // Our maps, another name.
        assert!(!looks_ours("tracer", &s(&["CONFIG"]), &n));
    }

    #[test]
    fn fdinfo_prog_id() {
        let prog = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t18\nprog_jited:\t1\nprog_tag:\tabc\nmemlock:\t4096\nprog_id:\t123\n";
        assert_eq!(prog_id_of(prog), Some(123));
        let link = "link_type:\tcgroup\nlink_id:\t7\nprog_tag:\tabc\nprog_id:\t45\ncgroup_id:\t9\n";
        assert_eq!(prog_id_of(link), Some(45));
        assert_eq!(prog_id_of("pos:\t0\nflags:\t0\n"), None);
    }
}
