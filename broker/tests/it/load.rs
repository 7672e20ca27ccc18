//! The broker under load that a board can see: a subscriber that stops reading while large
//! messages flood its topic, and a flood of connections past the limit beside a QoS 1 stream.
//! These check that nothing is lost where nothing may be lost and that memory stays bounded;
//! the latency figures they print are measured properly by `cargo bench -p broker`.

use std::time::{Duration, Instant};

use rumqttc::QoS;
use schema::broker::BrokerHealth;
use test_support::{Client, TIMEOUT};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::Broker;

/// The broker's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    test_support::bench::rss_kib(pid) * 1024
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 60];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_costs_bounded_memory_and_nobody_else_anything() {
    const PAYLOAD: usize = 16 * 1024;
    const SECONDS: u64 = 30;
    const PER_SECOND: u64 = 200;
    let mut broker = Broker::start("[broker]\nhealth_interval_s = 1\n");

    // Subscribes to `flood`, then never reads again.
    let mut stalled = TcpStream::connect(broker.address()).await.unwrap();
    stalled.write_all(&connect_packet("stalled")).await.unwrap();
    stalled.write_all(&[0x82, 0x0a, 0x00, 0x01, 0x00, 0x05, b'f', b'l', b'o', b'o', b'd', 0x00]).await.unwrap();
    let mut acks = [0u8; 9];
    tokio::time::timeout(TIMEOUT, stalled.read_exact(&mut acks)).await.unwrap().unwrap();
    assert_eq!(acks, [0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x00]);

    let mut reader = Client::connect(broker.address(), "reader").await;
    reader.subscribe("flood").await;
    let mut stats = Client::connect(broker.address(), "stats").await;
    stats.subscribe("busgate/test/broker/stats").await;
    let publisher = Client::connect(broker.address(), "publisher").await;

    let total = SECONDS * PER_SECOND;
    let payload = vec![0x5a; PAYLOAD];
    let pid = broker.process.id();
    let started = Instant::now();
    let mut peak = 0;
    let mut received = 0u64;
    for n in 0..total {
        publisher.client.publish("flood", QoS::AtMostOnce, false, payload.clone()).await.unwrap();
        let due = started + Duration::from_micros(n * 1_000_000 / PER_SECOND);
        tokio::time::sleep_until(due.into()).await;
        while tokio::time::timeout(Duration::ZERO, reader.wait_on("flood")).await.is_ok() {
            received += 1;
        }
        reader.log.clear();
        if n % PER_SECOND == 0 {
            peak = peak.max(rss_bytes(pid));
        }
    }
    while received < total {
        reader.wait_on("flood").await;
        reader.log.clear();
        received += 1;
    }
    peak = peak.max(rss_bytes(pid));
    eprintln!(
        "slow subscriber: {total} messages of {PAYLOAD} B in {:?}, broker RSS peak {} MB",
        started.elapsed(),
        peak >> 20
    );
    assert_eq!(received, total, "the reading subscriber got every message");
    assert!(peak < 64 << 20, "broker RSS peaked at {} MB", peak >> 20);
    broker.process.wait_line("its oldest messages are dropped client_id=\"stalled\"");
    // Nearly all of the stalled subscriber's messages were dropped (beside a few the journal
    // left out): what its socket buffers and its queue (4 MiB) hold is all it can cost.
    let health = stats
        .wait_for(|message| {
            message.topic == "busgate/test/broker/stats"
                && schema::payload::parse::<BrokerHealth>(&message.payload)
                    .is_ok_and(|health| health.dropped > total / 2)
        })
        .await;
    let health: BrokerHealth = schema::payload::parse(&health.payload).unwrap();
    eprintln!("dropped for the stalled subscriber: {}", health.dropped);
    drop(stalled);
    assert!(broker.process.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connections_past_the_limit_costs_a_qos_1_stream_nothing() {
    const MESSAGES: u64 = 2000;
    const ATTEMPTS: usize = 2000;
    let broker = Broker::start("[broker.limits]\nmax_connections = 8\n");
    let mut subscriber = Client::connect(broker.address(), "subscriber").await;
    subscriber.subscribe("stream").await;
    let publisher = Client::connect(broker.address(), "publisher").await;
    let address = broker.address();
    // The other six places are taken, so every attempt of the flood is past the limit.
    let mut idle = Vec::new();
    for n in 0..6 {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(&connect_packet(&format!("idle-{n}"))).await.unwrap();
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack).await.unwrap();
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
        idle.push(stream);
    }

    let flood = tokio::spawn(async move {
        let mut refused = 0;
        for batch in 0..ATTEMPTS / 50 {
            let attempts = (0..50).map(|n| {
                tokio::spawn(async move {
                    let Ok(mut stream) = TcpStream::connect(address).await else { return false };
                    let _ = stream.write_all(&connect_packet(&format!("flood-{batch}-{n}"))).await;
                    let mut connack = [0u8; 4];
                    let answer = tokio::time::timeout(TIMEOUT, stream.read_exact(&mut connack)).await;
                    // Refused with "server unavailable", or closed at once.
                    matches!(answer, Ok(Ok(_)) if connack == [0x20, 0x02, 0x00, 0x03]) || matches!(answer, Ok(Err(_)))
                })
            });
            for attempt in attempts.collect::<Vec<_>>() {
                refused += usize::from(attempt.await.unwrap());
            }
        }
        refused
    });

    let mut latencies = Vec::new();
    for n in 0..MESSAGES {
        let sent = Instant::now();
        publisher.client.publish("stream", QoS::AtLeastOnce, false, n.to_be_bytes().to_vec()).await.unwrap();
        let message = subscriber.wait_on("stream").await;
        latencies.push(sent.elapsed());
        assert_eq!(message.payload, n.to_be_bytes(), "in order, none lost");
    }
    let refused = flood.await.unwrap();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "QoS 1 stream beside {ATTEMPTS} refused connection attempts: p50 {:?}, p99 {p99:?}",
        latencies[latencies.len() / 2]
    );
    assert_eq!(refused, ATTEMPTS, "every attempt past the limit was refused");
    drop(idle);
    assert!(broker.process.terminate().success());
}
