//! A candump log replayed through the whole pipeline (mock bus, gateway, broker, subscriber)
//! against a checked-in snapshot.

use test_support::Client;

use super::*;

const SNAPSHOT: &str = "tests/fixtures/replay.expected.jsonl";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_log_reaches_subscribers_as_in_the_snapshot() {
    let broker = test_support::Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/can/can0/+/state").await;
    let text = board_text(broker.address(), "replay = \"drive.log\"\nreplay_speed = 0");
    let gateway = Gateway::start_board(&text);
    // 11 frames: 9 of DBC messages, of which one is too short to give any signal (counted as a
    // decode error, not published), and 2 unknown (published raw); the bus state comes besides.
    let mut lines = Vec::new();
    while lines.len() < 10 {
        let message = client.wait_for(|m| !m.topic.contains("/bus/")).await;
        let schema = if message.topic.contains("/id-") { "can-frame.json" } else { "can-message.json" };
        message.check_schema(schema);
        lines.push(format!("{} {}", message.topic, message.text()));
    }
    let got = lines.join("\n") + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &got).unwrap();
    }
    let expected = std::fs::read_to_string(SNAPSHOT).unwrap();
    assert_eq!(got, expected, "run with UPDATE_SNAPSHOTS=1 to accept a deliberate change");
    // Nothing more comes: once the bus's counters say all 11 frames were received, whatever they
    // caused went out before those counters (one connection, in order), and it is the 10 above.
    let state = client.wait_for(|m| m.topic == topic("bus", "state") && json(m)["rx_frames"] == 11).await;
    let state = json(&state);
    assert_eq!(
        (state["published"].as_u64(), state["decode_errors"].as_u64(), state["unknown_frames"].as_u64()),
        (Some(8), Some(1), Some(2)),
        "{state}"
    );
    let published: Vec<&str> = client
        .log
        .iter()
        .filter(|m| m.topic.starts_with("busgate/") && !m.topic.contains("/bus/"))
        .map(|m| m.topic.as_str())
        .collect();
    assert_eq!(published.len(), 10, "every frame published once: {published:?}");
    let counters = gateway.stop().await;
    assert_eq!(counters.errors, 0);
}
