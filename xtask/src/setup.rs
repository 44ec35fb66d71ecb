//! `cargo xtask setup`: brings a Debian 12 machine to the point where the workspace builds and
//! its tests run. Every step checks before it acts, so a second run installs nothing.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::util;

/// Debian packages the build and the tests need.
const APT_PACKAGES: &[&str] = &[
    "build-essential",
    "gcc",
    "clang",
    // for curl's HTTPS downloads (the benchmark fetches a crate from crates.io)
    "ca-certificates",
    "curl",
    "git",
    "strace",
    // the anti-tamper tests attach a debugger to the supervisor (and must fail to)
    "gdb",
    "tmux",
    "netcat-openbsd",
    "python3",
    "iproute2",
    "postgresql",
    "postgresql-client",
    // static test binaries: the tests check that the sandbox does not depend on LD_PRELOAD
    "musl-tools",
    "procps",
    "util-linux",
];

/// Packages installed when the distribution has them; nothing depends on them (bpftool is a
/// debugging aid for the eBPF programs).
const OPTIONAL_APT_PACKAGES: &[&str] = &["bpftool"];

/// Where the `libLLVM.so` symlink that bpf-linker's build looks for is created
/// (`LLVM_PREFIX` points here; the library goes in its `lib/`).
const LLVM_PREFIX: &str = "/opt/agent-sandbox-llvm";

/// The LLVM major version bpf-linker is built for; it must match the nightly's own LLVM.
const LLVM_MAJOR: &str = "22";

const TRACEFS: &str = "/sys/kernel/tracing";

/// What `setup` should do beyond installing prerequisites.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Build the release supervisor (a failed build fails setup).
    pub build: bool,
    /// Run `agent-sandbox doctor` after the build to print the kernel capability table.
    pub doctor: bool,
    /// Reinstall bpf-linker even when a working one is present.
    pub reinstall_bpf_linker: bool,
}

/// Command-line options of `cargo xtask setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Reinstall bpf-linker even when a working one is present (e.g. after a nightly update).
    /// `CARGO_INSTALL_ROOT` chooses where it goes, as for any `cargo install`.
    #[arg(long)]
    pub reinstall_bpf_linker: bool,
    /// Only install prerequisites: do not build the supervisor nor run `agent-sandbox doctor`.
    #[arg(long)]
    pub no_build: bool,
}

impl SetupArgs {
    /// The options this command line asks for.
    pub fn options(&self) -> Options {
        Options {
            build: !self.no_build,
            doctor: !self.no_build,
            reinstall_bpf_linker: self.reinstall_bpf_linker,
        }
    }
}

/// Runs every setup step in order; stops at the first failure.
pub fn run(root: &Path, options: Options) -> Result<()> {
    apt_packages().context("installing Debian packages")?;
    rust_toolchain().context("preparing the nightly toolchain")?;
    bpf_linker(options.reinstall_bpf_linker).context("installing bpf-linker")?;
    cargo_fuzz().context("installing cargo-fuzz")?;
    tracefs().context("mounting tracefs")?;
    if options.build {
        build_supervisor(root)?;
        if options.doctor {
            doctor(root);
        }
    }
    println!("[setup] done");
    Ok(())
}

fn apt_packages() -> Result<()> {
    if util::find_in_path("dpkg").is_none() {
        bail!("dpkg not found: `cargo xtask setup` supports Debian and Ubuntu only");
    }
    let missing = missing_packages(APT_PACKAGES)?;
    let missing_optional = missing_packages(OPTIONAL_APT_PACKAGES)?;
    if missing.is_empty() && missing_optional.is_empty() {
        println!(
            "[setup] apt packages: all {} present",
            APT_PACKAGES.len() + OPTIONAL_APT_PACKAGES.len()
        );
        return Ok(());
    }

    println!("[setup] apt-get update");
    util::run_streaming(util::privileged("apt-get", &[])?.arg("update"))?;

    let mut to_install = missing.clone();
    for package in &missing_optional {
        if apt_has_candidate(package)? {
            to_install.push(package);
        } else {
            println!("[setup] {package}: not available from apt on this system, skipped");
        }
    }
    if to_install.is_empty() {
        return Ok(());
    }
    println!("[setup] installing apt packages: {}", to_install.join(" "));
    util::run_streaming(
        util::privileged("apt-get", &[("DEBIAN_FRONTEND", "noninteractive")])?
            .args(["install", "-y"])
            .args(&to_install),
    )?;

    // apt-get can succeed while leaving a package half-configured (e.g. a failing postinst).
    let still_missing = missing_packages(&to_install)?;
    if !still_missing.is_empty() {
        bail!(
            "apt-get finished but these packages are still not installed: {}",
            still_missing.join(" ")
        );
    }
    Ok(())
}

