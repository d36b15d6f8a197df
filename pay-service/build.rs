//! Links the optimised pay-service binary for a small idle footprint: the
//! functions it runs while starting at the front of its code
//! (`link/startup.ld`, made by `scripts/startup-order`), and its relative
//! relocations packed (`-z pack-relative-relocs`).
//!
//! Why: the kernel maps a program's code in 64 KiB blocks ("fault-around"), so
//! an idle service keeps every block its start touched. Scattered over 11 MB
//! of code, pay-service's 1.5 MiB of start-up functions touched 115 blocks:
//! 7 MiB of its idle RSS (issue #16, goal 5; bench/README.md "Memory").
//!
//! Both for Linux only: they are for ELF linkers (lld, Rust's linker on
//! x86_64 Linux, GNU ld, mold). The script only for optimised builds (release,
//! dist): a dev build's layout is nobody's figure. `WXPAY_NO_STARTUP_ORDER=1`
//! links without the script: for a linker that reads no scripts (mold), and for
//! `scripts/startup-order`, which needs every function in `.text` to see it.

fn main() {
    println!("cargo:rerun-if-changed=link/startup.ld");
    println!("cargo:rerun-if-env-changed=WXPAY_NO_STARTUP_ORDER");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    // Every build, so that the tests' binary shows it (tests/startup_order.rs).
    pack_relative_relocations();
    let optimised = std::env::var("PROFILE").as_deref() == Ok("release");
    let switched_off = std::env::var_os("WXPAY_NO_STARTUP_ORDER").is_some_and(|v| v != "0");
    if optimised && !switched_off {
        start_up_first();
    }
}

/// The binary's 15,000 relative relocations as a bitmap (`DT_RELR`) instead of
/// 24 bytes each: the loader reads every one of them at start, so their
/// 369 KiB stayed resident for the life of the process. glibc reads the
/// packed form since 2.36 (Debian 12, the image's), and a binary made so
/// names the glibc feature it needs: an older glibc refuses to start it
/// instead of misloading it.
fn pack_relative_relocations() {
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}

fn start_up_first() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/startup.ld");
    if !script.exists() {
        println!(
            "cargo:warning=pay-service: {} is missing; linking without it (about 2 MiB more idle memory)",
            script.display()
        );
        return;
    }
    // An INSERT script adds one section to the linker's own layout instead of
    // replacing it.
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
}
