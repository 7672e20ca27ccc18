//! A register-level model of the BME280 for the mock I2C bus.
//!
//! It keeps the register image of the datasheet (Bosch BST-BME280-DS002, section 5.3) and
//! answers the I2C protocol of section 6.2, so that mock mode runs the community driver
//! unchanged. Conversions take no time: a forced conversion is finished by the time the
//! controller can next look, which keeps mock-mode polling fast.
//!
//! Not modelled: the IIR filter's smoothing (only its effect on resolution), the standby time
//! of normal mode, the SPI interface, noise.

use std::f64::consts::{FRAC_PI_2, TAU};
use std::time::Duration;

use device::{I2cChip, SimFault};

use crate::compensation::{self, BLOCK_1_LEN, BLOCK_2_LEN, Calibration};
use crate::registers::{
    CALIBRATION_1, CALIBRATION_2, CHIP_ID, CHIP_ID_BME280, CONFIG, CONFIG_WRITABLE, CTRL_HUM, CTRL_MEAS, DATA,
    DATA_END, FILTER_MASK, MODE_MASK, MODE_NORMAL, MODE_SLEEP, OSRS_H_MASK, OSRS_P_MASK, OSRS_P_SHIFT, OSRS_T_MASK,
    OSRS_T_SHIFT, RESET, SKIPPED_16_BIT, SKIPPED_20_BIT, SOFT_RESET,
};

/// Period of the live board's temperature and humidity swing.
const WEATHER_PERIOD: Duration = Duration::from_secs(10 * 60);
/// Period of the live board's pressure swing, slower as real pressure changes are.
const PRESSURE_PERIOD: Duration = Duration::from_secs(60 * 60);

/// The simulated air around the chip.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Environment {
    /// °C.
    temperature: f64,
    /// %RH.
    humidity: f64,
    /// hPa.
    pressure: f64,
}

impl Environment {
    /// A mild indoor day at sea level, the centre of the live board's drift.
    const INDOOR: Environment = Environment { temperature: 21.0, humidity: 45.0, pressure: 1013.25 };
    const CALM: Environment = Environment { temperature: 0.0, humidity: 0.0, pressure: 0.0 };
}

/// A simulated BME280: register map, modes and calibration of a real chip, with temperature,
/// humidity and pressure as inputs.
///
/// Inputs (`set_input`): `temperature` (°C), `humidity` (%RH), `pressure` (hPa). State
/// (`inspect`): the inputs, `mode` (0 sleep, 1 forced, 3 normal) and `conversions` (how many
/// measurements the chip has made).
#[derive(Debug, Clone)]
pub struct Bme280Sim {
    /// The register image the controller reads, indexed by register address (section 5.3).
    registers: [u8; 256],
    /// Where the next read starts; reads auto-increment it (section 6.2.2).
    pointer: u8,
    /// `osrs_h` as latched by the last `ctrl_meas` write: a `ctrl_hum` write only takes effect
    /// then (section 5.4.3), and drivers that forget this lose their humidity readings.
    humidity_oversampling: u8,
    /// The chip's trimming constants; they live in NVM, so a reset reloads them.
    calibration: Calibration,
    /// The inputs as tests set them; the live board drifts around them.
    base: Environment,
    /// What the live board adds to `base` (see `advance`).
    drift: Environment,
    /// Shifts the drift of a chip at the secondary address, so that two sensors on one board
    /// do not read the same.
    drift_phase: f64,
    /// Measurements made since the chip was created, for tests.
    conversions: u64,
}

impl Default for Bme280Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Bme280Sim {
    /// A chip just after power-on, in sleep mode, in mild indoor air.
    pub fn new() -> Self {
        let mut sim = Self {
            registers: [0; 256],
            pointer: 0,
            humidity_oversampling: 0,
            calibration: Calibration::EXAMPLE,
            base: Environment::INDOOR,
            drift: Environment::CALM,
            drift_phase: 0.0,
            conversions: 0,
        };
        sim.reset();
        sim
    }

    /// A chip at `address`: the secondary address drifts a quarter period behind.
    pub(crate) fn at(address: u8) -> Self {
        let mut sim = Self::new();
        sim.drift_phase = f64::from(address & 0b1) * FRAC_PI_2;
        sim
    }

