//! A register-level model of the PCA9685 for the mock I2C bus.
//!
//! It keeps the register file the data sheet describes (rev. 4, §7.3, Table 4) with its
//! access rules: PRE_SCALE only takes writes while asleep, the pointer auto-increments only
//! with MODE1's AI bit, the ALL_LED registers load every channel and read as zero, RESTART
//! follows §7.3.1.1, and reserved register addresses are not acknowledged. The outputs
//! themselves are not simulated: `inspect("chN")` reports the duty cycle the registers encode.

use device::{I2cChip, SimFault};

use crate::registers::{self as reg, CHANNEL_NAMES};

/// Simulated PCA9685.
#[derive(Debug, Clone)]
pub struct Pca9685Sim {
    registers: [u8; 256],
    pointer: u8,
}

impl Default for Pca9685Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Pca9685Sim {
    /// A chip at power-on: asleep, every channel full off, 200 Hz prescale.
    pub fn new() -> Self {
        let mut registers = [0; 256];
        registers[usize::from(reg::MODE1)] = reg::MODE1_RESET_VALUE;
        registers[usize::from(reg::MODE2)] = reg::MODE2_RESET_VALUE;
        registers[usize::from(reg::SUBADDR1)] = reg::SUBADDR1_RESET_VALUE;
        registers[usize::from(reg::SUBADDR2)] = reg::SUBADDR2_RESET_VALUE;
        registers[usize::from(reg::SUBADDR3)] = reg::SUBADDR3_RESET_VALUE;
        registers[usize::from(reg::ALLCALLADR)] = reg::ALLCALLADR_RESET_VALUE;
        for channel in 0..reg::CHANNELS {
            registers[usize::from(reg::channel_base(channel)) + 3] = reg::LED_FULL;
        }
        registers[usize::from(reg::PRE_SCALE)] = reg::PRE_SCALE_RESET_VALUE;
        Self { registers, pointer: 0 }
    }

    fn mode1(&self) -> u8 {
        self.registers[usize::from(reg::MODE1)]
    }

    fn channel_registers(&self, channel: usize) -> [u8; 4] {
        let base = usize::from(reg::channel_base(channel));
        [self.registers[base], self.registers[base + 1], self.registers[base + 2], self.registers[base + 3]]
    }

    fn duty(&self, channel: usize) -> f64 {
        reg::duty_from_registers(self.channel_registers(channel))
    }

    fn write_register(&mut self, address: u8, value: u8) {
        match address {
            reg::MODE1 => self.write_mode1(value),
            reg::MODE2 => self.registers[usize::from(address)] = value & reg::MODE2_WRITABLE,
            reg::SUBADDR1..=reg::ALLCALLADR => self.registers[usize::from(address)] = value,
            reg::LED0_ON_L..=reg::LED15_OFF_H => {
                self.write_led(address, value);
                // With OCH clear (outputs change on STOP), a write to a PWM register clears
                // RESTART (§7.3.1.1); the model does not distinguish OCH.
                self.registers[usize::from(reg::MODE1)] &= !reg::MODE1_RESTART;
            }
            reg::ALL_LED_ON_L..=reg::ALL_LED_OFF_H => {
                let offset = address - reg::ALL_LED_ON_L;
                for channel in 0..reg::CHANNELS {
                    self.write_led(reg::channel_base(channel) + offset, value);
                }
                self.registers[usize::from(reg::MODE1)] &= !reg::MODE1_RESTART;
            }
            // Writes are blocked while the oscillator runs (Table 4, note 1), and the hardware
            // forces values below 3 up to 3 (§7.3.5).
            reg::PRE_SCALE if self.mode1() & reg::MODE1_SLEEP != 0 => {
                self.registers[usize::from(address)] = value.max(reg::PRE_SCALE_MIN);
            }
            // PRE_SCALE while awake, and TestMode (0xFF), which the model leaves alone.
            _ => {}
        }
    }

    /// One of the channel registers; the high bytes keep only their writable bits (Table 7).
    fn write_led(&mut self, address: u8, value: u8) {
        let is_high_byte = (address - reg::LED0_ON_L) % 2 == 1;
        self.registers[usize::from(address)] = if is_high_byte { value & reg::LED_HIGH_WRITABLE } else { value };
    }

