//! INA219 registers, bit fields and the datasheet's conversions (TI SBOS448G, December 2015).
//!
//! Both the adapter (for its read-back check) and the simulated chip use these, so the two
//! agree on the register map by construction; the arithmetic is checked against the datasheet
//! in the unit tests below.

use device::{DeviceError, Options};
use ina219::configuration::{Configuration, ShuntVoltageRange};

/// Register pointers (§8.6.1, Table 2 "Summary of Register Set"). All registers are 16 bits
/// wide and sent most significant byte first (§8.5.6).
pub(crate) const CONFIGURATION: u8 = 0x00;
pub(crate) const SHUNT_VOLTAGE: u8 = 0x01;
pub(crate) const BUS_VOLTAGE: u8 = 0x02;
pub(crate) const POWER: u8 = 0x03;
pub(crate) const CURRENT: u8 = 0x04;
pub(crate) const CALIBRATION: u8 = 0x05;

// Configuration register fields (§8.6.2.1, Figure 19).
/// RST: writing 1 resets every register to its power-on value; the bit clears itself.
pub(crate) const CONFIG_RESET: u16 = 0b1000_0000_0000_0000;
/// BRNG: 1 selects the 32 V bus range, 0 the 16 V range.
pub(crate) const CONFIG_BUS_RANGE_32V: u16 = 0b0010_0000_0000_0000;
/// PG1..PG0: shunt PGA gain; the shunt range is ±40 mV × 2^PG.
pub(crate) const CONFIG_PGA: u16 = 0b0001_1000_0000_0000;
pub(crate) const CONFIG_PGA_SHIFT: u32 = 11;
/// MODE3..MODE1: operating mode (§8.6.2.1, "Mode Settings" table).
pub(crate) const CONFIG_MODE: u16 = 0b0000_0000_0000_0111;
/// MODE bit 1: the shunt voltage is converted.
pub(crate) const MODE_SHUNT: u16 = 0b0000_0000_0000_0001;
/// MODE bit 2: the bus voltage is converted.
pub(crate) const MODE_BUS: u16 = 0b0000_0000_0000_0010;
/// MODE bit 3: conversions run continuously rather than once per configuration write.
pub(crate) const MODE_CONTINUOUS: u16 = 0b0000_0000_0000_0100;
/// Power-on value: 32 V range, PGA ÷8 (±320 mV), 12-bit ADCs, shunt and bus continuous.
pub(crate) const CONFIG_RESET_VALUE: u16 = 0b0011_1001_1001_1111;

// Bus voltage register fields (§8.6.3.2, Figure 24).
/// BD12..BD0 sit above three flag bits.
pub(crate) const BUS_VOLTAGE_SHIFT: u32 = 3;
/// CNVR: a conversion has completed since the power register was last read.
pub(crate) const BUS_CONVERSION_READY: u16 = 0b0000_0000_0000_0010;
/// OVF: the current or power calculation overflowed.
pub(crate) const BUS_MATH_OVERFLOW: u16 = 0b0000_0000_0000_0001;

/// FS0, the calibration register's lowest bit, is void and always reads 0 (§8.6.4.1, Figure 27).
pub(crate) const CALIBRATION_VOID: u16 = 0b0000_0000_0000_0001;

/// Shunt voltage LSB: 10 µV at every PGA setting (§8.6.3.1).
pub(crate) const SHUNT_LSB_V: f64 = 10e-6;
/// Bus voltage LSB: 4 mV (§8.6.3.2).
pub(crate) const BUS_LSB_V: f64 = 4e-3;
/// Shunt range at PGA gain 1 in shunt LSBs (±40 mV); each PG step doubles it.
pub(crate) const SHUNT_RANGE_GAIN_1: i32 = 4_000;
/// Full scale of the bus register in LSBs: 32 V, or 16 V with BRNG clear (§8.6.3.2).
pub(crate) const BUS_FULL_SCALE_32V: i32 = 8_000;
pub(crate) const BUS_FULL_SCALE_16V: i32 = 4_000;
/// Current register = shunt register × calibration / 4096 (§8.5.1).
pub(crate) const CURRENT_DIVISOR: i64 = 4_096;
/// Power register = current register × bus register / 5000 (§8.5.1).
pub(crate) const POWER_DIVISOR: i64 = 5_000;

