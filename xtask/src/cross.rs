//! The cross-compilation check of `cargo xtask ci`: the board binaries built for aarch64 and
//! armv7, and each target's I2C gateway run under qemu-user on the simulated board until one
//! of its readings reaches a native broker.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use schema::JournalEntry;
use schema::topic::DeviceTopics;

use crate::target::{Target, on_path};
use crate::{build, cargo, load_board, root, run_step, target_dir};

/// A board whose binaries the check builds, and how qemu-user runs them.
struct Cross {
    board: &'static str,
    /// The qemu-user binary for the board's target.
    qemu: &'static str,
    /// The target's dynamic loader as the multiarch packages install it.
    loader: &'static str,
    /// Where the cross packages keep the target's loader and libraries.
    cross_root: &'static str,
}

/// One board per target triple CI covers.
const BOARDS: &[Cross] = &[
    Cross {
        board: "rpi4",
        qemu: "qemu-aarch64",
        loader: "/lib/ld-linux-aarch64.so.1",
        cross_root: "/usr/aarch64-linux-gnu",
    },
    Cross {
        board: "beaglebone",
        qemu: "qemu-arm",
        loader: "/lib/ld-linux-armhf.so.3",
        cross_root: "/usr/arm-linux-gnueabihf",
    },
];

impl Cross {
    /// The root qemu takes the target's dynamic loader and libraries from (`qemu-* -L`).
    ///
    /// The loader and libc must come from the same glibc build: with the multiarch `libc6`
    /// of the target installed (`libstd-rust-web-dev:ARCH` pulls it in), `-L` on the cross
    /// package's root would take that package's loader but fall back to the multiarch libc in
    /// `/lib/TRIPLE`, and the mismatched pair hangs in the first `pthread_create`. So the
    /// multiarch root wins.
    fn sysroot(&self) -> &'static str {
        if Path::new(self.loader).exists() { "/" } else { self.cross_root }
    }
}

/// How long the emulated gateway has to publish a reading.
const TIMEOUT: Duration = Duration::from_secs(90);

/// Builds each board and runs its I2C gateway under qemu; a board whose tools are missing is
/// skipped (with what to install), unless `BUSGATE_REQUIRE_CROSS` is set.
pub fn check() -> anyhow::Result<()> {
    let require = std::env::var_os("BUSGATE_REQUIRE_CROSS").is_some();
    let mut ready = Vec::new();
    for cross in BOARDS {
        let board = load_board(cross.board)?;
        let missing = if on_path(cross.qemu) {
            build::prerequisites(&board).err()
        } else {
            Some(anyhow::anyhow!("{} is not installed: apt-get install qemu-user", cross.qemu))
        };
        match missing {
            None => ready.push(cross),
            Some(error) => {
                let message = format!(
                    "the {} cross check (board {}) cannot run: {error:#}\n{}",
                    board.target,
                    cross.board,
                    everything()?
                );
                if require {
                    bail!("{message}");
                }
                eprintln!("xtask: skipped: {message}");
            }
        }
    }
    if ready.is_empty() {
        return Ok(());
    }
    let mut broker_build = cargo();
    broker_build.args(["build", "--package", "broker"]);
    run_step(broker_build, "building the native broker")?;
    for cross in ready {
        let started = Instant::now();
        let built = build::build(&build::Options { board: cross.board.into(), release: false })?;
        let build_time = started.elapsed();
        let gateway = built
            .binaries
            .iter()
            .find(|binary| binary.ends_with("i2c-gateway"))
            .with_context(|| format!("the {} board has no I2C gateway", cross.board))?;
        run_under_qemu(cross, &built.target.triple, gateway)?;
        eprintln!(
            "xtask: {} cross check passed in {:.0?} (build {build_time:.0?})",
            built.target.triple,
            started.elapsed()
        );
    }
    Ok(())
}

