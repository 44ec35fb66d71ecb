//! Secrets in the workspace and in the environment (the scanner itself is the
//! `agent-sandbox-scan` crate): which workspace files a session protects, and the
//! `agent-sandbox scan` command.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_sandbox_scan::{Progress, ScanOptions, ScanReport, scan_dir};

use crate::policy::EffectivePolicy;

/// Id of the rule that protects workspace files holding a secret.
pub const WORKSPACE_SECRETS_RULE: &str = "workspace-secrets";

/// Errors of scanning.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The scan could not run.
    #[error("scanning {dir} for secrets")]
    Scan {
        /// The directory.
        dir: PathBuf,
        /// The error.
        #[source]
        source: agent_sandbox_scan::ScanError,
    },
}

/// Scans `dir` with progress on stderr once it takes longer than a second.
pub fn scan_with_progress(dir: &Path, opts: &ScanOptions) -> Result<ScanReport, SecretsError> {
    let start = Instant::now();
    let shown = std::sync::atomic::AtomicBool::new(false);
    let progress = |p: &Progress| {
        if start.elapsed() > Duration::from_secs(1) {
            shown.store(true, std::sync::atomic::Ordering::Relaxed);
            eprint!(
                "\ragent-sandbox: scanning {} for secrets: {} files, {} MB",
                dir.display(),
                p.files_scanned,
                p.bytes_scanned / 1_000_000
            );
        }
    };
    let report = scan_dir(dir, opts, &progress).map_err(|source| SecretsError::Scan {
        dir: dir.to_path_buf(),
        source,
    })?;
    if shown.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!();
    }
    Ok(report)
}

/// The workspace files holding a secret, scanned within the policy's bounds; says so when a
/// bound stopped the scan early.
pub fn scan_workspace(policy: &EffectivePolicy) -> Result<Vec<PathBuf>, SecretsError> {
    let opts = ScanOptions {
        max_bytes: policy.scan_max_bytes.value,
        max_duration: Duration::from_secs(policy.scan_max_secs.value),
        exempt: policy
            .scan_exempt
            .iter()
            .map(|g| g.value.as_str().to_string())
            .collect(),
        ..ScanOptions::default()
    };
    let report = scan_with_progress(&policy.workspace, &opts)?;
    if let Some(limit) = &report.stopped {
        eprintln!(
            "agent-sandbox: warning: the secret scan of {} stopped early ({limit:?}); files \
             beyond it are not protected",
            policy.workspace.display()
        );
    }
    let mut files: Vec<PathBuf> = report.findings.iter().map(|f| f.path.clone()).collect();
    files.sort();
    files.dedup();
    for f in &files {
        eprintln!(
            "agent-sandbox: {} holds a secret: unreadable in this session",
            f.display()
        );
    }
    Ok(files)
}
