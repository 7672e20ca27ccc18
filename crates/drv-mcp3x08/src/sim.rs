//! A bit-level model of the MCP3008 and MCP3208 for the mock SPI bus.
//!
//! The model follows the serial protocol of §5.0 and Figures 5-1 and 5-2 (the same in DS21295
//! and DS21298) clock by clock, independently of the byte framing the driver uses:
//! - after chip select falls, DIN zeros are ignored; the first 1 is the start bit;
//! - SGL/DIFF and D2, D1, D0 follow; the input is sampled once D0 is in;
//! - one more clock completes the sample, then the chip outputs a low null bit, the output code
//!   MSB first, the code again LSB first (sharing B0), and zeros for as long as clocks come;
//! - before the null bit, DOUT is Hi-Z; the simulated board has a pull-up on MISO, so those bits
//!   read 1 ([`HI_Z`]). The driver masks them, so this choice does not hide driver bugs.
//!
//! DOUT changes on falling clock edges and the controller latches it on rising edges, so the
//! bit the controller reads on a clock was set up by the clocks before it: on the start bit's
//! own clock DOUT is still Hi-Z.
//!
//! Inputs are voltages against AGND, clamped to 0..VREF when set. A conversion quantises as
//! Equation 4-2 with truncation: code = ⌊2^bits × VIN / VREF⌋, full scale from VREF − 1 LSB up
//! (§4.1). A pseudo-differential conversion converts IN+ minus IN-, 0 when IN+ is at or below
//! IN- (§4.1).

use std::f64::consts::TAU;
use std::time::Duration;

use device::{SimFault, SpiChip};

use crate::protocol::{self, Model};
use crate::settings::{DEFAULT_VREF, Settings};

/// What the controller reads while DOUT is Hi-Z: the simulated MISO line is pulled up.
pub(crate) const HI_Z: bool = true;

// Clocks counted from the start bit's clock, 0 (Figure 5-1).
/// SGL/DIFF, D2, D1 and D0 are clocked in on clocks 1 to 4; the input is sampled after D0.
const LAST_COMMAND_CLOCK: u32 = 4;
/// The clock after D0 completes the sample and hold (DIN is don't care); the null bit is
/// latched by the controller on the clock after that.
const NULL_BIT_CLOCK: u32 = 6;

/// How far `advance` moves each input around its set level, as a fraction of VREF.
const DRIFT_FRACTION: f64 = 0.05;
/// The period of the drift.
const DRIFT_PERIOD_S: f64 = 120.0;

/// Simulated MCP3008 or MCP3208 with the voltages at its eight inputs.
#[derive(Debug, Clone)]
pub struct Mcp3x08Sim {
    model: Model,
    /// The voltage at the VREF pin; the driver's `vref` option should match it.
    vref: f64,
    /// Inputs as set by `set_input`; `advance` drifts the actual inputs around them.
    base: [f64; 8],
    inputs: [f64; 8],
    /// Clocks since the start bit of the current frame, or `None` while waiting for it.
    clocks_since_start: Option<u32>,
    /// SGL/DIFF and D2..D0 as clocked in so far.
    command: u8,
    /// The output code of the current frame's conversion.
    code: u16,
    /// How many inputs were sampled since power-on, for tests.
    conversions: u64,
}

impl Mcp3x08Sim {
    /// A chip with its inputs at 10 % to 80 % of `vref` (CH0 to CH7), so that every channel
    /// and every pseudo-differential pair reads something different.
    pub fn new(model: Model, vref: f64) -> Self {
        let base = std::array::from_fn(|channel| vref * (channel as f64 + 1.0) / 10.0);
        Self { model, vref, base, inputs: base, clocks_since_start: None, command: 0, code: 0, conversions: 0 }
    }

    pub fn model(&self) -> Model {
        self.model
    }

    /// One clock: DIN from the controller; returns DOUT as the controller latches it.
    fn clock(&mut self, din: bool) -> bool {
        let Some(previous) = self.clocks_since_start else {
            if din {
                self.clocks_since_start = Some(0);
                self.command = 0;
            }
            return HI_Z;
        };
        let clock = previous.saturating_add(1);
        self.clocks_since_start = Some(clock);
        match clock {
            1..=LAST_COMMAND_CLOCK => {
                self.command = (self.command << 1) | u8::from(din);
                if clock == LAST_COMMAND_CLOCK {
                    self.sample();
                }
                HI_Z
            }
            NULL_BIT_CLOCK => false,
            clock if clock < NULL_BIT_CLOCK => HI_Z,
            clock => self.data_bit(clock - NULL_BIT_CLOCK - 1),
        }
    }

    /// Bit `index` after the null bit: B(n-1)..B0, then B1..B(n-1), then zeros (Figure 5-2).
    fn data_bit(&self, index: u32) -> bool {
        let bits = self.model.bits();
        let shift = if index < bits {
            bits - 1 - index
        } else if index < 2 * bits - 1 {
            index - bits + 1
        } else {
            return false;
        };
        (self.code >> shift) & 1 == 1
    }

