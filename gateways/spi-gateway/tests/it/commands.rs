//! Output commands, raw transfers (allowed or not) and invalid commands.

use crate::{ADC, IO, command, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_pin_changes_the_expander_output() {
    let (_broker, mut client, gateway) = setup().await;
    let reply =
        command(&mut client, "io", "p1", r#"{"v":1,"id":"$ID","action":"set_pin","args":{"pin":"gpa3","level":true}}"#)
            .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(gateway.bus.inspect(IO, "gpa3"), Some(1.0));
    assert_eq!(reply["values"]["gpa3"]["value"], true, "{reply}");
    let reply =
        command(&mut client, "io", "p2", r#"{"v":1,"id":"$ID","action":"set_pin","args":{"pin":"gpa9","level":true}}"#)
            .await;
    assert_eq!(reply["error"]["kind"], "invalid_argument", "{reply}");
    assert_eq!(reply["error"]["field"], "args.pin");
    // Port B is configured as inputs (outputs = 0x00FF): refused, the device stays online.
    let reply =
        command(&mut client, "io", "p3", r#"{"v":1,"id":"$ID","action":"set_pin","args":{"pin":"gpb3","level":true}}"#)
            .await;
    assert!(reply["error"]["message"].as_str().unwrap().contains("pin gpb3 is an input"), "{reply}");
    assert_eq!(gateway.bus.inspect(IO, "gpb3"), Some(0.0));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adc_read_command_returns_one_conversion() {
    let (_broker, mut client, gateway) = setup().await;
    gateway.bus.set_input(ADC, "ch5", 3.0);
    let reply = command(&mut client, "adc", "r1", r#"{"v":1,"id":"$ID","action":"read","args":{"channel":5}}"#).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let volts = reply["values"]["ch5"]["value"].as_f64().unwrap();
    assert!((volts - 3.0).abs() < 0.01, "{reply}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_transfer_is_full_duplex_and_only_where_allowed() {
    let (_broker, mut client, gateway) = setup().await;
    gateway.bus.set_input(ADC, "ch0", 1.65);
    // MCP3008 single-ended channel 0: start bit, then SGL=1 D2..D0=000, then 8 clocks.
    let reply =
        command(&mut client, "adc", "x1", r#"{"v":1,"id":"$ID","action":"raw_transfer","args":{"data":"018000"}}"#)
            .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let hex = reply["values"]["data"]["value"].as_str().unwrap();
    assert_eq!(hex.len(), 6, "{reply}");
    let bytes: Vec<u8> = (0..3).map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap()).collect();
    let raw = (u16::from(bytes[1] & 0b11) << 8) | u16::from(bytes[2]);
    assert!((i32::from(raw) - 512).abs() <= 1, "raw {raw} from {hex}");

    // The thermocouple amplifier is not marked raw = true in the board file.
    let reply =
        command(&mut client, "oven", "x2", r#"{"v":1,"id":"$ID","action":"raw_transfer","args":{"data":"00000000"}}"#)
            .await;
    assert_eq!(reply["error"]["kind"], "not_allowed", "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("raw = true"), "{reply}");

    // Length-limited and hex only.
    let long = format!(r#"{{"v":1,"id":"$ID","action":"raw_transfer","args":{{"data":"{}"}}}}"#, "00".repeat(257));
    let reply = command(&mut client, "adc", "x3", &long).await;
    assert_eq!(reply["error"]["kind"], "invalid_argument", "{reply}");
    assert!(reply["error"]["expected"].as_str().unwrap().contains("1 to 256 bytes"), "{reply}");
    let reply =
        command(&mut client, "adc", "x4", r#"{"v":1,"id":"$ID","action":"raw_transfer","args":{"data":"xyz"}}"#).await;
    assert_eq!(reply["error"]["field"], "args.data", "{reply}");
    gateway.stop().await;
}

/// Home Assistant discovery: output pins are switches whose payloads are valid commands;
/// input pins are binary sensors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expander_outputs_are_home_assistant_switches() {
    let broker = test_support::Broker::start();
    let mut app = test_support::Client::connect(broker.address(), "home-assistant").await;
    app.subscribe("homeassistant/#").await;
    let text = crate::board_text(broker.address()).replace("[gateway]", "[homeassistant]\nenabled = true\n\n[gateway]");
    let gateway = crate::Gateway::start_board(&text);
    let switch = app.seen_or_wait("homeassistant/switch/busgate_test_spi_spi0_io/gpa5/config").await.json();
    let input = app.seen_or_wait("homeassistant/binary_sensor/busgate_test_spi_spi0_io/gpb5/config").await.json();
    assert_eq!(input["value_template"], "{{ 'ON' if value_json['values']['gpb5']['value'] else 'OFF' }}");
    app.subscribe("busgate/test/#").await;
    app.publish(switch["command_topic"].as_str().unwrap(), switch["payload_on"].as_str().unwrap()).await;
    let reply = app.wait_on(&crate::topic("io", "reply")).await.json();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(gateway.bus.inspect(IO, "gpa5"), Some(1.0));
    gateway.stop().await;
}
