//! The broker's memory and CPU on the sim board with many clients: the board's real gateways
//! (`--mock`) publishing their simulated devices, 200 idle connections, then 50 subscribers on
//! `busgate/#` at QoS 1. Mosquitto in the same run as a yardstick, the same gateways pointed at
//! it. Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo build --release -p i2c-gateway -p spi-gateway -p can-gateway` first (a benchmark cannot
//! build another package's binaries), then `cargo bench -p broker --bench sim_board`.
//!
//! The board is a copy of `boards/sim.toml` with its own port and `max_connections` raised from
//! 64 to 300 (for Mosquitto, `[gateway] broker` set to Mosquitto's port); the broker runs with
//! `--journal off`. The brokers take turns over ROUNDS rounds, each on fresh processes. CPU
//! (utime + stime from /proc/PID/stat) over WINDOW with the gateways alone, then over WINDOW with
//! every client connected; RSS (VmRSS) at each step.

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

#[allow(dead_code, reason = "each benchmark uses part of the shared clients")]
mod mqtt;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mqtt::{clock_ticks, connect, cpu_seconds, median, rss_mib, subscriber};
use schema::topic::{GatewayTopics, ROOT};
use test_support::{Process, free_port, temp_dir, workspace_bin};
use tokio::io::AsyncWriteExt as _;

const ROUNDS: usize = 3;
const IDLE_CONNECTIONS: usize = 200;
const SUBSCRIBERS: usize = 50;
const WINDOW: Duration = Duration::from_secs(10);
/// Time for retained messages to reach new subscribers before a window starts.
const SETTLE: Duration = Duration::from_secs(2);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// `text` with `from` replaced by `to`, which must occur exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "boards/sim.toml should contain {from:?} once");
    text.replace(from, to)
}

