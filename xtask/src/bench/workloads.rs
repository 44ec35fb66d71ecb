//! Preparation of each workload, all of it outside the timed region: compiling the C programs,
//! downloading and unpacking ripgrep, fetching its dependencies, building and warming the
//! scan tree.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use super::{Workload, scan};
use crate::util;

/// openat+close calls per run of the `open` workload.
const OPEN_ITERATIONS: u32 = 200_000;
/// fork+exec+wait rounds per run of the `forkexec` workload.
pub(super) const FORKEXEC_ITERATIONS: u32 = 2_000;

/// The crate the `build` workload compiles: a real project with ~30 dependencies and build
/// scripts, written by none of us.
const RIPGREP: &str = "ripgrep-14.1.1";
const RIPGREP_URL: &str = "https://static.crates.io/crates/ripgrep/ripgrep-14.1.1.crate";
/// The crate's checksum as published in the crates.io index.
const RIPGREP_SHA256: &str = "f77b8032dc584527975f34aa5a897d0ef5a785573fda778771a614ff9da501d9";

/// The C workloads' own clock: with a TIMING_FILE argument they write the time of their loop
/// there ([`Prepared::inner_timing`]), without the session's start and end.
macro_rules! timing_c {
    () => {
        r#"#include <stdio.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Writes the loop's time in ms to `file` (when given); 0 on success. */
static int write_timing(const char *file, double ms) {
    if (file == NULL) {
        return 0;
    }
    FILE *f = fopen(file, "w");
    if (f == NULL || fprintf(f, "%.3f\n", ms) < 0 || fclose(f) != 0) {
        perror(file);
        return 1;
    }
    return 0;
}
"#
    };
}

const OPEN_C: &str = concat!(
    timing_c!(),
    r#"/* cargo xtask bench, workload "open": N openat+close of one file. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s FILE COUNT [TIMING_FILE]\n", argv[0]);
        return 2;
    }
    long count = strtol(argv[2], NULL, 10);
    double start = now_ms();
    for (long i = 0; i < count; i++) {
        /* glibc's open() is the openat syscall */
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(argv[1]);
            return 1;
        }
        close(fd);
    }
    return write_timing(argc == 4 ? argv[3] : NULL, now_ms() - start);
}
"#
);

const FORKEXEC_C: &str = concat!(
    timing_c!(),
    r#"/* cargo xtask bench, workload "forkexec": N fork+execv+waitpid of a program. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s PROGRAM COUNT [TIMING_FILE]\n", argv[0]);
        return 2;
    }
    long count = strtol(argv[2], NULL, 10);
    char *child_argv[] = {argv[1], NULL};
    double start = now_ms();
    for (long i = 0; i < count; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            execv(argv[1], child_argv);
            perror(argv[1]);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0) {
            perror("waitpid");
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s failed (wait status %d)\n", argv[1], status);
            return 1;
        }
    }
    return write_timing(argc == 4 ? argv[3] : NULL, now_ms() - start);
}
"#
);

/// A workload ready to be timed.
#[derive(Debug)]
pub struct Prepared {
    /// One line saying what a run does, for the report.
    pub description: String,
    /// The command line; its program is an absolute path so every leg runs the same binary.
    pub argv: Vec<OsString>,
    /// Working directory of the run (the workspace's otherwise).
    pub cwd: Option<PathBuf>,
    /// Extra environment of the run.
    pub env: Vec<(OsString, OsString)>,
    /// A directory deleted before every run (the build's target directory).
    pub fresh_dir: Option<PathBuf>,
    /// Exit codes that count as success (`scan` exits 1 when it finds secrets).
    pub success_codes: Vec<i32>,
    /// Whether the run must start in `cwd` (the build's project); otherwise the `protected`
    /// leg starts it in its own workspace, like an agent started in a protected repository.
    pub cwd_matters: bool,
    /// Bytes the run reads, for a throughput (the scan tree).
    pub input_bytes: Option<u64>,
    /// A file the workload writes its own measured time to, in milliseconds (forkexec: its
    /// loop, without the session's start and end). Removed before every run.
    pub inner_timing: Option<PathBuf>,
}

impl Default for Prepared {
    /// A run of nothing that succeeds with exit code 0; the workloads fill in the rest.
    fn default() -> Prepared {
        Prepared {
            description: String::new(),
            argv: Vec::new(),
            cwd: None,
            env: Vec::new(),
            fresh_dir: None,
            success_codes: vec![0],
            cwd_matters: false,
            input_bytes: None,
            inner_timing: None,
        }
    }
}

/// What the preparation of a workload needs beyond the bench directory.
#[derive(Debug)]
pub struct PrepareOptions<'a> {
    /// The supervisor binary (`scan` runs its subcommand).
    pub supervisor: &'a Path,
    /// `--quick`: the scan tree is 20 MB instead of 200.
    pub quick: bool,
}

impl Prepared {
    /// Deletes what a run leaves behind (the build's target directory): before every run,
    /// outside the timed region, and after the last.
    pub fn reset(&self) -> Result<()> {
        for path in [&self.inner_timing, &self.fresh_dir].into_iter().flatten() {
            util::remove_if_present(path)?;
        }
        Ok(())
    }
}