    /// MODE1 (§7.3.1, Table 5, and §7.3.1.1 for RESTART).
    fn write_mode1(&mut self, value: u8) {
        let old = self.mode1();
        let mut restart = old & reg::MODE1_RESTART;
        // Writing 1 restarts the channels and clears the bit; writing 0 has no effect.
        if value & reg::MODE1_RESTART != 0 {
            restart = 0;
        }
        // Going to sleep with channels running sets RESTART (at the end of the PWM period).
        let falls_asleep = old & reg::MODE1_SLEEP == 0 && value & reg::MODE1_SLEEP != 0;
        if falls_asleep && (0..reg::CHANNELS).any(|channel| self.duty(channel) > 0.0) {
            restart = reg::MODE1_RESTART;
        }
        // EXTCLK can only be cleared by a power cycle or software reset.
        let extclk = old & reg::MODE1_EXTCLK;
        self.registers[usize::from(reg::MODE1)] = (value & !reg::MODE1_RESTART) | extclk | restart;
    }

    fn read_register(&self, address: u8) -> u8 {
        match address {
            reg::ALL_LED_ON_L..=reg::ALL_LED_OFF_H => 0,
            _ => self.registers[usize::from(address)],
        }
    }

    /// Moves the pointer on after a byte when AI is set: past LED15_OFF_H it returns to MODE1,
    /// and from ALL_LED_ON_L it runs to PRE_SCALE and then rolls over to MODE1 (Table 4 remark).
    fn advance_pointer(&mut self) {
        if self.mode1() & reg::MODE1_AI != 0 {
            self.pointer = match self.pointer {
                reg::LED15_OFF_H | reg::PRE_SCALE => reg::MODE1,
                pointer => pointer.wrapping_add(1),
            };
        }
    }
}

/// Registers 0x46 to 0xF9 are reserved and their addresses are not acknowledged (Table 4).
fn is_reserved(address: u8) -> bool {
    (reg::LED15_OFF_H + 1..reg::ALL_LED_ON_L).contains(&address)
}

impl I2cChip for Pca9685Sim {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SimFault> {
        let (&pointer, data) = bytes.split_first().ok_or(SimFault::Nack)?;
        if is_reserved(pointer) {
            return Err(SimFault::Nack);
        }
        self.pointer = pointer;
        for &byte in data {
            self.write_register(self.pointer, byte);
            self.advance_pointer();
        }
        Ok(())
    }

    fn read(&mut self, buffer: &mut [u8]) -> Result<(), SimFault> {
        for byte in buffer {
            *byte = self.read_register(self.pointer);
            self.advance_pointer();
        }
        Ok(())
    }

    fn inspect(&self, name: &str) -> Option<f64> {
        match name {
            "mode1" => Some(f64::from(self.mode1())),
            "mode2" => Some(f64::from(self.registers[usize::from(reg::MODE2)])),
            "prescale" => Some(f64::from(self.registers[usize::from(reg::PRE_SCALE)])),
            "frequency_hz" => Some(reg::frequency_for(self.registers[usize::from(reg::PRE_SCALE)])),
            _ => CHANNEL_NAMES.iter().position(|&channel| channel == name).map(|channel| self.duty(channel)),
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests assert on known-good values; a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn read(chip: &mut Pca9685Sim, pointer: u8, count: usize) -> Vec<u8> {
        chip.write(&[pointer]).unwrap();
        let mut bytes = vec![0; count];
        chip.read(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn power_on_values_match_the_data_sheet() {
        let chip = Pca9685Sim::new();
        assert_eq!(chip.inspect("mode1"), Some(f64::from(0x11)));
        assert_eq!(chip.inspect("mode2"), Some(f64::from(0x04)));
        assert_eq!(chip.inspect("prescale"), Some(f64::from(0x1E)));
        for name in CHANNEL_NAMES {
            assert_eq!(chip.inspect(name), Some(0.0), "{name}");
        }
        assert_eq!(chip.inspect("ch16"), None);
    }

    #[test]
    fn prescale_is_only_writable_while_asleep() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[reg::PRE_SCALE, 5]).unwrap();
        assert_eq!(chip.inspect("prescale"), Some(5.0));
        chip.write(&[reg::MODE1, 0x01]).unwrap();
        chip.write(&[reg::PRE_SCALE, 100]).unwrap();
        assert_eq!(chip.inspect("prescale"), Some(5.0), "blocked while awake");
    }

    #[test]
    fn prescale_below_3_is_forced_to_3() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[reg::PRE_SCALE, 1]).unwrap();
        assert_eq!(chip.inspect("prescale"), Some(3.0));
    }

