//! End to end: the SPI gateway on a mock bus against a real broker on a free loopback port.
//!
//! The gateway runs in-process (so tests can reach the simulated chips and inject faults);
//! the broker runs as its own process.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod commands;
mod faults;
mod plan;
mod readings;

use std::net::SocketAddr;
use std::path::Path;

use buses::MockSpiBus;
use runtime::Counters;
use test_support::{Client, Received};

/// Chip selects of the simulated chips on the test board.
pub const ADC: u8 = 0;
pub const THERMOCOUPLE: u8 = 1;
pub const IO: u8 = 2;

/// The test board: an ADC (raw transfers allowed), a thermocouple amplifier and an I/O
/// expander on one mocked SPI bus.
pub fn board_text(broker: SocketAddr) -> String {
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
name = "spi0"
kind = "spi"
mock = true

[[device]]
name = "adc"
bus = "spi0"
driver = "mcp3008"
chip_select = 0
poll_ms = 40
raw = true
[device.options]
vref = 3.3

[[device]]
name = "oven"
bus = "spi0"
driver = "max31855"
chip_select = 1
mode = 1
poll_ms = 40

[[device]]
name = "io"
bus = "spi0"
driver = "mcp23s17"
chip_select = 2
poll_ms = 100
[device.options]
outputs = 0x00FF
"#
    )
}

/// A gateway running in-process with its mock bus.
pub struct Gateway {
    pub bus: MockSpiBus,
    running: test_support::gateway::Running,
}

impl Gateway {
    pub fn start(broker: SocketAddr) -> Gateway {
        Gateway::start_board(&board_text(broker))
    }

    pub fn start_board(text: &str) -> Gateway {
        let board = board::Board::parse(text, Path::new("test.toml")).unwrap();
        let plan = spi_gateway::plan(&board, true).unwrap();
        let bus = plan.mocks["spi0"].clone();
        Gateway { bus, running: test_support::gateway::Running::start(plan.settings, plan.buses) }
    }

    pub async fn stop(self) -> Counters {
        self.running.stop().await
    }
}

pub fn topic(device: &str, leaf: &str) -> String {
    format!("busgate/test/spi/spi0/{device}/{leaf}")
}

pub fn json(message: &Received) -> serde_json::Value {
    message.json()
}

/// Validates a message against the checked-in JSON Schema `name`.
#[track_caller]
pub fn check_schema(name: &str, message: &Received) -> serde_json::Value {
    message.check_schema(name)
}

/// Sends a command to a test-board device and waits for the reply with its id.
pub async fn command(client: &mut Client, device: &str, id: &str, body: &str) -> serde_json::Value {
    client.command(&topic(device, "set"), &topic(device, "reply"), id, body).await
}

/// Starts a broker, a watching client subscribed to the test board, and the gateway, and
/// waits until every device is online.
pub async fn setup() -> (test_support::Broker, Client, Gateway) {
    let broker = test_support::Broker::start();
    let mut client = Client::connect(broker.address(), "watcher").await;
    client.subscribe("busgate/test/#").await;
    let gateway = Gateway::start(broker.address());
    for device in ["adc", "oven", "io"] {
        client.wait_for(|m| m.topic == topic(device, "availability") && json(m)["state"] == "online").await;
    }
    (broker, client, gateway)
}
