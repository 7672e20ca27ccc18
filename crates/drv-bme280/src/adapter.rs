//! The gateway's view of a BME280: the community `bme280` driver behind [`device::Device`].
//!
//! The community driver does the datasheet work (probe, soft reset, calibration readout,
//! configuration, forced measurement, compensation). The adapter adds what it lacks: a chip-id
//! check that names the id it found and refuses a BMP280, a wait on the status register in
//! place of the driver's fixed 40 ms sleep, and a check that the chip kept its configuration.

use std::time::{Duration, Instant};

use bme280::i2c::BME280;
use bme280::{Configuration, IIRFilter, Oversampling};
use device::{Args, Description, Device, DeviceError, Kind, Outcome, Quantity, Sample, SharedI2c, StdDelay};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::registers::{
    CHIP_ID, CHIP_ID_BME280, CHIP_ID_BMP280, MODE_MASK, MODE_SLEEP, OSRS_P_MASK, OSRS_P_SHIFT, OSRS_T_MASK,
    OSRS_T_SHIFT, OVERSAMPLING_1X, STATUS, STATUS_IM_UPDATE, STATUS_MEASURING,
};

/// What `ctrl_meas` holds, mode bits aside, once [`configuration`] is applied: `osrs_t` and
/// `osrs_p` 1x (section 5.4.5).
const CONFIGURED_OVERSAMPLING: u8 = (OVERSAMPLING_1X << OSRS_T_SHIFT) | (OVERSAMPLING_1X << OSRS_P_SHIFT);

/// The datasheet's start-up time after a (soft) reset (section 1, table 1). The community
/// driver asks for this wait after each reset; it is slept in full, as the chip may not answer
/// before.
const START_UP: Duration = Duration::from_millis(2);

/// How often [`ConversionWait`] looks at the status register while a conversion runs.
const STATUS_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// The settings the adapter applies: the datasheet's recommendation for weather monitoring
/// (section 3.5.1): forced mode, 1x oversampling of all three, IIR filter off. A conversion
/// then takes 8 ms typically, 9.3 ms at most (section 9.1), and readings follow the air at
/// once rather than through the filter's lag.
fn configuration() -> Configuration {
    Configuration::default()
        .with_temperature_oversampling(Oversampling::Oversampling1X)
        .with_pressure_oversampling(Oversampling::Oversampling1X)
        .with_humidity_oversampling(Oversampling::Oversampling1X)
        .with_iir_filter(IIRFilter::Off)
}

/// A BME280 as the gateway hosts it.
pub struct Bme280Device<I2C> {
    /// The community driver. It owns one handle on the shared bus and holds the calibration.
    driver: BME280<SharedI2c<I2C>>,
    /// A second handle on the same bus, for the registers the community driver does not
    /// expose: the chip id for error messages, and status while a conversion runs.
    bus: SharedI2c<I2C>,
    address: u8,
}

impl<I2C> Bme280Device<I2C>
where
    I2C: I2c + Send + 'static,
{
    /// An adapter for the chip at `address`. Touches nothing until [`Device::init`].
    pub fn new(i2c: I2C, address: u8) -> Self {
        let bus = SharedI2c::new(i2c);
        Self { driver: BME280::new(bus.clone(), address), bus, address }
    }

    fn read_registers(&mut self, register: u8, buffer: &mut [u8]) -> Result<(), DeviceError> {
        self.bus.write_read(self.address, &[register], buffer).map_err(DeviceError::i2c)
    }
}

impl<I2C> Device for Bme280Device<I2C>
where
    I2C: I2c + Send + 'static,
{
    fn describe(&self) -> Description {
        Description {
            model: "BME280",
            quantities: vec![
                Quantity {
                    name: "temperature",
                    unit: Some("°C"),
                    kind: Kind::Temperature,
                    description: "air temperature",
                },
                Quantity { name: "humidity", unit: Some("%"), kind: Kind::Humidity, description: "relative humidity" },
                Quantity {
                    name: "pressure",
                    unit: Some("hPa"),
                    kind: Kind::Pressure,
                    description: "barometric pressure at the sensor, not reduced to sea level",
                },
            ],
            commands: vec![],
        }
    }

    /// Checks the chip id, then lets the community driver soft-reset the chip (2 ms), read the
    /// calibration and apply the weather-monitoring settings, leaving the chip asleep.
    fn init(&mut self) -> Result<(), DeviceError> {
        let mut id = [0];
        self.read_registers(CHIP_ID, &mut id)?;
        match id[0] {
            CHIP_ID_BME280 => {}
            CHIP_ID_BMP280 => {
                return Err(DeviceError::Chip(format!(
                    "chip id {CHIP_ID_BMP280:#04x} is a BMP280, which has no humidity sensor, not a BME280 \
                     ({CHIP_ID_BME280:#04x})"
                )));
            }
            other => {
                return Err(DeviceError::Chip(format!("chip id {other:#04x} is not a BME280 ({CHIP_ID_BME280:#04x})")));
            }
        }
        self.driver.init_with_config(&mut StdDelay, configuration()).map_err(driver_error)
    }

    /// One forced measurement. Costs five bus transactions and, on a real chip, the conversion
    /// time (about 8 ms); the simulated chip converts at once, so mock mode does not wait.
    fn poll(&mut self) -> Result<Vec<Sample>, DeviceError> {
        let mut wait = ConversionWait { bus: &mut self.bus, address: self.address, outcome: Wait::NotAsked };
        let measured = self.driver.measure(&mut wait);
        match wait.outcome {
            Wait::Failed(error) => return Err(error),
            Wait::TimedOut { status, ctrl_meas, after } => {
                return Err(DeviceError::Chip(format!(
                    "conversion not finished after {} ms (status {status:#04x}, ctrl_meas {ctrl_meas:#04x})",
                    after.as_millis()
                )));
            }
            Wait::Finished { ctrl_meas } if ctrl_meas & (OSRS_T_MASK | OSRS_P_MASK) != CONFIGURED_OVERSAMPLING => {
                // A brown-out or a soft reset by someone else: skipped measurements read as
                // 0x80000, which the driver would compensate into plausible-looking values.
                return Err(DeviceError::Chip(format!(
                    "chip lost its configuration (ctrl_meas {ctrl_meas:#04x}, expected oversampling \
                     {CONFIGURED_OVERSAMPLING:#04x}); it was probably reset"
                )));
            }
            Wait::Finished { .. } | Wait::NotAsked => {}
        }
        let measurements = measured.map_err(driver_error)?;
        Ok(vec![
            Sample::new("temperature", hundredths(f64::from(measurements.temperature))),
            Sample::new("humidity", hundredths(f64::from(measurements.humidity))),
            // The driver reports Pa.
            Sample::new("pressure", hundredths(f64::from(measurements.pressure) / 100.0)),
        ])
    }

    fn command(&mut self, action: &str, _args: &Args) -> Result<Outcome, DeviceError> {
        Err(DeviceError::UnsupportedAction(action.to_owned()))
    }
}

