//! The BME280's calibration (trimming) constants, its compensation formulas and their inverses.
//!
//! The chip reports raw ADC counts; turning them into °C, Pa and %RH takes the per-chip
//! trimming constants stored in its NVM and the formulas of the datasheet (Bosch
//! BST-BME280-DS002, section 4.2.3, in the double-precision form of section 8.1). The community
//! driver evaluates the same formulas in `f32`; the simulated chip runs them backwards to find
//! the raw counts that stand for a physical input.

/// The trimming constants `dig_T1` to `dig_H6` (datasheet 4.2.2, table 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Calibration {
    pub t1: u16,
    pub t2: i16,
    pub t3: i16,
    pub p1: u16,
    pub p2: i16,
    pub p3: i16,
    pub p4: i16,
    pub p5: i16,
    pub p6: i16,
    pub p7: i16,
    pub p8: i16,
    pub p9: i16,
    pub h1: u8,
    pub h2: i16,
    pub h3: u8,
    pub h4: i16,
    pub h5: i16,
    pub h6: i8,
}

/// Length of the first calibration block, 0x88 to 0xA1 (`dig_T1` to `dig_H1`).
pub(crate) const BLOCK_1_LEN: usize = 26;
/// Length of the second calibration block, 0xE1 to 0xE7 (`dig_H2` to `dig_H6`).
pub(crate) const BLOCK_2_LEN: usize = 7;

impl Calibration {
    /// Temperature and pressure constants of Bosch's worked compensation example (BMP280
    /// datasheet BST-BMP280-DS001, section 3.12, whose formulas the BME280 shares), with
    /// humidity constants widely used alongside them. `dig_H3` is 0, which also makes the
    /// datasheet's humidity formula and Bosch's SensorAPI variant (which the community driver
    /// follows, with an extra `1 + dig_H3 / 2^26 * var` factor) agree.
    pub const EXAMPLE: Calibration = Calibration {
        t1: 27504,
        t2: 26435,
        t3: -1000,
        p1: 36477,
        p2: -10685,
        p3: 3024,
        p4: 2855,
        p5: 140,
        p6: -7,
        p7: 15500,
        p8: -14600,
        p9: 6000,
        h1: 75,
        h2: 362,
        h3: 0,
        h4: 313,
        h5: 50,
        h6: 30,
    };

    /// The two register blocks as the chip stores them (table 16): 16-bit words little-endian,
    /// 0xA0 unused, and `dig_H4`/`dig_H5` as 12-bit values sharing the nibbles of 0xE5.
    pub fn to_registers(self) -> ([u8; BLOCK_1_LEN], [u8; BLOCK_2_LEN]) {
        let words = [
            self.t1,
            self.t2 as u16,
            self.t3 as u16,
            self.p1,
            self.p2 as u16,
            self.p3 as u16,
            self.p4 as u16,
            self.p5 as u16,
            self.p6 as u16,
            self.p7 as u16,
            self.p8 as u16,
            self.p9 as u16,
        ];
        let mut block_1 = [0; BLOCK_1_LEN];
        for (bytes, word) in block_1.chunks_exact_mut(2).zip(words) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        block_1[25] = self.h1;
        let [h2_lsb, h2_msb] = self.h2.to_le_bytes();
        // dig_H4 is 0xE4 [7:0] / 0xE5 [3:0]; dig_H5 is 0xE5 [7:4] / 0xE6 [7:0].
        let h4 = self.h4 as u16;
        let h5 = self.h5 as u16;
        let block_2 = [
            h2_lsb,
            h2_msb,
            self.h3,
            (h4 >> 4) as u8,
            ((h5 & 0b1111) << 4) as u8 | (h4 & 0b1111) as u8,
            (h5 >> 4) as u8,
            self.h6 as u8,
        ];
        (block_1, block_2)
    }
}

/// Largest raw temperature or pressure count: the ADC result is 20 bits wide (section 5.4.7).
pub(crate) const RAW_20_BIT_MAX: u32 = 0xF_FFFF;
/// Largest raw humidity count: 16 bits (section 5.4.9).
pub(crate) const RAW_16_BIT_MAX: u32 = 0xFFFF;

/// Temperature in °C and `t_fine`, the fine temperature that pressure and humidity
/// compensation take as input (section 8.1, `bme280_compensate_T_double`).
pub(crate) fn temperature(calibration: &Calibration, raw: u32) -> (f64, i32) {
    let c = calibration;
    let raw = f64::from(raw);
    let var1 = (raw / 16384.0 - f64::from(c.t1) / 1024.0) * f64::from(c.t2);
    let offset = raw / 131072.0 - f64::from(c.t1) / 8192.0;
    let var2 = offset * offset * f64::from(c.t3);
    // The datasheet truncates toward zero, as `as` does.
    let t_fine = (var1 + var2) as i32;
    ((var1 + var2) / 5120.0, t_fine)
}

