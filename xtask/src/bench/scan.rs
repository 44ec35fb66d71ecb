//! The input of the `scan` workload: a tree of real source code (copied from cargo's registry
//! of unpacked crates, so it is text nobody wrote for the benchmark), built once and cached,
//! and read once before timing so the scan is measured against the page cache, not the disk.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

/// Size of the scanned tree (bytes of file content): ~200 MB.
pub const TREE_BYTES: u64 = 200_000_000;
/// Size of the tree with `--quick`: big enough to measure a rate, small enough to copy fast.
pub const QUICK_TREE_BYTES: u64 = 20_000_000;
/// The source files copied into the tree, by extension.
const EXTENSIONS: &[&str] = &["rs", "c", "h", "py", "js", "go", "toml", "md"];
/// More copies than this of the source means its files are nearly empty: give up.
const MAX_COPIES: u64 = 10_000;

/// A scan tree on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The directory to scan.
    pub dir: PathBuf,
    /// Total bytes of the files in it.
    pub bytes: u64,
    /// Number of files in it.
    pub files: u64,
}

/// Where cargo unpacks downloaded crates: `$CARGO_HOME/registry/src` (`~/.cargo` by default).
pub fn registry_src() -> Option<PathBuf> {
    crate::util::cargo_home().map(|home| home.join("registry").join("src"))
}

/// The file that says `dir` was completely built, beside it (not inside: it would be scanned).
fn marker_of(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".complete");
    dir.with_file_name(name)
}

/// Returns the tree at `dest`, building it first unless a complete one is cached: the source
/// files under `source` whose extension is in [`EXTENSIONS`], copied into `dest/0000`,
/// `dest/0001`, ... (same relative paths) until `target_bytes` are reached.
pub fn build_tree(source: &Path, dest: &Path, target_bytes: u64) -> Result<Tree> {
    let marker = marker_of(dest);
    if let Some(tree) = read_marker(&marker, dest) {
        return Ok(tree);
    }
    // The marker is written last, so a tree without one is a half-built leftover.
    for stale in [marker.as_path(), dest] {
        crate::util::remove_if_present(stale)?;
    }

    let sources = source_files(source)?;
    if sources.is_empty() {
        bail!(
            "{} holds no .{} files to build the scan tree from: run `cargo fetch` in any \
             project (the build workload does) to fill cargo's registry",
            source.display(),
            EXTENSIONS.join("/.")
        );
    }

    let mut bytes = 0u64;
    let mut files = 0u64;
    'copies: for copy in 0..MAX_COPIES {
        let copy_dir = dest.join(format!("{copy:04}"));
        let before = bytes;
        for rel in &sources {
            if bytes >= target_bytes {
                break 'copies;
            }
            let to = copy_dir.join(rel);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("failed to create {}", parent.display()))?;
            }
            let from = source.join(rel);
            bytes += fs::copy(&from, &to).with_context(|| {
                format!("failed to copy {} to {}", from.display(), to.display())
            })?;
            files += 1;
        }
        if bytes == before {
            bail!(
                "the source files under {} are all empty: nothing to build the scan tree from",
                source.display()
            );
        }
    }
    if bytes < target_bytes {
        bail!(
            "{MAX_COPIES} copies of the source files under {} make only {bytes} bytes, less \
             than the {target_bytes} wanted",
            source.display()
        );
    }
    fs::write(&marker, format!("{bytes} {files}\n"))
        .with_context(|| format!("failed to write {}", marker.display()))?;
    Ok(Tree {
        dir: dest.to_path_buf(),
        bytes,
        files,
    })
}

/// The cached tree a marker describes, if the marker is well-formed and the tree exists.
fn read_marker(marker: &Path, dir: &Path) -> Option<Tree> {
    let text = fs::read_to_string(marker).ok()?;
    let mut fields = text.split_whitespace();
    let bytes = fields.next()?.parse().ok()?;
    let files = fields.next()?.parse().ok()?;
    dir.is_dir().then(|| Tree {
        dir: dir.to_path_buf(),
        bytes,
        files,
    })
}

