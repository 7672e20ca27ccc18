//! Bus faults: bus-off, error-passive, a full transmit queue and the interface going away are
//! shown on the bus's availability and state topics, answered in replies, and recovered from.

use super::*;

async fn availability(client: &mut Client, state: &str) -> serde_json::Value {
    let message = client.wait_for(|m| m.topic == topic("bus", "availability") && json(m)["state"] == state).await;
    message.check_schema("availability.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_off_and_recovery_through_the_sim_topic() {
    let (_broker, mut client, gateway) = setup().await;
    let sim = |action: &str| format!(r#"{{"v":1,"id":"$ID","action":"{action}"}}"#);
    let reply = client.command(&topic("bus", "sim"), &topic("bus", "reply"), "off", &sim("bus_off")).await;
    assert_eq!(reply["ok"], true);
    let offline = availability(&mut client, "offline").await;
    assert_eq!(offline["reason"], "bus-off");
    let state = client.wait_for(|m| m.topic == topic("bus", "state") && json(m)["state"] == "bus_off").await;
    state.check_schema("can-bus.json");
    let reply = command(&mut client, "Command", "c", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":1}}"#).await;
    assert_eq!((reply["ok"].clone(), reply["error"]["kind"].clone()), (false.into(), "bus_error".into()));
    assert_eq!(reply["error"]["message"], "the controller is bus-off");

    client.command(&topic("bus", "sim"), &topic("bus", "reply"), "on", &sim("recover")).await;
    availability(&mut client, "online").await;
    let reply = command(&mut client, "Command", "c2", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":1}}"#).await;
    assert_eq!(reply["ok"], true);

    client.command(&topic("bus", "sim"), &topic("bus", "reply"), "p", &sim("error_passive")).await;
    let passive = availability(&mut client, "online").await;
    assert_eq!(passive["reason"], "error-passive");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_transmit_queue_is_answered_not_waited_for() {
    let (_broker, mut client, gateway) = setup().await;
    gateway.bus.set_transmit_full(true);
    let reply = command(&mut client, "Command", "c", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":1}}"#).await;
    assert_eq!(reply["error"]["kind"], "unavailable");
    assert_eq!(reply["error"]["message"], "no buffer space: the transmit queue is full");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_survives_the_interface_going_away_and_reopens_it() {
    let (_broker, mut client, gateway) = setup().await;
    gateway.bus.set_state(buses::can::BusState::Down);
    let offline = availability(&mut client, "offline").await;
    assert!(offline["reason"].as_str().unwrap().contains("down or gone"), "{offline}");
    let reply = command(&mut client, "Command", "c", r#"{"v":1,"id":"$ID","action":"send","args":{"Mode":1}}"#).await;
    assert_eq!(reply["error"]["kind"], "device_offline");

    gateway.bus.set_state(buses::can::BusState::ErrorActive);
    availability(&mut client, "online").await;
    let state = client.wait_for(|m| m.topic == topic("bus", "state") && json(m)["reopened"] == 1).await;
    assert_eq!(json(&state)["state"], "error_active");
    // Frames flow again.
    let ecu = gateway.node();
    ecu.send_now(&CanFrame::classic(0x123, false, &[0xa0, 0x0f, 0x14, 0x01, 0, 0, 0, 0]).unwrap()).unwrap();
    let engine = client.wait_on(&topic("Engine", "state")).await;
    assert_eq!(json(&engine)["signals"]["Speed"]["value"], 1000.0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_lost_by_a_slow_gateway_are_counted() {
    let (_broker, mut client, gateway) = setup().await;
    let ecu = gateway.node();
    // Far more than the mock bus holds for a node that does not read (8192) in one burst,
    // without yielding: the gateway cannot keep up and must count the loss.
    for i in 0..20_000u32 {
        ecu.send_now(&CanFrame::classic(0x7FF, false, &i.to_le_bytes()).unwrap()).unwrap();
    }
    // Every frame is either received or counted as lost.
    let state = client
        .wait_for(|m| {
            let state = json(m);
            m.topic == topic("bus", "state")
                && state["rx_frames"].as_u64().unwrap() + state["lost_frames"].as_u64().unwrap() == 20_000
        })
        .await;
    assert!(json(&state)["lost_frames"].as_u64().unwrap() > 0, "the burst overflowed the node's queue");
    gateway.stop().await;
}
