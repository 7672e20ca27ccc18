//! A register-level model of the INA219 for the mock I2C bus.
//!
//! It turns two physical inputs, the bus voltage and the current through the shunt, into the
//! data output registers the way the chip does (SBOS448G §8.5.1 and §8.6): the shunt and bus
//! ADCs quantise and clip to the configured ranges, and the current and power registers come
//! from the shunt register and whatever calibration value the driver wrote, so they read 0
//! until the chip is calibrated.
//!
//! Timing is simplified: in continuous mode a conversion completes whenever the controller
//! addresses a register, as if the controller were slower than the ADC (a 12-bit conversion of
//! both inputs takes about 1 ms); in triggered mode it completes when the configuration is
//! written.

use std::f64::consts::TAU;
use std::time::Duration;

use device::{I2cChip, SimFault};

use crate::registers::{self as reg, Settings};

/// Simulated INA219 with its shunt resistor.
#[derive(Debug, Clone)]
pub struct Ina219Sim {
    /// The shunt on the simulated board; the driver's `shunt_ohms` option should match it.
    shunt_ohms: f64,
    /// Inputs as set by `set_input`; `advance` drifts the actual inputs around them.
    base_bus_voltage: f64,
    base_current: f64,
    bus_voltage: f64,
    current: f64,
    pointer: u8,
    configuration: u16,
    calibration: u16,
    /// Data output registers as of the latest conversion.
    shunt_register: u16,
    bus_register: u16,
    power_register: u16,
    current_register: u16,
}

impl Ina219Sim {
    /// A chip at power-on, with a 12 V bus and 0.5 A through the given shunt.
    pub fn new(shunt_ohms: f64) -> Self {
        let mut chip = Self {
            shunt_ohms,
            base_bus_voltage: 12.0,
            base_current: 0.5,
            bus_voltage: 12.0,
            current: 0.5,
            pointer: 0,
            configuration: 0,
            calibration: 0,
            shunt_register: 0,
            bus_register: 0,
            power_register: 0,
            current_register: 0,
        };
        chip.reset();
        chip
    }

    /// Sets every register to its power-on value (§8.6.1, Table 2); the pointer is kept.
    fn reset(&mut self) {
        self.configuration = reg::CONFIG_RESET_VALUE;
        self.calibration = 0;
        self.shunt_register = 0;
        self.bus_register = 0;
        self.power_register = 0;
        self.current_register = 0;
    }

    fn mode(&self) -> u16 {
        self.configuration & reg::CONFIG_MODE
    }

    /// One conversion of the signals the mode selects, then the current and power
    /// calculations (§8.5.1).
    fn convert(&mut self) {
        let mode = self.mode();
        if mode & reg::MODE_SHUNT != 0 {
            let gain_steps = (self.configuration & reg::CONFIG_PGA) >> reg::CONFIG_PGA_SHIFT;
            let full_scale = reg::SHUNT_RANGE_GAIN_1 << gain_steps;
            let counts = quantise(self.current * self.shunt_ohms / reg::SHUNT_LSB_V, -full_scale, full_scale);
            self.shunt_register = (counts as i16) as u16;
        }
        if mode & reg::MODE_BUS != 0 {
            let full_scale = if self.configuration & reg::CONFIG_BUS_RANGE_32V != 0 {
                reg::BUS_FULL_SCALE_32V
            } else {
                reg::BUS_FULL_SCALE_16V
            };
            let counts = quantise(self.bus_voltage / reg::BUS_LSB_V, 0, full_scale);
            self.bus_register = (counts as u16) << reg::BUS_VOLTAGE_SHIFT;
        }
        let shunt = i64::from(self.shunt_register as i16);
        let bus = i64::from(self.bus_register >> reg::BUS_VOLTAGE_SHIFT);
        // Integer division truncates towards zero, as the chip's fixed-point arithmetic does.
        let current = shunt * i64::from(self.calibration) / reg::CURRENT_DIVISOR;
        // The power register is unsigned: the chip reports the magnitude of the power.
        let power = current.abs() * bus / reg::POWER_DIVISOR;
        let overflow = i16::try_from(current).is_err() || u16::try_from(power).is_err();
        self.current_register = (current.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16) as u16;
        self.power_register = power.min(i64::from(u16::MAX)) as u16;
        self.bus_register |= reg::BUS_CONVERSION_READY;
        if overflow {
            self.bus_register |= reg::BUS_MATH_OVERFLOW;
        } else {
            self.bus_register &= !reg::BUS_MATH_OVERFLOW;
        }
    }

    fn write_register(&mut self, pointer: u8, value: u16) {
        match pointer {
            reg::CONFIGURATION if value & reg::CONFIG_RESET != 0 => self.reset(),
            reg::CONFIGURATION => {
                self.configuration = value;
                let mode = self.mode();
                // Writing a mode other than power-down or ADC-off clears CNVR (§8.6.3.2)…
                if mode & (reg::MODE_SHUNT | reg::MODE_BUS) != 0 {
                    self.bus_register &= !reg::BUS_CONVERSION_READY;
                    // …and in a triggered mode starts the single conversion.
                    if mode & reg::MODE_CONTINUOUS == 0 {
                        self.convert();
                    }
                }
            }
            reg::CALIBRATION => self.calibration = value & !reg::CALIBRATION_VOID,
            // The data output registers are read-only: the chip acknowledges and ignores writes.
            _ => {}
        }
    }