/// Builds whatever `workload` needs under `bench_dir` and returns how to run it.
pub fn prepare(workload: Workload, bench_dir: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    // The sandboxed legs run under the embedded default policy: the workloads start in a
    // workspace of their own, whose `.git` stops the search for a repository policy.toml
    // before it reaches this repository's example policy.
    fs::create_dir_all(bench_dir.join(".git"))
        .with_context(|| format!("failed to create {}/.git", bench_dir.display()))?;
    let ws = bench_dir.join("workspace");
    fs::create_dir_all(ws.join(".git"))
        .with_context(|| format!("failed to create {}/.git", ws.display()))?;
    match workload {
        Workload::Open => {
            let bin = compile_c(bench_dir, "open_close", OPEN_C)?;
            let target = bench_dir.join("open-target.txt");
            fs::write(&target, "opened and closed by the open benchmark\n")
                .with_context(|| format!("failed to write {}", target.display()))?;
            let timing = bench_dir.join("open-loop.ms");
            Ok(Prepared {
                description: format!("{OPEN_ITERATIONS} openat+close of one file"),
                argv: vec![
                    bin.into(),
                    target.into(),
                    OPEN_ITERATIONS.to_string().into(),
                    timing.clone().into(),
                ],
                cwd: Some(ws.clone()),
                inner_timing: Some(timing),
                ..Prepared::default()
            })
        }
        Workload::Forkexec => {
            let bin = compile_c(bench_dir, "fork_exec", FORKEXEC_C)?;
            let true_bin = Path::new("/bin/true");
            if !true_bin.exists() {
                bail!("{} does not exist", true_bin.display());
            }
            let timing = bench_dir.join("forkexec-loop.ms");
            Ok(Prepared {
                description: format!("{FORKEXEC_ITERATIONS} fork+execv+waitpid of /bin/true"),
                argv: vec![
                    bin.into(),
                    true_bin.into(),
                    FORKEXEC_ITERATIONS.to_string().into(),
                    timing.clone().into(),
                ],
                cwd: Some(ws.clone()),
                inner_timing: Some(timing),
                ..Prepared::default()
            })
        }
        Workload::Build => prepare_build(bench_dir),
        Workload::True => {
            let true_bin = util::find_in_path("true").context("`true` not found on PATH")?;
            Ok(Prepared {
                description: "`true`: start-up and tear-down only".to_owned(),
                argv: vec![true_bin.into()],
                cwd: Some(ws.clone()),
                ..Prepared::default()
            })
        }
        Workload::Scan => prepare_scan(bench_dir, &ws, opts),
        Workload::Sigkill => Ok(Prepared {
            description: format!(
                "SIGKILL of the supervisor of `sh -c '{}'`: until the tree is gone",
                super::sigkill::SCRIPT
            ),
            cwd: Some(super::sigkill::workspace(bench_dir)?),
            ..Prepared::default()
        }),
        Workload::Audit => {
            let root = crate::util::workspace_root()?;
            let writer = super::audit::build(&root)?;
            Ok(Prepared {
                description: format!(
                    "{} synthetic audit records appended (release build of the writer), then \
                     `agent-sandbox audit verify` of the log",
                    super::audit::RECORDS
                ),
                argv: vec![writer.into()],
                cwd: Some(bench_dir.join("audit")),
                ..Prepared::default()
            })
        }
        Workload::Approval => Ok(Prepared {
            description: format!(
                "{} held execs per session, answered deny/allow alternately on the approval \
                 socket: hold -> drawn in the UI, decision -> call returned",
                super::approval::HOLDS
            ),
            cwd: Some(super::approval::workspace(bench_dir)?),
            ..Prepared::default()
        }),
    }
}

/// Checks that the supervisor has the `scan` subcommand, builds (once) and warms the tree,
/// and returns `agent-sandbox scan <tree>`.
fn prepare_scan(bench_dir: &Path, ws: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    // First, so that a supervisor without the subcommand fails at once, not after the copies.
    let help = Command::new(opts.supervisor)
        .args(["scan", "--help"])
        .output()
        .with_context(|| format!("failed to start {}", opts.supervisor.display()))?;
    if !help.status.success() {
        let stderr = String::from_utf8_lossy(&help.stderr);
        let first_line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!(
            "{} has no `scan` subcommand (`scan --help`: {}, {}): build a supervisor that \
             has the secret scanner, or leave the workload out (--only open,forkexec,build,true)",
            opts.supervisor.display(),
            util::describe_status(help.status),
            first_line.trim()
        );
    }
    let source = scan::registry_src().context("no home directory: cannot find ~/.cargo")?;
    let (target, name) = if opts.quick {
        (scan::QUICK_TREE_BYTES, "scan-tree-quick")
    } else {
        (scan::TREE_BYTES, "scan-tree")
    };
    let dest = bench_dir.join(name);
    println!(
        "[bench] scan: tree of {} MB under {} (built once from {})",
        target / 1_000_000,
        dest.display(),
        source.display()
    );
    let tree = scan::build_tree(&source, &dest, target)?;
    println!("[bench] scan: warming the page cache");
    let (bytes, files) = scan::warm(&tree.dir)?;
    let mut argv: Vec<OsString> = vec![opts.supervisor.into(), "scan".into()];
    argv.push(tree.dir.into());
    Ok(Prepared {
        description: format!(
            "agent-sandbox scan of {:.1} MB of source code ({files} files), page cache warm",
            bytes as f64 / 1e6
        ),
        argv,
        cwd: Some(ws.to_path_buf()),
        // 1 means "secrets found": crates carry test fixtures that look like keys
        success_codes: vec![0, 1],
        input_bytes: Some(bytes),
        ..Prepared::default()
    })
}

