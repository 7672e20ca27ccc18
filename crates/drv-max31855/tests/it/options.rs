//! Validation of the board-file options, before any bus traffic.

use device::{DeviceError, Options, Value};
use embedded_hal_mock::eh1::spi::Mock;

#[test]
fn registry_constants() {
    assert_eq!(drv_max31855::DRIVER, "max31855");
    assert!(drv_max31855::OPTIONS.is_empty());
}

#[test]
fn no_options_do_not_touch_the_bus() {
    let mut bus = Mock::new(&[]);
    assert!(drv_max31855::device(bus.clone(), &Options::default()).is_ok());
    bus.done();
}

#[test]
fn any_option_is_unknown_and_named() {
    let mut bus = Mock::new(&[]);
    let options = Options([("type".to_owned(), Value::Text("K".into()))].into_iter().collect());
    let error = drv_max31855::device(bus.clone(), &options).err().unwrap();
    bus.done();
    let DeviceError::Config(message) = error else { panic!("expected a configuration error, got {error:?}") };
    for fragment in ["\"type\"", "max31855", "accepts none", "part number"] {
        assert!(message.contains(fragment), "{message:?} does not mention {fragment:?}");
    }
}

#[test]
fn simulated_chip_ignores_options() {
    let options = Options([("type".to_owned(), Value::Text("K".into()))].into_iter().collect());
    assert_eq!(drv_max31855::simulated(&options).inspect("thermocouple"), Some(200.0));
}
