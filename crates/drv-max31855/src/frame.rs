//! The MAX31855's 32-bit output frame: bit fields, decoding with plausibility checks, and the
//! encoding the simulated chip clocks out (Maxim 19-5793, Table 2 "Memory Map—Bit Weights and
//! Functions", Table 3 "Memory Map—Descriptions").
//!
//! Both the adapter and the simulated chip use these, so the two agree on the frame by
//! construction; the unit tests below check both directions against the data sheet's
//! examples (Table 4 "Thermocouple Temperature Data Format", Table 5 "Reference Junction
//! Temperature Data Format").

use std::ops::RangeInclusive;

use device::DeviceError;

// Bit fields, D31 first on the wire (Table 2).
/// D31..D18: thermocouple temperature, 14-bit two's complement, 0.25 °C per count.
const THERMOCOUPLE_SHIFT: u32 = 18;
const THERMOCOUPLE_MASK: u32 = 0b0011_1111_1111_1111;
/// D17: reserved, always reads 0.
const RESERVED_D17: u32 = 0b0000_0000_0000_0010_0000_0000_0000_0000;
/// D16: set while any of SCV, SCG and OC is.
const FAULT: u32 = 0b0000_0000_0000_0001_0000_0000_0000_0000;
/// D15..D4: internal (cold-junction) temperature, 12-bit two's complement, 0.0625 °C per count.
const COLD_JUNCTION_SHIFT: u32 = 4;
const COLD_JUNCTION_MASK: u32 = 0b1111_1111_1111;
/// D3: reserved, always reads 0.
const RESERVED_D3: u32 = 0b1000;
/// D2: SCV, the thermocouple is shorted to VCC.
pub(crate) const SHORT_TO_VCC: u32 = 0b0100;
/// D1: SCG, the thermocouple is shorted to GND.
pub(crate) const SHORT_TO_GND: u32 = 0b0010;
/// D0: OC, the thermocouple is open (no connection).
pub(crate) const OPEN_CIRCUIT: u32 = 0b0001;
/// D2..D0 together.
pub(crate) const FAULT_REASONS: u32 = SHORT_TO_VCC | SHORT_TO_GND | OPEN_CIRCUIT;

/// What the adapter reports for each reason bit, in the order it lists them.
const REASONS: [(u32, &str); 3] = [
    (OPEN_CIRCUIT, "thermocouple open circuit"),
    (SHORT_TO_GND, "thermocouple shorted to GND"),
    (SHORT_TO_VCC, "thermocouple shorted to VCC"),
];

/// °C per count of the two temperature fields.
pub(crate) const THERMOCOUPLE_RESOLUTION: f64 = 0.25;
pub(crate) const COLD_JUNCTION_RESOLUTION: f64 = 0.0625;

/// The thermocouple range the data sheet gives; the 14-bit field could hold -2048 to
/// +2047.75 °C, the chip never reports beyond this.
pub(crate) const THERMOCOUPLE_RANGE: RangeInclusive<f64> = -270.0..=1800.0;
/// The chip's operating range, which its internal sensor measures.
pub(crate) const COLD_JUNCTION_RANGE: RangeInclusive<f64> = -55.0..=125.0;

/// One good reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reading {
    /// The thermocouple's hot junction, in °C, already compensated for the cold junction.
    pub(crate) thermocouple: f64,
    /// The chip's own temperature (the cold junction), in °C.
    pub(crate) cold_junction: f64,
}