/// The packages of `packages` that `dpkg -s` does not report as installed.
fn missing_packages<'a>(packages: &[&'a str]) -> Result<Vec<&'a str>> {
    let mut missing = Vec::new();
    for &package in packages {
        let output = Command::new("dpkg")
            .args(["-s", package])
            .output()
            .with_context(|| format!("failed to run `dpkg -s {package}`"))?;
        // A removed package whose configuration files remain is still known to dpkg, and
        // `dpkg -s` exits 0 for it: look at the Status line.
        let installed = output.status.success()
            && dpkg_status_installed(&String::from_utf8_lossy(&output.stdout));
        if !installed {
            missing.push(package);
        }
    }
    Ok(missing)
}

/// Whether `dpkg -s` output says the package is installed and configured.
fn dpkg_status_installed(dpkg_s_output: &str) -> bool {
    dpkg_s_output
        .lines()
        .filter_map(|line| line.strip_prefix("Status:"))
        .any(|status| status.split_whitespace().eq(["install", "ok", "installed"]))
}

/// Whether apt knows an installable version of `package` (after `apt-get update`).
fn apt_has_candidate(package: &str) -> Result<bool> {
    let policy = util::run_captured(Command::new("apt-cache").args(["policy", package]))?;
    Ok(apt_policy_has_candidate(&policy))
}

fn apt_policy_has_candidate(policy: &str) -> bool {
    policy
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Candidate:"))
        .any(|candidate| candidate.trim() != "(none)")
}