    /// Samples the input the command selects and converts it (Table 5-2, Equation 4-2).
    fn sample(&mut self) {
        let channel = usize::from(self.command & protocol::CHANNEL);
        let volts = if self.command & protocol::SINGLE_ENDED != 0 {
            self.inputs[channel]
        } else {
            // CH0/CH1, CH2/CH3, …: the partner differs in D0 only.
            (self.inputs[channel] - self.inputs[channel ^ 1]).max(0.0)
        };
        let counts = (volts * f64::from(self.model.codes()) / self.vref).floor();
        self.code = counts.clamp(0.0, f64::from(self.model.max_code())) as u16;
        self.conversions += 1;
    }
}

/// Builds the simulated chip for a board-file entry. The reference comes from the same options
/// the driver reads; invalid options fall back to the default, since the driver reports them.
pub(crate) fn from_options(model: Model, options: &device::Options) -> Mcp3x08Sim {
    let vref = Settings::from_options(model, options).map_or(DEFAULT_VREF, |settings| settings.vref);
    Mcp3x08Sim::new(model, vref)
}

impl SpiChip for Mcp3x08Sim {
    /// A new frame begins: the chip waits for a start bit (§5.0).
    fn select(&mut self) {
        self.clocks_since_start = None;
    }

    fn exchange(&mut self, mosi: u8) -> Result<u8, SimFault> {
        let mut miso = 0;
        for bit in (0..8).rev() {
            miso |= u8::from(self.clock((mosi >> bit) & 1 == 1)) << bit;
        }
        Ok(miso)
    }

    /// Raising CS ends the frame, even in the middle of a command or of the data (§5.0).
    fn deselect(&mut self) {
        self.clocks_since_start = None;
    }

    /// Each input swings by ±5 % of VREF over two minutes around its set level, each with its
    /// own phase.
    fn advance(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (channel, (input, base)) in self.inputs.iter_mut().zip(self.base).enumerate() {
            let phase = TAU * channel as f64 / 8.0;
            let swing = DRIFT_FRACTION * self.vref * (TAU * seconds / DRIFT_PERIOD_S + phase).sin();
            *input = (base + swing).clamp(0.0, self.vref);
        }
    }

    /// `ch0` to `ch7`: the input voltage against AGND, clamped to 0..VREF.
    fn set_input(&mut self, name: &str, value: f64) -> bool {
        match protocol::channel_by_name(name) {
            Some(channel) if value.is_finite() => {
                let volts = value.clamp(0.0, self.vref);
                (self.base[channel], self.inputs[channel]) = (volts, volts);
                true
            }
            _ => false,
        }
    }

