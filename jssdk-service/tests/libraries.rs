//! jssdk-service has no database, so it must not load a database client:
//! libpq and the OpenSSL it brings cost an idle process about 5 MiB of
//! resident memory (issue #16, goal 5). What the binary asks the dynamic
//! linker for is its `NEEDED` list; `readelf` (binutils, there wherever a C
//! compiler is) prints it.

use std::process::Command;

/// Libraries a database connection would bring: libpq when linked
/// dynamically, OpenSSL (libpq's TLS) when libpq is linked statically.
const DATABASE_CLIENT: [&str; 3] = ["libpq.so", "libssl.so", "libcrypto.so"];

fn needed(binary: &str) -> Option<Vec<String>> {
    let out = Command::new("readelf").args(["-d", binary]).output().ok()?;
    assert!(
        out.status.success(),
        "readelf -d {binary}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| l.split('[').nth(1)?.split(']').next())
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn jssdk_service_loads_no_database_client() {
    let binary = env!("CARGO_BIN_EXE_jssdk-service");
    let Some(needed) = needed(binary) else {
        testkit::skip_or_fail("readelf (binutils) is not installed");
        return;
    };
    // The list was read: an ELF that needs nothing at all would be a static
    // binary, which this workspace does not build.
    assert!(
        needed.iter().any(|l| l.starts_with("libc.so")),
        "readelf found no NEEDED entries in {binary}: {needed:?}"
    );
    let loaded: Vec<_> = needed
        .iter()
        .filter(|l| DATABASE_CLIENT.iter().any(|d| l.starts_with(d)))
        .collect();
    assert!(
        loaded.is_empty(),
        "jssdk-service links a database client it never uses: {loaded:?} \
         (something it calls reaches shared::db; see shared::startup::Infra)"
    );
}