    fn register(&self, pointer: u8) -> u16 {
        match pointer {
            reg::CONFIGURATION => self.configuration,
            reg::SHUNT_VOLTAGE => self.shunt_register,
            reg::BUS_VOLTAGE => self.bus_register,
            reg::POWER => self.power_register,
            reg::CURRENT => self.current_register,
            _ => self.calibration,
        }
    }
}

impl Default for Ina219Sim {
    fn default() -> Self {
        Self::new(reg::DEFAULT_SHUNT_OHMS)
    }
}

/// Builds the simulated chip for a board-file entry. The shunt comes from the same options the
/// driver reads; invalid options fall back to the default shunt, since `device()` reports them.
pub(crate) fn from_options(options: &device::Options) -> Ina219Sim {
    let shunt_ohms = Settings::from_options(options).map_or(reg::DEFAULT_SHUNT_OHMS, |settings| settings.shunt_ohms);
    Ina219Sim::new(shunt_ohms)
}

impl I2cChip for Ina219Sim {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SimFault> {
        let (&pointer, data) = bytes.split_first().ok_or(SimFault::Nack)?;
        // Pointers beyond the six registers are not acknowledged: that makes a driver bug visible.
        if pointer > reg::CALIBRATION {
            return Err(SimFault::Nack);
        }
        self.pointer = pointer;
        if self.mode() & reg::MODE_CONTINUOUS != 0 && self.mode() & (reg::MODE_SHUNT | reg::MODE_BUS) != 0 {
            self.convert();
        }
        match data {
            [] => Ok(()),
            &[high, low] => {
                self.write_register(pointer, u16::from_be_bytes([high, low]));
                Ok(())
            }
            // Registers take exactly two bytes (§8.5.6).
            _ => Err(SimFault::Nack),
        }
    }

    fn read(&mut self, buffer: &mut [u8]) -> Result<(), SimFault> {
        // The pointer does not advance: further bytes repeat the register (§8.5.6).
        let bytes = self.register(self.pointer).to_be_bytes();
        for (index, byte) in buffer.iter_mut().enumerate() {
            *byte = bytes[index % 2];
        }
        // Reading the power register clears CNVR (§8.6.3.2).
        if self.pointer == reg::POWER {
            self.bus_register &= !reg::BUS_CONVERSION_READY;
        }
        Ok(())
    }

    /// The bus sags and recovers by ±0.2 V over a minute and the load swings by ±0.3 A over
    /// a minute and a half, around the values set as inputs.
    fn advance(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        self.bus_voltage = self.base_bus_voltage + 0.2 * (TAU * seconds / 60.0).sin();
        self.current = self.base_current + 0.3 * (TAU * seconds / 90.0 + 1.0).sin();
    }

    fn set_input(&mut self, name: &str, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        match name {
            "bus_voltage" => {
                (self.base_bus_voltage, self.bus_voltage) = (value, value);
                true
            }
            "current" => {
                (self.base_current, self.current) = (value, value);
                true
            }
            _ => false,
        }
    }

    fn inspect(&self, name: &str) -> Option<f64> {
        match name {
            "bus_voltage" => Some(self.bus_voltage),
            "current" => Some(self.current),
            "calibration" => Some(f64::from(self.calibration)),
            "configuration" => Some(f64::from(self.configuration)),
            _ => None,
        }
    }
}

/// Rounds to the nearest ADC count and clips to the converter's range.
fn quantise(counts: f64, min: i32, max: i32) -> i32 {
    counts.round().clamp(f64::from(min), f64::from(max)) as i32
}

