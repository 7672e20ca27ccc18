//! Throughput and footprint of the I2C gateway and the broker, as separate release processes:
//! 50 simulated devices polled at 100 Hz, readings counted by an MQTT subscriber, CPU and RSS
//! read from /proc. Prints a table for BENCHMARKS.md.
//!
//! Run with `cargo xtask bench` (it builds the release broker first).

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::process::Command;
use std::time::{Duration, Instant};

use test_support::{Broker, Client, Process};

const BUSES: usize = 5;
/// Per bus: two BME280 (their only addresses) and eight INA219.
const DEVICES_PER_BUS: usize = 10;
const POLL_MS: u64 = 10;
const WARM_UP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(10);

fn board(port: u16, poll_ms: u64) -> String {
    let mut text = format!(
        "[board]\nname = \"bench\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\n[broker.listeners.local]\naddress = \"127.0.0.1:{port}\"\n\n[gateway]\noutbox_capacity = 10000\n"
    );
    for bus in 0..BUSES {
        text.push_str(&format!("\n[[bus]]\nname = \"i2c{bus}\"\nkind = \"i2c\"\nmock = true\n"));
        for device in 0..DEVICES_PER_BUS {
            let (driver, address) = if device < 2 { ("bme280", 0x76 + device) } else { ("ina219", 0x40 + device - 2) };
            text.push_str(&format!(
                "\n[[device]]\nname = \"d{bus}-{device}\"\nbus = \"i2c{bus}\"\ndriver = \"{driver}\"\naddress = {address}\npoll_ms = {poll_ms}\n"
            ));
        }
    }
    text
}

/// CPU seconds (user + system) and resident memory of a process, from /proc.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    (ticks / hz, rss_kb)
}

fn start_gateway(port: u16, poll_ms: u64, dir: &std::path::Path) -> Process {
    let path = dir.join(format!("bench-{poll_ms}.toml"));
    std::fs::write(&path, board(port, poll_ms)).unwrap();
    let mut command = Command::new(test_support::workspace_bin("i2c-gateway"));
    command.arg("--board").arg(&path).env("RUST_LOG", "warn");
    // The gateway logs nothing at warn when healthy; wait for its first reading instead.
    Process::start_quiet(command, "i2c-gateway")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let broker = Broker::start();
    let dir = test_support::temp_dir("bench");
    let (_, broker_idle_rss) = usage(broker.process.id());

    let mut client = Client::connect(broker.address(), "bench").await;
    client.subscribe("busgate/bench/#").await;

    // Idle: the same 50 devices polled once a second.
    let idle = start_gateway(broker.port, 1000, &dir);
    client.wait_for(|m| m.topic.ends_with("/state")).await;
    let settle = Instant::now() + WARM_UP;
    while Instant::now() < settle {
        client.wait_for(|_| true).await;
    }
    let (_, gateway_idle_rss) = usage(idle.id());
    drop(idle);

    // Load: 50 devices at 100 Hz.
    let loaded = start_gateway(broker.port, POLL_MS, &dir);
    client.wait_for(|m| m.topic.contains("/i2c4/d4-9/state")).await;
    let warm = Instant::now() + WARM_UP;
    while Instant::now() < warm {
        client.wait_for(|_| true).await;
    }
    let (gateway_cpu0, _) = usage(loaded.id());
    let (broker_cpu0, _) = usage(broker.process.id());
    let started = Instant::now();
    let mut readings = 0u64;
    while started.elapsed() < MEASURE {
        let message = client.wait_for(|_| true).await;
        if message.topic.ends_with("/state") {
            readings += 1;
        }
        client.log.clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (gateway_cpu1, gateway_rss) = usage(loaded.id());
    let (broker_cpu1, broker_rss) = usage(broker.process.id());

    let rate = readings as f64 / elapsed;
    let gateway_core = (gateway_cpu1 - gateway_cpu0) / elapsed;
    let broker_core = (broker_cpu1 - broker_cpu0) / elapsed;
    let per_reading_us = (gateway_cpu1 - gateway_cpu0) / readings as f64 * 1e6;
    let devices = BUSES * DEVICES_PER_BUS;
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| devices, poll period | {devices} x {POLL_MS} ms ({} readings/s offered) | 50 x 10 ms |",
        devices as u64 * 1000 / POLL_MS
    );
    println!("| readings received by a subscriber | {rate:.0} /s | >= 5000 /s |");
    println!("| gateway CPU | {:.1} % of one core | < 25 % |", gateway_core * 100.0);
    println!(
        "| gateway CPU per reading (everything: simulated chip, bus thread, JSON, MQTT) | {per_reading_us:.1} us | < 20 us |"
    );
    println!("| broker CPU | {:.1} % of one core | |", broker_core * 100.0);
    println!("| gateway RSS idle (50 devices at 1 Hz) | {:.1} MB | < 10 MB |", gateway_idle_rss as f64 / 1024.0);
    println!("| gateway RSS under load | {:.1} MB | < 10 MB |", gateway_rss as f64 / 1024.0);
    println!("| broker RSS idle | {:.1} MB | < 20 MB |", broker_idle_rss as f64 / 1024.0);
    println!("| broker RSS under load | {:.1} MB | < 20 MB |", broker_rss as f64 / 1024.0);
    drop(loaded);
}
