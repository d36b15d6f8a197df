//! Links pay-service for a small idle footprint: an optimised build with the
//! functions it runs while starting at the front of its code
//! (`link/startup.ld`, made by `scripts/startup-order`), and every build with
//! its relative relocations packed (`-z pack-relative-relocs`), where the glibc
//! that builds it can load that.
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
    // Every build where it can run, so that the tests' binary shows it
    // (tests/startup_order.rs).
    if glibc_reads_packed_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let optimised = std::env::var("PROFILE").as_deref() == Ok("release");
    let switched_off = std::env::var_os("WXPAY_NO_STARTUP_ORDER").is_some_and(|v| v != "0");
    if optimised && !switched_off {
        start_up_first();
    }
}

/// Whether to pack the binary's relative relocations (`DT_RELR`): 15,240 of
/// them, which the loader reads at every start, were 357 KiB of `.rela.dyn`
/// resident for the life of the process; packed they are 4 KiB.
///
/// A packed binary needs glibc 2.36 (Debian 12, the image's base) and says so
/// (`GLIBC_ABI_DT_RELR`): an older glibc refuses to start it. So only where
/// the binary runs on the glibc that builds it (not cross-compiled) and that
/// glibc is 2.36 or newer; and only on x86_64, where Rust links with lld and
/// every GNU ld since 2.38 knows the option.
fn glibc_reads_packed_relocations() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || var("HOST") != var("TARGET")
    {
        return false;
    }
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().strip_prefix("glibc ").unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}

fn start_up_first() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/startup.ld");
    if !script.exists() {
        println!(
            "cargo:warning=pay-service: {} is missing; linking without it (about 4-6 MiB more idle memory)",
            script.display()
        );
        return;
    }
    // An INSERT script adds one section to the linker's own layout instead of
    // replacing it.
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
}