    /// Power-on and soft reset: every register back to its reset value (table 18), the
    /// calibration copied from NVM again (section 5.4.2).
    fn reset(&mut self) {
        let (block_1, block_2) = self.calibration.to_registers();
        self.registers = [0; 256];
        self.registers[usize::from(CALIBRATION_1)..][..BLOCK_1_LEN].copy_from_slice(&block_1);
        self.registers[usize::from(CALIBRATION_2)..][..BLOCK_2_LEN].copy_from_slice(&block_2);
        self.registers[usize::from(CHIP_ID)] = CHIP_ID_BME280;
        self.set_data(SKIPPED_20_BIT, SKIPPED_20_BIT, SKIPPED_16_BIT);
        self.humidity_oversampling = 0;
    }

    fn register(&self, address: u8) -> u8 {
        self.registers[usize::from(address)]
    }

    fn set_register(&mut self, address: u8, value: u8) {
        self.registers[usize::from(address)] = value;
    }

    fn mode(&self) -> u8 {
        self.register(CTRL_MEAS) & MODE_MASK
    }

    fn inputs(&self) -> Environment {
        Environment {
            temperature: self.base.temperature + self.drift.temperature,
            // Relative humidity cannot leave 0–100 % however the drift goes.
            humidity: (self.base.humidity + self.drift.humidity).clamp(0.0, 100.0),
            pressure: self.base.pressure + self.drift.pressure,
        }
    }

    /// A controller write of one register (section 5.3: only `reset`, `ctrl_hum`,
    /// `ctrl_meas` and `config` are writable; the chip ignores writes to the others).
    fn write_register(&mut self, address: u8, value: u8) {
        match address {
            RESET if value == SOFT_RESET => self.reset(),
            CTRL_HUM => self.set_register(CTRL_HUM, value & OSRS_H_MASK),
            CTRL_MEAS => {
                self.set_register(CTRL_MEAS, value);
                self.humidity_oversampling = self.register(CTRL_HUM) & OSRS_H_MASK;
                match value & MODE_MASK {
                    MODE_SLEEP => {}
                    MODE_NORMAL => self.convert(),
                    _ => {
                        // Forced mode (01 or 10): one measurement, then back to sleep
                        // (section 3.3.3).
                        self.convert();
                        self.set_register(CTRL_MEAS, value & !MODE_MASK);
                    }
                }
            }
            // Section 5.4.6: writes to config in normal mode may be ignored. The sim always
            // ignores them, so that a driver relying on them fails here and not on a board.
            CONFIG if self.mode() != MODE_NORMAL => self.set_register(CONFIG, value & CONFIG_WRITABLE),
            _ => {}
        }
    }

    /// One measurement of the current inputs into the data registers, honouring the
    /// oversampling settings: a skipped measurement (000) leaves the reset value (section
    /// 5.4.5), and the oversampling sets the resolution of temperature and pressure.
    fn convert(&mut self) {
        self.conversions += 1;
        let inputs = self.inputs();
        let ctrl_meas = self.register(CTRL_MEAS);
        let filtered = self.register(CONFIG) & FILTER_MASK != 0;
        let temperature_oversampling = (ctrl_meas & OSRS_T_MASK) >> OSRS_T_SHIFT;
        let pressure_oversampling = (ctrl_meas & OSRS_P_MASK) >> OSRS_P_SHIFT;
        let calibration = &self.calibration;

        let temperature = compensation::raw_temperature(
            calibration,
            inputs.temperature,
            resolution_step(temperature_oversampling, filtered),
        );
        // Pressure and humidity compensation take t_fine, which the driver computes from the
        // raw temperature it reads, so the inversion starts from that same raw value.
        let (_, t_fine) = compensation::temperature(calibration, temperature);
        let pressure = compensation::raw_pressure(
            calibration,
            t_fine,
            inputs.pressure * 100.0,
            resolution_step(pressure_oversampling, filtered),
        );
        let humidity = compensation::raw_humidity(calibration, t_fine, inputs.humidity);

        let measured = |oversampling: u8, raw: u32, skipped: u32| if oversampling == 0 { skipped } else { raw };
        self.set_data(
            measured(pressure_oversampling, pressure, SKIPPED_20_BIT),
            measured(temperature_oversampling, temperature, SKIPPED_20_BIT),
            measured(self.humidity_oversampling, humidity, SKIPPED_16_BIT),
        );
    }

    /// Fills the data block: 20-bit values as msb, lsb and xlsb[7:4], the 16-bit humidity
    /// as msb, lsb (sections 5.4.7 to 5.4.9).
    fn set_data(&mut self, pressure: u32, temperature: u32, humidity: u32) {
        let twenty_bit = |raw: u32| [(raw >> 12) as u8, (raw >> 4) as u8, ((raw & 0b1111) << 4) as u8];
        let [p_msb, p_lsb, p_xlsb] = twenty_bit(pressure);
        let [t_msb, t_lsb, t_xlsb] = twenty_bit(temperature);
        let [h_msb, h_lsb] = [(humidity >> 8) as u8, humidity as u8];
        self.registers[usize::from(DATA)..=usize::from(DATA_END)]
            .copy_from_slice(&[p_msb, p_lsb, p_xlsb, t_msb, t_lsb, t_xlsb, h_msb, h_lsb]);
    }
}