/// Decodes a frame, or says why it is not a good reading.
///
/// SPI has no acknowledge, so an absent chip is only seen in what the bus reads: all 1s with
/// a pull-up on MISO (which sets the reserved bits, impossible for a real chip) or all 0s with
/// a pull-down. A real chip reads all 0s only at exactly 0.00 °C on the thermocouple and
/// 0.0000 °C at the cold junction with no fault; such a reading is misread as an absent chip,
/// which is accepted: the next poll a quarter of a degree away reads normally.
pub(crate) fn decode(frame: u32) -> Result<Reading, DeviceError> {
    let chip = |message: String| Err(DeviceError::Chip(message));
    match frame {
        u32::MAX => return chip("no response: reads all 1s (chip absent?)".to_owned()),
        0 => return chip("no response: reads all 0s (chip absent?)".to_owned()),
        _ => {}
    }
    if frame & (RESERVED_D17 | RESERVED_D3) != 0 {
        return chip(format!("reserved bits set: not a MAX31855 or a bus fault (frame 0x{frame:08X})"));
    }
    let reasons: Vec<&str> = REASONS.iter().filter(|&&(bit, _)| frame & bit != 0).map(|&(_, reason)| reason).collect();
    match (frame & FAULT != 0, reasons.is_empty()) {
        (false, true) => Ok(Reading { thermocouple: thermocouple(frame), cold_junction: cold_junction(frame) }),
        (true, false) => chip(reasons.join("; ")),
        // D16 is the OR of D2..D0 (Table 3); one without the other is not something a chip sends.
        (true, true) => chip(format!(
            "fault bit D16 set without a reason in D2..D0: not a MAX31855 or a bus fault (frame 0x{frame:08X})"
        )),
        (false, false) => chip(format!(
            "fault reason bits D2..D0 set without the fault bit D16: not a MAX31855 or a bus fault \
             (frame 0x{frame:08X})"
        )),
    }
}

/// D31..D18 as °C: an arithmetic shift sign-extends the 14-bit field.
fn thermocouple(frame: u32) -> f64 {
    f64::from((frame as i32) >> THERMOCOUPLE_SHIFT) * THERMOCOUPLE_RESOLUTION
}

/// D15..D4 as °C: moved to the top of the word first, so that the shift sign-extends it.
fn cold_junction(frame: u32) -> f64 {
    f64::from(((frame << 16) as i32) >> (16 + COLD_JUNCTION_SHIFT)) * COLD_JUNCTION_RESOLUTION
}

/// The frame a chip sends for these temperatures and reason bits (D2..D0; the fault bit D16
/// follows them). Temperatures are clamped to the chip's ranges and rounded to its
/// resolution.
pub(crate) fn encode(thermocouple: f64, cold_junction: f64, reasons: u32) -> u32 {
    let counts = |celsius: f64, range: &RangeInclusive<f64>, resolution: f64| {
        (celsius.clamp(*range.start(), *range.end()) / resolution).round() as i32 as u32
    };
    let thermocouple = counts(thermocouple, &THERMOCOUPLE_RANGE, THERMOCOUPLE_RESOLUTION) & THERMOCOUPLE_MASK;
    let cold_junction = counts(cold_junction, &COLD_JUNCTION_RANGE, COLD_JUNCTION_RESOLUTION) & COLD_JUNCTION_MASK;
    let reasons = reasons & FAULT_REASONS;
    let fault = if reasons != 0 { FAULT } else { 0 };
    thermocouple << THERMOCOUPLE_SHIFT | fault | cold_junction << COLD_JUNCTION_SHIFT | reasons
}

#[cfg(test)]
mod tests {
    // Tests assert on known-good values; a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A frame from the data sheet's bit patterns: 14 thermocouple bits, 12 cold-junction bits
    /// and D2..D0.
    fn frame(thermocouple: u32, cold_junction: u32, reasons: u32) -> u32 {
        let fault = if reasons != 0 { FAULT } else { 0 };
        thermocouple << THERMOCOUPLE_SHIFT | fault | cold_junction << COLD_JUNCTION_SHIFT | reasons
    }

    #[track_caller]
    fn check_thermocouple(bits: u32, celsius: f64) {
        // A cold junction of +25 °C keeps the frame away from the all-0s "absent" pattern.
        let cold = 0b0001_1001_0000;
        let frame = frame(bits, cold, 0);
        assert_eq!(decode(frame).unwrap().thermocouple, celsius, "{bits:014b}");
        assert_eq!(encode(celsius, 25.0, 0), frame, "{celsius} °C");
    }

    #[track_caller]
    fn check_cold_junction(bits: u32, celsius: f64) {
        let hot = 0b00_0000_0110_0100;
        let frame = frame(hot, bits, 0);
        assert_eq!(decode(frame).unwrap().cold_junction, celsius, "{bits:012b}");
        // Table 5 goes up to +127 °C, past the +125 °C the chip is specified for and the
        // encoder clamps to.
        if COLD_JUNCTION_RANGE.contains(&celsius) {
            assert_eq!(encode(25.0, celsius, 0), frame, "{celsius} °C");
        }
    }

