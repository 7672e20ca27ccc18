//! Microchip MCP3008 (10-bit, DS21295) and MCP3208 (12-bit, DS21298) 8-channel SPI ADCs for the
//! gateway's driver registry.
//!
//! The crates.io drivers for these chips are still on embedded-hal 0.2, so this crate has its
//! own: [`Mcp3x08Device`] converts one input per embedded-hal `SpiDevice` transaction (a 3-byte
//! `transfer_in_place` framed as in §6.1, Figure 6-1 of either datasheet) and is also the
//! gateway adapter; [`Mcp3x08Sim`] is a bit-level simulated chip for the mock SPI bus.
//!
//! Board-file options:
//! - `vref` (default 3.3): the voltage on the VREF pin in volts, more than 0 and at most 5.5
//!   (VREF may not exceed VDD, whose maximum is 5.5 V; accuracy is specified from 0.25 V);
//! - `inputs` (default `"single"`): `"single"` polls CH0 to CH7 against AGND, `"differential"`
//!   polls the eight pseudo-differential pairs of Table 5-2 (`ch0_ch1` is CH0 minus CH1).
//!
//! Bus settings in the board file: SPI mode 0 or 3 (the chips support modes 0,0 and 1,1, §6.1),
//! 8 bits per word, and a clock the chip keeps up with at its supply voltage (MCP3008: 1.35 MHz
//! at 2.7 V, 3.6 MHz at 5 V; MCP3208: 1 MHz at 2.7 V, 2 MHz at 5 V).
//!
//! SPI has no acknowledge, so an absent chip is noticed by what MISO reads: every conversion is
//! checked for the low null bit that precedes the data (§5.0), which a floating line pulled up
//! or a MISO stuck high violates. A MISO pulled or stuck low reads as a chip converting 0 V on
//! every input and cannot be told apart from one.

mod adapter;
mod protocol;
mod settings;
mod sim;

pub use adapter::Mcp3x08Device;
pub use protocol::{InputMode, Model};
pub use sim::Mcp3x08Sim;

/// The driver name board files use for the 10-bit MCP3008.
pub const MCP3008: &str = "mcp3008";

/// The driver name board files use for the 12-bit MCP3208.
pub const MCP3208: &str = "mcp3208";

/// The option names both drivers accept in a board file's `[device.options]`.
pub const OPTIONS: &[&str] = &[settings::VREF, settings::INPUTS];

/// Builds the adapter for an MCP3008 on its chip select.
///
/// Validates the options but does not touch the bus; `init()` does.
pub fn mcp3008<SPI>(spi: SPI, options: &device::Options) -> Result<Box<dyn device::Device>, device::DeviceError>
where
    SPI: embedded_hal::spi::SpiDevice + Send + 'static,
{
    Ok(Box::new(Mcp3x08Device::new(spi, Model::Mcp3008, options)?))
}

/// Builds the adapter for an MCP3208 on its chip select.
///
/// Validates the options but does not touch the bus; `init()` does.
pub fn mcp3208<SPI>(spi: SPI, options: &device::Options) -> Result<Box<dyn device::Device>, device::DeviceError>
where
    SPI: embedded_hal::spi::SpiDevice + Send + 'static,
{
    Ok(Box::new(Mcp3x08Device::new(spi, Model::Mcp3208, options)?))
}

/// Builds a simulated MCP3008 whose reference voltage is the board file's `vref`.
pub fn simulated_mcp3008(options: &device::Options) -> Box<dyn device::SpiChip> {
    Box::new(sim::from_options(Model::Mcp3008, options))
}

/// Builds a simulated MCP3208 whose reference voltage is the board file's `vref`.
pub fn simulated_mcp3208(options: &device::Options) -> Box<dyn device::SpiChip> {
    Box::new(sim::from_options(Model::Mcp3208, options))
}
