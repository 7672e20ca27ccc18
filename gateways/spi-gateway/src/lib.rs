//! The SPI gateway: builds every SPI device of a board on spidev files or a mock bus and runs
//! them with the gateway runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use board::{Board, BoardError, BusKind};
use buses::{MockSpiBus, SpiBus, SpiConfig};
use runtime::{Bus, Hosted, PollLoop, RuntimeError, Settings};

pub mod raw;
pub mod registry;
pub mod sim;

/// The buses and devices of a board, ready to run; the mock buses stay reachable for tests.
#[derive(Debug)]
pub struct Plan {
    pub settings: Settings,
    pub buses: Vec<Bus>,
    /// Mock buses by bus name, for tests and fault injection.
    pub mocks: BTreeMap<String, MockSpiBus>,
}

/// Builds every SPI bus and device of `board`. Mock buses get live simulated chips (values
/// drift with time) unless `still` is set, which tests use to control every value.
pub fn plan(board: &Board, still: bool) -> Result<Plan, BoardError> {
    let mut buses = Vec::new();
    let mut mocks = BTreeMap::new();
    for bus in board.buses_of(BusKind::Spi) {
        let backend = match (&bus.path, bus.mock) {
            (Some(path), false) => SpiBus::Linux { prefix: path.clone() },
            _ => {
                let mock = if still { MockSpiBus::new() } else { MockSpiBus::live() };
                mocks.insert(bus.name.clone(), mock.clone());
                SpiBus::Mock(mock)
            }
        };
        let mut devices = Vec::new();
        for device in board.devices_on(&bus.name) {
            let field = |f: &str| format!("device[{}].{f}", device.index);
            let driver = runtime::registry::find(board, device, "SPI", registry::DRIVERS)?;
            let Some(spi) = device.spi else {
                return Err(board.error_at(
                    device.driver_span.clone(),
                    field("chip_select"),
                    "an SPI device needs a chip_select",
                ));
            };
            let config = SpiConfig { mode: spi.mode, max_speed_hz: spi.max_speed_hz, bits_per_word: spi.bits_per_word };
            let sim: Option<Box<dyn runtime::SimControl>> = match &backend {
                SpiBus::Mock(mock) => {
                    mock.attach_boxed(spi.chip_select, (driver.simulate)(&device.options));
                    Some(Box::new(sim::SpiSim { bus: mock.clone(), chip_select: spi.chip_select }))
                }
                SpiBus::Linux { .. } => None,
            };
            let built = (driver.build)(backend.handle(spi.chip_select, config), &device.options)
                .map_err(|error| board.error_at(device.options_span.clone(), field("options"), error.to_string()))?;
            let raw = backend.handle(spi.chip_select, config);
            devices.push(Hosted {
                name: device.name.clone(),
                poll_interval: Duration::from_millis(device.poll_ms),
                device: Box::new(raw::RawAccess::new(built, raw, spi.raw, &device.name)),
                sim,
            });
        }
        if !devices.is_empty() {
            buses.push(Bus { name: bus.name.clone(), devices });
        }
    }
    let settings = Settings::from_board(board, BusKind::Spi, env!("CARGO_PKG_VERSION"));
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