    // The tables print the fields in groups of four from D31 (or D15); the literals here are
    // grouped from the least significant bit instead, as clippy's `unusual_byte_groupings` asks.
    #[test]
    fn thermocouple_matches_table_4() {
        check_thermocouple(0b01_1001_0000_0000, 1600.0);
        check_thermocouple(0b00_1111_1010_0000, 1000.0);
        check_thermocouple(0b00_0001_1001_0011, 100.75);
        check_thermocouple(0b00_0000_0110_0100, 25.0);
        check_thermocouple(0b00_0000_0000_0000, 0.0);
        check_thermocouple(0b11_1111_1111_1111, -0.25);
        check_thermocouple(0b11_1111_1111_1100, -1.0);
        check_thermocouple(0b11_1100_0001_1000, -250.0);
    }

    #[test]
    fn cold_junction_matches_table_5() {
        check_cold_junction(0b0111_1111_0000, 127.0);
        check_cold_junction(0b0110_0100_1001, 100.5625);
        check_cold_junction(0b0001_1001_0000, 25.0);
        check_cold_junction(0b0000_0000_0000, 0.0);
        check_cold_junction(0b1111_1111_1111, -0.0625);
        check_cold_junction(0b1111_1111_0000, -1.0);
        check_cold_junction(0b1110_1100_0000, -20.0);
        check_cold_junction(0b1100_1001_0000, -55.0);
    }

    #[test]
    fn encoding_rounds_to_the_resolution_and_clamps_to_the_range() {
        let decoded = |thermocouple, cold_junction| decode(encode(thermocouple, cold_junction, 0)).unwrap();
        assert_eq!(decoded(200.1, 25.03), Reading { thermocouple: 200.0, cold_junction: 25.0 });
        assert_eq!(decoded(200.2, 25.04), Reading { thermocouple: 200.25, cold_junction: 25.0625 });
        assert_eq!(decoded(2500.0, 150.0), Reading { thermocouple: 1800.0, cold_junction: 125.0 });
        assert_eq!(decoded(-300.0, -60.0), Reading { thermocouple: -270.0, cold_junction: -55.0 });
    }

    #[track_caller]
    fn check_error(frame: u32, expected: &str) {
        assert_eq!(decode(frame), Err(DeviceError::Chip(expected.to_owned())), "0x{frame:08X}");
    }

    #[test]
    fn each_fault_bit_has_its_reason() {
        let cold = 0b0001_1001_0000;
        check_error(frame(0, cold, OPEN_CIRCUIT), "thermocouple open circuit");
        check_error(frame(0, cold, SHORT_TO_GND), "thermocouple shorted to GND");
        check_error(frame(0, cold, SHORT_TO_VCC), "thermocouple shorted to VCC");
        check_error(
            frame(0, cold, FAULT_REASONS),
            "thermocouple open circuit; thermocouple shorted to GND; thermocouple shorted to VCC",
        );
        assert_eq!(encode(20.0, 25.0, SHORT_TO_GND) & 0b1_0000_0000_0000_0111, 0b1_0000_0000_0000_0010);
    }

    #[test]
    fn absent_chip_reads_all_1s_or_all_0s() {
        check_error(0xFFFF_FFFF, "no response: reads all 1s (chip absent?)");
        check_error(0x0000_0000, "no response: reads all 0s (chip absent?)");
        // The documented blind spot: a real chip at exactly 0 °C on both sensors.
        assert_eq!(encode(0.0, 0.0, 0), 0);
    }

    #[test]
    fn reserved_bits_mean_another_chip_or_a_bus_fault() {
        let good = encode(200.0, 25.0, 0);
        for reserved in [RESERVED_D17, RESERVED_D3] {
            let message = match decode(good | reserved) {
                Err(DeviceError::Chip(message)) => message,
                other => panic!("expected a chip error, got {other:?}"),
            };
            assert!(message.starts_with("reserved bits set: not a MAX31855 or a bus fault"), "{message}");
        }
    }

    #[test]
    fn fault_flag_and_reasons_must_agree() {
        let good = encode(200.0, 25.0, 0);
        for (frame, fragment) in [(good | FAULT, "without a reason"), (good | OPEN_CIRCUIT, "without the fault bit")] {
            let message = match decode(frame) {
                Err(DeviceError::Chip(message)) => message,
                other => panic!("expected a chip error, got {other:?}"),
            };
            assert!(message.contains(fragment), "{message}");
        }
    }
}
