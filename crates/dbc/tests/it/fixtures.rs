//! Our own fixtures (`tests/fixtures`): every frame of each log decodes as cantools decoded it.

use std::path::{Path, PathBuf};

use crate::expected::compare;

pub fn directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[track_caller]
fn check(name: &str) {
    let outcome = compare(&directory(), name);
    assert!(outcome.frames > 0, "{name}.log has no frames");
    assert!(
        outcome.differences.is_empty(),
        "{name}: {}/{} frames agree\n{}",
        outcome.agreeing,
        outcome.frames,
        outcome.differences.join("\n")
    );
}

#[test]
fn layouts_decode_as_cantools_does() {
    check("layouts");
}

#[test]
fn multiplexing_decodes_as_cantools_does() {
    check("multiplexing");
}
