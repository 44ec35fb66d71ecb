//! Trust store for repository policies.
//!
//! A repository policy is written by whoever can push to the repository, and
//! the agent can edit it too. So a run only uses a repository policy whose
//! exact bytes a human approved; a changed one is shown as a diff first. The
//! store lives in the supervisor's state directory (e.g.
//! `/var/lib/agent-sandbox/trust/`), outside the sandbox's reach; it refuses
//! directories and records that someone else could have written.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::merge::{MAX_POLICY_BYTES, sha256_hex};

const MAGIC: &str = "agent-sandbox trust record v1";

/// Errors of the trust store. Each names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A filesystem operation failed.
    #[error("trust store: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A path of the store is a symbolic link.
    #[error("trust store: {} is a symbolic link; remove it (the store never follows links)", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A path that must be a directory (or regular file) is something else.
    #[error("trust store: {} is not a {expected}", path.display())]
    WrongType {
        /// The path.
        path: PathBuf,
        /// "directory" or "regular file".
        expected: &'static str,
    },
    /// A path of the store belongs to another user.
    #[error("trust store: {} is owned by uid {owner}, not by uid {euid} running agent-sandbox; fix its ownership", path.display())]
    NotOwned {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        euid: u32,
    },
    /// A path of the store is writable by group or others.
    #[error("trust store: {} has mode {mode:o}, writable by group or others; chmod go-w it", path.display())]
    Writable {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A record does not have the expected format or its hash does not match.
    #[error("trust store: record {} is corrupt ({reason}); delete it and trust the policy again", path.display())]
    Corrupt {
        /// The record.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Whether a repository policy's current bytes were approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustStatus {
    /// These exact bytes were trusted.
    Trusted,
    /// This policy path was never trusted.
    New,
    /// Another version was trusted; `previous` is its text, for a diff.
    Changed {
        /// The trusted text.
        previous: String,
    },
}

/// Trusted repository policies, keyed by the canonical path of the policy.
#[derive(Debug, Clone)]
pub struct TrustStore {
    dir: PathBuf,
    euid: u32,
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TrustError + 'a {
    move |source| TrustError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses what another user could have written: symlinks, other owners,
/// group/world-writable modes.
fn check_meta(path: &Path, meta: &fs::Metadata, euid: u32, dir: bool) -> Result<(), TrustError> {
    if meta.file_type().is_symlink() {
        return Err(TrustError::Symlink {
            path: path.to_path_buf(),
        });
    }
    let right_type = if dir { meta.is_dir() } else { meta.is_file() };
    if !right_type {
        return Err(TrustError::WrongType {
            path: path.to_path_buf(),
            expected: if dir { "directory" } else { "regular file" },
        });
    }
    if meta.uid() != euid {
        return Err(TrustError::NotOwned {
            path: path.to_path_buf(),
            owner: meta.uid(),
            euid,
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(TrustError::Writable {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// Creates `path` with mode 0700 if missing, then checks it.
fn ensure_dir(path: &Path, euid: u32) -> Result<(), TrustError> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("create directory", path)(e)),
    }
    let meta = fs::symlink_metadata(path).map_err(io("inspect", path))?;
    check_meta(path, &meta, euid, true)
}

struct Record {
    hash: String,
    content: Vec<u8>,
}

impl TrustStore {
    /// Opens (creating if needed, mode 0700) `state_dir` and
    /// `state_dir/trust`, refusing either if it is a symlink, not owned by
    /// the effective uid, or writable by group or others.
    pub fn open(state_dir: &Path) -> Result<TrustStore, TrustError> {
        let euid = euid();
        ensure_dir(state_dir, euid)?;
        let dir = state_dir.join("trust");
        ensure_dir(&dir, euid)?;
        Ok(TrustStore { dir, euid })
    }

    /// The `trust/` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record_path(&self, policy: &Path) -> Result<(PathBuf, PathBuf), TrustError> {
        let canonical = fs::canonicalize(policy).map_err(io("resolve", policy))?;
        let key = sha256_hex(canonical.as_os_str().as_bytes());
        Ok((self.dir.join(format!("{key}.policy")), canonical))
    }

    fn read_record(&self, path: &Path) -> Result<Option<Record>, TrustError> {
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(TrustError::Symlink {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(io("open", path)(e)),
        };
        let meta = file.metadata().map_err(io("inspect", path))?;
        check_meta(path, &meta, self.euid, false)?;
        let mut bytes = Vec::new();
        file.take(MAX_POLICY_BYTES + 8192)
            .read_to_end(&mut bytes)
            .map_err(io("read", path))?;
        let corrupt = |reason| TrustError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| corrupt("no header"))?;
        let header = std::str::from_utf8(bytes.get(..split).unwrap_or_default())
            .map_err(|_| corrupt("header is not UTF-8"))?;
        let content = bytes.get(split + 2..).unwrap_or_default().to_vec();
        let mut lines = header.lines();
        if lines.next() != Some(MAGIC) {
            return Err(corrupt("unknown format"));
        }
        let hash = lines
            .find_map(|l| l.strip_prefix("sha256 "))
            .ok_or_else(|| corrupt("no sha256 line"))?
            .to_string();
        if sha256_hex(&content) != hash {
            return Err(corrupt("content does not match its hash"));
        }
        Ok(Some(Record { hash, content }))
    }

    /// Whether `bytes` (the current content of the repository policy at
    /// `policy`) were trusted.
    pub fn status(&self, policy: &Path, bytes: &[u8]) -> Result<TrustStatus, TrustError> {
        let (record, _) = self.record_path(policy)?;
        Ok(match self.read_record(&record)? {
            None => TrustStatus::New,
            Some(r) if r.hash == sha256_hex(bytes) => TrustStatus::Trusted,
            Some(r) => TrustStatus::Changed {
                previous: String::from_utf8_lossy(&r.content).into_owned(),
            },
        })
    }

    /// Records `bytes` as the trusted content of `policy`, atomically (a
    /// temporary file renamed over the record), keeping the content for the
    /// next diff.
    pub fn trust(&self, policy: &Path, bytes: &[u8]) -> Result<(), TrustError> {
        let (record, canonical) = self.record_path(policy)?;
        let mut data = format!(
            "{MAGIC}\npath {}\nsha256 {}\n\n",
            canonical.display().to_string().escape_debug(),
            sha256_hex(bytes)
        )
        .into_bytes();
        data.extend_from_slice(bytes);

        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{nanos}", std::process::id()));
        let write = || -> Result<(), TrustError> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(io("create", &tmp))?;
            f.write_all(&data).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("sync", &tmp))?;
            fs::rename(&tmp, &record).map_err(io("rename into place", &record))?;
            // Make the rename itself durable.
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync", &self.dir))
        };
        let result = write();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// A unified line diff from the trusted policy text to the current one.
pub fn diff(previous: &str, current: &str) -> String {
    similar::TextDiff::from_lines(previous, current)
        .unified_diff()
        .context_radius(3)
        .header("trusted policy.toml", "current policy.toml")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, TrustStore, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let store = TrustStore::open(&state).unwrap();
        let policy = tmp.path().join("policy.toml");
        fs::write(&policy, "a = 1\n").unwrap();
        (tmp, store, policy)
    }

    #[test]
    fn creates_private_dirs() {
        let (tmp, store, _) = setup();
        for d in [tmp.path().join("state"), store.dir().to_path_buf()] {
            let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }

    #[test]
    fn new_trusted_changed_round_trip() {
        let (_tmp, store, policy) = setup();
        let v1 = b"[network]\ndefault = \"allow\"\n";
        let v2 = b"[network]\ndefault = \"deny\"\n";
        assert_eq!(store.status(&policy, v1).unwrap(), TrustStatus::New);
        store.trust(&policy, v1).unwrap();
        assert_eq!(store.status(&policy, v1).unwrap(), TrustStatus::Trusted);
        let st = store.status(&policy, v2).unwrap();
        let TrustStatus::Changed { previous } = st else {
            panic!("expected Changed, got {st:?}");
        };
        assert_eq!(previous.as_bytes(), v1);
        let d = diff(&previous, std::str::from_utf8(v2).unwrap());
        assert!(d.contains("-default = \"allow\""), "{d}");
        assert!(d.contains("+default = \"deny\""), "{d}");
        store.trust(&policy, v2).unwrap();
        assert_eq!(store.status(&policy, v2).unwrap(), TrustStatus::Trusted);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn keyed_by_canonical_path() {
        let (tmp, store, policy) = setup();
        store.trust(&policy, b"x").unwrap();
        let sub = tmp.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let dotted = sub.join("..").join("policy.toml");
        assert_eq!(store.status(&dotted, b"x").unwrap(), TrustStatus::Trusted);
        let other = sub.join("policy.toml");
        fs::write(&other, "x").unwrap();
        assert_eq!(store.status(&other, b"x").unwrap(), TrustStatus::New);
    }

    #[test]
    fn refuses_writable_and_symlinked_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            TrustStore::open(&state),
            Err(TrustError::Writable { .. })
        ));

        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            TrustStore::open(&link),
            Err(TrustError::Symlink { .. })
        ));

        let ok = tmp.path().join("ok");
        fs::create_dir(&ok).unwrap();
        std::os::unix::fs::symlink(&real, ok.join("trust")).unwrap();
        assert!(matches!(
            TrustStore::open(&ok),
            Err(TrustError::Symlink { .. })
        ));
    }

    #[test]
    fn refuses_tampered_and_symlinked_records() {
        let (tmp, store, policy) = setup();
        store.trust(&policy, b"v1").unwrap();
        let record = fs::read_dir(store.dir())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = fs::read_to_string(&record).unwrap();
        fs::write(&record, text.replace("v1", "v2")).unwrap();
        assert!(matches!(
            store.status(&policy, b"v2"),
            Err(TrustError::Corrupt { .. })
        ));

        fs::set_permissions(&record, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            store.status(&policy, b"v2"),
            Err(TrustError::Writable { .. })
        ));

        fs::remove_file(&record).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::write(&elsewhere, "x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &record).unwrap();
        assert!(matches!(
            store.status(&policy, b"v2"),
            Err(TrustError::Symlink { .. })
        ));
    }

    #[test]
    fn refuses_other_owners() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = fs::symlink_metadata(tmp.path()).unwrap();
        let me = euid();
        assert!(check_meta(tmp.path(), &meta, me, true).is_ok());
        let e = check_meta(tmp.path(), &meta, me.wrapping_add(1), true).unwrap_err();
        assert!(
            matches!(e, TrustError::NotOwned { owner, .. } if owner == me),
            "{e}"
        );
        let e = check_meta(tmp.path(), &meta, me, false).unwrap_err();
        assert!(
            matches!(
                e,
                TrustError::WrongType {
                    expected: "regular file",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn missing_policy_is_an_error_naming_it() {
        let (tmp, store, _) = setup();
        let missing = tmp.path().join("nope.toml");
        let e = store.status(&missing, b"").unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
    }
}
