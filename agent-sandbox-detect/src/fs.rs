//! Files and disks: rm, unlink, rimraf, find -delete, shred, truncate, chmod/chown, mv,
//! dd, mkfs, wipefs, partitioning, crontab.

use crate::analyze::Finding;
use crate::paths::{self, Class, Scope, Target};
use crate::rules::RuleId;
use crate::words::{Arg, has_flag, option_values, positionals};

/// Classifies file-system commands.
pub(crate) fn check(name: &str, rest: &[Arg], scope: &Scope, out: &mut Vec<Finding>) {
    if name.starts_with("mkfs") || matches!(name, "mke2fs" | "mkswap" | "mkdosfs") {
        return mkfs(rest, out);
    }
    match name {
        "rm" => rm(rest, scope, false, out),
        "unlink" => rm(rest, scope, false, out),
        "rimraf" | "del-cli" | "trash-empty" => rm(rest, scope, true, out),
        "shred" => shred(rest, scope, out),
        "truncate" => truncate(rest, scope, out),
        "chmod" | "chown" | "chgrp" => chmod(rest, scope, out),
        "mv" => mv(rest, scope, out),
        "dd" => dd(rest, scope, out),
        "wipefs" if has_flag(rest, &['a', 'o'], &["--all", "--offset"]) => {
            device_targets(rest, "wipefs", RuleId::DiskWrite, out);
        }
        "blkdiscard" => device_targets(rest, "blkdiscard", RuleId::DiskWrite, out),
        "sgdisk"
            if has_flag(
                rest,
                &['Z', 'z', 'o', 'd', 'n'],
                &["--zap-all", "--zap", "--clear", "--delete", "--new"],
            ) =>
        {
            device_targets(rest, "sgdisk", RuleId::DiskWrite, out);
        }
        "sfdisk"
            if (has_flag(rest, &[], &["--delete"])
                || !has_flag(rest, &['l', 'd', 'V'], &["--list", "--dump", "--verify"])) =>
        {
            device_targets(rest, "sfdisk", RuleId::DiskPartition, out);
        }
        "parted" => {
            let destructive = rest.iter().any(|a| {
                matches!(
                    a.text.as_str(),
                    "rm" | "mklabel" | "mktable" | "mkpart" | "resizepart"
                )
            });
            if destructive {
                device_targets(rest, "parted", RuleId::DiskWrite, out);
            }
        }
        "fdisk" | "cfdisk" | "gdisk" if !has_flag(rest, &['l'], &["--list"]) => {
            device_targets(rest, name, RuleId::DiskPartition, out);
        }
        "cryptsetup"
            if rest
                .iter()
                .any(|a| matches!(a.text.as_str(), "luksFormat" | "erase" | "luksErase")) =>
        {
            device_targets(rest, "cryptsetup", RuleId::DiskWrite, out);
        }
        "pvremove" | "vgremove" | "lvremove" => out.push(Finding::new(RuleId::DiskPartition, name)),
        "crontab" if has_flag(rest, &['r'], &["--remove"]) => {
            out.push(Finding::new(RuleId::CrontabRemove, "crontab -r"));
        }
        _ => {}
    }
}

/// `rm`-like deletion. `always_recursive` for rimraf.
fn rm(rest: &[Arg], scope: &Scope, always_recursive: bool, out: &mut Vec<Finding>) {
    if has_flag(rest, &[], &["--help", "--version"]) {
        return;
    }
    let recursive = always_recursive || has_flag(rest, &['r', 'R'], &["--recursive"]);
    let targets = positionals(rest, &|_| false);
    for t in targets {
        if let Some(f) = judge_delete(t, scope, recursive) {
            out.push(f);
        }
    }
}

