//! The gateway's view of a MAX31855: two temperatures per poll, the chip's faults as errors.

use device::{Args, Description, Device, DeviceError, Kind, Options, Outcome, Quantity, Sample};
use embedded_hal::spi::{Operation, SpiDevice};

use crate::frame::{self, Reading};

/// A MAX31855 hosted by the gateway.
///
/// The chip only talks: every SPI transaction clocks one 32-bit frame out of it (section
/// "Serial Interface"), and chip select falling is what stops the running conversion and
/// latches the frame. So each reading is exactly one 4-byte read in one transaction, and the
/// driver never writes.
pub struct Max31855Device<SPI> {
    spi: SPI,
}

impl<SPI: SpiDevice> Max31855Device<SPI> {
    /// Checks the board file's options (the chip has none); does not touch the bus.
    pub fn new(spi: SPI, options: &Options) -> Result<Self, DeviceError> {
        crate::check_options(options)?;
        Ok(Self { spi })
    }

    /// Gives the bus back.
    pub fn destroy(self) -> SPI {
        self.spi
    }

    /// Reads and decodes one frame; faults and implausible frames are [`DeviceError::Chip`].
    fn read(&mut self) -> Result<Reading, DeviceError> {
        let mut bytes = [0; 4];
        self.spi.transaction(&mut [Operation::Read(&mut bytes)]).map_err(DeviceError::spi)?;
        // D31 comes first (Table 2).
        frame::decode(u32::from_be_bytes(bytes))
    }
}

impl<SPI: SpiDevice + Send> Device for Max31855Device<SPI> {
    fn describe(&self) -> Description {
        Description {
            model: "MAX31855",
            quantities: vec![
                Quantity {
                    name: "thermocouple",
                    unit: Some("°C"),
                    kind: Kind::Temperature,
                    description: "temperature at the thermocouple's hot junction, in steps of 0.25 °C",
                },
                Quantity {
                    name: "cold_junction",
                    unit: Some("°C"),
                    kind: Kind::Temperature,
                    description: "temperature of the converter itself (the cold junction), in steps of 0.0625 °C",
                },
            ],
            commands: Vec::new(),
        }
    }

    /// The chip needs no configuration; init reads one frame to check that a MAX31855 answers
    /// and that its thermocouple is connected.
    fn init(&mut self) -> Result<(), DeviceError> {
        self.read().map(drop)
    }

    fn poll(&mut self) -> Result<Vec<Sample>, DeviceError> {
        let reading = self.read()?;
        Ok(vec![Sample::new("thermocouple", reading.thermocouple), Sample::new("cold_junction", reading.cold_junction)])
    }

    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError> {
        let _ = args;
        Err(DeviceError::UnsupportedAction(action.to_owned()))
    }
}
