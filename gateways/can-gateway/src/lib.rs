//! The CAN gateway: decodes every frame of a board's CAN buses with their DBC files and
//! publishes the messages as JSON by a publish policy, publishes unknown frames raw, and sends
//! frames on command (signals by name, or raw) with an acknowledgement for each.
//!
//! `plan` builds the buses from the board file (loading DBC files leniently: a messy entry is a
//! warning with its line), `run` runs them; `offline` is the `decode` subcommand.

use std::future::Future;

use anyhow::Context;
use board::{Board, BusKind};
use buses::can::{CanFilter, MockCanBus};
use runtime::{Counters, Settings};

mod command;
pub mod decoder;
pub mod gateway;
pub mod offline;
pub mod policy;
pub mod port;
mod publish;
pub mod sim;

pub use gateway::{BusPlan, CanLoop, Options};

/// A board's CAN buses, ready to run; the mock buses stay reachable for tests.
#[derive(Debug)]
pub struct Plan {
    pub settings: Settings,
    pub buses: Vec<BusPlan>,
    /// What loading the DBC files warned about, each naming file and line.
    pub warnings: Vec<String>,
}

impl Plan {
    /// The mock bus of a bus, for tests.
    pub fn mock(&self, bus: &str) -> Option<MockCanBus> {
        self.buses.iter().find(|b| b.name == bus).and_then(|b| b.mock.clone())
    }
}

/// Builds every CAN bus of `board`: loads its DBC files and checks that the message names of its
/// publish policies exist in them.
pub fn plan(board: &Board) -> anyhow::Result<Plan> {
    let mut buses = Vec::new();
    let mut warnings = Vec::new();
    for bus in board.buses_of(BusKind::Can) {
        let Some(can) = bus.can.clone() else { continue };
        let (decoder, bus_warnings) = decoder::Decoder::load(&bus.name, &can.dbc).map_err(|error| {
            board.error_at(can.dbc_span.clone(), format!("bus {:?}.dbc", bus.name), error.to_string())
        })?;
        warnings.extend(bus_warnings);
        for (name, policy) in &can.messages {
            if decoder.message_by_name(name).is_none() {
                let known: Vec<&str> = decoder.messages().iter().map(|m| m.name.as_str()).collect();
                return Err(board
                    .error_at(
                        policy.span.clone(),
                        format!("bus {:?}.messages.{name}", bus.name),
                        format!("no DBC message {name:?}; messages: {}", known.join(", ")),
                    )
                    .into());
            }
        }
        let filters: Vec<CanFilter> =
            can.filters.iter().map(|f| CanFilter { id: f.id, mask: f.mask, extended: f.extended }).collect();
        let (opener, mock) = if bus.mock {
            let mock = MockCanBus::new(&can.interface, can.fd);
            (port::Opener::Mock { bus: mock.clone(), filters }, Some(mock))
        } else {
            let bitrates = can.bitrate.map(|bitrate| buses::can::Bitrates { bitrate, data_bitrate: can.data_bitrate });
            (port::Opener::Linux { interface: can.interface.clone(), fd: can.fd, filters, bitrates }, None)
        };
        buses.push(BusPlan { name: bus.name.clone(), can, decoder, opener, mock });
    }
    let settings = Settings::from_board(board, BusKind::Can, env!("CARGO_PKG_VERSION"));
    Ok(Plan { settings, buses, warnings })
}

impl Plan {
    /// Starts the interface tasks: the gateway's loop, for [`runtime::cli::serve`] or
    /// [`runtime::shell::run`]. Must be called inside a tokio runtime.
    pub fn start(self, options: &Options) -> anyhow::Result<(Settings, CanLoop)> {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
        let gateway = CanLoop::start(&self.settings, self.buses, options)?;
        Ok((self.settings, gateway))
    }
}

/// Runs the gateway until `shutdown` completes.
pub async fn run(plan: Plan, options: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<Counters> {
    let (settings, gateway) = plan.start(&options)?;
    runtime::shell::run(&settings, gateway, shutdown).await.context("running the CAN gateway")
}