/// Rounds to 0.01 of the unit, the resolution the datasheet gives for temperature and below
/// what 1x oversampling resolves for pressure and humidity, so that readings carry no `f32`
/// noise digits (25.010000228881836) to the consumers.
fn hundredths(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Maps the community driver's errors.
fn driver_error<E: embedded_hal::i2c::Error>(error: bme280::Error<E>) -> DeviceError {
    let chip = |message: &str| DeviceError::Chip(message.to_owned());
    match error {
        bme280::Error::Bus(error) => DeviceError::i2c(error),
        // init() has checked the id already, so the chip changed in between.
        bme280::Error::UnsupportedChip => chip("chip id is not a BME280 or BMP280"),
        // Raised when ctrl_meas reads mode 10 (which the datasheet counts as forced, the
        // driver as invalid) or when the calibration gives a zero pressure scale.
        bme280::Error::InvalidData => chip("invalid data: unexpected sensor mode or corrupt calibration"),
        // measure() before a successful init(); the gateway re-runs init() on a Chip error.
        bme280::Error::NoCalibrationData => chip("no calibration data: the chip is not initialised"),
        // Neither is raised by bme280 0.5 with the sync feature.
        bme280::Error::CompensationFailed => chip("compensation failed"),
        bme280::Error::Delay => chip("delay failed"),
    }
}

/// The delay handed to the community driver's `measure()`, which starts a forced conversion
/// and then asks for a fixed 40 ms. Instead, this looks at `status` and `ctrl_meas` until the
/// chip reports the conversion done, keeping the 40 ms only as the limit: on a real chip that
/// ends the wait after the actual conversion time (8 ms typically at 1x), on the simulated
/// chip at the first look.
struct ConversionWait<'a, I2C> {
    bus: &'a mut SharedI2c<I2C>,
    address: u8,
    /// What the wait saw, for `poll` to report: a delay cannot return errors.
    outcome: Wait,
}

/// How a [`ConversionWait`] ended.
enum Wait {
    /// The driver asked for no conversion wait (it failed before, or changed its ways).
    NotAsked,
    /// The chip is back asleep with its data registers updated; `ctrl_meas` as it read then.
    Finished { ctrl_meas: u8 },
    /// The limit passed with the conversion still running.
    TimedOut { status: u8, ctrl_meas: u8, after: Duration },
    /// Reading the status failed.
    Failed(DeviceError),
}

impl<I2C: I2c> DelayNs for ConversionWait<'_, I2C> {
    fn delay_ns(&mut self, ns: u32) {
        let limit = Duration::from_nanos(u64::from(ns));
        if limit <= START_UP {
            std::thread::sleep(limit);
            return;
        }
        let started = Instant::now();
        loop {
            // status and ctrl_meas are adjacent, so one read gets both. The mode bits show
            // forced until the chip is back asleep (section 3.3.3), which covers the instant
            // after the trigger before `measuring` may be set.
            let mut registers = [0; 2];
            if let Err(error) = self.bus.write_read(self.address, &[STATUS], &mut registers) {
                self.outcome = Wait::Failed(DeviceError::i2c(error));
                return;
            }
            let [status, ctrl_meas] = registers;
            if status & (STATUS_MEASURING | STATUS_IM_UPDATE) == 0 && ctrl_meas & MODE_MASK == MODE_SLEEP {
                self.outcome = Wait::Finished { ctrl_meas };
                return;
            }
            let after = started.elapsed();
            if after >= limit {
                self.outcome = Wait::TimedOut { status, ctrl_meas, after };
                return;
            }
            std::thread::sleep(STATUS_POLL_INTERVAL.min(limit - after));
        }
    }
}
