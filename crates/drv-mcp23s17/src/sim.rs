//! A register-level model of the MCP23S17 for the mock SPI bus.
//!
//! It keeps the register file of Table 3-5 (IOCON.BANK = 0) with its power-on values (IODIR
//! 0xFF, everything else 0x00) and speaks the SPI protocol of DS20001952C: after chip select
//! falls, a control byte `0100 A2 A1 A0 R/W`, a register address, then data bytes, the address
//! pointer moving on after each one as §3.2.1 says: up by one and from OLATB back to IODIRA in
//! sequential mode (IOCON.SEQOP = 0), between a register and its A/B twin in byte mode. With
//! IOCON.HAEN clear the chip answers at address 0 whatever its pins, as the data sheet has it
//! (not the rev. A erratum); with HAEN set, only at the address its pins are strapped to. A
//! control byte for another address gets no answer: MISO stays high.
//!
//! GPIO reads what the pins carry: OLAT for outputs, the levels `set_input` drives for inputs,
//! inverted where IPOL says. Not modelled: interrupts (INTF and INTCAP read 0, the INT pins do
//! nothing), the pull-ups (an input reads the level driven on it, low until set), and
//! IOCON.BANK (writes leave it 0; the adapter never sets it).

use std::time::Duration;

use device::{SimFault, SpiChip};

use crate::registers::{
    self as reg, GPIOA, GPIOB, INTCAPA, INTCAPB, INTFA, INTFB, IOCON, IOCON_ALIAS, IOCON_BANK, IOCON_HAEN, IOCON_SEQOP,
    IOCON_WRITABLE, IODIRA, IPOLA, OLATA, REGISTER_COUNT, REGISTER_NAMES,
};

/// The input the live board toggles, and how long it stays at each level.
const BLINKING_PIN: usize = 15;
const BLINK_HALF_PERIOD: Duration = Duration::from_secs(5);

/// Where the chip is in an SPI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Chip select high, or the command was for another chip.
    Idle,
    /// The next byte is the control byte.
    Control,
    /// The next byte is the register address.
    Register { read: bool },
    /// Data bytes, at the address pointer.
    Data { read: bool },
}

/// Simulated MCP23S17.
///
/// Inputs (`set_input`): `gpa0` to `gpb7`, the level driven onto each pin from outside, 0.0 or
/// 1.0 (it only shows while the pin is an input). State (`inspect`): `gpa0` to `gpb7`, each
/// pin's level as 0.0 or 1.0 (what an output drives, or what drives an input); the registers
/// by lower-case name (`iodira`, `olatb`, `iocon`, ...), `gpioa` and `gpiob` as a read would
/// return them.
///
/// On the live board, `gpb7`'s input level blinks: five seconds high, five seconds low.
#[derive(Debug, Clone)]
pub struct Mcp23s17Sim {
    /// Registers 0x00 to 0x15; GPIO, INTF and INTCAP are computed on read instead.
    registers: [u8; REGISTER_COUNT],
    /// How A2..A0 are strapped.
    hardware_address: u8,
    /// Levels driven onto the pins from outside, bit n for GPAn and 8 + n for GPBn.
    inputs: u16,
    phase: Phase,
    /// The register the next data byte reads or writes.
    pointer: u8,
}

impl Mcp23s17Sim {
    /// A chip at power-on with A2..A0 strapped to `hardware_address` (0 to 7; higher bits are
    /// ignored), every pin an input driven low.
    pub fn new(hardware_address: u8) -> Self {
        let mut registers = [0; REGISTER_COUNT];
        registers[usize::from(IODIRA)] = 0xFF;
        registers[usize::from(IODIRA) + 1] = 0xFF;
        Self { registers, hardware_address: hardware_address & 0b111, inputs: 0, phase: Phase::Idle, pointer: 0 }
    }

    fn iocon(&self) -> u8 {
        self.registers[usize::from(IOCON)]
    }

    fn pair(&self, register_a: u8) -> u16 {
        let a = usize::from(register_a);
        u16::from_le_bytes([self.registers[a], self.registers[a + 1]])
    }

    /// The pin levels: OLAT where a pin is an output, the outside level where it is an input.
    fn pins(&self) -> u16 {
        let iodir = self.pair(IODIRA);
        (self.pair(OLATA) & !iodir) | (self.inputs & iodir)
    }

    /// GPIO as read: the pins, with inputs inverted where IPOL is set (Register 3-2).
    fn gpio(&self) -> u16 {
        self.pins() ^ (self.pair(IPOLA) & self.pair(IODIRA))
    }

    /// Whether a control byte naming `address` is for this chip (IOCON.HAEN, Register 3-6).
    fn answers(&self, address: u8) -> bool {
        let own = if self.iocon() & IOCON_HAEN != 0 { self.hardware_address } else { 0 };
        address == own
    }

    fn read_register(&self, address: u8) -> u8 {
        let [gpio_a, gpio_b] = self.gpio().to_le_bytes();
        match address {
            GPIOA => gpio_a,
            GPIOB => gpio_b,
            INTFA | INTFB | INTCAPA | INTCAPB => 0,
            _ => self.registers.get(usize::from(address)).copied().unwrap_or(0),
        }
    }

