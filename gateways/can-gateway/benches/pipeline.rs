//! End to end on this machine: frames on the mock bus, through the CAN gateway (in-process, on
//! its own thread), the broker (its own process) to an MQTT subscriber, every frame published
//! (policy `every`, no rate limiting). Each frame carries its send time, so the subscriber
//! measures latency from bus to subscriber. Prints a Markdown table for BENCHMARKS.md.
//!
//! Run with `cargo bench -p can-gateway --bench pipeline` (or `cargo xtask bench`).

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::time::{Duration, Instant};

use buses::can::{CanFrame, MockCanBus};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// 20 messages like a busy powertrain bus: a 48-bit send stamp and three other signals.
const DBC: &str = r#"
BU_: SRC GW
"#;

const MESSAGES: u32 = 20;

fn dbc() -> String {
    let mut text = DBC.to_owned();
    for i in 0..MESSAGES {
        text.push_str(&format!(
            "BO_ {} Bench{i}: 8 SRC\n SG_ Stamp : 0|48@1+ (1,0) [0|0] \"us\" GW\n SG_ Speed : 48|8@1+ (0.5,0) [0|127] \"km/h\" GW\n SG_ Gear : 56|3@1+ (1,0) [0|7] \"\" GW\n SG_ Flag : 59|1@1+ (1,0) [0|1] \"\" GW\n",
            0x100 + i
        ));
    }
    text
}

fn board(port: u16, dbc: &std::path::Path) -> String {
    format!(
        "[board]\nname = \"bench\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\n[broker.listeners.local]\naddress = \"127.0.0.1:{port}\"\n\n\
         [gateway]\noutbox_capacity = 200000\n\n[[bus]]\nname = \"can0\"\nkind = \"can\"\nmock = true\ndbc = [{dbc:?}]\nraw = \"none\"\n\
         [bus.publish]\nmode = \"every\"\nheartbeat_ms = 0\n\n\
         [[bus]]\nname = \"can1\"\nkind = \"can\"\nmock = true\ndbc = [{dbc:?}]\nraw = \"none\"\n\
         [bus.publish]\nmode = \"every\"\nmin_interval_ms = 100\nheartbeat_ms = 0\n"
    )
}

/// CPU seconds (user + system) of the threads of this process named `name`.
fn thread_cpu(name: &str) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = entry.unwrap().path();
        if std::fs::read_to_string(task.join("comm")).unwrap_or_default().trim() != name {
            continue;
        }
        total += stat_cpu(&std::fs::read_to_string(task.join("stat")).unwrap_or_default());
    }
    total
}

fn process_cpu(pid: u32) -> f64 {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap())
}

