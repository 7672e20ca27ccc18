//! TI INA219 current/power monitor (datasheet SBOS448G) for the gateway's driver registry.
//!
//! The chip is driven by the community [`ina219`] crate; this crate adds the gateway adapter
//! ([`Ina219Device`]) and a register-level simulated chip ([`Ina219Sim`]) for the mock bus.
//!
//! Board-file options:
//! - `shunt_ohms` (default 0.1): the shunt resistor;
//! - `max_current_a` (default 3.2): the largest current to measure; it sets the calibration
//!   register (Current_LSB = max_current_a / 2^15, §8.5.1) and the narrowest PGA range that
//!   holds `max_current_a × shunt_ohms`, which must be more than 20.48 mV (else
//!   the calibration value overflows its register) and at most 320 mV.

mod adapter;
mod registers;
mod sim;

pub use adapter::Ina219Device;
pub use sim::Ina219Sim;

/// The driver name board files use.
pub const DRIVER: &str = "ina219";

/// The option names this driver accepts in a board file's `[device.options]`.
pub const OPTIONS: &[&str] = &[registers::SHUNT_OHMS, registers::MAX_CURRENT_A];

/// Builds the adapter for an INA219 at `address` (0x40 to 0x4F).
///
/// Validates the address and options but does not touch the bus; `init()` does.
pub fn device<I2C>(
    i2c: I2C,
    address: u8,
    options: &device::Options,
) -> Result<Box<dyn device::Device>, device::DeviceError>
where
    I2C: embedded_hal::i2c::I2c + Send + 'static,
    I2C::Error: std::fmt::Debug,
{
    Ok(Box::new(Ina219Device::new(i2c, address, options)?))
}

/// Builds a simulated INA219 whose shunt matches the board file's `shunt_ohms`.
pub fn simulated(address: u8, options: &device::Options) -> Box<dyn device::I2cChip> {
    // The simulated chip answers at whatever address the mock bus attaches it to.
    let _ = address;
    Box::new(sim::from_options(options))
}
