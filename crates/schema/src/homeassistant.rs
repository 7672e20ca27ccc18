//! Home Assistant MQTT discovery: a retained `config` message per reading (sensor or
//! binary_sensor) and per writable output (switch or number), following Home Assistant's
//! documented discovery schema, so a board's devices appear without hand-written YAML.

use std::time::Duration;

use device::{Control, Description, Kind, Output};
use serde::Serialize;

use crate::payload::{Payload, WireValue};
use crate::topic::{DeviceTopics, GatewayTopics};

/// Which board device the configs are for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Discovery prefix, usually `homeassistant`.
    pub prefix: &'a str,
    pub board: &'a str,
    pub gateway: &'a str,
    pub bus_kind: &'a str,
    pub bus: &'a str,
    pub device: &'a str,
    pub poll: Duration,
}

/// Home Assistant's node id for a device: `busgate_<board>_<bus_kind>_<bus>_<device>`.
pub fn node_id(board: &str, bus_kind: &str, bus: &str, device: &str) -> String {
    format!("busgate_{board}_{bus_kind}_{bus}_{device}")
}

/// The filter matching every discovery config under `prefix`.
pub fn config_filter(prefix: &str) -> String {
    format!("{prefix}/+/+/+/config")
}

/// True when `topic` is a discovery config for a device of this board and bus kind (so a
/// gateway can clear the configs of devices removed from the board file).
pub fn is_ours(prefix: &str, board: &str, bus_kind: &str, topic: &str) -> bool {
    let levels: Vec<&str> = topic.split('/').collect();
    let ours = format!("busgate_{board}_{bus_kind}_");
    levels.len() == prefix.split('/').count() + 4
        && topic.starts_with(prefix)
        && levels[levels.len() - 3].starts_with(&ours)
        && levels[levels.len() - 1] == "config"
}

#[derive(Debug, Serialize)]
struct Availability {
    topic: String,
    value_template: &'static str,
}

#[derive(Debug, Serialize)]
struct DeviceBlock {
    identifiers: Vec<String>,
    name: String,
    model: String,
    manufacturer: &'static str,
}

/// One discovery config. Keys are Home Assistant's; absent options are left out.
#[derive(Debug, Serialize)]
pub struct Config {
    name: String,
    unique_id: String,
    object_id: String,
    state_topic: String,
    value_template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_of_measurement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_off: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_on: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_off: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<f64>,
    /// Both the gateway's status and the device's availability must say online.
    availability: Vec<Availability>,
    availability_mode: &'static str,
    payload_available: &'static str,
    payload_not_available: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_after: Option<u64>,
    device: DeviceBlock,
}

impl Payload for Config {}

fn device_class(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Temperature => Some("temperature"),
        Kind::Humidity => Some("humidity"),
        Kind::Pressure => Some("pressure"),
        Kind::Voltage => Some("voltage"),
        Kind::Current => Some("current"),
        Kind::Power => Some("power"),
        Kind::Ratio | Kind::State | Kind::Other => None,
    }
}

/// A command with `value` in place of the output's value argument, as JSON text.
fn command_json(output: &Output, value: &WireValue) -> String {
    let mut args = serde_json::Map::new();
    for (name, fixed) in &output.fixed {
        args.insert((*name).to_owned(), serde_json::to_value(WireValue::from(fixed)).unwrap_or_default());
    }
    args.insert(output.value.to_owned(), serde_json::to_value(value).unwrap_or_default());
    serde_json::json!({ "v": 1, "action": output.action, "args": args }).to_string()
}

/// Every discovery config of one device, as (topic, payload).
pub fn configs(target: Target<'_>, description: &Description, outputs: &[Output]) -> Vec<(String, Vec<u8>)> {
    let node = node_id(target.board, target.bus_kind, target.bus, target.device);
    let topics = DeviceTopics::new(target.board, target.bus_kind, target.bus, target.device);
    let status = GatewayTopics::new(target.board, target.gateway).status();
    // Three missed polls and the value is stale; never less than 5 s.
    let expire_after = (target.poll.as_secs_f64() * 3.0).ceil().max(5.0) as u64;
    let mut configs = Vec::new();
    for quantity in &description.quantities {
        let output = outputs.iter().find(|o| o.quantity == quantity.name);
        // Subscripts, not attributes: in Jinja2 `value_json.values` is the dict's values()
        // method, not our "values" member.
        let value = format!("value_json['values']['{}']['value']", quantity.name);
        let mut config = Config {
            name: quantity.name.to_owned(),
            unique_id: format!("{node}_{}", quantity.name),
            object_id: format!("{node}_{}", quantity.name),
            state_topic: topics.state(),
            value_template: format!("{{{{ {value} }}}}"),
            unit_of_measurement: quantity.unit.map(str::to_owned),
            device_class: None,
            state_class: None,
            command_topic: None,
            command_template: None,
            payload_on: None,
            payload_off: None,
            state_on: None,
            state_off: None,
            min: None,
            max: None,
            step: None,
            availability: vec![
                Availability { topic: status.clone(), value_template: "{{ value_json.state }}" },
                Availability { topic: topics.availability(), value_template: "{{ value_json.state }}" },
            ],
            availability_mode: "all",
            payload_available: "online",
            payload_not_available: "offline",
            expire_after: Some(expire_after),
            device: DeviceBlock {
                identifiers: vec![node.clone()],
                name: target.device.to_owned(),
                model: description.model.to_owned(),
                manufacturer: "busgate",
            },
        };
        let component = match (output, quantity.kind) {
            (Some(output @ Output { control: Control::Switch, .. }), _) => {
                config.command_topic = Some(topics.set());
                config.value_template = format!("{{{{ 'ON' if {value} else 'OFF' }}}}");
                config.payload_on = Some(command_json(output, &WireValue::Bool(true)));
                config.payload_off = Some(command_json(output, &WireValue::Bool(false)));
                config.state_on = Some("ON");
                config.state_off = Some("OFF");
                // Outputs keep their state; they do not go stale between polls.
                config.expire_after = None;
                "switch"
            }
            (Some(output @ Output { control: Control::Number { min, max, step }, .. }), _) => {
                config.command_topic = Some(topics.set());
                let placeholder = WireValue::Text("\u{0}value\u{0}".into());
                let template = command_json(output, &placeholder);
                config.command_template = Some(template.replace("\"\\u0000value\\u0000\"", "{{ value }}"));
                (config.min, config.max, config.step) = (Some(*min), Some(*max), Some(*step));
                config.expire_after = None;
                "number"
            }
            (None, Kind::State) => {
                config.value_template = format!("{{{{ 'ON' if {value} else 'OFF' }}}}");
                "binary_sensor"
            }
            (None, kind) => {
                config.device_class = device_class(kind);
                config.state_class = Some("measurement");
                "sensor"
            }
        };
        let topic = format!("{}/{component}/{node}/{}/config", target.prefix, quantity.name);
        configs.push((topic, config.to_json()));
    }
    configs
}

