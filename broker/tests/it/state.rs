//! What the broker keeps and tells: retained messages across a restart, and its health topic.

use std::os::unix::fs::PermissionsExt as _;

use rumqttc::QoS;
use schema::broker::BrokerHealth;
use test_support::{Client, temp_dir};

use crate::Broker;

#[tokio::test]
async fn retained_messages_survive_a_restart() {
    let dir = temp_dir("retained-restart");
    let store = dir.join("data/retained.bin");
    let extra = format!("[broker.retained]\nenabled = true\npath = \"{}\"\n", store.display());

    let broker = Broker::start(&extra);
    let mut publisher = Client::connect(broker.address(), "publisher").await;
    publisher.client.publish("keep/a", QoS::AtLeastOnce, true, b"kept".to_vec()).await.unwrap();
    publisher.client.publish("keep/b", QoS::AtMostOnce, true, b"\x00\x01".to_vec()).await.unwrap();
    publisher.client.publish("keep/gone", QoS::AtLeastOnce, true, b"x".to_vec()).await.unwrap();
    publisher.client.publish("keep/gone", QoS::AtLeastOnce, true, Vec::new()).await.unwrap();
    // The broker handles one client's packets in order: once this comes back, all is retained.
    publisher.subscribe("keep/nothing").await;
    assert!(broker.process.terminate().success());
    assert_eq!(std::fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o600);

    let broker = Broker::start(&extra);
    let mut subscriber = Client::connect(broker.address(), "subscriber").await;
    subscriber.subscribe("keep/#").await;
    let mut kept: Vec<(String, Vec<u8>, bool, QoS)> = subscriber
        .log
        .iter()
        .filter(|m| m.topic.starts_with("keep/"))
        .map(|m| (m.topic.clone(), m.payload.clone(), m.retain, m.qos))
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kept,
        [
            ("keep/a".to_owned(), b"kept".to_vec(), true, QoS::AtLeastOnce),
            // Published at QoS 0, delivered at QoS 0 to a QoS 1 subscription, after the restart too.
            ("keep/b".to_owned(), b"\x00\x01".to_vec(), true, QoS::AtMostOnce),
        ]
    );
    assert!(broker.process.terminate().success());
}

#[tokio::test]
async fn the_broker_publishes_its_health_retained() {
    let broker = Broker::start("[broker]\nhealth_interval_s = 1\n");
    let publisher = Client::connect(broker.address(), "counted").await;
    publisher.publish("some/topic", "x").await;
    let mut watcher = Client::connect(broker.address(), "watcher").await;
    watcher.subscribe(&schema::broker::stats_topic("test")).await;
    // Wait for a report that has seen both clients and the message.
    let health = loop {
        let message = watcher.wait_on(&schema::broker::stats_topic("test")).await;
        let health: BrokerHealth = schema::payload::parse(&message.payload).unwrap();
        if health.messages_in >= 1 && health.connections >= 2 {
            break health;
        }
    };
    assert!(health.logins >= 2 && health.refused == 0 && health.denied == 0, "{health:?}");
    assert!(broker.process.terminate().success());
}
