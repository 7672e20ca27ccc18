//! The I2C drivers a board file can name. `cargo xtask new-driver` adds an entry here.

use buses::I2cHandle;
use device::{Device, DeviceError, I2cChip, Options};

/// Builds a driver's device on a bus handle at an address, with the board file's options.
pub type Build = fn(I2cHandle, u8, &Options) -> Result<Box<dyn Device>, DeviceError>;

/// One driver: how to build the device on a bus handle and how to simulate its chip.
pub struct Driver {
    /// The name board files use in `driver = "..."`.
    pub name: &'static str,
    /// Options the driver accepts in `[device.options]`.
    pub options: &'static [&'static str],
    pub build: Build,
    pub simulate: fn(u8, &Options) -> Box<dyn I2cChip>,
}

/// Every I2C driver, by name.
pub const DRIVERS: &[Driver] = &[
    Driver {
        name: drv_bme280::DRIVER,
        options: drv_bme280::OPTIONS,
        build: drv_bme280::device::<I2cHandle>,
        simulate: drv_bme280::simulated,
    },
    Driver {
        name: drv_ina219::DRIVER,
        options: drv_ina219::OPTIONS,
        build: drv_ina219::device::<I2cHandle>,
        simulate: drv_ina219::simulated,
    },
    Driver {
        name: drv_pca9685::DRIVER,
        options: drv_pca9685::OPTIONS,
        build: drv_pca9685::device::<I2cHandle>,
        simulate: drv_pca9685::simulated,
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
