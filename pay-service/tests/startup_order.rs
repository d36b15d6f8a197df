//! pay-service's start-up linker script (`link/startup.ld`, see `build.rs`
//! and `scripts/startup-order`) still names functions this code has: a
//! renamed module or another symbol mangling would leave the optimised binary
//! quietly back at scattered start-up code and ~2 MiB more idle memory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::process::Command;

fn script() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/link/startup.ld"))
        .expect("pay-service/link/startup.ld")
}

/// The section patterns of the script, without `.text.`.
fn patterns(script: &str) -> Vec<&str> {
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("*(.text.")?.strip_suffix(')'))
        .collect()
}

/// `pattern` (a `*` glob) matches `name`.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|i| {
                    name.is_char_boundary(head.len() + i) && glob(rest, &name[head.len() + i..])
                })
        }
    }
}

#[test]
fn the_script_adds_one_section_before_the_code() {
    let script = script();
    assert!(script.contains(".text.startup_first : {"), "{script:.200}");
    assert!(script.trim_end().ends_with("INSERT BEFORE .text;"));
    assert!(patterns(&script).len() > 500, "{}", patterns(&script).len());
}

/// What changes from build to build is left out of every pattern: legacy
/// mangling's hash, LTO's numbered copies.
#[test]
fn no_pattern_names_a_build_of_its_own() {
    let script = script();
    for p in patterns(&script) {
        assert!(p.ends_with('*'), "{p}");
        let name = p.trim_end_matches('*');
        let hashed = name.len() > 20 && {
            let tail = &name[name.len() - 20..];
            tail.starts_with("17h") && tail.ends_with('E')
        };
        assert!(!hashed, "{p}");
        let numbered = name
            .rsplit_once('.')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        assert!(!numbered, "{p}");
    }
}

/// The script's patterns still find their functions in pay-service as built
/// for the tests (the same functions, laid out for a quick link).
#[test]
fn the_patterns_find_this_codes_functions() {
    let out = Command::new("nm")
        .args(["--defined-only", env!("CARGO_BIN_EXE_pay-service")])
        .output()
        .expect("nm (binutils) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (_, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            matches!(kind, "t" | "T").then_some(name)
        })
        .collect();
    names.sort_unstable();
    let script = script();
    let patterns = patterns(&script);
    let found = patterns
        .iter()
        .filter(|p| {
            let head = p.split('*').next().unwrap();
            let start = names.partition_point(|n| *n < head);
            names[start..]
                .iter()
                .take_while(|n| n.starts_with(head))
                .any(|n| glob(p, n))
        })
        .count();
    // A few start-up helpers exist only where the optimised build made them.
    assert!(
        found * 10 >= patterns.len() * 8,
        "{found} of {} patterns find a function",
        patterns.len()
    );
}

#[test]
fn glob_matches_as_the_linker_does() {
    assert!(glob("_ZN3pay5start*", "_ZN3pay5start17h0123456789abcdefE"));
    assert!(glob("_RNvCs*_3std4main*", "_RNvCsjrHSEGnQ3l9_3std4main"));
    assert!(!glob("_RNvCs*_3std4main*", "_RNvCsjrHSEGnQ3l9_4core4main"));
    assert!(!glob("_ZN3pay5start*", "_ZN3pay4stop17h0123456789abcdefE"));
}
