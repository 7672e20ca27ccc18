//! The broker is killed and a new one started on the same port: the gateway reconnects,
//! delivers the readings it took during the outage, and republishes its retained state.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use schema::JournalEntry;
use test_support::{Broker, Client, TIMEOUT};

use crate::{Gateway, json, topic};

/// Reads the broker's journal file.
fn journal(path: &std::path::Path) -> Vec<JournalEntry> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// Sequence numbers of one device's readings in the journal.
fn seqs(entries: &[JournalEntry], device: &str) -> BTreeSet<u64> {
    let state = topic(device, "state");
    entries.iter().filter(|e| e.topic == state).filter_map(|e| e.payload.as_ref()?["seq"].as_u64()).collect()
}

/// Waits until the mock bus has carried `count` more transactions (the gateway kept polling).
async fn wait_for_transactions(bus: &buses::MockI2cBus, count: u64) {
    let target = bus.transactions() + count;
    let deadline = Instant::now() + TIMEOUT;
    while bus.transactions() < target {
        assert!(Instant::now() < deadline, "the gateway stopped polling");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_taken_during_an_outage_are_delivered_after_reconnect() {
    let mut first = Broker::start();
    let port = first.port;
    let mut client = Client::connect(first.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(first.address());
    let last_before = json(
        &client.wait_for(|m| m.topic == topic("supply", "state") && json(m)["seq"].as_u64() >= Some(2)).await,
    )["seq"]
        .as_u64()
        .unwrap();

    first.process.kill();
    // The gateway keeps polling while the broker is gone.
    wait_for_transactions(&gateway.bus, 60).await;

    let journal_dir = test_support::temp_dir("journal");
    let journal_path = journal_dir.join("journal.jsonl");
    let second = Broker::start_on(
        port,
        &format!(
            "[broker.journal]\nenabled = true\noutput = {{ file = {{ path = \"{}\" }} }}\n",
            journal_path.display()
        ),
    );

    // Wait until the journal shows readings well past the outage.
    let deadline = Instant::now() + TIMEOUT;
    let entries = loop {
        let entries = journal(&journal_path);
        let seen = seqs(&entries, "supply");
        if seen.iter().any(|&s| s > last_before + 15) {
            break entries;
        }
        assert!(Instant::now() < deadline, "journal shows no readings after reconnect: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Every reading after the last one the first broker delivered reached the new broker:
    // nothing taken during the outage was lost.
    let seen = seqs(&entries, "supply");
    let max = *seen.iter().max().unwrap();
    let missing: Vec<u64> = (last_before + 1..=max).filter(|s| !seen.contains(s)).collect();
    assert!(missing.is_empty(), "readings lost across the restart: {missing:?} (seen {seen:?})");

    // A new subscriber gets the retained status, availability and state, republished by the
    // gateway because the new broker started empty.
    let mut late = Client::connect(second.address(), "late").await;
    late.client.subscribe("busgate/test/#", rumqttc::QoS::AtLeastOnce).await.unwrap();
    let mut expected: BTreeSet<String> = ["ambient", "supply", "leds"]
        .into_iter()
        .flat_map(|device| [topic(device, "availability"), topic(device, "state")])
        .chain(["busgate/test/i2c-gateway/status".to_owned()])
        .collect();
    while !expected.is_empty() {
        let retained = late.wait_for(|m| m.retain).await;
        if retained.topic == "busgate/test/i2c-gateway/status" {
            assert_eq!(json(&retained)["state"], "online");
        }
        expected.remove(&retained.topic);
    }
    let counters = gateway.stop().await;
    assert_eq!(counters.dropped, 0);
    // One restart: one reconnect (the first connect is not one; health says the same).
    assert_eq!(counters.reconnects, 1, "{counters:?}");
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_drops_the_oldest_and_counts_them() {
    let mut first = Broker::start();
    let port = first.port;
    let mut client = Client::connect(first.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start_with(first.address(), |settings| settings.outbox_capacity = 5);
    client.wait_for(|m| m.topic == topic("supply", "state")).await;

    first.process.kill();
    wait_for_transactions(&gateway.bus, 100).await;
    let second = Broker::start_on(port, "");
    let mut late = Client::connect(second.address(), "late").await;
    late.subscribe("busgate/test/i2c-gateway/health").await;
    let health = late.wait_for(|m| json(m)["dropped"].as_u64() > Some(0)).await;
    let dropped = json(&health)["dropped"].as_u64().unwrap();
    let counters = gateway.stop().await;
    assert!(counters.dropped >= dropped, "{counters:?}");
}

/// A gateway started before its broker keeps trying, and delivers what it read meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_started_before_the_broker_connects_when_it_appears() {
    let port = test_support::free_port();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let gateway = Gateway::start(address);
    wait_for_transactions(&gateway.bus, 30).await;

    let journal_dir = test_support::temp_dir("journal");
    let journal_path = journal_dir.join("journal.jsonl");
    let _broker = Broker::start_on(
        port,
        &format!(
            "[broker.journal]\nenabled = true\noutput = {{ file = {{ path = \"{}\" }} }}\n",
            journal_path.display()
        ),
    );
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let entries = journal(&journal_path);
        let seen = seqs(&entries, "supply");
        // Reading 0 was taken before the broker existed; it arrives, and so do the rest.
        if seen.contains(&0) && seen.len() > 5 {
            let max = *seen.iter().max().unwrap();
            assert_eq!(seen.len() as u64, max + 1, "a gap in {seen:?}");
            break;
        }
        assert!(Instant::now() < deadline, "readings from before the broker started never arrived: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.stop().await;
}
