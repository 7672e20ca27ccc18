//! The adapter against an exact script of I2C transactions (embedded-hal-mock).

use device::{BusFault, Device, DeviceError, Options};
use drv_ina219::Ina219Device;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

use crate::{assert_near, value};

const ADDRESS: u8 = 0x40;

/// init() with the default options (0.1 Ω, 3.2 A: calibration 4194 = 0x1062, configuration
/// 0x399F): reset, wait for the reset value, calibrate, configure, read both back.
fn init_script() -> Vec<Transaction> {
    vec![
        Transaction::write(ADDRESS, vec![0x00, 0xB9, 0x9F]),
        Transaction::write_read(ADDRESS, vec![0x00], vec![0x39, 0x9F]),
        Transaction::write(ADDRESS, vec![0x05, 0x10, 0x62]),
        Transaction::write(ADDRESS, vec![0x00, 0x39, 0x9F]),
        Transaction::transaction_start(ADDRESS),
        Transaction::write(ADDRESS, vec![0x00]),
        Transaction::read(ADDRESS, vec![0x39, 0x9F]),
        Transaction::write(ADDRESS, vec![0x05]),
        Transaction::read(ADDRESS, vec![0x10, 0x62]),
        Transaction::transaction_end(ADDRESS),
    ]
}

/// One poll: bus voltage, power, shunt voltage and current in a single transaction.
fn poll_script(bus: u16, power: u16, shunt: u16, current: u16) -> Vec<Transaction> {
    vec![
        Transaction::transaction_start(ADDRESS),
        Transaction::write(ADDRESS, vec![0x02]),
        Transaction::read(ADDRESS, bus.to_be_bytes().to_vec()),
        Transaction::write(ADDRESS, vec![0x03]),
        Transaction::read(ADDRESS, power.to_be_bytes().to_vec()),
        Transaction::write(ADDRESS, vec![0x01]),
        Transaction::read(ADDRESS, shunt.to_be_bytes().to_vec()),
        Transaction::write(ADDRESS, vec![0x04]),
        Transaction::read(ADDRESS, current.to_be_bytes().to_vec()),
        Transaction::transaction_end(ADDRESS),
    ]
}

/// Runs `test` on an adapter whose bus expects exactly `script`.
fn with_script(script: &[Transaction], test: impl FnOnce(&mut dyn Device)) {
    let mut bus = Mock::new(script);
    let mut adapter = Ina219Device::new(bus.clone(), ADDRESS, &Options::default()).unwrap().with_delay(NoopDelay);
    test(&mut adapter);
    bus.done();
}

// 12 V = 3000 × 4 mV, with CNVR set; 50 mV = 5000 × 10 µV; current 5000 × 4194 / 4096 = 5119;
// power 5119 × 3000 / 5000 = 3071.
const BUS_12V_READY: u16 = (3000 << 3) | 0b10;
const SHUNT_50MV: u16 = 5000;
const CURRENT: u16 = 5119;
const POWER: u16 = 3071;

#[test]
fn init_resets_calibrates_configures_and_checks() {
    with_script(&init_script(), |adapter| adapter.init().unwrap());
}

#[test]
fn poll_reads_all_registers_in_one_transaction_and_converts() {
    with_script(&poll_script(BUS_12V_READY, POWER, SHUNT_50MV, CURRENT), |adapter| {
        let samples = adapter.poll().unwrap();
        let names: Vec<_> = samples.iter().map(|sample| sample.name).collect();
        assert_eq!(names, ["bus_voltage", "shunt_voltage", "current", "power"]);
        assert_near(value(&samples, "bus_voltage"), 12.0, 1e-12);
        assert_near(value(&samples, "shunt_voltage"), 50.0, 1e-12);
        // Current LSB = 0.04096 / (4194 × 0.1 Ω) = 97.663 µA; power LSB = 20 × that.
        assert_near(value(&samples, "current"), 5119.0 * 97.6633e-6, 1e-6);
        assert_near(value(&samples, "power"), 3071.0 * 20.0 * 97.6633e-6, 1e-5);
    });
}

#[test]
fn negative_current_is_reported_with_its_sign() {
    let minus = |value: i16| value as u16;
    with_script(&poll_script(BUS_12V_READY, POWER, minus(-5000), minus(-5119)), |adapter| {
        let samples = adapter.poll().unwrap();
        assert_near(value(&samples, "shunt_voltage"), -50.0, 1e-12);
        assert_near(value(&samples, "current"), -0.49994, 1e-5);
        assert!(value(&samples, "power") > 0.0);
    });
}

#[test]
fn poll_waits_one_conversion_when_none_is_ready() {
    // Right after init() the configuration write has cleared CNVR.
    let mut script = poll_script(3000 << 3, 0, 0, 0);
    script.extend(poll_script(BUS_12V_READY, POWER, SHUNT_50MV, CURRENT));
    with_script(&script, |adapter| {
        assert_near(value(&adapter.poll().unwrap(), "bus_voltage"), 12.0, 1e-12);
    });
}

#[test]
fn poll_fails_when_no_conversion_ever_completes() {
    let mut script = poll_script(3000 << 3, 0, 0, 0);
    script.extend(poll_script(3000 << 3, 0, 0, 0));
    with_script(&script, |adapter| {
        let error = adapter.poll().unwrap_err();
        assert!(matches!(&error, DeviceError::Chip(message) if message.contains("no conversion")), "{error}");
    });
}

#[test]
fn math_overflow_flag_is_a_chip_error() {
    with_script(&poll_script(BUS_12V_READY | 0b01, 0xFFFF, 32000, 0x7FFF), |adapter| {
        let error = adapter.poll().unwrap_err();
        assert!(matches!(&error, DeviceError::Chip(message) if message.starts_with("math overflow: ")), "{error}");
        assert!(error.takes_device_offline());
    });
}

#[test]
fn absent_chip_is_a_bus_error() {
    let script = [Transaction::write(ADDRESS, vec![0x00, 0xB9, 0x9F])
        .with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))];
    with_script(&script, |adapter| {
        let error = adapter.init().unwrap_err();
        assert!(matches!(error, DeviceError::Bus { fault: BusFault::NoAcknowledge, .. }), "{error}");
    });
}

#[test]
fn chip_that_does_not_keep_the_calibration_is_rejected() {
    let mut script = init_script();
    // The calibration reads back as 0: not an INA219, or it was reset behind our back.
    script[8] = Transaction::read(ADDRESS, vec![0x00, 0x00]);
    with_script(&script, |adapter| {
        let error = adapter.init().unwrap_err();
        assert!(matches!(&error, DeviceError::Chip(message) if message.contains("0x0000")), "{error}");
    });
}

#[test]
fn chip_that_does_not_reset_is_rejected() {
    // The driver polls the configuration register up to 12 times for the power-on value.
    let mut script = vec![Transaction::write(ADDRESS, vec![0x00, 0xB9, 0x9F])];
    script.extend((0..12).map(|_| Transaction::write_read(ADDRESS, vec![0x00], vec![0xFF, 0xFF])));
    with_script(&script, |adapter| {
        let error = adapter.init().unwrap_err();
        assert!(matches!(&error, DeviceError::Chip(message) if message.contains("0x399F")), "{error}");
    });
}