/// A copy of the sim board in `dir` (its DBC directory linked): the broker on `port`, room
/// for every client, and the gateways on `gateway_broker` when given.
fn sim_board(dir: &Path, port: u16, gateway_broker: Option<SocketAddr>) -> PathBuf {
    let boards = workspace().join("boards");
    let text = std::fs::read_to_string(boards.join("sim.toml")).unwrap();
    let mut text = replace_once(&text, "address = \"127.0.0.1:1883\"", &format!("address = \"127.0.0.1:{port}\""));
    text = replace_once(&text, "max_connections = 64", "max_connections = 300");
    if let Some(address) = gateway_broker {
        text = replace_once(&text, "[gateway]\n", &format!("[gateway]\nbroker = \"{address}\"\n"));
    }
    let link = dir.join("dbc");
    if !link.exists() {
        std::os::unix::fs::symlink(boards.join("dbc"), &link).unwrap();
    }
    let path = dir.join(format!("sim-{port}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The board's gateways, started with `--mock`; returns once each says online.
async fn start_gateways(board_path: &Path, broker: SocketAddr) -> Vec<Process> {
    let board = board::Board::load(board_path).unwrap();
    let mut watcher = test_support::Client::connect(broker, "bench-status").await;
    let mut processes = Vec::new();
    let mut topics = Vec::new();
    for kind in board.gateway_kinds() {
        let topic = GatewayTopics::new(&board.name, kind.gateway()).status();
        watcher.subscribe(&topic).await;
        topics.push(topic);
        let mut command = Command::new(workspace_bin(kind.gateway()));
        command.arg("--board").arg(board_path).arg("--mock").env("RUST_LOG", "warn");
        processes.push(Process::start_quiet(command, kind.gateway()));
    }
    for topic in &topics {
        let online = |m: &test_support::Received| &m.topic == topic && m.json()["state"] == "online";
        // Statuses arrive in any order: one may be in the log already, seen while waiting.
        if !watcher.log.iter().any(online) {
            watcher.wait_for(online).await;
        }
    }
    watcher.client.disconnect().await.unwrap();
    processes
}

/// What every subscriber received, summed.
#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    wrong_qos: AtomicU64,
    disconnected: AtomicU64,
}

/// A QoS 1 subscriber on `busgate/#` that counts and acknowledges until dropped.
async fn counting_subscriber(address: SocketAddr, id: String, counters: Arc<Counters>) {
    let filter = format!("{ROOT}/#");
    let (mut reader, mut write) = subscriber(address, &id, &filter, 1, None).await;
    tokio::spawn(async move {
        loop {
            let Some((first, body)) = reader.next().await else {
                counters.disconnected.fetch_add(1, Ordering::Relaxed);
                return;
            };
            if first >> 4 != 3 {
                continue;
            }
            counters.messages.fetch_add(1, Ordering::Relaxed);
            match (first >> 1) & 0b11 {
                0 => {}
                1 => {
                    let at = 2 + usize::from(u16::from_be_bytes([body[0], body[1]]));
                    if write.write_all(&[0x40, 0x02, body[at], body[at + 1]]).await.is_err() {
                        counters.disconnected.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                _ => {
                    counters.wrong_qos.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
}

struct Figures {
    rss_alone: f64,
    rss_gateways: f64,
    rss_idle: f64,
    rss_loaded: f64,
    core_gateways: f64,
    core_loaded: f64,
    /// Messages a second each subscriber received in the loaded window.
    rate_per_subscriber: f64,
    faults: Vec<String>,
}

/// CPU share of one core of `pid` over WINDOW from now.
async fn cpu_over_window(pid: u32, ticks: f64) -> f64 {
    let cpu0 = cpu_seconds(pid, ticks);
    let started = std::time::Instant::now();
    tokio::time::sleep(WINDOW).await;
    (cpu_seconds(pid, ticks) - cpu0) / started.elapsed().as_secs_f64()
}

async fn measure(broker: SocketAddr, pid: u32, board: &Path, ticks: f64) -> Figures {
    let rss_alone = rss_mib(pid);
    let gateways = start_gateways(board, broker).await;
    tokio::time::sleep(SETTLE).await;
    let core_gateways = cpu_over_window(pid, ticks).await;
    let rss_gateways = rss_mib(pid);
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for n in 0..IDLE_CONNECTIONS {
        idle.push(connect(broker, &format!("bench-idle-{n}"), 60, None).await);
    }
    let rss_idle = rss_mib(pid);
    let counters = Arc::new(Counters::default());
    for n in 0..SUBSCRIBERS {
        counting_subscriber(broker, format!("bench-sub-{n}"), counters.clone()).await;
    }
    tokio::time::sleep(SETTLE).await;
    let messages0 = counters.messages.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let core_loaded = cpu_over_window(pid, ticks).await;
    let rate = (counters.messages.load(Ordering::Relaxed) - messages0) as f64 / started.elapsed().as_secs_f64();
    let rss_loaded = rss_mib(pid);
    let mut faults = Vec::new();
    for (what, counter) in [("subscribers disconnected", &counters.disconnected), ("at QoS 2", &counters.wrong_qos)] {
        let n = counter.load(Ordering::Relaxed);
        if n > 0 {
            faults.push(format!("{n} {what}"));
        }
    }
    drop(gateways);
    Figures {
        rss_alone,
        rss_gateways,
        rss_idle,
        rss_loaded,
        core_gateways,
        core_loaded,
        rate_per_subscriber: rate / SUBSCRIBERS as f64,
        faults,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = temp_dir("bench-sim-board");
    let ticks = clock_ticks();
    let load_before = mqtt::load_average();
    let mut runs: Vec<(&str, Figures)> = Vec::new();
    runtime.block_on(async {
        for round in 0..ROUNDS {
            let port = free_port();
            let board = sim_board(&dir, port, None);
            let mut command = Command::new(env!("CARGO_BIN_EXE_broker"));
            command.arg("--board").arg(&board).args(["--journal", "off"]).env("RUST_LOG", "warn");
            let process = Process::start(command, "broker", broker::READY);
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            runs.push(("busgate", measure(address, process.id(), &board, ticks).await));
            drop(process);
            match test_support::Mosquitto::for_benchmarks() {
                Some(mosquitto) => {
                    let board = sim_board(&dir, free_port(), Some(mosquitto.address()));
                    runs.push(("Mosquitto", measure(mosquitto.address(), mosquitto.process.id(), &board, ticks).await));
                }
                None => eprintln!("mosquitto is not installed: no comparison"),
            }
            for (name, f) in &runs[runs.len().saturating_sub(2)..] {
                eprintln!(
                    "round {round}, {name}: RSS {:.1} / {:.1} / {:.1} / {:.1} MiB, CPU {:.1} % / {:.1} %, {:.0} msg/s per subscriber {:?}",
                    f.rss_alone,
                    f.rss_gateways,
                    f.rss_idle,
                    f.rss_loaded,
                    f.core_gateways * 100.0,
                    f.core_loaded * 100.0,
                    f.rate_per_subscriber,
                    f.faults
                );
            }
        }
    });
    println!(
        "sim board, {} s CPU windows, {ticks} ticks/s; load average before: {load_before}; after: {}. Medians of {ROUNDS} runs each.\n",
        WINDOW.as_secs(),
        mqtt::load_average()
    );
    println!(
        "| broker | RSS alone (MiB) | RSS, gateways up | RSS, + {IDLE_CONNECTIONS} idle | RSS, + {SUBSCRIBERS} subscribers | CPU, gateways only (% of one core) | CPU, all clients | messages/s to each subscriber | faults |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for name in ["Mosquitto", "busgate"] {
        let mine: Vec<&Figures> = runs.iter().filter(|(n, _)| *n == name).map(|(_, f)| f).collect();
        let cell = |field: fn(&Figures) -> f64| median(&mine.iter().map(|f| field(f)).collect::<Vec<_>>());
        let faults: Vec<String> = mine.iter().flat_map(|f| f.faults.iter().cloned()).collect();
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
            cell(|f| f.rss_alone),
            cell(|f| f.rss_gateways),
            cell(|f| f.rss_idle),
            cell(|f| f.rss_loaded),
            cell(|f| f.core_gateways * 100.0),
            cell(|f| f.core_loaded * 100.0),
            cell(|f| f.rate_per_subscriber),
            if faults.is_empty() { "none".to_owned() } else { faults.join("; ") }
        );
    }
}
