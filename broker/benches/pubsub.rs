//! Broker throughput and latency against Mosquitto, same machine, same run: one publisher to one
//! subscriber over loopback, 64-byte payloads, QoS 0 and QoS 1; busgate's broker with access
//! rules and the journal off, and on. Prints Markdown tables for BENCHMARKS.md.
//!
//! `cargo bench -p broker --bench pubsub` (Mosquitto from `/usr/sbin/mosquitto`).
//!
//! Figures move 2-4x between runs on a shared machine, so the brokers take turns (busgate,
//! Mosquitto, busgate with rules and journal) over ROUNDS rounds, each run on a fresh broker
//! process, and the tables give medians. Throughput: the publisher sends as fast as the broker
//! takes it (QoS 1: at most 100 unacknowledged), the subscriber counts; messages per second from
//! the first publish to the last message received. Latency: 2000 messages a second for 5 s,
//! each carrying its send time; percentiles of receive time minus send time.

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

#[allow(dead_code, reason = "each benchmark uses part of the shared clients")]
mod mqtt;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mqtt::{LIMITS, Login, Publisher, TOPIC, median, percentile_us, receive, start_busgate, subscriber};
use test_support::temp_dir;

const ROUNDS: usize = 3;
const THROUGHPUT_MESSAGES: u64 = 200_000;
const WARM_UP_MESSAGES: u64 = 10_000;
const LATENCY_RATE: u64 = 2_000;
const LATENCY_SECONDS: u64 = 5;

struct Figures {
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    /// What went wrong in any of the three phases, for the report; empty when nothing did.
    faults: Vec<String>,
}

/// One publisher and one subscriber: `count` messages at `qos` and `rate` (0: flat out).
async fn one_run(
    address: SocketAddr,
    qos: u8,
    count: u64,
    rate: u64,
    logins: Option<(Login<'_>, Login<'_>)>,
    base: Instant,
    faults: &mut Vec<String>,
) -> (Duration, Vec<(u64, u64)>) {
    let (reader, write) = subscriber(address, "bench-sub", TOPIC, qos, logins.map(|l| l.1)).await;
    let receiving = tokio::spawn(receive(reader, write, count, qos, base));
    let publisher = Publisher::connect(address, logins.map(|l| l.0)).await;
    let started = Instant::now();
    publisher.send(qos, count, rate, started, base).await;
    let received = receiving.await.unwrap();
    faults.extend(received.faults(count));
    (started.duration_since(base), received.stamps)
}

async fn measure(address: SocketAddr, qos: u8, logins: Option<(Login<'_>, Login<'_>)>) -> Figures {
    let base = Instant::now();
    let mut faults = Vec::new();
    one_run(address, qos, WARM_UP_MESSAGES, 0, logins, base, &mut faults).await;
    let (started, stamps) = one_run(address, qos, THROUGHPUT_MESSAGES, 0, logins, base, &mut faults).await;
    let last = stamps.iter().map(|(_, at)| *at).max().unwrap_or(0);
    let throughput = stamps.len() as f64 / Duration::from_nanos(last).saturating_sub(started).as_secs_f64();
    let count = LATENCY_RATE * LATENCY_SECONDS;
    let (_, stamps) = one_run(address, qos, count, LATENCY_RATE, logins, base, &mut faults).await;
    let mut latencies: Vec<u64> = stamps.iter().map(|(sent, at)| at - sent).collect();
    latencies.sort_unstable();
    Figures { throughput, p50_us: percentile_us(&latencies, 0.50), p99_us: percentile_us(&latencies, 0.99), faults }
}

#[derive(Clone, Copy, PartialEq)]
enum Broker {
    Busgate,
    Mosquitto,
    BusgateSecure,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Broker::Busgate => "busgate, ACLs and journal off",
            Broker::Mosquitto => "Mosquitto",
            Broker::BusgateSecure => "busgate, ACLs and journal on",
        }
    }
}

