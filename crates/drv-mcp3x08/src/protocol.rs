//! The MCP3x08 serial protocol: the command bits, the 3-byte frame of one conversion, the
//! output code and the names of the inputs.
//!
//! References: Microchip DS21295 (MCP3004/3008) and DS21298 (MCP3204/3208). The two share
//! their section and table numbers for everything used here; they differ only in resolution,
//! which moves the command and the data within the frame.
//!
//! The simulated chip does not use the byte layouts here: it models the protocol clock by
//! clock, so a framing mistake in this file makes the tests fail instead of agreeing with
//! itself.

use device::DeviceError;

/// Which chip of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// MCP3008: 10-bit output codes (DS21295).
    Mcp3008,
    /// MCP3208: 12-bit output codes (DS21298).
    Mcp3208,
}

impl Model {
    /// The resolution in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Model::Mcp3008 => 10,
            Model::Mcp3208 => 12,
        }
    }

    /// The number of output codes, 1024 or 4096: the divisor of Equation 4-2.
    pub const fn codes(self) -> u16 {
        1 << self.bits()
    }

    /// The largest output code, reached from VREF − 1 LSB upwards (§4.1).
    pub const fn max_code(self) -> u16 {
        self.codes() - 1
    }

    /// The chip as the description names it.
    pub const fn name(self) -> &'static str {
        match self {
            Model::Mcp3008 => "MCP3008",
            Model::Mcp3208 => "MCP3208",
        }
    }

    /// The driver name board files use.
    pub const fn driver(self) -> &'static str {
        match self {
            Model::Mcp3008 => crate::MCP3008,
            Model::Mcp3208 => crate::MCP3208,
        }
    }

    /// Where the command and the answer sit in the 24 clocks of one 3-byte transfer.
    const fn framing(self) -> Framing {
        match self {
            Model::Mcp3008 => MCP3008_FRAMING,
            Model::Mcp3208 => MCP3208_FRAMING,
        }
    }
}

/// How an input is converted (SGL/DIFF, Table 5-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    /// CHn against AGND.
    Single,
    /// Pseudo-differential: CHn minus its partner CH(n xor 1), which the datasheet pairs as
    /// CH0/CH1, CH2/CH3, CH4/CH5 and CH6/CH7; 0 when IN+ is at or below IN- (§4.1).
    Differential,
}

// The five bits the controller sends, in order (§5.0; Table 5-2 "Configure Bits").
/// The start bit: the first clock with CS low and DIN high. Leading zeros are ignored.
pub(crate) const START: u8 = 0b1_0000;
/// SGL/DIFF: 1 converts CHn against AGND, 0 converts a pseudo-differential pair.
pub(crate) const SINGLE_ENDED: u8 = 0b0_1000;
/// D2..D0: the channel, or in pseudo-differential mode the IN+ channel of the pair.
pub(crate) const CHANNEL: u8 = 0b0_0111;
/// The number of channels D2..D0 select.
pub(crate) const CHANNELS: u8 = 8;

/// The positions of the command and the answer in one 24-clock transfer, as 24-bit words
/// (the first byte clocked is the most significant).
#[derive(Debug, Clone, Copy)]
struct Framing {
    /// The five command bits are shifted left by this, so that the last data bit of the answer
    /// falls on the last clock.
    command_shift: u32,
    /// The low null bit the chip outputs before the data; before it, DOUT is Hi-Z.
    null_bit: u32,
    /// The output code, most significant bit first.
    data: u32,
}

/// MCP3008 (DS21295 §6.1, Figure 6-1): byte 0 is seven leading zeros and the start bit, byte 1
/// begins with SGL/DIFF D2 D1 D0. The chip answers `? ? ? ? ? 0 B9 B8` in byte 1 and B7..B0
/// in byte 2.
const MCP3008_FRAMING: Framing =
    Framing { command_shift: 12, null_bit: 0b0000_0000_0000_0100_0000_0000, data: 0b0000_0000_0000_0011_1111_1111 };

/// MCP3208 (DS21298 §6.1, Figure 6-1): byte 0 is five leading zeros, the start bit, SGL/DIFF
/// and D2; byte 1 begins with D1 D0. The chip answers `? ? ? 0 B11 B10 B9 B8` in byte 1 and
/// B7..B0 in byte 2.
const MCP3208_FRAMING: Framing =
    Framing { command_shift: 14, null_bit: 0b0000_0000_0001_0000_0000_0000, data: 0b0000_0000_0000_1111_1111_1111 };