/// The fixed scaling constant of the calibration equation, Cal = trunc(0.04096 / (Current_LSB ×
/// R_shunt)) (§8.5.1).
const CALIBRATION_SCALE: f64 = 0.04096;
/// Power_LSB = 20 × Current_LSB (§8.5.1).
const POWER_LSB_PER_CURRENT_LSB: f64 = 20.0;
/// Current_LSB = maximum expected current / 2^15 (§8.5.1).
const CURRENT_STEPS: f64 = 32_768.0;
/// Calibration values must stay below 2^16 to fit the register.
const CALIBRATION_LIMIT: f64 = 65_536.0;
/// The shunt voltage ranges the PGA offers, narrowest first (§8.6.2.1, "PG Bit Settings").
const SHUNT_RANGES: [(f64, ShuntVoltageRange); 4] = [
    (0.040, ShuntVoltageRange::Fsr40mv),
    (0.080, ShuntVoltageRange::Fsr80mv),
    (0.160, ShuntVoltageRange::Fsr160mv),
    (0.320, ShuntVoltageRange::Fsr320mv),
];

/// Option names the driver accepts in the board file.
pub(crate) const SHUNT_OHMS: &str = "shunt_ohms";
pub(crate) const MAX_CURRENT_A: &str = "max_current_a";
pub(crate) const DEFAULT_SHUNT_OHMS: f64 = 0.1;
pub(crate) const DEFAULT_MAX_CURRENT_A: f64 = 3.2;

/// The measurement setup derived from the board file's options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    pub(crate) shunt_ohms: f64,
    pub(crate) max_current_a: f64,
    /// The calibration register value (§8.5.1), with the void bit FS0 clear.
    pub(crate) calibration: u16,
    /// The narrowest PGA range that still holds max_current_a × shunt_ohms.
    pub(crate) shunt_range: ShuntVoltageRange,
}

impl Settings {
    /// Validates the options: unknown names, non-numbers and values the chip cannot measure
    /// are configuration errors.
    pub(crate) fn from_options(options: &Options) -> Result<Self, DeviceError> {
        options.check_known(crate::DRIVER, crate::OPTIONS)?;
        let shunt_ohms = options.float_or(SHUNT_OHMS, DEFAULT_SHUNT_OHMS)?;
        if !(shunt_ohms.is_finite() && shunt_ohms > 0.0) {
            return Err(DeviceError::Config(format!(
                "option {SHUNT_OHMS:?} = {shunt_ohms} is out of range: the shunt resistance must be a positive number of ohms"
            )));
        }
        let max_current_a = options.float_or(MAX_CURRENT_A, DEFAULT_MAX_CURRENT_A)?;
        if !(max_current_a.is_finite() && max_current_a > 0.0) {
            return Err(DeviceError::Config(format!(
                "option {MAX_CURRENT_A:?} = {max_current_a} is out of range: the maximum current must be a positive number of amperes"
            )));
        }
        let shunt_volts = max_current_a * shunt_ohms;
        let Some(shunt_range) = shunt_range_for(shunt_volts) else {
            return Err(DeviceError::Config(format!(
                "option {MAX_CURRENT_A:?} = {max_current_a} with {SHUNT_OHMS:?} = {shunt_ohms} drops {} mV across the shunt, \
                 beyond the INA219's ±320 mV shunt range: max_current_a may be at most {} A with this shunt",
                round_to(shunt_volts * 1e3, 6),
                round_to(0.320 / shunt_ohms, 6)
            )));
        };
        let raw = calibration_exact(max_current_a, shunt_ohms);
        if raw >= CALIBRATION_LIMIT {
            // A calibration value this large only buys current resolution finer than the 10 µV
            // shunt LSB, so the user loses nothing by raising max_current_a.
            return Err(DeviceError::Config(format!(
                "option {MAX_CURRENT_A:?} = {max_current_a} with {SHUNT_OHMS:?} = {shunt_ohms} needs a calibration value of {}, \
                 beyond the 16-bit register: max_current_a must be more than {} A with this shunt",
                raw.trunc(),
                round_to(CALIBRATION_SCALE * CURRENT_STEPS / (CALIBRATION_LIMIT * shunt_ohms), 6)
            )));
        }
        // In range by the two checks above: 0.32 V across the shunt gives 4194.
        let calibration = (raw as u16) & !CALIBRATION_VOID;
        Ok(Self { shunt_ohms, max_current_a, calibration, shunt_range })
    }

    /// The configuration register the adapter writes: the power-on defaults (32 V bus range,
    /// 12-bit conversions, shunt and bus continuous) with the PGA narrowed to the shunt range.
    pub(crate) fn configuration(&self) -> Configuration {
        Configuration { shunt_voltage_range: self.shunt_range, ..Configuration::default() }
    }

    /// The current register's LSB in amperes for the calibration value actually written.
    ///
    /// This is derived back from the truncated register value rather than taken as
    /// max_current_a / 2^15, so the truncation does not bias every reading.
    pub(crate) fn current_lsb(&self) -> f64 {
        current_lsb_for(self.calibration, self.shunt_ohms)
    }