/// Judges deleting one target (`recursive` or a mass target counts as a tree deletion).
pub(crate) fn judge_delete(t: &Arg, scope: &Scope, recursive: bool) -> Option<Finding> {
    let recursive = recursive || t.mass;
    match paths::target(t, scope) {
        Target::Known { path, class } => {
            let shown = format!("{} ({})", t.text, path.display());
            let rule = match class {
                Class::Catastrophic => RuleId::RmCatastrophic,
                Class::WorkspaceRoot => RuleId::RmWorkspaceRoot,
                Class::GitDir => RuleId::RmGitDir,
                Class::Inside if recursive => RuleId::RmRecursiveWorkspace,
                Class::Temp if recursive => RuleId::RmRecursiveTemp,
                Class::Outside if recursive => RuleId::RmRecursiveOutside,
                Class::Outside => RuleId::RmOutside,
                Class::Inside | Class::Temp => return None,
            };
            Some(Finding::new(rule, shown))
        }
        Target::Under { dir, class } => {
            let shown = format!("{} (somewhere under {})", t.text, dir.display());
            // `rm -f /tmp/x.$$`: a single file somewhere in a temp directory (at worst the
            // directory itself, which a non-recursive rm cannot remove).
            if !recursive && paths::is_temp_dir(&dir) {
                return None;
            }
            let rule = match class {
                // xargs/find input lies below the directory, never the directory itself.
                Class::WorkspaceRoot if t.mass => RuleId::RmRecursiveWorkspace,
                // `rm -rf "$DIR/"` with DIR empty hits the directory itself.
                Class::Catastrophic | Class::WorkspaceRoot => RuleId::RmDynamicProtected,
                Class::GitDir => RuleId::RmGitDir,
                Class::Inside if recursive => RuleId::RmRecursiveWorkspace,
                Class::Temp if recursive => RuleId::RmRecursiveTemp,
                Class::Outside if recursive => RuleId::RmRecursiveOutside,
                Class::Outside => RuleId::RmOutside,
                Class::Inside | Class::Temp => return None,
            };
            Some(Finding::new(rule, shown))
        }
        Target::Unknown => {
            let rule = if recursive {
                RuleId::RmUnknownRecursive
            } else {
                RuleId::RmUnknown
            };
            Some(Finding::new(rule, t.text.clone()))
        }
    }
}

/// Splits find's arguments into starting points and the expression.
pub(crate) fn find_split(rest: &[Arg]) -> (Vec<Arg>, Vec<Arg>) {
    let mut i = 0;
    // Leading options: -H -L -P -D debugopts -Olevel.
    while let Some(a) = rest.get(i) {
        match a.text.as_str() {
            "-H" | "-L" | "-P" => i += 1,
            "-D" => i += 2,
            t if t.starts_with("-O") => i += 1,
            _ => break,
        }
    }
    let mut roots = Vec::new();
    while let Some(a) = rest.get(i) {
        let t = a.text.as_str();
        if a.known
            && ((t.starts_with('-') && t.len() > 1) || t == "(" || t == "!" || t == ")" || t == ",")
        {
            break;
        }
        roots.push(a.clone());
        i += 1;
    }
    (roots, rest.get(i..).unwrap_or(&[]).to_vec())
}

/// `find ROOTS ... -delete`.
pub(crate) fn find_delete(roots: &[Arg], scope: &Scope, out: &mut Vec<Finding>) {
    for r in roots {
        let (rule, shown) = match paths::target(r, scope) {
            Target::Known { path, class } => {
                let rule = match class {
                    Class::Catastrophic => RuleId::FindDeleteProtected,
                    Class::Outside => RuleId::FindDeleteOutside,
                    Class::GitDir => RuleId::RmGitDir,
                    Class::WorkspaceRoot | Class::Inside | Class::Temp => RuleId::FindDelete,
                };
                (rule, format!("under {}", path.display()))
            }
            Target::Under { dir, .. } => (
                RuleId::FindDeleteOutside,
                format!("under {}", dir.display()),
            ),
            Target::Unknown => (RuleId::FindDeleteOutside, format!("under {}", r.text)),
        };
        out.push(Finding::new(rule, shown));
    }
}

fn shred(rest: &[Arg], _scope: &Scope, out: &mut Vec<Finding>) {
    if has_flag(rest, &[], &["--help", "--version"]) {
        return;
    }
    let with_value = |o: &str| {
        matches!(
            o,
            "-n" | "-s" | "--iterations" | "--size" | "--random-source"
        )
    };
    for t in positionals(rest, &with_value) {
        let rule = if paths::is_disk_device(&t.text) {
            RuleId::DiskWrite
        } else {
            RuleId::Shred
        };
        out.push(Finding::new(rule, t.text.clone()));
    }
}