/// Raw counts per output step for an oversampling setting (`osrs_t` or `osrs_p`): 16 bits at
/// 1x, one more bit per doubling up to 20 bits at 16x, and 20 bits whenever the IIR filter is
/// on (sections 3.4.2, 3.4.3 and 3.4.4).
fn resolution_step(oversampling: u8, filtered: bool) -> u32 {
    match (filtered, oversampling) {
        (true, _) => 1,
        (false, 1) => 16,
        (false, 2) => 8,
        (false, 3) => 4,
        (false, 4) => 2,
        // 16x (101 and above); a skipped measurement (000) is not presented at all.
        (false, _) => 1,
    }
}

impl I2cChip for Bme280Sim {
    /// Section 6.2.1: the controller sends pairs of register address and data; no
    /// auto-increment on writes. A trailing lone address sets the pointer for the next read.
    fn write(&mut self, bytes: &[u8]) -> Result<(), SimFault> {
        for pair in bytes.chunks(2) {
            match *pair {
                [address, value] => {
                    self.pointer = address;
                    self.write_register(address, value);
                }
                [address] => self.pointer = address,
                _ => {}
            }
        }
        Ok(())
    }

    /// Section 6.2.2: reads start at the pointer and auto-increment.
    fn read(&mut self, buffer: &mut [u8]) -> Result<(), SimFault> {
        let start = usize::from(self.pointer);
        let reads_data = start <= usize::from(DATA_END) && start + buffer.len() > usize::from(DATA);
        if reads_data && self.mode() == MODE_NORMAL {
            // Normal mode measures continuously; with conversions taking no time, every read
            // of the data block sees the current inputs.
            self.convert();
        }
        for byte in buffer {
            *byte = self.register(self.pointer);
            self.pointer = self.pointer.wrapping_add(1);
        }
        Ok(())
    }

    /// Temperature 21 °C ± 1.5 and humidity 45 % ∓ 5 (warmer air is relatively drier) over
    /// ten minutes, pressure 1013 hPa ± 2 over an hour, around whatever `set_input` set.
    fn advance(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let weather = (TAU * seconds / WEATHER_PERIOD.as_secs_f64() + self.drift_phase).sin();
        let pressure = (TAU * seconds / PRESSURE_PERIOD.as_secs_f64() + self.drift_phase).sin();
        self.drift = Environment { temperature: 1.5 * weather, humidity: -5.0 * weather, pressure: 2.0 * pressure };
    }

    /// Non-finite values are refused (false), as they would stand for no air at all.
    fn set_input(&mut self, name: &str, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        match name {
            "temperature" => self.base.temperature = value,
            "humidity" => self.base.humidity = value,
            "pressure" => self.base.pressure = value,
            _ => return false,
        }
        true
    }

