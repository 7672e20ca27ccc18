//! Bosch BME280 temperature, humidity and pressure sensor on I2C, for the gateways.
//!
//! - [`Bme280Device`] adapts the community [`bme280`] driver to [`device::Device`];
//! - [`Bme280Sim`] is a register-level model of the chip for the mock I2C bus;
//! - [`DRIVER`], [`OPTIONS`], [`device()`] and [`simulated`] are what the gateway's driver
//!   registry calls.
//!
//! # Measurement cost
//!
//! The community driver's `measure()` starts a forced conversion and then sleeps a fixed
//! 40 ms. The adapter hands it a delay that reads the status register instead (see
//! `adapter.rs`), so a poll takes five bus transactions plus the real conversion time: about
//! 8 ms on a chip (9.3 ms at most, datasheet section 9.1, for the 1x oversampling the adapter
//! configures) and nothing on the simulated chip, which converts at once. Normal mode would
//! avoid the wait altogether, but the community driver offers no way to select it, and its
//! `measure()` soft-resets a chip it finds in normal mode.
//!
//! Datasheet references are to Bosch BST-BME280-DS002.

mod adapter;
mod compensation;
pub mod registers;
mod sim;

use device::{Device, DeviceError, I2cChip, Options};
use embedded_hal::i2c::I2c;

pub use crate::adapter::Bme280Device;
use crate::registers::{ADDRESS_PRIMARY, ADDRESS_SECONDARY};
pub use crate::sim::Bme280Sim;

/// The driver name board files use.
pub const DRIVER: &str = "bme280";

/// Options a board file may give this driver: none, the adapter applies the datasheet's
/// weather-monitoring settings.
pub const OPTIONS: &[&str] = &[];

/// The adapter for the BME280 at `address` on `i2c`, after checking the board file's options
/// and the address. Does not touch the bus; [`Device::init`] does.
pub fn device<I2C>(i2c: I2C, address: u8, options: &Options) -> Result<Box<dyn Device>, DeviceError>
where
    I2C: I2c + Send + 'static,
{
    check_options(options)?;
    if address != ADDRESS_PRIMARY && address != ADDRESS_SECONDARY {
        return Err(DeviceError::Config(format!(
            "address {address:#04x} is not a BME280 address: {ADDRESS_PRIMARY:#04x} (SDO to GND) or \
             {ADDRESS_SECONDARY:#04x} (SDO to VDDIO)"
        )));
    }
    Ok(Box::new(Bme280Device::new(i2c, address)))
}

/// A simulated BME280 for the mock bus at `address`. The options are those [`device()`] checks;
/// the simulated chip has no settings of its own.
pub fn simulated(address: u8, options: &Options) -> Box<dyn I2cChip> {
    let _ = options;
    Box::new(Bme280Sim::at(address))
}

fn check_options(options: &Options) -> Result<(), DeviceError> {
    options.check_known(DRIVER, OPTIONS)
}
