//! `cargo xtask build` with cargo's target directory moved.

use std::path::Path;
use std::process::Command;

use crate::{root, temp_dir};

/// Regression test: with `CARGO_TARGET_DIR` set, cargo built fine and xtask then failed
/// "copying .../target/aarch64-unknown-linux-gnu/release/broker: No such file or directory",
/// because it looked for cargo's binaries under the workspace's `target/` instead of asking
/// cargo where they are.
#[test]
fn build_honours_cargo_target_dir() {
    let _target = crate::target_dir_lock();
    // This test's own target directory, wherever it is (target/debug/xtask → target).
    let xtask = Path::new(env!("CARGO_BIN_EXE_xtask"));
    let debug = xtask.parent().unwrap();
    let default_dir = debug.parent().unwrap();
    // Another target directory whose debug builds are this one's (a link), so that nothing is
    // built twice; the board has a name of its own, so its copies are where xtask put them.
    let dir = temp_dir("target-dir");
    std::os::unix::fs::symlink(debug, dir.join("debug")).unwrap();
    let text = std::fs::read_to_string(root().join("boards/sim.toml")).unwrap();
    let board = dir.join("target-dir-test.toml");
    std::fs::write(&board, text.replace("name = \"sim\"", "name = \"target-dir-test\"")).unwrap();
    std::fs::create_dir_all(dir.join("dbc")).unwrap();
    std::fs::copy(root().join("boards/dbc/busgate-demo.dbc"), dir.join("dbc/busgate-demo.dbc")).unwrap();

    let output = Command::new(xtask)
        .arg("build")
        .arg("--board")
        .arg(&board)
        .env("CARGO_TARGET_DIR", &dir)
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "xtask build failed:\n{stderr}");
    for name in ["broker", "i2c-gateway", "spi-gateway", "can-gateway"] {
        let copy = dir.join("busgate/target-dir-test/debug").join(name);
        assert!(copy.is_file(), "{} is missing:\n{stderr}", copy.display());
    }
    assert!(!default_dir.join("busgate/target-dir-test").exists(), "xtask wrote into {}", default_dir.display());
    let _ = std::fs::remove_dir_all(&dir);
}
