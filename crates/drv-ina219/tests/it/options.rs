//! Validation of the address and board-file options, before any bus traffic.

use device::{DeviceError, Options, Value};
use embedded_hal_mock::eh1::i2c::Mock;

use crate::options;

/// Builds the adapter on a bus that expects no traffic at all, and returns the error.
#[track_caller]
fn config_error(address: u8, options: &Options) -> String {
    let mut bus = Mock::new(&[]);
    let result = drv_ina219::device(bus.clone(), address, options);
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
    assert_eq!(drv_ina219::DRIVER, "ina219");
    assert_eq!(drv_ina219::OPTIONS, ["shunt_ohms", "max_current_a"]);
}

#[test]
fn valid_options_do_not_touch_the_bus() {
    for address in [0x40, 0x45, 0x4F] {
        let mut bus = Mock::new(&[]);
        let pairs = [("shunt_ohms", Value::Float(0.05)), ("max_current_a", Value::Int(5))];
        assert!(drv_ina219::device(bus.clone(), address, &options(&pairs)).is_ok());
        bus.done();
    }
}

#[test]
fn unknown_options_are_named() {
    check(&[("shunt_ohm", Value::Float(0.1)), ("gain", Value::Int(8))], &["\"gain\"", "\"shunt_ohm\"", "shunt_ohms"]);
}

#[test]
fn non_numbers_are_rejected() {
    check(&[("shunt_ohms", Value::Text("0.1R".into()))], &["\"shunt_ohms\"", "number", "\"0.1R\""]);
}

#[test]
fn shunt_must_be_positive() {
    check(&[("shunt_ohms", Value::Float(-0.1))], &["\"shunt_ohms\" = -0.1", "positive"]);
    check(&[("shunt_ohms", Value::Int(0))], &["\"shunt_ohms\" = 0", "positive"]);
    check(&[("shunt_ohms", Value::Float(f64::NAN))], &["\"shunt_ohms\" = NaN"]);
}

#[test]
fn max_current_must_be_positive() {
    check(&[("max_current_a", Value::Float(-1.0))], &["\"max_current_a\" = -1", "positive"]);
}

#[test]
fn shunt_voltage_beyond_320_mv_is_rejected() {
    // 5 A × 0.1 Ω = 500 mV.
    check(&[("max_current_a", Value::Int(5))], &["\"max_current_a\" = 5", "500 mV", "±320 mV", "at most 3.2 A"]);
}

#[test]
fn calibration_beyond_the_register_is_rejected() {
    // 0.1 A × 0.1 Ω = 10 mV needs Cal = 134217.
    check(&[("max_current_a", Value::Float(0.1))], &["\"max_current_a\" = 0.1", "134217", "more than 0.2048 A"]);
}

#[test]
fn address_must_be_one_the_pins_can_select() {
    for address in [0x00, 0x3F, 0x50, 0x7F] {
        let message = config_error(address, &Options::default());
        assert!(message.contains(&format!("0x{address:02X}")) && message.contains("0x40 to 0x4F"), "{message}");
    }
}
