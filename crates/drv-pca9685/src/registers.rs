//! PCA9685 registers, bit fields and conversions (NXP PCA9685 product data sheet, rev. 4,
//! 16 April 2015).
//!
//! Both the adapter and the simulated chip use these, so the two agree on the register map by
//! construction; the arithmetic is checked against the data sheet in the unit tests below.

use device::{DeviceError, Options};

// Register addresses (§7.3, Table 4 "Register summary").
pub(crate) const MODE1: u8 = 0x00;
pub(crate) const MODE2: u8 = 0x01;
pub(crate) const SUBADDR1: u8 = 0x02;
pub(crate) const SUBADDR2: u8 = 0x03;
pub(crate) const SUBADDR3: u8 = 0x04;
pub(crate) const ALLCALLADR: u8 = 0x05;
/// LEDn_ON_L, LEDn_ON_H, LEDn_OFF_L, LEDn_OFF_H for channel n start at 0x06 + 4n.
pub(crate) const LED0_ON_L: u8 = 0x06;
pub(crate) const LED15_OFF_H: u8 = 0x45;
/// ALL_LED_ON_L … ALL_LED_OFF_H load every channel's registers; they read as zero.
pub(crate) const ALL_LED_ON_L: u8 = 0xFA;
pub(crate) const ALL_LED_OFF_H: u8 = 0xFD;
/// Writes are blocked unless MODE1's SLEEP bit is set (Table 4, note 1).
pub(crate) const PRE_SCALE: u8 = 0xFE;

// MODE1 bits (§7.3.1, Table 5).
/// Set when the chip was put to sleep with PWM channels running; writing 1 restarts them.
pub(crate) const MODE1_RESTART: u8 = 0b1000_0000;
/// Use the EXTCLK pin; sticky until power cycle or software reset.
pub(crate) const MODE1_EXTCLK: u8 = 0b0100_0000;
/// Auto-increment the register pointer after each byte.
pub(crate) const MODE1_AI: u8 = 0b0010_0000;
/// Low-power mode, oscillator off.
pub(crate) const MODE1_SLEEP: u8 = 0b0001_0000;
/// Respond to the LED All Call address (on at power-up).
pub(crate) const MODE1_ALLCALL: u8 = 0b0000_0001;

// Power-on values (Table 4, Table 5, Table 6 and §7.3.5).
pub(crate) const MODE1_RESET_VALUE: u8 = 0b0001_0001;
pub(crate) const MODE2_RESET_VALUE: u8 = 0b0000_0100;
pub(crate) const SUBADDR1_RESET_VALUE: u8 = 0xE2;
pub(crate) const SUBADDR2_RESET_VALUE: u8 = 0xE4;
pub(crate) const SUBADDR3_RESET_VALUE: u8 = 0xE8;
pub(crate) const ALLCALLADR_RESET_VALUE: u8 = 0xE0;
/// 0x1E: 200 Hz.
pub(crate) const PRE_SCALE_RESET_VALUE: u8 = 0x1E;

// LEDn_ON_H and LEDn_OFF_H (§7.3.3, Table 7).
/// Bit 4: full on (in ON_H) or full off (in OFF_H); full off wins over everything.
pub(crate) const LED_FULL: u8 = 0b0001_0000;
/// Bits 3..0: the top four bits of the 12-bit count.
pub(crate) const LED_COUNT_HIGH: u8 = 0b0000_1111;
/// Bits 7..5 are reserved and read as 0.
pub(crate) const LED_HIGH_WRITABLE: u8 = 0b0001_1111;

/// MODE2 bits 7..5 are reserved and read as 0 (§7.3.2, Table 6).
pub(crate) const MODE2_WRITABLE: u8 = 0b0001_1111;

/// The hardware forces prescale values below 3 up to 3 (§7.3.5).
pub(crate) const PRE_SCALE_MIN: u8 = 3;
/// The internal oscillator (§7.3.5).
pub(crate) const OSCILLATOR_HZ: f64 = 25_000_000.0;
/// Steps of the 12-bit PWM counter per period.
pub(crate) const COUNTS: u16 = 4096;
/// Sixteen outputs, LED0 to LED15.
pub(crate) const CHANNELS: usize = 16;
/// Sample names of the outputs: `Quantity::name` and `Sample::name` are `&'static str`.
pub(crate) const CHANNEL_NAMES: [&str; CHANNELS] = [
    "ch0", "ch1", "ch2", "ch3", "ch4", "ch5", "ch6", "ch7", "ch8", "ch9", "ch10", "ch11", "ch12", "ch13", "ch14",
    "ch15",
];

