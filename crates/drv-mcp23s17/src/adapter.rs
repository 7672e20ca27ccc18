//! The gateway's view of an MCP23S17: sixteen pins read on every poll, outputs set by commands.
//!
//! The register access is our own rather than the community `port-expander` crate's, whose
//! `Mcp23x17::new_mcp23s17` does speak to the chip over an embedded-hal `SpiDevice`:
//! - it hard-wires hardware address 0 (`Driver::new(bus, false, false, false)`) and never
//!   writes IOCON, so HAEN stays clear and chips strapped to other addresses are unreachable;
//! - its pins borrow the expander (`split(&mut self)`), so an adapter living as long as the
//!   gateway cannot keep them: every command would split again and call `into_output()`, an
//!   IODIR read-modify-write, before writing;
//! - its driver writes a whole port from an output cache that starts at 0 and cannot be
//!   loaded from the chip, so the first `set_pin` after a gateway restart would drive every
//!   other output of that port low;
//! - `write_multiple` takes a fixed-size array of output pins, so `set_port` over the output
//!   pins the board file names would have to write them one by one, passing through states
//!   nobody asked for.
//!
//! Here the chip itself holds the state: every command reads OLAT, changes the bits it was
//! asked to, writes the port's OLAT once and reads the pins back.

use device::{
    Args, CommandSpec, Description, Device, DeviceError, Kind, Options, Outcome, Param, ParamKind, Quantity, Sample,
};
use embedded_hal::spi::{Operation, SpiDevice};

use crate::registers::{
    self as reg, IOCON, IOCON_VALUE, IODIRA, OLATA, OLATB, PIN_NAMES, PINS, PORT_NAMES, RegisterFile, Settings,
};

/// An MCP23S17 hosted by the gateway.
pub struct Mcp23s17Device<SPI> {
    spi: SPI,
    settings: Settings,
    /// Whether the chip holds the configuration init() wrote, as last read back. Until init()
    /// succeeds, and after a read-back finds the configuration gone (the chip was reset),
    /// commands are refused: OLAT writes would drive nothing while the pins are inputs.
    ready: bool,
}

impl<SPI: SpiDevice> Mcp23s17Device<SPI> {
    /// Validates the options; does not touch the bus (init() does).
    pub fn new(spi: SPI, options: &Options) -> Result<Self, DeviceError> {
        Ok(Self { spi, settings: Settings::from_options(options)?, ready: false })
    }

    /// Gives the bus back.
    pub fn destroy(self) -> SPI {
        self.spi
    }

    /// Writes `data` to consecutive registers from `register` in one transaction, addressed to
    /// `hardware_address` (sequential mode, §3.2.1).
    fn write(&mut self, hardware_address: u8, register: u8, data: &[u8]) -> Result<(), DeviceError> {
        let mut frame = [0; 6];
        let frame = &mut frame[..2 + data.len()];
        frame[0] = reg::opcode(hardware_address, false);
        frame[1] = register;
        frame[2..].copy_from_slice(data);
        self.spi.write(frame).map_err(DeviceError::spi)
    }

    /// Reads registers 0x00 to 0x15 in one transaction and checks that the configuration
    /// init() wrote is still there.
    fn read_checked(&mut self) -> Result<RegisterFile, DeviceError> {
        let mut file = RegisterFile([0; reg::REGISTER_COUNT]);
        let command = [reg::opcode(self.settings.hardware_address, true), IODIRA];
        self.spi
            .transaction(&mut [Operation::Write(&command), Operation::Read(&mut file.0)])
            .map_err(DeviceError::spi)?;
        let checked = self.check(&file);
        self.ready = checked.is_ok();
        checked.map(|()| file)
    }

