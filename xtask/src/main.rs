//! `cargo xtask`: busgate's automation, in Rust (no shell scripts).
//!
//! - `cargo xtask run [--board sim] [--mock] [--release]`: build and run a board on this machine.
//! - `cargo xtask build --board NAME [--release]`: the board's binaries for its target triple.
//! - `cargo xtask package --board NAME`: a release tarball with systemd units and an installer.
//! - `cargo xtask deploy --board NAME [--host user@host]`: package, install over ssh, restart.
//! - `cargo xtask new-driver NAME --bus i2c|spi`: a new driver crate, registered and tested.
//! - `cargo xtask ci`: what CI runs: format check, clippy with warnings denied, all tests, and
//!   `cargo xtask cross` (the aarch64 and armv7 builds, their gateways run under qemu-user).
//! - `cargo xtask bench`: throughput, CPU and memory of the gateway and broker.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

mod build;
mod cross;
mod deploy;
mod mqtt;
mod new_driver;
mod package;
mod run;
mod target;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "run" => run::run(&run::Options::parse(&rest)?),
        "build" => build::build(&build::Options::parse(&rest)?).map(drop),
        "package" => package::package(&package::Options::parse(&rest)?).map(drop),
        "deploy" => deploy::deploy(&deploy::Options::parse(&rest)?),
        "new-driver" => new_driver::new_driver(&new_driver::Options::parse(&rest)?),
        "ci" => ci(),
        "cross" => cross::check(),
        "bench" => bench(),
        "" | "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n\n{HELP}"),
    }
}

const HELP: &str = "\
cargo xtask COMMAND

Commands:
  run [--board NAME] [--mock] [--release]
        Build and start the broker and the board's gateways (default board: sim), show the
        readings live, stop everything on Ctrl-C. --mock simulates every bus.
  build --board NAME [--release]
        Build the broker and the board's gateways for the board's target triple (from its board
        file) with the right linker, strip them and print their sizes (they go to
        busgate/NAME/PROFILE in cargo's target directory). It first checks the cross C compiler,
        the target's C library and Rust standard library, and names the package that is missing.
        RUSTC=/usr/bin/rustc selects Debian's toolchain; it is chosen by itself when the default
        one lacks the target.
        Here and below, --board takes a name from boards/ or the path of a board file.
  package --board NAME [--debug]
        Build in release (or debug) and pack target/busgate/NAME/busgate-NAME-VERSION.tar.gz:
        binaries, board file, systemd units and install.sh.
  deploy --board NAME [--host user@host] [--debug] [--timeout SECONDS] [--ssh-config FILE]
        Package, copy over ssh, install into PREFIX/releases/VERSION, switch PREFIX/current,
        restart the services and wait until every gateway reports online; roll back to the
        previous release if one does not. --root DIR and --systemctl CMD are for tests: units
        under DIR/etc/systemd/system, and another service manager.
  new-driver NAME --bus i2c|spi [--model MODEL] [--no-test] [--workspace DIR]
        Create crates/drv-NAME from the driver templates (chip driver, Device adapter,
        simulated chip, tests), register it in the bus's gateway and ARCHITECTURE.md, and run
        its tests. docs/adding-a-driver.md says what to fill in.
  ci    Format check, clippy with warnings denied, every Rust test, the Python test kit's
        tests with the example test apps, and the aarch64 and armv7 builds with their I2C
        gateways run under qemu-user on the simulated board: what CI runs.
  cross The cross part of ci alone: build the binaries of rpi4 (aarch64) and beaglebone
        (armv7) (debug) and run each one's I2C gateway under qemu-user with --mock until a
        reading reaches a native broker. Without the cross tools it says what to install and
        skips, unless BUSGATE_REQUIRE_CROSS is set.
  bench Throughput, CPU and memory of the gateway and broker (release builds), as a table.
";

/// The workspace root (xtask's parent directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_owned).unwrap_or_default()
}

/// A board by name (`boards/NAME.toml`) or by the path of its file.
pub fn load_board(name: &str) -> anyhow::Result<board::Board> {
    let path = if name.ends_with(".toml") || name.contains('/') {
        PathBuf::from(name)
    } else {
        root().join("boards").join(format!("{name}.toml"))
    };
    Ok(board::Board::load(&path)?)
}