/// Writes `source` to `bench_dir/<name>.c` and compiles it with `cc -O2` to `bench_dir/<name>`.
fn compile_c(bench_dir: &Path, name: &str, source: &str) -> Result<PathBuf> {
    let src = bench_dir.join(format!("{name}.c"));
    let bin = bench_dir.join(name);
    fs::write(&src, source).with_context(|| format!("failed to write {}", src.display()))?;
    util::run_captured(
        Command::new("cc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&bin)
            .arg(&src),
    )
    .with_context(|| {
        format!(
            "compiling {} failed (is build-essential installed?)",
            src.display()
        )
    })?;
    Ok(bin)
}

/// Downloads (once) and unpacks ripgrep, fetches its dependencies, and returns a
/// `cargo build -j2 --offline` whose target directory is deleted before every run.
fn prepare_build(bench_dir: &Path) -> Result<Prepared> {
    let src_root = bench_dir.join("src");
    fs::create_dir_all(&src_root)
        .with_context(|| format!("failed to create {}", src_root.display()))?;

    let crate_file = src_root.join(format!("{RIPGREP}.crate"));
    if crate_file.exists() {
        println!("[bench] build: {} cached", crate_file.display());
    } else {
        download(RIPGREP_URL, &crate_file)?;
    }
    verify_sha256(&crate_file, RIPGREP_SHA256)?;

    let project = src_root.join(RIPGREP);
    // Written last, so an interrupted unpack is redone rather than built half-extracted.
    let ready = project.join(".xtask-unpacked");
    if !ready.exists() {
        println!("[bench] build: unpacking {}", crate_file.display());
        if project.exists() {
            fs::remove_dir_all(&project)
                .with_context(|| format!("failed to delete {}", project.display()))?;
        }
        util::run_captured(
            Command::new("tar")
                .arg("-xzf")
                .arg(&crate_file)
                .arg("-C")
                .arg(&src_root),
        )?;
        // The project sits inside our workspace's directory tree, and cargo refuses a package
        // that a parent workspace does not list. An empty [workspace] table makes it its own.
        let manifest = project.join("Cargo.toml");
        let mut text = fs::read_to_string(&manifest)
            .with_context(|| format!("failed to read {}", manifest.display()))?;
        text.push_str("\n# added by `cargo xtask bench`: not part of the enclosing workspace\n");
        text.push_str("[workspace]\n");
        fs::write(&manifest, text)
            .with_context(|| format!("failed to write {}", manifest.display()))?;
        fs::write(&ready, "").with_context(|| format!("failed to write {}", ready.display()))?;
    }

    let cargo = util::find_in_path("cargo").context("cargo not found on PATH")?;
    println!("[bench] build: cargo fetch");
    util::run_streaming(Command::new(&cargo).arg("fetch").current_dir(&project))
        .context("fetching ripgrep's dependencies failed")?;

    let target = bench_dir.join("build-target");
    let mut argv = vec![cargo.into_os_string()];
    argv.extend(["build", "-j2", "--offline"].map(OsString::from));
    Ok(Prepared {
        description: format!("cargo build -j2 --offline of {RIPGREP}, fresh target directory"),
        argv,
        cwd: Some(project),
        env: vec![("CARGO_TARGET_DIR".into(), target.clone().into())],
        fresh_dir: Some(target),
        cwd_matters: true,
        ..Prepared::default()
    })
}

/// Downloads `url` to `dest` with curl, through a temporary name so that an interrupted
/// download is never mistaken for the cached file.
fn download(url: &str, dest: &Path) -> Result<()> {
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    println!("[bench] build: downloading {url}");
    util::run_streaming(
        Command::new("curl")
            .args([
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--retry",
                "3",
                "-o",
            ])
            .arg(&partial)
            .arg(url),
    )
    .with_context(|| format!("downloading {url} failed"))?;
    fs::rename(&partial, dest).with_context(|| {
        format!(
            "failed to rename {} to {}",
            partial.display(),
            dest.display()
        )
    })
}

/// Checks `file` against the checksum the crates.io index publishes for it.
fn verify_sha256(file: &Path, expected: &str) -> Result<()> {
    let out = util::run_captured(Command::new("sha256sum").arg(file))?;
    let sum = out.split_whitespace().next().unwrap_or_default();
    if sum != expected {
        bail!(
            "{} has sha256 {sum}, expected {expected} (from the crates.io index); delete it to \
             download it again",
            file.display()
        );
    }
    Ok(())
}