    /// SPI has no acknowledge: an absent chip, or one strapped to another address, leaves
    /// MISO to its pull-up or pull-down. Neither all 1s nor all 0s is a register file a chip
    /// can hold (IOCON bit 0 always reads 0; after init HAEN reads 1), so they are told apart
    /// from a configuration that went missing.
    fn check(&self, file: &RegisterFile) -> Result<(), DeviceError> {
        let address = self.settings.hardware_address;
        if file.0.iter().all(|&byte| byte == 0xFF) {
            return Err(DeviceError::Chip(format!(
                "no response: reads all 1s (chip absent, or its A2..A0 pins are not hardware_address {address}?)"
            )));
        }
        if file.0.iter().all(|&byte| byte == 0x00) {
            return Err(DeviceError::Chip("no response: reads all 0s (chip absent?)".to_owned()));
        }
        let (iocon, iodir, ipol) = (file.iocon(), file.iodir(), file.ipol());
        let expected = (IOCON_VALUE, self.settings.iodir(), 0);
        if (iocon, iodir, ipol) != expected {
            return Err(DeviceError::Chip(format!(
                "configuration reads back IOCON 0x{iocon:02X}, IODIR 0x{iodir:04X}, IPOL 0x{ipol:04X} instead of \
                 0x{:02X}, 0x{:04X}, 0x{:04X}: the chip was reset, or is not an MCP23S17",
                expected.0, expected.1, expected.2
            )));
        }
        Ok(())
    }

    /// Changes the output latch bits in `mask` of one port to those of `levels` (16-bit masks
    /// within that port), then reads the pins back.
    fn write_outputs(&mut self, port: usize, mask: u16, levels: u16) -> Result<u16, DeviceError> {
        let olat = self.read_checked()?.olat();
        let olat = (olat & !mask) | (levels & mask);
        let latch = olat.to_le_bytes()[port];
        self.write(self.settings.hardware_address, [OLATA, OLATB][port], &[latch])?;
        Ok(self.read_checked()?.gpio())
    }

    fn refuse_until_ready(&self) -> Result<(), DeviceError> {
        if self.ready {
            Ok(())
        } else {
            Err(DeviceError::Chip("not initialised: init() must configure the chip before commands".to_owned()))
        }
    }

    fn set_pin(&mut self, args: &Args) -> Result<Outcome, DeviceError> {
        let name = args.text("pin")?;
        let pin = reg::pin_index(name).ok_or_else(|| {
            DeviceError::Config(format!("parameter \"pin\" must be one of {}, got {name:?}", PIN_NAMES.join(", ")))
        })?;
        let level = args.bool("level")?;
        let mask = 1 << pin;
        if self.settings.outputs & mask == 0 {
            return Err(DeviceError::Config(format!(
                "pin {name} is an input (board option outputs = 0x{:04X})",
                self.settings.outputs
            )));
        }
        self.refuse_until_ready()?;
        let levels = if level { mask } else { 0 };
        let gpio = self.write_outputs(pin / 8, mask, levels)?;
        Ok(Outcome { values: samples(gpio, pin..pin + 1), note: unexpected_levels(gpio, mask, levels) })
    }

    fn set_port(&mut self, args: &Args) -> Result<Outcome, DeviceError> {
        let name = args.text("port")?;
        let port = PORT_NAMES.iter().position(|&port| port == name).ok_or_else(|| {
            DeviceError::Config(format!("parameter \"port\" must be one of {}, got {name:?}", PORT_NAMES.join(", ")))
        })?;
        let value = args.int("value")?;
        let value = u8::try_from(value).map_err(|_| {
            DeviceError::Config(format!("parameter \"value\" must be an integer from 0 to 255, got {value}"))
        })?;
        let shift = 8 * port;
        let port_pins = 0xFF << shift;
        let mask = self.settings.outputs & port_pins;
        if mask == 0 {
            return Err(DeviceError::Config(format!(
                "port {name} has no output pins (board option outputs = 0x{:04X})",
                self.settings.outputs
            )));
        }
        self.refuse_until_ready()?;
        let levels = u16::from(value) << shift;
        let gpio = self.write_outputs(port, mask, levels)?;
        let ignored = levels & !mask;
        let ignored = (ignored != 0).then(|| {
            format!(
                "bits for input pins {} ignored (board option outputs = 0x{:04X})",
                reg::pin_list(ignored),
                self.settings.outputs
            )
        });
        let notes: Vec<String> = ignored.into_iter().chain(unexpected_levels(gpio, mask, levels & mask)).collect();
        Ok(Outcome { values: samples(gpio, shift..shift + 8), note: (!notes.is_empty()).then(|| notes.join("; ")) })
    }
}