    fn write_register(&mut self, address: u8, value: u8) {
        match address {
            // A write to GPIO goes to the output latch (Register 3-10).
            GPIOA | GPIOB => self.registers[usize::from(address - GPIOA + OLATA)] = value,
            IOCON | IOCON_ALIAS => {
                let value = value & IOCON_WRITABLE & !IOCON_BANK;
                self.registers[usize::from(IOCON)] = value;
                self.registers[usize::from(IOCON_ALIAS)] = value;
            }
            // Read-only.
            INTFA | INTFB | INTCAPA | INTCAPB => {}
            _ => {
                if let Some(register) = self.registers.get_mut(usize::from(address)) {
                    *register = value;
                }
            }
        }
    }

    /// Drives an input pin from outside.
    fn set_level(&mut self, pin: usize, high: bool) {
        let mask = 1 << pin;
        self.inputs = if high { self.inputs | mask } else { self.inputs & !mask };
    }

    /// §3.2.1: sequential mode walks up and rolls over after the last register; byte mode
    /// with BANK = 0 toggles between a register and its A/B twin.
    fn advance_pointer(&mut self) {
        self.pointer = if self.iocon() & IOCON_SEQOP != 0 {
            self.pointer ^ 1
        } else if usize::from(self.pointer) + 1 >= REGISTER_COUNT {
            0
        } else {
            self.pointer + 1
        };
    }
}

impl SpiChip for Mcp23s17Sim {
    fn select(&mut self) {
        self.phase = Phase::Control;
    }

    fn exchange(&mut self, mosi: u8) -> Result<u8, SimFault> {
        // SO is high-impedance except while the chip sends data; the bus pulls it high.
        let mut miso = 0xFF;
        self.phase = match self.phase {
            Phase::Idle => Phase::Idle,
            Phase::Control => match reg::parse_opcode(mosi) {
                Some((address, read)) if self.answers(address) => Phase::Register { read },
                _ => Phase::Idle,
            },
            Phase::Register { read } => {
                self.pointer = mosi;
                Phase::Data { read }
            }
            Phase::Data { read } => {
                if read {
                    miso = self.read_register(self.pointer);
                } else {
                    self.write_register(self.pointer, mosi);
                }
                self.advance_pointer();
                Phase::Data { read }
            }
        };
        Ok(miso)
    }

    fn deselect(&mut self) {
        self.phase = Phase::Idle;
    }

    /// Blinks `gpb7`'s input level so that the simulated board has an input that changes.
    fn advance(&mut self, elapsed: Duration) {
        let high = (elapsed.as_secs() / BLINK_HALF_PERIOD.as_secs()).is_multiple_of(2);
        self.set_level(BLINKING_PIN, high);
    }

    /// Pin names take 0.0 (low) or 1.0 (high); anything else is refused (false).
    fn set_input(&mut self, name: &str, value: f64) -> bool {
        match reg::pin_index(name) {
            Some(pin) if value == 0.0 || value == 1.0 => {
                self.set_level(pin, value == 1.0);
                true
            }
            _ => false,
        }
    }

