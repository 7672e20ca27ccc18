//! The broker's CPU per message at one full CAN bus (9,000 QoS 1 messages a second, one
//! publisher to one subscriber, 64-byte payloads), against Mosquitto in the same run. Prints a
//! Markdown table for BENCHMARKS.md.
//!
//! `cargo bench -p broker --bench cpu` (Mosquitto from `/usr/sbin/mosquitto`).
//!
//! The brokers take turns (busgate, Mosquitto, ...) over ROUNDS rounds, each on a fresh process.
//! A run publishes for WARM_UP + WINDOW + 1 s; the broker's CPU time (utime + stime of the whole
//! process, from /proc/PID/stat in `getconf CLK_TCK` ticks) is read WARM_UP after the first
//! publish and again WINDOW later, and divided by the messages the subscriber received in
//! between.

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

#[allow(dead_code, reason = "each benchmark uses part of the shared clients")]
mod mqtt;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mqtt::{Publisher, TOPIC, clock_ticks, cpu_seconds, median, percentile_us, receive, rss_mib, subscriber};
use test_support::temp_dir;

const ROUNDS: usize = 3;
const RATE: u64 = 9_000;
const QOS: u8 = 1;
const WARM_UP: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(10);

struct Figures {
    /// Share of one core over the window.
    core: f64,
    /// CPU microseconds per message received in the window.
    us_per_message: f64,
    delivered: u64,
    sent: u64,
    p50_us: f64,
    p99_us: f64,
    /// Resident memory when the window starts, and after the run.
    rss_start_mib: f64,
    rss_mib: f64,
    faults: Vec<String>,
}

async fn measure(address: SocketAddr, pid: u32, ticks: f64) -> Figures {
    let base = Instant::now();
    let count = RATE * (WARM_UP + WINDOW + Duration::from_secs(1)).as_secs();
    let (reader, write) = subscriber(address, "bench-sub", TOPIC, QOS, None).await;
    let receiving = tokio::spawn(receive(reader, write, count, QOS, base));
    let publisher = Publisher::connect(address, None).await;
    let started = Instant::now();
    // The CPU samples on a thread of their own, on time whatever the clients are doing.
    let sampler = std::thread::spawn(move || {
        let mut samples = Vec::new();
        for at in [WARM_UP, WARM_UP + WINDOW] {
            std::thread::sleep((started + at).saturating_duration_since(Instant::now()));
            samples.push((base.elapsed().as_nanos() as u64, cpu_seconds(pid, ticks), rss_mib(pid)));
        }
        samples
    });
    publisher.send(QOS, count, RATE, started, base).await;
    let received = receiving.await.unwrap();
    let samples = sampler.join().unwrap();
    let rss = rss_mib(pid);
    let ((from, cpu0, rss_start), (to, cpu1, _)) = (samples[0], samples[1]);
    let in_window = received.stamps.iter().filter(|(_, at)| (from..to).contains(at)).count() as u64;
    let cpu = cpu1 - cpu0;
    let mut latencies: Vec<u64> = received.stamps.iter().map(|(sent, at)| at - sent).collect();
    latencies.sort_unstable();
    let faults = received.faults(count);
    Figures {
        core: cpu / Duration::from_nanos(to - from).as_secs_f64(),
        us_per_message: cpu * 1e6 / in_window as f64,
        delivered: received.stamps.len() as u64,
        sent: count,
        p50_us: percentile_us(&latencies, 0.50),
        p99_us: percentile_us(&latencies, 0.99),
        rss_start_mib: rss_start,
        rss_mib: rss,
        faults,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = temp_dir("bench-cpu");
    let ticks = clock_ticks();
    let load_before = mqtt::load_average();
    let mut runs: Vec<(&str, Figures)> = Vec::new();
    runtime.block_on(async {
        for round in 0..ROUNDS {
            // The board defaults: at 9,000 messages/s the in-flight window keeps the backlog small.
            let (process, address) = mqtt::start_busgate("", &dir, "plain");
            runs.push(("busgate", measure(address, process.id(), ticks).await));
            drop(process);
            match test_support::Mosquitto::for_benchmarks() {
                Some(mosquitto) => {
                    runs.push(("Mosquitto", measure(mosquitto.address(), mosquitto.process.id(), ticks).await))
                }
                None => eprintln!("mosquitto is not installed: no comparison"),
            }
            for (name, figures) in &runs[runs.len().saturating_sub(2)..] {
                eprintln!(
                    "round {round}, {name}: {:.1} % of a core, {:.1} µs per message {:?}",
                    figures.core * 100.0,
                    figures.us_per_message,
                    figures.faults
                );
            }
        }
    });
    let column = |name: &str, field: fn(&Figures) -> f64| {
        let values: Vec<f64> = runs.iter().filter(|(n, _)| *n == name).map(|(_, f)| field(f)).collect();
        (median(&values), values)
    };
    println!(
        "{RATE} QoS 1 messages/s, 1 publisher, 1 subscriber, {} s windows, {ticks} ticks/s; \
         load average before: {load_before}; after: {}. Medians of {ROUNDS} runs each.\n",
        WINDOW.as_secs(),
        mqtt::load_average()
    );
    println!(
        "| broker | CPU (% of one core) | CPU per message (µs) | x Mosquitto | delivered | p50 latency (µs) | p99 latency (µs) | RSS at 1 s / after (MiB) | faults |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let (yardstick, _) = column("Mosquitto", |f| f.us_per_message);
    for name in ["Mosquitto", "busgate"] {
        let (core, cores) = column(name, |f| f.core * 100.0);
        let (per_message, per_messages) = column(name, |f| f.us_per_message);
        let (p50, _) = column(name, |f| f.p50_us);
        let (p99, _) = column(name, |f| f.p99_us);
        let (rss_start, _) = column(name, |f| f.rss_start_mib);
        let (rss, _) = column(name, |f| f.rss_mib);
        let mine: Vec<&Figures> = runs.iter().filter(|(n, _)| *n == name).map(|(_, f)| f).collect();
        let delivered: u64 = mine.iter().map(|f| f.delivered).sum();
        let sent: u64 = mine.iter().map(|f| f.sent).sum();
        let faults: Vec<String> = mine.iter().flat_map(|f| f.faults.iter().cloned()).collect();
        let list = |values: &[f64]| values.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" / ");
        println!(
            "| {name} | {core:.1} ({}) | {per_message:.1} ({}) | {:.2} | {delivered} of {sent} | {p50:.0} | {p99:.0} | {rss_start:.1} / {rss:.1} | {} |",
            list(&cores),
            list(&per_messages),
            per_message / yardstick,
            if faults.is_empty() { "none".to_owned() } else { faults.join("; ") }
        );
    }
}
