//! Validation of the board-file options, before any bus traffic.

use device::{Options, Value};
use embedded_hal_mock::eh1::spi::Mock;

use crate::{config_error, options};

#[track_caller]
fn check(pairs: &[(&str, Value)], expected_fragments: &[&str]) {
    let mut bus = Mock::new(&[]);
    let message = config_error(drv_mcp23s17::device(bus.clone(), &options(pairs)).map(drop));
    bus.done();
    for fragment in expected_fragments {
        assert!(message.contains(fragment), "{message:?} does not mention {fragment:?}");
    }
}

#[test]
fn registry_constants() {
    assert_eq!(drv_mcp23s17::DRIVER, "mcp23s17");
    assert_eq!(drv_mcp23s17::OPTIONS, ["hardware_address", "outputs"]);
}

#[test]
fn valid_options_do_not_touch_the_bus() {
    for (address, outputs) in [(0, 0), (3, 0x00FF), (7, 0xFFFF)] {
        let mut bus = Mock::new(&[]);
        let pairs = [("hardware_address", Value::Int(address)), ("outputs", Value::Int(outputs))];
        assert!(drv_mcp23s17::device(bus.clone(), &options(&pairs)).is_ok());
        bus.done();
    }
    let mut bus = Mock::new(&[]);
    assert!(drv_mcp23s17::device(bus.clone(), &Options::default()).is_ok());
    bus.done();
}

#[test]
fn unknown_options_are_named_with_the_accepted_ones() {
    check(&[("address", Value::Int(1))], &["\"address\"", "mcp23s17", "hardware_address, outputs"]);
}

#[test]
fn hardware_address_is_what_three_pins_give() {
    check(&[("hardware_address", Value::Int(8))], &["\"hardware_address\" = 8", "0 to 7"]);
    check(&[("hardware_address", Value::Int(-1))], &["\"hardware_address\" = -1", "0 to 7"]);
    check(&[("hardware_address", Value::Text("A0".into()))], &["\"hardware_address\"", "integer", "\"A0\""]);
}

#[test]
fn outputs_is_a_16_bit_mask() {
    check(&[("outputs", Value::Int(0x1_0000))], &["\"outputs\" = 65536", "0 to 0xFFFF"]);
    check(&[("outputs", Value::Int(-1))], &["\"outputs\" = -1", "0 to 0xFFFF"]);
    check(&[("outputs", Value::Float(255.0))], &["\"outputs\"", "integer", "255"]);
}

#[test]
fn simulated_chip_takes_its_address_from_the_options() {
    let chip = drv_mcp23s17::simulated(&options(&[("hardware_address", Value::Int(5))]));
    assert_eq!(chip.inspect("iodira"), Some(255.0));
    // Options device() refuses fall back to address 0 rather than failing here.
    let chip = drv_mcp23s17::simulated(&options(&[("hardware_address", Value::Int(9))]));
    assert_eq!(chip.inspect("iocon"), Some(0.0));
}
