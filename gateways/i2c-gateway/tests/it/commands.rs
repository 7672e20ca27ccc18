//! Commands reach the simulated chip and are acknowledged; invalid ones get clear error replies
//! and never reach the bus.

use test_support::{Broker, Client};

use crate::{Gateway, PCA9685, command, json, topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_changes_the_chip_and_is_acknowledged() {
    let broker = Broker::start();
    let mut client = Client::connect(broker.address(), "app").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(broker.address());
    client.wait_for(|m| m.topic == topic("leds", "availability") && json(m)["state"] == "online").await;

    let reply =
        command(&mut client, "leds", "r1", r#"{"v":1,"id":"$ID","action":"set_duty","args":{"channel":3,"duty":0.5}}"#)
            .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["action"], "set_duty");
    let ch3 = gateway.bus.inspect(PCA9685, "ch3").unwrap();
    assert!((ch3 - 0.5).abs() < 0.001, "register duty {ch3}");
    assert!((reply["values"]["ch3"]["value"].as_f64().unwrap() - 0.5).abs() < 0.001, "{reply}");

    // The next reading reports the new output.
    let state = client
        .wait_for(|m| {
            m.topic == topic("leds", "state")
                && json(m)["values"]["ch3"]["value"].as_f64().is_some_and(|d| (d - 0.5).abs() < 0.001)
        })
        .await;
    assert_eq!(json(&state)["model"], "PCA9685");
    gateway.stop().await;
}

/// Each case: the command, the error kind, the field, and a piece of the message.
const INVALID: &[(&str, &str, Option<&str>, &str)] = &[
    (
        r#"{"v":1,"id":"$ID","action":"set_duty","args":{"channel":16,"duty":0.5}}"#,
        "invalid_argument",
        Some("args.channel"),
        "expected an integer from 0 to 15, got integer 16",
    ),
    (
        r#"{"v":1,"id":"$ID","action":"set_duty","args":{"channel":1}}"#,
        "invalid_argument",
        Some("args.duty"),
        "got nothing",
    ),
    (
        r#"{"v":1,"id":"$ID","action":"set_duty","args":{"channel":1,"duty":"half"}}"#,
        "invalid_argument",
        Some("args.duty"),
        "got string \"half\"",
    ),
    (r#"{"v":1,"id":"$ID","action":"explode"}"#, "unknown_action", Some("action"), "has no action \"explode\""),
    (r#"{"v":2,"id":"$ID","action":"off"}"#, "invalid_command", Some("v"), "expected 1, got integer 2"),
    (r#"{"v":1,"id":"$ID","action":"off","extra":1}"#, "invalid_command", Some("extra"), "no such field"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_commands_get_error_replies_and_the_gateway_keeps_running() {
    let broker = Broker::start();
    let mut client = Client::connect(broker.address(), "app").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(broker.address());
    client.wait_for(|m| m.topic == topic("leds", "availability") && json(m)["state"] == "online").await;
    let before = gateway.bus.inspect(PCA9685, "ch1").unwrap();

    for (index, (body, kind, field, needle)) in INVALID.iter().enumerate() {
        let id = format!("bad{index}");
        let reply = command(&mut client, "leds", &id, body).await;
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!(reply["error"]["kind"], *kind, "{reply}");
        assert_eq!(reply["error"]["field"].as_str(), *field, "{reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains(needle), "{reply}");
    }
    assert_eq!(gateway.bus.inspect(PCA9685, "ch1"), Some(before), "refused commands never reach the bus");

    // Not JSON at all, and too large: replies without an id.
    client.publish(&topic("leds", "set"), "not json").await;
    let reply =
        client.wait_for(|m| m.topic == topic("leds", "reply") && json(m)["error"]["kind"] == "invalid_json").await;
    assert_eq!(json(&reply)["id"], serde_json::Value::Null);
    client.publish(&topic("leds", "set"), vec![b' '; 5000]).await;
    client.wait_for(|m| m.topic == topic("leds", "reply") && json(m)["error"]["kind"] == "too_large").await;

    // A device without commands says so.
    let reply = command(&mut client, "ambient", "q", r#"{"v":1,"id":"$ID","action":"reset"}"#).await;
    assert!(reply["error"]["message"].as_str().unwrap().contains("takes no commands"), "{reply}");

    // Still alive: a valid command works and readings keep coming.
    let reply =
        command(&mut client, "leds", "good", r#"{"v":1,"id":"$ID","action":"set_all","args":{"duty":0.25}}"#).await;
    assert_eq!(reply["ok"], true, "{reply}");
    client.wait_on(&topic("ambient", "state")).await;
    gateway.stop().await;
}
