//! Builds the eBPF object (agent-sandbox-ebpf) with the nightly toolchain and bpf-linker, so a
//! plain `cargo build` produces a supervisor with its programs embedded.
use std::path::PathBuf;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .context("agent-sandbox has no parent directory")?
        .join("agent-sandbox-ebpf");
    let root = root.to_str().context("non-UTF-8 workspace path")?;
    // aya-build watches the eBPF crate only; the types it shares with this crate live in
    // agent-sandbox-common, and a change there must rebuild both sides or their layouts differ.
    let common = manifest
        .parent()
        .context("agent-sandbox has no parent directory")?
        .join("agent-sandbox-common");
    println!("cargo:rerun-if-changed={}", common.display());
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "agent-sandbox-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF programs failed; `cargo xtask setup` installs the nightly rust-src \
         component and bpf-linker they need",
    )
}
