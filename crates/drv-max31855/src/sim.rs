//! A model of the MAX31855's serial output for the mock SPI bus.
//!
//! The chip has no registers and ignores MOSI (it has no data input). When chip select falls
//! it latches its latest conversion and clocks the 32-bit frame out MSB first (data sheet
//! 19-5793, "Serial Interface" and Table 2); past 32 bits the model sends 0s. Temperatures
//! are clamped to the chip's ranges and rounded to its resolution as the real converter does.

use std::f64::consts::TAU;
use std::time::Duration;

use device::{SimFault, SpiChip};

use crate::frame::{self, FAULT_REASONS};

/// How long the simulated oven takes to swing once around its set point.
const OVEN_PERIOD: Duration = Duration::from_secs(600);
/// How long the board around the converter takes to warm and cool once.
const BOARD_PERIOD: Duration = Duration::from_secs(1800);

/// Simulated MAX31855.
///
/// Inputs (`set_input`):
/// - `thermocouple` and `cold_junction`, in °C (finite values; the frame clamps them to
///   -270..=1800 and -55..=125);
/// - `fault`: the reason bits D2..D0 the chip reports, so codes combine: 0 none, 1 open
///   circuit (OC), 2 shorted to GND (SCG), 4 shorted to VCC (SCV), up to 7 for all three.
///
/// State (`inspect`): the three inputs, temperatures including the live board's drift, and
/// `frames` (how many frames the chip has latched).
#[derive(Debug, Clone)]
pub struct Max31855Sim {
    /// The temperatures as tests set them; the live board drifts around them.
    thermocouple: f64,
    cold_junction: f64,
    /// What the live board adds to the two temperatures (see `advance`).
    drift: (f64, f64),
    /// Reason bits D2..D0.
    fault: u32,
    /// The frame latched when chip select fell.
    latched: u32,
    /// Bytes clocked out since chip select fell.
    clocked: usize,
    frames: u64,
}

impl Default for Max31855Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Max31855Sim {
    /// A thermocouple in an oven at 200 °C, the converter on a board at 25 °C, no fault.
    pub fn new() -> Self {
        Self {
            thermocouple: 200.0,
            cold_junction: 25.0,
            drift: (0.0, 0.0),
            fault: 0,
            latched: 0,
            clocked: 0,
            frames: 0,
        }
    }

    fn temperatures(&self) -> (f64, f64) {
        (self.thermocouple + self.drift.0, self.cold_junction + self.drift.1)
    }
}

impl SpiChip for Max31855Sim {
    fn select(&mut self) {
        let (thermocouple, cold_junction) = self.temperatures();
        self.latched = frame::encode(thermocouple, cold_junction, self.fault);
        self.clocked = 0;
        self.frames += 1;
    }

    fn exchange(&mut self, mosi: u8) -> Result<u8, SimFault> {
        // The chip has no data input.
        let _ = mosi;
        let miso = self.latched.to_be_bytes().get(self.clocked).copied().unwrap_or(0x00);
        self.clocked += 1;
        Ok(miso)
    }

    /// Oven 200 °C ± 20 over ten minutes, board 25 °C ± 1 over half an hour, around whatever
    /// `set_input` set.
    fn advance(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        self.drift = (
            20.0 * (TAU * seconds / OVEN_PERIOD.as_secs_f64()).sin(),
            (TAU * seconds / BOARD_PERIOD.as_secs_f64()).sin(),
        );
    }

    /// Non-finite temperatures and fault codes other than 0 to 7 are refused (false).
    fn set_input(&mut self, name: &str, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        match name {
            "thermocouple" => self.thermocouple = value,
            "cold_junction" => self.cold_junction = value,
            "fault" if value.fract() == 0.0 && (0.0..=f64::from(FAULT_REASONS)).contains(&value) => {
                self.fault = value as u32;
            }
            _ => return false,
        }
        true
    }

    fn inspect(&self, name: &str) -> Option<f64> {
        let (thermocouple, cold_junction) = self.temperatures();
        match name {
            "thermocouple" => Some(thermocouple),
            "cold_junction" => Some(cold_junction),
            "fault" => Some(f64::from(self.fault)),
            "frames" => Some(self.frames as f64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clocks `count` bytes in one chip-select period.
    fn clock(sim: &mut Max31855Sim, count: usize) -> Vec<u8> {
        sim.select();
        let bytes = (0..count).map(|_| sim.exchange(0xA5).unwrap_or(0xEE)).collect();
        sim.deselect();
        bytes
    }

    #[test]
    fn frame_is_clocked_msb_first_then_zeros() {
        let mut sim = Max31855Sim::new();
        // 200 °C = 800 counts, 25 °C = 400 counts (Table 2).
        let expected = (800u32 << 18 | 400 << 4).to_be_bytes();
        assert_eq!(clock(&mut sim, 6), [&expected[..], &[0, 0]].concat());
        assert_eq!(sim.inspect("frames"), Some(1.0));
    }

    #[test]
    fn each_select_latches_a_new_frame() {
        let mut sim = Max31855Sim::new();
        let first = clock(&mut sim, 2);
        assert!(sim.set_input("thermocouple", -10.0));
        assert_ne!(clock(&mut sim, 2), first);
        // A short read (the 14-bit thermocouple only) also starts over at D31.
        assert!(sim.set_input("thermocouple", 200.0));
        assert_eq!(clock(&mut sim, 2), first);
    }

    #[test]
    fn fault_codes_are_the_reason_bits() {
        let mut sim = Max31855Sim::new();
        for code in 0..=7u8 {
            assert!(sim.set_input("fault", f64::from(code)));
            let frame = clock(&mut sim, 4);
            assert_eq!(frame[3] & 0b0111, code);
            assert_eq!(frame[1] & 0b0000_0001 != 0, code != 0, "D16 follows D2..D0");
        }
        assert!(!sim.set_input("fault", 8.0));
        assert!(!sim.set_input("fault", 1.5));
        assert!(!sim.set_input("fault", -1.0));
        assert_eq!(sim.inspect("fault"), Some(7.0));
    }

    #[test]
    fn inputs_are_finite_temperatures() {
        let mut sim = Max31855Sim::new();
        assert!(sim.set_input("cold_junction", 30.5));
        assert_eq!(sim.inspect("cold_junction"), Some(30.5));
        assert!(!sim.set_input("thermocouple", f64::NAN));
        assert!(!sim.set_input("pressure", 1.0));
        assert_eq!(sim.inspect("pressure"), None);
    }

    #[test]
    fn live_board_drifts_around_the_inputs() {
        let mut sim = Max31855Sim::new();
        sim.advance(OVEN_PERIOD / 4);
        assert!((sim.inspect("thermocouple").unwrap_or_default() - 220.0).abs() < 1e-9);
        sim.advance(BOARD_PERIOD / 4);
        assert!((sim.inspect("cold_junction").unwrap_or_default() - 26.0).abs() < 1e-9);
        sim.advance(Duration::ZERO);
        assert_eq!(sim.inspect("thermocouple"), Some(200.0));
    }
}