fn rust_toolchain() -> Result<()> {
    if util::find_in_path("rustup").is_none() {
        bail!("rustup not found on PATH nor in ~/.cargo/bin: install Rust with rustup first");
    }
    let toolchains = util::run_captured(Command::new("rustup").args(["toolchain", "list"]))?;
    if !has_nightly(&toolchains) {
        bail!(
            "the nightly toolchain is not installed (`rustup toolchain list` shows no `nightly`); \
             the eBPF programs are built with it. Install it with \
             `rustup toolchain install nightly --profile minimal` and run setup again"
        );
    }
    let components = util::run_captured(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))?;
    if components
        .lines()
        .any(|c| c.trim() == "rust-src" || c.starts_with("rust-src-"))
    {
        println!("[setup] rust-src (nightly): present");
    } else {
        println!("[setup] rust-src (nightly): installing");
        util::run_streaming(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

/// Whether `rustup toolchain list` output contains the `nightly` channel toolchain (what
/// `rustup run nightly` uses), as opposed to only dated nightlies such as `nightly-2025-01-01-…`.
fn has_nightly(toolchain_list: &str) -> bool {
    toolchain_list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| match name.strip_prefix("nightly") {
            Some("") => true,
            Some(rest) => rest
                .strip_prefix('-')
                .is_some_and(|host| !host.starts_with(|c: char| c.is_ascii_digit())),
            None => false,
        })
}

fn bpf_linker(reinstall: bool) -> Result<()> {
    match util::find_in_path("bpf-linker") {
        Some(path) if !reinstall => match bpf_linker_version() {
            Ok(version) => {
                println!(
                    "[setup] bpf-linker: present ({}, {version})",
                    path.display()
                );
                return Ok(());
            }
            Err(err) => println!(
                "[setup] bpf-linker at {} does not run under the nightly toolchain ({err:#}); \
                 its libLLVM is probably from an older nightly: reinstalling",
                path.display()
            ),
        },
        Some(_) => println!("[setup] bpf-linker: reinstalling as asked"),
        None => println!("[setup] bpf-linker: not found, installing (takes a few minutes)"),
    }
    install_bpf_linker()?;
    let version = bpf_linker_version().context(
        "bpf-linker was installed but does not run under `rustup run nightly`; is the directory \
         `cargo install` wrote it to on PATH?",
    )?;
    println!("[setup] bpf-linker: installed ({version})");
    Ok(())
}

/// Installs cargo-fuzz (`cargo xtask fuzz` runs the libFuzzer targets of `fuzz/` with it)
/// unless `cargo fuzz --version` already works. Needs no root: it goes to cargo's bin directory.
pub fn cargo_fuzz() -> Result<()> {
    if let Ok(version) = util::run_captured(Command::new("cargo").args(["fuzz", "--version"])) {
        println!("[setup] cargo-fuzz: present ({})", version.trim());
        return Ok(());
    }
    println!("[setup] cargo-fuzz: not found, installing (takes a few minutes)");
    util::run_streaming(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    let version = util::run_captured(Command::new("cargo").args(["fuzz", "--version"])).context(
        "cargo-fuzz was installed but `cargo fuzz --version` fails; is the directory \
             `cargo install` wrote it to on PATH?",
    )?;
    println!("[setup] cargo-fuzz: installed ({})", version.trim());
    Ok(())
}

/// `bpf-linker --version` under the nightly toolchain. bpf-linker links against the nightly's
/// libLLVM by soname, which only `rustup run nightly` puts on the library path, so this is
/// exactly how aya-build will run it.
fn bpf_linker_version() -> Result<String> {
    let out = util::run_captured(Command::new("rustup").args([
        "run",
        "nightly",
        "bpf-linker",
        "--version",
    ]))?;
    Ok(out.trim().to_owned())
}

fn install_bpf_linker() -> Result<()> {
    let sysroot =
        util::run_captured(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let names = fs::read_dir(&lib_dir)
        .with_context(|| format!("failed to list {}", lib_dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok());
    let llvm = pick_libllvm(names).with_context(|| {
        format!(
            "no libLLVM.so.{LLVM_MAJOR}* in {}: bpf-linker is built with its `llvm-{LLVM_MAJOR}` \
             feature, which needs a nightly whose LLVM is {LLVM_MAJOR}",
            lib_dir.display()
        )
    })?;
    let llvm = lib_dir.join(llvm);

    let prefix_lib = Path::new(LLVM_PREFIX).join("lib");
    fs::create_dir_all(&prefix_lib).with_context(|| {
        format!(
            "failed to create {} (setup must run as root)",
            prefix_lib.display()
        )
    })?;
    let link = prefix_lib.join("libLLVM.so");
    ensure_symlink(&link, &llvm)?;
    println!("[setup] {} -> {}", link.display(), llvm.display());

    let mut cmd = Command::new("cargo");
    cmd.args([
        "install",
        "bpf-linker",
        "--no-default-features",
        "--features",
    ])
    .arg(format!("llvm-{LLVM_MAJOR}"))
    // a stale binary may be present (it no longer runs): replace it
    .arg("--force")
    .env("LLVM_PREFIX", LLVM_PREFIX);
    println!("[setup] LLVM_PREFIX={LLVM_PREFIX} {}", util::describe(&cmd));
    util::run_streaming(&mut cmd)
}

/// The file among `names` that the `libLLVM.so.<major>*` glob matches (the nightly ships
/// one, e.g. `libLLVM.so.22.1-rust-1.97.0-nightly`); the last in sort order if several.
fn pick_libllvm(names: impl Iterator<Item = String>) -> Option<String> {
    let prefix = format!("libLLVM.so.{LLVM_MAJOR}");
    names
        .filter(|name| {
            name.strip_prefix(&prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '-']))
        })
        .max()
}

/// Makes `link` a symlink to `target`, replacing a symlink that points elsewhere.
fn ensure_symlink(link: &Path, target: &Path) -> Result<()> {
    match fs::read_link(link) {
        Ok(current) if current == target => return Ok(()),
        Ok(_) => fs::remove_file(link)
            .with_context(|| format!("failed to remove the stale symlink {}", link.display()))?,
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err).with_context(|| {
                format!("{} exists and is not a symlink; remove it", link.display())
            });
        }
    }
    symlink(target, link).with_context(|| {
        format!(
            "failed to create the symlink {} -> {}",
            link.display(),
            target.display()
        )
    })
}

fn tracefs() -> Result<()> {
    let mounts =
        fs::read_to_string("/proc/self/mounts").context("failed to read /proc/self/mounts")?;
    if tracefs_mounted(&mounts) {
        println!("[setup] tracefs: mounted at {TRACEFS}");
        return Ok(());
    }
    println!("[setup] tracefs: mounting at {TRACEFS}");
    util::run_streaming(
        util::privileged("mount", &[])?.args(["-t", "tracefs", "tracefs", TRACEFS]),
    )?;
    let mounts =
        fs::read_to_string("/proc/self/mounts").context("failed to read /proc/self/mounts")?;
    if !tracefs_mounted(&mounts) {
        bail!("mount succeeded but tracefs is still not listed at {TRACEFS} in /proc/self/mounts");
    }
    Ok(())
}