    fn inspect(&self, name: &str) -> Option<f64> {
        if let Some(pin) = reg::pin_index(name) {
            return Some(f64::from(self.pins() >> pin & 1));
        }
        let [gpio_a, gpio_b] = self.gpio().to_le_bytes();
        match name {
            "gpioa" => Some(f64::from(gpio_a)),
            "gpiob" => Some(f64::from(gpio_b)),
            _ => REGISTER_NAMES.iter().position(|&register| register == name).map(|at| f64::from(self.registers[at])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One chip-select period: clocks `mosi` and returns what the chip sent back.
    fn clock(chip: &mut Mcp23s17Sim, mosi: &[u8]) -> Vec<u8> {
        chip.select();
        let miso = mosi.iter().map(|&byte| chip.exchange(byte).unwrap_or(0xEE)).collect();
        chip.deselect();
        miso
    }

    fn write(chip: &mut Mcp23s17Sim, address: u8, register: u8, data: &[u8]) {
        clock(chip, &[&[reg::opcode(address, false), register], data].concat());
    }

    fn read(chip: &mut Mcp23s17Sim, address: u8, register: u8, count: usize) -> Vec<u8> {
        let mut mosi = vec![reg::opcode(address, true), register];
        mosi.resize(2 + count, 0x00);
        clock(chip, &mosi)[2..].to_vec()
    }

    #[test]
    fn power_on_values_match_table_3_5() {
        let mut chip = Mcp23s17Sim::new(0);
        let mut expected = vec![0x00; REGISTER_COUNT];
        expected[0] = 0xFF;
        expected[1] = 0xFF;
        assert_eq!(read(&mut chip, 0, IODIRA, REGISTER_COUNT), expected);
        assert_eq!(chip.inspect("iodirb"), Some(255.0));
        assert_eq!(chip.inspect("olata"), Some(0.0));
        assert_eq!(chip.inspect("gpa0"), Some(0.0));
        assert_eq!(chip.inspect("portc"), None);
    }

    #[test]
    fn sequential_access_rolls_over_after_olatb() {
        let mut chip = Mcp23s17Sim::new(0);
        write(&mut chip, 0, OLATA + 1, &[0xB0, 0x12]);
        assert_eq!(chip.inspect("olatb"), Some(f64::from(0xB0)));
        assert_eq!(chip.inspect("iodira"), Some(f64::from(0x12)), "rolled over to 0x00");
        assert_eq!(read(&mut chip, 0, OLATA + 1, 3), [0xB0, 0x12, 0xFF]);
    }

    #[test]
    fn byte_mode_toggles_between_a_and_b() {
        let mut chip = Mcp23s17Sim::new(0);
        write(&mut chip, 0, IOCON, &[IOCON_SEQOP]);
        write(&mut chip, 0, OLATA, &[0x01, 0x02, 0x03]);
        assert_eq!(chip.inspect("olata"), Some(3.0));
        assert_eq!(chip.inspect("olatb"), Some(2.0));
        assert_eq!(read(&mut chip, 0, OLATA + 1, 3), [0x02, 0x03, 0x02]);
    }

    #[test]
    fn haen_decides_which_address_answers() {
        let mut chip = Mcp23s17Sim::new(5);
        // HAEN clear: address 0 reaches it whatever its pins; address 5 does not.
        assert_eq!(read(&mut chip, 5, IODIRA, 1), [0xFF]);
        write(&mut chip, 5, IODIRA, &[0x00]);
        assert_eq!(chip.inspect("iodira"), Some(255.0));
        write(&mut chip, 0, IOCON, &[IOCON_HAEN]);
        // HAEN set: only its own address.
        write(&mut chip, 0, IODIRA, &[0x00]);
        assert_eq!(chip.inspect("iodira"), Some(255.0));
        write(&mut chip, 5, IODIRA, &[0x0F]);
        assert_eq!(read(&mut chip, 5, IODIRA, 1), [0x0F]);
        assert_eq!(read(&mut chip, 0, IODIRA, 1), [0xFF], "no answer: MISO stays high");
    }

    #[test]
    fn gpio_reads_olat_for_outputs_and_inputs_elsewhere() {
        let mut chip = Mcp23s17Sim::new(0);
        write(&mut chip, 0, IODIRA, &[0xF0, 0xFF]);
        write(&mut chip, 0, GPIOA, &[0b1010_0101]);
        assert_eq!(chip.inspect("olata"), Some(f64::from(0b1010_0101)), "GPIO writes go to OLAT");
        assert!(chip.set_input("gpa7", 1.0));
        assert!(chip.set_input("gpb2", 1.0));
        assert!(chip.set_input("gpa0", 0.0), "outside level on an output does not show");
        assert_eq!(read(&mut chip, 0, GPIOA, 2), [0b1000_0101, 0b0000_0100]);
        assert_eq!(chip.inspect("gpa0"), Some(1.0));
        assert_eq!(chip.inspect("gpa5"), Some(0.0));
        assert_eq!(chip.inspect("gpb2"), Some(1.0));
        // IPOL inverts inputs only.
        write(&mut chip, 0, IPOLA, &[0xFF]);
        assert_eq!(read(&mut chip, 0, GPIOA, 1), [0b0111_0101]);
        assert!(!chip.set_input("gpb2", 0.5));
        assert!(!chip.set_input("gpc0", 1.0));
    }

    #[test]
    fn read_only_and_unimplemented_bits_stay_put() {
        let mut chip = Mcp23s17Sim::new(0);
        write(&mut chip, 0, INTFA, &[0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(read(&mut chip, 0, INTFA, 4), [0, 0, 0, 0]);
        write(&mut chip, 0, IOCON_ALIAS, &[0xFF]);
        assert_eq!(chip.inspect("iocon"), Some(f64::from(0b0111_1110)), "bit 0 unimplemented, BANK not modelled");
        assert_eq!(read(&mut chip, 0, IOCON, 2), [0b0111_1110, 0b0111_1110]);
    }

    #[test]
    fn other_chips_commands_are_ignored() {
        let mut chip = Mcp23s17Sim::new(0);
        assert_eq!(clock(&mut chip, &[0x80, IODIRA, 0x00]), [0xFF, 0xFF, 0xFF]);
        assert_eq!(chip.inspect("iodira"), Some(255.0));
    }

    #[test]
    fn live_board_blinks_gpb7() {
        let mut chip = Mcp23s17Sim::new(0);
        chip.advance(Duration::from_secs(1));
        assert_eq!(chip.inspect("gpb7"), Some(1.0));
        chip.advance(Duration::from_secs(6));
        assert_eq!(chip.inspect("gpb7"), Some(0.0));
        chip.advance(Duration::from_secs(10));
        assert_eq!(chip.inspect("gpb7"), Some(1.0));
    }
}
