use which::which;

/// Rebuild the eBPF object when bpf-linker changes (a new LLVM may produce different code).
fn main() {
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