impl<SPI: SpiDevice + Send> Device for Mcp23s17Device<SPI> {
    /// Every pin the board file configures as an output is a switch.
    fn outputs(&self) -> Vec<device::Output> {
        (0..PINS)
            .filter(|pin| self.settings.outputs & 1 << pin != 0)
            .map(|pin| device::Output {
                quantity: PIN_NAMES[pin],
                control: device::Control::Switch,
                action: "set_pin",
                fixed: vec![("pin", device::Value::Text(PIN_NAMES[pin].to_owned()))],
                value: "level",
            })
            .collect()
    }

    fn describe(&self) -> Description {
        Description {
            model: "MCP23S17",
            quantities: PIN_NAMES
                .iter()
                .enumerate()
                .map(|(pin, &name)| Quantity {
                    name,
                    unit: None,
                    kind: Kind::State,
                    description: if self.settings.outputs & 1 << pin != 0 {
                        "output pin: the level it drives, read back from the port"
                    } else {
                        "input pin: the level it sees"
                    },
                })
                .collect(),
            commands: vec![
                CommandSpec {
                    action: "set_pin",
                    params: vec![
                        Param {
                            name: "pin",
                            kind: ParamKind::Choice(&PIN_NAMES),
                            required: true,
                            description: "the pin, one the board's outputs option makes an output",
                        },
                        Param {
                            name: "level",
                            kind: ParamKind::Bool,
                            required: true,
                            description: "true drives the pin high, false low",
                        },
                    ],
                    description: "drives one output pin high or low",
                },
                CommandSpec {
                    action: "set_port",
                    params: vec![
                        Param {
                            name: "port",
                            kind: ParamKind::Choice(&PORT_NAMES),
                            required: true,
                            description: "port a (gpa0 to gpa7) or b (gpb0 to gpb7)",
                        },
                        Param {
                            name: "value",
                            kind: ParamKind::Int { min: 0, max: 255 },
                            required: true,
                            description: "the port's levels, bit n for pin n; bits of input pins are ignored",
                        },
                    ],
                    description: "drives all output pins of one port at once",
                },
            ],
        }
    }

    /// Enables the address pins, sets the directions and input polarity, and reads the
    /// configuration back. Output latches keep their values, so a re-init after a bus fault
    /// leaves running outputs alone (a chip that was reset comes back with them low).
    fn init(&mut self) -> Result<(), DeviceError> {
        self.ready = false;
        let address = self.settings.hardware_address;
        // While HAEN is clear a chip answers at address 0 whatever its pins, so this write
        // reaches a chip at power-on. One that already has HAEN set only hears its own
        // address, and so does one with the MCP23S17 rev. A erratum (with A2 high it answers
        // at 1xx even while HAEN is clear): hence the second write.
        self.write(0, IOCON, &[IOCON_VALUE])?;
        if address != 0 {
            self.write(address, IOCON, &[IOCON_VALUE])?;
        }
        // IODIRA, IODIRB, IPOLA, IPOLB in one sequential write: directions, then
        // non-inverted inputs so that GPIO reads what the pins see.
        let [iodir_a, iodir_b] = self.settings.iodir().to_le_bytes();
        self.write(address, IODIRA, &[iodir_a, iodir_b, 0x00, 0x00])?;
        self.read_checked().map(drop)
    }

    fn poll(&mut self) -> Result<Vec<Sample>, DeviceError> {
        Ok(samples(self.read_checked()?.gpio(), 0..PINS))
    }

    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError> {
        match action {
            "set_pin" => self.set_pin(args),
            "set_port" => self.set_port(args),
            _ => Err(DeviceError::UnsupportedAction(action.to_owned())),
        }
    }
}

/// One boolean sample per pin in `pins`, from a 16-bit GPIO read.
fn samples(gpio: u16, pins: std::ops::Range<usize>) -> Vec<Sample> {
    pins.map(|pin| Sample::new(PIN_NAMES[pin], gpio & 1 << pin != 0)).collect()
}

/// A note naming the written output pins (`mask`) that do not read back at the level written
/// (`levels`): an output shorted or overloaded, or an external driver fighting it.
fn unexpected_levels(gpio: u16, mask: u16, levels: u16) -> Option<String> {
    let wrong = (gpio ^ levels) & mask;
    (wrong != 0).then(|| {
        format!("output pins {} do not read back the level written: shorted or overloaded?", reg::pin_list(wrong))
    })
}
