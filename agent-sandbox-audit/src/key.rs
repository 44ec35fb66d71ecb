//! The per-session MAC key.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::AuditError;
use crate::chain::{hex32, unhex32};

/// A 256-bit HMAC-SHA256 key for one session's audit log. It lives outside the sandbox's reach
/// (the supervisor's state directory, mode 0600): whoever holds it can forge records.
///
/// `Debug` does not print the key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// A fresh key from the operating system's random source (`getrandom(2)`).
    pub fn generate() -> Result<AuditKey, AuditError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| AuditError::Random(e.to_string()))?;
        Ok(AuditKey { bytes })
    }

    /// A key from known bytes (tests, fuzzers, keys kept elsewhere).
    pub fn from_bytes(bytes: [u8; 32]) -> AuditKey {
        AuditKey { bytes }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Writes the key as 64 hex digits and a newline to a new file of mode 0600. Refuses an
    /// existing file or a symlink at `path` so a key is never silently replaced or redirected.
    pub fn save(&self, path: &Path) -> Result<(), AuditError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => AuditError::Exists {
                    path: path.to_path_buf(),
                },
                _ => AuditError::io("creating key file", path, e),
            })?;
        let mut text = hex32(&self.bytes).to_vec();
        text.push(b'\n');
        f.write_all(&text)
            .and_then(|()| f.sync_all())
            .map_err(|e| AuditError::io("writing key file", path, e))
    }

    /// Reads a key written by [`AuditKey::save`]. Refuses a symlink, a non-regular file, and a
    /// file readable or writable by group or others.
    pub fn load(path: &Path) -> Result<AuditKey, AuditError> {
        let (f, meta) = crate::open_regular(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK),
            path,
            "opening key file",
        )?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(AuditError::KeyPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = Vec::with_capacity(66);
        // One byte over the longest valid content, so an oversized file is detected without
        // reading all of it.
        f.take(67)
            .read_to_end(&mut text)
            .map_err(|e| AuditError::io("reading key file", path, e))?;
        let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
        let bytes = unhex32(trimmed).ok_or_else(|| AuditError::KeyFormat {
            path: path.to_path_buf(),
            detail: format!("{} bytes of content", text.len()),
        })?;
        Ok(AuditKey { bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generate_save_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let k = AuditKey::generate().unwrap();
        assert_ne!(k, AuditKey::generate().unwrap());
        k.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(AuditKey::load(&path).unwrap(), k);
        // Never replaced.
        assert!(matches!(k.save(&path), Err(AuditError::Exists { .. })));
        assert_eq!(format!("{k:?}"), "AuditKey(<redacted>)");
    }

    #[test]
    fn load_refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::write(&open, "00".repeat(32)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            AuditKey::load(&open),
            Err(AuditError::KeyPermissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            AuditKey::load(&open).unwrap(),
            AuditKey::from_bytes([0; 32])
        );

        let short = dir.path().join("short");
        std::fs::write(&short, "abc").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            AuditKey::load(&short),
            Err(AuditError::KeyFormat { .. })
        ));

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert!(matches!(AuditKey::load(&link), Err(AuditError::Io { .. })));
        assert!(matches!(
            AuditKey::from_bytes([1; 32]).save(&link),
            Err(AuditError::Exists { .. })
        ));
    }
}