/// The regular files under `root` with one of [`EXTENSIONS`], relative to it, sorted so that
/// every build of the tree copies the same files. Symlinks are neither followed nor copied.
fn source_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries =
            fs::read_dir(&dir).with_context(|| format!("failed to list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
            let kind = entry
                .file_type()
                .with_context(|| format!("failed to inspect {}", entry.path().display()))?;
            let child = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(child);
            } else if kind.is_file()
                && child
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
            {
                found.push(child);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads every file under `dir` once, so the timed scans find the tree in the page cache.
/// Returns the bytes and files read: the throughput is computed from what is really there.
pub fn warm(dir: &Path) -> Result<(u64, u64)> {
    let mut bytes = 0u64;
    let mut files = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            fs::read_dir(&d).with_context(|| format!("failed to list {}", d.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to list {}", d.display()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .with_context(|| format!("failed to inspect {}", path.display()))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let mut file = fs::File::open(&path)
                    .with_context(|| format!("failed to open {}", path.display()))?;
                bytes += io::copy(&mut file, &mut io::sink())
                    .with_context(|| format!("failed to read {}", path.display()))?;
                files += 1;
            }
        }
    }
    Ok((bytes, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::util::fresh_temp_dir as temp_dir;

    /// A fake registry: 3 source files of 100 bytes, one binary file, one symlink.
    fn registry(root: &Path) -> Result<PathBuf> {
        let src = root.join("registry");
        fs::create_dir_all(src.join("index/a-1.0/src"))?;
        fs::create_dir_all(src.join("index/b-2.0"))?;
        fs::write(src.join("index/a-1.0/src/lib.rs"), [b'r'; 100])?;
        fs::write(src.join("index/a-1.0/Cargo.toml"), [b't'; 100])?;
        fs::write(src.join("index/b-2.0/x.c"), [b'c'; 100])?;
        fs::write(src.join("index/b-2.0/blob.bin"), [0u8; 1000])?;
        std::os::unix::fs::symlink(src.join("index/b-2.0/x.c"), src.join("index/b-2.0/link.rs"))?;
        Ok(src)
    }

    #[test]
    fn tree_copies_sources_into_numbered_dirs_until_the_size() -> Result<()> {
        let root = temp_dir("scan-tree")?;
        let src = registry(&root)?;
        let dest = root.join("tree");
        // 3 files of 100 bytes per copy: 750 bytes need 8 files, the 8th in copy 0002
        let tree = build_tree(&src, &dest, 750)?;
        assert_eq!(tree.bytes, 800);
        assert_eq!(tree.files, 8);
        assert_eq!(warm(&dest)?, (800, 8));
        assert!(dest.join("0000/index/a-1.0/src/lib.rs").is_file());
        assert!(dest.join("0001/index/b-2.0/x.c").is_file());
        assert!(dest.join("0002").is_dir());
        assert!(!dest.join("0003").exists());
        assert!(!dest.join("0000/index/b-2.0/blob.bin").exists());
        assert!(!dest.join("0000/index/b-2.0/link.rs").exists());

        // cached: a file added to the source does not change it
        fs::write(src.join("index/b-2.0/y.h"), [b'h'; 100])?;
        assert_eq!(build_tree(&src, &dest, 750)?, tree);

        // a tree without its marker is rebuilt from scratch
        fs::remove_file(marker_of(&dest))?;
        fs::write(dest.join("0000/leftover.rs"), "x")?;
        let rebuilt = build_tree(&src, &dest, 750)?;
        assert_eq!(rebuilt.bytes, 800);
        assert!(!dest.join("0000/leftover.rs").exists());
        fs::remove_dir_all(&root)?;
        Ok(())
    }

    #[test]
    fn tree_needs_non_empty_sources() -> Result<()> {
        let root = temp_dir("scan-empty")?;
        let src = root.join("registry");
        fs::create_dir_all(&src)?;
        fs::write(src.join("data.bin"), "not source")?;
        let err = format!(
            "{:#}",
            build_tree(&src, &root.join("t"), 10).err().context("ok")?
        );
        assert!(err.contains("no .rs/"), "{err}");
        fs::write(src.join("empty.rs"), "")?;
        let err = format!(
            "{:#}",
            build_tree(&src, &root.join("t"), 10).err().context("ok")?
        );
        assert!(err.contains("all empty"), "{err}");
        assert!(build_tree(&root.join("missing"), &root.join("t"), 10).is_err());
        fs::remove_dir_all(&root)?;
        Ok(())
    }
}
