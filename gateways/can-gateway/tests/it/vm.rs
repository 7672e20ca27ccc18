//! The gateway on real SocketCAN: runs itself in a qemu VM booting Debian's kernel with a vcan
//! interface (see `test_support::vm`), with the broker binary beside it. Frames in, a command
//! out, and the interface going down, away and back. Skipped without qemu unless
//! BUSGATE_REQUIRE_VM is set, as in CI.

use buses::can::{CanPort, LinuxCan};
use test_support::vm::{self, VmSetup};

use super::*;

#[test]
fn the_gateway_on_vcan_decodes_sends_and_survives_the_interface_going_away() {
    let name = "vm::the_gateway_on_vcan_decodes_sends_and_survives_the_interface_going_away";
    let broker_binary = test_support::workspace_bin("broker");
    let setup = VmSetup { vcan: &["vcan0"], vcan_fd: true, binaries: &[&broker_binary], ..VmSetup::default() };
    vm::run_self_test(name, &setup, || {
        vm::guest_command(&["ip", "link", "set", "lo", "up"]);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async { tokio::time::timeout(test_support::TIMEOUT * 3, on_vcan()).await.unwrap() });
    });
}

async fn on_vcan() {
    // The gateway's log goes into the VM's output, shown when the test fails.
    let _ = tracing_subscriber::fmt().with_env_filter("info,rumqttc=warn").try_init();
    let broker = test_support::Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    // The guest has only the binaries: the DBC file comes inside this one.
    let dbc = test_support::temp_dir("vm-can").join("test.dbc");
    std::fs::write(&dbc, include_str!("../fixtures/test.dbc")).unwrap();
    let text = board_text(broker.address(), "interface = \"vcan0\"\nbitrate = 500000")
        .replace("mock = true", "mock = false")
        .replace("\"test.dbc\"", &format!("{dbc:?}"));
    let board = board::Board::parse(&text, Path::new(BOARD_PATH)).unwrap();
    let mut plan = can_gateway::plan(&board).unwrap();
    plan.settings.health_interval = Duration::from_millis(100);
    assert!(plan.mock("can0").is_none(), "SocketCAN, not the mock");
    let (stop, stopped) = oneshot::channel::<()>();
    let gateway = tokio::spawn(can_gateway::run(plan, can_gateway::Options::default(), async {
        let _ = stopped.await;
    }));
    let online = |m: &Received| m.topic == topic("bus", "availability") && json(m)["state"] == "online";
    client.wait_for(online).await;

    // A frame from another node on vcan0 is decoded and published.
    let mut ecu = LinuxCan::open("vcan0", true, &[]).unwrap();
    ecu.send(&CanFrame::classic(0x123, false, &[0xa0, 0x0f, 0x14, 0x01, 0, 0, 0, 0]).unwrap()).await.unwrap();
    let engine = client.wait_on(&topic("Engine", "state")).await;
    assert_eq!(json(&engine)["signals"]["Gear"]["label"], "R");

    // A command goes out on the wire, FD included.
    // (Not `command`: the schema files are not in the guest.)
    client.publish(&topic("Diag", "set"), r#"{"v":1,"id":"d","action":"send","args":{"Page":1,"Errors":5}}"#).await;
    let reply = client.wait_for(|m| m.topic == topic("Diag", "reply") && json(m)["id"] == "d").await;
    assert_eq!(json(&reply)["ok"], true, "{}", reply.text());
    let frame = loop {
        if let CanEvent::Frame { frame, .. } = ecu.recv().await.unwrap() {
            break frame;
        }
    };
    assert!(frame.is_fd() && frame.id() == 0x300 && frame.data()[..3] == [1, 5, 0]);

    // The interface goes down, then away; the gateway reports it and keeps going.
    vm::guest_command(&["ip", "link", "set", "vcan0", "down"]);
    let offline = |m: &Received| m.topic == topic("bus", "availability") && json(m)["state"] == "offline";
    client.wait_for(offline).await;
    vm::guest_command(&["ip", "link", "del", "vcan0"]);
    vm::guest_command(&["ip", "link", "add", "dev", "vcan0", "type", "vcan"]);
    vm::guest_command(&["ip", "link", "set", "vcan0", "mtu", "72"]);
    vm::guest_command(&["ip", "link", "set", "vcan0", "up"]);
    client.wait_for(online).await;
    let state = client.wait_for(|m| m.topic == topic("bus", "state") && json(m)["state"] == "error_active").await;
    assert_eq!(json(&state)["interface"], "vcan0");
    // Reopened once the interface was back up: no flapping while it was down or gone.
    assert_eq!(json(&state)["reopened"], 1, "{}", state.text());
    let mut ecu = LinuxCan::open("vcan0", true, &[]).unwrap();
    ecu.send(&CanFrame::classic(0x123, false, &[0, 0, 0xd8, 0xf3, 0, 0, 0, 0]).unwrap()).await.unwrap();
    client.wait_for(|m| m.topic == topic("Engine", "state") && json(m)["signals"]["Gear"]["label"] == "D").await;

    let _ = stop.send(());
    gateway.await.unwrap().unwrap();
}
