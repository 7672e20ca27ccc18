//! Commands: messages encoded from signal values and raw frames, sent on the bus and
//! acknowledged; malformed commands refused with a clear error while the gateway keeps running.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_reaches_the_bus_and_is_acknowledged() {
    let (_broker, mut client, gateway) = setup().await;
    let mut ecu = gateway.node();
    let reply =
        command(&mut client, "Command", "c1", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":"Boost"}}"#).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["device"], "Command");
    // Level was left out: it took its initial value (raw 20, 10 %), and the reply says so.
    assert_eq!(reply["note"], "signals not given took their initial values: Level");
    assert_eq!(reply["values"]["data"]["value"], "0214");
    let frame = next_frame(&mut ecu).await;
    assert_eq!((frame.id(), frame.data()), (0x200, &[0x02, 0x14][..]));

    let reply =
        command(&mut client, "Command", "c2", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":1,"Level":55.5}}"#)
            .await;
    assert_eq!((reply["ok"].clone(), reply.get("note").cloned()), (serde_json::json!(true), None));
    assert_eq!(next_frame(&mut ecu).await.data(), &[0x01, 111]);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fd_message_goes_out_as_an_fd_frame() {
    let (_broker, mut client, gateway) = setup().await;
    let mut ecu = gateway.node();
    let reply =
        command(&mut client, "Diag", "d1", r#"{"v":1,"id":"$ID","action":"send","args":{"Page":1,"Errors":-7}}"#).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let frame = next_frame(&mut ecu).await;
    assert!(frame.is_fd());
    assert_eq!(frame.data().len(), 16);
    assert_eq!(&frame.data()[..3], &[0x01, 0xf9, 0xff]);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_frames_are_sent_by_command() {
    let (_broker, mut client, gateway) = setup().await;
    let mut ecu = gateway.node();
    let reply = command(
        &mut client,
        "bus",
        "r1",
        r#"{"v":1,"id":"$ID","action":"send_raw","args":{"id":419361022,"data":"cafe"}}"#,
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let frame = next_frame(&mut ecu).await;
    assert!(frame.is_extended(), "ids above 0x7FF are extended");
    assert_eq!((frame.id(), frame.data()), (0x18FE_F0FE, &[0xca, 0xfe][..]));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_get_clear_errors_and_the_gateway_keeps_running() {
    let (_broker, mut client, gateway) = setup().await;
    let cases = [
        (
            "Command",
            r#"{"v":1,"id":"$ID","action":"send","args":{"Level":120}}"#,
            "invalid_argument",
            "signal \"Level\": 120 is out of range: the DBC allows 0 to 100",
        ),
        (
            "Command",
            r#"{"v":1,"id":"$ID","action":"send","args":{"Lvl":1}}"#,
            "invalid_argument",
            "message \"Command\" has no signal \"Lvl\"; its signals are: Mode, Level",
        ),
        ("Command", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":"Turbo"}}"#, "invalid_argument", "Turbo"),
        ("Command", r#"{"v":1,"id":"$ID","action":"fire"}"#, "unknown_action", "unknown action \"fire\""),
        ("Command", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":[1]}}"#, "invalid_argument", "args.Mode"),
        ("Nope", r#"{"v":1,"id":"$ID","action":"send"}"#, "invalid_command", "no DBC message \"Nope\""),
        ("bus", r#"{"v":1,"id":"$ID","action":"send_raw","args":{"id":1,"data":"zz"}}"#, "invalid_argument", "data"),
        (
            "bus",
            r#"{"v":1,"id":"$ID","action":"send_raw","args":{"id":1,"data":"00112233445566778899"}}"#,
            "invalid_argument",
            "at most 8 data bytes",
        ),
    ];
    for (index, (device, body, kind, words)) in cases.into_iter().enumerate() {
        let id = format!("bad{index}");
        let reply = command(&mut client, device, &id, body).await;
        assert_eq!(reply["ok"], false, "{body}: {reply}");
        assert_eq!(reply["error"]["kind"], kind, "{body}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{body}: {message:?} should say {words:?}");
    }
    // Simulation controls belong to the bus, not to a message.
    let reply = client
        .command(&topic("Engine", "sim"), &topic("Engine", "reply"), "sim", r#"{"v":1,"id":"$ID","action":"bus_off"}"#)
        .await;
    assert_eq!(reply["error"]["kind"], "invalid_command");
    assert!(reply["error"]["message"].as_str().unwrap().ends_with("busgate/test/can/can0/bus/sim"), "{reply}");
    // Not JSON at all: refused without an id.
    client.publish(&topic("Command", "set"), "not json").await;
    let reply = client.wait_for(|m| m.topic == topic("Command", "reply") && json(m)["id"].is_null()).await;
    assert_eq!(json(&reply)["error"]["kind"], "invalid_json");
    // Still running: a good command works.
    let reply = command(&mut client, "Command", "ok", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":0}}"#).await;
    assert_eq!(reply["ok"], true);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_sends_need_permission_in_the_board_file() {
    let broker = test_support::Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let text = board_text(broker.address(), "").replace("raw_send = true", "raw_send = false");
    let gateway = Gateway::start_board(&text);
    // Online means subscribed: the gateway subscribes before it publishes.
    client.wait_for(|m| m.topic == topic("bus", "availability") && json(m)["state"] == "online").await;
    let reply =
        command(&mut client, "bus", "r", r#"{"v":1,"id":"$ID","action":"send_raw","args":{"id":1,"data":"00"}}"#).await;
    assert_eq!(reply["error"]["kind"], "not_allowed");
    assert!(reply["error"]["message"].as_str().unwrap().contains("raw_send = true"));
    gateway.stop().await;
}

/// Regression: a simulation control sent to a bus that is not a mock got no reply at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_control_on_a_real_bus_is_refused() {
    let broker = test_support::Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    // can1 is a SocketCAN interface that does not exist: the gateway keeps retrying it.
    let text = board_text(broker.address(), "")
        + "\n[[bus]]\nname = \"can1\"\nkind = \"can\"\ninterface = \"busgate-none\"\ndbc = [\"test.dbc\"]\n";
    let gateway = Gateway::start_board(&text);
    client.wait_for(|m| m.topic == topic("bus", "availability") && json(m)["state"] == "online").await;
    let reply = client
        .command(
            "busgate/test/can/can1/bus/sim",
            "busgate/test/can/can1/bus/reply",
            "s1",
            r#"{"v":1,"id":"$ID","action":"bus_off"}"#,
        )
        .await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["kind"], "not_allowed", "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("not a mock bus"), "{reply}");
    gateway.stop().await;
}
