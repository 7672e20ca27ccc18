//! Maxim MAX31855 cold-junction compensated thermocouple-to-digital converter (data sheet
//! 19-5793) on SPI, for the gateways.
//!
//! - [`Max31855Device`] is the driver and its [`device::Device`] adapter: the chip is
//!   read-only, one 32-bit frame per SPI transaction, so there is no community driver to wrap;
//! - [`Max31855Sim`] models the chip's output frame for the mock SPI bus;
//! - [`DRIVER`], [`OPTIONS`], [`device()`] and [`simulated`] are what the gateway's driver
//!   registry calls.
//!
//! The chip has no settings: its thermocouple type is fixed by the part number (MAX31855K, J,
//! N, T, S, R or E), so board files give it no options.

mod adapter;
mod frame;
mod sim;

use device::{Device, DeviceError, Options, SpiChip};
use embedded_hal::spi::SpiDevice;

pub use crate::adapter::Max31855Device;
pub use crate::sim::Max31855Sim;

/// The driver name board files use.
pub const DRIVER: &str = "max31855";

/// Options a board file may give this driver: none (see the crate documentation).
pub const OPTIONS: &[&str] = &[];

/// The adapter for the MAX31855 behind `spi`, after checking the board file's options. Does
/// not touch the bus; [`Device::init`] does.
pub fn device<SPI>(spi: SPI, options: &Options) -> Result<Box<dyn Device>, DeviceError>
where
    SPI: SpiDevice + Send + 'static,
{
    Ok(Box::new(Max31855Device::new(spi, options)?))
}

/// A simulated MAX31855 for the mock bus: a thermocouple in an oven at 200 °C, the board at
/// 25 °C. The chip has no options to follow.
pub fn simulated(options: &Options) -> Box<dyn SpiChip> {
    let _ = options;
    Box::new(Max31855Sim::new())
}

/// Refuses every option: the chip has none.
fn check_options(options: &Options) -> Result<(), DeviceError> {
    options.check_known(DRIVER, OPTIONS).map_err(|error| match error {
        DeviceError::Config(message) => {
            DeviceError::Config(format!("{message}: the thermocouple type is fixed by the part number"))
        }
        other => other,
    })
}