/// Option names the driver accepts in the board file.
pub(crate) const FREQUENCY_HZ: &str = "frequency_hz";
pub(crate) const DEFAULT_FREQUENCY_HZ: f64 = 1000.0;
/// The update rates the prescaler reaches with the internal oscillator, prescale 255 down
/// to 3 (§7.3.5).
pub(crate) const FREQUENCY_MIN_HZ: f64 = 24.0;
pub(crate) const FREQUENCY_MAX_HZ: f64 = 1526.0;

/// The board file's options, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    pub(crate) frequency_hz: f64,
    pub(crate) prescale: u8,
}

impl Settings {
    pub(crate) fn from_options(options: &Options) -> Result<Self, DeviceError> {
        options.check_known(crate::DRIVER, crate::OPTIONS)?;
        let frequency_hz = options.float_or(FREQUENCY_HZ, DEFAULT_FREQUENCY_HZ)?;
        if !(FREQUENCY_MIN_HZ..=FREQUENCY_MAX_HZ).contains(&frequency_hz) {
            return Err(DeviceError::Config(format!(
                "option {FREQUENCY_HZ:?} = {frequency_hz} is out of range: the PCA9685's prescaler gives \
                 {FREQUENCY_MIN_HZ} to {FREQUENCY_MAX_HZ} Hz"
            )));
        }
        Ok(Self { frequency_hz, prescale: prescale_for(frequency_hz) })
    }
}

/// Checks a 7-bit address against those a PCA9685 can answer at.
pub(crate) fn check_address(address: u8) -> Result<(), DeviceError> {
    // §7.1.1: the address is 1 A5 A4 A3 A2 A1 A0, i.e. 0x40 to 0x7F.
    if !(0x40..=0x7F).contains(&address) {
        return Err(DeviceError::Config(format!(
            "address 0x{address:02X} is outside the PCA9685's range 0x40 to 0x7F (set by pins A0 to A5)"
        )));
    }
    // §7.1.2: every PCA9685 answers the LED All Call address 0x70 from power-up.
    if address == 0x70 {
        return Err(DeviceError::Config(
            "address 0x70 is the LED All Call address every PCA9685 answers at power-up; strap the chip to another"
                .to_owned(),
        ));
    }
    Ok(())
}

/// prescale = round(osc_clock / (4096 × update_rate)) − 1 (§7.3.5, Equation 1), for a
/// frequency already checked to lie in 24 to 1526 Hz.
pub(crate) fn prescale_for(frequency_hz: f64) -> u8 {
    let prescale = (OSCILLATOR_HZ / (f64::from(COUNTS) * frequency_hz)).round() - 1.0;
    prescale.clamp(f64::from(PRE_SCALE_MIN), f64::from(u8::MAX)) as u8
}

/// The update rate a prescale value gives (§7.3.5, Equation 1 solved for the rate).
pub(crate) fn frequency_for(prescale: u8) -> f64 {
    OSCILLATOR_HZ / (f64::from(COUNTS) * (f64::from(prescale) + 1.0))
}

/// A channel setting the 12-bit PWM can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pwm {
    /// The full-off bit: always low.
    FullOff,
    /// On at count 0, off after this many counts (1 to 4095).
    Counts(u16),
    /// The full-on bit: always high.
    FullOn,
}

impl Pwm {
    /// The nearest setting to a duty cycle from 0.0 to 1.0.
    pub(crate) fn from_duty(duty: f64) -> Self {
        match (duty * f64::from(COUNTS)).round() as u16 {
            0 => Pwm::FullOff,
            counts if counts >= COUNTS => Pwm::FullOn,
            counts => Pwm::Counts(counts),
        }
    }

    /// High counts out of 4096.
    pub(crate) fn counts(self) -> u16 {
        match self {
            Pwm::FullOff => 0,
            Pwm::Counts(counts) => counts,
            Pwm::FullOn => COUNTS,
        }
    }

    pub(crate) fn duty(self) -> f64 {
        f64::from(self.counts()) / f64::from(COUNTS)
    }
}

/// The duty cycle a channel's four registers (ON_L, ON_H, OFF_L, OFF_H) encode (§7.3.3).
///
/// Full off wins over full on, full on over the counts; otherwise the output is high from
/// count ON to count OFF, wrapping around the 4096-count period when OFF comes before ON.
pub(crate) fn duty_from_registers(registers: [u8; 4]) -> f64 {
    let [on_low, on_high, off_low, off_high] = registers;
    if off_high & LED_FULL != 0 {
        return 0.0;
    }
    if on_high & LED_FULL != 0 {
        return 1.0;
    }
    let on = u16::from_le_bytes([on_low, on_high & LED_COUNT_HIGH]);
    let off = u16::from_le_bytes([off_low, off_high & LED_COUNT_HIGH]);
    f64::from((off + COUNTS - on) % COUNTS) / f64::from(COUNTS)
}