fn truncate(rest: &[Arg], scope: &Scope, out: &mut Vec<Finding>) {
    let with_value = |o: &str| matches!(o, "-s" | "-r" | "--size" | "--reference");
    for t in positionals(rest, &with_value) {
        match paths::target(t, scope) {
            Target::Known {
                class: Class::Inside | Class::Temp,
                ..
            } => {}
            Target::Known { path, .. } => out.push(Finding::new(
                RuleId::TruncateOutside,
                path.display().to_string(),
            )),
            _ => out.push(Finding::new(RuleId::TruncateOutside, t.text.clone())),
        }
    }
}

fn chmod(rest: &[Arg], scope: &Scope, out: &mut Vec<Finding>) {
    if !has_flag(rest, &['R'], &["--recursive"]) {
        return;
    }
    let pos = positionals(rest, &|o| o == "--reference");
    // The first positional is the mode or owner (unless --reference was given).
    let skip = usize::from(!rest.iter().any(|a| a.text.starts_with("--reference")));
    for t in pos.into_iter().skip(skip) {
        match paths::target(t, scope) {
            Target::Known {
                class: Class::Catastrophic,
                path,
            } => out.push(Finding::new(
                RuleId::ChmodRecursiveSystem,
                path.display().to_string(),
            )),
            Target::Known {
                class: Class::Inside | Class::WorkspaceRoot | Class::GitDir | Class::Temp,
                ..
            } => {}
            Target::Known { path, .. } => out.push(Finding::new(
                RuleId::ChmodRecursiveOutside,
                path.display().to_string(),
            )),
            _ => out.push(Finding::new(RuleId::ChmodRecursiveOutside, t.text.clone())),
        }
    }
}

fn mv(rest: &[Arg], scope: &Scope, out: &mut Vec<Finding>) {
    let pos = positionals(rest, &|o| {
        matches!(o, "-t" | "-S" | "--target-directory" | "--suffix")
    });
    let target_opt = option_values(rest, Some('t'), &["--target-directory"]);
    let (sources, dest): (Vec<&Arg>, Option<Arg>) = match target_opt.last() {
        Some(t) => (pos.clone(), Some(t.clone())),
        None => match pos.split_last() {
            Some((d, s)) => (s.to_vec(), Some((*d).clone())),
            None => (Vec::new(), None),
        },
    };
    if dest.as_ref().is_some_and(|d| d.text == "/dev/null") && !sources.is_empty() {
        out.push(Finding::new(
            RuleId::MvToDevNull,
            sources
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ));
        return;
    }
    for s in sources {
        if let Target::Known {
            class: Class::Catastrophic | Class::WorkspaceRoot,
            path,
        } = paths::target(s, scope)
        {
            out.push(Finding::new(
                RuleId::MvProtected,
                path.display().to_string(),
            ));
        }
    }
}

fn dd(rest: &[Arg], scope: &Scope, out: &mut Vec<Finding>) {
    for a in rest {
        let Some(of) = a.text.strip_prefix("of=") else {
            continue;
        };
        if !a.known {
            out.push(Finding::new(RuleId::DdOutside, a.text.clone()));
        } else if paths::is_disk_device(of) {
            out.push(Finding::new(RuleId::DiskWrite, format!("dd of={of}")));
        } else if !of.starts_with("/dev/") {
            match paths::target(&Arg::lit(of), scope) {
                Target::Known {
                    class: Class::Inside | Class::Temp,
                    ..
                } => {}
                Target::Known { path, .. } => {
                    out.push(Finding::new(RuleId::DdOutside, path.display().to_string()))
                }
                _ => out.push(Finding::new(RuleId::DdOutside, of.to_string())),
            }
        }
    }
}

fn mkfs(rest: &[Arg], out: &mut Vec<Finding>) {
    // Only device-looking or unknown operands matter, so option values need no parsing.
    for t in positionals(rest, &|_| false) {
        if paths::is_disk_device(&t.text) {
            out.push(Finding::new(
                RuleId::DiskWrite,
                format!("formats {}", t.text),
            ));
        } else if !t.known {
            out.push(Finding::new(
                RuleId::DiskPartition,
                format!("formats {}", t.text),
            ));
        }
    }
}

