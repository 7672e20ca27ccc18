//! Simulation controls over MQTT (mock mode only): what Python test apps use to inject faults.

use test_support::{Broker, Client};

use crate::{Gateway, json, topic};

async fn sim(client: &mut Client, device: &str, id: &str, body: &str) -> serde_json::Value {
    client.command(&topic(device, "sim"), &topic(device, "reply"), id, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_inputs_through_the_sim_topic() {
    let broker = Broker::start();
    let mut client = Client::connect(broker.address(), "app").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(broker.address());
    client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "online").await;

    let reply = sim(
        &mut client,
        "ambient",
        "s1",
        r#"{"v":1,"id":"$ID","action":"set_input","args":{"name":"temperature","value":31.5}}"#,
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    client
        .wait_for(|m| {
            m.topic == topic("ambient", "state") && json(m)["values"]["temperature"]["value"].as_f64() == Some(31.5)
        })
        .await;
    let reply =
        sim(&mut client, "ambient", "s2", r#"{"v":1,"id":"$ID","action":"inspect","args":{"name":"temperature"}}"#)
            .await;
    assert_eq!(reply["values"]["value"]["value"].as_f64(), Some(31.5), "{reply}");

    let reply = sim(&mut client, "ambient", "s3", r#"{"v":1,"id":"$ID","action":"remove"}"#).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let offline =
        client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "offline").await;
    assert!(json(&offline)["reason"].as_str().unwrap().contains("no acknowledge"));
    sim(&mut client, "ambient", "s4", r#"{"v":1,"id":"$ID","action":"restore"}"#).await;
    client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "online").await;

    // Mistakes get the same clear replies as device commands.
    let reply = sim(
        &mut client,
        "ambient",
        "s5",
        r#"{"v":1,"id":"$ID","action":"set_input","args":{"name":"altitude","value":1}}"#,
    )
    .await;
    assert!(reply["error"]["message"].as_str().unwrap().contains("no input \"altitude\""), "{reply}");
    let reply = sim(&mut client, "ambient", "s6", r#"{"v":1,"id":"$ID","action":"melt"}"#).await;
    assert_eq!(reply["error"]["kind"], "unknown_action", "{reply}");
    assert_eq!(gateway.bus.inspect(crate::BME280, "temperature"), Some(31.5));
    gateway.stop().await;
}

/// Regression: a simulation control sent to a device on a real bus got no reply at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_control_on_a_real_bus_is_refused() {
    let broker = Broker::start();
    let mut client = Client::connect(broker.address(), "app").await;
    client.subscribe("busgate/test/#").await;
    // A bus file that does not exist: the device stays offline and is retried.
    let text = crate::board_text(broker.address())
        .replace("mock = true", "path = \"/dev/i2c-busgate-none\"")
        .replace("poll_ms = 40", "poll_ms = 1000");
    let gateway = Gateway::start_board(&text, |_| {});
    client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "offline").await;
    let reply = sim(&mut client, "ambient", "s1", r#"{"v":1,"id":"$ID","action":"inspect","args":{"name":"x"}}"#).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["kind"], "not_allowed", "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("not on a mock bus"), "{reply}");
    gateway.stop().await;
}
