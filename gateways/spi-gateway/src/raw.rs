//! Raw SPI transfers by command, for test apps bringing up new hardware.
//!
//! Every SPI device gets a `raw_transfer` action: a full-duplex transfer of the given bytes
//! within one chip-select assertion, answered with the bytes read. It bypasses the driver, so
//! the board file must allow it per device (`raw = true`); otherwise it is refused without
//! touching the bus.

use device::{Args, CommandSpec, Description, Device, DeviceError, Outcome, Param, ParamKind, Sample, Value};
use embedded_hal::spi::SpiDevice;

/// Longest raw transfer, in bytes.
pub const MAX_RAW_BYTES: usize = 256;

/// The action name.
pub const RAW_TRANSFER: &str = "raw_transfer";

/// A driver's device plus the raw transfer command on a second handle to its chip select.
pub struct RawAccess<SPI> {
    inner: Box<dyn Device>,
    /// A second handle on the same chip select; the bus thread runs one operation at a time,
    /// so it never interleaves with the driver's transfers.
    spi: SPI,
    allowed: bool,
    device: String,
}

impl<SPI: SpiDevice + Send + 'static> RawAccess<SPI> {
    pub fn new(inner: Box<dyn Device>, spi: SPI, allowed: bool, device: &str) -> Self {
        Self { inner, spi, allowed, device: device.to_owned() }
    }
}

impl<SPI: SpiDevice + Send + 'static> Device for RawAccess<SPI> {
    fn describe(&self) -> Description {
        let mut description = self.inner.describe();
        description.commands.push(CommandSpec {
            action: RAW_TRANSFER,
            params: vec![Param {
                name: "data",
                kind: ParamKind::Hex { max_bytes: MAX_RAW_BYTES },
                required: true,
                description: "bytes to clock out, in hex; as many bytes are read back",
            }],
            description: "full-duplex raw transfer within one chip select (needs raw = true in the board file)",
        });
        description
    }

    fn init(&mut self) -> Result<(), DeviceError> {
        self.inner.init()
    }

    fn outputs(&self) -> Vec<device::Output> {
        self.inner.outputs()
    }

    fn poll(&mut self) -> Result<Vec<Sample>, DeviceError> {
        self.inner.poll()
    }

    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError> {
        if action != RAW_TRANSFER {
            return self.inner.command(action, args);
        }
        if !self.allowed {
            return Err(DeviceError::NotAllowed(format!(
                "raw transfers to device {:?} are not allowed; set raw = true for it in the board file",
                self.device
            )));
        }
        let mut buffer = args.bytes("data")?.to_vec();
        self.spi.transfer_in_place(&mut buffer).map_err(DeviceError::spi)?;
        Ok(Outcome { values: vec![Sample::new("data", Value::Bytes(buffer))], note: None })
    }
}