/// The address of LEDn_ON_L, the first of channel n's four registers.
pub(crate) fn channel_base(channel: usize) -> u8 {
    LED0_ON_L + 4 * (channel as u8)
}

#[cfg(test)]
mod tests {
    // Tests assert on known-good values; a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use device::Value;

    use super::*;

    #[track_caller]
    fn check_prescale(frequency_hz: f64, expected: u8) {
        assert_eq!(prescale_for(frequency_hz), expected, "{frequency_hz} Hz");
    }

    #[test]
    fn prescale_follows_the_data_sheet_equation() {
        // §7.3.5: 200 Hz gives the power-on value 30 (0x1E); the limits are 3 and 255.
        check_prescale(200.0, 0x1E);
        check_prescale(1526.0, 3);
        check_prescale(24.0, 253);
        check_prescale(1000.0, 5);
        check_prescale(50.0, 121);
        check_prescale(60.0, 101);
    }

    #[test]
    fn frequency_for_inverts_the_prescale() {
        assert!((frequency_for(0x1E) - 196.9).abs() < 0.1);
        assert!((frequency_for(255) - 23.84).abs() < 0.01);
        assert!((frequency_for(3) - 1525.9).abs() < 0.1);
    }

    #[track_caller]
    fn check_duty(registers: [u8; 4], expected: f64) {
        assert!((duty_from_registers(registers) - expected).abs() < 1e-12, "{registers:02X?}");
    }

    #[test]
    fn duty_decodes_the_data_sheet_examples() {
        // §7.3.3 example 1: ON = 0x199 (delay 10 %), OFF = 0x4CC: on for 819 counts (20 %).
        check_duty([0x99, 0x01, 0xCC, 0x04], 819.0 / 4096.0);
        // §7.3.3 example 2: ON = 0xE65 (delay 90 %), OFF = 0xCCB wraps round: 3686 counts (90 %).
        check_duty([0x65, 0x0E, 0xCB, 0x0C], 3686.0 / 4096.0);
    }

    #[test]
    fn duty_honours_the_full_on_and_full_off_bits() {
        check_duty([0x00, 0x10, 0x00, 0x00], 1.0);
        check_duty([0x00, 0x00, 0x00, 0x10], 0.0);
        // Full off takes precedence over full on.
        check_duty([0x00, 0x10, 0x00, 0x10], 0.0);
        // The power-on value of every channel: full off.
        check_duty([0x00, 0x00, 0x00, 0x10], 0.0);
        // Equal ON and OFF counts never switch the output on.
        check_duty([0x00, 0x02, 0x00, 0x02], 0.0);
        // Reserved bits 7..5 do not count.
        check_duty([0x00, 0xE0, 0x00, 0xE8], 0.5);
    }

    #[test]
    fn duty_is_quantised_to_4096_steps() {
        assert_eq!(Pwm::from_duty(0.0), Pwm::FullOff);
        assert_eq!(Pwm::from_duty(0.0001), Pwm::FullOff);
        assert_eq!(Pwm::from_duty(0.0002), Pwm::Counts(1));
        assert_eq!(Pwm::from_duty(0.5), Pwm::Counts(2048));
        assert_eq!(Pwm::from_duty(0.3), Pwm::Counts(1229));
        assert_eq!(Pwm::from_duty(0.9998), Pwm::Counts(4095));
        assert_eq!(Pwm::from_duty(0.99995), Pwm::FullOn);
        assert_eq!(Pwm::from_duty(1.0), Pwm::FullOn);
        assert_eq!(Pwm::Counts(1229).duty(), 0.300048828125);
    }

    #[test]
    fn channel_registers_are_four_apart() {
        assert_eq!(channel_base(0), 0x06);
        assert_eq!(channel_base(3), 0x12);
        assert_eq!(channel_base(15) + 3, LED15_OFF_H);
    }

    #[test]
    fn options_default_to_1000_hz() {
        let settings = Settings::from_options(&Options::default()).unwrap();
        assert_eq!(settings, Settings { frequency_hz: 1000.0, prescale: 5 });
        let options = Options([(FREQUENCY_HZ.to_owned(), Value::Int(50))].into_iter().collect());
        assert_eq!(Settings::from_options(&options).unwrap().prescale, 121);
    }
}
