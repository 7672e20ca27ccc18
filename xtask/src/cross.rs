//! The cross-compilation check of `cargo xtask ci`: the board binaries built for aarch64, and
//! the aarch64 I2C gateway run under qemu-user on the simulated board until one of its
//! readings reaches a native broker.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use schema::JournalEntry;
use schema::topic::DeviceTopics;

use crate::target::on_path;
use crate::{build, cargo, root, run_step};

/// The board whose target is aarch64.
const BOARD: &str = "rpi4";
/// The root qemu takes the aarch64 dynamic loader and libraries from (`qemu-aarch64 -L`).
///
/// The loader and libc must come from the same glibc build: with the multiarch `libc6:arm64`
/// installed (`libstd-rust-web-dev:arm64` pulls it in), `-L /usr/aarch64-linux-gnu` would take
/// the cross package's loader but fall back to the multiarch libc in `/lib/aarch64-linux-gnu`,
/// and the mismatched pair hangs in the first `pthread_create`. So the multiarch root wins.
fn sysroot() -> &'static str {
    if Path::new("/lib/ld-linux-aarch64.so.1").exists() { "/" } else { "/usr/aarch64-linux-gnu" }
}
/// How long the emulated gateway has to publish a reading.
const TIMEOUT: Duration = Duration::from_secs(90);

/// Builds for aarch64 and runs the gateway under qemu; skipped (with what to install) when
/// the cross tools are missing, unless `BUSGATE_REQUIRE_CROSS` is set.
pub fn check() -> anyhow::Result<()> {
    if !on_path("qemu-aarch64") || !on_path("aarch64-linux-gnu-gcc") {
        let install = "apt-get install gcc-aarch64-linux-gnu qemu-user (and rustc-web libstd-rust-web-dev:arm64 \
                       where rustup cannot add targets)";
        if std::env::var_os("BUSGATE_REQUIRE_CROSS").is_some() {
            bail!("the aarch64 cross check needs qemu-aarch64 and aarch64-linux-gnu-gcc: {install}");
        }
        eprintln!("xtask: aarch64 cross check skipped: {install}");
        return Ok(());
    }
    let started = Instant::now();
    let built = build::build(&build::Options { board: BOARD.into(), release: false })?;
    let gateway = built
        .binaries
        .iter()
        .find(|binary| binary.ends_with("i2c-gateway"))
        .context("the rpi4 board has no I2C gateway")?;
    let mut broker_build = cargo();
    broker_build.args(["build", "--package", "broker"]);
    run_step(broker_build, "building the native broker")?;
    run_under_qemu(gateway)?;
    eprintln!("xtask: aarch64 cross check passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Kills a child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_under_qemu(gateway: &Path) -> anyhow::Result<()> {
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

    let mut broker = Command::new(root().join("target/debug/broker"));
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

    let mut qemu = Command::new("qemu-aarch64");
    qemu.args(["-L", sysroot()]).arg(gateway).arg("--board").arg(&board_path).arg("--mock");
    qemu.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    eprintln!("xtask: qemu-aarch64 -L {} {} --board {} --mock", sysroot(), gateway.display(), board_path.display());
    let mut qemu = Running(qemu.spawn().context("starting qemu-aarch64")?);

    let deadline = Instant::now() + TIMEOUT;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(anyhow::anyhow!("no reading on {state} from the aarch64 gateway within {TIMEOUT:?}"));
        }
        if let Ok(Some(status)) = qemu.0.try_wait() {
            break Err(anyhow::anyhow!("the aarch64 gateway exited under qemu ({status})"));
        }
        match lines.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                let Ok(entry) = schema::payload::parse::<JournalEntry>(line.as_bytes()) else { continue };
                if entry.topic == state {
                    eprintln!("xtask: the aarch64 gateway's reading reached the broker: {}", entry.topic);
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
