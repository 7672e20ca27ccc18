//! NXP PCA9685 16-channel, 12-bit PWM controller (data sheet rev. 4) for the gateway's driver
//! registry.
//!
//! The chip is driven by the community [`pwm_pca9685`] crate; this crate adds the gateway
//! adapter ([`Pca9685Device`]) and a register-level simulated chip ([`Pca9685Sim`]) for the
//! mock bus.
//!
//! Board-file options:
//! - `frequency_hz` (default 1000): the PWM frequency, 24 to 1526 Hz with the internal
//!   oscillator (§7.3.5); the prescaler rounds it to 25 MHz / (4096 × (prescale + 1)).

mod adapter;
mod registers;
mod sim;

pub use adapter::Pca9685Device;
pub use sim::Pca9685Sim;

/// The driver name board files use.
pub const DRIVER: &str = "pca9685";

/// The option names this driver accepts in a board file's `[device.options]`.
pub const OPTIONS: &[&str] = &[registers::FREQUENCY_HZ];

/// Builds the adapter for a PCA9685 at `address` (0x40 to 0x7F, except the All Call address
/// 0x70).
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
    Ok(Box::new(Pca9685Device::new(i2c, address, options)?))
}

/// Builds a simulated PCA9685 at power-on. The chip has no inputs, so neither the address nor
/// the options change it (the driver sets the frequency through the registers).
pub fn simulated(address: u8, options: &device::Options) -> Box<dyn device::I2cChip> {
    let _ = (address, options);
    Box::new(Pca9685Sim::new())
}