/// Pressure in Pa (section 8.1, `bme280_compensate_P_double`).
pub(crate) fn pressure(calibration: &Calibration, t_fine: i32, raw: u32) -> f64 {
    let c = calibration;
    let var1 = f64::from(t_fine) / 2.0 - 64000.0;
    let var2 = var1 * var1 * f64::from(c.p6) / 32768.0;
    let var2 = var2 + var1 * f64::from(c.p5) * 2.0;
    let var2 = var2 / 4.0 + f64::from(c.p4) * 65536.0;
    let var1 = (f64::from(c.p3) * var1 * var1 / 524288.0 + f64::from(c.p2) * var1) / 524288.0;
    let var1 = (1.0 + var1 / 32768.0) * f64::from(c.p1);
    if var1 == 0.0 {
        // The datasheet's guard against a division by zero.
        return 0.0;
    }
    let p = 1048576.0 - f64::from(raw);
    let p = (p - var2 / 4096.0) * 6250.0 / var1;
    let var1 = f64::from(c.p9) * p * p / 2147483648.0;
    let var2 = p * f64::from(c.p8) / 32768.0;
    p + (var1 + var2 + f64::from(c.p7)) / 16.0
}

/// Relative humidity in % (section 8.1, `bme280_compensate_H_double`), without the final clamp
/// to 0–100 % so that it stays strictly monotonic for the inversion.
pub(crate) fn humidity(calibration: &Calibration, t_fine: i32, raw: u32) -> f64 {
    let c = calibration;
    let var = f64::from(t_fine) - 76800.0;
    let var = (f64::from(raw) - (f64::from(c.h4) * 64.0 + f64::from(c.h5) / 16384.0 * var))
        * (f64::from(c.h2) / 65536.0
            * (1.0 + f64::from(c.h6) / 67108864.0 * var * (1.0 + f64::from(c.h3) / 67108864.0 * var)));
    var * (1.0 - f64::from(c.h1) * var / 524288.0)
}

/// The raw temperature count on a grid of `step` counts whose compensated value is nearest to
/// `celsius`.
pub(crate) fn raw_temperature(calibration: &Calibration, celsius: f64, step: u32) -> u32 {
    invert(RAW_20_BIT_MAX, step, celsius, |raw| temperature(calibration, raw).0)
}

/// The raw pressure count on a grid of `step` counts whose compensated value is nearest to
/// `pascal`, at the fine temperature `t_fine`.
pub(crate) fn raw_pressure(calibration: &Calibration, t_fine: i32, pascal: f64, step: u32) -> u32 {
    invert(RAW_20_BIT_MAX, step, pascal, |raw| pressure(calibration, t_fine, raw))
}

/// The raw humidity count whose compensated value is nearest to `percent`, at the fine
/// temperature `t_fine`.
pub(crate) fn raw_humidity(calibration: &Calibration, t_fine: i32, percent: f64) -> u32 {
    invert(RAW_16_BIT_MAX, 1, percent, |raw| humidity(calibration, t_fine, raw))
}

