//! The shared test data (`shared/fixtures`, beside the workspace checkout): reference DBC files
//! and logs, MQTT conformance cases. A clean checkout may not have it, and the tests that use it
//! are then skipped with a message, except where `BUSGATE_REQUIRE_FIXTURES` is set (CI has
//! `shared/` beside its clone and sets it), where a missing directory fails the test.

use std::path::{Path, PathBuf};

/// The switch that makes missing shared fixtures an error.
pub const REQUIRE_FIXTURES: &str = "BUSGATE_REQUIRE_FIXTURES";

/// `shared/fixtures` beside the workspace root.
pub fn shared_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

/// The shared fixture directory `name` (e.g. `can`), or `None` when it is missing and not
/// required; panics when it is missing and [`REQUIRE_FIXTURES`] is set.
pub fn shared(name: &str) -> Option<PathBuf> {
    locate(&shared_root().join(name), std::env::var_os(REQUIRE_FIXTURES).is_some())
        .unwrap_or_else(|error| panic!("{error}"))
}

/// The decision of [`shared`], apart from the environment.
pub fn locate(directory: &Path, required: bool) -> Result<Option<PathBuf>, String> {
    if directory.is_dir() {
        return Ok(Some(directory.to_owned()));
    }
    if required {
        return Err(format!(
            "{REQUIRE_FIXTURES} is set but {} is missing: put shared/ beside the checkout",
            directory.display()
        ));
    }
    eprintln!("skipped: no shared fixtures at {} (set {REQUIRE_FIXTURES} to require them)", directory.display());
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fixtures_skip_unless_required() {
        let missing = Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such-fixtures");
        assert_eq!(locate(&missing, false), Ok(None));
        let error = locate(&missing, true).unwrap_err();
        assert!(error.contains("BUSGATE_REQUIRE_FIXTURES is set but"), "{error}");
        let present = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        assert_eq!(locate(&present, true), Ok(Some(present.clone())));
    }

    #[test]
    fn the_shared_root_is_beside_the_workspace() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
        assert!(workspace.join("Cargo.lock").is_file(), "{}", workspace.display());
        assert_eq!(shared_root(), Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    }
}