/// Whether a `/proc/self/mounts` listing has tracefs at [`TRACEFS`].
fn tracefs_mounted(mounts: &str) -> bool {
    mounts.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(TRACEFS) && fields.next() == Some("tracefs")
    })
}

fn build_supervisor(root: &Path) -> Result<()> {
    println!("[setup] building the supervisor: cargo build --release -p agent-sandbox");
    util::run_streaming(util::cargo(root).args(["build", "--release", "-p", "agent-sandbox"]))
        .context("building the supervisor failed")
}

/// Prints the kernel capability table. Informational: a missing capability is for the
/// supervisor to report and degrade on, not a reason to fail setup.
fn doctor(root: &Path) {
    let bin: PathBuf = util::supervisor_bin(root);
    if !bin.exists() {
        println!(
            "[setup] warning: {} does not exist after the build; skipping `agent-sandbox doctor`",
            bin.display()
        );
        return;
    }
    println!("[setup] {} doctor", bin.display());
    if !util::is_root() {
        println!("[setup] (not root: the doctor cannot try privileged operations)");
    }
    match Command::new(&bin).arg("doctor").status() {
        Ok(status) if status.success() => {}
        Ok(status) => println!(
            "[setup] warning: `agent-sandbox doctor` failed ({}); see its output above",
            util::describe_status(status)
        ),
        Err(err) => println!("[setup] warning: could not run {}: {err}", bin.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_is_parsed() {
        let installed = "Package: strace\nStatus: install ok installed\nPriority: optional\n";
        let config_only = "Package: clang\nStatus: deinstall ok config-files\n";
        let half = "Package: x\nStatus: install ok half-configured\n";
        assert!(dpkg_status_installed(installed));
        assert!(!dpkg_status_installed(config_only));
        assert!(!dpkg_status_installed(half));
        assert!(!dpkg_status_installed(""));
    }

    #[test]
    fn apt_candidate_is_parsed() {
        let yes = "bpftool:\n  Installed: (none)\n  Candidate: 7.1.0+6.1.172-1\n";
        let no = "foo:\n  Installed: (none)\n  Candidate: (none)\n";
        assert!(apt_policy_has_candidate(yes));
        assert!(!apt_policy_has_candidate(no));
        assert!(!apt_policy_has_candidate(""));
    }

    #[test]
    fn nightly_is_detected() {
        let with = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n";
        let dated_only = "stable-x86_64-unknown-linux-gnu (default)\n\
                          nightly-2025-01-01-x86_64-unknown-linux-gnu\n";
        assert!(has_nightly(with));
        assert!(has_nightly("nightly\n"));
        assert!(!has_nightly(dated_only));
        assert!(!has_nightly("stable-x86_64-unknown-linux-gnu (default)\n"));
        assert!(!has_nightly("no installed toolchains\n"));
    }

    #[test]
    fn libllvm_glob() {
        let names = [
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "librustc_driver-b5a965480ee51f9a.so",
        ]
        .map(String::from);
        assert_eq!(
            pick_libllvm(names.into_iter()).as_deref(),
            Some("libLLVM.so.22.1-rust-1.97.0-nightly")
        );
        let wrong_major =
            ["libLLVM.so.23.0-rust-1.99.0-nightly", "libLLVM.so.220"].map(String::from);
        assert_eq!(pick_libllvm(wrong_major.into_iter()), None);
    }

    #[test]
    fn tracefs_mount_is_found() {
        let with = "proc /proc proc rw 0 0\nnodev /sys/kernel/tracing tracefs rw,relatime 0 0\n";
        let debugfs_only = "debugfs /sys/kernel/debug debugfs rw 0 0\n";
        assert!(tracefs_mounted(with));
        assert!(!tracefs_mounted(debugfs_only));
    }

    #[test]
    fn symlink_is_created_and_replaced() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-symlink-test-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let link = dir.join("libLLVM.so");
        ensure_symlink(&link, Path::new("/a"))?;
        ensure_symlink(&link, Path::new("/a"))?;
        assert_eq!(fs::read_link(&link)?, Path::new("/a"));
        ensure_symlink(&link, Path::new("/b"))?;
        assert_eq!(fs::read_link(&link)?, Path::new("/b"));
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
