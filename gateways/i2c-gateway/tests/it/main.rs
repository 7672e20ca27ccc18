//! End to end: the I2C gateway on mock buses against a real broker on a free loopback port.
//!
//! The gateway runs in-process (so tests can reach the simulated chips and inject faults);
//! the broker runs as its own process (so tests can kill it).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod broker_restart;
mod commands;
mod credentials;
mod faults;
mod homeassistant;
mod interop;
mod plan;
mod python;
mod readings;
mod sim;
mod systemd;

use std::net::SocketAddr;
use std::path::Path;

use buses::MockI2cBus;
use runtime::Counters;
use test_support::{Client, Received};

/// Addresses of the simulated chips on the test board.
pub const BME280: u8 = 0x76;
pub const INA219: u8 = 0x40;
pub const PCA9685: u8 = 0x41;

/// The test board: three chips on one mocked bus, polled quickly, short backoffs.
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
name = "i2c1"
kind = "i2c"
mock = true

[[device]]
name = "ambient"
bus = "i2c1"
driver = "bme280"
address = 0x76
poll_ms = 40

[[device]]
name = "supply"
bus = "i2c1"
driver = "ina219"
address = 0x40
poll_ms = 40

[[device]]
name = "leds"
bus = "i2c1"
driver = "pca9685"
address = 0x41
poll_ms = 100
"#
    )
}

/// A gateway running in-process with its mock bus.
pub struct Gateway {
    pub bus: MockI2cBus,
    running: test_support::gateway::Running,
}

impl Gateway {
    pub fn start(broker: SocketAddr) -> Gateway {
        Gateway::start_with(broker, |_| {})
    }

    pub fn start_with(broker: SocketAddr, adjust: impl FnOnce(&mut runtime::Settings)) -> Gateway {
        Gateway::start_board(&board_text(broker), adjust)
    }

    /// Starts a gateway for any board text; `bus` is a detached mock when the board has none.
    pub fn start_board(text: &str, adjust: impl FnOnce(&mut runtime::Settings)) -> Gateway {
        let board = board::Board::parse(text, Path::new("test.toml")).unwrap();
        let mut plan = i2c_gateway::plan(&board, true).unwrap();
        adjust(&mut plan.settings);
        let bus = plan.mocks.get("i2c1").cloned().unwrap_or_default();
        Gateway { bus, running: test_support::gateway::Running::start(plan.settings, plan.buses) }
    }

    /// Stops the gateway cleanly and returns its counters.
    pub async fn stop(self) -> Counters {
        self.running.stop().await
    }
}

pub fn topic(device: &str, leaf: &str) -> String {
    format!("busgate/test/i2c/i2c1/{device}/{leaf}")
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
