//! Readings arrive as schema-valid JSON with the simulated chips' values.

use test_support::{Broker, Client};

use crate::{BME280, Gateway, INA219, check_schema, json, topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_arrive_as_schema_valid_json() {
    let broker = Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(broker.address());
    gateway.bus.set_input(BME280, "temperature", 25.0);
    gateway.bus.set_input(INA219, "bus_voltage", 12.0);
    gateway.bus.set_input(INA219, "current", 0.5);

    let status = client.wait_on("busgate/test/i2c-gateway/status").await;
    assert_eq!(check_schema("status.json", &status)["state"], "online");
    for device in ["ambient", "supply", "leds"] {
        let availability = client.wait_on(&topic(device, "availability")).await;
        assert_eq!(check_schema("availability.json", &availability)["state"], "online");
    }

    // Wait for a reading taken after the inputs were set (the first may predate them).
    let ambient = client
        .wait_for(|m| {
            m.topic == topic("ambient", "state")
                && (json(m)["values"]["temperature"]["value"].as_f64().unwrap_or(0.0) - 25.0).abs() < 0.05
        })
        .await;
    let reading = check_schema("reading.json", &ambient);
    assert_eq!(reading["model"], "BME280");
    assert_eq!(reading["device"], "ambient");
    assert_eq!(reading["values"]["temperature"]["unit"], "°C");
    assert_eq!(reading["values"]["pressure"]["unit"], "hPa");
    assert!(ambient.retain || ambient.qos == rumqttc::QoS::AtLeastOnce);

    let supply = client
        .wait_for(|m| {
            m.topic == topic("supply", "state")
                && (json(m)["values"]["current"]["value"].as_f64().unwrap_or(0.0) - 0.5).abs() < 0.01
        })
        .await;
    let reading = check_schema("reading.json", &supply);
    assert!((reading["values"]["bus_voltage"]["value"].as_f64().unwrap() - 12.0).abs() < 0.01, "{reading}");
    assert!((reading["values"]["power"]["value"].as_f64().unwrap() - 6.0).abs() < 0.1, "{reading}");

    // Sequence numbers count up per device.
    let first = json(&client.wait_on(&topic("supply", "state")).await)["seq"].as_u64().unwrap();
    let second = json(&client.wait_on(&topic("supply", "state")).await)["seq"].as_u64().unwrap();
    assert_eq!(second, first + 1);

    let health = client.wait_on("busgate/test/i2c-gateway/health").await;
    let health = check_schema("health.json", &health);
    assert_eq!(health["devices_total"], 3);
    assert_eq!(health["reconnects"], 0);

    let counters = gateway.stop().await;
    assert!(counters.messages_out > 0);
    // Regression: the final counters counted the first connect as a reconnect, unlike health.
    assert_eq!(counters.reconnects, 0, "{counters:?}");
    let status =
        client.wait_for(|m| m.topic == "busgate/test/i2c-gateway/status" && json(m)["state"] == "offline").await;
    assert_eq!(json(&status)["reason"], "stopped");
}
