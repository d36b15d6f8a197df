//! Links the optimised pay-service binary with the functions it runs while
//! starting at the front of its code (`link/startup.ld`, made by
//! `scripts/startup-order`).
//!
//! Why: the kernel maps a program's code in 64 KiB blocks ("fault-around"), so
//! an idle service keeps every block its start touched. Scattered over 11 MB
//! of code, pay-service's 1.5 MiB of start-up functions touched 115 blocks:
//! 7 MiB of its idle RSS (issue #16, goal 5; bench/README.md "Memory").
//!
//! Only optimised builds (release, dist): a dev build's layout is nobody's
//! figure. `WXPAY_NO_STARTUP_ORDER=1` links without the script, which
//! `scripts/startup-order` needs to see every function.

fn main() {
    println!("cargo:rerun-if-changed=link/startup.ld");
    println!("cargo:rerun-if-env-changed=WXPAY_NO_STARTUP_ORDER");
    let optimised = std::env::var("PROFILE").as_deref() == Ok("release");
    let switched_off = std::env::var_os("WXPAY_NO_STARTUP_ORDER").is_some_and(|v| v != "0");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/startup.ld");
    // Absent where only the manifests are copied (the image's dependency
    // layer, cargo-chef): that build's binary is thrown away.
    if optimised && !switched_off && script.exists() {
        // An INSERT script adds one section to the linker's own layout
        // instead of replacing it (lld, Rust's linker here, and GNU ld both
        // read it).
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
