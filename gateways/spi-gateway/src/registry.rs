//! The SPI drivers a board file can name. `cargo xtask new-driver` adds an entry here.

use buses::SpiHandle;
use device::{Device, DeviceError, Options, SpiChip};

/// Builds a driver's device on a chip select's handle, with the board file's options.
pub type Build = fn(SpiHandle, &Options) -> Result<Box<dyn Device>, DeviceError>;

/// One driver: how to build the device and how to simulate its chip.
pub struct Driver {
    /// The name board files use in `driver = "..."`.
    pub name: &'static str,
    /// Options the driver accepts in `[device.options]`.
    pub options: &'static [&'static str],
    pub build: Build,
    pub simulate: fn(&Options) -> Box<dyn SpiChip>,
}

/// Every SPI driver, by name.
pub const DRIVERS: &[Driver] = &[
    Driver {
        name: drv_mcp3x08::MCP3008,
        options: drv_mcp3x08::OPTIONS,
        build: drv_mcp3x08::mcp3008::<SpiHandle>,
        simulate: drv_mcp3x08::simulated_mcp3008,
    },
    Driver {
        name: drv_mcp3x08::MCP3208,
        options: drv_mcp3x08::OPTIONS,
        build: drv_mcp3x08::mcp3208::<SpiHandle>,
        simulate: drv_mcp3x08::simulated_mcp3208,
    },
    Driver {
        name: drv_max31855::DRIVER,
        options: drv_max31855::OPTIONS,
        build: drv_max31855::device::<SpiHandle>,
        simulate: drv_max31855::simulated,
    },
    Driver {
        name: drv_mcp23s17::DRIVER,
        options: drv_mcp23s17::OPTIONS,
        build: drv_mcp23s17::device::<SpiHandle>,
        simulate: drv_mcp23s17::simulated,
    },
];

impl runtime::registry::DriverEntry for Driver {
    fn name(&self) -> &'static str {
        self.name
    }
    fn options(&self) -> &'static [&'static str] {
        self.options
    }
}
