//! Home Assistant discovery: configs for every reading and output, checked against the keys
//! Home Assistant requires, against the states the gateway really publishes, and by sending
//! the command they describe; configs of removed devices are cleared.

use std::net::SocketAddr;

use test_support::{Broker, Client, Received};

use crate::{Gateway, PCA9685, json, topic};

/// Evaluates the two template shapes discovery uses against a state payload:
/// `{{ value_json['values']['X']['value'] }}` and `{{ 'ON' if value_json[...] else 'OFF' }}`.
/// (The Python kit's test renders every template with Jinja2 itself.)
fn render(template: &str, state: &serde_json::Value) -> serde_json::Value {
    let start = template.find("value_json[").expect("template reads value_json") + "value_json".len();
    let path: String = template[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    let value = path
        .trim_matches(['[', ']'])
        .split("][")
        .map(|key| key.trim_matches('\''))
        .fold(state, |value, key| &value[key]);
    assert!(!value.is_null(), "{template} finds nothing in {state}");
    if template.contains("'ON' if") {
        serde_json::Value::from(if value.as_bool().expect("a boolean state") { "ON" } else { "OFF" })
    } else {
        value.clone()
    }
}

#[track_caller]
fn check_keys(config: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        assert!(!config[key].is_null(), "discovery config lacks {key}: {config}");
    }
}

fn with_discovery(broker: SocketAddr) -> String {
    crate::board_text(broker).replace("[gateway]", "[homeassistant]\nenabled = true\n\n[gateway]")
}

/// A message published once (a retained config, the status): seen already while waiting for
/// something else (the configs come in one burst), or still to come.
async fn once(client: &mut Client, topic: &str) -> (Received, serde_json::Value) {
    let message = client.seen_or_wait(topic).await;
    let value = json(&message);
    (message, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_configs_match_real_states_and_commands() {
    let broker = Broker::start();
    let mut app = Client::connect(broker.address(), "home-assistant").await;
    // A config left behind by a device no longer in the board file.
    let stale = "homeassistant/sensor/busgate_test_i2c_i2c1_gone/temperature/config";
    app.client.publish(stale, rumqttc::QoS::AtLeastOnce, true, br#"{"name":"old"}"#.to_vec()).await.unwrap();
    app.subscribe("homeassistant/#").await;
    app.subscribe("busgate/test/#").await;
    let gateway = Gateway::start_board(&with_discovery(broker.address()), |_| {});

    let (message, sensor) =
        once(&mut app, "homeassistant/sensor/busgate_test_i2c_i2c1_ambient/temperature/config").await;
    assert!(message.retain || sensor["state_topic"].is_string());
    check_keys(
        &sensor,
        &["name", "unique_id", "state_topic", "value_template", "availability", "device", "expire_after"],
    );
    assert_eq!(sensor["device_class"], "temperature");
    assert_eq!(sensor["unit_of_measurement"], "°C");
    assert_eq!(sensor["availability_mode"], "all");
    assert_eq!(sensor["availability"].as_array().unwrap().len(), 2, "gateway status and device availability");
    assert_eq!(sensor["expire_after"], 5, "three polls of 40 ms, at least 5 s");
    assert_eq!(sensor["device"]["identifiers"][0], "busgate_test_i2c_i2c1_ambient");
    assert_eq!(sensor["device"]["model"], "BME280");

    // The templates extract values from what the gateway really publishes.
    let state = json(&app.wait_on(&topic("ambient", "state")).await);
    assert!(render(sensor["value_template"].as_str().unwrap(), &state).is_f64());
    let (_, status) = once(&mut app, "busgate/test/i2c-gateway/status").await;
    for availability in sensor["availability"].as_array().unwrap() {
        let template = availability["value_template"].as_str().unwrap();
        assert_eq!(template, "{{ value_json.state }}");
        assert_eq!(status["state"], sensor["payload_available"]);
    }

    // An output is a number whose command template is a valid command.
    let (_, number) = once(&mut app, "homeassistant/number/busgate_test_i2c_i2c1_leds/ch3/config").await;
    check_keys(&number, &["command_topic", "command_template", "min", "max", "step", "state_topic", "value_template"]);
    let command = number["command_template"].as_str().unwrap().replace("{{ value }}", "0.25");
    app.publish(number["command_topic"].as_str().unwrap(), command).await;
    let reply = app.wait_on(&topic("leds", "reply")).await;
    assert_eq!(json(&reply)["ok"], true, "{}", reply.text());
    assert_eq!(gateway.bus.inspect(PCA9685, "ch3"), Some(0.25));
    let state =
        json(&app.wait_for(|m| m.topic == topic("leds", "state") && json(m)["values"]["ch3"]["value"] == 0.25).await);
    assert_eq!(render(number["value_template"].as_str().unwrap(), &state), 0.25);

    // The stale config is cleared with an empty retained message.
    let cleared = app.log.iter().any(|m| m.topic == stale && m.payload.is_empty());
    if !cleared {
        app.wait_for(|m| m.topic == stale && m.payload.is_empty()).await;
    }
    gateway.stop().await;
}