    #[test]
    fn without_auto_increment_bytes_go_to_one_register() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[0x12, 0x01, 0x02, 0x03]).unwrap();
        assert_eq!(read(&mut chip, 0x12, 2), [0x03, 0x03]);
        assert_eq!(read(&mut chip, 0x13, 1), [0x00]);
    }

    #[test]
    fn auto_increment_walks_the_channel_registers() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[reg::MODE1, 0x21]).unwrap();
        chip.write(&[0x12, 0x00, 0x00, 0x00, 0x08]).unwrap();
        assert_eq!(chip.inspect("ch3"), Some(0.5));
        assert_eq!(read(&mut chip, 0x12, 4), [0x00, 0x00, 0x00, 0x08]);
    }

    #[test]
    fn auto_increment_wraps_to_mode1() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[reg::MODE1, 0x21]).unwrap();
        // LED15_OFF_H, then MODE1 and MODE2.
        assert_eq!(read(&mut chip, reg::LED15_OFF_H, 3), [0x10, 0x21, 0x04]);
        // ALL_LED registers read zero; PRE_SCALE follows them, then MODE1.
        assert_eq!(read(&mut chip, reg::ALL_LED_ON_L, 6), [0, 0, 0, 0, 0x1E, 0x21]);
    }

    #[test]
    fn all_led_registers_load_every_channel() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[reg::MODE1, 0x21]).unwrap();
        chip.write(&[reg::ALL_LED_ON_L, 0x00, 0x00, 0x00, 0x04]).unwrap();
        for name in CHANNEL_NAMES {
            assert_eq!(chip.inspect(name), Some(0.25), "{name}");
        }
        chip.write(&[reg::ALL_LED_OFF_H, 0x10]).unwrap();
        for name in CHANNEL_NAMES {
            assert_eq!(chip.inspect(name), Some(0.0), "{name}");
        }
    }

    #[test]
    fn reserved_bits_read_as_zero() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[0x07, 0xFF]).unwrap();
        chip.write(&[reg::MODE2, 0xFF]).unwrap();
        assert_eq!(read(&mut chip, 0x07, 1), [0x1F]);
        assert_eq!(read(&mut chip, reg::MODE2, 1), [0x1F]);
    }

    #[test]
    fn sleeping_with_channels_running_sets_restart_and_writing_it_clears_it() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[reg::MODE1, 0x01]).unwrap();
        chip.write(&[0x06, 0x00]).unwrap();
        chip.write(&[0x09, 0x00]).unwrap();
        chip.write(&[0x08, 0x00]).unwrap();
        chip.write(&[0x09, 0x01]).unwrap();
        chip.write(&[reg::MODE1, 0x11]).unwrap();
        assert_eq!(chip.inspect("mode1"), Some(f64::from(0x91)));
        chip.write(&[reg::MODE1, 0x01]).unwrap();
        assert_eq!(chip.inspect("mode1"), Some(f64::from(0x81)), "waking does not clear RESTART");
        chip.write(&[reg::MODE1, 0x81]).unwrap();
        assert_eq!(chip.inspect("mode1"), Some(f64::from(0x01)));
    }

    #[test]
    fn sleeping_with_every_channel_off_leaves_restart_clear() {
        let mut chip = Pca9685Sim::new();
        chip.write(&[reg::MODE1, 0x01]).unwrap();
        chip.write(&[reg::MODE1, 0x11]).unwrap();
        assert_eq!(chip.inspect("mode1"), Some(f64::from(0x11)));
    }

    #[test]
    fn reserved_register_addresses_are_not_acknowledged() {
        let mut chip = Pca9685Sim::new();
        assert_eq!(chip.write(&[0x46]), Err(SimFault::Nack));
        assert_eq!(chip.write(&[0xF9, 0x00]), Err(SimFault::Nack));
        assert_eq!(chip.write(&[0xFA]), Ok(()));
    }
}
