//! What the gateway's driver registry calls: `device`, `simulated` and the description.

use buses::I2cHandle;
use buses::MockI2cBus;
use device::{Args, Device, DeviceError, I2cChip, Kind, Options, Value};
use drv_bme280::{DRIVER, OPTIONS};
use embedded_hal::i2c::I2c;
use embedded_hal_mock::eh1::i2c::Mock;

fn options(names: &[&str]) -> Options {
    Options(names.iter().map(|name| ((*name).to_owned(), Value::Int(16))).collect())
}

#[track_caller]
fn check_rejected(address: u8, options: &Options, expected: &str) {
    let mut bus = Mock::new(&[]);
    match drv_bme280::device(bus.clone(), address, options) {
        Err(error) => assert_eq!(error, DeviceError::Config(expected.to_owned())),
        Ok(_) => panic!("address {address:#04x} with {options:?} was accepted"),
    }
    bus.done();
}

#[test]
fn names_for_the_board_file() {
    assert_eq!(DRIVER, "bme280");
    assert!(OPTIONS.is_empty());
}

/// How the i2c-gateway's driver table stores the constructor.
type Build = fn(I2cHandle, u8, &Options) -> Result<Box<dyn Device>, DeviceError>;

#[test]
fn functions_fit_the_gateway_registry() {
    // The signatures the gateway's driver table expects, checked at compile time.
    let _build: Build = drv_bme280::device::<I2cHandle>;
    let _simulate: fn(u8, &Options) -> Box<dyn I2cChip> = drv_bme280::simulated;
}

#[test]
fn unknown_option_is_named() {
    check_rejected(
        0x76,
        &options(&["oversampling"]),
        r#"unknown option "oversampling" for driver "bme280" (it accepts none)"#,
    );
}

#[test]
fn unknown_options_are_all_named() {
    check_rejected(
        0x76,
        &options(&["filter", "mode"]),
        r#"unknown options "filter", "mode" for driver "bme280" (it accepts none)"#,
    );
}

#[test]
fn address_must_be_one_the_chip_can_have() {
    for address in [0x40, 0x75, 0x78] {
        check_rejected(
            address,
            &Options::default(),
            &format!("address {address:#04x} is not a BME280 address: 0x76 (SDO to GND) or 0x77 (SDO to VDDIO)"),
        );
    }
}

#[test]
fn building_the_adapter_does_not_touch_the_bus() {
    let mut bus = Mock::new(&[]);
    for address in [0x76, 0x77] {
        drv_bme280::device(bus.clone(), address, &Options::default()).unwrap();
    }
    bus.done();
}

#[test]
fn description_lists_three_quantities_and_no_commands() {
    let mut bus = Mock::new(&[]);
    let device = drv_bme280::device(bus.clone(), 0x76, &Options::default()).unwrap();
    let description = device.describe();
    assert_eq!(description.model, "BME280");
    let quantities: Vec<_> = description.quantities.iter().map(|q| (q.name, q.unit, q.kind)).collect();
    assert_eq!(
        quantities,
        [
            ("temperature", Some("°C"), Kind::Temperature),
            ("humidity", Some("%"), Kind::Humidity),
            ("pressure", Some("hPa"), Kind::Pressure),
        ]
    );
    assert!(description.commands.is_empty());
    bus.done();
}

#[test]
fn commands_are_unsupported() {
    let mut bus = Mock::new(&[]);
    let mut device = drv_bme280::device(bus.clone(), 0x76, &Options::default()).unwrap();
    assert_eq!(device.command("reset", &Args::default()), Err(DeviceError::UnsupportedAction("reset".to_owned())));
    bus.done();
}

#[test]
fn simulated_chip_answers_at_its_address() {
    let bus = MockI2cBus::new();
    bus.attach_boxed(0x77, drv_bme280::simulated(0x77, &Options::default()));
    let mut id = [0];
    bus.handle().write_read(0x77, &[0xD0], &mut id).unwrap();
    assert_eq!(id, [0x60]);
    assert_eq!(bus.inspect(0x77, "temperature"), Some(21.0));
}
