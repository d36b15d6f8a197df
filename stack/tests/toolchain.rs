//! One Rust toolchain for CI, developers and the image: rust-toolchain.toml
//! pins it, the Dockerfile's builder image carries the same version, and the
//! workspace's minimum (rust-version) is not above it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

fn repo(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first `key = "value"` of `text`.
fn value_of<'t>(text: &'t str, key: &str) -> &'t str {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"'))
        })
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

fn version(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap()).collect()
}

#[test]
fn the_pinned_toolchain_is_the_images_and_meets_rust_version() {
    let channel = value_of(&repo("rust-toolchain.toml"), "channel").to_owned();
    assert_eq!(version(&channel).len(), 3, "pin a release, not {channel}");
    let dockerfile = repo("deploy/docker/Dockerfile");
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_IMAGE="))
        .expect("the Dockerfile names its Rust image");
    assert!(
        image.starts_with(&format!("rust:{channel}-")),
        "the Dockerfile builds with {image}, rust-toolchain.toml pins {channel}"
    );
    let manifest = repo("Cargo.toml");
    let minimum = value_of(&manifest, "rust-version");
    assert!(
        version(minimum) <= version(&channel),
        "rust-version {minimum} is above the pinned {channel}"
    );
}
