//! Broker throughput and latency against Mosquitto, same machine, same run: one publisher to one
//! subscriber over loopback, 64-byte payloads, QoS 0 and QoS 1; busgate's broker with access
//! rules and the journal on, then off. Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo bench -p broker --bench pubsub` (Mosquitto from `/usr/sbin/mosquitto`).
//!
//! The clients speak MQTT 3.1.1 over raw sockets, so the client costs little next to the
//! broker. Throughput: the publisher sends as fast as the broker takes it (QoS 1: at most 100
//! unacknowledged), the subscriber counts; messages per second from the first publish to the
//! last message received. Latency: 2000 messages a second for 5 s, each carrying its send time;
//! percentiles of receive time minus send time.

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf as _, BytesMut};
use test_support::{Process, broker_board, free_port, temp_dir};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

const PAYLOAD: usize = 64;
const TOPIC: &str = "bench/data";
const THROUGHPUT_MESSAGES: u64 = 200_000;
const WARM_UP_MESSAGES: u64 = 10_000;
const LATENCY_RATE: u64 = 2_000;
const LATENCY_SECONDS: u64 = 5;
const WINDOW: usize = 100;
/// The receiver gives up when nothing arrives for this long.
const IDLE: Duration = Duration::from_secs(3);

fn remaining_length(buffer: &mut Vec<u8>, mut length: usize) {
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        buffer.push(byte);
        if length == 0 {
            return;
        }
    }
}

fn string(buffer: &mut Vec<u8>, text: &str) {
    buffer.extend_from_slice(&(text.len() as u16).to_be_bytes());
    buffer.extend_from_slice(text.as_bytes());
}

fn connect_packet(id: &str, login: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.push(4);
    body.push(if login.is_some() { 0xc2 } else { 0x02 });
    body.extend_from_slice(&60u16.to_be_bytes());
    string(&mut body, id);
    if let Some((user, password)) = login {
        string(&mut body, user);
        string(&mut body, password);
    }
    let mut packet = vec![0x10];
    remaining_length(&mut packet, body.len());
    packet.extend(body);
    packet
}

fn publish_packet(buffer: &mut Vec<u8>, qos: u8, pkid: u16, payload: &[u8]) {
    buffer.push(0x30 | (qos << 1));
    remaining_length(buffer, 2 + TOPIC.len() + if qos > 0 { 2 } else { 0 } + payload.len());
    string(buffer, TOPIC);
    if qos > 0 {
        buffer.extend_from_slice(&pkid.to_be_bytes());
    }
    buffer.extend_from_slice(payload);
}

async fn connect(address: SocketAddr, id: &str, login: Option<(&str, &str)>) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(&connect_packet(id, login)).await.unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK of {id}");
    stream
}

/// Reads whole packets: (first byte, body).
struct Reader {
    half: OwnedReadHalf,
    buffer: BytesMut,
}

impl Reader {
    /// The next packet; `None` once the broker has closed the connection.
    async fn next(&mut self) -> Option<(u8, BytesMut)> {
        loop {
            if let Some(packet) = self.frame() {
                return Some(packet);
            }
            if self.half.read_buf(&mut self.buffer).await.ok()? == 0 {
                return None;
            }
        }
    }