#[cfg(test)]
mod tests {
    // Tests assert on known-good values; a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn read(chip: &mut Ina219Sim, pointer: u8) -> u16 {
        chip.write(&[pointer]).unwrap();
        let mut bytes = [0; 2];
        chip.read(&mut bytes).unwrap();
        u16::from_be_bytes(bytes)
    }

    fn write(chip: &mut Ina219Sim, pointer: u8, value: u16) {
        let [high, low] = value.to_be_bytes();
        chip.write(&[pointer, high, low]).unwrap();
    }

    #[test]
    fn power_on_values_match_the_datasheet() {
        let mut chip = Ina219Sim::default();
        assert_eq!(read(&mut chip, reg::CONFIGURATION), 0x399F);
        assert_eq!(read(&mut chip, reg::CALIBRATION), 0);
    }

    #[test]
    fn current_and_power_read_zero_until_calibrated() {
        let mut chip = Ina219Sim::default();
        assert_eq!(read(&mut chip, reg::CURRENT), 0);
        assert_eq!(read(&mut chip, reg::POWER), 0);
        // The voltages are measured regardless: 0.5 A × 0.1 Ω = 50 mV = 5000 × 10 µV; 12 V = 3000 × 4 mV.
        assert_eq!(read(&mut chip, reg::SHUNT_VOLTAGE), 5000);
        assert_eq!(read(&mut chip, reg::BUS_VOLTAGE) >> 3, 3000);
    }

    #[test]
    fn calibrated_registers_follow_the_datasheet_equations() {
        let mut chip = Ina219Sim::default();
        write(&mut chip, reg::CALIBRATION, 4096);
        // Current = 5000 × 4096 / 4096 = 5000; power = 5000 × 3000 / 5000 = 3000.
        assert_eq!(read(&mut chip, reg::CURRENT), 5000);
        assert_eq!(read(&mut chip, reg::POWER), 3000);
        chip.set_input("current", -0.5);
        assert_eq!(read(&mut chip, reg::CURRENT) as i16, -5000);
        assert_eq!(read(&mut chip, reg::POWER), 3000, "power is a magnitude");
    }

    #[test]
    fn shunt_voltage_clips_to_the_pga_range() {
        let mut chip = Ina219Sim::default();
        // PGA ÷1: ±40 mV = ±4000 counts; 0.5 A × 0.1 Ω = 50 mV is beyond it.
        write(&mut chip, reg::CONFIGURATION, 0b0010_0001_1001_1111);
        assert_eq!(read(&mut chip, reg::SHUNT_VOLTAGE), 4000);
    }

    #[test]
    fn reset_bit_restores_power_on_values_and_clears_itself() {
        let mut chip = Ina219Sim::default();
        write(&mut chip, reg::CALIBRATION, 4194);
        write(&mut chip, reg::CONFIGURATION, 0x199F);
        write(&mut chip, reg::CONFIGURATION, 0x8000);
        assert_eq!(read(&mut chip, reg::CONFIGURATION), 0x399F);
        assert_eq!(chip.inspect("calibration"), Some(0.0));
    }

    #[test]
    fn calibration_void_bit_reads_zero() {
        let mut chip = Ina219Sim::default();
        write(&mut chip, reg::CALIBRATION, 0xFFFF);
        assert_eq!(read(&mut chip, reg::CALIBRATION), 0xFFFE);
    }

    #[test]
    fn reading_power_clears_conversion_ready_until_the_next_conversion() {
        let mut chip = Ina219Sim::default();
        // Triggered shunt and bus mode: one conversion per configuration write.
        write(&mut chip, reg::CONFIGURATION, 0x399B);
        assert_ne!(read(&mut chip, reg::BUS_VOLTAGE) & reg::BUS_CONVERSION_READY, 0);
        read(&mut chip, reg::POWER);
        assert_eq!(read(&mut chip, reg::BUS_VOLTAGE) & reg::BUS_CONVERSION_READY, 0);
        write(&mut chip, reg::CONFIGURATION, 0x399B);
        assert_ne!(read(&mut chip, reg::BUS_VOLTAGE) & reg::BUS_CONVERSION_READY, 0);
    }

    #[test]
    fn overflowing_calculation_sets_the_flag() {
        let mut chip = Ina219Sim::default();
        write(&mut chip, reg::CALIBRATION, 0xFFFE);
        // 5000 × 65534 / 4096 = 79997, beyond the signed 16-bit current register.
        assert_eq!(read(&mut chip, reg::BUS_VOLTAGE) & reg::BUS_MATH_OVERFLOW, reg::BUS_MATH_OVERFLOW);
        chip.set_input("current", 0.01);
        assert_eq!(read(&mut chip, reg::BUS_VOLTAGE) & reg::BUS_MATH_OVERFLOW, 0);
    }

    #[test]
    fn unknown_register_and_partial_write_are_not_acknowledged() {
        assert_eq!(Ina219Sim::default().write(&[0x06]), Err(SimFault::Nack));
        assert_eq!(Ina219Sim::default().write(&[0x05, 0x01]), Err(SimFault::Nack));
    }

    #[test]
    fn drift_is_deterministic_and_bounded() {
        let mut first = Ina219Sim::default();
        let mut second = Ina219Sim::default();
        for seconds in [0, 7, 15, 44, 100, 3600] {
            first.advance(Duration::from_secs(seconds));
            second.advance(Duration::from_secs(seconds));
            let volts = first.inspect("bus_voltage").unwrap();
            let amps = first.inspect("current").unwrap();
            assert_eq!(Some(volts), second.inspect("bus_voltage"));
            assert!((11.8..=12.2).contains(&volts), "{volts} V at {seconds} s");
            assert!((0.2..=0.8).contains(&amps), "{amps} A at {seconds} s");
        }
    }

    #[test]
    fn drift_follows_the_set_inputs() {
        let mut chip = Ina219Sim::default();
        assert!(chip.set_input("bus_voltage", 5.0));
        chip.advance(Duration::from_secs(15));
        // sin(τ × 15 / 60) = 1: the top of the swing.
        assert!((chip.inspect("bus_voltage").unwrap() - 5.2).abs() < 1e-9);
        assert!(!chip.set_input("temperature", 20.0));
    }
}
