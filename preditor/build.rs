//! Links the `preditor` binary with packed relative relocations (DT_RELR) where the toolchain and
//! the C library support them.
//!
//! The binary is a position-independent executable with ~32,000 relative relocations (tract's
//! vtables and tables): as `.rela.dyn` entries they are 776 kB the loader reads and applies at every
//! start, about 0.5 ms of a 14 ms `preditor backtest` (`perf record`, BENCHMARKS.md). RELR stores
//! the same relocations as bitmaps of a few kilobytes; the executable stays position-independent.
//! glibc applies RELR from 2.36 (its `GLIBC_ABI_DT_RELR` version), binutils writes it from 2.38
//! (`-z pack-relative-relocs`). So a tiny program is linked with the flag and run on the build
//! machine first: where either is older, the binary is linked as before.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    // Only a native Linux GNU build can run the probe it links.
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    if relr_links_and_runs() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

fn relr_links_and_runs() -> bool {
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let src = out.join("relr_probe.c");
    let exe = out.join("relr_probe");
    if std::fs::write(&src, "int main(void) { return 0; }\n").is_err() {
        return false;
    }
    // rustc links through `cc` on linux-gnu; honour the same override cargo users set.
    let cc = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_string());
    let linked = Command::new(cc)
        .arg("-Wl,-z,pack-relative-relocs")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    linked && Command::new(&exe).status().is_ok_and(|s| s.success())
}
