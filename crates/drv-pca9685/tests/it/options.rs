//! Validation of the address and board-file options, before any bus traffic.

use device::{DeviceError, Options, Value};
use embedded_hal_mock::eh1::i2c::Mock;

use crate::options;

/// Builds the adapter on a bus that expects no traffic at all, and returns the error.
#[track_caller]
fn config_error(address: u8, options: &Options) -> String {
    let mut bus = Mock::new(&[]);
    let result = drv_pca9685::device(bus.clone(), address, options);
    bus.done();
    match result {
        Err(DeviceError::Config(message)) => message,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(_) => panic!("expected a configuration error, got an adapter"),
    }
}

#[track_caller]
fn check(pairs: &[(&str, Value)], expected_fragments: &[&str]) {
    let message = config_error(0x40, &options(pairs));
    for fragment in expected_fragments {
        assert!(message.contains(fragment), "{message:?} does not mention {fragment:?}");
    }
}

#[test]
fn registry_constants() {
    assert_eq!(drv_pca9685::DRIVER, "pca9685");
    assert_eq!(drv_pca9685::OPTIONS, ["frequency_hz"]);
}

#[test]
fn valid_options_do_not_touch_the_bus() {
    for (address, frequency) in [(0x40, 24.0), (0x55, 50.0), (0x7F, 1526.0)] {
        let mut bus = Mock::new(&[]);
        let pairs = [("frequency_hz", Value::Float(frequency))];
        assert!(drv_pca9685::device(bus.clone(), address, &options(&pairs)).is_ok());
        bus.done();
    }
}

#[test]
fn unknown_options_are_named() {
    check(&[("frequency", Value::Int(50))], &["\"frequency\"", "frequency_hz"]);
}

#[test]
fn frequency_outside_the_prescaler_range_is_rejected() {
    check(&[("frequency_hz", Value::Int(20))], &["\"frequency_hz\" = 20", "24 to 1526 Hz"]);
    check(&[("frequency_hz", Value::Int(2000))], &["\"frequency_hz\" = 2000", "24 to 1526 Hz"]);
    check(&[("frequency_hz", Value::Float(f64::NAN))], &["\"frequency_hz\" = NaN"]);
}

#[test]
fn frequency_must_be_a_number() {
    check(&[("frequency_hz", Value::Text("1kHz".into()))], &["\"frequency_hz\"", "number", "\"1kHz\""]);
}

#[test]
fn address_must_be_one_the_pins_can_select() {
    for address in [0x00, 0x3F, 0x80] {
        let message = config_error(address, &Options::default());
        assert!(message.contains(&format!("0x{address:02X}")) && message.contains("0x40 to 0x7F"), "{message}");
    }
}

#[test]
fn all_call_address_is_rejected() {
    let message = config_error(0x70, &Options::default());
    assert!(message.contains("0x70") && message.contains("All Call"), "{message}");
}