fn secure_board(dir: &std::path::Path) -> String {
    let hash = broker::policy::hash_password("bench").unwrap();
    format!(
        "anonymous = false\n\
         [broker.users.bench-pub]\npassword_hash = \"{hash}\"\npublish = [\"bench/#\"]\nsubscribe = [\"nothing/%c\"]\n\
         [broker.users.bench-sub]\npassword_hash = \"{hash}\"\nsubscribe = [\"bench/+\"]\npublish = [\"nothing/%c\"]\n\
         [broker.journal]\nenabled = true\noutput = {{ file = {{ path = \"{}\" }} }}\nmax_file_bytes = 67108864\nmax_files = 1\n\
         {LIMITS}",
        dir.join("journal.jsonl").display()
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = temp_dir("bench-pubsub");
    let secure = secure_board(&dir);
    let logins = (("bench-pub", "bench"), ("bench-sub", "bench"));
    let load_before = mqtt::load_average();
    let mut runs: Vec<(Broker, u8, Figures)> = Vec::new();
    let mut mosquitto_missing = false;
    runtime.block_on(async {
        for round in 0..ROUNDS {
            for qos in [0u8, 1] {
                for broker in [Broker::Busgate, Broker::Mosquitto, Broker::BusgateSecure] {
                    let figures = match broker {
                        Broker::Busgate => {
                            let (_process, address) = start_busgate(LIMITS, &dir, "plain");
                            measure(address, qos, None).await
                        }
                        Broker::BusgateSecure => {
                            let (_process, address) = start_busgate(&secure, &dir, "secure");
                            measure(address, qos, Some(logins)).await
                        }
                        Broker::Mosquitto => {
                            let Some(mosquitto) = test_support::Mosquitto::for_benchmarks() else {
                                mosquitto_missing = true;
                                continue;
                            };
                            measure(mosquitto.address(), qos, None).await
                        }
                    };
                    eprintln!(
                        "round {round}, QoS {qos}, {}: {:.0} msg/s, p50 {:.0} µs, p99 {:.0} µs {:?}",
                        broker.name(),
                        figures.throughput,
                        figures.p50_us,
                        figures.p99_us,
                        figures.faults
                    );
                    runs.push((broker, qos, figures));
                }
            }
        }
    });
    if mosquitto_missing {
        eprintln!("mosquitto is not installed: no comparison");
    }
    let medians = |broker: Broker, qos: u8, field: fn(&Figures) -> f64| {
        let values: Vec<f64> =
            runs.iter().filter(|(b, q, _)| *b == broker && *q == qos).map(|(_, _, f)| field(f)).collect();
        (median(&values), values)
    };
    let fields: [fn(&Figures) -> f64; 3] = [|f| f.throughput, |f| f.p50_us, |f| f.p99_us];
    println!("Load average before: {load_before}; after: {}. Medians of {ROUNDS} runs each.\n", mqtt::load_average());
    println!(
        "| broker | QoS | throughput (msg/s) | x Mosquitto | p50 latency (µs) | x Mosquitto | p99 latency (µs) | x Mosquitto | faults |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for qos in [0u8, 1] {
        for broker in [Broker::Mosquitto, Broker::Busgate, Broker::BusgateSecure] {
            let mut cells = Vec::new();
            for field in fields {
                let (value, _) = medians(broker, qos, field);
                let (yardstick, _) = medians(Broker::Mosquitto, qos, field);
                cells.push(format!("{value:.0}"));
                cells.push(if broker == Broker::Mosquitto {
                    "1".to_owned()
                } else {
                    format!("{:.2}", value / yardstick)
                });
            }
            let faults: Vec<String> = runs
                .iter()
                .filter(|(b, q, _)| *b == broker && *q == qos)
                .flat_map(|(_, _, f)| f.faults.iter().cloned())
                .collect();
            let faults = if faults.is_empty() { "none".to_owned() } else { faults.join("; ") };
            println!("| {} | {qos} | {} | {faults} |", broker.name(), cells.join(" | "));
        }
    }
    println!("\nEach run, in the order they ran:\n");
    println!("| broker | QoS | throughput (msg/s) | p50 latency (µs) | p99 latency (µs) |");
    println!("|---|---|---|---|---|");
    for qos in [0u8, 1] {
        for broker in [Broker::Mosquitto, Broker::Busgate, Broker::BusgateSecure] {
            let cells: Vec<String> = fields
                .iter()
                .map(|field| {
                    let (_, values) = medians(broker, qos, *field);
                    values.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(" / ")
                })
                .collect();
            println!("| {} | {qos} | {} |", broker.name(), cells.join(" | "));
        }
    }
}
