//! The adapter running the simulated chip on the mock bus, as mock mode does.

use buses::MockI2cBus;
use buses::mock_i2c::Injected;
use device::{BusFault, Device, DeviceError, I2cChip, Options, SimFault};
use drv_bme280::Bme280Sim;
use drv_bme280::registers::{RESET, SOFT_RESET, STATUS, STATUS_MEASURING};
use embedded_hal::i2c::I2c;

use crate::value;

const ADDRESS: u8 = 0x76;

/// How close a reading comes to the simulated air at the adapter's 1x oversampling: half a
/// 16-bit step (datasheet 3.4: 0.005 °C, 2.6 Pa, and 0.008 %RH at 16 bits) plus the adapter's
/// rounding to 0.01.
const TEMPERATURE_TOLERANCE: f64 = 0.0025 + 0.005 + 1e-9;
const HUMIDITY_TOLERANCE: f64 = 0.004 + 0.005 + 1e-9;
const PRESSURE_TOLERANCE: f64 = 0.0131 + 0.005 + 1e-9;

/// A bus with a simulated BME280 and an initialised adapter for it.
fn setup() -> (MockI2cBus, Box<dyn Device>) {
    setup_with(Bme280Sim::new())
}

fn setup_with(chip: impl I2cChip) -> (MockI2cBus, Box<dyn Device>) {
    let bus = MockI2cBus::new();
    bus.attach(ADDRESS, chip);
    let mut device = drv_bme280::device(bus.handle(), ADDRESS, &Options::default()).unwrap();
    device.init().unwrap();
    (bus, device)
}

#[track_caller]
fn check(celsius: f64, percent: f64, hectopascal: f64) {
    let (bus, mut device) = setup();
    assert!(bus.set_input(ADDRESS, "temperature", celsius));
    assert!(bus.set_input(ADDRESS, "humidity", percent));
    assert!(bus.set_input(ADDRESS, "pressure", hectopascal));
    let samples = device.poll().unwrap();
    let (t, h, p) = (value(&samples, "temperature"), value(&samples, "humidity"), value(&samples, "pressure"));
    assert!((t - celsius).abs() <= TEMPERATURE_TOLERANCE, "{t} °C for {celsius} °C");
    assert!((h - percent).abs() <= HUMIDITY_TOLERANCE, "{h} % for {percent} %");
    assert!((p - hectopascal).abs() <= PRESSURE_TOLERANCE, "{p} hPa for {hectopascal} hPa");
}

#[test]
fn reads_a_warm_humid_day() {
    check(25.0, 60.0, 1000.0);
}

#[test]
fn reads_the_standard_atmosphere() {
    check(15.0, 50.0, 1013.25);
}

#[test]
fn reads_a_frosty_high_pressure_day() {
    check(-12.34, 20.5, 1042.1);
}

#[test]
fn reads_a_mountain_top() {
    check(3.5, 95.0, 700.0);
}

#[test]
fn reads_the_ends_of_the_operating_range() {
    check(-40.0, 0.0, 300.0);
    check(85.0, 100.0, 1100.0);
}

#[test]
fn air_beyond_the_operating_range_reads_as_its_end() {
    // The community driver clamps to the ranges of datasheet table 1.
    let (bus, mut device) = setup();
    assert!(bus.set_input(ADDRESS, "temperature", 95.0));
    assert!(bus.set_input(ADDRESS, "pressure", 1150.0));
    let samples = device.poll().unwrap();
    assert_eq!(value(&samples, "temperature"), 85.0);
    assert_eq!(value(&samples, "pressure"), 1100.0);
}

#[test]
fn each_poll_is_one_forced_conversion_in_five_transactions() {
    let (bus, mut device) = setup();
    for polls in 1..=3 {
        let before = bus.transactions();
        device.poll().unwrap();
        assert_eq!(bus.transactions() - before, 5);
        assert_eq!(bus.inspect(ADDRESS, "conversions"), Some(f64::from(polls)));
        assert_eq!(bus.inspect(ADDRESS, "mode"), Some(0.0), "back asleep");
    }
}

#[test]
fn removed_chip_fails_until_it_is_back() {
    let (bus, mut device) = setup();
    assert!(bus.inject(ADDRESS, Some(Injected::Removed)));
    let error = device.poll().unwrap_err();
    assert!(matches!(error, DeviceError::Bus { fault: BusFault::NoAcknowledge, .. }), "{error:?}");
    assert!(error.takes_device_offline());
    assert!(matches!(device.init(), Err(DeviceError::Bus { fault: BusFault::NoAcknowledge, .. })));

    assert!(bus.inject(ADDRESS, None));
    device.init().unwrap();
    assert!(bus.set_input(ADDRESS, "temperature", 25.0));
    assert!((value(&device.poll().unwrap(), "temperature") - 25.0).abs() <= TEMPERATURE_TOLERANCE);
}

#[test]
fn bus_errors_are_classified() {
    let (bus, mut device) = setup();
    assert!(bus.inject(ADDRESS, Some(Injected::BusError)));
    assert!(matches!(device.poll(), Err(DeviceError::Bus { fault: BusFault::Bus, .. })));
}

#[test]
fn chip_reset_behind_the_adapters_back_is_reported_until_init() {
    let (bus, mut device) = setup();
    bus.handle().write(ADDRESS, &[RESET, SOFT_RESET]).unwrap();
    let error = device.poll().unwrap_err();
    assert!(
        matches!(&error, DeviceError::Chip(message) if message.starts_with("chip lost its configuration")),
        "{error:?}"
    );
    device.init().unwrap();
    assert!(bus.set_input(ADDRESS, "humidity", 33.0));
    assert!((value(&device.poll().unwrap(), "humidity") - 33.0).abs() <= HUMIDITY_TOLERANCE);
}

/// A BME280 whose conversions never finish: status always reads `measuring`.
struct Stuck {
    chip: Bme280Sim,
    pointer: u8,
}

impl I2cChip for Stuck {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SimFault> {
        if let Some(&pointer) = bytes.first() {
            self.pointer = pointer;
        }
        self.chip.write(bytes)
    }
    fn read(&mut self, buffer: &mut [u8]) -> Result<(), SimFault> {
        self.chip.read(buffer)?;
        if self.pointer == STATUS {
            buffer[0] |= STATUS_MEASURING;
        }
        Ok(())
    }
}

#[test]
fn conversion_that_never_finishes_is_a_chip_error() {
    // Takes the 40 ms limit of real time: the wait has to give up on its own.
    let (_bus, mut device) = setup_with(Stuck { chip: Bme280Sim::new(), pointer: 0 });
    let error = device.poll().unwrap_err();
    assert!(
        matches!(&error, DeviceError::Chip(message)
            if message.starts_with("conversion not finished after 4") && message.ends_with("(status 0x08, ctrl_meas 0x24)")),
        "{error:?}"
    );
}