fn device_targets(rest: &[Arg], what: &str, rule: RuleId, out: &mut Vec<Finding>) {
    for a in rest {
        if paths::is_disk_device(&a.text) || !a.known {
            out.push(Finding::new(rule, format!("{what} {}", a.text)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            cwd: paths::Cwd::Known("/home/dev/repo".into()),
            workspace: Some("/home/dev/repo".into()),
            home: Some("/home/dev".into()),
            root: None,
        }
    }

    fn rules(name: &str, args: &[&str]) -> Vec<RuleId> {
        let rest: Vec<Arg> = args.iter().map(|s| Arg::lit(*s)).collect();
        let mut out = Vec::new();
        check(name, &rest, &scope(), &mut out);
        out.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn rm_severity_follows_target() {
        assert_eq!(rules("rm", &["-rf", "/"]), [RuleId::RmCatastrophic]);
        assert_eq!(
            rules("rm", &["-rf", "target"]),
            [RuleId::RmRecursiveWorkspace]
        );
        assert_eq!(
            rules("rm", &["-r", "-f", "/opt/x"]),
            [RuleId::RmRecursiveOutside]
        );
        assert_eq!(rules("rm", &["/etc/hosts"]), [RuleId::RmOutside]);
        assert_eq!(rules("rm", &["-f", "build.log"]), []);
        assert_eq!(rules("rm", &["--", "-rf"]), []);
        assert_eq!(
            rules("rm", &["-rf", "--", "-x", "/"]),
            [RuleId::RmRecursiveWorkspace, RuleId::RmCatastrophic]
        );
        assert_eq!(rules("rm", &["--help"]), []);
        assert_eq!(rules("rm", &["-rf", "/tmp/x"]), [RuleId::RmRecursiveTemp]);
        assert_eq!(rules("rmdir", &["/etc"]), []);
    }

    #[test]
    fn unknown_targets_are_asked_and_empty_var_under_protected_dir_is_critical() {
        let scope = scope();
        let unknown = Arg::unknown("$X", None, false);
        assert_eq!(
            judge_delete(&unknown, &scope, true).map(|f| f.rule),
            Some(RuleId::RmUnknownRecursive)
        );
        let under_home = Arg::unknown("/home/dev/$X", Some("/home/dev/".into()), false);
        assert_eq!(
            judge_delete(&under_home, &scope, true).map(|f| f.rule),
            Some(RuleId::RmDynamicProtected)
        );
        let under_src = Arg::unknown("src/$X", Some("src/".into()), false);
        assert_eq!(judge_delete(&under_src, &scope, false), None);
        let mass = Arg::unknown("{}", Some("/home/dev/repo".into()), true);
        assert_eq!(
            judge_delete(&mass, &scope, false).map(|f| f.rule),
            Some(RuleId::RmRecursiveWorkspace)
        );
    }

    #[test]
    fn disks() {
        assert_eq!(
            rules("dd", &["if=/dev/zero", "of=/dev/sda"]),
            [RuleId::DiskWrite]
        );
        assert_eq!(rules("dd", &["if=/dev/zero", "of=disk.img"]), []);
        assert_eq!(
            rules("dd", &["if=/dev/sda", "of=/home/dev/x.img"]),
            [RuleId::DdOutside]
        );
        assert_eq!(
            rules("mkfs.ext4", &["-L", "root", "/dev/sdb1"]),
            [RuleId::DiskWrite]
        );
        assert_eq!(rules("mkfs.ext4", &["-F", "rootfs.img"]), []);
        assert_eq!(rules("wipefs", &["/dev/sdb"]), []);
        assert_eq!(rules("wipefs", &["-a", "/dev/sdb"]), [RuleId::DiskWrite]);
    }

    #[test]
    fn permissions_and_moves() {
        assert_eq!(
            rules("chmod", &["-R", "000", "/"]),
            [RuleId::ChmodRecursiveSystem]
        );
        assert_eq!(rules("chmod", &["-R", "755", "scripts"]), []);
        assert_eq!(
            rules("chown", &["-R", "me", "/etc/nginx"]),
            [RuleId::ChmodRecursiveOutside]
        );
        assert_eq!(rules("chmod", &["000", "/"]), []);
        assert_eq!(rules("mv", &["a.db", "/dev/null"]), [RuleId::MvToDevNull]);
        assert_eq!(rules("mv", &["a", "b"]), []);
        assert_eq!(rules("mv", &["/home/dev", "/tmp/x"]), [RuleId::MvProtected]);
    }
}
