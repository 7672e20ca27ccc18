//! MCP23S17 registers, bit fields, the SPI control byte and the board-file options (Microchip
//! DS20001952C).
//!
//! Both the adapter and the simulated chip use these, so the two agree on the register map by
//! construction.

use device::{DeviceError, Options};

// Register addresses with IOCON.BANK = 0, the power-on mapping, in which each port B
// register follows its port A twin (Table 3-5 "Control register summary (IOCON.BANK = 0)").
/// I/O direction: 1 = input, 0 = output. Power-on 0xFF (Register 3-1).
pub(crate) const IODIRA: u8 = 0x00;
/// Input polarity: 1 = GPIO reads the inverse of the pin (Register 3-2).
pub(crate) const IPOLA: u8 = 0x02;
// 0x04 to 0x09: GPINTEN, DEFVAL and INTCON configure interrupt-on-change (Registers 3-3 to
// 3-5), which the driver does not touch and the model keeps as plain storage.
/// Configuration; one register seen at both 0x0A and 0x0B (Register 3-6).
pub(crate) const IOCON: u8 = 0x0A;
pub(crate) const IOCON_ALIAS: u8 = 0x0B;
// 0x0C, 0x0D: GPPU, weak pull-ups on inputs (Register 3-7), which the driver does not touch.
/// Interrupt flags, read-only (Register 3-8).
pub(crate) const INTFA: u8 = 0x0E;
pub(crate) const INTFB: u8 = 0x0F;
/// Pin levels captured at an interrupt, read-only (Register 3-9).
pub(crate) const INTCAPA: u8 = 0x10;
pub(crate) const INTCAPB: u8 = 0x11;
/// Port levels; a write goes to OLAT (Register 3-10).
pub(crate) const GPIOA: u8 = 0x12;
pub(crate) const GPIOB: u8 = 0x13;
/// Output latches (Register 3-11).
pub(crate) const OLATA: u8 = 0x14;
pub(crate) const OLATB: u8 = 0x15;
/// 0x00 to 0x15: the registers a sequential read walks before rolling over to 0x00 (§3.2.1).
pub(crate) const REGISTER_COUNT: usize = 0x16;
/// Register names by address, lower case, for the simulated chip's `inspect`.
pub(crate) const REGISTER_NAMES: [&str; REGISTER_COUNT] = [
    "iodira", "iodirb", "ipola", "ipolb", "gpintena", "gpintenb", "defvala", "defvalb", "intcona", "intconb", "iocon",
    "iocon", "gppua", "gppub", "intfa", "intfb", "intcapa", "intcapb", "gpioa", "gpiob", "olata", "olatb",
];

// IOCON bits (Register 3-6).
/// Register map: 1 = ports in separate banks (a different map), 0 = paired (the power-on map).
pub(crate) const IOCON_BANK: u8 = 0b1000_0000;
/// 1 = byte mode: the address pointer does not increment (§3.2.1).
pub(crate) const IOCON_SEQOP: u8 = 0b0010_0000;
/// 1 = the chip compares A2..A0 in the control byte with its pins (MCP23S17 only).
pub(crate) const IOCON_HAEN: u8 = 0b0000_1000;
/// Bit 0 is unimplemented and reads 0.
pub(crate) const IOCON_WRITABLE: u8 = 0b1111_1110;
/// What init writes: the power-on configuration (paired registers, sequential access,
/// active-low push-pull interrupt pins) with the address pins enabled.
pub(crate) const IOCON_VALUE: u8 = IOCON_HAEN;

// The SPI control byte: 0 1 0 0 A2 A1 A0 R/W (section "Addressing SPI Devices (MCP23S17)").
const OPCODE: u8 = 0b0100_0000;
const OPCODE_FIXED: u8 = 0b1111_0000;
const OPCODE_ADDRESS: u8 = 0b0000_1110;
const OPCODE_READ: u8 = 0b0000_0001;

/// The control byte addressing the chip strapped to `hardware_address`.
pub(crate) fn opcode(hardware_address: u8, read: bool) -> u8 {
    OPCODE | (hardware_address << 1 & OPCODE_ADDRESS) | if read { OPCODE_READ } else { 0 }
}

/// A control byte taken apart: the hardware address it names and whether it reads, or None
/// if its fixed bits are not 0100 (another kind of chip's command).
pub(crate) fn parse_opcode(byte: u8) -> Option<(u8, bool)> {
    (byte & OPCODE_FIXED == OPCODE).then_some(((byte & OPCODE_ADDRESS) >> 1, byte & OPCODE_READ != 0))
}

/// Sixteen pins; in 16-bit masks bit n is GPAn and bit 8 + n is GPBn.
pub(crate) const PINS: usize = 16;
/// Sample names of the pins: `Quantity::name` and `Sample::name` are `&'static str`.
pub(crate) const PIN_NAMES: [&str; PINS] = [
    "gpa0", "gpa1", "gpa2", "gpa3", "gpa4", "gpa5", "gpa6", "gpa7", "gpb0", "gpb1", "gpb2", "gpb3", "gpb4", "gpb5",
    "gpb6", "gpb7",
];
/// The ports as the `set_port` command names them: index 0 is A, 1 is B.
pub(crate) const PORT_NAMES: [&str; 2] = ["a", "b"];

/// The pin number (bit in a 16-bit mask) of a pin name.
pub(crate) fn pin_index(name: &str) -> Option<usize> {
    PIN_NAMES.iter().position(|&pin| pin == name)
}

