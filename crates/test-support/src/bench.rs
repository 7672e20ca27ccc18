//! The gateway throughput benchmark shared by the gateways' `benches/throughput.rs`: the real
//! broker and gateway binaries as separate processes, a subscriber counting readings, CPU and
//! RSS read from /proc. Prints a Markdown table for BENCHMARKS.md.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Broker, Client, Process};

const WARM_UP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(10);

/// What to benchmark.
pub struct Setup {
    /// The gateway binary, e.g. `i2c-gateway`.
    pub gateway: &'static str,
    /// Devices on the board (for the table).
    pub devices: usize,
    /// Poll period under load.
    pub poll_ms: u64,
    /// The board file for a broker port and a poll period in milliseconds; board name `bench`.
    pub board: fn(u16, u64) -> String,
}

/// CPU seconds (user + system) and resident memory in KiB of a process, from /proc.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let user_hz = 100.0;
    (ticks / user_hz, rss_kib(pid))
}

/// Resident memory of a process in KiB (VmRSS from /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
}

/// CPU seconds of a process's bus threads (named `bus-*` by the runtime): driver and bus time.
fn bus_threads_cpu(pid: u32) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = entry.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if !comm.starts_with("bus-") {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
        let Some(end) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[end + 2..].split_whitespace().collect();
        total += (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0;
    }
    total
}

fn start_gateway(setup: &Setup, port: u16, poll_ms: u64, dir: &Path) -> Process {
    let path = dir.join(format!("bench-{poll_ms}.toml"));
    std::fs::write(&path, (setup.board)(port, poll_ms)).unwrap();
    let mut command = Command::new(crate::workspace_bin(setup.gateway));
    command.arg("--board").arg(&path).env("RUST_LOG", "warn");
    Process::start_quiet(command, setup.gateway)
}

/// Reads messages for `period`, returning how many were readings.
async fn count_readings(client: &mut Client, period: Duration) -> u64 {
    let started = Instant::now();
    let mut readings = 0;
    while started.elapsed() < period {
        let message = client.wait_for(|_| true).await;
        if message.topic.ends_with("/state") {
            readings += 1;
        }
        client.log.clear();
    }
    readings
}

/// Builds the release broker that a benchmark's [`Broker`] runs (`cargo build --release -p
/// broker`, into the target directory the benchmark was built in), so that `cargo bench -p
/// GATEWAY` works on its own: cargo builds a benchmark's own package's binaries, not the
/// broker's.
pub fn build_release_broker() {
    let release = crate::bin_dir();
    let target_dir = release.parent().unwrap();
    eprintln!("building the release broker: cargo build --release --package broker");
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(["build", "--release", "--package", "broker"]).env("CARGO_TARGET_DIR", target_dir);
    // Not the variables cargo set for this benchmark's package: build scripts that watch
    // them (ring's watches CARGO_MANIFEST_DIR) would run again, and everything above them
    // be rebuilt, on every run.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|name| name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_MANIFEST_")) {
            command.env_remove(name);
        }
    }
    let status = command.current_dir(env!("CARGO_MANIFEST_DIR")).status().unwrap();
    assert!(status.success(), "cargo build --release --package broker failed ({status})");
}

/// Runs the benchmark and prints its table.
pub async fn run(setup: Setup) {
    build_release_broker();
    let broker = Broker::start();
    let dir = crate::temp_dir("bench");
    let (_, broker_idle_rss) = usage(broker.process.id());
    let mut client = Client::connect(broker.address(), "bench").await;
    client.subscribe(&schema::topic::board_filter("bench")).await;

    // Idle: the same devices polled once a second.
    let idle = start_gateway(&setup, broker.port, 1000, &dir);
    client.wait_for(|m| m.topic.ends_with("/state")).await;
    count_readings(&mut client, WARM_UP).await;
    let (_, gateway_idle_rss) = usage(idle.id());
    drop(idle);

    let loaded = start_gateway(&setup, broker.port, setup.poll_ms, &dir);
    client.wait_for(|m| m.topic.ends_with("/state")).await;
    count_readings(&mut client, WARM_UP).await;
    let (gateway_cpu0, _) = usage(loaded.id());
    let bus_cpu0 = bus_threads_cpu(loaded.id());
    let (broker_cpu0, _) = usage(broker.process.id());
    let started = Instant::now();
    let readings = count_readings(&mut client, MEASURE).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (gateway_cpu1, gateway_rss) = usage(loaded.id());
    let bus_cpu1 = bus_threads_cpu(loaded.id());
    let (broker_cpu1, broker_rss) = usage(broker.process.id());

    let offered = setup.devices as u64 * 1000 / setup.poll_ms;
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!("| devices, poll period | {} x {} ms ({offered} readings/s offered) | |", setup.devices, setup.poll_ms);
    println!("| readings received by a subscriber | {:.0} /s | >= 5000 /s |", readings as f64 / elapsed);
    println!("| gateway CPU | {:.1} % of one core | < 25 % |", (gateway_cpu1 - gateway_cpu0) / elapsed * 100.0);
    println!(
        "| gateway CPU per reading, everything included | {:.1} us | |",
        (gateway_cpu1 - gateway_cpu0) / readings as f64 * 1e6
    );
    let bus = bus_cpu1 - bus_cpu0;
    println!(
        "| of which bus threads (drivers and simulated chips) | {:.1} us per reading | |",
        bus / readings as f64 * 1e6
    );
    println!(
        "| gateway overhead per reading, excluding bus time (MQTT loop, JSON, client) | {:.1} us | < 20 us |",
        (gateway_cpu1 - gateway_cpu0 - bus) / readings as f64 * 1e6
    );
    println!("| broker CPU | {:.1} % of one core | |", (broker_cpu1 - broker_cpu0) / elapsed * 100.0);
    println!("| gateway RSS idle (same devices at 1 Hz) | {:.1} MB | < 10 MB |", mb(gateway_idle_rss));
    println!("| gateway RSS under load | {:.1} MB | < 10 MB |", mb(gateway_rss));
    println!("| broker RSS idle | {:.1} MB | < 20 MB |", mb(broker_idle_rss));
    println!("| broker RSS under load | {:.1} MB | < 20 MB |", mb(broker_rss));
    drop(loaded);
}
