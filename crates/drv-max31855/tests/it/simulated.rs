//! The adapter against its simulated chip on the mock SPI bus.

use buses::MockSpiBus;
use buses::mock_spi::Injected;
use device::{Device, DeviceError, Kind, Options};

use crate::{chip_error, value};

const CHIP_SELECT: u8 = 1;

fn board() -> (MockSpiBus, Box<dyn Device>) {
    let bus = MockSpiBus::new();
    bus.attach_boxed(CHIP_SELECT, drv_max31855::simulated(&Options::default()));
    let adapter = drv_max31855::device(bus.device(CHIP_SELECT), &Options::default()).unwrap();
    (bus, adapter)
}

fn ready_board() -> (MockSpiBus, Box<dyn Device>) {
    let (bus, mut adapter) = board();
    adapter.init().unwrap();
    (bus, adapter)
}

#[test]
fn inputs_reach_the_poll_quantised() {
    let (bus, mut adapter) = ready_board();
    let samples = adapter.poll().unwrap();
    assert_eq!(value(&samples, "thermocouple"), 200.0);
    assert_eq!(value(&samples, "cold_junction"), 25.0);

    assert!(bus.set_input(CHIP_SELECT, "thermocouple", 1023.6));
    assert!(bus.set_input(CHIP_SELECT, "cold_junction", -12.34));
    let samples = adapter.poll().unwrap();
    assert_eq!(value(&samples, "thermocouple"), 1023.5);
    assert_eq!(value(&samples, "cold_junction"), -12.3125);
}

#[test]
fn readings_beyond_the_range_are_clamped() {
    let (bus, mut adapter) = ready_board();
    bus.set_input(CHIP_SELECT, "thermocouple", 2500.0);
    bus.set_input(CHIP_SELECT, "cold_junction", -80.0);
    let samples = adapter.poll().unwrap();
    assert_eq!(value(&samples, "thermocouple"), 1800.0);
    assert_eq!(value(&samples, "cold_junction"), -55.0);
}

#[track_caller]
fn check_fault(code: f64, expected: &str) {
    let (bus, mut adapter) = ready_board();
    assert!(bus.set_input(CHIP_SELECT, "fault", code));
    let error = adapter.poll().unwrap_err();
    assert!(error.takes_device_offline(), "{error}");
    assert_eq!(chip_error::<()>(Err(error)), expected);
    assert_eq!(chip_error(adapter.init()), expected, "init sees the fault too");
    assert!(bus.set_input(CHIP_SELECT, "fault", 0.0));
    adapter.init().unwrap();
    assert_eq!(value(&adapter.poll().unwrap(), "thermocouple"), 200.0);
}

#[test]
fn fault_codes_are_reported_with_their_reason() {
    check_fault(1.0, "thermocouple open circuit");
    check_fault(2.0, "thermocouple shorted to GND");
    check_fault(4.0, "thermocouple shorted to VCC");
    check_fault(3.0, "thermocouple open circuit; thermocouple shorted to GND");
}

#[track_caller]
fn check_absent(level: u8, expected: &str) {
    let (bus, mut adapter) = ready_board();
    assert!(bus.inject(CHIP_SELECT, Some(Injected::Absent(level))));
    assert_eq!(chip_error(adapter.poll()), expected);
    assert_eq!(chip_error(adapter.init()), expected);
    assert!(bus.inject(CHIP_SELECT, None));
    adapter.init().unwrap();
    assert_eq!(value(&adapter.poll().unwrap(), "cold_junction"), 25.0);
}

#[test]
fn absent_chip_is_a_chip_error_until_it_is_back() {
    check_absent(0xFF, "no response: reads all 1s (chip absent?)");
    check_absent(0x00, "no response: reads all 0s (chip absent?)");
}

#[test]
fn empty_chip_select_reads_all_1s() {
    let bus = MockSpiBus::new();
    let mut adapter = drv_max31855::device(bus.device(5), &Options::default()).unwrap();
    assert_eq!(chip_error(adapter.init()), "no response: reads all 1s (chip absent?)");
}

#[test]
fn transfer_error_is_a_bus_error_until_cleared() {
    let (bus, mut adapter) = ready_board();
    assert!(bus.inject(CHIP_SELECT, Some(Injected::TransferError)));
    let error = adapter.poll().unwrap_err();
    assert!(matches!(error, DeviceError::Bus { .. }), "{error}");
    assert!(matches!(adapter.init(), Err(DeviceError::Bus { .. })));
    assert!(bus.inject(CHIP_SELECT, None));
    adapter.init().unwrap();
    adapter.poll().unwrap();
}

#[test]
fn one_transaction_per_reading() {
    let (bus, mut adapter) = ready_board();
    let before = bus.transactions();
    adapter.poll().unwrap();
    adapter.poll().unwrap();
    assert_eq!(bus.transactions() - before, 2);
    assert_eq!(bus.inspect(CHIP_SELECT, "frames"), Some(3.0), "init and two polls");
}

#[test]
fn describe_lists_two_temperatures() {
    let (_bus, adapter) = board();
    let description = adapter.describe();
    assert_eq!(description.model, "MAX31855");
    let quantities: Vec<_> =
        description.quantities.iter().map(|quantity| (quantity.name, quantity.unit, quantity.kind)).collect();
    assert_eq!(
        quantities,
        [("thermocouple", Some("°C"), Kind::Temperature), ("cold_junction", Some("°C"), Kind::Temperature)]
    );
    assert!(description.commands.is_empty());
}