fn stat_cpu(stat: &str) -> f64 {
    let Some(end) = stat.rfind(')') else { return 0.0 };
    let fields: Vec<&str> = stat[end + 2..].split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

/// The send stamp of a message payload (`"Stamp":{"value":N`).
fn stamp(payload: &[u8]) -> Option<u64> {
    let key = b"\"Stamp\":{\"value\":";
    let at = payload.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = payload[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&payload[at..at + digits]).ok()?.parse().ok()
}

struct Run {
    sent: u64,
    received: u64,
    elapsed: f64,
    latencies_us: Vec<u64>,
    gateway_cpu: f64,
    broker_cpu: f64,
}

/// Sends `rate` frames/s for `seconds` and waits for them at the subscriber.
/// `expected` is how many publications the policy lets through (all frames, or fewer).
#[allow(clippy::too_many_arguments)]
async fn run(
    bus: &MockCanBus,
    base: Instant,
    received: &mut mpsc::UnboundedReceiver<u64>,
    broker: u32,
    thread: &str,
    rate: u64,
    seconds: u64,
    expected: Option<u64>,
) -> Run {
    while received.try_recv().is_ok() {}
    let total = rate * seconds;
    let source = bus.open(&[]).unwrap();
    let gateway0 = thread_cpu(thread);
    let broker0 = process_cpu(broker);
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        while sent < total {
            let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            while sent < due {
                let stamp = base.elapsed().as_micros() as u64;
                let mut data = stamp.to_le_bytes();
                data[6] = (sent % 255) as u8;
                data[7] = (sent % 8) as u8;
                let id = 0x100 + (sent % u64::from(MESSAGES)) as u32;
                source.send_now(&CanFrame::classic(id, false, &data).unwrap()).unwrap();
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    });
    let mut latencies = Vec::with_capacity(total as usize);
    let expected = expected.unwrap_or(total);
    let deadline = started + Duration::from_secs(seconds + if expected < total { 1 } else { 10 });
    while (latencies.len() as u64) < expected {
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, received.recv()).await {
            Ok(Some(stamp)) => latencies.push((base.elapsed().as_micros() as u64).saturating_sub(stamp)),
            _ => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = sender.join().unwrap();
    Run {
        sent,
        received: latencies.len() as u64,
        elapsed,
        latencies_us: latencies,
        gateway_cpu: thread_cpu(thread) - gateway0,
        broker_cpu: process_cpu(broker) - broker0,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

/// A gateway on its own thread named `thread` (whose CPU is measured), its two mock buses, and a
/// QoS 1 subscriber, all on the broker at `port`.
struct Pipeline {
    bus: MockCanBus,
    limited: MockCanBus,
    received: mpsc::UnboundedReceiver<u64>,
    thread: &'static str,
}

async fn pipeline(port: u16, thread: &'static str, dir: &std::path::Path) -> Pipeline {
    let dbc_path = dir.join("bench.dbc");
    std::fs::write(&dbc_path, dbc()).unwrap();
    let board = board::Board::parse(&board(port, &dbc_path), &dir.join("bench.toml")).unwrap();
    let plan = can_gateway::plan(&board).unwrap();
    let bus = plan.mock("can0").unwrap();
    let limited = plan.mock("can1").unwrap();
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = runtime.block_on(can_gateway::run(plan, can_gateway::Options::default(), std::future::pending()));
        })
        .unwrap();

    // The subscriber: QoS 1, as an application that must not lose messages.
    let mut options = MqttOptions::new(format!("bench-subscriber-{thread}"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    client.subscribe("busgate/bench/can/+/+/state", QoS::AtLeastOnce).await.unwrap();
    let (stamps, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Keeps the client (and so the session) alive as long as the loop runs.
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) if !publish.retain => {
                    if let Some(stamp) = stamp(&publish.payload) {
                        let _ = stamps.send(stamp);
                    }
                }
                Ok(_) => {}
                // The broker stops when the benchmark ends.
                Err(_) => return,
            }
        }
    });
    Pipeline { bus, limited, received, thread }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    test_support::bench::build_release_broker();
    let broker = test_support::Broker::start();
    let dir = test_support::temp_dir("can-bench");
    let mut busgate = pipeline(broker.port, "can-gw", &dir).await;
    let base = Instant::now();
    // Warm up: connections made, topics known to the broker.
    let _ = run(&busgate.bus, base, &mut busgate.received, broker.process.id(), busgate.thread, 2_000, 1, None).await;

    println!(
        "| broker | bus | offered | received by the subscriber | lost | p50 latency | p99 latency | gateway CPU | broker CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let every = "every frame published";
    let limited_policy = "at most 10 messages/s per identifier (min_interval_ms = 100)";
    let rows = [(every, 9_000, 10), (limited_policy, 9_000, 10), (every, 50_000, 5), (every, 80_000, 3)];
    for (policy, rate, seconds) in rows {
        report("busgate", &mut busgate, broker.process.id(), base, policy == every, policy, rate, seconds).await;
    }

    // The same gateway and subscriber on Mosquitto, as a yardstick for the broker's share.
    // (Configured as in broker/benches/pubsub.rs: no logging, unbounded queues.)
    let Some(mosquitto) = test_support::Mosquitto::for_benchmarks() else {
        eprintln!("mosquitto is not installed: no comparison");
        return;
    };
    let mut other = pipeline(mosquitto.port, "can-gw-mosq", &test_support::temp_dir("can-bench-mosquitto")).await;
    let pid = mosquitto.process.id();
    let _ = run(&other.bus, base, &mut other.received, pid, other.thread, 2_000, 1, None).await;
    for (policy, rate, seconds) in [(every, 9_000, 10), (every, 50_000, 5)] {
        report("Mosquitto", &mut other, pid, base, true, policy, rate, seconds).await;
    }
}

/// One row of the table.
#[allow(clippy::too_many_arguments)]
async fn report(
    broker_name: &str,
    pipeline: &mut Pipeline,
    broker: u32,
    base: Instant,
    every: bool,
    policy: &str,
    rate: u64,
    seconds: u64,
) {
    let (source, expected) = if every {
        (&pipeline.bus, None)
    } else {
        // 20 identifiers x 10/s; the last deferred publications come after the run.
        (&pipeline.limited, Some(u64::from(MESSAGES) * 10 * seconds))
    };
    let mut run = run(source, base, &mut pipeline.received, broker, pipeline.thread, rate, seconds, expected).await;
    run.latencies_us.sort_unstable();
    println!(
        "| {broker_name} | {policy} | {rate} frames/s for {seconds} s | {:.0} /s ({} of {}) | {} | {:.2} ms | {:.2} ms | {:.0} % | {:.0} % |",
        run.received as f64 / run.elapsed,
        run.received,
        if every { run.sent } else { run.received },
        if every { (run.sent - run.received).to_string() } else { "-".to_owned() },
        percentile(&run.latencies_us, 0.5),
        percentile(&run.latencies_us, 0.99),
        run.gateway_cpu / run.elapsed * 100.0,
        run.broker_cpu / run.elapsed * 100.0,
    );
}
