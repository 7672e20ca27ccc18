//! End to end: the CAN gateway on a mock bus against a real broker on a free loopback port.
//!
//! The gateway runs in-process, so tests reach its mock bus as another node (a simulated ECU or
//! a test harness) and inject faults; the broker runs as its own process.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod commands;
mod faults;
mod offline;
mod pipeline;
mod plan;
mod record;
mod vm;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use buses::can::{CanEvent, CanFrame, CanPort, MockCanBus, MockCanNode};
use runtime::Counters;
use test_support::{Client, Received};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The test board: one mocked CAN FD bus with the test DBC, every frame published, unknown
/// frames raw, raw sends allowed. `extra` is appended to the bus table.
pub fn board_text(broker: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[board]
name = "test"
target = "x86_64-unknown-linux-gnu"

[broker.listeners.local]
address = "{broker}"

[gateway]
reconnect_min_ms = 20
reconnect_max_ms = 200
retry_min_ms = 20
retry_max_ms = 100

[[bus]]
name = "can0"
kind = "can"
mock = true
fd = true
dbc = ["test.dbc"]
raw = "unknown"
raw_send = true
{extra}
[bus.publish]
mode = "every"
heartbeat_ms = 0
"#
    )
}

/// The board file's path: relative paths in it resolve against `tests/fixtures`.
pub const BOARD_PATH: &str = "tests/fixtures/board.toml";

/// A gateway running in-process with its mock bus.
pub struct Gateway {
    pub bus: MockCanBus,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<Counters>>,
}

impl Gateway {
    pub fn start(broker: SocketAddr) -> Gateway {
        Gateway::start_board(&board_text(broker, ""))
    }

    pub fn start_board(text: &str) -> Gateway {
        Gateway::start_with(text, can_gateway::Options::default())
    }

    pub fn start_with(text: &str, options: can_gateway::Options) -> Gateway {
        let board = board::Board::parse(text, Path::new(BOARD_PATH)).unwrap();
        let mut plan = can_gateway::plan(&board).unwrap();
        plan.settings.health_interval = Duration::from_millis(100);
        let bus = plan.mock("can0").unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(can_gateway::run(plan, options, async {
            let _ = stopped.await;
        }));
        Gateway { bus, stop: Some(stop), task }
    }

    /// Another node on the gateway's bus.
    pub fn node(&self) -> MockCanNode {
        self.bus.open(&[]).unwrap()
    }

    pub async fn stop(mut self) -> Counters {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(test_support::TIMEOUT, &mut self.task).await.unwrap().unwrap().unwrap()
    }
}

pub fn topic(device: &str, leaf: &str) -> String {
    format!("busgate/test/can/can0/{device}/{leaf}")
}

pub fn json(message: &Received) -> serde_json::Value {
    message.json()
}

/// Sends a command and waits for the reply with its id.
pub async fn command(client: &mut Client, device: &str, id: &str, body: &str) -> serde_json::Value {
    client.command(&topic(device, "set"), &topic(device, "reply"), id, body).await
}

/// Starts a broker, a watching client subscribed to the test board, and the gateway, and waits
/// until the bus is online.
pub async fn setup() -> (test_support::Broker, Client, Gateway) {
    let broker = test_support::Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(broker.address());
    client.wait_for(|m| m.topic == topic("bus", "availability") && json(m)["state"] == "online").await;
    (broker, client, gateway)
}

/// The next frame another node sees on the bus.
pub async fn next_frame(node: &mut MockCanNode) -> CanFrame {
    let wait = async {
        loop {
            if let CanEvent::Frame { frame, .. } = node.recv().await.unwrap() {
                return frame;
            }
        }
    };
    tokio::time::timeout(test_support::TIMEOUT, wait).await.expect("a frame on the bus")
}