/// The three bytes that start one conversion of `channel` (0 to 7; higher bits are ignored).
pub(crate) fn request(model: Model, channel: u8, mode: InputMode) -> [u8; 3] {
    let sgl_diff = match mode {
        InputMode::Single => SINGLE_ENDED,
        InputMode::Differential => 0,
    };
    let command = START | sgl_diff | (channel & CHANNEL);
    let [_, bytes @ ..] = (u32::from(command) << model.framing().command_shift).to_be_bytes();
    bytes
}

/// The output code from the three bytes read back, after the plausibility checks.
///
/// The bits before the null bit are Hi-Z, so they are masked rather than checked: what they
/// read depends on the board's pull resistor, if any.
pub(crate) fn decode(model: Model, response: [u8; 3]) -> Result<u16, DeviceError> {
    if response == [0xFF; 3] {
        return Err(DeviceError::Chip(format!(
            "no response: MISO reads all 1s (the {} does not answer: chip absent, unpowered or not selected?)",
            model.name()
        )));
    }
    let framing = model.framing();
    let [high, middle, low] = response;
    let word = u32::from_be_bytes([0, high, middle, low]);
    if word & framing.null_bit != 0 {
        return Err(DeviceError::Chip(format!(
            "implausible response 0x{high:02X} 0x{middle:02X} 0x{low:02X}: the null bit before the data reads 1 \
             (is this an {}? check the SPI mode and clock speed)",
            model.name()
        )));
    }
    // The mask keeps the code within `model.bits()`, so it fits.
    Ok((word & framing.data) as u16)
}

/// Volts from an output code: VIN = code × VREF / 2^bits (Equation 4-2 solved for VIN), rounded
/// to 1 µV, well below the finest LSB (VREF/4096 ≥ 61 µV at 0.25 V), so reports are not noisy.
pub(crate) fn volts(model: Model, code: u16, vref: f64) -> f64 {
    let volts = f64::from(code) * vref / f64::from(model.codes());
    (volts * 1e6).round() / 1e6
}

/// Quantity names by D2..D0 in single-ended mode: volts and raw code.
const SINGLE_NAMES: [[&str; 2]; 8] = [
    ["ch0", "ch0_raw"],
    ["ch1", "ch1_raw"],
    ["ch2", "ch2_raw"],
    ["ch3", "ch3_raw"],
    ["ch4", "ch4_raw"],
    ["ch5", "ch5_raw"],
    ["ch6", "ch6_raw"],
    ["ch7", "ch7_raw"],
];

/// Quantity names by D2..D0 in pseudo-differential mode, IN+ first (Table 5-2).
const DIFFERENTIAL_NAMES: [[&str; 2]; 8] = [
    ["ch0_ch1", "ch0_ch1_raw"],
    ["ch1_ch0", "ch1_ch0_raw"],
    ["ch2_ch3", "ch2_ch3_raw"],
    ["ch3_ch2", "ch3_ch2_raw"],
    ["ch4_ch5", "ch4_ch5_raw"],
    ["ch5_ch4", "ch5_ch4_raw"],
    ["ch6_ch7", "ch6_ch7_raw"],
    ["ch7_ch6", "ch7_ch6_raw"],
];

/// The volts and raw quantity names of one conversion (`channel` 0 to 7).
pub(crate) fn names(channel: u8, mode: InputMode) -> [&'static str; 2] {
    let index = usize::from(channel & CHANNEL);
    match mode {
        InputMode::Single => SINGLE_NAMES[index],
        InputMode::Differential => DIFFERENTIAL_NAMES[index],
    }
}

/// The channel an input name (`ch0` to `ch7`) stands for.
pub(crate) fn channel_by_name(name: &str) -> Option<usize> {
    SINGLE_NAMES.iter().position(|[volts, _]| *volts == name)
}

#[cfg(test)]
mod tests {
    // Tests assert on known-good values; a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[track_caller]
    fn check_request(model: Model, channel: u8, mode: InputMode, expected: [u8; 3]) {
        assert_eq!(request(model, channel, mode), expected, "{model:?} channel {channel} {mode:?}");
    }

    #[test]
    fn mcp3008_request_has_seven_leading_zeros_then_the_start_bit() {
        // Figure 6-1: 0000 0001, SGL/DIFF D2 D1 D0 xxxx, xxxx xxxx.
        check_request(Model::Mcp3008, 0, InputMode::Single, [0b0000_0001, 0b1000_0000, 0]);
        check_request(Model::Mcp3008, 5, InputMode::Single, [0b0000_0001, 0b1101_0000, 0]);
        check_request(Model::Mcp3008, 7, InputMode::Differential, [0b0000_0001, 0b0111_0000, 0]);
    }

