//! Readings of every SPI chip arrive as schema-valid JSON with the simulated values.

use crate::{ADC, THERMOCOUPLE, check_schema, json, setup, topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_arrive_as_schema_valid_json() {
    let (_broker, mut client, gateway) = setup().await;
    gateway.bus.set_input(ADC, "ch3", 1.2);
    gateway.bus.set_input(THERMOCOUPLE, "thermocouple", 215.5);
    gateway.bus.set_input(THERMOCOUPLE, "cold_junction", 24.0);

    let adc = client
        .wait_for(|m| {
            m.topic == topic("adc", "state")
                && (json(m)["values"]["ch3"]["value"].as_f64().unwrap_or(0.0) - 1.2).abs() < 0.01
        })
        .await;
    let reading = check_schema("reading.json", &adc);
    assert_eq!(reading["model"], "MCP3008");
    assert_eq!(reading["values"]["ch3"]["unit"], "V");
    // 1.2 V of 3.3 V on 10 bits.
    let raw = reading["values"]["ch3_raw"]["value"].as_i64().unwrap();
    assert!((raw - 372).abs() <= 1, "{raw}");

    let oven = client
        .wait_for(|m| {
            m.topic == topic("oven", "state") && json(m)["values"]["thermocouple"]["value"].as_f64() == Some(215.5)
        })
        .await;
    let reading = check_schema("reading.json", &oven);
    assert_eq!(reading["values"]["cold_junction"]["value"].as_f64(), Some(24.0));
    assert_eq!(reading["values"]["thermocouple"]["unit"], "°C");

    let io = client.wait_on(&topic("io", "state")).await;
    let reading = check_schema("reading.json", &io);
    assert_eq!(reading["model"], "MCP23S17");
    assert!(reading["values"]["gpb7"]["value"].is_boolean(), "{reading}");

    let health = client.wait_on("busgate/test/spi-gateway/health").await;
    assert_eq!(check_schema("health.json", &health)["devices_total"], 3);
    gateway.stop().await;
}