/// Everything the cross check needs on Debian, as one command line.
fn everything() -> anyhow::Result<String> {
    let mut architectures = Vec::new();
    let mut packages = vec!["qemu-user".to_owned()];
    let mut std_packages = vec!["rustc-web".to_owned()];
    for cross in BOARDS {
        let board = load_board(cross.board)?;
        // Any other host: the packages are named after the target alone.
        let target = Target::new(&board.target, "x86_64-unknown-linux-gnu", None)?;
        architectures.push(format!("dpkg --add-architecture {}", target.debian_arch));
        packages.push(target.c_packages());
        std_packages.push(format!("libstd-rust-web-dev:{}", target.debian_arch));
    }
    Ok(format!(
        "Everything the cross check needs: {} && apt-get update &&\n    apt-get install {} {}\n\
         (the last {} only where rustup cannot add the targets)",
        architectures.join(" && "),
        packages.join(" "),
        std_packages.join(" "),
        std_packages.len()
    ))
}

/// Kills a child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_under_qemu(cross: &Cross, triple: &str, gateway: &Path) -> anyhow::Result<()> {
    // The simulated board on a free port, so that CI can run beside a developer's broker.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("busgate-cross-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let board_path = dir.join("sim.toml");
    let text = std::fs::read_to_string(root().join("boards/sim.toml")).context("reading boards/sim.toml")?;
    std::fs::write(&board_path, text.replace("127.0.0.1:1883", &format!("127.0.0.1:{port}")))
        .context("writing the board file")?;
    let board = board::Board::load(&board_path)?;
    let device = board
        .devices
        .iter()
        .find(|device| board.buses.iter().any(|bus| bus.name == device.bus && bus.kind == board::BusKind::I2c))
        .context("the simulated board has no I2C device")?;
    let state = DeviceTopics::new(&board.name, "i2c", &device.bus, &device.name).state();

    let mut broker = Command::new(target_dir()?.join("debug/broker"));
    broker.arg("--board").arg(&board_path).args(["--journal", "stdout"]);
    broker.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut broker = Running(broker.spawn().context("starting the broker")?);
    let (lines_tx, lines) = mpsc::channel();
    let stdout = broker.0.stdout.take().context("broker stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut qemu = Command::new(cross.qemu);
    qemu.args(["-L", cross.sysroot()]).arg(gateway).arg("--board").arg(&board_path).arg("--mock");
    qemu.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    eprintln!(
        "xtask: {} -L {} {} --board {} --mock",
        cross.qemu,
        cross.sysroot(),
        gateway.display(),
        board_path.display()
    );
    let mut qemu = Running(qemu.spawn().with_context(|| format!("starting {}", cross.qemu))?);

    let deadline = Instant::now() + TIMEOUT;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(anyhow::anyhow!("no reading on {state} from the {triple} gateway within {TIMEOUT:?}"));
        }
        if let Ok(Some(status)) = qemu.0.try_wait() {
            break Err(anyhow::anyhow!("the {triple} gateway exited under qemu ({status})"));
        }
        match lines.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                let Ok(entry) = schema::payload::parse::<JournalEntry>(line.as_bytes()) else { continue };
                if entry.topic == state {
                    eprintln!("xtask: the {triple} gateway's reading reached the broker: {}", entry.topic);
                    break Ok(());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break Err(anyhow::anyhow!("the broker exited")),
        }
    };
    drop(qemu);
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    /// The packages the skip message tells a developer to install are the ones CI installs
    /// and the README lists (`.ci/run` once installed the cross gcc without its C library).
    #[test]
    fn ci_and_readme_install_what_the_cross_check_names() {
        let advice = everything().unwrap();
        let packages: Vec<&str> =
            advice.split("apt-get install ").nth(1).unwrap().lines().next().unwrap().split_whitespace().collect();
        assert!(packages.contains(&"libc6-dev-arm64-cross") && packages.contains(&"libc6-dev-armhf-cross"), "{advice}");
        let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
        let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
        for package in packages {
            assert!(ci.split_whitespace().any(|word| word == package), ".ci/run does not install {package}");
            assert!(readme.split_whitespace().any(|word| word == package), "README.md does not name {package}");
        }
    }
}