    fn inspect(&self, name: &str) -> Option<f64> {
        let inputs = self.inputs();
        match name {
            "temperature" => Some(inputs.temperature),
            "humidity" => Some(inputs.humidity),
            "pressure" => Some(inputs.pressure),
            // Both 01 and 10 are forced mode (section 5.4.5).
            "mode" => Some(match self.mode() {
                MODE_SLEEP => 0.0,
                MODE_NORMAL => 3.0,
                _ => 1.0,
            }),
            "conversions" => Some(self.conversions as f64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on the first unexpected error.

    use super::*;
    use crate::registers::{MODE_FORCED, OVERSAMPLING_1X, STATUS};

    /// ctrl_meas with osrs_t 1x, osrs_p 1x, sleep.
    const ONE_X: u8 = (OVERSAMPLING_1X << OSRS_T_SHIFT) | (OVERSAMPLING_1X << OSRS_P_SHIFT);

    fn read(sim: &mut Bme280Sim, address: u8, len: usize) -> Vec<u8> {
        sim.write(&[address]).unwrap();
        let mut buffer = vec![0; len];
        sim.read(&mut buffer).unwrap();
        buffer
    }

    fn write(sim: &mut Bme280Sim, bytes: &[u8]) {
        sim.write(bytes).unwrap();
    }

    /// The data registers decoded and compensated as a driver would: (°C, %RH, hPa).
    fn reading(sim: &mut Bme280Sim) -> (f64, f64, f64) {
        let data = read(sim, DATA, 8);
        let twenty_bit =
            |bytes: &[u8]| (u32::from(bytes[0]) << 12) | (u32::from(bytes[1]) << 4) | (u32::from(bytes[2]) >> 4);
        let calibration = Calibration::EXAMPLE;
        let (celsius, t_fine) = compensation::temperature(&calibration, twenty_bit(&data[3..6]));
        let pascal = compensation::pressure(&calibration, t_fine, twenty_bit(&data[0..3]));
        let humidity = compensation::humidity(&calibration, t_fine, u32::from(u16::from_be_bytes([data[6], data[7]])));
        (celsius, humidity, pascal / 100.0)
    }

    fn forced_measurement(sim: &mut Bme280Sim) {
        write(sim, &[CTRL_HUM, OVERSAMPLING_1X, CTRL_MEAS, ONE_X | MODE_FORCED]);
    }

    const RESET_DATA: [u8; 8] = [0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00];

    #[test]
    fn power_on_state_matches_table_18() {
        let mut sim = Bme280Sim::new();
        assert_eq!(read(&mut sim, CHIP_ID, 1), [0x60]);
        assert_eq!(read(&mut sim, RESET, 1), [0x00]);
        assert_eq!(read(&mut sim, CTRL_HUM, 4), [0x00; 4], "ctrl_hum, status, ctrl_meas, config");
        assert_eq!(read(&mut sim, DATA, 8), RESET_DATA);
        assert_eq!(sim.inspect("mode"), Some(0.0));
    }

    #[test]
    fn reads_auto_increment_through_the_calibration_blocks() {
        let mut sim = Bme280Sim::new();
        let (block_1, block_2) = Calibration::EXAMPLE.to_registers();
        assert_eq!(read(&mut sim, CALIBRATION_1, BLOCK_1_LEN), block_1);
        assert_eq!(read(&mut sim, CALIBRATION_2, BLOCK_2_LEN), block_2);
    }

    #[test]
    fn writes_take_address_and_data_pairs() {
        let mut sim = Bme280Sim::new();
        write(&mut sim, &[CTRL_HUM, 0b101, CONFIG, 0b0001_0000]);
        assert_eq!(read(&mut sim, CTRL_HUM, 1), [0b101]);
        assert_eq!(read(&mut sim, STATUS, 1), [0x00], "not written by auto-increment");
        assert_eq!(read(&mut sim, CONFIG, 1), [0b0001_0000]);
    }

    #[test]
    fn read_only_registers_ignore_writes() {
        let mut sim = Bme280Sim::new();
        write(&mut sim, &[CHIP_ID, 0x58, STATUS, 0xFF, DATA, 0x12, CALIBRATION_1, 0x00, RESET, 0x01]);
        assert_eq!(read(&mut sim, CHIP_ID, 1), [0x60]);
        assert_eq!(read(&mut sim, STATUS, 1), [0x00]);
        assert_eq!(read(&mut sim, DATA, 8), RESET_DATA);
        assert_eq!(read(&mut sim, CALIBRATION_1, 1), [0x70]);
        assert_eq!(read(&mut sim, RESET, 1), [0x00]);
    }

    #[test]
    fn soft_reset_restores_the_defaults() {
        let mut sim = Bme280Sim::new();
        write(&mut sim, &[CONFIG, 0b1010_0000]);
        forced_measurement(&mut sim);
        assert_ne!(read(&mut sim, DATA, 8), RESET_DATA);
        write(&mut sim, &[RESET, SOFT_RESET]);
        assert_eq!(read(&mut sim, CTRL_HUM, 4), [0x00; 4]);
        assert_eq!(read(&mut sim, DATA, 8), RESET_DATA);
        assert_eq!(read(&mut sim, CHIP_ID, 1), [0x60]);
        assert_eq!(read(&mut sim, CALIBRATION_1, BLOCK_1_LEN), Calibration::EXAMPLE.to_registers().0);
    }

    #[test]
    fn forced_mode_measures_once_and_returns_to_sleep() {
        let mut sim = Bme280Sim::new();
        assert!(sim.set_input("temperature", 25.0));
        assert!(sim.set_input("humidity", 60.0));
        assert!(sim.set_input("pressure", 1000.0));
        forced_measurement(&mut sim);
        assert_eq!(read(&mut sim, CTRL_MEAS, 1), [ONE_X], "mode back to sleep, oversampling kept");
        assert_eq!(sim.inspect("conversions"), Some(1.0));
        let (celsius, humidity, hectopascal) = reading(&mut sim);
        assert!((celsius - 25.0).abs() <= 0.003, "{celsius}");
        assert!((humidity - 60.0).abs() <= 0.005, "{humidity}");
        assert!((hectopascal - 1000.0).abs() <= 0.014, "{hectopascal}");

        // The data hold still until the next measurement.
        assert!(sim.set_input("temperature", 30.0));
        assert!((reading(&mut sim).0 - 25.0).abs() <= 0.003);
        forced_measurement(&mut sim);
        assert!((reading(&mut sim).0 - 30.0).abs() <= 0.003);
    }

    #[test]
    fn one_x_oversampling_gives_16_bit_resolution() {
        let mut sim = Bme280Sim::new();
        forced_measurement(&mut sim);
        let data = read(&mut sim, DATA, 8);
        assert_eq!((data[2], data[5]), (0x00, 0x00), "xlsb of pressure and temperature");
    }

    #[test]
    fn skipped_measurements_keep_the_reset_value() {
        let mut sim = Bme280Sim::new();
        // Temperature skipped (osrs_t 000), pressure 1x, humidity left at 000.
        write(&mut sim, &[CTRL_MEAS, (OVERSAMPLING_1X << OSRS_P_SHIFT) | MODE_FORCED]);
        let data = read(&mut sim, DATA, 8);
        assert_eq!(data[3..], [0x80, 0x00, 0x00, 0x80, 0x00], "temperature and humidity");
        assert_ne!(data[..3], [0x80, 0x00, 0x00], "pressure");
    }

    #[test]
    fn ctrl_hum_takes_effect_at_the_next_ctrl_meas_write() {
        let mut sim = Bme280Sim::new();
        write(&mut sim, &[CTRL_MEAS, ONE_X | MODE_NORMAL]);
        write(&mut sim, &[CTRL_HUM, OVERSAMPLING_1X]);
        assert_eq!(read(&mut sim, DATA + 6, 2), [0x80, 0x00], "humidity still skipped");
        write(&mut sim, &[CTRL_MEAS, ONE_X | MODE_NORMAL]);
        assert_ne!(read(&mut sim, DATA + 6, 2), [0x80, 0x00]);
    }

    #[test]
    fn normal_mode_follows_the_inputs() {
        let mut sim = Bme280Sim::new();
        write(&mut sim, &[CTRL_HUM, OVERSAMPLING_1X, CTRL_MEAS, ONE_X | MODE_NORMAL]);
        assert_eq!(sim.inspect("mode"), Some(3.0));
        for celsius in [30.0, -5.0] {
            assert!(sim.set_input("temperature", celsius));
            assert!((reading(&mut sim).0 - celsius).abs() <= 0.003);
        }
    }

    #[test]
    fn config_writes_are_ignored_in_normal_mode() {
        let mut sim = Bme280Sim::new();
        write(&mut sim, &[CTRL_MEAS, ONE_X | MODE_NORMAL, CONFIG, 0b0001_0000]);
        assert_eq!(read(&mut sim, CONFIG, 1), [0x00]);
    }

    #[test]
    fn drift_is_deterministic_and_bounded() {
        let mut sim = Bme280Sim::new();
        let mut seen = Vec::new();
        for minute in 0..120 {
            sim.advance(Duration::from_secs(minute * 60));
            let inputs = sim.inputs();
            assert!((19.5..=22.5).contains(&inputs.temperature), "{inputs:?}");
            assert!((40.0..=50.0).contains(&inputs.humidity), "{inputs:?}");
            assert!((1011.25..=1015.25).contains(&inputs.pressure), "{inputs:?}");
            seen.push(inputs);
        }
        sim.advance(Duration::from_secs(37 * 60));
        assert_eq!(sim.inputs(), seen[37], "same elapsed time, same air");
        assert_ne!(seen[0], seen[2], "the air moves");
    }

    #[test]
    fn chips_at_the_two_addresses_drift_apart() {
        let mut primary = Bme280Sim::at(0x76);
        let mut secondary = Bme280Sim::at(0x77);
        primary.advance(Duration::from_secs(60));
        secondary.advance(Duration::from_secs(60));
        assert_ne!(primary.inspect("temperature"), secondary.inspect("temperature"));
    }

    #[test]
    fn set_input_knows_three_finite_inputs() {
        let mut sim = Bme280Sim::new();
        assert!(sim.set_input("pressure", 990.0));
        assert_eq!(sim.inspect("pressure"), Some(990.0));
        assert!(!sim.set_input("altitude", 10.0));
        assert!(!sim.set_input("temperature", f64::NAN));
        assert_eq!(sim.inspect("temperature"), Some(21.0));
        assert_eq!(sim.inspect("altitude"), None);
    }
}
