//! Microchip MCP23S17 16-bit I/O expander on SPI (data sheet DS20001952C), for the gateways.
//!
//! - [`Mcp23s17Device`] is the driver and its [`device::Device`] adapter: sixteen pins, each an
//!   input or an output as the board file says, read on every poll and written by commands;
//! - [`Mcp23s17Sim`] is a register-level model of the chip for the mock SPI bus;
//! - [`DRIVER`], [`OPTIONS`], [`device()`] and [`simulated`] are what the gateway's driver
//!   registry calls.
//!
//! Board-file options:
//! - `hardware_address` (0 to 7, default 0): how pins A2..A0 are strapped. The driver sets
//!   IOCON.HAEN so that the chip only answers at this address, which is then checked at every
//!   init;
//! - `outputs` (0 to 0xFFFF, default 0): a mask of the pins the driver drives, bit n for GPAn
//!   and bit 8 + n for GPBn (TOML takes `outputs = 0x00FF`). Every other pin stays an input.
//!   The default leaves all sixteen as inputs, the chip's power-on state, so that a board
//!   file never drives a pin it does not name: an output fighting whatever drives that pin
//!   could damage either side.
//!
//! # Why not the `port-expander` crate
//!
//! `port-expander` 0.6 drives the MCP23S17 over an embedded-hal `SpiDevice`, but it does not
//! fit an adapter that lives as long as the gateway (see `adapter.rs` for the details): its
//! SPI constructor is fixed to hardware address 0 and never sets HAEN; its pins borrow the
//! expander, so every command would rebuild them and repeat an IODIR read-modify-write; its
//! output cache starts at 0 and cannot be loaded from the chip, so the first command after a
//! gateway restart would drive the other outputs of the port low; and it has no way to write
//! a runtime-chosen set of pins at once, which `set_port` needs. The register access here is a
//! few dozen lines.

mod adapter;
mod registers;
mod sim;

use device::{Device, DeviceError, Options, SpiChip};
use embedded_hal::spi::SpiDevice;

pub use crate::adapter::Mcp23s17Device;
pub use crate::sim::Mcp23s17Sim;

/// The driver name board files use.
pub const DRIVER: &str = "mcp23s17";

/// The option names this driver accepts in a board file's `[device.options]`.
pub const OPTIONS: &[&str] = &[registers::HARDWARE_ADDRESS, registers::OUTPUTS];

/// The adapter for the MCP23S17 behind `spi`, after checking the board file's options. Does
/// not touch the bus; [`Device::init`] does.
pub fn device<SPI>(spi: SPI, options: &Options) -> Result<Box<dyn Device>, DeviceError>
where
    SPI: SpiDevice + Send + 'static,
{
    Ok(Box::new(Mcp23s17Device::new(spi, options)?))
}

/// A simulated MCP23S17 at power-on, its A2..A0 pins strapped to the `hardware_address`
/// option. Options that [`device()`] would refuse give the default address 0.
pub fn simulated(options: &Options) -> Box<dyn SpiChip> {
    let hardware_address = registers::Settings::from_options(options).map_or(0, |settings| settings.hardware_address);
    Box::new(Mcp23s17Sim::new(hardware_address))
}
