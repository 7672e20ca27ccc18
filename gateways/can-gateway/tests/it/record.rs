//! `--record`: what the gateway receives is written as a candump `-L` log that reads back.

use buses::can::replay::Recording;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_frames_are_recorded_as_a_candump_log() {
    let broker = test_support::Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let path = test_support::temp_dir("can-record").join("rx.log");
    let options = can_gateway::Options { record: Some(path.clone()), still: false };
    let gateway = Gateway::start_with(&board_text(broker.address(), ""), options);
    client.wait_for(|m| m.topic == topic("bus", "availability") && json(m)["state"] == "online").await;
    let ecu = gateway.node();
    let frames = [
        CanFrame::classic(0x123, false, &[0xa0, 0x0f, 0x14, 0x01, 0, 0, 0, 0]).unwrap(),
        CanFrame::fd(0x300, false, true, &[1; 16]).unwrap(),
        CanFrame::classic(0x1234_5678, true, &[9]).unwrap(),
    ];
    for frame in &frames {
        ecu.send_now(frame).unwrap();
    }
    // The unknown 29-bit frame is published raw last: every frame has been received by then.
    client.wait_on(&topic("id-12345678", "state")).await;
    gateway.stop().await;
    let recording = Recording::load(&path).unwrap();
    let recorded: Vec<CanFrame> = recording.frames.iter().map(|(_, frame)| *frame).collect();
    assert_eq!(recorded, frames);
    assert!(std::fs::read_to_string(&path).unwrap().lines().all(|l| l.contains(" can0 ")));
}
