//! The I2C gateway: builds every I2C device of a board on a real or mock bus and runs them
//! with the gateway runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use board::{Board, BoardError, BusKind};
use buses::{I2cBus, MockI2cBus};
use runtime::{Bus, Hosted, PollLoop, RuntimeError, Settings};

pub mod registry;
pub mod sim;

/// The buses and devices of a board, ready to run; the mock buses stay reachable for tests.
#[derive(Debug)]
pub struct Plan {
    pub settings: Settings,
    pub buses: Vec<Bus>,
    /// Mock buses by bus name, for tests and fault injection.
    pub mocks: BTreeMap<String, MockI2cBus>,
}

/// Builds every I2C bus and device of `board`. Mock buses get live simulated chips (values
/// drift with time) unless `still` is set, which tests use to control every value.
pub fn plan(board: &Board, still: bool) -> Result<Plan, BoardError> {
    let mut buses = Vec::new();
    let mut mocks = BTreeMap::new();
    for bus in board.buses_of(BusKind::I2c) {
        let backend = match (&bus.path, bus.mock) {
            (Some(path), false) => I2cBus::Linux(path.clone()),
            _ => {
                let mock = if still { MockI2cBus::new() } else { MockI2cBus::live() };
                mocks.insert(bus.name.clone(), mock.clone());
                I2cBus::Mock(mock)
            }
        };
        let mut devices = Vec::new();
        for device in board.devices_on(&bus.name) {
            let field = |f: &str| format!("device[{}].{f}", device.index);
            let driver = runtime::registry::find(board, device, "I2C", registry::DRIVERS)?;
            let Some(address) = device.address else {
                return Err(board.error_at(
                    device.driver_span.clone(),
                    field("address"),
                    "an I2C device needs an address",
                ));
            };
            let sim: Option<Box<dyn runtime::SimControl>> = match &backend {
                I2cBus::Mock(mock) => {
                    mock.attach_boxed(address, (driver.simulate)(address, &device.options));
                    Some(Box::new(sim::I2cSim { bus: mock.clone(), address }))
                }
                I2cBus::Linux(_) => None,
            };
            let built = (driver.build)(backend.handle(), address, &device.options)
                .map_err(|error| board.error_at(device.options_span.clone(), field("options"), error.to_string()))?;
            devices.push(Hosted {
                name: device.name.clone(),
                poll_interval: Duration::from_millis(device.poll_ms),
                device: built,
                sim,
            });
        }
        if !devices.is_empty() {
            buses.push(Bus { name: bus.name.clone(), devices });
        }
    }
    let settings = Settings::from_board(board, BusKind::I2c, env!("CARGO_PKG_VERSION"));
    Ok(Plan { settings, buses, mocks })
}

impl Plan {
    /// Starts the bus threads: the gateway's loop, for [`runtime::cli::serve`] or
    /// [`runtime::shell::run`].
    pub fn start(self) -> Result<(Settings, PollLoop), RuntimeError> {
        let poll = PollLoop::start(&self.settings, self.buses)?;
        Ok((self.settings, poll))
    }
}
