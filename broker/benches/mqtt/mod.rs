//! What the broker benchmarks share: raw MQTT 3.1.1 clients over loopback (so the client costs
//! little next to the broker), the brokers started as processes, CPU and memory read from /proc,
//! medians.
//!
//! Every benchmark payload starts with its send time and its sequence number (nanoseconds since
//! a common base, then the index, both big-endian u64), so a subscriber measures latency and
//! counts losses, duplicates and deliveries at the wrong QoS.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf as _, BytesMut};
use test_support::{Process, broker_board, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

pub const PAYLOAD: usize = 64;
pub const TOPIC: &str = "bench/data";
/// Unacknowledged QoS 1 publishes a publisher allows itself (rumqttd's and our Mosquitto's
/// in-flight window).
const WINDOW: usize = 100;
/// A receiver gives up when nothing arrives for this long.
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

fn connect_packet(id: &str, keep_alive_s: u16, login: Option<Login<'_>>) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.push(4);
    body.push(if login.is_some() { 0xc2 } else { 0x02 });
    body.extend_from_slice(&keep_alive_s.to_be_bytes());
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

/// A user name and password.
pub type Login<'a> = (&'a str, &'a str);

/// A connected client (CONNACK accepted) with `TCP_NODELAY`, as every busgate client has.
pub async fn connect(address: SocketAddr, id: &str, keep_alive_s: u16, login: Option<Login<'_>>) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(&connect_packet(id, keep_alive_s, login)).await.unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK of {id}");
    stream
}

/// Reads whole packets: (first byte, body).
pub struct Reader {
    half: OwnedReadHalf,
    buffer: BytesMut,
}

impl Reader {
    /// The next packet; `None` once the broker has closed the connection.
    pub async fn next(&mut self) -> Option<(u8, BytesMut)> {
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

/// A subscriber on `filter` at `qos` (SUBACK checked): its reader and writer.
pub async fn subscriber(
    address: SocketAddr,
    id: &str,
    filter: &str,
    qos: u8,
    login: Option<Login<'_>>,
) -> (Reader, OwnedWriteHalf) {
    let stream = connect(address, id, 60, login).await;
    let (read, mut write) = stream.into_split();
    let mut packet = vec![0x82];
    remaining_length(&mut packet, 2 + 2 + filter.len() + 1);
    packet.extend_from_slice(&1u16.to_be_bytes());
    string(&mut packet, filter);
    packet.push(qos);
    write.write_all(&packet).await.unwrap();
    let mut reader = Reader { half: read, buffer: BytesMut::with_capacity(1 << 16) };
    let (first, body) = reader.next().await.expect("SUBACK");
    assert_eq!((first, &body[2..]), (0x90, &[qos][..]), "SUBACK of {id}");
    (reader, write)
}

/// What a subscriber got.
pub struct Received {
    /// Each message's send time and arrival time, nanoseconds since the common base.
    pub stamps: Vec<(u64, u64)>,
    /// Messages whose sequence number had been seen already, or was out of range.
    pub duplicates: u64,
    /// Messages delivered at another QoS than the one expected.
    pub wrong_qos: u64,
    /// The broker closed the connection before every message had arrived.
    pub disconnected: bool,
}

impl Received {
    /// What went wrong, for a benchmark's "faults" column, when `count` messages were sent.
    pub fn faults(&self, count: u64) -> Vec<String> {
        let lost = count - self.stamps.len() as u64;
        let mut faults: Vec<String> =
            [("lost", lost), ("duplicated", self.duplicates), ("at the wrong QoS", self.wrong_qos)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(what, n)| format!("{n} of {count} {what}"))
                .collect();
        if self.disconnected {
            faults.push("subscriber disconnected".to_owned());
        }
        faults
    }
}

/// Receives `count` messages numbered 0..count that should arrive at `qos`, acknowledging QoS 1
/// ones (in batches: one write per read from the socket).
pub async fn receive(mut reader: Reader, mut write: OwnedWriteHalf, count: u64, qos: u8, base: Instant) -> Received {
    let mut received =
        Received { stamps: Vec::with_capacity(count as usize), duplicates: 0, wrong_qos: 0, disconnected: false };
    let mut seen = vec![false; count as usize];
    let mut acks = Vec::new();
    while (received.stamps.len() as u64) < count {
        // A broker that lost messages sends nothing more: stop after a quiet while.
        let (first, body) = match tokio::time::timeout(IDLE, reader.next()).await {
            Ok(Some(packet)) => packet,
            Ok(None) => {
                received.disconnected = true;
                break;
            }
            Err(_) => break,
        };
        if first >> 4 != 3 {
            continue;
        }
        let delivered_qos = (first >> 1) & 0b11;
        let topic_length = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let mut at = 2 + topic_length;
        if delivered_qos > 0 {
            acks.extend_from_slice(&[0x40, 0x02, body[at], body[at + 1]]);
            at += 2;
        }
        if delivered_qos != qos {
            received.wrong_qos += 1;
        }
        let sent = u64::from_be_bytes(body[at..at + 8].try_into().unwrap());
        let sequence = u64::from_be_bytes(body[at + 8..at + 16].try_into().unwrap());
        match seen.get_mut(sequence as usize) {
            Some(flag) if !*flag => {
                *flag = true;
                received.stamps.push((sent, base.elapsed().as_nanos() as u64));
            }
            _ => received.duplicates += 1,
        }
        if !acks.is_empty() && reader.buffer.is_empty() {
            write.write_all(&acks).await.unwrap();
            acks.clear();
        }
    }
    if !acks.is_empty() {
        let _ = write.write_all(&acks).await;
    }
    received
}

/// A publisher on TOPIC: its writer, and a task that counts PUBACKs into the in-flight window.
pub struct Publisher {
    write: OwnedWriteHalf,
    window: Arc<Semaphore>,
    acks: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(address: SocketAddr, login: Option<Login<'_>>) -> Publisher {
        let stream = connect(address, "bench-pub", 60, login).await;
        let (read, write) = stream.into_split();
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
        Publisher { write, window, acks }
    }

    /// Publishes messages 0..count at `qos`, message n due at `started` + n / `rate` seconds
    /// (rate 0: as fast as the broker takes them), then waits for the last acknowledgements.
    pub async fn send(mut self, qos: u8, count: u64, rate: u64, started: Instant, base: Instant) {
        let mut payload = [0u8; PAYLOAD];
        let mut buffer = Vec::with_capacity(1 << 16);
        let mut pkid: u16 = 0;
        for n in 0..count {
            if let Some(nanos) = (n * 1_000_000_000).checked_div(rate) {
                tokio::time::sleep_until((started + Duration::from_nanos(nanos)).into()).await;
            }
            if qos > 0 {
                self.window.acquire().await.unwrap().forget();
                pkid = pkid.checked_add(1).unwrap_or(1);
            }
            payload[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
            payload[8..16].copy_from_slice(&n.to_be_bytes());
            publish_packet(&mut buffer, qos, pkid, &payload);
            // Batch QoS 0 writes a little, as a busy client's socket would.
            if rate > 0 || qos > 0 || buffer.len() > 8 * 1024 || n + 1 == count {
                self.write.write_all(&buffer).await.unwrap();
                buffer.clear();
            }
        }
        if qos > 0 {
            let _ = self.window.acquire_many(WINDOW as u32).await.unwrap();
        }
        self.acks.abort();
    }
}

/// Clock ticks per second of /proc/PID/stat's times (`getconf CLK_TCK`).
pub fn clock_ticks() -> f64 {
    let output = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().parse().unwrap()
}

/// CPU seconds (user + system, all threads) of a process so far, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks
}

/// Resident memory of a process in MiB (VmRSS from /proc/PID/status).
pub fn rss_mib(pid: u32) -> f64 {
    test_support::bench::rss_kib(pid) as f64 / 1024.0
}

/// The 1-, 5- and 15-minute load averages, for the conditions line of a table.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

/// The `p` percentile of sorted nanosecond latencies, in microseconds.
pub fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)] as f64 / 1000.0
}

/// busgate's broker on a free loopback port with a board file of only a listener and `extra`,
/// the journal off unless `extra` configures one.
pub fn start_busgate(extra: &str, dir: &std::path::Path, name: &str) -> (Process, SocketAddr) {
    let port = free_port();
    let board = dir.join(format!("{name}.toml"));
    std::fs::write(&board, broker_board(port, extra)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_broker"));
    command.arg("--board").arg(&board).env("RUST_LOG", "error");
    let process = Process::start(command, "broker", broker::READY);
    (process, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// What the throughput benchmark gives busgate: room for the backlog of a publisher flat out,
/// and session queues as good as unbounded, as Mosquitto is configured
/// ([`test_support::Mosquitto::for_benchmarks`]). With the board defaults (1000 messages,
/// 4 MiB) a subscriber that falls behind loses its oldest messages, counted on the stats topic.
pub const LIMITS: &str = "[broker.limits]\nmax_payload_bytes = 65536\nsegment_bytes = 8388608\nmax_segments = 16\n\
                          [broker.sessions]\nmax_queued = 1000000\nmax_queued_bytes = 1073741824\n";