    fn frame(&mut self) -> Option<(u8, BytesMut)> {
        let mut length = 0usize;
        let mut at = 1;
        loop {
            let byte = *self.buffer.get(at)?;
            length |= usize::from(byte & 0x7f) << (7 * (at - 1));
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if self.buffer.len() < at + length {
            return None;
        }
        let first = self.buffer[0];
        self.buffer.advance(at);
        Some((first, self.buffer.split_to(length)))
    }
}

/// A subscriber on TOPIC at `qos`: its reader and writer.
async fn subscriber(address: SocketAddr, qos: u8, login: Option<(&str, &str)>) -> (Reader, OwnedWriteHalf) {
    let stream = connect(address, "bench-sub", login).await;
    let (read, mut write) = stream.into_split();
    let mut packet = vec![0x82];
    remaining_length(&mut packet, 2 + 2 + TOPIC.len() + 1);
    packet.extend_from_slice(&1u16.to_be_bytes());
    string(&mut packet, TOPIC);
    packet.push(qos);
    write.write_all(&packet).await.unwrap();
    let mut reader = Reader { half: read, buffer: BytesMut::with_capacity(1 << 16) };
    let (first, body) = reader.next().await.expect("SUBACK");
    assert_eq!((first, &body[2..]), (0x90, &[qos][..]), "SUBACK");
    (reader, write)
}

/// Receives `count` messages, acknowledging QoS 1 ones; returns each message's payload time
/// stamp and when it arrived (nanoseconds since `base`).
async fn receive(mut reader: Reader, mut write: OwnedWriteHalf, count: u64, base: Instant) -> Vec<(u64, u64)> {
    let mut stamps = Vec::with_capacity(count as usize);
    let mut acks = Vec::new();
    while (stamps.len() as u64) < count {
        // A broker that lost messages sends nothing more: stop after a quiet while.
        let Ok(Some((first, body))) = tokio::time::timeout(IDLE, reader.next()).await else { break };
        if first >> 4 != 3 {
            continue;
        }
        let qos = (first >> 1) & 0b11;
        let topic_length = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let mut at = 2 + topic_length;
        if qos > 0 {
            acks.extend_from_slice(&[0x40, 0x02, body[at], body[at + 1]]);
            at += 2;
        }
        let sent = u64::from_be_bytes(body[at..at + 8].try_into().unwrap());
        stamps.push((sent, base.elapsed().as_nanos() as u64));
        if !acks.is_empty() && reader.buffer.is_empty() {
            write.write_all(&acks).await.unwrap();
            acks.clear();
        }
    }
    if !acks.is_empty() {
        write.write_all(&acks).await.unwrap();
    }
    stamps
}

/// Publishes `count` messages at `qos`, at most `rate` a second (0: as fast as possible).
async fn publish(address: SocketAddr, qos: u8, count: u64, rate: u64, base: Instant, login: Option<(&str, &str)>) {
    let stream = connect(address, "bench-pub", login).await;
    let (read, mut write) = stream.into_split();
    let window = Arc::new(Semaphore::new(WINDOW));
    let acks = {
        let window = window.clone();
        tokio::spawn(async move {
            let mut reader = Reader { half: read, buffer: BytesMut::new() };
            while let Some((first, _)) = reader.next().await {
                if first >> 4 == 4 {
                    window.add_permits(1);
                }
            }
        })
    };
    let mut payload = [0u8; PAYLOAD];
    let mut buffer = Vec::with_capacity(1 << 16);
    let started = Instant::now();
    let mut pkid: u16 = 0;
    for n in 0..count {
        if let Some(nanos) = (n * 1_000_000_000).checked_div(rate) {
            tokio::time::sleep_until((started + Duration::from_nanos(nanos)).into()).await;
        }
        if qos > 0 {
            window.acquire().await.unwrap().forget();
            pkid = pkid.checked_add(1).unwrap_or(1);
        }
        payload[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
        publish_packet(&mut buffer, qos, pkid, &payload);
        // Batch QoS 0 writes a little, as a busy client's socket would.
        if rate > 0 || qos > 0 || buffer.len() > 8 * 1024 || n + 1 == count {
            write.write_all(&buffer).await.unwrap();
            buffer.clear();
        }
    }
    if qos > 0 {
        let _ = window.acquire_many(WINDOW as u32).await.unwrap();
    }
    acks.abort();
}

struct Figures {
    throughput: f64,
    /// Share of the throughput run's messages that arrived.
    delivered: f64,
    p50_us: f64,
    p99_us: f64,
}

/// A user name and password.
type Login<'a> = (&'a str, &'a str);

async fn measure(address: SocketAddr, qos: u8, login: Option<(Login<'_>, Login<'_>)>) -> Figures {
    let (pub_login, sub_login) = match login {
        Some((publisher, subscriber)) => (Some(publisher), Some(subscriber)),
        None => (None, None),
    };
    let base = Instant::now();
    // Warm-up, then throughput.
    let mut results = Vec::new();
    let mut delivered = 0.0;
    for count in [WARM_UP_MESSAGES, THROUGHPUT_MESSAGES] {
        let (reader, write) = subscriber(address, qos, sub_login).await;
        let receiving = tokio::spawn(receive(reader, write, count, base));
        let started = Instant::now();
        publish(address, qos, count, 0, base, pub_login).await;
        let received = receiving.await.unwrap();
        let last = received.iter().map(|(_, at)| *at).max().unwrap_or(0);
        let elapsed = Duration::from_nanos(last).saturating_sub(started.duration_since(base));
        results.push(received.len() as f64 / elapsed.as_secs_f64());
        delivered = received.len() as f64 / count as f64;
    }
    let throughput = results[1];
    // Latency at a steady rate.
    let count = LATENCY_RATE * LATENCY_SECONDS;
    let (reader, write) = subscriber(address, qos, sub_login).await;
    let receiving = tokio::spawn(receive(reader, write, count, base));
    publish(address, qos, count, LATENCY_RATE, base, pub_login).await;
    let received = receiving.await.unwrap();
    let mut latencies: Vec<u64> = received.iter().map(|(sent, at)| at - sent).collect();
    latencies.sort_unstable();
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0;
    Figures { throughput, delivered, p50_us: percentile(0.50), p99_us: percentile(0.99) }
}

fn start_busgate(secure: bool, dir: &std::path::Path) -> (Process, SocketAddr) {
    let port = free_port();
    let extra = if secure {
        let hash = broker::policy::hash_password("bench").unwrap();
        format!(
            "anonymous = false\n\
             [broker.users.bench-pub]\npassword_hash = \"{hash}\"\npublish = [\"bench/#\"]\nsubscribe = [\"nothing/%c\"]\n\
             [broker.users.bench-sub]\npassword_hash = \"{hash}\"\nsubscribe = [\"bench/+\"]\npublish = [\"nothing/%c\"]\n\
             [broker.journal]\nenabled = true\noutput = {{ file = {{ path = \"{}\" }} }}\nmax_file_bytes = 67108864\nmax_files = 1\n\
             [broker.limits]\nmax_payload_bytes = 65536\nsegment_bytes = 8388608\nmax_segments = 16\n",
            dir.join("journal.jsonl").display()
        )
    } else {
        "[broker.limits]\nmax_payload_bytes = 65536\nsegment_bytes = 8388608\nmax_segments = 16\n".to_owned()
    };
    let board = dir.join(if secure { "secure.toml" } else { "plain.toml" });
    std::fs::write(&board, broker_board(port, &extra)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_broker"));
    command.arg("--board").arg(&board).env("RUST_LOG", "error");
    let process = Process::start(command, "broker", broker::READY);
    (process, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = temp_dir("bench-pubsub");
    let logins = (("bench-pub", "bench"), ("bench-sub", "bench"));
    let mut rows = Vec::new();
    runtime.block_on(async {
        for qos in [0u8, 1] {
            match test_support::Mosquitto::for_benchmarks() {
                Some(mosquitto) => rows.push(("Mosquitto", qos, measure(mosquitto.address(), qos, None).await)),
                None => eprintln!("mosquitto is not installed: no comparison"),
            }
            let (process, address) = start_busgate(false, &dir);
            rows.push(("busgate, ACLs and journal off", qos, measure(address, qos, None).await));
            drop(process);
            let (process, address) = start_busgate(true, &dir);
            rows.push(("busgate, ACLs and journal on", qos, measure(address, qos, Some(logins)).await));
            drop(process);
        }
    });
    println!("| broker | QoS | throughput (msg/s) | delivered | p50 latency (µs) | p99 latency (µs) |");
    println!("|---|---|---|---|---|---|");
    for (name, qos, figures) in rows {
        println!(
            "| {name} | {qos} | {:.0} | {:.1} % | {:.0} | {:.0} |",
            figures.throughput,
            figures.delivered * 100.0,
            figures.p50_us,
            figures.p99_us
        );
    }
}