#[cfg(test)]
mod tests {
    use device::{Quantity, Value};

    use super::*;

    fn target() -> Target<'static> {
        Target {
            prefix: "homeassistant",
            board: "sim",
            gateway: "i2c-gateway",
            bus_kind: "i2c",
            bus: "i2c1",
            device: "leds",
            poll: Duration::from_secs(2),
        }
    }

    fn quantity(name: &'static str, kind: Kind, unit: Option<&'static str>) -> Quantity {
        Quantity { name, unit, kind, description: "" }
    }

    fn parse(configs: &[(String, Vec<u8>)], index: usize) -> (&str, serde_json::Value) {
        (configs[index].0.as_str(), serde_json::from_slice(&configs[index].1).unwrap_or_default())
    }

    #[test]
    fn each_quantity_gets_the_right_component() {
        let description = Description {
            model: "X",
            quantities: vec![
                quantity("temperature", Kind::Temperature, Some("°C")),
                quantity("button", Kind::State, None),
                quantity("ch0", Kind::Ratio, None),
                quantity("relay", Kind::State, None),
            ],
            commands: vec![],
        };
        let outputs = [
            Output {
                quantity: "ch0",
                control: Control::Number { min: 0.0, max: 1.0, step: 0.001 },
                action: "set_duty",
                fixed: vec![("channel", Value::Int(0))],
                value: "duty",
            },
            Output {
                quantity: "relay",
                control: Control::Switch,
                action: "set_pin",
                fixed: vec![("pin", Value::Text("gpa0".into()))],
                value: "level",
            },
        ];
        let configs = configs(target(), &description, &outputs);
        let (topic, sensor) = parse(&configs, 0);
        assert_eq!(topic, "homeassistant/sensor/busgate_sim_i2c_i2c1_leds/temperature/config");
        assert_eq!(sensor["device_class"], "temperature");
        assert_eq!(sensor["state_class"], "measurement");
        assert_eq!(sensor["expire_after"], 6);
        assert_eq!(sensor["value_template"], "{{ value_json['values']['temperature']['value'] }}");
        let (topic, binary) = parse(&configs, 1);
        assert!(topic.starts_with("homeassistant/binary_sensor/"));
        assert_eq!(binary["value_template"], "{{ 'ON' if value_json['values']['button']['value'] else 'OFF' }}");
        let (topic, number) = parse(&configs, 2);
        assert!(topic.starts_with("homeassistant/number/"));
        assert_eq!(
            number["command_template"],
            r#"{"action":"set_duty","args":{"channel":0,"duty":{{ value }}},"v":1}"#
        );
        assert_eq!(number["command_topic"], "busgate/sim/i2c/i2c1/leds/set");
        assert!(number["expire_after"].is_null(), "outputs do not go stale");
        let (topic, switch) = parse(&configs, 3);
        assert!(topic.starts_with("homeassistant/switch/"));
        assert_eq!(switch["payload_on"], r#"{"action":"set_pin","args":{"level":true,"pin":"gpa0"},"v":1}"#);
        assert_eq!(switch["state_on"], "ON");
    }

    #[test]
    fn namespace_of_a_board_and_bus_kind() {
        let ours = "homeassistant/sensor/busgate_sim_i2c_i2c1_gone/temperature/config";
        assert!(is_ours("homeassistant", "sim", "i2c", ours));
        assert!(!is_ours("homeassistant", "sim", "spi", ours), "the SPI gateway leaves I2C configs alone");
        assert!(!is_ours("homeassistant", "lab", "i2c", ours));
        assert!(!is_ours("homeassistant", "sim", "i2c", "homeassistant/sensor/other_node/x/config"));
        assert!(!is_ours("homeassistant", "sim", "i2c", "homeassistant/sensor/busgate_sim_i2c_a/x/y/config"));
    }
}
