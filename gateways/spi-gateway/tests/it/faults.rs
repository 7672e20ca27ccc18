//! Thermocouple faults, an absent chip and transfer errors take only that device offline, with
//! the reason; the others keep running and the device comes back by itself.

use buses::mock_spi::Injected;

use crate::{ADC, THERMOCOUPLE, json, setup, topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_take_one_device_offline_with_the_reason() {
    let (_broker, mut client, gateway) = setup().await;

    gateway.bus.set_input(THERMOCOUPLE, "fault", 1.0);
    let offline = client.wait_for(|m| m.topic == topic("oven", "availability") && json(m)["state"] == "offline").await;
    assert!(json(&offline)["reason"].as_str().unwrap().contains("open circuit"), "{}", offline.text());
    // The ADC keeps publishing.
    client.wait_on(&topic("adc", "state")).await;
    gateway.bus.set_input(THERMOCOUPLE, "fault", 0.0);
    client.wait_for(|m| m.topic == topic("oven", "availability") && json(m)["state"] == "online").await;

    assert!(gateway.bus.inject(ADC, Some(Injected::Absent(0xFF))));
    let offline = client.wait_for(|m| m.topic == topic("adc", "availability") && json(m)["state"] == "offline").await;
    assert!(json(&offline)["reason"].as_str().unwrap().contains("no response"), "{}", offline.text());
    client.wait_on(&topic("oven", "state")).await;
    gateway.bus.inject(ADC, None);
    client.wait_for(|m| m.topic == topic("adc", "availability") && json(m)["state"] == "online").await;

    gateway.bus.inject(THERMOCOUPLE, Some(Injected::TransferError));
    let offline = client.wait_for(|m| m.topic == topic("oven", "availability") && json(m)["state"] == "offline").await;
    assert!(!json(&offline)["reason"].as_str().unwrap().is_empty());
    gateway.bus.inject(THERMOCOUPLE, None);
    client.wait_for(|m| m.topic == topic("oven", "availability") && json(m)["state"] == "online").await;
    gateway.stop().await;
}

/// The same faults through the `sim` topic, as a Python test app would inject them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_through_the_sim_topic() {
    let (_broker, mut client, gateway) = setup().await;
    let (sim, reply) = (topic("adc", "sim"), topic("adc", "reply"));
    let answer =
        client.command(&sim, &reply, "a1", r#"{"v":1,"id":"$ID","action":"absent","args":{"level":"high"}}"#).await;
    assert_eq!(answer["ok"], true, "{answer}");
    let offline = client.wait_for(|m| m.topic == topic("adc", "availability") && json(m)["state"] == "offline").await;
    assert!(json(&offline)["reason"].as_str().unwrap().contains("all 1s"), "{}", offline.text());
    client.command(&sim, &reply, "a2", r#"{"v":1,"id":"$ID","action":"restore"}"#).await;
    client.wait_for(|m| m.topic == topic("adc", "availability") && json(m)["state"] == "online").await;

    let (sim, reply) = (topic("oven", "sim"), topic("oven", "reply"));
    client
        .command(&sim, &reply, "t1", r#"{"v":1,"id":"$ID","action":"set_input","args":{"name":"fault","value":2}}"#)
        .await;
    let offline = client.wait_for(|m| m.topic == topic("oven", "availability") && json(m)["state"] == "offline").await;
    assert!(json(&offline)["reason"].as_str().unwrap().contains("shorted to GND"), "{}", offline.text());
    assert_eq!(gateway.bus.inspect(THERMOCOUPLE, "fault"), Some(2.0));
    gateway.stop().await;
}
