//! Links the optimised pay-service binary with the functions it runs while
//! starting at the front of its code (`link/startup.ld`, made by
//! `scripts/startup-order`).
//!
//! Why: the kernel maps a program's code in 64 KiB blocks ("fault-around"), so
//! an idle service keeps every block its start touched. Scattered over 11 MB
//! of code, pay-service's 1.5 MiB of start-up functions touched 115 blocks:
//! 7 MiB of its idle RSS (issue #16, goal 5; bench/README.md "Memory").
//!
//! Only optimised builds (release, dist) for Linux: a dev build's layout is
//! nobody's figure, and the script is for ELF linkers (lld, Rust's linker on
//! x86_64 Linux, and GNU ld). `WXPAY_NO_STARTUP_ORDER=1` links without it: for
//! a linker that reads no scripts (mold), and for `scripts/startup-order`,
//! which needs every function in `.text` to see it.

fn main() {
    println!("cargo:rerun-if-changed=link/startup.ld");
    println!("cargo:rerun-if-env-changed=WXPAY_NO_STARTUP_ORDER");
    let optimised = std::env::var("PROFILE").as_deref() == Ok("release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let switched_off = std::env::var_os("WXPAY_NO_STARTUP_ORDER").is_some_and(|v| v != "0");
    if !optimised || !linux || switched_off {
        return;
    }
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
