//! Messages go through the broker and into the journal, QoS, retain flag and will included.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use test_support::{Client, TIMEOUT};

use crate::Broker;

const STATE: &str = "busgate/test/i2c/i2c1/ambient/state";
const RAW: &str = "busgate/test/raw";
const JSON: &[u8] = br#"{"v":1,"seq":7}"#;
const BINARY: &[u8] = &[0x00, 0xff, 0x10];

#[tokio::test]
async fn messages_are_delivered_and_journaled() {
    let broker = Broker::start("");
    let publisher = Client::connect(broker.address(), "publisher").await;
    publisher.client.publish(STATE, QoS::AtLeastOnce, true, JSON.to_vec()).await.unwrap();
    // The broker handles one client's packets in order: once this subscription's marker came
    // back, the retained message is stored.
    let mut publisher = publisher;
    publisher.subscribe("busgate/test/nothing").await;

    let mut subscriber = Client::connect(broker.address(), "subscriber").await;
    subscriber.subscribe("busgate/#").await;
    let retained = subscriber.log.iter().find(|m| m.topic == STATE).expect("the retained message on subscribing");
    assert_eq!((retained.payload.as_slice(), retained.retain), (JSON, true));

    publisher.client.publish(RAW, QoS::AtMostOnce, false, BINARY.to_vec()).await.unwrap();
    let raw = subscriber.wait_on(RAW).await;
    assert_eq!((raw.payload.as_slice(), raw.retain), (BINARY, false));

    let entries = broker.wait_journal(RAW).await;
    let state: Vec<_> = entries.iter().filter(|e| e.topic == STATE).collect();
    assert_eq!(state.len(), 1, "one line per message, however many subscribers: {entries:#?}");
    let state = state[0];
    assert_eq!((state.qos, state.retain, state.bytes), (1, true, JSON.len()));
    assert_eq!(state.payload.as_ref().unwrap()["seq"], 7);
    assert!(state.payload_hex.is_none());
    let raw = entries.iter().find(|e| e.topic == RAW).unwrap();
    assert_eq!((raw.qos, raw.retain, raw.bytes), (0, false, 3));
    assert_eq!((raw.payload.as_ref(), raw.payload_hex.as_deref()), (None, Some("00ff10")));

    let journal = broker.journal.clone();
    let status = broker.process.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(crate::read_journal(&journal).iter().any(|e| e.topic == RAW));
}

#[tokio::test]
async fn a_connection_that_drops_has_its_will_published_and_journaled() {
    const WILL: &str = "busgate/test/i2c-gateway/status";
    let broker = Broker::start("");
    let mut watcher = Client::connect(broker.address(), "watcher").await;
    watcher.subscribe(WILL).await;

    let address = broker.address();
    let mut options = MqttOptions::new("dying", address.ip().to_string(), address.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_last_will(LastWill::new(WILL, br#"{"v":1,"state":"offline"}"#.to_vec(), QoS::AtLeastOnce, true));
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .expect("connected");
    // Closing the socket without DISCONNECT, as a crash would.
    drop(eventloop);

    let will = watcher.wait_on(WILL).await;
    assert_eq!(will.qos, QoS::AtLeastOnce);
    let entries = broker.wait_journal(WILL).await;
    let entry = entries.iter().find(|e| e.topic == WILL).unwrap();
    assert_eq!((entry.qos, entry.retain), (1, true));
    assert_eq!(entry.payload.as_ref().unwrap()["state"], "offline");
}