/// Finds the raw count `k * step` in `0..=max` whose value under the monotonic `compensate`
/// is nearest to `target`, by binary search (the formulas have no closed-form inverse).
/// Targets beyond the ADC's range give the end of the range.
fn invert(max: u32, step: u32, target: f64, compensate: impl Fn(u32) -> f64) -> u32 {
    let step = step.max(1);
    let increasing = compensate(max) >= compensate(0);
    let reached = |index: u32| {
        let value = compensate(index * step);
        if increasing { value >= target } else { value <= target }
    };
    // The first grid index whose value reaches the target, or the last index.
    let (mut low, mut high) = (0, max / step);
    while low < high {
        let middle = low + (high - low) / 2;
        if reached(middle) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let found = low * step;
    match low.checked_sub(1).map(|index| index * step) {
        Some(before) if (compensate(before) - target).abs() <= (compensate(found) - target).abs() => before,
        _ => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAL: Calibration = Calibration::EXAMPLE;

    /// Bosch's worked example (BMP280 datasheet 3.12): adc_T 519888 and adc_P 415148 give
    /// 25.08 °C (t_fine 128422) and 100653.27 Pa with these constants.
    #[test]
    fn datasheet_example_compensates_to_the_published_values() {
        let (celsius, t_fine) = temperature(&CAL, 519888);
        assert_eq!(t_fine, 128422);
        assert!((celsius - 25.08).abs() < 0.005, "{celsius}");
        // 100653.258 Pa here: the published value is rounded from slightly different
        // intermediate rounding, a hundredth of a pascal apart.
        let pascal = pressure(&CAL, t_fine, 415148);
        assert!((pascal - 100653.27).abs() < 0.02, "{pascal}");
    }

    #[test]
    fn humidity_at_the_example_temperature() {
        // Section 8.1 worked by hand: var = 51622, so adc_H 30000 is 9810.5 counts above the
        // offset 20189.5, times 0.005651 per count, less 0.8 % for the dig_H1 curvature.
        let percent = humidity(&CAL, 128422, 30000);
        assert!((percent - 55.00).abs() < 0.005, "{percent}");
    }

    #[track_caller]
    fn check_temperature(celsius: f64, step: u32) {
        let raw = raw_temperature(&CAL, celsius, step);
        assert_eq!(raw % step, 0, "raw {raw} is off the grid of {step}");
        let (back, _) = temperature(&CAL, raw);
        // Half a grid step: at 20 bits one count is about 0.0003 °C (section 3.4.3).
        let half_step = f64::from(step) * 0.00032 / 2.0;
        assert!((back - celsius).abs() <= half_step, "{celsius} °C -> {raw} -> {back} °C");
    }

    #[test]
    fn temperature_round_trips_at_20_bits() {
        for celsius in [-40.0, -10.5, 0.0, 21.0, 25.08, 60.0, 85.0] {
            check_temperature(celsius, 1);
        }
    }

    #[test]
    fn temperature_round_trips_at_16_bits() {
        for celsius in [-40.0, 0.0, 25.0, 85.0] {
            check_temperature(celsius, 16);
        }
    }

    #[track_caller]
    fn check_pressure(celsius: f64, hectopascal: f64, step: u32) {
        let (_, t_fine) = temperature(&CAL, raw_temperature(&CAL, celsius, 1));
        let raw = raw_pressure(&CAL, t_fine, hectopascal * 100.0, step);
        let back = pressure(&CAL, t_fine, raw) / 100.0;
        // One count is about 0.17 Pa at 20 bits (section 3.4.2, 0.16 Pa at 16x).
        let half_step = f64::from(step) * 0.0018 / 2.0;
        assert!((back - hectopascal).abs() <= half_step, "{hectopascal} hPa -> {raw} -> {back} hPa");
    }

    #[test]
    fn pressure_round_trips_across_the_operating_range() {
        for (celsius, hectopascal) in [(25.0, 1000.0), (-40.0, 300.0), (85.0, 1100.0), (21.0, 1013.25)] {
            check_pressure(celsius, hectopascal, 1);
            check_pressure(celsius, hectopascal, 16);
        }
    }

    #[track_caller]
    fn check_humidity(celsius: f64, percent: f64) {
        let (_, t_fine) = temperature(&CAL, raw_temperature(&CAL, celsius, 1));
        let raw = raw_humidity(&CAL, t_fine, percent);
        let back = humidity(&CAL, t_fine, raw);
        // One count is under 0.01 %RH with these constants (section 3.4.1 quotes 0.008 %RH).
        assert!((back - percent).abs() <= 0.005, "{percent} % -> {raw} -> {back} %");
    }

    #[test]
    fn humidity_round_trips_across_the_operating_range() {
        for (celsius, percent) in [(25.0, 60.0), (-40.0, 0.0), (0.0, 100.0), (85.0, 45.0), (21.0, 45.0)] {
            check_humidity(celsius, percent);
        }
    }

    #[test]
    fn targets_beyond_the_adc_range_give_its_ends() {
        assert_eq!(raw_temperature(&CAL, 1000.0, 1), RAW_20_BIT_MAX);
        assert_eq!(raw_temperature(&CAL, -1000.0, 1), 0);
        assert_eq!(raw_humidity(&CAL, 128422, -1000.0), 0);
        assert_eq!(raw_humidity(&CAL, 128422, 1000.0), RAW_16_BIT_MAX);
    }

    #[test]
    fn calibration_registers_follow_table_16() {
        let (block_1, block_2) = CAL.to_registers();
        assert_eq!(block_1[..6], [0x70, 0x6B, 0x43, 0x67, 0x18, 0xFC], "dig_T1..dig_T3");
        assert_eq!(block_1[6..8], [0x7D, 0x8E], "dig_P1");
        assert_eq!(block_1[22..24], [0x70, 0x17], "dig_P9");
        assert_eq!(block_1[24..], [0x00, 75], "0xA0 unused, dig_H1");
        // dig_H4 = 313 = 0x139 and dig_H5 = 50 = 0x032 share 0xE5.
        assert_eq!(block_2, [0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 30]);
    }
}