/// Cargo's target directory for the workspace, as cargo resolves it (`CARGO_TARGET_DIR`,
/// `build.target-dir` in a config file, or `target/`), asked once.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.clone());
    }
    let dir = target_dir_of(cargo())?;
    Ok(DIR.get_or_init(|| dir).clone())
}

/// The `target_directory` that `cargo metadata` reports, run as `cargo` is set up.
fn target_dir_of(mut cargo: Command) -> anyhow::Result<PathBuf> {
    cargo.args(["metadata", "--format-version", "1", "--no-deps"]);
    let output = cargo.output().context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading cargo metadata's output")?;
    let dir = metadata["target_directory"].as_str().context("cargo metadata gave no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// `cargo` as the one running us, without the variables `cargo run` set for xtask's package:
/// build scripts that watch them (ring's watches `CARGO_MANIFEST_DIR`) would otherwise run
/// again, and everything above them be rebuilt, each time a build goes from plain cargo to
/// xtask or back.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|name| name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_MANIFEST_")) {
            command.env_remove(name);
        }
    }
    command
}

/// Runs a command to completion, failing with its description if it fails.
pub fn run_step(mut command: Command, what: &str) -> anyhow::Result<()> {
    eprintln!("xtask: {what}");
    let status = command.status().with_context(|| format!("starting: {what}"))?;
    if !status.success() {
        bail!("failed: {what} ({status})");
    }
    Ok(())
}

/// The gateways' throughput benchmarks. Each builds what it runs: cargo the gateway (bench
/// profile), the harness the release broker.
fn bench() -> anyhow::Result<()> {
    for gateway in ["i2c-gateway", "spi-gateway"] {
        let mut throughput = cargo();
        throughput.args(["bench", "--package", gateway, "--bench", "throughput"]);
        run_step(throughput, &format!("{gateway} throughput (50 simulated devices at 100 Hz)"))?;
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run_step(fmt, "cargo fmt --all -- --check")?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run_step(clippy, "cargo clippy --workspace --all-targets -- -D warnings")?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run_step(test, "cargo test --workspace")?;
    python_tests()?;
    cross::check()
}

/// The Python test kit's tests and the example test apps, against the simulated board.
fn python_tests() -> anyhow::Result<()> {
    let kit = Command::new("python3").args(["-c", "import busgate_testkit"]).status();
    if !kit.is_ok_and(|status| status.success()) {
        if std::env::var_os("BUSGATE_REQUIRE_PYTHON").is_some() {
            bail!("the Python test kit is not installed: pip install -e python");
        }
        eprintln!("xtask: Python test kit not installed (pip install -e python): its tests were not run");
        return Ok(());
    }
    let mut pytest = Command::new("python3");
    pytest.current_dir(root()).args(["-m", "pytest", "-q", "python/tests", "examples/python"]);
    run_step(pytest, "pytest python/tests examples/python")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    /// `cargo()` without the variables that move the target directory.
    fn plain_cargo() -> Command {
        let mut command = cargo();
        command.env_remove("CARGO_TARGET_DIR").env_remove("CARGO_BUILD_TARGET_DIR");
        command
    }

    #[test]
    fn target_dir_is_targets_by_default() {
        assert_eq!(target_dir_of(plain_cargo()).unwrap(), root().join("target"));
    }

    #[test]
    fn target_dir_follows_cargo_target_dir() {
        let mut command = plain_cargo();
        command.env("CARGO_TARGET_DIR", "/tmp/busgate-elsewhere");
        assert_eq!(target_dir_of(command).unwrap(), Path::new("/tmp/busgate-elsewhere"));
    }

    #[test]
    fn target_dir_follows_build_target_dir() {
        let mut command = plain_cargo();
        command.args(["--config", "build.target-dir=\"/tmp/busgate-configured\""]);
        assert_eq!(target_dir_of(command).unwrap(), Path::new("/tmp/busgate-configured"));
    }
}