    /// The power register's LSB in watts (§8.5.1).
    pub(crate) fn power_lsb(&self) -> f64 {
        POWER_LSB_PER_CURRENT_LSB * self.current_lsb()
    }
}

/// Cal = 0.04096 / (Current_LSB × R_shunt) with Current_LSB = max_current / 2^15, before
/// truncation (§8.5.1).
pub(crate) fn calibration_exact(max_current_a: f64, shunt_ohms: f64) -> f64 {
    let current_lsb = max_current_a / CURRENT_STEPS;
    CALIBRATION_SCALE / (current_lsb * shunt_ohms)
}

/// The current LSB in amperes that a calibration value gives with this shunt (§8.5.1, solved for
/// Current_LSB).
pub(crate) fn current_lsb_for(calibration: u16, shunt_ohms: f64) -> f64 {
    CALIBRATION_SCALE / (f64::from(calibration) * shunt_ohms)
}

/// The narrowest PGA range whose full scale holds `shunt_volts`.
pub(crate) fn shunt_range_for(shunt_volts: f64) -> Option<ShuntVoltageRange> {
    // The tolerance matters: 3.2 A × 0.1 Ω is 0.32000000000000006 in binary floating point.
    SHUNT_RANGES.iter().find(|(full_scale, _)| shunt_volts <= *full_scale + 1e-12).map(|&(_, range)| range)
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    // Tests assert on known-good values; a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use device::Value;

    use super::*;

    fn settings(options: &[(&str, f64)]) -> Result<Settings, DeviceError> {
        let options = Options(options.iter().map(|&(name, value)| (name.to_owned(), Value::Float(value))).collect());
        Settings::from_options(&options)
    }

    #[track_caller]
    fn check_calibration(shunt_ohms: f64, max_current_a: f64, expected: u16) {
        let settings = settings(&[(SHUNT_OHMS, shunt_ohms), (MAX_CURRENT_A, max_current_a)]).unwrap();
        assert_eq!(settings.calibration, expected, "shunt {shunt_ohms} Ω, max {max_current_a} A");
    }

    #[test]
    fn default_calibration_follows_the_datasheet_formula() {
        // Current_LSB = 3.2 A / 2^15 = 97.65625 µA; Cal = trunc(0.04096 / (97.65625 µA × 0.1 Ω))
        // = trunc(4194.304) = 4194.
        check_calibration(0.1, 3.2, 4194);
    }

    #[test]
    fn calibration_for_a_round_current_lsb_is_exact() {
        // Current_LSB = 3.2768 A / 2^15 = 100 µA exactly: Cal = 0.04096 / (100 µA × 0.05 Ω) = 8192.
        check_calibration(0.05, 3.2768, 8192);
    }

    #[test]
    fn calibration_keeps_the_void_bit_clear() {
        // trunc(0.04096 / (2 A / 2^15 × 0.1 Ω)) = trunc(6710.88) = 6710, already even;
        // 1.95 A gives trunc(6883.01) = 6883, written as 6882.
        check_calibration(0.1, 2.0, 6710);
        check_calibration(0.1, 1.95, 6882);
    }

    #[test]
    fn current_lsb_comes_from_the_register_value() {
        let settings = settings(&[]).unwrap();
        let lsb = settings.current_lsb();
        // 0.04096 / (4194 × 0.1) = 97.663 µA, close to the nominal 97.656 µA.
        assert!((lsb - 97.663_3e-6).abs() < 1e-9, "{lsb}");
        assert!((settings.power_lsb() - 20.0 * lsb).abs() < 1e-15);
    }

    #[test]
    fn pga_range_is_the_narrowest_that_holds_the_full_scale_shunt_voltage() {
        assert_eq!(shunt_range_for(0.320), Some(ShuntVoltageRange::Fsr320mv));
        assert_eq!(shunt_range_for(0.161), Some(ShuntVoltageRange::Fsr320mv));
        assert_eq!(shunt_range_for(0.160), Some(ShuntVoltageRange::Fsr160mv));
        assert_eq!(shunt_range_for(0.05), Some(ShuntVoltageRange::Fsr80mv));
        assert_eq!(shunt_range_for(0.0205), Some(ShuntVoltageRange::Fsr40mv));
        assert_eq!(shunt_range_for(0.321), None);
    }

    #[test]
    fn configuration_for_the_defaults_is_the_power_on_value() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.configuration().as_bits(), CONFIG_RESET_VALUE);
    }

    #[test]
    fn configuration_narrows_the_pga_for_small_shunt_voltages() {
        // 0.5 A × 0.1 Ω = 50 mV: PGA ÷2 (PG = 01), otherwise the power-on value.
        let settings = settings(&[(MAX_CURRENT_A, 0.5)]).unwrap();
        assert_eq!(settings.configuration().as_bits(), 0b0010_1001_1001_1111);
    }
}