    /// `ch0` to `ch7`: the input voltage; `conversions`: inputs sampled since power-on.
    fn inspect(&self, name: &str) -> Option<f64> {
        match name {
            "conversions" => Some(self.conversions as f64),
            "vref" => Some(self.vref),
            _ => protocol::channel_by_name(name).map(|channel| self.inputs[channel]),
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests assert on known-good values; a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Clocks `mosi` through the chip within one chip select, as the mock bus does.
    fn frame(chip: &mut Mcp3x08Sim, mosi: &[u8]) -> Vec<u8> {
        chip.select();
        let miso = mosi.iter().map(|&byte| chip.exchange(byte).unwrap()).collect();
        chip.deselect();
        miso
    }

    /// An MCP3008 whose CH3 reads code 0b10_0101_1010 = 602 and CH2 code 250.
    fn mcp3008() -> Mcp3x08Sim {
        let mut chip = Mcp3x08Sim::new(Model::Mcp3008, 3.3);
        assert!(chip.set_input("ch3", 602.5 * 3.3 / 1024.0));
        assert!(chip.set_input("ch2", 250.5 * 3.3 / 1024.0));
        chip
    }

    #[test]
    fn mcp3008_answers_as_in_figure_6_1() {
        // Start bit, then single-ended CH3: 1011.
        let miso = frame(&mut mcp3008(), &[0b0000_0001, 0b1011_0000, 0x00]);
        // Hi-Z (pulled up) until the null bit, then B9..B0.
        assert_eq!(miso, [0b1111_1111, 0b1111_1010, 0b0101_1010]);
    }

    #[test]
    fn mcp3208_answers_as_in_figure_6_1() {
        let mut chip = Mcp3x08Sim::new(Model::Mcp3208, 4.096);
        assert!(chip.set_input("ch5", 2.7485));
        // ⌊2.7485 V × 4096 / 4.096 V⌋ = 2748 = 0xABC.
        let miso = frame(&mut chip, &[0b0000_0111, 0b0100_0000, 0x00]);
        assert_eq!(miso, [0b1111_1111, 0b1110_1010, 0xBC]);
    }

    #[test]
    fn leading_zeros_are_ignored() {
        // The same command one byte later: the answer moves with it.
        let miso = frame(&mut mcp3008(), &[0x00, 0b0000_0001, 0b1011_0000, 0x00]);
        assert_eq!(miso, [0xFF, 0xFF, 0b1111_1010, 0b0101_1010]);
        // Start bit first: 1 1011 then don't cares; null bit on clock 6, data on clocks 7 to 16.
        let miso = frame(&mut mcp3008(), &[0b1101_1000, 0x00]);
        assert_eq!(miso, [0b1111_1101, 0b0010_1101], "Hi-Z ×6, null, B9; B8..B1");
    }

    #[test]
    fn data_repeats_lsb_first_then_zeros() {
        // 602 = 10 0101 1010. MSB first B9..B0, then B1..B9, then zeros.
        let miso = frame(&mut mcp3008(), &[0b0000_0001, 0b1011_0000, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(miso[..3], [0b1111_1111, 0b1111_1010, 0b0101_1010]);
        // B1..B8 = 1,0,1,1,0,1,0,0; B9 = 1, then zeros.
        assert_eq!(miso[3..], [0b1011_0100, 0b1000_0000, 0x00]);
    }

    #[test]
    fn start_bits_after_the_first_are_data_until_chip_select_rises() {
        let mut chip = mcp3008();
        let miso = frame(&mut chip, &[0b0000_0001, 0b1011_0000, 0xFF, 0xFF]);
        assert_eq!(miso[2], 0b0101_1010, "DIN is don't care during the data");
        assert_eq!(chip.inspect("conversions"), Some(1.0));
    }

    #[test]
    fn raising_chip_select_aborts_the_frame() {
        let mut chip = mcp3008();
        // The start bit and SGL/DIFF on the last two clocks, then CS rises: no conversion.
        assert_eq!(frame(&mut chip, &[0x00, 0b0000_0011]), [0xFF, 0xFF]);
        assert_eq!(chip.inspect("conversions"), Some(0.0));
        // The next frame starts afresh.
        assert_eq!(frame(&mut chip, &[0b0000_0001, 0b1010_0000, 0x00])[1..], [0b1111_1000, 250]);
        assert_eq!(chip.inspect("conversions"), Some(1.0));
    }

    #[test]
    fn differential_conversion_clamps_at_zero() {
        let mut chip = Mcp3x08Sim::new(Model::Mcp3008, 3.3);
        chip.set_input("ch4", 2.0);
        chip.set_input("ch5", 0.5);
        // CH4-CH5 (0100): ⌊1.5 × 1024 / 3.3⌋ = 465; CH5-CH4 (0101) is negative, so 0.
        assert_eq!(frame(&mut chip, &[0x01, 0b0100_0000, 0x00]), [0xFF, 0b1111_1001, 0b1101_0001]);
        assert_eq!(frame(&mut chip, &[0x01, 0b0101_0000, 0x00]), [0xFF, 0b1111_1000, 0x00]);
    }

    #[test]
    fn inputs_clamp_to_the_reference_and_full_scale_is_the_largest_code() {
        let mut chip = Mcp3x08Sim::new(Model::Mcp3208, 3.3);
        assert!(chip.set_input("ch7", 9.0));
        assert_eq!(chip.inspect("ch7"), Some(3.3));
        assert_eq!(frame(&mut chip, &[0b0000_0111, 0b1100_0000, 0x00]), [0xFF, 0b1110_1111, 0xFF]);
        assert!(chip.set_input("ch7", -1.0));
        assert_eq!(chip.inspect("ch7"), Some(0.0));
        assert!(!chip.set_input("ch8", 1.0));
        assert!(!chip.set_input("ch0", f64::NAN));
    }

    #[test]
    fn drift_is_deterministic_bounded_and_follows_the_set_inputs() {
        let mut first = Mcp3x08Sim::new(Model::Mcp3008, 3.3);
        let mut second = Mcp3x08Sim::new(Model::Mcp3008, 3.3);
        first.set_input("ch0", 3.3);
        second.set_input("ch0", 3.3);
        for seconds in [0, 7, 30, 61, 100, 3600] {
            first.advance(Duration::from_secs(seconds));
            second.advance(Duration::from_secs(seconds));
            for channel in 0..8 {
                let name = format!("ch{channel}");
                let volts = first.inspect(&name).unwrap();
                assert_eq!(Some(volts), second.inspect(&name));
                let base = if channel == 0 { 3.3 } else { 3.3 * (f64::from(channel) + 1.0) / 10.0 };
                assert!((volts - base).abs() <= 0.05 * 3.3 + 1e-12, "{name} {volts} V at {seconds} s");
                assert!((0.0..=3.3).contains(&volts), "{name} {volts} V at {seconds} s");
            }
        }
        // A quarter period in, CH0's swing is at its top: clamped to VREF.
        first.advance(Duration::from_secs(30));
        assert_eq!(first.inspect("ch0"), Some(3.3));
    }
}