/// The names of the pins set in `mask`, comma-separated.
pub(crate) fn pin_list(mask: u16) -> String {
    (0..PINS).filter(|pin| mask & 1 << pin != 0).map(|pin| PIN_NAMES[pin]).collect::<Vec<_>>().join(", ")
}

/// A copy of registers 0x00 to 0x15 as one sequential read returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegisterFile(pub(crate) [u8; REGISTER_COUNT]);

impl RegisterFile {
    /// A port A register and its port B twin as one 16-bit mask.
    pub(crate) fn pair(&self, register_a: u8) -> u16 {
        let a = usize::from(register_a);
        u16::from_le_bytes([self.0[a], self.0[a + 1]])
    }
    pub(crate) fn iocon(&self) -> u8 {
        self.0[usize::from(IOCON)]
    }
    pub(crate) fn iodir(&self) -> u16 {
        self.pair(IODIRA)
    }
    pub(crate) fn ipol(&self) -> u16 {
        self.pair(IPOLA)
    }
    pub(crate) fn gpio(&self) -> u16 {
        self.pair(GPIOA)
    }
    pub(crate) fn olat(&self) -> u16 {
        self.pair(OLATA)
    }
}

/// Option names the driver accepts in the board file.
pub(crate) const HARDWARE_ADDRESS: &str = "hardware_address";
pub(crate) const OUTPUTS: &str = "outputs";
/// Three address pins.
const HARDWARE_ADDRESS_MAX: i64 = 0b111;

/// The board file's options, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// How A2..A0 are strapped.
    pub(crate) hardware_address: u8,
    /// The pins the driver drives; the others are inputs.
    pub(crate) outputs: u16,
}

impl Settings {
    pub(crate) fn from_options(options: &Options) -> Result<Self, DeviceError> {
        options.check_known(crate::DRIVER, crate::OPTIONS)?;
        let hardware_address = options.int_or(HARDWARE_ADDRESS, 0)?;
        let hardware_address = u8::try_from(hardware_address)
            .ok()
            .filter(|&address| i64::from(address) <= HARDWARE_ADDRESS_MAX)
            .ok_or_else(|| {
                DeviceError::Config(format!(
                    "option {HARDWARE_ADDRESS:?} = {hardware_address} is out of range: the MCP23S17's pins A2..A0 \
                     give 0 to {HARDWARE_ADDRESS_MAX}"
                ))
            })?;
        let outputs = options.int_or(OUTPUTS, 0)?;
        let outputs = u16::try_from(outputs).map_err(|_| {
            DeviceError::Config(format!(
                "option {OUTPUTS:?} = {outputs} is out of range: a 16-bit mask from 0 to 0xFFFF, bit n for gpan and \
                 bit 8 + n for gpbn (e.g. 0x00FF makes port A outputs)"
            ))
        })?;
        Ok(Self { hardware_address, outputs })
    }

    /// IODIRA and IODIRB as one mask: 1 for inputs.
    pub(crate) fn iodir(&self) -> u16 {
        !self.outputs
    }
}

#[cfg(test)]
mod tests {
    // Tests assert on known-good values; a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use device::Value;

    use super::*;

    #[test]
    fn opcode_carries_the_hardware_address_and_the_read_bit() {
        assert_eq!(opcode(0, false), 0x40);
        assert_eq!(opcode(0, true), 0x41);
        assert_eq!(opcode(5, false), 0b0100_1010);
        assert_eq!(opcode(7, true), 0x4F);
        for address in 0..=7 {
            for read in [false, true] {
                assert_eq!(parse_opcode(opcode(address, read)), Some((address, read)));
            }
        }
        assert_eq!(parse_opcode(0x00), None);
        assert_eq!(parse_opcode(0xFF), None);
    }

    #[test]
    fn port_b_registers_follow_port_a() {
        let mut bytes = [0; REGISTER_COUNT];
        bytes[usize::from(GPIOA)] = 0x34;
        bytes[usize::from(GPIOB)] = 0x12;
        bytes[usize::from(IOCON)] = IOCON_HAEN;
        let file = RegisterFile(bytes);
        assert_eq!(file.gpio(), 0x1234);
        assert_eq!(file.iocon(), 0x08);
        assert_eq!(REGISTER_NAMES[usize::from(OLATB)], "olatb");
        assert_eq!(REGISTER_NAMES[usize::from(IOCON_ALIAS)], "iocon");
    }

    #[test]
    fn pins_are_numbered_port_a_first() {
        assert_eq!(pin_index("gpa0"), Some(0));
        assert_eq!(pin_index("gpb3"), Some(11));
        assert_eq!(pin_index("gpc0"), None);
        assert_eq!(pin_list(0b1000_0000_0110_0000), "gpa5, gpa6, gpb7");
        assert_eq!(pin_list(0), "");
    }

    fn settings(pairs: &[(&str, Value)]) -> Result<Settings, DeviceError> {
        Settings::from_options(&Options(
            pairs.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect(),
        ))
    }

    #[test]
    fn options_default_to_address_0_and_all_inputs() {
        assert_eq!(settings(&[]).unwrap(), Settings { hardware_address: 0, outputs: 0 });
        assert_eq!(settings(&[]).unwrap().iodir(), 0xFFFF);
        let both = settings(&[(HARDWARE_ADDRESS, Value::Int(7)), (OUTPUTS, Value::Int(0x00FF))]).unwrap();
        assert_eq!(both, Settings { hardware_address: 7, outputs: 0x00FF });
        assert_eq!(both.iodir(), 0xFF00);
    }
}
