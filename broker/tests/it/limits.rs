//! The board's limits hold.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use test_support::{Client, TIMEOUT};

use crate::Broker;

// rumqttd closes the connection of a client whose packet is larger than the limit, without a
// reply (MQTT 3.1.1 has no way to say why); the message goes nowhere and is not journaled.
#[tokio::test]
async fn a_payload_over_the_limit_disconnects_the_publisher() {
    let broker = Broker::start("[broker.limits]\nmax_payload_bytes = 1024\nsegment_bytes = 4096\n");
    let mut watcher = Client::connect(broker.address(), "watcher").await;
    watcher.subscribe("big/#").await;

    let address = broker.address();
    let mut options = MqttOptions::new("oversized", address.ip().to_string(), address.port());
    options.set_keep_alive(Duration::from_secs(30));
    // rumqttc refuses to send large packets itself unless told otherwise.
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client.publish("big/over", QoS::AtLeastOnce, false, vec![b'x'; 1025]).await.unwrap();
    let error = tokio::time::timeout(TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => panic!("the oversized message was acknowledged"),
                Ok(_) => {}
                Err(error) => return error,
            }
        }
    })
    .await
    .expect("the broker closes the connection");
    eprintln!("publisher saw: {error}");

    // Well under the limit, from another client: the watcher gets it, and nothing before it.
    let publisher = Client::connect(broker.address(), "publisher").await;
    publisher.publish("big/under", vec![b'y'; 900]).await;
    let first = watcher.wait_for(|m| m.topic.starts_with("big/")).await;
    assert_eq!((first.topic.as_str(), first.payload.len()), ("big/under", 900));

    let entries = broker.wait_journal("big/under").await;
    assert!(entries.iter().all(|e| e.topic != "big/over"), "{entries:#?}");
    assert!(broker.process.terminate().success());
}