    #[test]
    fn mcp3208_request_has_five_leading_zeros_then_the_start_bit() {
        // Figure 6-1: 0000 01 SGL/DIFF D2, D1 D0 xx xxxx, xxxx xxxx.
        check_request(Model::Mcp3208, 0, InputMode::Single, [0b0000_0110, 0b0000_0000, 0]);
        check_request(Model::Mcp3208, 5, InputMode::Single, [0b0000_0111, 0b0100_0000, 0]);
        check_request(Model::Mcp3208, 3, InputMode::Differential, [0b0000_0100, 0b1100_0000, 0]);
    }

    #[test]
    fn decode_takes_the_bits_after_the_null_bit() {
        assert_eq!(decode(Model::Mcp3008, [0xFF, 0b1111_1010, 0x5A]).unwrap(), 0x25A);
        assert_eq!(decode(Model::Mcp3208, [0xFF, 0b1110_1010, 0xBC]).unwrap(), 0xABC);
    }

    #[test]
    fn decode_ignores_the_hi_z_bits() {
        for hi_z in [0x00, 0xA5, 0xFF] {
            let mcp3008 = [hi_z, (hi_z & 0b1111_1000) | 0b0000_0011, 0xFF];
            assert_eq!(decode(Model::Mcp3008, mcp3008).unwrap(), 0x3FF, "{mcp3008:02X?}");
            let mcp3208 = [hi_z, (hi_z & 0b1110_0000) | 0b0000_0001, 0x23];
            assert_eq!(decode(Model::Mcp3208, mcp3208).unwrap(), 0x123, "{mcp3208:02X?}");
        }
    }

    #[test]
    fn all_zeros_is_a_legal_reading() {
        assert_eq!(decode(Model::Mcp3008, [0; 3]).unwrap(), 0);
        assert_eq!(decode(Model::Mcp3208, [0; 3]).unwrap(), 0);
    }

    #[test]
    fn all_ones_is_no_response() {
        for model in [Model::Mcp3008, Model::Mcp3208] {
            let error = decode(model, [0xFF; 3]).unwrap_err().to_string();
            assert!(error.starts_with("no response: MISO reads all 1s"), "{error}");
            assert!(error.contains(model.name()), "{error}");
        }
    }

    #[test]
    fn null_bit_set_is_implausible() {
        let error = decode(Model::Mcp3008, [0x00, 0b0000_0100, 0x00]).unwrap_err().to_string();
        assert!(error.contains("null bit") && error.contains("0x00 0x04 0x00"), "{error}");
        let error = decode(Model::Mcp3208, [0x00, 0b0001_0000, 0x00]).unwrap_err().to_string();
        assert!(error.contains("null bit") && error.contains("MCP3208"), "{error}");
        // The MCP3008's null bit position is a data bit of the MCP3208 and the other way round.
        assert_eq!(decode(Model::Mcp3208, [0x00, 0b0000_0100, 0x00]).unwrap(), 0x400);
        assert!(decode(Model::Mcp3008, [0x00, 0b0001_0000, 0x00]).is_ok());
    }

    #[track_caller]
    fn check_volts(model: Model, code: u16, vref: f64, expected: f64) {
        let volts = volts(model, code, vref);
        assert!((volts - expected).abs() < 1e-12, "{model:?} code {code} at {vref} V: {volts}, expected {expected}");
    }

    #[test]
    fn volts_follow_equation_4_2() {
        check_volts(Model::Mcp3008, 0, 3.3, 0.0);
        check_volts(Model::Mcp3008, 512, 3.3, 1.65);
        check_volts(Model::Mcp3008, 1023, 5.0, 4.995117);
        check_volts(Model::Mcp3208, 2048, 5.0, 2.5);
        check_volts(Model::Mcp3208, 4095, 4.096, 4.095);
        check_volts(Model::Mcp3208, 1, 3.3, 0.000806);
    }

    #[test]
    fn volts_are_rounded_to_a_microvolt() {
        // 602 × 3.3 / 1024 = 1.94003906…
        check_volts(Model::Mcp3008, 602, 3.3, 1.940039);
    }

    #[test]
    fn model_constants() {
        assert_eq!((Model::Mcp3008.codes(), Model::Mcp3008.max_code()), (1024, 1023));
        assert_eq!((Model::Mcp3208.codes(), Model::Mcp3208.max_code()), (4096, 4095));
        assert_eq!(Model::Mcp3208.driver(), "mcp3208");
    }

    #[test]
    fn differential_names_put_in_plus_first() {
        assert_eq!(names(3, InputMode::Single), ["ch3", "ch3_raw"]);
        assert_eq!(names(2, InputMode::Differential), ["ch2_ch3", "ch2_ch3_raw"]);
        assert_eq!(names(7, InputMode::Differential), ["ch7_ch6", "ch7_ch6_raw"]);
        assert_eq!(channel_by_name("ch7"), Some(7));
        assert_eq!(channel_by_name("ch8"), None);
    }
}
