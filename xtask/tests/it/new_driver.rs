//! `cargo xtask new-driver` in a copy of the workspace: the new crate builds, its tests pass,
//! the gateway's registry compiles with it, and the tidy invariants still hold.

use std::path::Path;
use std::process::Command;

use crate::{root, temp_dir};

/// Copies the workspace's sources (no `target/`, no `.git`).
fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            copy_sources(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

#[track_caller]
fn check_new_driver(name: &str, bus: &str) {
    let _target = crate::target_dir_lock();
    let workspace = temp_dir(&format!("new-driver-{bus}"));
    copy_sources(&root(), &workspace);
    // The real workspace's target directory: the copy's external dependencies are already
    // built there, so only the copied workspace crates and the new one compile.
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["new-driver", name, "--bus", bus, "--workspace"])
        .arg(&workspace)
        .env("CARGO_TARGET_DIR", root().join("target"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "new-driver failed:\n{stderr}");
    assert!(stderr.contains(&format!("xtask: cargo test -p drv-{name}")), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("test result: ok") && !stdout.contains("FAILED"), "{stdout}");

    let krate = workspace.join("crates").join(format!("drv-{name}"));
    for file in ["Cargo.toml", "src/lib.rs", "src/chip.rs", "src/adapter.rs", "src/sim.rs", "tests/it/main.rs"] {
        assert!(krate.join(file).is_file(), "{file} was not generated");
    }
    let registry = std::fs::read_to_string(workspace.join(format!("gateways/{bus}-gateway/src/registry.rs"))).unwrap();
    assert!(registry.contains(&format!("name: drv_{name}::DRIVER")), "{registry}");
    let architecture = std::fs::read_to_string(workspace.join("ARCHITECTURE.md")).unwrap();
    assert!(architecture.contains(&format!("### `crates/drv-{name}`")), "not in the code map");
    // A second run refuses to overwrite.
    let again = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["new-driver", name, "--bus", bus, "--no-test", "--workspace"])
        .arg(&workspace)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let _ = std::fs::remove_dir_all(&workspace);
}

#[test]
fn new_i2c_driver_builds_and_passes_its_tests() {
    check_new_driver("tmp102", "i2c");
}

#[test]
fn new_spi_driver_builds_and_passes_its_tests() {
    check_new_driver("adxl345", "spi");
}
