//! The MCP3x08 driver and its gateway adapter: describe, init, poll and the `read` command.

use device::{
    Args, CommandSpec, Description, Device, DeviceError, Kind, Options, Outcome, Param, ParamKind, Quantity, Sample,
};
use embedded_hal::spi::SpiDevice;

use crate::protocol::{self, InputMode, Model};
use crate::settings::Settings;

/// The one command the adapter accepts.
const READ: &str = "read";
/// Its parameters.
const CHANNEL: &str = "channel";
const DIFFERENTIAL: &str = "differential";

/// An MCP3008 or MCP3208 on one chip select.
///
/// Each conversion is one `SpiDevice` transaction of three bytes, so chip select frames every
/// conversion, as the chip needs: it starts a conversion only at the first start bit after CS
/// falls (§5.0).
pub struct Mcp3x08Device<SPI> {
    spi: SPI,
    model: Model,
    settings: Settings,
}

impl<SPI> Mcp3x08Device<SPI> {
    /// Validates the options; does not touch the bus (init() does).
    pub fn new(spi: SPI, model: Model, options: &Options) -> Result<Self, DeviceError> {
        let settings = Settings::from_options(model, options)?;
        Ok(Self { spi, model, settings })
    }

    pub fn model(&self) -> Model {
        self.model
    }

    /// The reference voltage from the options, in volts.
    pub fn vref(&self) -> f64 {
        self.settings.vref
    }

    /// How poll() converts the inputs, from the options.
    pub fn inputs(&self) -> InputMode {
        self.settings.inputs
    }

    /// Gives the bus back.
    pub fn destroy(self) -> SPI {
        self.spi
    }
}

impl<SPI: SpiDevice> Mcp3x08Device<SPI> {
    /// Converts one input and returns the output code (0 to 1023 or 4095).
    ///
    /// `channel` is CH0 to CH7, or in [`InputMode::Differential`] the IN+ input of its pair.
    /// Fails with a [`DeviceError::Chip`] when MISO reads all 1s or the null bit is 1, since
    /// a present chip never sends either.
    pub fn read_raw(&mut self, channel: u8, mode: InputMode) -> Result<u16, DeviceError> {
        if channel >= protocol::CHANNELS {
            return Err(no_such_channel(self.model, i64::from(channel)));
        }
        let mut frame = protocol::request(self.model, channel, mode);
        self.spi.transfer_in_place(&mut frame).map_err(DeviceError::spi)?;
        protocol::decode(self.model, frame)
    }

    /// Converts one input and returns volts (Equation 4-2, rounded to 1 µV).
    pub fn read_volts(&mut self, channel: u8, mode: InputMode) -> Result<f64, DeviceError> {
        let code = self.read_raw(channel, mode)?;
        Ok(protocol::volts(self.model, code, self.settings.vref))
    }

    /// One conversion as its two samples: volts and the raw code.
    fn conversion(&mut self, channel: u8, mode: InputMode) -> Result<[Sample; 2], DeviceError> {
        let code = self.read_raw(channel, mode)?;
        let [volts_name, raw_name] = protocol::names(channel, mode);
        Ok([
            Sample::new(volts_name, protocol::volts(self.model, code, self.settings.vref)),
            Sample::new(raw_name, i64::from(code)),
        ])
    }
}

impl<SPI> Device for Mcp3x08Device<SPI>
where
    SPI: SpiDevice + Send,
{
    fn describe(&self) -> Description {
        let mode = self.settings.inputs;
        let volts_description = match mode {
            InputMode::Single => "input voltage against AGND, 0 to vref",
            InputMode::Differential => {
                "pseudo-differential voltage, first input (IN+) minus second (IN-); 0 when IN+ is at or below IN-"
            }
        };
        let raw_description = match self.model {
            Model::Mcp3008 => "output code of the same conversion, 0 to 1023 (volts = code × vref / 1024)",
            Model::Mcp3208 => "output code of the same conversion, 0 to 4095 (volts = code × vref / 4096)",
        };
        let quantities = (0..protocol::CHANNELS)
            .flat_map(|channel| {
                let [volts_name, raw_name] = protocol::names(channel, mode);
                [
                    Quantity { name: volts_name, unit: Some("V"), kind: Kind::Voltage, description: volts_description },
                    Quantity { name: raw_name, unit: None, kind: Kind::Other, description: raw_description },
                ]
            })
            .collect();
        Description {
            model: self.model.name(),
            quantities,
            commands: vec![CommandSpec {
                action: READ,
                params: vec![
                    Param {
                        name: CHANNEL,
                        kind: ParamKind::Int { min: 0, max: i64::from(protocol::CHANNELS - 1) },
                        required: true,
                        description: "the input CH0 to CH7; with differential, the IN+ input of its pair",
                    },
                    Param {
                        name: DIFFERENTIAL,
                        kind: ParamKind::Bool,
                        required: false,
                        description: "convert channel minus its partner (CH0-CH1, CH1-CH0, CH2-CH3 …) instead of \
                                      channel against AGND; default false",
                    },
                ],
                description: "converts one input now and returns its voltage and output code",
            }],
        }
    }

    /// Probes with one conversion: SPI has no acknowledge, so the answer's null bit is the only
    /// sign of a chip. A MISO held low passes (it reads as 0 V), see the crate documentation.
    fn init(&mut self) -> Result<(), DeviceError> {
        self.read_raw(0, self.settings.inputs).map(drop)
    }

    /// Converts the eight inputs (or pairs), one transaction each.
    fn poll(&mut self) -> Result<Vec<Sample>, DeviceError> {
        let mode = self.settings.inputs;
        let mut samples = Vec::with_capacity(2 * usize::from(protocol::CHANNELS));
        for channel in 0..protocol::CHANNELS {
            samples.extend(self.conversion(channel, mode)?);
        }
        Ok(samples)
    }

    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError> {
        if action != READ {
            return Err(DeviceError::UnsupportedAction(action.to_owned()));
        }
        let requested = args.int(CHANNEL)?;
        // The gateway checks the range against the command spec already.
        let channel = u8::try_from(requested).map_err(|_| no_such_channel(self.model, requested))?;
        // `differential` is optional: absent means single-ended.
        let differential = args.get(DIFFERENTIAL).is_some() && args.bool(DIFFERENTIAL)?;
        let mode = if differential { InputMode::Differential } else { InputMode::Single };
        let values = self.conversion(channel, mode)?.into();
        Ok(Outcome { values, note: None })
    }
}

/// A channel number beyond CH7: a caller's mistake, so it does not take the device offline.
fn no_such_channel(model: Model, channel: i64) -> DeviceError {
    DeviceError::Config(format!(
        "channel {channel} does not exist: the {} has channels 0 to {}",
        model.name(),
        protocol::CHANNELS - 1
    ))
}
