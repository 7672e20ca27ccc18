//! A failing device goes offline with the reason, the others keep running, and it comes back
//! by itself.

use buses::mock_i2c::Injected;
use test_support::{Broker, Client};

use crate::{BME280, Gateway, board_text, command, json, topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_device_goes_offline_and_comes_back() {
    let broker = Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(broker.address());
    client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "online").await;

    assert!(gateway.bus.inject(BME280, Some(Injected::Removed)));
    let offline =
        client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "offline").await;
    let reason = json(&offline)["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("no acknowledge"), "{reason}");

    // The other devices keep publishing while ambient is offline.
    client.wait_on(&topic("supply", "state")).await;
    client.wait_on(&topic("supply", "state")).await;
    // Commands to the offline device are refused with the reason.
    let reply = command(&mut client, "ambient", "x", r#"{"v":1,"id":"$ID","action":"anything"}"#).await;
    assert_eq!(reply["ok"], false);

    gateway.bus.inject(BME280, None);
    client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "online").await;
    client.wait_on(&topic("ambient", "state")).await;

    // A bus error is reported the same way, with its own reason.
    gateway.bus.inject(BME280, Some(Injected::BusError));
    let offline =
        client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "offline").await;
    assert!(json(&offline)["reason"].as_str().unwrap().contains("bus error"), "{}", offline.text());
    gateway.bus.inject(BME280, None);
    client.wait_for(|m| m.topic == topic("ambient", "availability") && json(m)["state"] == "online").await;

    let health =
        client.wait_for(|m| m.topic == "busgate/test/i2c-gateway/health" && json(m)["errors"].as_u64() > Some(0)).await;
    assert_eq!(json(&health)["devices_total"], 3);
    gateway.stop().await;
}

/// A bus whose device file does not exist (module not loaded, adapter unplugged) makes its
/// devices offline with the reason; the gateway keeps running and answers commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bus_device_file_makes_devices_offline_not_a_crash() {
    let broker = Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let text = board_text(broker.address()).replace("mock = true", "path = \"/dev/i2c-busgate-missing\"");
    let gateway = Gateway::start_board(&text, |_| {});
    for device in ["ambient", "supply", "leds"] {
        let offline =
            client.wait_for(|m| m.topic == topic(device, "availability") && json(m)["state"] == "offline").await;
        let reason = json(&offline)["reason"].as_str().unwrap().to_owned();
        assert!(reason.contains("/dev/i2c-busgate-missing"), "{reason}");
    }
    let health = client.wait_on("busgate/test/i2c-gateway/health").await;
    assert_eq!(json(&health)["devices_online"], 0);
    let reply = command(&mut client, "leds", "o", r#"{"v":1,"id":"$ID","action":"off"}"#).await;
    assert_eq!(reply["error"]["kind"], "device_offline", "{reply}");
    gateway.stop().await;
}
