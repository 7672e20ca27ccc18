//! The gateway against Mosquitto, a third-party broker: readings, retained state and commands.
//!
//! Needs the `mosquitto` program (Debian package `mosquitto`; `.ci/run` installs it). Without
//! it the test says so and passes, unless BUSGATE_REQUIRE_MOSQUITTO is set, as in CI.

use test_support::{Client, Mosquitto};

use crate::{Gateway, PCA9685, check_schema, command, json, topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_works_with_mosquitto() {
    let Some(mosquitto) = Mosquitto::start() else {
        assert!(std::env::var_os("BUSGATE_REQUIRE_MOSQUITTO").is_none(), "mosquitto is required but not installed");
        eprintln!("mosquitto not installed: interop test not run (apt-get install mosquitto)");
        return;
    };
    let mut client = Client::connect(mosquitto.address(), "app").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(mosquitto.address());
    let status = client.wait_on("busgate/test/i2c-gateway/status").await;
    assert_eq!(check_schema("status.json", &status)["state"], "online");
    let reading = client.wait_on(&topic("ambient", "state")).await;
    check_schema("reading.json", &reading);

    let reply =
        command(&mut client, "leds", "m1", r#"{"v":1,"id":"$ID","action":"set_duty","args":{"channel":0,"duty":1.0}}"#)
            .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(gateway.bus.inspect(PCA9685, "ch0"), Some(1.0));

    // Mosquitto keeps retained messages: a late subscriber sees the latest state at once.
    let mut late = Client::connect(mosquitto.address(), "late").await;
    late.client.subscribe(topic("supply", "state"), rumqttc::QoS::AtLeastOnce).await.unwrap();
    let retained = late.wait_on(&topic("supply", "state")).await;
    assert!(retained.retain);
    check_schema("reading.json", &retained);

    gateway.stop().await;
    // A clean stop leaves a retained offline status (not the last will).
    let status =
        client.wait_for(|m| m.topic == "busgate/test/i2c-gateway/status" && json(m)["state"] == "offline").await;
    assert_eq!(json(&status)["reason"], "stopped");
}
